"""Fixture trees for the tests, built with explicit modes (never the umask).

The golden cases here are also what tests/reference_vectors.py feeds to the
original script to compute the expected tags in tests/test_golden.py.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

FAKE_DOCKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fake_docker.py")
BATCH_RUN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "batch_run.py")


class Dir(NamedTuple):
    path: str
    mode: int = 0o755


class File(NamedTuple):
    path: str
    data: bytes = b""
    mode: int = 0o644


class Link(NamedTuple):
    path: str
    target: str


class Fifo(NamedTuple):
    path: str
    mode: int = 0o644


Node = Dir | File | Link | Fifo


def pseudo_random_bytes(size: int, seed: str = "") -> bytes:
    """Deterministic bytes that do not repeat with any short period."""
    return hashlib.shake_256(f"{seed}:{size}".encode()).digest(size)


def build_tree(root: str | bytes, nodes: Iterable[Node]) -> None:
    """Creates `nodes` under `root`, then sets every mode explicitly.

    Directory modes are set last, deepest first, so that read-only
    directories can still be filled.
    """
    root = os.fsencode(root)
    dirs: list[tuple[bytes, int]] = []
    for node in nodes:
        path = os.path.join(root, os.fsencode(node.path))
        if isinstance(node, Dir):
            os.makedirs(path, exist_ok=True)
            dirs.append((path, node.mode))
        elif isinstance(node, File):
            with open(path, "wb") as file:
                file.write(node.data)
            os.chmod(path, node.mode)
        elif isinstance(node, Link):
            os.symlink(os.fsencode(node.target), path)
        else:
            os.mkfifo(path)
            os.chmod(path, node.mode)
    for path, mode in sorted(dirs, reverse=True):
        os.chmod(path, mode)


DOCKERFILE = File("Dockerfile", b"FROM scratch\nCOPY . /ctx\n")
CTX = Dir("ctx")


@dataclass(frozen=True)
class Case:
    """A tree, where to stand in it, and the options naming its inputs."""

    name: str
    nodes: tuple[Node, ...]
    context: str = "ctx"
    dockerfile: str = "Dockerfile"
    build_args: str = ""
    cwd: str = "."
    root_mode: int = 0o755

    def argv(self) -> list[str]:
        return [
            "--dockerfile",
            self.dockerfile,
            "--context",
            self.context,
            "--docker-build-args",
            self.build_args,
        ]


def _case(
    name: str,
    *nodes: Node,
    context: str = "ctx",
    dockerfile: str = "Dockerfile",
    build_args: str = "",
    cwd: str = ".",
) -> Case:
    """A case with the usual Dockerfile beside a `ctx` directory."""
    return Case(name, (DOCKERFILE, CTX, *nodes), context, dockerfile, build_args, cwd)


GOLDEN_CASES: tuple[Case, ...] = (
    _case("empty context"),
    _case(
        "nested directories",
        Dir("ctx/a"),
        Dir("ctx/a/b"),
        Dir("ctx/a/b/c"),
        File("ctx/a/b/c/deep.txt", b"deep\n"),
        File("ctx/a/top.txt", b"top\n"),
        Dir("ctx/z"),
        Dir("ctx/z/empty"),
    ),
    _case(
        "file and directory modes",
        File("ctx/rw-r--r--", b"x", 0o644),
        File("ctx/rwxr-xr-x", b"x", 0o755),
        File("ctx/rw-------", b"x", 0o600),
        File("ctx/r--r--r--", b"x", 0o444),
        Dir("ctx/d755", 0o755),
        Dir("ctx/d700", 0o700),
        Dir("ctx/d750", 0o750),
        File("ctx/d750/f", b"y", 0o640),
    ),
    _case(
        "file sizes around the 8 KiB read size",
        File("ctx/size0", b""),
        File("ctx/size8191", pseudo_random_bytes(8191)),
        File("ctx/size8192", pseudo_random_bytes(8192)),
        File("ctx/size8193", pseudo_random_bytes(8193)),
        File("ctx/size100000", pseudo_random_bytes(100_000)),
    ),
    _case(
        "large files across read chunks",
        File("ctx/size262145", pseudo_random_bytes(262_145)),
        File("ctx/size1048577", pseudo_random_bytes(1_048_577)),
    ),
    _case(
        "names with spaces and non-ASCII",
        File("ctx/with space", b"1"),
        File("ctx/ two  spaces ", b"2"),
        File("ctx/caf\u00e9", b"3"),
        File("ctx/\u65e5\u672c\u8a9e", b"4"),
        Dir("ctx/\u00fcber dir"),
        File("ctx/\u00fcber dir/\U0001f40d", b"5"),
    ),
    _case(
        "names whose order is tricky",
        File("ctx/a", b"a"),
        File("ctx/A", b"A"),
        File("ctx/a.b", b"a.b"),
        File("ctx/a-b", b"a-b"),
        File("ctx/a_b", b"a_b"),
        File("ctx/B", b"B"),
        File("ctx/b", b"b"),
        File("ctx/_", b"_"),
        File("ctx/10", b"10"),
        File("ctx/9", b"9"),
        Dir("ctx/ab"),
        File("ctx/ab/b", b"ab/b"),
        Dir("ctx/a.d"),
        Dir("ctx/a-d"),
        Dir("ctx/a.d/x"),
    ),
    _case(
        "a/b directory against a.b file",
        Dir("ctx/a"),
        File("ctx/a/b", b"in a"),
        File("ctx/a.b", b"beside a"),
        File("ctx/a0", b"after a."),
    ),
    _case(
        "Dockerfile inside the context",
        File("ctx/Dockerfile", b"FROM scratch\n"),
        File("ctx/data", b"data"),
        dockerfile="ctx/Dockerfile",
    ),
    _case(
        "Dockerfile outside the context, executable",
        Dir("docker"),
        File("docker/build.Dockerfile", b"FROM scratch\nCOPY data /\n", 0o755),
        File("ctx/data", b"data"),
        dockerfile="docker/build.Dockerfile",
    ),
    _case("context spelled ./ctx", File("ctx/f", b"f"), context="./ctx"),
    _case("context with a trailing slash", File("ctx/f", b"f"), context="ctx/"),
    _case(
        "context given as an absolute path",
        File("ctx/f", b"f"),
        Dir("ctx/sub"),
        File("ctx/sub/g", b"g"),
        # The same absolute spelling wherever the fixture lives.
        context="/proc/self/cwd/ctx",
        dockerfile="/proc/self/cwd/Dockerfile",
    ),
    _case(
        "context given as . (the current directory)",
        File("ctx/Dockerfile", b"FROM scratch\n"),
        File("ctx/f", b"f"),
        Dir("ctx/sub", 0o711),
        File("ctx/sub/g", b"g", 0o600),
        context=".",
        dockerfile="Dockerfile",
        cwd="ctx",
    ),
    _case(
        "symlink to a file",
        File("ctx/real", b"real content", 0o600),
        Link("ctx/link", "real"),
        File("outside", b"outside content", 0o640),
        Link("ctx/to-outside", "../outside"),
    ),
    _case(
        "symlink to a directory",
        Dir("ctx/real"),
        File("ctx/real/f", b"f"),
        Link("ctx/link", "real"),
        Dir("shared", 0o700),
        File("shared/s", b"s"),
        Link("ctx/to-shared", "../shared"),
    ),
    _case(
        "build args with quotes and repeated spaces",
        File("ctx/f", b"f"),
        build_args='--build-arg  A=\'x  y\' --build-arg B="q\\"uote"   --label l=1',
    ),
    _case(
        "build args with non-ASCII text",
        build_args="--build-arg GREETING=gr\u00fc\u00df",
    ),
    _case(
        "FIFO skipped without opening",
        File("ctx/f", b"f"),
        Fifo("ctx/pipe", 0o600),
    ),
    _case(
        "read-only directory",
        Dir("ctx/ro", 0o555),
        File("ctx/ro/f", b"f", 0o444),
    ),
)


@dataclass
class Checkout:
    """A fixture built in `root`, ready to run with its case's cwd."""

    root: str
    case: Case
    cwd: str = field(init=False)

    def __post_init__(self) -> None:
        os.chmod(self.root, self.case.root_mode)
        build_tree(self.root, self.case.nodes)
        self.cwd = os.path.join(self.root, self.case.cwd)


def read_json_lines(path: str) -> list[dict[str, Any]]:
    """The objects of a JSON-lines file (the recording docker's log); [] if none."""
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as file:
        return [json.loads(line) for line in file]


def run_with_fake_docker(
    script: str, case: Case, options: Sequence[str], scenario: Mapping[str, str] | None = None
) -> tuple[int, list[dict[str, Any]]]:
    """Runs `script` on `case`, built afresh, with the recording docker.

    Returns the exit status and the docker calls made. Each call's working
    directory reads "same" when it is the case's own (whose temporary name
    differs from run to run).
    """
    (result,) = run_many_with_fake_docker(script, [(case, scenario or {})], options)
    return result


def run_many_with_fake_docker(
    script: str, runs: Sequence[tuple[Case, Mapping[str, str]]], options: Sequence[str]
) -> list[tuple[int, list[dict[str, Any]]]]:
    """run_with_fake_docker for each (case, scenario), in one interpreter
    (tests/batch_run.py): one start of Python for them all."""
    with tempfile.TemporaryDirectory() as root:
        base = {name: value for name, value in os.environ.items() if "FAKE_DOCKER" not in name}
        # The recording docker's `env python3` finds this interpreter itself,
        # not a version manager's shim (which costs a process start per call).
        base["PATH"] = os.path.dirname(sys.executable) + os.pathsep + base.get("PATH", "")
        jobs, checkouts = [], []
        for number, (case, scenario) in enumerate(runs):
            case_root = os.path.join(root, str(number))
            os.mkdir(case_root)
            checkout = Checkout(case_root, case)
            log_path = os.path.join(case_root, "calls.jsonl")
            env = {**base, **scenario, "FAKE_DOCKER_LOG": log_path}
            argv = [*case.argv(), *options, "--docker-path", FAKE_DOCKER]
            jobs.append({"cwd": checkout.cwd, "argv": argv, "env": env})
            checkouts.append((checkout, log_path))
        jobs_path = os.path.join(root, "jobs.json")
        with open(jobs_path, "w", encoding="utf-8") as file:
            json.dump(jobs, file)
        completed = subprocess.run(
            [sys.executable, BATCH_RUN, script, jobs_path],
            capture_output=True,
            text=True,
            check=True,
        )
        statuses: list[int] = json.loads(completed.stdout)
        results = []
        for status, (checkout, log_path) in zip(statuses, checkouts, strict=True):
            calls = read_json_lines(log_path)
            for call in calls:
                same = call["cwd"] == os.path.realpath(checkout.cwd)
                call["cwd"] = "same" if same else "elsewhere: " + call["cwd"]
            results.append((status, calls))
        return results
