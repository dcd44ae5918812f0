"""Hostile input, as an adversary tried it: each case a one-line answer,
bounded in time (what would hang fails within seconds instead)."""

from __future__ import annotations

import contextlib
import errno
import io
import os
import subprocess
import sys
import time
from unittest import mock

import get_docker_image
from get_docker_image import MAX_RETRY_WAIT_SECONDS, InputError, Retries, read_regular_file
from tests.fixtures import FAKE_DOCKER, Dir, File, build_tree
from tests.helpers import SCRIPT, Result, ScratchDirTestCase
from tests.test_resilience import ResilienceTestCase

# A classic builder's last line quotes the failing RUN command: its words
# must not read as a registry's transient failure.
FAILED_BUILD = (
    "The command '/bin/sh -c echo building; timeout 5 false' returned a non-zero code: 124: "
    "connection reset, timed out, unexpected EOF"
)


def usage_error(result: Result) -> str:
    """The argparse error line of a usage error (exit 2), else a failure."""
    lines = result.stderr.splitlines()
    if result.status != 2 or not lines or not lines[0].startswith("usage: "):
        raise AssertionError(f"not a usage error: {result}")
    return lines[-1].removeprefix("get_docker_image.py: error: ")


class OptionValuesTest(ResilienceTestCase):
    def test_values_out_of_range_are_usage_errors(self) -> None:
        table = [
            (("--retry-delay", "inf"), "argument --retry-delay: must be from 0 to 600: 'inf'"),
            (("--retry-delay", "nan"), "argument --retry-delay: must be from 0 to 600: 'nan'"),
            (("--retry-delay", "1e308"), "argument --retry-delay: must be from 0 to 600: '1e308'"),
            (("--retry-delay", "-1"), "argument --retry-delay: must be from 0 to 600: '-1'"),
            (
                ("--probe-timeout", "inf"),
                "argument --probe-timeout: must be above 0 to 604800: 'inf'",
            ),
            (
                ("--probe-timeout", "nan"),
                "argument --probe-timeout: must be above 0 to 604800: 'nan'",
            ),
            (("--probe-timeout", "0"), "argument --probe-timeout: must be above 0 to 604800: '0'"),
            (
                ("--transfer-timeout", "-5"),
                "argument --transfer-timeout: must be above 0 to 604800: '-5'",
            ),
            (("--retries", "101"), "argument --retries: must be from 0 to 100: '101'"),
            (("--retries", "1100"), "argument --retries: must be from 0 to 100: '1100'"),
            (("--retries", "1.5"), "argument --retries: invalid int value: '1.5'"),
        ]
        for options, message in table:
            with self.subTest(options):
                self.assertEqual(usage_error(self.run_tool(*options)), message)
        self.assertEqual(self.docker_calls(), [])

    def test_no_wait_between_retries_overflows_or_exceeds_its_bound(self) -> None:
        retries = Retries(100, 600)
        for number in (0, 1, 10, 99, 1100, 10**6):
            with self.subTest(number=number):
                self.assertLessEqual(retries.wait(number), MAX_RETRY_WAIT_SECONDS * 1.5)
        waits = [Retries(3, 2).wait(number) for number in range(4)]
        for number, wait in enumerate(waits):
            self.assertTrue(2 * 2**number * 0.5 <= wait <= 2 * 2**number * 1.5, waits)

    def test_waits_double_from_the_delay_with_jitter_of_half_either_way(self) -> None:
        for jitter in (0.5, 1.5):
            with (
                self.subTest(jitter=jitter),
                mock.patch("random.uniform", return_value=jitter) as uniform,
            ):
                waits = [Retries(10, 2).wait(number) for number in (0, 1, 2, 8, 9)]
                self.assertEqual(
                    waits, [2 * jitter, 4 * jitter, 8 * jitter, 512 * jitter, 600 * jitter]
                )
                uniform.assert_called_with(0.5, 1.5)

    def test_the_doubling_stops_at_the_64th_retry(self) -> None:
        """A delay so small that 2**64 of it is still short: the waits stop
        growing there (the exponent's bound, against overflow)."""
        with mock.patch("random.uniform", return_value=1.0):
            waits = [Retries(100, 1e-20).wait(number) for number in (63, 64, 65, 99)]
        self.assertEqual(waits, [1e-20 * 2.0**63] + [1e-20 * 2.0**64] * 3)


class NamesTest(ResilienceTestCase):
    def test_names_are_checked_with_ascii_rules(self) -> None:
        registry = "localhost:\u0665\u0665"
        self.assertEqual(
            usage_error(self.run_tool(registry=registry)),
            f"--container-registry {registry!r}: '\u0665\u0665' is not a valid port (1 to 65535)",
        )
        table = [
            (
                ("--layer-cache", "caf\u00e9"),
                "--layer-cache 'caf\u00e9' is not a valid tag (ASCII letters, digits, '_', '.' "
                "and '-', not first, 128 at most)",
            ),
            (
                ("--layer-cache", "x" * 129),
                f"--layer-cache '{'x' * 129}' is not a valid tag (ASCII letters, digits, '_', "
                "'.' and '-', not first, 128 at most)",
            ),
            (
                ("--layer-cache", "image_content_digest_0"),
                "--layer-cache 'image_content_digest_0': tags starting with "
                "'image_content_digest_' name content digests; the layer cache tag must not "
                "overwrite one",
            ),
            (
                ("--repository", "caf\u00e9"),
                "--repository 'caf\u00e9': 'caf\u00e9' is not a valid name component "
                "(lowercase letters and digits, separated by '.', '_', '__' or dashes)",
            ),
        ]
        for options, message in table:
            with self.subTest(options):
                self.assertEqual(usage_error(self.run_tool(*options)), message)
        self.assertEqual(self.docker_calls(), [])

    def test_stdin_is_no_dockerfile_or_context(self) -> None:
        for option in ("--dockerfile", "--context"):
            with self.subTest(option):
                result = self.run_tool(option, "-")
                self.assertEqual(
                    usage_error(result), f"{option} -: stdin is not supported; give a path"
                )
        self.assertEqual(self.docker_calls(), [])


class RetriesTest(ResilienceTestCase):
    def test_a_failed_build_is_run_once_whatever_its_output_says(self) -> None:
        for registry in ("myreg", None):
            with self.subTest(registry=registry):
                self.forget_docker_calls()
                self.script(build=[{"status": 1, "stderr": FAILED_BUILD + "\n"}] * 4)
                result = self.run_tool(registry=registry)
                self.assertEqual(result.status, 1)
                builds = [argv for argv in self.docker_argvs() if argv[0] == "build"]
                self.assertEqual(len(builds), 1)
                self.assertNotIn("retry", result.stderr)
                self.assertIn(
                    f"docker build failed with exit status 1: {FAILED_BUILD} (command: ",
                    result.log_messages()[-1],
                )
                os.remove(os.path.join(self.root, "script.json.build.count"))


class TransferTimeoutTest(ResilienceTestCase):
    def test_a_silent_layer_cache_pull_is_stopped_and_the_build_goes_on(self) -> None:
        self.script(pull=[{"sleep": 30}])
        start = time.monotonic()
        result = self.run_tool("--layer-cache", "--transfer-timeout", "0.3", "--retries", "0")
        self.assertLess(time.monotonic() - start, 10)
        self.assertEqual(result.status, 0, result.stderr)
        self.assertIn(
            "get_docker_image [WARNING] - Could not pull the layer cache, building without it: "
            "docker pull printed nothing for 0.3 s (--transfer-timeout): stopped",
            result.log_messages(),
        )

    def test_a_silent_pull_is_retried_then_a_one_line_error(self) -> None:
        self.set_env(FAKE_DOCKER_HAS_IMAGE="1")
        self.script(pull=[{"sleep": 30}, {"sleep": 30}])
        start = time.monotonic()
        result = self.run_tool("--transfer-timeout", "0.3", "--retries", "1")
        self.assertLess(time.monotonic() - start, 10)
        self.assertEqual(result.status, 1)
        self.assertEqual(self.docker_argvs(), [self.probe, self.pull, self.pull])
        self.assertEqual(
            result.log_messages()[-1],
            "get_docker_image [ERROR] - docker pull printed nothing for 0.3 s "
            "(--transfer-timeout): stopped",
        )


class BoundedReadsTest(ResilienceTestCase):
    def docker_mode(self, *options: str) -> Result:
        return self.run_tool("--hash-mode", "docker", "--print-image-name", *options)

    def test_a_dockerignore_that_is_no_regular_file(self) -> None:
        for name, make in (
            ("a link to /dev/zero", lambda path: os.symlink("/dev/zero", path)),
            ("a FIFO", os.mkfifo),
            ("a directory", os.mkdir),
        ):
            with self.subTest(name):
                make("ctx/.dockerignore")
                start = time.monotonic()
                result = self.docker_mode()
                self.assertLess(time.monotonic() - start, 5)
                self.assertEqual(
                    (result.status, result.log_messages()),
                    (
                        1,
                        [
                            "get_docker_image [ERROR] - .dockerignore is not a regular file: "
                            "b'ctx/.dockerignore'".replace("b'", "'")
                        ],
                    ),
                )
                if os.path.isdir("ctx/.dockerignore") and not os.path.islink("ctx/.dockerignore"):
                    os.rmdir("ctx/.dockerignore")
                else:
                    os.remove("ctx/.dockerignore")

    def test_dockerignore_patterns_docker_accepts_or_rejects(self) -> None:
        with open("ctx/.dockerignore", "w", encoding="utf-8") as file:
            file.write("[z-a]\n")
        result = self.docker_mode()
        self.assertEqual(
            result.log_messages(),
            [
                "get_docker_image [ERROR] - 'ctx/.dockerignore': syntax error in pattern: "
                "'[z-a]' (invalid character class range)"
            ],
        )
        with open("ctx/.dockerignore", "w", encoding="utf-8") as file:
            file.write("[\\pL]b\n")
        with open("ctx/xb", "w", encoding="utf-8") as file:
            file.write("excluded")
        result = self.run_tool("--hash-mode", "docker", "--explain")
        self.assertEqual(result.status, 0, result.stderr)
        paths = [line.rsplit("  ", 1)[-1] for line in result.stdout.splitlines()]
        self.assertIn("app.py", paths)
        self.assertNotIn("xb", paths)

    def test_a_dockerignore_larger_than_the_limit(self) -> None:
        with open("ctx/.dockerignore", "wb") as file:
            file.truncate(10_000_001)
        result = self.docker_mode()
        self.assertEqual(
            result.log_messages(),
            [
                "get_docker_image [ERROR] - .dockerignore 'ctx/.dockerignore' is larger than "
                "10.0 MB, the most this tool reads"
            ],
        )

    def test_a_dockerfile_that_is_no_regular_file(self) -> None:
        os.remove("Dockerfile")
        os.mkfifo("Dockerfile")
        start = time.monotonic()
        for options in ((), ("--hash-base-images",), ("--hash-mode", "docker")):
            with self.subTest(options):
                result = self.run_tool("--print-image-name", *options)
                self.assertEqual(
                    result.log_messages(),
                    ["get_docker_image [ERROR] - Dockerfile is not a regular file: 'Dockerfile'"],
                )
        self.assertLess(time.monotonic() - start, 5)
        os.remove("Dockerfile")
        os.symlink("/dev/zero", "Dockerfile")
        result = self.run_tool("--print-image-name", "--hash-base-images")
        self.assertEqual(
            result.log_messages(),
            ["get_docker_image [ERROR] - Dockerfile is not a regular file: 'Dockerfile'"],
        )


class StdoutTest(ResilienceTestCase):
    def test_help_and_version_to_a_full_stdout_fail(self) -> None:
        for option in ("--version", "--help"):
            with self.subTest(option), open("/dev/full", "w", encoding="utf-8") as full:
                completed = subprocess.run(
                    [sys.executable, SCRIPT, option],
                    stdout=full,
                    stderr=subprocess.PIPE,
                    text=True,
                    check=False,
                    timeout=30,
                )
                self.assertEqual(completed.returncode, 1)
                lines = completed.stderr.splitlines()
                self.assertEqual(len(lines), 1, completed.stderr)
                self.assertTrue(
                    lines[0].endswith(
                        "get_docker_image [ERROR] - cannot write to stdout: No space left on device"
                    ),
                    lines,
                )

    def test_help_and_version_still_exit_0(self) -> None:
        for option in ("--version", "--help"):
            with self.subTest(option):
                completed = subprocess.run(
                    [sys.executable, SCRIPT, option, "--docker-path", FAKE_DOCKER],
                    capture_output=True,
                    text=True,
                    check=False,
                    timeout=30,
                )
                self.assertEqual((completed.returncode, completed.stderr), (0, ""))
                self.assertTrue(completed.stdout)


class ReadRegularFileTest(ScratchDirTestCase):
    """read_regular_file, directly: what it returns or the one line it refuses with."""

    def read(self, path: str, limit: int = 4, *, optional: bool = False) -> bytes | str:
        try:
            return read_regular_file(path, limit, "the thing", optional=optional)
        except InputError as error:
            return str(error)

    def test_contents_bounds_and_refusals(self) -> None:
        build_tree(
            self.root,
            [
                File("four", b"abcd"),
                File("five", b"abcde"),
                File("empty", b""),
                Dir("dir"),
            ],
        )
        table: list[tuple[str, int, bool, bytes | str]] = [
            # (path, limit, optional, what it reads)
            ("four", 4, False, b"abcd"),
            ("empty", 4, False, b""),
            ("five", 4, False, "the thing 'five' is larger than 4 bytes, the most this tool reads"),
            ("five", 5, False, b"abcde"),
            ("missing", 4, False, "the thing not found: 'missing'"),
            ("missing", 4, True, b""),
            ("four/x", 4, False, "cannot read the thing 'four/x': Not a directory"),
            ("dir", 4, False, "the thing is not a regular file: 'dir'"),
        ]
        for chunk_size in (1024, 2):  # one read, or several
            with mock.patch("get_docker_image.READ_CHUNK_SIZE", chunk_size):
                found = [
                    (path, limit, optional, self.read(path, limit, optional=optional))
                    for path, limit, optional, _ in table
                ]
            self.assertEqual(found, table, chunk_size)

    def test_an_undecodable_path_is_shown_escaped(self) -> None:
        self.assertEqual(read_regular_file(b"caf\xe9", 4, "the thing", optional=True), b"")
        with self.assertRaises(InputError) as raised:
            read_regular_file(b"caf\xe9", 4, "the thing")
        self.assertEqual(str(raised.exception), "the thing not found: 'caf\\\\xe9'")

    def test_a_read_error_is_one_line(self) -> None:
        build_tree(self.root, [File("four", b"abcd")])
        error = OSError(errno.EIO, "Input/output error")
        with mock.patch("get_docker_image.os.read", side_effect=error):
            self.assertEqual(self.read("four"), "cannot read the thing 'four': Input/output error")


class _Stdout:
    """A stdout whose write or flush fails as a full disk does, on a file
    descriptor of its own (which the tool points at /dev/null after)."""

    def __init__(self, fd: int, *, fail_write: bool = False, fail_flush: bool = False) -> None:
        self.fd, self.fail_write, self.fail_flush = fd, fail_write, fail_flush
        self.text = ""

    def write(self, text: str) -> int:
        if self.fail_write:
            raise OSError(errno.ENOSPC, "No space left on device")
        self.text += text
        return len(text)

    def flush(self) -> None:
        if self.fail_flush:
            raise OSError(errno.ENOSPC, "No space left on device")

    def fileno(self) -> int:
        return self.fd


class _WriteOnlyStdout:
    """A stdout with nothing but write (no flush)."""

    def __init__(self) -> None:
        self.text = ""

    def write(self, text: str) -> int:
        self.text += text
        return len(text)


class StdoutInProcessTest(ScratchDirTestCase):
    """What the tool prints, to a stdout that is closed, full, or minimal:
    the exit status, the log, and where stdout's descriptor points after."""

    def run_with_stdout(self, stdout: object, *argv: str) -> tuple[int, list[str]]:
        stderr = io.StringIO()
        with mock.patch.object(sys, "stdout", stdout), contextlib.redirect_stderr(stderr):
            try:
                status = get_docker_image.main(list(argv))
            except SystemExit as exit_:
                status = exit_.code if isinstance(exit_.code, int) else 1
        return status, Result(status, "", stderr.getvalue()).log_messages()

    def scratch_fd(self) -> int:
        """A descriptor of a fresh file: where "stdout" writes."""
        fd = os.open(os.path.join(self.root, "stdout"), os.O_WRONLY | os.O_CREAT, 0o600)
        self.addCleanup(os.close, fd)
        return fd

    def test_a_closed_full_or_flushless_stdout(self) -> None:
        build_tree(self.root, [File("Dockerfile", b"FROM scratch\n")])
        closed = ["get_docker_image [ERROR] - cannot write to stdout: it is closed"]
        full = ["get_docker_image [ERROR] - cannot write to stdout: No space left on device"]
        name = ("--repository", "a", "--print-image-name")
        for argv in (("--version",), ("--help",), name):
            with self.subTest(argv=argv):
                self.assertEqual(self.run_with_stdout(None, *argv), (1, closed))
                for failing in ("write", "flush"):
                    fd = self.scratch_fd()
                    stdout = _Stdout(
                        fd, fail_write=failing == "write", fail_flush=failing == "flush"
                    )
                    self.assertEqual(self.run_with_stdout(stdout, *argv), (1, full), failing)
                    # The interpreter's own flush at exit finds /dev/null.
                    self.assertTrue(os.path.samestat(os.fstat(fd), os.stat(os.devnull)))
                if argv != name:  # argparse's streams need no flush; the tool's do
                    minimal = _WriteOnlyStdout()
                    self.assertEqual(self.run_with_stdout(minimal, *argv), (0, []))
                    self.assertTrue(minimal.text.endswith("\n"), minimal.text)
