#!/usr/bin/env python3
"""How fast the tag is computed, against the floor: SHA-256 over bytes in memory.

Builds synthetic build contexts in a temporary directory, then for each prints
one row: files, bytes, seconds, GB/s, microseconds per file (in all, and beyond
the hashing itself), the peak RSS of the measuring process, and the share of
the floor's speed reached. The floor is one hashlib.sha256 pass over the same
number of bytes already in memory, measured in the same run, so the ratio is
comparable across machines while the seconds are not.

Each case is measured in a fresh child process (so its peak RSS is its own):
one warm-up run (it also fills the page cache), then the median of --runs.

With --reference PATH/get_docker_image.py it also times whole CLI runs of the
original and of this tool on the same trees, alternating, with `true` standing
in for docker (both make the same three calls: probe, pull, tag).

Not part of the unit tests. Standard library only.

    python3 bench/hash_bench.py            # about a minute; 1 GiB on disk
    python3 bench/hash_bench.py --quick    # seconds
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass

REPO_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(REPO_DIR, "get_docker_image.py")
MIB = 1024 * 1024


@dataclass(frozen=True)
class Shape:
    name: str
    large_files: int
    large_size: int
    small_files: int  # 0 to 4 KiB each, 100 to a directory, two levels deep


def shapes(quick: bool) -> list[Shape]:
    scale = 8 if quick else 1
    return [
        Shape("large files", 4, 256 * MIB // scale, 0),
        Shape("small files", 0, 0, 40_000 // scale),
        Shape("mixed", 8, 16 * MIB // scale, 10_000 // scale),
    ]


def build(root: str, shape: Shape) -> tuple[int, int]:
    """Creates `shape` under root (with a Dockerfile); returns (files, bytes)."""
    rng = random.Random(shape.name)
    os.makedirs(root, mode=0o755)
    with open(os.path.join(root, "Dockerfile"), "wb") as file:
        file.write(b"FROM scratch\nCOPY . /\n")
    files, total = 1, 22
    block = rng.randbytes(MIB)
    for index in range(shape.large_files):
        with open(os.path.join(root, f"large{index}.bin"), "wb") as file:
            for offset in range(0, shape.large_size, MIB):
                file.write(block[: min(MIB, shape.large_size - offset)])
        files, total = files + 1, total + shape.large_size
    for index in range(shape.small_files):
        directory = os.path.join(root, f"d{index // 2000}", f"e{index // 100 % 20}")
        os.makedirs(directory, mode=0o755, exist_ok=True)
        size = rng.randint(0, 4096)
        with open(os.path.join(directory, f"f{index % 100}"), "wb") as file:
            file.write(block[:size])
        files, total = files + 1, total + size
    return files, total


def floor_seconds_per_byte() -> float:
    """One SHA-256 pass over bytes already in memory."""
    data = random.Random(0).randbytes(64 * MIB)
    timings = []
    for _ in range(5):
        start = time.perf_counter()
        hashlib.sha256(data)
        timings.append(time.perf_counter() - start)
    return statistics.median(timings) / len(data)


def measure_child(context: str, runs: int) -> None:
    """In a child process: time compute_tag on `context`; print JSON."""
    sys.path.insert(0, REPO_DIR)
    from get_docker_image import compute_tag  # noqa: PLC0415 (after the path is set)

    dockerfile = os.path.join(context, "Dockerfile")
    compute_tag("", dockerfile, context)  # warm-up: page cache, imports
    timings = []
    for _ in range(runs):
        start = time.perf_counter()
        compute_tag("", dockerfile, context)
        timings.append(time.perf_counter() - start)
    print(json.dumps({"seconds": statistics.median(timings), "peak_rss_mib": peak_rss_mib()}))


def peak_rss_mib() -> float:
    """This process's peak resident set size.

    From VmHWM, not getrusage: Linux carries ru_maxrss over exec, so a child
    would report the peak of the parent it was forked from.
    """
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(context: str, runs: int) -> dict[str, float]:
    completed = subprocess.run(
        [sys.executable, __file__, "--measure-child", context, "--runs", str(runs)],
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, float] = json.loads(completed.stdout)
    return result


def cli_seconds(script: str, context: str) -> float:
    argv = [sys.executable, script, "--dockerfile", os.path.join(context, "Dockerfile")]
    argv += ["--context", context, "--container-registry", "bench", "--repository", "bench"]
    start = time.perf_counter()
    subprocess.run(
        [*argv, "--docker-path", "true"],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return time.perf_counter() - start


def compare_cli(reference: str, contexts: dict[str, str], runs: int) -> None:
    print("\nWhole CLI runs (median seconds, runs alternating; `true` as docker):")
    print(f"{'case':<12} {'original':>9} {'this tool':>10} {'ratio':>6}")
    for name, context in contexts.items():
        cli_seconds(reference, context)  # warm-up
        cli_seconds(SCRIPT, context)
        original, ours = [], []
        for _ in range(runs):
            original.append(cli_seconds(reference, context))
            ours.append(cli_seconds(SCRIPT, context))
        a, b = statistics.median(original), statistics.median(ours)
        print(f"{name:<12} {a:>9.3f} {b:>10.3f} {b / a:>6.2f}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="an eighth of the sizes")
    parser.add_argument("--runs", type=int, default=5, help="timed runs per case")
    parser.add_argument("--reference", help="the original get_docker_image.py, to compare")
    parser.add_argument("--measure-child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure_child:
        measure_child(args.measure_child, args.runs)
        return 0

    floor = floor_seconds_per_byte()
    print(f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, {cpu_model()}")
    print(f"floor: hashlib.sha256 over bytes in memory, {1 / floor / 1e9:.2f} GB/s\n")
    header = (
        f"{'case':<12} {'files':>7} {'MB':>7} {'seconds':>8} {'GB/s':>6} "
        f"{'us/file':>8} {'beyond':>7} {'RSS MiB':>8} {'of floor':>9}"
    )
    print(header)
    print("-" * len(header))
    with tempfile.TemporaryDirectory(prefix="hash-bench-") as scratch:
        built = {}
        for shape in shapes(args.quick):
            context = os.path.join(scratch, shape.name.replace(" ", "-"))
            built[shape.name] = (context, *build(context, shape))
        os.sync()  # no write-back of the new files while they are measured
        for name, (context, files, total) in built.items():
            result = measure(context, args.runs)
            seconds = result["seconds"]
            floor_seconds = total * floor
            print(
                f"{name:<12} {files:>7} {total / 1e6:>7.1f} {seconds:>8.3f} "
                f"{total / seconds / 1e9:>6.2f} {seconds / files * 1e6:>8.2f} "
                f"{(seconds - floor_seconds) / files * 1e6:>7.2f} "
                f"{result['peak_rss_mib']:>8.1f} {floor_seconds / seconds:>9.0%}"
            )
        if args.reference:
            compare_cli(args.reference, {name: built[name][0] for name in built}, args.runs)
    print(
        "\nus/file: microseconds per file; beyond: the same less the floor's time "
        "for the bytes;\nof floor: the floor's time for the same bytes over the "
        "time taken (100% = as fast as SHA-256 itself)."
    )
    return 0


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


if __name__ == "__main__":
    raise SystemExit(main())
