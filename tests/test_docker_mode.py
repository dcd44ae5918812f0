"""--hash-mode docker: what docker build receives, and nothing else."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import sys
import time
from collections.abc import Callable
from typing import Any
from unittest import mock

import get_docker_image
from get_docker_image import (
    READ_CHUNK_SIZE,
    HashMode,
    Platform,
    UsageError,
    compute_tag,
    stream_header,
)
from tests.fixtures import (
    CTX,
    DOCKERFILE,
    Dir,
    Fifo,
    File,
    Link,
    Node,
    build_tree,
    pseudo_random_bytes,
)
from tests.helpers import Result, ScratchDirTestCase, run_main

# The target platform of every test here: ScratchDirTestCase sets DOCKER_DEFAULT_PLATFORM.
AMD64 = Platform("linux", "amd64", "")


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class DockerModeTestCase(ScratchDirTestCase):
    def explain(self, *options: str, context: str = "ctx") -> list[dict[str, Any]]:
        result = run_main(
            ["--context", context, "--repository", "r", "--hash-mode", "docker", "--explain",
             "json", *options]
        )  # fmt: skip
        self.assertEqual(result.status, 0, result.stderr)
        return [json.loads(line) for line in result.stdout.splitlines()]

    def tag(self, context: str = "ctx", dockerfile: str = "Dockerfile") -> str:
        return compute_tag("", dockerfile, context, hash_mode=HashMode.DOCKER, platforms=[AMD64])


class DockerModeTest(DockerModeTestCase):
    def setUp(self) -> None:
        super().setUp()
        build_tree(
            self.root,
            [
                DOCKERFILE,
                CTX,
                File("ctx/.dockerignore", b"# build outputs\n.git\n*.log\n!keep.log\ndocs/\n"),
                File("ctx/app.py", b"print(1)\n", 0o755),
                File("ctx/debug.log", b"noise"),
                File("ctx/keep.log", b"kept"),
                Dir("ctx/.git", 0o755),
                File("ctx/.git/HEAD", b"ref\n"),
                Dir("ctx/docs"),
                File("ctx/docs/index.md", b"# docs\n"),
                Dir("ctx/empty", 0o700),
                Link("ctx/to-usr", "/usr"),
                Link("ctx/dangling", "missing"),
                Fifo("ctx/pipe"),
            ],
        )

    def test_explain_json_lists_what_docker_receives(self) -> None:
        ignore = b"# build outputs\n.git\n*.log\n!keep.log\ndocs/\n"
        self.assertEqual(
            self.explain(),
            [
                {"kind": "platform", "platform": "linux/amd64"},
                {"kind": "args", "text": ""},
                {
                    "kind": "dockerfile",
                    "path": "Dockerfile",
                    "mode": 0o644,
                    "size": len(DOCKERFILE.data),
                    "sha256": sha(DOCKERFILE.data),
                },
                {"kind": "dir", "path": ".", "mode": 0},
                {
                    "kind": "file",
                    "path": ".dockerignore",
                    "mode": 0o644,
                    "size": len(ignore),
                    "sha256": sha(ignore),
                },
                {"kind": "file", "path": "app.py", "mode": 0o755, "size": 9, "sha256": sha(b"print(1)\n")},
                {"kind": "link", "path": "dangling", "mode": 0o777, "size": 7, "sha256": sha(b"missing"), "target": "missing"},
                {"kind": "file", "path": "keep.log", "mode": 0o644, "size": 4, "sha256": sha(b"kept")},
                {"kind": "link", "path": "to-usr", "mode": 0o777, "size": 4, "sha256": sha(b"/usr"), "target": "/usr"},
                {"kind": "dir", "path": "empty", "mode": 0o700},
                {"image": f"r:{self.tag()}"},
            ],
        )  # fmt: skip

    def test_every_spelling_of_the_context_gives_the_same_tag(self) -> None:
        tags = {self.tag(context) for context in ("ctx", "./ctx", "ctx/", os.path.abspath("ctx"))}
        os.chdir("ctx")
        tags.add(self.tag(".", "../Dockerfile"))
        self.assertEqual(len(tags), 1)

    def test_ignored_entries_change_nothing_and_are_not_read(self) -> None:
        before = self.tag()
        with open("ctx/.git/HEAD", "ab") as file:
            file.write(b"moved\n")
        with open("ctx/debug.log", "ab") as file:
            file.write(b"more\n")
        real_open = os.open

        def open_(path: Any, *args: Any, **kwargs: Any) -> Any:
            self.assertNotIn(b".git", os.fsencode(path), "an ignored directory was read")
            return real_open(path, *args, **kwargs)

        with mock.patch("os.open", open_):
            self.assertEqual(self.tag(), before)

    def test_what_docker_receives_changes_the_tag(self) -> None:
        changes: list[Callable[[], object]] = [
            lambda: os.chmod("ctx/app.py", 0o644),
            lambda: os.chmod("ctx/empty", 0o755),
            lambda: os.rmdir("ctx/empty"),
            lambda: os.replace("ctx/keep.log", "ctx/kept.log.txt"),
            lambda: os.replace("ctx/dangling", "ctx/to-usr"),
            lambda: self.write("ctx/.dockerignore", b".git\n"),
            lambda: self.write("Dockerfile", b"FROM scratch\n"),
        ]
        tags = {self.tag()}
        for change in changes:
            with self.subTest(len(tags)):
                change()
                tag = self.tag()
                self.assertNotIn(tag, tags)
                tags.add(tag)

    def test_modes_other_than_permissions_and_times_do_not_count(self) -> None:
        before = self.tag()
        os.utime("ctx/app.py", (1, 1))
        os.utime("Dockerfile", (1, 1))
        os.chmod("Dockerfile", 0o600)  # docker reads its text only
        self.assertEqual(self.tag(), before)

    def write(self, path: str, data: bytes) -> None:
        with open(path, "wb") as file:
            file.write(data)

    def test_a_dockerignore_that_lists_the_dockerfile(self) -> None:
        self.write("ctx/Dockerfile", b"FROM scratch\n")
        self.write("ctx/.dockerignore", b"Dockerfile\n.dockerignore\n")
        entries = self.explain("--dockerfile", "ctx/Dockerfile")
        self.assertEqual(entries[2]["kind"], "dockerfile")
        self.assertNotIn("Dockerfile", [entry.get("path") for entry in entries[3:]])
        self.assertNotIn(".dockerignore", [entry.get("path") for entry in entries[3:]])

    def test_an_exception_inside_an_excluded_directory(self) -> None:
        self.write("ctx/.dockerignore", b"docs\n!docs/index.md\n")
        paths = [entry.get("path") for entry in self.explain()]
        self.assertIn("docs/index.md", paths)
        self.assertNotIn("docs", paths)  # docker sends the file, not its directory

    def test_a_bad_pattern_is_a_one_line_error(self) -> None:
        self.write("ctx/.dockerignore", b"[\n")
        result = run_main(["--context", "ctx", "--repository", "r", "--hash-mode", "docker"])
        self.assertEqual(result.status, 1)
        self.assertEqual(len(result.log_messages()), 1, result.stderr)
        self.assertIn("[ERROR] - 'ctx/.dockerignore': ", result.log_messages()[0])


class WithoutDockerignoreModuleTest(DockerModeTestCase):
    """Docker mode needs dockerignore.py: without it, a usage error saying so,
    from the command line and from compute_tag alike."""

    MESSAGE = (
        "--hash-mode docker needs dockerignore.py beside get_docker_image.py "
        "(copy it from the tool)"
    )

    def setUp(self) -> None:
        super().setUp()
        build_tree(self.root, [DOCKERFILE, CTX])
        patcher = mock.patch.dict(sys.modules, {"dockerignore": None})  # as if missing
        patcher.start()
        self.addCleanup(patcher.stop)

    def test_the_command_line_gives_a_usage_error(self) -> None:
        result = run_main(["--context", "ctx", "--repository", "r", "--hash-mode", "docker"])
        lines = result.stderr.splitlines()
        self.assertEqual(result.status, 2)
        self.assertTrue(lines[0].startswith("usage: get_docker_image.py "), lines)
        self.assertEqual(lines[-1], f"get_docker_image.py: error: {self.MESSAGE}")

    def test_compute_tag_raises_the_usage_error(self) -> None:
        with self.assertRaises(UsageError) as raised:
            self.tag()
        self.assertEqual(str(raised.exception), self.MESSAGE)


class TagSeparationTest(DockerModeTestCase):
    def test_non_default_tags_start_with_a_header_no_original_stream_has(self) -> None:
        original, docker = HashMode.ORIGINAL, HashMode.DOCKER
        self.assertEqual(stream_header(original, False, False), b"")
        headers = {
            stream_header(docker, False, True),
            stream_header(original, True, False),
            stream_header(docker, True, True),
            stream_header(original, False, True),
            stream_header(original, True, True),
        }
        self.assertEqual(len(headers), 5)
        for header in headers:
            self.assertTrue(header.startswith(b"\0"))

    def test_docker_mode_tag_differs_from_the_original(self) -> None:
        build_tree(self.root, [DOCKERFILE, CTX, File("ctx/f", b"f")])
        self.assertNotEqual(self.tag(), compute_tag("", "Dockerfile", "ctx"))


class LinkHeavyTreeTest(DockerModeTestCase):
    def test_links_are_not_followed(self) -> None:
        """25 directories, each with two links to the next: 2**25 paths when
        followed, 75 entries as docker sends them."""
        nodes: list[Any] = [DOCKERFILE, CTX]
        for level in range(25):
            nodes.append(Dir(f"ctx/d{level}"))
            nodes += [
                Link(f"ctx/d{level}/a", f"../d{level + 1}"),
                Link(f"ctx/d{level}/b", f"../d{level + 1}"),
            ]
        build_tree(self.root, nodes)
        started = time.monotonic()
        entries = self.explain()
        self.assertLess(time.monotonic() - started, 5)
        self.assertEqual(len(entries), 3 + 1 + 25 * 3 + 1)


class SteppingClock:
    """The `time` module as get_docker_image sees it, but for monotonic(),
    which moves on by one second at every reading."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        self.now += 1.0
        return self.now

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


class ProgressTest(ScratchDirTestCase):
    def test_long_hashing_reports_progress_and_a_summary(self) -> None:
        build_tree(
            self.root, [DOCKERFILE, CTX, *(File(f"ctx/f{n}", b"x" * 100) for n in range(130))]
        )
        with (
            mock.patch.object(get_docker_image, "PROGRESS_AFTER_SECONDS", 0.0),
            mock.patch.object(get_docker_image, "PROGRESS_EVERY_SECONDS", 0.0),
        ):
            result = run_main(["--context", "ctx", "--repository", "r", "--print-image-name"])
        messages = result.log_messages()
        self.assertRegex(
            messages[0],
            r"^get_docker_image \[INFO\] - Hashing: 64 files, 6\.3 kB so far \(\S+ \S+/s\)$",
        )
        self.assertRegex(
            messages[1], r"^get_docker_image \[INFO\] - Hashing: 128 files, 12\.7 kB so far"
        )
        self.assertRegex(
            messages[2],
            # Milliseconds: under 10 s (not the clock's reading since boot).
            r"^get_docker_image \[INFO\] - Hashed 131 files, 13\.0 kB in \d\.\d s$",
        )
        self.assertEqual(len(messages), 3)

    def test_the_rates_and_the_time_are_the_clock_readings(self) -> None:
        build_tree(
            self.root, [DOCKERFILE, CTX, *(File(f"ctx/f{n}", b"x" * 100) for n in range(130))]
        )
        with (
            mock.patch.object(get_docker_image, "PROGRESS_AFTER_SECONDS", 0.0),
            mock.patch.object(get_docker_image, "PROGRESS_EVERY_SECONDS", 0.0),
            mock.patch.object(get_docker_image, "time", SteppingClock()),
        ):
            result = run_main(["--context", "ctx", "--repository", "r", "--print-image-name"])
        # A reading at the start, one each 64 files, one at the end: 1, then 2, 3 s.
        self.assertEqual(
            result.log_messages(),
            [
                "get_docker_image [INFO] - Hashing: 64 files, 6.3 kB so far (6.3 kB/s)",
                "get_docker_image [INFO] - Hashing: 128 files, 12.7 kB so far (6.4 kB/s)",
                "get_docker_image [INFO] - Hashed 131 files, 13.0 kB in 3.0 s",
            ],
        )

    def test_the_first_line_waits_and_the_next_ones_are_spaced(self) -> None:
        """PROGRESS_AFTER_SECONDS before the first line, PROGRESS_EVERY_SECONDS
        between lines: each set out of reach in turn (no clock is waited for)."""
        build_tree(
            self.root, [DOCKERFILE, CTX, *(File(f"ctx/f{n}", b"x" * 100) for n in range(130))]
        )
        first = r"^get_docker_image \[INFO\] - Hashing: 64 files, 6\.3 kB so far \(\S+ \S+/s\)$"
        summary = r"^get_docker_image \[INFO\] - Hashed 131 files, 13\.0 kB in \d\.\d s$"
        for after, every, patterns in ((0.0, 1e9, [first, summary]), (1e9, 0.0, [])):
            with (
                self.subTest(after=after, every=every),
                mock.patch.object(get_docker_image, "PROGRESS_AFTER_SECONDS", after),
                mock.patch.object(get_docker_image, "PROGRESS_EVERY_SECONDS", every),
            ):
                result = run_main(["--context", "ctx", "--repository", "r", "--print-image-name"])
                messages = result.log_messages()
                self.assertEqual(len(messages), len(patterns), messages)
                for message, pattern in zip(messages, patterns, strict=True):
                    self.assertRegex(message, pattern)

    def test_a_file_read_in_one_small_chunk_has_no_line_of_its_own(self) -> None:
        """Only every 64th file and every large chunk read the clock: after
        the line at 64 files, a 100 kB file (read in one chunk) adds none."""
        build_tree(
            self.root,
            [DOCKERFILE, CTX, *(File(f"ctx/f{n:02}", b"x") for n in range(63)),
             File("ctx/z", b"z" * 100_000)],
        )  # fmt: skip
        with (
            mock.patch.object(get_docker_image, "PROGRESS_AFTER_SECONDS", 0.0),
            mock.patch.object(get_docker_image, "PROGRESS_EVERY_SECONDS", 0.0),
        ):
            result = run_main(["--context", "ctx", "--repository", "r", "--print-image-name"])
        messages = result.log_messages()
        self.assertEqual(len(messages), 2, messages)
        self.assertRegex(messages[0], r"^get_docker_image \[INFO\] - Hashing: 64 files, 88 bytes ")
        self.assertRegex(messages[1], r"^get_docker_image \[INFO\] - Hashed 65 files, 100\.1 kB ")

    def test_links_hashed_as_links_count_as_files(self) -> None:
        """The Dockerfile and 63 links: the 64th file reports, with the links'
        target bytes (1 each) beside the Dockerfile's 25."""
        build_tree(self.root, [DOCKERFILE, CTX, *(Link(f"ctx/l{n}", "t") for n in range(63))])
        for hash_mode in ("original", "docker"):  # dangling links; any link
            with (
                self.subTest(hash_mode),
                mock.patch.object(get_docker_image, "PROGRESS_AFTER_SECONDS", 0.0),
                mock.patch.object(get_docker_image, "PROGRESS_EVERY_SECONDS", 0.0),
            ):
                result = run_main(
                    ["--context", "ctx", "--repository", "r", "--hash-mode", hash_mode,
                     "--print-image-name"]
                )  # fmt: skip
                messages = result.log_messages()
                self.assertEqual(len(messages), 2, messages)
                self.assertRegex(
                    messages[0],
                    r"^get_docker_image \[INFO\] - Hashing: 64 files, 88 bytes so far "
                    r"\(\S+ \S+/s\)$",
                )
                self.assertRegex(
                    messages[1], r"^get_docker_image \[INFO\] - Hashed 64 files, 88 bytes in "
                    r"\d+\.\d s$"
                )  # fmt: skip

    def test_a_large_file_reports_its_bytes_as_they_are_hashed(self) -> None:
        build_tree(self.root, [DOCKERFILE, CTX, File("ctx/big", b"x" * (3 * 1024 * 1024))])
        with (
            mock.patch.object(get_docker_image, "PROGRESS_AFTER_SECONDS", 0.0),
            mock.patch.object(get_docker_image, "PROGRESS_EVERY_SECONDS", 0.0),
        ):
            result = run_main(["--context", "ctx", "--repository", "r", "--print-image-name"])
        messages = result.log_messages()
        # The Dockerfile, then the first 1 MiB chunk of the big file.
        self.assertRegex(
            messages[0], r"^get_docker_image \[INFO\] - Hashing: 1 files, 1\.0 MB so far"
        )
        self.assertRegex(messages[-1], r"^get_docker_image \[INFO\] - Hashed 2 files, 3\.1 MB in ")

    def test_fast_hashing_is_quiet(self) -> None:
        build_tree(self.root, [DOCKERFILE, CTX, File("ctx/f", b"f")])
        result = run_main(["--context", "ctx", "--repository", "r", "--print-image-name"])
        self.assertEqual(result.stderr, "")


class ExplainTest(ScratchDirTestCase):
    def test_explain_handles_files_of_64_kib_and_more(self) -> None:
        sizes = (65535, 65536, 65537, 5 * 1024 * 1024 + 3)
        data = {size: os.urandom(size) for size in sizes}
        build_tree(
            self.root, [DOCKERFILE, CTX, *(File(f"ctx/f{size}", data[size]) for size in sizes)]
        )
        argv = ["--context", "ctx", "--repository", "r"]
        name = run_main([*argv, "--print-image-name"]).stdout.strip()
        text = run_main([*argv, "--explain"])
        self.assertEqual(text.status, 0, text.stderr)
        lines = {line.rsplit("  ", 1)[-1]: line.split() for line in text.stdout.splitlines()}
        entries = run_main([*argv, "--explain", "json"])
        self.assertEqual(entries.status, 0, entries.stderr)
        by_path = {
            entry.get("path"): entry for entry in map(json.loads, entries.stdout.split("\n")[:-1])
        }
        for size in sizes:
            with self.subTest(size=size):
                # kind, mode, (decimal mode), size, sha256, path
                self.assertEqual(lines[f"ctx/f{size}"][3:5], [str(size), sha(data[size])])
                self.assertEqual(by_path[f"ctx/f{size}"]["size"], size)
                self.assertEqual(by_path[f"ctx/f{size}"]["sha256"], sha(data[size]))
        self.assertEqual(text.stdout.splitlines()[-1], f"image  {name}")
        self.assertEqual(by_path[None], {"image": name})

    def test_json_and_text_forms_list_the_same_inputs(self) -> None:
        build_tree(self.root, [DOCKERFILE, CTX, File("ctx/a", b"a", 0o600), Link("ctx/l", "a")])
        base = ["--context", "ctx", "--repository", "r", "--explain"]
        text = run_main(base).stdout.splitlines()
        entries = [json.loads(line) for line in run_main([*base, "json"]).stdout.splitlines()]
        self.assertEqual(len(text), len(entries))
        self.assertEqual(entries[0], {"kind": "args", "text": ""})
        self.assertEqual(entries[1]["kind"], "dockerfile")
        self.assertEqual(entries[2], {"kind": "dir", "path": "ctx", "mode": 0o40755})
        self.assertEqual(text[-1], f"image  {entries[-1]['image']}")


class ChangedWhileHashedTest(DockerModeTestCase):
    """A file whose size moves between its fstat and its last read, made by an
    fstat that tells another size: docker mode's records state sizes, so it
    refuses; the original mode hashes what it reads, to the end."""

    SMALL = b"s" * 100  # read whole in one call
    LARGE = b"l" * 200_000  # read in chunks

    def setUp(self) -> None:
        super().setUp()
        build_tree(
            self.root,
            [DOCKERFILE, CTX, File("ctx/small", self.SMALL), File("ctx/large", self.LARGE)],
        )

    def told_sizes(self, sizes: dict[int, int]) -> mock._patch[Any]:
        """os.fstat, telling `sizes[n]` for a regular file of n bytes."""
        real_fstat = os.fstat

        def fstat(fd: int) -> os.stat_result:
            status = real_fstat(fd)
            told = sizes.get(status.st_size) if stat.S_ISREG(status.st_mode) else None
            if told is None:
                return status
            fields = list(status[:10])
            fields[stat.ST_SIZE] = told
            return os.stat_result(fields)

        return mock.patch("os.fstat", fstat)

    def run_both_modes(self, sizes: dict[int, int]) -> tuple[str, Result]:
        """The original mode's tag and docker mode's run, with those sizes told."""
        with self.told_sizes(sizes):
            original = compute_tag("", "Dockerfile", "ctx")
            docker = run_main(
                ["--context", "ctx", "--repository", "r", "--hash-mode", "docker",
                 "--print-image-name"]
            )  # fmt: skip
        return original, docker

    def test_a_file_that_grew_or_shrank(self) -> None:
        unchanged = compute_tag("", "Dockerfile", "ctx")
        table = [
            ("small, grew", {len(self.SMALL): 10}, "file changed while it was hashed: 'small'"),
            (
                "small, shrank",
                {len(self.SMALL): 200},
                "file changed while it was hashed: 'small'",
            ),
            (
                "large, grew",
                {len(self.LARGE): 100_000},
                "file changed while it was hashed: 'large'",
            ),
            (
                "large, shrank",
                {len(self.LARGE): 300_000},
                "file changed while it was hashed: 'large'",
            ),
            (
                "Dockerfile, grew",
                {len(DOCKERFILE.data): 1},
                "Dockerfile changed while it was hashed: 'Dockerfile'",
            ),
        ]
        for case, sizes, error in table:
            with self.subTest(case):
                original, docker = self.run_both_modes(sizes)
                self.assertEqual(original, unchanged)  # what the file holds, all of it
                self.assertEqual(docker.status, 1)
                self.assertEqual(docker.stdout, "")
                self.assertEqual(docker.log_messages(), [f"get_docker_image [ERROR] - {error}"])

    def test_original_mode_explains_all_it_read_of_a_file_that_changed(self) -> None:
        for told in (10, 200):  # grew, shrank
            with self.subTest(told=told), self.told_sizes({len(self.SMALL): told}):
                result = run_main(["--context", "ctx", "--repository", "r", "--explain", "json"])
                self.assertEqual(result.status, 0, result.stderr)
                entries = [json.loads(line) for line in result.stdout.splitlines()]
                small = [entry for entry in entries if entry.get("path") == "ctx/small"]
                self.assertEqual(
                    small,
                    [{"kind": "file", "path": "ctx/small", "mode": 0o100644, "size": 100,
                      "sha256": sha(self.SMALL)}],
                )  # fmt: skip


def docker_record(kind: bytes, path: bytes, mode: int, data: bytes = b"") -> bytes:
    """One record of the docker-mode stream as documented, then its bytes."""
    return b"%s\0%s\0%o\0%d\0" % (kind, path, mode, len(data)) + data


class SpelledOutStreamTest(DockerModeTestCase):
    """Docker-mode tags spelled out record by record from the documented
    scheme (_DockerRecords), so that these vectors do not come from the code."""

    HEADER = b"\0get_docker_image v1 hash-mode=docker\0" + b"platform\0linux/amd64\0"

    def expected_tag(self, args: bytes, *records: bytes) -> str:
        stream = self.HEADER + b"args\0%d\0" % len(args) + args
        stream += docker_record(b"dockerfile", b"", 0, DOCKERFILE.data)
        stream += docker_record(b"dir", b".", 0)  # the root: its mode is not hashed
        return "image_content_digest_" + sha(stream + b"".join(records))

    def test_tags_of_trees_spelled_out(self) -> None:
        big = pseudo_random_bytes(READ_CHUNK_SIZE + 1)  # read in two chunks
        exact = pseudo_random_bytes(READ_CHUNK_SIZE)  # a full chunk, then an empty read
        table: list[tuple[str, list[Node], str, list[bytes]]] = [
            ("empty context", [], "", []),
            (
                "files, a link and directories",
                [
                    File("ctx/a", b"a", 0o600),
                    File("ctx/empty", b"", 0o755),
                    Link("ctx/l", "a"),
                    Dir("ctx/d", 0o700),
                    File("ctx/d/f", b"f"),
                    Dir("ctx/d/e", 0o750),
                ],
                "--build-arg A=1",
                [
                    docker_record(b"file", b"a", 0o600, b"a"),
                    docker_record(b"file", b"empty", 0o755),
                    docker_record(b"link", b"l", 0o777, b"a"),
                    docker_record(b"dir", b"d", 0o700),
                    docker_record(b"file", b"d/f", 0o644, b"f"),
                    docker_record(b"dir", b"d/e", 0o750),
                ],
            ),
            (
                "files read in chunks",
                [File("ctx/big", big), File("ctx/exact", exact)],
                "",
                [
                    docker_record(b"file", b"big", 0o644, big),
                    docker_record(b"file", b"exact", 0o644, exact),
                ],
            ),
            (
                # Docker matches a/f with what its directory matched (a, and
                # !a/f), not by trying `a` again on a/f's parents: a/f is sent,
                # without a record for a.
                "an exception in an excluded directory, with what its parent matched",
                [
                    File("ctx/.dockerignore", b"a\n!a/f\na\n"),
                    Dir("ctx/a"),
                    File("ctx/a/f", b"f"),
                    File("ctx/a/g", b"g"),
                ],
                "",
                [
                    docker_record(b"file", b".dockerignore", 0o644, b"a\n!a/f\na\n"),
                    docker_record(b"file", b"a/f", 0o644, b"f"),
                ],
            ),
            (
                # a/b/c inherits what a/b matched (a, then !a/b), not only what
                # the excluded a matched: it is sent.
                "a directory re-included inside an excluded one passes its matches on",
                [
                    File("ctx/.dockerignore", b"a\n!a/b\n"),
                    Dir("ctx/a"),
                    Dir("ctx/a/b"),
                    File("ctx/a/b/c", b"c"),
                    File("ctx/a/d", b"d"),
                ],
                "",
                [
                    docker_record(b"file", b".dockerignore", 0o644, b"a\n!a/b\n"),
                    docker_record(b"dir", b"a/b", 0o755),
                    docker_record(b"file", b"a/b/c", 0o644, b"c"),
                ],
            ),
        ]
        for number, (name, nodes, args, records) in enumerate(table):
            with self.subTest(name):
                os.chdir(self.root)
                os.mkdir(str(number), 0o755)
                os.chdir(str(number))
                build_tree(".", [DOCKERFILE, CTX, *nodes])
                tag = compute_tag(
                    args, "Dockerfile", "ctx", hash_mode=HashMode.DOCKER, platforms=[AMD64]
                )
                self.assertEqual(tag, self.expected_tag(args.encode(), *records))
