#!/usr/bin/env python3
"""Prints the golden tags of tests/fixtures.py as computed by the original.

Usage: python3 tests/reference_vectors.py PATH/TO/reference/get_docker_image.py

This is how the table in tests/test_golden.py was made: each case is built in
a temporary directory and the original script runs on it with the recording
docker stand-in; the tag is read off the image name it probed for.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(TESTS_DIR))

from tests.fixtures import GOLDEN_CASES, Case, run_with_fake_docker  # noqa: E402


def reference_tag(script: str, case: Case) -> str:
    """Runs the original on `case`; returns the tag of the image it probed for."""
    options = ["--container-registry", "myreg", "--repository", "repo"]
    status, calls = run_with_fake_docker(script, case, options)
    if status != 0:
        raise RuntimeError(f"the original failed on {case.name!r}")
    image: str = calls[0]["argv"][-1]
    return image.rsplit(":", 1)[1]


def main(argv: Sequence[str] | None = None) -> int:
    (script,) = sys.argv[1:] if argv is None else argv
    script = os.path.abspath(script)  # the original runs from each case's directory
    print("EXPECTED_TAGS = {")
    for case in GOLDEN_CASES:
        print(f"    {case.name!r}: {reference_tag(script, case)!r},")
    print("}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
