"""Running subprocesses: one helper that logs what it runs, copy-pasteably."""

from __future__ import annotations

import logging
import os
import selectors
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence

_log = logging.getLogger("util.run")

# How long an interrupted child gets to clean up before it is killed.
STOP_GRACE_SECONDS = 5.0
# How long output is still read after the child exited and its process group
# was killed: only a process that left the group can hold a pipe open longer.
DRAIN_SECONDS = 0.2
# Children write to the process's file descriptors 1 and 2 whatever
# sys.stdout and sys.stderr are.
_STDOUT_FD = 1
_STDERR_FD = 2
# How much of a streamed child's stderr is kept for error messages.
STDERR_TAIL_BYTES = 8192
_READ_SIZE = 65536


class SilenceTimeout(subprocess.TimeoutExpired):
    """The child wrote nothing for `timeout` seconds and was stopped."""

    def __str__(self) -> str:
        return f"Command '{self.cmd}' wrote nothing for {self.timeout:g} seconds"


def format_command(cmd: Sequence[str], env: Mapping[str, str] | None = None) -> str:
    """Returns `cmd` as one shell-quoted line that can be pasted into a shell.

    Variables that `env` adds or changes relative to os.environ are shown as
    VAR=value prefixes, so the pasted line runs with the same environment.
    """
    changed = []
    if env is not None:
        changed = [
            f"{name}={shlex.quote(value)}"
            for name, value in env.items()
            if os.environ.get(name) != value
        ]
    return " ".join([*changed, shlex.join(cmd)])


def run(
    *args: str,
    cwd: str | None = None,
    env: Mapping[str, str] | None = None,
    capture: bool = False,
    quiet: bool = False,
    check: bool = True,
    stdout_to_stderr: bool = False,
    timeout: float | None = None,
    silence_timeout: float | None = None,
    input: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Runs the command `args` (never through a shell) and waits for it.

    The child runs in a process group of its own, so that stopping it also
    stops whatever it started (wrapper scripts, docker CLI plugins). Only
    the child itself is waited for: once it has exited, what it left in its
    group is killed, and its output is read to the end (a background job of
    a wrapper costs no time). On an interrupt, an exception or a timeout the
    whole group gets SIGTERM, then SIGKILL after STOP_GRACE_SECONDS (at once
    for a timeout).

    Args:
        *args: The program and its arguments.
        cwd: The working directory; None for the current one.
        env: The complete environment; None to inherit this process's.
        capture: Capture stdout and stderr as text in the result.
        quiet: Discard the output (ignored when capturing).
        check: Raise subprocess.CalledProcessError on a non-zero exit.
        stdout_to_stderr: Send the child's stdout to this process's stderr,
            keeping stdout for what the caller prints.
        timeout: Seconds; past them the child is stopped and
            subprocess.TimeoutExpired is raised.
        silence_timeout: When streaming: seconds without any output after
            which the child is stopped and SilenceTimeout is raised (its
            stdout is then read and copied too, to see that it is alive).
        input: Text for the child's stdin (with capture only); else the
            child inherits this process's stdin.

    Returns:
        The completed process. stdout is None unless captured; stderr is the
        captured text, or when streaming (neither capture nor quiet) the last
        few KiB of what the child wrote to stderr, for error messages.
    """
    cmd = list(args)
    _log.info("Running subprocess in '%s'\n%s", cwd or os.getcwd(), format_command(cmd, env))
    if input is not None and not capture:
        raise ValueError("input needs capture")

    # Where each output stream goes: a pipe we read (and to which fd we
    # copy it, if we do), or a file descriptor the child writes to itself.
    stream = not capture and not quiet
    stdout_target = _STDERR_FD if stdout_to_stderr else _STDOUT_FD
    if capture:
        stdout: int | None = subprocess.PIPE
        stderr: int | None = subprocess.PIPE
    elif quiet:
        stdout = stderr = subprocess.DEVNULL
    else:
        stdout = subprocess.PIPE if silence_timeout is not None else stdout_target
        stderr = subprocess.PIPE  # passed through as it comes, its tail kept
    popen_options: dict[str, object] = (
        {"process_group": 0} if sys.version_info >= (3, 11) else {"preexec_fn": os.setpgrp}
    )
    if input is not None:
        popen_options["stdin"] = subprocess.PIPE
    with subprocess.Popen(  # type: ignore[call-overload]
        cmd, cwd=cwd, env=env, stdout=stdout, stderr=stderr, **popen_options
    ) as process:
        copies = {_STDOUT_FD: stdout_target, _STDERR_FD: _STDERR_FD} if stream else {}
        output = _Output(process, copies)
        try:
            if input is not None:
                output.send(input.encode())
            output.wait(timeout, silence_timeout)
        except subprocess.TimeoutExpired:  # nothing to clean up: no grace
            _stop(process, grace=0)
            raise
        except BaseException:  # Ctrl-C, termination: nothing may outlive us
            _stop(process)
            raise
        finally:
            output.close()
    out = output.text(_STDOUT_FD) if capture else None
    err = output.text(_STDERR_FD) if capture or stream else None
    completed = subprocess.CompletedProcess(cmd, process.returncode, out, err)

    _log.debug("Subprocess completed. Return code: %d", completed.returncode)
    if check:
        completed.check_returncode()
    return completed


class _Output:
    """A child's piped output, read while it runs: collected, or copied to
    this process's file descriptors as it comes (keeping only a tail)."""

    def __init__(self, process: subprocess.Popen[bytes], copies: Mapping[int, int]) -> None:
        self._process = process
        self._copies = copies  # child fd -> our fd; collected (not copied) if absent
        self._selector = selectors.DefaultSelector()
        self._data: dict[int, bytearray] = {}
        for child_fd, pipe in ((_STDOUT_FD, process.stdout), (_STDERR_FD, process.stderr)):
            if pipe is not None:
                os.set_blocking(pipe.fileno(), False)
                self._selector.register(pipe.fileno(), selectors.EVENT_READ, child_fd)
                self._data[child_fd] = bytearray()
        self._open_pipes = len(self._data)
        # The child's exit wakes the selector too, where the kernel can say so.
        self._exit_fd = _pidfd(process.pid)
        if self._exit_fd is not None:
            self._selector.register(self._exit_fd, selectors.EVENT_READ, None)

    def send(self, data: bytes) -> None:
        """Writes `data` to the child's stdin and closes it."""
        stdin = self._process.stdin
        assert stdin is not None
        try:
            stdin.write(data)
            stdin.close()
        except BrokenPipeError:  # it exited without reading: its status will tell
            pass

    def wait(self, timeout: float | None, silence_timeout: float | None) -> None:
        """Reads until the child exits, then drains what is left once its
        group is gone. Raises TimeoutExpired or SilenceTimeout."""
        start = time.monotonic()
        deadline = None if timeout is None else start + timeout
        last_output = start
        # Without a pidfd the exit is noticed by polling.
        poll = 0.05 if self._exit_fd is None else None
        while self._process.poll() is None:
            now = time.monotonic()
            waits = [] if poll is None else [poll]
            if deadline is not None:
                if now >= deadline:
                    raise subprocess.TimeoutExpired(self._process.args, deadline - start)
                waits.append(deadline - now)
            if silence_timeout is not None:
                if now - last_output >= silence_timeout:
                    raise SilenceTimeout(self._process.args, silence_timeout)
                waits.append(last_output + silence_timeout - now)
            if self._read(min(waits) if waits else None):
                last_output = time.monotonic()
        # What the child started and left running in its group (a wrapper's
        # background job) must not hold the pipes open, nor outlive it.
        _signal_group(self._process.pid, signal.SIGKILL)
        drain_end = time.monotonic() + DRAIN_SECONDS
        while self._open_pipes and (left := drain_end - time.monotonic()) > 0:
            self._read(left)

    def _read(self, wait: float | None) -> bool:
        """Reads what the pipes have within `wait` seconds; whether any came."""
        got = False
        for key, _ in self._selector.select(None if wait is None else max(wait, 0)):
            if key.data is None:  # the child's exit
                self._selector.unregister(key.fd)
                continue
            try:
                chunk = os.read(key.fd, _READ_SIZE)
            except BlockingIOError:
                continue
            if not chunk:
                self._selector.unregister(key.fd)
                self._open_pipes -= 1
                continue
            got = True
            kept = self._data[key.data]
            kept += chunk
            target = self._copies.get(key.data)
            if target is not None:
                _write_all(target, chunk)
                del kept[:-STDERR_TAIL_BYTES]
        return got

    def text(self, child_fd: int) -> str:
        return self._data[child_fd].decode("utf-8", "replace")

    def close(self) -> None:
        self._selector.close()
        if self._exit_fd is not None:
            os.close(self._exit_fd)


def _write_all(fd: int, data: bytes) -> None:
    """Copies a child's output to one of ours; if ours is gone, drops it."""
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view) :]
        except BlockingIOError:  # a non-blocking fd of ours that is full
            time.sleep(0.01)
        except OSError:
            return


def _pidfd(pid: int) -> int | None:
    """A file descriptor that becomes readable when `pid` exits, if the
    kernel (Linux 5.3+) and Python (3.9+ on Linux) offer one."""
    pidfd_open = getattr(os, "pidfd_open", None)
    if pidfd_open is None:
        return None
    try:
        fd: int = pidfd_open(pid)
    except OSError:
        return None
    return fd


def _signal_group(pgid: int, signum: int) -> bool:
    """Sends `signum` (0: none) to the process group; False if none of it is left."""
    try:
        os.killpg(pgid, signum)
    except ProcessLookupError:
        return False
    except PermissionError:  # members we may not signal still exist
        return True
    return True


def _stop(process: subprocess.Popen[bytes], grace: float | None = None) -> None:
    """Asks the child's process group to stop, kills it if it takes too long
    (or if we are interrupted again meanwhile), and reaps the child."""
    try:
        if _signal_group(process.pid, signal.SIGTERM):
            deadline = time.monotonic() + (STOP_GRACE_SECONDS if grace is None else grace)
            while time.monotonic() < deadline:
                # The group is gone once its last member exits; the child may
                # exit first, leaving members that still hold up the group.
                if process.poll() is not None and not _signal_group(process.pid, 0):
                    break
                time.sleep(0.02)
    finally:
        _signal_group(process.pid, signal.SIGKILL)
        process.wait()
