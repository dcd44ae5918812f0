#!/usr/bin/env python3
"""A recording stand-in for the docker CLI, for tests (--docker-path).

Every call appends a JSON line to $FAKE_DOCKER_LOG:
{"argv": [...], "DOCKER_CLI_EXPERIMENTAL": value or null, "cwd": "..."}.

Behaviour, from the environment:
- FAKE_DOCKER_HAS_IMAGE=1: `manifest inspect` and `image inspect` succeed;
  otherwise they exit 1, printing $FAKE_DOCKER_PROBE_STDERR (if set) on stderr.
- FAKE_DOCKER_FAIL=build,push: those commands print an error and exit 3.
- FAKE_DOCKER_SLEEP=build: that command writes its pid to $FAKE_DOCKER_PIDFILE
  and sleeps for a minute (for interrupt tests).
"""

import json
import os
import signal
import sys
import time


def main() -> int:
    # Like docker: an interrupt ends it quietly with 130.
    signal.signal(signal.SIGINT, lambda signum, frame: sys.exit(130))
    argv = sys.argv[1:]
    log_path = os.environ.get("FAKE_DOCKER_LOG")
    if log_path:
        record = {
            "argv": argv,
            "DOCKER_CLI_EXPERIMENTAL": os.environ.get("DOCKER_CLI_EXPERIMENTAL"),
            "cwd": os.getcwd(),
        }
        with open(log_path, "a", encoding="utf-8") as log:
            log.write(json.dumps(record) + "\n")

    command = argv[0] if argv else ""
    if command in os.environ.get("FAKE_DOCKER_SLEEP", "").split(","):
        with open(os.environ["FAKE_DOCKER_PIDFILE"], "w", encoding="utf-8") as pid_file:
            pid_file.write(str(os.getpid()))
        time.sleep(60)
    if command in os.environ.get("FAKE_DOCKER_FAIL", "").split(","):
        print(f"fake docker: {command} failed", file=sys.stderr)
        return 3
    if argv[1:2] == ["inspect"] and command in ("manifest", "image"):
        if os.environ.get("FAKE_DOCKER_HAS_IMAGE") == "1":
            print("{}")
            return 0
        print(os.environ.get("FAKE_DOCKER_PROBE_STDERR", ""), end="", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
