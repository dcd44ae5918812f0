"""util.run and logger.get_logger on their own."""

from __future__ import annotations

import contextlib
import io
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest
from collections.abc import Iterator
from types import FrameType
from typing import IO
from unittest import mock

from tests.helpers import REPO_DIR, TIMESTAMP_PATTERN, redirect_fds
from util import STDERR_TAIL_BYTES, SilenceTimeout, format_command, run

PRINT_BOTH = "import sys; print('to stdout'); print('to stderr', file=sys.stderr)"


def is_running(pid: int) -> bool:
    """Whether `pid` is a live process (a zombie awaiting its reaper is not)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as file:
            state = file.read().rpartition(")")[2].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


@contextlib.contextmanager
def child_output_to(sink: IO[bytes]) -> Iterator[None]:
    """Children's fds 1 and 2 to `sink`; log records (to sys.stderr) kept apart."""
    with redirect_fds(sink.fileno()), contextlib.redirect_stderr(io.StringIO()):
        yield


def stops_soon(pid: int) -> bool:
    """Whether `pid` is gone within a second (a SIGKILL takes effect
    asynchronously: the process runs on for a moment)."""
    deadline = time.monotonic() + 1
    while is_running(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


class RunTest(unittest.TestCase):
    def test_logs_directory_and_a_pasteable_command_then_the_exit_status(self) -> None:
        with tempfile.TemporaryDirectory() as cwd, self.assertLogs("util.run", "DEBUG") as logs:
            run(sys.executable, "-c", "pass", cwd=cwd)
        self.assertEqual(
            logs.output,
            [
                f"INFO:util.run:Running subprocess in '{cwd}'\n{sys.executable} -c pass",
                "DEBUG:util.run:Subprocess completed. Return code: 0",
            ],
        )

    def test_logs_the_current_directory_by_default(self) -> None:
        with self.assertLogs("util.run", "INFO") as logs:
            run(sys.executable, "-c", "pass")
        self.assertIn(f"Running subprocess in '{os.getcwd()}'", logs.output[0])

    def test_format_command_quotes_and_shows_changed_environment(self) -> None:
        with mock.patch.dict(os.environ, {"KEPT": "same"}, clear=False):
            env = dict(os.environ, ADDED="two words")
            self.assertEqual(
                format_command(["docker", "build", "--label", "a b", "it's"], env),
                "ADDED='two words' docker build --label 'a b' 'it'\"'\"'s'",
            )
        self.assertEqual(format_command(["ls", "-l"]), "ls -l")

    def test_capture_returns_text_output(self) -> None:
        completed = run(sys.executable, "-c", PRINT_BOTH, capture=True)
        self.assertEqual((completed.stdout, completed.stderr), ("to stdout\n", "to stderr\n"))

    def test_quiet_discards_output_and_default_passes_it_through(self) -> None:
        for quiet, expected in ((True, b""), (False, b"to stdout\nto stderr\n")):
            with self.subTest(quiet=quiet), tempfile.TemporaryFile() as sink:
                with child_output_to(sink):
                    completed = run(sys.executable, "-c", PRINT_BOTH, quiet=quiet)
                sink.seek(0)
                self.assertEqual(sink.read(), expected)
                self.assertIsNone(completed.stdout)

    def test_check_raises_on_failure_and_can_be_turned_off(self) -> None:
        fail = (sys.executable, "-c", "raise SystemExit(7)")
        with self.assertRaises(subprocess.CalledProcessError) as raised:
            run(*fail)
        self.assertEqual(raised.exception.returncode, 7)
        self.assertEqual(raised.exception.cmd, list(fail))
        self.assertEqual(run(*fail, check=False).returncode, 7)

    def test_env_replaces_the_environment(self) -> None:
        completed = run(
            sys.executable,
            "-c",
            "import os; print(os.environ.get('GDI_X'), os.environ.get('GDI_UNSET'))",
            env={**os.environ, "GDI_X": "1"},
            capture=True,
        )
        self.assertEqual(completed.stdout, "1 None\n")

    def test_interrupted_run_kills_a_child_that_will_not_stop(self) -> None:
        with tempfile.TemporaryDirectory() as scratch:
            pid_file = os.path.join(scratch, "pid")
            stubborn = (
                "import os, signal, time\n"
                "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
                "signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
                f"open({pid_file!r}, 'w').write(str(os.getpid()))\n"
                "time.sleep(60)\n"
            )

            def interrupt(signum: int, frame: FrameType | None) -> None:
                raise KeyboardInterrupt

            def interrupt_once_it_ignores_signals() -> None:
                deadline = time.monotonic() + 30
                while not os.path.exists(pid_file) and time.monotonic() < deadline:
                    time.sleep(0.01)
                os.kill(os.getpid(), signal.SIGALRM)  # handled in the main thread

            previous = signal.signal(signal.SIGALRM, interrupt)
            self.addCleanup(signal.signal, signal.SIGALRM, previous)
            threading.Thread(target=interrupt_once_it_ignores_signals, daemon=True).start()
            with mock.patch("util.STOP_GRACE_SECONDS", 0.2), self.assertRaises(KeyboardInterrupt):
                run(sys.executable, "-c", stubborn)
            with open(pid_file, encoding="utf-8") as file:
                pid = int(file.read())
            with self.assertRaises(ProcessLookupError):  # killed and reaped
                os.kill(pid, 0)

    def test_a_background_job_left_by_a_wrapper_costs_no_time(self) -> None:
        with tempfile.TemporaryDirectory() as scratch:
            wrapper = os.path.join(scratch, "wrapper")
            with open(wrapper, "w", encoding="utf-8") as file:
                file.write('#!/bin/sh\nsleep 30 &\necho "$!" >"$0.pid"\nexec "$@"\n')
            os.chmod(wrapper, 0o755)
            for capture, quiet in ((True, False), (False, False), (False, True)):
                with self.subTest(capture=capture, quiet=quiet), tempfile.TemporaryFile() as sink:
                    start = time.monotonic()
                    with child_output_to(sink):
                        completed = run(wrapper, "echo", "done", capture=capture, quiet=quiet)
                    self.assertLess(time.monotonic() - start, 2)
                    self.assertEqual(completed.returncode, 0)
                    with open(wrapper + ".pid", encoding="utf-8") as file:
                        self.assertTrue(stops_soon(int(file.read())))

    def test_silence_timeout_stops_a_child_that_says_nothing(self) -> None:
        start = time.monotonic()
        with tempfile.TemporaryFile() as sink, child_output_to(sink):
            with self.assertRaises(SilenceTimeout) as raised:
                run("sh", "-c", "echo started; exec sleep 30", silence_timeout=0.3)
            sink.seek(0)
            self.assertEqual(sink.read(), b"started\n")
        self.assertLess(time.monotonic() - start, 5)
        self.assertEqual(str(raised.exception).split("]' ")[-1], "wrote nothing for 0.3 seconds")

    def test_output_keeps_a_child_with_a_silence_timeout_alive(self) -> None:
        talker = "for i in 1 2 3 4 5 6; do echo $i; sleep 0.1; done"
        with tempfile.TemporaryFile() as sink, child_output_to(sink):
            completed = run("sh", "-c", talker, silence_timeout=0.4, stdout_to_stderr=True)
            sink.seek(0)
            self.assertEqual(sink.read(), b"1\n2\n3\n4\n5\n6\n")
        self.assertEqual(completed.returncode, 0)

    def test_timeout_bounds_the_whole_run(self) -> None:
        start = time.monotonic()
        with self.assertRaises(subprocess.TimeoutExpired):
            run("sh", "-c", "while :; do echo x; sleep 0.05; done", quiet=True, timeout=0.3)
        self.assertLess(time.monotonic() - start, 5)

    def test_input_reaches_stdin(self) -> None:
        completed = run("cat", capture=True, input="https://index.docker.io/v1/")
        self.assertEqual(completed.stdout, "https://index.docker.io/v1/")
        with self.assertRaises(ValueError):
            run("cat", input="x")

    def test_stderr_tail_is_kept_when_streaming(self) -> None:
        code = "import sys; sys.stderr.write('x' * 20000 + 'END')"
        with tempfile.TemporaryFile() as sink, child_output_to(sink):
            completed = run(sys.executable, "-c", code)
        assert completed.stderr is not None
        self.assertEqual(len(completed.stderr), STDERR_TAIL_BYTES)
        self.assertTrue(completed.stderr.endswith("xEND"))

    def test_never_uses_a_shell(self) -> None:
        completed = run("echo", "$HOME; echo injected", capture=True)
        self.assertEqual(completed.stdout, "$HOME; echo injected\n")


class LoggerTest(unittest.TestCase):
    def run_python(self, code: str) -> str:
        completed = subprocess.run(
            [sys.executable, "-c", code],
            cwd=REPO_DIR,
            capture_output=True,
            text=True,
            check=True,
        )
        self.assertEqual(completed.stdout, "")
        return completed.stderr

    def test_format_and_debug_level(self) -> None:
        stderr = self.run_python(
            "from logger import get_logger\n"
            "log = get_logger('demo')\n"
            "log.debug('details')\n"
            "get_logger('other').info('hello')\n"
        )
        timestamp = TIMESTAMP_PATTERN
        self.assertRegex(
            stderr,
            re.compile(
                rf"\A{timestamp} demo \[DEBUG\] - details\n{timestamp} other \[INFO\] - hello\n\Z"
            ),
        )

    def test_configures_once_and_follows_a_replaced_stderr(self) -> None:
        stderr = self.run_python(
            "import io, logging, sys\n"
            "from logger import get_logger\n"
            "get_logger('a'); get_logger('b')\n"
            "assert len(logging.getLogger().handlers) == 1\n"
            "buffer = io.StringIO(); real = sys.stderr; sys.stderr = buffer\n"
            "get_logger('a').warning('captured')\n"
            "sys.stderr = real\n"
            "assert buffer.getvalue().endswith(' a [WARNING] - captured\\n'), buffer.getvalue()\n"
        )
        self.assertEqual(stderr, "")
