"""In-process registries on 127.0.0.1, for tests of the registry client (registry.py).

- `LoopbackServer(respond)`: an http.server whose every request goes to `respond`, for
  scripted answers (a trickle, a bad digest, a Link elsewhere);
- `MemoryRegistry(users=...)`: the distribution API over dicts: tag lists (all at once, as
  distribution 2.8 sends them), manifests, blobs, uploads, deletes; Basic auth when given
  users; switches for what registries get wrong (no or a wrong Docker-Content-Digest) and
  a redirect of blob downloads to another server;
- `TokenFront(upstream, users=...)`: a Bearer-token front to any registry ("host:port",
  plain HTTP, a MemoryRegistry or a real one): issues tokens at its realm to its users (by
  password, or by the refresh token that `docker login` got from it and keeps as an
  identity token) and to anonymous clients, checks them per action, can be told to grant
  fewer actions than asked (`refused`), pages tag lists three at a time (Link relative or
  absolute), and forwards what it allows.

Each is a context manager with `.address` ("127.0.0.1:PORT"); it answers a TLS hello as a
plain-HTTP Go server does (so that a client trying HTTPS first falls back to HTTP, as
docker does), or with `tls=True` speaks HTTPS with LOOPBACK_TLS's certificate (which
`trusting_loopback_tls()` trusts); records every request in `exchanges`; and shuts down,
cutting its connections, on close() or `lifetime` seconds after it started.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import http.client
import json
import os
import re
import secrets
import socket
import ssl
import threading
import time
import urllib.parse
from collections.abc import Callable, Collection, Mapping
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import NamedTuple

from tests.e2e_support import ClosedOnExit
from tests.fake_registry import API_VERSION_HEADER, HOP_BY_HOP, TLS_PROBE_ANSWER, read_body, send

DEFAULT_LIFETIME = 60.0
# A certificate (and its key) for 127.0.0.1 and localhost; how it was made is in it.
LOOPBACK_TLS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "loopback_tls.pem")
# How often a server looks for its shutdown: what close() costs, at most.
_POLL_SECONDS = 0.005


class Exchange(NamedTuple):
    """A request a fake server received."""

    method: str
    path: str  # with the query
    headers: Message
    body: bytes

    @property
    def route(self) -> str:
        return self.path.split("?", 1)[0]

    @property
    def query(self) -> dict[str, list[str]]:
        return urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)


Responder = Callable[[Exchange, BaseHTTPRequestHandler], None]


def error_body(code: str, message: str) -> bytes:
    """A distribution error answer's body."""
    return json.dumps({"errors": [{"code": code, "message": message}]}).encode() + b"\n"


def send_error(handler: BaseHTTPRequestHandler, status: int, code: str, message: str) -> None:
    send(handler, status, error_body(code, message), [API_VERSION_HEADER], "application/json")


def answering(
    status: int,
    body: bytes = b"",
    headers: Collection[tuple[str, str]] = (),
    content_type: str | None = None,
) -> Responder:
    """A responder that gives every request the same answer."""

    def respond(exchange: Exchange, handler: BaseHTTPRequestHandler) -> None:
        send(handler, status, body, headers, content_type)

    return respond


def trickling(answer: bytes, interval: float) -> Responder:
    """A responder that sends `answer` (raw: status line, headers and all) one byte every
    `interval` seconds, until it is all sent or the client hangs up."""

    def respond(exchange: Exchange, handler: BaseHTTPRequestHandler) -> None:
        for byte in answer:
            handler.wfile.write(bytes([byte]))
            time.sleep(interval)

    return respond


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64  # socketserver's 5 drops connections that 8 threads open at once

    def __init__(self, owner: LoopbackServer) -> None:
        self.owner = owner
        super().__init__(("127.0.0.1", 0), _Handler)

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a client that hung up on purpose (the tests' timeouts, bounds)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    timeout = DEFAULT_LIFETIME
    disable_nagle_algorithm = True  # a body written after its headers is not held back

    def setup(self) -> None:
        super().setup()
        self.server.owner._track(self.connection)

    def finish(self) -> None:
        with contextlib.suppress(OSError):
            super().finish()
        self.server.owner._untrack(self.connection)

    def handle(self) -> None:
        if isinstance(self.connection, ssl.SSLSocket):
            super().handle()
            return
        try:
            first = self.connection.recv(1, socket.MSG_PEEK)
        except OSError:
            return
        if first == b"\x16":  # a TLS ClientHello: answered as a plain-HTTP Go server does
            self.wfile.write(TLS_PROBE_ANSWER)
            return
        super().handle()

    def _dispatch(self) -> None:
        exchange = Exchange(self.command, self.path, self.headers, read_body(self))
        self.server.owner._receive(exchange, self)

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _dispatch

    def log_message(self, format: str, *args: object) -> None:
        pass  # recorded in the owner's exchanges instead


class LoopbackServer(ClosedOnExit):
    """An http.server on 127.0.0.1 in a thread of its own; `respond` answers each request
    (a subclass overrides respond() instead). `closing` is set when it shuts down: a
    responder that holds a request waits on it."""

    def __init__(
        self,
        respond: Responder | None = None,
        lifetime: float = DEFAULT_LIFETIME,
        *,
        tls: bool = False,
    ) -> None:
        self._respond = respond
        self.exchanges: list[Exchange] = []
        self.closing = threading.Event()
        self._lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        self._server = _Server(self)
        if tls:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(LOOPBACK_TLS)
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self.port: int = self._server.server_address[1]
        self.address = f"127.0.0.1:{self.port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": _POLL_SECONDS},
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
            if self.closing.is_set():
                return
            self.closing.set()
            connections = list(self._connections)
        self._timer.cancel()
        self._server.shutdown()
        self._server.server_close()
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        self._thread.join(timeout=10)

    def requests_to(
        self, route: str | re.Pattern[str], method: str | None = None
    ) -> list[Exchange]:
        """The exchanges whose route (path less query) is `route` or matches the pattern."""
        with self._lock:
            exchanges = list(self.exchanges)
        return [
            exchange
            for exchange in exchanges
            if (
                route.fullmatch(exchange.route)
                if isinstance(route, re.Pattern)
                else exchange.route == route
            )
            and (method is None or exchange.method == method)
        ]

    def respond(self, exchange: Exchange, handler: BaseHTTPRequestHandler) -> None:
        if self._respond is None:
            send(handler, 404)
        else:
            self._respond(exchange, handler)

    def _receive(self, exchange: Exchange, handler: BaseHTTPRequestHandler) -> None:
        with self._lock:
            self.exchanges.append(exchange)
        self.respond(exchange, handler)

    def _track(self, connection: socket.socket) -> None:
        with self._lock:
            self._connections.add(connection)

    def _untrack(self, connection: socket.socket) -> None:
        with self._lock:
            self._connections.discard(connection)


def trusting_loopback_tls() -> ssl.SSLContext:
    """A client's TLS context that trusts the tls=True servers' certificate (only)."""
    return ssl.create_default_context(cafile=LOOPBACK_TLS)


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


_NAME = r"(?P<name>[a-z0-9._/-]+?)"
_MANIFEST_ROUTE = re.compile(rf"/v2/{_NAME}/manifests/(?P<reference>[^/]+)")
_BLOB_ROUTE = re.compile(rf"/v2/{_NAME}/blobs/(?P<digest>sha256:[0-9a-f]{{64}})")
_UPLOADS_ROUTE = re.compile(rf"/v2/{_NAME}/blobs/uploads/(?P<upload>[0-9a-f]*)")
_TAGS_ROUTE = re.compile(rf"/v2/{_NAME}/tags/list")
_DIGEST_REFERENCE = re.compile(r"sha256:[0-9a-f]{64}")


class MemoryRegistry(LoopbackServer):
    """The distribution API over dicts. `users` (name -> password): Basic auth, as
    htpasswd does it. `deletes`: False answers deletes 405 UNSUPPORTED, as a registry
    with storage.delete disabled. `digest_header`: "right", "wrong" or "none", what
    Docker-Content-Digest says of manifests. `blob_redirect`: "host:port" of a server to
    redirect blob downloads to over plain HTTP (it gets the same path)."""

    def __init__(
        self,
        *,
        users: Mapping[str, str] | None = None,
        lifetime: float = DEFAULT_LIFETIME,
        tls: bool = False,
    ) -> None:
        self.users = dict(users or {})
        self.deletes = True
        self.digest_header = "right"
        self.blob_redirect: str | None = None
        self.blobs: dict[str, bytes] = {}
        self.manifests: dict[str, tuple[str, bytes]] = {}  # digest -> (media type, body)
        self.tags: dict[str, dict[str, str]] = {}  # repository -> tag -> digest
        self._uploads: set[str] = set()
        super().__init__(lifetime=lifetime, tls=tls)

    def put_manifest(self, repository: str, tag: str, media_type: str, body: bytes) -> str:
        """Stores a manifest under a tag (no upload), or by its digest only when `tag` is
        one (as a registry does: a digest is no tag); returns its digest."""
        digest = sha256_digest(body)
        with self._lock:
            self.manifests[digest] = (media_type, body)
            tags = self.tags.setdefault(repository, {})
            if not _DIGEST_REFERENCE.fullmatch(tag):
                tags[tag] = digest
        return digest

    def respond(self, exchange: Exchange, handler: BaseHTTPRequestHandler) -> None:
        if self.users and not self._authorized(exchange):
            send(
                handler,
                401,
                error_body("UNAUTHORIZED", "authentication required"),
                [API_VERSION_HEADER, ("WWW-Authenticate", 'Basic realm="memory-registry"')],
                "application/json",
            )
            return
        route, method = exchange.route, exchange.method
        if route == "/v2/":
            send(handler, 200, b"{}", [API_VERSION_HEADER], "application/json")
        elif match := _TAGS_ROUTE.fullmatch(route):
            self._tag_list(handler, match["name"])
        elif match := _MANIFEST_ROUTE.fullmatch(route):
            self._manifest(exchange, handler, match["name"], match["reference"])
        elif (match := _UPLOADS_ROUTE.fullmatch(route)) and method in ("POST", "PUT"):
            self._upload(exchange, handler, match["name"], match["upload"])
        elif match := _BLOB_ROUTE.fullmatch(route):
            self._blob(exchange, handler, match["digest"])
        else:
            send_error(handler, 404, "NOT_FOUND", "no such route")

    def _authorized(self, exchange: Exchange) -> bool:
        scheme, _, encoded = (exchange.headers.get("Authorization") or "").partition(" ")
        if scheme != "Basic":
            return False
        user, _, password = base64.b64decode(encoded).decode().partition(":")
        return self.users.get(user) == password

    def _tag_list(self, handler: BaseHTTPRequestHandler, name: str) -> None:
        with self._lock:
            tags = self.tags.get(name)
            listed = None if tags is None else sorted(tags)
        if listed is None:
            send_error(handler, 404, "NAME_UNKNOWN", "repository name not known to registry")
            return
        body = json.dumps({"name": name, "tags": listed}).encode()
        send(handler, 200, body, [API_VERSION_HEADER], "application/json")

    def _manifest(
        self, exchange: Exchange, handler: BaseHTTPRequestHandler, name: str, reference: str
    ) -> None:
        if exchange.method == "PUT":
            media_type = exchange.headers.get("Content-Type") or ""
            digest = self.put_manifest(name, reference, media_type, exchange.body)
            headers = [API_VERSION_HEADER, ("Docker-Content-Digest", digest)]
            send(handler, 201, b"", [*headers, ("Location", f"/v2/{name}/manifests/{digest}")])
            return
        with self._lock:
            digest = self.tags.get(name, {}).get(reference, reference)
            found = self.manifests.get(digest)
        if found is None:
            send_error(handler, 404, "MANIFEST_UNKNOWN", "manifest unknown")
            return
        if exchange.method == "DELETE":
            self._delete(handler, name, digest)
            return
        media_type, body = found
        headers = [API_VERSION_HEADER]
        if self.digest_header == "right":
            headers.append(("Docker-Content-Digest", digest))
        elif self.digest_header == "wrong":
            headers.append(("Docker-Content-Digest", sha256_digest(body + b" ")))
        send(handler, 200, body, headers, media_type)

    def _delete(self, handler: BaseHTTPRequestHandler, name: str, digest: str) -> None:
        if not self.deletes:
            send_error(handler, 405, "UNSUPPORTED", "The operation is unsupported.")
            return
        with self._lock:
            tags = self.tags.get(name, {})
            for tag in [tag for tag, tagged in tags.items() if tagged == digest]:
                del tags[tag]
            self.manifests.pop(digest, None)
        send(handler, 202, b"", [API_VERSION_HEADER])

    def _blob(self, exchange: Exchange, handler: BaseHTTPRequestHandler, digest: str) -> None:
        with self._lock:
            data = self.blobs.get(digest)
        if data is None:
            send_error(handler, 404, "BLOB_UNKNOWN", "blob unknown to registry")
        elif self.blob_redirect and exchange.method == "GET":
            location = f"http://{self.blob_redirect}{exchange.path}"
            send(handler, 307, b"", [API_VERSION_HEADER, ("Location", location)])
        else:
            headers = [API_VERSION_HEADER, ("Docker-Content-Digest", digest)]
            send(handler, 200, data, headers, "application/octet-stream")

    def _upload(
        self, exchange: Exchange, handler: BaseHTTPRequestHandler, name: str, upload: str
    ) -> None:
        if exchange.method == "POST":
            upload = secrets.token_hex(8)
            with self._lock:
                self._uploads.add(upload)
            location = f"/v2/{name}/blobs/uploads/{upload}?_state=upload-secret"
            send(handler, 202, b"", [API_VERSION_HEADER, ("Location", location)])
            return
        digest = (exchange.query.get("digest") or [""])[0]
        with self._lock:
            known = upload in self._uploads
            self._uploads.discard(upload)
        if not known:
            send_error(handler, 404, "BLOB_UPLOAD_UNKNOWN", "blob upload unknown to registry")
        elif digest != sha256_digest(exchange.body):
            send_error(handler, 400, "DIGEST_INVALID", "provided digest did not match content")
        else:
            with self._lock:
                self.blobs[digest] = exchange.body
            headers = [API_VERSION_HEADER, ("Docker-Content-Digest", digest)]
            send(handler, 201, b"", [*headers, ("Location", f"/v2/{name}/blobs/{digest}")])


class TokenRequest(NamedTuple):
    """A token a TokenFront was asked for."""

    method: str  # GET (anonymous, or with a password) or POST (with a refresh token)
    user: str | None  # None: anonymous
    scopes: tuple[str, ...]


class _Grant(NamedTuple):
    user: str | None
    access: dict[str, frozenset[str]]  # repository -> actions
    expires: float  # time.monotonic()


_SCOPE = re.compile(r"repository:(?P<name>[^:]+):(?P<actions>[a-z*,]*)")
FRONT_SERVICE = "token-front"


class TokenFront(LoopbackServer):
    """A Bearer-token front to the registry `upstream` ("host:port", plain HTTP).

    users: name -> password, who get every action they ask for but `refused` ones;
    anonymous: the actions granted without credentials; expires_in: the tokens' lifetime
    the answer states (None: stated nowhere; they then live 60 s); refresh_tokens: answer a
    login's offline_token=true with a refresh token (docker keeps it as an identity token)
    and accept it in the OAuth2 POST; page_size: tag-list pages at most this long, with a
    Link to the next (absolute_links: a whole URL, else a path); realm_host: the host the
    realm URL names ("localhost" is this server too, by another name).
    `token_requests` records what was asked of the realm.
    """

    def __init__(
        self,
        upstream: str,
        *,
        users: Mapping[str, str] | None = None,
        anonymous: Collection[str] = (),
        refused: Collection[str] = (),
        expires_in: int | None = 300,
        refresh_tokens: bool = True,
        page_size: int = 3,
        absolute_links: bool = False,
        realm_host: str = "127.0.0.1",
        lifetime: float = DEFAULT_LIFETIME,
    ) -> None:
        self.upstream = upstream
        self.users = dict(users or {})
        self.anonymous = frozenset(anonymous)
        self.refused = set(refused)
        self.expires_in = expires_in
        self.refresh_tokens = refresh_tokens
        self.page_size = page_size
        self.absolute_links = absolute_links
        self.token_requests: list[TokenRequest] = []
        self._grants: dict[str, _Grant] = {}
        self._refresh: dict[str, str] = {}  # refresh token -> user
        super().__init__(lifetime=lifetime)
        self.realm = f"http://{realm_host}:{self.port}/token"

    def revoke_tokens(self) -> None:
        """Forgets every token issued (not the refresh tokens): as if they had expired."""
        with self._lock:
            self._grants.clear()

    def respond(self, exchange: Exchange, handler: BaseHTTPRequestHandler) -> None:
        if exchange.route == "/token":
            self._token(exchange, handler)
            return
        if not exchange.route.startswith("/v2/"):
            send_error(handler, 404, "NOT_FOUND", "no such route")
            return
        grant = self._grant_of(exchange)
        name, action = _wanted(exchange)
        if grant is None or (name is not None and action not in grant.access.get(name, ())):
            self._challenge(handler, name, action, insufficient=grant is not None)
        elif _TAGS_ROUTE.fullmatch(exchange.route) and exchange.method == "GET":
            self._tag_page(exchange, handler)
        else:
            self._forward(exchange, handler)

    def _grant_of(self, exchange: Exchange) -> _Grant | None:
        scheme, _, token = (exchange.headers.get("Authorization") or "").partition(" ")
        if scheme != "Bearer":
            return None
        with self._lock:
            grant = self._grants.get(token)
        return grant if grant is not None and time.monotonic() < grant.expires else None

    def _challenge(
        self, handler: BaseHTTPRequestHandler, name: str | None, action: str, *, insufficient: bool
    ) -> None:
        challenge = f'Bearer realm="{self.realm}",service="{FRONT_SERVICE}"'
        if name is not None:
            challenge += f',scope="repository:{name}:{action}"'
        if insufficient:
            challenge += ',error="insufficient_scope"'
        send(
            handler,
            401,
            error_body("UNAUTHORIZED", "authentication required"),
            [API_VERSION_HEADER, ("WWW-Authenticate", challenge)],
            "application/json",
        )

    def _token(self, exchange: Exchange, handler: BaseHTTPRequestHandler) -> None:
        if exchange.method == "POST":
            form = urllib.parse.parse_qs(exchange.body.decode())
            with self._lock:
                user = self._refresh.get((form.get("refresh_token") or [""])[0])
            if form.get("grant_type") != ["refresh_token"] or user is None:
                send_error(handler, 401, "UNAUTHORIZED", "invalid refresh token")
                return
            scopes = tuple((form.get("scope") or [""])[0].split())
        else:
            query = exchange.query
            scopes = tuple(query.get("scope") or [])
            user = None
            if exchange.headers.get("Authorization"):
                user = self._basic_user(exchange)
                if user is None:
                    send_error(handler, 401, "UNAUTHORIZED", "incorrect username or password")
                    return
        with self._lock:
            self.token_requests.append(TokenRequest(exchange.method, user, scopes))
        access: dict[str, frozenset[str]] = {}
        for scope in scopes:
            if match := _SCOPE.fullmatch(scope):
                allowed = self.anonymous if user is None else {"pull", "push", "delete"}
                asked = set(match["actions"].split(","))
                access[match["name"]] = frozenset((asked & allowed) - self.refused)
        token = secrets.token_urlsafe(24)
        lifetime = self.expires_in or 60
        answer: dict[str, object] = {"token": token, "access_token": token}
        if self.expires_in is not None:
            answer["expires_in"] = self.expires_in
        offline = exchange.method == "GET" and exchange.query.get("offline_token") == ["true"]
        with self._lock:
            self._grants[token] = _Grant(user, access, time.monotonic() + lifetime)
            if offline and user is not None and self.refresh_tokens:
                refresh = secrets.token_urlsafe(24)
                self._refresh[refresh] = user
                answer["refresh_token"] = refresh
        send(handler, 200, json.dumps(answer).encode(), (), "application/json")

    def _basic_user(self, exchange: Exchange) -> str | None:
        scheme, _, encoded = (exchange.headers.get("Authorization") or "").partition(" ")
        if scheme != "Basic":
            return None
        user, _, password = base64.b64decode(encoded).decode().partition(":")
        return user if self.users.get(user) == password else None

    def _tag_page(self, exchange: Exchange, handler: BaseHTTPRequestHandler) -> None:
        status, _, headers, data = self._ask_upstream("GET", exchange.route, exchange.headers, b"")
        if status != 200:
            send(handler, status, data, headers)
            return
        document = json.loads(data)
        tags = sorted(document.get("tags") or [])
        query = exchange.query
        size = min(int(query["n"][0]) if "n" in query else self.page_size, self.page_size)
        last = (query.get("last") or [""])[0]
        rest = [tag for tag in tags if tag > last]
        page, more = rest[:size], len(rest) > size
        links = []
        if more:
            next_path = f"{exchange.route}?{urllib.parse.urlencode({'n': size, 'last': page[-1]})}"
            if self.absolute_links:
                next_path = f"http://{self.address}{next_path}"
            links.append(("Link", f'<{next_path}>; rel="next"'))
        body = json.dumps({"name": document.get("name"), "tags": page}).encode()
        send(handler, 200, body, [API_VERSION_HEADER, *links], "application/json")

    def _forward(self, exchange: Exchange, handler: BaseHTTPRequestHandler) -> None:
        try:
            status, reason, headers, data = self._ask_upstream(
                exchange.method, exchange.path, exchange.headers, exchange.body
            )
        except (OSError, http.client.HTTPException) as error:
            send(handler, 502, f"upstream: {error}\n".encode(), (), "text/plain")
            return
        handler.send_response_only(status, reason)
        for name, value in headers:
            lowered = name.lower()
            if lowered in HOP_BY_HOP or lowered == "content-length":
                continue
            if lowered == "location":  # uploads go on through the front
                handler.send_header(name, value.replace(self.upstream, self.address, 1))
            else:
                handler.send_header(name, value)
        if exchange.method == "HEAD":
            length = dict((name.lower(), value) for name, value in headers).get("content-length")
            handler.send_header("Content-Length", length or "0")
        else:
            handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        if exchange.method != "HEAD":
            handler.wfile.write(data)

    def _ask_upstream(
        self, method: str, path: str, headers: Message, body: bytes
    ) -> tuple[int, str, list[tuple[str, str]], bytes]:
        connection = http.client.HTTPConnection(self.upstream, timeout=30)
        try:
            connection.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
            connection.putheader("Host", self.upstream)
            for name, value in headers.items():
                if name.lower() not in HOP_BY_HOP | {"host", "content-length", "authorization"}:
                    connection.putheader(name, value)
            if body or method in ("POST", "PUT", "PATCH"):
                connection.putheader("Content-Length", str(len(body)))
            connection.endheaders(body or None)
            response = connection.getresponse()
            return response.status, response.reason, response.getheaders(), response.read()
        finally:
            connection.close()


def _wanted(exchange: Exchange) -> tuple[str | None, str]:
    """The repository a /v2/ request is on (None for the /v2/ ping) and the action it needs."""
    match = re.fullmatch(r"/v2/(?P<name>.+?)/(?:manifests|blobs|tags)/.*", exchange.route)
    action = {"GET": "pull", "HEAD": "pull", "DELETE": "delete"}.get(exchange.method, "push")
    return (match["name"] if match else None), action
