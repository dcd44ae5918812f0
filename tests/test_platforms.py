"""docker build's arguments as the tool reads them, platforms, and the
target platform in the tag (--hash-mode docker, --hash-platform)."""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import sys
import unittest
from typing import Any
from unittest import mock

from get_docker_image import (
    LINUX,
    BaseImageDigest,
    ContentDigest,
    Docker,
    DockerError,
    Platform,
    TextExplainer,
    ToolError,
    UsageError,
    _optional_module,
    build_arg_values,
    build_target,
    choose_manifest,
    compute_tag,
    parse_options,
    parse_platform,
    requested_platforms,
    resolve_base_images,
    target_platforms,
)
from tests.fixtures import CTX, DOCKERFILE, FAKE_DOCKER, Dir, File, build_tree
from tests.helpers import REPO_DIR, ScratchDirTestCase, run_main
from tests.test_cli import DENIED
from tests.test_resilience import ResilienceTestCase

AMD64 = Platform("linux", "amd64", "")
ARM64 = Platform("linux", "arm64", "")


class BuildArgsTest(ScratchDirTestCase):
    def test_build_arg_values(self) -> None:
        argv = [
            "--network",
            "host",
            "--build-arg",
            "A=1",
            "--build-arg=B=x=y",
            "--build-arg",
            "FROM_ENV",
            "--build-arg=NOT_IN_ENV",
            "--build-arg",
            "EMPTY=",
            "--build-arg",
            "A=2",
            "--label",
            "C=3",
        ]
        self.assertEqual(
            build_arg_values(argv, {"FROM_ENV": "e", "A": "env-a"}),
            {"A": "2", "B": "x=y", "FROM_ENV": "e", "EMPTY": ""},
        )

    def test_build_arg_without_a_value_at_the_end(self) -> None:
        self.assertEqual(build_arg_values(["--build-arg"], {}), {})
        self.assertEqual(build_arg_values(["--build-arg", "=x"], {}), {})
        self.assertEqual(
            build_arg_values(["--build-arg", "=x", "--build-arg", "A=1"], {}), {"A": "1"}
        )

    def test_requested_platforms(self) -> None:
        self.assertIsNone(requested_platforms([], {}))
        self.assertIsNone(requested_platforms(["--build-arg", "A=1"], {}))
        self.assertEqual(requested_platforms(["--platform", "linux/arm64"], {}), "linux/arm64")
        self.assertEqual(requested_platforms(["--platform=linux/a", "--platform", "b"], {}), "b")
        env = {"DOCKER_DEFAULT_PLATFORM": "linux/s390x"}
        self.assertEqual(requested_platforms([], env), "linux/s390x")
        self.assertEqual(requested_platforms(["--platform=linux/arm64"], env), "linux/arm64")
        self.assertIsNone(requested_platforms(["--platform="], {}))

    def test_build_target(self) -> None:
        self.assertIsNone(build_target(["--build-arg", "A=1"]))
        self.assertEqual(build_target(["--target", "one", "--target=two"]), "two")
        table = [
            (["--target", "one"], "one"),
            (["--target", "one", "--target="], None),  # the last, empty: none
            (["--target=", "--target", "two"], "two"),
            (["--target", "one", "--target=", "--target", "three"], "three"),
        ]
        self.assertEqual([(argv, build_target(argv)) for argv, _ in table], table)


class PlatformTest(ScratchDirTestCase):
    def test_spellings_docker_accepts_are_one_platform(self) -> None:
        table = [
            ("linux/amd64", AMD64),
            ("linux/x86_64", AMD64),
            ("LINUX/AMD64", AMD64),
            ("amd64", AMD64),
            ("x86-64", AMD64),
            ("linux/amd64/v1", AMD64),
            ("linux/amd64/v3", Platform("linux", "amd64", "v3")),
            ("linux/arm64", ARM64),
            ("linux/aarch64", ARM64),
            ("linux/arm64/v8", ARM64),
            ("arm64", ARM64),
            ("linux/arm", Platform("linux", "arm", "v7")),
            ("linux/arm/7", Platform("linux", "arm", "v7")),
            ("linux/armhf", Platform("linux", "arm", "v7")),
            ("linux/armel", Platform("linux", "arm", "v6")),
            ("linux/arm/6", Platform("linux", "arm", "v6")),
            ("i386", Platform("linux", "386", "")),
            ("windows/amd64", Platform("windows", "amd64", "")),
            ("macos/arm64", Platform("darwin", "arm64", "")),
            ("linux/arm64/9", Platform("linux", "arm64", "v9")),
            ("linux/arm64/8", ARM64),
            ("linux/arm64/v8.0", ARM64),
            ("linux/arm64/9.0", Platform("linux", "arm64", "v9")),
            ("linux/arm64/v9.0", Platform("linux", "arm64", "v9")),
            ("linux/arm64/V9.0", Platform("linux", "arm64", "v9")),
            ("linux/arm/5", Platform("linux", "arm", "v5")),
            ("linux/arm/8", Platform("linux", "arm", "v8")),
        ]
        for spec, expected in table:
            with self.subTest(spec):
                self.assertEqual(parse_platform(spec), expected)

    def test_an_os_alone_takes_the_architecture_of_the_default(self) -> None:
        self.assertEqual(parse_platform("linux", ARM64), ARM64)
        self.assertEqual(parse_platform("windows", AMD64), Platform("windows", "amd64", ""))
        self.assertEqual(parse_platform("linux"), LINUX)

    def test_formats_as_docker_writes_it(self) -> None:
        self.assertEqual(str(Platform("linux", "arm", "v7")), "linux/arm/v7")
        self.assertEqual(str(AMD64), "linux/amd64")

    def test_target_platforms_ask_the_engine_only_when_needed(self) -> None:
        asked: list[bool] = []

        def engine() -> Platform:
            asked.append(True)
            return ARM64

        self.assertEqual(target_platforms("linux/amd64", engine), [AMD64])
        self.assertEqual(target_platforms("linux/amd64,linux/arm64", engine), [AMD64, ARM64])
        self.assertEqual(asked, [])
        self.assertEqual(target_platforms(None, engine), [ARM64])
        self.assertEqual(target_platforms("linux", engine), [ARM64])
        self.assertEqual(len(asked), 2)


class PlatformInTheTagTest(ResilienceTestCase):
    def name(self, *options: str) -> str:
        result = self.run_tool("--print-image-name", *options)
        self.assertEqual(result.status, 0, result.stderr)
        return result.stdout.strip()

    def test_docker_mode_tags_differ_by_platform(self) -> None:
        amd64 = self.name("--hash-mode", "docker")
        self.set_env(DOCKER_DEFAULT_PLATFORM="linux/arm64")
        arm64 = self.name("--hash-mode", "docker")
        self.assertNotEqual(amd64, arm64)
        # Spellings of one platform are one tag.
        self.set_env(DOCKER_DEFAULT_PLATFORM="linux/aarch64")
        self.assertEqual(self.name("--hash-mode", "docker"), arm64)
        # --platform in the build args wins over the environment.
        self.set_env(DOCKER_DEFAULT_PLATFORM="linux/s390x")
        args = ("--docker-build-args-not-affecting-image-content", "--platform linux/amd64")
        self.assertEqual(self.name("--hash-mode", "docker", *args), amd64)

    def test_original_mode_hashes_the_platform_only_when_asked(self) -> None:
        plain = self.name()
        self.assertEqual(plain, self.image)  # the original's tag
        amd64 = self.name("--hash-platform")
        self.set_env(DOCKER_DEFAULT_PLATFORM="linux/arm64")
        self.assertEqual(self.name(), plain)
        arm64 = self.name("--hash-platform")
        self.assertEqual(len({plain, amd64, arm64}), 3)

    def test_the_engine_is_asked_when_nothing_names_a_platform(self) -> None:
        self.set_env(DOCKER_DEFAULT_PLATFORM=None)
        self.script(version=[{"stdout": "linux/arm64\n"}])
        from_engine = self.name("--hash-platform")
        self.assertEqual(
            self.docker_argvs(), [["version", "--format", "{{.Server.Os}}/{{.Server.Arch}}"]]
        )
        self.set_env(DOCKER_DEFAULT_PLATFORM="linux/arm64")
        self.assertEqual(self.name("--hash-platform"), from_engine)

    def test_an_engine_that_does_not_answer_is_a_one_line_error(self) -> None:
        self.set_env(DOCKER_DEFAULT_PLATFORM=None)
        self.script(version=[{"sleep": 30}])
        result = self.run_tool("--print-image-name", "--hash-platform", "--probe-timeout", "0.5")
        self.assertEqual(result.status, 1)
        self.assertEqual(
            result.log_messages()[-1],
            "get_docker_image [ERROR] - the docker engine did not answer `docker version "
            "--format` within 0.5 s",
        )

    def test_an_engine_answer_that_is_no_platform_is_a_one_line_error(self) -> None:
        self.set_env(DOCKER_DEFAULT_PLATFORM=None)
        self.script(version=[{"stdout": "linux/amd64\nextra junk\n"}])
        result = self.run_tool("--print-image-name", "--hash-platform")
        self.assertEqual(result.status, 1)
        self.assertIn("cannot ask the docker engine for its platform: it answered", result.stderr)

    def test_explain_shows_the_platform(self) -> None:
        result = self.run_tool("--explain", "--hash-platform")
        self.assertEqual(result.stdout.splitlines()[0], "platform  linux/amd64")
        result = self.run_tool("--explain", "json", "--hash-mode", "docker")
        self.assertEqual(
            json.loads(result.stdout.splitlines()[0]),
            {"kind": "platform", "platform": "linux/amd64"},
        )


class EngineAskedOnlyByTheFakeTest(ScratchDirTestCase):
    def test_print_image_name_in_docker_mode_runs_only_the_version_question(self) -> None:
        build_tree(self.root, [DOCKERFILE, CTX, File("ctx/a", b"a")])
        self.set_env(DOCKER_DEFAULT_PLATFORM=None)
        argv = ["--repository", "r", "--context", "ctx", "--docker-path", FAKE_DOCKER]
        result = run_main([*argv, "--hash-mode", "docker", "--print-image-name"])
        self.assertEqual(result.status, 1)  # the recording docker prints no platform
        self.assertIn("cannot ask the docker engine for its platform", result.stderr)
        self.assertEqual(len(self.docker_calls()), 1)
        self.assertFalse(os.path.exists("ctx/.dockerignore"))


def digest(seed: str) -> str:
    return "sha256:" + hashlib.sha256(seed.encode()).hexdigest()


def listed(platform: dict[str, str] | None, seed: str) -> dict[str, Any]:
    """An entry of `docker manifest inspect --verbose` for a multi-platform image."""
    descriptor: dict[str, Any] = {"digest": digest(seed)}
    if platform is not None:
        descriptor["platform"] = platform
    return {"Ref": f"example/{seed}", "Descriptor": descriptor}


# A multi-platform image's list, in an order where the first match of the
# os and the architecture alone is the wrong one.
MANIFEST_LIST = [
    listed({"os": "unknown", "architecture": "unknown"}, "attestation"),
    listed({"os": "windows", "architecture": "amd64"}, "windows"),
    listed({"os": "linux", "architecture": "amd64"}, "amd64"),
    listed({"os": "linux", "architecture": "arm", "variant": "v6"}, "armv6"),
    listed({"os": "linux", "architecture": "arm", "variant": "v7"}, "armv7"),
    listed({"os": "linux", "architecture": "arm64", "variant": "v8"}, "arm64"),
]


class ChooseManifestTest(unittest.TestCase):
    def test_the_manifest_of_the_platform(self) -> None:
        table = [
            (AMD64, "amd64"),
            (Platform("linux", "arm", "v7"), "armv7"),
            (Platform("linux", "arm", "v6"), "armv6"),
            (ARM64, "arm64"),  # v8 is arm64's default variant
            (Platform("windows", "amd64", ""), "windows"),
            (Platform("linux", "arm", ""), "armv6"),  # no variant asked: the first
        ]
        text = json.dumps(MANIFEST_LIST)
        for platform, seed in table:
            with self.subTest(str(platform)):
                self.assertEqual(choose_manifest("x", text, platform), (digest(seed), platform))

    def test_a_single_manifest_is_the_image_whatever_the_platform(self) -> None:
        text = json.dumps(listed({"os": "linux", "architecture": "s390x"}, "one"))
        self.assertEqual(choose_manifest("x", text, AMD64), (digest("one"), None))

    def test_entries_that_name_no_usable_platform_are_skipped(self) -> None:
        entries = [
            {"Descriptor": "not an object"},
            listed(None, "no platform"),
            listed({"os": "linux", "architecture": 64}, "not text"),  # type: ignore[dict-item]
            listed({"os": "", "architecture": ""}, "blank"),
            listed({"os": "linux", "architecture": "amd64"}, "amd64"),
        ]
        self.assertEqual(choose_manifest("x", json.dumps(entries), AMD64), (digest("amd64"), AMD64))
        # Not even for a platform as blank as theirs.
        blank = Platform("linux", "", "")
        with self.assertRaises(DockerError) as raised:
            choose_manifest("x", json.dumps(entries), blank)
        self.assertEqual(str(raised.exception), "base image 'x' has no manifest for platform linux")

    def test_what_is_no_manifest_is_a_one_line_error(self) -> None:
        no_digest = {"Descriptor": {"digest": "sha256:0"}}
        table = [
            ("{", "docker printed no JSON"),
            ("7", "docker printed neither a manifest nor a list of them"),
            ('["x"]', "docker printed a list that holds no manifests"),
            (json.dumps(no_digest), "docker printed a manifest without a valid digest"),
            (json.dumps({"Descriptor": []}), "docker printed a manifest without a valid digest"),
            (  # the platform's entry, without a digest
                json.dumps(
                    [{"Descriptor": {"platform": {"os": "linux", "architecture": "amd64"}}}]
                ),
                "docker printed a manifest without a valid digest",
            ),
        ]
        for text, error in table:
            with self.subTest(text), self.assertRaises(DockerError) as raised:
                choose_manifest("x:1", text, AMD64)
            self.assertEqual(str(raised.exception), f"cannot resolve base image 'x:1': {error}")
        with self.assertRaises(DockerError) as raised:
            choose_manifest("x:1", json.dumps(MANIFEST_LIST), Platform("linux", "s390x", ""))
        self.assertEqual(
            str(raised.exception), "base image 'x:1' has no manifest for platform linux/s390x"
        )


class BaseImagesTest(ResilienceTestCase):
    """--hash-base-images: the FROM images' digests, as the registry says."""

    PINNED = "busybox@" + digest("busybox")

    def setUp(self) -> None:
        super().setUp()
        dockerfile = (
            "ARG BASE=alpine:3.19\n"
            f"FROM $BASE AS one\nFROM {self.PINNED}\nFROM --platform=linux/arm/v6 alpine:3.19\n"
            "FROM one\nFROM alpine:3.19\n"
        )
        build_tree(self.root, [File("Dockerfile", dockerfile.encode())])
        self.list_answer = {"stdout": json.dumps(MANIFEST_LIST)}

    def explain(self, *options: str) -> list[dict[str, Any]]:
        result = self.run_tool("--explain", "json", "--hash-base-images", *options)
        self.assertEqual(result.status, 0, result.stderr)
        return [json.loads(line) for line in result.stdout.splitlines()]

    def test_each_image_once_per_platform_in_order(self) -> None:
        self.script(version=[{"stdout": "linux/amd64\n"}], manifest=[self.list_answer] * 4)
        entries = self.explain()
        inspect = ["manifest", "inspect", "--insecure", "--verbose", "alpine:3.19"]
        self.assertEqual(self.docker_argvs(), [self.version_argv(), inspect, inspect, inspect])
        self.assertEqual(
            entries[:4],
            [
                {"kind": "base", "name": "alpine:3.19", "digest": digest("amd64"),
                 "platform": "linux/amd64"},
                {"kind": "base", "name": "busybox", "digest": digest("busybox"), "platform": None},
                {"kind": "base", "name": "alpine:3.19", "digest": digest("armv6"),
                 "platform": "linux/arm/v6"},
                {"kind": "args", "text": "--build-arg V=1"},
            ],
        )  # fmt: skip
        self.forget_docker_calls()
        self.script(version=[{"stdout": "linux/amd64\n"}], manifest=[self.list_answer] * 6)
        args = ("--docker-build-args-not-affecting-image-content", "--platform linux/amd64,arm64")
        entries = self.explain(*args)
        self.assertEqual(
            [
                (entry["digest"], entry["platform"])
                for entry in entries
                if entry.get("kind") == "base"
            ],
            [
                (digest("amd64"), "linux/amd64"),
                (digest("busybox"), None),
                (digest("armv6"), "linux/arm/v6"),
                (digest("arm64"), "linux/arm64"),
            ],
        )

    def version_argv(self) -> list[str]:
        return ["version", "--format", "{{.Server.Os}}/{{.Server.Arch}}"]

    def test_a_moved_base_image_moves_the_tag(self) -> None:
        self.script(version=[{"stdout": "linux/amd64\n"}], manifest=[self.list_answer] * 3)
        before = self.run_tool("--print-image-name", "--hash-base-images")
        moved = [listed({"os": "linux", "architecture": "amd64"}, "amd64, rebuilt"), *MANIFEST_LIST]
        self.script(
            version=[{"stdout": "linux/amd64\n"}], manifest=[{"stdout": json.dumps(moved)}] * 3
        )
        after = self.run_tool("--print-image-name", "--hash-base-images")
        self.assertEqual((before.status, after.status), (0, 0), before.stderr + after.stderr)
        self.assertNotEqual(before.stdout, after.stdout)
        self.assertNotEqual(before.stdout, self.run_tool("--print-image-name").stdout)

    def test_a_pin_that_is_no_digest_is_an_input_error(self) -> None:
        build_tree(self.root, [File("Dockerfile", b"FROM scratch\nFROM busybox@sha256:abc\n")])
        self.script(version=[{"stdout": "linux/amd64\n"}])
        result = self.run_tool("--print-image-name", "--hash-base-images")
        self.assertEqual(result.status, 1)
        self.assertEqual(
            result.log_messages()[-1],
            "get_docker_image [ERROR] - 'Dockerfile': line 2: 'busybox@sha256:abc' is not "
            "pinned to a valid digest",
        )

    def test_a_registry_that_cannot_answer_names_the_image_and_why(self) -> None:
        self.script(
            version=[{"stdout": "linux/amd64\n"}], manifest=[{"status": 1, "stderr": DENIED}]
        )
        result = self.run_tool("--print-image-name", "--hash-base-images")
        self.assertEqual(result.status, 1)
        self.assertEqual(
            result.log_messages()[-1],
            f"get_docker_image [ERROR] - cannot resolve base image 'alpine:3.19': {DENIED} "
            "(are you logged in? docker login docker.io)",
        )

    def test_a_dockerfile_docker_would_refuse_is_an_input_error(self) -> None:
        build_tree(self.root, [File("Dockerfile", b"FROM\n")])
        self.script(version=[{"stdout": "linux/amd64\n"}])
        result = self.run_tool("--print-image-name", "--hash-base-images")
        self.assertEqual(result.status, 1)
        self.assertRegex(result.log_messages()[-1], r"^get_docker_image \[ERROR\] - 'Dockerfile': ")


class ResolveBaseImagesTest(ScratchDirTestCase):
    """resolve_base_images directly, `docker manifest inspect` answered from
    MANIFEST_LIST (the names it was asked recorded)."""

    def resolve(
        self, dockerfile: bytes, build_args: str = "", targets: tuple[Platform, ...] = (ARM64,)
    ) -> list[BaseImageDigest] | str:
        build_tree(self.root, [File("Dockerfile", dockerfile)])
        argv = ["--repository", "a", "--hash-base-images", "--docker-build-args", build_args]
        options = parse_options(argv)
        docker = Docker(options)
        self.asked: list[str] = []

        def inspect_manifest(name: str) -> str:
            self.asked.append(name)
            return json.dumps(MANIFEST_LIST)

        with mock.patch.object(docker, "inspect_manifest", new=inspect_manifest):
            try:
                return resolve_base_images(docker, options, lambda: AMD64, lambda: list(targets))
            except ToolError as error:
                return str(error)

    def test_build_args_the_target_stage_and_a_platform_that_names_an_os_alone(self) -> None:
        self.set_env(BASE="busybox:1")
        dockerfile = (
            b"# caf\xe9: a comment that is no UTF-8\n"
            b"ARG BASE\n"
            b"FROM $BASE AS one\n"
            b"FROM --platform=linux alpine:3.19 AS two\n"
            b"FROM one AS three\n"
            b"FROM debian:$TARGETSTAGE AS four\n"
        )
        found = self.resolve(dockerfile, "--build-arg BASE --target three")
        self.assertEqual(
            found,
            [
                BaseImageDigest("busybox:1", digest("arm64"), ARM64),
                BaseImageDigest("alpine:3.19", digest("arm64"), ARM64),
                BaseImageDigest("debian:three", digest("arm64"), ARM64),
            ],
        )
        self.assertEqual(self.asked, ["busybox:1", "alpine:3.19", "debian:three"])

    def test_a_name_pinned_twice_is_refused(self) -> None:
        pin = "@sha256:" + "0" * 64
        self.assertEqual(
            self.resolve(f"FROM scratch\nFROM busybox{pin}{pin}\n".encode()),
            f"'Dockerfile': line 2: 'busybox{pin}{pin}' is not pinned to a valid digest",
        )
        self.assertEqual(self.asked, [])

    def test_no_manifest_for_the_platform_names_the_image(self) -> None:
        self.assertEqual(
            self.resolve(b"FROM alpine:3.19\n", targets=(Platform("linux", "s390x", ""),)),
            "base image 'alpine:3.19' has no manifest for platform linux/s390x",
        )

    def test_without_dockerfile_from_py_the_option_is_a_usage_error(self) -> None:
        cases = {
            "dockerfile_from": "--hash-base-images needs dockerfile_from.py beside "
            "get_docker_image.py (copy it from the tool)",
            "yaml": "No module named 'yaml'",  # one it imports itself: not ours to explain
        }
        for missing, expected in cases.items():
            error = ModuleNotFoundError(f"No module named {missing!r}", name=missing)
            with (
                self.subTest(missing),
                mock.patch("get_docker_image.importlib.import_module", side_effect=error),
            ):
                try:
                    _optional_module("dockerfile_from", "--hash-base-images")
                except (UsageError, ModuleNotFoundError) as raised:
                    found = str(raised)
                self.assertEqual(found, expected)

    def test_a_tool_imported_from_a_package_finds_the_module_beside_it(self) -> None:
        package = os.path.join(self.root, "vendored")
        os.mkdir(package)
        build_tree(package, [File("__init__.py")])
        for name in ("get_docker_image", "util", "logger", "dockerfile_from"):
            os.symlink(os.path.join(REPO_DIR, f"{name}.py"), os.path.join(package, f"{name}.py"))
        self.addCleanup(sys.path.remove, self.root)
        sys.path.insert(0, self.root)
        for name in ("", ".get_docker_image", ".util", ".logger", ".dockerfile_from"):
            self.addCleanup(sys.modules.pop, "vendored" + name, None)
        tool = importlib.import_module("vendored.get_docker_image")
        module = tool._optional_module("dockerfile_from", "--hash-base-images")
        self.assertEqual(module.__name__, "vendored.dockerfile_from")


class OriginalModeTagTest(ScratchDirTestCase):
    """--hash-base-images and --hash-platform in the original mode: the tag's stream."""

    def test_the_original_mode_tag_with_base_images_and_platforms_spelled_out(self) -> None:
        images = [BaseImageDigest("alpine:3.19", digest("amd64"), AMD64)]
        base = b"1\0alpine:3.19@%s\0" % digest("amd64").encode()
        platform = b"platform\0linux/amd64\0"
        # The original's stream after the header: the build args, then the
        # Dockerfile's and the context's records (path, decimal st_mode) and bytes.
        inputs = b"--build-arg A=1Dockerfile 33188FROM a\nctx 16877ctx/f 33188x"
        header = b"\0get_docker_image v1 %s\0"
        cases: list[tuple[dict[str, Any], bytes]] = [
            ({"base_images": images}, header % b"base-images" + base),
            ({"platforms": [AMD64]}, header % b"platform" + platform),
            (
                {"base_images": images, "platforms": [AMD64]},
                header % b"base-images platform" + base + platform,
            ),
            ({}, b""),
        ]
        build_tree(self.root, [File("Dockerfile", b"FROM a\n"), Dir("ctx"), File("ctx/f", b"x")])
        for options, start in cases:
            with self.subTest(options=sorted(options)):
                tag = compute_tag("--build-arg A=1", "Dockerfile", "ctx", **options)
                expected = hashlib.sha256(start + inputs).hexdigest()
                self.assertEqual(tag, f"image_content_digest_{expected}")


class StreamOfBaseImagesAndPlatformsTest(unittest.TestCase):
    """The bytes that base images and platforms add to the digest's stream."""

    def test_base_images_are_their_count_then_each_pinned_name(self) -> None:
        images = [
            BaseImageDigest("alpine:3.19", digest("amd64"), AMD64),
            BaseImageDigest("busybox@" + digest("busybox"), digest("busybox"), None),
        ]
        stream = ContentDigest()
        stream.add_base_images(images)
        expected = b"2\0alpine:3.19@%s\0busybox@%s\0" % (
            digest("amd64").encode(),
            digest("busybox").encode(),
        )
        self.assertEqual(stream.hexdigest(), hashlib.sha256(expected).hexdigest())

    def test_platforms_are_one_comma_separated_record(self) -> None:
        stream = ContentDigest()
        stream.add_platforms([AMD64, Platform("linux", "arm", "v7")])
        expected = b"platform\0linux/amd64,linux/arm/v7\0"
        self.assertEqual(stream.hexdigest(), hashlib.sha256(expected).hexdigest())

    def test_text_explain_shows_each_pinned_base_image_and_its_platform(self) -> None:
        images = [
            BaseImageDigest("alpine:3.19", digest("amd64"), AMD64),
            BaseImageDigest("busybox@" + digest("busybox"), digest("busybox"), None),
        ]
        lines: list[str] = []
        ContentDigest(TextExplainer(lines.append)).add_base_images(images)
        self.assertEqual(
            lines,
            [
                f"base  alpine:3.19@{digest('amd64')}  (linux/amd64)",
                f"base  busybox@{digest('busybox')}",
            ],
        )
