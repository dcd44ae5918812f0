"""Real CI with a recording docker: concurrent jobs, flaky registries, lost
blobs, bad names, broken stdout, and the layer cache's calls."""

from __future__ import annotations

import contextlib
import functools
import io
import json
import os
import subprocess
import sys
import time
import unittest
from collections.abc import Callable
from typing import Any
from unittest import mock

import get_docker_image
from get_docker_image import (
    Docker,
    DockerError,
    HashMode,
    Outcome,
    StepFailed,
    classify_error,
    parse_options,
    pull_layer_cache,
    push_layer_cache,
    push_unless_pushed,
)
from tests.fixtures import FAKE_DOCKER
from tests.helpers import REPO_DIR, SCRIPT, run_main
from tests.test_cli import NO_CREDENTIALS, NO_SUCH_MANIFEST, TLS_TIMEOUT, CliTestCase

GOLDEN_HELP = os.path.join(REPO_DIR, "tests", "golden_help.txt")

SERVICE_UNAVAILABLE = "received unexpected HTTP status: 503 Service Unavailable"
LOST_BLOB = "error pulling image configuration: download failed after attempts=1: unknown blob"
DENIED = "denied: requested access to the resource is denied"


class ResilienceTestCase(CliTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.registry_dir = os.path.join(self.root, "registry")
        os.mkdir(self.registry_dir)
        self.set_env(
            FAKE_DOCKER_REGISTRY=self.registry_dir, FAKE_DOCKER_PROBE_STDERR=NO_SUCH_MANIFEST
        )
        self.probe = ["manifest", "inspect", "--insecure", self.image]
        self.build = self.build_argv(self.image)
        self.push, self.pull = ["push", self.image], ["pull", self.image]
        self.tag_argv = ["tag", self.image, "team/app"]

    def empty_registry(self) -> None:
        for name in os.listdir(self.registry_dir):
            os.remove(os.path.join(self.registry_dir, name))

    def script(self, **answers: list[dict[str, Any]]) -> None:
        """Scripted answers of the recording docker, by command (from the
        first again: a new script forgets which answers were used)."""
        path = os.path.join(self.root, "script.json")
        for name in os.listdir(self.root):
            if name.startswith("script.json.") and name.endswith(".count"):
                os.remove(os.path.join(self.root, name))
        with open(path, "w", encoding="utf-8") as file:
            json.dump(answers, file)
        self.set_env(FAKE_DOCKER_SCRIPT=path)

    def assert_messages_include(self, result: Any, *expected: str) -> None:
        messages = result.log_messages()
        for line in expected:
            self.assertIn(line, messages)


class ConvergenceTest(ResilienceTestCase):
    def test_tag_pushed_by_another_job_during_the_build_is_pulled_not_pushed(self) -> None:
        self.script(build=[{"publish": self.image}])
        result = self.run_tool()
        self.assertEqual(result.status, 0, result.stderr)
        self.assertEqual(
            self.docker_argvs(), [self.probe, self.build, self.probe, self.pull, self.tag_argv]
        )
        self.assert_messages_include(
            result,
            "get_docker_image [INFO] - Another job pushed the image meanwhile: "
            "pulling it instead of pushing.",
        )

    def test_failed_push_of_a_tag_that_another_job_pushed_pulls_theirs(self) -> None:
        self.script(push=[{"status": 1, "stderr": SERVICE_UNAVAILABLE, "publish": self.image}])
        result = self.run_tool()
        self.assertEqual(result.status, 0, result.stderr)
        self.assertEqual(
            self.docker_argvs(),
            [self.probe, self.build, self.probe, self.push, self.probe, self.pull, self.tag_argv],
        )
        self.assert_messages_include(
            result,
            "get_docker_image [INFO] - The push failed, but another job has pushed the image: "
            "pulling it.",
        )

    def test_a_blob_a_sibling_is_still_pushing_is_retried(self) -> None:
        """Jobs pushing the same layers at once: the registry answers "blob
        unknown" (or "digest invalid") for one a sibling is committing."""
        for stderr in (
            "manifest blob unknown: blob unknown to registry",
            "digest invalid: provided digest did not match uploaded content",
        ):
            with self.subTest(stderr):
                self.forget_docker_calls()
                self.script(push=[{"status": 1, "stderr": stderr}])
                result = self.run_tool()
                self.assertEqual(result.status, 0, result.stderr)
                self.assertEqual(
                    self.docker_argvs(),
                    [
                        self.probe,
                        self.build,
                        self.probe,
                        self.push,
                        self.probe,
                        self.push,
                        self.tag_argv,
                    ],
                )
                for name in os.listdir(self.registry_dir):  # the next run misses again
                    os.remove(os.path.join(self.registry_dir, name))
                os.remove(os.environ["FAKE_DOCKER_SCRIPT"] + ".push.count")

    def test_permanent_push_failure_is_not_retried(self) -> None:
        self.script(push=[{"status": 1, "stderr": DENIED}])
        result = self.run_tool()
        self.assertEqual(result.status, 1)
        self.assertEqual(
            self.docker_argvs(), [self.probe, self.build, self.probe, self.push, self.probe]
        )
        self.assertIn(
            f"docker push failed with exit status 1: {DENIED} (command: ",
            result.log_messages()[-1],
        )


class RetryTest(ResilienceTestCase):
    def test_transient_probe_failures_are_retried(self) -> None:
        self.script(manifest=[{"status": 1, "stderr": SERVICE_UNAVAILABLE}] * 2)
        result = self.run_tool()
        self.assertEqual(result.status, 0, result.stderr)
        self.assertEqual(
            self.docker_argvs(),
            [self.probe] * 3 + [self.build, self.probe, self.push, self.tag_argv],
        )
        warnings = [line for line in result.log_messages() if "[WARNING]" in line]
        self.assertEqual(
            warnings,
            [
                "get_docker_image [WARNING] - docker manifest inspect failed for a transient "
                f"reason; retry {number} of 3 in 0.0 s"
                for number in (1, 2)
            ],
        )

    def test_a_registry_that_keeps_failing_stops_before_building(self) -> None:
        self.script(manifest=[{"status": 1, "stderr": SERVICE_UNAVAILABLE}] * 10)
        for retries, probes in (("3", 4), ("0", 1), ("1", 2)):
            with self.subTest(retries=retries):
                self.forget_docker_calls()
                counter = os.environ["FAKE_DOCKER_SCRIPT"] + ".manifest.count"
                if os.path.exists(counter):
                    os.remove(counter)
                result = self.run_tool("--retries", retries)
                self.assertEqual(result.status, 1)
                self.assertEqual(self.docker_argvs(), [self.probe] * probes)
                self.assertEqual(
                    result.log_messages()[-1],
                    "get_docker_image [ERROR] - registry myreg.azurecr.io kept failing: "
                    f"{SERVICE_UNAVAILABLE} (tried {probes} times)",
                )

    def test_a_probe_that_hangs_is_stopped_and_retried(self) -> None:
        self.script(manifest=[{"sleep": 30}])
        started = time.monotonic()
        result = self.run_tool("--probe-timeout", "0.5")
        self.assertLess(time.monotonic() - started, 10)
        self.assertEqual(result.status, 0, result.stderr)
        self.assertEqual(
            self.docker_argvs(),
            [self.probe, self.probe, self.build, self.probe, self.push, self.tag_argv],
        )
        self.assertIn(
            "get_docker_image [WARNING] - docker manifest inspect failed for a transient "
            "reason; retry 1 of 3 in 0.0 s",
            result.log_messages(),
        )

    def test_transient_pull_and_push_failures_are_retried(self) -> None:
        self.script(
            pull=[{"status": 1, "stderr": "read: connection reset by peer"}],
            push=[{"status": 1, "stderr": SERVICE_UNAVAILABLE}],
        )
        result = self.run_tool()
        self.assertEqual(result.status, 0, result.stderr)
        self.assertEqual(
            self.docker_argvs(),
            [self.probe, self.build, self.probe, self.push, self.probe, self.push, self.tag_argv],
        )
        self.forget_docker_calls()
        result = self.run_tool()  # now the registry has it: a hit, whose pull is retried
        self.assertEqual(result.status, 0, result.stderr)
        self.assertEqual(self.docker_argvs(), [self.probe, self.pull, self.pull, self.tag_argv])


class LostBlobTest(ResilienceTestCase):
    def test_a_tag_whose_blob_is_lost_is_built_and_pushed_again(self) -> None:
        self.set_env(FAKE_DOCKER_HAS_IMAGE="1")
        self.script(pull=[{"status": 1, "stderr": LOST_BLOB}])
        result = self.run_tool()
        self.assertEqual(result.status, 0, result.stderr)
        # No re-check before the push: the registry has the tag, broken.
        self.assertEqual(
            self.docker_argvs(), [self.probe, self.pull, self.build, self.push, self.tag_argv]
        )
        self.assertEqual(
            self.tool_messages(result)[2:],
            [
                self.broken_copy(),
                f"get_docker_image [INFO] - Built and pushed {self.image} in N s.",
            ],
        )

    def test_a_broken_copy_with_no_push_is_built_and_kept(self) -> None:
        self.set_env(FAKE_DOCKER_HAS_IMAGE="1")
        self.script(pull=[{"status": 1, "stderr": LOST_BLOB}])
        result = self.run_tool("--no-push")
        self.assertEqual(result.status, 0, result.stderr)
        self.assertEqual(self.docker_argvs(), [self.probe, self.pull, self.build, self.tag_argv])
        self.assertEqual(
            self.tool_messages(result)[2:],
            [
                self.broken_copy(),
                "get_docker_image [INFO] - Not pushing the image (--no-push).",
                f"get_docker_image [INFO] - Built {self.image} in N s (not pushed: --no-push).",
            ],
        )

    def test_a_broken_copy_whose_push_is_refused_fails_in_one_line(self) -> None:
        self.set_env(FAKE_DOCKER_HAS_IMAGE="1")
        self.script(
            pull=[{"status": 1, "stderr": LOST_BLOB}], push=[{"status": 1, "stderr": DENIED}]
        )
        result = self.run_tool()
        self.assertEqual(result.status, 1)
        self.assertEqual(self.docker_argvs(), [self.probe, self.pull, self.build, self.push])
        self.assertEqual(
            self.tool_messages(result)[2:],
            [
                self.broken_copy(),
                f"get_docker_image [ERROR] - docker push failed with exit status 1: {DENIED} "
                f"(command: {FAKE_DOCKER} push {self.image})",
            ],
        )

    def test_a_tag_pushed_meanwhile_whose_pull_is_refused_fails_in_one_line(self) -> None:
        self.script(build=[{"publish": self.image}], pull=[{"status": 1, "stderr": DENIED}])
        result = self.run_tool()
        self.assertEqual(result.status, 1)
        self.assertEqual(self.docker_argvs(), [self.probe, self.build, self.probe, self.pull])
        self.assertEqual(
            self.tool_messages(result)[-1],
            f"get_docker_image [ERROR] - docker pull failed with exit status 1: {DENIED} "
            f"(command: {FAKE_DOCKER} pull {self.image})",
        )

    def tool_messages(self, result: Any) -> list[str]:
        """The tool's own log lines (not util.run's about each command)."""
        return [line for line in result.log_messages() if line.startswith("get_docker_image [")]

    def broken_copy(self) -> str:
        return (
            "get_docker_image [WARNING] - The registry's copy is broken (docker pull failed "
            f"with exit status 1: {LOST_BLOB} (command: {FAKE_DOCKER} pull {self.image})); "
            "building it again."
        )


class NameTest(CliTestCase):
    def test_invalid_names_are_usage_errors_before_anything_runs(self) -> None:
        long_name = "a" * 250
        table = [
            (("--repository", "Bad/Name"), "--repository 'Bad/Name': 'Bad' is not a valid name"),
            (("--repository", "bad repo"), "--repository 'bad repo': 'bad repo' is not a valid"),
            (("--repository", "a//b"), "--repository 'a//b': '' is not a valid name component"),
            (("--repository=-a",), "--repository '-a': '-a' is not a valid name component"),
            (
                ("--repository", long_name),
                f"the image name 'myreg.azurecr.io/{long_name}' is 267 characters long; "
                "docker allows 255 at most",
            ),
            (
                ("--container-registry", "127.0.0.1:99999"),
                "--container-registry '127.0.0.1:99999': '99999' is not a valid port (1 to 65535)",
            ),
            (
                ("--container-registry", "127.0.0.1:0"),
                "--container-registry '127.0.0.1:0': '0' is not a valid port (1 to 65535)",
            ),
            (
                ("--container-registry", "[::1]:65536"),
                "--container-registry '[::1]:65536': '65536' is not a valid port (1 to 65535)",
            ),
            (
                ("--container-registry", "bad_host.io"),
                "--container-registry 'bad_host.io': 'bad_host.io' is not a valid registry host",
            ),
            (
                ("--container-registry", "ghcr.io/Acme"),
                "--container-registry 'ghcr.io/Acme': 'Acme' is not a valid name component",
            ),
        ]
        for options, message in table:
            for mode in ((), ("--print-image-name",), ("--explain",)):
                with self.subTest(options=options, mode=mode):
                    self.forget_docker_calls()
                    argv = [*options, *mode]
                    registry = None if "--container-registry" in options else "myreg"
                    result = self.run_tool(*argv, registry=registry)
                    self.assertEqual((result.status, result.stdout), (2, ""))
                    self.assertIn(f"error: {message}", result.stderr)
                    self.assertEqual(self.docker_calls(), [])

    def test_valid_names_the_original_accepts_stay_accepted(self) -> None:
        for repository in ("team/app", "a", "a.b/c_d/e__f/g---h", "0/9"):
            with self.subTest(repository):
                result = self.run_tool("--repository", repository, "--print-image-name")
                self.assertEqual(result.status, 0, result.stderr)

    def test_the_classifier_ignores_the_image_name(self) -> None:
        for repository in ("x/denied", "x/timeout", "x/unauthorized", "connection-refused"):
            image = f"myreg.azurecr.io/{repository}:tag"
            with self.subTest(repository):
                message = f"something odd happened to {image}"
                self.assertIs(classify_error(message, image), Outcome.UNKNOWN)
                self.assertIs(classify_error(message), classify_error(message))


class ClassifyErrorTest(unittest.TestCase):
    # One message for each marker: a message names no other marker of its
    # class, nor one of an earlier class, so that each marker decides.
    MESSAGES: tuple[tuple[str, Outcome], ...] = (
        (LOST_BLOB, Outcome.LOST_BLOB),  # unknown blob
        ("manifest blob unknown: blob unknown to registry", Outcome.LOST_BLOB),
        ("digest invalid: provided digest did not match uploaded content", Outcome.LOST_BLOB),
        (NO_SUCH_MANIFEST, Outcome.NOT_FOUND),
        ("errors:\nmanifest unknown: manifest unknown", Outcome.NOT_FOUND),
        ("name unknown: repository name not known to registry", Outcome.NOT_FOUND),
        ("Error response from daemon: image team/app:x was not found", Outcome.NOT_FOUND),
        ("unauthorized: access to the requested resource is not authorized", Outcome.UNAUTHORIZED),
        (DENIED, Outcome.UNAUTHORIZED),
        ('Head "https://r.io/v2/a/manifests/x": authentication required', Outcome.UNAUTHORIZED),
        (NO_CREDENTIALS, Outcome.UNAUTHORIZED),
        ("received unexpected HTTP status: 403 Forbidden", Outcome.UNAUTHORIZED),
        ("error from registry: insufficient scope", Outcome.UNAUTHORIZED),
        ("received unexpected HTTP status: 499", Outcome.TRANSIENT),
        ('Get "https://r.io/v2/": response status: 502', Outcome.TRANSIENT),
        ("Error response from daemon: 500 Internal Server Error", Outcome.TRANSIENT),
        ("error parsing HTTP response: 502 Bad Gateway", Outcome.TRANSIENT),
        ("error parsing HTTP response: 503 Service Unavailable", Outcome.TRANSIENT),
        ("error parsing HTTP response: 504 Gateway Time-out", Outcome.TRANSIENT),
        (
            "toomanyrequests: You have reached your pull rate limit. You may increase "
            "the limit by authenticating and upgrading: https://www.docker.com/increase-rate-limit",
            Outcome.TRANSIENT,
        ),
        ("Error response from daemon: Too Many Requests", Outcome.TRANSIENT),
        ("read tcp 10.0.0.2:1->10.0.0.1:443: read: connection reset by peer", Outcome.TRANSIENT),
        ("write tcp 10.0.0.2:1->10.0.0.1:443: write: broken pipe", Outcome.TRANSIENT),
        (TLS_TIMEOUT, Outcome.TRANSIENT),  # timeout
        ("dial tcp 10.0.0.1:443: connect: connection timed out", Outcome.TRANSIENT),
        ('Get "https://r.io/v2/": context deadline exceeded', Outcome.TRANSIENT),
        ("error pulling image configuration: unexpected EOF", Outcome.TRANSIENT),
        ('Put "https://r.io/v2/a/blobs/uploads/1": EOF', Outcome.TRANSIENT),
        ('Get "http://localhost:5999/v2/": connection refused', Outcome.UNREACHABLE),
        ("lookup nosuchhost.invalid: no such host", Outcome.UNREACHABLE),
        (
            'Get "https://r.io/v2/": http: server gave HTTP response to HTTPS client',
            Outcome.UNREACHABLE,
        ),
        ("remote error: tls: handshake failure", Outcome.UNREACHABLE),
        ("x509: certificate signed by unknown authority", Outcome.UNREACHABLE),
        ("connect: network is unreachable", Outcome.UNREACHABLE),
        ("connect: no route to host", Outcome.UNREACHABLE),
        ('invalid port ":99999" after host', Outcome.UNREACHABLE),
        ("dial tcp: lookup r.io on 127.0.0.53:53: server misbehaving", Outcome.UNREACHABLE),
        ("something odd happened", Outcome.UNKNOWN),
    )

    def test_each_marker_of_docker_words(self) -> None:
        for message, outcome in self.MESSAGES:
            with self.subTest(message):
                self.assertIs(classify_error(message), outcome)

    def test_longer_names_are_taken_out_first_and_empty_ones_not_at_all(self) -> None:
        message = "cannot pull r.io/a/b-denied:tag"
        self.assertIs(classify_error(message, "r.io/a/b", "r.io/a/b-denied:tag"), Outcome.UNKNOWN)
        self.assertIs(classify_error(DENIED, ""), Outcome.UNAUTHORIZED)
        # Longer first, not the later in alphabetical order.
        message = "cannot pull denied/x/zz:1"
        self.assertIs(classify_error(message, "x/zz", "denied/x/zz:1"), Outcome.UNKNOWN)


class LayerCacheCallsTest(ResilienceTestCase):
    def test_a_miss_pulls_builds_with_and_moves_the_cache_tag(self) -> None:
        cache = "myreg.azurecr.io/team/app:latest"
        self.script(
            pull=[{"status": 1, "stderr": f"manifest for {cache} not found: manifest unknown"}]
        )
        result = self.run_tool("--layer-cache")
        self.assertEqual(result.status, 0, result.stderr)
        build = self.build_argv(self.image)
        build[2:2] = ["--cache-from", cache, "--build-arg", "BUILDKIT_INLINE_CACHE=1"]
        self.assertEqual(
            self.docker_argvs(),
            [
                self.probe,
                ["pull", cache],
                build,
                self.probe,
                self.push,
                ["tag", self.image, cache],
                ["push", cache],
                self.tag_argv,
            ],
        )
        self.assert_messages_include(
            result,
            f"get_docker_image [WARNING] - No layer cache yet ({cache}): building without it.",
        )

    def test_a_hit_does_not_touch_the_cache_tag(self) -> None:
        self.set_env(FAKE_DOCKER_HAS_IMAGE="1")
        result = self.run_tool("--layer-cache", "ci-cache")
        self.assertEqual(result.status, 0, result.stderr)
        self.assertEqual(self.docker_argvs(), [self.probe, self.pull, self.tag_argv])

    def test_layer_cache_needs_a_registry(self) -> None:
        result = self.run_tool("--layer-cache", registry=None)
        self.assertEqual(result.status, 2)
        self.assertIn("--layer-cache needs --container-registry", result.stderr)
        self.assertEqual(self.docker_calls(), [])


class StdoutTest(CliTestCase):
    def run_script(self, redirect: str) -> subprocess.CompletedProcess[str]:
        """--print-image-name with stdout redirected by a shell."""
        argv = [sys.executable, SCRIPT, "--context", "ctx", "--repository", "r"]
        return subprocess.run(
            ["sh", "-c", f'"$@" {redirect}', "sh", *argv, "--print-image-name"],
            stderr=subprocess.PIPE,
            text=True,
            check=False,
        )

    def test_closed_or_full_stdout_is_an_error(self) -> None:
        for redirect, reason in (
            (">&-", "it is closed"),
            (">/dev/full", "No space left on device"),
        ):
            with self.subTest(redirect):
                completed = self.run_script(redirect)
                self.assertEqual(completed.returncode, 1, completed.stderr)
                lines = completed.stderr.splitlines()
                self.assertEqual(len(lines), 1, completed.stderr)
                self.assertTrue(
                    lines[0].endswith(f"[ERROR] - cannot write to stdout: {reason}"), lines
                )


class UsageTest(CliTestCase):
    def test_version(self) -> None:
        result = run_main(["--version"])
        self.assertEqual(result.status, 0)
        self.assertRegex(result.stdout, r"^get_docker_image\.py \d+\.\d+\.\d+\n$")

    def test_help_is_the_golden_text(self) -> None:
        # The whole --help, at a width of 100 columns, as Python 3.10 to 3.13
        # print it. After a change of the help, rewrite it with
        # COLUMNS=100 python3 get_docker_image.py --help > tests/golden_help.txt
        with open(GOLDEN_HELP, encoding="utf-8") as file:
            golden = file.read()
        with mock.patch.dict(os.environ, {"COLUMNS": "100"}):
            result = run_main(["--help"])
        self.assertEqual((result.status, result.stderr), (0, ""))
        self.assertEqual(result.stdout, golden)

    def test_defaults(self) -> None:
        # A build-args default of None would make shlex read stdin (Python < 3.12).
        with mock.patch("sys.stdin", io.StringIO("--from-stdin")):
            options = parse_options(["--repository", "r"])
        self.assertEqual(
            options._asdict(),
            {
                "action": get_docker_image.Action.GET_IMAGE,
                "dockerfile": "Dockerfile",
                "context": ".",
                "build_args_text": "",
                "build_args": (),
                "other_build_args": (),
                "registry": None,
                "repository": "r",
                "docker_path": "docker",
                "hash_mode": get_docker_image.HashMode.ORIGINAL,
                "hash_base_images": False,
                "hash_platform": False,
                "layer_cache": None,
                "no_push": False,
                "image_cache_dir": None,
                "output_file": None,
                "retries": 3,
                "retry_delay": 2.0,
                "probe_timeout": 60.0,
                "transfer_timeout": 600.0,
                "build_lock": None,
                "build_lock_timeout": 10800.0,
                "prune": None,
                "debug": False,
            },
        )

    def test_help_examples_of_an_installed_command_have_no_python3(self) -> None:
        text = get_docker_image.build_parser("get-docker-image").format_help()
        examples = [line for line in text.splitlines() if "--repository ci/build" in line]
        self.assertEqual(len(examples), 5, text)
        self.assertEqual([line for line in examples if "python3" in line], [])
        self.assertIn("  IMAGE=$(get-docker-image --repository ci/build --print-image-name)", text)

    def test_usage_errors(self) -> None:
        # Each a usage error (exit 2) whose last line is the whole message.
        registry, repository = ("--container-registry", "myreg"), ("--repository", "r")
        lock = "--build-lock needs --container-registry and pushing: others wait for the build "
        cases: list[tuple[tuple[str, ...], str]] = [
            (("--dockerfile", "-"), "--dockerfile -: stdin is not supported; give a path"),
            (("--context", "-"), "--context -: stdin is not supported; give a path"),
            (
                ("--docker-build-args", "'a"),
                '--docker-build-args: cannot split "\'a": No closing quotation',
            ),
            (
                ("--docker-build-args-not-affecting-image-content", '"b'),
                "--docker-build-args-not-affecting-image-content: cannot split '\"b': "
                "No closing quotation",
            ),
            (
                ("--layer-cache",),
                "--layer-cache needs --container-registry (without a registry the engine's "
                "own layer cache already applies)",
            ),
            (
                ("--no-push",),
                "--no-push needs --container-registry (without one nothing is pushed)",
            ),
            (("--build-lock",), lock + "to be pushed"),
            (("--build-lock", "--no-push", *registry), lock + "to be pushed"),
            (("--prune-older-than", "1d"), "--prune-older-than needs --container-registry"),
            (
                ("--prune-older-than", "1d", "--no-push", *registry),
                "--no-push: not with --prune-older-than, which deletes from the registry "
                "(--dry-run deletes nothing)",
            ),
            (
                ("--image-cache-dir", "d", *registry),
                "--image-cache-dir needs local-only mode or --no-push (with a registry to push "
                "to, the registry is the cache)",
            ),
            (
                ("--prune-older-than", "1d", *registry, "--print-image-name"),
                "--prune-older-than: not with --print-image-name or --explain",
            ),
            (
                ("--dry-run",),
                "--keep-newest, --keep-tags-from and --dry-run go with --prune-older-than",
            ),
            (("--build-lock-timeout", "5"), "--build-lock-timeout goes with --build-lock"),
            (
                ("--container-registry", "A/B"),  # no host: both are path components
                "--container-registry 'A/B': 'A' is not a valid name component (lowercase "
                "letters and digits, separated by '.', '_', '__' or dashes)",
            ),
            (
                ("--layer-cache=-" + "a" * 199, *registry),  # shown cut after 129 characters
                f"--layer-cache {'-' + 'a' * 128!r} is not a valid tag (ASCII letters, digits, "
                "'_', '.' and '-', not first, 128 at most)",
            ),
            (
                ("--container-registry", "localhost:5000", "--repository", "a" * 241),
                f"the image name 'localhost:5000/{'a' * 241}' is 256 characters long; docker "
                "allows 255 at most",
            ),
        ]
        beside = "beside get_docker_image.py (copy it from the tool)"
        missing = [
            (
                ("--hash-mode", "docker"),
                "dockerignore",
                f"--hash-mode docker needs dockerignore.py {beside}",
            ),
            (
                ("--hash-base-images",),
                "dockerfile_from",
                f"--hash-base-images needs dockerfile_from.py {beside}",
            ),
            (("--build-lock", *registry), "registry", f"--build-lock needs registry.py {beside}"),
            (
                ("--prune-older-than", "1d", *registry),
                "registry",
                f"--prune-older-than needs registry.py {beside}",
            ),
        ]
        for argv, module, message in [
            *((argv, None, message) for argv, message in cases),
            *missing,
        ]:
            hidden = {} if module is None else {module: None}  # as if missing
            with self.subTest(argv=argv), mock.patch.dict(sys.modules, hidden):
                result = run_main([*repository, *argv])  # a later --repository wins
                self.assertEqual(result.status, 2)
                self.assertEqual(
                    result.stderr.splitlines()[-1], f"get_docker_image.py: error: {message}"
                )

    def test_values_at_their_bounds_and_given_values_are_taken(self) -> None:
        registry = ["--container-registry", "myreg", "--repository", "r"]
        options = parse_options(
            [
                *registry,
                *("--retries", "100", "--retry-delay", "600", "--probe-timeout", "604800"),
                *("--transfer-timeout", "604800", "--build-lock", "3600"),
                *("--build-lock-timeout", "604800"),
            ]
        )
        self.assertEqual(
            (
                options.retries,
                options.retry_delay,
                options.probe_timeout,
                options.transfer_timeout,
                options.build_lock,
                options.build_lock_timeout,
            ),
            (100, 600.0, 604800.0, 604800.0, 3600.0, 604800.0),
        )
        prune = parse_options([*registry, "--prune-older-than", "1d"]).prune
        assert prune is not None
        self.assertEqual(prune.keep_newest, 3)
        argv = [*registry, "--prune-older-than", "1d", "--keep-newest", "100000"]
        prune = parse_options(argv).prune
        assert prune is not None
        self.assertEqual(prune.keep_newest, 100000)

    def test_the_command_name_is_the_one_it_was_run_by(self) -> None:
        stdout = io.StringIO()
        with (
            mock.patch.object(sys, "argv", ["/usr/local/bin/get-docker-image", "--help"]),
            contextlib.redirect_stdout(stdout),
            self.assertRaises(SystemExit) as exited,
        ):
            get_docker_image.main()
        self.assertEqual(exited.exception.code, 0)
        self.assertTrue(stdout.getvalue().startswith("usage: get-docker-image [-h]"))

    def test_compute_tag_in_docker_mode_needs_the_platforms(self) -> None:
        with self.assertRaisesRegex(ValueError, "^docker mode hashes the target platforms$"):
            get_docker_image.compute_tag("", "Dockerfile", ".", hash_mode=HashMode.DOCKER)

    def test_an_image_name_of_255_characters_with_a_port(self) -> None:
        argv = ["--container-registry", "localhost:5000", "--repository", "a" * 240]
        result = run_main([*argv, "--context", self.root, "--print-image-name"])
        self.assertEqual(result.status, 0, result.stderr)
        self.assertEqual(len(result.stdout.partition(":image_content_digest_")[0]), 255)

    def test_help_examples_are_not_wrapped(self) -> None:
        result = run_main(["--help"])
        self.assertIn("      --docker-build-args \"--build-arg VERSION='1 2'\"\n", result.stdout)
        self.assertIn(" --docker-build-args=--no-cache\n", result.stdout)

    def test_a_value_starting_with_a_dash_gets_a_hint(self) -> None:
        result = self.run_tool("--docker-build-args", "--no-cache")
        self.assertEqual(result.status, 2)
        self.assertIn(
            "argument --docker-build-args: expected one argument (a value starting with '-' "
            "is given with '=': --docker-build-args=--no-cache)",
            result.stderr,
        )


class DockerUnitTestCase(unittest.TestCase):
    """The Docker class with its `run` scripted: each call takes the next
    (status, stdout, stderr) and is recorded with its keyword arguments."""

    def docker(self, *answers: tuple[int, str, str] | BaseException, retries: int = 2) -> Docker:
        argv = ["--container-registry", "r.example", "--repository", "a", "--docker-path", "docker"]
        argv += ["--retries", str(retries), "--retry-delay", "0", "--probe-timeout", "7"]
        options = parse_options(argv)
        patcher = mock.patch.dict(os.environ)  # no CI log folding
        patcher.start()
        self.addCleanup(patcher.stop)
        for name in ("GITHUB_ACTIONS", "TF_BUILD"):
            os.environ.pop(name, None)
        docker = Docker(options)
        queue = list(answers)
        self.runs: list[tuple[tuple[str, ...], dict[str, Any]]] = []

        def run(*args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
            self.runs.append((args, kwargs))
            answer = queue.pop(0)
            if isinstance(answer, BaseException):
                raise answer
            status, stdout, stderr = answer
            return subprocess.CompletedProcess(args, status, stdout, stderr)

        patcher = mock.patch.object(docker, "run", new=run)
        patcher.start()
        self.addCleanup(patcher.stop)
        self.addCleanup(lambda: self.assertEqual(queue, [], "answers left"))
        return docker

    def argvs(self) -> list[tuple[str, ...]]:
        return [args for args, _ in self.runs]


class EngineQuestionsTest(DockerUnitTestCase):
    def test_insecure_registries_from_docker_info(self) -> None:
        def index(host: str, secure: object) -> str:
            return json.dumps({"IndexConfigs": {host: {"Secure": secure}}})

        def cidrs(networks: object) -> str:
            return json.dumps({"InsecureRegistryCIDRs": networks})

        table = [
            # (what `docker info` printed, the host, whether it is insecure)
            ("", "r.example:5000", False),
            ("not json", "r.example:5000", False),
            ("[]", "r.example:5000", False),
            ("null", "r.example:5000", False),
            (index("r.example:5000", False), "r.example:5000", True),
            (index("r.example:5000", True), "r.example:5000", False),
            (index("r.example:5000", None), "r.example:5000", False),
            (index("other:5000", False), "r.example:5000", False),
            (json.dumps({"IndexConfigs": []}), "r.example:5000", False),
            (json.dumps({"IndexConfigs": {"r.example:5000": "x"}}), "r.example:5000", False),
            (cidrs(["10.0.0.0/8"]), "10.1.2.3:5000", True),
            (cidrs(["10.0.0.0/8"]), "10.1.2.3", True),
            (cidrs(["10.0.0.0/8"]), "11.1.2.3:5000", False),
            (cidrs(["10.1.2.3/8"]), "10.9.9.9:5000", True),  # host bits set: still a network
            (cidrs(["bogus", 7, "10.0.0.0/8"]), "10.1.2.3:5000", True),
            (cidrs(["fd00::/8"]), "[fd00::1]:5000", True),
            (cidrs("0"), "0.0.0.0:5000", False),  # not a list
            (cidrs(["0.0.0.0/0"]), "r.example:5000", False),  # not an address
            (cidrs(None), "10.1.2.3:5000", False),
            (
                json.dumps(
                    {
                        "IndexConfigs": {"10.1.2.3:5000": {"Secure": True}},
                        "InsecureRegistryCIDRs": ["10.0.0.0/8"],
                    }
                ),
                "10.1.2.3:5000",
                True,
            ),
        ]
        docker = self.docker(*[(0, stdout, "") for stdout, _, _ in table])
        found = [(stdout, host, docker.is_insecure_registry(host)) for stdout, host, _ in table]
        self.assertEqual(found, table)
        question = (
            ("info", "--format", "{{json .RegistryConfig}}"),
            {"capture": True, "quiet": False, "timeout": 7.0},
        )
        self.assertEqual(self.runs, [question] * len(table))

    def test_the_engine_platform_or_why_not(self) -> None:
        long_answer = "x" * 100
        table = [
            ((0, "linux/arm64\n", ""), "linux/arm64"),
            ((1, "", ""), "cannot ask the docker engine for its platform: it answered ''"),
            (
                (1, "", "Cannot connect to the Docker daemon\nIs it running?"),
                "cannot ask the docker engine for its platform: "
                "Cannot connect to the Docker daemon; Is it running?",
            ),
            (
                (0, long_answer, ""),
                f"cannot ask the docker engine for its platform: it answered {'x' * 80!r}",
            ),
        ]
        docker = self.docker(*[answer for answer, _ in table])
        for _, expected in table:
            try:
                found = str(docker.engine_platform())
            except DockerError as error:
                found = str(error)
            self.assertEqual(found, expected)
        self.assertEqual(
            self.runs,
            [
                (
                    ("version", "--format", "{{.Server.Os}}/{{.Server.Arch}}"),
                    {"capture": True, "quiet": False, "timeout": 7.0},
                )
            ]
            * len(table),
        )

    def test_whether_the_engine_has_an_image_discards_docker_output(self) -> None:
        docker = self.docker((0, "", ""), (1, "", ""))
        self.assertEqual(
            [docker.local_image_exists("a:1"), docker.local_image_exists("a:2")], [True, False]
        )
        self.assertEqual(
            self.runs,
            [
                (("image", "inspect", name), {"capture": False, "quiet": True, "timeout": 7.0})
                for name in ("a:1", "a:2")
            ],
        )


# A transient failure that names the image, which holds a word of another
# outcome ("denied"): redacted (as the image, or its repository for a
# registry step), it does not count.
IMG = "r.example/denied/app:1"
REDACT = (IMG, "r.example/denied/app")
TRANSIENT = (1, "", f"{SERVICE_UNAVAILABLE} for r.example/denied/app")
TRANSIENT_FOR_IMG = (1, "", f"{SERVICE_UNAVAILABLE} for {IMG}")
RETRY = "WARNING:get_docker_image:{} failed for a transient reason; retry {} of 2 in 0.0 s"


class RegistryStepsTest(DockerUnitTestCase):
    """Probes, pulls, pushes and base image lookups: the docker calls, the
    retries' warnings, and the outcome or the exact error."""

    def outcome(self, call: Callable[[], object]) -> tuple[object, list[str]]:
        """What `call` returned (or the StepFailed/DockerError it raised, as
        its text and outcome), and every log line (at least one is logged)."""
        with self.assertLogs("get_docker_image", "INFO") as logs:
            get_docker_image._log.info("start")
            try:
                result: object = call()
            except StepFailed as failure:
                result = (str(failure), failure.outcome)
            except DockerError as error:
                result = str(error)
        return result, logs.output[1:]

    def test_probes(self) -> None:
        table: list[tuple[tuple[int, str, str], tuple[Outcome, str]]] = [
            ((0, "{}", ""), (Outcome.FOUND, "")),
            ((1, NO_SUCH_MANIFEST, ""), (Outcome.NOT_FOUND, NO_SUCH_MANIFEST)),  # on stdout
            ((1, "", ""), (Outcome.UNKNOWN, "failed with exit status 1")),
            ((1, "", "unknown blob\n"), (Outcome.UNKNOWN, "unknown blob")),
            (
                (1, "", "denied: for r.example/denied/app"),
                (Outcome.UNAUTHORIZED, "denied: for r.example/denied/app"),
            ),
        ]
        for answer, expected in table:
            with self.subTest(answer=answer):
                docker = self.docker(answer)
                probe = functools.partial(docker.probe, IMG, REDACT)
                self.assertEqual(self.outcome(probe), (expected, []))

    def test_a_transient_probe_is_retried_and_a_recheck_is_not(self) -> None:
        timeout = subprocess.TimeoutExpired(["docker"], 7)
        docker = self.docker(TRANSIENT, timeout, timeout, TRANSIENT)
        found, logs = self.outcome(lambda: docker.probe(IMG, REDACT))
        self.assertEqual(found, (Outcome.TRANSIENT, "no answer within 7 s"))
        what = "docker manifest inspect"
        self.assertEqual(logs, [RETRY.format(what, 1), RETRY.format(what, 2)])
        self.assertEqual(self.outcome(lambda: docker.found_now(IMG, REDACT)), (False, []))
        inspect = ("manifest", "inspect", "--insecure", IMG)
        self.assertEqual(self.argvs(), [inspect] * 4)

    def test_a_pull_is_retried_then_fails(self) -> None:
        docker = self.docker(TRANSIENT, TRANSIENT, TRANSIENT)
        found, logs = self.outcome(lambda: docker.pull(IMG, REDACT))
        self.assertEqual(
            found,
            (
                f"docker pull failed with exit status 1: {TRANSIENT[2]} "
                f"(command: docker pull {IMG})",
                Outcome.TRANSIENT,
            ),
        )
        self.assertEqual(logs, [RETRY.format("docker pull", 1), RETRY.format("docker pull", 2)])
        self.assertEqual(self.argvs(), [("pull", IMG)] * 3)

    def test_a_step_that_fails_says_how_and_docker_last_line(self) -> None:
        docker = self.docker(
            (1, "", "step 1\r\n5%\r100%\rerror: boom\n\n"), (2, "", ""), (-9, "", "")
        )
        found = [self.outcome(lambda: docker.step("build", "x"))[0] for _ in range(2)]
        found.append(self.outcome(lambda: docker.step("tag", "a", "b"))[0])
        self.assertEqual(
            found,
            [
                (
                    "docker build failed with exit status 1: error: boom (command: docker build x)",
                    Outcome.UNKNOWN,
                ),
                ("docker build failed with exit status 2: docker build x", Outcome.UNKNOWN),
                ("docker tag was killed by signal 9: docker tag a b", Outcome.UNKNOWN),
            ],
        )

    def test_base_image_lookups(self) -> None:
        what = "docker manifest inspect"
        inspect = ("manifest", "inspect", "--insecure", "--verbose", IMG)
        table: list[tuple[list[tuple[int, str, str]], object, list[str]]] = [
            ([TRANSIENT_FOR_IMG, (0, "[]", "")], "[]", [RETRY.format(what, 1)]),
            (
                [TRANSIENT_FOR_IMG] * 3,
                f"cannot resolve base image {IMG!r}: {TRANSIENT_FOR_IMG[2]} (tried 3 times)",
                [RETRY.format(what, 1), RETRY.format(what, 2)],
            ),
            ([(1, "", "")], f"cannot resolve base image {IMG!r}: failed with exit status 1", []),
        ]
        for answers, expected, warnings in table:
            with self.subTest(expected=expected):
                docker = self.docker(*answers)
                inspect_manifest = functools.partial(docker.inspect_manifest, IMG)
                self.assertEqual(self.outcome(inspect_manifest), (expected, warnings))
                self.assertEqual(self.argvs(), [inspect] * len(answers))

    def test_the_layer_cache_tag_is_moved_or_a_warning(self) -> None:
        cache = "r.example/denied/app:cache"
        docker = self.docker((0, "", ""), (1, "", SERVICE_UNAVAILABLE), (1, "", DENIED))
        found, logs = self.outcome(lambda: push_layer_cache(docker, IMG, cache))
        self.assertEqual(found, None)
        self.assertEqual(
            logs,
            [
                RETRY.format("docker push", 1),
                "WARNING:get_docker_image:Could not move the layer cache tag: docker push failed "
                f"with exit status 1: {DENIED} (command: docker push {cache})",
            ],
        )
        self.assertEqual(self.argvs(), [("tag", IMG, cache), ("push", cache), ("push", cache)])

    def test_the_layer_cache_repository_name_is_no_refusal(self) -> None:
        # docker names the repository alone ("The push refers to repository
        # [...]"): its words are no answer of the registry's.
        cache = "r.example/team/access-denied:cache"
        failure = (1, "", f"The push refers to repository [{cache[:-6]}]\n{SERVICE_UNAVAILABLE}")
        docker = self.docker(failure, (0, "", ""), (0, "", ""), failure, (0, "", ""))
        found, logs = self.outcome(lambda: pull_layer_cache(docker, cache))
        self.assertEqual((found, logs), (None, [RETRY.format("docker pull", 1)]))
        found, logs = self.outcome(lambda: push_layer_cache(docker, IMG, cache))
        self.assertEqual((found, logs), (None, [RETRY.format("docker push", 1)]))
        self.assertEqual(
            self.argvs(),
            [
                ("pull", cache),
                ("pull", cache),
                ("tag", IMG, cache),
                ("push", cache),
                ("push", cache),
            ],
        )

    def test_a_push_of_lost_blobs_is_retried_then_fails(self) -> None:
        lost = (1, "", "blob unknown: blob unknown to registry")
        docker = self.docker(lost, lost, lost)
        found, logs = self.outcome(lambda: push_unless_pushed(docker, IMG, REDACT, recheck=False))
        self.assertEqual(
            found,
            (
                f"docker push failed with exit status 1: {lost[2]} (command: docker push {IMG})",
                Outcome.TRANSIENT,
            ),
        )
        self.assertEqual(logs, [RETRY.format("docker push", 1), RETRY.format("docker push", 2)])

    def test_a_failed_push_of_a_tag_pushed_meanwhile_pulls_theirs(self) -> None:
        docker = self.docker((1, "", DENIED), (0, "{}", ""), TRANSIENT, (0, "", ""))
        found, logs = self.outcome(lambda: push_unless_pushed(docker, IMG, REDACT, recheck=True))
        self.assertEqual(found, True)
        self.assertEqual(
            logs,
            [
                "INFO:get_docker_image:The push failed, but another job has pushed the image: "
                "pulling it.",
                RETRY.format("docker pull", 1),
            ],
        )
        inspect = ("manifest", "inspect", "--insecure", IMG)
        self.assertEqual(self.argvs(), [("push", IMG), inspect, ("pull", IMG), ("pull", IMG)])
