"""End to end, under stress: concurrent jobs, misbehaving registries, interrupts, lost blobs.

The real CLI as a subprocess (`python3 get_docker_image.py ...`), the real docker CLI on
PATH (classic builder), a real `docker-registry` (tests/e2e_support.test_registry(), or a
private LocalRegistry where a test breaks its storage) and, in front of it where a test
needs one, the misbehaving registries of tests/fake_registry.py. Nothing from the internet:
the base image is e2e_support.busybox_image(). Every test uses a repository name of its
own (uuid) and removes only the images it made (its tags, and its builds' untagged
images by the IDs its own logs print).

Skipped with busybox_e2e_problem()'s reason (a failure under CI=true instead).
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
import unittest

from tests.e2e_support import (
    Job,
    LocalRegistry,
    ToolJobsTestCase,
    busybox_e2e_problem,
    config_digest,
    docker_commands,
    image_id,
    manifest,
    processes_naming,
    registry_tags,
    remove_images,
    stop_test_registry,
    wait_for,
)
from tests.fake_registry import FlakyRegistry, HangingRegistry, _Handler
from tests.helpers import LOG_TIMESTAMP

PROBLEM = busybox_e2e_problem()  # raises under CI=true
if PROBLEM is not None:
    print(f"skipping resilience end-to-end tests: {PROBLEM}", file=sys.stderr)

# How long the tool may take to stop after a signal. docker build and docker push stop on
# their first SIGTERM, so it needs less than its grace (util.STOP_GRACE_SECONDS, 5 s)
# before SIGKILL; waiting that long means it missed part of what it started.
STOP_EXPECTED = 5.0
STOP_TIMEOUT = 15.0  # past this, the test gives up on the tool
ANOTHER_JOB_PUSHED = "Another job pushed the image meanwhile"
# Classic builder output: each step's resulting image, and the final one.

# Docker wrappers that do NOT exec docker: it runs as their child (in their process group).
FOREGROUND_WRAPPER = '#!/bin/sh\ndocker "$@"\nstatus=$?\nexit "$status"\n'
# ... and in the background: a non-interactive shell starts it with SIGINT ignored.
BACKGROUND_WRAPPER = '#!/bin/sh\ndocker "$@" &\nwait "$!"\n'


def setUpModule() -> None:
    if PROBLEM is None:
        unittest.addModuleCleanup(stop_test_registry)


# --- helpers ------------------------------------------------------------------------------


def subcommands(log: str) -> list[str]:
    """The docker subcommands logged, "manifest inspect" as "manifest"."""
    return [command[0] for command in docker_commands(log) if command]


def last_message(log: str) -> str:
    lines = log.splitlines()
    return LOG_TIMESTAMP.sub("", lines[-1]) if lines else ""


class SlowUploadRegistry(FlakyRegistry):
    """A FlakyRegistry that fails nothing but holds each blob upload request (PATCH or PUT
    under /blobs/uploads/) `delay` seconds before passing it on: a push that takes a while,
    and would still succeed. `uploading` is set when the first upload request arrives."""

    def __init__(self, upstream: str, delay: float, lifetime: float = 60.0) -> None:
        self.delay = delay
        self.uploading = threading.Event()
        self.in_flight = 0
        self.last_activity = time.monotonic()
        super().__init__(upstream, 0, lifetime=lifetime)

    def _handle(self, handler: _Handler) -> None:
        with self._lock:
            self.in_flight += 1
            self.last_activity = time.monotonic()
        try:
            with contextlib.suppress(OSError):  # docker hung up meanwhile
                super()._handle(handler)
        finally:
            with self._lock:
                self.in_flight -= 1
                self.last_activity = time.monotonic()

    def _ask_upstream(
        self, handler: _Handler, body: bytes
    ) -> tuple[int, str, list[tuple[str, str]], bytes]:
        if handler.command in ("PATCH", "PUT") and "/blobs/uploads/" in handler.path:
            self.uploading.set()
            self.closing.wait(self.delay)
        return super()._ask_upstream(handler, body)

    def quiet_for(self, seconds: float) -> bool:
        """Whether no request has been in progress for `seconds`."""
        with self._lock:
            return self.in_flight == 0 and time.monotonic() - self.last_activity >= seconds


@unittest.skipIf(PROBLEM, PROBLEM or "")
class ResilienceEndToEndTest(ToolJobsTestCase):
    repository_prefix = "gdi-e2e-res"

    def assert_no_processes_left(self, text: str) -> None:
        self.assertEqual(processes_naming(text), [])

    # --- 1. concurrent jobs converge

    def test_job_started_during_anothers_build_ends_with_its_image_without_pushing(
        self,
    ) -> None:
        context = self.context(f"FROM {self.base()}\nCOPY unique.txt /unique.txt\nRUN sleep 6\n")
        image = self.image(context)
        tag = image.rsplit(":", 1)[1]
        job_a = self.start(self.argv(context))
        wait_for(lambda: "building" in job_a.log(), 60, "job A to start building")
        # B starts well inside A's 6 s step, so that its build, which repeats that step
        # (not yet in the cache), ends after A's push.
        wait_for(lambda: "RUN sleep 6" in job_a.log(), 60, "job A's slow step")
        time.sleep(3)
        self.assertTrue(job_a.running(), job_a.log())
        self.assertNotIn("push", subcommands(job_a.log()), "A pushed before B started")
        job_b = self.start(self.argv(context))
        self.assert_exit(job_a, 0)
        self.assert_exit(job_b, 0)

        log_a, log_b = job_a.log(), job_b.log()
        self.assertIn("Image not found, building and pushing...", log_a)
        self.assertEqual(subcommands(log_a).count("push"), 1, log_a)
        self.assertNotIn("push", subcommands(log_b), log_b)
        self.assertTrue(ANOTHER_JOB_PUSHED in log_b or "Image found, pulling..." in log_b, log_b)
        pushed = config_digest(self.registry, self.repository, tag)
        self.assertEqual(image_id(image), pushed)
        self.assertEqual(image_id(self.repository), pushed)
        self.assertEqual(registry_tags(self.registry, self.repository), [tag])

    def test_eight_jobs_started_together_all_succeed(self) -> None:
        base = self.base()
        for round_ in range(3):
            with self.subTest(round=round_):
                context = self.context(f"FROM {base}\nCOPY unique.txt /unique.txt\nRUN sleep 1\n")
                tag = self.image(context).rsplit(":", 1)[1]
                jobs = [self.start(self.argv(context)) for _ in range(8)]
                for job in jobs:
                    self.assert_exit(job, 0)
                self.assertIn(tag, registry_tags(self.registry, self.repository))
                pushes = sum(subcommands(job.log()).count("push") for job in jobs)
                self.assertGreaterEqual(pushes, 1)
                self.assertIsNotNone(image_id(self.repository))

    # --- 2. a flaky registry

    def test_manifest_requests_failing_twice_are_retried(self) -> None:
        context = self.context("FROM scratch\nCOPY unique.txt /unique.txt\n")
        with FlakyRegistry(self.registry, 2, paths="/manifests/", lifetime=60) as flaky:
            job = self.run_job(self.argv(context, registry=flaky.address))
            self.assertEqual(flaky.failed, 2)
        self.assert_exit(job, 0)
        log = job.log()
        self.assertIn(
            "[WARNING] - docker manifest inspect failed for a transient reason; retry 1 of 3",
            log,
        )
        self.assertEqual(subcommands(log).count("build"), 1, log)
        self.assertEqual(subcommands(log).count("push"), 1, log)
        tag = self.image(context).rsplit(":", 1)[1]
        self.assertEqual(registry_tags(self.registry, self.repository), [tag])

    def test_manifest_requests_failing_forever_stop_before_building(self) -> None:
        context = self.context("FROM scratch\nCOPY unique.txt /unique.txt\n")
        with FlakyRegistry(self.registry, -1, paths="/manifests/", lifetime=60) as flaky:
            extra = ("--retries", "2", "--retry-delay", "0.1")
            job = self.run_job(self.argv(context, *extra, registry=flaky.address))
        self.assert_exit(job, 1)
        log = job.log()
        self.assertRegex(
            last_message(log),
            rf"^get_docker_image \[ERROR\] - registry {re.escape(flaky.address)} kept "
            r"failing: received unexpected HTTP status: 503 Service Unavailable "
            r"\(tried 3 times\)$",
        )
        self.assertEqual(subcommands(log), ["manifest"] * 3, log)
        self.assertEqual(log.count("failed for a transient reason"), 2, log)
        self.assertEqual(registry_tags(self.registry, self.repository), [])

    # --- 3. a registry that never answers

    def test_hanging_registry_times_out_quickly_and_leaves_no_probe_running(self) -> None:
        context = self.context("FROM scratch\nCOPY unique.txt /unique.txt\n")
        with HangingRegistry(lifetime=30) as hanging:
            extra = ("--probe-timeout", "1", "--retries", "1", "--retry-delay", "0.1")
            job = self.run_job(self.argv(context, *extra, registry=hanging.address))
            elapsed = (job.ended or 0) - job.started
            # Checked while the registry still holds requests: a probe still running
            # would still be waiting for its answer.
            self.assert_no_processes_left(self.repository)
            self.assertEqual(hanging.held, 2)
        log = job.log()
        self.assert_exit(job, 1)
        self.assertRegex(
            last_message(log),
            rf"^get_docker_image \[ERROR\] - registry {re.escape(hanging.address)} kept "
            r"failing: no answer within 1 s \(tried 2 times\)$",
        )
        self.assertEqual(subcommands(log), ["manifest"] * 2, log)
        # Two probes of 1 s each, a 0.1 s delay, and Python's start-up.
        self.assertLess(elapsed, 5.0, log)

    # --- 4. interrupted while docker runs under a wrapper that does not exec it

    def interrupt(self, job: Job, signum: int, *, group: bool) -> float:
        """Sends `signum` to the tool (or to its process group), waits for it to exit with
        128 + `signum`, and returns how long that took."""
        sent = time.monotonic()
        if group:
            os.killpg(job.process.pid, signum)
        else:
            job.process.send_signal(signum)
        try:
            job.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.fail(f"still running {STOP_TIMEOUT:g} s after the signal:\n{job.log()}")
        took = time.monotonic() - sent
        self.assert_exit(job, 128 + signum)
        message = "Terminated." if signum == signal.SIGTERM else "Interrupted."
        self.assertEqual(last_message(job.log()), f"get_docker_image [ERROR] - {message}")
        return took

    def assert_stopped_for_good(self, job: Job, took: float) -> None:
        """Nothing of the job left running 2 s after it exited, nothing pushed or tagged,
        and the tool did not need its grace to get there."""
        time.sleep(2)
        self.assert_no_processes_left(self.repository)
        self.assertEqual(registry_tags(self.registry, self.repository), [])
        self.assertIsNone(image_id(self.repository))
        self.assertLess(took, STOP_EXPECTED, job.log())

    def check_interrupted_build(self, wrapper: str, signum: int, *, group: bool) -> None:
        context = self.context(f"FROM {self.base()}\nCOPY unique.txt /unique.txt\nRUN sleep 20\n")
        job = self.start(self.argv(context, docker_path=self.wrapper(wrapper)), new_session=group)
        wait_for(lambda: "RUN sleep 20" in job.log(), 60, "the slow step to start")
        time.sleep(1)
        self.assertTrue(job.running(), job.log())
        took = self.interrupt(job, signum, group=group)
        self.assertEqual(subcommands(job.log()), ["manifest", "build"], job.log())
        self.assert_stopped_for_good(job, took)

    def test_sigterm_during_build_under_a_wrapper_stops_docker(self) -> None:
        self.check_interrupted_build(FOREGROUND_WRAPPER, signal.SIGTERM, group=False)

    def test_sigint_to_the_group_during_build_under_a_background_wrapper(self) -> None:
        self.check_interrupted_build(BACKGROUND_WRAPPER, signal.SIGINT, group=True)

    def check_interrupted_push(self, wrapper: str, signum: int, *, group: bool) -> None:
        # A layer of its own (1 MB of random bytes), pushed through a proxy that holds each
        # upload request 2 s: the push takes several seconds, and would succeed.
        context = self.context(
            "FROM scratch\nCOPY unique.txt random.bin /\n", {"random.bin": os.urandom(1 << 20)}
        )
        with SlowUploadRegistry(self.registry, delay=2.0) as slow:
            job = self.start(
                self.argv(context, registry=slow.address, docker_path=self.wrapper(wrapper)),
                new_session=group,
            )
            wait_for(slow.uploading.is_set, 60, "the push to upload a blob")
            time.sleep(0.5)
            self.assertTrue(job.running(), job.log())
            took = self.interrupt(job, signum, group=group)
            commands = subcommands(job.log())
            self.assertEqual(commands, ["manifest", "build", "manifest", "push"], job.log())
            # An engine that went on with the push would still be sending: wait until the
            # proxy has been idle for longer than it holds an upload, then look.
            time.sleep(2)
            wait_for(lambda: slow.quiet_for(3.0), 30, "the registry proxy to be idle")
            self.assert_stopped_for_good(job, took)

    def test_sigterm_during_push_under_a_background_wrapper_stops_the_push(self) -> None:
        self.check_interrupted_push(BACKGROUND_WRAPPER, signal.SIGTERM, group=False)

    def test_sigint_to_the_group_during_push_under_a_wrapper_stops_the_push(self) -> None:
        self.check_interrupted_push(FOREGROUND_WRAPPER, signal.SIGINT, group=True)

    # --- 5. a registry that lost a blob

    def test_lost_layer_blob_is_rebuilt_and_pushed_again(self) -> None:
        registry = LocalRegistry()
        self.addCleanup(registry.stop)
        context = self.context(
            "FROM scratch\nCOPY unique.txt random.bin /\n", {"random.bin": os.urandom(1 << 16)}
        )
        tag = self.image(context, registry.address).rsplit(":", 1)[1]

        first = self.run_job(self.argv(context, registry=registry.address))
        self.assert_exit(first, 0)
        self.assertIn("push", subcommands(first.log()))
        (layer,) = manifest(registry.address, self.repository, tag)["layers"]
        algorithm, hex_digest = layer["digest"].split(":")
        blobs = os.path.join(registry.storage, "docker/registry/v2/blobs", algorithm)
        os.remove(os.path.join(blobs, hex_digest[:2], hex_digest, "data"))
        remove_images(self.repository)

        second = self.run_job(self.argv(context, registry=registry.address))
        self.assert_exit(second, 0)
        log = second.log()
        self.assertIn("[WARNING] - The registry's copy is broken", log)
        self.assertEqual(subcommands(log), ["manifest", "pull", "build", "push", "tag"], log)

        remove_images(self.repository)
        third = self.run_job(self.argv(context, registry=registry.address))
        self.assert_exit(third, 0)
        log = third.log()
        self.assertIn("Image found, pulling...", log)
        self.assertEqual(subcommands(log), ["manifest", "pull", "tag"], log)
        self.assertEqual(
            image_id(self.repository), config_digest(registry.address, self.repository, tag)
        )

    # --- 6. names docker would refuse

    def test_bad_names_are_usage_errors_before_any_docker_command(self) -> None:
        context = self.context("FROM scratch\nCOPY unique.txt /unique.txt\n")
        marker = os.path.join(self.root, "docker-ran")
        recorder = self.wrapper(f'#!/bin/sh\ntouch {shlex.quote(marker)}\nexec docker "$@"\n')
        cases = {
            "uppercase repository": ["--repository", "Bad/Name"],
            "port out of range": ["--container-registry", "127.0.0.1:99999"],
        }
        for what, options in cases.items():
            with self.subTest(what):
                job = self.run_job([*self.argv(context, docker_path=recorder), *options])
                self.assert_exit(job, 2)
                log = job.log()
                self.assertIn("error:", log)
                self.assertEqual(docker_commands(log), [], log)
                self.assertFalse(os.path.exists(marker), log)


if __name__ == "__main__":
    unittest.main()
