"""A container registry's HTTP API (the OCI distribution spec), spoken as docker speaks it.

A Registry is one host: it lists tags (following the Link header from page to page), reads
manifests and blobs (their digests checked, their sizes bounded), deletes manifests, pushes
blobs and manifests. It authenticates as docker does, from docker's own configuration, so
that `docker login` is all it needs: DOCKER_AUTH_CONFIG, credential helpers (credHelpers,
credsStore) and config.json's auths; Basic and Bearer challenges, tokens fetched from the
realm the registry names and cached per scope.

A failure is a RegistryError, one line naming the request and what the registry said,
marked transient when it is worth retrying. The caller retries: this module never does,
but for the one re-request after a 401 challenge. Every request ends within its timeout,
however slowly the server answers.

Standard library only, one file that a project can copy beside get_docker_image.py.
Sections: errors; names and digests; docker's credentials; connections; the client.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import http.client
import ipaddress
import json
import logging
import math
import os
import re
import select
import socket
import ssl
import subprocess
import threading
import time
import urllib.parse
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NamedTuple, cast

if TYPE_CHECKING or not __package__:  # copied into a project, beside its helpers
    from util import run
else:  # installed, as the package get_docker_image_tool
    from .util import run

if TYPE_CHECKING:
    from types import TracebackType

    from _typeshed import ReadableBuffer, WriteableBuffer

_log = logging.getLogger("get_docker_image.registry")

USER_AGENT = "get-docker-image"

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MANIFEST_MEDIA_TYPES = (DOCKER_MANIFEST, OCI_MANIFEST, DOCKER_MANIFEST_LIST, OCI_INDEX)
_MANIFEST_ACCEPT = ", ".join(MANIFEST_MEDIA_TYPES)

# Bounds on what is read from a server.
MAX_MANIFEST_BYTES = 4 * 1024 * 1024  # what distribution itself accepts
MAX_TAG_PAGE_BYTES = 16 * 1024 * 1024  # a registry may send all of a repository's tags at once
MAX_TOKEN_BYTES = 1024 * 1024
MAX_ERROR_BYTES = 64 * 1024  # only the first error is kept from an error body
MAX_REDIRECTS = 10  # Go's http.Client's, so docker's
_MESSAGE_CHARS = 300  # of what the registry said, in an error message

# A token the server gives no lifetime lives 60 s (the token spec's default); one is
# renewed this long before it expires, so that it does not expire in flight (regclient's).
DEFAULT_TOKEN_SECONDS = 60
TOKEN_RENEW_SECONDS = 5
# The OAuth2 client id docker's engine sends with a refresh token.
OAUTH_CLIENT_ID = "docker"

# Idle connections kept per host: as many as the callers' threads, roughly.
MAX_IDLE_CONNECTIONS = 8
_READ_SIZE = 64 * 1024
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})


# --- errors -------------------------------------------------------------------------------


class RegistryError(Exception):
    """A registry request failed. The message is one line naming the method, the URL path
    (never its query) and what the registry said; it never holds credentials or tokens.

    status: the HTTP status, None when there was no answer (a network failure);
    code: the first distribution error code of the answer (MANIFEST_UNKNOWN, DENIED, ...);
    transient: worth retrying (5xx, 429, a reset connection, a timeout, an early EOF).
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        transient: bool = False,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.transient = transient


class AuthenticationError(RegistryError):
    """No credentials where the registry wants them, or refused ones."""


class NotAllowed(RegistryError):
    """Authenticated, but the action is refused: the token server granted fewer actions
    than asked (a 401 with a token just granted), or the registry denied it (403)."""


class Unsupported(RegistryError):
    """The registry does not do this at all (405 or UNSUPPORTED: deletes disabled)."""


class NotFound(RegistryError):
    """No such manifest, blob or repository (404)."""


# --- names and digests ----------------------------------------------------------------------

# distribution/reference's grammar: a repository's path components, a tag.
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REPOSITORY = re.compile(rf"{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}|sha512:[0-9a-f]{128}")
_REPOSITORY_MAX_LENGTH = 255
# RFC 6750's token68: what may follow "Bearer " (and never a line break).
_TOKEN68 = re.compile(r"[A-Za-z0-9._~+/-]+=*")


class Manifest(NamedTuple):
    digest: str  # checked against the body
    media_type: str  # the registry's Content-Type, else the document's mediaType
    body: bytes  # as the registry sent it: what the digest is of
    document: dict[str, Any]


def digest_of(data: bytes, algorithm: str = "sha256") -> str:
    """The content digest of `data`, as registries name blobs and manifests."""
    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"


def is_digest(text: str) -> bool:
    """Whether `text` is a sha256 or sha512 digest (as in a manifest from a registry)."""
    return _DIGEST.fullmatch(text) is not None


def _matches(digest: str, data: bytes) -> bool:
    return digest_of(data, digest.split(":", 1)[0]) == digest


def _check_repository(repository: str) -> None:
    if len(repository) > _REPOSITORY_MAX_LENGTH or not _REPOSITORY.fullmatch(repository):
        raise ValueError(f"not a repository name: {repository!r}")


def _check_digest(digest: str) -> None:
    if not is_digest(digest):
        raise ValueError(f"not a sha256 or sha512 digest: {digest!r}")


def _check_reference(reference: str) -> None:
    if not (_TAG.fullmatch(reference) or is_digest(reference)):
        raise ValueError(f"not a tag or a digest: {reference!r}")


# --- docker's credentials --------------------------------------------------------------------
#
# As docker/cli's cli/config/configfile (GetAuthConfig, GetCredentialsStore) and
# cli/config/credentials (the file and native stores) find them.

DOCKER_HUB_HOSTS = ("docker.io", "index.docker.io")
DOCKER_HUB_API_HOST = "registry-1.docker.io"
DOCKER_HUB_AUTH_KEY = "https://index.docker.io/v1/"
DOCKER_AUTH_CONFIG = "DOCKER_AUTH_CONFIG"  # docker 28.3 and later
CREDENTIAL_HELPER_PREFIX = "docker-credential-"
# What a helper prints, exiting non-zero, when it has nothing for the server.
_HELPER_NOT_FOUND = "credentials not found in native keychain"
# The username with which a helper returns an identity token as its secret.
_HELPER_TOKEN_USERNAME = "<token>"


class Credentials:
    """What docker keeps for one registry: a username and password, an identity token (an
    OAuth2 refresh token, as some registries' `docker login` leave), or nothing.
    Its repr shows the username only."""

    __slots__ = ("identity_token", "password", "username")

    def __init__(self, username: str = "", password: str = "", identity_token: str = "") -> None:
        self.username = username
        self.password = password
        self.identity_token = identity_token

    @property
    def basic(self) -> bool:
        """Whether there is a username and a password to send (docker needs both)."""
        return bool(self.username and self.password)

    def __bool__(self) -> bool:
        return self.basic or bool(self.identity_token)

    def __repr__(self) -> str:
        kinds = [
            kind
            for kind, value in (
                ("password", self.password),
                ("identity token", self.identity_token),
            )
            if value
        ]
        return f"Credentials(username={self.username!r}, with {' and '.join(kinds) or 'nothing'})"


def default_docker_config() -> str:
    """The directory of docker's config.json: $DOCKER_CONFIG, else ~/.docker."""
    return os.environ.get("DOCKER_CONFIG") or os.path.join(os.path.expanduser("~"), ".docker")


def auth_config_key(host: str) -> str:
    """The key docker keeps `host`'s credentials under: Docker Hub's historical index
    address, else the host itself ("127.0.0.1:5000", "ghcr.io")."""
    return DOCKER_HUB_AUTH_KEY if host in DOCKER_HUB_HOSTS else host


def config_key_host(key: str) -> str:
    """The host[:port] an auths key names, as docker/cli's ConvertToHostname reads the
    legacy forms: "https://host:5000/v1/" and "http://host" name "host:5000" and "host"."""
    _, scheme_separator, rest = key.partition("://")
    if not scheme_separator:
        return key.split("/", 1)[0]
    return rest.split("/", 1)[0].rpartition("@")[2]


class _DockerConfig(NamedTuple):
    auths: dict[str, Credentials]
    helpers: dict[str, str]  # credHelpers: key -> helper name
    store: str  # credsStore: the helper for every other key; "" for none


_NO_CONFIG = _DockerConfig({}, {}, "")


def docker_credentials(
    host: str, docker_config: str | None = None, timeout: float = 30.0
) -> Credentials:
    """The credentials docker would use for `host` (ConfigFile.GetAuthConfig).

    In docker's order: DOCKER_AUTH_CONFIG's entry for the key; else the credential helper
    configured for the key (credHelpers) or for every key (credsStore), run as
    `docker-credential-<name> get` with the key on its stdin (what it prints is never
    logged); else config.json's auths entry for the key, or the first whose legacy key names
    the same host. A config.json that cannot be read is ignored with a warning, as docker
    does. Raises AuthenticationError when a configured helper cannot be run or fails.
    """
    key = auth_config_key(host)
    from_environment = _environment_credentials(key)
    if from_environment is not None:
        return from_environment
    config = _load_config(docker_config or default_docker_config())
    # An entry for the key, even an empty one, wins over credsStore.
    helper = config.helpers.get(key, config.store)
    if helper:
        return _helper_credentials(helper, key, timeout)
    found = config.auths.get(key)
    if found is None:
        found = next(
            (
                credentials
                for name, credentials in config.auths.items()
                if config_key_host(name) == key
            ),
            Credentials(),
        )
    return found


def _environment_credentials(key: str) -> Credentials | None:
    text = os.environ.get(DOCKER_AUTH_CONFIG)
    if not text:
        return None
    try:
        document = json.loads(text)
        # docker accepts nothing but {"auths": {KEY: {"auth": BASE64}, ...}}.
        if not isinstance(document, dict) or set(document) - {"auths"}:
            raise ValueError("not an object with auths only")
        entries = document.get("auths") or {}
        if not isinstance(entries, dict):
            raise ValueError("auths is not an object")
        found = None
        for name, entry in entries.items():
            if not isinstance(entry, dict) or set(entry) != {"auth"} or not entry["auth"]:
                raise ValueError(f"the entry for {name!r} has no auth (and nothing else)")
            username, password = _decode_auth(entry["auth"])
            if name == key:
                found = Credentials(username, password)
    except ValueError as error:
        _log.warning("Ignoring %s: %s", DOCKER_AUTH_CONFIG, error)
        return None
    return found


def _load_config(directory: str) -> _DockerConfig:
    path = os.path.join(directory, "config.json")
    try:
        with open(path, "rb") as file:
            document = json.load(file)
        return _parse_config(document)
    except FileNotFoundError:
        return _NO_CONFIG
    except OSError as error:
        _log.warning("Ignoring docker's config %s: %s", path, error.strerror or error)
    except ValueError as error:  # JSON, UTF-8 or base64, none of which quotes a secret
        _log.warning("Ignoring docker's config %s: %s", path, error)
    return _NO_CONFIG


def _parse_config(document: object) -> _DockerConfig:
    if not isinstance(document, dict):
        raise ValueError("not a JSON object")
    auths: dict[str, Credentials] = {}
    for key, entry in _object(document, "auths").items():
        if not isinstance(entry, dict):
            raise ValueError(f"auths entry {key!r} is not an object")
        username, password = _text(entry, "username"), _text(entry, "password")
        if _text(entry, "auth"):
            username, password = _decode_auth(_text(entry, "auth"))
        auths[key] = Credentials(username, password, _text(entry, "identitytoken"))
    helpers = {
        key: name for key, name in _object(document, "credHelpers").items() if isinstance(name, str)
    }
    return _DockerConfig(auths, helpers, _text(document, "credsStore"))


def _object(document: dict[str, Any], name: str) -> dict[str, Any]:
    value = document.get(name)
    return value if isinstance(value, dict) else {}


def _text(document: dict[str, Any], name: str) -> str:
    value = document.get(name)
    return value if isinstance(value, str) else ""


def _decode_auth(auth: str) -> tuple[str, str]:
    """docker's decodeAuth: base64 of "username:password"; the password's NULs trimmed."""
    try:
        decoded = base64.b64decode(auth, validate=True).decode("utf-8", "replace")
    except (binascii.Error, ValueError):
        raise ValueError("an auth entry is not base64") from None
    username, colon, password = decoded.partition(":")
    if not colon or not username:
        raise ValueError("invalid auth configuration file")
    return username, password.strip("\x00")


def _helper_credentials(helper: str, key: str, timeout: float) -> Credentials:
    program = CREDENTIAL_HELPER_PREFIX + helper
    try:
        completed = run(program, "get", capture=True, input=key, check=False, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise AuthenticationError(
            f"credential helper {program} gave no answer for {key} within {timeout:g} s"
        ) from None
    except OSError as error:
        raise AuthenticationError(
            f"credential helper {program} (docker's config names it for {key}) cannot be run:"
            f" {error.strerror or error}"
        ) from None
    output = completed.stdout or ""
    if completed.returncode != 0:
        if output.strip() == _HELPER_NOT_FOUND:
            return Credentials()
        # What it printed may hold anything: not repeated.
        raise AuthenticationError(
            f"credential helper {program} failed for {key} (exit status {completed.returncode})"
        )
    try:
        document = json.loads(output)
        if not isinstance(document, dict):
            raise ValueError
    except ValueError:
        raise AuthenticationError(
            f"credential helper {program} printed no JSON object for {key}"
        ) from None
    username, secret = _text(document, "Username"), _text(document, "Secret")
    if username == _HELPER_TOKEN_USERNAME:
        return Credentials(identity_token=secret)
    return Credentials(username, secret)


def _basic_authorization(credentials: Credentials) -> str:
    pair = f"{credentials.username}:{credentials.password}".encode()
    return "Basic " + base64.b64encode(pair).decode("ascii")


# --- connections ------------------------------------------------------------------------------


class _Origin(NamedTuple):
    scheme: str  # "https" or "http"
    host: str  # lowercase, an IPv6 address without brackets
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return f"{self.scheme}://{host}" + ("" if self.port == default else f":{self.port}")


def _parse_url(url: str) -> tuple[_Origin, str]:
    """An absolute http(s) URL's origin, and its path with the query; ValueError if it is
    not one."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {url!r}")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return _Origin(parts.scheme, parts.hostname, port), path


def is_loopback(host: str) -> bool:
    """Whether `host` (a name or an address, without a port) is this machine's loopback."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """The system's trusted certificates (loaded once: it takes tens of milliseconds)."""
    return ssl.create_default_context()


def _time_left(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("timed out")
    return left


class _PlainHTTPAnswer(Exception):
    """The server answered a TLS hello in plain HTTP: docker's cue to fall back to HTTP."""


class _Socket(socket.socket):
    """A TCP connection, in TLS or not, every read and write of which ends by `deadline`
    (time.monotonic()), for http.client, which takes it for a plain socket.

    TLS runs over memory buffers, so that every byte, the handshake's too, passes the
    deadline (a server that trickles a byte a second is cut off in time), and so that an
    answer in plain HTTP can be told from other TLS failures."""

    deadline = math.inf
    _tls: ssl.SSLObject | None = None
    _incoming: ssl.MemoryBIO
    _outgoing: ssl.MemoryBIO

    def start_tls(self, context: ssl.SSLContext, hostname: str) -> None:
        """The TLS handshake; _PlainHTTPAnswer if the server's answer starts "HTTP/"."""
        self._incoming, self._outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = context.wrap_bio(self._incoming, self._outgoing, server_hostname=hostname)
        first = b""  # the server's first bytes
        while True:
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                received = self._receive()
                first += received[: 5 - len(first)]
            except ssl.SSLError:
                if first == b"HTTP/":
                    raise _PlainHTTPAnswer from None
                raise
        self._flush()
        self._tls = tls

    def _flush(self) -> None:
        pending = self._outgoing.read()
        if pending:
            self.settimeout(_time_left(self.deadline))
            super().sendall(pending)

    def _receive(self) -> bytes:
        self._flush()
        self.settimeout(_time_left(self.deadline))
        data = super().recv(_READ_SIZE)
        if data:
            self._incoming.write(data)
        else:
            self._incoming.write_eof()
        return data

    def recv_into(self, buffer: WriteableBuffer, nbytes: int = 0, flags: int = 0) -> int:
        if self._tls is None:
            self.settimeout(_time_left(self.deadline))
            return super().recv_into(buffer, nbytes, flags)
        size = nbytes or memoryview(buffer).nbytes
        while True:
            try:
                # With a buffer, read() returns the count (typeshed says bytes).
                return cast(int, self._tls.read(size, buffer))
            except ssl.SSLWantReadError:
                self._receive()
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):  # closed, cleanly or not
                return 0

    def sendall(self, data: ReadableBuffer, flags: int = 0, /) -> None:
        if self._tls is None:
            self.settimeout(_time_left(self.deadline))
            super().sendall(data, flags)
            return
        self._tls.write(data)
        self._flush()


class _Connection(http.client.HTTPConnection):
    """http.client's connection over a _Socket, TLS when given a context; `deadline` bounds
    the request under way."""

    def __init__(self, origin: _Origin, context: ssl.SSLContext | None) -> None:
        super().__init__(origin.host, origin.port)
        self.default_port = 443 if context else 80  # the Host header names other ports only
        self._context = context
        self.deadline = math.inf

    def connect(self) -> None:
        raw = socket.create_connection((self.host, self.port), timeout=_time_left(self.deadline))
        sock = _Socket(raw.family, raw.type, raw.proto, raw.detach())
        sock.deadline = self.deadline
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self._context is not None:
                sock.start_tls(self._context, self.host)
        except BaseException:
            sock.close()
            raise
        self.sock = sock

    def set_deadline(self, deadline: float) -> None:
        self.deadline = deadline
        if isinstance(self.sock, _Socket):
            self.sock.deadline = deadline

    def idle_and_open(self) -> bool:
        """Whether the server kept this idle connection open (it has nothing to read)."""
        if self.sock is None:
            return False
        readable, _, _ = select.select([self.sock], [], [], 0)
        return not readable


class _Request(NamedTuple):
    method: str
    origin: _Origin
    path: str  # with the query
    headers: dict[str, str]
    body: bytes | None
    deadline: float  # time.monotonic()
    limit: int  # on a success's body


class _Response(NamedTuple):
    status: int
    reason: str
    headers: http.client.HTTPMessage
    body: bytes
    origin: _Origin
    path: str


def _read_body(response: http.client.HTTPResponse, limit: int) -> tuple[bytes, bool]:
    """Up to `limit` bytes of the body, and whether that was all of it."""
    if response.length is not None and response.length > limit:
        return b"", False
    chunks: list[bytes] = []
    size = 0
    while size <= limit:
        chunk = response.read(min(_READ_SIZE, limit + 1 - size))
        if not chunk:
            return b"".join(chunks), True
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)[:limit], False


def _network_failure(  # noqa: PLR0911 (a classifier)
    what: str, error: OSError | http.client.HTTPException, timeout: float
) -> RegistryError:
    """The RegistryError for a request that got no (whole) answer."""
    if isinstance(error, TimeoutError):
        return RegistryError(f"{what}: no answer within {timeout:g} s", transient=True)
    if isinstance(error, ssl.SSLCertVerificationError):
        return RegistryError(f"{what}: TLS certificate not trusted ({error.verify_message})")
    if isinstance(error, (ssl.SSLEOFError, ssl.SSLZeroReturnError)):
        return RegistryError(f"{what}: the connection closed during TLS", transient=True)
    if isinstance(error, ssl.SSLError):
        return RegistryError(f"{what}: TLS failed ({error.reason or error.strerror})")
    if isinstance(error, http.client.RemoteDisconnected):
        return RegistryError(f"{what}: the server closed the connection (EOF)", transient=True)
    if isinstance(error, http.client.IncompleteRead):
        return RegistryError(f"{what}: the answer ended early (unexpected EOF)", transient=True)
    if isinstance(error, (ConnectionResetError, BrokenPipeError, ConnectionAbortedError)):
        return RegistryError(f"{what}: connection reset", transient=True)
    if isinstance(error, http.client.HTTPException):  # its text may quote what it parsed
        return RegistryError(f"{what}: not an HTTP answer ({type(error).__name__})")
    if isinstance(error, socket.gaierror):
        return RegistryError(f"{what}: cannot resolve the host ({error.strerror})")
    return RegistryError(f"{what}: {error.strerror or error}")


# --- the client --------------------------------------------------------------------------------


class _Challenge(NamedTuple):
    scheme: str  # "basic" or "bearer"
    params: dict[str, str]  # realm, service, scope, ...


_AUTH_PARAM = re.compile(r'\s*([^\s=,]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))\s*(?:,|$)')


def _challenge(values: list[str]) -> _Challenge | None:
    """The challenge to answer among WWW-Authenticate values: Bearer first, then Basic."""
    found: dict[str, _Challenge] = {}
    for value in values:
        scheme, _, rest = value.strip().partition(" ")
        params = {
            match[1].lower(): re.sub(r"\\(.)", r"\1", match[2])
            if match[2] is not None
            else match[3]
            for match in _AUTH_PARAM.finditer(rest)
        }
        found.setdefault(scheme.lower(), _Challenge(scheme.lower(), params))
    return found.get("bearer") or found.get("basic")


class _Token(NamedTuple):
    value: str
    renew_at: float  # time.monotonic()
    authenticated: bool  # fetched with the user's credentials, not anonymously


class _Authorization(NamedTuple):
    header: str
    fresh: bool  # got for this request (a 401 then is final), not taken from the cache
    authenticated: bool


# What a 401 answered when the request had no authorization yet.
_NOTHING_SENT = _Authorization("", False, False)


_LINK = re.compile(r"<([^>]*)>([^,<]*)")
_REL_NEXT = re.compile(r'\brel\s*=\s*"?next\b', re.IGNORECASE)


def _next_link(values: list[str]) -> str | None:
    for value in values:
        for url, params in _LINK.findall(value):
            if _REL_NEXT.search(params):
                return str(url)
    return None


def _one_line(text: str) -> str:
    line = " ".join("".join(c if c.isprintable() else " " for c in text).split())
    return line if len(line) <= _MESSAGE_CHARS else line[: _MESSAGE_CHARS - 3] + "..."


def _registry_said(response: _Response) -> tuple[str, str | None]:
    """What the registry said, "404 Not Found (MANIFEST_UNKNOWN: manifest unknown)", and the
    code of its first distribution error."""
    code: str | None = None
    said = f"{response.status} {response.reason}".strip()
    try:
        document = json.loads(response.body)
        first = document["errors"][0]
        code = first["code"] if isinstance(first.get("code"), str) else None
        message = first.get("message")
    except (ValueError, LookupError, TypeError, AttributeError):
        return _one_line(said), None
    if code:
        detail = f"{code}: {message}" if isinstance(message, str) and message else code
        said += f" ({detail})"
    return _one_line(said), code


def _failure(what: str, response: _Response) -> RegistryError:
    """The RegistryError for an answer that is not a success."""
    said, code = _registry_said(response)
    status = response.status
    message = f"{what}: {said}"
    if status == 405 or code == "UNSUPPORTED":
        return Unsupported(message, status=status, code=code)
    if status == 404:
        return NotFound(message, status=status, code=code)
    if status == 401:
        return AuthenticationError(message, status=status, code=code)
    if status == 403:
        return NotAllowed(message, status=status, code=code)
    transient = status >= 500 or status in (408, 429)
    return RegistryError(message, status=status, code=code, transient=transient)


def _expect_success(what: str, response: _Response) -> None:
    if not 200 <= response.status < 300:
        raise _failure(what, response)


def _json_object(what: str, body: bytes) -> dict[str, Any]:
    try:
        document = json.loads(body)
    except ValueError:
        document = None
    if not isinstance(document, dict):
        raise RegistryError(f"{what}: the answer is not a JSON object")
    return document


def _with_query(url: str, name: str, value: str) -> str:
    parts = urllib.parse.urlsplit(url)
    added = urllib.parse.urlencode({name: value})
    query = f"{parts.query}&{added}" if parts.query else added
    return urllib.parse.urlunsplit(parts._replace(query=query))


# Actions a request asks the token server for, and how a refusal names them.
_PULL = "pull"
_PUSH = "pull,push"
_DELETE = "pull,delete"
_ACTION_WORDS = {_PULL: "pull", _PUSH: "push to", _DELETE: "delete from"}


class Registry:
    """One registry host, as docker names it: "127.0.0.1:5000", "ghcr.io", "docker.io"
    (whose API is registry-1.docker.io, and whose one-component repositories are in
    library/). Safe to use from several threads at once; close() ends its idle connections.

    timeout: seconds one request may take as a whole (connecting, TLS, the answer to its
    last byte, with its authentication round trip and redirects).
    plain_http: docker itself allows plain HTTP for this host (loopback, or an insecure
    registry of the engine's): as docker, HTTPS is tried first, and plain HTTP used when
    the server answers in plain HTTP. Credentials go over plain HTTP to loopback only.
    docker_config: the directory of docker's config.json (default $DOCKER_CONFIG, else
    ~/.docker).
    """

    def __init__(
        self,
        host: str,
        *,
        timeout: float,
        plain_http: bool = False,
        docker_config: str | None = None,
    ) -> None:
        self.host = host
        self._docker_hub = host in DOCKER_HUB_HOSTS
        api_host = DOCKER_HUB_API_HOST if self._docker_hub else host
        parts = urllib.parse.urlsplit(f"//{api_host}")
        if not parts.hostname or parts.netloc != api_host or parts.path:
            raise ValueError(f"not a registry host: {host!r}")
        self._https_origin = _Origin("https", parts.hostname, parts.port or 443)
        self._http_origin = _Origin("http", parts.hostname, parts.port or 80)
        self._origin = self._https_origin  # until the server answers in plain HTTP
        self._timeout = timeout
        self._plain_http = plain_http
        self._docker_config = docker_config
        self._lock = threading.Lock()  # the idle connections
        self._idle: dict[_Origin, list[_Connection]] = {}
        self._credentials_lock = threading.Lock()  # held while a credential helper runs
        self._credentials: Credentials | None = None
        self._challenge: _Challenge | None = None
        self._token_lock = threading.Lock()  # one token fetch at a time: they share scopes
        self._tokens: dict[tuple[str, str, str], _Token] = {}

    def close(self) -> None:
        """Closes the idle connections (the Registry stays usable)."""
        with self._lock:
            idle = [connection for connections in self._idle.values() for connection in connections]
            self._idle.clear()
        for connection in idle:
            connection.close()

    def __enter__(self) -> Registry:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # --- the API

    def tags(self, repository: str, page_size: int | None = None) -> list[str]:
        """The repository's tags, in the registry's order, from every page (the Link
        header's next page is followed: a short page is not the end). `page_size` asks for
        pages of that many (the registry may send fewer). NotFound if there is no such
        repository."""
        name = self._name(repository)
        target = f"/v2/{name}/tags/list" + (f"?n={page_size}" if page_size else "")
        tags: list[str] = []
        seen = {target}
        while True:
            response = self._request(
                "GET",
                target,
                repository=name,
                actions=_PULL,
                limit=MAX_TAG_PAGE_BYTES,
                headers={"Accept": "application/json"},
            )
            what = self._what("GET", response.origin, response.path)
            _expect_success(what, response)
            page = _json_object(what, response.body).get("tags") or []
            if not isinstance(page, list) or not all(isinstance(tag, str) for tag in page):
                raise RegistryError(f"{what}: the answer's tags are not a list of names")
            tags += page
            link = _next_link(response.headers.get_all("Link") or [])
            if link is None:
                return tags
            url = urllib.parse.urljoin(f"{response.origin}{response.path}", link)
            try:
                origin, target = _parse_url(url)
            except ValueError:
                origin = None
            if origin != self._origin:
                raise RegistryError(f"{what}: the next page is not on the registry: {link!r}")
            if target in seen:
                raise RegistryError(f"{what}: the next page is one already read")
            seen.add(target)

    def manifest(self, repository: str, reference: str) -> Manifest:
        """The manifest of a tag or digest, of any of MANIFEST_MEDIA_TYPES: its digest is
        Docker-Content-Digest checked against the body (else the body's sha256), and the
        digest asked for when `reference` is one. NotFound if there is none."""
        name = self._name(repository)
        _check_reference(reference)
        path = f"/v2/{name}/manifests/{reference}"
        response = self._request(
            "GET",
            path,
            repository=name,
            actions=_PULL,
            limit=MAX_MANIFEST_BYTES,
            headers={"Accept": _MANIFEST_ACCEPT},
        )
        what = self._what("GET", response.origin, path)
        _expect_success(what, response)
        body = response.body
        header = response.headers.get("Docker-Content-Digest", "").strip()
        for claimed in (header, reference):
            if is_digest(claimed) and not _matches(claimed, body):
                raise RegistryError(f"{what}: the manifest's digest is not {claimed}")
        if header and not is_digest(header):
            raise RegistryError(f"{what}: Docker-Content-Digest is not a digest: {header!r}")
        digest = header or (reference if is_digest(reference) else digest_of(body))
        document = _json_object(what, body)
        content_type = (response.headers.get("Content-Type") or "").split(";")[0].strip()
        declared = document.get("mediaType")
        media_type = (
            content_type
            if content_type in MANIFEST_MEDIA_TYPES or not isinstance(declared, str)
            else declared
        )
        return Manifest(digest, media_type, body, document)

    def manifest_digest(self, repository: str, reference: str) -> str | None:
        """The digest of a tag's (or digest's) manifest, asked with HEAD; None if the
        registry has no such manifest (or repository). A registry that answers HEAD without
        Docker-Content-Digest is asked for the manifest itself."""
        name = self._name(repository)
        _check_reference(reference)
        path = f"/v2/{name}/manifests/{reference}"
        response = self._request(
            "HEAD",
            path,
            repository=name,
            actions=_PULL,
            limit=0,
            headers={"Accept": _MANIFEST_ACCEPT},
        )
        if response.status == 404:
            return None
        _expect_success(self._what("HEAD", response.origin, path), response)
        header = response.headers.get("Docker-Content-Digest", "").strip()
        if is_digest(header):
            return header
        if is_digest(reference):
            return reference
        return self.manifest(repository, reference).digest

    def blob(self, repository: str, digest: str, max_bytes: int) -> bytes:
        """The blob `digest` (redirects to storage followed, without credentials if on
        another host), checked against its digest; RegistryError if it is larger than
        max_bytes. NotFound if there is no such blob."""
        name = self._name(repository)
        _check_digest(digest)
        path = f"/v2/{name}/blobs/{digest}"
        response = self._request("GET", path, repository=name, actions=_PULL, limit=max_bytes)
        what = self._what("GET", self._origin, path)
        _expect_success(what, response)
        if not _matches(digest, response.body):
            raise RegistryError(f"{what}: the blob's content does not match its digest")
        return response.body

    def delete_manifest(self, repository: str, digest: str) -> None:
        """Deletes the manifest `digest` and so every tag of it. Unsupported when the
        registry does not delete (405, UNSUPPORTED); NotAllowed when these credentials may
        not; NotFound if there is no such manifest."""
        name = self._name(repository)
        _check_digest(digest)
        path = f"/v2/{name}/manifests/{digest}"
        response = self._request(
            "DELETE", path, repository=name, actions=_DELETE, limit=MAX_ERROR_BYTES
        )
        _expect_success(self._what("DELETE", response.origin, path), response)

    def push_blob(self, repository: str, data: bytes) -> str:
        """Uploads `data` as a blob in one piece (POST, then PUT ?digest=), unless the
        registry already has it; returns its digest."""
        name = self._name(repository)
        digest = digest_of(data)
        path = f"/v2/{name}/blobs/{digest}"
        response = self._request("HEAD", path, repository=name, actions=_PUSH, limit=0)
        if response.status == 200:
            return digest
        if response.status != 404:
            raise _failure(self._what("HEAD", response.origin, path), response)
        uploads = f"/v2/{name}/blobs/uploads/"
        started = self._request(
            "POST", uploads, repository=name, actions=_PUSH, limit=MAX_ERROR_BYTES
        )
        what = self._what("POST", started.origin, uploads)
        _expect_success(what, started)
        location = started.headers.get("Location")
        if not location:
            raise RegistryError(f"{what}: the answer names no upload Location")
        upload = _with_query(
            urllib.parse.urljoin(f"{started.origin}{uploads}", location), "digest", digest
        )
        response = self._request(
            "PUT",
            upload,
            repository=name,
            actions=_PUSH,
            limit=MAX_ERROR_BYTES,
            headers={"Content-Type": "application/octet-stream"},
            body=data,
        )
        what = self._what("PUT", response.origin, response.path)
        _expect_success(what, response)
        reported = response.headers.get("Docker-Content-Digest", "").strip()
        if reported and reported != digest:
            raise RegistryError(f"{what}: the registry stored {reported}, not {digest}")
        return digest

    def push_manifest(self, repository: str, reference: str, media_type: str, body: bytes) -> str:
        """Puts a manifest under a tag (or its digest); returns the digest the registry
        reports, checked against the body (the body's sha256 if it reports none)."""
        name = self._name(repository)
        _check_reference(reference)
        if is_digest(reference) and not _matches(reference, body):
            raise ValueError(f"the manifest's digest is not {reference}")
        path = f"/v2/{name}/manifests/{reference}"
        response = self._request(
            "PUT",
            path,
            repository=name,
            actions=_PUSH,
            limit=MAX_ERROR_BYTES,
            headers={"Content-Type": media_type},
            body=body,
        )
        what = self._what("PUT", response.origin, path)
        _expect_success(what, response)
        reported = response.headers.get("Docker-Content-Digest", "").strip()
        if not reported:
            return digest_of(body)
        if not is_digest(reported) or not _matches(reported, body):
            raise RegistryError(f"{what}: the registry reports {reported!r}, not the body's")
        return reported

    # --- requests

    def _name(self, repository: str) -> str:
        """The repository's name in the API (Docker Hub's official images are library/)."""
        _check_repository(repository)
        return f"library/{repository}" if self._docker_hub and "/" not in repository else repository

    def _what(self, method: str, origin: _Origin, path: str) -> str:
        """A request as error messages name it: the method and the path, without the query
        (upload state, signatures); the origin too when it is not the registry's."""
        place = path.split("?", 1)[0]
        return f"{method} {place}" if origin == self._origin else f"{method} {origin}{place}"

    def _request(
        self,
        method: str,
        target: str,
        *,
        repository: str,
        actions: str,
        limit: int,
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
    ) -> _Response:
        """Sends a request for `actions` on `repository` to `target` (a path on the registry,
        or an absolute URL it gave), with the authorization the registry's challenge wants;
        after a 401 challenge, once more with a new one. Returns the answer, whatever its
        status, but for a 401 to a new authorization, which raises. A success's body is
        read up to `limit` bytes (a larger one is an error), another's up to MAX_ERROR_BYTES.
        """
        origin, path = (self._origin, target) if target.startswith("/") else self._locate(target)
        request = _Request(
            method,
            origin,
            path,
            {"User-Agent": USER_AGENT, **(headers or {})},
            body,
            time.monotonic() + self._timeout,
            limit,
        )
        what = self._what(method, origin, path)
        scope = f"repository:{repository}:{actions}"
        authorization = self._authorization(scope, request.deadline, what)
        response = self._send(request, authorization)
        if not self._challenged(response, what):
            return response
        if authorization is None or not authorization.fresh:
            authorization = self._authorization(
                scope, request.deadline, what, refused=authorization or _NOTHING_SENT
            )
            response = self._send(request, authorization)
            if not self._challenged(response, what):
                return response
        raise self._refusal(what, response, repository, actions, authorization)

    def _locate(self, url: str) -> tuple[_Origin, str]:
        """The origin and path of a URL the registry gave (an upload's Location, a Link)."""
        try:
            origin, path = _parse_url(url)
        except ValueError:
            raise RegistryError(f"the registry gave no http(s) URL to go on: {url!r}") from None
        if self._origin.scheme == "https" and origin.scheme != "https":
            raise RegistryError(f"the registry sent us from HTTPS to plain HTTP: {origin}")
        return origin, path

    def _send(self, request: _Request, authorization: _Authorization | None) -> _Response:
        """One request, its redirects followed (GET and HEAD), the authorization sent to the
        registry's own origin only."""
        redirects = 0
        while True:
            headers = dict(request.headers)
            if authorization is not None and request.origin == self._origin:
                headers["Authorization"] = authorization.header
            try:
                response = self._exchange(request._replace(headers=headers))
            except _PlainHTTPAnswer:
                request = request._replace(origin=self._fall_back_to_http(request))
                continue
            location = response.headers.get("Location")
            if (
                response.status not in _REDIRECT_STATUSES
                or request.method not in ("GET", "HEAD")
                or not location
            ):
                return response
            what = self._what(request.method, request.origin, request.path)
            redirects += 1
            if redirects > MAX_REDIRECTS:
                raise RegistryError(f"{what}: more than {MAX_REDIRECTS} redirects")
            url = urllib.parse.urljoin(f"{request.origin}{request.path}", location)
            try:
                origin, path = _parse_url(url)
            except ValueError:
                raise RegistryError(f"{what}: redirected to no http(s) URL") from None
            if request.origin.scheme == "https" and origin.scheme != "https":
                raise RegistryError(f"{what}: redirected from HTTPS to plain HTTP ({origin})")
            request = request._replace(origin=origin, path=path)

    def _fall_back_to_http(self, request: _Request) -> _Origin:
        """The registry's plain-HTTP origin, from now on, if docker allows it; else raises."""
        if request.origin != self._https_origin or not self._plain_http:
            what = self._what(request.method, request.origin, request.path)
            raise RegistryError(f"{what}: server gave HTTP response to HTTPS client")
        self._origin = self._http_origin
        return self._http_origin

    def _exchange(self, request: _Request) -> _Response:
        """One request and its answer, on an idle connection to its origin if there is one.
        _PlainHTTPAnswer if the server answers TLS in plain HTTP."""
        connection = self._checkout(request.origin, request.deadline)
        what = self._what(request.method, request.origin, request.path)
        try:
            connection.request(
                request.method, request.path, body=request.body, headers=request.headers
            )
            answer = connection.getresponse()
            success = 200 <= answer.status < 300
            data, whole = _read_body(answer, request.limit if success else MAX_ERROR_BYTES)
        except _PlainHTTPAnswer:
            connection.close()
            raise
        except (OSError, http.client.HTTPException) as error:
            connection.close()
            raise _network_failure(what, error, self._timeout) from error
        except BaseException:
            connection.close()
            raise
        if whole and not answer.will_close:
            self._checkin(request.origin, connection)
        else:
            connection.close()
        if success and not whole:
            raise RegistryError(f"{what}: the answer is larger than {request.limit} bytes")
        return _Response(
            answer.status, answer.reason, answer.msg, data, request.origin, request.path
        )

    def _checkout(self, origin: _Origin, deadline: float) -> _Connection:
        connection = None
        with self._lock:
            idle = self._idle.get(origin, [])
            while idle and connection is None:
                candidate = idle.pop()
                if candidate.idle_and_open():
                    connection = candidate
                else:
                    candidate.close()
        if connection is None:
            connection = _Connection(origin, _tls_context() if origin.scheme == "https" else None)
        connection.set_deadline(deadline)
        return connection

    def _checkin(self, origin: _Origin, connection: _Connection) -> None:
        with self._lock:
            idle = self._idle.setdefault(origin, [])
            if len(idle) < MAX_IDLE_CONNECTIONS:
                idle.append(connection)
                return
        connection.close()

    # --- authentication

    def _challenged(self, response: _Response, what: str) -> bool:
        """Whether the answer is the registry's 401; if so, remembers its challenge."""
        if response.status != 401 or response.origin != self._origin:
            return False
        challenge = _challenge(response.headers.get_all("WWW-Authenticate") or [])
        if challenge is None:
            said, code = _registry_said(response)
            raise AuthenticationError(
                f"{what}: {said}, with no Basic or Bearer challenge", status=401, code=code
            )
        self._challenge = challenge
        return True

    def _user_credentials(self) -> Credentials:
        """docker's credentials for this host, looked up once (when first needed)."""
        with self._credentials_lock:
            if self._credentials is None:
                self._credentials = docker_credentials(
                    self.host, self._docker_config, self._timeout
                )
            return self._credentials

    def _may_send_credentials(self) -> bool:
        return self._origin.scheme == "https" or is_loopback(self._origin.host)

    def _without_credentials(self) -> str:
        """Why a request went without credentials."""
        if not self._may_send_credentials():
            return f"credentials are not sent over plain HTTP to {self.host} (not loopback)"
        return (
            f"no credentials for {auth_config_key(self.host)} in docker's config"
            f" (docker login {self.host})"
        )

    def _authorization(
        self, scope: str, deadline: float, what: str, refused: _Authorization | None = None
    ) -> _Authorization | None:
        """The Authorization for a request in `scope`, as the registry's last challenge
        wants it (None before any): Basic credentials, or a Bearer token from the cache
        (but `refused`, the one a 401 answered: another thread's newer token, or a new
        one)."""
        challenge = self._challenge
        if challenge is None:
            return None
        if challenge.scheme == "basic":
            credentials = self._user_credentials() if self._may_send_credentials() else None
            if not credentials or not credentials.basic:
                raise AuthenticationError(
                    f"{what}: the registry wants a username and password; "
                    + self._without_credentials(),
                    status=401,
                )
            return _Authorization(_basic_authorization(credentials), True, True)
        key = (challenge.params.get("realm", ""), challenge.params.get("service", ""), scope)
        with self._token_lock:
            token = self._tokens.get(key)
            if (
                token is None
                or time.monotonic() >= token.renew_at
                or (refused is not None and refused.header == f"Bearer {token.value}")
            ):
                token = self._fetch_token(challenge, scope, deadline, what)
                self._tokens[key] = token
                fresh = True
            else:
                fresh = refused is not None  # not the token refused: its 401 would be final
        return _Authorization(f"Bearer {token.value}", fresh, token.authenticated)

    def _fetch_token(self, challenge: _Challenge, scope: str, deadline: float, what: str) -> _Token:
        """A token for `scope` from the challenge's realm, as docker/distribution's token
        handler gets one: with an identity token, the OAuth2 POST (grant_type
        refresh_token); else a GET, with the username and password if any (to whatever
        host the registry names for its realm, as docker does; over HTTPS, or plain HTTP
        to loopback only)."""
        realm = challenge.params.get("realm", "")
        try:
            origin, path = _parse_url(realm)
        except ValueError:
            raise AuthenticationError(
                f"{what}: the registry's token realm is not an http(s) URL: {realm!r}"
            ) from None
        if origin.scheme != "https" and not is_loopback(origin.host):
            raise AuthenticationError(
                f"{what}: the registry's token realm {origin} is plain HTTP, not loopback: not used"
            )
        credentials = self._user_credentials() if self._may_send_credentials() else Credentials()
        service = challenge.params.get("service", "")
        headers = {"User-Agent": USER_AGENT}
        body = None
        if credentials.identity_token:
            method = "POST"
            form = {
                "grant_type": "refresh_token",
                "refresh_token": credentials.identity_token,
                "service": service,
                "scope": scope,
                "client_id": OAUTH_CLIENT_ID,
            }
            body = urllib.parse.urlencode(form).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        else:
            method = "GET"
            query = [("service", service)] if service else []
            query.append(("scope", scope))
            if credentials.basic:
                query.append(("account", credentials.username))
                headers["Authorization"] = _basic_authorization(credentials)
            path += ("&" if "?" in path else "?") + urllib.parse.urlencode(query)
        asked = f"{method} {origin}{path.split('?', 1)[0]} (token for {what})"
        try:
            response = self._exchange(
                _Request(method, origin, path, headers, body, deadline, MAX_TOKEN_BYTES)
            )
        except _PlainHTTPAnswer:
            raise RegistryError(f"{asked}: server gave HTTP response to HTTPS client") from None
        if response.status == 403 and credentials:
            raise _failure(asked, response)  # NotAllowed: the credentials are good, not enough
        if response.status in (401, 403):
            said, code = _registry_said(response)
            reason = (
                f"the token server refused the credentials for {auth_config_key(self.host)}"
                if credentials
                else self._without_credentials()
            )
            raise AuthenticationError(
                f"{asked}: {said}; {reason}", status=response.status, code=code
            )
        _expect_success(asked, response)
        document = _json_object(asked, response.body)
        value = document.get("token") or document.get("access_token")
        if not isinstance(value, str) or not _TOKEN68.fullmatch(value):
            raise RegistryError(f"{asked}: the answer has no well-formed token")
        lifetime = document.get("expires_in")
        if not isinstance(lifetime, (int, float)) or isinstance(lifetime, bool) or lifetime <= 0:
            lifetime = DEFAULT_TOKEN_SECONDS
        renew_at = time.monotonic() + lifetime - TOKEN_RENEW_SECONDS
        return _Token(value, renew_at, bool(credentials))

    def _refusal(
        self,
        what: str,
        response: _Response,
        repository: str,
        actions: str,
        authorization: _Authorization | None,
    ) -> RegistryError:
        """The error for a 401 on a request sent with an authorization just got."""
        said, code = _registry_said(response)
        if authorization is not None and authorization.authenticated:
            if authorization.header.startswith("Bearer "):
                return NotAllowed(
                    f"{what}: {said}: not allowed to {_ACTION_WORDS[actions]} {repository}"
                    " (the token server granted fewer actions than asked)",
                    status=401,
                    code=code,
                )
            return AuthenticationError(
                f"{what}: {said}: the credentials for {auth_config_key(self.host)} were refused",
                status=401,
                code=code,
            )
        return AuthenticationError(
            f"{what}: {said}; {self._without_credentials()}", status=401, code=code
        )
