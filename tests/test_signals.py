"""Interrupting a long docker step: exit 130 or 143, one line, no child left."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from tests.fixtures import CTX, DOCKERFILE, FAKE_DOCKER, build_tree
from tests.helpers import SCRIPT, ScratchDirTestCase


def process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


class InterruptTest(ScratchDirTestCase):
    def setUp(self) -> None:
        super().setUp()
        build_tree(self.root, [DOCKERFILE, CTX])
        self.pid_file = os.path.join(self.root, "docker.pid")
        self.set_env(FAKE_DOCKER_SLEEP="build", FAKE_DOCKER_PIDFILE=self.pid_file)

    def start_and_wait_for_docker_build(self) -> tuple[subprocess.Popen[str], int]:
        tool = subprocess.Popen(
            [
                *(sys.executable, SCRIPT, "--context", "ctx", "--repository", "repo"),
                *("--container-registry", "myreg", "--docker-path", FAKE_DOCKER),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # its own process group, like a job in a shell
        )
        self.addCleanup(tool.wait)
        self.addCleanup(tool.kill)  # a no-op once it has exited
        deadline = time.monotonic() + 30
        while not os.path.exists(self.pid_file) or not os.path.getsize(self.pid_file):
            self.assertLess(time.monotonic(), deadline, "docker build never started")
            time.sleep(0.05)
        with open(self.pid_file, encoding="utf-8") as pid_file:
            return tool, int(pid_file.read())

    def assert_ended_with(self, tool: subprocess.Popen[str], docker_pid: int, status: int) -> None:
        stdout, stderr = tool.communicate(timeout=30)
        self.assertEqual(tool.returncode, status, stderr)
        self.assertEqual(stdout, "")
        self.assertNotIn("Traceback", stderr)
        last = stderr.splitlines()[-1]
        word = "Interrupted." if status == 130 else "Terminated."
        self.assertTrue(last.endswith(f"get_docker_image [ERROR] - {word}"), last)
        self.assertFalse(process_exists(docker_pid), "docker was left running")
        self.assertEqual(self.docker_argvs()[-1][0], "build")  # nothing after the build

    def test_ctrl_c_to_the_process_group(self) -> None:
        tool, docker_pid = self.start_and_wait_for_docker_build()
        os.killpg(tool.pid, signal.SIGINT)
        self.assert_ended_with(tool, docker_pid, 130)

    def test_sigint_to_the_tool_alone_still_ends_docker(self) -> None:
        tool, docker_pid = self.start_and_wait_for_docker_build()
        os.kill(tool.pid, signal.SIGINT)
        self.assert_ended_with(tool, docker_pid, 130)

    def test_sigterm_ends_docker_too(self) -> None:
        tool, docker_pid = self.start_and_wait_for_docker_build()
        os.kill(tool.pid, signal.SIGTERM)
        self.assert_ended_with(tool, docker_pid, 143)
