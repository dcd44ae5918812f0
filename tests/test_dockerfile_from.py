"""Tests for dockerfile_from: a Dockerfile's base images, read as docker (BuildKit) does.

Expansion and the parser's regular expressions are checked against results
recorded from BuildKit's Go code (tests/buildkit_lex.py); inputs that made
earlier versions run for minutes or recurse past Python's limit run with a
deadline, so that a regression fails within seconds.
"""

from __future__ import annotations

import threading
import time
import unittest
from collections.abc import Callable, Mapping
from functools import partial
from typing import TypeVar

import dockerfile_from
from dockerfile_from import BaseImage, DockerfileError, base_images
from tests.buildkit_lex import EXPANSIONS, PARSER_REGEXPS

T = TypeVar("T")

ENGINE = ("linux", "amd64", "")
DIGEST = "sha256:" + "0123456789abcdef" * 4


def F(line: int, name: str, platform: str | None = None, pinned: bool = False) -> BaseImage:
    return BaseImage(name, platform, line, pinned)


def S(line: int, name: str) -> BaseImage:
    return BaseImage(name, "linux/amd64", line, False)


# (what it shows, Dockerfile, build args, the target platform (None: the engine's), expected)
Case = tuple[str, str, dict[str, str], tuple[str, str, str] | None, list[BaseImage]]

CASES: list[Case] = [
    # --- parser directives
    (
        "syntax directive",
        "# syntax=docker/dockerfile:1\nFROM alpine:3\n",
        {},
        None,
        [S(1, "docker/dockerfile:1"), F(2, "alpine:3")],
    ),
    (
        "directives are case-insensitive, spaced; the syntax is its first word",
        "#  SYNTAX = docker/dockerfile:1.4 extra\n# Escape=`\nFROM a\n",
        {},
        None,
        [S(1, "docker/dockerfile:1.4"), F(3, "a")],
    ),
    (
        "no directive after a comment",
        "# hello\n# syntax=docker/dockerfile:1\nFROM a\n",
        {},
        None,
        [F(3, "a")],
    ),
    (
        "no directive after a blank line",
        "\n# syntax=docker/dockerfile:1\nFROM a\n",
        {},
        None,
        [F(3, "a")],
    ),
    (
        "no directive after an instruction",
        "FROM a\n# syntax=docker/dockerfile:1\nFROM b\n",
        {},
        None,
        [F(1, "a"), F(3, "b")],
    ),
    (
        "syntax after a shebang line",
        "#!/usr/bin/env buildctl\n# syntax=docker/dockerfile:1\nFROM a\n",
        {},
        None,
        [S(2, "docker/dockerfile:1"), F(3, "a")],
    ),
    (
        "BUILDKIT_SYNTAX build arg replaces the directive",
        "# syntax=docker/dockerfile:1\nFROM a\n",
        {"BUILDKIT_SYNTAX": "example/frontend:2"},
        None,
        [S(0, "example/frontend:2"), F(2, "a")],
    ),
    (
        "BUILDKIT_SYNTAX=dockerfile.v0 is the built-in frontend",
        "# syntax=docker/dockerfile:1\nFROM a\n",
        {"BUILDKIT_SYNTAX": "dockerfile.v0"},
        None,
        [F(2, "a")],
    ),
    (
        "escape=` continues lines with a backtick",
        "# escape=`\nFROM base:1 `\n  AS b\nFROM b\n",
        {},
        None,
        [F(2, "base:1")],
    ),
    (
        "escape=`: a backslash is plain",
        "# escape=`\nFROM c:1\\\nFROM d\n",
        {},
        None,
        [F(2, "c:1\\"), F(3, "d")],
    ),
    (
        "escape=`: escaped dollar",
        "# escape=`\nARG V=1\nFROM e:`$V\n",
        {},
        None,
        [F(3, "e:$V")],
    ),
    (
        "an escape directive after an instruction is a comment",
        "FROM a\n# escape=`\nFROM b:\\\n1\n",
        {},
        None,
        [F(1, "a"), F(3, "b:1")],
    ),
    # --- lines
    (
        "comments and blank lines inside a continued instruction are dropped",
        "FROM \\\n  # a comment\n\n  alpine:3 \\\n# another\n  AS x\n",
        {},
        None,
        [F(1, "alpine:3")],
    ),
    (
        "indented comments, CRLF line ends, a BOM",
        "\ufeff  # comment\r\n\r\n  FROM a:1\r\nFROM b\r\n",
        {},
        None,
        [F(3, "a:1"), F(4, "b")],
    ),
    (
        "instructions are case-insensitive",
        "arg V=1\nfrom a:$V As Build\nFrOm build\n",
        {},
        None,
        [F(2, "a:1")],
    ),
    (
        "heredoc bodies are not instructions",
        "FROM a\nRUN <<EOF\nFROM not-an-image\nEOF\nCOPY <<-'X' /f\n\tFROM nor-this\n\tX\nFROM b\n",
        {},
        None,
        [F(1, "a"), F(8, "b")],
    ),
    # --- meta-args and build args
    (
        "ARG default",
        "ARG OS_VERSION=22.04\nFROM ubuntu:${OS_VERSION}\n",
        {},
        None,
        [F(2, "ubuntu:22.04")],
    ),
    (
        "several per line, quoted values, a default using an earlier one",
        "ARG REG='127.0.0.1:5000' NAME=\"base\" TAG=1 FULL=${REG}/${NAME}\nFROM $FULL:$TAG\n",
        {},
        None,
        [F(2, "127.0.0.1:5000/base:1")],
    ),
    (
        "build args override defaults, and later defaults see them",
        "ARG A=1 B=${A}.0\nARG C\nFROM x:$A-$B-$C\n",
        {"A": "2", "C": "3"},
        None,
        [F(3, "x:2-2.0-3")],
    ),
    (
        "a build arg not declared before FROM does not reach it",
        "FROM x:${V:-none}\nARG V\nFROM y:${V:-none}\n",
        {"V": "1"},
        None,
        [F(1, "x:none"), F(3, "y:none")],
    ),
    (
        "an ARG after the first FROM is not a meta-arg",
        "ARG V=1\nFROM a:$V\nARG V=2\nFROM b:$V\n",
        {},
        None,
        [F(2, "a:1"), F(4, "b:1")],
    ),
    (
        "a declared ARG without a value stays unset; a re-declaration keeps the value",
        "ARG U\nARG K=1\nARG K\nFROM a:${U:-unset}-$K\n",
        {},
        None,
        [F(4, "a:unset-1")],
    ),
    (
        "build arg values are not expanded",
        "ARG V\nFROM a:1$V\n",
        {"V": "${X}"},
        None,
        [F(2, "a:1${X}")],
    ),
    # --- automatic platform args
    (
        "BUILDPLATFORM is the engine's; the target applies elsewhere",
        "FROM --platform=$BUILDPLATFORM golang:1 AS build\nFROM alpine\n",
        {},
        ("linux", "arm64", ""),
        [F(1, "golang:1", "linux/amd64"), F(2, "alpine")],
    ),
    (
        "TARGET* args from the build's --platform",
        "FROM img:${TARGETOS}-${TARGETARCH}-${TARGETVARIANT}-${TARGETPLATFORM}\n",
        {},
        ("linux", "arm", "v7"),
        [F(1, "img:linux-arm-v7-linux/arm/v7")],
    ),
    (
        "TARGET* args default to the engine's platform",
        "FROM img:${TARGETARCH}${TARGETVARIANT:+-}${TARGETVARIANT}-${BUILDOS}\n",
        {},
        None,
        [F(1, "img:amd64-linux")],
    ),
    (
        "TARGETARCH is the target's, BUILDARCH the engine's",
        "FROM img:${TARGETARCH}-${BUILDARCH}\n",
        {},
        ("linux", "arm64", ""),
        [F(1, "img:arm64-amd64")],
    ),
    (
        "build args override the platform args without declaring them",
        "FROM img:$TARGETARCH\n",
        {"TARGETARCH": "riscv64"},
        None,
        [F(1, "img:riscv64")],
    ),
    (
        "TARGETSTAGE is the last stage",
        "FROM a AS one\nFROM b:$TARGETSTAGE AS two\n",
        {},
        None,
        [F(1, "a"), F(2, "b:two")],
    ),
    # --- expansion
    (
        "set, unset and empty with the - and + forms",
        "ARG E= S=s\nFROM a:${U:-d}${E:-d}${E-d}${S:+p}${E:+p}${E+p}${U+p}${U-}$U${U}\n",
        {},
        None,
        [F(2, "a:ddpp")],
    ),
    (
        "escaped dollar and quotes",
        "ARG V=1\nFROM a:\\$V-\"$V\"'$V'\n",
        {},
        None,
        [F(2, "a:$V-1$V")],
    ),
    (
        "pattern forms",
        "ARG V=reg.io/img:1.2-full\nFROM ${V%%:*}:${V#*:}\nFROM ${V/full/slim}\n",
        {},
        None,
        [F(2, "reg.io/img:1.2-full"), F(3, "reg.io/img:1.2-slim")],
    ),
    # --- FROM
    (
        "scratch is no image",
        "FROM scratch\nFROM scratch AS s\nFROM s\n",
        {},
        None,
        [],
    ),
    (
        "stage names are case-insensitive, and only earlier stages count",
        "FROM b AS A\nFROM a AS B\nFROM x AS x\nFROM X\n",
        {},
        None,
        [F(1, "b"), F(3, "x")],
    ),
    (
        "a stage named through a variable",
        "ARG S=build\nFROM a AS build\nFROM $S\n",
        {},
        None,
        [F(2, "a")],
    ),
    (
        "pinned by digest",
        f"FROM alpine@{DIGEST}\nFROM ubuntu:22.04@{DIGEST}\nFROM alpine:3\n",
        {},
        None,
        [
            F(1, f"alpine@{DIGEST}", pinned=True),
            F(2, f"ubuntu:22.04@{DIGEST}", pinned=True),
            F(3, "alpine:3"),
        ],
    ),
    (
        "FROM --platform expanded; an empty flag is none",
        "ARG P=linux/arm64\nFROM --platform=$P a\nFROM --platform= b\n",
        {},
        ("linux", "s390x", ""),
        [F(2, "a", "linux/arm64"), F(3, "b")],
    ),
    (
        "the line of a continued FROM is its first",
        "\n\nFROM \\\n  a\n",
        {},
        None,
        [F(3, "a")],
    ),
    # --- forms from onnxruntime's tools/ci_build/github/linux/docker
    (
        "onnxruntime: ARG BASEIMAGE, multi-stage",
        "ARG POLICY=manylinux_2_28\nARG BASEIMAGE=nvidia/cuda:11.8.0-cudnn8-devel-ubi8\n"
        "\n#Build manylinux docker image begin\nFROM $BASEIMAGE AS runtime_base\n"
        "ARG POLICY\nFROM runtime_base AS build_base\nFROM build_base AS build_git\n"
        "FROM build_base AS build_cpython\nFROM build_cpython AS build_cpython38\n"
        "FROM runtime_base\n",
        {},
        None,
        [F(5, "nvidia/cuda:11.8.0-cudnn8-devel-ubi8")],
    ),
    (
        "onnxruntime: BASEIMAGE from --docker-build-args",
        "ARG BASEIMAGE=nvidia/cuda:12.5.1-cudnn-devel-ubi8\n\nFROM $BASEIMAGE\nARG TRT_VERSION\n",
        {"BASEIMAGE": "nvidia/cuda:12.8.1-cudnn-devel-ubi8", "TRT_VERSION": "10.9"},
        None,
        [F(3, "nvidia/cuda:12.8.1-cudnn-devel-ubi8")],
    ),
    (
        "onnxruntime: ARG OS_VERSION",
        "ARG OS_VERSION=16.04\nFROM ubuntu:${OS_VERSION}\n\nARG PYTHON_VERSION=3.5\n",
        {"OS_VERSION": "22.04"},
        None,
        [F(2, "ubuntu:22.04")],
    ),
    (
        "onnxruntime: FROM --platform",
        "ARG BASEIMAGE=quay.io/pypa/manylinux_2_28_s390x:latest\n"
        "FROM --platform=linux/s390x $BASEIMAGE\n",
        {},
        None,
        [F(2, "quay.io/pypa/manylinux_2_28_s390x:latest", "linux/s390x")],
    ),
    (
        "onnxruntime: a registry image",
        "# Licensed under the MIT License.\n\nFROM onnxruntimebuildcache.azurecr.io/internal/"
        "azureml/onnxruntime/build/cuda12_2_x64_ubi8_gcc12_dotnet:20240531.1\nARG TRT_VERSION\n",
        {},
        None,
        [
            F(
                3,
                "onnxruntimebuildcache.azurecr.io/internal/azureml/onnxruntime/build/"
                "cuda12_2_x64_ubi8_gcc12_dotnet:20240531.1",
            )
        ],
    ),
]

# (what it shows, Dockerfile, the line the message must name, a word in it)
ERRORS: list[tuple[str, str, int, str]] = [
    ("FROM alone", "FROM\n", 1, "one or three arguments"),
    ("two words", "FROM a b\n", 1, "one or three arguments"),
    ("AS without a name", "\nFROM a AS\n", 2, "one or three arguments"),
    ("a flag without value", "\n\nFROM --platform a\n", 3, "missing a value"),
    ("an unknown flag", "FROM --plat=x a\n", 1, "unknown flag"),
    ("a repeated flag", "FROM --platform=a --platform=b c\n", 1, "duplicate flag"),
    ("only flags", "FROM --platform=linux/amd64\n", 1, "one or three arguments"),
    ("a bad stage name", "FROM a AS 1st\n", 1, "invalid name for build stage"),
    ("a blank base name", "ARG E=\nFROM $E\n", 2, "should not be blank"),
    ("an empty platform", "FROM --platform=$NOPE a\n", 1, "empty platform"),
    ("an unclosed ${", "FROM a \\\n  AS b\nFROM ${A\n", 3, "missing '}'"),
    ("a bad substitution", "FROM a:${:x}\n", 1, "bad substitution"),
    ("${A:?}", "FROM a:${A:?must_be_set}\n", 1, "A: must_be_set"),
    ("an unclosed quote", 'ARG V="x\nFROM a\n', 1, "double-quote"),
    ("a bad escape directive", "# escape=x\nFROM a\n", 1, "invalid escape token"),
    ("a repeated directive", "# syntax=a\n# syntax=b\nFROM c\n", 2, "only one syntax"),
    ("a blank ARG name", "ARG =1\nFROM a\n", 1, "can not be blank"),
    ("an unterminated heredoc", "FROM a\nRUN <<EOF\necho\n", 2, "unterminated heredoc"),
]


def images(
    dockerfile: str,
    args: Mapping[str, str] | None = None,
    target: tuple[str, str, str] | None = None,
    *,
    build: tuple[str, str, str] = ENGINE,
    target_stage: str | None = None,
) -> list[BaseImage]:
    return base_images(dockerfile, args or {}, build, target or build, target_stage=target_stage)


class BaseImagesTest(unittest.TestCase):
    def test_cases(self) -> None:
        for what, dockerfile, args, target, expected in CASES:
            with self.subTest(what):
                self.assertEqual(images(dockerfile, args, target), expected)

    def test_errors(self) -> None:
        for what, dockerfile, line, word in ERRORS:
            with self.subTest(what), self.assertRaises(DockerfileError) as caught:
                images(dockerfile)
            message = str(caught.exception)
            self.assertIn(f"line {line}:", message, what)
            self.assertIn(word, message, what)
            self.assertNotIn("\n", message, what)

    def test_error_is_value_error(self) -> None:
        self.assertTrue(issubclass(DockerfileError, ValueError))

    def test_build_platform(self) -> None:
        found = images(
            "FROM a:$BUILDARCH$BUILDVARIANT-$TARGETPLATFORM\n", build=("linux", "arm", "v7")
        )
        self.assertEqual(found, [F(1, "a:armv7-linux/arm/v7")])

    def test_the_frontend_is_pulled_for_the_build_platform(self) -> None:
        found = images("# syntax=d/f:1\nFROM a\n", target=("linux", "arm64", ""))
        self.assertEqual(found, [S(1, "d/f:1"), F(2, "a")])

    def test_target_stage(self) -> None:
        dockerfile = "FROM a:$TARGETSTAGE AS one\nFROM b AS two\n"
        self.assertEqual(images(dockerfile)[0].name, "a:two")
        self.assertEqual(images(dockerfile, target_stage="one")[0].name, "a:one")
        self.assertEqual(images("FROM a:$TARGETSTAGE\n")[0].name, "a:default")

    def test_pinned_field(self) -> None:
        found = images(f"# syntax=d/f:1@{DIGEST}\nFROM a@{DIGEST}\nFROM b:1\n")
        self.assertEqual([image.pinned for image in found], [True, True, False])

    def test_no_from(self) -> None:
        self.assertEqual(images("# just a comment\n"), [])
        self.assertEqual(images(""), [])

    def test_public_names(self) -> None:
        self.assertEqual(
            sorted(dockerfile_from.__all__), ["BaseImage", "DockerfileError", "base_images"]
        )
        self.assertEqual(BaseImage._fields, ("name", "platform", "line", "pinned"))


def expand(word: str, env: Mapping[str, str], escape: str = "\\") -> str:
    """One word through the module's ProcessWord (line 1 in messages)."""
    return dockerfile_from._expand(word, env, escape, 1, dockerfile_from._Budget(0))


class BuildKitExpansionTest(unittest.TestCase):
    def test_recorded_results(self) -> None:
        for word, env, result, error in EXPANSIONS:
            with self.subTest(word=word, env=env):
                if not error:
                    self.assertEqual(expand(word, env), result)
                    continue
                with self.assertRaises(DockerfileError) as caught:
                    expand(word, env)
                self.assertIn(f"line 1: {error} in ", str(caught.exception))

    def test_an_unclosed_brace_after_a_name(self) -> None:
        # docker says "unsupported modifier (\ufffd)", the char its scanner
        # returns at the end; inside another ${ it says this too.
        with self.assertRaisesRegex(DockerfileError, "missing '}'"):
            expand("${A", {"A": "a"})

    def test_patterns(self) -> None:
        # What they show, with the results BuildKit gives.
        env = {"V": "reg.io/img:1.2-full", "L": "a\nb*c\nd", "P": "*", "R": "<$0>"}
        for word, result in [
            ("${V#*/}", "img:1.2-full"),
            ("${V##*[.]}", "reg.io/img:1.2-full"),  # brackets are literal
            ("${V##*.}", "2-full"),
            ("${V%.*}", "reg.io/img:1"),
            ("${V%%.*}", "reg"),
            ("${V%-\\*}", "reg.io/img:1.2-full"),  # \* is a literal star
            ("${L#*\\*}", "a\nb*c\nd"),  # `*` and `?` take no newline
            ("${L#a?b}", "a\nb*c\nd"),
            ("${L##*}", "\nb*c\nd"),
            ("${L%%?}", "a\nb*c\n"),
            ("${V#$P}", "reg.io/img:1.2-full"),  # the shortest: empty
            ("${V##$P}", ""),  # a variable's * is a wildcard, quoted too
            ('${V##"$P"}', ""),
            ("${V/?/-}", "-eg.io/img:1.2-full"),
            ("${V//?/-}", "-------------------"),
            ("${L//*/-}", "-\n-\n-"),  # an empty match after a match is not replaced
            ("${V//i/$R}", "reg.<i>o/<i>mg:1.2-full"),  # ReplaceAllString's $0
            ("${V/i/$R}", "reg.<$0>o/img:1.2-full"),  # the first, as is
            ("${U//*/x}", "x"),
        ]:
            with self.subTest(word):
                self.assertEqual(expand(word, env), result)


class BuildKitParserTest(unittest.TestCase):
    """The parser's regular expressions, read by hand here."""

    def test_directive(self) -> None:
        for text, groups, _, _, _ in PARSER_REGEXPS:
            with self.subTest(text):
                expected = (groups[0].lower(), groups[1]) if groups else None
                self.assertEqual(dockerfile_from._directive(text), expected)

    def test_heredoc(self) -> None:
        for text, _, heredoc, _, _ in PARSER_REGEXPS:
            with self.subTest(text):
                expected = (heredoc[1], heredoc[0]) if heredoc else None
                self.assertEqual(dockerfile_from._heredoc(text), expected)

    def test_continuation(self) -> None:
        for text, _, _, backslash, backtick in PARSER_REGEXPS:
            for escape, trimmed in (("\\", backslash), ("`", backtick)):
                with self.subTest(text=text, escape=escape):
                    expected = (text, True) if trimmed is None else (trimmed, False)
                    self.assertEqual(dockerfile_from._trim_continuation(text, escape), expected)


def run_with_deadline(test: unittest.TestCase, seconds: float, work: Callable[[], T]) -> T:
    """work() if it ends within seconds; else the test fails then (it runs on)."""
    results: list[T] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            results.append(work())
        except BaseException as e:  # re-raised in the test
            errors.append(e)

    thread = threading.Thread(target=run, daemon=True)
    started = time.perf_counter()
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        test.fail(f"still running after {seconds} s")
    if errors:
        raise errors[0]
    test.assertLess(time.perf_counter() - started, seconds)
    return results[0]


class LinearTest(unittest.TestCase):
    """Inputs that took minutes or recursed, with deadlines some 10x what they take."""

    def test_shell_pattern_of_stars(self) -> None:
        dockerfile = "ARG X\nFROM good:${X#*a*a*a*a*c}${X##*a*a*a*a*c}${X%a*a*a*a*c}${X/*a*c/}\n"
        for size in (2000, 100_000):
            x = "a" * size
            found = run_with_deadline(self, 1, partial(images, dockerfile, {"X": x}))
            self.assertEqual(found, [F(2, "good:" + x * 4)])

    def test_shell_pattern_replacing_all(self) -> None:
        x = "ab" * 50_000
        found = run_with_deadline(self, 1, lambda: images("ARG X\nFROM a${X//?b/c}\n", {"X": x}))
        self.assertEqual(found, [F(2, "a" + "c" * 50_000)])

    def test_long_syntax_directive(self) -> None:
        dockerfile = "# syntax=a" + " " * 64_000 + "b\nFROM c\n"
        found = run_with_deadline(self, 1, lambda: images(dockerfile))
        self.assertEqual(found, [S(1, "a"), F(2, "c")])

    def test_long_runs_of_blanks(self) -> None:
        continued = "FROM a" + " " * 60_000 + "\\\n" + " \t" * 30_000 + "\\\n AS b\n"
        found = run_with_deadline(self, 1, lambda: images(continued))
        self.assertEqual(found, [F(1, "a")])
        megabyte = "FROM a" + " " * 1_000_000 + "\\\n"
        with self.assertRaisesRegex(DockerfileError, "line 1: dockerfile line greater than max"):
            run_with_deadline(self, 1, lambda: images(megabyte))

    def test_nested_defaults(self) -> None:
        for depth in (1000, 100_000):
            # One ${ a line, as docker refuses a line over 64 KiB.
            opened = "".join(f"${{a{i}:-\\\n" for i in range(depth))
            closed = "\\\n".join("}" * 1000 for _ in range(depth // 1000))
            dockerfile = f"FROM {opened}x{closed}\n"
            found = run_with_deadline(self, 5, partial(images, dockerfile))
            self.assertEqual(found, [F(1, "x")])

    def test_nested_error(self) -> None:
        dockerfile = "FROM " + "${a:-" * 100_000 + "\n"
        with self.assertRaisesRegex(DockerfileError, "^line 1: syntax error: missing '}' in "):
            run_with_deadline(self, 5, lambda: images(dockerfile.replace("-$", "-\\\n$")))

    def test_many_heredocs(self) -> None:
        blocks = "".join(f"RUN <<A{i} <<-B{i}\nFROM no\nA{i}\n\tB{i}\n" for i in range(20_000))
        one_line = "COPY " + " ".join(f"<<H{i}" for i in range(5_000)) + " /\n"
        bodies = "".join(f"FROM no\nH{i}\n" for i in range(5_000))
        dockerfile = f"FROM a\n{blocks}{one_line}{bodies}FROM b\n"
        found = run_with_deadline(self, 5, lambda: images(dockerfile))
        self.assertEqual(found, [F(1, "a"), F(90_003, "b")])

    def test_deep_json_form(self) -> None:
        dockerfile = "FROM a\nRUN " + "[" * 60_000 + " <<EOF\nFROM b\nEOF\nFROM c\n"
        self.assertEqual(images(dockerfile), [F(1, "a"), F(5, "c")])

    def test_large_dockerfile(self) -> None:
        # Ordinary instructions, after onnxruntime's build images: 50 MB of
        # them take about 1.5 s.
        block = (
            "# Licensed under the MIT License.\n\nFROM $BASEIMAGE AS base\n"
            "ENV PATH=/usr/local/bin:/opt/rh/gcc-toolset-12/root/usr/bin:${PATH}\n"
            "ENV LANG=en_US.UTF-8\nADD scripts /tmp/scripts\n"
            "RUN cd /tmp/scripts && /tmp/scripts/install_deps.sh && rm -rf /tmp/scripts\n"
            "RUN dnf install -y --nodocs \\\n        ca-certificates curl git make \\\n"
            "        # for Python\n        openssl-devel zlib-devel bzip2-devel \\\n"
            "    && dnf clean all\n"
            "ARG BUILD_UID=1001\nARG BUILD_USER=onnxruntimedev\n"
            "RUN adduser --uid $BUILD_UID $BUILD_USER\nWORKDIR /home/$BUILD_USER\n"
            "USER $BUILD_USER\nENV CUDA_HOME=/usr/local/cuda-12.2 \\\n"
            "    CUDA_MODULE_LOADING=LAZY\nCOPY <<EOF /etc/pip.conf\n[global]\nEOF\n"
            "COPY --chown=$BUILD_USER requirements.txt /tmp/requirements.txt\n"
            "RUN python3 -m pip install --user -r /tmp/requirements.txt\n"
        )
        blocks = 10_000_000 // len(block)
        dockerfile = "ARG BASEIMAGE=nvidia/cuda:12.8.1-cudnn-devel-ubi8\n" + block * blocks
        found = run_with_deadline(self, 10, lambda: images(dockerfile))
        self.assertEqual(len(found), blocks)
        self.assertEqual(found[0], F(4, "nvidia/cuda:12.8.1-cudnn-devel-ubi8"))

    def test_expansion_is_bounded(self) -> None:
        doubling = "".join(f"ARG A{i + 1}=$A{i}$A{i}\n" for i in range(64))
        dockerfile = f"ARG A0=0123456789\n{doubling}FROM a:$A64\n"
        with self.assertRaisesRegex(DockerfileError, r"^line \d+: expansions copy more than"):
            run_with_deadline(self, 2, lambda: images(dockerfile))
        # A long value used many times is no copy.
        uses = "FROM ${V:-${W:-$A}}\n" * 1000
        found = images(f"ARG A\n{uses}", {"A": "a" * 100_000})
        self.assertEqual({image.name for image in found}, {"a" * 100_000})


class LinesTest(unittest.TestCase):
    def test_docker_line_limit(self) -> None:
        # bufio.Scanner's 64 KiB with the newline; a \r and UTF-8 bytes count.
        fits = "FROM a\nRUN " + "x" * (65_535 - 4) + "\nFROM b\n"
        self.assertEqual(images(fits), [F(1, "a"), F(3, "b")])
        for what, line in [
            ("one byte more", "RUN " + "x" * (65_536 - 4)),
            ("with CRLF", "RUN " + "x" * (65_535 - 4) + "\r"),
            ("in UTF-8", "RUN " + "\u00e9" * 32_766),
            ("at the end", "RUN " + "x" * 65_536),
        ]:
            with self.subTest(what), self.assertRaisesRegex(DockerfileError, "^line 2: .*65535$"):
                images(f"FROM a\n{line}\n" if what != "at the end" else f"FROM a\n{line}")

    def test_go_whitespace(self) -> None:
        # \x1c is a space to Python, not to Go: "\x1cFROM" is no FROM to docker;
        # U+3000 is one to both, but only blanks split words.
        dockerfile = "\x1cFROM a\n\u3000FROM b\u3000\nFROM\xa0c\n"
        self.assertEqual(images(dockerfile), [F(2, "b")])

    def test_as_is_case_folded_as_go_does(self) -> None:
        self.assertEqual(images("FROM a A\u017f b\nFROM b\n"), [F(1, "a")])


# Heredoc bodies, as BuildKit's heredocsFromLine finds their terminators:
# each Dockerfile has FROM a, the instruction, then lines naming FROM x, y,
# z between candidate terminators; what is left shows where each body ended.
# (what it shows, the instruction and the lines after it, expected after FROM a)
HEREDOCS: list[tuple[str, str, list[BaseImage] | str]] = [
    ("blanks after << are part of the word", "RUN << EOF\nFROM x\nEOF\nFROM c\n", [F(5, "c")]),
    (
        "blanks and a tab after <<, then a quoted name",
        'RUN <<  \t"EOF"\nFROM x\nEOF\nFROM c\n',
        [F(5, "c")],
    ),
    ("<< at the end of the line is no heredoc", "RUN <<\nFROM c\n", [F(3, "c")]),
    ("<< at the end after a quote", 'RUN echo "" <<\nFROM c\n', [F(3, "c")]),
    ("a lone < at the end", 'RUN <<EOF "" <\nFROM x\nEOF\nFROM c\n', [F(5, "c")]),
    (
        "a quoted name, then another heredoc",
        'RUN <<"A" <<B\nFROM x\nA\nFROM y\nB\nFROM c\n',
        [F(7, "c")],
    ),
    (
        "a quoted name after a blank, then another heredoc",
        'RUN << "A" <<B\nFROM x\nA\nFROM y\nB\nFROM c\n',
        [F(7, "c")],
    ),
    (
        "a quote in the name takes the blank after it",
        'RUN <<A"B C"\nFROM x\nAB\nFROM y\nAB C\nFROM c\n',
        [F(7, "c")],
    ),
    (
        "a quoted name ends at its quote: AX",
        "RUN <<'A'X\nFROM x\nA\nFROM y\nAX\nFROM c\n",
        [F(7, "c")],
    ),
    (
        'an escape in "...": \\$ is $',
        'RUN <<"E\\$X"\nFROM x\nE$X\nFROM y\nE\\$X\nFROM c\n',
        [F(5, "y"), F(7, "c")],
    ),
    (
        'an escape in "...": \\X stays',
        'RUN <<"F\\X"\nFROM x\nFX\nFROM y\nF\\X\nFROM c\n',
        [F(7, "c")],
    ),
    (
        "no escapes in '...'",
        "RUN <<'E\\$'\nFROM x\nE$\nFROM y\nE\\$\nFROM c\n",
        [F(7, "c")],
    ),
    (
        "an escaped quote does not close the quote: no heredoc inside",
        'RUN echo "\\" <<EOF"\nFROM c\n',
        [F(3, "c")],
    ),
    ("an escape starts a word", "RUN \\a <<EOF\nFROM x\nEOF\nFROM c\n", [F(5, "c")]),
    ("a word ending in < before a heredoc", 'RUN "" x< <<EOF\nFROM x\nEOF\nFROM c\n', [F(5, "c")]),
    (
        "a space that is not a blank ends the << word",
        "RUN <<\u3000EOF\nFROM x\nEOF\nFROM c\n",
        [F(3, "x"), F(5, "c")],
    ),
    (
        "\\x1c is no space: part of the name",
        "RUN <<\x1cEOF\nFROM x\nEOF\nFROM y\n\x1cEOF\nFROM c\n",
        [F(7, "c")],
    ),
    ("an ONBUILD RUN opens one", "ONBUILD RUN <<EOF\nFROM x\nEOF\nFROM c\n", [F(5, "c")]),
    (
        # (docker's instruction parser then refuses the flag)
        "an escaped blank in a flag of ONBUILD: the flag takes RUN",
        "ONBUILD --x\\ RUN <<EOF\nFROM x\nEOF\nFROM c\n",
        [F(3, "x"), F(5, "c")],
    ),
    (
        "an escaped tab ending the name is part of it",
        "RUN <<A\\\t B\nFROM x\nA\\\nFROM y\nA\t\nFROM c\n",
        [F(7, "c")],
    ),
    ("onbuild, lowercase", "onbuild copy <<EOF /f\nFROM x\nEOF\nFROM c\n", [F(5, "c")]),
    ("the JSON form opens none", 'RUN ["echo", "<<EOF"]\nFROM c\n', [F(3, "c")]),
    ("a [ that is no JSON", "RUN [ <<EOF\nFROM x\nEOF\nFROM c\n", [F(5, "c")]),
    ("no heredoc in ENV", "ENV A=<<EOF\nFROM c\n", [F(3, "c")]),
    (
        "the terminator is the whole line, but for its CR",
        "RUN <<EOF\r\nFROM x\r\nEOF \r\nFROM y\r\n EOF\r\nFROM z\r\nEOF\r\nFROM c\r\n",
        [F(9, "c")],
    ),
    (
        "a tab before the terminator counts without -",
        "RUN <<EOF\n\tEOF\nFROM x\nEOF\nFROM c\n",
        [F(6, "c")],
    ),
    ("<<- strips tabs only", "RUN <<-EOF\n  EOF\nFROM x\n\t\tEOF\nFROM c\n", [F(6, "c")]),
    (
        "a quote left open: no heredoc, as docker's lexer fails",
        "RUN <<EOF echo 'x\nFROM x\nEOF\nFROM c\n",
        [F(3, "x"), F(5, "c")],
    ),
    (
        "a quote left open after an escape: no heredoc",
        'RUN <<EOF "x\\\\\\\nFROM x\nEOF\nFROM c\n',
        [F(3, "x"), F(5, "c")],
    ),
    ("unterminated", "RUN <<EOF\nFROM x\n", "line 2: unterminated heredoc"),
]

# (what it shows, Dockerfile, build args, the base images or the exact error)
EXACT: list[tuple[str, str, dict[str, str], list[BaseImage] | str]] = [
    # --- lines and continuations
    ("a trailing blank", "FROM a \nFROM b\t\n", {}, [F(1, "a"), F(2, "b")]),
    ("a continuation at the end", "FROM b\nFROM a \\\n", {}, [F(1, "b"), F(2, "a")]),
    (
        "a continuation with blanks after it, CRLF",
        "FROM a \\ \r\n  AS b\r\nFROM b \\\t\r\n\r\n  AS c\r\n"
        "FROM c \\\r\n AS \\\r\n d\r\nFROM e\r\n",
        {},
        [F(1, "a"), F(9, "e")],
    ),
    ("a comment ending in \\ continues nothing", "# a \\\nFROM a\n", {}, [F(2, "a")]),
    ("#! is a comment", "#!x \\\nFROM a\n", {}, [F(2, "a")]),
    ("a one-char line", "x\nFROM a\n", {}, [F(2, "a")]),
    ("\\x1c ends no line", "FROM a\x1c\nFROM \\\n b\x1c\n", {}, [F(1, "a\x1c"), F(2, "b\x1c")]),
    ("a \\x1c line inside an instruction is kept", "FROM a\\\n\x1c\n", {}, [F(1, "a\x1c")]),
    ("a continued line ending in X", "FROM \\\n  imageX\n", {}, [F(1, "imageX")]),
    ("an escape before X is no continuation", "FROM a\\X \nFROM b\n", {}, [F(1, "aX"), F(2, "b")]),
    ("a BOM before FROM", "\ufeffFROM a\n", {}, [F(1, "a")]),
    ("\\x1c after FROM is part of the name", "FROM \x1ca\n", {}, [F(1, "\x1ca")]),
    ("U+00A0 splits no words", "FROM a\xa0b\n", {}, [F(1, "a\xa0b")]),
    # (an unknown instruction to docker's instruction parser, as in test_go_whitespace)
    (
        "an instruction named ARGS is no ARG",
        "ARGS A=1\nFROM a:${A:-unset}\n",
        {},
        [F(2, "a:unset")],
    ),
    # --- parser directives
    ("escape=\\ is allowed", "# escape=\\\nFROM a \\\n AS b\n", {}, [F(2, "a")]),
    ("an indented escape directive", "  # escape=`\nFROM a `\nAS b\n", {}, [F(2, "a")]),
    ("escape= and a CR is no directive", "# escape=\r\nFROM a\n", {}, [F(2, "a")]),
    (
        "a bad escape: \\x1c is part of the value",
        "# escape=`\x1c\nFROM a\n",
        {},
        "line 1: invalid escape token '`\\x1c' does not match ` or \\",
    ),
    (
        "a bad escape: X",
        "# escape=`X\nFROM a\n",
        {},
        "line 1: invalid escape token '`X' does not match ` or \\",
    ),
    ("// syntax= for other frontends", "// syntax=x/y\nFROM a\n", {}, [S(1, "x/y"), F(2, "a")]),
    ("syntax= and a CR is no directive", "# syntax=\r\nFROM a\n", {}, [F(2, "a")]),
    # (an unknown instruction to docker's instruction parser, as in test_go_whitespace)
    ("\\x1c before # is no space", "\x1c# escape=`\nFROM a:`\n1\n", {}, [F(2, "a:`")]),
    ("\\x1c after # is no space", "#\x1csyntax=x/y\nFROM a\n", {}, [F(2, "a")]),
    (
        "the syntax is cut at its first space only",
        "# syntax=x/y\vz\tw v u\nFROM a\n",
        {},
        [S(1, "x/y\vz\tw"), F(2, "a")],
    ),
    (
        "BUILDKIT_SYNTAX is cut at its first space only",
        "FROM a\n",
        {"BUILDKIT_SYNTAX": " x/y\tz v u "},
        [S(0, "x/y\tz"), F(1, "a")],
    ),
    # --- FROM flags
    ("a quoted flag", 'FROM --platform="linux"/arm64 a\n', {}, [F(1, "a", "linux/arm64")]),
    (
        "a flag's quotes go before expansion",
        "ARG P=linux/arm64\nFROM --platform='$P' a\nFROM --platform=\\$P b\n",
        {},
        [F(2, "a", "linux/arm64"), F(3, "b", "linux/arm64")],
    ),
    (
        "escape=`: a flag's escapes go before expansion",
        "# escape=`\nARG P=linux/arm64\nFROM --platform=`$P a\n",
        {},
        [F(3, "a", "linux/arm64")],
    ),
    ("an escape in a flag", "FROM --platform=linux/ar\\m64 a\n", {}, [F(1, "a", "linux/arm64")]),
    ("X in a flag", "ARG X=linux/arm64\nFROM --platform=$X a\n", {}, [F(2, "a", "linux/arm64")]),
    ("-- ends the flags", "FROM -- a\n", {}, [F(1, "a")]),
    (
        "an escape ending the flags is dropped",
        "FROM --platform=a\\\\\\\n",
        {},
        "line 1: FROM requires either one or three arguments",
    ),
    (
        "a platform expanding to nothing",
        "FROM --platform=\\\\ a\n",
        {},
        "line 1: empty platform value from expression \\",
    ),
    (
        "a platform expanded in full",
        "FROM --platform=linux/$BUILDARCH a\n",
        {},
        [F(1, "a", "linux/amd64")],
    ),
    (
        "an error in a platform",
        "FROM --platform=${P:?no} a\n",
        {},
        "line 1: P: no in '${P:?no}'",
    ),
    # --- stage names
    (
        "a stage name may end in z, 9",
        "FROM a AS z9\nFROM z9\nFROM b AS z\nFROM z\n",
        {},
        [F(1, "a"), F(3, "b")],
    ),
    (
        "a stage name cannot start with _",
        "FROM a AS _x\n",
        {},
        "line 1: invalid name for build stage: '_x', "
        "name can't start with a number or contain symbols",
    ),
    # --- ARG
    ("ARG alone", "ARG\nFROM a\n", {}, "line 1: ARG requires at least one argument"),
    (
        "ARG words: quotes and escapes kept until expansion",
        'ARG A="a\\"b" B=\'c\\\' C=\\$A D=a\\ b  E="\\$A" F=x\\\\\nFROM i:$A-$B-$C-$D-$E-$F\n',
        {},
        [F(2, 'i:a"b-c\\-$A-a b-$A-x\\')],
    ),
    ("X in ARG words", "ARG X=1 Y=2\nFROM a:$X-$Y\n", {}, [F(2, "a:1-2")]),
    ("an ARG escape at the end is dropped", "ARG A=a\\\\\\\nFROM i:$A\n", {}, [F(2, "i:a\\")]),
    (
        "BUILDOSVERSION and TARGETOSVERSION are set, empty",
        "FROM a:${BUILDOSVERSION-unset}${TARGETOSVERSION-unset}${BUILDOSVERSION:-e}\n",
        {},
        [F(1, "a:e")],
    ),
    # --- expansion
    ("empty quotes", "FROM a:\"\"''1\n", {}, [F(1, "a:1")]),
    (
        "${1X is an unsupported modifier",
        "FROM a:${1X\n",
        {},
        "line 1: unsupported modifier (X) in substitution in 'a:${1X'",
    ),
    (
        "${A:X at the end misses a }",
        "FROM a:${A:X\n",
        {},
        "line 1: syntax error: missing '}' in 'a:${A:X'",
    ),
    (
        "${A:X} is an unsupported modifier",
        "FROM a:${A:Xb}\n",
        {},
        "line 1: unsupported modifier (:X) in substitution in 'a:${A:Xb}'",
    ),
    ("${A alone misses a }", "FROM a:${A\n", {}, "line 1: syntax error: missing '}' in 'a:${A'"),
    (
        "a pattern ending in an escape",
        "ARG A=a\nARG P\nFROM x${A#$P}\n",
        {"P": "\\"},
        "line 3: invalid pattern (\\) in substitution: invalid escape '\\\ufffd' in 'x${A#$P}'",
    ),
    (
        "an error in a word of 200 chars shows it",
        "FROM " + "a" * 199 + '"\n',
        {},
        "line 1: unexpected end of statement while looking for matching double-quote in '"
        + "a" * 199
        + "\"'",
    ),
    (
        "an error in a word of 201 chars shows 200",
        "FROM " + "a" * 200 + '"\n',
        {},
        "line 1: unexpected end of statement while looking for matching double-quote in '"
        + "a" * 200
        + "...'",
    ),
]


def exact(dockerfile: str, args: Mapping[str, str]) -> list[BaseImage] | str:
    """The base images, or the message of the error."""
    try:
        return images(dockerfile, args)
    except DockerfileError as e:
        return str(e)


class ExactResultsTest(unittest.TestCase):
    """Complete results and exact messages; each within a deadline, as a
    lexer that stops moving forward would loop."""

    def test_heredocs(self) -> None:
        for what, text, expected in HEREDOCS:
            with self.subTest(what):
                dockerfile = "FROM a\n" + text
                found = run_with_deadline(self, 1, partial(exact, dockerfile, {}))
                self.assertEqual(
                    found, [F(1, "a"), *expected] if isinstance(expected, list) else expected
                )

    def test_heredocs_with_escape_backtick(self) -> None:
        # A \ ending the line is plain: the lexer of heredocs keeps it.
        dockerfile = "# escape=`\nFROM a\nRUN <<EOF \\\nFROM x\nEOF\nFROM c\n"
        found = run_with_deadline(self, 1, partial(exact, dockerfile, {}))
        self.assertEqual(found, [F(2, "a"), F(6, "c")])

    def test_dockerfiles(self) -> None:
        for what, dockerfile, args, expected in EXACT:
            with self.subTest(what):
                found = run_with_deadline(self, 1, partial(exact, dockerfile, args))
                self.assertEqual(found, expected)

    def test_expansions(self) -> None:
        env = {
            "A": "\\x",
            "B": "bbc",
            "V": "aib",
            "R": "$$x",
            "S": "$$$0",
            "T": "<$a_b>",
            "U": "$-$0",
        }
        for word, result in [
            ('${A#"\\\\*"}', "x"),  # raw escapes in "..." inside ${A#...}
            ('"a\\"b"', 'a"b'),
            ("${B#ab}", "bbc"),
            ("${V//i/$R}", "a$xb"),
            ("${V//i/$S}", "a$ib"),
            ("${V//i/$T}", "a<>b"),
            ("${V//i/$U}", "a$-ib"),
        ]:
            with self.subTest(word):
                self.assertEqual(expand(word, env), result)


class BudgetTest(unittest.TestCase):
    def test_the_limit_is_in_the_message(self) -> None:
        # 2**24 chars, and 16 a char of the Dockerfile and of the build args.
        doubling = "".join(f"ARG A{i + 1}=x$A{i}$A{i}\n" for i in range(22))
        dockerfile = f"ARG A0=0123456789\n{doubling}FROM a:$A22\n"
        args = {"PAD": "p" * 1000}
        limit = (1 << 24) + 16 * (len(dockerfile) + 3 + 1000)
        with self.assertRaises(DockerfileError) as caught:
            images(dockerfile, args)
        message = str(caught.exception)
        self.assertEqual(
            message.partition(" in ")[0], f"line 21: expansions copy more than {limit} characters"
        )

    def test_spending_the_limit_is_allowed(self) -> None:
        budget = dockerfile_from._Budget(10)
        self.assertEqual(budget.limit, (1 << 24) + 160)
        budget.spend(budget.limit - 1)
        budget.spend(1)
        with self.assertRaisesRegex(
            DockerfileError, f"^expansions copy more than {budget.limit} characters$"
        ):
            budget.spend(1)

    def test_large_inputs_have_a_larger_limit(self) -> None:
        # 2 MB of build args: 4 MB copied is within the limit.
        found = images("ARG A\nFROM x:$A-$A\n", {"A": "a" * 2_000_000})
        self.assertEqual(found, [F(2, "x:" + "a" * 2_000_000 + "-" + "a" * 2_000_000)])

    def test_replacements_count(self) -> None:
        uses = "FROM ${A/a/$B}\n" * 200
        with self.assertRaisesRegex(DockerfileError, r"^line \d+: expansions copy more than"):
            images(f"ARG A=a\nARG B\n{uses}", {"B": "b" * 100_000})


if __name__ == "__main__":
    unittest.main()
