#!/usr/bin/env -S python3 -S -E
"""A recording stand-in for the docker CLI, for tests (--docker-path).

Every call appends a JSON line to $FAKE_DOCKER_LOG:
{"argv": [...], "DOCKER_CLI_EXPERIMENTAL": value or null, "cwd": "..."}.

Behaviour, from the environment:
- FAKE_DOCKER_HAS_IMAGE=1: `manifest inspect` and `image inspect` succeed;
  otherwise they exit 1, printing $FAKE_DOCKER_PROBE_STDERR (if set) on stderr.
- FAKE_DOCKER_REGISTRY=DIR: a registry with state: `push IMAGE` makes
  `manifest inspect IMAGE` succeed from then on (FAKE_DOCKER_HAS_IMAGE
  still makes every image found).
- FAKE_DOCKER_ENGINE=DIR: an engine with state: `build --tag IMAGE`, `pull IMAGE`,
  `tag IMAGE NAME` and `load --input FILE` (of the names FILE holds, one a line) make
  `image inspect` of those names succeed; `save --output FILE IMAGE` writes IMAGE into
  FILE (refused when the engine lacks it); `rmi IMAGE` forgets it.
- FAKE_DOCKER_FAIL=build,push: those commands print an error and exit 3.
- FAKE_DOCKER_SCRIPT=FILE: a JSON object {command: [answer, ...]} whose
  answers are used, in order, by that command's calls (then the behaviour
  above applies). An answer: {"status": N, "stderr": "...", "stdout": "...",
  "publish": IMAGE (it appears in FAKE_DOCKER_REGISTRY, as if another job
  pushed it), "sleep": seconds}. `manifest` answers only `manifest inspect`.
- FAKE_DOCKER_SLEEP=build: that command writes its pid to $FAKE_DOCKER_PIDFILE
  and sleeps for a minute (for interrupt tests).
"""

import os
import signal
import sys
import time

# json, urllib.parse: imported where used. Half of this program's start-up
# went to importing them (json brings re and enum), and every test that
# runs the tool starts it a few times.


def json_string(text: str) -> str:
    """json.dumps(text) (ASCII, as json.dumps writes it by default)."""
    out = ['"']
    for char in text:
        code = ord(char)
        if char in '"\\':
            out.append("\\" + char)
        elif 0x20 <= code < 0x7F:
            out.append(char)
        elif code > 0xFFFF:  # a surrogate pair, as JSON spells it
            code -= 0x10000
            out.append(f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}")
        else:
            out.append(f"\\u{code:04x}")
    out.append('"')
    return "".join(out)


def quoted(image: str) -> str:
    import urllib.parse  # noqa: PLC0415 (see the imports)

    return urllib.parse.quote(image, safe="")


def registry_path(image: str) -> str:
    return os.path.join(os.environ["FAKE_DOCKER_REGISTRY"], quoted(image))


def engine_path(image: str) -> str:
    return os.path.join(os.environ["FAKE_DOCKER_ENGINE"], quoted(image))


def run_engine(argv: list[str]) -> int | None:
    """The FAKE_DOCKER_ENGINE behaviour of `argv`; None where it has none."""
    command = argv[0]
    made: list[str] = []
    if command == "build":
        made = [argv[argv.index("--tag") + 1]]
    elif command in ("pull", "tag"):
        made = [argv[-1]]
    elif command == "load":
        with open(argv[argv.index("--input") + 1], encoding="utf-8") as archive:
            made = archive.read().split()
        if not made:
            print("Error processing tar file: unexpected EOF", file=sys.stderr)
            return 1
    elif command == "save":
        if not os.path.exists(engine_path(argv[-1])):
            print(
                f"Error response from daemon: reference does not exist: {argv[-1]}", file=sys.stderr
            )
            return 1
        with open(argv[argv.index("--output") + 1], "w", encoding="utf-8") as archive:
            archive.write(argv[-1] + "\n")
        return 0
    elif command == "rmi":
        os.remove(engine_path(argv[-1]))
        return 0
    elif argv[:2] == ["image", "inspect"]:
        return 0 if os.path.exists(engine_path(argv[-1])) else 1
    for image in made:
        with open(engine_path(image), "w", encoding="utf-8"):
            pass
    return 0 if command == "load" else None


def scripted_answer(command: str) -> dict[str, object] | None:
    """The next scripted answer for `command`, if any is left."""
    script_path = os.environ.get("FAKE_DOCKER_SCRIPT")
    if not script_path:
        return None
    import json  # noqa: PLC0415 (see the imports)

    with open(script_path, encoding="utf-8") as file:
        answers = json.load(file).get(command, [])
    counter = f"{script_path}.{command}.count"
    used = os.path.getsize(counter) if os.path.exists(counter) else 0
    if used >= len(answers):
        return None
    with open(counter, "a", encoding="utf-8") as file:
        file.write("x")
    answer: dict[str, object] = answers[used]
    return answer


def main() -> int:
    # Like docker: an interrupt ends it quietly with 130.
    signal.signal(signal.SIGINT, lambda signum, frame: sys.exit(130))
    argv = sys.argv[1:]
    log_path = os.environ.get("FAKE_DOCKER_LOG")
    if log_path:
        experimental = os.environ.get("DOCKER_CLI_EXPERIMENTAL")
        shown = "null" if experimental is None else json_string(experimental)
        record = (
            f'{{"argv": [{", ".join(map(json_string, argv))}], '
            f'"DOCKER_CLI_EXPERIMENTAL": {shown}, "cwd": {json_string(os.getcwd())}}}'
        )
        with open(log_path, "a", encoding="utf-8") as log:
            log.write(record + "\n")

    command = argv[0] if argv else ""
    probing = argv[1:2] == ["inspect"] and command in ("manifest", "image")
    if command in os.environ.get("FAKE_DOCKER_SLEEP", "").split(","):
        with open(os.environ["FAKE_DOCKER_PIDFILE"], "w", encoding="utf-8") as pid_file:
            pid_file.write(str(os.getpid()))
        time.sleep(60)
    answer = scripted_answer(command) if command != "manifest" or probing else None
    if answer is not None:
        time.sleep(float(answer.get("sleep", 0)))  # type: ignore[arg-type]
        if "publish" in answer:
            with open(registry_path(str(answer["publish"])), "w", encoding="utf-8"):
                pass
        print(answer.get("stdout", ""), end="")
        print(answer.get("stderr", ""), end="", file=sys.stderr)
        status: int = answer.get("status", 0)  # type: ignore[assignment]
        return status
    if command in os.environ.get("FAKE_DOCKER_FAIL", "").split(","):
        print(f"fake docker: {command} failed", file=sys.stderr)
        return 3
    if os.environ.get("FAKE_DOCKER_ENGINE") and command:
        engine_status = run_engine(argv)
        if engine_status is not None:
            return engine_status
    registry = os.environ.get("FAKE_DOCKER_REGISTRY")
    if command == "push" and registry:
        with open(registry_path(argv[-1]), "w", encoding="utf-8"):
            pass
    if probing:
        found = os.environ.get("FAKE_DOCKER_HAS_IMAGE") == "1" or (
            command == "manifest" and bool(registry) and os.path.exists(registry_path(argv[-1]))
        )
        if found:
            print("{}")
            return 0
        print(os.environ.get("FAKE_DOCKER_PROBE_STDERR", ""), end="", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
