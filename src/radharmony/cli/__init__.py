"""Command-line interface: ``radharmony <command> ...``.

Each command lives in its own module of this package and exposes ``register(subparsers)``,
which adds its sub-parser and sets ``func`` to a callable taking the parsed arguments and
returning an exit code. Commands are discovered by module name, so adding a command never
edits this file.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence

from radharmony._version import __version__
from radharmony.cli._output import add_output_options, command_output
from radharmony.errors import RadharmonyError


def build_parser() -> argparse.ArgumentParser:
    """Return the top-level argument parser with every command registered."""
    parser = argparse.ArgumentParser(
        prog="radharmony",
        description="IBSI-compliant radiomics, ComBat harmonisation and explainable models.",
    )
    parser.add_argument("--version", action="version", version=f"radharmony {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if module_info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{module_info.name}")
        module.register(subparsers)
    # Output flags are common to every command, before or after the command's name.
    add_output_options(parser, top_level=True)
    for command in subparsers.choices.values():
        add_output_options(command, top_level=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return its exit code.

    Errors raised on purpose by the package (bad manifest, unreadable file, ...) are printed as
    one clear message with exit code 2 instead of a traceback.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 2
    try:
        with command_output(args):
            return int(args.func(args) or 0)
    except RadharmonyError as err:
        print(f"radharmony {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
