#!/usr/bin/env python3
"""Runs a script many times in one interpreter: the side-by-side test's way
to spare an interpreter start per run (the runs' docker calls still start
the recording docker each).

Usage: python3 tests/batch_run.py SCRIPT JOBS.json
JOBS.json: a list of {"cwd": ..., "argv": [...], "env": {...}}; each job
runs SCRIPT as __main__ in `cwd`, with `argv` and `env` (the whole
environment), its output discarded. Prints the exit statuses, a JSON list.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import runpy
import sys
import traceback


def run_job(script: str, cwd: str, argv: list[str], env: dict[str, str]) -> int:
    """The exit status the script would have had as a process of its own."""
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(env)
    sys.argv = [script, *argv]
    sink = io.StringIO()
    with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
        try:
            runpy.run_path(script, run_name="__main__")
        except SystemExit as exit_:
            return exit_.code if isinstance(exit_.code, int) else 1
        except Exception:  # uncaught: Python prints it and exits with 1
            traceback.print_exc()
            return 1
    return 0


def main() -> int:
    script, jobs_path = sys.argv[1:]
    with open(jobs_path, encoding="utf-8") as file:
        jobs = json.load(file)
    # The script imports its helpers (logger, util) from its own directory.
    sys.path.insert(0, os.path.dirname(os.path.abspath(script)))
    statuses = [run_job(script, job["cwd"], job["argv"], job["env"]) for job in jobs]
    sys.stdout = sys.__stdout__
    print(json.dumps(statuses))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
