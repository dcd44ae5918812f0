"""action.yml, run the way a GitHub runner runs a composite action's step:
its environment from the inputs, bash with -e and pipefail, $GITHUB_OUTPUT
a file; and inputs that would break a shell command run nothing."""

from __future__ import annotations

import os
import re
import subprocess
from typing import Any

from tests.fixtures import CTX, DOCKERFILE, FAKE_DOCKER, File, build_tree
from tests.helpers import REPO_DIR, ScratchDirTestCase

ACTION = os.path.join(REPO_DIR, "action.yml")
EXPRESSION = re.compile(r"^\$\{\{ (inputs|steps\.get\.outputs)\.([a-z-]+) \}\}$")


def read_action(path: str = ACTION) -> dict[str, Any]:
    """action.yml as a dict: the subset of YAML it is written in (nested
    block mappings, one list, plain and double-quoted scalars, `|` and `>-`
    block scalars, comments)."""
    with open(path, encoding="utf-8") as file:
        lines = [line.rstrip("\n") for line in file]
    root: dict[str, Any] = {}
    stack: list[tuple[int, Any]] = [(-1, root)]
    index = 0
    while index < len(lines):
        line = lines[index]
        index += 1
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        indent = len(line) - len(line.lstrip())
        text = line.strip()
        while stack[-1][0] >= indent:
            stack.pop()
        parent = stack[-1][1]
        if text.startswith("- "):  # a list item: a mapping starting on this line
            item: dict[str, Any] = {}
            parent.append(item)
            stack.append((indent, item))
            indent, text, parent = indent + 2, text[2:], item
            stack.append((indent - 1, item))
        key, _, value = text.partition(":")
        value = value.strip()
        if value in ("|", ">-"):
            block: list[str] = []
            while index < len(lines) and (
                not lines[index].strip() or len(lines[index]) - len(lines[index].lstrip()) > indent
            ):
                block.append(lines[index][indent + 2 :])
                index += 1
            parent[key] = "\n".join(block) + "\n" if value == "|" else " ".join(block).strip()
        elif value:
            parent[key] = value[1:-1] if value.startswith('"') else value
        else:
            # A mapping or a list: which, the next line tells.
            following = next(line for line in lines[index:] if line.strip())
            child: Any = [] if following.strip().startswith("- ") else {}
            parent[key] = child
            stack.append((indent, child))
    return root


class ActionTest(ScratchDirTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.action = read_action()
        self.step = self.action["runs"]["steps"][0]
        build_tree(self.root, [DOCKERFILE, CTX, File("ctx/app.py", b"print(1)\n")])
        self.output = os.path.join(self.root, "github-output")

    def run_step(self, **inputs: str) -> subprocess.CompletedProcess[str]:
        """The step as a runner runs it: each env entry from its input
        (given, else the input's default), bash -e -o pipefail."""
        values = {name: spec.get("default", "") for name, spec in self.action["inputs"].items()}
        values.update({name.replace("_", "-"): value for name, value in inputs.items()})
        env = dict(os.environ, GITHUB_ACTION_PATH=REPO_DIR, GITHUB_OUTPUT=self.output)
        for variable, expression in self.step["env"].items():
            match = EXPRESSION.match(expression)
            assert match and match.group(1) == "inputs", expression
            env[variable] = values[match.group(2)]
        return subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", self.step["run"]],
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )

    def outputs(self) -> dict[str, str]:
        with open(self.output, encoding="utf-8") as file:
            return dict(line.split("=", 1) for line in file.read().splitlines())

    def test_the_action_is_a_composite_of_one_bash_step(self) -> None:
        self.assertEqual(self.action["runs"]["using"], "composite")
        self.assertEqual(len(self.action["runs"]["steps"]), 1)
        self.assertEqual((self.step["id"], self.step["shell"]), ("get", "bash"))
        self.assertEqual(self.action["inputs"]["repository"]["required"], "true")
        # No input is pasted into the shell text: they come as variables.
        self.assertNotIn("${{", self.step["run"])
        for name, output in self.action["outputs"].items():
            self.assertEqual(output["value"], f"${{{{ steps.get.outputs.{name} }}}}")
        self.assertEqual(list(self.action["outputs"]), ["image", "tag", "result", "seconds"])

    def test_every_input_reaches_the_script(self) -> None:
        used = {EXPRESSION.match(value).group(2) for value in self.step["env"].values()}  # type: ignore[union-attr]
        self.assertEqual(used, set(self.action["inputs"]))

    def test_outputs_of_a_local_build(self) -> None:
        completed = self.run_step(repository="team/app", context="ctx", docker_path=FAKE_DOCKER)
        self.assertEqual(completed.returncode, 0, completed.stderr)
        outputs = self.outputs()
        self.assertEqual(list(outputs), ["image", "tag", "result", "seconds"])
        self.assertEqual(outputs["result"], "built")
        self.assertTrue(outputs["image"].startswith("team/app:image_content_digest_"))
        self.assertEqual(outputs["image"], f"team/app:{outputs['tag']}")
        argv = self.docker_argvs()
        self.assertEqual(argv[-1], ["tag", outputs["image"], "team/app"])

    def test_inputs_that_would_break_a_shell_command_run_nothing(self) -> None:
        marker = os.path.join(self.root, "pwned")
        hostile = f'x"; touch {marker}; echo "$(touch {marker})`touch {marker}`'
        completed = self.run_step(
            repository="team/app",
            context="ctx",
            docker_path=FAKE_DOCKER,
            docker_build_args_not_affecting_image_content=f"--label 'l={hostile}'",
            layer_cache="",
        )
        self.assertEqual(completed.returncode, 0, completed.stderr)
        self.assertFalse(os.path.exists(marker))
        build = next(argv for argv in self.docker_argvs() if argv[0] == "build")
        self.assertIn(f"l={hostile}", build)
        # Refused as values (a name, a path that does not exist), or taken as
        # plain text (a cache directory of that name): never run.
        for name, status in (
            ("repository", 2),
            ("hash_mode", 2),
            ("context", 1),
            ("dockerfile", 1),
            ("image_cache_dir", 0),
        ):
            with self.subTest(name):
                completed = self.run_step(
                    **{"repository": "team/app", "docker_path": FAKE_DOCKER, name: hostile}
                )
                self.assertEqual(completed.returncode, status, completed.stderr)
                self.assertFalse(os.path.exists(marker))

    def test_a_switch_that_is_neither_true_nor_false_is_refused(self) -> None:
        completed = self.run_step(repository="team/app", no_push="$(touch pwned)")
        self.assertEqual(completed.returncode, 2)
        self.assertEqual(
            completed.stderr, "get-docker-image: the input for --no-push must be true or false\n"
        )
        self.assertFalse(os.path.exists("pwned"))
