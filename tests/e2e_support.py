"""A real registry process and real docker, for the end-to-end tests.

A test module that needs them:

    PROBLEM = e2e_problem()   # skip with this reason; under CI=true, raise instead

    @unittest.skipIf(PROBLEM, PROBLEM or "")
    class T(unittest.TestCase):
        def test_x(self) -> None:
            registry = test_registry()            # "127.0.0.1:PORT", shared by the run
            base = busybox_image(registry)        # a base image with a shell, in it

`test_registry()` starts one registry per process (unless $GDI_TEST_REGISTRY names one)
and stops it at exit; a module may also `unittest.addModuleCleanup(stop_test_registry)`.
A module that also builds busybox_image() skips with `busybox_e2e_problem()` instead.

Also what docker and the tool print: `cached_steps(build output)`, the instructions docker
took from its cache, and `docker_commands(the tool's log)`, the docker commands it ran; and
the tool as a subprocess: `Job(argv, log_path, new_session=...)`, `wait_for(condition,
timeout, what)`, `processes_naming(text)`, and ToolJobsTestCase, whose tests run jobs
against the registry in a repository of their own.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import Any, TypeVar

# Not from tests.helpers: that imports the tool, and these helpers must not depend on it.
REPO_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REGISTRY_CONFIG = os.path.join(REPO_DIR, ".ci", "registry.yml")
TOOL_SCRIPT = os.path.join(REPO_DIR, "get_docker_image.py")
DOCKER_MANIFEST_V2 = "application/vnd.docker.distribution.manifest.v2+json"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def docker_engine_problem() -> str | None:
    """Why the docker engine cannot be used, or None if it can."""
    if shutil.which("docker") is None:
        return "no docker CLI on PATH"
    try:
        completed = subprocess.run(
            ["docker", "info", "--format", "{{.ServerVersion}}"],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,  # a stuck engine must not hang the whole test run
        )
    except subprocess.TimeoutExpired:
        return "docker engine not reachable: `docker info` did not answer in 60 s"
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


_STEP_IMAGE = re.compile(r"^ ---> ([0-9a-f]{12})$", re.MULTILINE)
_BUILT_IMAGE = re.compile(r"^Successfully built ([0-9a-f]{12})$", re.MULTILINE)


_STEP_CONTAINER = re.compile(r"^ ---> Running in ([0-9a-f]{12})$", re.MULTILINE)


def remove_containers_of(output: str) -> None:
    """Removes the containers that classic builds' output names (" ---> Running in ID"):
    a failed RUN step leaves its container, which holds on to the step's image."""
    containers = sorted(set(_STEP_CONTAINER.findall(output)))
    if containers:
        docker("container", "rm", "--force", *containers, check=False)


def remove_dangling_images_of(output: str, patience: float = 0.0) -> None:
    """Removes the untagged images that classic builds' output names (their
    steps, their results): only what a test made, not what other users of
    the engine have left. An image still used by the container of a build
    being cancelled cannot be removed yet: tries again for `patience` s."""
    ours = set(_STEP_IMAGE.findall(output) + _BUILT_IMAGE.findall(output))
    deadline = time.monotonic() + patience
    while True:
        dangling = [
            image for image in dangling_images() if image.removeprefix("sha256:")[:12] in ours
        ]
        if not dangling or docker("image", "rm", *dangling, check=False).returncode == 0:
            return
        if time.monotonic() > deadline:
            return
        time.sleep(0.5)


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


def manifest_digest(registry: str, repository: str, tag: str) -> str | None:
    """The registry's digest of repository:tag (Docker-Content-Digest, of its schema 2
    manifest), from its HTTP API; None if it has no such tag."""
    request = urllib.request.Request(
        f"http://{registry}/v2/{repository}/manifests/{tag}",
        method="HEAD",
        headers={"Accept": DOCKER_MANIFEST_V2},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            digest: str | None = response.headers.get("Docker-Content-Digest")
            return digest
    except urllib.error.HTTPError as error:
        if error.code == 404:
            return None
        raise


def manifest(registry: str, repository: str, tag: str) -> dict[str, Any]:
    """The registry's (schema 2) manifest of repository:tag, from its HTTP API."""
    request = urllib.request.Request(
        f"http://{registry}/v2/{repository}/manifests/{tag}", headers={"Accept": DOCKER_MANIFEST_V2}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        body: dict[str, Any] = json.load(response)
    return body


def config_digest(registry: str, repository: str, tag: str) -> str:
    """The image ID (the config's digest) of the registry's repository:tag."""
    digest: str = manifest(registry, repository, tag)["config"]["digest"]
    return digest


_Closable = TypeVar("_Closable", bound="ClosedOnExit")


class ClosedOnExit:
    """A context manager whose exit calls close() (which a subclass defines)."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self: _Closable) -> _Closable:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


class LocalRegistry(ClosedOnExit):
    """A `docker-registry serve` process on 127.0.0.1, storage in a temporary directory.

    htpasswd: a file for basic auth; delete: whether the API may delete manifests;
    read_only: the storage's maintenance mode (pulls work, pushes are refused);
    storage: another registry's storage to serve (left in place at stop).
    """

    def __init__(
        self,
        htpasswd: str | None = None,
        *,
        delete: bool = True,
        read_only: bool = False,
        storage: str | None = None,
    ) -> None:
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self._own_storage = storage is None
        self._storage = storage or tempfile.mkdtemp(prefix="gdi-registry-")
        env = dict(
            os.environ,
            REGISTRY_HTTP_ADDR=self.address,
            REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY=self._storage,
            REGISTRY_STORAGE_DELETE_ENABLED="true" if delete else "false",
        )
        if read_only:
            env["REGISTRY_STORAGE_MAINTENANCE_READONLY"] = '{"enabled":true}'
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
        if self._own_storage:
            shutil.rmtree(self._storage, ignore_errors=True)

    close = stop

    @property
    def storage(self) -> str:
        """The storage root: blobs under docker/registry/v2/blobs/sha256/<2 hex>/<digest>/."""
        return self._storage


# --- a registry that wants credentials, and docker logged in to it ------------------------

# Made with `htpasswd -Bbn -C 4 gdi-user gdi-registry-password` (apache2-utils): bcrypt, the
# only hash distribution's htpasswd auth takes. Over plain HTTP it takes them from loopback.
REGISTRY_USER = "gdi-user"
REGISTRY_PASSWORD = "gdi-registry-password"
REGISTRY_HTPASSWD = "gdi-user:$2y$04$7bZs5/LbAV37J4aH7UXjXeXWM8qrZl6MpdkuZM6810iadpf1nkMae\n"


def write_htpasswd(directory: str) -> str:
    """Writes REGISTRY_HTPASSWD as `directory`/htpasswd (for LocalRegistry(htpasswd=...));
    returns its path."""
    path = os.path.join(directory, "htpasswd")
    with open(path, "w", encoding="utf-8") as file:
        file.write(REGISTRY_HTPASSWD)
    return path


def docker_login(
    address: str, config_dir: str, user: str = REGISTRY_USER, password: str = REGISTRY_PASSWORD
) -> None:
    """`docker login address`, as a user would, keeping what docker stores in
    `config_dir`/config.json (a temporary DOCKER_CONFIG: nobody else's login changes).
    RuntimeError with docker's words if it fails."""
    completed = subprocess.run(
        ["docker", "--config", config_dir, "login", address, "-u", user, "--password-stdin"],
        input=password,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"docker login {address} failed: {completed.stderr.strip()}")


class LoggedInRegistry(ClosedOnExit):
    """A LocalRegistry with htpasswd auth (REGISTRY_USER), and a DOCKER_CONFIG of its
    own in which docker is logged in to it: `.address`, `.docker_config`."""

    def __init__(self, *, delete: bool = True) -> None:
        self.directory = tempfile.mkdtemp(prefix="gdi-logged-in-")
        self.registry = LocalRegistry(htpasswd=write_htpasswd(self.directory), delete=delete)
        self.address = self.registry.address
        self.docker_config = os.path.join(self.directory, "docker-config")
        try:
            docker_login(self.address, self.docker_config)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        self.registry.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


def run_tool(
    *args: str,
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
    timeout: float = 300,
) -> subprocess.CompletedProcess[str]:
    """The tool as a process of its own (output captured), with `env` added to ours."""
    return subprocess.run(
        [sys.executable, TOOL_SCRIPT, *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
    )


# --- one registry for the whole test run -------------------------------------------------

_shared_lock = threading.Lock()
_shared_registry: LocalRegistry | None = None


@functools.cache
def e2e_problem() -> str | None:
    """Why the end-to-end tests cannot run here, or None if they can.

    Under CI=true a problem is an error, not a reason to skip: raises RuntimeError.
    """
    problem = docker_engine_problem()
    if (
        problem is None
        and not os.environ.get("GDI_TEST_REGISTRY")
        and shutil.which("docker-registry") is None
    ):
        problem = (
            "no docker-registry installed (apt-get install docker-registry)"
            " and GDI_TEST_REGISTRY is not set"
        )
    return fail_under_ci(problem)


def busybox_e2e_problem() -> str | None:
    """e2e_problem(), or, when that is None, busybox_problem(): why end-to-end tests that
    also build busybox_image() cannot run here. Under CI=true raises RuntimeError instead."""
    return e2e_problem() or fail_under_ci(busybox_problem())


def fail_under_ci(problem: str | None) -> str | None:
    """`problem`, a reason to skip end-to-end tests; under CI=true raises it instead."""
    if problem and os.environ.get("CI") == "true":
        raise RuntimeError(f"end-to-end tests cannot run under CI: {problem}")
    return problem


def test_registry() -> str:
    """The "127.0.0.1:PORT" of $GDI_TEST_REGISTRY, else of a registry started on first call.

    The started one is shared by every caller in this process and stopped at exit (or by
    stop_test_registry, after which the next call starts a new one).
    """
    global _shared_registry  # noqa: PLW0603 (one per process, on purpose)
    configured = os.environ.get("GDI_TEST_REGISTRY")
    if configured:
        return configured
    with _shared_lock:
        if _shared_registry is None:
            if shutil.which("docker-registry") is None:
                raise RuntimeError("no docker-registry installed and GDI_TEST_REGISTRY is not set")
            _shared_registry = LocalRegistry()
            atexit.register(stop_test_registry)
        return _shared_registry.address


def shared_registry_storage() -> str | None:
    """The storage root of the registry test_registry() started; None for $GDI_TEST_REGISTRY."""
    with _shared_lock:
        return None if _shared_registry is None else _shared_registry.storage


def stop_test_registry() -> None:
    """Stops the registry test_registry() started, if any (for unittest.addModuleCleanup)."""
    global _shared_registry
    with _shared_lock:
        registry, _shared_registry = _shared_registry, None
    if registry is not None:
        registry.stop()
        # A later registry may get the same port: what was pushed here is gone.
        with _images_lock:
            for reference in list(_pushed_variants):
                if reference.startswith(registry.address + "/"):
                    del _pushed_variants[reference]


# --- a small base image with a shell ------------------------------------------------------

BUSYBOX = "/bin/busybox"
_VARIANT = re.compile(r"^[A-Za-z0-9._-]*$")

_images_lock = threading.Lock()
# reference -> the variant last pushed there by this process
_pushed_variants: dict[str, str] = {}
_built_references: set[str] = set()
_built_ids: set[str] = set()


def busybox_image(
    registry: str, name: str = "gdi-test/busybox", tag: str = "1", variant: str = ""
) -> str:
    """Builds a busybox image, pushes it as <registry>/<name>:<tag>, and returns that name.

    The image is `FROM scratch` with a static busybox as /bin/busybox and every applet
    (/bin/sh, /bin/ls, ...) linked to it, so it serves as a base image with a shell
    (`FROM <it>` then `RUN echo hi`). A non-empty `variant` ([A-Za-z0-9._-]) makes a
    different image (an extra /variant file and a label) under the same name: call again
    with another variant to move the tag, as a base image moves upstream (use a `name` of
    the test's own then: another process may use the same registry). Built and pushed once
    per process and reference, again only when the variant differs from the last one
    pushed there; the local tags are removed at exit. Needs a static /bin/busybox
    (busybox_problem() says why not).
    """
    if not _VARIANT.match(variant):
        raise ValueError(f"variant must match {_VARIANT.pattern}: {variant!r}")
    problem = busybox_problem()
    if problem:
        raise RuntimeError(problem)
    reference = f"{registry}/{name}:{tag}"
    with _images_lock:
        if _pushed_variants.get(reference) == variant:
            return reference
        with tempfile.TemporaryDirectory(prefix="gdi-busybox-") as context:
            _write_busybox_context(context, variant)
            if not _built_references:
                atexit.register(_remove_built_images)
            _built_references.add(reference)
            # The classic builder's cache makes a rebuild of a variant the same image.
            built = _docker_or_raise("build", "--quiet", "--tag", reference, context)
            _built_ids.add(built.stdout.strip())
        _docker_or_raise("push", reference)
        _pushed_variants[reference] = variant
        return reference


def busybox_problem() -> str | None:
    """Why busybox_image cannot work here (no static busybox), or None."""
    try:
        with open(BUSYBOX, "rb") as file:
            elf = file.read(1 << 16)
    except OSError as error:
        return f"no {BUSYBOX} ({error.strerror}; apt-get install busybox-static)"
    if _has_program_interpreter(elf):
        return f"{BUSYBOX} is dynamically linked: it cannot run in a scratch image"
    return None


def _has_program_interpreter(elf: bytes) -> bool:
    """Whether a 64-bit little-endian ELF file names a dynamic loader (PT_INTERP)."""
    if elf[:6] != b"\x7fELF\x02\x01":
        return False  # not the layout read here: let docker tell
    phoff, phentsize, phnum = (
        int.from_bytes(elf[0x20:0x28], "little"),
        int.from_bytes(elf[0x36:0x38], "little"),
        int.from_bytes(elf[0x38:0x3A], "little"),
    )
    headers = (elf[phoff + i * phentsize : phoff + i * phentsize + 4] for i in range(phnum))
    return any(int.from_bytes(kind, "little") == 3 for kind in headers)  # 3: PT_INTERP


def _docker_or_raise(*args: str) -> subprocess.CompletedProcess[str]:
    completed = docker(*args, check=False)
    if completed.returncode != 0:
        raise RuntimeError(
            f"docker {' '.join(args)} failed ({completed.returncode}): {completed.stderr.strip()}"
        )
    return completed


def _write_busybox_context(context: str, variant: str) -> None:
    bin_dir = os.path.join(context, "rootfs", "bin")
    os.makedirs(bin_dir)
    shutil.copy2(BUSYBOX, os.path.join(bin_dir, "busybox"))
    listed = subprocess.run([BUSYBOX, "--list"], capture_output=True, text=True, check=True)
    for applet in {"sh", *listed.stdout.split()} - {"busybox"}:
        os.symlink("busybox", os.path.join(bin_dir, applet))
    # COPY of a directory keeps the links as links; nothing has to run in the build.
    dockerfile = ["FROM scratch", "COPY rootfs/ /"]
    if variant:
        with open(os.path.join(context, "variant"), "w", encoding="utf-8") as file:
            file.write(variant + "\n")
        dockerfile += ["COPY variant /variant", f'LABEL gdi-test.variant="{variant}"']
    with open(os.path.join(context, "Dockerfile"), "w", encoding="utf-8") as file:
        file.write("\n".join(dockerfile) + "\n")


def _remove_built_images() -> None:
    with _images_lock:
        references = sorted(_built_references)
        ids = sorted(_built_ids)
        _built_references.clear()
        _built_ids.clear()
        _pushed_variants.clear()
    if references:
        docker("image", "rm", *references, check=False)
    # A variant whose tag moved on is left with only its pushed digests (repo@sha256:...)
    # as names; remove those of our repositories, and the image goes with the last one.
    repositories = {reference.rsplit(":", 1)[0] for reference in references}
    digests: list[str] = []
    for image in ids:
        inspected = docker(
            "image", "inspect", "--format", "{{json .RepoDigests}}", image, check=False
        )
        if inspected.returncode == 0:
            names: list[str] = json.loads(inspected.stdout) or []
            digests += [name for name in names if name.split("@", 1)[0] in repositories]
    if digests:
        docker("image", "rm", *digests, check=False)


# --- what docker and the tool print -------------------------------------------------------

_CLASSIC_STEP = re.compile(r"^Step \d+/\d+ : (.*)$")
_BUILDKIT_STEP = re.compile(r"^#(\d+) \[(?:[^\]]* )?\d+/\d+\] (.*)$")
_BUILDKIT_CACHED = re.compile(r"^#(\d+) CACHED$")
_ENV_PREFIX = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


def cached_steps(output: str) -> list[str]:
    """The instructions docker took from its cache, from its build output (FROM excluded).

    Classic: "Step 2/3 : RUN ..." then " ---> Using cache"; BuildKit's plain progress:
    "#5 [2/3] RUN ..." and, later, "#5 CACHED".
    """
    cached: list[str] = []
    step: str | None = None
    buildkit_steps: dict[str, str] = {}
    for raw_line in output.splitlines():
        line = raw_line.rstrip()
        if match := _CLASSIC_STEP.match(line):
            step = match.group(1)
        elif line.strip() == "---> Using cache" and step is not None:
            cached.append(step)
            step = None
        elif match := _BUILDKIT_STEP.match(line):
            buildkit_steps[match.group(1)] = match.group(2)
        elif (match := _BUILDKIT_CACHED.match(line)) and match.group(1) in buildkit_steps:
            cached.append(buildkit_steps[match.group(1)])
    return [step for step in cached if not step.upper().startswith("FROM ")]


def docker_commands(log: str) -> list[list[str]]:
    """The docker commands the tool logged (each on the line after "Running subprocess in
    '...'"), as argument lists from the subcommand on (`["build", "--pull", ...]`): without
    the VAR=value prefixes and the docker path."""
    commands: list[list[str]] = []
    lines = log.splitlines()
    for index, line in enumerate(lines[:-1]):
        if "Running subprocess in '" in line:
            words = shlex.split(lines[index + 1])
            while words and _ENV_PREFIX.match(words[0]):
                words.pop(0)
            commands.append(words[1:])
    return commands


# --- the tool as a subprocess -------------------------------------------------------------

# Bounds, so that a stuck docker or tool fails the test instead of hanging the run.
JOB_TIMEOUT = 180.0


def processes_naming(text: str) -> list[str]:
    """The command lines of the running processes (not zombies) that contain `text`."""
    found: list[str] = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as file:
                cmdline = file.read().replace(b"\0", b" ").decode(errors="replace")
            with open(f"/proc/{pid}/stat", "rb") as file:
                state = file.read().rsplit(b")", 1)[1].split()[0]
        except OSError:  # gone meanwhile
            continue
        if text in cmdline and state != b"Z":
            found.append(f"{pid}: {cmdline}")
    return found


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.05)


class Job:
    """The tool running as a subprocess, its stdout and stderr going to a log file."""

    def __init__(self, argv: Sequence[str], log_path: str, *, new_session: bool) -> None:
        self.argv = list(argv)
        self.log_path = log_path
        self.new_session = new_session
        with open(log_path, "wb") as log:
            self.process = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=new_session,
            )
        self.started = time.monotonic()
        self.ended: float | None = None

    def log(self) -> str:
        with open(self.log_path, encoding="utf-8", errors="replace") as file:
            return file.read()

    def running(self) -> bool:
        return self.process.poll() is None

    def wait(self, timeout: float = JOB_TIMEOUT) -> int:
        status = self.process.wait(timeout=timeout)
        if self.ended is None:
            self.ended = time.monotonic()
        return status

    def kill(self) -> None:
        """For cleanup: nothing the test started may outlive it."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                if self.new_session:
                    os.killpg(self.process.pid, signal.SIGKILL)
                else:
                    self.process.kill()
        self.process.wait()


class ToolJobsTestCase(unittest.TestCase):
    """The tool run as jobs (subprocesses, each logging to a file) against test_registry(),
    on contexts of the test's own, in a repository of its own (`repository_prefix`/uuid).
    At the end every job is killed, then the test's images removed: its tags, and the
    untagged images its builds left (by the IDs their logs print)."""

    repository_prefix = "gdi-e2e-jobs"

    def setUp(self) -> None:
        self.registry = test_registry()
        self.root = tempfile.mkdtemp(prefix=f"{self.repository_prefix}-")
        self.addCleanup(shutil.rmtree, self.root, True)
        self.repository = f"{self.repository_prefix}/{uuid.uuid4().hex[:12]}"
        self.jobs: list[Job] = []
        self.contexts = 0
        # Registered first, so it runs last: after every job was stopped.
        self.addCleanup(self.remove_our_images)

    # --- fixtures

    def base(self) -> str:
        return busybox_image(self.registry)

    def context(self, dockerfile: str, files: dict[str, bytes] | None = None) -> str:
        """A new context directory with `dockerfile` (as its Dockerfile) and `files`, plus
        a file unique to this test and context, so no other image has the same content."""
        self.contexts += 1
        path = os.path.join(self.root, f"ctx{self.contexts}")
        os.mkdir(path)
        unique = f"{self.repository} {self.contexts} {uuid.uuid4()}\n".encode()
        for name, content in {"unique.txt": unique, **(files or {})}.items():
            with open(os.path.join(path, name), "wb") as file:
                file.write(content)
        with open(os.path.join(path, "Dockerfile"), "w", encoding="utf-8") as file:
            file.write(dockerfile)
        return path

    def argv(
        self,
        context: str,
        *extra: str,
        registry: str | None = None,
        docker_path: str | None = None,
    ) -> list[str]:
        argv = [sys.executable, TOOL_SCRIPT, "--container-registry", registry or self.registry]
        argv += ["--repository", self.repository, "--context", context]
        argv += ["--dockerfile", os.path.join(context, "Dockerfile"), "--retry-delay", "0.2"]
        if docker_path is not None:
            argv += ["--docker-path", docker_path]
        return [*argv, *extra]

    def start(self, argv: Sequence[str], *, new_session: bool = False) -> Job:
        log_path = os.path.join(self.root, f"job{len(self.jobs) + 1}.log")
        job = Job(argv, log_path, new_session=new_session)
        self.jobs.append(job)
        self.addCleanup(job.kill)
        return job

    def run_job(self, argv: Sequence[str]) -> Job:
        job = self.start(argv)
        job.wait()
        return job

    def image(self, context: str, registry: str | None = None) -> str:
        completed = subprocess.run(
            [*self.argv(context, registry=registry), "--print-image-name"],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        self.assertEqual(completed.returncode, 0, completed.stderr)
        return completed.stdout.strip()

    def wrapper(self, text: str) -> str:
        path = os.path.join(self.root, f"docker-wrapper-{len(text)}.sh")
        with open(path, "w", encoding="utf-8") as file:
            file.write(text)
        os.chmod(path, 0o755)
        return path

    def remove_our_images(self) -> None:
        """This test's tags, then the untagged images its builds left (by the IDs their
        output printed: a job that pulled another's image leaves its own build dangling;
        an interrupted build leaves its steps). Docker commands of ours that the tool
        failed to stop are killed first, so none of them can tag anything afterwards."""
        for process in processes_naming(self.repository):
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(process.split(":", 1)[0]), signal.SIGKILL)
        remove_images(self.repository)
        logs = "".join(job.log() for job in self.jobs)
        remove_containers_of(logs)
        remove_dangling_images_of(logs, patience=15)

    # --- assertions

    def assert_exit(self, job: Job, status: int) -> None:
        self.assertEqual(job.wait(), status, job.log())
