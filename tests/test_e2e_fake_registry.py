"""The fake registries: quick checks over plain HTTP, then a few with the real docker CLI."""

from __future__ import annotations

import http.client
import json
import socket
import subprocess
import threading
import time
import unittest
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.e2e_support import (
    busybox_image,
    busybox_problem,
    docker,
    e2e_problem,
    image_id,
    registry_tags,
    remove_images,
    test_registry,
)
from tests.fake_registry import (
    DOCKER_MESSAGES,
    DOCKER_RESULTS,
    DROP,
    ClosingRegistry,
    FlakyRegistry,
    HangingRegistry,
    docker_message_pattern,
)

# The start of a TLS ClientHello, as docker sends before falling back to plain HTTP.
TLS_HELLO = b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + bytes(32)


class _EchoHandler(BaseHTTPRequestHandler):
    """An upstream that answers every request with what it received, as JSON."""

    protocol_version = "HTTP/1.1"

    def _echo(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        answer = json.dumps(
            {
                "method": self.command,
                "path": self.path,
                "headers": list(self.headers.items()),
                "body": body.decode(errors="replace"),
            }
        ).encode()
        self.send_response(202 if self.path.endswith("/uploads/") else 200)
        host = self.headers["Host"]
        self.send_header("Location", f"http://{host}/v2/x/blobs/uploads/abc?_state=1")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(answer)

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _echo

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def echo_upstream() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _EchoHandler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def request(
    address: str,
    method: str,
    path: str,
    body: bytes | None = None,
    *,
    headers: list[tuple[str, str]] | None = None,
    chunked: bool = False,
) -> tuple[int, http.client.HTTPMessage, bytes]:
    connection = http.client.HTTPConnection(address, timeout=10)
    try:
        connection.putrequest(method, path)
        for name, value in headers or []:
            connection.putheader(name, value)
        if chunked:
            connection.putheader("Transfer-Encoding", "chunked")
            connection.endheaders()
            for piece in (body or b"", b""):
                connection.send(b"%x\r\n%s\r\n" % (len(piece), piece) if piece else b"0\r\n\r\n")
        else:
            if body is not None:
                connection.putheader("Content-Length", str(len(body)))
            connection.endheaders(body)
        response = connection.getresponse()
        return response.status, response.headers, response.read()
    finally:
        connection.close()


def echoed(body: bytes) -> dict[str, object]:
    answer: dict[str, object] = json.loads(body)
    return answer


class DockerMessagesTest(unittest.TestCase):
    def test_patterns_fill_in_what_is_known(self) -> None:
        pattern = docker_message_pattern("pull_reset", address="127.0.0.1:5000")
        stderr = (
            'Error response from daemon: Get "http://127.0.0.1:5000/v2/": read tcp'
            " 127.0.0.1:41330->127.0.0.1:5000: read: connection reset by peer\n"
        )
        self.assertRegex(stderr, pattern)
        self.assertNotRegex(stderr.replace("5000", "5001"), pattern)
        self.assertNotRegex("x" + stderr, pattern)

    def test_every_entry_is_a_usable_template(self) -> None:
        for name, (status, stderr) in DOCKER_RESULTS.items():
            with self.subTest(name):
                self.assertIn(status, (1, 125))
                self.assertFalse(stderr.endswith("\n"))
                docker_message_pattern(name)


class FlakyRegistryTest(unittest.TestCase):
    def test_fails_the_first_matching_requests_then_proxies(self) -> None:
        with echo_upstream() as upstream, FlakyRegistry(upstream, 2, paths="/manifests/") as flaky:
            self.assertEqual(request(flaky.address, "GET", "/v2/")[0], 200)  # does not match
            statuses = [request(flaky.address, "GET", "/v2/a/manifests/1")[0] for _ in range(3)]
            self.assertEqual(statuses, [503, 503, 200])
            self.assertEqual((flaky.failed, flaky.proxied), (2, 2))
            self.assertEqual(
                flaky.requests,
                [
                    ("GET", "/v2/", 200),
                    ("GET", "/v2/a/manifests/1", 503),
                    ("GET", "/v2/a/manifests/1", 503),
                    ("GET", "/v2/a/manifests/1", 200),
                ],
            )

    def test_failure_answer_looks_like_a_registry_error(self) -> None:
        with echo_upstream() as upstream, FlakyRegistry(upstream, 1, status=500) as flaky:
            status, headers, body = request(flaky.address, "GET", "/v2/")
        self.assertEqual(status, 500)
        self.assertEqual(headers["Docker-Distribution-API-Version"], "registry/2.0")
        self.assertEqual(json.loads(body)["errors"][0]["code"], "UNAVAILABLE")

    def test_minus_one_fails_forever_and_methods_narrow_it(self) -> None:
        with echo_upstream() as upstream, FlakyRegistry(upstream, -1, methods=["put"]) as flaky:
            for _ in range(5):
                self.assertEqual(request(flaky.address, "PUT", "/v2/a/manifests/1", b"{}")[0], 503)
            self.assertEqual(request(flaky.address, "GET", "/v2/a/manifests/1")[0], 200)
            self.assertEqual(flaky.failed, 5)

    def test_drop_closes_without_an_answer(self) -> None:
        with echo_upstream() as upstream, FlakyRegistry(upstream, 1, DROP) as flaky:
            with self.assertRaises(http.client.RemoteDisconnected):
                request(flaky.address, "GET", "/v2/")
            self.assertEqual(request(flaky.address, "GET", "/v2/")[0], 200)

    def test_forwards_method_headers_and_bodies(self) -> None:
        with echo_upstream() as upstream, FlakyRegistry(upstream, 0) as flaky:
            accept = [("Accept", "type/one"), ("Accept", "type/two")]
            _, _, body = request(flaky.address, "GET", "/v2/a/manifests/1?x=1", headers=accept)
            got = echoed(body)
            self.assertEqual(got["path"], "/v2/a/manifests/1?x=1")
            headers = [tuple(pair) for pair in got["headers"]]  # type: ignore[attr-defined]
            self.assertIn(("Host", upstream), headers)
            self.assertEqual([pair for pair in headers if pair[0] == "Accept"], accept)

            _, _, body = request(flaky.address, "PATCH", "/v2/a/blobs/uploads/u", b"layer bytes")
            self.assertEqual(
                (echoed(body)["method"], echoed(body)["body"]), ("PATCH", "layer bytes")
            )

            _, _, body = request(flaky.address, "PUT", "/v2/b", b"chunked " * 1000, chunked=True)
            self.assertEqual(echoed(body)["body"], "chunked " * 1000)

    def test_rewrites_locations_to_point_back_at_the_proxy(self) -> None:
        with echo_upstream() as upstream, FlakyRegistry(upstream, 0) as flaky:
            status, headers, _ = request(flaky.address, "POST", "/v2/x/blobs/uploads/", b"")
        self.assertEqual(status, 202)
        self.assertEqual(
            headers["Location"], f"http://{flaky.address}/v2/x/blobs/uploads/abc?_state=1"
        )

    def test_head_keeps_the_upstream_length(self) -> None:
        with echo_upstream() as upstream, FlakyRegistry(upstream, 0) as flaky:
            status, headers, body = request(flaky.address, "HEAD", "/v2/a/blobs/sha256:0")
        self.assertEqual((status, body), (200, b""))
        self.assertGreater(int(headers["Content-Length"]), 0)

    def test_upstream_down_is_a_502(self) -> None:
        with socket.socket() as unused:
            unused.bind(("127.0.0.1", 0))
            upstream = f"127.0.0.1:{unused.getsockname()[1]}"
            with FlakyRegistry(upstream, 0) as flaky:
                self.assertEqual(request(flaky.address, "GET", "/v2/")[0], 502)

    def test_answers_a_tls_hello_like_a_plain_http_server(self) -> None:
        with (
            echo_upstream() as upstream,
            FlakyRegistry(upstream, 0) as flaky,
            socket.create_connection(("127.0.0.1", flaky.port), timeout=10) as client,
        ):
            client.sendall(TLS_HELLO)
            answer = client.recv(100)
        self.assertTrue(answer.startswith(b"HTTP/1.1 400 "), answer)

    def test_shuts_itself_down_after_its_lifetime(self) -> None:
        with echo_upstream() as upstream:
            flaky = FlakyRegistry(upstream, 0, lifetime=0.5)
            self.assertEqual(request(flaky.address, "GET", "/v2/")[0], 200)
            time.sleep(1)
            self.assertTrue(flaky.closed)
            with self.assertRaises(ConnectionRefusedError):
                request(flaky.address, "GET", "/v2/")
            flaky.close()  # again: harmless


class HangingRegistryTest(unittest.TestCase):
    def test_answers_the_ping(self) -> None:
        with HangingRegistry() as hanging:
            status, headers, body = request(hanging.address, "GET", "/v2/")
        self.assertEqual((status, body), (200, b"{}"))
        self.assertEqual(headers["Docker-Distribution-API-Version"], "registry/2.0")

    def test_holds_other_requests_until_its_lifetime_ends(self) -> None:
        with HangingRegistry(lifetime=1) as hanging:
            started = time.monotonic()
            with self.assertRaises((http.client.RemoteDisconnected, ConnectionError)):
                request(hanging.address, "GET", "/v2/a/manifests/1")
            self.assertGreater(time.monotonic() - started, 0.9)
            self.assertEqual(hanging.held, 1)

    def test_close_releases_held_requests(self) -> None:
        hanging = HangingRegistry()
        errors: list[BaseException] = []

        def held_request() -> None:
            try:
                request(hanging.address, "HEAD", "/v2/a/manifests/1")
            except (http.client.HTTPException, OSError) as error:
                errors.append(error)

        thread = threading.Thread(target=held_request)
        thread.start()
        while not hanging.held:
            time.sleep(0.01)
        hanging.close()
        thread.join(timeout=10)
        self.assertFalse(thread.is_alive())
        self.assertEqual(len(errors), 1)


class ClosingRegistryTest(unittest.TestCase):
    def test_reset(self) -> None:
        with ClosingRegistry() as closing:
            with self.assertRaises(ConnectionResetError):
                request(closing.address, "GET", "/v2/")
            self.assertEqual(closing.dropped, 1)

    def test_clean_close(self) -> None:
        with (
            ClosingRegistry(reset=False) as closing,
            self.assertRaises(http.client.RemoteDisconnected),
        ):
            request(closing.address, "GET", "/v2/")

    def test_tls_probe_answered_or_not(self) -> None:
        for answer_tls_probe in (True, False):
            with (
                self.subTest(answer_tls_probe=answer_tls_probe),
                ClosingRegistry(answer_tls_probe=answer_tls_probe) as closing,
            ):
                with socket.create_connection(("127.0.0.1", closing.port), timeout=10) as client:
                    client.sendall(TLS_HELLO)
                    try:
                        answer = client.recv(100)
                    except ConnectionResetError:
                        answer = b"reset"
                self.assertEqual(answer.startswith(b"HTTP/"), answer_tls_probe, answer)


PROBLEM = e2e_problem() or busybox_problem()


@unittest.skipIf(PROBLEM, PROBLEM or "")
class WithRealDockerTest(unittest.TestCase):
    """The fakes as docker itself sees them (the messages are DOCKER_MESSAGES')."""

    def setUp(self) -> None:
        self.upstream = test_registry()
        self.repository = f"gdi-fake-registry/{uuid.uuid4().hex[:12]}"
        self.addCleanup(remove_images, self.repository)
        self.addCleanup(remove_images, self.repository + "-pull")

    def manifest_inspect(self, reference: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["docker", "manifest", "inspect", "--insecure", reference],
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )

    def test_manifest_inspect_through_a_flaky_proxy(self) -> None:
        base = busybox_image(self.upstream)
        path = base.split("/", 1)[1]
        with FlakyRegistry(self.upstream, 2, paths="/manifests/") as flaky:
            failed = self.manifest_inspect(f"{flaky.address}/{path}")
            self.assertEqual(failed.returncode, 1)
            self.assertEqual(failed.stderr, DOCKER_MESSAGES["manifest_inspect_503"] + "\n")
            found = self.manifest_inspect(f"{flaky.address}/{path}")
            self.assertEqual(found.returncode, 0, found.stderr)
            self.assertEqual(json.loads(found.stdout)["schemaVersion"], 2)
            self.assertEqual(flaky.failed, 2)

    def test_push_and_pull_through_a_flaky_proxy_succeed_after_the_failures(self) -> None:
        base = busybox_image(self.upstream)
        with FlakyRegistry(self.upstream, 2, paths="/blobs/") as flaky:
            pushed = f"{flaky.address}/{self.repository}:1"
            docker("tag", base, pushed)
            push = docker("push", pushed, check=False)
            self.assertEqual(push.returncode, 0, push.stderr)
            self.assertEqual(flaky.failed, 2)
            self.assertEqual(registry_tags(self.upstream, self.repository), ["1"])

        # Pull an image the engine does not have: its own variant, removed locally.
        variant = busybox_image(self.upstream, self.repository + "-pull", variant="pull")
        variant_id = image_id(variant)
        docker("image", "rm", variant)
        with FlakyRegistry(self.upstream, 2, paths="/blobs/") as flaky:
            pulled = f"{flaky.address}/{self.repository}-pull:1"
            pull = docker("pull", pulled, check=False)
            self.assertEqual(pull.returncode, 0, pull.stderr)
            self.assertEqual(flaky.failed, 2)
            self.assertEqual(image_id(pulled), variant_id)

    def test_hanging_registry_holds_docker_until_its_lifetime_ends(self) -> None:
        with HangingRegistry(lifetime=3) as hanging:
            started = time.monotonic()
            completed = self.manifest_inspect(f"{hanging.address}/{self.repository}:1")
            self.assertEqual(completed.returncode, 1)
            self.assertGreater(time.monotonic() - started, 2.5)
            self.assertEqual(hanging.held, 1)

    def test_closing_registry_is_a_connection_reset(self) -> None:
        with ClosingRegistry() as closing:
            completed = self.manifest_inspect(f"{closing.address}/{self.repository}:1")
        self.assertEqual(completed.returncode, DOCKER_RESULTS["manifest_inspect_reset"].status)
        pattern = docker_message_pattern("manifest_inspect_reset", address=closing.address)
        self.assertRegex(completed.stderr, pattern)

    def test_recorded_messages_of_the_probe(self) -> None:
        """A few DOCKER_RESULTS entries, checked again against this machine's docker."""
        base = busybox_image(self.upstream)
        path = base.split("/", 1)[1]
        missing = f"{self.upstream}/{self.repository}:1"
        with FlakyRegistry(self.upstream, -1, DROP, "/manifests/") as dropping:
            dropped = f"{dropping.address}/{path}"
            checks = [
                ("manifest_inspect_missing", missing, {"reference": missing}),
                ("manifest_inspect_manifest_dropped", dropped, {"address": dropping.address}),
                ("manifest_inspect_uppercase", f"{self.upstream}/Bad/Name:1", {}),
                ("manifest_inspect_space", f"{self.upstream}/bad name:1", {}),
                ("manifest_inspect_invalid_port", "127.0.0.1:99999/x:1", {"port": "99999"}),
            ]
            for name, reference, values in checks:
                with self.subTest(name):
                    completed = self.manifest_inspect(reference)
                    self.assertEqual(completed.returncode, DOCKER_RESULTS[name].status)
                    self.assertRegex(completed.stderr, docker_message_pattern(name, **values))


@unittest.skipIf(PROBLEM, PROBLEM or "")
class BusyboxImageTest(unittest.TestCase):
    def test_is_a_base_image_with_a_shell(self) -> None:
        base = busybox_image(test_registry())
        self.assertEqual(busybox_image(test_registry()), base)  # cached: same reference
        repository = f"gdi-fake-registry/{uuid.uuid4().hex[:12]}"
        self.addCleanup(remove_images, repository)
        built = subprocess.run(
            ["docker", "build", "--tag", repository, "-"],
            input=f"FROM {base}\nRUN echo hi > /hi && ls /bin/sh\n",
            capture_output=True,
            text=True,
            check=False,
        )
        self.assertEqual(built.returncode, 0, built.stderr)
        ran = docker("run", "--rm", repository, "cat", "/hi")
        self.assertEqual(ran.stdout, "hi\n")

    def test_a_variant_is_another_image_under_the_same_name(self) -> None:
        registry = test_registry()
        name = f"gdi-fake-registry/{uuid.uuid4().hex[:12]}"
        first = busybox_image(registry, name)
        first_id = image_id(first)
        moved = busybox_image(registry, name, variant="moved")
        self.assertEqual(moved, first)
        self.assertNotEqual(image_id(moved), first_id)
        inspected = self.manifest_digest(moved)
        self.assertEqual(self.variant_label(moved), "moved")
        self.assertEqual(busybox_image(registry, name), first)  # back again
        # The first variant's content (not always its image ID: other test
        # modules running meanwhile may remove the images the engine's build
        # cache would reuse).
        self.assertIsNone(self.variant_label(first))
        self.assertNotEqual(self.manifest_digest(first), inspected)

    def variant_label(self, reference: str) -> str | None:
        inspected = docker("image", "inspect", "--format", "{{json .Config.Labels}}", reference)
        labels: dict[str, str] = json.loads(inspected.stdout) or {}
        return labels.get("gdi-test.variant")

    def manifest_digest(self, reference: str) -> str:
        inspected = docker("manifest", "inspect", "--insecure", "--verbose", reference)
        digest: str = json.loads(inspected.stdout)["Descriptor"]["digest"]
        return digest


if __name__ == "__main__":
    unittest.main()
