"""Tests of dockerignore.py, the port of docker's .dockerignore handling.

The tables come from docker's documentation of .dockerignore, from the tests
of github.com/moby/patternmatcher (patternmatcher_test.go and
ignorefile/ignorefile_test.go), and from results recorded by running the Go
code (patternmatcher v0.6.0, as vendored by docker/cli v28) on tricky input.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import unittest
from collections.abc import Callable, Iterable, Sequence
from functools import partial
from unittest import mock

import dockerignore
from dockerignore import DockerignoreError, MatchInfo, PatternMatcher, read_dockerignore
from tests.dockerignore_oracle import (
    files_removed_by_daemon,
    has_exclusions,
    legacy_matches,
    matches_in_order,
    matches_or_parent_matches,
    trim_build_files_from_excludes,
)


def context(patterns: Sequence[str], tree: Iterable[str]) -> set[str]:
    """The entries go-archive's TarWithOptions puts in the tar for a context
    holding tree (directories end with '/'), the way the --hash-mode docker
    walk uses the matcher: one matches() per entry with its directory's
    MatchInfo; an excluded directory is walked only if must_descend()."""
    matcher = PatternMatcher(patterns)
    children: dict[str, list[tuple[str, bool]]] = {}
    for entry in tree:
        is_dir = entry.endswith("/")
        path = entry.rstrip("/")
        parts = path.split("/")
        for i in range(len(parts)):  # the parents exist too
            parent = "/".join(parts[:i])
            child = ("/".join(parts[: i + 1]), i < len(parts) - 1 or is_dir)
            if child not in children.setdefault(parent, []):
                children[parent].append(child)
    included: set[str] = set()

    def walk(directory: str, info: MatchInfo | None) -> None:
        for path, is_dir in sorted(children.get(directory, [])):
            skip, path_info = matcher.matches(path, info)
            if skip and not (is_dir and matcher.must_descend(path)):
                continue
            if not skip:
                included.add(path + "/" if is_dir else path)
            if is_dir:
                walk(path, path_info)

    walk("", None)
    return included


def go_matches(path: str, patterns: Sequence[str]) -> bool:
    """patternmatcher.Matches(path, patterns) with its error raised."""
    matcher = PatternMatcher(patterns)
    path = dockerignore._clean(path)
    return path != "." and legacy_matches(matcher, path)


class ReadDockerignoreTest(unittest.TestCase):
    def test_ignorefile_read_all(self) -> None:
        # ignorefile_test.go TestReadAll
        content = (
            b"test1\n/test2\n/a/file/here\n\nlastfile\n# this is a comment\n"
            b"! /inverted/abs/path\n!\n! "
        )
        self.assertEqual(
            read_dockerignore(content),
            ["test1", "test2", "a/file/here", "lastfile", "!inverted/abs/path", "!", "!"],
        )
        self.assertEqual(read_dockerignore(b""), [])

    def test_bom_trimmed_on_first_line_only(self) -> None:
        bom = b"\xef\xbb\xbf"
        self.assertEqual(read_dockerignore(bom + b"a\n" + bom + b"b"), ["a", "\ufeffb"])
        self.assertEqual(read_dockerignore(bom + b"# comment\nx"), ["x"])

    def test_comments_are_skipped_before_trimming(self) -> None:
        self.assertEqual(read_dockerignore(b"#a\n  #b\n\t# c \n"), ["#b", "# c"])

    def test_lines_trimmed_cleaned_and_made_relative(self) -> None:
        data = b"  foo/../bar/./baz/  \r\n//abs//x\n!  /neg/\n/\n./\na\\b\n\n\t\n"
        self.assertEqual(read_dockerignore(data), ["bar/baz", "abs/x", "!neg", "/", ".", "a\\b"])
        self.assertEqual(read_dockerignore(b"/a\n!/b\n/"), ["a", "!b", "/"])

    def test_go_whitespace(self) -> None:
        # strings.TrimSpace trims Unicode spaces but not U+001C..U+001F,
        # which Python's str.strip() would.
        data = "\u3000a\u00a0\n\x1cb\x1f\n".encode()
        self.assertEqual(read_dockerignore(data), ["a", "\x1cb\x1f"])

    def test_invalid_utf8_is_kept_byte_for_byte(self) -> None:
        self.assertEqual(read_dockerignore(b"a\xff*\n"), ["a\udcff*"])

    def test_line_too_long(self) -> None:
        # bufio.Scanner holds at most 64 KiB: a line and its '\n' must fit.
        self.assertEqual(read_dockerignore(b"x" * 65535), ["x" * 65535])
        self.assertEqual(read_dockerignore(b"x" * 65535 + b"\n"), ["x" * 65535])
        for data in (b"x" * 65536, b"x" * 65535 + b"\r\n", b"#" * 70000 + b"\n"):
            with self.assertRaises(DockerignoreError) as raised:
                read_dockerignore(data)
            self.assertEqual(
                str(raised.exception),
                "error reading .dockerignore: bufio.Scanner: token too long",
            )


class DocumentationExamplesTest(unittest.TestCase):
    """The examples of docker's documentation of .dockerignore files."""

    def test_temp_examples(self) -> None:
        patterns = read_dockerignore(b"# comment\n*/temp*\n*/*/temp*\ntemp?\n")
        self.assertEqual(patterns, ["*/temp*", "*/*/temp*", "temp?"])
        tree = [
            "somedir/temporary.txt",
            "somedir/temp/x",
            "somedir/subdir/temporary.txt",
            "somedir/other.txt",
            "tempa",
            "tempb",
            "temp",
            "temp.txt",
            "tempab",
            "a/b/c/temp",
        ]
        self.assertEqual(
            context(patterns, tree),
            {
                "somedir/",
                "somedir/other.txt",
                "somedir/subdir/",
                "temp",
                "temp.txt",
                "tempab",
                "a/",
                "a/b/",
                "a/b/c/",
                "a/b/c/temp",
            },
        )

    def test_root_is_both_working_and_root_directory(self) -> None:
        for line in (b"/foo/bar", b"foo/bar", b"./foo/bar", b"foo//bar/"):
            patterns = read_dockerignore(line)
            self.assertEqual(patterns, ["foo/bar"])
            self.assertEqual(
                context(patterns, ["foo/bar", "foo/baz", "bar", "x/foo/bar"]),
                {"foo/", "foo/baz", "bar", "x/", "x/foo/", "x/foo/bar"},
            )

    def test_double_star_go_files(self) -> None:
        tree = ["main.go", "a/b.go", "a/b/c/d.go", "a/readme.txt", "go"]
        self.assertEqual(context(["**/*.go"], tree), {"a/", "a/b/", "a/b/c/", "a/readme.txt", "go"})

    def test_exception(self) -> None:
        tree = ["README.md", "CHANGES.md", "docs/x.md", "README-secret.md"]
        self.assertEqual(context(["*.md", "!README.md"], tree), {"README.md", "docs/", "docs/x.md"})

    def test_exception_order_matters(self) -> None:
        tree = ["README.md", "README-secret.md", "README-other.md", "CHANGES.md"]
        self.assertEqual(
            context(["*.md", "!README*.md", "README-secret.md"], tree),
            {"README.md", "README-other.md"},
        )
        self.assertEqual(
            context(["*.md", "README-secret.md", "!README*.md"], tree),
            {"README.md", "README-secret.md", "README-other.md"},
        )

    def test_include_only_with_star_then_exceptions(self) -> None:
        tree = ["src/a.c", "src/sub/b.c", "docs/x", "Makefile", "top.c"]
        self.assertEqual(
            context(["*", "!src", "!Makefile"], tree),
            {"src/", "src/a.c", "src/sub/", "src/sub/b.c", "Makefile"},
        )

    def test_pattern_dot_is_ignored(self) -> None:
        self.assertEqual(context(["."], ["a", "b/c"]), {"a", "b/", "b/c"})

    def test_dockerfile_and_dockerignore_can_be_excluded(self) -> None:
        # The CLI still sends them (it appends exceptions); the daemon of the
        # classic builder then deletes them, so COPY never sees them.
        excludes = read_dockerignore(b"Dockerfile\n.dockerignore\n")
        sent = trim_build_files_from_excludes(excludes, "Dockerfile")
        self.assertEqual(sent, ["Dockerfile", ".dockerignore", "!.dockerignore", "!Dockerfile"])
        tree = ["Dockerfile", ".dockerignore", "app.py"]
        self.assertEqual(context(sent, tree), {"Dockerfile", ".dockerignore", "app.py"})
        self.assertEqual(
            files_removed_by_daemon(excludes, "Dockerfile"), [".dockerignore", "Dockerfile"]
        )
        self.assertEqual(files_removed_by_daemon(["*.py"], "Dockerfile"), [])


class PatternMatcherGoTest(unittest.TestCase):
    """patternmatcher_test.go."""

    def test_single_pattern_functions(self) -> None:
        self.assertTrue(go_matches("fileutils.go", ["*"]))  # TestWildcardMatches
        self.assertTrue(go_matches("fileutils.go", ["*.go"]))  # TestPatternMatches
        self.assertTrue(go_matches("fileutils.go", ["!fileutils.go", "*.go"]))
        self.assertFalse(go_matches("docs/README.md", ["docs", "!docs/README.md"]))
        self.assertFalse(go_matches("docs/README.md", ["docs/", "!docs/README.md"]))
        self.assertFalse(go_matches("docs/README.md", ["docs/*", "!docs/README.md"]))
        self.assertFalse(go_matches("fileutils.go", ["*.go", "!fileutils.go"]))
        self.assertFalse(go_matches(".", ["*.go"]))  # TestExclusionPatternMatchesWholeDirectory
        self.assertFalse(go_matches("/any/path/there", []))  # TestMatchesWithNoPatterns

    def test_errors(self) -> None:
        with self.assertRaisesRegex(DockerignoreError, r'^illegal exclusion pattern: "!"$'):
            PatternMatcher(["!"])  # TestSingleExclamationError, ...ErrorSingleException
        with self.assertRaisesRegex(DockerignoreError, "^syntax error in pattern"):
            PatternMatcher(["["])  # TestMatchesWithMalformedPatterns

    def test_clean_patterns(self) -> None:
        self.assertEqual(len(PatternMatcher(["docs", "config"])._patterns), 2)
        self.assertEqual(len(PatternMatcher(["docs", "config", ""])._patterns), 2)
        self.assertEqual(len(PatternMatcher(["", " ", "docs"])._patterns), 1)
        for patterns in (
            ["docs", "!docs/README.md"],
            ["docs", "  !docs/README.md"],
            ["docs", "!docs/README.md  "],
        ):
            self.assertTrue(has_exclusions(PatternMatcher(patterns)))
        self.assertFalse(has_exclusions(PatternMatcher(["docs"])))

    # TestMatches: (pattern, text, pass)
    MATCHES = (
        ("**", "file", True),
        ("**", "file/", True),
        ("**/", "file", True),
        ("**/", "file/", True),
        ("**", "/", True),
        ("**/", "/", True),
        ("**", "dir/file", True),
        ("**/", "dir/file", True),
        ("**", "dir/file/", True),
        ("**/", "dir/file/", True),
        ("**/**", "dir/file", True),
        ("**/**", "dir/file/", True),
        ("dir/**", "dir/file", True),
        ("dir/**", "dir/file/", True),
        ("dir/**", "dir/dir2/file", True),
        ("dir/**", "dir/dir2/file/", True),
        ("**/dir", "dir", True),
        ("**/dir", "dir/file", True),
        ("**/dir2/*", "dir/dir2/file", True),
        ("**/dir2/*", "dir/dir2/file/", True),
        ("**/dir2/**", "dir/dir2/dir3/file", True),
        ("**/dir2/**", "dir/dir2/dir3/file/", True),
        ("**file", "file", True),
        ("**file", "dir/file", True),
        ("**/file", "dir/file", True),
        ("**file", "dir/dir/file", True),
        ("**/file", "dir/dir/file", True),
        ("**/file*", "dir/dir/file", True),
        ("**/file*", "dir/dir/file.txt", True),
        ("**/file*txt", "dir/dir/file.txt", True),
        ("**/file*.txt", "dir/dir/file.txt", True),
        ("**/file*.txt*", "dir/dir/file.txt", True),
        ("**/**/*.txt", "dir/dir/file.txt", True),
        ("**/**/*.txt2", "dir/dir/file.txt", False),
        ("**/*.txt", "file.txt", True),
        ("**/**/*.txt", "file.txt", True),
        ("a**/*.txt", "a/file.txt", True),
        ("a**/*.txt", "a/dir/file.txt", True),
        ("a**/*.txt", "a/dir/dir/file.txt", True),
        ("a/*.txt", "a/dir/file.txt", False),
        ("a/*.txt", "a/file.txt", True),
        ("a/*.txt**", "a/file.txt", True),
        ("a[b-d]e", "ae", False),
        ("a[b-d]e", "ace", True),
        ("a[b-d]e", "aae", False),
        ("a[^b-d]e", "aze", True),
        (".*", ".foo", True),
        (".*", "foo", False),
        ("abc.def", "abcdef", False),
        ("abc.def", "abc.def", True),
        ("abc.def", "abcZdef", False),
        ("abc?def", "abcZdef", True),
        ("abc?def", "abcdef", False),
        ("a\\\\", "a\\", True),
        ("**/foo/bar", "foo/bar", True),
        ("**/foo/bar", "dir/foo/bar", True),
        ("**/foo/bar", "dir/dir2/foo/bar", True),
        ("abc/**", "abc", False),
        ("abc/**", "abc/def", True),
        ("abc/**", "abc/def/ghi", True),
        ("**/.foo", ".foo", True),
        ("**/.foo", "bar.foo", False),
        ("a(b)c/def", "a(b)c/def", True),
        ("a(b)c/def", "a(b)c/xyz", False),
        ("a.|)$(}+{bc", "a.|)$(}+{bc", True),
        (
            "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
            "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
            True,
        ),
        ("dist/*.whl", "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", True),
        ("a\\*b", "a*b", True),
    )
    MULTI = (
        (["**", "!util/docker/web"], "util/docker/web/foo", False),
        (["**", "!util/docker/web", "util/docker/web/foo"], "util/docker/web/foo", True),
        (
            ["**", "!dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl"],
            "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
            False,
        ),
        (["**", "!dist/*.whl"], "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", False),
    )

    def _cases(self) -> list[tuple[list[str], str, bool]]:
        return [([p], t, want) for p, t, want in self.MATCHES] + [
            (list(p), t, want) for p, t, want in self.MULTI
        ]

    def test_matches_or_parent_matches(self) -> None:
        for patterns, text, want in self._cases():
            with self.subTest(patterns=patterns, text=text):
                self.assertEqual(matches_or_parent_matches(PatternMatcher(patterns), text), want)

    def test_matches_using_parent_results(self) -> None:
        for patterns, text, want in self._cases():
            with self.subTest(patterns=patterns, text=text):
                matcher = PatternMatcher(patterns)
                info: MatchInfo | None = None
                parent = dockerignore._dir(text)
                if parent != ".":
                    dirs = parent.split("/")
                    for i in range(len(dirs)):
                        _, info = matcher.matches("/".join(dirs[: i + 1]), info)
                self.assertEqual(matcher.matches(text, info)[0], want)

    def test_matches_using_parent_results_no_context(self) -> None:
        for patterns, text, want in self._cases():
            with self.subTest(patterns=patterns, text=text):
                self.assertEqual(PatternMatcher(patterns).matches(text, None)[0], want)

    # matchTests (from Go's filepath tests), run through Matches: None = error
    MATCH_TESTS = (
        ("abc", "abc", True),
        ("*", "abc", True),
        ("*c", "abc", True),
        ("a*", "a", True),
        ("a*", "abc", True),
        ("a*", "ab/c", True),
        ("a*/b", "abc/b", True),
        ("a*/b", "a/c/b", False),
        ("a*b*c*d*e*/f", "axbxcxdxe/f", True),
        ("a*b*c*d*e*/f", "axbxcxdxexxx/f", True),
        ("a*b*c*d*e*/f", "axbxcxdxe/xxx/f", False),
        ("a*b*c*d*e*/f", "axbxcxdxexxx/fff", False),
        ("a*b?c*x", "abxbbxdbxebxczzx", True),
        ("a*b?c*x", "abxbbxdbxebxczzy", False),
        ("ab[c]", "abc", True),
        ("ab[b-d]", "abc", True),
        ("ab[e-g]", "abc", False),
        ("ab[^c]", "abc", False),
        ("ab[^b-d]", "abc", False),
        ("ab[^e-g]", "abc", True),
        ("a\\*b", "a*b", True),
        ("a\\*b", "ab", False),
        ("a?b", "a☺b", True),
        ("a[^a]b", "a☺b", True),
        ("a???b", "a☺b", False),
        ("a[^a][^a][^a]b", "a☺b", False),
        ("[a-ζ]*", "α", True),  # noqa: RUF001 (Go's test, verbatim)
        ("*[a-ζ]", "A", False),
        ("a?b", "a/b", False),
        ("a*b", "a/b", False),
        ("[\\]a]", "]", True),
        ("[\\-]", "-", True),
        ("[x\\-]", "x", True),
        ("[x\\-]", "-", True),
        ("[x\\-]", "z", False),
        ("[\\-x]", "x", True),
        ("[\\-x]", "-", True),
        ("[\\-x]", "a", False),
        ("[]a]", "]", None),
        ("[-]", "-", None),
        ("[x-]", "x", None),
        ("[x-]", "-", None),
        ("[x-]", "z", None),
        ("[-x]", "x", None),
        ("[-x]", "-", None),
        ("[-x]", "a", None),
        ("\\", "a", None),
        ("[a-b-c]", "a", None),
        ("[", "a", None),
        ("[^", "a", None),
        ("[^bc", "a", None),
        ("a[", "a", None),
        ("a[", "ab", None),
        ("*x", "xxx", True),
    )

    def test_match(self) -> None:
        for pattern, text, want in self.MATCH_TESTS:
            with self.subTest(pattern=pattern, text=text):
                if want is None:
                    with self.assertRaisesRegex(DockerignoreError, "syntax error in pattern"):
                        go_matches(text, [pattern])
                else:
                    self.assertEqual(go_matches(text, [pattern]), want)

    # compileTests: (pattern, match type, Go regexp for '/')
    COMPILE = (
        ("*", "regexp", "^[^/]*$"),
        ("file*", "regexp", "^file[^/]*$"),
        ("*file", "regexp", "^[^/]*file$"),
        ("a*/b", "regexp", "^a[^/]*/b$"),
        ("**", "suffix", ""),
        ("**/**", "regexp", "^(.*/)?.*$"),
        ("dir/**", "prefix", ""),
        ("**/dir", "suffix", ""),
        ("**/dir2/*", "regexp", "^(.*/)?dir2/[^/]*$"),
        ("**/dir2/**", "regexp", "^(.*/)?dir2/.*$"),
        ("**file", "suffix", ""),
        ("**/file*txt", "regexp", "^(.*/)?file[^/]*txt$"),
        ("**/**/*.txt", "regexp", "^(.*/)?(.*/)?[^/]*\\.txt$"),
        ("a[b-d]e", "regexp", "^a[b-d]e$"),
        (".*", "regexp", "^\\.[^/]*$"),
        ("abc.def", "exact", ""),
        ("abc?def", "regexp", "^abc[^/]def$"),
        ("**/foo/bar", "suffix", ""),
        ("a(b)c/def", "exact", ""),
        ("a.|)$(}+{bc", "exact", ""),
        ("dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", "exact", ""),
    )

    def test_compile(self) -> None:
        kinds = {"exact": 1, "prefix": 2, "suffix": 3, "regexp": 4}
        for pattern, kind, regexp in self.COMPILE:
            with self.subTest(pattern=pattern):
                cleaned = dockerignore._clean(pattern)
                got_kind = dockerignore._match_type(dockerignore._go_text(cleaned))
                self.assertEqual(got_kind, kinds[kind])
                if kind == "regexp":
                    self.assertEqual(dockerignore._go_regexp(cleaned), regexp)

    def test_malformed_pattern_fails_on_every_call(self) -> None:
        # TestMatchesOrParentMatchesMalformedPatternDoesNotPanicOnRepeatedCall:
        # "[Local-Only]" passes filepath.Match but its range l-O is no regexp.
        matcher = PatternMatcher(["[Local-Only]/"])
        for _ in range(2):
            with self.assertRaisesRegex(DockerignoreError, "syntax error in pattern"):
                matches_or_parent_matches(matcher, "x")


class RecordedFromGoTest(unittest.TestCase):
    """Results of the Go code (patternmatcher v0.6.0, with Go's regexp) on
    tricky input: live regexp syntax, RE2's classes and limits.

    Each case: patterns, path, and three results: MatchesUsingParentResults
    fed with the MatchInfo of each parent in turn (what the walk does),
    MatchesOrParentMatches, and the legacy Matches; T, F, or E for an error.
    """

    CASES = (
        # shouldEscape loses '|', '{', '}' (bit b/8 of a byte): live syntax.
        (["a|b*"], "a", "TTT"),
        (["a|b*"], "bxx", "TTT"),
        (["a|b*"], "x/bxx", "TTT"),
        (["a|b*"], "a|bx", "TTT"),
        (["a|b*"], "c", "FFF"),
        (["x{2}*"], "xx", "TTT"),
        (["x{2}*"], "xxy", "TTT"),
        (["x{2}*"], "x{2}y", "FFF"),
        (["x{2}*"], "x", "FFF"),
        (["x{2}"], "xx", "FFF"),  # no regexp: an exact match
        (["x{2}"], "x{2}", "TTT"),
        (["x{,2}*"], "x{,2}", "TTT"),  # RE2 reads "{,2}" as text, Python as a repeat
        (["x{,2}*"], "x", "FFF"),
        (["x{01}*"], "x{01}", "TTT"),
        (["x{01}*"], "x", "FFF"),
        (["{2}a*"], "a", "TTT"),  # "^{2}": RE2 repeats the anchor
        (["{2}a*"], "ab", "TTT"),
        (["a+b*"], "a+b", "TTT"),
        (["a+b*"], "aab", "FFF"),
        (["(a)*"], "(a)x", "TTT"),
        (["(a)*"], "a", "FFF"),
        # RE2 classes and escapes
        (["[[:alpha:]]*"], "a", "TTT"),
        (["[[:alpha:]]*"], "Z1", "TTT"),
        (["[[:alpha:]]*"], "1", "FFF"),
        (["[[:alpha:]]*"], "é", "FFF"),
        (["[[:^digit:]]"], "a", "TTT"),
        (["[[:^digit:]]"], "1", "FFF"),
        (["[[:alpha:]x]"], "x", "TTT"),
        (["[[:alpha:]x]"], "b", "TTT"),
        (["[[:alpha:]x]"], ":", "FFF"),
        (["\\d*"], "1x", "TTT"),
        (["\\d*"], "d", "FFF"),
        (["\\d*"], "٣", "FFF"),  # RE2's \d is ASCII
        (["\\s*"], " ", "TTT"),
        (["\\s*"], "\x0b", "FFF"),  # RE2's \s has no \v
        (["\\s*"], "s", "FFF"),
        (["\\w"], "_", "TTT"),
        (["\\w"], "é", "FFF"),
        (["\\w"], "w", "TTT"),
        (["a\\b*"], "a", "TTT"),
        (["a\\b*"], "ab", "FFF"),
        (["a\\b*"], "a-", "TTT"),
        (["\\Qa.b"], "a.b", "FFF"),  # \Q quotes up to the end, the '$' too
        (["\\Qa.b"], "a\\.b$", "TTT"),
        (["\\Qa.b"], "a\\.b$x", "TTT"),
        (["\\Qa.b"], "ab", "FFF"),
        (["\\Qa*\\Eb"], "a*b", "FFF"),
        (["\\Qa*\\Eb"], "a[^/]*b", "TTT"),
        (["\\Qa*\\Eb"], "axb", "FFF"),
        (["a\\x41*"], "aA", "TTT"),
        (["a\\x41*"], "ax41", "FFF"),
        (["a\\x41*"], "aAz", "TTT"),
        (["a\\101*"], "aA", "TTT"),
        (["a\\101*"], "a101", "FFF"),
        (["a\\n*"], "a\n", "TTT"),
        (["a\\n*"], "an", "FFF"),
        (["a^b*"], "a^b", "FFF"),
        (["a^b*"], "ab", "FFF"),
        (["?\\z"], "a", "TTT"),
        (["?\\z"], "az", "FFF"),
        # Regexps RE2 rejects: an error when the pattern is evaluated.
        (["a\\1*"], "a1", "EEE"),
        (["a\\8*"], "a8", "EEE"),
        (["a\\C*"], "aC", "EEE"),
        (["[z-a]"], "z", "EEE"),
        (["!x", "[z-a]"], "z", "EEE"),
        (["[[:foo:]]"], "f", "EEE"),
        (["[Local-Only]/"], "x", "EEE"),
        # An invalid byte is one rune, U+FFFD to the regexp.
        (["a?"], "a\udcff", "TTT"),
        (["a?"], "a\ufffd", "TTT"),
        (["a?"], "aé", "TTT"),
        (["a?"], "a/", "FFF"),
        (["a\udcff*"], "a\udcff", "TTT"),
        (["a\udcff*"], "a\udcfe", "TTT"),
        (["a\udcff*"], "a\ufffd", "TTT"),
        (["a\udcff*"], "a\udcffx", "TTT"),
        (["a\udcff"], "a\udcff", "TTT"),
        (["a\udcff"], "a\ufffd", "FFF"),
        # text/scanner skips a leading BOM; exact and suffix matches do not.
        (["\ufeffa*"], "a", "TTT"),
        (["\ufeffa*"], "\ufeffa", "FFF"),
        (["\ufeff**"], "a\ufeff**", "TTT"),
        (["\ufeff**"], "x\udcbf**", "TTT"),
        (["\ufeff**"], "a", "FFF"),
        (["\ufeffab"], "ab", "FFF"),
        (["\ufeffab"], "\ufeffab", "TTT"),
        # RE2's '$' is the end of the text, never before a final newline.
        (["a\n*"], "a\n", "TTT"),
        (["a\n*"], "a\nb", "TTT"),
        (["a\n*"], "a", "FFF"),
        (["a*"], "a\n", "TTT"),
        (["a*"], "ab\n", "TTT"),
        (["*.go"], "x.go\n", "FFF"),
        (["*.go"], "x.go", "TTT"),
        # '**' forms
        (["**"], "a/b", "TTT"),
        (["**a"], "ba", "TTT"),
        (["**a"], "x/ba", "TTT"),
        (["**a"], "b", "FFF"),
        (["**/a"], "a", "TTT"),
        (["**/a"], "x/a", "TTT"),
        (["**/a"], "xa", "FFF"),
        (["a**"], "ab", "TTT"),
        (["a**"], "a/b", "TTT"),
        (["a**"], "b", "FFF"),
        (["**/**"], "a", "TTT"),
        (["***"], "a", "TTT"),
        (["***"], "a/b", "TTT"),
        (["a/**/b"], "a/b", "TTT"),
        (["a/**/b"], "a/x/y/b", "TTT"),
        (["a/**/b"], "ab", "FFF"),
        # exceptions, and the three functions disagreeing
        (["a", "!a/b"], "a/b", "FFF"),
        (["a", "!a/b"], "a/c", "TTT"),
        (["a", "!a/b"], "a/b/c", "FFF"),
        (["a/b", "!a"], "a/b/c", "TFF"),
        (["**/tmp", "!x/y/tmp/keep"], "x/y/tmp/other", "TTF"),
        (["**/tmp", "!x/y/tmp/keep"], "x/y/tmp/keep", "FFF"),
        (["dir*", "!dir*/keep"], "dir1/keep", "FFF"),
        (["dir*", "!dir*/keep"], "dir1/other", "TTT"),
        ([" !a", "a*"], "ab", "TTT"),
        ([" !a", "a*"], "a", "TTT"),
        (["!./x", "*"], "x", "TTT"),  # New cleans "!./x" as one name
        (["!./x", "*"], "./x", "TFF"),
        (["..", "../a"], "a", "FFF"),
        (["."], ".", "TTT"),
        (["."], "a", "FFF"),
        # RE2's Unicode classes: general categories as Go has them (its C has no Cn)
        (["[\\pL]b"], "xb", "TTT"),
        (["[\\pL]b"], "\u00e9b", "TTT"),
        (["[\\pL]b"], "\u03a3b", "TTT"),
        (["[\\pL]b"], "1b", "FFF"),
        (["[\\pL]b"], "\udcffb", "FFF"),  # U+FFFD is So
        (["[\\pL]b"], "xxb", "FFF"),
        (["\\p{Lu}*"], "\u00c9x", "TTT"),
        (["\\p{Lu}*"], "a", "FFF"),
        (["\\p{Lu}*"], "\u01c5", "FFF"),  # Lt
        (["\\PL*"], "_", "TTT"),
        (["\\PL*"], "a", "FFF"),
        (["\\p{^L}?"], "1x", "TTT"),
        (["\\p{^L}?"], "ax", "FFF"),
        (["\\P{^Ll}*"], "a", "TTT"),
        (["\\P{^Ll}*"], "A", "FFF"),
        (["*\\p{Nd}"], "x\u0663", "TTT"),
        (["*\\p{Nd}"], "x\u2163", "FFF"),  # Nl
        (["\\pN*"], "\u2163", "TTT"),
        (["\\pC*"], "\x7f", "TTT"),
        (["\\pC*"], "\ue000", "TTT"),  # Co
        (["\\pC*"], "\u200b", "TTT"),  # Cf
        (["\\pC*"], "\u0378", "FFF"),  # unassigned
        (["\\PC*"], "\u0378", "TTT"),
        (["\\p{Zs}*"], "\u3000", "TTT"),
        (["\\p{Zs}*"], "\t", "FFF"),
        (["[^\\pL\\pN]*"], "-", "TTT"),
        (["[^\\pL\\pN]*"], "1", "FFF"),
        (["\\p{Any}*"], "\n", "TTT"),
        (["[\\P{Any}x]*"], "x", "TTT"),
        (["\\P{Any}*"], "x", "FFF"),
        (["\\p{Foo}*"], "x", "EEE"),
        (["\\pX*"], "x", "EEE"),
        (["[\\p{L]*"], "x", "EEE"),
        (["a*\\p"], "ap", "EEE"),
        # RE2's limits: {n,m} up to 1000 copies, 1000 levels, 3 355 443 instructions
        (["x{1000}*"], "x" * 1000, "TTT"),
        (["x{1000}*"], "x" * 999, "FFF"),
        (["x{1001}*"], "x", "EEE"),
        (["x{100000000}*"], "x", "EEE"),
        (["x{2,1}*"], "x", "EEE"),
        (["x{2}\\Q\\E{500}*"], "x" * 1000, "TTT"),
        (["x{2}\\Q\\E{501}*"], "x", "EEE"),
        (["x{1000}\\Q\\E{0}*"], "y", "TTT"),
        (["x" + "{1}\\Q\\E" * 998 + "*"], "x", "TTT"),
        (["x" + "{1}\\Q\\E" * 999 + "*"], "x", "EEE"),
        (["a|" * 10 + "x" + "{0,1}\\Q\\E" * 997 + "*"], "x", "TTT"),
        (["a|" * 10 + "x" + "{0,1}\\Q\\E" * 998 + "*"], "x", "EEE"),
        (["?{1000}" * 3355 + "a" * 441], "x", "FFF"),
        (["?{1000}" * 3356], "x", "EEE"),
        # RE2 repeats, alternation, anchors, word boundaries
        (["x{2,3}?"], "xxa", "TTT"),
        (["x{2,3}?"], "xa", "FFF"),
        (["?{2}"], "ab", "TTT"),
        (["?{2}"], "a/", "FFF"),
        (["*|a"], "a/b", "TTT"),
        (["a|b|*c"], "xc", "TTT"),
        (["a|b|*c"], "cx", "FFF"),
        (["*\\Ba"], "ba", "TTT"),
        (["*\\Ba"], "-a", "FFF"),
        (["*\\ba"], "-a", "TTT"),
        (["*\\ba"], "ba", "FFF"),
        (["a\\b|*b"], "ab", "TTT"),
        (["\\A*\\z"], "abc", "TTT"),
        (["[a-c]{2}x*"], "abx", "TTT"),
        (["[a-c]{2}x*"], "ax", "FFF"),
        (["a*{2}"], "a", "EEE"),
        (["[^\\pN]", "/\\101\u00e9^\\x41", "{2}"], "./1\n", "TFF"),
        (["A/\\x{42}/\\Bb", "\\.\\z[\\PL\\d]\\d|}"], "A/x{42}/\\Bb", "TTF"),
        # Recorded with v0.6.1 on Go 1.19 (its filepath.Match given Go 1.20's check of
        # the whole pattern). Escapes: octal (one digit 1-7 is a backreference), \x41,
        # \x{...}, \a\f\r\t\v; classes: POSIX names, Perl and Unicode classes, ranges
        # merged and negated; {n,m} and its limits; word boundaries at both ends; a '**'
        # group skipped; the BOM suffix.
        (["[X]"], "X", "TTT"),
        (["[[]x"], "[x", "TTT"),
        (["[\\]*]"], "*", "FFF"),
        (["a\\*"], "a*", "TTT"),
        (["a\\\x80*"], "a\x80", "EEE"),
        (["a\\0*"], "a\x00", "TTT"),
        (["a\\70*"], "a8", "TTT"),
        (["a\\80*"], "a@", "EEE"),
        (["a\\17*"], "a\x0f", "TTT"),
        (["a\\18*"], "a\x018", "EEE"),
        (["a\\0123*"], "a\n3", "TTT"),
        (["a\\0123*"], "aS", "FFF"),
        (["a\\0x*"], "a\x00x", "TTT"),
        (["a\\07*"], "a\x07", "TTT"),
        (["a\\08*"], "a\x008", "TTT"),
        (["a\\x{41}*"], "aA", "TTT"),
        (["a\\x{}*"], "a", "EEE"),
        (["a\\x{4g}*"], "a", "EEE"),
        (["a\\x{30}*"], "a0", "TTT"),
        (["a\\x{10FFFF}*"], "a\U0010ffff", "TTT"),
        (["a\\x{110000}*"], "a", "EEE"),
        (["a\\x{4}*"], "a\x04", "TTT"),
        (["a\\x{41}b*"], "aAb", "TTT"),
        (["a\\x4g*"], "a", "EEE"),
        (["a\\x0a*"], "a\n", "TTT"),
        (["a\\x40*"], "a@", "TTT"),
        (["a\\x"], "ax", "EEE"),
        (["a\\x4X*"], "a", "EEE"),
        (["a\\x4A*"], "aJ", "TTT"),
        (["a\\x4a*"], "aJ", "TTT"),
        (["a\\a*"], "a\x07", "TTT"),
        (["a\\f*"], "a\x0c", "TTT"),
        (["a\\r*"], "a\r", "TTT"),
        (["a\\t*"], "a\t", "TTT"),
        (["a\\v*"], "a\x0b", "TTT"),
        (["a\\c*"], "ac", "EEE"),
        (["}\\p{L}*"], "}x", "TTT"),
        (["\\p{L}x}*"], "ax}", "TTT"),
        (["*\\p{L"], "a", "EEE"),
        (["\\p{Any}*"], "\x00", "TTT"),
        (["[[:alpha:]"], "a", "EEE"),
        (["[^a]"], "[", "TTT"),
        (["[ab:]*"], "b", "TTT"),
        ([":]*[[:alpha:]]"], ":]xa", "TTT"),
        (["[[:alpha:]]x[[:digit:]]"], "ax1", "TTT"),
        (["[[:]"], ":", "TTT"),
        (["[[::]]"], ":", "EEE"),
        (["[a[:digit:]]"], "a", "TTT"),
        (["[a\\pN]"], "a", "TTT"),
        (["[\\pL\\pN]"], "a", "TTT"),
        (["[a\\d]"], "a", "TTT"),
        (["[\\da]"], "a", "TTT"),
        (["[[:alpha:]a-]"], "-", "TTT"),
        (["[[:alpha:]a-"], "a", "EEE"),
        (["[[:alpha:] -"], "a", "EEE"),
        (["[a-a]x"], "ax", "TTT"),
        (["x{9}*"], "xxxxxxxxx", "TTT"),
        (["x{1A}*"], "x{1A}", "TTT"),
        (["ax{0,0}*"], "a", "TTT"),
        (["x{1,100000000}*"], "x", "EEE"),
        (["x{2,}*"], "xxx", "TTT"),
        (["x{2,}*"], "x", "FFF"),
        (["x{600,}\\Q\\E{2}*"], "x", "EEE"),
        (["x{0,600}\\Q\\E{2}*"], "x", "EEE"),
        (["x{600}\\Q\\E{1}\\Q\\E{2}*"], "x", "EEE"),
        (["x{0,}\\Q\\E{2}*"], "xx", "TTT"),
        (["\\Qa.b"], "a\\.b", "FFF"),
        (["x{2,0}*"], "x", "EEE"),
        (["a|{2}b*"], "b", "EEE"),
        (["x{600}\\Q\\E{2,}*"], "x", "EEE"),
        (["x{600}\\Q\\E{1,2}*"], "x", "EEE"),
        (["[axx-y]"], "y", "TTT"),
        (["[a-cb]"], "c", "TTT"),
        (["[a-bx-yz]"], "z", "TTT"),
        (["[a-bx-yz]"], "c", "FFF"),
        (["[a-zb-c]"], "x", "TTT"),
        (["[ax-zy]"], "z", "TTT"),
        (["[a-bc]"], "c", "TTT"),
        (["[a-bc]"], "d", "FFF"),
        (["[a\\p{Lu}]"], "a", "TTT"),
        (["x[ab]"], "xb", "TTT"),
        (["x[^a]"], "x\x00", "TTT"),
        (["x[^\\x00-\\x{10FFFE}]"], "x\U0010ffff", "TTT"),
        (["*\\Q\\E*"], "ab", "TTT"),
        (["\\b*"], "a", "TTT"),
        (["\\b*"], "-", "FFF"),
        (["*\\b"], "a-", "FFF"),
        (["*\\b"], "a", "TTT"),
        (["ax{0}b*"], "ab", "TTT"),
        (["ax{0}b*"], "axb", "FFF"),
        (["ax{0,}b*"], "ab", "TTT"),
        (["ax{0,}b*"], "axxb", "TTT"),
        (["ax{1,}b*"], "ab", "FFF"),
        (["ax{1,}b*"], "axb", "TTT"),
        (["ax{2,}b*"], "axb", "FFF"),
        (["ax{2,}b*"], "axxb", "TTT"),
        (["ax{3,}b*"], "axxb", "FFF"),
        (["ax{3,}b*"], "axxxb", "TTT"),
        (["ax{1,3}b*"], "ab", "FFF"),
        (["ax{1,3}b*"], "axb", "TTT"),
        (["ax{1,3}b*"], "axxxb", "TTT"),
        (["ax{1,3}b*"], "axxxxb", "FFF"),
        (["a|b|*c"], "b", "TTT"),
        (["a|b|*c"], "xbx", "TTT"),
        (["a/**/b"], "a/x", "FFF"),
        (["\ufeff**"], "a*", "FFF"),
        (["\ufeff**"], "a**", "FFF"),
        (["\ufeff**"], "**", "FFF"),
        (["\ufeff**\udcff"], "a\udcbf**\udcff", "TTT"),
        (["\\D*"], "a", "TTT"),
        (["\\D*"], "1", "FFF"),
        (["\\S*"], "a", "TTT"),
        (["\\W*"], "-", "TTT"),
        (["\\W*"], "a", "FFF"),
        (["[e-gj-li-ml]"], "m", "TTT"),  # i-m overlaps the range before it, not the first
        (["[e-gj-li-ml]"], "h", "FFF"),
        (["*\\Q\\E{0,}"], "ab", "TTT"),  # (x*)*: a loop that consumes nothing
        (["*\\Q\\E{0,}x"], "abx", "TTT"),
        (["a|x" + "{1}\\Q\\E" * 998 + "|b"], "x", "TTT"),  # a branch of one item nests no deeper
        (["a|x" + "{1}\\Q\\E" * 999 + "|b"], "x", "EEE"),
        (["\\p{Foo}*"], "x", "EEE"),
        (["x{1001}*"], "x", "EEE"),
    )

    def test_recorded(self) -> None:
        def result(call: Callable[[], bool]) -> str:
            try:
                return "T" if call() else "F"
            except DockerignoreError:
                return "E"

        for patterns, path, want in self.CASES:
            with self.subTest(patterns=patterns, path=path):
                matcher = PatternMatcher(patterns)

                def walk(matcher: PatternMatcher = matcher, path: str = path) -> bool:
                    info: MatchInfo | None = None
                    parts = path.split("/")
                    for i in range(len(parts)):
                        matched, info = matcher.matches("/".join(parts[: i + 1]), info)
                    return matched

                got = (
                    result(walk)
                    + result(partial(matches_or_parent_matches, matcher, path))
                    + result(partial(legacy_matches, matcher, path))
                )
                self.assertEqual(got, want)

    def test_rejected_by_new(self) -> None:
        for pattern in (
            *("a\\", "[]a]", "[a-\udcff]", "[\udcff]", "a[", "[^", "\\[:alpha:][", "[^]", "[^-a]"),
            *("[a]\\", "\\a[", "*[", "[\\"),
        ):
            with self.subTest(pattern=pattern), self.assertRaises(DockerignoreError):
                PatternMatcher([pattern])

    def test_errors_are_one_line_and_name_the_pattern(self) -> None:
        # Go's Matches returns filepath.ErrBadPattern ("syntax error in
        # pattern") for a regexp it cannot compile; its reason comes after.
        for pattern, message in (
            ("[z-a]", "syntax error in pattern: '[z-a]' (invalid character class range)"),
            ("x*\\C", "syntax error in pattern: 'x*\\\\C' (invalid escape sequence)"),
            ("a*{2}", "syntax error in pattern: 'a*{2}' (invalid nested repetition operator)"),
            ("?{1000}" * 3356, "(expression too large)"),
            ("x" + "{1}\\Q\\E" * 999 + "*", "(expression nests too deeply)"),
            ("*\\p{Greek}", "unsupported in pattern: '*\\\\p{Greek}' (\\p{Greek} is a Unicode"),
        ):
            with self.subTest(pattern=pattern[:20]):
                matcher = PatternMatcher(["keep", pattern])
                self.assertEqual(matcher.matches("keep", None)[0], True)  # not evaluated
                with self.assertRaises(DockerignoreError) as raised:
                    matcher.matches("x", None)
                text = str(raised.exception)
                self.assertIn(message, text)
                self.assertNotIn("\n", text)

    def test_unicode_scripts_are_refused(self) -> None:
        # Valid in Go (docker matches them); unicodedata has no scripts.
        for pattern in ("*\\p{Greek}", "[\\P{Han}]*", "\\p{^Latin}*"):
            with (
                self.subTest(pattern=pattern),
                self.assertRaisesRegex(
                    DockerignoreError, "^unsupported in pattern: .*Unicode script"
                ),
            ):
                PatternMatcher([pattern]).matches("x", None)

    def test_bad_pattern_not_evaluated_is_harmless(self) -> None:
        # Go compiles lazily: an exception never reached raises nothing.
        matcher = PatternMatcher(["!x[z-a]", "a"])
        self.assertEqual(matcher.matches("a", None), (True, (False, True)))

    # RE2's error codes (recorded from Go), each after the pattern.
    REASONS = (
        ("a\\\x80*", "invalid escape sequence"),  # only ASCII punctuation escapes itself
        ("a\\80*", "invalid escape sequence"),
        ("a\\18*", "invalid escape sequence"),
        ("a\\x{}*", "invalid escape sequence"),
        ("a\\x{4g}*", "invalid escape sequence"),
        ("a\\x{110000}*", "invalid escape sequence"),
        ("a\\x4g*", "invalid escape sequence"),
        ("a\\x", "invalid escape sequence"),  # "\x$"
        ("a\\c*", "invalid escape sequence"),
        ("*\\p{L", "invalid character class range"),
        ("\\p{Foo}*", "invalid character class range"),
        ("[[:foo:]]", "invalid character class range"),
        ("[[::]]", "invalid character class range"),
        ("[[:alpha:]a-", "invalid character class range"),  # the range a-$
        ("[[:alpha:]", "missing closing ]"),
        ("[[:alpha:] -", "missing closing ]"),
        ("x{1001}*", "invalid repeat count"),
        ("x{1,100000000}*", "invalid repeat count"),
        ("x{2,0}*", "invalid repeat count"),
        ("x{600,}\\Q\\E{2}*", "invalid repeat count"),
        ("x{600}\\Q\\E{1,2}*", "invalid repeat count"),
        ("a|{2}b*", "missing argument to repetition operator"),
    )

    def test_error_reasons(self) -> None:
        for pattern, reason in self.REASONS:
            with self.subTest(pattern=pattern):
                with self.assertRaises(DockerignoreError) as raised:
                    PatternMatcher([pattern]).matches("x", None)
                self.assertEqual(
                    str(raised.exception), f"syntax error in pattern: {pattern!r} ({reason})"
                )

    def test_size_limit_counts_every_operator(self) -> None:
        # Go's calcSize on x*, (x)? (a capture in a quest), x{0,}, x{2,} (of
        # x and of x*), x{0}, x{2} (of x*), x{1,3} and an alternation: at
        # exactly 3 355 443 instructions Go accepts this, one more it refuses
        # (recorded; Go 1.19 names the error "regexp/syntax: internal error").
        blocks = (
            "*\\Q\\E{1000}**/\\Q\\E{1000}?{0,}\\Q\\E{1000}?{2,}\\Q\\E{500}*\\Q\\E{2,}\\Q\\E{500}"
            "?{0}\\Q\\E{1000}*\\Q\\E{2}\\Q\\E{500}?{1,3}\\Q\\E{300}"
        )
        largest = blocks * 71 + "|" + blocks * 71 + "?{1000}" * 18 + "?" * 440
        self.assertIsNone(PatternMatcher([largest])._patterns[0].error)
        error = PatternMatcher([largest + "?"])._patterns[0].error
        assert error is not None
        self.assertTrue(error.endswith("' (expression too large)"))


class InternalsTest(unittest.TestCase):
    """What matching relies on without showing it in a result: filepath.Clean,
    the literal text that rules paths out before a regexp runs, programs
    shared and built once, the DFA's cache accounting."""

    def test_clean(self) -> None:
        for path, clean in (
            ("a/../b", "b"),
            ("a/b/..", "a"),
            ("../a", "../a"),
            ("../..", "../.."),
            ("a/../..", ".."),
            ("/..", "/"),
            ("//a", "/a"),
            ("/a/../b", "/b"),
            ("", "."),
            ("a/./b/", "a/b"),
            ("a", "a"),
        ):
            with self.subTest(path=path):
                self.assertEqual(dockerignore._clean(path), clean)

    def test_surrogates_are_invalid_bytes(self) -> None:
        # surrogateescape makes U+DC80..U+DCFF; any lone surrogate counts.
        for char, want in (
            ("\ud7ff", False),
            ("\ud800", True),
            ("\udfff", True),
            ("\ue000", False),
        ):
            with self.subTest(char=char):
                self.assertEqual(dockerignore._is_surrogate(char), want)

    # pattern: (match type, prefix, suffix, infix) that every match needs
    REQUIRED = (
        ("abc", (1, "abc", "abc", "")),
        ("abc/**", (2, "abc/", "", "")),
        ("**/foo", (3, "", "foo", "")),
        ("\ufeff**x", (3, "", "", "")),  # Go slices bytes: not indexed
        ("*foo*", (4, "", "", "foo")),
        ("*ab*c*", (4, "", "", "ab")),
        ("a*b", (4, "a", "b", "")),
        ("*yy*zzz*w", (4, "", "w", "")),
        ("ab\\[*cd", (4, "ab[", "cd", "ab[")),
        ("[a]bc*", (4, "abc", "", "abc")),  # a class of one rune is a literal
        ("[ab]x*", (4, "", "", "x")),
        ("a|b*", (4, "", "", "")),
        ("\\Qa*", (4, "a[^/]*$", "", "a[^/]*$")),
    )

    def test_required_text(self) -> None:
        for pattern, want in self.REQUIRED:
            with self.subTest(pattern=pattern):
                p = PatternMatcher([pattern])._patterns[0]
                self.assertEqual((p.kind, p.prefix, p.suffix, p.infix), want)

    def test_programs_built_when_needed_and_shared(self) -> None:
        matcher = PatternMatcher(["ab*cd", "!ab*cd"])
        for path in ("xcd", "abd", "zz", "abxd"):
            self.assertEqual(matcher.matches(path, None), (False, (False, False)))
        self.assertEqual([p.program for p in matcher._patterns], [None, None])
        self.assertEqual(matcher.matches("abxcd", None), (False, (True, True)))
        first, second = matcher._patterns
        self.assertIsNotNone(first.program)
        self.assertIs(first.program, second.program)

    def test_dfa_cache_accounting(self) -> None:
        # A state costs 1 and its threads, a closure its threads, a
        # transition 1; what was built is not built again.
        for pattern, steps in (
            ("*a*b", (("xaxb", True, 3, 21), ("xa-b", True, 3, 22), ("xaxb", True, 3, 22))),
            ("a\\b*", (("a-b", True, 3, 12), ("ab", False, 4, 14), ("a-b", True, 4, 14))),
        ):
            matcher = PatternMatcher([pattern])
            for path, excluded, states, spent in steps:
                with self.subTest(pattern=pattern, path=path):
                    self.assertEqual(matcher.matches(path, None)[0], excluded)
                    program = matcher._patterns[0].program
                    assert program is not None
                    self.assertEqual(
                        (len(program._states), dockerignore._DFA_BUDGET - program._budget),
                        (states, spent),
                    )


class WalkTest(unittest.TestCase):
    def test_match_info(self) -> None:
        matcher = PatternMatcher(["docs", "!docs/keep*", "*.tmp"])
        skip, info = matcher.matches("docs", None)
        self.assertEqual((skip, info), (True, (True, False, False)))
        self.assertEqual(matcher.matches("docs/keep.md", info), (False, (True, True, False)))
        self.assertEqual(matcher.matches("docs/x.md", info), (True, (True, False, False)))
        with self.assertRaisesRegex(ValueError, "^wrong number of values in parentMatched$"):
            matcher.matches("docs/x", (True,))
        self.assertEqual(matcher.matches("a.tmp", ()), (True, (False, False, True)))

    def test_every_parent_match_counts(self) -> None:
        # Patterns the parent matched are applied in order with the child's
        # candidates: one matched before an inclusion skips it.
        T, F = True, False
        for patterns, parent, child in (
            (["d", "d/k", "!d", "d"], (T, F, T, T), (T, F, T, T)),
            (["d", "!d", "d/k", "d"], (T, T, F, T), (T, T, T, T)),
        ):
            with self.subTest(patterns=patterns):
                matcher = PatternMatcher(patterns)
                self.assertEqual(matcher.matches("d", None), (True, parent))
                self.assertEqual(matcher.matches("d/k", parent), (True, child))
                self.assertEqual(matches_in_order(matcher, "d/k", parent), (True, child))

    def test_must_descend(self) -> None:
        matcher = PatternMatcher(["a", "!a/b/c", "!x*/y", "!**/keep"])
        self.assertTrue(matcher.must_descend("a"))
        self.assertTrue(matcher.must_descend("a/b"))
        self.assertTrue(matcher.must_descend("a/b/c"))  # "a/b/c/" starts with it
        self.assertFalse(matcher.must_descend("a/b/d"))
        self.assertFalse(matcher.must_descend("x1"))  # a string prefix, not a match
        self.assertTrue(matcher.must_descend("x*"))
        self.assertFalse(matcher.must_descend("b"))
        self.assertFalse(PatternMatcher(["a"]).must_descend("a"))
        self.assertFalse(PatternMatcher(["a", "!ab/c"]).must_descend("a"))

    def test_exception_inside_excluded_directory(self) -> None:
        tree = ["sub/keep.txt", "sub/other.txt", "a/b/c.txt", "a/b/d.txt", "a/e"]
        # The excluded directories are walked but not sent themselves: the
        # daemon's untar creates them (mode 0755) for the files inside.
        self.assertEqual(
            context(["sub", "!sub/keep.txt", "a", "!a/b/c.txt"], tree),
            {"sub/keep.txt", "a/b/c.txt"},
        )
        # An exception that does not start with the directory is never seen.
        self.assertEqual(
            context(["sub", "!**/keep.txt"], tree), {"a/", "a/b/", "a/b/c.txt", "a/b/d.txt", "a/e"}
        )
        self.assertEqual(
            context(["s*", "!s*/keep.txt"], tree), {"a/", "a/b/", "a/b/c.txt", "a/b/d.txt", "a/e"}
        )

    def test_trim_build_files_from_excludes(self) -> None:
        self.assertEqual(trim_build_files_from_excludes(["*.md"], "Dockerfile"), ["*.md"])
        self.assertEqual(
            trim_build_files_from_excludes(["sub"], "sub/Dockerfile"), ["sub", "!sub/Dockerfile"]
        )
        self.assertEqual(
            trim_build_files_from_excludes(["*"], "Dockerfile", True), ["*", "!.dockerignore"]
        )
        # It uses the legacy Matches, which tests one parent directory only.
        self.assertEqual(trim_build_files_from_excludes(["**/b"], "a/x/b/Dockerfile"), ["**/b"])
        self.assertEqual(
            files_removed_by_daemon(["**/b"], "a/x/b/Dockerfile"), ["a/x/b/Dockerfile"]
        )
        # Errors are dropped: nothing is appended.
        self.assertEqual(trim_build_files_from_excludes(["["], "Dockerfile"), ["["])


class IndexTest(unittest.TestCase):
    """matches() tries a path only against the patterns its text may match,
    through a DFA cache of bounded size: neither may change a result."""

    PIECES = ("a", "b", "ab", "ba", "/", "*", "?", "**", "**/", ".x", "[ab]", "\\b", "{2}", "|")

    def walk_both(self, patterns: list[str], paths: list[str]) -> None:
        matcher = PatternMatcher(patterns)

        def outcome(call: Callable[[], tuple[bool, MatchInfo]]) -> tuple[bool, MatchInfo] | str:
            try:
                return call()
            except DockerignoreError as error:
                return str(error)

        for path in paths:
            parts = path.split("/")
            info: MatchInfo | None = None
            for i in range(len(parts)):
                entry = "/".join(parts[: i + 1])
                got = outcome(partial(matcher.matches, entry, info))
                self.assertEqual(got, outcome(partial(matches_in_order, matcher, entry, info)))
                if isinstance(got, str):
                    break
                info = got[1]
            # Go's zero MatchInfo: the parents are tried too.
            self.assertEqual(
                outcome(partial(matcher.matches, path, None)),
                outcome(partial(matches_in_order, matcher, path, None)),
            )

    def test_same_as_every_pattern_in_turn(self) -> None:
        rng = random.Random(20240601)
        for _ in range(300):
            patterns = [
                ("!" if rng.random() < 0.3 else "")
                + "".join(rng.choice(self.PIECES) for _ in range(rng.randint(1, 4)))
                for _ in range(rng.randint(1, 8))
            ]
            paths = ["/".join(rng.choice(("a", "b", "ab", "a.x", "ba", "b.x")) for _ in range(3))]
            with self.subTest(patterns=patterns):
                try:
                    PatternMatcher(patterns)
                except DockerignoreError:
                    continue
                self.walk_both(patterns, paths)

    def test_cache_dropped_midway(self) -> None:
        patterns = ["*a*b*a", "**/[ab]?b", "\\pL{2,5}x*", "a|*b\\b"]
        paths = ["".join(random.Random(n).choices("ab/x.-", k=12)) for n in range(60)]
        normal = [PatternMatcher(patterns).matches(p, None) for p in paths]
        with mock.patch.object(dockerignore, "_DFA_BUDGET", 5):
            tight = PatternMatcher(patterns)
            self.assertEqual([tight.matches(p, None) for p in paths], normal)
            program = tight._patterns[0].program
            assert program is not None
            self.assertLess(len(program._states), 5)  # it was dropped
        self.assertIn(True, [excluded for excluded, _ in normal])


# Run in a fresh interpreter that is killed at a deadline, so that an
# exponential matcher fails in seconds instead of hanging: each case prints
# its result and seconds.
_WORST_CASES = r"""
import json, sys, time
import dockerignore

def timed(name, run):
    start = time.perf_counter()
    result = run()
    print(json.dumps([name, result, time.perf_counter() - start]), flush=True)

def one(pattern, path):
    return lambda: dockerignore.PatternMatcher([pattern]).matches(path, None)[0]

timed("brief", one("*a*a*a*a*a*b", "a" * 10000))
timed("backtracking", one("*a*a*a*a*a*b", "a" * 10000 + "/b"))
timed("match", one("*a*a*a*a*a*b", "a" * 10000 + "b"))
timed("class", one("[\\pL]*a*a*a*a*a*b", "a" * 10000 + "/b"))
timed("dashes", one("*-*-*-*-*-*.log", "-" * 10000 + "/x.log"))
timed("unanchored", one("a|*a*a*a*a*a*b", "b" + "a" * 10000 + "/"))

def many():
    # Three literals to a glob, as in a generated list of files to leave out.
    lines = (
        (f"build{i}*/x?" if i % 8 == 0 else f"**/*.tmp{i}") if i % 4 == 0
        else f"dir{i % 1000}/file{i}"
        for i in range(200_000)
    )
    data = "\n".join([*lines, "**/*.tmp", "!dir7/keep*"]).encode()
    matcher = dockerignore.PatternMatcher(dockerignore.read_dockerignore(data))
    excluded = []
    for d in range(10):
        directory, info = matcher.matches(f"dir{d}", None)
        for name in ("file1", "file3", "file4", "keep.tmp", "a.tmp", "a.tmp4", "a.tmp8"):
            path = f"dir{d}/{name}"
            if matcher.matches(path, info)[0]:
                excluded.append(path)
        for name in (f"build{d}x", f"build{d}"):
            if matcher.matches(f"{name}/xy", matcher.matches(name, None)[1])[0]:
                excluded.append(f"{name}/xy")
    return excluded

timed("200000 patterns", many)
"""


class WorstCaseTest(unittest.TestCase):
    def test_linear_time(self) -> None:
        # A backtracking regexp engine takes seconds to forever on these (the
        # first is refused by its literal suffix before the matcher runs); a
        # .dockerignore of 200 000 lines reads, compiles and matches in about
        # a second.
        completed = subprocess.run(
            [sys.executable, "-c", _WORST_CASES],
            cwd=os.path.dirname(os.path.abspath(dockerignore.__file__)),
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        results = {
            name: (result, seconds)
            for name, result, seconds in map(json.loads, completed.stdout.splitlines())
        }
        want = {"brief": False, "backtracking": False, "match": True, "class": False}
        want |= {"dashes": False, "unanchored": False}
        for name, excluded in want.items():
            with self.subTest(name):
                self.assertEqual(results[name][0], excluded)
                self.assertLess(results[name][1], 1.0)
        excluded, seconds = results["200000 patterns"]
        self.assertLess(seconds, 10.0)
        dirs = [f"dir{d}" for d in range(10)]
        self.assertEqual(
            sorted(excluded),
            sorted(
                ["dir1/file1", "dir3/file3"]  # no dir4/file4: i % 4 == 0 is a glob
                + [f"{d}/keep.tmp" for d in dirs if d != "dir7"]
                + [f"{d}/a.tmp" for d in dirs]
                + [f"{d}/a.tmp4" for d in dirs]
                + [f"build{d}{x}/xy" for d in (0, 8) for x in ("", "x")]
            ),
        )


if __name__ == "__main__":
    unittest.main()
