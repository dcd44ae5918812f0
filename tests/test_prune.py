"""--prune-older-than: the decisions (a golden table), build times, the keep list, the
option checks, and whole runs in this process against in-process registries
(tests/registry_fakes.py): the lines printed, the summary, what is left, and how
failures stop the run. No docker engine: a recording docker is never even called.
"""

from __future__ import annotations

import base64
import contextlib
import importlib
import io
import json
import os
import re
import tempfile
import threading
import time
import unittest
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler
from unittest import mock

import get_docker_image
import registry
from get_docker_image import (
    LockMarker,
    PrunePolicy,
    RegistryAccess,
    Retries,
    TagFacts,
    decide_prune,
    iso_time,
    parse_time,
)
from tests.fixtures import CTX, DOCKERFILE, FAKE_DOCKER, File, build_tree
from tests.helpers import Result, ScratchDirTestCase, run_main
from tests.registry_fakes import Exchange, MemoryRegistry, TokenFront, send_error
from tests.registry_images import PushedImage, days_ago, push_test_image, push_test_index

REPOSITORY = "gdi/prune"
USER, PASSWORD = "pruner", "pruner-s3cret"
DAY = 86400.0
# The decisions' clock: 2026-01-01T00:00:00Z.
NOW = 1767225600.0
POLICY = PrunePolicy(older_than=30 * DAY, keep_newest=2, keep_tags_from=None, dry_run=False)


def digest_tag(name: str) -> str:
    return get_docker_image.TAG_PREFIX + name


def fake_digest(name: str) -> str:
    return registry.digest_of(name.encode())


def image(tag: str, days: float | None, digest: str | None = None) -> TagFacts:
    """An image's facts: built `days` before NOW (None: no build time)."""
    created = None if days is None else NOW - days * DAY
    blobs = ((fake_digest(tag + " config"), 100), (fake_digest("shared layer"), 1000))
    return TagFacts(tag, digest or fake_digest(tag), "image", created, blobs, None)


def lock(
    tag: str, since: float, expires: float, *, released: bool = False, lease: float = 60.0
) -> TagFacts:
    """A build-lock marker's facts: held since, and until, these many seconds from NOW."""
    marker = LockMarker("host/1", "token", NOW + since, NOW + expires, lease, 0, released)
    return TagFacts(tag, fake_digest(tag), "lock", NOW + since, (), marker)


def decision(facts: TagFacts, *, delete: bool = True) -> get_docker_image.Decision:
    """A decision as decide_prune makes it: a delete says the build time, a keep "younger"."""
    why = iso_time(facts.created or 0) if delete else "younger"
    return get_docker_image.Decision(facts.tag, delete, why, facts)


def lines(decisions: Sequence[get_docker_image.Decision]) -> list[str]:
    return [
        f"{'delete' if decision.delete else 'keep'} {decision.tag} {decision.why}"
        for decision in decisions
    ]


class DecisionsTest(unittest.TestCase):
    """decide_prune on made-up facts, at a fixed time."""

    def test_golden_table_of_every_rule(self) -> None:
        index = TagFacts(
            digest_tag("index"),
            fake_digest("index"),
            "index",
            None,
            (),
            None,
            (fake_digest("child amd64"), fake_digest("child arm64")),
        )
        facts = [
            image(digest_tag("current"), 100),
            image(digest_tag("listed"), 90),
            image(digest_tag("new1"), 1),
            image(digest_tag("new2"), 2),
            image(digest_tag("young"), 5),
            image(digest_tag("boundary"), 30),  # exactly 30 days: not longer ago
            image(digest_tag("old31"), 31),
            image(digest_tag("withlatest"), 40, fake_digest("latest image")),
            image("latest", 40, fake_digest("latest image")),
            image(digest_tag("withlisted"), 50, fake_digest(digest_tag("listed"))),
            image(digest_tag("pair_a"), 60, fake_digest("pair")),
            image(digest_tag("pair_b"), 60, fake_digest("pair")),
            image("v1", 0.5),  # the newest image, but no digest tag: not counted as one
            image("cache", 400),  # a --layer-cache tag
            index,
            image(digest_tag("inindex"), 70, fake_digest("child arm64")),
            image(digest_tag("epoch"), None),
            TagFacts(digest_tag("schema1"), fake_digest("schema1"), "other", None, (), None),
            lock(digest_tag("aaa-lock"), -10, 50),
            lock(digest_tag("bbb-lock"), -3600, -600),
            lock(digest_tag("ccc-lock"), -100, 50, released=True),
            lock(digest_tag("ddd-lock"), -7200, -3),  # past by less than the clock allowance
            TagFacts(digest_tag("eee-lock"), fake_digest("eee"), "lock", None, (), None),
        ]
        listed = {digest_tag("listed")}
        decisions = decide_prune(facts, digest_tag("current"), listed, POLICY, NOW)
        self.assertEqual(
            lines(decisions),
            [
                "keep image_content_digest_aaa-lock live build lock",
                "delete image_content_digest_ccc-lock 2025-12-31T23:58:20Z",
                "delete image_content_digest_bbb-lock 2025-12-31T23:00:00Z",
                "keep image_content_digest_ddd-lock live build lock",
                "keep v1 not a digest tag",
                "keep image_content_digest_new1 newest",
                "keep image_content_digest_new2 newest",
                "keep image_content_digest_young younger",
                "keep image_content_digest_boundary younger",
                "delete image_content_digest_old31 2025-12-01T00:00:00Z",
                "keep image_content_digest_withlatest shares its manifest with latest",
                "keep latest not a digest tag",
                "keep image_content_digest_withlisted shares its manifest with "
                "image_content_digest_listed",
                "delete image_content_digest_pair_a 2025-11-02T00:00:00Z",
                "delete image_content_digest_pair_b 2025-11-02T00:00:00Z",
                "keep image_content_digest_inindex in the index image_content_digest_index",
                "keep image_content_digest_listed listed",
                "keep image_content_digest_current current",
                "keep cache not a digest tag",
                "delete image_content_digest_eee-lock unreadable lock marker",
                "keep image_content_digest_epoch no build time",
                "keep image_content_digest_index index",
                "keep image_content_digest_schema1 not an image manifest",
            ],
        )
        # The order of the registry's list changes nothing.
        again = decide_prune(facts[::-1], digest_tag("current"), listed, POLICY, NOW)
        self.assertEqual(lines(again), lines(decisions))

    def test_a_shared_manifest_is_said_kept_by_a_tag_that_is_no_digest_tag_first(self) -> None:
        shared = fake_digest("release")
        facts = [
            image(digest_tag("old"), 45, shared),
            image(digest_tag("listed"), 45, shared),
            image("zz-release", 45, shared),
            image(digest_tag("other"), 45, fake_digest("other")),
            image("aa-other", 45, fake_digest("other")),
        ]
        policy = POLICY._replace(keep_newest=0)
        decisions = decide_prune(facts, "none", {digest_tag("listed")}, policy, NOW)
        self.assertEqual(
            lines(decisions),
            [
                "keep aa-other not a digest tag",
                "keep image_content_digest_listed listed",
                "keep image_content_digest_old shares its manifest with zz-release",
                "keep image_content_digest_other shares its manifest with aa-other",
                "keep zz-release not a digest tag",
            ],
        )

    def test_a_lock_is_judged_by_its_stated_end_alone_whatever_its_lease(self) -> None:
        facts = [lock(digest_tag("a-lock"), -10, 50, lease=0.5)]
        decisions = decide_prune(facts, "none", set(), POLICY, NOW)
        self.assertEqual(lines(decisions), ["keep image_content_digest_a-lock live build lock"])

    def test_locks_taken_at_the_epoch_come_after_the_dated_before_the_undated(self) -> None:
        def epoch_lock(tag: str, since: float) -> TagFacts:
            marker = LockMarker("host/1", "token", since, 60.0, 60.0, 0, False)
            return TagFacts(tag, fake_digest(tag), "lock", since, (), marker)

        facts = [
            epoch_lock(digest_tag("a-lock"), 0.0),
            epoch_lock(digest_tag("b-lock"), 0.5),
            image(digest_tag("0undated"), None),
            image(digest_tag("old"), 40),
        ]
        self.assertEqual(
            lines(decide_prune(facts, "none", set(), POLICY._replace(keep_newest=0), NOW)),
            [
                "delete image_content_digest_old 2025-11-22T00:00:00Z",
                "delete image_content_digest_b-lock 1970-01-01T00:00:00Z",
                "delete image_content_digest_a-lock 1970-01-01T00:00:00Z",
                "keep image_content_digest_0undated no build time",
            ],
        )

    def test_ties_at_the_newest_boundary_are_broken_by_name(self) -> None:
        facts = [image(digest_tag(name), 40) for name in ("c", "a", "b")]
        policy = POLICY._replace(keep_newest=1)
        for order in (facts, facts[::-1]):
            self.assertEqual(
                lines(decide_prune(order, "none", set(), policy, NOW)),
                [
                    "keep image_content_digest_a newest",
                    "delete image_content_digest_b 2025-11-22T00:00:00Z",
                    "delete image_content_digest_c 2025-11-22T00:00:00Z",
                ],
            )

    def test_keep_newest_zero_keeps_no_old_tag(self) -> None:
        facts = [image(digest_tag("old"), 31), image(digest_tag("older"), 32)]
        decisions = decide_prune(facts, "none", set(), POLICY._replace(keep_newest=0), NOW)
        self.assertEqual([decision.delete for decision in decisions], [True, True])

    def test_keep_newest_counts_digest_tags_only_the_current_one_among_them(self) -> None:
        facts = [
            image("latest", 31),  # newer than every digest tag
            image("v2", 31.5),
            image(digest_tag("current"), 32),
            image(digest_tag("a"), 33),
            image(digest_tag("b"), 34),
            image(digest_tag("c"), 35),
        ]
        decisions = decide_prune(facts, digest_tag("current"), set(), POLICY, NOW)
        self.assertEqual(
            [line.rsplit(" ", 1)[0] if "delete" in line else line for line in lines(decisions)],
            [
                "keep latest not a digest tag",
                "keep v2 not a digest tag",
                "keep image_content_digest_current current",
                "keep image_content_digest_a newest",
                "delete image_content_digest_b",
                "delete image_content_digest_c",
            ],
        )

    def test_a_tag_sharing_with_a_deleted_one_goes_with_it_a_kept_one_holds_both(self) -> None:
        shared = fake_digest("shared manifest")
        facts = [image(digest_tag("x"), 60, shared), image(digest_tag("y"), 61, shared)]
        decisions = decide_prune(facts, "none", set(), POLICY._replace(keep_newest=0), NOW)
        self.assertEqual([decision.delete for decision in decisions], [True, True])
        decisions = decide_prune(facts, digest_tag("y"), set(), POLICY._replace(keep_newest=0), NOW)
        self.assertEqual(
            lines(decisions),
            [
                "keep image_content_digest_x shares its manifest with image_content_digest_y",
                "keep image_content_digest_y current",
            ],
        )


class BuildTimeTest(unittest.TestCase):
    def test_rfc3339_as_go_writes_it(self) -> None:
        cases = {
            "2024-01-02T03:04:05Z": 1704164645.0,
            "2024-01-02T03:04:05.123456789Z": 1704164645.123456789,
            "2024-01-02T03:04:05.5+02:00": 1704164645.5 - 7200,
            "2024-01-02T03:04:05-05:30": 1704164645.0 + 5.5 * 3600,
            "2024-01-02t03:04:05z": 1704164645.0,
            "2024-01-02 03:04:05Z": 1704164645.0,
            "2024-02-29T00:00:00Z": 1709164800.0,
        }
        for text, seconds in cases.items():
            with self.subTest(text):
                self.assertAlmostEqual(parse_time(text) or 0, seconds, places=6)
        for text in (
            "2023-02-29T00:00:00Z",  # no such day
            "2024-01-02T03:04:60Z",
            "2024-01-02T03:04:05",  # no zone
            "2024-01-02T03:04:05.1234567890Z",  # past nanoseconds
            "yesterday",
            "",
            "2024-01-02T03:04:05Z" + " " * 40,
        ):
            with self.subTest(text):
                self.assertIsNone(parse_time(text))

    def test_sizes_as_the_summary_says_them(self) -> None:
        table = {
            0: "0 bytes",
            999: "999 bytes",
            1000: "1.0 kB",
            1_500_000: "1.5 MB",
            1_000_000: "1.0 MB",
            2_500_000_000: "2.5 GB",
            5_000_000_000_000: "5000.0 GB",
        }
        self.assertEqual({count: get_docker_image._size(count) for count in table}, table)

    def test_iso_time_is_utc_to_the_second(self) -> None:
        self.assertEqual(iso_time(1704164645.9), "2024-01-02T03:04:05Z")

    def test_an_image_without_a_build_time(self) -> None:
        build_time = get_docker_image._build_time
        self.assertEqual(build_time(b'{"created": "2024-01-02T03:04:05Z"}'), 1704164645.0)
        self.assertEqual(build_time(b'{"created": "1970-01-01T00:00:01Z"}'), 1.0)
        for config in (
            b'{"created": "1970-01-01T00:00:00Z"}',  # SOURCE_DATE_EPOCH=0
            b'{"created": "0001-01-01T00:00:00Z"}',  # Go's zero time
            b'{"created": "1969-12-31T23:59:59Z"}',
            b'{"architecture": "amd64"}',
            b'{"created": 1704164645}',
            b'{"created": "last week"}',
            b"[]",
            b"not json",
            b"",
        ):
            with self.subTest(config):
                self.assertIsNone(build_time(config))


class PruneTestCase(ScratchDirTestCase):
    """A Dockerfile and context, a MemoryRegistry, docker's config empty (no one's login)."""

    memory: MemoryRegistry

    def setUp(self) -> None:
        super().setUp()
        build_tree(self.root, [DOCKERFILE, CTX, File("ctx/app.py", b"print('prune')\n")])
        self.docker_config = os.path.join(self.root, "docker-config")
        os.mkdir(self.docker_config)
        self.set_env(DOCKER_CONFIG=self.docker_config, DOCKER_AUTH_CONFIG=None)
        self.memory = self.serve(MemoryRegistry())
        self.address = self.memory.address
        self.client = registry.Registry(
            self.memory.address, timeout=5, plain_http=True, docker_config=self.docker_config
        )
        self.addCleanup(self.client.close)

    def serve(self, server: MemoryRegistry) -> MemoryRegistry:
        self.addCleanup(server.close)
        return server

    def use(self, server: MemoryRegistry) -> None:
        """Runs against `server` instead of the plain MemoryRegistry."""
        self.memory = self.serve(server)
        self.address = server.address
        self.client = registry.Registry(server.address, timeout=5, plain_http=True)
        self.addCleanup(self.client.close)

    def argv(self, *extra: str, address: str | None = None) -> list[str]:
        return [
            "--context",
            "ctx",
            "--repository",
            REPOSITORY,
            "--container-registry",
            address or self.address,
            "--docker-path",
            FAKE_DOCKER,
            "--retries",
            "1",
            "--retry-delay",
            "0",
            *extra,
        ]

    def prune(self, *extra: str, address: str | None = None) -> Result:
        return run_main(self.argv("--prune-older-than", "30d", *extra, address=address))

    def current_tag(self) -> str:
        result = run_main(self.argv("--print-image-name"))
        self.assertEqual(result.status, 0, result.stderr)
        return result.stdout.strip().rsplit(":", 1)[1]

    def push(self, tag: str | None, days: float) -> PushedImage:
        return push_test_image(self.client, REPOSITORY, tag, days_ago(days))

    def tags(self) -> list[str]:
        return sorted(self.memory.tags.get(REPOSITORY, {}))

    def deletes(self) -> list[Exchange]:
        return self.memory.requests_to(re.compile(r"/v2/.*/manifests/.*"), "DELETE")

    def serve_front(self, refused: Sequence[str]) -> TokenFront:
        front = TokenFront(self.memory.address, users={USER: PASSWORD}, refused=refused)
        self.addCleanup(front.close)
        auth = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        with open(os.path.join(self.docker_config, "config.json"), "w", encoding="utf-8") as file:
            json.dump({"auths": {front.address: {"auth": auth}}}, file)
        return front

    def assert_one_error(self, result: Result, *parts: str) -> str:
        """Exit 1 and one error line, holding every part; returns it."""
        self.assertEqual(result.status, 1, result.stderr)
        errors = [line for line in result.log_messages() if "[ERROR]" in line]
        self.assertEqual(len(errors), 1, result.stderr)
        for part in parts:
            self.assertIn(part, errors[0])
        self.assertNotIn("Internal error", errors[0])
        return errors[0]


def delete_line(pushed: PushedImage) -> str:
    return f"delete {pushed.tag} {pushed.created[:19]}Z"


def lock_document(since: float, expires: float, *, released: bool = False) -> bytes:
    marker = LockMarker("host/1", "t0k3n", since, expires, 60.0, 2, released)
    return json.dumps(marker.document(), sort_keys=True).encode()


class PruneRunTest(PruneTestCase):
    """Whole runs: the lines, the summary, the outputs, what is left."""

    def push_mix(self) -> tuple[str, dict[str, PushedImage]]:
        """The current tag (old) and a mix of others; returns the current tag and images."""
        current = self.current_tag()
        pushed = {
            "current": push_test_image(self.client, REPOSITORY, current, days_ago(150)),
            **{
                f"d{days}": self.push(digest_tag(f"d{days:03}"), days)
                for days in (1, 2, 10, 29, 31, 60, 100, 200)
            },
        }
        # latest names the 100-day-old image; v1 the 200-day-old one; d60 has a twin.
        for tag, other in (("latest", "d100"), ("v1", "d200"), (digest_tag("twin"), "d60")):
            manifest = self.client.manifest(REPOSITORY, pushed[other].tag or "")
            self.client.push_manifest(REPOSITORY, tag, manifest.media_type, manifest.body)
        push_test_index(self.client, REPOSITORY, digest_tag("index"), days_ago(300))
        push_test_image(self.client, REPOSITORY, digest_tag("epoch"), "1970-01-01T00:00:00Z")
        self.client.push_blob(REPOSITORY, b"{}")
        now = float(int(time.time()))
        self.stale_since = now - 900
        self.client.push_manifest(
            REPOSITORY, digest_tag("live-lock"), registry.OCI_MANIFEST, lock_document(now, now + 55)
        )
        self.stale_lock = self.client.push_manifest(
            REPOSITORY,
            digest_tag("stale-lock"),
            registry.OCI_MANIFEST,
            lock_document(self.stale_since, now - 600),
        )
        with open("keep.txt", "w", encoding="utf-8") as file:
            file.write(
                "# kept for the release branch\n\n"
                f"{self.address}/{REPOSITORY}:{pushed['d200'].tag}\n"
                f"  {pushed['d31'].tag}  \r\n"
                f"{self.address}/gdi/other:{pushed['d60'].tag}\n"
            )
        return current, pushed

    def test_prune_prints_a_line_per_tag_and_leaves_what_the_rules_keep(self) -> None:
        current, pushed = self.push_mix()
        result = self.prune("--keep-tags-from", "keep.txt", "--keep-newest", "2")
        self.assertEqual(result.status, 0, result.stderr)
        self.assertEqual(
            result.stdout.splitlines(),
            [
                f"keep {digest_tag('live-lock')} live build lock",
                f"delete {digest_tag('stale-lock')} {iso_time(self.stale_since)}",
                f"keep {pushed['d1'].tag} newest",
                f"keep {pushed['d2'].tag} newest",
                f"keep {pushed['d10'].tag} younger",
                f"keep {pushed['d29'].tag} younger",
                f"keep {pushed['d31'].tag} listed",
                delete_line(pushed["d60"]),
                f"delete {digest_tag('twin')} {pushed['d60'].created[:19]}Z",
                f"keep {pushed['d100'].tag} shares its manifest with latest",
                "keep latest not a digest tag",
                f"keep {current} current",
                f"keep {pushed['d200'].tag} listed",
                "keep v1 not a digest tag",
                f"keep {digest_tag('epoch')} no build time",
                f"keep {digest_tag('index')} index",
            ],
        )
        self.assertEqual(
            self.tags(),
            sorted(
                [
                    digest_tag("live-lock"),
                    *(pushed[key].tag or "" for key in ("d1", "d2", "d10", "d29", "d31")),
                    *(pushed[key].tag or "" for key in ("d100", "current", "d200")),
                    "latest",
                    "v1",
                    digest_tag("epoch"),
                    digest_tag("index"),
                ]
            ),
        )
        # One DELETE per manifest (the twins share one), by digest.
        self.assertEqual(
            sorted(exchange.route.rsplit("/", 1)[1] for exchange in self.deletes()),
            sorted([pushed["d60"].digest, self.stale_lock]),
        )
        messages = result.log_messages()
        self.assertIn(
            "get_docker_image [WARNING] - --keep-tags-from line 5: "
            f"'{self.address}/gdi/other:{pushed['d60'].tag}' is of another registry or "
            "repository; ignored.",
            messages,
        )
        freed = len(self.memory.blobs[pushed["d60"].config_digest])  # its layer is shared
        self.assertEqual(
            messages[-1],
            "get_docker_image [INFO] - Deleted 3 tags, kept 13; "
            f"{get_docker_image._size(freed)} of blobs are referenced by no kept tag "
            "(what the registry's garbage collection can free).",
        )
        self.assertEqual(self.docker_argvs(), [])  # a loopback registry: no docker info

    def test_dry_run_prints_the_same_lines_and_deletes_nothing(self) -> None:
        _, pushed = self.push_mix()
        tags = self.tags()
        dry = self.prune("--keep-tags-from", "keep.txt", "--keep-newest", "2", "--dry-run")
        self.assertEqual(dry.status, 0, dry.stderr)
        self.assertEqual(self.tags(), tags)
        self.assertEqual(self.deletes(), [])
        freed = len(self.memory.blobs[pushed["d60"].config_digest])
        self.assertEqual(
            dry.log_messages()[-1],
            "get_docker_image [INFO] - Dry run: would delete 3 tags, keep 13; "
            f"{get_docker_image._size(freed)} of blobs would be referenced by no kept tag "
            "(what the registry's garbage collection can free).",
        )
        real = self.prune("--keep-tags-from", "keep.txt", "--keep-newest", "2")
        self.assertEqual(real.stdout, dry.stdout)

    def test_output_file_lines(self) -> None:
        self.push(digest_tag("old"), 40)
        self.push(digest_tag("new"), 1)
        result = self.prune("--keep-newest", "0", "--output-file", "out.env")
        self.assertEqual(result.status, 0, result.stderr)
        with open("out.env", encoding="utf-8") as file:
            self.assertEqual(
                file.read(),
                f"image={self.address}/{REPOSITORY}:{self.current_tag()}\n"
                f"tag={self.current_tag()}\ndeleted=1\nkept=1\n",
            )

    def test_an_empty_or_missing_repository_is_nothing_to_do(self) -> None:
        result = self.prune()
        self.assertEqual(result.status, 0, result.stderr)
        self.assertEqual(result.stdout, "")
        self.assertIn("Deleted 0 tags, kept 0; 0 bytes", result.log_messages()[-1])

    def test_a_tag_gone_between_list_and_read_is_left_out(self) -> None:
        old = self.push(digest_tag("old"), 40)
        self.memory.tags[REPOSITORY][digest_tag("gone")] = fake_digest("no such manifest")
        result = self.prune("--keep-newest", "0")
        self.assertEqual(result.status, 0, result.stderr)
        self.assertEqual(result.stdout.splitlines(), [delete_line(old)])
        self.assertIn(
            f"get_docker_image [INFO] - {digest_tag('gone')} went while the tags were read.",
            result.log_messages(),
        )

    def test_pages_of_three_through_a_token_front_with_a_login(self) -> None:
        front = self.serve_front(refused=())
        old = [self.push(digest_tag(f"old{number}"), 40 + number) for number in range(4)]
        young = [self.push(digest_tag(f"young{number}"), number + 1) for number in range(4)]
        result = self.prune("--keep-newest", "1", address=front.address)
        self.assertEqual(result.status, 0, result.stderr)
        self.assertEqual(result.stdout.count("\n"), 8)
        self.assertEqual(self.tags(), sorted(image.tag or "" for image in young))
        pages = [
            exchange
            for exchange in front.requests_to(f"/v2/{REPOSITORY}/tags/list")
            if "Authorization" in exchange.headers
        ]
        self.assertEqual(len(pages), 3)
        self.assertEqual(len(self.deletes()), len(old))
        self.assertNotIn(PASSWORD, result.stderr + result.stdout)


class TroubledRegistry(MemoryRegistry):
    """A MemoryRegistry that answers an error to the requests of `method` whose route ends
    with `route_end`: from the `first`-th of them on, `times` of them (None: all)."""

    def __init__(
        self,
        method: str,
        route_end: str,
        status: int,
        code: str,
        *,
        first: int = 1,
        times: int | None = None,
    ) -> None:
        super().__init__()
        self.trouble = (method, route_end, status, code)
        self.first, self.times = first, times
        self.matched = 0  # requests that matched, answered with an error or not

    def respond(self, exchange: Exchange, handler: BaseHTTPRequestHandler) -> None:
        method, route_end, status, code = self.trouble
        if exchange.method == method and exchange.route.endswith(route_end):
            with self._lock:
                self.matched += 1
                number = self.matched - self.first
                troubled = number >= 0 and (self.times is None or number < self.times)
            if troubled:
                send_error(handler, status, code, f"trouble number {number + 1}")
                return
        super().respond(exchange, handler)


class BarrierRegistry(MemoryRegistry):
    """A MemoryRegistry whose manifest reads each wait until `parties` of them are under
    way (at most 10 s: then `broken` counts it), before they are answered."""

    def __init__(self, parties: int) -> None:
        super().__init__()
        self.barrier = threading.Barrier(parties, timeout=10)
        self.broken = 0

    def respond(self, exchange: Exchange, handler: BaseHTTPRequestHandler) -> None:
        if exchange.method == "GET" and "/manifests/" in exchange.route:
            try:
                self.barrier.wait()
            except threading.BrokenBarrierError:
                with self._lock:
                    self.broken += 1
        super().respond(exchange, handler)


@contextmanager
def one_request_at_a_time() -> Iterator[None]:
    with mock.patch.object(get_docker_image, "PRUNE_CONCURRENCY", 1):
        yield


class PruneFailureTest(PruneTestCase):
    def test_a_delete_failing_midway_stops_the_run_and_says_which_tags_went(self) -> None:
        troubled = TroubledRegistry("DELETE", "", 500, "UNKNOWN", first=3)
        self.use(troubled)
        pushed = [self.push(digest_tag(f"old{number}"), 40 + number) for number in range(5)]
        young = self.push(digest_tag("young"), 1)
        with one_request_at_a_time():
            result = self.prune("--keep-newest", "0")
        error = self.assert_one_error(result, "stopped: DELETE /v2/gdi/prune/manifests/sha256:")
        self.assertIn("500 Internal Server Error (UNKNOWN: trouble number 2)", error)
        self.assertIn("(after deleting 2 tags, printed above)", error)
        self.assertEqual(
            result.stdout.splitlines(),
            [f"keep {young.tag} younger", delete_line(pushed[0]), delete_line(pushed[1])],
        )
        self.assertEqual(self.tags(), sorted(image.tag or "" for image in [young, *pushed[2:]]))
        self.assertEqual(troubled.matched, 4)  # the third, retried once, and no more

    def test_with_deletes_under_way_at_once_the_lines_say_exactly_which_went(self) -> None:
        self.use(TroubledRegistry("DELETE", "", 500, "UNKNOWN", first=4))
        pushed = [self.push(digest_tag(f"old{number:02}"), 40 + number) for number in range(20)]
        result = self.prune("--keep-newest", "0")
        error = self.assert_one_error(result, "stopped: DELETE")
        went = [line.split()[1] for line in result.stdout.splitlines()]
        self.assertTrue(all(line.startswith("delete ") for line in result.stdout.splitlines()))
        self.assertEqual(
            sorted(went), sorted(set({image.tag for image in pushed}) - set(self.tags()))
        )
        self.assertEqual(len(went), 3)
        self.assertIn(f"(after deleting {len(went)} tags, printed above)", error)

    def test_a_manifest_that_cannot_be_read_stops_the_run_before_any_delete(self) -> None:
        self.use(TroubledRegistry("GET", f"/manifests/{digest_tag('broken')}", 500, "UNKNOWN"))
        for number in range(3):
            self.push(digest_tag(f"old{number}"), 40 + number)
        self.push(digest_tag("broken"), 50)
        tags = self.tags()
        result = self.prune("--keep-newest", "0")
        self.assert_one_error(
            result,
            f"cannot read the tags of {REPOSITORY}: GET /v2/{REPOSITORY}/manifests/"
            f"{digest_tag('broken')}: 500 Internal Server Error",
            "nothing was deleted",
        )
        self.assertEqual(result.stdout, "")
        self.assertEqual(self.tags(), tags)
        self.assertEqual(self.deletes(), [])
        reads = self.memory.requests_to(f"/v2/{REPOSITORY}/manifests/{digest_tag('broken')}", "GET")
        self.assertEqual(len(reads), 2)  # --retries 1

    def test_a_transient_failure_of_a_read_is_retried(self) -> None:
        self.use(TroubledRegistry("GET", "/manifests/" + digest_tag("flaky"), 503, "X", times=1))
        old = self.push(digest_tag("flaky"), 40)
        result = self.prune("--keep-newest", "0")
        self.assertEqual(result.status, 0, result.stderr)
        self.assertEqual(result.stdout.splitlines(), [delete_line(old)])
        self.assertIn(
            f"get_docker_image [WARNING] - GET {old.tag} failed for a transient reason; "
            "retry 1 of 1 in 0.0 s",
            result.log_messages(),
        )

    def test_a_manifest_already_deleted_by_someone_else_counts_as_gone(self) -> None:
        self.use(TroubledRegistry("DELETE", "", 404, "MANIFEST_UNKNOWN", times=1))
        old, older = self.push(digest_tag("old"), 40), self.push(digest_tag("older"), 50)
        with one_request_at_a_time():
            result = self.prune("--keep-newest", "0")
        self.assertEqual(result.status, 0, result.stderr)
        self.assertEqual(result.stdout.splitlines(), [delete_line(old), delete_line(older)])
        self.assertIn("Deleted 2 tags, kept 0", result.log_messages()[-1])
        self.assertEqual(self.tags(), [old.tag])  # the registry said it was gone already
        self.assertIn(
            f"get_docker_image [INFO] - {old.tag} was gone already (its manifest is deleted).",
            result.log_messages(),
        )

    def test_a_transient_failure_of_the_tag_list_or_a_delete_is_retried(self) -> None:
        for method, route_end, what in (
            ("GET", "/tags/list", "GET tags"),
            ("DELETE", "", f"DELETE {digest_tag('old')}"),
        ):
            with self.subTest(method):
                self.use(TroubledRegistry(method, route_end, 503, "X", times=1))
                old = self.push(digest_tag("old"), 40)
                result = self.prune("--keep-newest", "0")
                self.assertEqual(result.status, 0, result.stderr)
                self.assertEqual(result.stdout.splitlines(), [delete_line(old)])
                self.assertEqual(
                    [line for line in result.log_messages() if "[WARNING]" in line],
                    [
                        f"get_docker_image [WARNING] - {what} failed for a transient reason; "
                        "retry 1 of 1 in 0.0 s"
                    ],
                )

    def test_deletes_refused_by_the_registry_end_in_one_line_with_the_hint(self) -> None:
        old = self.push(digest_tag("old"), 40)
        self.memory.deletes = False
        result = self.prune("--keep-newest", "0")
        self.assert_one_error(
            result,
            f"registry {self.address} refuses deletes through its API: DELETE /v2/{REPOSITORY}"
            f"/manifests/{old.digest}: 405 Method Not Allowed (UNSUPPORTED: The operation is "
            "unsupported.) (nothing deleted); the CNCF registry (distribution) needs "
            "storage.delete.enabled: true",
        )
        self.assertEqual(result.stdout, "")
        self.assertEqual(self.tags(), [old.tag])

    def test_a_token_without_delete_is_not_allowed_to_delete(self) -> None:
        front = self.serve_front(refused=("delete",))
        old = self.push(digest_tag("old"), 40)
        result = self.prune("--keep-newest", "0", address=front.address)
        self.assert_one_error(
            result,
            f"not allowed to delete from {REPOSITORY}: DELETE /v2/{REPOSITORY}/manifests/",
            "(nothing deleted)",
        )
        self.assertEqual(self.tags(), [old.tag])
        self.assertNotIn(PASSWORD, result.stderr)

    def test_no_credentials_end_in_one_line(self) -> None:
        self.use(MemoryRegistry(users={USER: PASSWORD}))
        self.memory.put_manifest(REPOSITORY, digest_tag("x"), registry.DOCKER_MANIFEST, b"{}")
        result = self.prune()
        self.assert_one_error(
            result,
            f"GET /v2/{REPOSITORY}/tags/list: the registry wants a username and password; "
            f"no credentials for {self.address} in docker's config (docker login {self.address})",
        )
        self.assertEqual(self.tags(), [digest_tag("x")])

    def test_a_missing_keep_list_stops_the_run_before_the_registry_is_asked(self) -> None:
        result = self.prune("--keep-tags-from", "no-such-file")
        self.assert_one_error(result, " - --keep-tags-from file not found: 'no-such-file'")
        self.assertEqual(self.memory.exchanges, [])


class TagFactsTest(PruneTestCase):
    """_tag_facts on manifests put straight into the registry: what prune knows of a tag."""

    def access(self) -> RegistryAccess:
        return RegistryAccess(registry, self.client, self.address, REPOSITORY, Retries(1, 0))

    def put(self, tag: str, media_type: str, document: object) -> str:
        body = json.dumps(document).encode()
        return self.memory.put_manifest(REPOSITORY, tag, media_type, body)

    def put_blob(self, data: bytes) -> str:
        digest = registry.digest_of(data)
        self.memory.blobs[digest] = data
        return digest

    def test_golden_table_of_each_kind_of_manifest(self) -> None:
        child_a, child_b = fake_digest("child a"), fake_digest("child b")
        layers = [fake_digest(f"layer {number}") for number in range(6)]
        config = self.put_blob(b'{"created": "2024-01-02T03:04:05Z"}')
        missing_config = fake_digest("a config the registry lacks")
        marker = LockMarker("host/1", "t0k3n", NOW - 60, NOW + 60, 60.0, 2, False)
        entries = [{"digest": child_a}, "junk", {"digest": 5}, {"size": 3}, {"digest": child_b}]
        odd_layers = [
            {"digest": layers[0], "size": 0},
            {"digest": 7, "size": 10},
            {"digest": layers[1], "size": "10"},
            {"digest": layers[2], "size": -1},
            "junk",
            {"digest": layers[3], "size": 20},
        ]
        oci, docker = registry.OCI_MANIFEST, registry.DOCKER_MANIFEST
        schema1 = "application/vnd.docker.distribution.manifest.v1+prettyjws"
        put = {
            "index": self.put(digest_tag("index"), registry.OCI_INDEX, {"manifests": entries}),
            "list": self.put(digest_tag("list"), registry.DOCKER_MANIFEST_LIST, {}),
            "schema1": self.put(digest_tag("schema1"), schema1, {"schemaVersion": 1}),
            "lock": self.put(digest_tag("a-lock"), oci, marker.document()),
            "broken-lock": self.put(digest_tag("b-lock"), oci, {"annotations": {}}),
            "built": self.put(
                digest_tag("built"),
                docker,
                {
                    "config": {"digest": config, "size": 36},
                    "layers": [{"digest": layers[4], "size": 1000}],
                },
            ),
            "odd": self.put(digest_tag("odd"), oci, {"config": "junk", "layers": odd_layers}),
            "bad-config": self.put(digest_tag("bad"), oci, {"config": {"digest": 12, "size": 2}}),
            "no-config-blob": self.put(
                digest_tag("lost"), oci, {"config": {"digest": missing_config, "size": 2}}
            ),
        }
        access = self.access()
        with self.assertNoLogs("get_docker_image"):
            found = {
                tag: get_docker_image._tag_facts(access, tag)
                for tag in sorted(self.memory.tags[REPOSITORY])
            }
        self.assertEqual(
            found,
            {
                digest_tag("index"): TagFacts(
                    digest_tag("index"), put["index"], "index", None, (), None, (child_a, child_b)
                ),
                digest_tag("list"): TagFacts(
                    digest_tag("list"), put["list"], "index", None, (), None, ()
                ),
                digest_tag("schema1"): TagFacts(
                    digest_tag("schema1"), put["schema1"], "other", None, (), None
                ),
                digest_tag("a-lock"): TagFacts(
                    digest_tag("a-lock"), put["lock"], "lock", NOW - 60, (), marker
                ),
                digest_tag("b-lock"): TagFacts(
                    digest_tag("b-lock"), put["broken-lock"], "lock", None, (), None
                ),
                digest_tag("built"): TagFacts(
                    digest_tag("built"),
                    put["built"],
                    "image",
                    1704164645.0,
                    ((config, 36), (layers[4], 1000)),
                    None,
                ),
                digest_tag("odd"): TagFacts(
                    digest_tag("odd"),
                    put["odd"],
                    "image",
                    None,
                    ((layers[0], 0), (layers[3], 20)),
                    None,
                ),
                digest_tag("bad"): TagFacts(
                    digest_tag("bad"), put["bad-config"], "image", None, (), None
                ),
                digest_tag("lost"): TagFacts(
                    digest_tag("lost"),
                    put["no-config-blob"],
                    "image",
                    None,
                    ((missing_config, 2),),
                    None,
                ),
            },
        )

    def test_a_transient_failure_is_retried_and_the_warning_names_the_request(self) -> None:
        config = registry.digest_of(b'{"created": "2024-01-02T03:04:05Z"}')
        self.use(TroubledRegistry("GET", f"/blobs/{config}", 503, "X", times=1))
        self.put_blob(b'{"created": "2024-01-02T03:04:05Z"}')
        self.put(
            digest_tag("built"), registry.OCI_MANIFEST, {"config": {"digest": config, "size": 36}}
        )
        with self.assertLogs("get_docker_image", "DEBUG") as logs:
            facts = get_docker_image._tag_facts(self.access(), digest_tag("built"))
        self.assertEqual(facts and facts.created, 1704164645.0)
        self.assertEqual(
            [record.getMessage() for record in logs.records],
            [
                f"GET {digest_tag('built')} config failed for a transient reason; "
                "retry 1 of 1 in 0.0 s"
            ],
        )

    def test_the_tags_are_read_prune_concurrency_at_a_time(self) -> None:
        # Each manifest read waits until PRUNE_CONCURRENCY of them are under way: they
        # all are at once (with fewer, the barrier breaks after its timeout).
        concurrency = get_docker_image.PRUNE_CONCURRENCY
        server = BarrierRegistry(concurrency)
        self.use(server)
        tags = [digest_tag(f"t{number:02}") for number in range(concurrency)]
        schema1 = "application/vnd.docker.distribution.manifest.v1+prettyjws"
        for tag in tags:
            self.put(tag, schema1, {"schemaVersion": 1, "tag": tag})
        found = get_docker_image.read_tag_facts(self.access(), tags)
        self.assertEqual([facts.tag for facts in found], tags)
        self.assertEqual(server.broken, 0)

    def test_a_bug_while_reading_is_no_registry_error(self) -> None:
        bug = mock.patch.object(get_docker_image, "_tag_facts", side_effect=KeyError("bug"))
        with bug, self.assertRaises(KeyError):
            get_docker_image.read_tag_facts(self.access(), [digest_tag("a"), digest_tag("b")])


class ScriptedDeletes:
    """A registry client's delete_manifest for execute_prune, by digest: what each
    delete does (returns, or raises), in the order the test lets them run."""

    def __init__(self) -> None:
        self.failed = threading.Event()  # the second failure has been raised
        self.asked: list[str] = []
        self.script: dict[str, Callable[[], None]] = {}

    def delete_manifest(self, repository: str, digest: str) -> None:
        self.asked.append(digest)
        self.script[digest]()


class ExecutePruneTest(unittest.TestCase):
    """execute_prune with a scripted client: the lines printed, the count, the error."""

    def run_prune(
        self, client: ScriptedDeletes, decisions: Sequence[get_docker_image.Decision]
    ) -> tuple[list[str], BaseException | None, int | None]:
        access = RegistryAccess(registry, client, "registry.example", "team/app", Retries(0, 0))
        stdout = io.StringIO()
        deleted, failure = None, None
        with contextlib.redirect_stdout(stdout), self.assertNoLogs("get_docker_image"):
            try:
                deleted = get_docker_image.execute_prune(access, decisions, dry_run=False)
            except BaseException as error:  # an interrupt too: what the tests check
                failure = error
        return stdout.getvalue().splitlines(), failure, deleted

    def test_after_a_failure_the_deletes_under_way_that_went_are_printed(self) -> None:
        # Two at a time: d0 and d1 start; d1 waits; d0, d2 and d3 run in turn, d3 fails,
        # then d1 fails too. d2 went though the run had stopped: its line is printed.
        client = ScriptedDeletes()
        decisions = [
            decision(image(digest_tag("k0"), 1), delete=False),
            decision(image(digest_tag("d0"), 40)),
            decision(image(digest_tag("d1"), 41)),
            decision(image(digest_tag("k1"), 2), delete=False),
            decision(image(digest_tag("d2"), 42)),
            decision(image(digest_tag("d3"), 43)),
        ]
        digests = [fake_digest(digest_tag(name)) for name in ("d0", "d1", "d2", "d3")]

        def first_failure() -> None:
            self.assertTrue(client.failed.wait(10))
            raise registry.RegistryError("DELETE d1: 500 first")

        def second_failure() -> None:
            client.failed.set()
            raise registry.RegistryError("DELETE d3: 500 second")

        client.script = dict(
            zip(digests, (lambda: None, first_failure, lambda: None, second_failure), strict=True)
        )
        with mock.patch.object(get_docker_image, "PRUNE_CONCURRENCY", 2):
            printed, failure, _ = self.run_prune(client, decisions)
        self.assertEqual(
            printed,
            [
                f"keep {digest_tag('k0')} younger",
                f"delete {digest_tag('d0')} {iso_time(NOW - 40 * DAY)}",
                f"delete {digest_tag('d2')} {iso_time(NOW - 42 * DAY)}",
            ],
        )
        self.assertIsInstance(failure, get_docker_image.DockerError)
        self.assertEqual(
            str(failure), "stopped: DELETE d1: 500 first (after deleting 2 tags, printed above)"
        )
        self.assertEqual(sorted(client.asked), sorted(digests))

    def test_an_interrupt_in_a_delete_is_raised_as_it_is(self) -> None:
        client = ScriptedDeletes()

        def interrupted() -> None:
            raise KeyboardInterrupt

        client.script = {fake_digest(digest_tag("d0")): interrupted}
        printed, failure, _ = self.run_prune(client, [decision(image(digest_tag("d0"), 40))])
        self.assertEqual(printed, [])
        self.assertIsInstance(failure, KeyboardInterrupt)

    def test_an_interrupt_while_printing_is_raised_once_the_deletes_are_printed(self) -> None:
        client = ScriptedDeletes()
        client.script = {fake_digest(digest_tag("d0")): lambda: None}
        real_print = get_docker_image._print
        calls = iter([KeyboardInterrupt()])

        def print_interrupted(line: str) -> None:
            interrupt = next(calls, None)
            if interrupt is not None:
                raise interrupt
            real_print(line)

        with mock.patch.object(get_docker_image, "_print", print_interrupted):
            printed, failure, _ = self.run_prune(client, [decision(image(digest_tag("d0"), 40))])
        self.assertEqual(printed, [f"delete {digest_tag('d0')} {iso_time(NOW - 40 * DAY)}"])
        self.assertIsInstance(failure, KeyboardInterrupt)

    def test_a_dry_run_prints_every_line_and_deletes_none(self) -> None:
        client = ScriptedDeletes()
        decisions = [
            decision(image(digest_tag("d0"), 40)),
            decision(image(digest_tag("k0"), 1), delete=False),
        ]
        access = RegistryAccess(registry, client, "registry.example", "team/app", Retries(0, 0))
        stdout = io.StringIO()
        with contextlib.redirect_stdout(stdout):
            deleted = get_docker_image.execute_prune(access, decisions, dry_run=True)
        self.assertEqual(deleted, 0)
        self.assertEqual(
            stdout.getvalue().splitlines(),
            [
                f"delete {digest_tag('d0')} {iso_time(NOW - 40 * DAY)}",
                f"keep {digest_tag('k0')} younger",
            ],
        )
        self.assertEqual(client.asked, [])


class RegistryClientTest(PruneTestCase):
    """registry_client: registry.py needed, plain HTTP where the engine allows it."""

    def test_without_registry_py_the_option_is_a_usage_error_before_any_request(self) -> None:
        import_module = importlib.import_module

        def without_registry(name: str, package: str | None = None) -> object:
            if name == "registry":
                raise ModuleNotFoundError("No module named 'registry'", name="registry")
            return import_module(name, package)

        with mock.patch.object(importlib, "import_module", without_registry):
            result = self.prune()
        self.assertEqual(result.status, 2, result.stderr)
        self.assertEqual(
            result.stderr.splitlines()[-1],
            "get_docker_image.py: error: --prune-older-than needs registry.py beside "
            "get_docker_image.py (copy it from the tool)",
        )
        self.assertEqual(self.memory.exchanges, [])

    def test_an_insecure_registry_of_the_engine_is_spoken_to_in_plain_http(self) -> None:
        info = {"IndexConfigs": {"registry.example:5000": {"Secure": False}}}
        answer = {"status": 0, "stdout": json.dumps(info)}
        with open("script.json", "w", encoding="utf-8") as file:
            json.dump({"info": [answer, answer]}, file)
        self.set_env(FAKE_DOCKER_SCRIPT=os.path.join(self.root, "script.json"))
        options = get_docker_image.parse_options(self.argv("--prune-older-than", "30d"))
        docker = get_docker_image.Docker(options)
        plain = {}
        for host in ("registry.example:5000", "other.example:5000"):
            with self.assertLogs(level="DEBUG"):  # the docker call's lines
                access = get_docker_image.registry_client(
                    docker, options, f"{host}/team/app:v1", "--prune-older-than"
                )
            self.addCleanup(access.client.close)
            self.assertEqual((access.host, access.repository), (host, "team/app"))
            plain[host] = access.client._plain_http
        self.assertEqual(plain, {"registry.example:5000": True, "other.example:5000": False})
        self.assertEqual(
            self.docker_argvs(), [["info", "--format", "{{json .RegistryConfig}}"]] * 2
        )


class DeleteHintTest(unittest.TestCase):
    """What a refusal says, by the registry that refused."""

    def refusal(self, host: str, error: registry.RegistryError, deleted: int = 0) -> str:
        access = RegistryAccess(registry, None, host, "team/app", Retries(0, 0))
        return str(get_docker_image._delete_failure(access, error, deleted))

    def test_each_registry_names_its_own_tool(self) -> None:
        unsupported = registry.Unsupported("DELETE /v2/team/app/manifests/sha256:x: 405")
        for host, hint in (
            ("docker.io", "Docker Hub deletes tags through its own API (hub.docker.com)"),
            ("ghcr.io", "GHCR deletes package versions through the GitHub API"),
            ("1234.dkr.ecr.eu-west-1.amazonaws.com", "aws ecr batch-delete-image"),
            ("registry.example:5000", "needs storage.delete.enabled: true"),
        ):
            with self.subTest(host):
                message = self.refusal(host, unsupported)
                self.assertTrue(message.startswith(f"registry {host} refuses deletes"), message)
                self.assertIn(hint, message)
                self.assertNotIn("\n", message)

    def test_docker_hub_refusing_a_tagged_manifest_names_its_api_too(self) -> None:
        denied = registry.NotAllowed("DELETE /v2/team/app/manifests/sha256:x: 403 Forbidden")
        message = self.refusal("docker.io", denied, deleted=2)
        self.assertIn("not allowed to delete from team/app", message)
        self.assertIn("(after deleting 2 tags, printed above)", message)
        self.assertIn("hub.docker.com", message)
        self.assertNotIn("storage.delete", self.refusal("registry.example", denied))

    def test_golden_table_of_the_hint_by_host(self) -> None:
        hub = (
            "Docker Hub deletes tags through its own API (hub.docker.com), and only "
            "untagged manifests through the registry's"
        )
        ecr = "Amazon ECR deletes images with `aws ecr batch-delete-image` or lifecycle rules"
        google = (
            "Google's registries delete a tagged manifest with "
            "`gcloud artifacts docker images delete --delete-tags` or cleanup policies"
        )
        table = {
            "docker.io": hub,
            "index.docker.io": hub,
            "registry-1.docker.io": hub,
            "mirror.docker.io": None,
            "ghcr.io": "GHCR deletes package versions through the GitHub API",
            "ghcr.io.example": None,
            "123456789012.dkr.ecr.eu-west-1.amazonaws.com": ecr,
            "amazonaws.com.example": None,
            "gcr.io": google,
            "eu.gcr.io": google,
            "europe-west1-docker.pkg.dev": google,
            "evilgcr.io": None,
            "docker.pkg.dev": None,
            "registry.example:5000": None,
        }
        self.assertEqual({host: get_docker_image._delete_hint(host) for host in table}, table)

    def test_each_refusal_in_full(self) -> None:
        what = "DELETE /v2/team/app/manifests/sha256:x"
        self.assertEqual(
            self.refusal("registry.example", registry.AuthenticationError(f"{what}: 401"), 1),
            f"registry registry.example refused our credentials: {what}: 401 (after deleting "
            "1 tags, printed above) (are you logged in? docker login registry.example)",
        )
        self.assertEqual(
            self.refusal("registry.example", registry.NotAllowed(f"{what}: 403")),
            f"not allowed to delete from team/app: {what}: 403 (nothing deleted)",
        )
        self.assertEqual(
            self.refusal("ghcr.io", registry.RegistryError(f"{what}: 500")),
            f"stopped: {what}: 500 (nothing deleted); "
            "GHCR deletes package versions through the GitHub API",
        )
        self.assertEqual(
            self.refusal("registry.example", registry.RegistryError(f"{what}: 500")),
            f"stopped: {what}: 500 (nothing deleted)",
        )


class KeepListTest(unittest.TestCase):
    def read(self, text: str) -> tuple[set[str], list[str]]:
        with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as file:
            file.write(text)
        self.addCleanup(os.remove, file.name)
        with self.assertLogs("get_docker_image", "DEBUG") as logs:
            get_docker_image._log.debug("start")
            tags = get_docker_image.read_keep_list(file.name, "127.0.0.1:5000/team/app")
        return tags, [record.getMessage() for record in logs.records[1:]]

    def test_a_file_that_is_not_utf_8_is_an_input_error_naming_it(self) -> None:
        with tempfile.NamedTemporaryFile("wb", suffix=".txt", delete=False) as file:
            file.write(b"v1\n\xff\n")
        self.addCleanup(os.remove, file.name)
        with self.assertRaises(get_docker_image.InputError) as raised:
            get_docker_image.read_keep_list(file.name, "127.0.0.1:5000/team/app")
        self.assertEqual(
            str(raised.exception),
            f"--keep-tags-from file {file.name!r} is not UTF-8: 'utf-8' codec can't decode "
            "byte 0xff in position 3: invalid start byte",
        )

    def test_names_tags_comments_and_blanks(self) -> None:
        tags, warnings = self.read(
            "# one image name or tag a line\n"
            "\n"
            "127.0.0.1:5000/team/app:image_content_digest_aaa\n"
            "   image_content_digest_bbb\t\r\n"
            "v1.2\n"
            "127.0.0.1:5000/team/other:image_content_digest_ccc\n"
            "127.0.0.1:5001/team/app:image_content_digest_ddd\n"
            "127.0.0.1:5000/team/app\n"
            "not a tag\n"
            "  # an indented comment\n"
        )
        self.assertEqual(tags, {"image_content_digest_aaa", "image_content_digest_bbb", "v1.2"})
        self.assertEqual(
            warnings,
            [
                "--keep-tags-from line 6: '127.0.0.1:5000/team/other:image_content_digest_ccc' "
                "is of another registry or repository; ignored.",
                "--keep-tags-from line 7: '127.0.0.1:5001/team/app:image_content_digest_ddd' "
                "is of another registry or repository; ignored.",
                "--keep-tags-from line 8: '127.0.0.1:5000/team/app' is no tag; ignored.",
                "--keep-tags-from line 9: 'not a tag' is no tag; ignored.",
            ],
        )


class PruneOptionsTest(PruneTestCase):
    def usage_error(self, argv: Sequence[str], message: str) -> None:
        result = run_main(argv)
        self.assertEqual(result.status, 2, result.stderr)
        self.assertIn(message, result.stderr)
        self.assertEqual(self.memory.exchanges, [])

    def test_durations(self) -> None:
        duration = get_docker_image._duration
        for text, seconds in (("90m", 5400), ("12h", 43200), ("30d", 2592000), ("2w", 1209600)):
            self.assertEqual(duration(text), seconds)
        self.assertEqual(duration("1.5d"), 129600)
        self.assertEqual(duration("1s"), 1)
        self.assertEqual(duration("36500d"), 100 * 365 * 86400)  # the longest
        for text in (
            *("30", "0d", "-1d", "1y", "d", "1.5.2d", "", " 30d", "30 d", "30D", "1e3s"),
            "876000.1h",  # 100 years and 6 minutes
        ):
            with self.subTest(text):
                self.usage_error(
                    self.argv(f"--prune-older-than={text}"),
                    f"not a duration: {text!r} (a number and a unit",
                )

    def test_options_that_need_prune_or_a_registry(self) -> None:
        without_registry = ["--repository", REPOSITORY, "--docker-path", FAKE_DOCKER]
        self.usage_error(
            [*without_registry, "--prune-older-than", "30d"],
            "--prune-older-than needs --container-registry",
        )
        for extra in (["--dry-run"], ["--keep-newest", "2"], ["--keep-tags-from", "k"]):
            with self.subTest(extra):
                self.usage_error(
                    self.argv(*extra),
                    "--keep-newest, --keep-tags-from and --dry-run go with --prune-older-than",
                )
        for extra in (["--print-image-name"], ["--explain"]):
            with self.subTest(extra):
                self.usage_error(
                    self.argv("--prune-older-than", "30d", *extra),
                    "--prune-older-than: not with --print-image-name or --explain",
                )
        self.usage_error(
            self.argv("--prune-older-than", "30d", "--no-push"),
            "--no-push: not with --prune-older-than",
        )
        self.usage_error(
            self.argv("--prune-older-than", "30d", "--keep-newest", "-1"),
            "argument --keep-newest: must be from 0 to 100000: '-1'",
        )


if __name__ == "__main__":
    unittest.main()
