"""Progress bars, logging and warnings: silent on request, scoped to our own calls, one clean line
per warning on the command line."""

from __future__ import annotations

import logging
import sys
import types
import warnings
from pathlib import Path

import pandas as pd
import pytest

from radharmony import _progress, evaluate, extract_features, make_feature_table
from radharmony.cli import main

FAST = {"feature_classes": ["firstorder"]}


def test_extraction_leaves_the_users_radiomics_logger_alone(tiny_cohort: Path) -> None:
    import radiomics  # noqa: F401  (its first import sets its own level; the user's comes after)

    logger = logging.getLogger("radiomics")
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep(level=logging.DEBUG)
    before = logger.level
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    try:
        extract_features(tiny_cohort, FAST, verbose=0)
        level_after = logger.level
    finally:
        logger.removeHandler(handler)
        logger.setLevel(before)
    assert level_after == logging.DEBUG
    # pyradiomics logs debug messages for every feature class; while our call ran it was quiet.
    assert [r.getMessage() for r in records if r.levelno < logging.ERROR] == []


def test_extraction_progress_follows_verbose_and_the_older_progress_flag(
    tiny_cohort: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cache = tmp_path / "cache"
    extract_features(tiny_cohort, FAST, verbose=1, cache_dir=cache)
    assert "extracting: 100%" in capsys.readouterr().err
    for options in ({"verbose": 0}, {"progress": False}, {}):  # default: a bar from 10 cases
        extract_features(tiny_cohort, FAST, **options)
        assert capsys.readouterr().err == ""
    extract_features(tiny_cohort, FAST, progress=True, cache_dir=tmp_path / "other")
    assert "extracting: 100%" in capsys.readouterr().err


@pytest.fixture(scope="module")
def small_table() -> pd.DataFrame:
    table = make_feature_table(40, n_features=6, n_informative=2, n_scanners=1, seed=3)
    table["case_id"] = table["subject_id"]
    table["centroid_z_mm"] = 0.0
    return table


def _small_evaluation(table: pd.DataFrame, **options: object) -> object:
    features = table[[c for c in table.columns if c.startswith("f")]]
    return evaluate(
        features,
        table["label"],
        volume=None,
        model="logistic_l2",
        cv=2,
        inner_cv=2,
        n_bootstrap=100,
        n_jobs=1,
        **options,
    )


def test_evaluation_shows_progress_unless_verbose_is_0(
    small_table: pd.DataFrame, capsys: pytest.CaptureFixture[str]
) -> None:
    from radharmony.explain import explain

    result = _small_evaluation(small_table)
    err = capsys.readouterr().err
    assert "nested CV fits: 100%" in err and "3/3" in err  # two outer folds and the final fit
    assert "bootstrap: 100%" in err
    features = small_table[[c for c in small_table.columns if c.startswith("f")]]
    explain(result.model, features)  # type: ignore[attr-defined]
    assert "SHAP: 100%" in capsys.readouterr().err
    explain(result.model, features, verbose=0)  # type: ignore[attr-defined]
    assert capsys.readouterr().err == ""
    # evaluate(verbose=0) is silent: see the study cache test, which runs it once.


def test_verbose_conventions() -> None:
    assert _progress.resolve_verbose(None, None) is None
    assert _progress.resolve_verbose(None, True) == 1
    assert _progress.resolve_verbose(None, False) == 0
    assert _progress.resolve_verbose(0, True) == 0  # the new name wins
    assert not _progress.shows_progress(None, 9, automatic_from=10)
    assert _progress.shows_progress(None, 10, automatic_from=10)
    assert _progress.shows_progress(True, 1) and not _progress.shows_progress(0, 100)
    assert logging.getLogger("radharmony").handlers[0].__class__ is logging.NullHandler


def _fake_kernel(monkeypatch: pytest.MonkeyPatch, widgets: bool) -> None:
    shell = types.SimpleNamespace(config={"IPKernelApp": {}})
    ipython = types.ModuleType("IPython")
    ipython.get_ipython = lambda: shell  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "IPython", ipython)
    real = _progress.importlib.util.find_spec

    def find_spec(name: str, *args: object) -> object:
        if name == "ipywidgets":
            return object() if widgets else None
        return real(name, *args)

    monkeypatch.setattr(_progress.importlib.util, "find_spec", find_spec)


def test_notebook_without_ipywidgets_gets_a_text_bar_and_no_warning(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from tqdm.std import tqdm as text_tqdm

    _fake_kernel(monkeypatch, widgets=False)
    assert _progress._in_notebook()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # tqdm.auto would warn "IProgress not found" here
        assert _progress.tqdm_class() is text_tqdm
        assert list(_progress.progress_bar(range(3), description="steps", verbose=1)) == [0, 1, 2]
    assert "steps: 100%" in capsys.readouterr().err


def test_notebook_with_ipywidgets_gets_the_widget(monkeypatch: pytest.MonkeyPatch) -> None:
    from tqdm.notebook import tqdm as notebook_tqdm  # importable without ipywidgets

    _fake_kernel(monkeypatch, widgets=True)
    assert _progress.tqdm_class() is notebook_tqdm


def _noisy_command(args: object) -> int:
    for _ in range(2):  # the same warning from two call sites, as the volume check did
        warnings.warn("volume explains\n  the class", UserWarning, stacklevel=1)
    warnings.warn("volume explains\n  the class", UserWarning, stacklevel=1)
    warnings.warn("a constant input", RuntimeWarning, stacklevel=1)
    print("result line")
    return 0


def test_cli_prints_each_warning_once_as_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    import radharmony.cli.run as run_command

    monkeypatch.setattr(run_command, "run", _noisy_command)
    shown = warnings.showwarning
    assert main(["run", str(tmp_path / "study.yaml")]) == 0
    out, err = capsys.readouterr()
    assert out == "result line\n"
    assert err.splitlines() == [
        "warning: volume explains the class",
        "warning: a constant input",
    ]
    # Library use keeps Python's own warnings.
    assert warnings.showwarning is shown
    with pytest.warns(UserWarning, match="volume explains"):
        _noisy_command(None)


def test_quiet_is_accepted_before_or_after_any_command() -> None:
    from radharmony.cli import build_parser

    parser = build_parser()
    for argv in (["--quiet", "run", "x.yaml"], ["run", "x.yaml", "-q"]):
        assert parser.parse_args(argv).quiet is True
    assert parser.parse_args(["run", "x.yaml"]).quiet is False
    assert parser.parse_args(["extract", "m.csv", "--out", "f.parquet", "-q"]).quiet is True


def test_quiet_cli_prints_no_progress(
    tiny_cohort: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "features.parquet"
    settings = tmp_path / "settings.yaml"
    settings.write_text("feature_classes: [firstorder]\n")
    argv = ["extract", str(tiny_cohort), "--out", str(out), "--settings", str(settings)]
    assert main([*argv, "--no-cache"]) == 0
    assert "extracting: 100%" in capsys.readouterr().err  # the CLI always shows its bars
    assert main([*argv, "--no-cache", "--quiet"]) == 0
    assert capsys.readouterr().err == ""


def test_cli_log_handler_is_removed_after_the_command(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    import radharmony.cli.run as run_command

    def logs(args: object) -> int:
        logging.getLogger("radharmony.study").info("step message")
        logging.getLogger("radharmony.study").debug("detail")
        return 0

    monkeypatch.setattr(run_command, "run", logs)
    logger = logging.getLogger("radharmony")
    handlers = list(logger.handlers)
    assert main(["run", "-v", str(tmp_path / "s.yaml")]) == 0
    assert capsys.readouterr().err == "step message\n"
    assert main(["run", str(tmp_path / "s.yaml")]) == 0
    assert capsys.readouterr().err == ""
    assert logger.handlers == handlers


def _study(tmp_path: Path, **changes: object) -> object:
    from radharmony.study import StudyConfig

    options: dict = {
        "manifest": tmp_path / "manifest.csv",
        "out": tmp_path / "out",
        "target": "label",
        "harmonize": False,
        "model": "logistic_l2",
        "cv": 2,
        "inner_cv": 2,
        "n_bootstrap": 100,
        "leave_one_scanner_out": False,
        "n_jobs": 1,
    }
    return StudyConfig(**{**options, **changes})


class Recomputed(Exception):
    """Raised instead of evaluating again: a test only needs to know it would recompute."""


def test_a_second_study_run_reads_the_analysis_from_its_cache(
    small_table: pd.DataFrame,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import radharmony.model
    from radharmony.study._run import cached_analysis

    calls: list[int] = []
    real = radharmony.model.evaluate

    def counted(*args: object, **kwargs: object) -> object:
        calls.append(1)
        if len(calls) > 1:
            raise Recomputed
        return real(*args, **kwargs)

    monkeypatch.setattr(radharmony.model, "evaluate", counted)
    analysed = small_table.set_index(small_table["subject_id"] + "#1")
    columns = [c for c in analysed.columns if c.startswith("f")]
    config = _study(tmp_path)
    first, hit = cached_analysis(analysed, columns, config, verbose=0)
    assert (hit, len(calls)) == (False, 1)
    assert capsys.readouterr().err == ""  # verbose=0 silences every bar of the analysis
    again, hit = cached_analysis(analysed, columns, _study(tmp_path, n_jobs=2))
    assert (hit, len(calls)) == (True, 1)  # n_jobs does not change results: still cached
    pd.testing.assert_frame_equal(again[1].predictions, first[1].predictions)
    pd.testing.assert_frame_equal(again[5], first[5])
    # A changed setting, a changed label or cache=False computes again.
    relabelled = analysed.assign(label=analysed["label"].iloc[::-1].to_numpy())
    for table, study, cache in (
        (analysed, _study(tmp_path, n_bootstrap=200), True),
        (analysed, _study(tmp_path, seed=1), True),
        (relabelled, config, True),
        (analysed.assign(f00=analysed["f00"] + 1e-9), config, True),
        (analysed, config, False),
    ):
        with pytest.raises(Recomputed):
            cached_analysis(table, columns, study, cache=cache, verbose=0)
    assert len(calls) == 6
    assert (tmp_path / "out" / "analysis.cache").is_dir()


def test_an_analysis_cache_outside_the_study_folder_is_never_read(tmp_path: Path) -> None:
    from radharmony.study._run import _analysis_cache_folder

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    (out / "analysis.cache").symlink_to(elsewhere, target_is_directory=True)
    with pytest.warns(UserWarning, match="points outside the study folder"):
        assert _analysis_cache_folder(out) is None
    assert _analysis_cache_folder(tmp_path / "other") == (tmp_path / "other").resolve() / (
        "analysis.cache"
    )


@pytest.mark.slow
def test_quiet_train_prints_the_volume_conclusion_once_and_no_bar(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    table = make_feature_table(40, n_features=4, n_informative=1, n_scanners=1, volume_only=True)
    table.to_csv(tmp_path / "features.csv", index=False)
    argv = ["train", str(tmp_path / "features.csv"), "--target", "label", "--id", "subject_id"]
    argv += ["--drop", "lesion_id,scanner,age,sex", "--model", "logistic_l2", "--cv", "2"]
    argv += ["--inner-cv", "2", "--n-bootstrap", "100", "--jobs", "1", "--selection", "none"]
    assert main([*argv, "--out", str(tmp_path / "out"), "--quiet"]) in (0, 1)
    out, err = capsys.readouterr()
    assert out.count("does not beat a volume-only model") == 1
    assert "does not beat" not in err and "%|" not in err
