"""End to end, where CI really runs: a read-only registry and one that
wants credentials we lack (--no-push), a fresh runner with a restored cache
directory (--image-cache-dir), and runners of two architectures sharing a
registry (the platform in the tag). A real engine and real registries."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import unittest
import uuid

from tests.e2e_support import (
    LocalRegistry,
    docker,
    e2e_problem,
    image_id,
    registry_tags,
    remove_dangling_images_of,
    remove_images,
    run_tool,
)
from tests.fixtures import Dir, File, build_tree
from tests.helpers import SCRIPT, ScratchDirTestCase
from tests.test_e2e import HTPASSWD

UNAVAILABLE = e2e_problem()  # under CI=true, a missing engine or registry raises instead

DOCKERFILE = b"FROM scratch\nCOPY hello.txt /hello.txt\n"


def outputs_of(path: str) -> dict[str, str]:
    with open(path, encoding="utf-8") as file:
        return dict(line.split("=", 1) for line in file.read().splitlines())


@unittest.skipIf(UNAVAILABLE, UNAVAILABLE or "")
class EndToEndCase(ScratchDirTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.set_env(DOCKER_DEFAULT_PLATFORM=None)  # the engine's own, as on a runner
        self.repository = f"gdi-e2e/{uuid.uuid4().hex[:12]}"
        self.addCleanup(remove_images, self.repository)
        self.logs: list[str] = []
        self.addCleanup(lambda: remove_dangling_images_of("".join(self.logs)))
        build_tree(
            self.root,
            [
                File("Dockerfile", DOCKERFILE),
                Dir("ctx"),
                File("ctx/hello.txt", f"hello from {self.repository}\n".encode()),
            ],
        )
        self.output = os.path.join(self.root, "outputs")

    def run_tool(
        self, *extra: str, registry: str | None, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        argv = ["--context", "ctx", "--repository", self.repository]
        if registry is not None:
            argv += ["--container-registry", registry]
        if os.path.exists(self.output):
            os.remove(self.output)
        completed = run_tool(*argv, "--output-file", self.output, *extra, env=env)
        self.logs.append(completed.stderr)
        return completed

    def result(self, completed: subprocess.CompletedProcess[str]) -> str:
        self.assertEqual(completed.returncode, 0, completed.stderr)
        return outputs_of(self.output)["result"]

    def change_content(self) -> None:
        with open("ctx/hello.txt", "ab") as file:
            file.write(b"changed\n")


class NoPushTest(EndToEndCase):
    def test_a_read_only_registry_hit_pulls_and_a_miss_builds_without_pushing(self) -> None:
        with LocalRegistry() as writable:
            pushed = self.run_tool(registry=writable.address)
            self.assertEqual(self.result(pushed), "pushed")
            image = outputs_of(self.output)["image"]
            pushed_id = image_id(image)
            with LocalRegistry(read_only=True, storage=writable.storage) as read_only:
                remove_images(self.repository)
                hit = self.run_tool("--no-push", registry=read_only.address)
                self.assertEqual(self.result(hit), "pulled")
                pulled = outputs_of(self.output)["image"]
                self.assertEqual(image_id(pulled), pushed_id)
                self.assertEqual(image_id(self.repository), pushed_id)

                self.change_content()
                miss = self.run_tool("--no-push", registry=read_only.address)
                self.assertEqual(self.result(miss), "built")
                built = outputs_of(self.output)["image"]
                self.assertNotEqual(image_id(built), pushed_id)
                self.assertEqual(image_id(self.repository), image_id(built))
                self.assertIn("Not pushing the image (--no-push).", miss.stderr)
                self.assertEqual(
                    registry_tags(read_only.address, self.repository), [image.rsplit(":", 1)[1]]
                )

    def test_a_registry_that_wants_credentials_we_lack_means_a_local_build(self) -> None:
        with tempfile.TemporaryDirectory() as scratch:
            htpasswd = os.path.join(scratch, "htpasswd")
            with open(htpasswd, "w", encoding="utf-8") as file:
                file.write(HTPASSWD)
            config = os.path.join(scratch, "docker-config")  # logged in nowhere
            os.mkdir(config)
            with LocalRegistry(htpasswd=htpasswd) as registry:
                env = {"DOCKER_CONFIG": config}
                completed = self.run_tool("--no-push", registry=registry.address, env=env)
                self.assertEqual(self.result(completed), "built")
                warnings = [line for line in completed.stderr.splitlines() if "[WARNING]" in line]
                self.assertEqual(len(warnings), 1, completed.stderr)
                self.assertIn("refused our credentials", warnings[0])
                self.assertTrue(warnings[0].endswith("building locally (--no-push)."))
                self.assertIsNotNone(image_id(self.repository))
                # Nothing was pushed: the registry's own catalog, asked with credentials.
                catalog = subprocess.run(
                    [
                        "curl",
                        "-s",
                        "-u",
                        "tester:e2e-password",
                        f"http://{registry.address}/v2/_catalog",
                    ],
                    capture_output=True,
                    text=True,
                    check=False,
                )
                if catalog.returncode == 0:
                    self.assertNotIn(self.repository, catalog.stdout)


class ImageCacheTest(EndToEndCase):
    def setUp(self) -> None:
        super().setUp()
        self.cache = os.path.join(self.root, "cache")

    def test_a_fresh_runner_loads_the_image_instead_of_building_it(self) -> None:
        first = self.run_tool("--image-cache-dir", self.cache, registry=None)
        self.assertEqual(self.result(first), "built")
        image = outputs_of(self.output)["image"]
        built_id = image_id(image)
        archives = os.listdir(self.cache)
        self.assertEqual(
            archives, [f"{self.repository.replace('/', '+')}@{image.split(':')[1]}.tar"]
        )

        remove_images(self.repository)  # a fresh runner: the engine lacks the image
        second = self.run_tool("--image-cache-dir", self.cache, registry=None)
        self.assertEqual(self.result(second), "loaded")
        self.assertNotIn(" build ", second.stderr)
        self.assertEqual(image_id(image), built_id)
        self.assertEqual(image_id(self.repository), built_id)
        self.assertRegex(second.stderr, r"Loaded \d+\.\d kB in \d+\.\d s")

    def test_a_truncated_archive_is_removed_and_the_image_built(self) -> None:
        self.assertEqual(
            self.result(self.run_tool("--image-cache-dir", self.cache, registry=None)), "built"
        )
        (archive,) = os.listdir(self.cache)
        path = os.path.join(self.cache, archive)
        with open(path, "r+b") as file:
            file.truncate(os.path.getsize(path) // 2)
        remove_images(self.repository)
        completed = self.run_tool("--image-cache-dir", self.cache, registry=None)
        self.assertEqual(self.result(completed), "built")
        self.assertIn(f"Cannot load {archive}: docker load failed", completed.stderr)
        self.assertEqual(os.listdir(self.cache), [archive])  # saved again, whole
        remove_images(self.repository)
        self.assertEqual(
            self.result(self.run_tool("--image-cache-dir", self.cache, registry=None)), "loaded"
        )

    def test_a_cancelled_save_leaves_nothing_a_later_run_would_load(self) -> None:
        wrapper = os.path.join(self.root, "docker-slow-save")
        with open(wrapper, "w", encoding="utf-8") as file:
            file.write(
                '#!/bin/sh\nif [ "$1" = save ]; then docker "$@" && sleep 60; exit; fi\n'
                'exec docker "$@"\n'
            )
        os.chmod(wrapper, 0o755)
        argv = [sys.executable, SCRIPT, "--context", "ctx", "--repository", self.repository]
        process = subprocess.Popen(
            [*argv, "--image-cache-dir", self.cache, "--docker-path", wrapper],
            stderr=subprocess.PIPE,
            text=True,
        )
        assert process.stderr is not None
        log = ""
        deadline = time.monotonic() + 120
        while " save --output " not in log and time.monotonic() < deadline:
            log += process.stderr.readline()
        time.sleep(1)  # the save itself is done; its directory is still the tool's
        process.send_signal(signal.SIGTERM)
        log += process.stderr.read()
        self.logs.append(log)
        self.assertEqual(process.wait(timeout=60), 143, log)
        self.assertEqual(os.listdir(self.cache), [])


class PlatformTest(EndToEndCase):
    """An arm64 image pushed under the tag an x86_64 runner computes."""

    def setUp(self) -> None:
        super().setUp()
        engine = docker("version", "--format", "{{.Server.Arch}}").stdout.strip()
        if engine != "amd64":
            self.skipTest(f"an amd64 engine builds the foreign image here, not {engine}")

    def push_arm64_image_as(self, image: str) -> str:
        """Builds the same context for linux/arm64 and pushes it as `image`."""
        built = docker(
            "build",
            "--platform",
            "linux/arm64",
            "--tag",
            image,
            "--file",
            "Dockerfile",
            "ctx",
            check=False,
        )
        self.logs.append(built.stdout + built.stderr)
        self.assertEqual(built.returncode, 0, built.stderr)
        self.assertEqual(docker("push", image, check=False).returncode, 0)
        architecture = docker("image", "inspect", "--format", "{{.Architecture}}", image)
        self.assertEqual(architecture.stdout.strip(), "arm64")
        remove_images(self.repository)
        return image

    def architecture(self, image: str) -> str:
        return docker("image", "inspect", "--format", "{{.Architecture}}", image).stdout.strip()

    def test_the_platform_in_the_tag_keeps_runners_of_two_architectures_apart(self) -> None:
        with LocalRegistry() as registry:
            for options in (("--hash-platform",), ("--hash-mode", "docker")):
                with self.subTest(options):
                    name = self.run_tool("--print-image-name", *options, registry=registry.address)
                    self.assertEqual(name.returncode, 0, name.stderr)
                    amd64_name = name.stdout.strip()
                    # The arm64 runner's name for the same inputs.
                    arm64_name = self.run_tool(
                        "--print-image-name",
                        *options,
                        registry=registry.address,
                        env={"DOCKER_DEFAULT_PLATFORM": "linux/arm64"},
                    ).stdout.strip()
                    self.assertNotEqual(amd64_name, arm64_name)
                    self.push_arm64_image_as(arm64_name)
                    completed = self.run_tool(*options, registry=registry.address)
                    self.assertEqual(self.result(completed), "pushed")
                    self.assertEqual(self.architecture(amd64_name), "amd64")
                    self.assertEqual(self.architecture(self.repository), "amd64")
                    remove_images(self.repository)

    def test_without_it_the_original_tag_is_shared_and_the_foreign_image_used(self) -> None:
        """The original's behaviour, kept by default: what --hash-platform is for."""
        with LocalRegistry() as registry:
            name = self.run_tool("--print-image-name", registry=registry.address).stdout.strip()
            self.push_arm64_image_as(name)
            completed = self.run_tool(registry=registry.address)
            self.assertEqual(self.result(completed), "pulled")
            self.assertEqual(self.architecture(self.repository), "arm64")
            inspected = json.loads(docker("image", "inspect", name).stdout)
            self.assertEqual(inspected[0]["Os"], "linux")
