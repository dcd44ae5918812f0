"""--build-lock against an in-process registry (tests/registry_fakes.MemoryRegistry):
markers read and written, leases judged by their stated end and by our own clock, the
read-back race, release by delete or by "released", the timeout, the usage errors.

BuildLock itself, with the image's presence a function of the test's; then the CLI with
the recording docker (tests/fake_docker.py), whose FAKE_DOCKER_REGISTRY directory holds
the image (FAKE_DOCKER_SCRIPT makes "another job" push it) while the markers go to the
MemoryRegistry over HTTP. The tool's clock is a FakeClock: its sleeps return at once and
move its time on, so that a wait of minutes takes milliseconds; what the other jobs do
meanwhile, a test does from the clock's `on_sleep`.
"""

from __future__ import annotations

import base64
import json
import os
import re
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import Any
from unittest import mock

import get_docker_image
import registry
from get_docker_image import (
    BuildLock,
    LockMarker,
    LockState,
    RegistryAccess,
    Retries,
    compute_tag,
    is_lock_tag,
    read_lock_marker,
)
from tests.fixtures import CTX, DOCKERFILE, FAKE_DOCKER, File, build_tree
from tests.helpers import Result, ScratchDirTestCase, run_main
from tests.registry_fakes import Exchange, MemoryRegistry, TokenFront, send_error

REPOSITORY = "team/app"
OTHER_HOLDER = "runner-7/4242"
ALLOWANCE = get_docker_image.CLOCK_ALLOWANCE_SECONDS
NO_SUCH_MANIFEST = "no such manifest: the image"
MANIFEST_BY_DIGEST = re.compile(rf"/v2/{REPOSITORY}/manifests/sha256:[0-9a-f]{{64}}")


class FakeClock:
    """The `time` module as get_docker_image sees it: sleep() returns at once, moving
    time() and monotonic() on by what it slept (then calls `on_sleep(seconds)`, where a
    test plays the other jobs); everything else is the real module's. Past MAX_SLEEPS
    sleeps it raises instead: the tool is going round in circles."""

    MAX_SLEEPS = 200

    def __init__(self) -> None:
        self.offset = 0.0
        self.sleeps: list[float] = []
        self.on_sleep: Callable[[float], object] | None = None
        self.start: float | None = None  # set: time() is start + offset, no real time passes

    def time(self) -> float:
        return (time.time() if self.start is None else self.start) + self.offset

    def monotonic(self) -> float:
        return time.monotonic() + self.offset

    def sleep(self, seconds: float) -> None:
        if len(self.sleeps) >= self.MAX_SLEEPS:
            raise RuntimeError(f"slept {len(self.sleeps)} times: the lock goes round in circles")
        self.offset += seconds
        self.sleeps.append(seconds)
        if self.on_sleep is not None:
            self.on_sleep(seconds)

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


class HookedRegistry(MemoryRegistry):
    """A MemoryRegistry that calls `on_put(reference, body)` after it stored a manifest
    (from the thread that stored it: a server thread for a PUT), and answers a GET of a
    manifest by a tag of `hidden` 404 (`hidden[tag]` times; -1: always), as a registry
    that shows writes late."""

    on_put: Callable[[str, bytes], None] | None = None

    def __init__(self) -> None:
        super().__init__(lifetime=30)
        self.hidden: dict[str, int] = {}

    def put_manifest(self, repository: str, tag: str, media_type: str, body: bytes) -> str:
        digest = super().put_manifest(repository, tag, media_type, body)
        if self.on_put is not None:
            self.on_put(tag, body)
        return digest

    def respond(self, exchange: Exchange, handler: BaseHTTPRequestHandler) -> None:
        tag = exchange.route.rsplit("/manifests/", 1)[-1]
        with self._lock:
            times = self.hidden.get(tag, 0) if exchange.method == "GET" else 0
            if times > 0:
                self.hidden[tag] = times - 1
        if times:
            send_error(handler, 404, "MANIFEST_UNKNOWN", "manifest unknown")
        else:
            super().respond(exchange, handler)


class FlakyRegistry(HookedRegistry):
    """A HookedRegistry that answers 503 (a transient failure) to the requests of
    `flaky`: (method, what, n), the nth request of that method to `what`: "lock" (the
    marker's tag), "digest" (a manifest by digest) or "uploads" (a blob upload)."""

    def __init__(self, flaky: set[tuple[str, str, int]]) -> None:
        super().__init__()
        self.flaky = flaky
        self.counts: dict[tuple[str, str], int] = {}

    def respond(self, exchange: Exchange, handler: BaseHTTPRequestHandler) -> None:
        route = exchange.route
        what = (
            "lock"
            if route.endswith("-lock")
            else "digest"
            if MANIFEST_BY_DIGEST.fullmatch(route)
            else "uploads"
            if route.endswith("/blobs/uploads/")
            else ""
        )
        with self._lock:
            number = self.counts.get((exchange.method, what), 0) + 1
            self.counts[exchange.method, what] = number
        if (exchange.method, what, number) in self.flaky:
            send_error(handler, 503, "UNAVAILABLE", "try again")
        else:
            super().respond(exchange, handler)


class ScriptedStop:
    """The renewal thread's stop event (BuildLock._stop): each wait(), until set, does
    the next of `rounds` and returns False at once (a renewal is due); with no round
    left it waits for set(). `timeouts`: what each wait() was given."""

    def __init__(self, rounds: list[Callable[[], object]]) -> None:
        self.rounds = iter(rounds)
        self.timeouts: list[float | None] = []
        self._event = threading.Event()

    def wait(self, timeout: float | None = None) -> bool:
        self.timeouts.append(timeout)
        action = next(self.rounds, None)
        if action is None:
            return self._event.wait()
        action()
        return False

    def set(self) -> None:
        self._event.set()


def marker_document(
    *,
    holder: str = OTHER_HOLDER,
    token: str = "0123456789abcdef",
    since: float = 1_700_000_000.0,
    expires: float = 1_700_000_060.0,
    lease: float = 60.0,
    renewal: int = 0,
    released: bool = False,
) -> dict[str, Any]:
    return LockMarker(holder, token, since, expires, lease, renewal, released).document()


def annotated(document: dict[str, Any], **annotations: object) -> dict[str, Any]:
    """`document` with these lock annotations changed (a value None removes one)."""
    changed = dict(document["annotations"])
    for name, value in annotations.items():
        key = "io.github.get-docker-image.lock." + name
        if value is None:
            changed.pop(key, None)
        else:
            changed[key] = value
    return {**document, "annotations": changed}


class MarkerTest(ScratchDirTestCase):
    def test_a_marker_reads_back_as_written_to_the_second(self) -> None:
        document = marker_document(since=1_700_000_000.7, expires=1_700_000_060.2, renewal=3)
        self.assertEqual(
            read_lock_marker(document),
            LockMarker(
                OTHER_HOLDER, "0123456789abcdef", 1_700_000_000, 1_700_000_060, 60, 3, False
            ),
        )
        self.assertEqual(document["layers"], [])
        self.assertEqual(document["config"]["mediaType"], "application/vnd.oci.empty.v1+json")
        released = read_lock_marker(marker_document(released=True))
        self.assertTrue(released is not None and released.released)

    def test_broken_annotations_are_no_marker(self) -> None:
        good = marker_document()
        self.assertIsNotNone(read_lock_marker(good))
        broken = {
            "no annotations": {**good, "annotations": None},
            "annotations a list": {**good, "annotations": [good["annotations"]]},
            "no token": annotated(good, token=None),
            "an empty token": annotated(good, token=""),
            "a token not a string": annotated(good, token=7),
            "no since": annotated(good, since=None),
            "since not a time": annotated(good, since="yesterday"),
            "expires on February 30th": annotated(good, expires="2026-02-30T10:00:00Z"),
            "expires without a zone": annotated(good, expires="2026-02-03T10:00:00"),
            "expires far too long": annotated(good, expires="2026-02-03T10:00:00Z" + " " * 40),
            "no lease": annotated(good, lease=None),
            "lease not a number": annotated(good, lease="sixty"),
            "lease nan": annotated(good, lease="nan"),
            "lease infinite": annotated(good, lease="1e999"),
            "no renewal": annotated(good, renewal=None),
            "renewal not a whole number": annotated(good, renewal="1.5"),
            "renewal past int's digit limit": annotated(good, renewal="9" * 5000),
        }
        for why, document in broken.items():
            with self.subTest(why):
                self.assertIsNone(read_lock_marker(document))
        image = {"schemaVersion": 2, "config": {}, "layers": [], "annotations": {"a": "b"}}
        self.assertIsNone(read_lock_marker(image))

    def test_a_marker_without_a_holder_is_held_by_someone_unnamed(self) -> None:
        marker = read_lock_marker(annotated(marker_document(), holder=None))
        self.assertEqual(marker, read_lock_marker(marker_document(holder="?")))

    def test_when_a_lease_is_over_a_golden_table(self) -> None:
        expires = 1_700_000_060.0
        marker = LockMarker(OTHER_HOLDER, "0123456789abcdef", expires - 60, expires, 60, 0, False)
        cases = [
            (marker._replace(released=True), expires - 30, 0.0, "it was released"),
            (marker, expires, 0.0, None),
            (marker, expires + ALLOWANCE, 0.0, None),  # past by the allowance: not more
            (marker, expires + ALLOWANCE + 0.5, 0.0, "its lease ended at 2023-11-14T22:14:20Z"),
            (marker, expires - 30, 60.0, None),  # unchanged for a lease: not longer
            (marker, expires - 30, 60.4, "it was not renewed for 60 s (lease 60 s)"),
            (
                marker._replace(lease=2.5),
                expires - 30,
                3.0,
                "it was not renewed for 3 s (lease 2.5 s)",
            ),
        ]
        for lock, now, unchanged_for, why in cases:
            with self.subTest(now=now, unchanged_for=unchanged_for, lock=lock):
                self.assertEqual(get_docker_image.lease_over(lock, now, unchanged_for), why)

    def test_holder_is_shown_on_one_line(self) -> None:
        document = annotated(marker_document(), holder="evil\n::error::forged\r\nline")
        marker = read_lock_marker(document)
        assert marker is not None
        self.assertNotIn("\n", marker.holder)
        self.assertNotIn("\r", marker.holder)
        self.assertIn("forged", marker.holder)
        long = read_lock_marker(annotated(marker_document(), holder="x" * 10_000))
        assert long is not None
        self.assertLessEqual(len(long.holder), 200)

    def test_lock_tags(self) -> None:
        self.assertTrue(is_lock_tag("image_content_digest_00ff-lock"))
        self.assertFalse(is_lock_tag("image_content_digest_00ff"))
        self.assertFalse(is_lock_tag("latest-lock"))


class FakeClockTestCase(ScratchDirTestCase):
    """A MemoryRegistry for the markers, and the tool's clock a FakeClock."""

    def setUp(self) -> None:
        super().setUp()
        self.memory = HookedRegistry()
        self.addCleanup(self.memory.close)
        self.clock = FakeClock()
        patcher = mock.patch.object(get_docker_image, "time", self.clock)
        patcher.start()
        self.addCleanup(patcher.stop)
        self.tag = "image_content_digest_" + "0f" * 32
        self.lock_tag = self.tag + "-lock"

    def other_marker(self, **fields: Any) -> dict[str, Any]:
        """Another job's marker; by default, by the fake clock, taken 10 s ago and good
        for a minute more."""
        now = self.clock.time()
        values: dict[str, Any] = {"since": now - 10, "expires": now + 60, **fields}
        return marker_document(**values)

    def store_marker(self, document: dict[str, Any]) -> None:
        """Puts a marker in the registry, as another job's write (not over HTTP)."""
        body = json.dumps(document, sort_keys=True).encode()
        self.memory.put_manifest(REPOSITORY, self.lock_tag, registry.OCI_MANIFEST, body)

    def remove_marker(self) -> None:
        """Deletes the marker, as a holder's release does."""
        self.memory.tags.get(REPOSITORY, {}).pop(self.lock_tag, None)

    def marker(self) -> LockMarker | None:
        """The marker the registry has now; None if it has none."""
        digest = self.memory.tags.get(REPOSITORY, {}).get(self.lock_tag)
        if digest is None:
            return None
        return read_lock_marker(json.loads(self.memory.manifests[digest][1]))

    def lock_requests(self, method: str) -> int:
        return len(self.memory.requests_to(f"/v2/{REPOSITORY}/manifests/{self.lock_tag}", method))

    def at_sleep(self, number: int, action: Callable[[], object]) -> None:
        """Does `action` when the tool sleeps for the `number`th time (from 1)."""

        def act(seconds: float) -> None:
            if len(self.clock.sleeps) == number:
                action()

        self.clock.on_sleep = act


class LockTest(FakeClockTestCase):
    """BuildLock: acquire() with the image's presence a function, and release()."""

    def setUp(self) -> None:
        super().setUp()
        self.docker_config = os.path.join(self.root, "docker-config")  # no credentials
        self.pushed = False  # whether "another job" has pushed the image
        self.image_asked = 0

    def lock(
        self, address: str = "", *, lease: float = 5, timeout: float = 3600, retries: int = 0
    ) -> BuildLock:
        client = registry.Registry(
            address or self.memory.address,
            timeout=5,
            plain_http=True,
            docker_config=self.docker_config,
        )
        self.addCleanup(client.close)
        access = RegistryAccess(registry, client, client.host, REPOSITORY, Retries(retries, 0))
        lock = BuildLock(access, self.tag, lease, timeout)
        self.addCleanup(self.release, lock)  # no renewal thread outlives the test; quietly
        return lock

    def image_pushed(self) -> bool:
        self.image_asked += 1
        return self.pushed

    def acquire(self, lock: BuildLock) -> tuple[LockState, list[str]]:
        """lock.acquire(), and what it logged (without the logger's name)."""
        with self.assertLogs("get_docker_image", "INFO") as logs:
            state = lock.acquire(self.image_pushed)
        return state, [record.levelname + " " + record.getMessage() for record in logs.records]

    def release(self, lock: BuildLock) -> list[str]:
        with self.assertLogs("get_docker_image", "INFO") as logs:
            lock.release()
            get_docker_image._log.info("released")  # assertLogs wants a record
        return [record.levelname + " " + record.getMessage() for record in logs.records][:-1]

    def matching(self, lines: list[str], text: str) -> list[str]:
        return [line for line in lines if text in line]

    # --- holding

    def test_a_free_lock_is_held_and_released_by_delete(self) -> None:
        lock = self.lock()
        state, logged = self.acquire(lock)
        self.assertIs(state, LockState.HELD)
        self.assertEqual(lock.waited, 0.0)  # its read-back pause is no wait for another
        self.assertEqual(logged, [f"INFO Took the build lock ({self.lock_tag}, lease 5 s)."])
        renewers = [thread for thread in threading.enumerate() if thread.name == "lock-renewal"]
        self.assertEqual([thread.daemon for thread in renewers], [True])  # never keeps us alive
        self.assertEqual(len(self.clock.sleeps), 1)  # the read-back pause
        self.assertTrue(1.0 <= self.clock.sleeps[0] <= 1.5, self.clock.sleeps)
        marker = self.marker()
        self.assertTrue(marker is not None and not marker.released, marker)
        self.assertEqual(self.release(lock), [f"INFO Released the build lock ({self.lock_tag})."])
        self.assertEqual(len(self.memory.requests_to(MANIFEST_BY_DIGEST, "DELETE")), 1)
        self.assertIsNone(self.marker())

    def test_the_markers_written_in_full_and_the_empty_config_pushed_once(self) -> None:
        self.clock.start = 1_767_225_600.0  # the release: 1 to 1.5 s later (the read-back)
        self.memory.deletes = False  # released by a second write
        bodies: list[bytes] = []
        self.memory.on_put = lambda tag, body: bodies.append(body)
        lock = self.lock(lease=60)
        self.assertIs(self.acquire(lock)[0], LockState.HELD)
        released_at = self.clock.time()
        self.release(lock)
        self.assertEqual(len(bodies), 2, bodies)
        key = "io.github.get-docker-image.lock."
        token = json.loads(bodies[0])["annotations"][key + "token"]
        self.assertRegex(token, r"^[0-9a-f]{16}$")
        holder = f"{os.uname().nodename}/{os.getpid()}"
        start = self.clock.start
        taken = LockMarker(holder, token, start, start + 60, 60, 0, False)
        released = taken._replace(expires=released_at + 60, released=True)
        self.assertEqual(
            [json.loads(body) for body in bodies], [taken.document(), released.document()]
        )
        self.assertEqual(
            bodies[1],
            b'{"annotations": {"io.github.get-docker-image.lock.expires": '
            b'"2026-01-01T00:01:01Z", "io.github.get-docker-image.lock.holder": '
            + json.dumps(holder).encode()
            + b', "io.github.get-docker-image.lock.lease": "60", '
            b'"io.github.get-docker-image.lock.released": "true", '
            b'"io.github.get-docker-image.lock.renewal": "0", '
            b'"io.github.get-docker-image.lock.since": "2026-01-01T00:00:00Z", '
            b'"io.github.get-docker-image.lock.token": "' + token.encode() + b'"}, '
            b'"config": {"digest": '
            b'"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a", '
            b'"mediaType": "application/vnd.oci.empty.v1+json", "size": 2}, "layers": [], '
            b'"mediaType": "application/vnd.oci.image.manifest.v1+json", "schemaVersion": 2}',
        )
        self.assertEqual(json.loads(bodies[0])["annotations"][key + "released"], "false")
        blob_requests = self.memory.requests_to(re.compile(rf"/v2/{REPOSITORY}/blobs/.*"))
        self.assertEqual([exchange.method for exchange in blob_requests], ["HEAD", "POST", "PUT"])
        self.assertEqual(self.memory.blobs[registry.digest_of(b"{}")], b"{}")

    def test_transient_failures_are_retried_and_the_warnings_name_each_request(self) -> None:
        flaky = FlakyRegistry(
            {("GET", "lock", 1), ("POST", "uploads", 1), ("PUT", "lock", 1), ("GET", "lock", 5)}
            | {("DELETE", "digest", 1)}
        )
        self.addCleanup(flaky.close)
        lock = self.lock(flaky.address, lease=60, retries=1)
        state, acquired = self.acquire(lock)
        self.assertIs(state, LockState.HELD)
        retried = "failed for a transient reason; retry 1 of 1 in 0.0 s"
        self.assertEqual(
            acquired + self.release(lock),
            [
                f"WARNING GET lock {retried}",
                f"WARNING PUT lock config {retried}",
                f"WARNING PUT lock {retried}",
                f"INFO Took the build lock ({self.lock_tag}, lease 60 s).",
                f"WARNING GET lock {retried}",
                f"WARNING DELETE lock {retried}",
                f"INFO Released the build lock ({self.lock_tag}).",
            ],
        )
        self.assertNotIn(self.lock_tag, flaky.tags[REPOSITORY])

    def test_where_deletes_are_refused_the_marker_is_marked_released(self) -> None:
        self.memory.deletes = False
        lock = self.lock()
        self.assertIs(self.acquire(lock)[0], LockState.HELD)
        self.assertEqual(self.release(lock), [f"INFO Released the build lock ({self.lock_tag})."])
        marker = self.marker()
        self.assertTrue(marker is not None and marker.released, marker)
        self.assertEqual(self.lock_requests("PUT"), 2)

    def test_where_deletes_are_not_allowed_the_marker_is_marked_released(self) -> None:
        os.mkdir(self.docker_config)
        fronts = {
            "credentials without delete rights": TokenFront(
                self.memory.address, users={"ci": "secret"}, refused={"delete"}
            ),
            "anonymous pushes": TokenFront(self.memory.address, anonymous={"pull", "push"}),
        }
        auth = base64.b64encode(b"ci:secret").decode()
        with open(os.path.join(self.docker_config, "config.json"), "w", encoding="utf-8") as file:
            address = fronts["credentials without delete rights"].address
            json.dump({"auths": {address: {"auth": auth}}}, file)
        for case, front in fronts.items():
            with self.subTest(case), front:
                lock = self.lock(front.address)
                self.assertIs(self.acquire(lock)[0], LockState.HELD)
                released = self.release(lock)
                self.assertEqual(released, [f"INFO Released the build lock ({self.lock_tag})."])
                self.assertEqual(len(front.requests_to(MANIFEST_BY_DIGEST, "DELETE")), 1)
                marker = self.marker()
                self.assertTrue(marker is not None and marker.released, marker)
                self.remove_marker()

    def test_the_holder_renews_its_lease_while_it_builds(self) -> None:
        written: list[LockMarker | None] = []
        self.memory.on_put = lambda tag, body: written.append(read_lock_marker(json.loads(body)))
        lock = self.lock(lease=0.3)  # renewed every 0.1 s
        self.assertIs(self.acquire(lock)[0], LockState.HELD)
        time.sleep(0.45)  # "building"
        self.release(lock)
        markers = [marker for marker in written if marker is not None]
        self.assertGreaterEqual(len(markers), 4, markers)  # taken, then renewed 3 times
        self.assertEqual([marker.renewal for marker in markers], list(range(len(markers))))
        self.assertEqual(len({(marker.token, marker.since) for marker in markers}), 1)
        self.assertEqual({marker.lease for marker in markers}, {0.3})
        self.assertIsNone(self.marker())

    def test_renewals_every_third_of_a_lease_their_failures_and_the_loss(self) -> None:
        # Reads of the marker: 1 to 3 taking it, 4 to 6 the renewals, 7 the release's.
        flaky = FlakyRegistry({("GET", "lock", 5), ("GET", "lock", 7)})
        self.addCleanup(flaky.close)
        written: list[LockMarker | None] = []
        flaky.on_put = lambda tag, body: written.append(read_lock_marker(json.loads(body)))
        lock = self.lock(flaky.address, lease=6)
        stop = ScriptedStop(
            [lambda: None, lambda: None, lambda: flaky.tags[REPOSITORY].pop(self.lock_tag)]
        )
        lock._stop = stop  # type: ignore[assignment]
        with self.assertLogs("get_docker_image", "INFO") as logs:
            self.assertIs(lock.acquire(self.image_pushed), LockState.HELD)
            renewer = next(t for t in threading.enumerate() if t.name == "lock-renewal")
            renewer.join(10)
            lock.release()
        failed = (
            f"GET /v2/{REPOSITORY}/manifests/{self.lock_tag}: 503 Service Unavailable "
            "(UNAVAILABLE: try again)"
        )
        self.assertEqual(
            [record.levelname + " " + record.getMessage() for record in logs.records],
            [
                f"INFO Took the build lock ({self.lock_tag}, lease 6 s).",
                f"WARNING Could not renew the build lock: {failed}",
                f"WARNING Lost the build lock ({self.lock_tag}) to nobody; building on.",
                f"WARNING Could not release the build lock (its lease will end): {failed}",
            ],
        )
        self.assertEqual(stop.timeouts, [2.0, 2.0, 2.0])
        markers = [marker for marker in written if marker is not None]
        self.assertEqual([(m.renewal, m.released) for m in markers], [(0, False), (1, False)])

    def test_a_holder_whose_marker_was_overwritten_builds_on_and_leaves_it(self) -> None:
        puts: list[str] = []

        def overwrite_our_first_renewal(tag: str, body: bytes) -> None:
            puts.append(tag)
            if len(puts) == 2:  # another job's write lands just after it
                self.store_marker(self.other_marker())

        self.memory.on_put = overwrite_our_first_renewal
        lock = self.lock(lease=0.3)
        self.assertIs(self.acquire(lock)[0], LockState.HELD)
        with self.assertLogs("get_docker_image", "WARNING") as logs:
            time.sleep(0.35)  # "building": renewed once, then it finds theirs
        self.assertEqual(
            [record.getMessage() for record in logs.records],
            [f"Lost the build lock ({self.lock_tag}) to {OTHER_HOLDER}; building on."],
        )
        self.assertEqual(self.release(lock), [])
        self.assertEqual(len(puts), 3)  # ours, our first renewal, theirs: then none of ours
        marker = self.marker()  # theirs, not deleted: not ours to release
        self.assertTrue(marker is not None and marker.holder == OTHER_HOLDER, marker)

    def test_a_registry_that_refuses_markers_is_no_lock(self) -> None:
        with TokenFront(self.memory.address, anonymous={"pull"}) as front:
            lock = self.lock(front.address)
            state, logged = self.acquire(lock)
            self.assertEqual(self.release(lock), [])  # no marker of ours: nothing to do
        self.assertIs(state, LockState.UNAVAILABLE)
        self.assertEqual(len(logged), 1, logged)
        self.assertTrue(
            logged[0].startswith("WARNING Cannot use the build lock, building without it: "),
            logged,
        )

    def test_a_lock_that_cannot_be_read_is_no_lock_and_no_wait(self) -> None:
        flaky = FlakyRegistry({("GET", "lock", 1)})
        self.addCleanup(flaky.close)
        lock = self.lock(flaky.address)
        state, logged = self.acquire(lock)
        self.assertIs(state, LockState.UNAVAILABLE)
        self.assertEqual(
            logged,
            [
                "WARNING Cannot use the build lock, building without it: GET /v2/"
                f"{REPOSITORY}/manifests/{self.lock_tag}: 503 Service Unavailable "
                "(UNAVAILABLE: try again)"
            ],
        )
        self.assertEqual(lock.waited, 0.0)

    def test_a_marker_that_cannot_be_written_is_no_lock(self) -> None:
        flaky = FlakyRegistry({("PUT", "lock", 1)})
        self.addCleanup(flaky.close)
        state, logged = self.acquire(self.lock(flaky.address))
        self.assertIs(state, LockState.UNAVAILABLE)
        self.assertEqual(
            logged,
            [
                "WARNING Cannot use the build lock, building without it: PUT /v2/"
                f"{REPOSITORY}/manifests/{self.lock_tag}: 503 Service Unavailable "
                "(UNAVAILABLE: try again)"
            ],
        )

    def test_a_timeout_before_any_holder_was_seen_names_another_job(self) -> None:
        self.memory.hidden[self.lock_tag] = -1  # our write never shows: nobody seen
        state, logged = self.acquire(self.lock(timeout=0.5))
        self.assertIs(state, LockState.TIMED_OUT)
        self.assertRegex(
            logged[-1],
            r"^WARNING Waited [12] s \(--build-lock-timeout\) for the build of another job: "
            r"building anyway\.$",
        )

    def test_a_write_shown_late_is_held_when_it_shows(self) -> None:
        # The read-back finds no marker (the registry shows writes late); the next read
        # finds ours: nobody wrote after it, the lock is ours.
        # The first read, the one before the write, then the read-back.
        self.memory.hidden[self.lock_tag] = 3
        state, logged = self.acquire(self.lock())
        self.assertIs(state, LockState.HELD)
        self.assertEqual(self.matching(logged, "Waiting for"), [])
        self.assertEqual(self.lock_requests("PUT"), 1)
        self.assertEqual(len(self.clock.sleeps), 1)

    def test_a_registry_that_never_shows_the_marker_is_no_lock(self) -> None:
        self.memory.hidden[self.lock_tag] = -1
        state, logged = self.acquire(self.lock())
        self.assertIs(state, LockState.UNAVAILABLE)
        self.assertEqual(self.lock_requests("PUT"), get_docker_image.LOCK_UNSEEN_WRITES)
        warnings = self.matching(logged, "WARNING Cannot use the build lock, building without")
        self.assertEqual(len(warnings), 1, logged)
        self.assertIn("did not show its marker", warnings[0])

    def test_unseen_writes_are_counted_in_a_row_another_marker_seen_resets_them(self) -> None:
        # Two writes unseen; the third read-back finds another job's stale marker (its
        # holder gone): taken over, then two more writes unseen, and the next read finds
        # ours. Never LOCK_UNSEEN_WRITES in a row: the lock is held.
        self.assertEqual(get_docker_image.LOCK_UNSEEN_WRITES, 3)
        self.memory.hidden[self.lock_tag] = 8  # reads 1 to 8: three writes' worth
        now = self.clock.time()

        def registry_meanwhile(seconds: float) -> None:
            if len(self.clock.sleeps) == 3:  # the third read-back
                stale = self.other_marker(since=now - 100, expires=now - ALLOWANCE - 10)
                self.store_marker(stale)
            elif len(self.clock.sleeps) == 4:  # the read-back after taking it over
                self.memory.hidden[self.lock_tag] = 4

        self.clock.on_sleep = registry_meanwhile
        state, logged = self.acquire(self.lock())
        self.assertIs(state, LockState.HELD)
        self.assertEqual(self.lock_requests("PUT"), 5)
        self.assertEqual(len(self.clock.sleeps), 5)  # read-backs only
        self.assertEqual(len(self.matching(logged, "taking it over")), 1, logged)
        self.assertEqual(self.matching(logged, "WARNING"), [])

    # --- waiting

    def test_a_live_lock_is_waited_for_until_the_image_is_pushed(self) -> None:
        self.clock.start = 1_767_225_600.0
        self.store_marker(self.other_marker())
        since = get_docker_image.iso_time(self.clock.time() - 10)
        self.at_sleep(2, lambda: setattr(self, "pushed", True))
        lock = self.lock()
        state, logged = self.acquire(lock)
        self.assertIs(state, LockState.TAKEN)
        self.assertEqual(self.lock_requests("PUT"), 0)
        waiting = self.matching(logged, "Waiting for")
        self.assertEqual(
            waiting,
            [
                f"INFO Waiting for {OTHER_HOLDER}, which holds the build lock since {since} "
                "(lease until 2026-01-01T00:01:00Z)."
            ],
        )
        # Asked for the image, then twice more after a poll of 2.1 to 3.9 s (jitter).
        self.assertEqual(self.image_asked, 3)
        self.assertEqual(len(self.clock.sleeps), 2)
        for seconds in self.clock.sleeps:
            self.assertTrue(2.1 <= seconds <= 3.9, self.clock.sleeps)
        self.assertNotEqual(self.clock.sleeps[0], self.clock.sleeps[1])  # jitter
        self.assertTrue(sum(self.clock.sleeps) <= lock.waited < sum(self.clock.sleeps) + 1)
        self.assertEqual(self.release(lock), [])
        self.assertIsNotNone(self.marker())  # theirs, left alone

    def test_a_marker_past_its_stated_end_is_taken_over_at_once(self) -> None:
        # A stale marker of an earlier run: its lease ended by more than the allowance.
        now = self.clock.time()
        self.store_marker(self.other_marker(since=now - 100, expires=now - ALLOWANCE - 2))
        state, logged = self.acquire(self.lock())
        self.assertIs(state, LockState.HELD)
        self.assertEqual(len(self.clock.sleeps), 1)  # the read-back pause only: no poll
        since = get_docker_image.iso_time(now - 100)
        self.assertEqual(len(logged), 2, logged)
        self.assertTrue(
            logged[0].startswith(
                f"INFO The build lock of {OTHER_HOLDER} (since {since}) is over, "
                "its lease ended at "
            ),
            logged,
        )
        self.assertTrue(logged[0].endswith(": taking it over."), logged)
        self.assertTrue(logged[1].startswith("INFO Took the build lock"), logged)

    def test_a_marker_within_the_clock_allowance_is_taken_over_past_it(self) -> None:
        # Its stated end is 3.5 s past (4.5 s at most, written to the second): less than
        # the allowance (its holder's clock may be behind ours), so it is waited for until
        # its end is past by more, at the first poll. By our clock its lease (an hour) is
        # far from over.
        now = self.clock.time()
        self.store_marker(self.other_marker(expires=now - ALLOWANCE + 1.5, lease=3600))
        state, logged = self.acquire(self.lock())
        self.assertIs(state, LockState.HELD)
        self.assertEqual(len(self.matching(logged, "Waiting for")), 1, logged)
        self.assertEqual(len(self.clock.sleeps), 2)  # one poll (2.1 s or more), the read-back
        taken_over = self.matching(logged, "taking it over")
        self.assertEqual(len(taken_over), 1, logged)
        self.assertIn("its lease ended at", taken_over[0])

    def test_a_marker_not_renewed_for_its_lease_by_our_clock_is_taken_over(self) -> None:
        # Its stated end is an hour away (its holder's clock is ahead), but it has not
        # moved for 5 s of ours: its holder is gone.
        now = self.clock.time()
        self.store_marker(self.other_marker(expires=now + 3600, lease=5))
        state, logged = self.acquire(self.lock())
        self.assertIs(state, LockState.HELD)
        polls = self.clock.sleeps[:-1]  # the last sleep is the read-back pause
        self.assertGreater(sum(polls), 5)
        self.assertLess(sum(polls[:-1]), 5)  # taken over at the first poll past it
        taken_over = self.matching(logged, "taking it over")
        self.assertEqual(len(taken_over), 1, logged)
        self.assertIn("it was not renewed for", taken_over[0])

    def test_a_renewed_marker_is_waited_for_until_the_timeout(self) -> None:
        # The same marker, but its holder renews it between our polls: a live holder,
        # whose build outlasts the timeout.
        now = self.clock.time()
        self.store_marker(self.other_marker(expires=now + 3600, lease=5))
        renewals = iter(range(1, 1000))
        self.clock.on_sleep = lambda seconds: self.store_marker(
            self.other_marker(expires=now + 3600, lease=5, renewal=next(renewals))
        )
        lock = self.lock(timeout=30)
        started = time.monotonic()
        state, logged = self.acquire(lock)
        real_seconds = time.monotonic() - started  # the fake clock's time has it too
        self.assertIs(state, LockState.TIMED_OUT)
        self.assertEqual(self.matching(logged, "taking it over"), [])
        slept = sum(self.clock.sleeps)
        self.assertGreater(slept + real_seconds, 30)
        self.assertLess(slept - self.clock.sleeps[-1], 30)
        waited = re.fullmatch(
            rf"WARNING Waited (\d+) s \(--build-lock-timeout\) for the build of "
            rf"{re.escape(OTHER_HOLDER)}: building anyway\.",
            logged[-1],
        )
        assert waited is not None, logged[-1]
        self.assertTrue(30 <= int(waited[1]) <= round(slept + real_seconds), logged[-1])
        self.assertEqual(self.lock_requests("PUT"), 0)  # theirs stays: no lock taken

    def test_when_another_marker_wins_the_read_back_the_job_waits_for_it(self) -> None:
        # Both found the lock free and wrote; the other's write came last: it holds.
        def other_job(seconds: float) -> None:
            if len(self.clock.sleeps) == 1:  # our read-back pause: their write lands
                self.store_marker(self.other_marker(since=self.clock.time()))
            else:  # a poll: they have pushed
                self.pushed = True

        self.clock.on_sleep = other_job
        lock = self.lock()
        state, logged = self.acquire(lock)
        self.assertIs(state, LockState.TAKEN)
        self.assertEqual(self.lock_requests("PUT"), 1)  # ours, over HTTP
        self.assertEqual(self.matching(logged, "Took the build lock"), [])
        self.assertEqual(len(self.matching(logged, f"Waiting for {OTHER_HOLDER}")), 1, logged)
        self.assertEqual(self.release(lock), [])
        marker = self.marker()  # theirs: ours lost, and is not deleted over it
        self.assertTrue(marker is not None and marker.holder == OTHER_HOLDER, marker)

    def test_a_marker_written_while_the_image_was_asked_for_is_not_overwritten(self) -> None:
        # The lock was free; another job wrote its marker while this one asked for the
        # image (a docker call that may take a while): this one waits, writing nothing.
        def other_writes() -> bool:
            if self.image_asked == 0:
                self.store_marker(self.other_marker(since=self.clock.time()))
            self.image_asked += 1
            return self.image_asked > 2

        lock = self.lock()
        with self.assertLogs("get_docker_image", "INFO") as logs:
            state = lock.acquire(other_writes)
        self.assertIs(state, LockState.TAKEN)
        self.assertEqual(self.lock_requests("PUT"), 0)
        waiting = [record.getMessage() for record in logs.records]
        self.assertEqual(len(self.matching(waiting, f"Waiting for {OTHER_HOLDER}")), 1, waiting)

    def test_a_holder_that_released_without_pushing_is_not_waited_for_again(self) -> None:
        # Its build failed: every waiter builds at once, itself, without the lock.
        for case, release in {
            "deleted": self.remove_marker,
            "marked released": lambda: self.store_marker(self.other_marker(released=True)),
        }.items():
            with self.subTest(case):
                self.store_marker(self.other_marker())
                self.clock.sleeps.clear()
                self.at_sleep(1, release)
                lock = self.lock()
                state, logged = self.acquire(lock)
                self.assertIs(state, LockState.ABANDONED)
                self.assertEqual(len(self.clock.sleeps), 1)  # a poll; no read-back: no lock
                self.assertEqual(self.lock_requests("PUT"), 0)
                self.assertEqual(
                    logged[-1],
                    f"INFO {OTHER_HOLDER} released the build lock without pushing the image "
                    "(its build failed, or it was stopped): building here, without the lock.",
                )
                self.assertGreater(lock.waited, 2)

    def test_a_holder_that_pushed_and_released_is_followed(self) -> None:
        def pushed_and_released() -> None:
            self.pushed = True
            self.remove_marker()

        self.store_marker(self.other_marker())
        self.at_sleep(1, pushed_and_released)
        self.assertIs(self.acquire(self.lock())[0], LockState.TAKEN)

    def test_a_released_lock_found_at_the_start_is_taken(self) -> None:
        # An earlier run's, where deletes are refused: nobody to wait for.
        self.store_marker(self.other_marker(released=True))
        state, logged = self.acquire(self.lock())
        self.assertIs(state, LockState.HELD)
        self.assertEqual(len(logged), 1, logged)
        self.assertTrue(logged[0].startswith("INFO Took the build lock"), logged)


class CommandLineTest(FakeClockTestCase):
    """The CLI with --build-lock, fake docker, and the markers in the MemoryRegistry."""

    def setUp(self) -> None:
        super().setUp()
        build_tree(self.root, [DOCKERFILE, CTX, File("ctx/app.py", b"print('hi')\n")])
        registry_dir = os.path.join(self.root, "registry")
        os.mkdir(registry_dir)
        self.set_env(FAKE_DOCKER_REGISTRY=registry_dir, FAKE_DOCKER_PROBE_STDERR=NO_SUCH_MANIFEST)
        self.tag = compute_tag("", "Dockerfile", "ctx")
        self.lock_tag = self.tag + "-lock"
        self.image = f"{self.memory.address}/{REPOSITORY}:{self.tag}"

    def run_tool(self, *extra: str) -> Result:
        return run_main(
            [
                "--container-registry",
                self.memory.address,
                "--repository",
                REPOSITORY,
                "--dockerfile",
                "Dockerfile",
                "--context",
                "ctx",
                "--docker-path",
                FAKE_DOCKER,
                "--retry-delay",
                "0",
                "--build-lock",
                "5",
                *extra,
            ]
        )

    def pushed_after_probes(self, misses: int) -> None:
        """Another job pushes the image: fake docker finds it at the probe that follows
        `misses` probes that did not (the first of them is the tool's, before the lock)."""
        missed = {"status": 1, "stderr": NO_SUCH_MANIFEST}
        found = {"status": 0, "stdout": "{}", "publish": self.image}
        path = os.path.join(self.root, "script.json")
        with open(path, "w", encoding="utf-8") as file:
            json.dump({"manifest": [missed] * misses + [found]}, file)
        self.set_env(FAKE_DOCKER_SCRIPT=path)

    def subcommands(self) -> list[str]:
        return [argv[0] for argv in self.docker_argvs()]

    def messages(self, result: Result, text: str) -> list[str]:
        """The log lines (less their timestamps) that contain `text`."""
        return [line for line in result.log_messages() if text in line]

    def test_a_free_lock_is_taken_the_image_built_pushed_and_the_lock_released(self) -> None:
        result = self.run_tool()
        self.assertEqual(result.status, 0, result.stderr)
        self.assertEqual(
            self.subcommands(), ["manifest", "manifest", "build", "manifest", "push", "tag"]
        )
        took = self.messages(result, "Took the build lock")
        released = self.messages(result, "Released the build lock")
        self.assertEqual((len(took), len(released)), (1, 1), result.stderr)
        self.assertLess(
            result.log_messages().index(took[0]), result.log_messages().index(released[0])
        )
        self.assertIsNone(self.marker())
        # It waited for nobody: its read-back pause is no wait for another job's build.
        self.assertEqual(
            result.log_messages()[-1],
            f"get_docker_image [INFO] - Built and pushed {self.image} in N s.",
        )

    def test_a_waiter_pulls_what_the_holder_pushed_and_says_how_long_it_waited(self) -> None:
        self.store_marker(self.other_marker())
        self.pushed_after_probes(3)
        result = self.run_tool()
        self.assertEqual(result.status, 0, result.stderr)
        self.assertEqual(self.subcommands(), ["manifest"] * 4 + ["pull", "tag"])
        self.assertEqual(self.lock_requests("PUT"), 0)
        self.assertEqual(len(self.messages(result, f"Waiting for {OTHER_HOLDER}")), 1)
        self.assertEqual(
            self.messages(result, "Another job"),
            ["get_docker_image [INFO] - Another job built and pushed the image: pulling it."],
        )
        closing = result.log_messages()[-1]
        waited = sum(self.clock.sleeps)
        self.assertRegex(
            closing,
            rf"Took {re.escape(self.image)} from another job in N s "
            r"\(waited [0-9]+\.[0-9] s for another job's build\)\.$",
        )
        shown = float(closing.split("(waited ")[1].split()[0])
        self.assertTrue(waited - 0.1 <= shown < waited + 1, (shown, waited))

    def test_a_waiter_whose_pull_fails_fails_with_the_pull_error(self) -> None:
        self.store_marker(self.other_marker())
        self.pushed_after_probes(2)
        self.set_env(FAKE_DOCKER_FAIL="pull")
        result = self.run_tool()
        self.assertEqual(result.status, 1, result.stderr)
        self.assertEqual(
            self.messages(result, "[ERROR]"),
            [
                "get_docker_image [ERROR] - docker pull failed with exit status 3: fake docker: "
                f"pull failed (command: {FAKE_DOCKER} pull {self.image})"
            ],
        )
        self.assertIsNotNone(self.marker())  # theirs, left alone

    def test_a_waiter_that_takes_over_builds_and_says_how_long_it_waited(self) -> None:
        # The holder's marker is not renewed for its lease (5 s) by our clock: gone.
        now = self.clock.time()
        self.store_marker(self.other_marker(expires=now + 3600, lease=5))
        result = self.run_tool()
        self.assertEqual(result.status, 0, result.stderr)
        self.assertEqual(len(self.messages(result, "taking it over")), 1, result.stderr)
        waited = sum(self.clock.sleeps)  # the polls, and the read-back after the wait
        closing = result.log_messages()[-1]
        self.assertRegex(
            closing,
            rf"^get_docker_image \[INFO\] - Built and pushed {re.escape(self.image)} in N s "
            r"\(waited [0-9]+\.[0-9] s for another job's build\)\.$",
        )
        shown = float(closing.split("(waited ")[1].split()[0])
        self.assertTrue(waited - 0.1 <= shown < waited + 1, (shown, waited))

    def test_the_holder_pulls_and_pushes_the_layer_cache(self) -> None:
        result = self.run_tool("--layer-cache")
        self.assertEqual(result.status, 0, result.stderr)
        cache = f"{self.memory.address}/{REPOSITORY}:latest"
        probe = ["manifest", "inspect", "--insecure", self.image]
        self.assertEqual(
            self.docker_argvs(),
            [
                probe,
                probe,
                ["pull", cache],
                [
                    *("build", "--pull", "--cache-from", cache, "--build-arg"),
                    *(
                        "BUILDKIT_INLINE_CACHE=1",
                        "--tag",
                        self.image,
                        "--file",
                        "Dockerfile",
                        "ctx",
                    ),
                ],
                probe,
                ["push", self.image],
                ["tag", self.image, cache],
                ["push", cache],
                ["tag", self.image, REPOSITORY],
            ],
        )

    def test_a_failed_build_releases_the_lock_and_fails_with_its_error(self) -> None:
        self.set_env(FAKE_DOCKER_FAIL="build")
        result = self.run_tool()
        self.assertEqual(result.status, 1)
        self.assertIn("fake docker: build failed", result.stderr)
        self.assertNotIn("push", self.subcommands())
        self.assertIsNone(self.marker())
        self.assertEqual(len(self.messages(result, "Released the build lock")), 1)

    def test_a_waiter_whose_holder_failed_builds_and_fails_with_its_own_error(self) -> None:
        self.store_marker(self.other_marker())
        self.at_sleep(1, self.remove_marker)
        self.set_env(FAKE_DOCKER_FAIL="build")
        result = self.run_tool()
        self.assertEqual(result.status, 1, result.stderr)
        self.assertIn("fake docker: build failed", result.stderr)
        self.assertEqual(self.subcommands().count("build"), 1)
        self.assertEqual(self.lock_requests("PUT"), 0)
        self.assertEqual(len(self.messages(result, "released the build lock without")), 1)

    def test_stopped_while_taking_the_lock_leaves_no_marker(self) -> None:
        def terminate() -> None:
            raise get_docker_image.Terminated

        self.at_sleep(1, terminate)  # during the read-back pause
        result = self.run_tool()
        self.assertEqual(result.status, get_docker_image.EXIT_TERMINATED, result.stderr)
        self.assertEqual(self.lock_requests("PUT"), 1)
        self.assertIsNone(self.marker())
        self.assertNotIn("build", self.subcommands())

    def test_usage_errors(self) -> None:
        registry_options = ["--container-registry", self.memory.address]
        cases = {
            "--build-lock needs --container-registry": ["--build-lock"],
            "--build-lock needs --container-registry and pushing": [
                *registry_options,
                "--no-push",
                "--build-lock",
            ],
            "must be from 1 to 3600: '0.5'": [*registry_options, "--build-lock", "0.5"],
            "must be from 1 to 3600: '3601'": [*registry_options, "--build-lock=3601"],
            "must be from 1 to 3600: 'nan'": [*registry_options, "--build-lock=nan"],
            "must be above 0 to": [
                *registry_options,
                "--build-lock",
                "--build-lock-timeout",
                "0",
            ],
            "--build-lock-timeout goes with --build-lock": [
                *registry_options,
                "--build-lock-timeout",
                "60",
            ],
        }
        common = ["--repository", REPOSITORY, "--docker-path", FAKE_DOCKER]
        for message, argv in cases.items():
            with self.subTest(argv=argv):
                result = run_main([*common, *argv])
                self.assertEqual(result.status, 2, result.stderr)
                self.assertIn(message, result.stderr)
        self.assertEqual(self.docker_calls(), [])
        self.assertEqual(self.memory.exchanges, [])

    def test_help_lists_both_options(self) -> None:
        result = run_main(["--help"])
        self.assertEqual(result.status, 0)
        self.assertIn("--build-lock [SECONDS]", result.stdout)
        self.assertIn("--build-lock-timeout SECONDS", result.stdout)

    def test_the_lease_defaults_to_a_minute_and_the_wait_to_three_hours(self) -> None:
        argv = ["--container-registry", "r.example", "--repository", "a"]
        options = get_docker_image.parse_options([*argv, "--build-lock"])
        self.assertEqual((options.build_lock, options.build_lock_timeout), (60.0, 10800.0))
        self.assertIsNone(get_docker_image.parse_options(argv).build_lock)
