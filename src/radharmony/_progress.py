"""Progress bars, verbosity and logging conventions shared by every stage.

Every long public step takes ``verbose``: ``0`` (or False) is silent, ``1`` (or True) shows
progress bars, and ``None`` (the default) shows them where the step is long enough to need one
(per-case stages: 10 cases or more; model steps: always). Messages go through the standard
:mod:`logging` module under the ``radharmony`` logger; the package itself only attaches a
:class:`logging.NullHandler`, the command line attaches a real handler.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

LOGGER_NAME = "radharmony"
T = TypeVar("T")

#: Accepted values of every public ``verbose`` parameter.
Verbose = bool | int | None


def get_logger(name: str = LOGGER_NAME) -> logging.Logger:
    """Return the ``radharmony`` logger or one of its children (``radharmony.<stage>``)."""
    if name != LOGGER_NAME and not name.startswith(LOGGER_NAME + "."):
        name = f"{LOGGER_NAME}.{name}"
    return logging.getLogger(name)


def resolve_verbose(verbose: Verbose = None, progress: bool | None = None) -> int | None:
    """Merge ``verbose`` with the older ``progress`` flag into one level (None: automatic).

    ``progress`` is accepted where functions had it before ``verbose`` existed; an explicit
    ``verbose`` wins.
    """
    if verbose is not None:
        return int(verbose)
    if progress is not None:
        return int(bool(progress))
    return None


def shows_progress(verbose: Verbose, total: int, *, automatic_from: int = 1) -> bool:
    """Whether a bar over ``total`` items is shown at this verbosity."""
    if verbose is None:
        return total >= automatic_from
    return int(verbose) > 0


def _in_notebook() -> bool:
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    try:
        shell = ipython.get_ipython()
        return shell is not None and "IPKernelApp" in shell.config
    except Exception:  # an IPython without a kernel, or a broken shell: use the text bar
        return False


def _has_ipywidgets() -> bool:
    try:
        return importlib.util.find_spec("ipywidgets") is not None
    except (ImportError, ValueError):  # a broken or blocked installation counts as absent
        return False


def tqdm_class() -> Any:
    """The tqdm class for this front end.

    The notebook widget needs ipywidgets; without it tqdm's own automatic choice warns
    ("IProgress not found") and shows nothing useful, so the plain text bar is used instead.
    """
    if _in_notebook() and _has_ipywidgets():
        from tqdm.notebook import tqdm as notebook_tqdm

        return notebook_tqdm
    from tqdm.std import tqdm as text_tqdm

    return text_tqdm


def progress_bar(
    iterable: Iterable[T],
    *,
    total: int | None = None,
    description: str,
    verbose: Verbose = None,
    unit: str = "it",
    automatic_from: int = 1,
) -> Iterator[T]:
    """Iterate over ``iterable``, with a bar when ``verbose`` asks for one."""
    if total is None:
        try:
            total = len(iterable)  # type: ignore[arg-type]
        except TypeError:
            total = 0
    if not shows_progress(verbose, total, automatic_from=automatic_from):
        yield from iterable
        return
    with tqdm_class()(total=total, desc=description, unit=unit) as bar:
        for item in iterable:
            yield item
            bar.update(1)


@contextmanager
def scoped_logger_level(name: str, level: int) -> Iterator[None]:
    """Set a library's logger level while a block runs and restore the caller's level after.

    Used around calls into pyradiomics, which logs every feature class at INFO/WARNING: our
    calls are quiet without changing what the user configured for that logger.
    """
    logger = logging.getLogger(name)
    before = logger.level
    logger.setLevel(level)
    try:
        yield
    finally:
        logger.setLevel(before)
