"""Shared test scaffolding: a scratch directory, the CLI in-process, fake docker."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import shutil
import stat
import sys
import tempfile
import unittest
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any
from unittest import mock

import get_docker_image
from tests import e2e_support
from tests.fixtures import read_json_lines

# Defined once, in e2e_support (which must not import the tool).
REPO_DIR = e2e_support.REPO_DIR
SCRIPT = e2e_support.TOOL_SCRIPT

# Log records start with a timestamp; tests compare what follows it.
TIMESTAMP_PATTERN = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}"
LOG_TIMESTAMP = re.compile(rf"^{TIMESTAMP_PATTERN} ")
# How long a run took, in its closing line: "... in 3.2 s." or "... in 3.2 s (note)."
RUN_SECONDS = re.compile(r" in \d+\.\d s(?=\.$| \()")


@dataclass(frozen=True)
class Result:
    status: int
    stdout: str
    stderr: str
    child_output: str = ""

    def log_messages(self) -> list[str]:
        """stderr's lines without their timestamps, and with the closing
        line's seconds as "N" ("Pulled IMAGE in N s.")."""
        return [
            RUN_SECONDS.sub(" in N s", LOG_TIMESTAMP.sub("", line))
            for line in self.stderr.splitlines()
        ]


def run_main(argv: Sequence[str]) -> Result:
    """Runs the CLI in this process, capturing its exit status and output.

    Python's stdout and stderr are captured as text; what child processes
    (docker) write to file descriptors 1 and 2 goes to `child_output`.
    """
    stdout, stderr = io.StringIO(), io.StringIO()
    with (
        tempfile.TemporaryFile() as child_output,
        redirect_fds(child_output.fileno()),
        contextlib.redirect_stdout(stdout),
        contextlib.redirect_stderr(stderr),
    ):
        try:
            status = get_docker_image.main(list(argv))
        except SystemExit as exit_:  # argparse's usage errors and --help
            status = exit_.code if isinstance(exit_.code, int) else 1
        child_output.seek(0)
        child_text = child_output.read().decode()
    return Result(status, stdout.getvalue(), stderr.getvalue(), child_text)


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextlib.contextmanager
def kept_logs(*names: str) -> Iterator[list[logging.LogRecord]]:
    """The records of these loggers, kept off the console (their handlers,
    which an earlier test may have added, set aside); unlike assertLogs,
    none is fine."""
    keeper = _Records()
    loggers = [logging.getLogger(name) for name in names]
    saved = [(logger.handlers, logger.propagate) for logger in loggers]
    for logger in loggers:
        logger.handlers, logger.propagate = [keeper], False
    try:
        yield keeper.records
    finally:
        for logger, (handlers, propagate) in zip(loggers, saved, strict=True):
            logger.handlers, logger.propagate = handlers, propagate


def keep_logs_off_console(test: unittest.TestCase, *names: str) -> None:
    """kept_logs for the whole of this test (assertLogs still works inside)."""
    context = kept_logs(*names)
    context.__enter__()
    test.addCleanup(context.__exit__, None, None, None)


@contextlib.contextmanager
def redirect_fds(target_fd: int, stderr_fd: int | None = None) -> Iterator[None]:
    """Points file descriptors 1 and 2 at `target_fd` (where children write),
    or 2 at `stderr_fd` if given."""
    saved = [os.dup(1), os.dup(2)]
    try:
        os.dup2(target_fd, 1)
        os.dup2(target_fd if stderr_fd is None else stderr_fd, 2)
        yield
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in saved:
            os.close(fd)


def remove_tree(path: str) -> None:
    """rmtree that makes read-only directories writable when it has to."""

    def make_writable_and_retry(function: Any, failed_path: str, _: object) -> None:
        os.chmod(os.path.dirname(failed_path), stat.S_IRWXU)
        function(failed_path)

    shutil.rmtree(path, onerror=make_writable_and_retry)


class ScratchDirTestCase(unittest.TestCase):
    """Runs each test in a fresh directory (self.root) with fake docker set up."""

    def setUp(self) -> None:
        self.root = tempfile.mkdtemp(prefix="gdi-test-")
        self.addCleanup(remove_tree, self.root)
        os.chmod(self.root, 0o755)
        previous_cwd = os.getcwd()
        self.addCleanup(os.chdir, previous_cwd)
        os.chdir(self.root)
        self.calls_path = os.path.join(self.root, "docker-calls.jsonl")
        self.set_env(FAKE_DOCKER_LOG=self.calls_path)
        for name in list(os.environ):
            if name.startswith("FAKE_DOCKER_") and name != "FAKE_DOCKER_LOG":
                self.set_env(**{name: None})
        self.set_env(DOCKER_CLI_EXPERIMENTAL=None)
        # Tags that hash the target platform must not depend on this engine's.
        self.set_env(DOCKER_DEFAULT_PLATFORM="linux/amd64")
        # The recording docker's `env python3` finds this interpreter itself,
        # not a version manager's shim (which costs a process start per call).
        path = os.environ.get("PATH", "")
        self.set_env(PATH=os.path.dirname(sys.executable) + os.pathsep + path)

    def set_env(self, **values: str | None) -> None:
        """Sets (or, for None, removes) environment variables for this test."""
        patcher = mock.patch.dict(os.environ)
        patcher.start()
        self.addCleanup(patcher.stop)
        for name, value in values.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value

    def forget_docker_calls(self) -> None:
        if os.path.exists(self.calls_path):
            os.remove(self.calls_path)

    def docker_calls(self) -> list[dict[str, Any]]:
        """The calls fake docker recorded, each {"argv", "DOCKER_CLI_EXPERIMENTAL", "cwd"}."""
        return read_json_lines(self.calls_path)

    def docker_argvs(self) -> list[list[str]]:
        return [call["argv"] for call in self.docker_calls()]
