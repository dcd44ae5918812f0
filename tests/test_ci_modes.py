"""Where CI really runs, with a recording docker: read-only registries
(--no-push), a cache directory (--image-cache-dir), step outputs
(--output-file), the closing line, and log folding."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import cast
from unittest import mock

from get_docker_image import Docker, ImageCache, Outcome, StepFailed
from tests.helpers import Result, ScratchDirTestCase
from tests.test_cli import CONNECTION_REFUSED, DENIED, NO_SUCH_MANIFEST
from tests.test_resilience import ResilienceTestCase

REFUSED_PUSH = "denied: requested access to the resource is denied"


class NoPushTest(ResilienceTestCase):
    def test_a_hit_is_pulled(self) -> None:
        self.set_env(FAKE_DOCKER_HAS_IMAGE="1")
        result = self.run_tool("--no-push")
        self.assertEqual(result.status, 0, result.stderr)
        self.assertEqual(self.docker_argvs(), [self.probe, self.pull, self.tag_argv])
        self.assertEqual(
            result.log_messages()[-1], f"get_docker_image [INFO] - Pulled {self.image} in N s."
        )

    def test_a_miss_is_built_and_kept_without_a_recheck_or_a_push(self) -> None:
        result = self.run_tool("--no-push")
        self.assertEqual(result.status, 0, result.stderr)
        self.assertEqual(self.docker_argvs(), [self.probe, self.build, self.tag_argv])
        self.assert_messages_include(
            result,
            "get_docker_image [INFO] - Image not found, building (not pushing: --no-push)...",
            "get_docker_image [INFO] - Not pushing the image (--no-push).",
        )
        self.assertEqual(
            result.log_messages()[-1],
            f"get_docker_image [INFO] - Built {self.image} in N s (not pushed: --no-push).",
        )

    def test_an_unusable_registry_is_a_warning_and_a_local_build(self) -> None:
        for said, problem in (
            (CONNECTION_REFUSED, "cannot reach registry myreg.azurecr.io: "),
            (DENIED, "registry myreg.azurecr.io refused our credentials: "),
        ):
            with self.subTest(said):
                self.forget_docker_calls()
                self.set_env(FAKE_DOCKER_PROBE_STDERR=said)
                result = self.run_tool("--no-push", "--layer-cache")
                self.assertEqual(result.status, 0, result.stderr)
                # No layer cache pull either: the registry is not to be asked again.
                self.assertEqual(self.docker_argvs(), [self.probe, self.build, self.tag_argv])
                warnings = [line for line in result.log_messages() if "[WARNING]" in line]
                self.assertEqual(len(warnings), 1, warnings)
                self.assertIn(problem, warnings[0])
                self.assertTrue(warnings[0].endswith("; building locally (--no-push)."))
                self.assertEqual(
                    result.log_messages()[-1],
                    f"get_docker_image [INFO] - Built {self.image} in N s (not pushed: "
                    "--no-push, and the registry could not be used).",
                )

    def test_the_layer_cache_is_pulled_but_never_moved(self) -> None:
        cache = self.image.rsplit(":", 1)[0] + ":latest"
        result = self.run_tool("--no-push", "--layer-cache")
        self.assertEqual(result.status, 0, result.stderr)
        build = self.build_argv(self.image)
        build[2:2] = ["--cache-from", cache, "--build-arg", "BUILDKIT_INLINE_CACHE=1"]
        self.assertEqual(self.docker_argvs(), [self.probe, ["pull", cache], build, self.tag_argv])

    def test_needs_a_registry(self) -> None:
        result = self.run_tool("--no-push", registry=None)
        self.assertEqual(result.status, 2)
        self.assertIn("--no-push needs --container-registry", result.stderr)
        self.assertEqual(self.docker_calls(), [])


class ImageCacheTest(ResilienceTestCase):
    """--image-cache-dir, with a recording docker that keeps an engine's
    images in a directory (so that a test can empty it: a fresh runner)."""

    def setUp(self) -> None:
        super().setUp()
        self.engine = os.path.join(self.root, "engine")
        os.mkdir(self.engine)
        self.set_env(FAKE_DOCKER_ENGINE=self.engine)
        self.cache = os.path.join(self.root, "cache")
        self.local_image = f"team/app:{self.tag}"
        self.archive = os.path.join(self.cache, f"team+app@{self.tag}.tar")

    def fresh_runner(self) -> None:
        for name in os.listdir(self.engine):
            os.remove(os.path.join(self.engine, name))
        self.forget_docker_calls()

    def run_local(self, *options: str) -> Result:
        return self.run_tool("--image-cache-dir", self.cache, *options, registry=None)

    def test_a_fresh_runner_loads_what_the_last_run_saved(self) -> None:
        image = self.local_image
        first = self.run_tool("--image-cache-dir", self.cache, registry=None)
        self.assertEqual(first.status, 0, first.stderr)
        inspect, save = ["image", "inspect", image], ["save", "--output", self.partial(), image]
        self.assertEqual(
            self.docker_argvs(), [inspect, self.build_argv(image), save, ["tag", image, "team/app"]]
        )
        self.assertEqual(os.listdir(self.cache), [os.path.basename(self.archive)])

        self.fresh_runner()
        second = self.run_tool("--image-cache-dir", self.cache, registry=None)
        self.assertEqual(second.status, 0, second.stderr)
        load = ["load", "--input", self.archive]
        self.assertEqual(self.docker_argvs(), [inspect, load, inspect, ["tag", image, "team/app"]])
        messages = second.log_messages()
        size = len(image) + 1  # what the recording docker saves: the name, a line
        self.assertIn(
            f"get_docker_image [INFO] - Loading the image from {self.archive!r} ({size} bytes)...",
            messages,
        )
        self.assertEqual(
            messages[-1],
            f"get_docker_image [INFO] - Loaded {image} in N s (from {self.cache}).",
        )

    def test_an_engine_that_has_the_image_saves_it_if_the_cache_lacks_it(self) -> None:
        self.run_local()
        os.remove(self.archive)
        self.forget_docker_calls()
        result = self.run_local()
        self.assertEqual(result.status, 0, result.stderr)
        image = self.local_image
        self.assertEqual(
            self.docker_argvs(),
            [
                ["image", "inspect", image],
                ["save", "--output", self.partial(), image],
                ["tag", image, "team/app"],
            ],
        )
        self.assertTrue(os.path.exists(self.archive))

    def test_older_archives_of_the_repository_are_removed_others_kept(self) -> None:
        os.mkdir(self.cache)
        for name in ("team+app@image_content_digest_old.tar", "other@image_content_digest_x.tar"):
            with open(os.path.join(self.cache, name), "w", encoding="utf-8") as file:
                file.write("x\n")
        # What a killed run left: its partial directory, with docker's own temporary file.
        stale = os.path.join(self.cache, ".team+app@image_content_digest_old.tar.1.partial")
        os.mkdir(stale)
        with open(os.path.join(stale, ".docker_temp_123"), "w", encoding="utf-8") as file:
            file.write("half")
        result = self.run_local()
        self.assertEqual(result.status, 0, result.stderr)
        self.assertEqual(
            sorted(os.listdir(self.cache)),
            ["other@image_content_digest_x.tar", os.path.basename(self.archive)],
        )
        self.assert_messages_include(
            result,
            "get_docker_image [INFO] - Removed team+app@image_content_digest_old.tar "
            "from the image cache.",
        )

    def test_a_corrupt_archive_is_a_warning_removed_and_the_image_built(self) -> None:
        os.mkdir(self.cache)
        for content in ("", "some/other:image\n"):
            with self.subTest(content=content):
                with open(self.archive, "w", encoding="utf-8") as file:
                    file.write(content)
                self.fresh_runner()
                result = self.run_local()
                self.assertEqual(result.status, 0, result.stderr)
                calls = self.docker_argvs()
                self.assertIn(["load", "--input", self.archive], calls)
                self.assertIn(self.build_argv(self.local_image), calls)
                warnings = [line for line in result.log_messages() if "[WARNING]" in line]
                self.assertEqual(len(warnings), 1, warnings)
                self.assertIn(f"Cannot load {os.path.basename(self.archive)}: ", warnings[0])
                self.assertTrue(warnings[0].endswith("; removing it, and getting the image."))
                # Saved again, whole.
                with open(self.archive, encoding="utf-8") as file:
                    self.assertEqual(file.read(), self.local_image + "\n")

    def test_a_failed_save_leaves_no_archive_behind(self) -> None:
        self.set_env(FAKE_DOCKER_FAIL="save")
        result = self.run_local()
        self.assertEqual(result.status, 0, result.stderr)
        self.assertEqual(os.listdir(self.cache), [])
        self.assert_messages_include(
            result,
            "get_docker_image [WARNING] - Could not save the image into the image cache: "
            f"docker save failed with exit status 3: fake docker: save failed (command: "
            f"{self.fake_docker()} save --output {self.partial()} {self.local_image})",
        )

    def test_with_no_push_the_cache_is_asked_before_the_registry(self) -> None:
        self.run_tool("--no-push", "--image-cache-dir", self.cache)
        self.fresh_runner()
        result = self.run_tool("--no-push", "--image-cache-dir", self.cache)
        self.assertEqual(result.status, 0, result.stderr)
        inspect = ["image", "inspect", self.image]
        self.assertEqual(
            self.docker_argvs(),
            [inspect, ["load", "--input", self.registry_archive()], inspect, self.tag_argv],
        )

    def test_needs_local_mode_or_no_push(self) -> None:
        result = self.run_tool("--image-cache-dir", self.cache)
        self.assertEqual(result.status, 2)
        self.assertIn("--image-cache-dir needs local-only mode or --no-push", result.stderr)

    def partial(self) -> str:
        """Where docker save writes: in a directory of the tool's, until whole."""
        name = os.path.basename(self.archive)
        return os.path.join(self.cache, f".{name}.{os.getpid()}.partial", name)

    def registry_archive(self) -> str:
        return os.path.join(self.cache, f"team+app@{self.tag}.tar")

    def fake_docker(self) -> str:
        from tests.fixtures import FAKE_DOCKER  # noqa: PLC0415

        return FAKE_DOCKER


class OutputFileTest(ResilienceTestCase):
    def outputs(self, *options: str, registry: str | None = "myreg") -> dict[str, str]:
        path = os.path.join(self.root, "github-output")
        if os.path.exists(path):
            os.remove(path)
        result = self.run_tool("--output-file", path, *options, registry=registry)
        self.assertEqual(result.status, 0, result.stderr)
        with open(path, encoding="utf-8") as file:
            lines = file.read().splitlines()
        pairs = dict(line.split("=", 1) for line in lines)
        self.assertEqual(list(pairs), ["image", "tag", "result", "seconds"][: len(pairs)])
        self.assertEqual(len(pairs), len(lines))
        return pairs

    def test_each_result(self) -> None:
        local = f"team/app:{self.tag}"
        cases: list[tuple[str, dict[str, str], tuple[str, ...], str | None, str]] = [
            ("pushed", {}, (), "myreg", self.image),
            ("pulled", {"FAKE_DOCKER_HAS_IMAGE": "1"}, (), "myreg", self.image),
            ("built", {}, ("--no-push",), "myreg", self.image),
            ("built", {}, (), None, local),
            ("reused", {"FAKE_DOCKER_HAS_IMAGE": "1"}, (), None, local),
        ]
        for expected, env, options, registry, image in cases:
            with self.subTest(expected, options=options, registry=registry):
                self.empty_registry()
                self.set_env(**{"FAKE_DOCKER_HAS_IMAGE": None, **env})
                pairs = self.outputs(*options, registry=registry)
                self.assertEqual(pairs["result"], expected)
                self.assertEqual((pairs["image"], pairs["tag"]), (image, self.tag))
                self.assertRegex(pairs["seconds"], r"^\d+\.\d$")
                self.assertLess(float(pairs["seconds"]), 60)  # the run's, not a clock's reading

    def test_taken_from_another_job(self) -> None:
        self.script(build=[{"publish": self.image}])
        self.assertEqual(self.outputs()["result"], "taken-from-another-job")

    def test_loaded(self) -> None:
        engine = os.path.join(self.root, "engine")
        os.mkdir(engine)
        self.set_env(FAKE_DOCKER_ENGINE=engine)
        cache = os.path.join(self.root, "cache")
        self.outputs("--image-cache-dir", cache, registry=None)
        for name in os.listdir(engine):
            os.remove(os.path.join(engine, name))
        self.assertEqual(
            self.outputs("--image-cache-dir", cache, registry=None)["result"], "loaded"
        )

    def test_print_image_name_writes_the_name_only(self) -> None:
        pairs = self.outputs("--print-image-name")
        self.assertEqual(pairs, {"image": self.image, "tag": self.tag})
        self.assertEqual(self.docker_calls(), [])

    def test_appends_and_reports_a_file_it_cannot_write(self) -> None:
        path = os.path.join(self.root, "out")
        with open(path, "w", encoding="utf-8") as file:
            file.write("before=1\n")
        self.run_tool("--output-file", path, "--print-image-name")
        with open(path, encoding="utf-8") as file:
            self.assertEqual(file.read().splitlines()[0], "before=1")
        result = self.run_tool("--output-file", self.root, "--print-image-name")
        self.assertEqual(result.status, 1)
        self.assertEqual(
            result.log_messages()[-1],
            f"get_docker_image [ERROR] - cannot write --output-file {self.root!r}: Is a directory",
        )

    def test_nothing_is_written_when_the_run_fails(self) -> None:
        path = os.path.join(self.root, "out")
        self.set_env(FAKE_DOCKER_FAIL="build")
        self.assertEqual(self.run_tool("--output-file", path).status, 1)
        self.assertFalse(os.path.exists(path))


class LogGroupTest(ResilienceTestCase):
    def test_docker_output_is_folded_under_github_actions_and_azure_pipelines(self) -> None:
        for env, start, end in (
            ({"GITHUB_ACTIONS": "true"}, "::group::", "::endgroup::"),
            ({"TF_BUILD": "True"}, "##[group]", "##[endgroup]"),
        ):
            with self.subTest(env):
                self.empty_registry()
                self.set_env(**{"GITHUB_ACTIONS": None, "TF_BUILD": None, **env})
                result = self.run_tool()
                self.assertEqual(result.status, 0, result.stderr)
                markers = [
                    line for line in result.stderr.splitlines() if line.startswith((start, end))
                ]
                self.assertEqual(
                    markers,
                    [
                        f"{start}docker build {self.image}",
                        end,
                        f"{start}docker push {self.image}",
                        end,
                    ],
                )

    def test_nothing_is_folded_elsewhere(self) -> None:
        self.set_env(GITHUB_ACTIONS=None, TF_BUILD=None)
        result = self.run_tool()
        self.assertNotIn("group", result.stderr)

    def test_a_failed_step_still_closes_its_group(self) -> None:
        self.set_env(GITHUB_ACTIONS="true", FAKE_DOCKER_FAIL="build")
        result = self.run_tool()
        self.assertEqual(result.status, 1)
        lines = result.stderr.splitlines()
        self.assertEqual(lines.count("::endgroup::"), 1)
        self.assertIn("[ERROR]", lines[-1])


class ClosingLineTest(ResilienceTestCase):
    def test_taken_and_reused(self) -> None:
        self.script(build=[{"publish": self.image}])
        result = self.run_tool()
        self.assertEqual(
            result.log_messages()[-1],
            f"get_docker_image [INFO] - Took {self.image} from another job in N s.",
        )
        self.set_env(FAKE_DOCKER_HAS_IMAGE="1", FAKE_DOCKER_SCRIPT=None)
        result = self.run_tool(registry=None)
        self.assertEqual(
            result.log_messages()[-1],
            f"get_docker_image [INFO] - Reused team/app:{self.tag}, which the engine had, in N s.",
        )
        self.set_env(FAKE_DOCKER_HAS_IMAGE=None, FAKE_DOCKER_PROBE_STDERR=NO_SUCH_MANIFEST)


class _StubDocker:
    """The two steps ImageCache asks of docker, recorded; `fail` makes
    `docker.step` fail, `loaded` is what `image inspect` answers."""

    def __init__(self, fail: bool = False, loaded: bool = True) -> None:
        self.calls: list[tuple[tuple[str, ...], str | None]] = []
        self.fail, self.loaded = fail, loaded

    def step(self, *args: str, title: str | None = None) -> None:
        self.calls.append((args, title))
        if self.fail:
            raise StepFailed(f"docker {args[0]} failed", Outcome.UNKNOWN)
        if args[0] == "save":
            with open(args[2], "w", encoding="utf-8") as file:
                file.write("x" * 2500)

    def local_image_exists(self, image: str) -> bool:
        self.calls.append((("image", "inspect", image), None))
        return self.loaded


class ImageCacheUnitTest(ScratchDirTestCase):
    """ImageCache's own steps and exact log lines, with a stub docker and a
    clock that moves as the test says."""

    IMAGE = "localhost:5000/team/app:image_content_digest_abc"
    NAME = "team+app@image_content_digest_abc.tar"

    def setUp(self) -> None:
        super().setUp()
        self.cache_dir = os.path.join(self.root, "cache")
        os.mkdir(self.cache_dir)
        self.archive = os.path.join(self.cache_dir, self.NAME)

    def cache(self, directory: str | None = None) -> ImageCache:
        return ImageCache(directory or self.cache_dir, "team/app", self.IMAGE)

    def run_step(
        self, step: Callable[[Docker], object], docker: _StubDocker, clock: Sequence[float] = ()
    ) -> tuple[object, list[str]]:
        """`step`'s result and every log line it wrote (at least one)."""
        with (
            mock.patch("get_docker_image.time.monotonic", side_effect=list(clock)),
            self.assertLogs("get_docker_image", "INFO") as logs,
        ):
            result = step(cast(Docker, docker))
        return result, logs.output

    def write_archive(self, content: str) -> None:
        with open(self.archive, "w", encoding="utf-8") as file:
            file.write(content)

    def test_the_archive_is_named_after_the_repository_and_the_tag_alone(self) -> None:
        cache = self.cache()
        self.assertEqual((cache.name, cache.path), (self.NAME, self.archive))

    def test_a_load_logs_its_size_time_and_speed(self) -> None:
        self.write_archive("x" * 2500)
        docker = _StubDocker()
        loaded, logs = self.run_step(lambda d: self.cache().load(d, self.IMAGE), docker, [10, 12])
        self.assertIs(loaded, True)
        self.assertEqual(
            docker.calls,
            [
                (("load", "--input", self.archive), f"docker load {self.NAME}"),
                (("image", "inspect", self.IMAGE), None),
            ],
        )
        self.assertEqual(
            logs,
            [
                f"INFO:get_docker_image:Loading the image from {self.archive!r} (2.5 kB)...",
                "INFO:get_docker_image:Loaded 2.5 kB in 2.0 s (1.2 kB/s).",
            ],
        )

    def test_a_load_that_took_no_time_has_a_bounded_speed(self) -> None:
        self.write_archive("x" * 2)
        _, logs = self.run_step(lambda d: self.cache().load(d, self.IMAGE), _StubDocker(), [5, 5])
        self.assertEqual(logs[-1], "INFO:get_docker_image:Loaded 2 bytes in 0.0 s (2.0 kB/s).")

    def test_no_archive_is_said_and_nothing_loaded(self) -> None:
        docker = _StubDocker()
        loaded, logs = self.run_step(lambda d: self.cache().load(d, self.IMAGE), docker)
        self.assertIs(loaded, False)
        self.assertEqual(docker.calls, [])
        self.assertEqual(
            logs, [f"INFO:get_docker_image:The image cache {self.cache_dir!r} has no {self.NAME}."]
        )

    def test_an_unreadable_cache_is_a_warning(self) -> None:
        not_a_dir = os.path.join(self.root, "file")
        with open(not_a_dir, "w", encoding="utf-8"):
            pass
        docker = _StubDocker()
        cache = self.cache(not_a_dir)
        loaded, logs = self.run_step(lambda d: cache.load(d, self.IMAGE), docker)
        self.assertIs(loaded, False)
        self.assertEqual(docker.calls, [])
        path = os.path.join(not_a_dir, self.NAME)
        self.assertEqual(
            logs,
            [
                "WARNING:get_docker_image:Cannot use the image cache: "
                f"cannot read file {path!r}: Not a directory"
            ],
        )

    def test_a_failed_or_wrong_load_is_a_warning_and_the_archive_removed(self) -> None:
        cases = {
            "docker load failed": _StubDocker(fail=True),
            f"it does not hold {self.IMAGE}": _StubDocker(loaded=False),
        }
        for why, docker in cases.items():
            with self.subTest(why):
                self.write_archive("x")
                loaded, logs = self.run_step(
                    lambda d: self.cache().load(d, self.IMAGE), docker, [1]
                )
                self.assertIs(loaded, False)
                self.assertEqual(
                    logs[1:],
                    [
                        f"WARNING:get_docker_image:Cannot load {self.NAME}: {why}; "
                        "removing it, and getting the image."
                    ],
                )
                self.assertEqual(os.listdir(self.cache_dir), [])

    def test_an_archive_that_cannot_be_removed_is_a_second_warning(self) -> None:
        os.mkdir(self.archive)  # os.remove refuses a directory
        _, logs = self.run_step(
            lambda d: self.cache().load(d, self.IMAGE), _StubDocker(fail=True), [1]
        )
        self.assertEqual(
            logs[1:],
            [
                f"WARNING:get_docker_image:Cannot load {self.NAME}: docker load failed; "
                "removing it, and getting the image.",
                f"WARNING:get_docker_image:Cannot remove {self.archive!r}: Is a directory",
            ],
        )

    def test_a_save_logs_its_size_and_time_and_removes_older_archives(self) -> None:
        older = [
            "team+app@image_content_digest_old.tar",
            "team+app@image_content_digest_dir.tar",  # a directory: os.remove refuses it
            ".team+app@image_content_digest_old.tar.7.partial",  # a file: rmtree refuses it
        ]
        kept = ["other@image_content_digest_x.tar", ".other@x.tar.7.partial"]
        for name in [older[0], older[2], *kept]:
            with open(os.path.join(self.cache_dir, name), "w", encoding="utf-8"):
                pass
        os.mkdir(os.path.join(self.cache_dir, older[1]))
        docker = _StubDocker()
        _, logs = self.run_step(lambda d: self.cache().save(d, self.IMAGE), docker, [3, 4.5])
        partial = os.path.join(self.cache_dir, f".{self.NAME}.{os.getpid()}.partial")
        save = ("save", "--output", os.path.join(partial, self.NAME), self.IMAGE)
        self.assertEqual(docker.calls, [(save, None)])
        self.assertEqual(
            logs[0],
            f"INFO:get_docker_image:Saved the image into {self.archive!r} (2.5 kB) in 1.5 s.",
        )
        self.assertEqual(  # in the directory's order
            sorted(logs[1:]),
            [
                "INFO:get_docker_image:Removed team+app@image_content_digest_old.tar "
                "from the image cache.",
                "WARNING:get_docker_image:Cannot remove team+app@image_content_digest_dir.tar: "
                "Is a directory",
            ],
        )
        self.assertEqual(
            sorted(os.listdir(self.cache_dir)), sorted([self.NAME, older[1], older[2], *kept])
        )

    def test_a_save_that_cannot_make_its_partial_directory_is_a_warning(self) -> None:
        not_a_dir = os.path.join(self.root, "file")
        with open(not_a_dir, "w", encoding="utf-8"):
            pass
        docker = _StubDocker()
        cache = self.cache(not_a_dir)
        _, logs = self.run_step(lambda d: cache.save(d, self.IMAGE), docker, [1])
        partial = os.path.join(not_a_dir, f".{self.NAME}.{os.getpid()}.partial")
        self.assertEqual(docker.calls, [])
        self.assertEqual(
            logs,
            [
                "WARNING:get_docker_image:Could not save the image into the image cache: "
                f"[Errno 20] Not a directory: {partial!r}"
            ],
        )

    def test_a_save_of_an_archive_already_there_does_nothing(self) -> None:
        self.write_archive("x")
        docker = _StubDocker()
        with mock.patch("get_docker_image.time.monotonic", side_effect=[]):
            self.cache().save(cast(Docker, docker), self.IMAGE)
        self.assertEqual(docker.calls, [])
