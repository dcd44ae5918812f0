"""End to end: --build-lock with the real CLI, the real docker on PATH and a real
`docker-registry` (tests/e2e_support.test_registry()).

Jobs start together on new content whose build has a slow step (a `RUN sleep` after a
file unique to the test, so that no cache can fake it), each with a short lease, and a
logging --docker-path wrapper counts the `docker build` calls across all of them: six
jobs build once (under a lease shorter than the build: renewed); a holder killed with
SIGKILL is taken over after its lease; a holder whose build fails leaves every waiter to
build (and fail) at once; a stale marker of an earlier run (pushed through registry.py)
is taken over at once; two jobs started within milliseconds, twenty times, never build
more than twice. Every wait is bounded: a regression fails instead of hanging.

Each test has a repository of its own and removes only the images it made. Skipped with
busybox_e2e_problem()'s reason (a failure under CI=true instead).
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import signal
import sys
import threading
import time
import unittest
from collections.abc import Iterator, Sequence

import registry
from get_docker_image import LockMarker, read_lock_marker
from tests.e2e_support import (
    Job,
    ToolJobsTestCase,
    busybox_e2e_problem,
    config_digest,
    image_id,
    manifest_digest,
    registry_tags,
    stop_test_registry,
    wait_for,
)
from tests.registry_images import push_lock_marker

PROBLEM = busybox_e2e_problem()  # raises under CI=true
if PROBLEM is not None:
    print(f"skipping build lock end-to-end tests: {PROBLEM}", file=sys.stderr)

LEASE = 3  # seconds: short, so that a dead holder is noticed quickly
# The most a job may take here: a regression fails the test instead of hanging it.
JOB_BOUND = 90.0
# How long after the failure it waited on a waiter starts its own build, at most:
# a poll (3 s, with jitter 3.9 s) and a second of slack.
AFTER_FAILURE_BOUND = 3.9 + 1.0
# Each docker call: its start (seconds since the epoch), the tool's pid, the subcommand.
CALL_LOG_WRAPPER = (
    '#!/bin/sh\nprintf "%s %s %s\\n" "$(date +%s.%N)" "$PPID" "$1" >> {log}\nexec docker "$@"\n'
)


def setUpModule() -> None:
    if PROBLEM is None:
        unittest.addModuleCleanup(stop_test_registry)


class DockerCall:
    """A docker call the wrapper logged."""

    def __init__(self, line: str) -> None:
        started, pid, self.subcommand = [*line.split(" ", 2), ""][:3]
        self.started = float(started)  # seconds since the epoch
        self.pid = int(pid)  # the tool's


@unittest.skipIf(PROBLEM, PROBLEM or "")
class BuildLockEndToEndTest(ToolJobsTestCase):
    repository_prefix = "gdi-e2e-lock"

    def setUp(self) -> None:
        super().setUp()
        self.calls_path = os.path.join(self.root, "docker-calls.log")
        self.docker_path = self.wrapper(CALL_LOG_WRAPPER.format(log=shlex.quote(self.calls_path)))
        self.client = registry.Registry(self.registry, timeout=10, plain_http=True)
        self.addCleanup(self.client.close)

    # --- helpers

    def slow_context(self, seconds: float, then: str = "") -> str:
        """A context whose build sleeps `seconds` after a file of its own."""
        run = f"RUN sleep {seconds:g}" + (f" && {then}" if then else "")
        return self.context(f"FROM {self.base()}\nCOPY unique.txt /unique.txt\n{run}\n")

    def lock_argv(self, context: str, *extra: str, lease: float = LEASE) -> list[str]:
        return self.argv(
            context, "--build-lock", f"{lease:g}", *extra, docker_path=self.docker_path
        )

    def start_jobs(
        self, argv: Sequence[str], count: int, *, new_session: bool = False
    ) -> list[Job]:
        return [self.start(argv, new_session=new_session) for _ in range(count)]

    def wait_all(self, jobs: Sequence[Job], bound: float = JOB_BOUND) -> list[int]:
        """Waits for every job (noting when each ended); their exit statuses."""
        deadline = time.monotonic() + bound
        while any(job.running() for job in jobs):
            for job in jobs:
                if not job.running() and job.ended is None:
                    job.ended = time.monotonic()
            if time.monotonic() > deadline:
                logs = "\n\n".join(job.log()[-3000:] for job in jobs if job.running())
                raise AssertionError(f"jobs still running after {bound:g} s:\n{logs}")
            time.sleep(0.05)
        return [job.wait() for job in jobs]

    def calls(self, subcommand: str, jobs: Sequence[Job] | None = None) -> list[DockerCall]:
        """The docker calls of `subcommand` the wrapper logged (of these jobs)."""
        try:
            with open(self.calls_path, encoding="utf-8") as file:
                calls = [DockerCall(line.rstrip("\n")) for line in file if line.strip()]
        except FileNotFoundError:
            return []
        pids = None if jobs is None else {job.process.pid for job in jobs}
        return [
            call
            for call in calls
            if call.subcommand == subcommand and (pids is None or call.pid in pids)
        ]

    def holder_of(self, jobs: Sequence[Job]) -> Job:
        holders = [job for job in jobs if "Took the build lock" in job.log()]
        self.assertEqual(len(holders), 1, "\n\n".join(job.log() for job in jobs))
        return holders[0]

    def marker(self, tag: str) -> LockMarker | None:
        try:
            found = self.client.manifest(self.repository, tag + "-lock")
        except registry.NotFound:
            return None
        return read_lock_marker(found.document)

    @contextlib.contextmanager
    def watching_marker(self, tag: str) -> Iterator[list[LockMarker]]:
        """The markers seen under `tag`-lock, read every 0.2 s while the block runs."""
        seen: list[LockMarker] = []
        done = threading.Event()

        def watch() -> None:
            while not done.wait(0.2):
                with contextlib.suppress(registry.RegistryError):
                    if (marker := self.marker(tag)) is not None:
                        seen.append(marker)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        try:
            yield seen
        finally:
            done.set()
            watcher.join(timeout=15)

    def assert_image_is_the_registrys(self, image: str) -> None:
        tag = image.rsplit(":", 1)[1]
        self.assertEqual(image_id(image), config_digest(self.registry, self.repository, tag))

    def to_monotonic(self, epoch: float) -> float:
        return epoch - (time.time() - time.monotonic())

    # --- tests

    def test_six_jobs_build_once_under_a_lease_shorter_than_the_build(self) -> None:
        context = self.slow_context(2 * LEASE)  # renewed some six times
        image = self.image(context)
        tag = image.rsplit(":", 1)[1]
        with self.watching_marker(tag) as markers:
            jobs = self.start_jobs(self.lock_argv(context), 6)
            statuses = self.wait_all(jobs)
        logs = "\n\n".join(job.log() for job in jobs)
        self.assertEqual(statuses, [0] * 6, logs)
        self.assertEqual(len(self.calls("build")), 1, logs)
        self.assertEqual(len(self.calls("push")), 1, logs)
        self.assert_image_is_the_registrys(image)
        self.assertEqual(registry_tags(self.registry, self.repository), [tag])  # released
        holder = self.holder_of(jobs)
        self.assertIn("Built and pushed", holder.log().splitlines()[-1])
        digest = manifest_digest(self.registry, self.repository, tag)
        for job in jobs:
            if job is not holder:
                log = job.log()
                self.assertRegex(log, rf"Waiting for [^ ]+/{holder.process.pid}, which holds")
                self.assertRegex(
                    log.splitlines()[-1],
                    r"Took .* from another job in [0-9.]+ s \(waited [0-9.]+ s for another "
                    r"job's build\)\.$",
                )
                self.assertIn(f"Digest: {digest}", log)  # it pulled the registry's image
        # The holder's lease was renewed while it built, as the waiters saw it.
        renewals = {
            marker.renewal for marker in markers if marker.holder.endswith(f"/{holder.process.pid}")
        }
        self.assertGreaterEqual(max(renewals, default=0), 3, markers)

    def test_a_holder_killed_during_its_build_is_taken_over_after_its_lease(self) -> None:
        context = self.slow_context(4)
        image = self.image(context)
        jobs = self.start_jobs(self.lock_argv(context), 4, new_session=True)
        wait_for(lambda: len(self.calls("build")) == 1, 60, "the holder's build")
        (build,) = self.calls("build")
        (holder,) = [job for job in jobs if job.process.pid == build.pid]
        wait_for(lambda: "RUN sleep" in holder.log(), 60, "the holder's slow step")
        os.killpg(holder.process.pid, signal.SIGKILL)  # the tool and its docker build
        killed = time.monotonic()
        others = [job for job in jobs if job is not holder]
        statuses = self.wait_all(others)
        logs = "\n\n".join(job.log() for job in jobs)
        self.assertEqual(statuses, [0] * 3, logs)
        self.assertEqual(holder.wait(), -signal.SIGKILL)
        builds = self.calls("build")
        self.assertEqual(len(builds), 2, logs)  # the killed one, and one taking over
        taker = next(job for job in others if job.process.pid == builds[1].pid)
        self.assertRegex(
            taker.log(),
            rf"The build lock of [^ ]+/{holder.process.pid} \(since [^)]+\) is over, "
            r"(it was not renewed for|its lease ended at)",
        )
        # Taken over after the lease (by the takers' clock), and within a poll of it.
        took_over = self.to_monotonic(builds[1].started)
        self.assertGreater(took_over - killed, LEASE - 1, logs)
        self.assertLess(took_over - killed, LEASE + AFTER_FAILURE_BOUND + 1.5, logs)
        self.assert_image_is_the_registrys(image)
        for job in others:
            if job is not taker:
                self.assertIn("Took ", job.log().splitlines()[-1])

    def test_a_holder_whose_build_fails_leaves_every_waiter_to_build_at_once(self) -> None:
        context = self.slow_context(3, then="exit 3")
        jobs = self.start_jobs(self.lock_argv(context), 4)
        statuses = self.wait_all(jobs)
        logs = "\n\n".join(job.log() for job in jobs)
        self.assertEqual(statuses, [1] * 4, logs)
        for job in jobs:  # each fails with the build's own error
            self.assertRegex(job.log(), r"returned a non-zero code: 3|exit code: 3")
        builds = self.calls("build")
        self.assertEqual(len(builds), 4, logs)
        holder = self.holder_of(jobs)
        assert holder.ended is not None
        for job in jobs:
            if job is not holder:
                self.assertIn("released the build lock without pushing the image", job.log())
                (own_build,) = self.calls("build", [job])
                waited = self.to_monotonic(own_build.started) - holder.ended
                self.assertLess(waited, AFTER_FAILURE_BOUND, logs)
        self.assertEqual(registry_tags(self.registry, self.repository), [])

    def test_a_stale_marker_of_an_earlier_run_is_taken_over_at_once(self) -> None:
        context = self.slow_context(1)
        image = self.image(context)
        tag = image.rsplit(":", 1)[1]
        now = time.time()
        stale = LockMarker("earlier-run/1", "5ta1e", now - 120, now - 60, 60, 7, False)
        push_lock_marker(self.client, self.repository, tag, stale.document())
        # The marker is no image: the name, the probe, and so a build, are the tag's own.
        self.assertEqual(self.image(context), image)
        job = self.start(self.lock_argv(context))
        self.assertEqual(self.wait_all([job]), [0], job.log())
        log = job.log()
        self.assertIn("Image not found, building and pushing...", log)
        self.assertRegex(
            log,
            r"The build lock of earlier-run/1 \(since [^)]+\) is over, its lease ended at "
            r"[^:]+:[^:]+:[0-9]+Z: taking it over\.",
        )
        self.assertNotIn("Waiting for", log)
        self.assertEqual(len(self.calls("build")), 1, log)
        taken = re.search(r"^(\S+ \S+) .*Took the build lock", log, re.MULTILINE)
        started = re.search(r"^(\S+ \S+) .*Image not found", log, re.MULTILINE)
        assert taken is not None and started is not None
        self.assertLess(_log_seconds(taken[1]) - _log_seconds(started[1]), 2.5, log)
        self.assert_image_is_the_registrys(image)
        self.assertIsNone(self.marker(tag))  # released: deleted

    def test_two_jobs_started_within_milliseconds_never_build_more_than_twice(self) -> None:
        rounds, at_once = 20, 5  # rounds run five at a time
        twice = 0
        for batch in range(rounds // at_once):
            contexts = [
                self.context("FROM scratch\nCOPY unique.txt /unique.txt\n") for _ in range(at_once)
            ]
            pairs = [self.start_jobs(self.lock_argv(context), 2) for context in contexts]
            statuses = self.wait_all([job for pair in pairs for job in pair], bound=60)
            self.assertEqual(statuses, [0] * 2 * at_once, f"batch {batch}")
            for pair in pairs:
                logs = "\n\n".join(job.log() for job in pair)
                builds = len(self.calls("build", pair))
                self.assertIn(builds, (1, 2), logs)
                twice += builds == 2
                (name,) = set(re.findall(r"\[INFO\] - Image: (\S+)", logs))
                self.assert_image_is_the_registrys(name)
        print(f"\n  two jobs at once: {twice} of {rounds} rounds built twice", file=sys.stderr)


def _log_seconds(stamp: str) -> float:
    """A log record's time ("2026-01-02 03:04:05,678"), in seconds since the epoch."""
    seconds, milliseconds = stamp.split(",")
    return time.mktime(time.strptime(seconds, "%Y-%m-%d %H:%M:%S")) + int(milliseconds) / 1000
