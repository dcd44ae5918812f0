"""End to end: --hash-base-images with the real CLI, a real docker engine and registry.

Each test pushes its own base images (busybox-based, tests.e2e_support.busybox_image)
under a unique repository of the shared test registry, then runs get_docker_image.py
as a subprocess and checks its tags, its --explain output, and the docker commands
it logged on stderr (every one, after "Running subprocess in '...'"). Manifest lists
are made with `docker manifest create/annotate/push` in a private DOCKER_CONFIG, so
that no local list shadows the registry's for `docker manifest inspect`.

Skipped without docker, docker-registry or a static busybox (a failure under CI=true).
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import unittest
import urllib.request
import uuid
from typing import Any

from tests import e2e_support
from tests.e2e_support import (
    busybox_image,
    docker,
    docker_commands,
    free_port,
    registry_tags,
    remove_images,
    run_tool,
)
from tests.helpers import remove_tree

TOOL_TIMEOUT = 180  # seconds; a run takes one or two
# What a registry may answer for a tag: an image's manifest or a list of them.
MANIFEST_TYPES = ", ".join(
    [
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
    ]
)
# bcrypt of "e2e-password" (as in tests/test_e2e.py), for a registry that wants credentials.
HTPASSWD = "tester:$2b$05$NqWfjEB8QScDhnO.lWiXEOvwDEUAJk6vOWrHuu1g8M57e1UrSKDmC\n"
INSPECT_VERBOSE = ["manifest", "inspect", "--insecure", "--verbose"]


PROBLEM = e2e_support.busybox_e2e_problem()  # raises under CI=true
if PROBLEM is not None:
    print(f"skipping --hash-base-images end-to-end tests: {PROBLEM}", file=sys.stderr)


# --- what the registry and the tool say ----------------------------------------------------


def registry_digest(reference: str) -> str:
    """The registry's own digest for `host:port/repository:tag`, by its HTTP API
    (Docker-Content-Digest; for a list, the list's), independent of the docker CLI."""
    host, rest = reference.split("/", 1)
    repository, tag = rest.rsplit(":", 1)
    request = urllib.request.Request(
        f"http://{host}/v2/{repository}/manifests/{tag}",
        method="HEAD",
        headers={"Accept": MANIFEST_TYPES},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        digest: str = response.headers["Docker-Content-Digest"]
    return digest


def engine_platform() -> str:
    completed = docker("version", "--format", "{{.Server.Os}}/{{.Server.Arch}}")
    return completed.stdout.strip()


def original_tag(root: str, build_args: str, dockerfile: str, context: str) -> str:
    """The original script's tag for a context of plain files only, computed here as its
    README says (build-args text; Dockerfile record and bytes; context record, then its
    files' records and bytes sorted by name): an oracle independent of the tool."""
    digest = hashlib.sha256(build_args.encode())

    def add(path: str, content: bytes | None) -> None:
        digest.update(f"{path} {os.stat(os.path.join(root, path)).st_mode}".encode())
        if content is not None:
            digest.update(content)

    def read(path: str) -> bytes:
        with open(os.path.join(root, path), "rb") as file:
            return file.read()

    add(dockerfile, read(dockerfile))
    add(context, None)
    for name in sorted(os.listdir(os.path.join(root, context)), key=os.fsencode):
        path = f"{context}/{name}"
        add(path, read(path))
    return "image_content_digest_" + digest.hexdigest()


class FakeRegistryHost(e2e_support.ClosedOnExit):
    """A TCP port on 127.0.0.1 where a registry should be, but that either closes every
    connection at once (docker reads EOF: a transient failure) or never answers (docker
    waits: the probe timeout applies)."""

    def __init__(self, *, answer: bool) -> None:
        self._socket = socket.socket()
        self._socket.bind(("127.0.0.1", 0))
        self._socket.listen(16)
        self.address = f"127.0.0.1:{self._socket.getsockname()[1]}"
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        if answer:
            self._socket.settimeout(0.1)
            self._thread = threading.Thread(target=self._close_connections, daemon=True)
            self._thread.start()

    def _close_connections(self) -> None:
        while not self._stopped.is_set():
            try:
                connection, _ = self._socket.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            connection.close()

    def close(self) -> None:
        self._stopped.set()
        if self._thread is not None:
            self._thread.join()
        self._socket.close()


# --- the tests ------------------------------------------------------------------------------


@unittest.skipIf(PROBLEM, PROBLEM or "")
class HashBaseImagesTest(unittest.TestCase):
    registry: str
    engine: str

    @classmethod
    def setUpClass(cls) -> None:
        cls.registry = e2e_support.test_registry()
        cls.engine = engine_platform()

    def setUp(self) -> None:
        unique = uuid.uuid4().hex[:12]
        self.namespace = f"gdi-e2e-base/{unique}"  # this test's base images live under it
        self.repository = f"{self.namespace}/out"  # what the tool builds
        self.root = tempfile.mkdtemp(prefix="gdi-e2e-base-")
        self.addCleanup(remove_tree, self.root)
        self.addCleanup(remove_images, self.repository)
        os.mkdir(os.path.join(self.root, "ctx"))
        with open(os.path.join(self.root, "ctx", "hello.txt"), "w", encoding="utf-8") as file:
            file.write(f"hello from {unique}\n")

    # --- helpers

    def base(self, name: str = "base", variant: str = "") -> str:
        """Pushes a busybox image as <registry>/<namespace>/<name>:1 (again, for a new
        variant: the tag moves) and returns that reference."""
        return busybox_image(self.registry, f"{self.namespace}/{name}", "1", variant)

    def write_dockerfile(self, text: str, name: str = "Dockerfile") -> str:
        path = f"ctx/{name}"
        with open(os.path.join(self.root, path), "w", encoding="utf-8") as file:
            file.write(text)
        return path

    def run_tool(
        self,
        *extra: str,
        dockerfile: str = "ctx/Dockerfile",
        registry: str | None = None,
        env: dict[str, str] | None = None,
        timeout: float = TOOL_TIMEOUT,
    ) -> subprocess.CompletedProcess[str]:
        argv = ["--context", "ctx", "--dockerfile", dockerfile, "--repository", self.repository]
        argv += ["--container-registry", registry or self.registry]
        return run_tool(
            *argv,
            *extra,
            cwd=self.root,
            env={"DOCKER_BUILDKIT": "0", **(env or {})},
            timeout=timeout,
        )

    def succeed(self, *extra: str, dockerfile: str = "ctx/Dockerfile") -> str:
        completed = self.run_tool(*extra, dockerfile=dockerfile)
        self.assertEqual(completed.returncode, 0, completed.stderr)
        return completed.stdout

    def image_name(self, *extra: str, dockerfile: str = "ctx/Dockerfile") -> str:
        return self.succeed(*extra, "--print-image-name", dockerfile=dockerfile).strip()

    def explain_bases(self, *extra: str, dockerfile: str = "ctx/Dockerfile") -> list[str]:
        """The `base` lines of --explain --hash-base-images, checked against its last line."""
        lines = self.succeed(
            "--hash-base-images", *extra, "--explain", dockerfile=dockerfile
        ).splitlines()
        name = self.image_name("--hash-base-images", *extra, dockerfile=dockerfile)
        self.assertEqual(lines[-1], f"image  {name}")
        return [line for line in lines if line.startswith("base  ")]

    def explain_json_bases(self, *extra: str, dockerfile: str = "ctx/Dockerfile") -> list[Any]:
        """The `base` entries of --explain json --hash-base-images."""
        output = self.succeed(
            "--hash-base-images", *extra, "--explain", "json", dockerfile=dockerfile
        )
        entries = [json.loads(line) for line in output.splitlines()]
        name = self.image_name("--hash-base-images", *extra, dockerfile=dockerfile)
        self.assertEqual(entries[-1], {"image": name})
        return [entry for entry in entries if entry.get("kind") == "base"]

    def assert_fails_naming(
        self, completed: subprocess.CompletedProcess[str], image: str, lookups: int = 1
    ) -> str:
        """Exit 1, one [ERROR] line (the last) naming `image`, no traceback, nothing built,
        `image` looked up `lookups` times (1: not retried); returns the error line."""
        self.assertEqual(completed.returncode, 1, completed.stderr)
        self.assertEqual(completed.stdout, "")
        lines = completed.stderr.splitlines()
        errors = [line for line in lines if "[ERROR]" in line]
        self.assertEqual(errors, lines[-1:], completed.stderr)
        self.assertIn(image, errors[0])
        self.assertNotIn("Traceback", completed.stderr)
        subcommands = [command[0] for command in docker_commands(completed.stderr)]
        for step in ("build", "push", "pull", "tag"):
            self.assertNotIn(step, subcommands, completed.stderr)
        lookups_made = docker_commands(completed.stderr).count([*INSPECT_VERBOSE, image])
        self.assertEqual(lookups_made, lookups, completed.stderr)
        return errors[0]

    # --- 1. the tag follows the base image; without the option it is the original's

    def test_moved_base_image_gives_a_new_tag_and_a_new_build(self) -> None:
        base = self.base()
        self.write_dockerfile(f"FROM {base}\nRUN echo hi > /hi\n")
        original = f"{self.registry}/{self.repository}:" + original_tag(
            self.root, "", "ctx/Dockerfile", "ctx"
        )
        self.assertEqual(self.image_name(), original)

        first = self.image_name("--hash-base-images")
        self.assertEqual(self.image_name("--hash-base-images"), first)  # stable
        self.assertNotEqual(first, original)
        built = self.run_tool("--hash-base-images")
        self.assertEqual(built.returncode, 0, built.stderr)
        self.assertIn(f"Image: {first}", built.stderr)
        self.assertIn("Image not found, building and pushing...", built.stderr)
        subcommands = [command[0] for command in docker_commands(built.stderr)]
        self.assertEqual(subcommands.count("build"), 1, built.stderr)
        self.assertIn([*INSPECT_VERBOSE, base], docker_commands(built.stderr))
        tags = registry_tags(self.registry, self.repository)
        self.assertEqual(tags, [first.rsplit(":", 1)[1]])

        self.base(variant="moved")  # upstream moves the tag
        second = self.image_name("--hash-base-images")
        self.assertNotEqual(second, first)
        self.assertEqual(self.image_name(), original)  # without the option: unchanged
        rebuilt = self.run_tool("--hash-base-images")
        self.assertEqual(rebuilt.returncode, 0, rebuilt.stderr)
        self.assertIn(f"Image: {second}", rebuilt.stderr)
        self.assertIn("Image not found, building and pushing...", rebuilt.stderr)
        self.assertIn(second.rsplit(":", 1)[1], registry_tags(self.registry, self.repository))
        # ... and the new image is built on the moved base.
        ran = docker("run", "--rm", second, "cat", "/variant", "/hi")
        self.assertEqual(ran.stdout, "moved\nhi\n")

    # --- 2. FROM ${ARG} with the value from --docker-build-args

    def test_base_image_named_by_a_build_arg(self) -> None:
        base = self.base()
        # The default would not resolve: only the build arg's value can.
        self.write_dockerfile(
            f"ARG BASE={self.registry}/{self.namespace}/no-such-default:1\n"
            "FROM ${BASE}\nRUN echo hi > /hi\n"
        )
        args = ("--docker-build-args", f"--build-arg BASE={base}")
        digest = registry_digest(base)
        bases = self.explain_json_bases(*args)
        self.assertEqual(
            bases, [{"kind": "base", "name": base, "digest": digest, "platform": None}]
        )
        name = self.image_name("--hash-base-images", *args)
        self.assertEqual(self.image_name("--hash-base-images", *args), name)
        built = self.run_tool("--hash-base-images", *args)
        self.assertEqual(built.returncode, 0, built.stderr)
        self.assertIn(f"Image: {name}", built.stderr)
        self.assertIn("Image not found, building and pushing...", built.stderr)

        self.base(variant="moved")
        self.assertNotEqual(self.image_name("--hash-base-images", *args), name)

    # --- 3. stages and scratch are no base images; `# syntax=` is one

    def test_multi_stage_dockerfile_resolves_only_the_real_image(self) -> None:
        base = self.base()
        self.write_dockerfile(
            f"FROM {base} AS build\nRUN echo built > /built\n"
            "FROM build\nRUN cat /built\n"
            "FROM scratch\nCOPY --from=build /built /built\n"
        )
        digest = registry_digest(base)
        self.assertEqual(self.explain_bases(), [f"base  {base}@{digest}"])
        self.assertEqual(
            self.explain_json_bases(),
            [{"kind": "base", "name": base, "digest": digest, "platform": None}],
        )
        completed = self.run_tool("--hash-base-images", "--print-image-name")
        self.assertEqual(completed.returncode, 0, completed.stderr)
        inspected = [c[-1] for c in docker_commands(completed.stderr) if c[:4] == INSPECT_VERBOSE]
        self.assertEqual(inspected, [base])

    def test_syntax_directive_image_is_a_base_image(self) -> None:
        base = self.base()
        frontend = self.base("frontend", variant="frontend")
        self.write_dockerfile(f"# syntax={frontend}\nFROM {base}\nRUN echo hi > /hi\n")
        self.assertEqual(
            self.explain_bases(),
            [
                f"base  {frontend}@{registry_digest(frontend)}",
                f"base  {base}@{registry_digest(base)}",
            ],
        )

    # --- 4. FROM name@sha256:... is used as written

    def test_digest_pinned_base_image_is_not_looked_up(self) -> None:
        base = self.base()
        digest = registry_digest(base)
        pinned = f"{base.rsplit(':', 1)[0]}@{digest}"
        self.write_dockerfile(f"FROM {pinned}\nRUN echo hi > /hi\n")

        completed = self.run_tool("--hash-base-images", "--explain")
        self.assertEqual(completed.returncode, 0, completed.stderr)
        self.assertIn(f"base  {pinned}\n", completed.stdout)
        inspected = [
            c for c in docker_commands(completed.stderr) if c[:2] == ["manifest", "inspect"]
        ]
        self.assertEqual(inspected, [], completed.stderr)
        self.assertEqual(
            self.explain_json_bases(),
            [{"kind": "base", "name": base.rsplit(":", 1)[0], "digest": digest, "platform": None}],
        )

        name = self.image_name("--hash-base-images")
        self.base(variant="moved")  # the tag moves; the digest written does not
        self.assertEqual(self.image_name("--hash-base-images"), name)
        built = self.run_tool("--hash-base-images")
        self.assertEqual(built.returncode, 0, built.stderr)
        self.assertIn(f"Image: {name}", built.stderr)
        self.assertIn("Image not found, building and pushing...", built.stderr)
        commands = docker_commands(built.stderr)
        self.assertNotIn([*INSPECT_VERBOSE, pinned], commands)
        self.assertEqual([c for c in commands if c[:4] == INSPECT_VERBOSE], [], built.stderr)

    # --- 5. an unresolvable base image stops the run before building

    def test_missing_tag_is_a_one_line_error_and_nothing_is_built(self) -> None:
        self.base()  # the repository exists; the tag does not
        missing = f"{self.registry}/{self.namespace}/base:no-such-tag"
        self.write_dockerfile(f"FROM {missing}\nRUN echo hi > /hi\n")
        line = self.assert_fails_naming(self.run_tool("--hash-base-images"), missing)
        self.assertIn("cannot resolve base image", line)
        self.assert_fails_naming(self.run_tool("--hash-base-images", "--print-image-name"), missing)
        self.assertEqual(registry_tags(self.registry, self.repository), [])
        # Without the option nothing is looked up: the original's name.
        self.assertTrue(self.image_name().startswith(f"{self.registry}/{self.repository}:"))

    def test_unreachable_base_registry_is_a_one_line_error_and_nothing_is_built(self) -> None:
        stopped = f"127.0.0.1:{free_port()}"  # no registry listens there
        image = f"{stopped}/{self.namespace}/base:1"
        self.write_dockerfile(f"FROM {image}\nRUN echo hi > /hi\n")
        line = self.assert_fails_naming(self.run_tool("--hash-base-images"), image)
        self.assertIn("connection refused", line)
        self.assert_fails_naming(self.run_tool("--hash-base-images", "--explain"), image)
        self.assertEqual(registry_tags(self.registry, self.repository), [])

    def test_registry_refusing_us_is_a_one_line_error_not_retried(self) -> None:
        htpasswd = os.path.join(self.root, "htpasswd")
        with open(htpasswd, "w", encoding="utf-8") as file:
            file.write(HTPASSWD)
        with e2e_support.LocalRegistry(htpasswd=htpasswd) as locked:
            image = f"{locked.address}/{self.namespace}/base:1"
            self.write_dockerfile(f"FROM {image}\nRUN echo hi > /hi\n")
            empty_config = os.path.join(self.root, "docker-config")
            os.mkdir(empty_config, 0o700)
            completed = self.run_tool("--hash-base-images", env={"DOCKER_CONFIG": empty_config})
            line = self.assert_fails_naming(completed, image)
        self.assertRegex(line, "unauthorized|no basic auth credentials|authentication required")

    def test_transient_failures_are_retried_then_a_one_line_error(self) -> None:
        with FakeRegistryHost(answer=True) as flaky:
            image = f"{flaky.address}/{self.namespace}/base:1"
            self.write_dockerfile(f"FROM {image}\nRUN echo hi > /hi\n")
            retries = ("--retries", "2", "--retry-delay", "0")
            completed = self.run_tool("--hash-base-images", *retries)
            self.assert_fails_naming(completed, image, lookups=3)
        self.assertEqual(completed.stderr.count("failed for a transient reason"), 2)

    def test_registry_that_never_answers_times_out(self) -> None:
        # docker ignores the first SIGTERM while it connects: each timeout costs the
        # tool's 5 s grace before SIGKILL too, so one attempt only.
        with FakeRegistryHost(answer=False) as silent:
            image = f"{silent.address}/{self.namespace}/base:1"
            self.write_dockerfile(f"FROM {image}\nRUN echo hi > /hi\n")
            limits = ("--probe-timeout", "1", "--retries", "0")
            completed = self.run_tool("--hash-base-images", *limits, timeout=60)
            line = self.assert_fails_naming(completed, image)
        self.assertIn("no answer within 1 s", line)

    # --- 6. a manifest list: the digest of the build platform's manifest

    def push_list(self, name: str, amd64_like: str, other: str, other_arch: str) -> str:
        """Makes <namespace>/<name>:1 a list of `amd64_like` (the engine's platform) and
        `other` (linux/<other_arch>), and returns the list's reference."""
        reference = f"{self.registry}/{self.namespace}/{name}:1"
        with tempfile.TemporaryDirectory(prefix="gdi-docker-config-") as config:
            env = {**os.environ, "DOCKER_CONFIG": config, "DOCKER_CLI_EXPERIMENTAL": "enabled"}
            engine_os, engine_arch = self.engine.split("/")[:2]
            for args in (
                ["create", "--insecure", reference, amd64_like, other],
                ["annotate", "--os", engine_os, "--arch", engine_arch, reference, amd64_like],
                ["annotate", "--os", "linux", "--arch", other_arch, reference, other],
                ["push", "--purge", "--insecure", reference],
            ):
                completed = subprocess.run(
                    ["docker", "manifest", *args],
                    env=env,
                    capture_output=True,
                    text=True,
                    check=False,
                    timeout=120,
                )
                self.assertEqual(completed.returncode, 0, completed.stderr)
        return reference

    def test_manifest_list_resolves_to_the_build_platforms_manifest(self) -> None:
        other_platform = "linux/arm64" if self.engine != "linux/arm64" else "linux/amd64"
        native = self.base("native", variant="native")
        other = self.base("other", variant="other")
        multi = self.push_list("multi", native, other, other_platform.split("/")[1])
        list_digest = registry_digest(multi)
        native_digest, other_digest = registry_digest(native), registry_digest(other)
        self.assertEqual(len({list_digest, native_digest, other_digest}), 3)

        # The engine's platform.
        self.write_dockerfile(f"FROM {multi}\nRUN echo hi > /hi\n")
        self.assertEqual(self.explain_bases(), [f"base  {multi}@{native_digest}  ({self.engine})"])
        self.assertEqual(
            self.explain_json_bases(),
            [{"kind": "base", "name": multi, "digest": native_digest, "platform": self.engine}],
        )
        # FROM --platform.
        other_file = self.write_dockerfile(
            f"FROM --platform={other_platform} {multi}\nRUN echo hi > /hi\n", "Dockerfile.other"
        )
        self.assertEqual(
            self.explain_json_bases(dockerfile=other_file),
            [{"kind": "base", "name": multi, "digest": other_digest, "platform": other_platform}],
        )
        # --platform in the build args.
        platform_args = ("--docker-build-args", f"--platform {other_platform}")
        self.assertEqual(
            self.explain_bases(*platform_args),
            [f"base  {multi}@{other_digest}  ({other_platform})"],
        )

        native_name = self.image_name("--hash-base-images")
        other_name = self.image_name("--hash-base-images", dockerfile=other_file)
        args_name = self.image_name("--hash-base-images", *platform_args)

        # The other platform's image moves: the list's digest moves with it.
        moved = self.base("other", variant="other-moved")
        self.push_list("multi", native, moved, other_platform.split("/")[1])
        self.assertNotEqual(registry_digest(multi), list_digest)
        moved_digest = registry_digest(moved)
        self.assertNotEqual(moved_digest, other_digest)
        self.assertEqual(self.image_name("--hash-base-images"), native_name)
        self.assertNotEqual(
            self.image_name("--hash-base-images", dockerfile=other_file), other_name
        )
        self.assertNotEqual(self.image_name("--hash-base-images", *platform_args), args_name)
        self.assertEqual(
            self.explain_json_bases(dockerfile=other_file),
            [{"kind": "base", "name": multi, "digest": moved_digest, "platform": other_platform}],
        )

    def test_platform_spellings_docker_accepts(self) -> None:
        """Other spellings of a list entry's platform choose that entry, as in docker.

        docker normalizes the platform before it matches (containerd's platforms.Normalize):
        `linux/arm64/v8`, `arm64`, `linux/aarch64` and `LINUX/ARM64` all build the arm64
        entry of a list annotated plainly `linux/arm64` (checked with the classic builder)."""
        native = self.base("native", variant="native")
        other = self.base("other", variant="other")
        engine_arch = self.engine.split("/")[1]
        other_arch = "arm64" if engine_arch != "arm64" else "amd64"
        multi = self.push_list("multi", native, other, other_arch)
        other_digest = registry_digest(other)
        spellings: dict[str, tuple[str, ...]] = {
            "arm64": ("linux/arm64/v8", "arm64", "linux/aarch64", "LINUX/ARM64"),
            "amd64": ("linux/x86_64", "amd64", "linux/amd64/v1"),
        }
        for spelling in spellings[other_arch]:
            with self.subTest(spelling):
                self.write_dockerfile(f"FROM --platform={spelling} {multi}\n")
                bases = self.explain_json_bases()
                self.assertEqual([base["digest"] for base in bases], [other_digest])


if __name__ == "__main__":
    unittest.main()
