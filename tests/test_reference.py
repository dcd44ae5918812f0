"""Side by side with the original: random trees, identical docker calls.

Runs only where the original script is available: $GDI_REFERENCE_SCRIPT, or
../shared/reference/get_docker_image.py beside the repository (as in CI).
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import tempfile
import unittest
from typing import Any

from tests.fixtures import Case, Checkout, Dir, Fifo, File, Link, Node, pseudo_random_bytes
from tests.helpers import FAKE_DOCKER, REPO_DIR

REFERENCE_SCRIPT = os.environ.get(
    "GDI_REFERENCE_SCRIPT",
    os.path.join(os.path.dirname(REPO_DIR), "shared", "reference", "get_docker_image.py"),
)
OUR_SCRIPT = os.path.join(REPO_DIR, "get_docker_image.py")

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
# (docker environment, what it stands for): each tree runs through all.
SCENARIOS: tuple[dict[str, str], ...] = (
    {},
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


def docker_calls(script: str, case: Case, scenario: dict[str, str]) -> tuple[bool, list[Any]]:
    """Runs `script` on `case`: (whether it succeeded, the docker calls it made)."""
    with tempfile.TemporaryDirectory() as root:
        checkout = Checkout(root, case)
        log_path = os.path.join(root, "calls.jsonl")
        env = {
            name: value for name, value in os.environ.items() if not name.startswith("FAKE_DOCKER")
        }
        env.update(scenario, FAKE_DOCKER_LOG=log_path)
        completed = subprocess.run(
            [
                sys.executable,
                script,
                *case.argv(),
                "--docker-build-args-not-affecting-image-content",
                "--network host --progress=plain",
                "--container-registry",
                "myreg",
                "--repository",
                "team/repo",
                "--docker-path",
                FAKE_DOCKER,
            ],
            cwd=checkout.cwd,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=False,
        )
        with open(log_path, encoding="utf-8") as log:
            calls = [json.loads(line) for line in log]
        # The working directory differs between the two runs only by its
        # temporary name; what matters is that it is the one we started in.
        for call in calls:
            if call["cwd"] != os.path.realpath(checkout.cwd):
                call["cwd"] = "elsewhere: " + call["cwd"]
            else:
                call["cwd"] = "same"
        return completed.returncode == 0, calls


@unittest.skipUnless(os.path.isfile(REFERENCE_SCRIPT), f"no original at {REFERENCE_SCRIPT}")
class SideBySideTest(unittest.TestCase):
    def test_random_trees_make_identical_docker_calls(self) -> None:
        rng = random.Random(20201130)
        for number in range(12):
            case = random_case(rng, number)
            for scenario in SCENARIOS:
                with self.subTest(case=case.name, scenario=scenario):
                    ours = docker_calls(OUR_SCRIPT, case, scenario)
                    original = docker_calls(REFERENCE_SCRIPT, case, scenario)
                    self.assertEqual(ours, original)
                    self.assertTrue(ours[1], "no docker call was made")


if __name__ == "__main__":
    unittest.main()
