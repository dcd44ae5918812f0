"""Bad input: a one-line error naming the problem, and no docker call."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
from collections.abc import Callable
from typing import Any
from unittest import mock

from get_docker_image import READ_AHEAD_MIN_SIZE
from tests.fixtures import CTX, DOCKERFILE, FAKE_DOCKER, Dir, File, Link, build_tree
from tests.helpers import REPO_DIR, Result, ScratchDirTestCase, run_main

REAL_OPEN = os.open


def denied_for(name: bytes, real: Callable[..., Any]) -> Callable[..., Any]:
    """Wraps os.open (or another call taking a path first) to fail with
    EACCES for paths ending in `name`."""

    def wrapper(target: Any, *args: Any, **kwargs: Any) -> Any:
        if os.path.basename(os.fsencode(target)) == name:
            raise PermissionError(13, "Permission denied", target)
        return real(target, *args, **kwargs)

    return wrapper


def failing_on(path: str, real: Callable[..., Any], error: OSError) -> Callable[..., Any]:
    """Wraps a call taking a file descriptor first (os.scandir, os.read) to
    raise `error` when that descriptor is the file at `path`."""
    status = os.stat(path)

    def wrapper(fd: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(fd, int) and os.path.samestat(os.fstat(fd), status):
            raise error
        return real(fd, *args, **kwargs)

    return wrapper


class BadInputTest(ScratchDirTestCase):
    def setUp(self) -> None:
        super().setUp()
        build_tree(
            self.root,
            [
                DOCKERFILE,
                CTX,
                File("ctx/secret", b"s", 0o600),
                Dir("ctx/sub"),
                Link("ctx/dangling", "nowhere"),
                File("plain", b""),
            ],
        )
        os.mkfifo("fifo", 0o600)

    def run_tool(self, *options: str) -> Result:
        defaults = {
            "--dockerfile": "Dockerfile",
            "--context": "ctx",
            "--repository": "repo",
            "--container-registry": "myreg",
            "--docker-path": FAKE_DOCKER,
        }
        pairs = dict(zip(options[::2], options[1::2], strict=True))
        argv = [item for pair in {**defaults, **pairs}.items() for item in pair]
        return run_main(argv)

    def test_bad_input_table(self) -> None:
        denied_file = mock.patch("os.open", denied_for(b"secret", REAL_OPEN))
        denied_dir = mock.patch("os.open", denied_for(b"sub", REAL_OPEN))
        # The directory opens, but listing it fails.
        denied_listing = mock.patch(
            "os.scandir",
            failing_on("ctx/sub", os.scandir, PermissionError(13, "Permission denied")),
        )
        denied_link = mock.patch("os.readlink", denied_for(b"dangling", os.readlink))
        # (options, patch or None, exit status, the error line after "[ERROR] - ")
        table: list[tuple[tuple[str, ...], Any, int, str]] = [
            (("--dockerfile", "missing"), None, 1, "Dockerfile not found: 'missing'"),
            (("--dockerfile", "ctx"), None, 1, "Dockerfile is not a regular file: 'ctx'"),
            (("--dockerfile", "fifo"), None, 1, "Dockerfile is not a regular file: 'fifo'"),
            (("--context", "missing"), None, 1, "context directory not found: 'missing'"),
            (("--context", "plain"), None, 1, "context is not a directory: 'plain'"),
            ((), denied_file, 1, "cannot read file 'ctx/secret': Permission denied"),
            ((), denied_dir, 1, "cannot read directory 'ctx/sub': Permission denied"),
            ((), denied_listing, 1, "cannot read directory 'ctx/sub': Permission denied"),
            (
                ("--context", "ctx/"),
                denied_dir,
                1,
                "cannot read directory 'ctx/sub': Permission denied",  # one slash
            ),
            (
                ("--hash-mode", "docker"),
                denied_listing,
                1,
                "cannot read directory 'ctx/sub': Permission denied",
            ),
            ((), denied_link, 1, "cannot read symlink 'ctx/dangling': Permission denied"),
            (
                ("--hash-mode", "docker"),
                denied_link,
                1,
                "cannot read symlink 'dangling': Permission denied",  # as hashed: in the context
            ),
            (
                ("--docker-build-args", "--build-arg A='x"),
                None,
                2,
                '--docker-build-args: cannot split "--build-arg A=\'x": No closing quotation',
            ),
            (
                ("--docker-build-args-not-affecting-image-content", 'a "b'),
                None,
                2,
                "--docker-build-args-not-affecting-image-content: cannot split 'a \"b': "
                "No closing quotation",
            ),
            (
                ("--docker-path", "/nonexistent/docker"),
                None,
                1,
                "docker not found: '/nonexistent/docker'",
            ),
            (("--docker-path", "plain"), None, 1, "docker not found on PATH: 'plain'"),
            (("--docker-path", "./plain"), None, 1, "docker is not executable: './plain'"),
            (
                ("--docker-path", "no-such-docker"),
                None,
                1,
                "docker not found on PATH: 'no-such-docker'",
            ),
        ]
        for options, patch, status, message in table:
            with self.subTest(options=options, patch=patch):
                self.forget_docker_calls()
                if patch:
                    with patch:
                        result = self.run_tool(*options)
                else:
                    result = self.run_tool(*options)
                if status == 2:  # argparse's form, as for every usage error
                    lines = result.stderr.splitlines()
                    self.assertEqual(result.status, 2)
                    self.assertTrue(lines[0].startswith("usage: get_docker_image.py "), lines)
                    self.assertEqual(lines[-1], f"get_docker_image.py: error: {message}")
                else:
                    self.assertEqual(
                        (result.status, result.log_messages()),
                        (status, [f"get_docker_image [ERROR] - {message}"]),
                    )
                self.assertEqual(self.docker_calls(), [])

    def test_a_read_error_names_the_file_whichever_way_it_is_read(self) -> None:
        """Read whole, in chunks, and in chunks by a second thread (from 4 MiB);
        the Dockerfile too."""
        sizes = {"small": 100, "chunked": 200_000, "read-ahead": READ_AHEAD_MIN_SIZE + 1}
        for name, size in sizes.items():
            with open(f"ctx/{name}", "wb") as file:
                file.truncate(size)
            os.chmod(f"ctx/{name}", 0o644)
        # (the file failing, hash mode, the error line after "[ERROR] - ")
        table = [("Dockerfile", mode, "cannot read Dockerfile 'Dockerfile'")
                 for mode in ("original", "docker")]  # fmt: skip
        for name in sizes:
            table.append((f"ctx/{name}", "original", f"cannot read file 'ctx/{name}'"))
            table.append((f"ctx/{name}", "docker", f"cannot read file '{name}'"))  # as hashed
        for path, hash_mode, message in table:
            with self.subTest(path, hash_mode=hash_mode):
                error = OSError(errno.EIO, os.strerror(errno.EIO))
                with (
                    mock.patch("os.read", failing_on(path, os.read, error)),
                    mock.patch("os.readv", failing_on(path, os.readv, error)),
                ):
                    result = self.run_tool("--hash-mode", hash_mode)
                self.assertEqual(
                    (result.status, result.log_messages()),
                    (1, [f"get_docker_image [ERROR] - {message}: Input/output error"]),
                )

    def test_missing_required_option_is_a_usage_error(self) -> None:
        result = run_main(["--container-registry", "myreg"])
        self.assertEqual(result.status, 2)
        self.assertIn("the following arguments are required: --repository", result.stderr)
        self.assertEqual(self.docker_calls(), [])

    def test_docker_that_cannot_be_executed(self) -> None:
        with open("bad-docker", "wb") as file:
            file.write(b"\x7fELF not really")
        os.chmod("bad-docker", 0o755)
        result = self.run_tool("--docker-path", "./bad-docker")
        self.assertEqual(result.status, 1)
        self.assertEqual(
            result.log_messages()[-1],
            "get_docker_image [ERROR] - cannot run docker './bad-docker': Exec format error",
        )

    def test_unreadable_file_as_an_unprivileged_user(self) -> None:
        """The real thing where possible: root runs the tool as `nobody`."""
        python = shutil.which("python3", path="/usr/bin:/bin")
        if os.geteuid() != 0 or python is None:
            self.skipTest("needs root to switch to an unprivileged user, and /usr/bin/python3")
        for module in ("get_docker_image.py", "logger.py", "util.py", "dockerignore.py"):
            shutil.copy(os.path.join(REPO_DIR, module), module)
        os.chmod("ctx/secret", 0o600)  # owned by root: unreadable for nobody
        completed = subprocess.run(
            [python, "get_docker_image.py", "--repository", "repo", "--context", "ctx"],
            user=65534,
            group=65534,
            extra_groups=[],
            env={"PATH": "/usr/bin:/bin"},
            capture_output=True,
            text=True,
            check=False,
        )
        self.assertEqual(completed.returncode, 1, completed.stderr)
        self.assertTrue(
            completed.stderr.rstrip().endswith(
                "[ERROR] - cannot read file 'ctx/secret': Permission denied"
            ),
            completed.stderr,
        )
        self.assertNotIn("Traceback", completed.stderr)


class InternalErrorTest(ScratchDirTestCase):
    """A bug is one line and the exception; the traceback only with --debug."""

    def setUp(self) -> None:
        super().setUp()
        build_tree(self.root, [DOCKERFILE, CTX])
        patcher = mock.patch("get_docker_image.compute_tag", side_effect=RuntimeError("boom"))
        patcher.start()
        self.addCleanup(patcher.stop)

    def test_one_line_by_default(self) -> None:
        result = run_main(["--context", "ctx", "--repository", "repo", "--print-image-name"])
        self.assertEqual(result.status, 1)
        self.assertEqual(
            result.log_messages(),
            [
                "get_docker_image [ERROR] - Internal error: RuntimeError('boom') "
                "(rerun with --debug for the traceback)"
            ],
        )

    def test_traceback_with_debug(self) -> None:
        result = run_main(["--context", "ctx", "--repository", "repo", "--debug"])
        self.assertEqual(result.status, 1)
        self.assertIn("get_docker_image [ERROR] - Internal error\nTraceback", result.stderr)
        self.assertIn("RuntimeError: boom", result.stderr)
