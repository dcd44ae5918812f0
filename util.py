"""Running subprocesses: one helper that logs what it runs, copy-pasteably."""

from __future__ import annotations

import logging
import os
import shlex
import subprocess
from collections.abc import Mapping, Sequence

_log = logging.getLogger("util.run")

# How long an interrupted child gets to clean up before it is killed.
STOP_GRACE_SECONDS = 5.0


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
) -> subprocess.CompletedProcess[str]:
    """Runs the command `args` (never through a shell) and waits for it.

    Args:
        *args: The program and its arguments.
        cwd: The working directory; None for the current one.
        env: The complete environment; None to inherit this process's.
        capture: Capture stdout and stderr as text in the result.
        quiet: Discard the output (ignored when capturing).
        check: Raise subprocess.CalledProcessError on a non-zero exit.

    Returns:
        The completed process; stdout and stderr are None unless captured.
    """
    cmd = list(args)
    _log.info("Running subprocess in '%s'\n%s", cwd or os.getcwd(), format_command(cmd, env))

    output = subprocess.PIPE if capture else (subprocess.DEVNULL if quiet else None)
    with subprocess.Popen(
        cmd, cwd=cwd, env=env, stdout=output, stderr=output, text=True, errors="replace"
    ) as process:
        try:
            stdout, stderr = process.communicate()
        except BaseException:  # Ctrl-C or termination: the child must not outlive us
            _stop(process)
            raise
    completed = subprocess.CompletedProcess(cmd, process.returncode, stdout, stderr)

    _log.debug("Subprocess completed. Return code: %d", completed.returncode)
    if check:
        completed.check_returncode()
    return completed


def _stop(process: subprocess.Popen[str]) -> None:
    """Asks a child to stop, kills it if it takes too long (or if we are
    interrupted again meanwhile), and reaps it."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=STOP_GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        pass
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
