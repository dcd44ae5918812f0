"""A real registry process and real docker, for the end-to-end tests."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from typing import Any

from tests.helpers import REPO_DIR

REGISTRY_CONFIG = os.path.join(REPO_DIR, ".ci", "registry.yml")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def docker_engine_problem() -> str | None:
    """Why the docker engine cannot be used, or None if it can."""
    if shutil.which("docker") is None:
        return "no docker CLI on PATH"
    completed = subprocess.run(
        ["docker", "info", "--format", "{{.ServerVersion}}"],
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        return f"docker engine not reachable: {completed.stderr.strip()}"
    return None


def docker(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=check)


def image_id(reference: str) -> str | None:
    completed = docker("image", "inspect", "--format", "{{.Id}}", reference, check=False)
    return completed.stdout.strip() if completed.returncode == 0 else None


def remove_images(repository: str) -> None:
    """Removes every local tag of `repository` (the test's own, by its unique name)."""
    listed = docker("image", "ls", "--format", "{{.Repository}}:{{.Tag}}", check=False)
    references = [
        line
        for line in listed.stdout.split()
        if line.rsplit(":", 1)[0] in (repository,)
        or line.rsplit(":", 1)[0].endswith("/" + repository)
    ]
    if references:
        docker("image", "rm", "--force", *references, check=False)


def dangling_images() -> set[str]:
    """IDs of untagged images, such as a failed build's intermediate layers."""
    listed = docker("image", "ls", "--quiet", "--no-trunc", "--filter", "dangling=true")
    return set(listed.stdout.split())


def remove_new_dangling_images(before: set[str]) -> None:
    new = dangling_images() - before
    if new:
        docker("image", "rm", "--force", *new, check=False)


def registry_tags(registry: str, repository: str) -> list[str]:
    """The registry's tags for `repository`, from its HTTP API; [] if it has none."""
    url = f"http://{registry}/v2/{repository}/tags/list"
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            body: dict[str, Any] = json.load(response)
    except urllib.error.HTTPError as error:
        if error.code == 404:  # NAME_UNKNOWN: nothing was ever pushed
            return []
        raise
    return sorted(body.get("tags") or [])


class LocalRegistry:
    """A `docker-registry serve` process on 127.0.0.1, storage in a temporary directory."""

    def __init__(self, htpasswd: str | None = None) -> None:
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self._storage = tempfile.mkdtemp(prefix="gdi-registry-")
        env = dict(
            os.environ,
            REGISTRY_HTTP_ADDR=self.address,
            REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY=self._storage,
        )
        if htpasswd:
            env.update(
                REGISTRY_AUTH="htpasswd",
                REGISTRY_AUTH_HTPASSWD_REALM="get-docker-image-tests",
                REGISTRY_AUTH_HTPASSWD_PATH=htpasswd,
            )
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 (lives as long as the process)
        self._process = subprocess.Popen(
            ["docker-registry", "serve", REGISTRY_CONFIG],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self._wait_until_ready()

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"http://{self.address}/v2/", timeout=2).close()
                return
            except urllib.error.HTTPError:  # 401 from an auth registry: it is up
                return
            except OSError:
                if self._process.poll() is not None or time.monotonic() > deadline:
                    self._log.seek(0)
                    output = self._log.read().decode(errors="replace")
                    self.stop()
                    raise RuntimeError(f"registry did not start: {output}") from None
                time.sleep(0.1)

    def stop(self) -> None:
        if self._process.poll() is None:
            self._process.terminate()
            self._process.wait(timeout=30)
        self._log.close()
        shutil.rmtree(self._storage, ignore_errors=True)
