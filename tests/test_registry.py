"""The registry client against in-process fake registries on 127.0.0.1 (and docker's
credential lookup on its own)."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import socket
import stat
import tempfile
import time
import unittest
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler
from typing import Any, TypeVar
from unittest import mock

import registry
from tests.e2e_support import ClosedOnExit
from tests.fake_registry import API_VERSION_HEADER, ClosingRegistry, HangingRegistry, send
from tests.helpers import keep_logs_off_console
from tests.registry_fakes import (
    Exchange,
    LoopbackServer,
    MemoryRegistry,
    TokenFront,
    answering,
    error_body,
    send_error,
    sha256_digest,
    trickling,
    trusting_loopback_tls,
)

T = TypeVar("T")
ServerT = TypeVar("ServerT", bound=ClosedOnExit)

TIMEOUT = 5.0  # for requests that must succeed
SHORT_TIMEOUT = 0.1  # for requests that must give up
REPOSITORY = "gdi/test"
USER, PASSWORD = "tester", "s3cret-passw0rd"

CONFIG_BLOB = b'{"created":"2024-01-02T03:04:05Z","os":"linux","architecture":"amd64"}'
MANIFEST = json.dumps(
    {
        "schemaVersion": 2,
        "mediaType": registry.DOCKER_MANIFEST,
        "config": {
            "mediaType": "application/vnd.docker.container.image.v1+json",
            "size": len(CONFIG_BLOB),
            "digest": sha256_digest(CONFIG_BLOB),
        },
        "layers": [],
    }
).encode()
MANIFEST_DIGEST = sha256_digest(MANIFEST)
ALL_MANIFEST_TYPES = {
    registry.DOCKER_MANIFEST,
    registry.OCI_MANIFEST,
    registry.DOCKER_MANIFEST_LIST,
    registry.OCI_INDEX,
}

# A credential helper: records what it was asked on stdin, answers by the server asked.
HELPER_SCRIPT = r"""#!/bin/sh
[ "$1" = get ] || exit 3
read -r server
printf '%s\n' "$server" >> "$(dirname "$0")/asked"
case "$server" in
  127.0.0.1:*) echo '{"ServerURL":"x","Username":"helper-user","Secret":"helper-secret"}' ;;
  token.example) echo '{"ServerURL":"x","Username":"<token>","Secret":"helper-refresh"}' ;;
  broken.example) echo "helper-output-with-a-secret"; exit 1 ;;
  slow.example) sleep 5 ;;
  *) echo "credentials not found in native keychain"; exit 1 ;;
esac
"""


def basic_auth(user: str, password: str) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode()


class _ShiftedClock:
    """time.monotonic, `offset` seconds ahead: stands in for registry's time module."""

    def __init__(self, offset: float) -> None:
        self.offset = offset

    def monotonic(self) -> float:
        return time.monotonic() + self.offset


class RegistryTestCase(unittest.TestCase):
    def setUp(self) -> None:
        self.config_dir = tempfile.mkdtemp(prefix="gdi-docker-config-")
        self.addCleanup(shutil.rmtree, self.config_dir, True)
        environment = mock.patch.dict(os.environ)
        environment.start()
        self.addCleanup(environment.stop)
        os.environ.pop("DOCKER_AUTH_CONFIG", None)
        keep_logs_off_console(self, "util.run")  # the credential helpers' runs

    def serve(self, server: ServerT) -> ServerT:
        self.addCleanup(server.close)
        return server

    def write_config(self, document: dict[str, Any]) -> None:
        with open(os.path.join(self.config_dir, "config.json"), "w", encoding="utf-8") as file:
            json.dump(document, file)

    def login(self, host: str, user: str = USER, password: str = PASSWORD) -> None:
        self.write_config({"auths": {host: {"auth": basic_auth(user, password)}}})

    def client(
        self, host: str, timeout: float = TIMEOUT, plain_http: bool = True
    ) -> registry.Registry:
        client = registry.Registry(
            host, timeout=timeout, plain_http=plain_http, docker_config=self.config_dir
        )
        self.addCleanup(client.close)
        return client

    def memory_registry(self, **options: Any) -> MemoryRegistry:
        memory = self.serve(MemoryRegistry(**options))
        memory.blobs[sha256_digest(CONFIG_BLOB)] = CONFIG_BLOB
        memory.put_manifest(REPOSITORY, "v1", registry.DOCKER_MANIFEST, MANIFEST)
        return memory

    def scripted(
        self, respond: Callable[[Exchange, BaseHTTPRequestHandler], None]
    ) -> LoopbackServer:
        return self.serve(LoopbackServer(respond))

    def assert_no_secret(self, error: BaseException, *secrets: str) -> None:
        for secret in (PASSWORD, *secrets):
            self.assertNotIn(secret, str(error))
        self.assertNotIn("\n", str(error))

    @contextmanager
    def raises(self, kind: type[registry.RegistryError]) -> Iterator[list[registry.RegistryError]]:
        """assertRaises for a RegistryError of exactly `kind`, checked for one clean line."""
        caught: list[registry.RegistryError] = []
        with self.assertRaises(registry.RegistryError) as context:
            yield caught
        caught.append(context.exception)
        self.assertIs(type(context.exception), kind, str(context.exception))
        self.assert_no_secret(context.exception)


class CredentialsTest(RegistryTestCase):
    def credentials(self, host: str) -> registry.Credentials:
        return registry.docker_credentials(host, self.config_dir, timeout=TIMEOUT)

    def install_helper(self, name: str) -> str:
        """Puts docker-credential-<name> on PATH; returns the file it logs what it was asked."""
        bin_dir = tempfile.mkdtemp(prefix="gdi-helpers-")
        self.addCleanup(shutil.rmtree, bin_dir, True)
        path = os.path.join(bin_dir, f"docker-credential-{name}")
        with open(path, "w", encoding="utf-8") as file:
            file.write(HELPER_SCRIPT)
        os.chmod(path, stat.S_IRWXU)
        os.environ["PATH"] = bin_dir + os.pathsep + os.environ.get("PATH", "")
        return os.path.join(bin_dir, "asked")

    def test_keys_as_docker_names_them(self) -> None:
        self.assertEqual(registry.auth_config_key("docker.io"), "https://index.docker.io/v1/")
        self.assertEqual(registry.auth_config_key("index.docker.io"), "https://index.docker.io/v1/")
        self.assertEqual(registry.auth_config_key("127.0.0.1:5000"), "127.0.0.1:5000")
        self.assertEqual(registry.auth_config_key("ghcr.io"), "ghcr.io")
        for key, host in [
            ("https://127.0.0.1:5000/v1/", "127.0.0.1:5000"),
            ("http://myreg.example", "myreg.example"),
            ("https://user@myreg.example/v2/", "myreg.example"),
            ("myreg.example/v1/", "myreg.example"),
            ("myreg.example:5000", "myreg.example:5000"),
        ]:
            self.assertEqual(registry.config_key_host(key), host, key)

    def test_auths_entry_under_the_host_or_a_legacy_key(self) -> None:
        self.write_config(
            {
                "auths": {
                    "https://127.0.0.1:5000/v1/": {"auth": basic_auth("legacy", "pw1")},
                    "http://plain.example": {"auth": basic_auth("plain", "pw2")},
                    "exact.example": {"auth": basic_auth("exact", "pw3:with:colons\x00")},
                    "https://exact.example/v1/": {"auth": basic_auth("not-this", "pw")},
                    "https://index.docker.io/v1/": {"auth": basic_auth("hubuser", "pw4")},
                    "fields.example": {"username": "fielduser", "password": "pw5"},
                    "token.example": {"auth": basic_auth("00000000", ""), "identitytoken": "rt"},
                }
            }
        )
        cases = {
            "127.0.0.1:5000": ("legacy", "pw1", ""),
            "plain.example": ("plain", "pw2", ""),
            "exact.example": ("exact", "pw3:with:colons", ""),
            "docker.io": ("hubuser", "pw4", ""),
            "fields.example": ("fielduser", "pw5", ""),
            "token.example": ("00000000", "", "rt"),
            "unknown.example": ("", "", ""),
            "127.0.0.1:5001": ("", "", ""),
        }
        for host, expected in cases.items():
            found = self.credentials(host)
            self.assertEqual((found.username, found.password, found.identity_token), expected, host)

    def test_docker_hub_only_under_its_index_key(self) -> None:
        self.write_config({"auths": {"docker.io": {"auth": basic_auth("hubuser", "pw")}}})
        self.assertFalse(self.credentials("docker.io"))

    def test_unreadable_config_is_ignored_with_a_warning(self) -> None:
        for text in (
            "{not json",
            '{"auths": {"h": {"auth": "%%%"}}}',
            '{"auths": {"h": {"auth": "bm9jb2xvbg=="}}}',
        ):
            with open(os.path.join(self.config_dir, "config.json"), "w", encoding="utf-8") as file:
                file.write(text)
            with self.assertLogs("get_docker_image.registry", "WARNING") as logs:
                self.assertFalse(self.credentials("h"))
            self.assertIn("Ignoring docker's config", logs.output[0])
        os.remove(os.path.join(self.config_dir, "config.json"))
        self.assertFalse(self.credentials("h"))  # no config at all: quietly none

    def test_the_default_config_directory(self) -> None:
        os.environ["DOCKER_CONFIG"] = self.config_dir
        self.assertEqual(registry.default_docker_config(), self.config_dir)
        del os.environ["DOCKER_CONFIG"]
        os.environ["HOME"] = "/home/someone"
        self.assertEqual(registry.default_docker_config(), "/home/someone/.docker")

    def test_credential_helpers_get_the_key_on_stdin(self) -> None:
        asked = self.install_helper("fake")
        self.write_config(
            {
                "auths": {"127.0.0.1:5000": {"auth": basic_auth("file-user", "file-pw")}},
                "credHelpers": {"127.0.0.1:5000": "fake", "docker.io": "unused"},
            }
        )
        found = self.credentials("127.0.0.1:5000")
        self.assertEqual((found.username, found.password), ("helper-user", "helper-secret"))
        with open(asked, encoding="utf-8") as file:
            self.assertEqual(file.read(), "127.0.0.1:5000\n")
        self.assertNotIn("helper-secret", repr(found))

    def test_creds_store_for_every_key_and_cred_helpers_first(self) -> None:
        self.install_helper("fake")
        self.write_config(
            {
                "auths": {"elsewhere.example": {"auth": basic_auth("file-user", "file-pw")}},
                "credsStore": "fake",
                "credHelpers": {"plain.example": ""},  # an empty entry: the file's, not the store
            }
        )
        token = self.credentials("token.example")
        self.assertEqual((token.username, token.identity_token), ("", "helper-refresh"))
        # The store has nothing: the file's entry is not used (docker's native store).
        self.assertFalse(self.credentials("elsewhere.example"))
        self.write_config(
            {
                "auths": {"plain.example": {"auth": basic_auth("file-user", "file-pw")}},
                "credsStore": "fake",
                "credHelpers": {"plain.example": ""},
            }
        )
        self.assertEqual(self.credentials("plain.example").username, "file-user")

    def test_a_failing_helper_is_an_authentication_error_without_its_output(self) -> None:
        self.install_helper("fake")
        self.write_config({"credsStore": "fake"})
        with self.raises(registry.AuthenticationError) as caught:
            self.credentials("broken.example")
        self.assertIn("docker-credential-fake failed for broken.example", str(caught[0]))
        self.assertNotIn("helper-output", str(caught[0]))
        self.write_config({"credsStore": "missing-helper"})
        with self.raises(registry.AuthenticationError) as caught:
            self.credentials("any.example")
        self.assertIn("docker-credential-missing-helper", str(caught[0]))

    def test_a_helper_that_hangs_is_stopped(self) -> None:
        self.install_helper("fake")
        self.write_config({"credsStore": "fake"})
        started = time.monotonic()
        with self.raises(registry.AuthenticationError) as caught:
            registry.docker_credentials("slow.example", self.config_dir, timeout=SHORT_TIMEOUT)
        self.assertLess(time.monotonic() - started, 3)
        self.assertIn("no answer", str(caught[0]))

    def test_docker_auth_config_first(self) -> None:
        self.login("127.0.0.1:5000", "file-user", "file-pw")
        env_config = {"auths": {"127.0.0.1:5000": {"auth": basic_auth("env-user", "env-pw")}}}
        os.environ["DOCKER_AUTH_CONFIG"] = json.dumps(env_config)
        self.assertEqual(self.credentials("127.0.0.1:5000").username, "env-user")
        self.assertFalse(self.credentials("other.example"))
        os.environ["DOCKER_AUTH_CONFIG"] = json.dumps({"auths": {"x": {"username": "u"}}})
        with self.assertLogs("get_docker_image.registry", "WARNING"):
            self.assertEqual(self.credentials("127.0.0.1:5000").username, "file-user")

    def test_repr_hides_secrets(self) -> None:
        shown = repr(registry.Credentials("user", "hunter2", "refresh-me"))
        self.assertIn("user", shown)
        self.assertNotIn("hunter2", shown)
        self.assertNotIn("refresh-me", shown)


class ApiTest(RegistryTestCase):
    def test_tags_follow_relative_links_page_after_page(self) -> None:
        memory = self.memory_registry()
        for number in range(10):
            memory.put_manifest(REPOSITORY, f"t{number:02}", registry.DOCKER_MANIFEST, MANIFEST)
        front = self.serve(TokenFront(memory.address, anonymous={"pull"}))
        tags = self.client(front.address).tags(REPOSITORY)
        self.assertEqual(tags, [f"t{number:02}" for number in range(10)] + ["v1"])
        pages = front.requests_to(f"/v2/{REPOSITORY}/tags/list")
        self.assertEqual(len([page for page in pages if "Authorization" in page.headers]), 4)

    def test_tags_follow_absolute_links_and_ask_for_the_page_size(self) -> None:
        memory = self.memory_registry()
        for number in range(5):
            memory.put_manifest(REPOSITORY, f"a{number}", registry.DOCKER_MANIFEST, MANIFEST)
        front = self.serve(TokenFront(memory.address, anonymous={"pull"}, absolute_links=True))
        tags = self.client(front.address).tags(REPOSITORY, page_size=2)
        self.assertEqual(tags, ["a0", "a1", "a2", "a3", "a4", "v1"])
        pages = [page for page in front.requests_to(f"/v2/{REPOSITORY}/tags/list")]
        self.assertEqual(pages[0].query["n"], ["2"])

    def test_tags_of_an_unknown_repository_are_not_found(self) -> None:
        memory = self.memory_registry()
        with self.raises(registry.NotFound) as caught:
            self.client(memory.address).tags("gdi/unknown")
        self.assertEqual(caught[0].code, "NAME_UNKNOWN")
        self.assertEqual(
            str(caught[0]),
            "GET /v2/gdi/unknown/tags/list: 404 Not Found"
            " (NAME_UNKNOWN: repository name not known to registry)",
        )

    def test_a_link_elsewhere_or_back_is_an_error(self) -> None:
        body = json.dumps({"tags": ["a"]}).encode()
        for link in ("<http://other.example/v2/x/tags/list?n=1>", "</v2/gdi/test/tags/list>"):
            headers = [("Link", f'{link}; rel="next"')]
            server = self.scripted(answering(200, body, headers, "application/json"))
            with self.raises(registry.RegistryError):
                self.client(server.address).tags(REPOSITORY)

    def test_manifests_are_asked_for_in_every_manifest_type(self) -> None:
        memory = self.memory_registry()
        client = self.client(memory.address)
        manifest = client.manifest(REPOSITORY, "v1")
        self.assertEqual(manifest.digest, MANIFEST_DIGEST)
        self.assertEqual(manifest.media_type, registry.DOCKER_MANIFEST)
        self.assertEqual(manifest.body, MANIFEST)
        self.assertEqual(manifest.document["config"]["digest"], sha256_digest(CONFIG_BLOB))
        self.assertEqual(client.manifest(REPOSITORY, MANIFEST_DIGEST).digest, MANIFEST_DIGEST)
        self.assertEqual(client.manifest_digest(REPOSITORY, "v1"), MANIFEST_DIGEST)
        self.assertIsNone(client.manifest_digest(REPOSITORY, "v2"))
        self.assertIsNone(client.manifest_digest("gdi/unknown", "v1"))
        for exchange in memory.requests_to(re.compile(r"/v2/.*/manifests/.*")):
            accepted = {value.strip() for value in exchange.headers["Accept"].split(",")}
            self.assertEqual(accepted, ALL_MANIFEST_TYPES, exchange.method)

    def test_a_wrong_digest_header_is_an_error(self) -> None:
        memory = self.memory_registry()
        memory.digest_header = "wrong"
        client = self.client(memory.address)
        with self.raises(registry.RegistryError) as caught:
            client.manifest(REPOSITORY, "v1")
        self.assertIn("the manifest's digest is not sha256:", str(caught[0]))
        self.assertFalse(caught[0].transient)

    def test_without_a_digest_header_the_digest_is_computed(self) -> None:
        memory = self.memory_registry()
        memory.digest_header = "none"
        client = self.client(memory.address)
        self.assertEqual(client.manifest(REPOSITORY, "v1").digest, MANIFEST_DIGEST)
        self.assertEqual(client.manifest_digest(REPOSITORY, "v1"), MANIFEST_DIGEST)
        self.assertEqual(len(memory.requests_to(f"/v2/{REPOSITORY}/manifests/v1", "GET")), 2)

    def test_a_manifest_asked_by_digest_must_have_it(self) -> None:
        memory = self.memory_registry()
        memory.digest_header = "none"
        other = sha256_digest(b"other")
        memory.manifests[other] = (registry.DOCKER_MANIFEST, MANIFEST)
        with self.raises(registry.RegistryError):
            self.client(memory.address).manifest(REPOSITORY, other)

    def test_the_media_type_from_the_document_when_the_content_type_is_generic(self) -> None:
        memory = self.memory_registry()
        memory.put_manifest(REPOSITORY, "generic", "application/json", MANIFEST)
        manifest = self.client(memory.address).manifest(REPOSITORY, "generic")
        self.assertEqual(manifest.media_type, registry.DOCKER_MANIFEST)

    def test_a_manifest_that_is_not_json_is_an_error(self) -> None:
        memory = self.memory_registry()
        memory.put_manifest(REPOSITORY, "bad", registry.OCI_MANIFEST, b"[1, 2]")
        with self.raises(registry.RegistryError) as caught:
            self.client(memory.address).manifest(REPOSITORY, "bad")
        self.assertIn("not a JSON object", str(caught[0]))

    def test_blobs_are_checked_and_bounded(self) -> None:
        memory = self.memory_registry()
        client = self.client(memory.address)
        digest = sha256_digest(CONFIG_BLOB)
        self.assertEqual(client.blob(REPOSITORY, digest, 1024), CONFIG_BLOB)
        with self.raises(registry.RegistryError) as caught:
            client.blob(REPOSITORY, digest, len(CONFIG_BLOB) - 1)
        self.assertIn(f"larger than {len(CONFIG_BLOB) - 1} bytes", str(caught[0]))
        memory.blobs[digest] = b"tampered"
        with self.raises(registry.RegistryError):
            client.blob(REPOSITORY, digest, 1024)
        with self.raises(registry.NotFound) as caught:
            client.blob(REPOSITORY, sha256_digest(b"nothing"), 1024)
        self.assertEqual(caught[0].code, "BLOB_UNKNOWN")

    def test_pushes(self) -> None:
        memory = self.memory_registry()
        client = self.client(memory.address)
        data = b"a small blob"
        self.assertEqual(client.push_blob(REPOSITORY, data), sha256_digest(data))
        self.assertEqual(memory.blobs[sha256_digest(data)], data)
        self.assertEqual(client.push_blob(REPOSITORY, data), sha256_digest(data))
        self.assertEqual(len(memory.requests_to(re.compile(r".*/blobs/uploads/.*"), "POST")), 1)
        digest = client.push_manifest(REPOSITORY, "v2", registry.OCI_MANIFEST, MANIFEST)
        self.assertEqual(digest, MANIFEST_DIGEST)
        self.assertEqual(memory.tags[REPOSITORY]["v2"], MANIFEST_DIGEST)
        put = memory.requests_to(f"/v2/{REPOSITORY}/manifests/v2", "PUT")[0]
        self.assertEqual(put.headers["Content-Type"], registry.OCI_MANIFEST)
        with self.assertRaises(ValueError):
            client.push_manifest(REPOSITORY, sha256_digest(b"x"), registry.OCI_MANIFEST, MANIFEST)

    def test_a_pushed_manifest_reported_under_another_digest_is_an_error(self) -> None:
        def respond(exchange: Exchange, handler: BaseHTTPRequestHandler) -> None:
            send(handler, 201, b"", [("Docker-Content-Digest", sha256_digest(b"else"))])

        server = self.scripted(respond)
        with self.raises(registry.RegistryError):
            self.client(server.address).push_manifest(REPOSITORY, "x", registry.OCI_MANIFEST, b"{}")

    def test_deletes(self) -> None:
        memory = self.memory_registry()
        memory.put_manifest(REPOSITORY, "same", registry.DOCKER_MANIFEST, MANIFEST)
        client = self.client(memory.address)
        client.delete_manifest(REPOSITORY, MANIFEST_DIGEST)
        self.assertEqual(memory.tags[REPOSITORY], {})
        with self.raises(registry.NotFound) as caught:
            client.delete_manifest(REPOSITORY, MANIFEST_DIGEST)
        self.assertEqual(caught[0].code, "MANIFEST_UNKNOWN")
        with self.assertRaises(ValueError):
            client.delete_manifest(REPOSITORY, "v1")

    def test_deletes_disabled_are_unsupported(self) -> None:
        memory = self.memory_registry()
        memory.deletes = False
        with self.raises(registry.Unsupported) as caught:
            self.client(memory.address).delete_manifest(REPOSITORY, MANIFEST_DIGEST)
        self.assertEqual((caught[0].status, caught[0].code), (405, "UNSUPPORTED"))
        self.assertFalse(caught[0].transient)

    def test_405_and_unsupported_are_unsupported(self) -> None:
        answers = [
            (405, b"Method not allowed\n", "text/plain"),  # a read-only distribution
            (400, error_body("UNSUPPORTED", "The operation is unsupported."), "application/json"),
        ]
        for status, body, content_type in answers:
            server = self.scripted(answering(status, body, [API_VERSION_HEADER], content_type))
            with self.raises(registry.Unsupported):
                self.client(server.address).delete_manifest(REPOSITORY, MANIFEST_DIGEST)

    def test_bad_names_are_value_errors(self) -> None:
        client = registry.Registry("registry.example", timeout=1)
        for repository in ("Upper/case", "a//b", "../x", "x?y", ""):
            with self.assertRaises(ValueError):
                client.tags(repository)
        for reference in ("bad tag", "-leading", "sha256:short"):
            with self.assertRaises(ValueError):
                client.manifest("ok", reference)
        for host in ("host/path", "host:99999", ""):
            with self.assertRaises(ValueError):
                registry.Registry(host, timeout=1)

    def test_docker_hub(self) -> None:
        hub = registry.Registry("docker.io", timeout=1)
        self.assertEqual(hub._name("ubuntu"), "library/ubuntu")
        self.assertEqual(hub._name("someone/tool"), "someone/tool")
        self.assertEqual(str(hub._origin), "https://registry-1.docker.io")
        self.assertEqual(registry.Registry("ghcr.io", timeout=1)._name("ubuntu"), "ubuntu")

    def test_many_threads_share_connections_and_tokens(self) -> None:
        memory = self.memory_registry()
        front = self.serve(TokenFront(memory.address, anonymous={"pull"}))
        client = self.client(front.address)
        digest = sha256_digest(CONFIG_BLOB)

        def read(_: int) -> bytes:
            return client.blob(
                REPOSITORY, client.manifest(REPOSITORY, "v1").document["config"]["digest"], 1024
            )

        started = time.monotonic()
        with ThreadPoolExecutor(8) as pool:
            blobs = list(pool.map(read, range(40)))
        self.assertLess(time.monotonic() - started, 5)
        self.assertEqual(set(blobs), {CONFIG_BLOB})
        self.assertEqual(memory.blobs[digest], CONFIG_BLOB)
        self.assertEqual(len(front.token_requests), 1)


class AuthenticationTest(RegistryTestCase):
    def test_basic_credentials_after_the_first_challenge(self) -> None:
        memory = self.memory_registry(users={USER: PASSWORD})
        self.login(memory.address)
        client = self.client(memory.address)
        self.assertEqual(client.tags(REPOSITORY), ["v1"])
        self.assertEqual(client.manifest(REPOSITORY, "v1").digest, MANIFEST_DIGEST)
        client.delete_manifest(REPOSITORY, MANIFEST_DIGEST)
        sent = [exchange.headers.get("Authorization") for exchange in memory.exchanges]
        self.assertEqual(sent, [None] + [f"Basic {basic_auth(USER, PASSWORD)}"] * 3)

    def test_basic_credentials_refused(self) -> None:
        memory = self.memory_registry(users={USER: "another password"})
        self.login(memory.address)
        with self.raises(registry.AuthenticationError) as caught:
            self.client(memory.address).tags(REPOSITORY)
        self.assertIn(f"the credentials for {memory.address} were refused", str(caught[0]))
        self.assertEqual(caught[0].status, 401)
        self.assertEqual(len(memory.exchanges), 2)

    def test_no_credentials(self) -> None:
        memory = self.memory_registry(users={USER: PASSWORD})
        client = self.client(memory.address)
        for _ in range(2):  # the second time without asking: the challenge is known
            with self.raises(registry.AuthenticationError) as caught:
                client.tags(REPOSITORY)
            self.assertIn(f"docker login {memory.address}", str(caught[0]))
        self.assertEqual(len(memory.exchanges), 1)

    def test_bearer_anonymous(self) -> None:
        memory = self.memory_registry()
        front = self.serve(TokenFront(memory.address, anonymous={"pull"}))
        client = self.client(front.address)
        self.assertEqual(client.tags(REPOSITORY), ["v1"])
        self.assertEqual(client.manifest(REPOSITORY, "v1").digest, MANIFEST_DIGEST)
        [token_request] = front.requests_to("/token")
        self.assertIsNone(token_request.headers.get("Authorization"))
        self.assertEqual(
            token_request.query,
            {"service": ["token-front"], "scope": [f"repository:{REPOSITORY}:pull"]},
        )
        with self.raises(registry.AuthenticationError) as caught:
            client.push_blob(REPOSITORY, b"data")
        self.assertIn(f"no credentials for {front.address} in docker's config", str(caught[0]))

    def test_bearer_with_a_password(self) -> None:
        memory = self.memory_registry()
        front = self.serve(TokenFront(memory.address, users={USER: PASSWORD}))
        self.login(front.address)
        client = self.client(front.address)
        client.push_blob(REPOSITORY, b"data")
        self.assertEqual(client.tags(REPOSITORY), ["v1"])
        client.delete_manifest(REPOSITORY, MANIFEST_DIGEST)
        asked = front.requests_to("/token")
        self.assertEqual(
            [exchange.query["scope"] for exchange in asked],
            [
                [f"repository:{REPOSITORY}:{actions}"]
                for actions in ("pull,push", "pull", "pull,delete")
            ],
        )
        for exchange in asked:
            self.assertEqual(
                exchange.headers["Authorization"], f"Basic {basic_auth(USER, PASSWORD)}"
            )
            self.assertEqual(exchange.query["account"], [USER])
        self.assertEqual(memory.tags[REPOSITORY], {})

    def test_bearer_with_an_identity_token(self) -> None:
        memory = self.memory_registry()
        front = self.serve(TokenFront(memory.address, users={USER: PASSWORD}))
        refresh = "refresh-token-value"
        front._refresh[refresh] = USER
        self.write_config(
            {
                "auths": {
                    front.address: {"auth": basic_auth("<token>", ""), "identitytoken": refresh}
                }
            }
        )
        client = self.client(front.address)
        self.assertEqual(client.tags(REPOSITORY), ["v1"])
        [asked] = front.requests_to("/token")
        self.assertEqual(asked.method, "POST")
        self.assertEqual(asked.headers["Content-Type"], "application/x-www-form-urlencoded")
        form = dict(item.split("=", 1) for item in asked.body.decode().split("&"))
        self.assertEqual(
            {name: form[name] for name in ("grant_type", "refresh_token", "service", "client_id")},
            {
                "grant_type": "refresh_token",
                "refresh_token": refresh,
                "service": "token-front",
                "client_id": "docker",
            },
        )
        self.assertEqual(front.token_requests[0].user, USER)
        front._refresh.clear()
        client.close()
        with self.raises(registry.AuthenticationError) as caught:
            self.client(front.address).tags(REPOSITORY)
        self.assertIn("the token server refused the credentials", str(caught[0]))
        self.assert_no_secret(caught[0], refresh)

    def test_tokens_are_cached_per_scope_until_they_expire(self) -> None:
        memory = self.memory_registry()
        front = self.serve(TokenFront(memory.address, anonymous={"pull"}, expires_in=60))
        client = self.client(front.address)
        for _ in range(3):
            client.manifest(REPOSITORY, "v1")
        self.assertEqual(len(front.token_requests), 1)
        with mock.patch.object(registry, "time", _ShiftedClock(54)):
            client.manifest(REPOSITORY, "v1")
        self.assertEqual(len(front.token_requests), 1)
        # Renewed before it expires: 5 s before, so that it does not expire in flight.
        with mock.patch.object(registry, "time", _ShiftedClock(56)):
            client.manifest(REPOSITORY, "v1")
        self.assertEqual(len(front.token_requests), 2)

    def test_a_token_without_a_lifetime_lives_60_seconds(self) -> None:
        memory = self.memory_registry()
        front = self.serve(TokenFront(memory.address, anonymous={"pull"}, expires_in=None))
        client = self.client(front.address)
        client.manifest(REPOSITORY, "v1")
        with mock.patch.object(registry, "time", _ShiftedClock(50)):
            client.manifest(REPOSITORY, "v1")
        self.assertEqual(len(front.token_requests), 1)
        with mock.patch.object(registry, "time", _ShiftedClock(56)):
            client.manifest(REPOSITORY, "v1")
        self.assertEqual(len(front.token_requests), 2)

    def test_a_revoked_token_is_renewed_once(self) -> None:
        memory = self.memory_registry()
        front = self.serve(TokenFront(memory.address, anonymous={"pull"}))
        client = self.client(front.address)
        client.manifest(REPOSITORY, "v1")
        front.revoke_tokens()
        client.manifest(REPOSITORY, "v1")
        self.assertEqual(len(front.token_requests), 2)

    def test_a_token_with_fewer_actions_than_asked_is_not_allowed(self) -> None:
        memory = self.memory_registry()
        front = self.serve(TokenFront(memory.address, users={USER: PASSWORD}, refused={"delete"}))
        self.login(front.address)
        client = self.client(front.address)
        client.manifest(REPOSITORY, "v1")
        with self.raises(registry.NotAllowed) as caught:
            client.delete_manifest(REPOSITORY, MANIFEST_DIGEST)
        self.assertIn(f"not allowed to delete from {REPOSITORY}", str(caught[0]))
        self.assertTrue(str(caught[0]).startswith(f"DELETE /v2/{REPOSITORY}/manifests/sha256:"))
        self.assertEqual(caught[0].status, 401)
        self.assertEqual(len(front.requests_to(re.compile(".*/manifests/sha256:.*"), "DELETE")), 1)
        # A cached token that the token server no longer honours: renewed once, then final.
        with self.raises(registry.NotAllowed):
            client.delete_manifest(REPOSITORY, MANIFEST_DIGEST)
        self.assertEqual(len(front.requests_to(re.compile(".*/manifests/sha256:.*"), "DELETE")), 3)
        self.assertIn(MANIFEST_DIGEST, memory.manifests)

    def test_the_token_realm_on_another_host_gets_the_credentials_as_docker_sends_them(
        self,
    ) -> None:
        memory = self.memory_registry()
        front = self.serve(
            TokenFront(memory.address, users={USER: PASSWORD}, realm_host="localhost")
        )
        self.login(front.address)
        self.assertEqual(self.client(front.address).tags(REPOSITORY), ["v1"])
        self.assertEqual(front.token_requests[0].user, USER)
        self.assertEqual(front.realm, f"http://localhost:{front.port}/token")

    def test_denied_is_not_allowed(self) -> None:
        def respond(exchange: Exchange, handler: BaseHTTPRequestHandler) -> None:
            if exchange.route == "/token":
                send_error(handler, 403, "DENIED", "requested access to the resource is denied")
            elif exchange.route.endswith("/tags/list"):
                challenge = f'Bearer realm="http://{server.address}/token",service="x"'
                send(handler, 401, b"", [("WWW-Authenticate", challenge)])
            else:
                send_error(handler, 403, "DENIED", "requested access to the resource is denied")

        server = self.scripted(respond)
        self.login(server.address)
        client = self.client(server.address)
        with self.raises(registry.NotAllowed) as caught:
            client.manifest(REPOSITORY, "v1")
        self.assertEqual((caught[0].status, caught[0].code), (403, "DENIED"))
        with self.raises(registry.NotAllowed) as caught:
            client.tags(REPOSITORY)
        self.assertIn(f"GET http://{server.address}/token (token for GET", str(caught[0]))

    def test_a_plain_http_realm_off_loopback_is_not_used(self) -> None:
        def respond(exchange: Exchange, handler: BaseHTTPRequestHandler) -> None:
            challenge = 'Bearer realm="http://auth.example/token",service="x"'
            send(handler, 401, b"", [("WWW-Authenticate", challenge)])

        server = self.scripted(respond)
        self.login(server.address)
        with self.raises(registry.AuthenticationError) as caught:
            self.client(server.address).tags(REPOSITORY)
        self.assertIn("token realm http://auth.example is plain HTTP", str(caught[0]))

    def test_a_401_without_a_challenge(self) -> None:
        server = self.scripted(answering(401, error_body("UNAUTHORIZED", "no")))
        with self.raises(registry.AuthenticationError) as caught:
            self.client(server.address).tags(REPOSITORY)
        self.assertIn("no Basic or Bearer challenge", str(caught[0]))

    def test_no_credentials_over_plain_http_off_loopback(self) -> None:
        memory = self.memory_registry(users={USER: PASSWORD})
        self.login(memory.address)
        with (
            mock.patch.object(registry, "is_loopback", return_value=False),
            self.raises(registry.AuthenticationError) as caught,
        ):
            self.client(memory.address).tags(REPOSITORY)
        self.assertIn("credentials are not sent over plain HTTP", str(caught[0]))
        self.assertEqual(
            [exchange.headers.get("Authorization") for exchange in memory.exchanges], [None]
        )

    def test_redirects_elsewhere_lose_the_authorization(self) -> None:
        memory = self.memory_registry(users={USER: PASSWORD})
        self.login(memory.address)
        storage = self.scripted(answering(200, CONFIG_BLOB, (), "application/octet-stream"))
        memory.blob_redirect = f"localhost:{storage.port}"  # another host, as docker compares them
        blob = self.client(memory.address).blob(REPOSITORY, sha256_digest(CONFIG_BLOB), 1024)
        self.assertEqual(blob, CONFIG_BLOB)
        [stored] = storage.exchanges
        self.assertIsNone(stored.headers.get("Authorization"))
        self.assertIn("Authorization", memory.exchanges[-1].headers)

    def test_an_upload_location_keeps_no_secret_in_messages(self) -> None:
        def respond(exchange: Exchange, handler: BaseHTTPRequestHandler) -> None:
            if exchange.method == "HEAD":
                send(handler, 404)
            elif exchange.method == "POST":
                send(
                    handler,
                    202,
                    b"",
                    [("Location", "/v2/gdi/test/blobs/uploads/u1?_state=upload-secret")],
                )
            else:
                send_error(handler, 500, "UNKNOWN", "storage failed")

        server = self.scripted(respond)
        with self.raises(registry.RegistryError) as caught:
            self.client(server.address).push_blob(REPOSITORY, b"data")
        said = "500 Internal Server Error (UNKNOWN: storage failed)"
        self.assertEqual(str(caught[0]), f"PUT /v2/gdi/test/blobs/uploads/u1: {said}")
        self.assertTrue(caught[0].transient)


class TransportTest(RegistryTestCase):
    def test_https_first_then_plain_http_only_if_allowed(self) -> None:
        memory = self.memory_registry()
        with self.raises(registry.RegistryError) as caught:
            self.client(memory.address, plain_http=False).tags(REPOSITORY)
        self.assertIn("server gave HTTP response to HTTPS client", str(caught[0]))
        self.assertFalse(caught[0].transient)
        self.assertEqual(memory.exchanges, [])
        client = self.client(memory.address)
        self.assertEqual(client.tags(REPOSITORY), ["v1"])
        self.assertEqual(str(client._origin), f"http://{memory.address}")

    def test_no_plain_http_after_another_tls_failure(self) -> None:
        server = self.serve(ClosingRegistry(answer_tls_probe=False, lifetime=10))
        with self.raises(registry.RegistryError) as caught:
            self.client(server.address).tags(REPOSITORY)
        self.assertTrue(caught[0].transient)
        self.assertIsNone(caught[0].status)
        self.assertEqual(server.dropped, 1)

    def test_a_hanging_server_is_given_up_on_in_time(self) -> None:
        server = self.serve(HangingRegistry(lifetime=10))
        started = time.monotonic()
        with self.raises(registry.RegistryError) as caught:
            self.client(server.address, timeout=SHORT_TIMEOUT).manifest(REPOSITORY, "v1")
        self.assertLess(time.monotonic() - started, SHORT_TIMEOUT + 0.5)
        self.assertEqual(
            str(caught[0]), f"GET /v2/{REPOSITORY}/manifests/v1: no answer within 0.1 s"
        )
        self.assertTrue(caught[0].transient)

    def test_a_trickling_server_is_given_up_on_in_time(self) -> None:
        answers = [
            b"HTTP/1.1 200 OK\r\nX-Padding: " + b"x" * 1000,  # in the headers
            b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"{" * 1000,  # in the body
        ]
        for answer in answers:
            server = self.scripted(trickling(answer, interval=0.02))
            started = time.monotonic()
            with self.raises(registry.RegistryError) as caught:
                self.client(server.address, timeout=SHORT_TIMEOUT).manifest(REPOSITORY, "v1")
            self.assertLess(time.monotonic() - started, SHORT_TIMEOUT + 0.5)
            self.assertTrue(caught[0].transient)
            server.close()

    def test_oversized_answers_are_refused(self) -> None:
        big = b"{" + b" " * registry.MAX_MANIFEST_BYTES + b"}"

        def respond(exchange: Exchange, handler: BaseHTTPRequestHandler) -> None:
            if exchange.route.endswith("/chunked"):  # no Content-Length: read up to the bound
                handler.send_response(200)
                handler.send_header("Transfer-Encoding", "chunked")
                handler.end_headers()
                for _ in range(5):
                    handler.wfile.write(b"100000\r\n" + b" " * 0x100000 + b"\r\n")
                handler.wfile.write(b"0\r\n\r\n")
            else:
                send(handler, 200, big, (), registry.DOCKER_MANIFEST)

        server = self.scripted(respond)
        client = self.client(server.address)
        for reference in ("sized", "chunked"):
            with self.raises(registry.RegistryError) as caught:
                client.manifest(REPOSITORY, reference)
            self.assertIn(f"larger than {registry.MAX_MANIFEST_BYTES} bytes", str(caught[0]))

    def test_an_oversized_token_answer_is_refused(self) -> None:
        def respond(exchange: Exchange, handler: BaseHTTPRequestHandler) -> None:
            if exchange.route == "/token":
                send(
                    handler,
                    200,
                    b'{"token": "' + b"a" * registry.MAX_TOKEN_BYTES + b'"}',
                    (),
                    "application/json",
                )
            else:
                challenge = f'Bearer realm="http://{server.address}/token",service="x"'
                send(handler, 401, b"", [("WWW-Authenticate", challenge)])

        server = self.scripted(respond)
        with self.raises(registry.RegistryError) as caught:
            self.client(server.address).tags(REPOSITORY)
        self.assertIn("larger than", str(caught[0]))

    def test_server_errors_and_too_many_requests_are_transient(self) -> None:
        answers = [
            (503, error_body("UNAVAILABLE", "service unavailable"), "UNAVAILABLE"),
            (500, b"<html>\n<body>Internal error</body>\n</html>\n", None),
            (429, error_body("TOOMANYREQUESTS", "slow down"), "TOOMANYREQUESTS"),
        ]
        for status, body, code in answers:
            server = self.scripted(answering(status, body))
            with self.raises(registry.RegistryError) as caught:
                self.client(server.address).tags(REPOSITORY)
            self.assertEqual(
                (caught[0].status, caught[0].code, caught[0].transient), (status, code, True)
            )
            server.close()

    def test_resets_and_early_ends_are_transient(self) -> None:
        for reset in (True, False):
            server = self.serve(ClosingRegistry(reset=reset, lifetime=10))
            with self.raises(registry.RegistryError) as caught:
                self.client(server.address).tags(REPOSITORY)
            self.assertTrue(caught[0].transient, str(caught[0]))
            self.assertIsNone(caught[0].status)
            server.close()

    def test_a_refused_connection_is_not_transient(self) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        with self.raises(registry.RegistryError) as caught:
            self.client(f"127.0.0.1:{port}").tags(REPOSITORY)
        self.assertFalse(caught[0].transient)
        self.assertIn("refused", str(caught[0]))

    def test_an_idle_connection_the_server_closed_is_not_reused(self) -> None:
        memory = self.memory_registry()
        client = self.client(memory.address)
        client.tags(REPOSITORY)
        for connection in list(memory._connections):
            connection.shutdown(socket.SHUT_RDWR)
        time.sleep(0.05)
        self.assertEqual(client.tags(REPOSITORY), ["v1"])

    def test_https(self) -> None:
        memory = self.memory_registry(tls=True)
        data = b"x" * 100_000
        with mock.patch.object(registry, "_tls_context", trusting_loopback_tls):
            client = self.client(memory.address, plain_http=False)
            self.assertEqual(client.tags(REPOSITORY), ["v1"])
            self.assertEqual(client.manifest(REPOSITORY, "v1").body, MANIFEST)
            self.assertEqual(client.push_blob(REPOSITORY, data), sha256_digest(data))
            self.assertEqual(client.blob(REPOSITORY, sha256_digest(data), len(data)), data)
            # A redirect to plain HTTP is not followed.
            memory.blob_redirect = memory.address
            with self.raises(registry.RegistryError) as caught:
                client.blob(REPOSITORY, sha256_digest(CONFIG_BLOB), 1024)
            self.assertIn("redirected from HTTPS to plain HTTP", str(caught[0]))
        self.assertEqual(str(client._origin), f"https://{memory.address}")
        self.assertEqual(len(memory._connections), 1)  # kept alive all along

    def test_an_untrusted_certificate(self) -> None:
        memory = self.memory_registry(tls=True)
        with self.raises(registry.RegistryError) as caught:
            self.client(memory.address).tags(REPOSITORY)
        self.assertIn("TLS certificate not trusted", str(caught[0]))
        self.assertFalse(caught[0].transient)
        self.assertEqual(memory.exchanges, [])

    def test_no_upload_from_https_to_plain_http(self) -> None:
        client = registry.Registry("registry.example", timeout=1)
        with self.raises(registry.RegistryError):
            client._locate("http://registry.example/v2/x/blobs/uploads/1")


if __name__ == "__main__":
    unittest.main()
