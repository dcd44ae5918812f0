"""Runs the test modules a few at a time, each in a fresh process: most of
the tests wait on processes they start (docker, the recording docker, a
registry), so the machine's cores run several modules at once.

    python3 -m tests.run                       # every module
    python3 -m tests.run -p 'test_[!e]*.py'    # the unit tests (no engine)
    python3 -m tests.run tests.test_cli        # some modules

Like `python3 -m unittest discover -b`: a test's output is shown only if
it fails. Prints a line per module as it ends, then the failures, then a
summary; exits 1 if any test failed.
"""

from __future__ import annotations

import argparse
import atexit
import fnmatch
import io
import multiprocessing
import os
import sys
import time
import unittest
from collections.abc import Sequence
from typing import NamedTuple

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_DIR = os.path.dirname(TESTS_DIR)
# Modules that take longest start first, so that they do not end last alone.
SLOW_FIRST = ("tests.test_e2e", "tests.test_reference")


class ModuleResult(NamedTuple):
    module: str
    tests: int
    failures: list[tuple[str, str]]  # (test, traceback) of failures and errors
    skipped: int
    seconds: float


def run_module(module: str) -> ModuleResult:
    """One module's tests, in this (fresh) process."""
    start = time.monotonic()
    os.chdir(REPO_DIR)
    suite = unittest.defaultTestLoader.loadTestsFromName(module)
    stream = io.StringIO()
    try:
        result = unittest.TextTestRunner(stream=stream, buffer=True, verbosity=0).run(suite)
    finally:
        # A pool's worker ends with os._exit, which skips atexit: what the
        # module registered there (stopping its registries, removing the
        # images it built) runs now, as at the end of `python3 -m unittest`.
        atexit._run_exitfuncs()
    failures = [(str(test), text) for test, text in [*result.errors, *result.failures]]
    skipped = len(result.skipped)
    return ModuleResult(module, result.testsRun, failures, skipped, time.monotonic() - start)


def discover(pattern: str) -> list[str]:
    names = sorted(
        f"tests.{name[:-3]}"
        for name in os.listdir(TESTS_DIR)
        if name.endswith(".py") and fnmatch.fnmatchcase(name, pattern)
    )
    return sorted(names, key=lambda name: not name.startswith(SLOW_FIRST))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python3 -m tests.run", description=__doc__.split("\n")[0]
    )
    parser.add_argument("modules", nargs="*", help="test modules (default: discover them)")
    parser.add_argument("-p", "--pattern", default="test_*.py", help="of the modules to discover")
    parser.add_argument(
        "-j", "--jobs", type=int, default=os.cpu_count() or 1, help="modules at once"
    )
    args = parser.parse_args(argv)
    modules = args.modules or discover(args.pattern)
    start = time.monotonic()
    results: list[ModuleResult] = []
    # A fresh process for each module (fork of this one, which has imported
    # nothing of the project): modules keep global state (registries they
    # started, logging, the environment) to themselves.
    context = multiprocessing.get_context("fork")
    with context.Pool(args.jobs, maxtasksperchild=1) as pool:
        for result in pool.imap_unordered(run_module, modules):
            results.append(result)
            status = "FAILED" if result.failures else "ok"
            print(
                f"{result.module}: {result.tests} tests {status} ({result.seconds:.1f} s)",
                flush=True,
            )
    failures = [failure for result in results for failure in result.failures]
    for test, text in failures:
        print("=" * 70, f"FAIL: {test}", "-" * 70, text, sep="\n", file=sys.stderr)
    tests = sum(result.tests for result in results)
    skipped = sum(result.skipped for result in results)
    print("-" * 70)
    print(f"Ran {tests} tests in {time.monotonic() - start:.1f} s")
    skips = f"skipped={skipped}" if skipped else ""
    if failures:
        print(f"FAILED (failures={len(failures)}{', ' + skips if skips else ''})")
    else:
        print(f"OK ({skips})" if skips else "OK")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
