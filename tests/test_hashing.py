"""Trees the original cannot hash (it crashes or never ends) still get a tag.

Expected tags are spelled out from the documented scheme, record by record,
so that these vectors do not come from the code under test.
"""

from __future__ import annotations

import faulthandler
import hashlib
import os
import socket
import stat
from collections.abc import Callable
from typing import Any
from unittest import mock

from get_docker_image import compute_tag
from tests.fixtures import CTX, DOCKERFILE, Dir, File, Link, Node, build_tree
from tests.helpers import ScratchDirTestCase, run_main

FILE_644 = b"33188"
DIR_755 = b"16877"
LINK = b"41471"  # S_IFLNK | 0o777: a symlink's own mode on Linux


def tag_of(*records: bytes) -> str:
    """The tag of a tree whose records are spelled out after the Dockerfile."""
    digest = hashlib.sha256(b"Dockerfile " + FILE_644 + DOCKERFILE.data + b"".join(records))
    return "image_content_digest_" + digest.hexdigest()


def fstat_changing(size: int, changes: dict[int, int]) -> Callable[[int], os.stat_result]:
    """os.fstat, but for a regular file of `size` bytes with these fields
    (by stat.ST_* index) changed: as if the file changed once opened."""
    real_fstat = os.fstat

    def fstat(fd: int) -> os.stat_result:
        status = real_fstat(fd)
        if not (stat.S_ISREG(status.st_mode) and status.st_size == size):
            return status
        fields = list(status[:10])
        for index, value in changes.items():
            fields[index] = value
        return os.stat_result(fields)

    return fstat


class UnhashableByOriginalTest(ScratchDirTestCase):
    def setUp(self) -> None:
        super().setUp()
        build_tree(self.root, [DOCKERFILE, CTX])
        # A loop must fail the test, not hang the run.
        faulthandler.dump_traceback_later(60, exit=True, file=2)  # fd 2: works under -b too
        self.addCleanup(faulthandler.cancel_dump_traceback_later)

    def tag(self, context: str = "ctx") -> str:
        return compute_tag("", "Dockerfile", context)

    def test_plain_tree_spelled_out(self) -> None:
        """The scheme the other vectors are spelled in, checked on a plain tree."""
        build_tree(self.root, [File("ctx/f", b"data"), Dir("ctx/d"), File("ctx/d/g", b"")])
        expected = tag_of(
            b"ctx " + DIR_755,
            b"ctx/f " + FILE_644 + b"data",
            b"ctx/d " + DIR_755,
            b"ctx/d/g " + FILE_644,
        )
        self.assertEqual(self.tag(), expected)

    def test_dangling_symlink_is_hashed_as_a_link(self) -> None:
        build_tree(self.root, [File("ctx/b", b"b"), Link("ctx/a", "nowhere")])
        expected = tag_of(
            b"ctx " + DIR_755, b"ctx/a " + LINK + b"nowhere", b"ctx/b " + FILE_644 + b"b"
        )
        self.assertEqual(self.tag(), expected)

    def test_link_to_the_directory_itself(self) -> None:
        build_tree(self.root, [Link("ctx/self", ".")])
        self.assertEqual(self.tag(), tag_of(b"ctx " + DIR_755, b"ctx/self " + LINK + b"."))

    def test_link_to_an_ancestor_inside_the_context(self) -> None:
        build_tree(self.root, [Dir("ctx/sub"), Link("ctx/sub/up", "..")])
        expected = tag_of(b"ctx " + DIR_755, b"ctx/sub " + DIR_755, b"ctx/sub/up " + LINK + b"..")
        self.assertEqual(self.tag(), expected)

    def test_link_to_an_ancestor_of_the_context(self) -> None:
        build_tree(self.root, [Link("ctx/root", "..")])
        self.assertEqual(self.tag(), tag_of(b"ctx " + DIR_755, b"ctx/root " + LINK + b".."))

    def test_links_pointing_at_each_other(self) -> None:
        build_tree(self.root, [Link("ctx/ping", "pong"), Link("ctx/pong", "ping")])
        expected = tag_of(
            b"ctx " + DIR_755, b"ctx/ping " + LINK + b"pong", b"ctx/pong " + LINK + b"ping"
        )
        self.assertEqual(self.tag(), expected)

    def test_loop_through_a_directory_outside_the_context(self) -> None:
        build_tree(
            self.root,
            [Dir("outside"), Link("outside/back", "../ctx"), Link("ctx/out", "../outside")],
        )
        expected = tag_of(
            b"ctx " + DIR_755,
            b"ctx/out " + DIR_755,  # followed, as the original does
            b"ctx/out/back " + LINK + b"../ctx",  # would lead back into ctx: not followed
        )
        with self.assertLogs("get_docker_image", "WARNING"):  # ctx/out leads outside
            self.assertEqual(self.tag(), expected)

    def test_loop_through_a_subdirectory_of_a_followed_directory(self) -> None:
        """The walk keeps the followed directory's path below it: the link
        back into ctx from outside/s is a loop too."""
        build_tree(
            self.root,
            [Dir("outside"), Dir("outside/s"), Link("outside/s/back", "../../ctx"),
             Link("ctx/out", "../outside")],
        )  # fmt: skip
        expected = tag_of(
            b"ctx " + DIR_755,
            b"ctx/out " + DIR_755,
            b"ctx/out/s " + DIR_755,
            b"ctx/out/s/back " + LINK + b"../../ctx",
        )
        with self.assertLogs("get_docker_image", "WARNING"):  # ctx/out leads outside
            self.assertEqual(self.tag(), expected)

    def test_sibling_directory_links_are_followed_not_taken_for_loops(self) -> None:
        build_tree(
            self.root,
            [Dir("ctx/a"), File("ctx/a/f", b"f"), Link("ctx/b", "a"), Link("ctx/a/c", "../b")],
        )
        # a/c -> b -> a is a loop; b -> a alone is not.
        expected = tag_of(
            b"ctx " + DIR_755,
            b"ctx/a " + DIR_755,
            b"ctx/a/c " + LINK + b"../b",
            b"ctx/a/f " + FILE_644 + b"f",
            b"ctx/b " + DIR_755,
            b"ctx/b/c " + LINK + b"../b",
            b"ctx/b/f " + FILE_644 + b"f",
        )
        with self.assertLogs("get_docker_image", "WARNING"):  # a is reached twice
            self.assertEqual(self.tag(), expected)

    def test_links_into_directories_reached_through_links(self) -> None:
        """Each directory link is resolved on its own (a/c leads to d, not to
        where a led); inside a followed directory, its subdirectories and
        links to files are followed too."""
        build_tree(
            self.root,
            [
                Link("ctx/a", "b"),
                Dir("ctx/b"),
                Link("ctx/b/c", "../d"),
                Dir("ctx/d"),
                File("ctx/d/f", b"f"),
                Link("ctx/d/lf", "f"),
                Dir("ctx/d/e"),
            ],
        )
        d_records = [(b"", DIR_755), (b"/f", FILE_644 + b"f"), (b"/lf", FILE_644 + b"f"),
                     (b"/e", DIR_755)]  # fmt: skip
        expected = tag_of(
            b"ctx " + DIR_755,
            b"ctx/a " + DIR_755,
            *(b"ctx/a/c" + name + b" " + record for name, record in d_records),
            b"ctx/b " + DIR_755,
            *(b"ctx/b/c" + name + b" " + record for name, record in d_records),
            *(b"ctx/d" + name + b" " + record for name, record in d_records),
        )
        with self.assertLogs("get_docker_image", "WARNING"):  # b and d are reached twice
            self.assertEqual(self.tag(), expected)

    def test_links_to_ancestors_whose_paths_end_in_any_character_or_are_the_root(self) -> None:
        build_tree(
            self.root,
            [Dir("ctx/d "), Link("ctx/d /self", "."), Dir("ctx/dX"), Link("ctx/dX/self", "."),
             Link("ctx/slash", "/")],
        )  # fmt: skip
        expected = tag_of(
            b"ctx " + DIR_755,
            b"ctx/slash " + LINK + b"/",
            b"ctx/d  " + DIR_755,
            b"ctx/d /self " + LINK + b".",
            b"ctx/dX " + DIR_755,
            b"ctx/dX/self " + LINK + b".",
        )
        self.assertEqual(self.tag(), expected)

    def test_names_that_are_not_utf8_are_hashed_as_raw_bytes(self) -> None:
        for name in (b"ctx/\xff\xfe", b"ctx/caf\xe9"):
            with open(name, "wb") as file:
                file.write(b"x")
            os.chmod(name, 0o644)
        os.mkdir(b"ctx/d\x80")
        os.chmod(b"ctx/d\x80", 0o755)
        expected = tag_of(
            b"ctx " + DIR_755,
            b"ctx/caf\xe9 " + FILE_644 + b"x",
            b"ctx/\xff\xfe " + FILE_644 + b"x",
            b"ctx/d\x80 " + DIR_755,
        )
        self.assertEqual(self.tag(), expected)
        self.assertEqual(
            compute_tag("", "Dockerfile", os.fsdecode(b"ctx/d\x80")),
            tag_of(b"ctx/d\x80 " + DIR_755),
        )

    def test_sockets_devices_and_fifos_are_skipped_unopened(self) -> None:
        """Skipped, and the files after them hashed (zz sorts last; of the
        m* files, some the file system lists after the link, whatever its order)."""
        many = [File(f"ctx/m{n:02}", b"m") for n in range(20)]
        build_tree(
            self.root,
            [File("ctx/f", b"f"), *many[:10], Link("ctx/null", "/dev/null"), *many[10:]],
        )
        build_tree(self.root, [File("ctx/zz", b"z")])
        os.mkfifo("ctx/fifo", 0o644)
        listener = socket.socket(socket.AF_UNIX)
        self.addCleanup(listener.close)
        listener.bind("ctx/socket")
        if os.geteuid() == 0:
            os.mknod("ctx/device", 0o600 | 0o020000, os.makedev(1, 3))  # like /dev/null
        opened: list[bytes] = []
        real_open = os.open

        def open_(path: Any, *args: Any, **kwargs: Any) -> int:
            opened.append(os.path.basename(os.fsencode(path)))
            return real_open(path, *args, **kwargs)

        with mock.patch("os.open", open_):
            tag = self.tag()
        self.assertEqual(
            tag,
            tag_of(
                b"ctx " + DIR_755,
                b"ctx/f " + FILE_644 + b"f",
                *(b"ctx/m%02d %sm" % (n, FILE_644) for n in range(20)),
                b"ctx/zz " + FILE_644 + b"z",
            ),
        )
        names = [b"m%02d" % n for n in range(20)]
        self.assertEqual(sorted(opened), [b"Dockerfile", b"ctx", b"f", *names, b"zz"])

    def test_a_file_that_is_no_longer_regular_once_opened_is_skipped(self) -> None:
        """As if ctx/a became a FIFO between the listing and its open: the
        files after it are still hashed."""
        build_tree(self.root, [File("ctx/a", b"aaa"), File("ctx/b", b"b")])
        with mock.patch("os.fstat", fstat_changing(3, {stat.ST_MODE: stat.S_IFIFO | 0o644})):
            tag = self.tag()
        self.assertEqual(tag, tag_of(b"ctx " + DIR_755, b"ctx/b " + FILE_644 + b"b"))

    def test_a_small_file_that_grew_once_opened_is_hashed_whole_and_the_rest_too(self) -> None:
        """As if ctx/a grew from 3 to 4 bytes between its fstat and its read:
        all its bytes are hashed (as the original reads to the end), and the
        files after it too."""
        build_tree(self.root, [File("ctx/a", b"aaaa"), File("ctx/b", b"b")])
        with mock.patch("os.fstat", fstat_changing(4, {stat.ST_SIZE: 3})):
            tag = self.tag()
        expected = (b"ctx " + DIR_755, b"ctx/a " + FILE_644 + b"aaaa", b"ctx/b " + FILE_644 + b"b")
        self.assertEqual(tag, tag_of(*expected))

    def test_symlinked_dockerfile_and_context_are_followed(self) -> None:
        build_tree(self.root, [Link("Dockerfile.link", "Dockerfile"), Link("ctx.link", "ctx")])
        expected = hashlib.sha256(
            b"Dockerfile.link " + FILE_644 + DOCKERFILE.data + b"ctx.link " + DIR_755
        ).hexdigest()
        tag = compute_tag("", "Dockerfile.link", "ctx.link")
        self.assertEqual(tag, "image_content_digest_" + expected)

    def test_deep_tree_beyond_the_recursion_limit(self) -> None:
        paths = ["ctx"]
        for _ in range(1200):
            paths.append(paths[-1] + "/d")
            os.mkdir(paths[-1], 0o755)
            os.chmod(paths[-1], 0o755)
        # Bottom up: shutil.rmtree would recurse too deep.
        for path in paths[1:]:
            self.addCleanup(os.rmdir, path)  # cleanups run last-in first-out
        self.assertEqual(self.tag(), tag_of(*(path.encode() + b" " + DIR_755 for path in paths)))


class OriginalModeWarningTest(ScratchDirTestCase):
    """What makes original-mode tags vary by runner gets one line each."""

    def test_git_outside_links_and_twice_reached_directories(self) -> None:
        build_tree(
            self.root,
            [
                DOCKERFILE,
                CTX,
                Dir("ctx/.git"),
                File("ctx/.git/HEAD", b"ref: refs/heads/main\n"),
                Dir("ctx/sub"),
                File("ctx/sub/f", b"f"),
                # In another directory than sub: which of two entries of one
                # directory comes first is the file system's order.
                Dir("ctx/z"),
                Link("ctx/z/again", "../sub"),
                Link("ctx/passwd", "/etc/hostname"),
            ],
        )
        result = run_main(["--context", "ctx", "--repository", "r", "--print-image-name"])
        self.assertEqual(result.status, 0)
        self.assertEqual(
            result.log_messages(),
            [
                "get_docker_image [WARNING] - The context holds a .git directory ('ctx/.git'): "
                "its files change with every git command, and so does the tag; "
                "--hash-mode docker would not hash it when .dockerignore lists it.",
                "get_docker_image [WARNING] - A symlink leads outside the context "
                "('ctx/passwd'): the tag hashes what it points to on this runner; "
                "--hash-mode docker hashes the link itself.",
                "get_docker_image [WARNING] - A directory is reached a second time through "
                "symlinks ('ctx/z/again') and hashed again; --hash-mode docker hashes links as "
                "links.",
            ],
        )

    def test_warning_lines_name_the_first_example_in_walk_order(self) -> None:
        """Each tree's exact warnings: links inside give none; the example is
        the first found in walk order: a link outside, a path that reached a
        directory a second time, a .git directory."""
        outside = (
            "get_docker_image [WARNING] - A symlink leads outside the context ({}): the tag "
            "hashes what it points to on this runner; --hash-mode docker hashes the link itself."
        )
        git = (
            "get_docker_image [WARNING] - The context holds a .git directory ({}): its files "
            "change with every git command, and so does the tag; --hash-mode docker would not "
            "hash it when .dockerignore lists it."
        )
        twice = (
            "get_docker_image [WARNING] - A directory is reached a second time through "
            "symlinks ({}) and hashed again; --hash-mode docker hashes links as links."
        )
        table: list[tuple[str, list[Node], list[str]]] = [
            (
                "links to files inside, by relative targets",
                [Dir("ctx/sub"), File("ctx/sub/real", b"r"), Link("ctx/sub/l", "real"),
                 Link("ctx/sub/up", "../top"), File("ctx/top", b"t")],
                [],
            ),
            (
                "links to files outside, in two directories",
                [File("outside", b"o"), Dir("ctx/a"), Link("ctx/a/out", "../../outside"),
                 Dir("ctx/b"), Link("ctx/b/out", "../../outside")],
                [outside.format("'ctx/a/out'")],
            ),
            (
                "a link to a directory outside",
                [Dir("shared"), File("shared/s", b"s"), Link("ctx/shared", "../shared")],
                [outside.format("'ctx/shared'")],
            ),
            (
                "a link to a file, then one to a directory, outside",
                [File("outside", b"o"), Dir("shared"), Dir("ctx/a"),
                 Link("ctx/a/out", "../../outside"), Dir("ctx/b"),
                 Link("ctx/b/shared", "../../shared")],
                [outside.format("'ctx/a/out'")],
            ),
            (
                "a directory reached again from two later directories",
                [Dir("ctx/a"), Dir("ctx/a/x"), Dir("ctx/b"), Link("ctx/b/l", "../a/x"),
                 Dir("ctx/c"), Link("ctx/c/m", "../a/x")],
                [twice.format("'ctx/b/l'")],
            ),
            (
                "a directory reached through a link before it is reached itself",
                [Dir("ctx/a"), Link("ctx/a/l", "../b/x"), Dir("ctx/b"), Dir("ctx/b/x")],
                [twice.format("'ctx/b/x'")],
            ),
            (
                "two .git directories",
                [Dir("ctx/.git"), Dir("ctx/sub"), Dir("ctx/sub/.git")],
                [git.format("'ctx/.git'")],
            ),
        ]  # fmt: skip
        for number, (name, nodes, warnings) in enumerate(table):
            with self.subTest(name):
                os.chdir(self.root)
                os.mkdir(str(number))
                os.chdir(str(number))
                build_tree(".", [DOCKERFILE, CTX, *nodes])
                result = run_main(["--context", "ctx", "--repository", "r", "--print-image-name"])
                self.assertEqual((result.status, result.log_messages()), (0, warnings))

    def test_a_plain_context_gets_no_warning(self) -> None:
        build_tree(self.root, [DOCKERFILE, CTX, Dir("ctx/sub"), File("ctx/sub/f", b"f")])
        result = run_main(["--context", "ctx", "--repository", "r", "--print-image-name"])
        self.assertEqual((result.status, result.stderr), (0, ""))
