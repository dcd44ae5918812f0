"""End to end: --prune-older-than, the real CLI against Debian's docker-registry on
127.0.0.1: with htpasswd Basic auth after a real `docker login` into a temporary
DOCKER_CONFIG (or a credential helper), behind a Bearer-token front that pages the tag
list three at a time, with deletes disabled, without credentials; images of chosen
ages made up through the API (tests/registry_images.py); and a CI job whose tag a
prune deletes, with a real docker engine, which builds it again.

Needs a docker engine (for `docker login` and the builds) and the docker-registry
binary; without them the tests are skipped, except under CI=true, where that is a
failure.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import stat
import subprocess
import sys
import tempfile
import time
import unittest
import uuid
from collections.abc import Mapping
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
    registry_tags,
    remove_dangling_images_of,
    remove_images,
    test_registry,
)
from tests.fixtures import Dir, File, build_tree
from tests.helpers import SCRIPT
from tests.registry_fakes import TokenFront
from tests.registry_images import (
    PushedImage,
    days_ago,
    push_test_image,
    push_test_index,
    share_manifest,
)

UNAVAILABLE = e2e_problem() or fail_under_ci(
    None
    if shutil.which("docker-registry")
    else "no docker-registry installed (apt-get install docker-registry)"
)

PREFIX = "image_content_digest_"
TIMEOUT = 10.0
MANY_TAGS = 300
# What a prune of MANY_TAGS may take here: seconds (it takes 1-3), not minutes.
MANY_TAGS_SECONDS = 20.0
HELPER = "gdi-prune-test"
# A credential helper (docker-credential-gdi-prune-test): records the server it was
# asked for, answers with the test registry's user.
HELPER_SCRIPT = f"""#!/bin/sh
[ "$1" = get ] || exit 3
read -r server
printf '%s\\n' "$server" >> "$(dirname "$0")/asked"
echo '{{"ServerURL":"'"$server"'","Username":"{REGISTRY_USER}","Secret":"{REGISTRY_PASSWORD}"}}'
"""


def unique_repository() -> str:
    return f"gdi-e2e-prune/{uuid.uuid4().hex[:12]}"


class PruneE2ETestCase(unittest.TestCase):
    """The tool in a scratch directory whose Dockerfile and context give the current tag."""

    def setUp(self) -> None:
        self.root = self.temporary_directory()
        self.repository = unique_repository()
        build_tree(
            self.root,
            [
                File("Dockerfile", b"FROM scratch\nCOPY hello.txt /hello.txt\n"),
                Dir("ctx"),
                File("ctx/hello.txt", f"hello from {self.repository}\n".encode()),
            ],
        )

    def temporary_directory(self) -> str:
        directory = tempfile.mkdtemp(prefix="gdi-e2e-prune-")
        self.addCleanup(shutil.rmtree, directory, True)
        return directory

    def client(self, address: str, docker_config: str) -> registry.Registry:
        client = registry.Registry(
            address, timeout=TIMEOUT, plain_http=True, docker_config=docker_config
        )
        self.addCleanup(client.close)
        return client

    def run_tool(
        self, address: str, *extra: str, env: Mapping[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        argv = [
            sys.executable,
            SCRIPT,
            "--context",
            "ctx",
            "--repository",
            self.repository,
            "--container-registry",
            address,
            "--retry-delay",
            "0.1",
            *extra,
        ]
        return subprocess.run(
            argv,
            capture_output=True,
            text=True,
            check=False,
            timeout=300,
            cwd=self.root,
            env={**os.environ, **(env or {})},
        )

    def prune(
        self, address: str, docker_config: str, *extra: str
    ) -> subprocess.CompletedProcess[str]:
        completed = self.run_tool(
            address,
            "--prune-older-than",
            "30d",
            *extra,
            env={"DOCKER_CONFIG": docker_config},
        )
        self.assertNotIn(REGISTRY_PASSWORD, completed.stdout + completed.stderr)
        return completed

    def current_tag(self, address: str) -> str:
        completed = self.run_tool(address, "--print-image-name")
        self.assertEqual(completed.returncode, 0, completed.stderr)
        return completed.stdout.strip().rsplit(":", 1)[1]

    def assert_one_line_error(
        self, completed: subprocess.CompletedProcess[str], *parts: str
    ) -> None:
        """Exit 1, and stderr one error line holding every part (stdout empty)."""
        self.assertEqual(completed.returncode, 1, completed.stderr)
        self.assertEqual(completed.stdout, "")
        lines = completed.stderr.splitlines()
        self.assertEqual(len(lines), 1, completed.stderr)
        self.assertIn("[ERROR] - ", lines[0])
        for part in parts:
            self.assertIn(part, lines[0])

    def push_mix(self, client: registry.Registry, address: str) -> tuple[set[str], set[str]]:
        """A repository of images 1 to 200 days old, the current tag among them, tags
        sharing manifests, an index, an image without a build time, and a keep list
        (keep.txt); returns the tags the rules keep and those they delete at 30 days,
        keeping the 2 newest."""
        repository = self.repository
        current = self.current_tag(address)
        push_test_image(client, repository, current, days_ago(150))
        images: dict[int, PushedImage] = {
            days: push_test_image(client, repository, f"{PREFIX}d{days:03}", days_ago(days))
            for days in (1, 2, 5, 20, 31, 45, 60, 90, 100, 120, 200)
        }
        share_manifest(client, repository, f"{PREFIX}d045", f"{PREFIX}twin045")
        share_manifest(client, repository, f"{PREFIX}d120", "latest")
        share_manifest(client, repository, f"{PREFIX}d031", "v1")
        push_test_index(client, repository, f"{PREFIX}index", days_ago(250))
        push_test_image(client, repository, f"{PREFIX}epoch", "1970-01-01T00:00:00Z")
        with open(os.path.join(self.root, "keep.txt"), "w", encoding="utf-8") as file:
            file.write(f"# the release\n{PREFIX}d090\n{address}/{repository}:{PREFIX}d200\n")
        deleted = {f"{PREFIX}d045", f"{PREFIX}twin045", f"{PREFIX}d060", f"{PREFIX}d100"}
        every = {image.tag or "" for image in images.values()}
        every |= {current, f"{PREFIX}twin045", "latest", "v1", f"{PREFIX}index", f"{PREFIX}epoch"}
        return every - deleted, deleted

    def assert_pruned_by_the_rules(
        self, client: registry.Registry, address: str, docker_config: str
    ) -> subprocess.CompletedProcess[str]:
        kept, deleted = self.push_mix(client, address)
        before = set(client.tags(self.repository))
        dry = self.prune(
            address,
            docker_config,
            "--keep-newest",
            "2",
            "--keep-tags-from",
            "keep.txt",
            "--dry-run",
        )
        self.assertEqual(dry.returncode, 0, dry.stderr)
        self.assertEqual(set(client.tags(self.repository)), before)
        completed = self.prune(
            address, docker_config, "--keep-newest", "2", "--keep-tags-from", "keep.txt"
        )
        self.assertEqual(completed.returncode, 0, completed.stderr)
        self.assertEqual(completed.stdout, dry.stdout)
        self.assertEqual(set(client.tags(self.repository)), kept)
        words = [line.split(" ", 2) for line in completed.stdout.splitlines()]
        self.assertEqual({tag for action, tag, _ in words if action == "delete"}, deleted)
        self.assertEqual({tag for action, tag, _ in words if action == "keep"}, kept)
        self.assertIn(f"Deleted {len(deleted)} tags, kept {len(kept)}; ", completed.stderr)
        return completed


@unittest.skipIf(UNAVAILABLE, UNAVAILABLE or "")
class BasicAuthPruneTest(PruneE2ETestCase):
    """A registry with htpasswd auth and deletes enabled, and docker logged in to it."""

    local: LoggedInRegistry
    docker_config: str

    @classmethod
    def setUpClass(cls) -> None:
        cls.local = LoggedInRegistry()
        cls.addClassCleanup(cls.local.close)
        cls.docker_config = cls.local.docker_config

    def test_the_tags_left_are_exactly_those_the_rules_keep(self) -> None:
        client = self.client(self.local.address, self.docker_config)
        self.assert_pruned_by_the_rules(client, self.local.address, self.docker_config)

    def test_a_credential_helper_is_asked(self) -> None:
        helpers = self.temporary_directory()
        helper = os.path.join(helpers, f"docker-credential-{HELPER}")
        with open(helper, "w", encoding="utf-8") as file:
            file.write(HELPER_SCRIPT)
        os.chmod(helper, stat.S_IRWXU)
        docker_config = self.temporary_directory()
        with open(os.path.join(docker_config, "config.json"), "w", encoding="utf-8") as file:
            json.dump({"credsStore": HELPER}, file)
        client = self.client(self.local.address, self.docker_config)
        old = push_test_image(client, self.repository, f"{PREFIX}old", days_ago(90))
        completed = self.run_tool(
            self.local.address,
            "--prune-older-than",
            "30d",
            "--keep-newest",
            "0",
            env={"DOCKER_CONFIG": docker_config, "PATH": helpers + os.pathsep + os.environ["PATH"]},
        )
        self.assertEqual(completed.returncode, 0, completed.stderr)
        self.assertEqual(completed.stdout, f"delete {old.tag} {old.created[:19]}Z\n")
        self.assertNotIn(REGISTRY_PASSWORD, completed.stdout + completed.stderr)
        with open(os.path.join(helpers, "asked"), encoding="utf-8") as file:
            self.assertEqual(set(file.read().split()), {self.local.address})
        self.assertEqual(client.tags(self.repository), [])

    def test_no_credentials_end_in_one_line(self) -> None:
        client = self.client(self.local.address, self.docker_config)
        push_test_image(client, self.repository, f"{PREFIX}old", days_ago(90))
        completed = self.prune(self.local.address, self.temporary_directory())
        self.assert_one_line_error(
            completed,
            f"cannot list the tags of {self.repository}: ",
            "the registry wants a username and password; no credentials for "
            f"{self.local.address} in docker's config (docker login {self.local.address})",
        )
        self.assertEqual(client.tags(self.repository), [f"{PREFIX}old"])

    def test_many_tags_in_seconds(self) -> None:
        client = self.client(self.local.address, self.docker_config)

        def push(days: int) -> PushedImage:
            return push_test_image(
                client, self.repository, f"{PREFIX}n{days:03}", days_ago(days - 0.5)
            )

        # The first push stores the layer all share: the registry answers 500 to a HEAD
        # of a blob that another upload is committing.
        push(1)
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(push, range(2, MANY_TAGS + 1)))
        started = time.monotonic()
        completed = self.prune(self.local.address, self.docker_config)
        seconds = time.monotonic() - started
        self.assertEqual(completed.returncode, 0, completed.stderr)
        self.assertEqual(len(completed.stdout.splitlines()), MANY_TAGS)
        left = client.tags(self.repository)
        self.assertEqual(sorted(left), [f"{PREFIX}n{days:03}" for days in range(1, 31)])
        self.assertLess(seconds, MANY_TAGS_SECONDS, f"{MANY_TAGS} tags pruned in {seconds:.1f} s")
        if os.environ.get("GDI_TEST_REPORT_TIMES"):
            print(f"{MANY_TAGS} tags pruned in {seconds:.1f} s", file=sys.stderr)


@unittest.skipIf(UNAVAILABLE, UNAVAILABLE or "")
class TokenFrontPruneTest(PruneE2ETestCase):
    """A Bearer-token front (tests/registry_fakes.py), pages of three, to a registry."""

    upstream: LocalRegistry

    @classmethod
    def setUpClass(cls) -> None:
        cls.upstream = LocalRegistry()
        cls.addClassCleanup(cls.upstream.stop)

    def logged_in_front(self, refused: tuple[str, ...] = ()) -> tuple[TokenFront, str]:
        front = TokenFront(
            self.upstream.address, users={REGISTRY_USER: REGISTRY_PASSWORD}, refused=refused
        )
        self.addCleanup(front.close)
        docker_config = self.temporary_directory()
        docker_login(front.address, docker_config)
        return front, docker_config

    def test_the_tags_left_are_exactly_those_the_rules_keep(self) -> None:
        front, docker_config = self.logged_in_front()
        client = self.client(front.address, docker_config)
        completed = self.assert_pruned_by_the_rules(client, front.address, docker_config)
        with open(os.path.join(docker_config, "config.json"), encoding="utf-8") as file:
            identity_token = json.load(file)["auths"][front.address]["identitytoken"]
        self.assertNotIn(identity_token, completed.stdout + completed.stderr)
        pages = [
            exchange
            for exchange in front.requests_to(f"/v2/{self.repository}/tags/list")
            if "Authorization" in exchange.headers and exchange.query.get("last")
        ]
        self.assertGreater(len(pages), 4)  # 17 tags, three a page, in each listing

    def test_a_token_without_delete_ends_in_one_line_and_deletes_nothing(self) -> None:
        front, docker_config = self.logged_in_front(refused=("delete",))
        client = self.client(front.address, docker_config)
        for days in (40, 50, 60):
            push_test_image(client, self.repository, f"{PREFIX}d{days}", days_ago(days))
        completed = self.prune(front.address, docker_config, "--keep-newest", "0")
        self.assert_one_line_error(
            completed,
            f"not allowed to delete from {self.repository}: DELETE /v2/{self.repository}/",
            "(the token server granted fewer actions than asked) (nothing deleted)",
        )
        self.assertEqual(len(client.tags(self.repository)), 3)


@unittest.skipIf(UNAVAILABLE, UNAVAILABLE or "")
class DeletesDisabledPruneTest(PruneE2ETestCase):
    def test_a_registry_that_refuses_deletes_ends_in_one_line_naming_the_setting(self) -> None:
        with LocalRegistry(delete=False) as local:
            docker_config = self.temporary_directory()
            client = self.client(local.address, docker_config)
            for days in (40, 50):
                push_test_image(client, self.repository, f"{PREFIX}d{days}", days_ago(days))
            completed = self.prune(local.address, docker_config, "--keep-newest", "0")
            self.assert_one_line_error(
                completed,
                f"registry {local.address} refuses deletes through its API: DELETE ",
                "405 Method Not Allowed (UNSUPPORTED: The operation is unsupported.) "
                "(nothing deleted); the CNCF registry (distribution) needs "
                "storage.delete.enabled: true",
            )
            self.assertEqual(len(client.tags(self.repository)), 2)


# Runs docker, but before a pull runs $GDI_TEST_BEFORE_PULL: a prune between a job's
# probe and its pull.
PRUNING_DOCKER = """#!/bin/sh
if [ "$1" = pull ] && [ -n "$GDI_TEST_BEFORE_PULL" ]; then
  sh -c "$GDI_TEST_BEFORE_PULL" >&2 || exit 99
fi
exec docker "$@"
"""


@unittest.skipIf(UNAVAILABLE, UNAVAILABLE or "")
class PruneDuringCITest(PruneE2ETestCase):
    """A real engine (shared: a repository of this test's own, and only its images
    removed) and the shared test registry."""

    def setUp(self) -> None:
        super().setUp()
        self.registry = test_registry()
        self.addCleanup(remove_images, self.repository)
        self.outputs: list[str] = []
        self.addCleanup(lambda: remove_dangling_images_of("".join(self.outputs)))

    def job(self, *extra: str, env: Mapping[str, str] | None = None) -> str:
        """A CI job: gets the image; returns its log."""
        completed = self.run_tool(self.registry, *extra, env=env)
        self.outputs.append(completed.stderr)
        self.assertEqual(completed.returncode, 0, completed.stderr)
        return completed.stderr

    def prune_command(self) -> list[str]:
        """A prune run of other inputs (another branch's): this job's tag is not its current."""
        return [
            sys.executable,
            SCRIPT,
            "--context",
            "ctx",
            "--repository",
            self.repository,
            "--container-registry",
            self.registry,
            "--docker-build-args",
            "--build-arg OTHER_BRANCH=1",
            "--prune-older-than",
            "1s",
            "--keep-newest",
            "0",
        ]

    def test_a_job_whose_tag_was_just_pruned_builds_it_again(self) -> None:
        tag = self.current_tag(self.registry)
        self.assertIn("Image not found, building and pushing...", self.job())
        self.assertEqual(registry_tags(self.registry, self.repository), [tag])
        time.sleep(1.5)  # the image is older than 1 s now
        pruned = subprocess.run(
            self.prune_command(), capture_output=True, text=True, check=False, cwd=self.root
        )
        self.assertEqual(pruned.returncode, 0, pruned.stderr)
        self.assertTrue(pruned.stdout.startswith(f"delete {tag} "), pruned.stdout)
        self.assertEqual(registry_tags(self.registry, self.repository), [])

        # The next job finds no tag: it builds and pushes it again.
        log = self.job()
        self.assertIn("Image not found, building and pushing...", log)
        self.assertIn("Built and pushed", log)
        self.assertEqual(registry_tags(self.registry, self.repository), [tag])

        # A prune between a job's probe and its pull: the pull finds no manifest, and
        # the job builds and pushes it again (the lost-manifest path).
        remove_images(self.repository)
        time.sleep(1.5)
        wrapper = os.path.join(self.temporary_directory(), "docker")
        with open(wrapper, "w", encoding="utf-8") as file:
            file.write(PRUNING_DOCKER)
        os.chmod(wrapper, stat.S_IRWXU)
        log = self.job(
            "--docker-path",
            wrapper,
            env={"GDI_TEST_BEFORE_PULL": shlex.join(self.prune_command())},
        )
        self.assertIn("Image found, pulling...", log)
        self.assertIn(f"delete {tag} ", log)  # the prune's line, on the wrapper's stderr
        self.assertIn("The registry's copy is broken", log)
        self.assertIn("Built and pushed", log)
        self.assertEqual(registry_tags(self.registry, self.repository), [tag])


if __name__ == "__main__":
    unittest.main()
