#!/usr/bin/env python3
"""How much --layer-cache saves when one small file of the build context changes.

It simulates fresh CI runners: for BuildKit it empties the engine's WHOLE
build cache (`docker builder prune --all --force`), not only this
benchmark's. It asks before it does (--yes: do not ask); with
--builders classic it prunes nothing.

Starts its own throwaway `docker-registry` on a free port of 127.0.0.1, builds
and pushes a busybox base image there, and then, for each builder (the classic
builder: `--docker-path docker`; BuildKit: `--docker-path /usr/bin/docker` with
DOCKER_BUILDKIT=1), writes a build context whose Dockerfile has one expensive
step (`RUN sleep S && head -c 50000000 /dev/urandom > /big`) before a cheap
`COPY small.txt`. One untimed run with --layer-cache seeds the cache tag; then,
each run, as a fresh CI runner would (the repository's local images removed;
for BuildKit also its build cache, with `docker builder prune -af`):

- miss, no cache:       small.txt changed, the tool without --layer-cache;
- miss, --layer-cache:  small.txt changed again, the tool with --layer-cache;
- hit:                  nothing changed, the tool with --layer-cache (a pull).

It prints, per builder and case, the median seconds, the steps docker took
from its cache (read from docker's output: classic "---> Using cache",
BuildKit "#N CACHED"), the ratio to the no-cache miss, and whether the target
is met: a one-file change with --layer-cache takes at most 0.3x the time
without it on both builders, with the expensive step cached, and a hit runs no
build and leaves the cache tag where it was.

Everything else it makes (registry, images, files) it removes at the end, by
name: an image that another one is built on loses its names, never another
repository's.

Not part of the unit tests. Standard library only. Needs docker, Debian's
`docker-registry` and `busybox-static` (for /bin/busybox) and, for BuildKit,
Debian's docker client at /usr/bin/docker (a client with built-in BuildKit).

    python3 bench/layer_cache_bench.py             # about 3 minutes; asks first
    python3 bench/layer_cache_bench.py --quick     # one run, 3 s sleep
    python3 bench/layer_cache_bench.py --builders classic   # prunes nothing
    python3 bench/layer_cache_bench.py --emulate   # the tool's docker calls, made directly
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

# Run as a script, bench/ is on the path, not the repository (for `tests`).
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from tests.e2e_support import (
    BUSYBOX,
    REGISTRY_CONFIG,
    REPO_DIR,
    cached_steps,
    docker_commands,
    free_port,
    manifest_digest,
)

SCRIPT = os.path.join(REPO_DIR, "get_docker_image.py")
BASE_REPOSITORY = "bench/busybox"
CACHE_TAG = "latest"  # --layer-cache's default
TARGET_RATIO = 0.3
EXPENSIVE_STEP = "RUN sleep"  # how the expensive step's instruction starts

NO_CACHE, WITH_CACHE, HIT = "miss, no cache", "miss, --layer-cache", "hit"
CASES = (NO_CACHE, WITH_CACHE, HIT)


@dataclass(frozen=True)
class Builder:
    name: str
    docker: str
    env: Mapping[str, str]
    build_args: str  # --docker-build-args-not-affecting-image-content
    buildkit: bool


BUILDERS = {
    "classic": Builder("classic", "docker", {"DOCKER_BUILDKIT": "0"}, "", buildkit=False),
    # BuildKit prints plain progress anyway when its output is not a terminal (as here,
    # captured); saying so keeps "#N CACHED" lines whatever the caller's terminal.
    "buildkit": Builder(
        "buildkit", "/usr/bin/docker", {"DOCKER_BUILDKIT": "1"}, "--progress=plain", buildkit=True
    ),
}


@dataclass
class Outcome:
    """One timed run of the tool: its time, docker's cached steps, what it ran."""

    seconds: float
    output: str
    commands: list[list[str]]  # docker's arguments, from the subcommand on
    cached_steps: list[str] = field(default_factory=list)

    @property
    def built(self) -> bool:
        return any(command[:1] == ["build"] for command in self.commands)

    @property
    def expensive_cached(self) -> bool:
        return any(step.startswith(EXPENSIVE_STEP) for step in self.cached_steps)


# --- registry -----------------------------------------------------------------------------


class Registry:
    """A `docker-registry serve` process on 127.0.0.1, its storage in `storage`."""

    def __init__(self, storage: str) -> None:
        self.address = f"127.0.0.1:{free_port()}"
        self._log = os.path.join(storage, "registry.log")
        env = dict(
            os.environ,
            REGISTRY_HTTP_ADDR=self.address,
            REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY=os.path.join(storage, "data"),
        )
        with open(self._log, "wb") as log:
            self._process = subprocess.Popen(
                ["docker-registry", "serve", REGISTRY_CONFIG],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"http://{self.address}/v2/", timeout=2).close()
                return
            except OSError:
                if self._process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    with open(self._log, encoding="utf-8", errors="replace") as log:
                        raise RuntimeError(f"registry did not start: {log.read()}") from None
                time.sleep(0.1)

    def digest(self, repository: str, tag: str) -> str | None:
        """The manifest digest the registry has for repository:tag, or None."""
        return manifest_digest(self.address, repository, tag)

    def stop(self) -> None:
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()


# --- docker -------------------------------------------------------------------------------


def docker(builder: Builder, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [builder.docker, *args],
        env={**os.environ, **builder.env},
        capture_output=True,
        text=True,
        check=check,
    )


def image_names(builder: Builder, *repositories: str) -> list[str]:
    """The names of the local images of these repositories: each tag, and the
    repository digest of those left untagged (as a pull leaves them when the tag moves)."""
    names: list[str] = []
    for repository in repositories:
        listed = docker(
            builder,
            "image",
            "ls",
            "--digests",
            "--format",
            "{{.Repository}} {{.Tag}} {{.Digest}}",
            repository,
            check=False,
        )
        for line in listed.stdout.splitlines():
            name, tag, digest = line.split()
            if tag != "<none>":
                names.append(f"{name}:{tag}")
            elif digest != "<none>":
                names.append(f"{name}@{digest}")
    return names


def remove_images(builder: Builder, *repositories: str) -> None:
    """Removes these repositories' images by name: by ID with --force, an image
    that another one is built on would keep a tag."""
    if names := image_names(builder, *repositories):
        docker(builder, "image", "rm", *names, check=False)


def fresh_runner(builder: Builder, *repositories: str) -> None:
    """Makes the engine look like a new CI runner's for these repositories: none of their
    images, and for BuildKit no build cache at all (global: the whole engine's)."""
    remove_images(builder, *repositories)
    if builder.buildkit:
        docker(builder, "builder", "prune", "--all", "--force", check=False)


def build_base(registry: Registry, scratch: str) -> str:
    """Builds FROM scratch + busybox (with /bin/sh and the other applets), pushes it."""
    image = f"{registry.address}/{BASE_REPOSITORY}:1"
    context = os.path.join(scratch, "base")
    os.makedirs(context)
    shutil.copy(BUSYBOX, os.path.join(context, "busybox"))
    with open(os.path.join(context, "Dockerfile"), "w", encoding="utf-8") as file:
        file.write(
            "FROM scratch\nCOPY busybox /bin/busybox\n"
            'RUN ["/bin/busybox", "--install", "-s", "/bin"]\n'
        )
    classic = BUILDERS["classic"]
    docker(classic, "build", "--tag", image, context)
    docker(classic, "push", image)
    return image


# --- the tool -----------------------------------------------------------------------------


class Bench:
    """One builder's context and repository, and the tool run on them."""

    def __init__(
        self,
        builder: Builder,
        registry: Registry,
        base: str,
        scratch: str,
        sleep: float,
        *,
        emulate: bool,
    ) -> None:
        self.builder = builder
        self.emulate = emulate
        self.registry = registry
        self.repository = f"bench/lc-{uuid.uuid4().hex[:10]}-{builder.name}"
        self.full_repository = f"{registry.address}/{self.repository}"
        self.cache_image = f"{self.full_repository}:{CACHE_TAG}"
        self.context = os.path.join(scratch, builder.name)
        os.makedirs(self.context)
        self.dockerfile = os.path.join(self.context, "Dockerfile")
        with open(self.dockerfile, "w", encoding="utf-8") as file:
            file.write(
                f"FROM {base}\n"
                f"RUN sleep {sleep:g} && head -c 50000000 /dev/urandom > /big\n"
                "COPY small.txt /small.txt\n"
            )
        self.change("seed")

    def change(self, text: str) -> None:
        with open(os.path.join(self.context, "small.txt"), "w", encoding="utf-8") as file:
            file.write(f"{text} {uuid.uuid4().hex}\n")

    def fresh_runner(self) -> None:
        fresh_runner(self.builder, self.full_repository, self.repository)

    def tool_argv(self, layer_cache: bool) -> list[str]:
        argv = [sys.executable, SCRIPT, "--container-registry", self.registry.address]
        argv += ["--repository", self.repository, "--context", self.context]
        argv += ["--dockerfile", self.dockerfile, "--docker-path", self.builder.docker]
        if self.builder.build_args:
            argv += [f"--docker-build-args-not-affecting-image-content={self.builder.build_args}"]
        return [*argv, "--layer-cache"] if layer_cache else argv

    def image(self) -> str:
        """The image name for the context as it is now: the tool's, or with --emulate a tag
        of our own (a digest of the Dockerfile and small.txt), so that the tool is not run."""
        if self.emulate:
            digest = hashlib.sha256()
            for name in ("Dockerfile", "small.txt"):
                with open(os.path.join(self.context, name), "rb") as file:
                    digest.update(file.read())
            return f"{self.full_repository}:emulated_{digest.hexdigest()}"
        completed = subprocess.run(
            [*self.tool_argv(False), "--print-image-name"],
            capture_output=True,
            text=True,
            check=True,
        )
        return completed.stdout.strip()

    def run(self, layer_cache: bool) -> Outcome:
        """Runs the tool (or, with --emulate, the docker calls it makes); times it."""
        if self.emulate:
            return self.run_docker_calls(layer_cache)
        start = time.perf_counter()
        completed = subprocess.run(
            self.tool_argv(layer_cache),
            env={**os.environ, **self.builder.env},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            check=False,
        )
        seconds = time.perf_counter() - start
        if completed.returncode != 0:
            raise RuntimeError(
                f"the tool failed ({completed.returncode}): "
                f"{shlex.join(self.tool_argv(layer_cache))}\n{completed.stdout[-4000:]}"
            )
        output = completed.stdout
        return Outcome(seconds, output, docker_commands(output), cached_steps(output))

    def run_docker_calls(self, layer_cache: bool) -> Outcome:
        """The docker calls the tool makes, made directly and timed the same way."""
        image = self.image()
        outputs: list[str] = []
        commands: list[list[str]] = []

        def call(*args: str, check: bool = True) -> bool:
            commands.append(list(args))
            completed = subprocess.run(
                [self.builder.docker, *args],
                env={**os.environ, **self.builder.env, "DOCKER_CLI_EXPERIMENTAL": "enabled"},
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                errors="replace",
                check=False,
            )
            outputs.append(completed.stdout)
            if check and completed.returncode != 0:
                command = shlex.join([self.builder.docker, *args])
                raise RuntimeError(f"failed: {command}\n{completed.stdout}")
            return completed.returncode == 0

        start = time.perf_counter()
        if call("manifest", "inspect", "--insecure", image, check=False):
            call("pull", image)
        else:
            cache_args: list[str] = []
            if layer_cache:
                if call("manifest", "inspect", "--insecure", self.cache_image, check=False):
                    call("pull", self.cache_image, check=False)
                cache_args = ["--cache-from", self.cache_image]
                cache_args += ["--build-arg", "BUILDKIT_INLINE_CACHE=1"]
            extra = shlex.split(self.builder.build_args)
            call(
                "build",
                "--pull",
                *cache_args,
                *extra,
                "--tag",
                image,
                "--file",
                self.dockerfile,
                self.context,
            )
            call("push", image)
            if layer_cache:
                call("tag", image, self.cache_image)
                call("push", self.cache_image)
        call("tag", image, self.repository)
        seconds = time.perf_counter() - start
        output = "".join(outputs)
        return Outcome(seconds, output, commands, cached_steps(output))


def has_layer_cache_option() -> bool:
    completed = subprocess.run(
        [sys.executable, SCRIPT, "--help"], capture_output=True, text=True, check=False
    )
    return "--layer-cache" in completed.stdout


def missing_requirements(builders: Sequence[Builder]) -> list[str]:
    missing = [
        f"{what} ({path})"
        for what, path in [("docker-registry", "docker-registry"), ("busybox-static", BUSYBOX)]
        + [(f"docker for {builder.name}", builder.docker) for builder in builders]
        if shutil.which(path) is None
    ]
    return missing


# --- the benchmark ------------------------------------------------------------------------


@dataclass
class Verdict:
    lines: list[str] = field(default_factory=list)
    met: bool = True

    def check(self, ok: bool, text: str) -> None:
        self.lines.append(f"  [{'ok' if ok else 'FAIL'}] {text}")
        self.met = self.met and ok


def bench_builder(bench: Bench, runs: int, verdict: Verdict) -> dict[str, list[Outcome]]:
    registry, repository = bench.registry, bench.repository
    # Seed: the first build with --layer-cache pushes the cache tag.
    bench.fresh_runner()
    bench.run(layer_cache=True)
    verdict.check(
        registry.digest(repository, CACHE_TAG) is not None,
        f"{bench.builder.name}: the first run pushed {repository}:{CACHE_TAG}",
    )
    outcomes: dict[str, list[Outcome]] = {case: [] for case in CASES}
    tag_moved, tag_kept = [], []
    for run in range(runs):
        bench.fresh_runner()
        bench.change(f"no-cache {run}")
        outcomes[NO_CACHE].append(bench.run(layer_cache=False))

        bench.fresh_runner()
        bench.change(f"cache {run}")
        outcomes[WITH_CACHE].append(bench.run(layer_cache=True))
        image_tag = bench.image().rsplit(":", 1)[1]
        moved_to = registry.digest(repository, CACHE_TAG)
        tag_moved.append(
            moved_to is not None and moved_to == registry.digest(repository, image_tag)
        )

        bench.fresh_runner()
        outcomes[HIT].append(bench.run(layer_cache=True))
        tag_kept.append(registry.digest(repository, CACHE_TAG) == moved_to)
        times = ", ".join(f"{case} {outcomes[case][-1].seconds:.2f}s" for case in CASES)
        print(f"  {bench.builder.name} run {run + 1}/{runs}: {times}", flush=True)

    name = bench.builder.name
    no_cache = statistics.median(o.seconds for o in outcomes[NO_CACHE])
    with_cache = statistics.median(o.seconds for o in outcomes[WITH_CACHE])
    verdict.check(
        with_cache <= TARGET_RATIO * no_cache,
        f"{name}: one-file change with --layer-cache {with_cache:.2f}s <= "
        f"{TARGET_RATIO}x {no_cache:.2f}s without ({with_cache / no_cache:.2f}x)",
    )
    verdict.check(
        all(o.expensive_cached for o in outcomes[WITH_CACHE]),
        f"{name}: the expensive step came from the cache in every --layer-cache miss",
    )
    verdict.check(
        not any(o.expensive_cached for o in outcomes[NO_CACHE]),
        f"{name}: and never without --layer-cache (the fresh runner had no cache)",
    )
    verdict.check(all(tag_moved), f"{name}: {CACHE_TAG} moved to the new image after each miss")
    verdict.check(
        not any(o.built for o in outcomes[HIT]) and all(tag_kept),
        f"{name}: a hit ran no build and left {CACHE_TAG} where it was",
    )
    return outcomes


def print_table(results: dict[str, dict[str, list[Outcome]]]) -> None:
    header = f"{'builder':<9} {'case':<20} {'median s':>9} {'cached steps':>13} {'ratio':>6}"
    print(header)
    print("-" * len(header))
    for name, outcomes in results.items():
        baseline = statistics.median(o.seconds for o in outcomes[NO_CACHE])
        for case in CASES:
            seconds = statistics.median(o.seconds for o in outcomes[case])
            counts = sorted(len(o.cached_steps) for o in outcomes[case])
            if any(o.built for o in outcomes[case]):
                cached = str(counts[0]) if counts[0] == counts[-1] else f"{counts[0]}-{counts[-1]}"
            else:
                cached = "no build"
            print(f"{name:<9} {case:<20} {seconds:>9.2f} {cached:>13} {seconds / baseline:>6.2f}")


def agreed_to_prune() -> bool:
    """Asks, where someone can answer, before the engine's BuildKit cache goes."""
    if not sys.stdin.isatty():
        return False
    answer = input(
        "The BuildKit runs empty this engine's WHOLE build cache (docker builder prune "
        "--all --force). Go on? [y/N] "
    )
    return answer.strip().lower() in ("y", "yes")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one run, a 3 s expensive step")
    parser.add_argument("--runs", type=int, default=3, help="timed runs per case")
    parser.add_argument(
        "--sleep", type=float, help="seconds the expensive step sleeps (default 8, quick 3)"
    )
    parser.add_argument(
        "--builders",
        default=",".join(BUILDERS),
        help=f"comma-separated, of {', '.join(BUILDERS)} (default: all)",
    )
    parser.add_argument(
        "--yes",
        action="store_true",
        help="empty the engine's whole BuildKit cache without asking (BuildKit's runs do)",
    )
    parser.add_argument(
        "--emulate",
        action="store_true",
        help="make the docker calls of the tool with --layer-cache directly, not through the "
        "tool (to check the setup, or before the tool has the option)",
    )
    args = parser.parse_args(argv)
    runs = 1 if args.quick else args.runs
    sleep = args.sleep if args.sleep is not None else (3.0 if args.quick else 8.0)
    try:
        builders = [BUILDERS[name.strip()] for name in args.builders.split(",") if name.strip()]
    except KeyError as error:
        parser.error(f"--builders: no builder {error}")
    if runs < 1 or not builders:
        parser.error("need at least one run and one builder")
    if any(builder.buildkit for builder in builders) and not (args.yes or agreed_to_prune()):
        print(
            "not run: the BuildKit runs empty the engine's whole build cache "
            "(--yes to agree, --builders classic to run without them)",
            file=sys.stderr,
        )
        return 2
    if missing := missing_requirements(builders):
        print(f"cannot run: missing {', '.join(missing)}", file=sys.stderr)
        return 1
    if not args.emulate and not has_layer_cache_option():
        print(
            f"{SCRIPT} has no --layer-cache option yet (try --emulate to run its docker "
            "calls directly)",
            file=sys.stderr,
        )
        return 1

    mode = "docker calls made directly (--emulate)" if args.emulate else "the tool"
    print(f"{runs} run(s) per case, expensive step: sleep {sleep:g} s + 50 MB; {mode}")
    verdict = Verdict()
    results: dict[str, dict[str, list[Outcome]]] = {}
    benches: list[Bench] = []
    with tempfile.TemporaryDirectory(prefix="layer-cache-bench-") as scratch:
        registry = Registry(scratch)
        try:
            base = build_base(registry, scratch)
            for builder in builders:
                bench = Bench(builder, registry, base, scratch, sleep, emulate=args.emulate)
                benches.append(bench)
                results[builder.name] = bench_builder(bench, runs, verdict)
        finally:
            for bench in benches:
                bench.fresh_runner()  # removes its images (and BuildKit's cache)
            remove_images(BUILDERS["classic"], f"{registry.address}/{BASE_REPOSITORY}")
            registry.stop()

    print()
    print_table(results)
    print()
    print(
        f"target: --layer-cache miss <= {TARGET_RATIO}x the no-cache miss, expensive step "
        "cached, on both builders; a hit runs no build"
    )
    print("\n".join(verdict.lines))
    both = {"classic", "buildkit"} <= set(results)
    met = verdict.met and both
    print(f"target {'MET' if met else 'NOT met'}" + ("" if both else " (not both builders run)"))
    return 0 if met else 1


if __name__ == "__main__":
    raise SystemExit(main())
