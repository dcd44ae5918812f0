"""docker build's arguments as the tool reads them, platforms, and the
target platform in the tag (--hash-mode docker, --hash-platform)."""

from __future__ import annotations

import json
import os

from get_docker_image import (
    LINUX,
    Platform,
    build_arg_values,
    build_target,
    parse_platform,
    requested_platforms,
    target_platforms,
)
from tests.fixtures import CTX, DOCKERFILE, FAKE_DOCKER, File, build_tree
from tests.helpers import ScratchDirTestCase, run_main
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
