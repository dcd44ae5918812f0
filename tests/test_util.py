"""util.run and logger.get_logger on their own."""

from __future__ import annotations

import contextlib
import io
import os
import re
import selectors
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest
from collections.abc import Callable, Iterator
from types import FrameType
from typing import IO
from unittest import mock

import util
from tests.helpers import REPO_DIR, TIMESTAMP_PATTERN, keep_logs_off_console, redirect_fds
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


def wait_for_file(path: str) -> None:
    deadline = time.monotonic() + 30
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.01)


@contextlib.contextmanager
def interrupt_once_exists(
    path: str, then: Callable[[], None] | None = None
) -> Iterator[list[float]]:
    """A KeyboardInterrupt in the main thread (as Ctrl-C raises it) once `path`
    exists (and `then` has returned); yields a list that then holds the time
    it was raised."""
    raised_at: list[float] = []

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raised_at.append(time.monotonic())
        raise KeyboardInterrupt

    def interrupt_once_it_exists() -> None:
        wait_for_file(path)
        if then is not None:
            then()
        os.kill(os.getpid(), signal.SIGALRM)  # handled in the main thread

    previous = signal.signal(signal.SIGALRM, interrupt)
    try:
        threading.Thread(target=interrupt_once_it_exists, daemon=True).start()
        yield raised_at
    finally:
        signal.signal(signal.SIGALRM, previous)


@contextlib.contextmanager
def recorded_reads() -> Iterator[list[float | None]]:
    """The wait of each call of util._Output._read, the loop's wake-ups."""
    waits: list[float | None] = []
    read = util._Output._read

    def recording_read(output: util._Output, wait: float | None) -> bool:
        waits.append(wait)
        return read(output, wait)

    with mock.patch.object(util._Output, "_read", recording_read):
        yield waits


class QuietRunTestCase(unittest.TestCase):
    """util.run's log kept off the console: a test that reads it uses assertLogs."""

    def setUp(self) -> None:
        keep_logs_off_console(self, "util.run")


class RunTest(QuietRunTestCase):
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

    def test_runs_in_the_given_directory(self) -> None:
        with tempfile.TemporaryDirectory() as cwd:
            code = "import os; print(os.getcwd())"
            completed = run(sys.executable, "-c", code, cwd=cwd, capture=True)
            self.assertEqual(completed.stdout, os.path.realpath(cwd) + "\n")

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
        for quiet, expected, stderr in (
            (True, b"", None),
            (False, b"to stdout\nto stderr\n", "to stderr\n"),
        ):
            with self.subTest(quiet=quiet), tempfile.TemporaryFile() as sink:
                with child_output_to(sink):
                    completed = run(sys.executable, "-c", PRINT_BOTH, quiet=quiet)
                sink.seek(0)
                self.assertEqual(sink.read(), expected)
                self.assertIsNone(completed.stdout)
                self.assertEqual(completed.stderr, stderr)

    def test_the_child_writes_to_our_stdout_or_to_our_stderr(self) -> None:
        """Streamed, the child's stdout is our fd 1 itself (a terminal stays
        one for docker's progress), or our fd 2; piped only to watch silence."""
        code = (
            "import os, stat, sys; status = os.fstat(1)\n"
            "kind = 'pipe' if stat.S_ISFIFO(status.st_mode) else status.st_ino\n"
            "print(kind); print('to stderr', file=sys.stderr)\n"
        )
        for options, to_stdout, to_stderr in (
            ({}, "{out}\n", "to stderr\n"),
            ({"stdout_to_stderr": True}, "", "{err}\nto stderr\n"),
            ({"silence_timeout": 30.0}, "pipe\n", "to stderr\n"),
        ):
            with (
                self.subTest(**options),
                tempfile.TemporaryFile() as out,
                tempfile.TemporaryFile() as err,
            ):
                with redirect_fds(out.fileno(), err.fileno()):
                    run(sys.executable, "-c", code, **options)
                inodes = {
                    "out": os.fstat(out.fileno()).st_ino,
                    "err": os.fstat(err.fileno()).st_ino,
                }
                out.seek(0)
                err.seek(0)
                self.assertEqual(out.read().decode(), to_stdout.format(**inodes))
                self.assertEqual(err.read().decode(), to_stderr.format(**inodes))

    def test_capture_keeps_all_of_the_output_and_copies_none(self) -> None:
        code = "import sys; sys.stdout.write('o' * 20000); sys.stderr.write('e' * 20000)"
        with tempfile.TemporaryFile() as sink:
            with child_output_to(sink):
                completed = run(sys.executable, "-c", code, capture=True)
            sink.seek(0)
            self.assertEqual(sink.read(), b"")
        self.assertEqual((completed.stdout, completed.stderr), ("o" * 20000, "e" * 20000))

    def test_output_that_is_not_utf8_is_replaced(self) -> None:
        code = "import os; os.write(1, b'a\\xffb'); os.write(2, b'\\xfe')"
        completed = run(sys.executable, "-c", code, capture=True)
        self.assertEqual((completed.stdout, completed.stderr), ("a\ufffdb", "\ufffd"))

    def test_the_child_leads_a_process_group_of_its_own_on_every_python(self) -> None:
        code = "import os; print(os.getpgid(0) == os.getpid())"
        for version in (sys.version_info, (3, 10, 13)):
            with self.subTest(version=version), mock.patch.object(sys, "version_info", version):
                self.assertEqual(run(sys.executable, "-c", code, capture=True).stdout, "True\n")

    def test_no_file_descriptor_is_left_open(self) -> None:
        before = sorted(os.listdir("/proc/self/fd"))
        for options in ({"capture": True}, {"quiet": True}, {"silence_timeout": 30.0}):
            with tempfile.TemporaryFile() as sink, child_output_to(sink):
                run("true", **options)
        self.assertEqual(sorted(os.listdir("/proc/self/fd")), before)

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

            with (
                mock.patch("util.STOP_GRACE_SECONDS", 0.2),
                interrupt_once_exists(pid_file),  # once it ignores signals
                self.assertRaises(KeyboardInterrupt),
            ):
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

    def test_a_timeout_stops_at_once_a_child_that_ignores_sigterm(self) -> None:
        """No grace after a timeout: a child that ignores SIGTERM is killed."""
        start = time.monotonic()
        argv = ("sh", "-c", "trap '' TERM; exec sleep 30")
        with self.assertRaises(subprocess.TimeoutExpired) as raised:
            run(*argv, capture=True, timeout=0.2)
        self.assertLess(time.monotonic() - start, 0.9)  # the grace would be 5 s
        self.assertEqual(raised.exception.cmd, list(argv))
        self.assertAlmostEqual(raised.exception.timeout, 0.2, places=6)

    def test_timeout_bounds_the_whole_run(self) -> None:
        start = time.monotonic()
        with self.assertRaises(subprocess.TimeoutExpired):
            run("sh", "-c", "while :; do echo x; sleep 0.05; done", quiet=True, timeout=0.3)
        self.assertLess(time.monotonic() - start, 5)

    def test_input_reaches_stdin(self) -> None:
        completed = run("cat", capture=True, input="https://index.docker.io/v1/")
        self.assertEqual(completed.stdout, "https://index.docker.io/v1/")
        with self.assertRaisesRegex(ValueError, "^input needs capture$"):
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


class ExitAndDrainTest(QuietRunTestCase):
    """How the child's exit is noticed, and its output read to the end."""

    def test_the_exit_wakes_the_wait_without_polling(self) -> None:
        for options in ({"capture": True}, {"silence_timeout": 30.0, "timeout": 30.0}):
            with self.subTest(**options), tempfile.TemporaryFile() as sink:
                with child_output_to(sink), recorded_reads() as waits:
                    run("sleep", "0.15", **options)
                self.assertLessEqual(len(waits), 3, waits)
                for wait in waits:
                    self.assertTrue(wait is None or wait > 29, waits)

    def test_without_a_pidfd_the_exit_is_polled_for(self) -> None:
        """Where the kernel has no pidfd, a background job that holds the
        pipes open does not hide the wrapper's exit either."""
        with tempfile.TemporaryDirectory() as scratch:
            wrapper = os.path.join(scratch, "wrapper")
            with open(wrapper, "w", encoding="utf-8") as file:
                file.write('#!/bin/sh\nsleep 30 &\necho "$!" >"$0.pid"\nexec "$@"\n')
            os.chmod(wrapper, 0o755)
            with mock.patch("util._pidfd", return_value=None), recorded_reads() as waits:
                completed = run(wrapper, "sh", "-c", "sleep 0.2; echo done", capture=True)
            self.assertEqual(completed.stdout, "done\n")
            self.assertEqual(waits[0], 0.05)  # while it runs; then the drain's
            with open(wrapper + ".pid", encoding="utf-8") as file:
                self.assertTrue(stops_soon(int(file.read())))

    def test_output_still_in_the_pipes_at_the_exit_is_read(self) -> None:
        """Small reads leave much of the output of a writer that exits at once
        in the pipe when its exit is noticed; stderr is read to its end after
        stdout closed. (A second to drain: ample for a loaded machine.)"""
        stdout_only = "import os; os.write(1, b'o' * 200000); os._exit(0)"
        stderr_after = "import os; os.close(1); os.write(2, b'e' * 200000); os._exit(0)"
        with mock.patch("util._READ_SIZE", 64), mock.patch("util.DRAIN_SECONDS", 1.0):
            completed = run(sys.executable, "-c", stdout_only, capture=True)
            self.assertEqual(completed.stdout, "o" * 200000)
            completed = run(sys.executable, "-c", stderr_after, capture=True)
            self.assertEqual(completed.stderr, "e" * 200000)

    def test_the_drain_ends_once_the_pipes_are_closed(self) -> None:
        with mock.patch("util.DRAIN_SECONDS", 5.0):
            start = time.monotonic()
            run("true", capture=True)
            self.assertLess(time.monotonic() - start, 2.5)

    def test_the_drain_is_bounded_when_a_process_outside_the_group_holds_a_pipe(self) -> None:
        with tempfile.TemporaryDirectory() as scratch:
            pid_file = os.path.join(scratch, "pid")
            leaver = (
                'setsid sh -c \'echo "$$" >"$1.tmp"; mv "$1.tmp" "$1"; exec sleep 20\' sh "$1" &'
                ' while [ ! -e "$1" ]; do sleep 0.01; done'
            )
            start = time.monotonic()
            run("sh", "-c", leaver, "sh", pid_file, capture=True)
            self.assertLess(time.monotonic() - start, 2.5)
            with open(pid_file, encoding="ascii") as file:
                pid = int(file.read())
        self.addCleanup(os.kill, pid, signal.SIGKILL)
        self.assertTrue(is_running(pid))  # not ours to stop: it left the group


class StopTest(QuietRunTestCase):
    """An interrupted child's group: SIGTERM, a grace, then SIGKILL."""

    def test_a_child_that_stops_at_once_is_not_waited_for(self) -> None:
        with tempfile.TemporaryDirectory() as scratch:
            ready = os.path.join(scratch, "ready")
            with (
                interrupt_once_exists(ready) as raised_at,
                self.assertRaises(KeyboardInterrupt),
            ):
                run("sh", "-c", 'touch "$1"; exec sleep 30', "sh", ready)
            self.assertLess(time.monotonic() - raised_at[0], 0.9)  # the grace is 5 s

    def test_what_is_left_in_the_group_gets_the_grace_too(self) -> None:
        """The child exits on SIGTERM at once; another member of its group
        cleans up for a moment first, and is waited for. (That member is
        ours to reap: an orphan's zombie would wait for init.)"""
        with tempfile.TemporaryDirectory() as scratch:
            ready, joined = os.path.join(scratch, "ready"), os.path.join(scratch, "joined")
            cleaned = os.path.join(scratch, "cleaned")
            member = (
                "import os, signal, sys, time\n"
                "def clean_up(signum, frame):\n"
                "    time.sleep(0.2); open(sys.argv[3], 'w').close(); sys.exit(0)\n"
                "signal.signal(signal.SIGTERM, clean_up)\n"
                "os.setpgid(0, int(open(sys.argv[1]).read()))\n"
                "open(sys.argv[2], 'w').close()\n"
                "time.sleep(30)\n"
            )

            def join_the_group() -> None:
                joiner = subprocess.Popen([sys.executable, "-c", member, ready, joined, cleaned])
                threading.Thread(target=joiner.wait, daemon=True).start()  # reaps it
                wait_for_file(joined)

            child = 'echo "$$" >"$1.tmp"; mv "$1.tmp" "$1"; exec sleep 30'
            with (
                interrupt_once_exists(ready, then=join_the_group),
                self.assertRaises(KeyboardInterrupt),
            ):
                run("sh", "-c", child, "sh", ready)
            self.assertTrue(os.path.exists(cleaned))

    def test_signal_group_tells_whether_any_of_the_group_is_left(self) -> None:
        child = subprocess.Popen(["sleep", "30"], start_new_session=True)
        self.addCleanup(child.wait)
        self.assertTrue(util._signal_group(child.pid, 0))
        util._signal_group(child.pid, signal.SIGKILL)
        child.wait()
        self.assertFalse(util._signal_group(child.pid, 0))
        with mock.patch("os.killpg", side_effect=PermissionError):  # members of another user
            self.assertTrue(util._signal_group(child.pid, 0))

    def test_pidfd_becomes_readable_at_the_exit_where_the_kernel_has_one(self) -> None:
        child = subprocess.Popen(["sleep", "0.1"])
        fd = util._pidfd(child.pid)
        assert fd is not None
        try:
            with selectors.DefaultSelector() as selector:
                selector.register(fd, selectors.EVENT_READ)
                self.assertEqual(selector.select(0), [])
                self.assertEqual(len(selector.select(10)), 1)
        finally:
            os.close(fd)
            child.wait()
        self.assertIsNone(util._pidfd(child.pid))  # reaped: no such process
        pidfd_open = os.pidfd_open
        del os.pidfd_open
        try:
            self.assertIsNone(util._pidfd(os.getpid()))
        finally:
            os.pidfd_open = pidfd_open

    def test_write_all_waits_while_a_non_blocking_pipe_is_full(self) -> None:
        read_end, write_end = os.pipe()
        self.addCleanup(os.close, read_end)
        self.addCleanup(os.close, write_end)
        os.set_blocking(write_end, False)
        data = os.urandom(300_000)  # several pipes full
        received = bytearray()

        def read_all() -> None:
            while len(received) < len(data):
                received.extend(os.read(read_end, 65536))

        reader = threading.Thread(target=read_all, daemon=True)
        reader.start()
        start = time.monotonic()
        util._write_all(write_end, data)
        self.assertLess(time.monotonic() - start, 0.9)
        reader.join(10)
        self.assertEqual(bytes(received), data)


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
