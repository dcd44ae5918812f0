#!/usr/bin/env python3
"""Gets a Docker image by the digest of its content: pulls it when the
registry has it, otherwise builds it and pushes it.

A port of onnxruntime's tools/ci_build/get_docker_image.py: for the same
inputs it computes the same tag and makes the same docker calls (plus one
re-check of the registry before a push, so that concurrent jobs converge).

Sections, in the order the data flows: the command line; image names; the
docker build arguments and platforms; reading inputs; the content digest
(one walk per hash mode over one hot loop); --explain output; docker
(running, classifying, retrying); base images; getting the image; the
image cache directory; main.
"""

from __future__ import annotations

import argparse
import enum
import errno
import functools
import hashlib
import importlib
import json
import logging
import math
import os
import queue
import random
import re
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from types import FrameType
from typing import TYPE_CHECKING, Any, Generic, NamedTuple, NoReturn, Protocol, TypeVar

if TYPE_CHECKING or not __package__:  # copied into a project, beside its helpers
    from logger import get_logger
    from util import SilenceTimeout, run
else:  # installed, as the package get_docker_image_tool
    from .logger import get_logger
    from .util import SilenceTimeout, run

if TYPE_CHECKING:
    from _typeshed import SupportsWrite

    import dockerignore

__version__ = "0.3.0"

T = TypeVar("T")
S = TypeVar("S")

LOGGER_NAME = "get_docker_image"
_log = logging.getLogger(LOGGER_NAME)

TAG_PREFIX = "image_content_digest_"
AZURE_REGISTRY_SUFFIX = ".azurecr.io"

EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report it
EXIT_TERMINATED = 143  # 128 + SIGTERM

# Files are read in chunks of this size into reused buffers. Files this
# large or larger are read by a second thread while this one hashes, into
# this many buffers; measured with bench/hash_bench.py.
READ_CHUNK_SIZE = 1024 * 1024
READ_AHEAD_MIN_SIZE = 4 * READ_CHUNK_SIZE
READ_AHEAD_BUFFERS = 3
# Smaller files are read whole in one call.
SMALL_FILE_SIZE = 64 * 1024
# O_NONBLOCK: opening a FIFO must not hang (it is then refused as not a
# regular file); it changes nothing for regular files.
_OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY

# The most the tool reads of a file it parses (docker's own limits are
# lower: a .dockerignore line may hold 64 KiB).
DOCKERFILE_MAX_BYTES = 50 * 1000 * 1000
DOCKERIGNORE_MAX_BYTES = 10 * 1000 * 1000

# Hashing that takes longer than this reports progress, every PROGRESS_EVERY.
PROGRESS_AFTER_SECONDS = 2.0
PROGRESS_EVERY_SECONDS = 5.0

# Bounds of option values: past them a value is a mistake, not a wish.
MAX_RETRIES = 100
MAX_SECONDS = 7 * 24 * 3600.0
# No single wait between retries is longer than this, however many doublings.
MAX_RETRY_WAIT_SECONDS = 600.0


class ToolError(Exception):
    """An expected failure, reported as one line."""

    exit_status = EXIT_FAILURE


class UsageError(ToolError):
    """The command line cannot be acted on (reported as argparse does)."""

    exit_status = EXIT_USAGE


class InputError(ToolError):
    """A file or directory the tag depends on cannot be used."""


class DockerError(ToolError):
    """Docker is missing, failed, or the registry cannot be used."""


class Terminated(BaseException):
    """SIGTERM arrived; raised like KeyboardInterrupt so children are killed."""


# --- The command line -----------------------------------------------------


class HashMode(enum.Enum):
    """What the digest is computed over."""

    ORIGINAL = "original"  # the original script's stream: its tags, its caches
    DOCKER = "docker"  # what `docker build` receives


class Action(enum.Enum):
    """What a run does."""

    GET_IMAGE = "get the image"
    PRINT_NAME = "print the image name"
    EXPLAIN = "explain the digest"
    EXPLAIN_JSON = "explain the digest as JSON"
    PRUNE = "prune the registry"


class PrunePolicy(NamedTuple):
    """--prune-older-than and what goes with it."""

    older_than: float  # seconds
    keep_newest: int
    keep_tags_from: str | None
    dry_run: bool


class Options(NamedTuple):
    """What the command line asks for, checked, built once."""

    action: Action
    dockerfile: str
    context: str
    build_args_text: str  # hashed exactly as given
    build_args: tuple[str, ...]  # the same, split as a shell would
    other_build_args: tuple[str, ...]  # passed to docker build, not hashed
    registry: str | None  # None: local-only mode
    repository: str
    docker_path: str
    hash_mode: HashMode
    hash_base_images: bool
    hash_platform: bool
    layer_cache: str | None  # the cache tag, or None
    no_push: bool
    image_cache_dir: str | None
    output_file: str | None
    retries: int
    retry_delay: float
    probe_timeout: float
    transfer_timeout: float
    build_lock: float | None  # the lease, in seconds; None: no lock
    build_lock_timeout: float
    prune: PrunePolicy | None
    debug: bool

    @property
    def docker_build_args(self) -> tuple[str, ...]:
        """Every argument docker build gets before --tag, in order."""
        return self.build_args + self.other_build_args


DESCRIPTION = """\
Gets a docker image, either by pulling it from a container registry or by
building it locally and then pushing it. The image is identified by a
SHA-256 digest of the docker build args affecting its content, the
Dockerfile, and the build context directory; the digest is the image tag.
If the registry has an image with that tag it is pulled, otherwise it is
built and pushed. Either way it is then also tagged locally with the plain
repository name. You must be logged in to the registry.
"""

EPILOG = """\
examples:
  %(prog)s --container-registry myreg --repository ci/build \\
      --dockerfile ci/Dockerfile --context ci \\
      --docker-build-args "--build-arg VERSION='1 2'"
  %(prog)s --repository ci/build --docker-build-args=--no-cache
  IMAGE=$(%(prog)s --repository ci/build --print-image-name)
  %(prog)s --hash-mode docker --container-registry ghcr.io/acme \\
      --repository ci/build --no-push --output-file "$GITHUB_OUTPUT"
  %(prog)s --container-registry ghcr.io/acme --repository ci/build \\
      --prune-older-than 30d --dry-run

A build-args value that starts with '-' and has no space is given with '='
(--docker-build-args=--no-cache).

exit status: 0 success, 1 failure, 2 usage error, 130 interrupted,
143 terminated.
"""


class _ArgumentParser(argparse.ArgumentParser):
    """argparse, with a hint where a build-args value was taken for an option,
    and whose --help and --version fail on a full stdout (argparse ignores
    a failed write)."""

    def _print_message(self, message: str, file: SupportsWrite[str] | None = None) -> None:
        # argparse passes the stream it means (sys.stdout for --help and
        # --version): None is that stream closed since the start, never
        # "stderr instead" (where argparse's own would put the help).
        if message:
            stream = file
            if stream is None:  # started with it closed
                raise OSError(errno.EBADF, "it is closed")
            stream.write(message)
            flush = getattr(stream, "flush", None)
            if flush is not None:
                flush()

    def error(self, message: str) -> NoReturn:
        if "expected one argument" in message and "build-args" in message:
            message += (
                " (a value starting with '-' is given with '=': --docker-build-args=--no-cache)"
            )
        super().error(message)


def build_parser(prog: str) -> argparse.ArgumentParser:
    command = f"python3 {prog}" if prog.endswith(".py") else prog  # examples that paste
    parser = _ArgumentParser(
        prog=prog,
        description=DESCRIPTION,
        epilog=EPILOG.replace("%(prog)s", command),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--dockerfile", default="Dockerfile", help="Path to the Dockerfile.")
    parser.add_argument("--context", default=".", help="Path to the build context.")
    parser.add_argument(
        "--docker-build-args",
        default="",
        metavar="ARGS",
        help="Docker build args which may affect the image content, as one string "
        "split like a shell would. The text, exactly as given, is part of the digest.",
    )
    parser.add_argument(
        "--docker-build-args-not-affecting-image-content",
        default="",
        metavar="ARGS",
        help="Docker build args which do not affect the image content; passed to "
        "docker build but not part of the digest.",
    )
    parser.add_argument(
        "--container-registry",
        metavar="REGISTRY",
        help="An Azure container registry name (NAME means NAME.azurecr.io), or a "
        "registry host with optional namespace, used verbatim (localhost:5000, "
        "ghcr.io/acme). Without it no registry is used: the image is reused if the "
        "docker engine has it, else built.",
    )
    parser.add_argument("--repository", required=True, help="The image repository name.")
    parser.add_argument("--docker-path", default="docker", metavar="PATH", help="Path to docker.")
    parser.add_argument(
        "--hash-mode",
        choices=[mode.value for mode in HashMode],
        default=HashMode.ORIGINAL.value,
        help="original (default): the original script's digest, shared with its "
        "caches. docker: only what docker build receives (.dockerignore applied, "
        "paths relative to the context, symlinks not followed) and the target "
        "platform; other tags.",
    )
    parser.add_argument(
        "--hash-platform",
        action="store_true",
        help="Also hash the build's target platform (--platform in the build args, "
        "else DOCKER_DEFAULT_PLATFORM, else the engine's), so that runners of "
        "different architectures sharing a registry get different tags. Always on "
        "with --hash-mode docker.",
    )
    parser.add_argument(
        "--hash-base-images",
        action="store_true",
        help="Also hash the registry digest of each FROM image, so that a moved base "
        "image gives a new tag. Asks the registries, also with --print-image-name.",
    )
    parser.add_argument(
        "--layer-cache",
        nargs="?",
        const="latest",
        metavar="TAG",
        help="On a miss, build with the layers of REGISTRY/REPOSITORY:TAG (default "
        "latest), and move TAG to the new image after the push. Registry mode only.",
    )
    parser.add_argument(
        "--no-push",
        action="store_true",
        help="Read the registry but never write to it (pull requests from forks): "
        "pull on a hit, build locally on a miss; an unreachable registry or refused "
        "credentials mean a local build too.",
    )
    parser.add_argument(
        "--image-cache-dir",
        metavar="DIR",
        help="A directory the CI system saves and restores between runs (local-only "
        "mode, or with --no-push): the image is loaded from it when the engine lacks "
        "it, and saved into it (one archive per repository) when it was not.",
    )
    parser.add_argument(
        "--output-file",
        metavar="FILE",
        help="Append KEY=VALUE lines (image, tag, result, seconds) to FILE when the "
        "run succeeds: GitHub Actions' $GITHUB_OUTPUT, a GitLab dotenv report.",
    )
    parser.add_argument(
        "--retries",
        type=_bounded(int, 0, MAX_RETRIES),
        default=3,
        metavar="N",
        help="Retries of a registry step (probe, pull, push) that failed for a "
        f"transient reason: HTTP 5xx, reset connections, timeouts (default 3, at "
        f"most {MAX_RETRIES}).",
    )
    parser.add_argument(
        "--retry-delay",
        type=_bounded(float, 0, MAX_RETRY_WAIT_SECONDS),
        default=2.0,
        metavar="SECONDS",
        help="The first retry's delay; it doubles for each next one, with jitter, up "
        f"to {MAX_RETRY_WAIT_SECONDS:g} s (default 2).",
    )
    parser.add_argument(
        "--probe-timeout",
        type=_bounded(float, 0, MAX_SECONDS, positive=True),
        default=60.0,
        metavar="SECONDS",
        help="How long one registry probe (or question to the engine) may take (default 60).",
    )
    parser.add_argument(
        "--transfer-timeout",
        type=_bounded(float, 0, MAX_SECONDS, positive=True),
        default=600.0,
        metavar="SECONDS",
        help="How long a pull or push may go without docker printing a line before "
        "it is stopped (default 600): a bound on silence, not on the whole transfer.",
    )
    parser.add_argument(
        "--build-lock",
        nargs="?",
        const=60.0,
        type=_bounded(float, 1, 3600),
        metavar="SECONDS",
        help="On a miss, take a lock in the registry for this tag before building "
        "(a marker tag ending in -lock, with a lease of SECONDS, default 60, renewed "
        "while the build runs), so that jobs building the same image at once wait "
        "for one build and pull it. Registry mode, not with --no-push.",
    )
    parser.add_argument(
        "--build-lock-timeout",
        type=_bounded(float, 0, MAX_SECONDS, positive=True),
        metavar="SECONDS",
        help="How long a job waits for another job's build before it builds itself "
        "(default 10800: three hours).",
    )
    prune = parser.add_argument_group(
        "cleaning the registry",
        "--prune-older-than deletes the repository's digest tags whose image was "
        "built longer ago than DURATION, instead of getting the image. It keeps the "
        "current inputs' tag, the newest ones, those listed, and any whose manifest "
        "another kept tag names; it prints one line per tag.",
    )
    prune.add_argument(
        "--prune-older-than",
        type=_duration,
        metavar="DURATION",
        help="An age: a number and a unit, s, m, h, d or w (90m, 12h, 30d).",
    )
    prune.add_argument(
        "--keep-newest",
        type=_bounded(int, 0, 100000),
        metavar="N",
        help="Keep the N newest digest tags, whatever their age (default 3).",
    )
    prune.add_argument(
        "--keep-tags-from",
        metavar="FILE",
        help="Keep the tags of FILE: one image name (as --print-image-name prints it) or "
        "tag a line; blank lines and # comments are skipped.",
    )
    prune.add_argument(
        "--dry-run", action="store_true", help="Print what would be deleted; delete nothing."
    )
    output = parser.add_mutually_exclusive_group()
    output.add_argument(
        "--print-image-name",
        action="store_true",
        help="Print the full image name on stdout and exit, without running docker "
        "(but to ask the engine for its platform where the tag needs it, and the "
        "registries with --hash-base-images).",
    )
    output.add_argument(
        "--explain",
        nargs="?",
        const="text",
        choices=("text", "json"),
        help="Print on stdout every input of the digest in hash order, then the image "
        "name, without running docker (as for --print-image-name); json: one JSON "
        "object per line.",
    )
    parser.add_argument("--debug", action="store_true", help="Show a traceback on internal errors.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return parser


def _bounded(
    kind: type[int] | type[float], low: float, high: float, *, positive: bool = False
) -> Callable[[str], Any]:
    """An argparse type: a finite number from `low` (excluded if `positive`) to `high`."""

    def convert(text: str) -> float:
        value = kind(text)
        if not math.isfinite(value) or value > high or value < low or (positive and value <= 0):
            above = f"above {low:g}" if positive else f"from {low:g}"
            raise argparse.ArgumentTypeError(f"must be {above} to {high:g}: {text!r}")
        return value

    convert.__name__ = kind.__name__  # argparse names the type in its message
    return convert


_DURATION = re.compile(r"([0-9]{1,12}(?:\.[0-9]{1,9})?)([smhdw])")
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def _duration(text: str) -> float:
    """An argparse type: `30d`, `12h`, `90m`, in seconds."""
    match = _DURATION.fullmatch(text)
    seconds = float(match.group(1)) * _DURATION_UNITS[match.group(2)] if match else 0.0
    if not 0 < seconds <= 100 * 365 * 86400:
        raise argparse.ArgumentTypeError(
            f"not a duration: {text!r} (a number and a unit, s, m, h, d or w: 30d, 12h, 90m)"
        )
    return seconds


def parse_options(argv: Sequence[str] | None) -> Options:
    """The command line as Options; exits with status 2 on a usage error."""
    parser = build_parser(os.path.basename(sys.argv[0]) if argv is None else "get_docker_image.py")
    args = parser.parse_args(argv)
    action = Action.GET_IMAGE
    if args.print_image_name:
        action = Action.PRINT_NAME
    elif args.explain:
        action = Action.EXPLAIN if args.explain == "text" else Action.EXPLAIN_JSON
    prune = None
    if args.prune_older_than is not None:
        if action is not Action.GET_IMAGE:
            parser.error("--prune-older-than: not with --print-image-name or --explain")
        action = Action.PRUNE
        keep_newest = 3 if args.keep_newest is None else args.keep_newest
        prune = PrunePolicy(args.prune_older_than, keep_newest, args.keep_tags_from, args.dry_run)
    elif args.keep_tags_from is not None or args.dry_run or args.keep_newest is not None:
        parser.error("--keep-newest, --keep-tags-from and --dry-run go with --prune-older-than")
    if args.build_lock_timeout is not None and args.build_lock is None:
        parser.error("--build-lock-timeout goes with --build-lock")
    try:
        options = Options(
            action=action,
            dockerfile=args.dockerfile,
            context=args.context,
            build_args_text=args.docker_build_args,
            build_args=_split("--docker-build-args", args.docker_build_args),
            other_build_args=_split(
                "--docker-build-args-not-affecting-image-content",
                args.docker_build_args_not_affecting_image_content,
            ),
            registry=args.container_registry,
            repository=args.repository,
            docker_path=args.docker_path,
            hash_mode=HashMode(args.hash_mode),
            hash_base_images=args.hash_base_images,
            hash_platform=args.hash_platform or args.hash_mode == HashMode.DOCKER.value,
            layer_cache=args.layer_cache,
            no_push=args.no_push,
            image_cache_dir=args.image_cache_dir,
            output_file=args.output_file,
            retries=args.retries,
            retry_delay=args.retry_delay,
            probe_timeout=args.probe_timeout,
            transfer_timeout=args.transfer_timeout,
            build_lock=args.build_lock,
            build_lock_timeout=BUILD_LOCK_TIMEOUT_SECONDS
            if args.build_lock_timeout is None
            else args.build_lock_timeout,
            prune=prune,
            debug=args.debug,
        )
        check_options(options)
    except UsageError as error:
        parser.error(str(error))
    return options


def _split(option: str, text: str) -> tuple[str, ...]:
    try:
        return tuple(shlex.split(text))
    except ValueError as error:
        raise UsageError(f"{option}: cannot split {text!r}: {error}") from None


def check_options(options: Options) -> None:
    """What argparse cannot check alone: names, and options that go together."""
    for option, path in (("--dockerfile", options.dockerfile), ("--context", options.context)):
        if path == "-":
            # docker would read stdin, which this tool cannot hash: it must
            # hash what it builds.
            raise UsageError(f"{option} -: stdin is not supported; give a path")
    check_names(options)
    local = options.registry is None
    if local and options.layer_cache is not None:
        raise UsageError(
            "--layer-cache needs --container-registry "
            "(without a registry the engine's own layer cache already applies)"
        )
    if local and options.no_push:
        raise UsageError("--no-push needs --container-registry (without one nothing is pushed)")
    if options.build_lock is not None and (local or options.no_push):
        raise UsageError(
            "--build-lock needs --container-registry and pushing: others wait for the "
            "build to be pushed"
        )
    if options.prune is not None and local:
        raise UsageError("--prune-older-than needs --container-registry")
    if options.prune is not None and options.no_push:
        raise UsageError(
            "--no-push: not with --prune-older-than, which deletes from the registry "
            "(--dry-run deletes nothing)"
        )
    if options.image_cache_dir is not None and not (local or options.no_push):
        raise UsageError(
            "--image-cache-dir needs local-only mode or --no-push "
            "(with a registry to push to, the registry is the cache)"
        )
    if options.hash_mode is HashMode.DOCKER:
        _optional_module("dockerignore", "--hash-mode docker")
    if options.hash_base_images:
        _optional_module("dockerfile_from", "--hash-base-images")
    if options.build_lock is not None:
        _optional_module("registry", "--build-lock")
    if options.prune is not None:
        _optional_module("registry", "--prune-older-than")


# --- Image names ----------------------------------------------------------

# Docker's reference grammar (distribution/reference): lowercase path
# components joined by '/', an optional host[:port] in front, 255 at most.
# ASCII only, as docker's: str.isdigit() and \w would take other scripts'
# digits and letters. Lengths are checked first: the patterns then run on
# bounded text.
_PATH_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_DOMAIN_COMPONENT = re.compile(r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])")
_IPV6 = re.compile(r"\[[a-fA-F0-9:]+\]")
_PORT = re.compile(r"[0-9]{1,5}")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
NAME_MAX_LENGTH = 255
TAG_MAX_LENGTH = 128


def is_registry_host(registry: str) -> bool:
    """Docker's rule: a first component with '.' or ':', or 'localhost', is a host."""
    first = registry.split("/", 1)[0]
    return "." in first or ":" in first or first == "localhost"


def registry_prefix(registry: str) -> str:
    """What goes before `/<repository>` in the image name."""
    if is_registry_host(registry):
        return registry.rstrip("/")
    return registry + AZURE_REGISTRY_SUFFIX


def image_name(registry: str | None, repository: str, tag: str) -> str:
    """The full image name: in the registry, or local when registry is None."""
    if registry is None:
        return f"{repository}:{tag}"
    return f"{registry_prefix(registry)}/{repository}:{tag}"


def reference_host(reference: str) -> str:
    """The registry host of an image reference, as docker finds it: the first
    component if it is a host and more follow, else Docker Hub."""
    first, slash, _ = reference.partition("/")
    return first if slash and is_registry_host(first) else "docker.io"


def host_name(host: str) -> str:
    """A registry host without its port ("[::1]:5000" -> "::1")."""
    if host.startswith("["):
        return host[1:].partition("]")[0]
    name, colon, port = host.rpartition(":")
    return name if colon and port.isascii() and port.isdigit() else host


def without_tag(reference: str) -> str:
    """An image name without its tag (a port's colon is not a tag's)."""
    name, colon, tag = reference.rpartition(":")
    return name if colon and "/" not in tag else reference


def _check_path(option: str, value: str, components: Sequence[str]) -> None:
    for component in components:
        if not _PATH_COMPONENT.fullmatch(component):
            raise UsageError(
                f"{option} {value!r}: {component!r} is not a valid name component "
                "(lowercase letters and digits, separated by '.', '_', '__' or dashes)"
            )


def _check_host(option: str, value: str, host: str) -> None:
    name, _, port = host.rpartition(":") if not host.endswith("]") else (host, "", "")
    if not name:
        name, port = host, ""
    valid_name = _IPV6.fullmatch(name) or all(
        _DOMAIN_COMPONENT.fullmatch(part) for part in name.split(".")
    )
    if not valid_name:
        raise UsageError(f"{option} {value!r}: {host!r} is not a valid registry host")
    if (
        ":" in host
        and not host.endswith("]")
        and not (_PORT.fullmatch(port) and 0 < int(port) < 65536)
    ):
        raise UsageError(f"{option} {value!r}: {port!r} is not a valid port (1 to 65535)")


def check_names(options: Options) -> None:
    """Checks the repository, registry and cache tag against docker's
    reference grammar, so that a bad name is a usage error before anything runs."""
    repository, registry = options.repository, options.registry
    name = image_name(registry, repository, "x").rsplit(":", 1)[0]
    if len(name) > NAME_MAX_LENGTH:
        raise UsageError(
            f"the image name {name!r} is {len(name)} characters long; "
            f"docker allows {NAME_MAX_LENGTH} at most"
        )
    _check_path("--repository", repository, repository.split("/"))
    if registry is not None:
        # As docker will parse it: an Azure name's prefix is a host too
        # (unless, as the original allows, the name has a '/' in it).
        prefix = registry_prefix(registry)
        host, *namespace = prefix.split("/")
        if is_registry_host(prefix):
            _check_host("--container-registry", registry, host)
        else:
            namespace.insert(0, host)
        _check_path("--container-registry", registry, namespace)
    tag = options.layer_cache
    if tag is not None:
        if not _TAG.fullmatch(tag):
            raise UsageError(
                f"--layer-cache {tag[: TAG_MAX_LENGTH + 1]!r} is not a valid tag (ASCII "
                f"letters, digits, '_', '.' and '-', not first, {TAG_MAX_LENGTH} at most)"
            )
        if tag.startswith(TAG_PREFIX):
            raise UsageError(
                f"--layer-cache {tag!r}: tags starting with {TAG_PREFIX!r} name content "
                "digests; the layer cache tag must not overwrite one"
            )


# --- The docker build arguments and platforms -----------------------------


def option_values(argv: Sequence[str], option: str) -> list[str]:
    """The values of `--option VALUE` and `--option=VALUE` in docker build's
    arguments, in order."""
    values: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == option:
            if i + 1 < len(argv):
                values.append(argv[i + 1])
            i += 2
            continue
        if arg.startswith(option + "="):
            values.append(arg[len(option) + 1 :])
        i += 1
    return values


def build_arg_values(argv: Sequence[str], environ: Mapping[str, str]) -> dict[str, str]:
    """The --build-arg values docker build sends; later ones win.

    `--build-arg NAME` alone takes NAME from the environment and, when it is
    not there, sets nothing (the docker CLI sends it without a value).
    """
    values: dict[str, str] = {}
    for item in option_values(argv, "--build-arg"):
        name, eq, value = item.partition("=")
        if not name:
            continue  # docker refuses it
        if eq:
            values[name] = value
        elif name in environ:
            values[name] = environ[name]
    return values


def build_target(argv: Sequence[str]) -> str | None:
    """The build's --target stage (the last one wins), if any."""
    values = option_values(argv, "--target")
    return values[-1] if values and values[-1] else None


def requested_platforms(argv: Sequence[str], environ: Mapping[str, str]) -> str | None:
    """The build's --platform (the last one wins), else DOCKER_DEFAULT_PLATFORM."""
    values = option_values(argv, "--platform")
    if values:
        return values[-1] or None
    return environ.get("DOCKER_DEFAULT_PLATFORM") or None


class Platform(NamedTuple):
    """An (os, architecture, variant) as containerd normalizes it."""

    os_name: str
    architecture: str
    variant: str

    def __str__(self) -> str:
        return "/".join(part for part in self if part)


_KNOWN_OS = frozenset(
    {"aix", "android", "darwin", "dragonfly", "freebsd", "hurd", "illumos", "ios", "js"}
    | {"linux", "nacl", "netbsd", "openbsd", "plan9", "solaris", "wasip1", "windows", "zos"}
)
LINUX = Platform("linux", "", "")


def _normalize_arch(arch: str, variant: str) -> tuple[str, str]:
    """containerd's normalizeArch: aliases to GOARCH, default arm variant."""
    arch, variant = arch.lower(), variant.lower()
    if arch == "i386":
        return "386", ""
    if arch in ("x86_64", "x86-64", "amd64"):
        return "amd64", "" if variant == "v1" else variant
    if arch in ("aarch64", "arm64"):
        if variant in ("8", "v8", "v8.0"):
            variant = ""
        elif variant in ("9", "9.0", "v9.0"):
            variant = "v9"
        return "arm64", variant
    if arch == "armhf":
        return "arm", "v7"
    if arch == "armel":
        return "arm", "v6"
    if arch == "arm":
        if variant in ("", "7"):
            variant = "v7"
        elif variant in ("5", "6", "8"):
            variant = "v" + variant
    return arch, variant


def parse_platform(spec: str, default: Platform = LINUX) -> Platform:
    """`os[/arch[/variant]]` or `arch`, normalized; what a spec leaves out
    (an os alone, an arch alone) comes from `default`."""
    parts = spec.strip().split("/")
    os_name = parts[0].lower()
    if os_name == "macos":
        os_name = "darwin"
    if len(parts) == 1:
        if os_name in _KNOWN_OS:
            return Platform(os_name, default.architecture, default.variant)
        return Platform(default.os_name, *_normalize_arch(parts[0], ""))
    return Platform(os_name, *_normalize_arch(parts[1], parts[2] if len(parts) > 2 else ""))


def target_platforms(requested: str | None, engine: Callable[[], Platform]) -> list[Platform]:
    """What the build is for: each entry of the requested list, else the
    engine's platform. `engine` is asked only when the request needs it."""
    if requested is None:
        return [engine()]
    entries = [entry for entry in requested.split(",") if entry.strip()]
    platforms = [parse_platform(entry) for entry in entries]
    if any(not platform.architecture for platform in platforms):  # an os alone
        default = engine()
        platforms = [parse_platform(entry, default) for entry in entries]
    return platforms


# --- Reading inputs -------------------------------------------------------


def read_regular_file(path: str | bytes, limit: int, what: str, *, optional: bool = False) -> bytes:
    """The bytes of a file the tool parses: opened without blocking, refused
    unless a regular file, at most `limit` bytes; b"" for a missing optional one."""
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except FileNotFoundError:
        if optional:
            return b""
        raise InputError(f"{what} not found: {_show(path)}") from None
    except OSError as error:
        raise _input_error(error, path, what) from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise InputError(f"{what} is not a regular file: {_show(path)}")
        chunks = []
        left = limit + 1  # one more byte tells a file that is too large
        while left > 0 and (chunk := os.read(fd, min(left, READ_CHUNK_SIZE))):
            chunks.append(chunk)
            left -= len(chunk)
    except OSError as error:
        raise _input_error(error, path, what) from None
    finally:
        os.close(fd)
    if left <= 0:
        raise InputError(
            f"{what} {_show(path)} is larger than {_size(limit)}, the most this tool reads"
        )
    return b"".join(chunks)


def _show(path: bytes | str) -> str:
    """A path for messages: quoted, undecodable bytes escaped."""
    if isinstance(path, bytes):
        path = path.decode("utf-8", "backslashreplace")
    return repr(path)


def _input_error(error: OSError, path: bytes | str, what: str) -> InputError:
    """A one-line InputError naming what could not be read, and why."""
    if isinstance(error, FileNotFoundError):
        return InputError(f"{what} not found: {_show(path)}")
    return InputError(f"cannot read {what} {_show(path)}: {error.strerror or error}")


def _size(count: float) -> str:
    for unit in ("bytes", "kB", "MB", "GB"):
        if count < 1000 or unit == "GB":
            return f"{count:.0f} {unit}" if unit == "bytes" else f"{count:.1f} {unit}"
        count /= 1000
    raise AssertionError  # unreachable


def _optional_module(name: str, option: str) -> Any:
    """A module of the tool that only an option needs, so that the core stays
    three files to copy (and starts faster): a usage error if it is missing."""
    try:
        return importlib.import_module(f".{name}" if __package__ else name, __package__)
    except ModuleNotFoundError as error:
        if error.name not in (name, f"{__package__}.{name}"):
            raise
        raise UsageError(
            f"{option} needs {name}.py beside get_docker_image.py (copy it from the tool)"
        ) from None


# --- The content digest ---------------------------------------------------


class HashedEntry:
    """A file, directory or link of the digest, as hashed (for --explain).

    A plain class: a dataclass would cost every run some 5 ms of start-up
    (dataclasses imports inspect), for a type that only --explain uses.
    """

    __slots__ = ("kind", "mode", "path", "sha256", "size", "target")

    def __init__(
        self,
        kind: str,  # "dockerfile", "file", "dir" or "link"
        path: bytes,  # as hashed
        mode: int,  # as hashed (docker mode: permission bits)
        *,
        size: int | None = None,  # bytes of content (files) or of target (links)
        sha256: str | None = None,  # of the same bytes
        target: bytes | None = None,  # what a link points to
    ) -> None:
        self.kind, self.path, self.mode = kind, path, mode
        self.size, self.sha256, self.target = size, sha256, target


class Observer(Protocol):
    """Is told each input of the digest, in hash order (--explain)."""

    def text(self, kind: str, text: bytes) -> None:
        """Build-args text ("args") or the target platforms ("platform")."""

    def base_image(self, image: BaseImageDigest) -> None: ...

    def entry(self, entry: HashedEntry) -> None: ...


class _Progress:
    """Progress lines on stderr for hashing that takes a while; quiet otherwise."""

    __slots__ = ("_next", "_shown", "_start", "bytes", "files")

    def __init__(self) -> None:
        self.files = self.bytes = 0
        self._start = time.monotonic()
        self._next = self._start + PROGRESS_AFTER_SECONDS
        self._shown = False

    def add(self, files: int, nbytes: int) -> None:
        self.files += files
        self.bytes += nbytes
        # The clock is read once per 64 files, or for every large chunk.
        if ((files and self.files & 63 == 0) or nbytes >= READ_CHUNK_SIZE) and (
            now := time.monotonic()
        ) >= self._next:
            self._next = now + PROGRESS_EVERY_SECONDS
            self._shown = True
            seconds = now - self._start
            _log.info(
                "Hashing: %s files, %s so far (%s/s)",
                f"{self.files:,}",
                _size(self.bytes),
                _size(self.bytes / seconds),
            )

    def done(self) -> None:
        if self._shown:
            seconds = time.monotonic() - self._start
            _log.info(
                "Hashed %s files, %s in %.1f s", f"{self.files:,}", _size(self.bytes), seconds
            )


class _Records:
    """How a hash mode writes its inputs into the stream: the bytes that
    introduce each one (its content follows). Each record is built here."""

    # Whether a file's record states its size, which its content must match.
    states_sizes = False

    def text(self, kind: bytes, text: bytes) -> bytes:
        raise NotImplementedError

    def dockerfile(self, path: bytes, mode: int, size: int) -> bytes:
        raise NotImplementedError

    def file(self, path: bytes, mode: int, size: int) -> bytes:
        raise NotImplementedError

    def directory(self, path: bytes, mode: int) -> bytes:
        raise NotImplementedError

    def link(self, path: bytes, mode: int, size: int) -> bytes:
        raise NotImplementedError

    def shown_mode(self, mode: int) -> int:
        """The mode as the stream has it, for --explain."""
        raise NotImplementedError


class _OriginalRecords(_Records):
    """The original's stream: the build-args text as it is; then for the
    Dockerfile, every directory and every file `<path> <st_mode in decimal>`
    (the path spelled as given: `ctx`, `./ctx` and `ctx/` differ), each
    file's bytes after its record. A link hashed as itself is a file whose
    bytes are its target text."""

    def __init__(self) -> None:
        self._suffixes: dict[int, bytes] = {}  # st_mode -> b" <decimal>"

    def text(self, kind: bytes, text: bytes) -> bytes:
        return b""

    def file(self, path: bytes, mode: int, size: int) -> bytes:
        suffix = self._suffixes.get(mode)
        if suffix is None:
            suffix = self._suffixes[mode] = b" %d" % mode
        return path + suffix

    dockerfile = link = file

    def directory(self, path: bytes, mode: int) -> bytes:
        return self.file(path, mode, 0)

    def shown_mode(self, mode: int) -> int:
        return mode


class _DockerRecords(_Records):
    """What `docker build` receives, unambiguously: NUL-separated records
    with sizes, `<kind>\\0<path>\\0<permission bits in octal>\\0<size>\\0`,
    paths relative to the context; the Dockerfile's text only (docker reads
    it from wherever it is); the build-args text as `args\\0<size>\\0`."""

    states_sizes = True

    def text(self, kind: bytes, text: bytes) -> bytes:
        return b"%s\0%d\0" % (kind, len(text))

    def _record(self, kind: bytes, path: bytes, mode: int, size: int) -> bytes:
        return b"%s\0%s\0%o\0%d\0" % (kind, path, stat.S_IMODE(mode), size)

    def dockerfile(self, path: bytes, mode: int, size: int) -> bytes:
        return self._record(b"dockerfile", b"", 0, size)

    def file(self, path: bytes, mode: int, size: int) -> bytes:
        return self._record(b"file", path, mode, size)

    def directory(self, path: bytes, mode: int) -> bytes:
        return self._record(b"dir", path, mode, 0)

    def link(self, path: bytes, mode: int, size: int) -> bytes:
        return self._record(b"link", path, mode, size)

    def shown_mode(self, mode: int) -> int:
        return stat.S_IMODE(mode)


class _Hasher:
    """The SHA-256 stream being fed: records from a hash mode's _Records,
    file contents read as fast as this machine allows, progress, and the
    observer told each input."""

    def __init__(
        self,
        records: _Records,
        observer: Observer | None,
        *,
        chunk_size: int,
        read_ahead_min_size: int,
        small_file_size: int,
    ) -> None:
        self.digest = hashlib.sha256()
        self.records = records
        self.observer = observer
        self.progress = _Progress()
        self._chunk_size = chunk_size
        self._read_ahead_min_size = read_ahead_min_size
        self._small_file_size = small_file_size
        self._buffers: list[bytearray] = []  # see _chunk_buffers

    def add_text(self, kind: str, text: bytes) -> None:
        self.digest.update(self.records.text(kind.encode(), text) + text)
        if self.observer:
            self.observer.text(kind, text)

    def add_directory(self, path: bytes, mode: int) -> None:
        self.digest.update(self.records.directory(path, mode))
        if self.observer:
            self.observer.entry(HashedEntry("dir", path, self.records.shown_mode(mode)))

    def add_dockerfile(self, path: bytes) -> None:
        """Hashes the Dockerfile: one regular file, opened by its path."""
        try:
            fd = os.open(path, _OPEN_FLAGS)
        except OSError as error:
            raise _input_error(error, path, "Dockerfile") from None
        try:
            status = os.fstat(fd)
            if not stat.S_ISREG(status.st_mode):
                raise InputError(f"Dockerfile is not a regular file: {_show(path)}")
            record = self.records.dockerfile(path, status.st_mode, status.st_size)
            self._add_content(fd, path, status, record, kind="dockerfile", what="Dockerfile")
        except OSError as error:
            raise _input_error(error, path, "Dockerfile") from None
        finally:
            os.close(fd)

    def add_files(
        self, dir_fd: int, prefix: bytes, names: list[bytes], links: dict[bytes, int]
    ) -> None:
        """Hashes each name's record and bytes, in order: the walk's hot loop.

        Names are opened relative to `dir_fd` (sparing the kernel a walk down
        the whole path for every file) and hashed as `prefix + name`. Names in
        `links` are hashed as links; what is not a regular file once opened
        is skipped. A small file costs four system calls (open, fstat, read,
        close) and two hash updates.
        """
        # Locals: this loop runs once per file, and lookups add up.
        record, add_content, update = self.records.file, self._add_content, self.digest.update
        open_, fstat, read, close, is_regular = os.open, os.fstat, os.read, os.close, stat.S_ISREG
        # A small file that nobody observes is hashed here without a call
        # more (the common case, by far); any other goes to _add_content.
        small = self._small_file_size if self.observer is None else 0
        add_file = self.progress.add
        for name in names:
            path = prefix + name
            if name in links:
                self._add_link(dir_fd, name, path, links[name])
                continue
            try:
                fd = open_(name, _OPEN_FLAGS, dir_fd=dir_fd)
            except OSError as error:
                raise _input_error(error, path, "file") from None
            try:
                status = fstat(fd)
                size = status.st_size
                if not is_regular(status.st_mode):
                    continue
                if size >= small:
                    add_content(fd, path, status, record(path, status.st_mode, size))
                    continue
                data = read(fd, size + 1)
                if len(data) > size:  # it grew since fstat: the general way
                    os.lseek(fd, 0, os.SEEK_SET)
                    add_content(fd, path, status, record(path, status.st_mode, size))
                    continue
                update(record(path, status.st_mode, size) + data)
            except OSError as error:
                raise _input_error(error, path, "file") from None
            finally:
                close(fd)
            if len(data) != size and self.records.states_sizes:
                raise InputError(f"file changed while it was hashed: {_show(path)}")
            add_file(1, len(data))

    def _add_content(
        self,
        fd: int,
        path: bytes,
        status: os.stat_result,
        record: bytes,
        *,
        kind: str = "file",
        what: str = "file",
    ) -> None:
        """Hashes a file's record, then its bytes: a small one read whole in
        one call, a larger one in chunks."""
        size = status.st_size
        observer = self.observer
        if size < self._small_file_size:  # one read, into a fresh bytes object
            data = os.read(fd, size + 1)
            self.digest.update(record + data)
            count = read_whole = len(data)
            content = hashlib.sha256(data) if observer else None
            if count > size:  # it grew since fstat: read on to the end
                count += self._add_rest(fd, 0, content)
        else:
            self.digest.update(record)
            content = hashlib.sha256() if observer else None
            count = self._add_rest(fd, size, content)
            read_whole = 0  # _add_chunk reported the chunks as they came
        if count != size and self.records.states_sizes:
            raise InputError(f"{what} changed while it was hashed: {_show(path)}")
        self.progress.add(1, read_whole)
        if observer:
            mode = self.records.shown_mode(status.st_mode)
            sha256 = content.hexdigest() if content else None
            observer.entry(HashedEntry(kind, path, mode, size=count, sha256=sha256))

    def _add_rest(self, fd: int, expected_size: int, content: hashlib._Hash | None) -> int:
        """Hashes the file's bytes from its offset to its end; returns how many.

        Reads into reused buffers, in a second thread when `expected_size`
        makes that worth it.
        """
        if expected_size >= self._read_ahead_min_size:
            return self._add_content_read_ahead(fd, content)
        view = memoryview(self._chunk_buffers()[0])
        size = 0
        while True:
            count = os.readv(fd, (view,))
            self._add_chunk(view[:count], content)
            size += count
            if count < len(view):
                return size

    def _chunk_buffers(self) -> list[bytearray]:
        """The reused read buffers, made on first use: small files never need them."""
        if not self._buffers:
            self._buffers = [bytearray(self._chunk_size) for _ in range(READ_AHEAD_BUFFERS)]
        return self._buffers

    def _add_chunk(self, chunk: memoryview, content: hashlib._Hash | None) -> None:
        self.digest.update(chunk)
        if content:
            content.update(chunk)
        self.progress.add(0, len(chunk))  # large files report as they go

    def _add_content_read_ahead(self, fd: int, content: hashlib._Hash | None) -> int:
        """Hashes a large file's bytes while a second thread reads the next chunk.

        Both system calls release the GIL, so reading and hashing overlap on
        two cores. Returns how many bytes the file had.
        """
        free: queue.SimpleQueue[bytearray | None] = queue.SimpleQueue()
        filled: queue.SimpleQueue[tuple[bytearray, int] | OSError] = queue.SimpleQueue()

        def read_chunks() -> None:
            try:
                while (buffer := free.get()) is not None:
                    count = os.readv(fd, (buffer,))
                    filled.put((buffer, count))
                    if count < len(buffer):
                        return
            except OSError as error:
                filled.put(error)

        for buffer in self._chunk_buffers():
            free.put(buffer)
        reader = threading.Thread(target=read_chunks, name="read-ahead", daemon=True)
        reader.start()
        size = 0
        try:
            while True:
                item = filled.get()
                if isinstance(item, OSError):
                    raise item
                buffer, count = item
                self._add_chunk(memoryview(buffer)[:count], content)
                size += count
                if count < len(buffer):
                    return size
                free.put(buffer)
        finally:
            free.put(None)  # the reader stops before the caller closes fd
            reader.join()

    def _add_link(self, dir_fd: int, name: bytes, path: bytes, mode: int) -> None:
        try:
            target = os.readlink(name, dir_fd=dir_fd)
        except OSError as error:
            raise _input_error(error, path, "symlink") from None
        self.digest.update(self.records.link(path, mode, len(target)) + target)
        self.progress.add(1, len(target))
        if self.observer:
            sha256 = hashlib.sha256(target).hexdigest()
            shown = self.records.shown_mode(mode)
            self.observer.entry(
                HashedEntry("link", path, shown, size=len(target), sha256=sha256, target=target)
            )


# A directory's entries to hash, each list sorted by name: files (regular
# files, links to them, links hashed as links); links: those of the files
# hashed as links, with their lstat mode; subdirectories: name, mode (0: an
# excluded directory, walked for what an exception re-includes in it, with
# no record of its own) and the state the walk carries down, of the type a
# hash mode's walk chooses.
_Listing = tuple[list[bytes], dict[bytes, int], list[tuple[bytes, int, S]]]
# Lists a directory: (its path to open, its fd, the prefix of its entries'
# hashed paths, its state) -> its entries.
_Lister = Callable[[bytes, int, bytes, S], _Listing[S]]


def _walk(
    hasher: _Hasher,
    list_directory: _Lister[S],
    *,
    root: bytes,
    root_prefix: bytes,
    open_root: bytes,
    root_mode: int,
    root_state: S,
) -> None:
    """Hashes a directory tree, depth first, with an explicit stack (no
    recursion limit on deep trees): each directory's record, its files,
    then its subdirectories. Directories are hashed as `root` and opened
    at `open_root`, their entries hashed under `root_prefix`."""
    pending: list[tuple[bytes, bytes, bytes, int, S]] = [
        (root, root_prefix, open_root, root_mode, root_state)
    ]
    while pending:
        path, prefix, open_path, mode, state = pending.pop()
        if mode:
            hasher.add_directory(path, mode)
        try:
            dir_fd = os.open(open_path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as error:
            raise _input_error(error, open_path, "directory") from None
        try:
            files, links, subdirectories = list_directory(open_path, dir_fd, prefix, state)
            hasher.add_files(dir_fd, prefix, files, links)
        finally:
            os.close(dir_fd)
        open_prefix = open_path if open_path.endswith(b"/") else open_path + b"/"
        pending.extend(
            (prefix + name, prefix + name + b"/", open_prefix + name, mode, state)
            for name, mode, state in reversed(subdirectories)
        )


def _sorted(
    files: list[bytes], links: dict[bytes, int], subdirectories: list[tuple[bytes, int, S]]
) -> _Listing[S]:
    """A directory's listing in hash order: files, then subdirectories, by name.

    Entries share their directory's prefix, so ordering by name is ordering
    by full path; and byte order of UTF-8 is the code point order that the
    original's str sort gives.
    """
    files.sort()
    subdirectories.sort(key=lambda entry: entry[0])
    return files, links, subdirectories


def _context_root(path: bytes) -> os.stat_result:
    """The context directory's status; an InputError unless it is one."""
    try:
        root = os.stat(path)
    except OSError as error:
        raise _input_error(error, path, "context directory") from None
    if not stat.S_ISDIR(root.st_mode):
        raise InputError(f"context is not a directory: {_show(path)}")
    return root


def _hash_original_context(hasher: _Hasher, path: bytes) -> None:
    """The original mode's walk: the context as given, links followed."""
    root = _context_root(path)
    prefix = path if path.endswith(b"/") else path + b"/"
    links = _LinkWalk(path)
    _walk(
        hasher,
        links.list,
        root=path,
        root_prefix=prefix,
        open_root=path,
        root_mode=root.st_mode,
        root_state=links.root_state(),
    )
    links.warn()


class _LinkWalk:
    """The original mode's listing of directories, which follows symlinks as
    the original does, and notes what makes its tags vary from runner to
    runner, for one warning each (docker mode has none of these).

    Symlinks are followed; where that is impossible (dangling, a loop) the
    link is hashed as itself. Entries neither file nor directory are
    skipped. The state carried down is the resolved paths of the directory
    and its ancestors, to tell links that make loops.
    """

    def __init__(self, root: bytes) -> None:
        self.root_real = os.path.realpath(root)
        self._real_paths: dict[tuple[int, int], bytes] = {}  # directory id -> resolved path
        self._seen: set[tuple[int, int]] = set()  # directories walked
        self.notes: dict[str, bytes] = {}  # what was noticed -> an example path

    def root_state(self) -> _Ancestry:
        return _Ancestry(self.root_real, _ancestry_entry(self.root_real))

    def list(
        self, path: bytes, dir_fd: int, prefix: bytes, state: _Ancestry
    ) -> _Listing[_Ancestry]:
        """Files, links not followed, and subdirectories of one directory,
        classified without opening anything."""
        files: list[bytes] = []
        links: dict[bytes, int] = {}
        subdirectories: list[tuple[bytes, int, _Ancestry]] = []
        try:
            # By dir_fd, not by path: the kernel need not resolve the path
            # (and the links in it) again. Names come as str; fsencode gives
            # back their raw bytes.
            with os.scandir(dir_fd) as entries:
                for entry in entries:
                    name = os.fsencode(entry.name)
                    if entry.is_file(follow_symlinks=False):
                        files.append(name)
                    elif entry.is_dir(follow_symlinks=False):
                        status = entry.stat(follow_symlinks=False)
                        if name == b".git":
                            self.notes.setdefault("git", prefix + name)
                        self._walked(status, prefix + name)
                        subdirectories.append((name, status.st_mode, state.child(name)))
                    elif entry.is_symlink():
                        followed = self._follow(dir_fd, name, prefix + name, state)
                        if followed is None:
                            continue
                        kind, mode, real_path = followed
                        if kind == "dir":
                            subdirectories.append((name, mode, state.followed(real_path)))
                        else:
                            files.append(name)
                            if kind == "link":
                                links[name] = mode
        except OSError as error:
            raise _input_error(error, path, "directory") from None
        return _sorted(files, links, subdirectories)

    def _walked(self, status: os.stat_result, path: bytes) -> None:
        key = (status.st_dev, status.st_ino)
        if key in self._seen:
            self.notes.setdefault("twice", path)
        self._seen.add(key)

    def _follow(
        self, dir_fd: int, name: bytes, path: bytes, state: _Ancestry
    ) -> tuple[str, int, bytes] | None:
        """What a symlink is hashed as, following it as the original does.

        Returns ("file", 0, b"") or ("dir", mode, resolved path) for a target
        the walk follows; ("link", the link's own mode, b"") for a link hashed
        as itself: one that cannot be followed (dangling, a loop of links, no
        access) or whose target contains it (walking it would never end);
        None to skip it.
        """
        try:
            target = os.stat(name, dir_fd=dir_fd)
        except OSError:
            target = None
        if target is not None and stat.S_ISREG(target.st_mode):
            # A readlink per link to a file, until the first one that leads outside.
            if "outside" not in self.notes and not _contains(
                self.root_real, self._link_target(dir_fd, name, state.real_path)
            ):
                self.notes["outside"] = path
            return "file", 0, b""
        if target is not None and not stat.S_ISDIR(target.st_mode):
            return None
        if target is not None:
            # One realpath per directory, not per link: trees of links to the
            # same few directories are common, and realpath costs a system
            # call per path component.
            key = (target.st_dev, target.st_ino)
            real_path = self._real_paths.get(key)
            if real_path is None:
                real_path = self._real_paths[key] = os.path.realpath(path)
            if not state.contains_any(real_path):
                if not _contains(self.root_real, real_path):
                    self.notes.setdefault("outside", path)
                self._walked(target, path)
                return "dir", target.st_mode, real_path
        return "link", os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode, b""

    @staticmethod
    def _link_target(dir_fd: int, name: bytes, dir_real_path: bytes) -> bytes:
        """Where a link to a file points, near enough for a warning: its
        target joined to its directory's resolved path (links within the
        target's path are not resolved: that would cost a realpath)."""
        try:
            target = os.readlink(name, dir_fd=dir_fd)
        except OSError:
            return b""
        return os.path.normpath(os.path.join(dir_real_path, target))

    def warn(self) -> None:
        """One line for each thing noticed, each suggesting docker mode."""
        hint = "--hash-mode docker would not hash it"
        if "git" in self.notes:
            _log.warning(
                "The context holds a .git directory (%s): its files change with every "
                "git command, and so does the tag; %s when .dockerignore lists it.",
                _show(self.notes["git"]),
                hint,
            )
        if "outside" in self.notes:
            _log.warning(
                "A symlink leads outside the context (%s): the tag hashes what it points "
                "to on this runner; --hash-mode docker hashes the link itself.",
                _show(self.notes["outside"]),
            )
        if "twice" in self.notes:
            _log.warning(
                "A directory is reached a second time through symlinks (%s) and hashed "
                "again; --hash-mode docker hashes links as links.",
                _show(self.notes["twice"]),
            )


class _Ancestry(NamedTuple):
    """The resolved path of a directory the walk is in, and those of it and
    its ancestors on the walk, to tell links that make loops: one string
    searched in C, not a tuple walked in Python (trees of links are deep)."""

    real_path: bytes
    entries: bytes  # _ancestry_entry() of each

    def child(self, name: bytes) -> _Ancestry:
        real_path = os.path.join(self.real_path, name)
        return _Ancestry(real_path, self.entries + _ancestry_entry(real_path))

    def followed(self, real_path: bytes) -> _Ancestry:
        return _Ancestry(real_path, self.entries + _ancestry_entry(real_path))

    def contains_any(self, directory: bytes) -> bool:
        """Whether `directory` is, or is an ancestor of, any of these paths."""
        return b"\0" + directory.rstrip(b"/") + b"/" in self.entries


def _ancestry_entry(real_path: bytes) -> bytes:
    # Paths hold no NUL: b"\0/a/b/" is found by b"\0/a/" (an ancestor) and by
    # b"\0/a/b/" (itself), and not by b"\0/a/bc/".
    return b"\0" + real_path.rstrip(b"/") + b"/"


def _contains(directory: bytes, path: bytes) -> bool:
    """Whether `directory` is, or is an ancestor of, `path`."""
    return _Ancestry(path, _ancestry_entry(path)).contains_any(directory)


def _hash_docker_context(hasher: _Hasher, path: bytes) -> None:
    """The docker mode's walk: what `docker build` sends of the context."""
    _context_root(path)
    dockerignore_path = os.path.join(path, b".dockerignore")
    patterns = _optional_module("dockerignore", "--hash-mode docker")
    data = read_regular_file(
        dockerignore_path, DOCKERIGNORE_MAX_BYTES, ".dockerignore", optional=True
    )
    try:
        listing = _DockerListing(patterns.PatternMatcher(patterns.read_dockerignore(data)))
        # The root's own mode is not part of what docker copies (COPY . /x/
        # makes /x 0755 whatever it is): hashing it would make the umask of
        # the checkout change the tag. Its entries' paths are relative.
        _walk(
            hasher,
            listing.list,
            root=b".",
            root_prefix=b"",
            open_root=path,
            root_mode=stat.S_IFDIR,
            root_state=None,
        )
    except patterns.DockerignoreError as error:
        raise InputError(f"{_show(dockerignore_path)}: {error}") from None


class _DockerListing:
    """The docker mode's listing: what `docker build` sends of a directory.

    Entries that .dockerignore excludes are left out; an excluded directory
    is not read at all unless an exception may re-include something in it,
    and then it is walked with mode 0 (its record left out: docker sends
    only what is inside). Links are links; FIFOs, sockets and devices are
    skipped. The state carried down is the directory's match info (None for
    the context root).
    """

    def __init__(self, matcher: dockerignore.PatternMatcher) -> None:
        self._matcher = matcher

    def list(
        self, path: bytes, dir_fd: int, prefix: bytes, parent: dockerignore.MatchInfo | None
    ) -> _Listing[dockerignore.MatchInfo | None]:
        matcher = self._matcher
        files: list[bytes] = []
        links: dict[bytes, int] = {}
        subdirectories: list[tuple[bytes, int, dockerignore.MatchInfo | None]] = []
        try:
            with os.scandir(dir_fd) as entries:  # by fd, as in _LinkWalk.list
                for entry in entries:
                    name = os.fsencode(entry.name)
                    relative = os.fsdecode(prefix + name)
                    excluded, info = matcher.matches(relative, parent)
                    mode = entry.stat(follow_symlinks=False).st_mode
                    if stat.S_ISDIR(mode):
                        if not excluded:
                            subdirectories.append((name, mode, info))
                        elif matcher.must_descend(relative):
                            subdirectories.append((name, 0, info))
                    elif excluded:
                        continue
                    elif stat.S_ISREG(mode):
                        files.append(name)
                    elif stat.S_ISLNK(mode):
                        files.append(name)
                        links[name] = mode
        except OSError as error:
            raise _input_error(error, path, "directory") from None
        return _sorted(files, links, subdirectories)


# Each hash mode: how it writes records, and how it walks the context.
_HASH_MODES: dict[HashMode, tuple[type[_Records], Callable[[_Hasher, bytes], None]]] = {
    HashMode.ORIGINAL: (_OriginalRecords, _hash_original_context),
    HashMode.DOCKER: (_DockerRecords, _hash_docker_context),
}


class ContentDigest:
    """The SHA-256 stream that names an image, in a hash mode.

    Fed, in order: a header for non-default options (see stream_header), the
    base images' digests and the target platforms where asked for, the
    build-args text, the Dockerfile, then the context directory depth first:
    each directory's record, its files (record and bytes) sorted by path,
    then its subdirectories sorted by path. The records and the walk are
    the hash mode's (_OriginalRecords, _DockerRecords).
    """

    def __init__(
        self,
        observer: Observer | None = None,
        *,
        hash_mode: HashMode = HashMode.ORIGINAL,
        chunk_size: int = READ_CHUNK_SIZE,
        read_ahead_min_size: int = READ_AHEAD_MIN_SIZE,
        small_file_size: int = SMALL_FILE_SIZE,
    ) -> None:
        records, self._hash_context = _HASH_MODES[hash_mode]
        self._hasher = _Hasher(
            records(),
            observer,
            chunk_size=chunk_size,
            read_ahead_min_size=read_ahead_min_size,
            small_file_size=small_file_size,
        )

    def hexdigest(self) -> str:
        return self._hasher.digest.hexdigest()

    def add_header(self, header: bytes) -> None:
        self._hasher.digest.update(header)

    def add_base_images(self, references: Sequence[BaseImageDigest]) -> None:
        self._hasher.digest.update(b"%d\0" % len(references))
        for reference in references:
            self._hasher.digest.update(reference.pinned.encode() + b"\0")
            if self._hasher.observer:
                self._hasher.observer.base_image(reference)

    def add_platforms(self, platforms: Sequence[Platform]) -> None:
        text = ",".join(map(str, platforms)).encode()
        self._hasher.digest.update(b"platform\0%s\0" % text)
        if self._hasher.observer:
            self._hasher.observer.text("platform", text)

    def add_text(self, text: bytes) -> None:
        self._hasher.add_text("args", text)

    def add_dockerfile(self, path: bytes) -> None:
        self._hasher.add_dockerfile(path)

    def add_context(self, path: bytes) -> None:
        self._hash_context(self._hasher, path)
        self._hasher.progress.done()


def stream_header(hash_mode: HashMode, hash_base_images: bool, hash_platform: bool) -> bytes:
    """What a digest made with non-default options starts with: a NUL, which
    no original stream can start with (command-line text has no NUL), so no
    such tag can equal a default one for other inputs. Empty by default."""
    options = []
    if hash_mode is not HashMode.ORIGINAL:
        options.append(f"hash-mode={hash_mode.value}")
    if hash_base_images:
        options.append("base-images")
    if hash_platform and hash_mode is HashMode.ORIGINAL:  # docker mode always has it
        options.append("platform")
    if not options:
        return b""
    return ("\0get_docker_image v1 " + " ".join(options) + "\0").encode()


def compute_tag(
    build_args: str,
    dockerfile: str,
    context: str,
    observer: Observer | None = None,
    *,
    hash_mode: HashMode = HashMode.ORIGINAL,
    base_images: Sequence[BaseImageDigest] | None = None,
    platforms: Sequence[Platform] | None = None,
) -> str:
    """Returns `image_content_digest_<hex>` for these inputs; `base_images`
    (None: not hashed) are the resolved FROM images, `platforms` (None: not
    hashed; docker mode needs them) what the build is for."""
    if hash_mode is HashMode.DOCKER and platforms is None:
        raise ValueError("docker mode hashes the target platforms")
    digest = ContentDigest(observer, hash_mode=hash_mode)
    digest.add_header(stream_header(hash_mode, base_images is not None, platforms is not None))
    if base_images is not None:
        digest.add_base_images(base_images)
    if platforms is not None:
        digest.add_platforms(platforms)
    digest.add_text(os.fsencode(build_args))
    digest.add_dockerfile(os.fsencode(dockerfile))
    digest.add_context(os.fsencode(context))
    return TAG_PREFIX + digest.hexdigest()


# --- --explain output -----------------------------------------------------


def _escape(raw: bytes) -> str:
    r"""Text for one line: backslash, control and undecodable bytes escaped."""
    text = raw.replace(b"\\", b"\\\\").decode("utf-8", "backslashreplace")
    return "".join(
        char if char.isprintable() or char == " " else char.encode("unicode_escape").decode()
        for char in text
    )


class TextExplainer:
    """--explain: one line per input (kind, mode, size, content SHA-256,
    path), as it is hashed, then the image name."""

    def __init__(self, write: Callable[[str], None]) -> None:
        self._write = write

    def text(self, kind: str, text: bytes) -> None:
        if kind == "args":
            self._write(f'args  "{_escape(text)}"')
        else:
            self._write(f"{kind}  {_escape(text)}")

    def base_image(self, image: BaseImageDigest) -> None:
        platform = f"  ({image.platform})" if image.platform else ""
        self._write(f"base  {_escape(image.pinned.encode())}{platform}")

    def entry(self, entry: HashedEntry) -> None:
        mode = f"{entry.mode:6o} ({entry.mode:5d})"
        size = "-" if entry.size is None else str(entry.size)
        kind = "file" if entry.kind == "dockerfile" else entry.kind
        line = f"{kind:<4}  {mode}  {size:>11}  {entry.sha256 or '-':<64}  {_escape(entry.path)}"
        if entry.target is not None:
            line += f" -> {_escape(entry.target)}"
        self._write(line)

    def image(self, name: str) -> None:
        self._write(f"image  {name}")


class JsonExplainer(TextExplainer):
    """--explain json: one JSON object per line. Paths that are not UTF-8
    keep their bytes as lone surrogates (\\udcXX), as os.fsdecode gives them."""

    def text(self, kind: str, text: bytes) -> None:
        key = "text" if kind == "args" else kind
        self._write(json.dumps({"kind": kind, key: os.fsdecode(text)}))

    def base_image(self, image: BaseImageDigest) -> None:
        platform = str(image.platform) if image.platform else None
        name = image.pinned.rsplit("@", 1)[0]
        entry = {"kind": "base", "name": name, "digest": image.digest, "platform": platform}
        self._write(json.dumps(entry))

    def entry(self, entry: HashedEntry) -> None:
        fields: dict[str, object] = {
            "kind": entry.kind,
            "path": os.fsdecode(entry.path),
            "mode": entry.mode,
        }
        if entry.size is not None:
            fields["size"] = entry.size
            fields["sha256"] = entry.sha256
        if entry.target is not None:
            fields["target"] = os.fsdecode(entry.target)
        self._write(json.dumps(fields))

    def image(self, name: str) -> None:
        self._write(json.dumps({"image": name}))


# --- Docker ---------------------------------------------------------------


class Outcome(enum.Enum):
    """What a registry step's result says of the registry, as far as
    docker's words tell."""

    FOUND = "found"
    NOT_FOUND = "not found"
    UNREACHABLE = "unreachable"
    UNAUTHORIZED = "unauthorized"
    TRANSIENT = "transient"
    LOST_BLOB = "lost blob"
    UNKNOWN = "unknown"


# Matched, lower-cased, against docker's error output with the image name
# taken out (a repository called x/denied must not read as "denied"), in
# this order; the first class with a marker found wins. Only what docker
# says of a registry step is matched: never a build's output.
_ERROR_MARKERS: tuple[tuple[Outcome, tuple[str, ...]], ...] = (
    # "digest invalid": jobs pushing the same layers at once; the registry
    # can answer it, or "blob unknown", for a layer a sibling is committing.
    (Outcome.LOST_BLOB, ("unknown blob", "blob unknown", "digest invalid")),
    (Outcome.NOT_FOUND, ("no such manifest", "manifest unknown", "name unknown", "not found")),
    (
        Outcome.UNAUTHORIZED,
        (
            "unauthorized",
            "denied",
            "authentication required",
            "no basic auth credentials",
            "forbidden",
            "insufficient scope",
        ),
    ),
    (
        Outcome.TRANSIENT,
        (
            "unexpected http status",
            "status: 5",
            "500 internal server error",
            "502 bad gateway",
            "503 service unavailable",
            "504 gateway",
            "toomanyrequests",
            "too many requests",
            "connection reset",
            "broken pipe",
            "timeout",
            "timed out",
            "deadline exceeded",
            "unexpected eof",
            ": eof",
        ),
    ),
    (
        Outcome.UNREACHABLE,
        (
            "connection refused",
            "no such host",
            "server gave http response to https client",
            "tls:",
            "x509:",
            "network is unreachable",
            "no route to host",
            "invalid port",
            "dial tcp",
        ),
    ),
)


def classify_error(message: str, *redacted: str) -> Outcome:
    """Why a registry step failed, from docker's error output; `redacted`
    (the image's names) are taken out first."""
    lowered = message
    for name in sorted(redacted, key=len, reverse=True):  # longest first: names nest
        if name:
            lowered = lowered.replace(name, "IMAGE")
    lowered = lowered.lower()
    for outcome, markers in _ERROR_MARKERS:
        if any(marker in lowered for marker in markers):
            return outcome
    return Outcome.UNKNOWN


def one_line(text: str) -> str:
    return "; ".join(line.strip() for line in text.splitlines() if line.strip())


def last_line(text: str) -> str:
    """docker's own last error line, without progress noise."""
    lines = [line.strip() for line in text.replace("\r", "\n").splitlines() if line.strip()]
    return lines[-1] if lines else ""


def exit_status(returncode: int) -> str:
    """How a failed command ended, in the words of every message."""
    if returncode < 0:
        return f"was killed by signal {-returncode}"
    return f"failed with exit status {returncode}"


class StepFailed(DockerError):
    """A docker step failed; `outcome` says why, as far as docker's words tell."""

    def __init__(self, message: str, outcome: Outcome) -> None:
        super().__init__(message)
        self.outcome = outcome


def _log_groups(environ: Mapping[str, str]) -> tuple[str, str] | None:
    """The markers that fold a CI log around a step's output, where known."""
    if environ.get("GITHUB_ACTIONS") == "true":
        return "::group::", "::endgroup::"
    if environ.get("TF_BUILD", "").lower() == "true":  # Azure Pipelines
        return "##[group]", "##[endgroup]"
    return None


class Retries:
    """The one retry policy of every registry step, through docker or over
    HTTP: --retries more tries after a transient failure, waiting from
    --retry-delay on, doubling, with jitter. Only top-level steps retry: an
    attempt never calls a retrying step itself."""

    def __init__(self, retries: int, delay: float) -> None:
        self.retries = retries
        self.delay = delay

    @property
    def tries(self) -> int:
        return self.retries + 1

    def run(self, attempt: Callable[[], T], what: str, transient: Callable[[Exception], bool]) -> T:
        """attempt(), retried while it raises an exception `transient` accepts."""
        for number in range(self.tries):
            try:
                return attempt()
            except Exception as failure:
                if not transient(failure) or number == self.retries:
                    raise
                delay = self.wait(number)
                _log.warning(
                    "%s failed for a transient reason; retry %d of %d in %.1f s",
                    what,
                    number + 1,
                    self.retries,
                    delay,
                )
                time.sleep(delay)
        raise AssertionError  # unreachable: the last attempt returns or raises

    def wait(self, number: int) -> float:
        """The wait before retry `number` + 1: doubling from the retry delay,
        at most MAX_RETRY_WAIT_SECONDS, with jitter (±50%)."""
        doubled = self.delay * 2.0 ** min(number, 64)
        return min(doubled, MAX_RETRY_WAIT_SECONDS) * random.uniform(0.5, 1.5)


def _transient_step(failure: Exception) -> bool:
    return isinstance(failure, StepFailed) and failure.outcome is Outcome.TRANSIENT


class Docker:
    """The docker CLI as this run uses it: where it is, which steps talk to
    a registry, and how those are bounded and retried."""

    def __init__(self, options: Options) -> None:
        self.path = options.docker_path
        self.retry = Retries(options.retries, options.retry_delay)
        self.probe_timeout = options.probe_timeout
        self.transfer_timeout = options.transfer_timeout
        self._groups = _log_groups(os.environ)

    def check(self) -> None:
        """Fails early, naming the path, when docker cannot be run."""
        if shutil.which(self.path):
            return
        if os.sep in self.path:
            if os.path.isfile(self.path):
                raise DockerError(f"docker is not executable: {self.path!r}")
            raise DockerError(f"docker not found: {self.path!r}")
        raise DockerError(f"docker not found on PATH: {self.path!r}")

    def run(
        self,
        *args: str,
        env: dict[str, str] | None = None,
        capture: bool = False,
        quiet: bool = False,
        timeout: float | None = None,
        silence_timeout: float | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """util.run for docker: its stdout goes to stderr (ours is for what
        the tool prints), a missing executable is a DockerError."""
        try:
            return run(
                self.path,
                *args,
                env=env,
                capture=capture,
                quiet=quiet,
                check=False,
                stdout_to_stderr=True,
                timeout=timeout,
                silence_timeout=silence_timeout,
            )
        except OSError as error:
            raise DockerError(
                f"cannot run docker {self.path!r}: {error.strerror or error}"
            ) from None

    def step(self, *args: str, title: str | None = None) -> None:
        """Runs a step that talks to no registry (build, tag, load, save)
        once, its output folded under `title` in a CI log; raises StepFailed
        (never to be retried: its words are not the registry's)."""
        completed = self._folded(title, lambda: self.run(*args))
        if completed.returncode != 0:
            raise StepFailed(self._failure(args, completed), Outcome.UNKNOWN)

    def registry_step(self, *args: str, redact: Sequence[str]) -> None:
        """Runs a pull or push once, bounded by the transfer timeout (on
        silence); raises StepFailed classifying docker's words."""
        try:
            completed = self._folded(
                shlex.join(["docker", *args]),
                lambda: self.run(*args, silence_timeout=self.transfer_timeout),
            )
        except SilenceTimeout:
            raise StepFailed(
                f"docker {args[0]} printed nothing for {self.transfer_timeout:g} s "
                f"(--transfer-timeout): stopped",
                Outcome.TRANSIENT,
            ) from None
        if completed.returncode != 0:
            message = self._failure(args, completed)
            raise StepFailed(message, classify_error(completed.stderr or "", *redact))

    def pull(self, image: str, redact: Sequence[str]) -> None:
        self.retrying(lambda: self.registry_step("pull", image, redact=redact), "docker pull")

    def _folded(
        self, title: str | None, step: Callable[[], subprocess.CompletedProcess[str]]
    ) -> subprocess.CompletedProcess[str]:
        if self._groups is None or title is None:
            return step()
        start, end = self._groups
        _write_stderr(f"{start}{title}")
        try:
            return step()
        finally:
            _write_stderr(end)

    def _failure(self, args: Sequence[str], completed: subprocess.CompletedProcess[str]) -> str:
        """A failed step's message: the command, how it ended, docker's last line."""
        command = shlex.join([self.path, *args])
        said = last_line(completed.stderr or "")
        status = exit_status(completed.returncode)
        if said:
            return f"docker {args[0]} {status}: {said} (command: {command})"
        return f"docker {args[0]} {status}: {command}"

    def retrying(self, attempt: Callable[[], T], what: str) -> T:
        """attempt(), retried while it raises a transient StepFailed."""
        return self.retry.run(attempt, what, _transient_step)

    def probe(self, image: str, redact: Sequence[str]) -> tuple[Outcome, str]:
        """Asks the registry whether it has `image` (`docker manifest inspect`),
        retrying transient failures; returns the outcome and docker's words."""
        try:
            return self.retrying(lambda: self.probe_once(image, redact), "docker manifest inspect")
        except StepFailed as failure:
            return failure.outcome, str(failure)

    def probe_once(self, image: str, redact: Sequence[str]) -> tuple[Outcome, str]:
        """One probe; a transient failure is raised as StepFailed."""
        completed = self._manifest_inspect(image)
        if completed.returncode == 0:
            return Outcome.FOUND, ""
        message = one_line(completed.stderr or completed.stdout or "")
        message = message or exit_status(completed.returncode)
        outcome = classify_error(message, image, *redact)
        if outcome is Outcome.TRANSIENT:
            raise StepFailed(message, outcome)
        if outcome is Outcome.LOST_BLOB:
            outcome = Outcome.UNKNOWN
        return outcome, message

    def found_now(self, image: str, redact: Sequence[str]) -> bool:
        """One probe, not retried: whether the registry has `image` now."""
        try:
            return self.probe_once(image, redact)[0] is Outcome.FOUND
        except StepFailed:
            return False

    def _manifest_inspect(self, *args: str) -> subprocess.CompletedProcess[str]:
        """`docker manifest inspect --insecure ARGS`, bounded by the probe
        timeout, past which it is a transient StepFailed."""
        env = dict(os.environ, DOCKER_CLI_EXPERIMENTAL="enabled")  # for old docker CLIs
        try:
            return self.run(
                "manifest",
                "inspect",
                "--insecure",
                *args,
                env=env,
                capture=True,
                timeout=self.probe_timeout,
            )
        except subprocess.TimeoutExpired:
            raise StepFailed(
                f"no answer within {self.probe_timeout:g} s", Outcome.TRANSIENT
            ) from None

    def inspect_manifest(self, name: str) -> str:
        """`docker manifest inspect --verbose` of a base image: its JSON, or a
        DockerError naming the image and why (after retries)."""

        def attempt() -> str:
            completed = self._manifest_inspect("--verbose", name)
            if completed.returncode != 0:
                message = one_line(completed.stderr or "") or exit_status(completed.returncode)
                raise StepFailed(message, classify_error(message, name))
            return completed.stdout or ""

        try:
            return self.retrying(attempt, "docker manifest inspect")
        except StepFailed as failure:
            hint = registry_hint(failure.outcome, reference_host(name), self.retry.tries)
            raise DockerError(f"cannot resolve base image {name!r}: {failure}{hint}") from None

    def engine_platform(self) -> Platform:
        """The engine's os/architecture: what it builds for by default."""
        completed = self._ask_engine("version", "--format", "{{.Server.Os}}/{{.Server.Arch}}")
        text = (completed.stdout or "").strip()
        if completed.returncode != 0 or not re.fullmatch(r"[a-z0-9_]+/[a-z0-9_]+", text):
            message = one_line(completed.stderr or "") or f"it answered {text[:80]!r}"
            raise DockerError(f"cannot ask the docker engine for its platform: {message}")
        return parse_platform(text)

    def is_insecure_registry(self, host: str) -> bool:
        """Whether the engine lets `host` be spoken to in plain HTTP (`docker
        info`: its insecure registries, by name or by address)."""
        completed = self._ask_engine("info", "--format", "{{json .RegistryConfig}}")
        try:
            config = json.loads(completed.stdout or "")
        except ValueError:
            return False
        if not isinstance(config, dict):
            return False
        index = config.get("IndexConfigs")
        entry = index.get(host) if isinstance(index, dict) else None
        if isinstance(entry, dict) and entry.get("Secure") is False:
            return True
        import ipaddress  # noqa: PLC0415 (only prune and the lock need it)

        try:
            address = ipaddress.ip_address(host_name(host))
        except ValueError:
            return False
        networks = config.get("InsecureRegistryCIDRs")
        for network in networks if isinstance(networks, list) else []:
            try:
                if address in ipaddress.ip_network(str(network), strict=False):
                    return True
            except ValueError:
                continue
        return False

    def local_image_exists(self, image: str) -> bool:
        return self._ask_engine("image", "inspect", image, quiet=True).returncode == 0

    def _ask_engine(self, *args: str, quiet: bool = False) -> subprocess.CompletedProcess[str]:
        """A question to the engine, bounded like a probe."""
        try:
            return self.run(*args, capture=not quiet, quiet=quiet, timeout=self.probe_timeout)
        except subprocess.TimeoutExpired:
            raise DockerError(
                f"the docker engine did not answer `docker {args[0]} {args[1]}` "
                f"within {self.probe_timeout:g} s"
            ) from None


def _write_stderr(line: str) -> None:
    """A line on stderr, in order with the log and docker's own output."""
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def registry_hint(outcome: Outcome, host: str, tries: int) -> str:
    """What to add to docker's words when a registry cannot be used."""
    if outcome is Outcome.UNREACHABLE:
        return " (is the registry up and reachable?)"
    if outcome is Outcome.UNAUTHORIZED:
        return f" (are you logged in? docker login {host})"
    if outcome is Outcome.TRANSIENT:
        return f" (tried {tries} times)"
    return ""


def unusable_registry(outcome: Outcome, message: str, image: str, tries: int) -> str | None:
    """Why the registry cannot be used, in one line; None if it can."""
    host = reference_host(image)
    hint = registry_hint(outcome, host, tries)
    if outcome is Outcome.UNREACHABLE:
        return f"cannot reach registry {host}: {message}{hint}"
    if outcome is Outcome.UNAUTHORIZED:
        return f"registry {host} refused our credentials: {message}{hint}"
    if outcome is Outcome.TRANSIENT:
        return f"registry {host} kept failing: {message}{hint}"
    return None


# --- Base images ----------------------------------------------------------

_DIGEST = re.compile(r"sha256:[0-9a-f]{64}|sha384:[0-9a-f]{96}|sha512:[0-9a-f]{128}")


class BaseImageDigest(NamedTuple):
    """A FROM image and the digest it resolved to."""

    name: str  # as written (after build-arg expansion)
    digest: str  # sha256:...
    platform: Platform | None  # the platform whose manifest was chosen, if a list

    @property
    def pinned(self) -> str:
        return f"{self.name.split('@', 1)[0]}@{self.digest}"


def resolve_base_images(
    docker: Docker,
    options: Options,
    engine: Callable[[], Platform],
    targets: Callable[[], Sequence[Platform]],
) -> list[BaseImageDigest]:
    """The Dockerfile's FROM images with their registry digests, in order,
    for each target platform (the engine is asked once the Dockerfile is read)."""
    dockerfile_from = _optional_module("dockerfile_from", "--hash-base-images")
    data = read_regular_file(options.dockerfile, DOCKERFILE_MAX_BYTES, "Dockerfile")
    text = data.decode("utf-8", "surrogateescape")
    args = options.docker_build_args
    build_args = build_arg_values(args, os.environ)
    resolved: list[BaseImageDigest] = []
    for target in targets():
        try:
            images = dockerfile_from.base_images(
                text, build_args, engine(), target, target_stage=build_target(args)
            )
        except dockerfile_from.DockerfileError as error:
            raise InputError(f"{_show(options.dockerfile)}: {error}") from None
        for image in images:
            if image.pinned:
                digest = image.name.split("@", 1)[1]
                if not _DIGEST.fullmatch(digest):
                    raise InputError(
                        f"{_show(options.dockerfile)}: line {image.line}: {image.name!r} "
                        "is not pinned to a valid digest"
                    )
                found = BaseImageDigest(image.name, digest, None)
            else:
                wanted = parse_platform(image.platform, target) if image.platform else target
                manifest = docker.inspect_manifest(image.name)
                found = BaseImageDigest(image.name, *choose_manifest(image.name, manifest, wanted))
            if found not in resolved:
                resolved.append(found)
    return resolved


def choose_manifest(
    name: str, verbose_json: str, platform: Platform
) -> tuple[str, Platform | None]:
    """The digest of the manifest a build for `platform` uses, from `docker
    manifest inspect --verbose`: one object for an image, a list for a
    multi-platform one (whose own digest would move with any platform)."""

    def unexpected(what: str) -> DockerError:
        return DockerError(f"cannot resolve base image {name!r}: docker printed {what}")

    try:
        parsed = json.loads(verbose_json)
    except ValueError:
        raise unexpected("no JSON") from None
    if isinstance(parsed, dict):
        return _descriptor_digest(parsed, unexpected), None
    if not isinstance(parsed, list):
        raise unexpected("neither a manifest nor a list of them")
    for entry in parsed:
        if not isinstance(entry, dict):
            raise unexpected("a list that holds no manifests")
        descriptor = entry.get("Descriptor")
        found = descriptor.get("platform") if isinstance(descriptor, dict) else None
        if not isinstance(found, dict):
            continue
        parts = [found.get(key) for key in ("os", "architecture", "variant")]
        if not all(isinstance(part, str) for part in parts if part is not None):
            continue
        spec = "/".join(part for part in parts if part)
        candidate = parse_platform(spec) if spec else None
        if candidate is None or candidate[:2] != platform[:2]:
            continue
        if not platform.variant or candidate.variant == platform.variant:
            return _descriptor_digest(entry, unexpected), platform
    raise DockerError(f"base image {name!r} has no manifest for platform {platform}")


def _descriptor_digest(entry: dict[str, Any], unexpected: Callable[[str], DockerError]) -> str:
    descriptor = entry.get("Descriptor")
    digest = descriptor.get("digest") if isinstance(descriptor, dict) else None
    if not isinstance(digest, str) or not _DIGEST.fullmatch(digest):
        raise unexpected("a manifest without a valid digest")
    return digest


# --- The registry over HTTP -----------------------------------------------


def registry_client(docker: Docker, options: Options, image: str, option: str) -> RegistryAccess:
    """The registry of `image` over its HTTP API (registry.py), for what
    docker's CLI cannot do: list tags, delete manifests, push lock markers."""
    registry = _optional_module("registry", option)
    host = reference_host(image)
    path = without_tag(image)[len(host) + 1 :]
    # Plain HTTP where docker itself allows it: loopback, or an insecure
    # registry of the engine's.
    plain_http = registry.is_loopback(host_name(host)) or docker.is_insecure_registry(host)
    client = registry.Registry(host, timeout=options.probe_timeout, plain_http=plain_http)
    return RegistryAccess(registry, client, host, path, docker.retry)


class RegistryAccess(NamedTuple):
    """A registry client for one repository, and the run's retry policy."""

    module: Any  # registry.py
    client: Any  # registry.Registry
    host: str
    repository: str  # the repository's path in the registry (its namespace included)
    retry: Retries

    def call(self, what: str, request: Callable[[], T]) -> T:
        """A request, retried as every registry step is."""
        return self.retry.run(
            request,
            what,
            lambda error: isinstance(error, self.module.RegistryError) and error.transient,
        )

    def error(self, failure: Exception) -> bool:
        """Whether `failure` is the registry's (not a bug of ours)."""
        return isinstance(failure, self.module.RegistryError)

    def delete(self, digest: str) -> None:
        self.client.delete_manifest(self.repository, digest)


# --- The build lock -------------------------------------------------------

LOCK_SUFFIX = "-lock"
_LOCK_KEY = "io.github.get-docker-image.lock."  # the markers' annotations
# The OCI empty descriptor (image-spec 1.1): the config of a marker, which
# holds nothing but its annotations.
_EMPTY_CONFIG = b"{}"
_EMPTY_CONFIG_TYPE = "application/vnd.oci.empty.v1+json"
# Runners' clocks differ: a lease whose stated end is past by more than this
# is over, whatever the holder's clock said.
CLOCK_ALLOWANCE_SECONDS = 5.0
# How often a waiting job asks for the image (with jitter); how long a job
# that wrote a marker waits before reading it back (another job may have
# written its own meanwhile: the last write wins).
LOCK_POLL_SECONDS = 3.0
LOCK_READ_BACK_SECONDS = 1.0
# Read-backs that found no marker at all (not even another job's) before a
# job gives up the lock: the registry does not show what was written to it.
LOCK_UNSEEN_WRITES = 3
BUILD_LOCK_TIMEOUT_SECONDS = 3 * 3600.0  # --build-lock-timeout's default
_HOLDER_MAX_CHARS = 200  # of a marker's holder, as the log shows it


class LockMarker(NamedTuple):
    """Who holds the build lock of a tag, and until when (by their clock)."""

    holder: str  # host/pid, for people
    token: str  # random, one per holding
    since: float  # seconds since the epoch
    expires: float
    lease: float
    renewal: int  # how many times it was renewed: a live holder moves it
    released: bool

    def document(self) -> dict[str, Any]:
        annotations = {
            _LOCK_KEY + "holder": self.holder,
            _LOCK_KEY + "token": self.token,
            _LOCK_KEY + "since": iso_time(self.since),
            _LOCK_KEY + "expires": iso_time(self.expires),
            _LOCK_KEY + "lease": f"{self.lease:g}",
            _LOCK_KEY + "renewal": str(self.renewal),
            _LOCK_KEY + "released": "true" if self.released else "false",
        }
        config = {
            "mediaType": _EMPTY_CONFIG_TYPE,
            "digest": "sha256:" + hashlib.sha256(_EMPTY_CONFIG).hexdigest(),
            "size": len(_EMPTY_CONFIG),
        }
        return {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": config,
            "layers": [],
            "annotations": annotations,
        }


def read_lock_marker(document: Mapping[str, Any]) -> LockMarker | None:
    """The marker a manifest holds; None if it holds none (or a broken one)."""
    annotations = document.get("annotations")
    if not isinstance(annotations, dict):
        return None
    values = {
        key.removeprefix(_LOCK_KEY): value
        for key, value in annotations.items()
        if isinstance(key, str) and key.startswith(_LOCK_KEY) and isinstance(value, str)
    }
    since, expires = parse_time(values.get("since", "")), parse_time(values.get("expires", ""))
    try:
        lease, renewal = float(values.get("lease", "")), int(values.get("renewal", ""))
    except ValueError:
        return None
    if since is None or expires is None or not math.isfinite(lease) or not values.get("token"):
        return None
    # Shown in the log: one line (a CI log reads commands from line starts), bounded.
    holder = one_line(values.get("holder", ""))[:_HOLDER_MAX_CHARS]
    return LockMarker(
        holder or "?",
        values["token"],
        since,
        expires,
        lease,
        renewal,
        values.get("released") == "true",
    )


def is_lock_tag(tag: str) -> bool:
    return tag.startswith(TAG_PREFIX) and tag.endswith(LOCK_SUFFIX)


def lease_over(marker: LockMarker, now: float, unchanged_for: float) -> str | None:
    """Why the lease of another job's marker is over, or None while it lasts.
    `now`: our clock's time; `unchanged_for`: how long, by our clock, we have
    seen the marker as it is (a live holder renews it three times a lease)."""
    if marker.released:
        return "it was released"
    if marker.expires + CLOCK_ALLOWANCE_SECONDS < now:
        return f"its lease ended at {iso_time(marker.expires)}"
    if unchanged_for > marker.lease:
        return f"it was not renewed for {unchanged_for:.0f} s (lease {marker.lease:g} s)"
    return None


class _LockWatch:
    """What a job that waits has seen of the lock."""

    def __init__(self) -> None:
        self.since: float | None = None  # since when (our clock) it waits for another job
        self.holder = "another job"  # the one it waits for, as last seen
        self.told = ""  # the token of the holding it said it waits for
        self.unseen = 0  # its writes in a row that the read-back found no marker for
        self._seen: tuple[str, int] | None = None  # the marker's holding and renewal
        self._seen_since = 0.0  # since when (our clock) it has not moved

    def unchanged_for(self, marker: LockMarker) -> float:
        """How long, by our clock, the marker has been seen as it is now."""
        clock = time.monotonic()
        if (marker.token, marker.renewal) != self._seen:
            self._seen, self._seen_since = (marker.token, marker.renewal), clock
        return clock - self._seen_since


class LockState(enum.Enum):
    """How taking the lock ended."""

    HELD = "held"  # this job builds
    TAKEN = "taken"  # another job pushed the image meanwhile
    # The job waited for released the lock without pushing (its build failed,
    # or it was stopped): this one builds, without the lock, as every waiter.
    ABANDONED = "abandoned"
    TIMED_OUT = "timed out"  # waited --build-lock-timeout: building anyway
    UNAVAILABLE = "unavailable"  # the registry would not hold a marker


class BuildLock:
    """A lock for one tag, held in the registry by a marker manifest under
    `<tag>-lock`: one job builds, the others wait for its push.

    The holder renews its lease while it builds and releases the lock when
    done (deleting the marker, or marking it released where deletes are
    refused). A waiter takes the lock over once the lease is over: when the
    marker has not moved for a whole lease by the waiter's own clock, or its
    stated end is past by more than CLOCK_ALLOWANCE_SECONDS. A holder that
    released the lock without pushing the image is not replaced: its build
    failed, so every waiter builds (and reports its own error). Two jobs that
    write markers at once each read theirs back after a pause: the last
    write wins, the other waits. The worst case (a registry that is only
    eventually consistent) is two builds, as without the lock.
    """

    def __init__(self, access: RegistryAccess, tag: str, lease: float, timeout: float) -> None:
        self._access = access
        self.tag = tag + LOCK_SUFFIX
        self._lease = lease
        self._timeout = timeout
        self._token = os.urandom(8).hex()
        self._holder = f"{os.uname().nodename}/{os.getpid()}"
        self._since = 0.0
        self._renewal = 0
        self._written = False  # a marker of ours may be in the registry
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None
        self._config_pushed = False
        self.waited = 0.0  # seconds spent waiting for another job

    def acquire(self, image_pushed: Callable[[], bool]) -> LockState:
        """Takes the lock, or waits for the job holding it until it pushed
        the image (`image_pushed` asks the registry) or its lease is over."""
        start = time.monotonic()
        watch = _LockWatch()
        while True:
            try:
                marker = self._read()
            except Exception as error:
                return self._unavailable(error)
            if marker is not None and marker.token == self._token and not marker.released:
                # Our write, which a read-back did not show (a registry that is
                # only eventually consistent): nobody wrote after it.
                self._hold()
                return self._waited(LockState.HELD, watch)
            live = marker is not None and (
                lease_over(marker, time.time(), watch.unchanged_for(marker)) is None
            )
            if marker is not None and live:
                state = self._wait_for(marker, watch, image_pushed)
            else:
                state = self._free(marker, watch, image_pushed)
            if state is not None:
                return self._waited(state, watch)
            elapsed = time.monotonic() - start
            if elapsed > self._timeout:
                _log.warning(
                    "Waited %.0f s (--build-lock-timeout) for the build of %s: building anyway.",
                    elapsed,
                    watch.holder,
                )
                return self._waited(LockState.TIMED_OUT, watch)
            if live:
                time.sleep(LOCK_POLL_SECONDS * random.uniform(0.7, 1.3))
            # else another job's marker won the read-back: read again at once
            # (the read-back paused), and wait for it.

    def _wait_for(
        self, marker: LockMarker, watch: _LockWatch, image_pushed: Callable[[], bool]
    ) -> LockState | None:
        """Another job holds the lock: TAKEN once its image is there."""
        if watch.told != marker.token:
            watch.told, watch.holder = marker.token, marker.holder
            _log.info(
                "Waiting for %s, which holds the build lock since %s (lease until %s).",
                marker.holder,
                iso_time(marker.since),
                iso_time(marker.expires),
            )
        if watch.since is None:
            watch.since = time.monotonic()
        return LockState.TAKEN if image_pushed() else None

    def _free(
        self, marker: LockMarker | None, watch: _LockWatch, image_pushed: Callable[[], bool]
    ) -> LockState | None:
        """Nobody holds the lock (no marker, a released one, or one whose
        lease is over): the image, if it was pushed meanwhile; else the lock,
        unless the job waited for released it without pushing. None: another
        job wrote first, or won the read-back."""
        ended = self._holding_ended(marker, watch, image_pushed)
        if ended is not None:
            return ended
        if marker is not None and not marker.released:
            _log.info(
                "The build lock of %s (since %s) is over, %s: taking it over.",
                marker.holder,
                iso_time(marker.since),
                lease_over(marker, time.time(), watch.unchanged_for(marker)),
            )
        try:
            if self._read() != marker:
                return None  # changed while the image was asked for: judged again
            seen = self._take()
        except Exception as error:
            return self._unavailable(error)
        if seen is not None and seen.token == self._token:
            self._hold()
            return LockState.HELD
        watch.unseen = watch.unseen + 1 if seen is None else 0
        if watch.unseen >= LOCK_UNSEEN_WRITES:
            why = f"the registry did not show its marker {watch.unseen} times after a write"
            return self._unavailable(None, why)
        return None

    def _holding_ended(
        self, marker: LockMarker | None, watch: _LockWatch, image_pushed: Callable[[], bool]
    ) -> LockState | None:
        """TAKEN if the image was pushed; ABANDONED if the job waited for
        released the lock (`marker` None or released) without pushing it."""
        # A holder releases its lock once it has pushed: the image may be
        # there now (the probe before the lock said not).
        if image_pushed():
            return LockState.TAKEN
        if watch.since is not None and (marker is None or marker.released):
            _log.info(
                "%s released the build lock without pushing the image (its build failed, "
                "or it was stopped): building here, without the lock.",
                watch.holder,
            )
            return LockState.ABANDONED
        return None

    def _waited(self, state: LockState, watch: _LockWatch) -> LockState:
        """`state`, noting how long this job waited for another's build."""
        self.waited = 0.0 if watch.since is None else time.monotonic() - watch.since
        return state

    def _take(self) -> LockMarker | None:
        """Writes our marker, and after a pause reads back the one that won."""
        self._since = time.time()
        self._renewal = 0
        self._written = True
        self._write(released=False)
        time.sleep(LOCK_READ_BACK_SECONDS * random.uniform(1.0, 1.5))
        return self._read()

    def _hold(self) -> None:
        _log.info("Took the build lock (%s, lease %g s).", self.tag, self._lease)
        self._renewer = threading.Thread(target=self._renew, name="lock-renewal", daemon=True)
        self._renewer.start()

    def _renew(self) -> None:
        """Moves the lease on while the build runs, three times a lease."""
        while not self._stop.wait(self._lease / 3):
            try:
                marker = self._read()
                if marker is None or marker.token != self._token:
                    _log.warning(
                        "Lost the build lock (%s) to %s; building on.",
                        self.tag,
                        marker.holder if marker else "nobody",
                    )
                    return
                self._renewal += 1
                self._write(released=False)
            except Exception as error:
                if not self._access.error(error):
                    raise
                _log.warning("Could not renew the build lock: %s", error)

    def release(self) -> None:
        """Ends our holding, if the registry still has our marker (also one
        written by a job stopped before it knew whether it had won): deletes
        it, or marks it released where the registry will not delete it."""
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join()
            self._renewer = None
        if not self._written:
            return
        self._written = False
        access = self._access
        try:
            try:
                found = access.call(
                    "GET lock", lambda: access.client.manifest(access.repository, self.tag)
                )
            except access.module.NotFound:
                return
            marker = read_lock_marker(found.document)
            if marker is None or marker.token != self._token:
                return  # another job's: not ours to release
            try:
                access.call(
                    "DELETE lock",
                    lambda: access.client.delete_manifest(access.repository, found.digest),
                )
            except access.module.NotFound:
                pass  # gone already
            except access.module.RegistryError:
                # Deletes disabled (405), not allowed to these credentials
                # (401, 403), or failing: marked released, which waiters read.
                self._write(released=True)
            _log.info("Released the build lock (%s).", self.tag)
        except Exception as error:
            if not access.error(error):
                raise
            _log.warning("Could not release the build lock (its lease will end): %s", error)

    def _read(self) -> LockMarker | None:
        access = self._access
        try:
            found = access.call(
                "GET lock", lambda: access.client.manifest(access.repository, self.tag)
            )
        except access.module.NotFound:
            return None
        return read_lock_marker(found.document)

    def _write(self, *, released: bool) -> None:
        access = self._access
        now = time.time()
        marker = LockMarker(
            self._holder,
            self._token,
            self._since,
            now + self._lease,
            self._lease,
            self._renewal,
            released,
        )
        document = marker.document()
        body = json.dumps(document, sort_keys=True).encode()
        manifest_type = document["mediaType"]
        if not self._config_pushed:
            access.call(
                "PUT lock config",
                lambda: access.client.push_blob(access.repository, _EMPTY_CONFIG),
            )
            self._config_pushed = True
        access.call(
            "PUT lock",
            lambda: access.client.push_manifest(access.repository, self.tag, manifest_type, body),
        )

    def _unavailable(self, error: Exception | None, why: str = "") -> LockState:
        if error is not None and not self._access.error(error):
            raise error
        _log.warning("Cannot use the build lock, building without it: %s", error or why)
        return LockState.UNAVAILABLE


def iso_time(seconds: float) -> str:
    """A time as ISO 8601, UTC, to the second."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


_TIME = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt ]([0-9]{2}):([0-9]{2}):([0-9]{2})"
    r"(?:\.([0-9]{1,9}))?([Zz]|[+-][0-9]{2}:[0-9]{2})"
)


def parse_time(text: str) -> float | None:
    """An RFC 3339 time (as Go writes it: up to nanoseconds, Z or an offset)
    in seconds since the epoch; None if it is none."""
    match = _TIME.fullmatch(text) if len(text) <= 40 else None
    if match is None:
        return None
    year, month, day, hour, minute, second = (int(part) for part in match.groups()[:6])
    import calendar  # noqa: PLC0415 (only prune and the lock need it)

    try:
        moment = calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))
        datetime_check = time.gmtime(moment)
    except (OverflowError, ValueError):
        return None
    if datetime_check[:6] != (year, month, day, hour, minute, second):
        return None  # February 30th, second 61
    fraction = float("0." + match.group(7)) if match.group(7) else 0.0
    zone = match.group(8)
    offset = 0 if zone in ("Z", "z") else int(zone[1:3]) * 3600 + int(zone[4:6]) * 60
    return moment + fraction - (offset if zone[0] == "+" else -offset)


# --- Getting the image ----------------------------------------------------


class Result(enum.Enum):
    """How the run got its image (the `result` of --output-file)."""

    PULLED = "pulled"
    BUILT = "built"  # and not pushed
    PUSHED = "pushed"  # built and pushed
    REUSED = "reused"  # the engine had it
    LOADED = "loaded"  # from --image-cache-dir
    TAKEN = "taken-from-another-job"  # pushed by another job while this one built


class Got(NamedTuple):
    """What a run did to get its image."""

    result: Result
    note: str = ""  # why it was not pushed, where it was loaded from


def image_for(options: Options, observer: Observer | None, docker: Docker) -> str:
    """The full image name for the command line's inputs."""
    engine = _Lazy(docker.engine_platform)
    requested = requested_platforms(options.docker_build_args, os.environ)
    targets = _Lazy(lambda: target_platforms(requested, engine.get))
    base_images = None
    if options.hash_base_images:
        base_images = resolve_base_images(docker, options, engine.get, targets.get)
    platforms = targets.get() if options.hash_platform else None
    tag = compute_tag(
        options.build_args_text,
        options.dockerfile,
        options.context,
        observer,
        hash_mode=options.hash_mode,
        base_images=base_images,
        platforms=platforms,
    )
    return image_name(options.registry, options.repository, tag)


class _Lazy(Generic[T]):
    """A value computed on first use, once (the engine's platform)."""

    def __init__(self, compute: Callable[[], T]) -> None:
        self._compute = compute
        self._value: T | None = None

    def get(self) -> T:
        if self._value is None:
            self._value = self._compute()
        return self._value


def build_image(docker: Docker, options: Options, image: str, cache_from: str | None) -> None:
    """docker build, once: a failed build is reported, never retried."""
    cache_args: list[str] = []
    if cache_from is not None:
        # BUILDKIT_INLINE_CACHE: images built by BuildKit then carry the
        # metadata that the next --cache-from reads; the classic builder
        # ignores it.
        cache_args = ["--cache-from", cache_from, "--build-arg", "BUILDKIT_INLINE_CACHE=1"]
    docker.step(
        "build",
        "--pull",
        *cache_args,
        *options.build_args,
        *options.other_build_args,
        "--tag",
        image,
        "--file",
        options.dockerfile,
        options.context,
        title=f"docker build {image}",
    )


def names_in_output(image: str) -> list[str]:
    """How docker's output names an image (itself, and its repository in
    "The push refers to repository [...]"): taken out before its words are
    judged, so that a repository named `access-denied` is no refusal."""
    return [image, without_tag(image)]


def pull_layer_cache(docker: Docker, cache_image: str) -> None:
    """Pulls the layer cache image: the classic builder uses only a local one."""
    try:
        docker.pull(cache_image, names_in_output(cache_image))
    except StepFailed as failure:
        if failure.outcome is Outcome.NOT_FOUND:
            _log.warning("No layer cache yet (%s): building without it.", cache_image)
        else:
            _log.warning("Could not pull the layer cache, building without it: %s", failure)


def push_layer_cache(docker: Docker, image: str, cache_image: str) -> None:
    try:
        docker.step("tag", image, cache_image)
        docker.retrying(
            lambda: docker.registry_step("push", cache_image, redact=names_in_output(cache_image)),
            "docker push",
        )
    except StepFailed as failure:
        _log.warning("Could not move the layer cache tag: %s", failure)


def get_registry_image(docker: Docker, options: Options, image: str) -> Got:
    """Pulls `image` if the registry has it, else builds and pushes it; a
    job that finds the tag pushed meanwhile by another one takes theirs.
    With --no-push: builds and keeps it, also when the registry is unusable."""
    redact = names_in_output(image)
    outcome, message = docker.probe(image, redact)
    if outcome is Outcome.FOUND:
        _log.info("Image found, pulling...")
        if pull_unless_broken(docker, image, redact):
            return Got(Result.PULLED)
        # The registry has the tag, but not all of its blobs: rebuild it.
        return build_and_push(docker, options, image, redact, recheck=False, usable=True)
    usable = _building_instead(options, outcome, message, image, docker.retry.tries)
    if options.build_lock is not None:
        return build_under_lock(docker, options, image, redact)
    return build_and_push(docker, options, image, redact, recheck=True, usable=usable)


def build_and_push(
    docker: Docker,
    options: Options,
    image: str,
    redact: Sequence[str],
    *,
    recheck: bool,
    usable: bool,
) -> Got:
    """Builds the image, then pushes it, unless another job has meanwhile
    (`recheck`: the registry is asked again first). `usable`: the registry
    can be asked at all (with --no-push it may not be)."""
    cache_image = None
    if options.layer_cache is not None and usable:
        cache_image = f"{without_tag(image)}:{options.layer_cache}"
        pull_layer_cache(docker, cache_image)
    build_image(docker, options, image, cache_image)
    if options.no_push:
        reason = "--no-push" if usable else "--no-push, and the registry could not be used"
        _log.info("Not pushing the image (%s).", reason)
        return Got(Result.BUILT, f"not pushed: {reason}")

    if recheck and docker.probe(image, redact)[0] is Outcome.FOUND:
        _log.info("Another job pushed the image meanwhile: pulling it instead of pushing.")
        docker.pull(image, redact)
        return Got(Result.TAKEN)
    if push_unless_pushed(docker, image, redact, recheck=recheck):
        return Got(Result.TAKEN)
    if cache_image is not None:
        push_layer_cache(docker, image, cache_image)
    return Got(Result.PUSHED)


def build_under_lock(docker: Docker, options: Options, image: str, redact: Sequence[str]) -> Got:
    """--build-lock: builds (and pushes) the image holding the tag's lock,
    or waits for the job that holds it and pulls what it pushed."""
    assert options.build_lock is not None
    access = registry_client(docker, options, image, "--build-lock")
    lock = BuildLock(
        access, image.rsplit(":", 1)[1], options.build_lock, options.build_lock_timeout
    )
    with access.client:
        try:
            state = lock.acquire(lambda: docker.found_now(image, redact))
            waited = f"waited {lock.waited:.1f} s for another job's build" if lock.waited else ""
            if state is LockState.TAKEN:
                _log.info("Another job built and pushed the image: pulling it.")
                docker.pull(image, redact)
                return Got(Result.TAKEN, waited)
            got = build_and_push(docker, options, image, redact, recheck=True, usable=True)
        finally:
            lock.release()  # also a marker written by a job stopped while taking it
    return got._replace(note=waited) if waited and not got.note else got


def pull_unless_broken(docker: Docker, image: str, redact: Sequence[str]) -> bool:
    """Pulls an image the registry has; False if its copy is broken (a lost
    blob or manifest), which a build then replaces."""
    try:
        docker.pull(image, redact)
    except StepFailed as failure:
        if failure.outcome not in (Outcome.LOST_BLOB, Outcome.NOT_FOUND):
            raise
        _log.warning("The registry's copy is broken (%s); building it again.", failure)
        return False
    return True


def _building_instead(
    options: Options, outcome: Outcome, message: str, image: str, tries: int
) -> bool:
    """After a probe that found nothing: stops if the registry cannot be used
    (but for --no-push, which builds anyway); whether it can be."""
    problem = unusable_registry(outcome, message, image, tries)
    if problem is not None and not options.no_push:
        raise DockerError(problem)
    if problem is not None:
        _log.warning("%s; building locally (--no-push).", problem)
    elif outcome is Outcome.UNKNOWN:
        _log.warning("Could not tell whether the registry has the image: %s", message)
    if options.no_push:
        _log.info("Image not found, building (not pushing: --no-push)...")
    else:
        _log.info("Image not found, building and pushing...")
    return problem is None


def push_unless_pushed(docker: Docker, image: str, redact: Sequence[str], *, recheck: bool) -> bool:
    """Pushes `image`, retrying transient failures; but after any failed try
    (with `recheck`) asks the registry first, and if another job has pushed
    the tag meanwhile, pulls theirs instead. Returns whether it did that."""

    def attempt() -> bool:
        try:
            docker.registry_step("push", image, redact=redact)
        except StepFailed as failure:
            if recheck and docker.found_now(image, redact):
                return True
            if failure.outcome is Outcome.LOST_BLOB:
                # A layer a sibling is still pushing: a moment later it is there.
                raise StepFailed(str(failure), Outcome.TRANSIENT) from None
            raise
        return False

    taken = docker.retrying(attempt, "docker push")
    if taken:
        _log.info("The push failed, but another job has pushed the image: pulling it.")
        docker.pull(image, redact)
    return taken


def get_local_image(docker: Docker, options: Options, image: str, present: bool) -> Got:
    """Reuses `image` if the engine has it, else builds it; no registry."""
    if present:
        _log.info("Image found locally, reusing it.")
        return Got(Result.REUSED)
    _log.info("Image not found locally, building...")
    build_image(docker, options, image, None)
    return Got(Result.BUILT)


def get_image(docker: Docker, options: Options, image: str) -> Got:
    """Gets `image` as the options say, from the image cache directory first."""
    cache = None
    present: bool | None = None
    if options.image_cache_dir is not None:
        cache = ImageCache(options.image_cache_dir, options.repository, image)
        present = docker.local_image_exists(image)
        if not present and cache.load(docker, image):
            return Got(Result.LOADED, f"from {options.image_cache_dir}")
    if options.registry is None:
        if present is None:
            present = docker.local_image_exists(image)
        got = get_local_image(docker, options, image, present)
    else:
        got = get_registry_image(docker, options, image)
    if cache is not None:
        cache.save(docker, image)
    return got


_CLOSING_LINES = {
    Result.PULLED: "Pulled {image}",
    Result.BUILT: "Built {image}",
    Result.PUSHED: "Built and pushed {image}",
    Result.REUSED: "Reused {image}, which the engine had,",
    Result.LOADED: "Loaded {image}",
    Result.TAKEN: "Took {image} from another job",
}


def closing_line(image: str, got: Got, seconds: float) -> str:
    """What the run did, and how long it took: the last line of its log."""
    line = _CLOSING_LINES[got.result].format(image=image)
    note = f" ({got.note})" if got.note else ""
    return f"{line} in {seconds:.1f} s{note}."


def write_outputs(path: str, outputs: Mapping[str, str]) -> None:
    """Appends KEY=VALUE lines: GitHub's $GITHUB_OUTPUT, a GitLab dotenv file."""
    text = "".join(f"{key}={value}\n" for key, value in outputs.items())
    try:
        with open(path, "a", encoding="utf-8") as file:
            file.write(text)
    except OSError as error:
        raise ToolError(f"cannot write --output-file {path!r}: {error.strerror or error}") from None


# --- The image cache directory --------------------------------------------


class ImageCache:
    """--image-cache-dir: a directory that a CI system saves and restores,
    holding one `docker save` archive per repository, named after the
    repository and the tag (`team+app@image_content_digest_<hex>.tar`).

    Archives are written under a temporary name and renamed, so that a
    cancelled run never leaves a half archive that a later run would load.
    """

    def __init__(self, directory: str, repository: str, image: str) -> None:
        self.directory = directory
        # '+' and '@' are in no repository name: the prefix is the repository's alone.
        self.prefix = repository.replace("/", "+") + "@"
        self.name = self.prefix + image.rsplit(":", 1)[1] + ".tar"
        self.path = os.path.join(directory, self.name)

    def load(self, docker: Docker, image: str) -> bool:
        """Loads the archive for `image` if the directory has it; whether the
        engine then has the image. A bad archive is a warning, and removed."""
        try:
            size = os.stat(self.path).st_size
        except FileNotFoundError:
            _log.info("The image cache %s has no %s.", _show(self.directory), self.name)
            return False
        except OSError as error:
            _log.warning("Cannot use the image cache: %s", _input_error(error, self.path, "file"))
            return False
        _log.info("Loading the image from %s (%s)...", _show(self.path), _size(size))
        start = time.monotonic()
        try:
            docker.step("load", "--input", self.path, title=f"docker load {self.name}")
        except StepFailed as failure:
            return self._discard(f"{failure}")
        if not docker.local_image_exists(image):
            return self._discard(f"it does not hold {image}")
        seconds = time.monotonic() - start
        _log.info(
            "Loaded %s in %.1f s (%s/s).", _size(size), seconds, _size(size / max(seconds, 1e-3))
        )
        return True

    def _discard(self, why: str) -> bool:
        _log.warning("Cannot load %s: %s; removing it, and getting the image.", self.name, why)
        try:
            os.remove(self.path)
        except OSError as error:
            _log.warning("Cannot remove %s: %s", _show(self.path), error.strerror or error)
        return False

    def save(self, docker: Docker, image: str) -> None:
        """Saves `image` into the directory unless it is there already, then
        removes the repository's older archives. A failure is a warning: the
        image itself is there."""
        if os.path.exists(self.path):
            return
        # docker save writes a temporary file of its own beside its output:
        # both stay in a directory of ours until the archive is whole.
        partial = os.path.join(self.directory, f".{self.name}.{os.getpid()}.partial")
        start = time.monotonic()
        try:
            os.makedirs(partial)
            docker.step("save", "--output", os.path.join(partial, self.name), image)
            os.replace(os.path.join(partial, self.name), self.path)
        except (OSError, StepFailed) as error:
            _log.warning("Could not save the image into the image cache: %s", error)
            return
        finally:
            shutil.rmtree(partial, ignore_errors=True)
        size = os.stat(self.path).st_size
        _log.info(
            "Saved the image into %s (%s) in %.1f s.",
            _show(self.path),
            _size(size),
            time.monotonic() - start,
        )
        self._remove_older()

    def _remove_older(self) -> None:
        """Removes the repository's other archives, and partial ones that
        cancelled runs left: the cache holds one image per repository."""
        for name in os.listdir(self.directory):
            path = os.path.join(self.directory, name)
            if name.startswith("." + self.prefix) and name.endswith(".partial"):
                shutil.rmtree(path, ignore_errors=True)
            elif name.startswith(self.prefix) and name != self.name:
                try:
                    os.remove(path)
                except OSError as error:
                    _log.warning("Cannot remove %s: %s", name, error.strerror or error)
                else:
                    _log.info("Removed %s from the image cache.", name)


# --- Pruning the registry -------------------------------------------------

# How many requests prune has under way at once: a registry answers a few
# at a time faster than one by one, and more would be unkind.
PRUNE_CONCURRENCY = 8
CONFIG_MAX_BYTES = 8 * 1000 * 1000
_INDEX_TYPES = frozenset(
    {
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    }
)
_IMAGE_TYPES = frozenset(
    {
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    }
)


class TagFacts(NamedTuple):
    """What prune needs to know of one tag."""

    tag: str
    digest: str  # the manifest's
    kind: str  # "image", "index", "lock" or "other"
    created: float | None  # the image's build time; a lock's "since"
    blobs: tuple[tuple[str, int], ...]  # an image's config and layers, with sizes
    lock: LockMarker | None
    children: tuple[str, ...] = ()  # the digests of an index's manifests


class Decision(NamedTuple):
    """One tag's fate, and why: the line prune prints for it."""

    tag: str
    delete: bool
    why: str  # the reason to keep it; for a delete, the build time
    facts: TagFacts | None  # None for tags that vanished while read


def prune_registry(docker: Docker, options: Options, image: str) -> tuple[int, int]:
    """--prune-older-than: deletes the old digest tags of the repository, as
    the policy says; prints a line per tag. Returns (deleted, kept)."""
    policy = options.prune
    assert policy is not None
    current_tag = image.rsplit(":", 1)[1]
    listed = read_keep_list(policy.keep_tags_from, without_tag(image))
    access = registry_client(docker, options, image, "--prune-older-than")
    with access.client:
        try:
            tags = access.call("GET tags", lambda: access.client.tags(access.repository))
        except access.module.NotFound:
            tags = []
        except Exception as error:
            if not access.error(error):
                raise
            raise DockerError(f"cannot list the tags of {access.repository}: {error}") from None
        facts = read_tag_facts(access, tags)
        decisions = decide_prune(facts, current_tag, listed, policy, time.time())
        deleted = execute_prune(access, decisions, dry_run=policy.dry_run)
    kept = sum(1 for decision in decisions if not decision.delete)
    _log.info("%s", prune_summary(decisions, deleted, kept, policy.dry_run))
    return deleted, kept


def read_keep_list(path: str | None, repository_name: str) -> set[str]:
    """The tags of --keep-tags-from: image names of this repository (as
    --print-image-name prints them) or bare tags, a line each."""
    if path is None:
        return set()
    data = read_regular_file(path, DOCKERIGNORE_MAX_BYTES, "--keep-tags-from file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise InputError(f"--keep-tags-from file {_show(path)} is not UTF-8: {error}") from None
    tags = set()
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, colon, tag = line.rpartition(":")
        if colon and "/" not in tag and name:
            if name != repository_name:
                _log.warning(
                    "--keep-tags-from line %d: %s is of another registry or repository; ignored.",
                    number,
                    _show(line),
                )
                continue
            line = tag
        if not _TAG.fullmatch(line):
            _log.warning("--keep-tags-from line %d: %s is no tag; ignored.", number, _show(line))
            continue
        tags.add(line)
    return tags


def read_tag_facts(access: RegistryAccess, tags: Sequence[str]) -> list[TagFacts]:
    """Each tag's manifest (and an image's config), a few requests at a time.
    A tag that cannot be read stops the run before anything is deleted: its
    digest is unknown, and a tag to delete might share it."""
    import concurrent.futures  # noqa: PLC0415 (only prune needs it: start-up stays short)

    with concurrent.futures.ThreadPoolExecutor(PRUNE_CONCURRENCY) as pool:
        futures = [pool.submit(_tag_facts, access, tag) for tag in tags]
        try:
            found = [future.result() for future in futures]
        except BaseException as error:  # an interrupt too: the reads not begun are not made
            for future in futures:
                future.cancel()
            if not isinstance(error, Exception) or not access.error(error):
                raise
            raise DockerError(
                f"cannot read the tags of {access.repository}: {error}; nothing was deleted"
            ) from None
    return [facts for facts in found if facts is not None]


def _tag_facts(access: RegistryAccess, tag: str) -> TagFacts | None:
    client, repository = access.client, access.repository
    try:
        manifest = access.call(f"GET {tag}", lambda: client.manifest(repository, tag))
    except access.module.NotFound:
        _log.info("%s went while the tags were read.", tag)
        return None
    document = manifest.document
    if manifest.media_type in _INDEX_TYPES:
        entries = document.get("manifests")
        children = tuple(
            entry["digest"]
            for entry in (entries if isinstance(entries, list) else [])
            if isinstance(entry, dict) and isinstance(entry.get("digest"), str)
        )
        return TagFacts(tag, manifest.digest, "index", None, (), None, children)
    if manifest.media_type not in _IMAGE_TYPES:
        return TagFacts(tag, manifest.digest, "other", None, (), None)
    if is_lock_tag(tag):
        marker = read_lock_marker(document)
        since = marker.since if marker else None
        return TagFacts(tag, manifest.digest, "lock", since, (), marker)
    blobs = _image_blobs(document)
    config = document.get("config")
    config_digest = config.get("digest") if isinstance(config, dict) else None
    created = None
    if isinstance(config_digest, str) and _DIGEST.fullmatch(config_digest):
        try:
            data = access.call(
                f"GET {tag} config",
                lambda: client.blob(repository, config_digest, CONFIG_MAX_BYTES),
            )
        except access.module.NotFound:
            data = b""
        created = _build_time(data)
    return TagFacts(tag, manifest.digest, "image", created, blobs, None)


def _image_blobs(document: Mapping[str, Any]) -> tuple[tuple[str, int], ...]:
    """The (digest, size) of an image manifest's config and layers."""
    descriptors = [document.get("config"), *(document.get("layers") or [])]
    blobs = []
    for descriptor in descriptors:
        if isinstance(descriptor, dict):
            digest, size = descriptor.get("digest"), descriptor.get("size")
            if isinstance(digest, str) and isinstance(size, int) and size >= 0:
                blobs.append((digest, size))
    return tuple(blobs)


def _build_time(config: bytes) -> float | None:
    """An image config's `created`; None without one, or at the Unix epoch or
    before (as reproducible builds write it, or Go's zero time): no build time
    to judge by."""
    try:
        document = json.loads(config)
    except ValueError:
        return None
    created = document.get("created") if isinstance(document, dict) else None
    moment = parse_time(created) if isinstance(created, str) else None
    return moment if moment is not None and moment > 0 else None


def decide_prune(
    facts: Sequence[TagFacts], current_tag: str, listed: set[str], policy: PrunePolicy, now: float
) -> list[Decision]:
    """What to do with each tag, newest first (then the undated, by name).

    A digest tag is deleted when its image was built longer ago than the
    policy's age, unless it is the current inputs' tag, one of the newest
    digest tags, listed, an index, has no build time, or shares its manifest
    with a tag that is kept (a delete by digest would take that one too), or
    its manifest is one that a kept index names (the index would break). A
    lock marker is deleted once its lease is over. Other tags are never deleted.
    """
    dated = sorted(
        (
            fact
            for fact in facts
            if fact.kind == "image" and fact.created is not None and fact.tag.startswith(TAG_PREFIX)
        ),
        key=lambda fact: (-(fact.created or 0), fact.tag),
    )
    newest = {fact.tag for fact in dated[: policy.keep_newest]}
    cutoff = now - policy.older_than
    decisions = {}
    for fact in facts:
        why = _reason_to_keep(
            fact, current_tag, listed=listed, newest=newest, cutoff=cutoff, now=now
        )
        decisions[fact.tag] = Decision(fact.tag, why is None, why or "", fact)
    # A kept tag's manifest stays: so do the tags that name it, and the
    # manifests a kept index names. Tags that are no digest tags are named first.
    kept = [
        fact
        for fact in sorted(facts, key=lambda fact: (fact.tag.startswith(TAG_PREFIX), fact.tag))
        if not decisions[fact.tag].delete
    ]
    keeping: dict[str, str] = {}
    for fact in kept:
        keeping.setdefault(fact.digest, f"shares its manifest with {fact.tag}")
    for fact in kept:
        for child in fact.children:
            keeping.setdefault(child, f"in the index {fact.tag}")
    for tag, decision in decisions.items():
        why = keeping.get(decision.facts.digest) if decision.facts else None
        if decision.delete and why is not None:
            decisions[tag] = decision._replace(delete=False, why=why)
    ordered = sorted(
        decisions.values(),
        key=lambda decision: (
            decision.facts is None or decision.facts.created is None,
            -(decision.facts.created or 0) if decision.facts else 0,
            decision.tag,
        ),
    )
    return [
        decision._replace(why=_delete_time(decision.facts)) if decision.delete else decision
        for decision in ordered
    ]


def _delete_time(facts: TagFacts | None) -> str:
    """What a delete line says after the tag: when it was built (a lock: taken)."""
    if facts is None or facts.created is None:
        return "unreadable lock marker"  # the only deletes without a time
    return iso_time(facts.created)


def _reason_to_keep(  # noqa: PLR0911 (one reason per rule, in order)
    fact: TagFacts,
    current_tag: str,
    *,
    listed: set[str],
    newest: set[str],
    cutoff: float,
    now: float,
) -> str | None:
    """Why a tag stays, or None if the policy lets it go."""
    if not fact.tag.startswith(TAG_PREFIX):
        return "not a digest tag"
    if fact.kind == "lock":
        # One look, no watching: only the stated end (past the allowance) tells.
        if fact.lock is not None and lease_over(fact.lock, now, 0) is None:
            return "live build lock"
        return None
    if fact.tag == current_tag:
        return "current"
    if fact.tag in listed:
        return "listed"
    if fact.kind == "index":
        return "index"
    if fact.kind != "image":
        return "not an image manifest"
    if fact.created is None:
        return "no build time"
    if fact.tag in newest:
        return "newest"
    if fact.created >= cutoff:  # built DURATION ago or less: not longer ago
        return "younger"
    return None


def execute_prune(access: RegistryAccess, decisions: Sequence[Decision], *, dry_run: bool) -> int:
    """Carries the decisions out, a few deletes at a time (one per manifest: the
    tags that share one go with it), printing each tag's line in order, a
    delete's once it is done; returns how many tags went. A failure stops the
    run: the deletes not yet begun are not made, those under way end, and the
    lines printed say exactly which tags went."""
    if dry_run:
        for decision in decisions:
            _print(_decision_line(decision))
        return 0
    import concurrent.futures  # noqa: PLC0415 (only prune needs it: start-up stays short)

    stop = threading.Event()  # set when a delete fails, or the run is interrupted

    def delete(tag: str, digest: str) -> bool:
        """Whether the manifest went; False if the run stopped before it began."""
        if stop.is_set():
            return False
        try:
            _delete_manifest(access, tag, digest)
        except BaseException:
            stop.set()
            raise
        return True

    def stopped(rest: Sequence[Decision], failure: BaseException | None, deleted: int) -> NoReturn:
        """Once the deletes under way have ended: prints the lines of those of
        `rest` that went, and raises the failure."""
        for decision in rest:
            digest = _digest_to_delete(decision)
            future = deletes.get(digest) if digest is not None else None
            if future is None or future.cancelled():
                continue
            if future.exception() is not None:
                failure = failure or future.exception()
            elif future.result():
                deleted += 1
                _print(_decision_line(decision))
        if not isinstance(failure, Exception):
            raise failure or AssertionError("a delete stopped the run without failing")
        raise _delete_failure(access, failure, deleted) from None

    deletes: dict[str, concurrent.futures.Future[bool]] = {}
    printed: list[Decision] = []
    failure: BaseException | None = None
    pool = concurrent.futures.ThreadPoolExecutor(PRUNE_CONCURRENCY)
    try:
        for decision in decisions:
            digest = _digest_to_delete(decision)
            if digest is not None and digest not in deletes:
                deletes[digest] = pool.submit(delete, decision.tag, digest)
        for decision in decisions:
            digest = _digest_to_delete(decision)
            if digest is not None and not deletes[digest].result():
                break  # another delete failed
            _print(_decision_line(decision))
            printed.append(decision)
        else:
            return sum(decision.delete for decision in printed)
    except BaseException as error:
        stop.set()
        if isinstance(error, Exception) and not access.error(error):
            raise
        failure = error
    finally:
        stop.set()
        pool.shutdown(wait=True, cancel_futures=True)
    stopped(decisions[len(printed) :], failure, sum(decision.delete for decision in printed))


def _digest_to_delete(decision: Decision) -> str | None:
    return decision.facts.digest if decision.delete and decision.facts else None


def _decision_line(decision: Decision) -> str:
    """The line prune prints for a tag: the action first."""
    return f"{'delete' if decision.delete else 'keep'} {decision.tag} {decision.why}"


def _delete_manifest(access: RegistryAccess, tag: str, digest: str) -> None:
    """Deletes a manifest (and so its tags); one already gone (another prune, a lock
    released meanwhile) is gone all the same."""
    try:
        access.call(f"DELETE {tag}", functools.partial(access.delete, digest))
    except access.module.NotFound:
        _log.info("%s was gone already (its manifest is deleted).", tag)


def _delete_failure(access: RegistryAccess, error: Exception, deleted: int) -> Exception:
    """A one-line error for a delete that failed, saying what to do."""
    module = access.module
    if not access.error(error):
        return error
    done = f" (after deleting {deleted} tags, printed above)" if deleted else " (nothing deleted)"
    hint = _delete_hint(access.host)
    if isinstance(error, module.Unsupported):
        return DockerError(
            f"registry {access.host} refuses deletes through its API: {error}{done}; "
            + (hint or DISTRIBUTION_DELETE_HINT)
        )
    if isinstance(error, module.AuthenticationError):
        return DockerError(
            f"registry {access.host} refused our credentials: {error}{done} "
            f"(are you logged in? docker login {access.host})"
        )
    also = f"; {hint}" if hint else ""
    if isinstance(error, module.NotAllowed):
        return DockerError(f"not allowed to delete from {access.repository}: {error}{done}{also}")
    return DockerError(f"stopped: {error}{done}{also}")


DISTRIBUTION_DELETE_HINT = "the CNCF registry (distribution) needs storage.delete.enabled: true"


def _delete_hint(host: str) -> str | None:
    """How tags are deleted on a registry known to refuse (some) deletes of the
    API, by its host; None for others."""
    if host in ("docker.io", "index.docker.io", "registry-1.docker.io"):
        return (
            "Docker Hub deletes tags through its own API (hub.docker.com), and only "
            "untagged manifests through the registry's"
        )
    if host == "ghcr.io":
        return "GHCR deletes package versions through the GitHub API"
    if host.endswith(".amazonaws.com"):
        return "Amazon ECR deletes images with `aws ecr batch-delete-image` or lifecycle rules"
    if host == "gcr.io" or host.endswith((".gcr.io", "-docker.pkg.dev")):
        return (
            "Google's registries delete a tagged manifest with "
            "`gcloud artifacts docker images delete --delete-tags` or cleanup policies"
        )
    return None


def prune_summary(decisions: Sequence[Decision], deleted: int, kept: int, dry_run: bool) -> str:
    """How many went and stayed, and what garbage collection can free: the
    bytes of the deleted images' blobs that no kept image names (an estimate:
    the images of kept indexes are not read)."""
    kept_blobs = {
        digest
        for decision in decisions
        if not decision.delete and decision.facts
        for digest, _ in decision.facts.blobs
    }
    freed = {
        digest: size
        for decision in decisions
        if decision.delete and decision.facts
        for digest, size in decision.facts.blobs
        if digest not in kept_blobs
    }
    to_delete = sum(1 for decision in decisions if decision.delete)
    if dry_run:
        head = f"Dry run: would delete {to_delete} tags, keep {kept}"
    else:
        head = f"Deleted {deleted} tags, kept {kept}"
    return (
        f"{head}; {_size(sum(freed.values()))} of blobs {'would be' if dry_run else 'are'} "
        "referenced by no kept tag (what the registry's garbage collection can free)."
    )


# --- main -----------------------------------------------------------------


def run_action(options: Options) -> None:
    """Does what the command line asks, raising on failure."""
    start = time.monotonic()
    docker = Docker(options)
    if options.action in (Action.GET_IMAGE, Action.PRUNE):
        docker.check()  # before hashing, which can take a while
    if options.action is Action.EXPLAIN or options.action is Action.EXPLAIN_JSON:
        kind = TextExplainer if options.action is Action.EXPLAIN else JsonExplainer
        explainer = kind(_print)
        image = image_for(options, explainer, docker)
        explainer.image(image)
    else:
        image = image_for(options, None, docker)
    if options.action is Action.PRINT_NAME:
        _print(image)
    outputs = {"image": image, "tag": image.rsplit(":", 1)[1]}
    if options.action is Action.PRUNE:
        deleted, kept = prune_registry(docker, options, image)
        outputs.update(deleted=str(deleted), kept=str(kept))
    if options.action is Action.GET_IMAGE:
        _log.info("Image: %s", image)
        got = get_image(docker, options, image)
        # Tag so that the image can be referred to by repository name.
        docker.step("tag", image, options.repository)
        seconds = time.monotonic() - start
        outputs.update(result=got.result.value, seconds=f"{seconds:.1f}")
        _log.info("%s", closing_line(image, got, seconds))
    if options.output_file is not None:
        write_outputs(options.output_file, outputs)
    _flush_stdout()


def _print(line: str) -> None:
    if sys.stdout is None:  # started with stdout closed
        raise ToolError("cannot write to stdout: it is closed")
    try:
        sys.stdout.write(line + "\n")
    except BrokenPipeError:
        raise
    except OSError as error:
        raise _stdout_error(error) from None


def _flush_stdout() -> None:
    """Makes a full stdout an error here, not a silent loss at exit."""
    if sys.stdout is None:
        return
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        raise
    except OSError as error:
        raise _stdout_error(error) from None


def _stdout_error(error: OSError) -> ToolError:
    """A one-line error for a full or broken stdout."""
    _discard_stdout()
    return ToolError(f"cannot write to stdout: {error.strerror or error}")


def _discard_stdout() -> None:
    """Points stdout at /dev/null, so that the interpreter's own flush at exit
    does not fail again."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    raise Terminated


def _parse_or_exit(argv: Sequence[str] | None) -> Options:
    """parse_options; but what --help or --version could not write (a full
    or closed stdout) is a one-line error, as everywhere."""
    try:
        return parse_options(argv)
    except OSError as error:
        if sys.stdout is not None:
            _discard_stdout()
        get_logger(LOGGER_NAME).error("cannot write to stdout: %s", error.strerror or error)
        raise SystemExit(EXIT_FAILURE) from None


def main(argv: Sequence[str] | None = None) -> int:
    options = _parse_or_exit(argv)
    log = get_logger(LOGGER_NAME)
    previous_sigterm = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        run_action(options)
    except ToolError as error:
        log.error("%s", error)
        return error.exit_status
    except KeyboardInterrupt:
        log.error("Interrupted.")
        return EXIT_INTERRUPTED
    except Terminated:
        log.error("Terminated.")
        return EXIT_TERMINATED
    except BrokenPipeError:
        # The reader of stdout went away (`--explain | head`): quietly stop.
        _discard_stdout()
        return EXIT_FAILURE
    except Exception as error:
        if options.debug:
            log.exception("Internal error")
        else:
            log.error("Internal error: %r (rerun with --debug for the traceback)", error)
        return EXIT_FAILURE
    finally:
        signal.signal(signal.SIGTERM, previous_sigterm)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
