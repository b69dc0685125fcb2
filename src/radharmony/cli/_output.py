"""What the command line prints besides results: log messages, warnings and progress.

``-q/--quiet`` and ``-v/--verbose`` are accepted by every command (before or after its name).
Log records of the ``radharmony`` logger go to stderr as plain lines; warnings raised while a
command runs are printed once each as ``warning: <message>``, without Python's source lines.
Library use is unaffected: handlers and warning hooks are installed only while a command runs.
"""

from __future__ import annotations

import argparse
import logging
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO

from radharmony._progress import LOGGER_NAME


def add_output_options(parser: argparse.ArgumentParser, *, top_level: bool) -> None:
    """Add ``--quiet`` and ``--verbose`` to a parser.

    On sub-commands the defaults are suppressed so that a flag given before the command name
    is not reset by the sub-parser.
    """
    default: dict[str, Any] = {} if top_level else {"default": argparse.SUPPRESS}
    parser.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="no progress bars or step messages (warnings and errors are still printed)",
        **({"default": False} if top_level else default),
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        help="more log messages (-v: steps and cache use, -vv: debugging detail)",
        **({"default": 0} if top_level else default),
    )


def verbose_of(args: argparse.Namespace) -> int:
    """The library ``verbose`` value for a command: 0 with ``--quiet``, otherwise 1 (bars)."""
    return 0 if getattr(args, "quiet", False) else 1


def log_level_of(args: argparse.Namespace) -> int:
    """Level of the ``radharmony`` logger for a command's flags."""
    if getattr(args, "quiet", False):
        return logging.ERROR
    return {0: logging.WARNING, 1: logging.INFO}.get(getattr(args, "verbose", 0), logging.DEBUG)


@contextmanager
def command_output(args: argparse.Namespace, stream: TextIO | None = None) -> Iterator[None]:
    """Route log records and warnings of one command to ``stream`` (stderr) as plain lines."""
    target = sys.stderr if stream is None else stream
    logger = logging.getLogger(LOGGER_NAME)
    handler = logging.StreamHandler(target)
    handler.setFormatter(logging.Formatter("%(message)s"))
    level_before = logger.level
    logger.addHandler(handler)
    logger.setLevel(log_level_of(args))
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _once_per_message(target)
            yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level_before)


def _once_per_message(stream: TextIO) -> Any:
    # The same warning can be raised from several call sites (e.g. the volume check of the
    # cross-validation and of the leave-one-scanner-out run): one line is enough.
    seen: set[tuple[str, str]] = set()

    def show(
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: TextIO | None = None,
        line: str | None = None,
    ) -> None:
        text = " ".join(str(message).split())
        key = (category.__name__, text)
        if key in seen:
            return
        seen.add(key)
        print(f"warning: {text}", file=stream if file is None else file)

    return show
