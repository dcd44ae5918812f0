"""The command line with a recording docker: calls, order, output, exit status."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shlex
import signal
import tempfile
import unittest
from unittest import mock

import get_docker_image
from get_docker_image import (
    compute_tag,
    host_name,
    image_name,
    is_registry_host,
    reference_host,
    registry_prefix,
    without_tag,
)
from tests.fixtures import CTX, DOCKERFILE, FAKE_DOCKER, File, build_tree
from tests.helpers import Result, ScratchDirTestCase, redirect_fds, run_main

# What a real docker 28 client printed against a real registry (see the
# end-to-end tests), and what the tool must make of it.
NO_SUCH_MANIFEST = "no such manifest: 127.0.0.1:5000/repo:image_content_digest_0"
CONNECTION_REFUSED = (
    "failed to configure transport: error pinging v2 registry: "
    'Get "https://127.0.0.1:5999/v2/": dial tcp 127.0.0.1:5999: connect: connection refused'
)
NO_SUCH_HOST = (
    "failed to configure transport: error pinging v2 registry: "
    'Get "https://nosuchhost.invalid:5000/v2/": dial tcp: lookup nosuchhost.invalid '
    "on 10.0.0.53:53: no such host"
)
TLS_TIMEOUT = (
    "failed to configure transport: error pinging v2 registry: "
    'Get "https://127.0.0.1:5125/v2/": net/http: TLS handshake timeout'
)
NO_CREDENTIALS = 'Get "http://127.0.0.1:5124/v2/demo/manifests/x": no basic auth credentials'
APP_PY = b"print('hi')\n"
UNAUTHORIZED = "unauthorized: authentication required"
DENIED = "denied: requested access to the resource is denied"


class CliTestCase(ScratchDirTestCase):
    """A Dockerfile beside a context directory `ctx`, and its tag."""

    def setUp(self) -> None:
        super().setUp()
        build_tree(self.root, [DOCKERFILE, CTX, File("ctx/app.py", APP_PY)])
        self.tag = compute_tag("--build-arg V=1", "Dockerfile", "ctx")
        self.image = f"myreg.azurecr.io/team/app:{self.tag}"

    def run_tool(self, *extra: str, registry: str | None = "myreg") -> Result:
        argv = [
            "--dockerfile",
            "Dockerfile",
            "--context",
            "ctx",
            "--docker-build-args",
            "--build-arg V=1",
            "--docker-build-args-not-affecting-image-content",
            "--network host",
            "--repository",
            "team/app",
            "--docker-path",
            FAKE_DOCKER,
            "--retry-delay",
            "0",
            *extra,
        ]
        if registry is not None:
            argv += ["--container-registry", registry]
        return run_main(argv)

    def build_argv(self, image: str) -> list[str]:
        return [
            "build",
            "--pull",
            "--build-arg",
            "V=1",
            "--network",
            "host",
            "--tag",
            image,
            "--file",
            "Dockerfile",
            "ctx",
        ]


class RegistryFlowTest(CliTestCase):
    def test_image_not_in_registry_is_built_pushed_and_tagged(self) -> None:
        self.set_env(FAKE_DOCKER_PROBE_STDERR=NO_SUCH_MANIFEST)
        result = self.run_tool()
        self.assertEqual(result.status, 0)
        self.assertEqual(result.stdout, "")
        self.assertEqual(
            self.docker_calls(),
            [
                {
                    "argv": ["manifest", "inspect", "--insecure", self.image],
                    "DOCKER_CLI_EXPERIMENTAL": "enabled",
                    "cwd": self.root,
                },
                {
                    "argv": self.build_argv(self.image),
                    "DOCKER_CLI_EXPERIMENTAL": None,
                    "cwd": self.root,
                },
                {
                    "argv": ["manifest", "inspect", "--insecure", self.image],
                    "DOCKER_CLI_EXPERIMENTAL": "enabled",
                    "cwd": self.root,
                },
                {"argv": ["push", self.image], "DOCKER_CLI_EXPERIMENTAL": None, "cwd": self.root},
                {
                    "argv": ["tag", self.image, "team/app"],
                    "DOCKER_CLI_EXPERIMENTAL": None,
                    "cwd": self.root,
                },
            ],
        )
        docker = shlex.quote(FAKE_DOCKER)
        running = f"util.run [INFO] - Running subprocess in '{self.root}'"
        completed = "util.run [DEBUG] - Subprocess completed. Return code: {}"
        self.assertEqual(
            result.log_messages(),
            [
                f"get_docker_image [INFO] - Image: {self.image}",
                running,
                f"DOCKER_CLI_EXPERIMENTAL=enabled {docker} manifest inspect --insecure "
                f"{self.image}",
                completed.format(1),
                "get_docker_image [INFO] - Image not found, building and pushing...",
                running,
                f"{docker} build --pull --build-arg V=1 --network host --tag {self.image} "
                "--file Dockerfile ctx",
                completed.format(0),
                running,
                f"DOCKER_CLI_EXPERIMENTAL=enabled {docker} manifest inspect --insecure "
                f"{self.image}",
                completed.format(1),
                running,
                f"{docker} push {self.image}",
                completed.format(0),
                running,
                f"{docker} tag {self.image} team/app",
                completed.format(0),
                f"get_docker_image [INFO] - Built and pushed {self.image} in N s.",
            ],
        )

    def test_image_in_registry_is_pulled_and_tagged(self) -> None:
        self.set_env(FAKE_DOCKER_HAS_IMAGE="1")
        result = self.run_tool()
        self.assertEqual(result.status, 0)
        self.assertEqual(
            self.docker_argvs(),
            [
                ["manifest", "inspect", "--insecure", self.image],
                ["pull", self.image],
                ["tag", self.image, "team/app"],
            ],
        )
        self.assertIn("get_docker_image [INFO] - Image found, pulling...", result.log_messages())
        self.assertEqual(
            result.log_messages()[-1], f"get_docker_image [INFO] - Pulled {self.image} in N s."
        )

    def test_a_failed_step_stops_the_run(self) -> None:
        probe = ["manifest", "inspect", "--insecure", self.image]
        build, push = self.build_argv(self.image), ["push", self.image]
        pull, tag = ["pull", self.image], ["tag", self.image, "team/app"]
        # (docker behaviour, calls made, the one-line error)
        table: list[tuple[dict[str, str], list[list[str]], str]] = [
            (
                {"FAKE_DOCKER_FAIL": "build"},
                [probe, build],
                "docker build failed with exit status 3",
            ),
            (
                {"FAKE_DOCKER_FAIL": "push"},
                [probe, build, probe, push, probe],
                "docker push failed with exit status 3",
            ),
            (
                {"FAKE_DOCKER_HAS_IMAGE": "1", "FAKE_DOCKER_FAIL": "pull"},
                [probe, pull],
                "docker pull failed with exit status 3",
            ),
            (
                {"FAKE_DOCKER_FAIL": "tag"},
                [probe, build, probe, push, tag],
                "docker tag failed with exit status 3",
            ),
        ]
        for env, calls, message in table:
            with self.subTest(env=env):
                self.forget_docker_calls()
                self.set_env(**{"FAKE_DOCKER_HAS_IMAGE": None, **env})
                result = self.run_tool()
                self.assertEqual(result.status, 1)
                self.assertEqual(self.docker_argvs(), calls)
                step = env["FAKE_DOCKER_FAIL"]
                command = shlex.join([FAKE_DOCKER, *calls[-1 if step != "push" else -2]])
                self.assertEqual(
                    result.log_messages()[-1],
                    f"get_docker_image [ERROR] - {message}: fake docker: {step} failed "
                    f"(command: {command})",
                )
                self.assertNotIn("Traceback", result.stderr)
                # Docker's own words reach the user unchanged, on stderr.
                self.assertIn(f"fake docker: {step} failed", result.child_output)

    def test_probe_errors_decide_between_building_and_stopping(self) -> None:
        probe = ["manifest", "inspect", "--insecure", self.image]
        build_push_tag = [
            probe,
            self.build_argv(self.image),
            probe,
            ["push", self.image],
            ["tag", self.image, "team/app"],
        ]
        # (docker's message, exit status, calls, expected fragment of the last log line)
        table: list[tuple[str, int, list[list[str]], str]] = [
            (NO_SUCH_MANIFEST, 0, build_push_tag, "Built and pushed"),
            ("manifest unknown: manifest unknown", 0, build_push_tag, "Built and pushed"),
            ("something new went wrong", 0, build_push_tag, "Built and pushed"),
            ("", 0, build_push_tag, "Built and pushed"),
            (CONNECTION_REFUSED, 1, [probe], "cannot reach registry myreg.azurecr.io: "),
            (NO_SUCH_HOST, 1, [probe], "no such host (is the registry up and reachable?)"),
            (TLS_TIMEOUT, 1, [probe] * 4, "TLS handshake timeout (tried 4 times)"),
            (NO_CREDENTIALS, 1, [probe], "registry myreg.azurecr.io refused our credentials: "),
            (UNAUTHORIZED, 1, [probe], "(are you logged in? docker login myreg.azurecr.io)"),
            (DENIED, 1, [probe], "refused our credentials: denied: requested access"),
        ]
        for message, status, calls, fragment in table:
            with self.subTest(message=message):
                self.forget_docker_calls()
                self.set_env(FAKE_DOCKER_PROBE_STDERR=message)
                result = self.run_tool()
                self.assertEqual(result.status, status)
                self.assertEqual(self.docker_argvs(), calls)
                self.assertIn(fragment, result.log_messages()[-1])

    def test_unrecognised_probe_error_is_logged_as_a_warning(self) -> None:
        self.set_env(FAKE_DOCKER_PROBE_STDERR="something new\nwent wrong\n")
        result = self.run_tool()
        self.assertIn(
            "get_docker_image [WARNING] - Could not tell whether the registry has the image: "
            "something new; went wrong",
            result.log_messages(),
        )

    def test_registry_forms(self) -> None:
        table = [
            ("myreg", f"myreg.azurecr.io/team/app:{self.tag}"),
            ("localhost", f"localhost/team/app:{self.tag}"),
            ("localhost:5000", f"localhost:5000/team/app:{self.tag}"),
            ("127.0.0.1:5000", f"127.0.0.1:5000/team/app:{self.tag}"),
            ("localhost:1", f"localhost:1/team/app:{self.tag}"),
            ("[::1]:65535", f"[::1]:65535/team/app:{self.tag}"),
            ("[::1]", f"[::1]/team/app:{self.tag}"),
            ("ghcr.io/acme", f"ghcr.io/acme/team/app:{self.tag}"),
            ("ghcr.io/acme/", f"ghcr.io/acme/team/app:{self.tag}"),
            (
                "123456789012.dkr.ecr.us-east-1.amazonaws.com",
                f"123456789012.dkr.ecr.us-east-1.amazonaws.com/team/app:{self.tag}",
            ),
            ("acme/tools", f"acme/tools.azurecr.io/team/app:{self.tag}"),
        ]
        for registry, expected in table:
            with self.subTest(registry):
                self.assertEqual(image_name(registry, "team/app", self.tag), expected)
                result = self.run_tool("--print-image-name", registry=registry)
                self.assertEqual((result.status, result.stdout), (0, expected + "\n"))


class LocalModeTest(CliTestCase):
    def test_without_registry_builds_when_the_engine_lacks_the_image(self) -> None:
        image = f"team/app:{self.tag}"
        result = self.run_tool(registry=None)
        self.assertEqual(result.status, 0)
        self.assertEqual(
            self.docker_argvs(),
            [["image", "inspect", image], self.build_argv(image), ["tag", image, "team/app"]],
        )
        self.assertIn(
            "get_docker_image [INFO] - Image not found locally, building...", result.log_messages()
        )

    def test_without_registry_reuses_the_engine_image(self) -> None:
        self.set_env(FAKE_DOCKER_HAS_IMAGE="1")
        image = f"team/app:{self.tag}"
        result = self.run_tool(registry=None)
        self.assertEqual(result.status, 0)
        self.assertEqual(
            self.docker_argvs(), [["image", "inspect", image], ["tag", image, "team/app"]]
        )
        self.assertIn(
            "get_docker_image [INFO] - Image found locally, reusing it.", result.log_messages()
        )
        self.assertEqual(result.child_output, "")  # not the JSON `docker image inspect` printed

    def test_docker_output_goes_to_stderr_leaving_stdout_to_the_tool(self) -> None:
        script = os.path.join(self.root, "script.json")
        with open(script, "w", encoding="utf-8") as file:
            json.dump({"build": [{"stdout": "Step 1/1 : FROM scratch\n"}]}, file)
        self.set_env(FAKE_DOCKER_SCRIPT=script)
        argv = ["--context", "ctx", "--repository", "r", "--docker-path", FAKE_DOCKER]
        with (
            tempfile.TemporaryFile() as stdout,
            tempfile.TemporaryFile() as stderr,
            contextlib.redirect_stderr(io.StringIO()),  # the log
        ):
            with redirect_fds(stdout.fileno(), stderr.fileno()):  # docker's
                self.assertEqual(get_docker_image.main(argv), 0)
            stdout.seek(0)
            stderr.seek(0)
            self.assertEqual((stdout.read(), stderr.read()), (b"", b"Step 1/1 : FROM scratch\n"))

    def test_failed_local_build_is_not_tagged(self) -> None:
        self.set_env(FAKE_DOCKER_FAIL="build")
        image = f"team/app:{self.tag}"
        result = self.run_tool(registry=None)
        self.assertEqual(result.status, 1)
        self.assertEqual(self.docker_argvs(), [["image", "inspect", image], self.build_argv(image)])


class MainOutcomesTest(CliTestCase):
    """How main() ends each way a run can end: the exit status and the one line."""

    def test_each_ending(self) -> None:
        terminated = get_docker_image.Terminated()
        cases: list[tuple[BaseException, int, list[str]]] = [
            (get_docker_image.InputError("no such file: 'x'"), 1, ["ERROR no such file: 'x'"]),
            (get_docker_image.UsageError("50%"), 2, ["ERROR 50%"]),
            (KeyboardInterrupt(), 130, ["ERROR Interrupted."]),
            (terminated, 143, ["ERROR Terminated."]),
            (BrokenPipeError(), 1, []),
            (
                RuntimeError("a bug"),
                1,
                [
                    "ERROR Internal error: RuntimeError('a bug') "
                    "(rerun with --debug for the traceback)"
                ],
            ),
        ]
        sigterm = signal.getsignal(signal.SIGTERM)
        for raised, status, lines in cases:
            with (
                self.subTest(raised=raised),
                mock.patch.object(get_docker_image, "run_action", side_effect=raised),
                mock.patch.object(get_docker_image, "_discard_stdout"),
                self.assertLogs("get_docker_image", "DEBUG") as logs,
            ):
                get_docker_image._log.debug("start")  # assertLogs wants a record
                self.assertEqual(get_docker_image.main(["--repository", "r"]), status)
            logged = [f"{record.levelname} {record.getMessage()}" for record in logs.records]
            self.assertEqual(logged[1:], lines)
            self.assertIs(signal.getsignal(signal.SIGTERM), sigterm)  # put back

    def test_debug_shows_the_traceback_of_an_internal_error(self) -> None:
        with (
            mock.patch.object(get_docker_image, "run_action", side_effect=RuntimeError("a bug")),
            self.assertLogs("get_docker_image", "ERROR") as logs,
        ):
            self.assertEqual(get_docker_image.main(["--repository", "r", "--debug"]), 1)
        [record] = logs.records
        self.assertEqual(record.getMessage(), "Internal error")
        self.assertIsNotNone(record.exc_info)


class PrintModesTest(CliTestCase):
    def test_print_image_name_prints_only_the_name_and_runs_no_docker(self) -> None:
        for registry, expected in (("myreg", self.image), (None, f"team/app:{self.tag}")):
            with self.subTest(registry=registry):
                result = self.run_tool(
                    "--print-image-name", "--docker-path", "/nonexistent", registry=registry
                )
                self.assertEqual(
                    (result.status, result.stdout, result.stderr), (0, expected + "\n", "")
                )
                self.assertEqual(self.docker_calls(), [])

    def test_explain_lists_every_input_in_hash_order(self) -> None:
        build_tree(self.root, [File("ctx/zeta", b"", 0o600), File("ctx/alpha", b"abc", 0o755)])
        os.mkdir("ctx/sub")
        os.chmod("ctx/sub", 0o750)
        os.symlink("../missing", "ctx/sub/dangling")
        result = self.run_tool("--explain")
        name = self.run_tool("--print-image-name").stdout.strip()

        def sha(data: bytes) -> str:
            return hashlib.sha256(data).hexdigest()

        self.assertEqual(result.status, 0)
        self.assertEqual(
            result.stdout.splitlines(),
            [
                'args  "--build-arg V=1"',
                f"file  100644 (33188)           25  {sha(DOCKERFILE.data)}  Dockerfile",
                f"dir    40755 (16877)            -  {'-':<64}  ctx",
                f"file  100755 (33261)            3  {sha(b'abc')}  ctx/alpha",
                f"file  100644 (33188)           12  {sha(APP_PY)}  ctx/app.py",
                f"file  100600 (33152)            0  {sha(b'')}  ctx/zeta",
                f"dir    40750 (16872)            -  {'-':<64}  ctx/sub",
                f"link  120777 (41471)           10  {sha(b'../missing')}  "
                "ctx/sub/dangling -> ../missing",
                f"image  {name}",
            ],
        )
        self.assertEqual(result.stderr, "")

    def test_explain_escapes_what_would_break_a_line(self) -> None:
        os.mkdir(b"ctx/new\nline\xff\\")
        os.chmod(b"ctx/new\nline\xff\\", 0o755)
        result = self.run_tool("--explain", "--docker-build-args", 'A="x"\t')
        lines = result.stdout.splitlines()
        self.assertEqual(lines[0], 'args  "A="x"\\t"')
        self.assertTrue(lines[-2].endswith("  ctx/new\\nline\\xff\\\\"), lines[-2])


class NamesTableTest(unittest.TestCase):
    """The small functions that take image names apart, on a golden table."""

    def test_hosts_references_and_prefixes(self) -> None:
        table = [
            # (reference, reference_host, without_tag)
            ("team/app", "docker.io", "team/app"),
            ("team/app:1", "docker.io", "team/app"),
            ("team/sub.x/app:1", "docker.io", "team/sub.x/app"),
            ("myreg/x.y", "docker.io", "myreg/x.y"),
            ("r.example/team/app:1", "r.example", "r.example/team/app"),
            ("localhost/app", "localhost", "localhost/app"),
            ("localhost:5000/team/app", "localhost:5000", "localhost:5000/team/app"),
            ("localhost:5000/team/app:1", "localhost:5000", "localhost:5000/team/app"),
            ("[::1]:5000/app:1", "[::1]:5000", "[::1]:5000/app"),
        ]
        self.assertEqual(
            [(ref, reference_host(ref), without_tag(ref)) for ref, _, _ in table], table
        )
        hosts = [
            ("r.example", "r.example"),
            ("r.example:5000", "r.example"),
            ("r.example:abc", "r.example:abc"),
            ("1234", "1234"),
            ("[::1]:5000", "::1"),
            ("[::1]", "::1"),
            ("[fd00::12]:443", "fd00::12"),
        ]
        self.assertEqual([(host, host_name(host)) for host, _ in hosts], hosts)
        prefixes = [
            ("myreg", "myreg.azurecr.io"),
            ("ghcr.io/acme/", "ghcr.io/acme"),
            ("r.example.X", "r.example.X"),
            ("localhost:5000", "localhost:5000"),
        ]
        self.assertEqual([(name, registry_prefix(name)) for name, _ in prefixes], prefixes)
        self.assertEqual(
            [is_registry_host(name) for name in ("team/sub.x/app", "myreg/x.y", "a:1/b")],
            [False, False, True],
        )
