"""The Dask backend runs the same per-case tasks and gives the same table as local workers."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from radharmony.extract import extract_features

distributed = pytest.importorskip("dask.distributed")

SETTINGS = {"feature_classes": ["shape", "firstorder", "glcm"], "resampled_spacing": None}


@pytest.mark.slow
def test_local_cluster_matches_local_backend(tiny_cohort: Path, tmp_path: Path) -> None:
    local = extract_features(tiny_cohort, settings=SETTINGS, n_jobs=1)
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        remote = extract_features(
            tiny_cohort,
            settings=SETTINGS,
            backend="dask",
            scheduler=client,
            cache_dir=tmp_path / "cache",
        )
        resumed = extract_features(
            tiny_cohort,
            settings=SETTINGS,
            backend="dask",
            scheduler=cluster.scheduler_address,
            cache_dir=tmp_path / "cache",
        )
    pd.testing.assert_frame_equal(remote, local, check_exact=True)
    pd.testing.assert_frame_equal(resumed, local, check_exact=True)
    assert remote.attrs["cached_cases"] == 0
    assert resumed.attrs["cached_cases"] == 6


def test_dask_backend_needs_a_scheduler(tiny_cohort: Path) -> None:
    with pytest.raises(ValueError, match="needs scheduler="):
        extract_features(tiny_cohort, settings=SETTINGS, backend="dask")


def test_unknown_backend_is_rejected(tiny_cohort: Path) -> None:
    with pytest.raises(ValueError, match="backend must be 'loky' or 'dask'"):
        extract_features(tiny_cohort, settings=SETTINGS, backend="spark")
