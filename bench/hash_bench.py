#!/usr/bin/env python3
"""How fast the tag is computed, against the floor: SHA-256 over bytes in memory.

Builds synthetic build contexts in a temporary directory, then for each prints
one row: files, bytes, seconds, GB/s, microseconds per file (in all, and beyond
the hashing itself), the peak RSS of the measuring process, and the share of
the floor's speed reached. The floor is one hashlib.sha256 pass over the same
number of bytes already in memory, measured in the same run (the fastest of
passes before each case and after the last), so the ratio is comparable
across machines while the seconds are not.

Each case is measured in a fresh child process (so its peak RSS is its own):
one warm-up run (it also fills the page cache), then the median of --runs.

Then whole CLI runs, each case's commands alternating (ratios come from one
run: medians of interleaved runs, so that a noisy machine slows all alike),
with wall-clock and CPU seconds (user and system, with the processes it waits
for: on a shared VM the wall clock also counts the wait for a core); the warm-up
run also checks that both compute the same tag. With --reference
PATH/get_docker_image.py, the original against this tool:

- on the same synthetic trees, with `true` standing in for docker (both make
  the same three calls: probe, pull, tag);
- on small, real-world-like contexts, also with `true` as docker: this
  repository's own files (a checkout: no .git, no caches), a generated
  "typical CI context" (scripts, requirements files, a few MB-sized archives:
  about 36 MB), and a tiny one (3 files); with the interpreter's start-up
  alone and `--help` for scale. There start-up dominates, not hashing.

And, with or without --reference, on link-heavy trees: D directories, each
holding two symlinks to the next (about 2**(D+2) directories when the links
are followed, as the original and the default `--hash-mode original` must);
the default mode (against the original) at depths the original can finish,
and `--hash-mode docker` (links hashed as links) at depth 25. This tool runs
with --print-image-name (no docker), the original with `true` as docker.

Not part of the unit tests. Standard library only.

    python3 bench/hash_bench.py            # about a minute; 1 GiB on disk
    python3 bench/hash_bench.py --quick    # seconds
    python3 bench/hash_bench.py --reference ORIGINAL/get_docker_image.py
                                           # about two minutes; the original from
                                           # ORIGINAL_URL below, its helpers beside it
    python3 bench/hash_bench.py --baseline BEFORE   # hashing before and after a change
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import resource
import shutil
import stat
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass

REPO_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The original, at the commit this tool ports: tools/ci_build/get_docker_image.py,
# with logger.py beside it, and tools/python/util/ where it looks for it (the
# README shows a sparse checkout of just these).
ORIGINAL_URL = "https://github.com/microsoft/onnxruntime/tree/71e7c2b423/tools/ci_build"
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


def floor_seconds_per_byte(data: bytes) -> float:
    """One SHA-256 pass over `data`, already in memory: the fastest of seven
    (a floor, which a busy machine can only make look slower)."""
    timings = []
    for _ in range(7):
        start = time.perf_counter()
        hashlib.sha256(data)
        timings.append(time.perf_counter() - start)
    return min(timings) / len(data)


def measure_child(context: str, runs: int, tool: str) -> None:
    """In a child process: time compute_tag of the tool in `tool` on `context`; print JSON."""
    sys.path.insert(0, tool)
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


def measure(context: str, runs: int, tool: str = REPO_DIR) -> dict[str, float]:
    completed = subprocess.run(
        [sys.executable, __file__, "--measure-child", context, "--runs", str(runs), "--tool", tool],
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, float] = json.loads(completed.stdout)
    return result


# Whole CLI runs: this tool against the original, on the same trees.

TAG = re.compile(rb"image_content_digest_[0-9a-f]{64}")
LINK_DEPTHS = (12, 14)  # original mode, against the original
QUICK_LINK_DEPTHS = (10, 12)
DOCKER_LINK_DEPTH = 25  # docker mode only: 2**27 directories when followed


def reference_argv(reference: str, context: str, *, docker: str = "true") -> list[str]:
    """The original on `context` (its Dockerfile inside), `docker` as docker."""
    argv = [sys.executable, reference, "--dockerfile", os.path.join(context, "Dockerfile")]
    argv += ["--context", context, "--container-registry", "bench", "--repository", "bench"]
    return [*argv, "--docker-path", docker]


def our_argv(context: str, *options: str) -> list[str]:
    """This tool on `context` (its Dockerfile inside), with `options`."""
    argv = [sys.executable, SCRIPT, "--dockerfile", os.path.join(context, "Dockerfile")]
    argv += ["--context", context, "--container-registry", "bench", "--repository", "bench"]
    return [*argv, *options]


@dataclass(frozen=True)
class Timing:
    """The medians of a command's runs: wall-clock seconds, and CPU seconds
    (user and system, of the process and the processes it waited for: on a
    busy machine wall time includes the wait for a core, CPU time does not)."""

    wall: float
    cpu: float


def cli_seconds(argv: Sequence[str]) -> Timing:
    """Runs `argv` once; its wall-clock and CPU seconds."""
    start = time.perf_counter()
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode:
        raise subprocess.CalledProcessError(process.returncode, argv)
    return Timing(wall, usage.ru_utime + usage.ru_stime)


def cli_tag(argv: Sequence[str]) -> bytes:
    """Runs `argv` once (a warm-up) and returns the tag it printed or logged."""
    completed = subprocess.run(argv, check=True, capture_output=True)
    found = TAG.search(completed.stdout + completed.stderr)
    return found.group() if found else b""


def alternate(commands: Sequence[Sequence[str]], runs: int) -> list[Timing]:
    """The medians of each command's runs, interleaved with the others' (a
    noisy machine then slows each alike). Warm up first."""
    timings: list[list[Timing]] = [[] for _ in commands]
    for _ in range(runs):
        for argv, done in zip(commands, timings, strict=True):
            done.append(cli_seconds(argv))
    return [
        Timing(
            statistics.median(timing.wall for timing in done),
            statistics.median(timing.cpu for timing in done),
        )
        for done in timings
    ]


TIMING_HEADER = (
    f"{'original':>9} {'this tool':>10} {'ratio':>6}  {'CPU orig':>8} {'CPU ours':>8} {'ratio':>6}"
)


def timing_columns(original: Timing | None, ours: Timing) -> str:
    """Wall seconds of both and their ratio, then the same in CPU seconds;
    dashes for a missing original."""
    if original is None:
        return f"{'-':>9} {ours.wall:>10.3f} {'-':>6}  {'-':>8} {ours.cpu:>8.3f} {'-':>6}"
    return (
        f"{original.wall:>9.3f} {ours.wall:>10.3f} {ours.wall / original.wall:>6.2f}  "
        f"{original.cpu:>8.3f} {ours.cpu:>8.3f} {ours.cpu / original.cpu:>6.2f}"
    )


def compare_cli(reference: str, contexts: dict[str, str], runs: int) -> None:
    print("\nWhole CLI runs (median seconds, runs alternating; `true` as docker):")
    print(f"{'case':<12} {TIMING_HEADER} {'same tag':>9}")
    for name, context in contexts.items():
        commands = [reference_argv(reference, context), our_argv(context, "--docker-path", "true")]
        same = cli_tag(commands[0]) == cli_tag(commands[1])  # also the warm-up
        original, ours = alternate(commands, runs)
        print(f"{name:<12} {timing_columns(original, ours)} {yes_no(same):>9}")


def yes_no(flag: bool) -> str:
    return "yes" if flag else "NO"


# Small, real-world-like contexts.


def copy_repository(root: str) -> None:
    """This repository's files as a checkout has them: no .git, no caches."""
    shutil.copytree(
        REPO_DIR,
        root,
        symlinks=True,
        ignore=shutil.ignore_patterns(
            ".git", "__pycache__", ".mypy_cache", ".ruff_cache", "build", "dist", "*.egg-info"
        ),
    )
    if not os.path.exists(os.path.join(root, "Dockerfile")):
        with open(os.path.join(root, "Dockerfile"), "wb") as file:
            file.write(b"FROM python:3.12-slim\nCOPY . /src\n")


def build_ci_context(root: str, quick: bool) -> None:
    """A typical CI image's context, about 36 MB (a quarter with --quick): a
    Dockerfile, install scripts and patches in a few folders, requirements
    files, and four archives of 8 MiB (random bytes: incompressible)."""
    rng = random.Random("ci context")
    scale = 4 if quick else 1
    os.makedirs(root, mode=0o755)
    with open(os.path.join(root, "Dockerfile"), "wb") as file:
        file.write(b"FROM ubuntu:22.04\nCOPY scripts /tmp/scripts\nRUN /tmp/scripts/install.sh\n")
    words = [rng.randbytes(6).hex().encode() for _ in range(500)]
    folders = ["scripts", "scripts/manylinux", "scripts/python", "patches", "config", "tools"]
    suffixes = [b".sh", b".py", b".patch", b".cfg", b".cmake"]
    for index in range(300):
        folder = os.path.join(root, folders[index % len(folders)])
        os.makedirs(folder, mode=0o755, exist_ok=True)
        lines = [
            b" ".join(rng.choices(words, k=rng.randint(2, 12))) for _ in range(rng.randint(5, 250))
        ]
        name = b"file%d%s" % (index, suffixes[index % len(suffixes)])
        with open(os.path.join(folder.encode(), name), "wb") as file:
            file.write(b"\n".join(lines) + b"\n")
    for index in range(12):
        packages = [b"package%d==%d.%d.%d" % (rng.randrange(10**6), *rng.choices(range(30), k=3))]
        packages *= rng.randint(5, 60)
        with open(os.path.join(root, f"requirements-{index}.txt"), "wb") as file:
            file.write(b"\n".join(packages) + b"\n")
    os.makedirs(os.path.join(root, "archives"), mode=0o755)
    for index in range(4):
        with open(os.path.join(root, "archives", f"toolchain{index}.tar.gz"), "wb") as file:
            file.write(rng.randbytes(8 * MIB // scale))


def build_tiny_context(root: str) -> None:
    """examples/hello, plus a script: 3 files."""
    shutil.copytree(os.path.join(REPO_DIR, "examples", "hello"), root)
    with open(os.path.join(root, "entrypoint.sh"), "wb") as file:
        file.write(b'#!/bin/sh\nexec cat /hello.txt "$@"\n')


def tree_size(root: str) -> tuple[int, int]:
    """(files, bytes) of the regular files under root, links not followed."""
    files, total = 0, 0
    for directory, _, names in os.walk(root):
        for name in names:
            status = os.lstat(os.path.join(directory, name))
            if stat.S_ISREG(status.st_mode):
                files, total = files + 1, total + status.st_size
    return files, total


def compare_small_contexts(reference: str, scratch: str, runs: int, quick: bool) -> None:
    contexts = {
        "this repository": os.path.join(scratch, "repository"),
        "typical CI context": os.path.join(scratch, "ci-context"),
        "tiny context": os.path.join(scratch, "tiny"),
    }
    copy_repository(contexts["this repository"])
    build_ci_context(contexts["typical CI context"], quick)
    build_tiny_context(contexts["tiny context"])
    os.sync()
    print("\nWhole CLI runs on small contexts (median seconds, alternating; `true` as docker):")
    header = f"{'case':<20} {'files':>6} {'MB':>6} {TIMING_HEADER} {'same tag':>9}"
    print(header)
    print("-" * len(header))
    startup = [
        [sys.executable, "-c", "pass"],
        [sys.executable, reference, "--help"],
        [sys.executable, SCRIPT, "--help"],
    ]
    for argv in startup:
        cli_seconds(argv)  # warm-up
    interpreter, original, ours = alternate(startup, runs)
    print(f"{'python -c pass':<20} {'':>6} {'':>6} {timing_columns(interpreter, interpreter)}")
    print(f"{'start-up (--help)':<20} {'':>6} {'':>6} {timing_columns(original, ours)}")
    for name, context in contexts.items():
        files, total = tree_size(context)
        commands = [reference_argv(reference, context), our_argv(context, "--docker-path", "true")]
        same = cli_tag(commands[0]) == cli_tag(commands[1])  # also the warm-up
        original, ours = alternate(commands, runs)
        print(
            f"{name:<20} {files:>6} {total / 1e6:>6.1f} {timing_columns(original, ours)} "
            f"{yes_no(same):>9}"
        )


# Link-heavy trees.


def build_link_tree(root: str, depth: int) -> None:
    """d0 .. d<depth> in root, each d<n> (n < depth) holding two symlinks, a
    and b, to d<n+1>; the last holds one small file; a Dockerfile beside them.

    Followed, as the original does, d<n> is reached by 2**(n+1) - 1 paths
    (directly and through each d<m>, m < n): 2**(depth+2) - depth - 2
    directories in all with the root, and the file 2**(depth+1) - 1 times.
    """
    os.makedirs(root, mode=0o755)
    with open(os.path.join(root, "Dockerfile"), "wb") as file:
        file.write(b"FROM scratch\nCOPY . /\n")
    for level in range(depth + 1):
        os.mkdir(os.path.join(root, f"d{level}"), mode=0o755)
        if level < depth:
            for link in ("a", "b"):
                os.symlink(f"../d{level + 1}", os.path.join(root, f"d{level}", link))
    with open(os.path.join(root, f"d{depth}", "leaf.txt"), "wb") as file:
        file.write(b"leaf\n")


def link_tree_entries(depth: int, *, followed: bool) -> int:
    """How many directories, files and links are hashed (the Dockerfile's
    own entry, before the context, aside)."""
    if followed:
        return ((1 << (depth + 2)) - depth - 2) + ((1 << (depth + 1)) - 1) + 1
    return 1 + (depth + 1) + 2 * depth + 1 + 1  # root, d*, links, leaf, Dockerfile


def compare_link_trees(reference: str | None, scratch: str, runs: int, quick: bool) -> None:
    print(
        "\nLink-heavy trees: each directory holds two symlinks to the next (median seconds, "
        "alternating;\nthis tool with --print-image-name, the original with `true` as docker):"
    )
    header = f"{'case':<26} {'entries':>9} {TIMING_HEADER} {'same tag':>9}"
    print(header)
    print("-" * len(header))
    for depth in QUICK_LINK_DEPTHS if quick else LINK_DEPTHS:
        context = os.path.join(scratch, f"links-{depth}")
        build_link_tree(context, depth)
        name = f"depth {depth}, original mode"
        entries = link_tree_entries(depth, followed=True)
        ours = our_argv(context, "--print-image-name")
        if reference is None:
            cli_tag(ours)  # warm-up
            (timing,) = alternate([ours], runs)
            print(f"{name:<26} {entries:>9} {timing_columns(None, timing)}")
            continue
        commands = [reference_argv(reference, context), ours]
        same = cli_tag(commands[0]) == cli_tag(commands[1])  # also the warm-up
        original, timing = alternate(commands, runs)
        print(f"{name:<26} {entries:>9} {timing_columns(original, timing)} {yes_no(same):>9}")
    context = os.path.join(scratch, f"links-{DOCKER_LINK_DEPTH}")
    build_link_tree(context, DOCKER_LINK_DEPTH)
    ours = our_argv(context, "--print-image-name", "--hash-mode", "docker")
    cli_tag(ours)  # warm-up
    (timing,) = alternate([ours], runs)
    name = f"depth {DOCKER_LINK_DEPTH}, docker mode"
    entries = link_tree_entries(DOCKER_LINK_DEPTH, followed=False)
    print(f"{name:<26} {entries:>9} {timing_columns(None, timing)}")
    followed = link_tree_entries(DOCKER_LINK_DEPTH, followed=True)
    print(f"(followed, depth {DOCKER_LINK_DEPTH} would be {followed:,} entries)")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="an eighth of the sizes")
    parser.add_argument("--runs", type=int, default=5, help="timed runs per case")
    parser.add_argument(
        "--reference",
        metavar="PATH",
        help="the original get_docker_image.py (with its logger.py and util/ beside it), to "
        f"compare: see {ORIGINAL_URL}",
    )
    parser.add_argument(
        "--baseline",
        metavar="DIR",
        help="another checkout of this tool (e.g. `git worktree add /tmp/before HEAD~5`): its "
        "hashing against this one's, case by case, in turns",
    )
    parser.add_argument("--measure-child", help=argparse.SUPPRESS)
    parser.add_argument("--tool", default=REPO_DIR, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure_child:
        measure_child(args.measure_child, args.runs, args.tool)
        return 0
    if args.reference and not os.path.isfile(
        os.path.join(os.path.dirname(os.path.abspath(args.reference)), "logger.py")
    ):
        parser.error(
            f"--reference {args.reference!r}: no original with its logger.py beside it "
            f"(an onnxruntime checkout at {ORIGINAL_URL})"
        )
    if args.baseline and not os.path.isfile(os.path.join(args.baseline, "get_docker_image.py")):
        parser.error(f"--baseline {args.baseline!r}: no get_docker_image.py in it")

    print(f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, {cpu_model()}")
    with tempfile.TemporaryDirectory(prefix="hash-bench-") as scratch:
        built = {}
        for shape in shapes(args.quick):
            context = os.path.join(scratch, shape.name.replace(" ", "-"))
            built[shape.name] = (context, *build(context, shape))
        os.sync()  # no write-back of the new files while they are measured
        # The floor is measured before each case and after the last, and the
        # fastest kept: a burst of load from elsewhere then cannot make a case
        # look faster than the floor. So the table is printed at the end.
        data = random.Random(0).randbytes(64 * MIB)
        floor = floor_seconds_per_byte(data)
        results = {}
        for name, (context, _, _) in built.items():
            results[name] = measure(context, args.runs)
            floor = min(floor, floor_seconds_per_byte(data))
        del data
        print(f"floor: hashlib.sha256 over bytes in memory, {1 / floor / 1e9:.2f} GB/s\n")
        header = (
            f"{'case':<12} {'files':>7} {'MB':>7} {'seconds':>8} {'GB/s':>6} "
            f"{'us/file':>8} {'beyond':>7} {'RSS MiB':>8} {'of floor':>9}"
        )
        print(header)
        print("-" * len(header))
        for name, (_, files, total) in built.items():
            result = results[name]
            seconds = result["seconds"]
            floor_seconds = total * floor
            print(
                f"{name:<12} {files:>7} {total / 1e6:>7.1f} {seconds:>8.3f} "
                f"{total / seconds / 1e9:>6.2f} {seconds / files * 1e6:>8.2f} "
                f"{(seconds - floor_seconds) / files * 1e6:>7.2f} "
                f"{result['peak_rss_mib']:>8.1f} {floor_seconds / seconds:>9.0%}"
            )
        if args.baseline:
            compare_baseline(args.baseline, built, args.runs)
        if args.reference:
            compare_cli(args.reference, {name: built[name][0] for name in built}, args.runs)
            compare_small_contexts(args.reference, scratch, args.runs, args.quick)
        compare_link_trees(args.reference, scratch, args.runs, args.quick)
    print(
        "\nus/file: microseconds per file; beyond: the same less the floor's time "
        "for the bytes;\nof floor: the floor's time for the same bytes over the "
        "time taken (100% = as fast as SHA-256 itself)."
    )
    return 0


def compare_baseline(baseline: str, built: dict[str, tuple[str, int, int]], runs: int) -> None:
    """Each case hashed by the baseline checkout and by this one, in turns
    (three times each, each a fresh child with its own runs): their medians."""
    print(f"\nhashing: {baseline} (before) against this checkout (after), in turns")
    header = f"{'case':<12} {'before s':>9} {'after s':>8} {'after/before':>13}"
    print(header)
    print("-" * len(header))
    for name, (context, _, _) in built.items():
        before, after = [], []
        for _ in range(3):
            before.append(measure(context, runs, baseline)["seconds"])
            after.append(measure(context, runs)["seconds"])
        b, a = statistics.median(before), statistics.median(after)
        print(f"{name:<12} {b:>9.3f} {a:>8.3f} {a / b:>13.3f}")


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
