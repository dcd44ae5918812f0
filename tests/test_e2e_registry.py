"""End to end: the registry client (registry.py) against Debian's docker-registry
(distribution 2.8) on 127.0.0.1: with htpasswd Basic auth after a real `docker login`,
behind a Bearer-token front (tokens, refresh tokens that docker login gets, tag pages
of three), with deletes disabled or storage read-only, and without credentials; images
made up with chosen ages (tests/registry_images.py).

Needs a docker engine (for `docker login`) and the docker-registry binary; without
them the tests are skipped, except under CI=true, where that is a failure.
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
import tempfile
import time
import unittest
import uuid
from collections.abc import Collection
from concurrent.futures import ThreadPoolExecutor

import registry
from tests.e2e_support import (
    REGISTRY_PASSWORD,
    REGISTRY_USER,
    LocalRegistry,
    LoggedInRegistry,
    docker_login,
    e2e_problem,
    fail_under_ci,
)
from tests.registry_fakes import TokenFront
from tests.registry_images import (
    days_ago,
    push_test_image,
    push_test_index,
    share_manifest,
    tiny_layer,
)

UNAVAILABLE = e2e_problem() or fail_under_ci(
    None
    if shutil.which("docker-registry")
    else "no docker-registry installed (apt-get install docker-registry)"
)

TIMEOUT = 10.0
# Config blobs are read up to this (the prune feature's bound, roughly).
CONFIG_MAX_BYTES = 1024 * 1024
MANY_TAGS = 300
# Storing an image takes the registry some 20 ms, a tag of it some 3: most tags share.
TAGS_PER_IMAGE = 3
THREADS = 8


def unique_repository() -> str:
    return f"gdi-e2e-registry/{uuid.uuid4().hex[:12]}"


def created_of(client: registry.Registry, repository: str, tag: str) -> str:
    """The `created` of an image's config, as prune reads it: manifest, then config blob."""
    manifest = client.manifest(repository, tag)
    config = client.blob(repository, manifest.document["config"]["digest"], CONFIG_MAX_BYTES)
    created: str = json.loads(config)["created"]
    return created


class E2ETestCase(unittest.TestCase):
    def temporary_directory(self) -> str:
        directory = tempfile.mkdtemp(prefix="gdi-e2e-registry-")
        self.addCleanup(shutil.rmtree, directory, True)
        return directory

    def client(self, address: str, docker_config: str) -> registry.Registry:
        client = registry.Registry(
            address, timeout=TIMEOUT, plain_http=True, docker_config=docker_config
        )
        self.addCleanup(client.close)
        return client


@unittest.skipIf(UNAVAILABLE, UNAVAILABLE or "")
class BasicAuthTest(E2ETestCase):
    """A registry with htpasswd auth and deletes enabled, and docker logged in to it."""

    local: LoggedInRegistry
    docker_config: str

    @classmethod
    def setUpClass(cls) -> None:
        cls.local = LoggedInRegistry()
        cls.addClassCleanup(cls.local.close)
        cls.docker_config = cls.local.docker_config

    def setUp(self) -> None:
        self.repository = unique_repository()
        self.logged_in = self.client(self.local.address, self.docker_config)

    def test_docker_login_is_all_it_needs(self) -> None:
        with open(os.path.join(self.docker_config, "config.json"), encoding="utf-8") as file:
            self.assertIn(self.local.address, json.load(file)["auths"])
        credentials = registry.docker_credentials(self.local.address, self.docker_config)
        self.assertEqual(
            (credentials.username, credentials.password), (REGISTRY_USER, REGISTRY_PASSWORD)
        )

    def test_images_of_chosen_ages_are_listed_read_and_deleted(self) -> None:
        client, repository = self.logged_in, self.repository
        images = {
            days: push_test_image(client, repository, f"d{days}", days_ago(days))
            for days in (1, 30, 200)
        }
        oci = push_test_image(
            client,
            repository,
            "oci",
            "2020-02-29T12:00:00.123456789Z",
            media_type=registry.OCI_MANIFEST,
        )
        self.assertEqual(share_manifest(client, repository, "d200", "d200-too"), images[200].digest)
        self.assertEqual(sorted(client.tags(repository)), ["d1", "d200", "d200-too", "d30", "oci"])
        for days, image in images.items():
            created = created_of(client, repository, f"d{days}")
            self.assertEqual(created, image.created)
            age = datetime.datetime.now(datetime.timezone.utc) - datetime.datetime.strptime(
                created[:19] + "+0000", "%Y-%m-%dT%H:%M:%S%z"
            )
            self.assertAlmostEqual(age.total_seconds() / 86400, days, delta=0.01)
            self.assertEqual(client.manifest_digest(repository, image.tag or ""), image.digest)
        self.assertEqual(created_of(client, repository, "oci"), "2020-02-29T12:00:00.123456789Z")
        self.assertEqual(client.manifest(repository, "oci").media_type, registry.OCI_MANIFEST)

        client.delete_manifest(repository, images[200].digest)  # both of its tags
        self.assertEqual(sorted(client.tags(repository)), ["d1", "d30", "oci"])
        self.assertIsNone(client.manifest_digest(repository, "d200-too"))
        with self.assertRaises(registry.NotFound) as caught:
            client.manifest(repository, images[200].digest)
        self.assertEqual(caught.exception.code, "MANIFEST_UNKNOWN")
        with self.assertRaises(registry.NotFound):
            client.delete_manifest(repository, images[200].digest)
        # Its blobs stay (garbage collection's business), shared or not.
        self.assertEqual(client.blob(repository, oci.layer_digest, 1024), tiny_layer()[0])

    def test_an_index_and_a_manifest_list(self) -> None:
        client, repository = self.logged_in, self.repository
        index = push_test_index(client, repository, "multi", days_ago(3))
        listed = push_test_index(
            client, repository, "list", days_ago(4), media_type=registry.DOCKER_MANIFEST_LIST
        )
        self.assertEqual(sorted(client.tags(repository)), ["list", "multi"])
        for pushed in (index, listed):
            manifest = client.manifest(repository, pushed.tag)
            self.assertEqual(
                (manifest.digest, manifest.media_type), (pushed.digest, pushed.media_type)
            )
            entries = [entry["digest"] for entry in manifest.document["manifests"]]
            self.assertEqual(entries, [image.digest for image in pushed.images])
            child = client.manifest(repository, entries[1])
            config = json.loads(client.blob(repository, child.document["config"]["digest"], 4096))
            self.assertEqual(config["architecture"], "arm64")
        client.delete_manifest(repository, index.digest)
        self.assertEqual(client.tags(repository), ["list"])

    def test_a_lock_marker_pushed_renewed_read_back_and_deleted(self) -> None:
        client, repository = self.logged_in, self.repository
        empty = client.push_blob(repository, b"{}")
        self.assertEqual(
            empty, "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        )

        def marker(owner: str, renewed: int) -> bytes:
            return json.dumps(
                {
                    "schemaVersion": 2,
                    "mediaType": registry.OCI_MANIFEST,
                    "config": {
                        "mediaType": "application/vnd.oci.empty.v1+json",
                        "size": 2,
                        "digest": empty,
                    },
                    "layers": [],
                    "annotations": {"gdi.lock.owner": owner, "gdi.lock.renewed": str(renewed)},
                }
            ).encode()

        lock = "image_content_digest_abc-lock"
        self.assertIsNone(client.manifest_digest(repository, lock))
        first = client.push_manifest(repository, lock, registry.OCI_MANIFEST, marker("job-1", 1))
        renewed = client.push_manifest(repository, lock, registry.OCI_MANIFEST, marker("job-1", 2))
        self.assertNotEqual(first, renewed)
        self.assertEqual(client.manifest_digest(repository, lock), renewed)
        read = client.manifest(repository, lock)
        self.assertEqual(read.document["annotations"]["gdi.lock.renewed"], "2")
        client.delete_manifest(repository, renewed)
        self.assertIsNone(client.manifest_digest(repository, lock))
        # The first marker, untagged once renewed, is still there by digest.
        self.assertEqual(client.manifest(repository, first).digest, first)

    def test_many_tags_read_by_threads_in_seconds(self) -> None:
        client, repository = self.logged_in, self.repository

        def push(number: int) -> list[tuple[str, str]]:
            """An image under TAGS_PER_IMAGE tags: (tag, created) of each."""
            image = push_test_image(client, repository, f"t{number:03}-0", days_ago(number + 1))
            tags = [f"t{number:03}-{copy}" for copy in range(1, TAGS_PER_IMAGE)]
            for tag in tags:
                share_manifest(client, repository, f"t{number:03}-0", tag)
            return [(tag, image.created) for tag in [f"t{number:03}-0", *tags]]

        # The first image alone: it uploads the layer all share. Threads that
        # upload one blob at once can make distribution 2.8 answer 500 (its
        # filesystem store racing with itself), which is not what this measures.
        pushed = push(0)
        with ThreadPoolExecutor(THREADS) as pool:
            pushed += [
                pair
                for pairs in pool.map(push, range(1, MANY_TAGS // TAGS_PER_IMAGE))
                for pair in pairs
            ]
        started = time.monotonic()
        tags = client.tags(repository, page_size=100)
        with ThreadPoolExecutor(THREADS) as pool:
            created = list(pool.map(lambda tag: created_of(client, repository, tag), tags))
        reading = time.monotonic() - started
        self.assertEqual(len(tags), MANY_TAGS)
        self.assertEqual(sorted(zip(tags, created, strict=True)), sorted(pushed))
        self.assertLess(reading, 10, f"{MANY_TAGS} tags read in {reading:.1f} s")

    def test_no_credentials_at_all(self) -> None:
        client = self.client(self.local.address, self.temporary_directory())
        with self.assertRaises(registry.AuthenticationError) as caught:
            client.tags(self.repository)
        self.assertEqual(
            str(caught.exception),
            f"GET /v2/{self.repository}/tags/list: the registry wants a username and password;"
            f" no credentials for {self.local.address} in docker's config"
            f" (docker login {self.local.address})",
        )

    def test_refused_credentials(self) -> None:
        docker_config = self.temporary_directory()
        with open(os.path.join(docker_config, "config.json"), "w", encoding="utf-8") as file:
            json.dump(
                {"auths": {self.local.address: {"username": REGISTRY_USER, "password": "wrong"}}},
                file,
            )
        with self.assertRaises(registry.AuthenticationError) as caught:
            self.client(self.local.address, docker_config).tags(self.repository)
        self.assertIn("were refused", str(caught.exception))
        self.assertNotIn("wrong", str(caught.exception))


@unittest.skipIf(UNAVAILABLE, UNAVAILABLE or "")
class TokenFrontTest(E2ETestCase):
    """A Bearer-token front (tests/registry_fakes.py) to a registry without auth."""

    upstream: LocalRegistry

    @classmethod
    def setUpClass(cls) -> None:
        cls.upstream = LocalRegistry()
        cls.addClassCleanup(cls.upstream.stop)

    def front(self, anonymous: Collection[str] = (), refused: Collection[str] = ()) -> TokenFront:
        users = {REGISTRY_USER: REGISTRY_PASSWORD}
        front = TokenFront(self.upstream.address, users=users, anonymous=anonymous, refused=refused)
        self.addCleanup(front.close)
        return front

    def test_docker_login_gets_an_identity_token_that_the_client_uses(self) -> None:
        front = self.front()
        docker_config = self.temporary_directory()
        docker_login(front.address, docker_config)
        with open(os.path.join(docker_config, "config.json"), encoding="utf-8") as file:
            self.assertIn("identitytoken", json.load(file)["auths"][front.address])
        client, repository = self.client(front.address, docker_config), unique_repository()
        images = [
            push_test_image(client, repository, f"t{number}", days_ago(number))
            for number in range(7)
        ]
        self.assertEqual(client.tags(repository), [f"t{number}" for number in range(7)])
        pages = [
            e
            for e in front.requests_to(f"/v2/{repository}/tags/list")
            if "Authorization" in e.headers
        ]
        self.assertEqual([page.query.get("last") for page in pages], [None, ["t2"], ["t5"]])
        client.delete_manifest(repository, images[0].digest)
        self.assertEqual(len(client.tags(repository)), 6)
        asked = [request for request in front.token_requests if request.method == "POST"]
        self.assertEqual(
            [request.scopes for request in asked],
            [
                (f"repository:{repository}:{actions}",)
                for actions in ("pull,push", "pull", "pull,delete")
            ],
        )
        self.assertEqual({request.user for request in asked}, {REGISTRY_USER})

    def test_a_token_without_delete_is_not_allowed_to_delete(self) -> None:
        front = self.front(refused={"delete"})
        docker_config = self.temporary_directory()
        docker_login(front.address, docker_config)
        client, repository = self.client(front.address, docker_config), unique_repository()
        image = push_test_image(client, repository, "kept", days_ago(100))
        with self.assertRaises(registry.NotAllowed) as caught:
            client.delete_manifest(repository, image.digest)
        self.assertIn(f"not allowed to delete from {repository}", str(caught.exception))
        self.assertEqual(client.tags(repository), ["kept"])

    def test_anonymous_clients_may_pull_only(self) -> None:
        front = self.front(anonymous={"pull"})
        docker_config = self.temporary_directory()
        docker_login(front.address, docker_config)
        repository = unique_repository()
        push_test_image(
            self.client(front.address, docker_config), repository, "public", days_ago(1)
        )
        anonymous = self.client(front.address, self.temporary_directory())
        self.assertEqual(anonymous.tags(repository), ["public"])
        with self.assertRaises(registry.AuthenticationError) as caught:
            push_test_image(anonymous, repository, "mine", days_ago(1))
        self.assertIn(f"no credentials for {front.address}", str(caught.exception))


@unittest.skipIf(UNAVAILABLE, UNAVAILABLE or "")
class RefusingRegistryTest(E2ETestCase):
    def test_deletes_disabled_are_unsupported(self) -> None:
        with LocalRegistry(delete=False) as local:
            client = self.client(local.address, self.temporary_directory())
            image = push_test_image(client, unique_repository(), "x", days_ago(5))
            with self.assertRaises(registry.Unsupported) as caught:
                client.delete_manifest(image.repository, image.digest)
            self.assertEqual((caught.exception.status, caught.exception.code), (405, "UNSUPPORTED"))
            self.assertEqual(client.tags(image.repository), ["x"])

    def test_read_only_storage_is_unsupported_for_pushes(self) -> None:
        with LocalRegistry(read_only=True) as local:
            client = self.client(local.address, self.temporary_directory())
            with self.assertRaises(registry.Unsupported) as caught:
                client.push_blob(unique_repository(), b"data")
            self.assertEqual(caught.exception.status, 405)


if __name__ == "__main__":
    unittest.main()
