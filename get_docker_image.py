#!/usr/bin/env python3
"""Gets a Docker image by the digest of its content: pulls it when the
registry has it, otherwise builds it and pushes it.

A port of onnxruntime's tools/ci_build/get_docker_image.py: for the same
inputs it computes the same tag and makes the same docker calls (plus one
re-check of the registry before a push, so that concurrent jobs converge).

Sections, in the order the data flows: the command line; image names; the
content digest (two walks sharing one hot loop); --explain output; docker
(running, probing, retrying); base images; getting the image; main.
"""

from __future__ import annotations

import argparse
import enum
import hashlib
import importlib
import json
import logging
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
from collections.abc import Callable, Sequence
from types import FrameType
from typing import TYPE_CHECKING, Any, NamedTuple, NoReturn, TypeVar

if TYPE_CHECKING or not __package__:  # copied into a project, beside its helpers
    from logger import get_logger
    from util import run
else:  # installed, as the package get_docker_image_tool
    from .logger import get_logger
    from .util import run

if TYPE_CHECKING:
    import dockerignore

__version__ = "0.2.0"

T = TypeVar("T")

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
_OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY

# Hashing that takes longer than this reports progress, every PROGRESS_EVERY.
PROGRESS_AFTER_SECONDS = 2.0
PROGRESS_EVERY_SECONDS = 5.0

HASH_MODES = ("original", "docker")


class ToolError(Exception):
    """An expected failure, reported as one line."""

    exit_status = EXIT_FAILURE


class UsageError(ToolError):
    """The command line cannot be acted on."""

    exit_status = EXIT_USAGE


class InputError(ToolError):
    """A file or directory the tag depends on cannot be used."""


class DockerError(ToolError):
    """Docker is missing, failed, or the registry cannot be used."""


class Terminated(BaseException):
    """SIGTERM arrived; raised like KeyboardInterrupt so children are killed."""


# --- The command line -----------------------------------------------------


class Options(NamedTuple):
    """What the command line asks for, checked."""

    dockerfile: str
    context: str
    build_args: str  # hashed, as given
    other_build_args: str  # passed to docker build, not hashed
    registry: str | None  # None: local-only mode
    repository: str
    docker_path: str
    output: str | None  # None (get the image), "name", "explain" or "explain-json"
    hash_mode: str  # one of HASH_MODES
    hash_base_images: bool
    layer_cache: str | None  # the cache tag, or None
    retries: int
    retry_delay: float
    probe_timeout: float
    debug: bool

    def split_build_args(self) -> tuple[list[str], list[str]]:
        """The two build-args texts as docker's arguments."""
        return (
            _split("--docker-build-args", self.build_args),
            _split("--docker-build-args-not-affecting-image-content", self.other_build_args),
        )


def _split(option: str, text: str) -> list[str]:
    try:
        return shlex.split(text)
    except ValueError as error:
        raise UsageError(f"{option}: cannot split {text!r}: {error}") from None


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

A build-args value that starts with '-' and has no space is given with '='
(--docker-build-args=--no-cache).

exit status: 0 success, 1 failure, 2 usage error, 130 interrupted,
143 terminated.
"""


class _ArgumentParser(argparse.ArgumentParser):
    """argparse, with a hint where a build-args value was taken for an option."""

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
        choices=HASH_MODES,
        default="original",
        help="original (default): the original script's digest, shared with its "
        "caches. docker: only what docker build receives (.dockerignore applied, "
        "paths relative to the context, symlinks not followed); other tags.",
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
        "--retries",
        type=_non_negative(int),
        default=3,
        metavar="N",
        help="Retries of a registry step (probe, pull, push) that failed for a "
        "transient reason: HTTP 5xx, reset connections, timeouts (default 3).",
    )
    parser.add_argument(
        "--retry-delay",
        type=_non_negative(float),
        default=2.0,
        metavar="SECONDS",
        help="The first retry's delay; it doubles for each next one, with jitter (default 2).",
    )
    parser.add_argument(
        "--probe-timeout",
        type=_positive_float,
        default=60.0,
        metavar="SECONDS",
        help="How long one registry probe may take (default 60).",
    )
    output = parser.add_mutually_exclusive_group()
    output.add_argument(
        "--print-image-name",
        action="store_true",
        help="Print the full image name on stdout and exit, without running docker "
        "(but for --hash-base-images, which asks the registries).",
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


def _non_negative(kind: Callable[[str], float]) -> Callable[[str], float]:
    def convert(text: str) -> float:
        value = kind(text)
        if value < 0:
            raise argparse.ArgumentTypeError(f"must not be negative: {text!r}")
        return value

    convert.__name__ = kind.__name__  # argparse names the type in its message
    return convert


def _positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text!r}")
    return value


def parse_options(argv: Sequence[str] | None) -> Options:
    """The command line as Options; exits with status 2 on a usage error."""
    parser = build_parser(os.path.basename(sys.argv[0]) if argv is None else "get_docker_image.py")
    args = parser.parse_args(argv)
    output = None
    if args.print_image_name:
        output = "name"
    elif args.explain:
        output = "explain" if args.explain == "text" else "explain-json"
    options = Options(
        dockerfile=args.dockerfile,
        context=args.context,
        build_args=args.docker_build_args,
        other_build_args=args.docker_build_args_not_affecting_image_content,
        registry=args.container_registry,
        repository=args.repository,
        docker_path=args.docker_path,
        output=output,
        hash_mode=args.hash_mode,
        hash_base_images=args.hash_base_images,
        layer_cache=args.layer_cache,
        retries=int(args.retries),
        retry_delay=args.retry_delay,
        probe_timeout=args.probe_timeout,
        debug=args.debug,
    )
    try:
        check_names(options)
    except UsageError as error:
        parser.error(str(error))
    return options


# --- Image names ----------------------------------------------------------

# Docker's reference grammar (distribution/reference): lowercase path
# components joined by '/', an optional host[:port] in front, 255 at most.
_PATH_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_DOMAIN_COMPONENT = re.compile(r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])")
_IPV6 = re.compile(r"\[[a-fA-F0-9:]+\]")
NAME_MAX_LENGTH = 255


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
    if ":" in host and not host.endswith("]") and not (port.isdigit() and 0 < int(port) < 65536):
        raise UsageError(f"{option} {value!r}: {port!r} is not a valid port (1 to 65535)")


def check_names(options: Options) -> None:
    """Checks the repository and registry against docker's reference grammar,
    so that a bad name is a usage error before anything runs."""
    repository, registry = options.repository, options.registry
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
    elif options.layer_cache is not None:
        raise UsageError(
            "--layer-cache needs --container-registry "
            "(without a registry the engine's own layer cache already applies)"
        )
    name = image_name(registry, repository, "x").rsplit(":", 1)[0]
    if len(name) > NAME_MAX_LENGTH:
        raise UsageError(
            f"the image name {name!r} is {len(name)} characters long; "
            f"docker allows {NAME_MAX_LENGTH} at most"
        )
    if options.layer_cache is not None and not re.fullmatch(
        r"[\w][\w.-]{0,127}", options.layer_cache
    ):
        raise UsageError(f"--layer-cache {options.layer_cache!r} is not a valid tag")


# --- The content digest ---------------------------------------------------


class HashedInput:
    """One input of the digest, in the order it was hashed (for --explain).

    A plain class: a dataclass would cost every run some 5 ms of start-up
    (dataclasses imports inspect), for a type that only --explain uses.
    """

    __slots__ = ("kind", "mode", "path", "sha256", "size", "target")

    def __init__(
        self,
        kind: str,  # "args", "dockerfile", "file", "dir", "link" or "base"
        path: bytes,  # as hashed; for "args" the text; for "base" name@digest
        mode: int = 0,
        *,
        size: int | None = None,  # bytes of content (files) or of target (links)
        sha256: str | None = None,  # of the same bytes
        target: bytes | None = None,  # links only; for "base", the platform
    ) -> None:
        self.kind, self.path, self.mode = kind, path, mode
        self.size, self.sha256, self.target = size, sha256, target


Observer = Callable[[HashedInput], None]


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


def _size(count: float) -> str:
    for unit in ("bytes", "kB", "MB", "GB"):
        if count < 1000 or unit == "GB":
            return f"{count:.0f} {unit}" if unit == "bytes" else f"{count:.1f} {unit}"
        count /= 1000
    raise AssertionError  # unreachable


# A directory's entries to hash, each list sorted by name: files (regular
# files, links to them, links hashed as links); links: those of the files
# hashed as links, with their lstat mode; subdirectories (name, mode, and
# what the walk carries down: resolved path, or .dockerignore match info).
_Listing = tuple[list[bytes], dict[bytes, int], list[tuple[bytes, int, object]]]


class ContentDigest:
    """The SHA-256 stream that names an image.

    In the original mode (the default, the original script's tags) it is
    fed the build-args text; the Dockerfile's record and bytes; the context
    directory's record, then its files (record and bytes) sorted by path,
    then its subdirectories sorted by path, each the same way, depth first.
    A record is `<path> <st_mode in decimal>`, the path spelled as given
    (so `ctx`, `./ctx` and `ctx/` differ). Symlinks are followed; where that
    is impossible (dangling, a loop) the link is hashed as a file whose
    bytes are its target text. Entries neither file nor directory are skipped.

    In the docker mode it is fed what `docker build` receives: a header that
    no original stream can start with, then NUL-separated records with sizes
    (`<kind>\\0<path>\\0<mode>\\0<size>\\0`), paths relative to the context,
    .dockerignore applied, symlinks as links, permission bits only.
    """

    def __init__(
        self,
        observer: Observer | None = None,
        *,
        hash_mode: str = "original",
        chunk_size: int = READ_CHUNK_SIZE,
        read_ahead_min_size: int = READ_AHEAD_MIN_SIZE,
        small_file_size: int = SMALL_FILE_SIZE,
    ) -> None:
        self._digest = hashlib.sha256()
        self._observer = observer
        self._docker_mode = hash_mode == "docker"
        self._read_ahead_min_size = read_ahead_min_size
        self._small_file_size = small_file_size
        self._chunk_size = chunk_size
        self._buffers: list[bytearray] = []  # see _chunk_buffers
        self._mode_suffixes: dict[int, bytes] = {}  # st_mode -> b" <decimal>"
        self._context = b""  # docker mode: the context's path, which paths are relative to
        self.progress = _Progress()

    def hexdigest(self) -> str:
        return self._digest.hexdigest()

    # Records and explain entries: each built here and nowhere else.

    def _record(self, kind: str, path: bytes, mode: int, size: int) -> bytes:
        """The bytes that introduce one entry (its content follows)."""
        if self._docker_mode:
            if kind == "dockerfile":  # docker reads its text only, from wherever it is
                path, mode = b"", 0
            return b"%s\0%s\0%o\0%d\0" % (kind.encode(), path, stat.S_IMODE(mode), size)
        suffix = self._mode_suffixes.get(mode)
        if suffix is None:
            suffix = self._mode_suffixes[mode] = b" %d" % mode
        return path + suffix

    def _observe(
        self,
        kind: str,
        path: bytes,
        mode: int,
        *,
        size: int | None = None,
        content: hashlib._Hash | None = None,
        target: bytes | None = None,
    ) -> None:
        if self._observer:
            sha256 = content.hexdigest() if content else None
            shown_mode = stat.S_IMODE(mode) if self._docker_mode else mode
            self._observer(
                HashedInput(kind, path, shown_mode, size=size, sha256=sha256, target=target)
            )

    # What is hashed, in order.

    def add_header(self, header: bytes) -> None:
        """Marks a digest made with non-default options; see stream_header."""
        self._digest.update(header)

    def add_base_images(self, references: Sequence[BaseImageDigest]) -> None:
        self._digest.update(b"%d\0" % len(references))
        for reference in references:
            self._digest.update(reference.pinned.encode() + b"\0")
            if self._observer:
                platform = reference.platform.encode() if reference.platform else None
                self._observer(HashedInput("base", reference.pinned.encode(), target=platform))

    def add_text(self, text: bytes) -> None:
        if self._docker_mode:
            self._digest.update(b"args\0%d\0" % len(text))
        self._digest.update(text)
        if self._observer:
            self._observer(HashedInput("args", text))

    def add_dockerfile(self, path: bytes) -> None:
        kind = "dockerfile" if self._docker_mode else "file"
        if not self._add_files(None, b"", [path], {}, what="Dockerfile", kind=kind):
            raise InputError(f"Dockerfile is not a regular file: {_show(path)}")

    def add_context(self, path: bytes) -> None:
        try:
            root = os.stat(path)
        except OSError as error:
            raise _input_error(error, path, "context directory") from None
        if not stat.S_ISDIR(root.st_mode):
            raise InputError(f"context is not a directory: {_show(path)}")
        if self._docker_mode:
            self._context = path
            matcher = _read_dockerignore(path)
            # The root's own mode is not part of what docker copies (COPY . /x/
            # makes /x 0755 whatever it is): hashing it would make the umask
            # of the checkout change the tag.
            root_mode = stat.S_IFDIR
            self._walk(b".", root_mode, None, lambda *a: _list_as_docker(matcher, *a))
        else:
            links = _LinkWalk(path)
            self._walk(path, root.st_mode, links.root_state(), links.list)
            links.warn()
        self.progress.done()

    def _open_path(self, path: bytes) -> bytes:
        """Where a hashed path is on disk."""
        if not self._docker_mode:
            return path
        return self._context if path == b"." else os.path.join(self._context, path)

    def _walk(self, root: bytes, root_mode: int, root_state: object, lister: _Lister) -> None:
        """Hashes a directory tree, depth first, with an explicit stack (no
        recursion limit on deep trees): each directory's record, its files,
        then its subdirectories. `lister` decides what a directory holds; the
        state it is given is what it returned for that directory (None: an
        excluded directory walked only for what an exception re-includes)."""
        pending: list[tuple[bytes, int, object]] = [(root, root_mode, root_state)]
        while pending:
            dir_path, dir_mode, state = pending.pop()
            if dir_mode:
                self._digest.update(self._record("dir", dir_path, dir_mode, 0))
                self._observe("dir", dir_path, dir_mode)
            if self._docker_mode and dir_path == b".":
                prefix = b""  # the context root; its entries' paths are relative
            else:
                prefix = dir_path if dir_path.endswith(b"/") else dir_path + b"/"
            open_path = self._open_path(dir_path)
            try:
                dir_fd = os.open(open_path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            except OSError as error:
                raise _input_error(error, open_path, "directory") from None
            try:
                files, links, dirs = lister(open_path, dir_fd, prefix, state)
                self._add_files(dir_fd, prefix, files, links, what="file", kind="file")
            finally:
                os.close(dir_fd)
            pending.extend(
                (prefix + name, mode, child_state) for name, mode, child_state in reversed(dirs)
            )

    def _add_files(
        self,
        dir_fd: int | None,
        prefix: bytes,
        names: list[bytes],
        links: dict[bytes, int],
        *,
        what: str,
        kind: str,
    ) -> int:
        """Hashes each name's record and bytes, in order; returns how many were hashed.

        Names are opened relative to `dir_fd` (sparing the kernel a walk down
        the whole path for every file) and hashed as `prefix + name`. Names in
        `links` are hashed as links; what is not a regular file once opened
        is skipped. This is the walk's hot loop: a small file costs four
        system calls (open, fstat, read, close) and two hash updates.
        """
        # Locals: this loop runs once per file, and lookups add up.
        update, observer, record = self._digest.update, self._observer, self._record
        open_, fstat, read, close, is_regular = os.open, os.fstat, os.read, os.close, stat.S_ISREG
        small_file_size, progress, exact = self._small_file_size, self.progress, self._docker_mode
        hashed = 0
        for name in names:
            path = prefix + name
            if name in links:
                self._add_link(dir_fd, name, path, links[name])
                hashed += 1
                continue
            try:
                # O_NONBLOCK: should a FIFO replace the file, opening must not hang.
                fd = open_(name, _OPEN_FLAGS, dir_fd=dir_fd)
            except OSError as error:
                raise _input_error(error, path, what) from None
            try:
                status = fstat(fd)
                mode = status.st_mode
                if not is_regular(mode):
                    continue
                size = status.st_size
                update(record(kind, path, mode, size))
                if size < small_file_size:  # one read, into a fresh bytes object
                    data = read(fd, size + 1)
                    update(data)
                    count = read_whole = len(data)
                    content = hashlib.sha256(data) if observer else None
                    if count > size:  # it grew since fstat: read on to the end
                        count += self._add_rest(fd, 0, content)
                else:
                    content = hashlib.sha256() if observer else None
                    count = self._add_rest(fd, size, content)
                    read_whole = 0  # _add_chunk reported the chunks as they came
            except OSError as error:
                raise _input_error(error, path, what) from None
            finally:
                close(fd)
            if exact and count != size:  # the record's size must be the content's
                raise InputError(f"{what} changed while it was hashed: {_show(path)}")
            hashed += 1
            progress.add(1, read_whole)
            if observer:
                self._observe(kind, path, mode, size=count, content=content)
        return hashed

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
        self._digest.update(chunk)
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

    def _add_link(self, dir_fd: int | None, name: bytes, path: bytes, mode: int) -> None:
        try:
            target = os.readlink(name, dir_fd=dir_fd)
        except OSError as error:
            raise _input_error(error, path, "symlink") from None
        self._digest.update(self._record("link", path, mode, len(target)))
        self._digest.update(target)
        self.progress.add(1, len(target))
        self._observe(
            "link", path, mode, size=len(target), content=hashlib.sha256(target), target=target
        )


# Lists a directory for the walk: (path to open, its fd, the prefix of its
# entries' hashed paths, the state the walk carries) -> its entries.
_Lister = Callable[[bytes, int, bytes, object], _Listing]


class _LinkWalk:
    """The original mode's listing of directories, which follows symlinks as
    the original does, and notes what makes its tags vary from runner to
    runner, for one warning each (docker mode has none of these)."""

    def __init__(self, root: bytes) -> None:
        self.root_real = os.path.realpath(root)
        self._real_paths: dict[tuple[int, int], bytes] = {}  # directory id -> resolved path
        self._seen: set[tuple[int, int]] = set()  # directories walked
        self.notes: dict[str, bytes] = {}  # what was noticed -> an example path

    def root_state(self) -> _Ancestry:
        return _Ancestry(self.root_real, _ancestry_entry(self.root_real))

    def list(self, path: bytes, dir_fd: int, prefix: bytes, state: object) -> _Listing:
        """Files, links not followed, and subdirectories of one directory.

        Classified without opening anything: FIFOs, sockets and devices are
        skipped. Entries share their directory's prefix, so ordering by name
        is ordering by full path; and byte order of UTF-8 is the code point
        order that the original's str sort gives. The state carried down is
        the resolved paths of the directory and its ancestors, to tell links
        that make loops.
        """
        assert isinstance(state, _Ancestry)
        files: list[bytes] = []
        links: dict[bytes, int] = {}
        dirs: list[tuple[bytes, int, object]] = []
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
                        dirs.append((name, status.st_mode, state.child(name)))
                    elif entry.is_symlink():
                        followed = self._follow(dir_fd, name, prefix + name, state)
                        if followed is None:
                            continue
                        kind, mode, real_path = followed
                        if kind == "dir":
                            dirs.append((name, mode, state.followed(real_path)))
                        else:
                            files.append(name)
                            if kind == "link":
                                links[name] = mode
        except OSError as error:
            raise _input_error(error, path, "directory") from None
        return _sorted(files, links, dirs)

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


def _read_dockerignore(context: bytes) -> dockerignore.PatternMatcher:
    patterns = _optional_module("dockerignore", "--hash-mode docker")
    path = os.path.join(context, b".dockerignore")
    try:
        with open(path, "rb") as file:
            data = file.read()
    except FileNotFoundError:
        data = b""
    except OSError as error:
        raise _input_error(error, path, ".dockerignore") from None
    try:
        matcher: dockerignore.PatternMatcher = patterns.PatternMatcher(
            patterns.read_dockerignore(data)
        )
    except patterns.DockerignoreError as error:
        raise InputError(f"{_show(path)}: {error}") from None
    return matcher


def _list_as_docker(
    matcher: dockerignore.PatternMatcher, path: bytes, dir_fd: int, prefix: bytes, parent: object
) -> _Listing:
    """The docker mode's listing: what `docker build` sends of this directory.

    Entries that .dockerignore excludes are left out; an excluded directory
    is not read at all unless an exception may re-include something in it,
    and then it is walked with mode 0 (its record left out: docker sends
    only what is inside). Links are links; FIFOs, sockets and devices are
    skipped. The state carried down is the directory's match info.
    """
    files: list[bytes] = []
    links: dict[bytes, int] = {}
    dirs: list[tuple[bytes, int, object]] = []
    parent_info = parent if isinstance(parent, tuple) else None
    try:
        with os.scandir(dir_fd) as entries:  # by fd, as in _LinkWalk.list
            for entry in entries:
                name = os.fsencode(entry.name)
                relative = os.fsdecode(prefix + name)
                excluded, info = matcher.matches(relative, parent_info)
                mode = entry.stat(follow_symlinks=False).st_mode
                if stat.S_ISDIR(mode):
                    if not excluded:
                        dirs.append((name, mode, info))
                    elif matcher.must_descend(relative):
                        dirs.append((name, 0, info))
                elif excluded:
                    continue
                elif stat.S_ISREG(mode):
                    files.append(name)
                elif stat.S_ISLNK(mode):
                    files.append(name)
                    links[name] = mode
    except OSError as error:
        raise _input_error(error, path, "directory") from None
    return _sorted(files, links, dirs)


def _sorted(
    files: list[bytes], links: dict[bytes, int], dirs: list[tuple[bytes, int, object]]
) -> _Listing:
    """A directory's listing in hash order: files, then subdirectories, by name."""
    files.sort()
    dirs.sort(key=lambda entry: entry[0])
    return files, links, dirs


def _optional_module(name: str, option: str) -> Any:
    """A module of the tool that only an option needs, so that the core stays
    three files to copy (and starts faster): a clear error if it is missing."""
    try:
        return importlib.import_module(f".{name}" if __package__ else name, __package__)
    except ModuleNotFoundError as error:
        if error.name not in (name, f"{__package__}.{name}"):
            raise
        raise UsageError(
            f"{option} needs {name}.py beside get_docker_image.py (copy it from the tool)"
        ) from None


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


def stream_header(hash_mode: str, hash_base_images: bool) -> bytes:
    """What a digest made with non-default options starts with: a NUL, which
    no original stream can start with (command-line text has no NUL), so no
    such tag can equal a default one for other inputs. Empty by default."""
    options = []
    if hash_mode != "original":
        options.append(f"hash-mode={hash_mode}")
    if hash_base_images:
        options.append("base-images")
    if not options:
        return b""
    return ("\0get_docker_image v1 " + " ".join(options) + "\0").encode()


def compute_tag(
    build_args: str,
    dockerfile: str,
    context: str,
    observer: Observer | None = None,
    *,
    hash_mode: str = "original",
    base_images: Sequence[BaseImageDigest] | None = None,
) -> str:
    """Returns `image_content_digest_<hex>` for these inputs; `base_images`
    (None: not hashed) are the resolved FROM images."""
    digest = ContentDigest(observer, hash_mode=hash_mode)
    digest.add_header(stream_header(hash_mode, base_images is not None))
    if base_images is not None:
        digest.add_base_images(base_images)
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


def explain_line(item: HashedInput) -> str:
    """One line of --explain: kind, mode, size, content SHA-256, path."""
    if item.kind == "args":
        return f'args  "{_escape(item.path)}"'
    if item.kind == "base":
        platform = f"  ({_escape(item.target)})" if item.target else ""
        return f"base  {_escape(item.path)}{platform}"
    mode = f"{item.mode:6o} ({item.mode:5d})"
    size = "-" if item.size is None else str(item.size)
    kind = "file" if item.kind == "dockerfile" else item.kind
    line = f"{kind:<4}  {mode}  {size:>11}  {item.sha256 or '-':<64}  {_escape(item.path)}"
    if item.target is not None:
        line += f" -> {_escape(item.target)}"
    return line


def explain_json(item: HashedInput) -> str:
    """One line of --explain json: a JSON object. Paths that are not UTF-8
    keep their bytes as lone surrogates (\\udcXX), as os.fsdecode gives them."""
    entry: dict[str, object]
    if item.kind == "args":
        entry = {"kind": "args", "text": os.fsdecode(item.path)}
    elif item.kind == "base":
        name, digest = os.fsdecode(item.path).rsplit("@", 1)
        platform = os.fsdecode(item.target) if item.target else None
        entry = {"kind": "base", "name": name, "digest": digest, "platform": platform}
    else:
        entry = {"kind": item.kind, "path": os.fsdecode(item.path), "mode": item.mode}
        if item.size is not None:
            entry["size"] = item.size
            entry["sha256"] = item.sha256
        if item.target is not None:
            entry["target"] = os.fsdecode(item.target)
    return json.dumps(entry)


# --- Docker ---------------------------------------------------------------


class Probe(enum.Enum):
    """What docker's error output says of a registry step that failed."""

    FOUND = "found"
    NOT_FOUND = "not found"
    UNREACHABLE = "unreachable"
    UNAUTHORIZED = "unauthorized"
    TRANSIENT = "transient"
    LOST_BLOB = "lost blob"
    UNKNOWN = "unknown"


# Matched, lower-cased, against docker's error output with the image name
# taken out (a repository called x/denied must not read as "denied"), in
# this order; the first class with a marker found wins.
_ERROR_MARKERS: tuple[tuple[Probe, tuple[str, ...]], ...] = (
    (Probe.LOST_BLOB, ("unknown blob", "blob unknown")),
    (Probe.NOT_FOUND, ("no such manifest", "manifest unknown", "name unknown", "not found")),
    (
        Probe.UNAUTHORIZED,
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
        Probe.TRANSIENT,
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
        Probe.UNREACHABLE,
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


def classify_error(message: str, *names: str) -> Probe:
    """Why a registry step failed, from docker's error output."""
    lowered = message
    for name in sorted(names, key=len, reverse=True):  # longest first: names nest
        if name:
            lowered = lowered.replace(name, "IMAGE")
    lowered = lowered.lower()
    for probe, markers in _ERROR_MARKERS:
        if any(marker in lowered for marker in markers):
            return probe
    return Probe.UNKNOWN


def one_line(text: str) -> str:
    return "; ".join(line.strip() for line in text.splitlines() if line.strip())


def last_line(text: str) -> str:
    """docker's own last error line, without progress noise."""
    lines = [line.strip() for line in text.replace("\r", "\n").splitlines() if line.strip()]
    return lines[-1] if lines else ""


class StepFailed(DockerError):
    """A docker step failed; `probe` says why, as far as docker's words tell."""

    def __init__(self, message: str, probe: Probe) -> None:
        super().__init__(message)
        self.probe = probe


class Docker:
    """The docker CLI as this run uses it: where it is, and how registry
    steps are retried and bounded."""

    def __init__(self, options: Options) -> None:
        self.path = options.docker_path
        self.retries = options.retries
        self.retry_delay = options.retry_delay
        self.probe_timeout = options.probe_timeout

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
            )
        except OSError as error:
            raise DockerError(
                f"cannot run docker {self.path!r}: {error.strerror or error}"
            ) from None

    def step(self, *args: str, names: Sequence[str] = ()) -> None:
        """Runs a docker step, retrying transient registry failures."""
        self.retrying(lambda: self.step_once(*args, names=names), f"docker {args[0]}")

    def step_once(self, *args: str, names: Sequence[str] = ()) -> None:
        """Runs a docker step once; raises StepFailed naming the command, its
        status and docker's last line, and classifying docker's words."""
        completed = self.run(*args)
        if completed.returncode == 0:
            return
        if completed.returncode < 0:
            status = f"was killed by signal {-completed.returncode}"
        else:
            status = f"failed with exit status {completed.returncode}"
        command = shlex.join([self.path, *args])
        said = last_line(completed.stderr or "")
        if said:
            message = f"docker {args[0]} {status}: {said} (command: {command})"
        else:
            message = f"docker {args[0]} {status}: {command}"
        raise StepFailed(message, classify_error(completed.stderr or "", *names))

    def retrying(self, attempt: Callable[[], T], what: str) -> T:
        """attempt(), retried while it raises a transient StepFailed."""
        for number in range(self.retries + 1):
            try:
                return attempt()
            except StepFailed as failure:
                if failure.probe is not Probe.TRANSIENT or number == self.retries:
                    raise
                delay = self.retry_delay * 2**number * random.uniform(0.5, 1.5)
                _log.warning(
                    "%s failed for a transient reason; retry %d of %d in %.1f s",
                    what,
                    number + 1,
                    self.retries,
                    delay,
                )
                time.sleep(delay)
        raise AssertionError  # unreachable: the last attempt returns or raises

    def probe(self, image: str, names: Sequence[str] = ()) -> tuple[Probe, str]:
        """Asks the registry whether it has `image` (`docker manifest inspect`),
        retrying transient failures; returns the outcome and docker's words."""
        try:
            return self.retrying(lambda: self._probe_once(image, names), "docker manifest inspect")
        except StepFailed as failure:
            return failure.probe, str(failure)

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
                f"no answer within {self.probe_timeout:g} s", Probe.TRANSIENT
            ) from None

    def _probe_once(self, image: str, names: Sequence[str]) -> tuple[Probe, str]:
        completed = self._manifest_inspect(image)
        if completed.returncode == 0:
            return Probe.FOUND, completed.stdout or ""
        message = one_line(completed.stderr or completed.stdout or "")
        message = message or f"exit status {completed.returncode}"
        probe = classify_error(message, image, *names)
        if probe is Probe.TRANSIENT:
            raise StepFailed(message, probe)
        if probe is Probe.LOST_BLOB:
            probe = Probe.UNKNOWN
        return probe, message

    def inspect_manifest(self, name: str) -> str:
        """`docker manifest inspect --verbose` of a base image: its JSON, or a
        DockerError naming the image and why (after retries)."""

        def attempt() -> str:
            completed = self._manifest_inspect("--verbose", name)
            if completed.returncode != 0:
                message = one_line(completed.stderr or "") or f"exit {completed.returncode}"
                raise StepFailed(message, classify_error(message, name))
            return completed.stdout or ""

        try:
            return self.retrying(attempt, "docker manifest inspect")
        except StepFailed as failure:
            first = name.split("/", 1)[0]
            host = first if "/" in name and is_registry_host(first) else "docker.io"
            hint = registry_hint(failure.probe, host, self.retries + 1)
            raise DockerError(f"cannot resolve base image {name!r}: {failure}{hint}") from None

    def engine_platform(self) -> str:
        try:
            completed = self.run(
                "version",
                "--format",
                "{{.Server.Os}}/{{.Server.Arch}}",
                capture=True,
                timeout=self.probe_timeout,
            )
        except subprocess.TimeoutExpired:
            raise DockerError(
                f"the docker engine gave no platform within {self.probe_timeout:g} s"
            ) from None
        platform = (completed.stdout or "").strip()
        if completed.returncode != 0 or not platform:
            message = one_line(completed.stderr or "")
            raise DockerError(f"cannot ask the docker engine for its platform: {message}")
        return platform

    def local_image_exists(self, image: str) -> bool:
        return self.run("image", "inspect", image, quiet=True).returncode == 0


def registry_hint(probe: Probe, host: str, tries: int) -> str:
    """What to add to docker's words when a registry cannot be used."""
    if probe is Probe.UNREACHABLE:
        return " (is the registry up and reachable?)"
    if probe is Probe.UNAUTHORIZED:
        return f" (are you logged in? docker login {host})"
    if probe is Probe.TRANSIENT:
        return f" (tried {tries} times)"
    return ""


def raise_for_probe(probe: Probe, message: str, image: str, tries: int) -> None:
    """Stops before building when the registry cannot be used."""
    host = image.split("/", 1)[0]
    hint = registry_hint(probe, host, tries)
    if probe is Probe.UNREACHABLE:
        raise DockerError(f"cannot reach registry {host}: {message}{hint}")
    if probe is Probe.UNAUTHORIZED:
        raise DockerError(f"registry {host} refused our credentials: {message}{hint}")
    if probe is Probe.TRANSIENT:
        raise DockerError(f"registry {host} kept failing: {message}{hint}")


# --- Base images ----------------------------------------------------------


class BaseImageDigest(NamedTuple):
    """A FROM image and the digest it resolved to."""

    name: str  # as written (after build-arg expansion)
    digest: str  # sha256:...
    platform: str | None  # the platform whose manifest was chosen, if a list

    @property
    def pinned(self) -> str:
        return f"{self.name.split('@', 1)[0]}@{self.digest}"


def resolve_base_images(docker: Docker, options: Options) -> list[BaseImageDigest]:
    """The Dockerfile's FROM images with their registry digests, in order."""
    dockerfile_from = _optional_module("dockerfile_from", "--hash-base-images")
    try:
        with open(options.dockerfile, encoding="utf-8", errors="surrogateescape") as file:
            text = file.read()
    except OSError as error:
        raise _input_error(error, options.dockerfile, "Dockerfile") from None
    build_args, other_args = options.split_build_args()
    all_args = [*build_args, *other_args]
    engine_platform = docker.engine_platform()  # BUILDPLATFORM, and the default
    try:
        images = dockerfile_from.base_images(
            text,
            dockerfile_from.build_arg_values(all_args, os.environ),
            dockerfile_from.build_platform(all_args, os.environ),
            engine_platform,
            target=dockerfile_from.build_target(all_args),
        )
    except dockerfile_from.DockerfileError as error:
        raise InputError(f"{_show(options.dockerfile)}: {error}") from None
    resolved = []
    for image in images:
        if image.pinned:
            digest = image.name.split("@", 1)[1]
            resolved.append(BaseImageDigest(image.name, digest, None))
            continue
        manifest = docker.inspect_manifest(image.name)
        platform = image.platform or engine_platform
        digest, chosen = choose_manifest(image.name, manifest, platform)
        resolved.append(BaseImageDigest(image.name, digest, chosen))
    return resolved


def choose_manifest(name: str, verbose_json: str, platform: str) -> tuple[str, str | None]:
    """The digest of the manifest a build for `platform` uses, from `docker
    manifest inspect --verbose`: one object for an image, a list for a
    multi-platform one (whose own digest would move with any platform)."""
    try:
        parsed = json.loads(verbose_json)
    except ValueError:
        raise DockerError(f"cannot resolve base image {name!r}: docker printed no JSON") from None
    if isinstance(parsed, dict):
        return str(parsed["Descriptor"]["digest"]), None
    normalize = _optional_module("dockerfile_from", "--hash-base-images").normalize_platform
    wanted = normalize(platform)
    for entry in parsed:
        found = entry.get("Descriptor", {}).get("platform") or {}
        parts = (found.get("os", ""), found.get("architecture", ""), found.get("variant", ""))
        os_name, arch, variant = normalize("/".join(part for part in parts if part))
        if (os_name, arch) == wanted[:2] and (not wanted[2] or variant == wanted[2]):
            return str(entry["Descriptor"]["digest"]), platform
    raise DockerError(f"base image {name!r} has no manifest for platform {platform}")


# --- Getting the image ----------------------------------------------------


def image_for(
    options: Options, observer: Observer | None = None, docker: Docker | None = None
) -> str:
    """The full image name for the command line's inputs."""
    base_images = None
    if options.hash_base_images:
        assert docker is not None
        base_images = resolve_base_images(docker, options)
    tag = compute_tag(
        options.build_args,
        options.dockerfile,
        options.context,
        observer,
        hash_mode=options.hash_mode,
        base_images=base_images,
    )
    return image_name(options.registry, options.repository, tag)


def build_image(docker: Docker, options: Options, image: str, cache_from: str | None) -> None:
    build_args, other_args = options.split_build_args()
    cache_args = []
    if cache_from is not None:
        # BUILDKIT_INLINE_CACHE: images built by BuildKit then carry the
        # metadata that the next --cache-from reads; the classic builder
        # ignores it.
        cache_args = ["--cache-from", cache_from, "--build-arg", "BUILDKIT_INLINE_CACHE=1"]
    docker.step(
        "build",
        "--pull",
        *cache_args,
        *build_args,
        *other_args,
        "--tag",
        image,
        "--file",
        options.dockerfile,
        options.context,
    )


def pull_layer_cache(docker: Docker, cache_image: str) -> None:
    """Pulls the layer cache image: the classic builder uses only a local one."""
    try:
        docker.step("pull", cache_image, names=[cache_image])
    except StepFailed as failure:
        if failure.probe is Probe.NOT_FOUND:
            _log.warning("No layer cache yet (%s): building without it.", cache_image)
        else:
            _log.warning("Could not pull the layer cache, building without it: %s", failure)


def push_layer_cache(docker: Docker, image: str, cache_image: str) -> None:
    try:
        docker.step("tag", image, cache_image)
        docker.step("push", cache_image, names=[cache_image])
    except StepFailed as failure:
        _log.warning("Could not move the layer cache tag: %s", failure)


def get_registry_image(docker: Docker, options: Options, image: str) -> None:
    """Pulls `image` if the registry has it, else builds and pushes it; a
    job that finds the tag pushed meanwhile by another one takes theirs."""
    names = (image, f"{image.split('/', 1)[0]}/{options.repository}")
    probe, message = docker.probe(image, names)
    broken = False  # the registry has the tag, but not all of its blobs
    if probe is Probe.FOUND:
        _log.info("Image found, pulling...")
        try:
            docker.step("pull", image, names=names)
            return
        except StepFailed as failure:
            if failure.probe not in (Probe.LOST_BLOB, Probe.NOT_FOUND):
                raise
            _log.warning("The registry's copy is broken (%s); building it again.", failure)
            broken = True
    else:
        raise_for_probe(probe, message, image, docker.retries + 1)
        if probe is Probe.UNKNOWN:
            _log.warning("Could not tell whether the registry has the image: %s", message)
        _log.info("Image not found, building and pushing...")

    cache_image = None
    if options.layer_cache is not None:
        cache_image = image.rsplit(":", 1)[0] + ":" + options.layer_cache
        pull_layer_cache(docker, cache_image)
    build_image(docker, options, image, cache_image)

    if not broken and docker.probe(image, names)[0] is Probe.FOUND:
        _log.info("Another job pushed the image meanwhile: pulling it instead of pushing.")
        docker.step("pull", image, names=names)
        return
    if push_unless_pushed(docker, image, names, recheck=not broken):
        return
    if cache_image is not None:
        push_layer_cache(docker, image, cache_image)


def push_unless_pushed(docker: Docker, image: str, names: Sequence[str], *, recheck: bool) -> bool:
    """Pushes `image`, retrying transient failures; but after any failed try
    (with `recheck`) asks the registry first, and if another job has pushed
    the tag meanwhile, pulls theirs instead. Returns whether it did that."""

    def attempt() -> bool:
        try:
            docker.step_once("push", image, names=names)
        except StepFailed as failure:
            if recheck and docker.probe(image, names)[0] is Probe.FOUND:
                _log.info("The push failed, but another job has pushed the image: pulling it.")
                docker.step("pull", image, names=names)
                return True
            if failure.probe is Probe.LOST_BLOB or "digest invalid" in str(failure).lower():
                # Jobs pushing the same layers at once: the registry can answer
                # "blob unknown" for a layer a sibling is committing; a moment
                # later it has it.
                raise StepFailed(str(failure), Probe.TRANSIENT) from None
            raise
        return False

    return docker.retrying(attempt, "docker push")


def get_local_image(docker: Docker, options: Options, image: str) -> None:
    """Reuses `image` if the engine has it, else builds it; no registry."""
    if docker.local_image_exists(image):
        _log.info("Image found locally, reusing it.")
        return
    _log.info("Image not found locally, building...")
    build_image(docker, options, image, None)


def get_image(options: Options) -> None:
    """Does what the command line asks, raising on failure."""
    options.split_build_args()  # a usage error before anything runs
    docker = Docker(options)
    if options.hash_base_images or options.output is None:
        docker.check()  # before hashing, which can take a while
    if options.output == "explain":
        _print(f"image  {image_for(options, lambda item: _print(explain_line(item)), docker)}")
    elif options.output == "explain-json":
        image = image_for(options, lambda item: _print(explain_json(item)), docker)
        _print(json.dumps({"image": image}))
    elif options.output == "name":
        _print(image_for(options, None, docker))
    else:
        image = image_for(options, None, docker)
        _log.info("Image: %s", image)
        if options.registry is None:
            get_local_image(docker, options, image)
        else:
            get_registry_image(docker, options, image)
        # Tag so that the image can be referred to by repository name.
        docker.step("tag", image, options.repository)
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


# --- main -----------------------------------------------------------------


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    raise Terminated


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_options(argv)
    log = get_logger(LOGGER_NAME)
    previous_sigterm = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        get_image(options)
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
