#!/usr/bin/env python3
"""Prints the golden tags of tests/fixtures.py as computed by the original.

Usage: python3 tests/reference_vectors.py PATH/TO/reference/get_docker_image.py

This is how the table in tests/test_golden.py was made: each case is built in
a temporary directory and the original script runs on it with the recording
docker stand-in; the tag is read off the image name it probed for.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(TESTS_DIR))

from tests.fixtures import GOLDEN_CASES, Case, Checkout  # noqa: E402

FAKE_DOCKER = os.path.join(TESTS_DIR, "fake_docker.py")


def reference_calls(script: str, case: Case, extra_argv: Sequence[str] = ()) -> list[str]:
    """Runs the original on `case`; returns the docker calls it made, as JSON lines."""
    with tempfile.TemporaryDirectory() as root:
        checkout = Checkout(root, case)
        log_path = os.path.join(root, "calls.jsonl")
        env = dict(os.environ, FAKE_DOCKER_LOG=log_path)
        argv = [sys.executable, script, *case.argv(), *extra_argv]
        argv += ["--container-registry", "myreg", "--repository", "repo"]
        subprocess.run(
            [*argv, "--docker-path", FAKE_DOCKER],
            cwd=checkout.cwd,
            env=env,
            check=True,
            stderr=subprocess.DEVNULL,
        )
        with open(log_path, encoding="utf-8") as log:
            return log.read().splitlines()


def tag_of(calls: list[str]) -> str:
    image: str = json.loads(calls[0])["argv"][-1]
    return image.rsplit(":", 1)[1]


def main(argv: Sequence[str] | None = None) -> int:
    (script,) = sys.argv[1:] if argv is None else argv
    print("EXPECTED_TAGS = {")
    for case in GOLDEN_CASES:
        print(f"    {case.name!r}: {tag_of(reference_calls(script, case))!r},")
    print("}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
