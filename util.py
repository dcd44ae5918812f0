"""Running subprocesses: one helper that logs what it runs, copy-pasteably."""

from __future__ import annotations

import logging
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from typing import IO

_log = logging.getLogger("util.run")

# How long an interrupted child gets to clean up before it is killed.
STOP_GRACE_SECONDS = 5.0
# Children write to the process's file descriptor 2 whatever sys.stderr is.
_STDERR_FD = 2
# How much of a streamed child's stderr is kept for error messages.
STDERR_TAIL_BYTES = 8192


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
    input: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Runs the command `args` (never through a shell) and waits for it.

    The child runs in a process group of its own, so that stopping it also
    stops whatever it started (wrapper scripts, docker CLI plugins): on an
    interrupt, an exception or the timeout, the whole group gets SIGTERM,
    then SIGKILL after STOP_GRACE_SECONDS.

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
        input: Text for the child's stdin (with capture only); else the
            child gets none (stdin is /dev/null with capture, inherited
            otherwise).

    Returns:
        The completed process. stdout is None unless captured; stderr is the
        captured text, or when streaming (neither capture nor quiet) the last
        few KiB of what the child wrote to stderr, for error messages.
    """
    cmd = list(args)
    _log.info("Running subprocess in '%s'\n%s", cwd or os.getcwd(), format_command(cmd, env))

    stream = not capture and not quiet
    if input is not None and not capture:
        raise ValueError("input needs capture")
    if capture:
        stdout: int | None = subprocess.PIPE
        stderr: int | None = subprocess.PIPE
    elif quiet:
        stdout = stderr = subprocess.DEVNULL
    else:
        stdout = _STDERR_FD if stdout_to_stderr else None
        stderr = subprocess.PIPE  # passed through as it comes, its tail kept
    popen_options: dict[str, object] = (
        {"process_group": 0} if sys.version_info >= (3, 11) else {"preexec_fn": os.setpgrp}
    )
    if input is not None:
        popen_options["stdin"] = subprocess.PIPE
    with subprocess.Popen(  # type: ignore[call-overload]
        cmd, cwd=cwd, env=env, stdout=stdout, stderr=stderr, **popen_options
    ) as process:
        tee = _StderrTee(process.stderr) if stream else None
        out: str | None = None
        err: str | None = None
        try:
            if tee:
                process.wait(timeout=timeout)
            else:
                data = None if input is None else input.encode()
                out_bytes, err_bytes = process.communicate(data, timeout=timeout)
                out = _text(out_bytes) if capture else None
                err = _text(err_bytes) if capture else None
        except subprocess.TimeoutExpired:  # nothing to clean up: no grace
            _stop(process, grace=0)
            raise
        except BaseException:  # Ctrl-C, termination: nothing may outlive us
            _stop(process)
            raise
        finally:
            if tee:
                err = tee.finish()
        _reap_group(process.pid)
    completed = subprocess.CompletedProcess(cmd, process.returncode, out, err)

    _log.debug("Subprocess completed. Return code: %d", completed.returncode)
    if check:
        completed.check_returncode()
    return completed


def _text(data: bytes | None) -> str | None:
    return None if data is None else data.decode("utf-8", "replace")


class _StderrTee:
    """Copies a child's stderr to ours as it comes, keeping the last bytes."""

    def __init__(self, pipe: IO[bytes] | None) -> None:
        assert pipe is not None
        self._pipe = pipe
        self._tail = b""
        self._thread = threading.Thread(target=self._copy, name="stderr-tee", daemon=True)
        self._thread.start()

    def _copy(self) -> None:
        fd = self._pipe.fileno()
        while chunk := os.read(fd, 65536):
            os.write(_STDERR_FD, chunk)
            self._tail = (self._tail + chunk)[-STDERR_TAIL_BYTES:]

    def finish(self) -> str:
        """Waits for the end of the output (bounded: a grandchild outside the
        group could keep the pipe open) and returns its tail as text."""
        self._thread.join(timeout=STOP_GRACE_SECONDS)
        return self._tail.decode("utf-8", "replace")


def _signal_group(pgid: int, signum: int) -> bool:
    """Sends `signum` (0: none) to the process group; False if none of it is left."""
    try:
        os.killpg(pgid, signum)
    except ProcessLookupError:
        return False
    except PermissionError:  # members we may not signal still exist
        return True
    return True


def _reap_group(pgid: int) -> None:
    """Kills what the child left behind in its group (a wrapper's background
    job) once the child itself has exited."""
    _signal_group(pgid, signal.SIGKILL)


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
