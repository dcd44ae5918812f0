"""Misbehaving registries for tests: one that fails first, one that hangs, one that hangs up.

Each is an `http.server` on 127.0.0.1 with a port of its own, used as a context manager,
with `.address` ("127.0.0.1:PORT"). Each shuts itself down, and cuts every connection it
holds, `lifetime` seconds after it was made, so a test can never hang on it.

- `FlakyRegistry(upstream, failures)`: answers an error status to the first `failures`
  matching requests, then proxies everything to a real registry;
- `HangingRegistry()`: answers the `/v2/` ping, then never answers anything else;
- `ClosingRegistry()`: accepts connections and closes them at once (reset, or a clean EOF).

DOCKER_RESULTS (and DOCKER_MESSAGES) below record what the real docker 28.2.2 CLI and
engine 20.10.24 print against these and against a real registry, with their exit status:
constants for tests of an error classifier.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import re
import socket
import struct
import threading
from collections.abc import Collection
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import NamedTuple

from tests.e2e_support import ClosedOnExit

# --- What docker says -------------------------------------------------------------------
#
# Observed with the docker 28.2.2 CLI and engine 20.10.24 (no buildx: the classic builder),
# against these fakes and a real `docker-registry` (distribution 2.8), 127.0.0.1 only.
#
# How docker reaches a plain-HTTP registry on 127.0.0.1: `docker manifest inspect
# --insecure` (the CLI itself) and the engine (pull, push) both try https first and fall
# back to http only if the answer starts with "HTTP/" ("server gave HTTP response to HTTPS
# client"); any other failure of the https attempt is final and is what they report (an
# https:// URL in the message, e.g. connection refused). Then they GET /v2/ (the ping):
# its status is ignored unless 401, so a 500 or 503 there alone changes nothing (the
# probe still exits 0, or says "no such manifest"). `manifest inspect` asks for the tag
# twice, as a manifest and then as a manifest list, and reports the last error.
#
# Exit status: 1 for every failure below, except `docker build` with a bad --tag: 125.
# Timeouts: none by default. Against HangingRegistry `manifest inspect` printed nothing and
# was still waiting when killed after 60 s; `docker pull` too, until the server hung up
# (then: pull_manifest_dropped). Engine retries: blob downloads 6 attempts (5, 10, 15, 20,
# 25 s apart, 75 s in all), blob uploads 5 (about 50 s); manifests are never retried
# (pull falls back from HEAD to GET, so one failure there is absorbed).
#
# DOCKER_RESULTS: name -> (exit status, docker's whole stderr less its final newline).
# Placeholders, for str.format: {address} the registry host:port, {reference} the image
# as given, {name} the reference less its tag, {repository} the path (e.g. "gdi/x"),
# {tag}, {port}, {local} the client's own 127.0.0.1:PORT. Names ending in "_prefix" are the
# start of the message only.


class DockerResult(NamedTuple):
    status: int
    stderr: str


_TRANSPORT = (
    'failed to configure transport: error pinging v2 registry: Get "{scheme}://{address}/v2/"'
)
_DAEMON_GET = 'Error response from daemon: Get "http://{address}/v2/"'
_503 = "received unexpected HTTP status: 503 Service Unavailable"
_BUILDER_BANNER = (
    "DEPRECATED: The legacy builder is deprecated and will be removed in a future release.\n"
    "            Install the buildx component to build images with BuildKit:\n"
    "            https://docs.docker.com/go/buildx/\n"
    "\n"
)
_BUILD_USAGE = (
    "\n\nUsage:  docker build [OPTIONS] PATH | URL | -\n"
    "\n"
    "Run 'docker build --help' for more information"
)

DOCKER_RESULTS: dict[str, DockerResult] = {
    # docker manifest inspect --insecure REFERENCE
    # The tag or the repository is unknown; also after deleting, in the registry's storage,
    # the tag, the manifest's revision link or the manifest blob's data.
    "manifest_inspect_missing": DockerResult(1, "no such manifest: {reference}"),
    # 500 or 503 on every request, or on the manifest requests only; the body (registry JSON
    # errors, empty, HTML) makes no difference.
    "manifest_inspect_500": DockerResult(
        1, "received unexpected HTTP status: 500 Internal Server Error"
    ),
    "manifest_inspect_503": DockerResult(1, _503),
    # 503 on the first manifest request only, for a tag that exists: the retry as a
    # manifest list gets the image manifest, which docker then dumps as a Go struct.
    # (For a missing tag the same gives manifest_inspect_missing.)
    "manifest_inspect_503_then_found_prefix": DockerResult(1, "unsupported manifest format: "),
    "manifest_inspect_401_without_challenge": DockerResult(1, "unauthorized"),
    "manifest_inspect_429": DockerResult(1, "toomanyrequests"),
    # The manifest request closed without an answer (FlakyRegistry status DROP).
    "manifest_inspect_manifest_dropped": DockerResult(
        1, 'Get "http://{address}/v2/{repository}/manifests/{tag}": EOF'
    ),
    "manifest_inspect_refused": DockerResult(
        1,
        _TRANSPORT.format(scheme="https", address="{address}")
        + ": dial tcp {address}: connect: connection refused",
    ),
    # ClosingRegistry(): https answered, http reset.
    "manifest_inspect_reset": DockerResult(
        1,
        _TRANSPORT.format(scheme="http", address="{address}")
        + ": read tcp {local}->{address}: read: connection reset by peer",
    ),
    # ClosingRegistry(answer_tls_probe=False): the https attempt reset.
    "manifest_inspect_reset_https": DockerResult(
        1,
        _TRANSPORT.format(scheme="https", address="{address}")
        + ": read tcp {local}->{address}: read: connection reset by peer",
    ),
    "manifest_inspect_eof": DockerResult(
        1, _TRANSPORT.format(scheme="http", address="{address}") + ": EOF"
    ),
    "manifest_inspect_eof_https": DockerResult(
        1, _TRANSPORT.format(scheme="https", address="{address}") + ": EOF"
    ),
    # A server that answers the TLS hello with something other than "HTTP/..." (not HTTP).
    "manifest_inspect_not_http": DockerResult(
        1,
        _TRANSPORT.format(scheme="https", address="{address}")
        + ": tls: first record does not look like a TLS handshake",
    ),
    # 127.0.0.1:99999/x:1
    "manifest_inspect_invalid_port": DockerResult(
        1, 'insecure registry {address} is not valid: invalid port "{port}"'
    ),
    # 127.0.0.1:PORT/Bad/Name:tag gives "(Bad/Name)"; see build_bad_tag for Bad/Name:x.
    "manifest_inspect_uppercase": DockerResult(
        1, "invalid reference format: repository name ({repository}) must be lowercase"
    ),
    # A space in the repository or in the tag.
    "manifest_inspect_space": DockerResult(1, "invalid reference format"),
    # docker pull REFERENCE (the engine: messages start "Error response from daemon: "
    # when it fails before the layers; during the layers, the bare error)
    # Also after deleting the tag, the manifest revision link or the manifest blob data.
    "pull_missing": DockerResult(
        1,
        "Error response from daemon: manifest for {reference} not found:"
        " manifest unknown: manifest unknown",
    ),
    # A layer blob's data file (blobs/sha256/xx/<digest>/data) or whole directory deleted:
    # no retry; stdout ends "<id>: Pulling fs layer", "<id>: Downloading".
    "pull_layer_blob_deleted": DockerResult(1, "unknown blob"),
    "pull_config_blob_deleted": DockerResult(
        1, "error pulling image configuration: download failed after attempts=1: unknown blob"
    ),
    # 503 on every manifest request (HEAD, then GET); a single failure is absorbed.
    "pull_503_manifest": DockerResult(1, "Error response from daemon: " + _503),
    # 503 on every blob request: the image configuration gives up first (about 4 s).
    "pull_503_blobs": DockerResult(
        1, "error pulling image configuration: download failed after attempts=6: " + _503
    ),
    # 503 on one layer blob only: after 6 attempts, about 75 s.
    "pull_503_layer": DockerResult(1, _503),
    # One layer's requests closed without an answer: after 6 attempts, about 75 s.
    "pull_layer_dropped": DockerResult(1, "EOF"),
    # The manifest HEAD closed without an answer (DROP, or HangingRegistry's end).
    "pull_manifest_dropped": DockerResult(
        1,
        'Error response from daemon: Head "http://{address}/v2/{repository}/manifests/{tag}": EOF',
    ),
    "pull_refused": DockerResult(
        1, _DAEMON_GET + ": dial tcp {address}: connect: connection refused"
    ),
    "pull_reset": DockerResult(
        1, _DAEMON_GET + ": read tcp {local}->{address}: read: connection reset by peer"
    ),
    "pull_eof": DockerResult(1, _DAEMON_GET + ": EOF"),
    "pull_invalid_port": DockerResult(1, _DAEMON_GET + ": dial tcp: address {port}: invalid port"),
    "pull_uppercase": DockerResult(
        1, "invalid reference format: repository name ({repository}) must be lowercase"
    ),
    # docker push REFERENCE
    # 503 on every blob request: uploads retried, about 50 s; stdout "Retrying in N seconds".
    "push_503_blobs": DockerResult(1, _503),
    # 503 on the manifest PUT (even once): at once, after the layers were "Pushed".
    "push_503_manifest": DockerResult(1, _503),
    "push_not_local": DockerResult(1, "An image does not exist locally with the tag: {name}"),
    "push_uppercase": DockerResult(
        1, "invalid reference format: repository name ({repository}) must be lowercase"
    ),
    # docker build --tag 'Bad/Name:x' .  (status 125; the banner only without buildx).
    # "Bad" has uppercase, so docker takes it for a registry host and checks "Name" alone;
    # with 127.0.0.1:PORT/Bad/Name:x it says "(Bad/Name)"; 'bad name:x' and 'bad/name:x y'
    # say just "invalid reference format".
    "build_bad_tag": DockerResult(
        125,
        _BUILDER_BANNER
        + 'invalid argument "Bad/Name:x" for "-t, --tag" flag: invalid reference format:'
        " repository name (Name) must be lowercase" + _BUILD_USAGE,
    ),
}

# The stderr texts alone.
DOCKER_MESSAGES: dict[str, str] = {name: result.stderr for name, result in DOCKER_RESULTS.items()}

_PLACEHOLDER = re.compile(r"\{(\w+)\}")


def docker_message_pattern(name: str, **values: str) -> re.Pattern[str]:
    """A regex for DOCKER_MESSAGES[name] with `values` filled in, other placeholders any
    non-blank text; it matches docker's whole stderr (final newline included) or a prefix."""
    template = DOCKER_MESSAGES[name]
    parts: list[str] = []
    position = 0
    for placeholder in _PLACEHOLDER.finditer(template):
        parts.append(re.escape(template[position : placeholder.start()]))
        value = values.get(placeholder.group(1))
        parts.append(r"\S+?" if value is None else re.escape(value))
        position = placeholder.end()
    parts.append(re.escape(template[position:]))
    ending = "" if name.endswith("_prefix") else r"\n?\Z"
    return re.compile(r"\A" + "".join(parts) + ending)


# Long enough for a docker push or pull, short enough that a stuck test ends.
DEFAULT_LIFETIME = 120.0

# Headers that describe one connection, not the message: never forwarded.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)

API_VERSION_HEADER = ("Docker-Distribution-API-Version", "registry/2.0")

# FlakyRegistry's status that means: close the connection without answering.
DROP = 0


# What Go's net/http server (so a real registry) answers to bytes that are not HTTP.
TLS_PROBE_ANSWER = (
    b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n"
    b"Connection: close\r\n\r\n400 Bad Request"
)


def _starts_with_tls_handshake(connection: socket.socket) -> bool:
    try:
        first = connection.recv(1, socket.MSG_PEEK)
    except OSError:
        return False
    return first == b"\x16"  # a TLS record of type handshake (a ClientHello)


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a held request must not keep the interpreter alive

    def __init__(self, owner: FakeRegistry) -> None:
        self.owner = owner
        super().__init__(("127.0.0.1", 0), _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"  # docker keeps connections alive
    timeout = DEFAULT_LIFETIME  # an idle client cannot hold a thread forever

    def setup(self) -> None:
        super().setup()
        self.server.owner._track(self.connection)

    def finish(self) -> None:
        with contextlib.suppress(OSError):  # the connection was cut at the end of the lifetime
            super().finish()
        self.server.owner._untrack(self.connection)

    def handle(self) -> None:
        if self.server.owner.answer_tls_probe and _starts_with_tls_handshake(self.connection):
            # docker tries https first and falls back to http only on an answer that starts
            # with "HTTP/" (as a plain-HTTP Go server's 400 does); anything else stops it.
            self.wfile.write(TLS_PROBE_ANSWER)
            return
        if self.server.owner._accept(self):
            super().handle()

    def _dispatch(self) -> None:
        self.server.owner._handle(self)

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _dispatch

    def log_message(self, format: str, *args: object) -> None:
        pass  # requests are recorded in the owner's `requests`, not printed


class FakeRegistry(ClosedOnExit):
    """The common part: a threaded HTTP server with a hard lifetime."""

    # Answer docker's https attempt as a plain-HTTP server would, so it retries over http.
    answer_tls_probe = True

    def __init__(self, lifetime: float = DEFAULT_LIFETIME) -> None:
        self.lifetime = lifetime
        # Set when the lifetime ends (or on close): held requests give up then.
        self.closing = threading.Event()
        # (method, path, status answered; 0 for none) of every request, in order.
        self.requests: list[tuple[str, str, int]] = []
        self._lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        self._closed = False
        self._server = _Server(self)
        self.port: int = self._server.server_address[1]
        self.address = f"127.0.0.1:{self.port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"{type(self).__name__}-{self.port}",
            daemon=True,
        )
        self._thread.start()
        self._timer = threading.Timer(lifetime, self.close)
        self._timer.daemon = True
        self._timer.start()

    def close(self) -> None:
        """Stops listening and cuts every open connection; safe to call more than once."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            connections = list(self._connections)
        self._timer.cancel()
        self.closing.set()
        self._server.shutdown()
        self._server.server_close()
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        self._thread.join(timeout=10)

    @property
    def closed(self) -> bool:
        return self._closed

    def _track(self, connection: socket.socket) -> None:
        with self._lock:
            self._connections.add(connection)

    def _untrack(self, connection: socket.socket) -> None:
        with self._lock:
            self._connections.discard(connection)

    def _record(self, handler: BaseHTTPRequestHandler, status: int) -> None:
        with self._lock:
            self.requests.append((handler.command, handler.path, status))

    def _accept(self, handler: _Handler) -> bool:
        """Called on each new connection; False to drop it without reading a request."""
        return True

    def _handle(self, handler: _Handler) -> None:
        raise NotImplementedError


def read_body(handler: BaseHTTPRequestHandler) -> bytes:
    """The request's body, whether sent with a Content-Length or chunked."""
    if "chunked" in handler.headers.get("Transfer-Encoding", "").lower():
        chunks: list[bytes] = []
        while True:
            size_line = handler.rfile.readline(65537)
            size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while handler.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                    pass  # trailers: nothing a registry needs
                return b"".join(chunks)
            chunks.append(handler.rfile.read(size))
            handler.rfile.readline(65537)  # the CRLF after each chunk
    length = int(handler.headers.get("Content-Length") or 0)
    return handler.rfile.read(length) if length > 0 else b""


def send(
    handler: BaseHTTPRequestHandler,
    status: int,
    body: bytes = b"",
    headers: Collection[tuple[str, str]] = (),
    content_type: str | None = None,
) -> None:
    handler.send_response(status)
    for name, value in headers:
        handler.send_header(name, value)
    if content_type:
        handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    if handler.command != "HEAD":
        handler.wfile.write(body)


class FlakyRegistry(FakeRegistry):
    """A proxy to `upstream` that first fails `failures` requests whose path matches `paths`.

    Those requests are answered `status` with `body` (default: the registry's own JSON error
    format, code UNAVAILABLE); every other request, before and after, is forwarded to the
    upstream registry ("host:port", plain HTTP) with its method, headers and body, and the
    answer sent back with Location headers pointing back at the proxy. `failures=-1` fails
    every matching request. `methods`, if given, restricts the failures to those methods.
    `status=DROP` (0) closes the connection instead of answering. `failed` counts the
    requests failed so far, `proxied` those forwarded.
    """

    def __init__(
        self,
        upstream: str,
        failures: int,
        status: int = 503,
        paths: str | re.Pattern[str] = "",
        *,
        methods: Collection[str] | None = None,
        body: bytes | None = None,
        lifetime: float = DEFAULT_LIFETIME,
    ) -> None:
        self.upstream = upstream
        self.failures = failures
        self.status = status
        self.paths = re.compile(paths) if isinstance(paths, str) else paths
        self.methods = None if methods is None else {method.upper() for method in methods}
        if body is None:
            try:
                message = HTTPStatus(status).phrase.lower()
            except ValueError:
                message = "error"
            error = {"code": "UNAVAILABLE", "message": message, "detail": "fake failure"}
            body = json.dumps({"errors": [error]}).encode() + b"\n"
        self.body = body
        self.failed = 0
        self.proxied = 0
        super().__init__(lifetime)

    def _should_fail(self, handler: _Handler) -> bool:
        if not self.paths.search(handler.path):
            return False
        if self.methods is not None and handler.command not in self.methods:
            return False
        with self._lock:
            if self.failures >= 0 and self.failed >= self.failures:
                return False
            self.failed += 1
            return True

    def _handle(self, handler: _Handler) -> None:
        body = read_body(handler)  # read even when failing: the connection stays usable
        if self._should_fail(handler):
            self._record(handler, self.status)
            if self.status == DROP:
                handler.close_connection = True  # no answer at all: the client reads EOF
                return
            content_type = "application/json" if self.body.startswith(b"{") else "text/plain"
            send(handler, self.status, self.body, [API_VERSION_HEADER], content_type)
            return
        try:
            status, reason, headers, data = self._ask_upstream(handler, body)
        except (OSError, http.client.HTTPException) as error:  # upstream down or cut
            status, reason, data = 502, "Bad Gateway", f"upstream: {error}\n".encode()
            headers = [("Content-Type", "text/plain"), ("Content-Length", str(len(data)))]
        # Counted before answering: a client that has its answer sees the count.
        with self._lock:
            self.proxied += 1
        self._record(handler, status)
        self._answer(handler, status, reason, headers, data)

    def _ask_upstream(
        self, handler: _Handler, body: bytes
    ) -> tuple[int, str, list[tuple[str, str]], bytes]:
        connection = http.client.HTTPConnection(self.upstream, timeout=self.lifetime)
        try:
            connection.putrequest(
                handler.command, handler.path, skip_host=True, skip_accept_encoding=True
            )
            connection.putheader("Host", self.upstream)
            # items(), not a dict: docker sends several Accept headers for a manifest.
            for name, value in handler.headers.items():
                if name.lower() not in HOP_BY_HOP | {"host", "content-length"}:
                    connection.putheader(name, value)
            if body or handler.command in ("POST", "PUT", "PATCH"):
                connection.putheader("Content-Length", str(len(body)))
            connection.endheaders(body or None)
            response = connection.getresponse()
            data = response.read()
            return response.status, response.reason, response.getheaders(), data
        finally:
            connection.close()

    def _answer(
        self,
        handler: _Handler,
        status: int,
        reason: str,
        headers: list[tuple[str, str]],
        data: bytes,
    ) -> None:
        handler.send_response_only(status, reason)
        for name, value in headers:
            lowered = name.lower()
            if lowered in HOP_BY_HOP or (lowered == "content-length" and handler.command != "HEAD"):
                continue  # the length is set below, from what was read
            if lowered == "location":  # upload URLs must lead back through us
                rewritten = value.replace(f"//{self.upstream}/", f"//{self.address}/", 1)
                handler.send_header(name, rewritten)
            else:
                handler.send_header(name, value)
        if handler.command != "HEAD" and status not in (204, 304):
            handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        if handler.command != "HEAD":
            handler.wfile.write(data)


class HangingRegistry(FakeRegistry):
    """Answers the `GET /v2/` ping like a registry, then holds every other request open,
    unanswered, until its lifetime ends (then drops the connection). `held` counts them."""

    def __init__(self, lifetime: float = DEFAULT_LIFETIME) -> None:
        self.held = 0
        super().__init__(lifetime)

    def _handle(self, handler: _Handler) -> None:
        read_body(handler)
        if handler.command in ("GET", "HEAD") and handler.path.split("?")[0] in ("/v2", "/v2/"):
            self._record(handler, 200)
            send(handler, 200, b"{}", [API_VERSION_HEADER], "application/json")
            return
        self._record(handler, 0)
        with self._lock:
            self.held += 1
        self.closing.wait()
        handler.close_connection = True  # nothing was answered: hang up


class ClosingRegistry(FakeRegistry):
    """Accepts every connection and closes it before answering anything.

    With `reset=True` (the default) the close is abortive (SO_LINGER 0), so the client
    reads "connection reset by peer"; with `reset=False` the request is read first and
    then the connection closed cleanly, so the client reads an unexpected EOF.
    With `answer_tls_probe=False` docker's first, https, attempt is dropped as well, and
    docker stops there. `dropped` counts the connections dropped.
    """

    def __init__(
        self,
        reset: bool = True,
        *,
        answer_tls_probe: bool = True,
        lifetime: float = DEFAULT_LIFETIME,
    ) -> None:
        self.reset = reset
        self.answer_tls_probe = answer_tls_probe
        self.dropped = 0
        super().__init__(lifetime)

    def _accept(self, handler: _Handler) -> bool:
        with self._lock:
            self.dropped += 1
        if self.reset:
            handler.connection.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
            )
            # Closed now, before socketserver's shutdown(SHUT_WR) could send a clean FIN.
            handler.connection.close()
            return False
        if _starts_with_tls_handshake(handler.connection):
            return False  # a ClientHello has no lines to read: just hang up
        if handler.rfile.readline(65537):  # the request line
            while handler.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                pass  # headers
        return False

    def _handle(self, handler: _Handler) -> None:  # never reached: _accept drops all
        handler.close_connection = True
