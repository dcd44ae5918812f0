"""End to end: the real CLI, a real docker engine, a real registry.

Needs a docker engine and Debian's docker-registry (a throwaway registry is
started for the test run, or $GDI_TEST_REGISTRY names one); without them
the tests are skipped, except under CI=true, where that is a failure.
"""

from __future__ import annotations

import os
import subprocess
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
    test_registry,
)
from tests.fixtures import Dir, File, build_tree
from tests.helpers import ScratchDirTestCase

UNAVAILABLE = e2e_problem()  # under CI=true, a missing engine or registry raises instead
REGISTRY = "" if UNAVAILABLE else test_registry()

# bcrypt of "e2e-password", for a registry that wants credentials.
HTPASSWD = "tester:$2b$05$NqWfjEB8QScDhnO.lWiXEOvwDEUAJk6vOWrHuu1g8M57e1UrSKDmC\n"

DOCKERFILE = b"FROM scratch\nARG FLAVOR=plain\nCOPY hello.txt /hello.txt\n"


@unittest.skipIf(UNAVAILABLE, UNAVAILABLE or "")
class EndToEndTest(ScratchDirTestCase):
    def setUp(self) -> None:
        super().setUp()
        # A repository no other run uses, and content no other image has.
        self.repository = f"gdi-e2e/{uuid.uuid4().hex[:12]}"
        self.addCleanup(remove_images, self.repository)
        self.outputs: list[str] = []  # the tool's runs', whose builds name their images
        self.addCleanup(lambda: remove_dangling_images_of("".join(self.outputs)))
        build_tree(
            self.root,
            [
                File("Dockerfile", DOCKERFILE),
                Dir("ctx"),
                File("ctx/hello.txt", f"hello from {self.repository}\n".encode()),
            ],
        )

    def run_tool(
        self, *extra: str, registry: str | None = REGISTRY, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        argv = ["--context", "ctx", "--repository", self.repository]
        if registry is not None:
            argv += ["--container-registry", registry]
        completed = run_tool(*argv, *extra, env=env)
        self.outputs.append(completed.stderr)
        return completed

    def image_name(self, *extra: str, registry: str | None = REGISTRY) -> str:
        completed = self.run_tool(*extra, "--print-image-name", registry=registry)
        self.assertEqual(completed.returncode, 0, completed.stderr)
        return completed.stdout.strip()

    def assert_succeeded(self, completed: subprocess.CompletedProcess[str]) -> None:
        self.assertEqual(completed.returncode, 0, completed.stderr)

    def test_miss_builds_and_pushes_then_hit_pulls_the_same_image(self) -> None:
        image = self.image_name()
        tag = image.rsplit(":", 1)[1]
        self.assertEqual(registry_tags(REGISTRY, self.repository), [])

        first = self.run_tool()
        self.assert_succeeded(first)
        self.assertIn("Image not found, building and pushing...", first.stderr)
        self.assertEqual(registry_tags(REGISTRY, self.repository), [tag])
        pushed_id = image_id(image)
        self.assertIsNotNone(pushed_id)
        self.assertEqual(image_id(self.repository), pushed_id)

        remove_images(self.repository)
        self.assertIsNone(image_id(image))
        second = self.run_tool()
        self.assert_succeeded(second)
        self.assertIn("Image found, pulling...", second.stderr)
        self.assertNotIn("building", second.stderr)
        self.assertEqual(image_id(image), pushed_id)
        self.assertEqual(image_id(self.repository), pushed_id)

    def test_changes_give_a_new_tag_and_a_new_build(self) -> None:
        self.assert_succeeded(self.run_tool())
        names = {self.image_name()}
        self.assertEqual(self.image_name(), next(iter(names)))  # unchanged: same tag

        def change_content() -> None:
            with open("ctx/hello.txt", "ab") as file:
                file.write(b"more\n")

        changes = [
            ("content", change_content, ()),
            ("mode", lambda: os.chmod("ctx/hello.txt", 0o600), ()),
            ("build arg", lambda: None, ("--docker-build-args", "--build-arg FLAVOR=spicy")),
        ]
        for what, change, extra in changes:
            with self.subTest(what):
                change()
                image = self.image_name(*extra)
                self.assertNotIn(image, names)
                names.add(image)
                completed = self.run_tool(*extra)
                self.assert_succeeded(completed)
                self.assertIn("Image not found, building and pushing...", completed.stderr)
                self.assertIn(image.rsplit(":", 1)[1], registry_tags(REGISTRY, self.repository))
        self.assertEqual(len(registry_tags(REGISTRY, self.repository)), 4)

    def test_failed_build_pushes_and_tags_nothing(self) -> None:
        with open("Dockerfile", "ab") as file:
            file.write(b"COPY no-such-file /\n")
        completed = self.run_tool()
        self.assertEqual(completed.returncode, 1)
        self.assertRegex(completed.stderr, r"\[ERROR\] - docker build failed with exit status \d+")
        self.assertNotIn("Traceback", completed.stderr)
        self.assertEqual(registry_tags(REGISTRY, self.repository), [])
        self.assertIsNone(image_id(self.repository))

    def test_stopped_registry_is_a_clear_error_and_nothing_is_built(self) -> None:
        registry = LocalRegistry()
        registry.stop()
        completed = self.run_tool(registry=registry.address)
        self.assertEqual(completed.returncode, 1)
        last = completed.stderr.splitlines()[-1]
        self.assertIn(f"[ERROR] - cannot reach registry {registry.address}: ", last)
        self.assertIn("connection refused", last)
        self.assertIn("(is the registry up and reachable?)", last)
        self.assertNotIn("Running subprocess in", completed.stderr.split("manifest inspect")[1])
        self.assertIsNone(image_id(self.image_name(registry=registry.address)))

    def test_registry_that_wants_credentials(self) -> None:
        with open("htpasswd", "w", encoding="utf-8") as file:
            file.write(HTPASSWD)
        registry = LocalRegistry(htpasswd=os.path.abspath("htpasswd"))
        self.addCleanup(registry.stop)
        os.mkdir("docker-config", 0o700)
        config = {"DOCKER_CONFIG": os.path.abspath("docker-config")}

        refused = self.run_tool(registry=registry.address, env=config)
        self.assertEqual(refused.returncode, 1)
        self.assertIn(
            f"[ERROR] - registry {registry.address} refused our credentials: ", refused.stderr
        )
        self.assertIn(f"(are you logged in? docker login {registry.address})", refused.stderr)
        self.assertNotIn("build", refused.stderr.split("manifest inspect")[1])

        login = subprocess.run(
            ["docker", "login", "--username", "tester", "--password-stdin", registry.address],
            input="e2e-password",
            capture_output=True,
            text=True,
            env={**os.environ, **config},
            check=False,
        )
        self.assertEqual(login.returncode, 0, login.stderr)
        accepted = self.run_tool(registry=registry.address, env=config)
        self.assert_succeeded(accepted)
        self.assertIn("Image not found, building and pushing...", accepted.stderr)

    def test_local_only_mode_builds_once_then_reuses(self) -> None:
        image = self.image_name(registry=None)
        self.assertEqual(image.split(":")[0], self.repository)
        first = self.run_tool(registry=None)
        self.assert_succeeded(first)
        self.assertIn("Image not found locally, building...", first.stderr)
        built_id = image_id(image)
        self.assertIsNotNone(built_id)
        second = self.run_tool(registry=None)
        self.assert_succeeded(second)
        self.assertIn("Image found locally, reusing it.", second.stderr)
        self.assertNotIn(" build ", second.stderr)
        self.assertEqual(image_id(self.repository), built_id)
        self.assertNotIn("push", first.stderr + second.stderr)

    def test_docker_itself_is_real(self) -> None:
        """Guards against a stand-in on PATH making the other tests vacuous."""
        version = docker("version", "--format", "{{.Server.Version}}")
        self.assertRegex(version.stdout.strip(), r"^\d+\.\d+")
