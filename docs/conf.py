"""Sphinx configuration: API reference from the numpydoc docstrings, tutorials executed on build.

Build with ``sphinx-build -W --keep-going -b html docs docs/_build/html`` (README gives the whole
command). Pages generated from the code (autosummary stubs, the command-line reference, the
table of top-level names) are written to ``docs/_generated`` on every build and not versioned.
"""

from __future__ import annotations

import argparse
import importlib
import os
from pathlib import Path

import radharmony
from radharmony.cli import build_parser

project = "radharmony"
author = "radharmony developers"
copyright = "radharmony developers"
release = radharmony.__version__
version = release

extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
]
exclude_patterns = ["_build", "**.ipynb_checkpoints", "notebooks/screenshots"]
# README.md links to the notebooks folder and to CI files, which are repository paths rather than
# pages of this site; where the README is included here they are shown as plain text.
nitpick_ignore_regex = [("myst", r".*notebooks(/04_longitudinal)?"), ("myst", r"\.ci/oldest\.txt")]
html_theme = "pydata_sphinx_theme"
html_title = f"radharmony {release}"
html_theme_options = {"navigation_with_keys": False, "show_toc_level": 2}
templates_path = ["_templates"]

# API reference: every public name of a stage module (its ``__all__``), numpydoc sections.
autosummary_generate = True
autosummary_ignore_module_all = False
autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_member_order = "groupwise"
autodoc_typehints = "description"
autodoc_class_signature = "separated"
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = False

# Tutorials: every notebook is executed on each build (they are stored without outputs); a cell
# that raises fails the build, so the rendered outputs are those of the current code.
# Progress bars are transient terminal output; on a static page they are dozens of lines of noise,
# so the kernels (which inherit this environment) run without them.
os.environ.setdefault("TQDM_DISABLE", "1")
nb_execution_mode = "force"
nb_execution_raise_on_error = True
nb_execution_timeout = 900
nb_execution_show_tb = True
nb_merge_streams = True
myst_enable_extensions = ["dollarmath"]
myst_heading_anchors = 3

# Stage modules documented in the API reference, in the order data flows through them.
STAGE_MODULES = [
    "radharmony.io",
    "radharmony.lesions",
    "radharmony.ibsi",
    "radharmony.ibsi.filters",
    "radharmony.extract",
    "radharmony.detect",
    "radharmony.longitudinal",
    "radharmony.harmonize",
    "radharmony.model",
    "radharmony.explain",
    "radharmony.report",
    "radharmony.datasets",
    "radharmony.study",
    "radharmony.errors",
]

GENERATED = Path(__file__).parent / "_generated"


def _public_names(module_name: str) -> list[str]:
    module = importlib.import_module(module_name)
    names = getattr(module, "__all__", None)
    if names is not None:
        return list(names)
    return [
        name
        for name, value in vars(module).items()
        if not name.startswith("_") and getattr(value, "__module__", None) == module_name
    ]


def _top_level_table() -> str:
    """An autosummary of ``radharmony.__all__``, each name linked to its stage module's page."""
    lines = [".. currentmodule:: radharmony", "", ".. autosummary::", ""]
    constants = []
    for name in radharmony.__all__:
        if name == "__version__":
            continue
        if f"radharmony.{name}" in STAGE_MODULES:
            lines.append(f"   {name}")
            continue
        home = next(m for m in STAGE_MODULES if name in _public_names(m))
        if callable(getattr(radharmony, name)):
            lines.append(f"   ~{home.removeprefix('radharmony.')}.{name}")
        else:  # a table of settings: its type's docstring would say nothing about it
            constants.append(f"- :data:`~{home}.{name}`")
    return "\n".join([*lines, "", "Constants:", "", *constants]) + "\n"


def _cli_reference() -> str:
    """The ``--help`` text of ``radharmony`` and of each of its commands."""
    parser = build_parser()
    parts = [
        "# Command line\n",
        "Every command also runs as `python -m radharmony COMMAND`. The help texts below are "
        "generated from the installed version.\n",
        "```text\n" + parser.format_help() + "```\n",
    ]
    for action in parser._subparsers._group_actions:  # type: ignore[union-attr]
        if isinstance(action, argparse._SubParsersAction):
            for command, subparser in action.choices.items():
                parts.append(f"## `radharmony {command}`\n")
                parts.append("```text\n" + subparser.format_help() + "```\n")
    return "\n".join(parts)


def _write_if_changed(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        path.write_text(text, encoding="utf-8")


_write_if_changed(GENERATED / "toplevel.inc", _top_level_table())
_columns = os.environ.get("COLUMNS")
os.environ["COLUMNS"] = "100"  # argparse wraps the help text at the terminal width
try:
    _write_if_changed(GENERATED / "cli.md", _cli_reference())
finally:
    if _columns is None:
        del os.environ["COLUMNS"]
    else:
        os.environ["COLUMNS"] = _columns


def _skip_generated_request_methods(app, what, name, obj, skip, options):  # noqa: ANN001, ANN201
    """Leave out ``set_{method}_request``: scikit-learn generates them on every estimator."""
    if name.startswith("set_") and name.endswith("_request"):
        return True
    return None


def setup(app):  # noqa: ANN001, ANN201
    app.connect("autodoc-skip-member", _skip_generated_request_methods)
