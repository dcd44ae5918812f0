"""Logging set-up for get_docker_image: timestamped lines on stderr."""

from __future__ import annotations

import logging
import sys

LOG_FORMAT = "%(asctime)s %(name)s [%(levelname)s] - %(message)s"


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever sys.stderr is when a record is emitted.

    Binding the stream once would send output to a stale stream after
    sys.stderr is replaced (tests, embedding programs).
    """

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


def get_logger(name: str) -> logging.Logger:
    """Returns the logger `name`, configuring the root logger on first use.

    Like logging.basicConfig: the root logger gets one stderr handler with
    LOG_FORMAT at DEBUG level, unless a handler is already installed.
    """
    root = logging.getLogger()
    if not root.handlers:
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        root.addHandler(handler)
        root.setLevel(logging.DEBUG)
    return logging.getLogger(name)
