"""Side by side with the original: random trees, identical docker calls.

Runs only where the original script is available: $GDI_REFERENCE_SCRIPT, or
../shared/reference/get_docker_image.py beside the repository (as in CI).

The one deliberate difference: before a push, and after a failed one, this
tool asks the registry again (so that concurrent jobs converge). The tests
check that those re-checks are where they belong, then compare the rest.
"""

from __future__ import annotations

import os
import random
import unittest
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from tests.fixtures import (
    Case,
    Dir,
    Fifo,
    File,
    Link,
    Node,
    pseudo_random_bytes,
    run_many_with_fake_docker,
)
from tests.helpers import REPO_DIR, SCRIPT

REFERENCE_SCRIPT = os.environ.get(
    "GDI_REFERENCE_SCRIPT",
    os.path.join(os.path.dirname(REPO_DIR), "shared", "reference", "get_docker_image.py"),
)

NAME_PARTS = ("a", "A", "b", "a.b", "a-b", "a_b", "z", "0", "10", "x y", "caf\u00e9", "\u00e5", "k")
FILE_MODES = (0o644, 0o600, 0o755, 0o444, 0o640)
DIR_MODES = (0o755, 0o700, 0o750, 0o711)
SIZES = (0, 1, 17, 4096, 8191, 8192, 8193, 20_000, 262_144, 262_145)
CONTEXT_SPELLINGS = ("ctx", "./ctx", "ctx/", "/proc/self/cwd/ctx")
BUILD_ARGS = (
    "",
    "--build-arg A=1",
    "--build-arg  A='x  y'",
    '--build-arg "B=two words" --label x=1',
    "--build-arg N=gr\u00fc\u00df",
)
OPTIONS = (
    "--docker-build-args-not-affecting-image-content",
    "--network host --progress=plain",
    "--container-registry",
    "myreg",
    "--repository",
    "team/repo",
)
MISS: dict[str, str] = {}
# Docker's behaviour: a miss, a hit, then a failing build, push, pull and tag.
SCENARIOS: tuple[dict[str, str], ...] = (
    MISS,
    {"FAKE_DOCKER_HAS_IMAGE": "1"},
    {"FAKE_DOCKER_FAIL": "build"},
    {"FAKE_DOCKER_FAIL": "push"},
    {"FAKE_DOCKER_HAS_IMAGE": "1", "FAKE_DOCKER_FAIL": "pull"},
    {"FAKE_DOCKER_FAIL": "tag"},
)


def random_case(rng: random.Random, number: int) -> Case:
    """A random tree that the original can hash: no loops, no dangling links."""
    nodes: list[Node] = [Dir("ctx", rng.choice(DIR_MODES)), Dir("outside")]
    nodes.append(File("outside/shared", b"shared", 0o644))
    dirs, files, used = ["ctx"], [], set()
    for index in range(rng.randint(0, 25)):
        parent = rng.choice(dirs)
        name = f"{rng.choice(NAME_PARTS)}{index % 3 or ''}"
        path = f"{parent}/{name}"
        if path in used:
            continue
        used.add(path)
        kind = rng.random()
        if kind < 0.25:
            nodes.append(Dir(path, rng.choice(DIR_MODES)))
            dirs.append(path)
        elif kind < 0.85:
            size = rng.choice(SIZES)
            data = pseudo_random_bytes(size, f"{number}/{path}")
            nodes.append(File(path, data, rng.choice(FILE_MODES)))
            files.append(path)
        elif kind < 0.9:
            nodes.append(Fifo(path))
        elif kind < 0.95 and files:
            nodes.append(Link(path, os.path.relpath(rng.choice(files), parent)))
        else:
            nodes.append(Link(path, os.path.relpath("outside", parent)))
    # Every directory stays writable by its owner until build_tree sets modes.
    inside = rng.random() < 0.5
    dockerfile = "ctx/Dockerfile" if inside else "Dockerfile"
    nodes.append(File(dockerfile, b"FROM scratch\n", rng.choice(FILE_MODES)))
    return Case(
        f"random #{number}",
        tuple(nodes),
        context=rng.choice(CONTEXT_SPELLINGS),
        dockerfile=dockerfile,
        build_args=rng.choice(BUILD_ARGS),
    )


def without_rechecks(calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Our calls less the registry re-checks after a build and after a failed
    push, which must be exactly there; the original makes neither."""
    kept: list[dict[str, Any]] = []
    for index, call in enumerate(calls):
        if index and call["argv"][:2] == ["manifest", "inspect"]:
            previous = calls[index - 1]["argv"][0]
            if previous not in ("build", "push"):
                raise AssertionError(f"a re-check after {previous!r}: {calls}")
            continue
        kept.append(call)
    return kept


_rng = random.Random(20201130)
CASES = [random_case(_rng, number) for number in range(12)]


@unittest.skipUnless(os.path.isfile(REFERENCE_SCRIPT), f"no original at {REFERENCE_SCRIPT}")
class SideBySideTest(unittest.TestCase):
    """Tags on many trees under one scenario; every scenario on two trees.

    Each script's runs go on in one interpreter (tests/batch_run.py), the
    two scripts in parallel, and are compared afterwards.
    """

    def compare_all(self, runs: list[tuple[Case, dict[str, str]]]) -> None:
        # Each script's runs in one interpreter (they make their docker calls
        # one after another); the two scripts side by side.
        with ThreadPoolExecutor(max_workers=2) as pool:
            ours = pool.submit(run_many_with_fake_docker, SCRIPT, runs, OPTIONS)
            originals = pool.submit(run_many_with_fake_docker, REFERENCE_SCRIPT, runs, OPTIONS)
            results = list(zip(runs, ours.result(), originals.result(), strict=True))
        for (case, scenario), our_result, original in results:
            with self.subTest(case=case.name, scenario=scenario):
                self.assert_same_calls(scenario, our_result, original)

    def assert_same_calls(
        self,
        scenario: dict[str, str],
        ours: tuple[int, list[dict[str, Any]]],
        original: tuple[int, list[dict[str, Any]]],
    ) -> None:
        self.assertEqual((ours[0], without_rechecks(ours[1])), original)
        self.assertEqual(ours[0] == 0, scenario in SCENARIOS[:2])
        self.assertTrue(ours[1], "no docker call was made")
        pushed = any(call["argv"][0] == "push" for call in original[1])
        failed_push = scenario.get("FAKE_DOCKER_FAIL") == "push"
        expected_rechecks = 2 if failed_push else 1 if pushed else 0
        self.assertEqual(len(ours[1]) - len(original[1]), expected_rechecks, ours[1])

    def test_random_trees_give_identical_docker_calls(self) -> None:
        self.compare_all([(case, MISS) for case in CASES])

    def test_every_scenario_gives_identical_docker_calls(self) -> None:
        self.compare_all([(case, scenario) for case in CASES[:2] for scenario in SCENARIOS[1:]])


if __name__ == "__main__":
    unittest.main()
