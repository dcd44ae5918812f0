#!/usr/bin/env python3
"""Gets a Docker image by the digest of its content: pulls it when the
registry has it, otherwise builds it and pushes it.

A port of onnxruntime's tools/ci_build/get_docker_image.py: for the same
inputs it computes the same tag and makes the same docker calls.
"""

from __future__ import annotations

import argparse
import enum
import hashlib
import logging
import os
import queue
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from types import FrameType

from logger import get_logger
from util import run

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


# --- The content digest ---------------------------------------------------


class HashedInput:
    """One input of the digest, in the order it was hashed (for --explain).

    A plain class: a dataclass would cost every run some 5 ms of start-up
    (dataclasses imports inspect), for a type that only --explain uses.
    """

    __slots__ = ("kind", "mode", "path", "sha256", "size", "target")

    def __init__(
        self,
        kind: str,  # "args", "file", "dir" or "link"
        path: bytes,  # as hashed; for "args", the build-args text
        mode: int = 0,
        *,
        size: int | None = None,  # bytes of content (files) or of target (links)
        sha256: str | None = None,  # of the same bytes
        target: bytes | None = None,  # links only
    ) -> None:
        self.kind, self.path, self.mode = kind, path, mode
        self.size, self.sha256, self.target = size, sha256, target


Observer = Callable[[HashedInput], None]


# A directory's entries to hash, each list sorted by name: (files: regular
# files, links to them and links hashed as links; links: of those files, the
# links hashed as links, with their lstat mode; dirs: (name, mode, resolved path)).
_Listing = tuple[list[bytes], dict[bytes, int], list[tuple[bytes, int, bytes]]]


class ContentDigest:
    """The SHA-256 stream that names an image.

    Hashed in this order, each record being `<path> <st_mode in decimal>`
    with the path exactly as spelled (so `ctx`, `./ctx` and `ctx/` differ):
    the build-args text; the Dockerfile's record and bytes; the context
    directory's record, then its files (record and bytes) sorted by path,
    then its subdirectories sorted by path, each the same way, depth first.
    Symlinks are followed; entries that are neither file nor directory are
    skipped. Where following a symlink is impossible (dangling, a loop) the
    link itself is hashed as a file whose bytes are its target text.
    """

    def __init__(
        self,
        observer: Observer | None = None,
        chunk_size: int = READ_CHUNK_SIZE,
        read_ahead_min_size: int = READ_AHEAD_MIN_SIZE,
        small_file_size: int = SMALL_FILE_SIZE,
    ) -> None:
        self._digest = hashlib.sha256()
        self._observer = observer
        self._read_ahead_min_size = read_ahead_min_size
        self._small_file_size = small_file_size
        self._chunk_size = chunk_size
        self._buffers: list[bytearray] = []  # see _chunk_buffers
        self._mode_suffixes: dict[int, bytes] = {}  # st_mode -> b" <decimal>"

    def hexdigest(self) -> str:
        return self._digest.hexdigest()

    def add_text(self, text: bytes) -> None:
        self._digest.update(text)
        if self._observer:
            self._observer(HashedInput("args", text))

    def add_dockerfile(self, path: bytes) -> None:
        if not self._add_files(None, b"", [path], {}, "Dockerfile"):
            raise InputError(f"Dockerfile is not a regular file: {_show(path)}")

    def add_context(self, path: bytes) -> None:
        try:
            root = os.stat(path)
        except OSError as error:
            raise _input_error(error, path, "context directory") from None
        if not stat.S_ISDIR(root.st_mode):
            raise InputError(f"context is not a directory: {_show(path)}")
        # Depth first with an explicit stack: no recursion limit on deep trees.
        # Each entry: (path, mode, resolved paths of it and its ancestors).
        root_ancestry: tuple[bytes, ...] = (os.path.realpath(path),)
        pending = [(path, root.st_mode, root_ancestry)]
        while pending:
            dir_path, dir_mode, ancestry = pending.pop()
            self._digest.update(b"%s %d" % (dir_path, dir_mode))
            if self._observer:
                self._observer(HashedInput("dir", dir_path, dir_mode))
            prefix = dir_path if dir_path.endswith(b"/") else dir_path + b"/"
            try:
                dir_fd = os.open(dir_path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            except OSError as error:
                raise _input_error(error, dir_path, "directory") from None
            try:
                files, links, dirs = _list_directory(dir_path, dir_fd, prefix, ancestry)
                self._add_files(dir_fd, prefix, files, links, "file")
            finally:
                os.close(dir_fd)
            pending.extend(
                (prefix + name, mode, (*ancestry, real_path))
                for name, mode, real_path in reversed(dirs)
            )

    def _add_files(
        self,
        dir_fd: int | None,
        prefix: bytes,
        names: list[bytes],
        links: dict[bytes, int],
        what: str,
    ) -> int:
        """Hashes each name's record and bytes, in order; returns how many were hashed.

        Names are opened relative to `dir_fd` (sparing the kernel a walk down
        the whole path for every file) and hashed as `prefix + name`. Names in
        `links` are hashed as links; what is not a regular file once opened
        is skipped. This is the walk's hot loop: a small file costs four
        system calls (open, fstat, read, close) and two hash updates.
        """
        # Locals: this loop runs once per file, and lookups add up.
        update, observer = self._digest.update, self._observer
        open_, fstat, read, close, is_regular = os.open, os.fstat, os.read, os.close, stat.S_ISREG
        mode_suffixes, small_file_size = self._mode_suffixes, self._small_file_size
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
                suffix = mode_suffixes.get(mode)
                if suffix is None:
                    suffix = mode_suffixes[mode] = b" %d" % mode
                update(path + suffix)
                size = status.st_size
                if size < small_file_size:  # one read, into a fresh bytes object
                    data = read(fd, size + 1)
                    update(data)
                    count = len(data)
                    content = hashlib.sha256(data) if observer else None
                    if count > size:  # it grew since fstat: read on to the end
                        count += self._add_rest(fd, 0, content)
                else:
                    content = hashlib.sha256() if observer else None
                    count = self._add_rest(fd, size, content)
            except OSError as error:
                raise _input_error(error, path, what) from None
            finally:
                close(fd)
            hashed += 1
            if observer and content:
                observer(HashedInput("file", path, mode, size=count, sha256=content.hexdigest()))
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
        self._digest.update(b"%s %d" % (path, mode))
        self._digest.update(target)
        if self._observer:
            digest = hashlib.sha256(target).hexdigest()
            self._observer(
                HashedInput("link", path, mode, size=len(target), sha256=digest, target=target)
            )


def _list_directory(
    path: bytes, dir_fd: int, prefix: bytes, ancestry: tuple[bytes, ...]
) -> _Listing:
    """Lists what to hash in a directory: files, links not followed, subdirectories.

    Classified without opening anything: FIFOs, sockets and devices are skipped.
    Entries share their directory's prefix, so ordering by name is ordering by
    full path; and byte order of UTF-8 is the code point order that the
    original's str sort gives.
    """
    files: list[bytes] = []
    links: dict[bytes, int] = {}
    dirs: list[tuple[bytes, int, bytes]] = []
    try:
        # By path, not by dir_fd: a bytes path gives bytes names, raw as on disk.
        with os.scandir(path) as entries:
            for entry in entries:
                name = entry.name
                if entry.is_file(follow_symlinks=False):
                    files.append(name)
                elif entry.is_dir(follow_symlinks=False):
                    real_path = os.path.join(ancestry[-1], name)
                    dirs.append((name, entry.stat(follow_symlinks=False).st_mode, real_path))
                elif entry.is_symlink():
                    followed = _follow_symlink(dir_fd, name, prefix + name, ancestry)
                    if followed is None:
                        continue
                    kind, mode, real_path = followed
                    if kind == "dir":
                        dirs.append((name, mode, real_path))
                    else:
                        files.append(name)
                        if kind == "link":
                            links[name] = mode
    except OSError as error:
        raise _input_error(error, path, "directory") from None
    files.sort()
    dirs.sort()
    return files, links, dirs


def _follow_symlink(
    dir_fd: int, name: bytes, path: bytes, ancestry: tuple[bytes, ...]
) -> tuple[str, int, bytes] | None:
    """What a symlink is hashed as, following it as the original does.

    Returns ("file", 0, b"") or ("dir", mode, resolved path) for a target the
    walk follows; ("link", the link's own mode, b"") for a link hashed as
    itself: one that cannot be followed (dangling, a loop of links, no access)
    or whose target contains it (walking it would never end); None to skip it.
    """
    try:
        target = os.stat(name, dir_fd=dir_fd)
    except OSError:
        target = None
    if target is not None and stat.S_ISREG(target.st_mode):
        return "file", 0, b""
    if target is not None and not stat.S_ISDIR(target.st_mode):
        return None
    if target is not None:
        real_path = os.path.realpath(path)
        if not _contains_any(real_path, ancestry):
            return "dir", target.st_mode, real_path
    return "link", os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode, b""


def _contains_any(directory: bytes, paths: tuple[bytes, ...]) -> bool:
    """Whether `directory` is, or is an ancestor of, any of `paths`."""
    prefix = directory if directory.endswith(b"/") else directory + b"/"
    return any(path == directory or path.startswith(prefix) for path in paths)


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


def compute_tag(
    build_args: str, dockerfile: str, context: str, observer: Observer | None = None
) -> str:
    """Returns `image_content_digest_<hex>` for these inputs."""
    digest = ContentDigest(observer)
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
    mode = f"{item.mode:6o} ({item.mode:5d})"
    size = "-" if item.size is None else str(item.size)
    line = f"{item.kind:<4}  {mode}  {size:>11}  {item.sha256 or '-':<64}  {_escape(item.path)}"
    if item.target is not None:
        line += f" -> {_escape(item.target)}"
    return line


# --- Image names ----------------------------------------------------------


def is_registry_host(registry: str) -> bool:
    """Docker's rule: a first component with '.' or ':', or 'localhost', is a host."""
    first = registry.split("/", 1)[0]
    return "." in first or ":" in first or first == "localhost"


def image_name(registry: str | None, repository: str, tag: str) -> str:
    """The full image name: in the registry, or local when registry is None."""
    if registry is None:
        return f"{repository}:{tag}"
    if is_registry_host(registry):
        return f"{registry.rstrip('/')}/{repository}:{tag}"
    return f"{registry}{AZURE_REGISTRY_SUFFIX}/{repository}:{tag}"


# --- Docker ---------------------------------------------------------------


class Probe(enum.Enum):
    """What `docker manifest inspect` told about the image."""

    FOUND = "found"
    NOT_FOUND = "not found"
    UNREACHABLE = "unreachable"
    UNAUTHORIZED = "unauthorized"
    UNKNOWN = "unknown"


# Matched, lower-cased, against docker's error output, in this order.
_PROBE_MARKERS = (
    (Probe.NOT_FOUND, ("no such manifest", "manifest unknown", "name unknown")),
    (
        Probe.UNAUTHORIZED,
        (
            "unauthorized",
            "denied",
            "authentication required",
            "no basic auth credentials",
            "forbidden",
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
            "timeout",
            "timed out",
            "network is unreachable",
            "no route to host",
            "connection reset",
            "dial tcp",
        ),
    ),
)


def classify_probe_error(message: str) -> Probe:
    """Why `docker manifest inspect` failed, from its error output."""
    lowered = message.lower()
    for probe, markers in _PROBE_MARKERS:
        if any(marker in lowered for marker in markers):
            return probe
    return Probe.UNKNOWN


def one_line(text: str) -> str:
    return "; ".join(line.strip() for line in text.splitlines() if line.strip())


def docker_run(
    docker: str,
    *args: str,
    env: dict[str, str] | None = None,
    capture: bool = False,
    quiet: bool = False,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """util.run for docker, with its failures turned into one-line DockerErrors."""
    try:
        return run(docker, *args, env=env, capture=capture, quiet=quiet, check=check)
    except subprocess.CalledProcessError as error:
        if error.returncode < 0:
            status = f"was killed by signal {-error.returncode}"
        else:
            status = f"failed with exit status {error.returncode}"
        raise DockerError(f"docker {args[0]} {status}: {shlex.join(error.cmd)}") from None
    except OSError as error:
        raise DockerError(f"cannot run docker {docker!r}: {error.strerror or error}") from None


def probe_registry(docker: str, image: str) -> tuple[Probe, str]:
    """Asks the registry whether it has `image`; returns why not, with docker's words."""
    env = dict(os.environ, DOCKER_CLI_EXPERIMENTAL="enabled")  # for old docker CLIs
    completed = docker_run(
        docker, "manifest", "inspect", "--insecure", image, env=env, capture=True, check=False
    )
    if completed.returncode == 0:
        return Probe.FOUND, ""
    message = one_line(completed.stderr or completed.stdout or "")
    return classify_probe_error(message), message or f"exit status {completed.returncode}"


def local_image_exists(docker: str, image: str) -> bool:
    return docker_run(docker, "image", "inspect", image, quiet=True, check=False).returncode == 0


def build_image(
    docker: str, image: str, dockerfile: str, context: str, build_args: Sequence[str]
) -> None:
    docker_run(
        docker, "build", "--pull", *build_args, "--tag", image, "--file", dockerfile, context
    )


def find_docker(docker_path: str) -> None:
    """Fails early, naming the path, when docker cannot be run."""
    if shutil.which(docker_path):
        return
    if os.sep in docker_path:
        if os.path.isfile(docker_path):
            raise DockerError(f"docker is not executable: {docker_path!r}")
        raise DockerError(f"docker not found: {docker_path!r}")
    raise DockerError(f"docker not found on PATH: {docker_path!r}")


def get_registry_image(
    docker: str, image: str, dockerfile: str, context: str, build_args: Sequence[str]
) -> None:
    """Pulls `image` if the registry has it, else builds and pushes it."""
    probe, message = probe_registry(docker, image)
    if probe is Probe.FOUND:
        _log.info("Image found, pulling...")
        docker_run(docker, "pull", image)
        return
    host = image.split("/", 1)[0]
    if probe is Probe.UNREACHABLE:
        raise DockerError(
            f"cannot reach registry {host}: {message} (is the registry up and reachable?)"
        )
    if probe is Probe.UNAUTHORIZED:
        raise DockerError(
            f"registry {host} refused our credentials: {message} "
            f"(are you logged in? docker login {host})"
        )
    if probe is Probe.UNKNOWN:
        _log.warning("Could not tell whether the registry has the image: %s", message)
    _log.info("Image not found, building and pushing...")
    build_image(docker, image, dockerfile, context, build_args)
    docker_run(docker, "push", image)


def get_local_image(
    docker: str, image: str, dockerfile: str, context: str, build_args: Sequence[str]
) -> None:
    """Reuses `image` if the engine has it, else builds it; no registry."""
    if local_image_exists(docker, image):
        _log.info("Image found locally, reusing it.")
        return
    _log.info("Image not found locally, building...")
    build_image(docker, image, dockerfile, context, build_args)


# --- Command line ---------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Gets a docker image, either by pulling it from a container "
        "registry or by building it locally and then pushing it. The image is "
        "identified by a SHA-256 digest of the docker build args affecting its "
        "content, the Dockerfile, and the build context directory (names as "
        "given, file modes and contents); the digest is the image tag. If the "
        "registry has an image with that tag it is pulled, otherwise it is "
        "built and pushed. Either way it is then also tagged locally with the "
        "plain repository name. You must be logged in to the registry.",
        epilog="Exit status: 0 success, 1 failure, 2 usage error, 130 interrupted, 143 terminated.",
    )
    parser.add_argument("--dockerfile", default="Dockerfile", help="Path to the Dockerfile.")
    parser.add_argument("--context", default=".", help="Path to the build context.")
    parser.add_argument(
        "--docker-build-args",
        default="",
        metavar="ARGS",
        help="String of docker build args which may affect the image content, "
        "split like a shell would (for example \"--build-arg VERSION='1 2'\"). "
        "The text, exactly as given, is part of the digest. A value starting "
        "with '-' and without a space is given with '=': --docker-build-args=--no-cache.",
    )
    parser.add_argument(
        "--docker-build-args-not-affecting-image-content",
        default="",
        metavar="ARGS",
        help="String of docker build args which do not affect the image content; "
        "passed to docker build but not part of the digest.",
    )
    parser.add_argument(
        "--container-registry",
        metavar="REGISTRY",
        help="The registry: an Azure container registry name (NAME means "
        "NAME.azurecr.io), or a registry host with optional namespace, used "
        "verbatim (localhost:5000, ghcr.io/acme). A value whose first component "
        "contains '.' or ':' or is 'localhost' is a host. Without it, no "
        "registry is used: the image REPOSITORY:TAG is reused if the docker "
        "engine has it, else built.",
    )
    parser.add_argument("--repository", required=True, help="The image repository name.")
    parser.add_argument("--docker-path", default="docker", metavar="PATH", help="Path to docker.")
    output = parser.add_mutually_exclusive_group()
    output.add_argument(
        "--print-image-name",
        action="store_true",
        help="Print the full image name on stdout and exit, without running docker.",
    )
    output.add_argument(
        "--explain",
        action="store_true",
        help="Print on stdout every input of the digest, one line each in hash "
        "order, then the image name; without running docker.",
    )
    parser.add_argument("--debug", action="store_true", help="Show a traceback on internal errors.")
    return parser.parse_args(argv)


def split_build_args(option: str, text: str) -> list[str]:
    try:
        return shlex.split(text)
    except ValueError as error:
        raise UsageError(f"{option}: cannot split {text!r}: {error}") from None


def image_for(args: argparse.Namespace, observer: Observer | None = None) -> str:
    """The full image name for the command line's inputs."""
    tag = compute_tag(args.docker_build_args, args.dockerfile, args.context, observer)
    return image_name(args.container_registry, args.repository, tag)


def get_image(args: argparse.Namespace) -> None:
    """Does what the command line asks, raising on failure."""
    build_args = [
        *split_build_args("--docker-build-args", args.docker_build_args),
        *split_build_args(
            "--docker-build-args-not-affecting-image-content",
            args.docker_build_args_not_affecting_image_content,
        ),
    ]
    if args.explain:
        image = image_for(args, lambda item: print(explain_line(item)))
        print(f"image  {image}")
        return
    if args.print_image_name:
        print(image_for(args))
        return

    find_docker(args.docker_path)  # before hashing, which can take a while
    image = image_for(args)
    _log.info("Image: %s", image)
    get = get_local_image if args.container_registry is None else get_registry_image
    get(args.docker_path, image, args.dockerfile, args.context, build_args)
    # Tag so that the image can be referred to by repository name.
    docker_run(args.docker_path, "tag", image, args.repository)


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    raise Terminated


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    log = get_logger(LOGGER_NAME)
    previous_sigterm = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        get_image(args)
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
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILURE
    except Exception as error:
        if args.debug:
            log.exception("Internal error")
        else:
            log.error("Internal error: %r (rerun with --debug for the traceback)", error)
        return EXIT_FAILURE
    finally:
        signal.signal(signal.SIGTERM, previous_sigterm)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
