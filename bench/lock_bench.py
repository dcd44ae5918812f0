#!/usr/bin/env python3
"""What --build-lock saves when N jobs start together on new content.

Starts its own throwaway `docker-registry` on a free port of 127.0.0.1 and builds a
busybox base image there; then, for each N (1, 4, 8) and each mode (without the lock,
with `--build-lock`), writes a new build context (a file of its own, then `RUN sleep S`,
so that no cache can fake the build) and starts N jobs of the tool on it at once. A
--docker-path wrapper logs when each `docker build` started and ended. It prints, per
case, the builds run, the build seconds added up across jobs (the CPU and runner time
spent building), and the wall time of the slowest job (how long the pipeline waits), as
a Markdown table.

Without the lock every job builds (the registry's re-check before the push only saves
the push); with it one job builds and the others wait for its push, then pull: the
slowest job takes about one build, plus up to a poll (3 s with jitter) and a pull.

It removes what it made (the registry, its images, the untagged images its builds left,
its files) and prunes no cache of the engine. Not part of the unit tests. Standard
library only. Needs docker, Debian's `docker-registry` and `busybox-static`.

    python3 bench/lock_bench.py                      # about 2 minutes
    python3 bench/lock_bench.py --sleep 3 --jobs 4   # a quick look
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

# Run as a script, bench/ is on the path, not the repository (for `tests`).
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from tests.e2e_support import (
    BUSYBOX,
    TOOL_SCRIPT,
    LocalRegistry,
    busybox_image,
    remove_containers_of,
    remove_dangling_images_of,
    remove_images,
)

JOB_TIMEOUT = 600.0  # past this a job is stuck: the benchmark stops
# Each docker call, when it ends: its start and end (seconds since the epoch), the
# tool's pid, the subcommand. docker runs as the wrapper's child, so that its end is seen.
TIMING_WRAPPER = (
    "#!/bin/sh\n"
    "start=$(date +%s.%N)\n"
    'docker "$@"\n'
    "status=$?\n"
    'printf "%s %s %s %s\\n" "$start" "$(date +%s.%N)" "$PPID" "$1" >> {log}\n'
    'exit "$status"\n'
)


@dataclass(frozen=True)
class Case:
    jobs: int
    lock: bool
    builds: int
    build_seconds: float  # added up across jobs
    slowest_seconds: float  # wall time of the slowest job
    results: tuple[str, ...]  # each job's closing line, shortened


def run_case(
    registry: str, base: str, scratch: str, jobs: int, *, lock: bool, sleep: float
) -> Case:
    """N jobs started together on new content; their builds, timed by the wrapper."""
    name = f"{'lock' if lock else 'nolock'}-{jobs}"
    directory = os.path.join(scratch, name)
    os.makedirs(directory)
    calls = os.path.join(directory, "docker-calls.log")
    wrapper = os.path.join(directory, "docker")
    with open(wrapper, "w", encoding="utf-8") as file:
        file.write(TIMING_WRAPPER.format(log=shlex.quote(calls)))
    os.chmod(wrapper, 0o755)
    context = os.path.join(directory, "context")
    os.makedirs(context)
    with open(os.path.join(context, "unique.txt"), "w", encoding="utf-8") as file:
        file.write(f"{name} {uuid.uuid4()}\n")
    with open(os.path.join(context, "Dockerfile"), "w", encoding="utf-8") as file:
        file.write(f"FROM {base}\nCOPY unique.txt /unique.txt\nRUN sleep {sleep:g}\n")
    repository = f"bench/lock-{uuid.uuid4().hex[:10]}"
    argv = [sys.executable, TOOL_SCRIPT, "--container-registry", registry]
    argv += ["--repository", repository, "--context", context, "--docker-path", wrapper]
    argv += ["--dockerfile", os.path.join(context, "Dockerfile")]
    if lock:
        argv.append("--build-lock")
    logs = [os.path.join(directory, f"job{number}.log") for number in range(jobs)]
    processes: list[subprocess.Popen[bytes]] = []
    start = time.monotonic()
    for log_path in logs:
        with open(log_path, "wb") as log:
            processes.append(
                subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
            )
    try:
        ended = wait_all(processes)
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    slowest = max(ended) - start
    outputs = []
    for log_path in logs:
        with open(log_path, encoding="utf-8", errors="replace") as file:
            outputs.append(file.read())
    try:
        failed = [
            output for output, process in zip(outputs, processes, strict=True) if process.returncode
        ]
        if failed:
            raise RuntimeError(f"{len(failed)} job(s) of {name} failed:\n{failed[0][-4000:]}")
        builds = [line.split() for line in read_lines(calls) if line.split()[3:4] == ["build"]]
        results = tuple(short_result(output) for output in outputs)
    finally:
        remove_images(repository)
        remove_containers_of("".join(outputs))
        remove_dangling_images_of("".join(outputs), patience=15)
    build_seconds = sum(float(end) - float(begun) for begun, end, *_ in builds)
    return Case(jobs, lock, len(builds), build_seconds, slowest, results)


def wait_all(processes: Sequence[subprocess.Popen[bytes]]) -> list[float]:
    """Waits for every process, noting when each ended (time.monotonic())."""
    ended: dict[int, float] = {}
    deadline = time.monotonic() + JOB_TIMEOUT
    while len(ended) < len(processes):
        for number, process in enumerate(processes):
            if number not in ended and process.poll() is not None:
                ended[number] = time.monotonic()
        if time.monotonic() > deadline:
            raise RuntimeError(f"jobs still running after {JOB_TIMEOUT:g} s")
        time.sleep(0.05)
    return [ended[number] for number in range(len(processes))]


def read_lines(path: str) -> list[str]:
    try:
        with open(path, encoding="utf-8") as file:
            return [line for line in file if line.strip()]
    except FileNotFoundError:
        return []


def short_result(output: str) -> str:
    """What a job did, from its closing line: built, took, pulled."""
    lines = output.strip().splitlines()
    last = lines[-1] if lines else ""
    for word, result in (("Built and pushed", "built"), ("Took ", "took"), ("Pulled", "pulled")):
        if word in last:
            return result
    return "?"


def print_table(cases: Sequence[Case], sleep: float) -> None:
    print(f"N jobs started together on new content, a `RUN sleep {sleep:g}` build step:\n")
    print("| jobs | --build-lock | builds | build s (all jobs) | slowest job s | jobs' results |")
    print("| ---: | :---: | ---: | ---: | ---: | :--- |")
    for case in cases:
        counts = {result: case.results.count(result) for result in sorted(set(case.results))}
        results = ", ".join(f"{count} {result}" for result, count in counts.items())
        print(
            f"| {case.jobs} | {'yes' if case.lock else 'no'} | {case.builds} | "
            f"{case.build_seconds:.1f} | {case.slowest_seconds:.1f} | {results} |"
        )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument(
        "--jobs", default="1,4,8", help="comma-separated numbers of jobs (default 1,4,8)"
    )
    parser.add_argument(
        "--sleep", type=float, default=10.0, help="seconds the build step sleeps (default 10)"
    )
    args = parser.parse_args(argv)
    try:
        counts = [int(text) for text in args.jobs.split(",") if text.strip()]
    except ValueError:
        parser.error(f"--jobs: not numbers: {args.jobs!r}")
    if not counts or min(counts) < 1 or not 0 < args.sleep <= 3600:
        parser.error("need at least one job per case and a sleep of 0 to 3600 s")
    missing = [name for name in ("docker", "docker-registry") if shutil.which(name) is None]
    if not os.path.exists(BUSYBOX):
        missing.append(f"busybox-static ({BUSYBOX})")
    if missing:
        print(f"cannot run: missing {', '.join(missing)}", file=sys.stderr)
        return 1
    cases: list[Case] = []
    with tempfile.TemporaryDirectory(prefix="lock-bench-") as scratch, LocalRegistry() as registry:
        base = busybox_image(registry.address, name="bench/busybox")
        for jobs in counts:
            for lock in (False, True):
                case = run_case(registry.address, base, scratch, jobs, lock=lock, sleep=args.sleep)
                cases.append(case)
                print(
                    f"  {jobs} job(s), {'with' if lock else 'without'} the lock: "
                    f"{case.builds} build(s), slowest {case.slowest_seconds:.1f} s",
                    flush=True,
                )
    print()
    print_table(cases, args.sleep)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
