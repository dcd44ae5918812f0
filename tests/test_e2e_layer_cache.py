"""End to end: --layer-cache with a real registry, on both of docker's builders.

- classic: the `docker` on PATH (DOCKER_BUILDKIT=0), which uses a cache image
  only when it is present locally: the tool pulls the cache tag before building;
- BuildKit: Debian's client at /usr/bin/docker with DOCKER_BUILDKIT=1 (the
  engine's built-in BuildKit), which reads the inline cache metadata that
  `--build-arg BUILDKIT_INLINE_CACHE=1` put in the cache image.

Each test has its own repository (so its own cache tag) and a one-second
"expensive" step, and simulates a fresh CI runner between runs: the
repository's local images removed, and for BuildKit its build cache too.

Skipped without docker, /usr/bin/docker, docker-registry or a static busybox
(a failure under CI=true instead). The registry is tests/e2e_support.test_registry()'s.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import unittest
import uuid
from collections.abc import Mapping

from tests.e2e_support import (
    busybox_e2e_problem,
    busybox_image,
    cached_steps,
    docker_commands,
    fail_under_ci,
    manifest_digest,
    test_registry,
)
from tests.helpers import SCRIPT, remove_tree

BUILDKIT_DOCKER = "/usr/bin/docker"  # Debian's docker.io client: BuildKit built in
CACHE_TAG = "latest"  # --layer-cache's default
EXPENSIVE = "RUN sleep 1 && head -c 1000000 /dev/urandom > /big"


def _problem() -> str | None:
    problem = busybox_e2e_problem()  # raises under CI=true
    if problem is None and shutil.which(BUILDKIT_DOCKER) is None:
        problem = fail_under_ci(f"no {BUILDKIT_DOCKER} (Debian's docker.io client, for BuildKit)")
    return problem


PROBLEM = _problem()


def option_values(args: list[str], option: str) -> list[str]:
    """The values of `option` in an argument list, as `--opt VALUE` or `--opt=VALUE`."""
    values = [arg.split("=", 1)[1] for arg in args if arg.startswith(option + "=")]
    values += [args[i + 1] for i, arg in enumerate(args[:-1]) if arg == option]
    return values


class LayerCacheTests(unittest.TestCase):
    """The tests, for the builder a subclass names (deleted below, so not run itself)."""

    registry: str
    base: str
    repository: str
    cache_image: str
    context: str

    builder = ""
    docker_path = ""
    env: Mapping[str, str] = {}
    not_affecting = ""  # --docker-build-args-not-affecting-image-content

    def setUp(self) -> None:
        self.registry = test_registry()
        self.base = busybox_image(self.registry)
        self.repository = f"gdi-e2e-lc/{self.builder}-{uuid.uuid4().hex[:12]}"
        self.cache_image = f"{self.registry}/{self.repository}:{CACHE_TAG}"
        self.context = tempfile.mkdtemp(prefix="gdi-layer-cache-")
        self.addCleanup(remove_tree, self.context)
        self.addCleanup(self.fresh_runner)
        with open(os.path.join(self.context, "Dockerfile"), "w", encoding="utf-8") as file:
            file.write(f"FROM {self.base}\n{EXPENSIVE}\nCOPY small.txt /small.txt\n")
        self.write_small("first")

    # --- helpers

    def write_small(self, text: str) -> None:
        with open(os.path.join(self.context, "small.txt"), "w", encoding="utf-8") as file:
            file.write(f"{text} {self.repository}\n")

    def docker(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.docker_path, *args],
            env={**os.environ, **self.env},
            capture_output=True,
            text=True,
            check=False,
            timeout=300,
        )

    def fresh_runner(self) -> None:
        """Makes the engine look like a new CI runner's for this test's repository."""
        ids: set[str] = set()
        for repository in (f"{self.registry}/{self.repository}", self.repository):
            # By ID: an image whose tag moved on is left with only a repository digest.
            listed = self.docker("image", "ls", "--quiet", "--no-trunc", repository)
            ids.update(listed.stdout.split())
        if ids:
            self.docker("image", "rm", "--force", *sorted(ids))
        if self.builder == "buildkit":
            # BuildKit keeps its own build cache, keyed by content, not by image name, so
            # nothing narrower than the whole cache gives a fresh runner. Global, but the
            # test engine's cache is disposable, and a concurrent build only loses cache
            # (BuildKit does not prune records in use).
            self.docker("builder", "prune", "--all", "--force")

    def run_tool(self, *extra: str) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, SCRIPT, "--container-registry", self.registry]
        argv += ["--repository", self.repository, "--context", self.context]
        argv += ["--dockerfile", os.path.join(self.context, "Dockerfile")]
        argv += ["--docker-path", self.docker_path]
        if self.not_affecting:
            argv.append(f"--docker-build-args-not-affecting-image-content={self.not_affecting}")
        completed = subprocess.run(
            [*argv, *extra],
            env={**os.environ, **self.env},
            capture_output=True,
            text=True,
            check=False,
            timeout=300,
        )
        self.assertEqual(completed.returncode, 0, completed.stdout + completed.stderr)
        return completed

    def image_tag(self) -> str:
        name = self.run_tool("--print-image-name").stdout.strip()
        return name.rsplit(":", 1)[1]

    def digest(self, tag: str) -> str | None:
        return manifest_digest(self.registry, self.repository, tag)

    # --- tests

    def test_miss_with_an_empty_cache_tag_warns_builds_and_pushes_the_tag(
        self,
    ) -> None:
        self.assertIsNone(self.digest(CACHE_TAG))
        completed = self.run_tool("--layer-cache")
        warnings = [line for line in completed.stderr.splitlines() if "[WARNING]" in line]
        self.assertTrue(any(self.cache_image in line for line in warnings), completed.stderr)
        builds = [c for c in docker_commands(completed.stderr) if c[:1] == ["build"]]
        self.assertEqual(len(builds), 1, completed.stderr)
        self.assertEqual(option_values(builds[0], "--cache-from"), [self.cache_image])
        self.assertIn("BUILDKIT_INLINE_CACHE=1", option_values(builds[0], "--build-arg"))
        tag = self.image_tag()
        self.assertIsNotNone(self.digest(tag))
        self.assertEqual(self.digest(CACHE_TAG), self.digest(tag))

    def test_changed_run_on_a_fresh_runner_reuses_the_expensive_step(
        self,
    ) -> None:
        self.run_tool("--layer-cache")
        first = self.digest(CACHE_TAG)
        self.fresh_runner()
        self.write_small("second")
        completed = self.run_tool("--layer-cache")
        output = completed.stdout + completed.stderr
        self.assertIn(EXPENSIVE, cached_steps(output), output)
        self.assertNotIn("COPY small.txt /small.txt", cached_steps(output), output)
        # The cache tag moved, after the push, to the image just built.
        tag = self.image_tag()
        self.assertIsNotNone(self.digest(tag))
        self.assertEqual(self.digest(CACHE_TAG), self.digest(tag))
        self.assertNotEqual(self.digest(CACHE_TAG), first)
        commands = [c[:2] for c in docker_commands(completed.stderr)]
        cache_push = commands.index(["push", self.cache_image])
        image_push = commands.index(["push", f"{self.registry}/{self.repository}:{tag}"])
        self.assertLess(image_push, cache_push)

    def test_without_the_option_a_fresh_runner_rebuilds_the_expensive_step(
        self,
    ) -> None:
        # The control for the test above: the fresh runner really has no cache.
        self.run_tool("--layer-cache")
        self.fresh_runner()
        self.write_small("second")
        completed = self.run_tool()
        output = completed.stdout + completed.stderr
        self.assertNotIn(EXPENSIVE, cached_steps(output), output)
        self.assertNotIn("--cache-from", completed.stderr)

    def test_hit_pulls_and_leaves_the_cache_tag_alone(self) -> None:
        self.run_tool("--layer-cache")
        first_tag = self.image_tag()
        self.write_small("second")
        self.run_tool("--layer-cache")
        moved_to = self.digest(CACHE_TAG)
        self.assertNotEqual(moved_to, self.digest(first_tag))
        # Back to the first content: its image is in the registry, a hit.
        self.write_small("first")
        self.fresh_runner()
        completed = self.run_tool("--layer-cache")
        self.assertIn("Image found, pulling...", completed.stderr)
        subcommands = [c[0] for c in docker_commands(completed.stderr)]
        self.assertNotIn("build", subcommands, completed.stderr)
        self.assertNotIn("push", subcommands, completed.stderr)
        self.assertEqual(self.digest(CACHE_TAG), moved_to)


if PROBLEM is not None:
    print(f"skipping --layer-cache end-to-end tests: {PROBLEM}", file=sys.stderr)


@unittest.skipIf(PROBLEM, PROBLEM or "")
class ClassicBuilderTest(LayerCacheTests):
    builder = "classic"
    docker_path = "docker"
    env: Mapping[str, str] = {"DOCKER_BUILDKIT": "0"}


@unittest.skipIf(PROBLEM, PROBLEM or "")
class BuildKitTest(LayerCacheTests):
    builder = "buildkit"
    docker_path = BUILDKIT_DOCKER
    env: Mapping[str, str] = {"DOCKER_BUILDKIT": "1"}
    # Plain progress (the default when not on a terminal, but said), for "#N CACHED".
    not_affecting = "--progress=plain"


del LayerCacheTests  # only its subclasses are test cases
