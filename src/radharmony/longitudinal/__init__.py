"""Follow-up scans: alignment, change maps, new lesions, lesion tracks and delta-radiomics.

A subject's visits are brought into one common space (given ITK transforms, or registration to
the baseline with a quality check), consecutive visits are compared voxel by voxel with a
signed, standardised change score, the score is thresholded without the subject's labels
(its own map's opposite tail, or reference subjects), and lesions given for each visit are
matched into tracks (new, enlarging, stable, shrinking, disappeared, merged, split). Features
of every matched lesion come from :func:`radharmony.extract_features` (same IBSI settings and
cache), with their change between visits.

- :func:`analyse_followups`: the per-subject analysis over a cohort (local or Dask, cached).
- :func:`calibrate_change`: thresholds learned on reference subjects.
- :func:`delta_radiomics`: features per matched lesion and visit, with ``delta_*`` columns.
- :func:`change_score`, :func:`track_lesions`: the building blocks, on arrays.
"""

from __future__ import annotations

from radharmony.longitudinal._align import AlignmentError, alignment_quality, local_ncc, register
from radharmony.longitudinal._calibrate import (
    ChangeCalibration,
    bh_threshold,
    mirror_fdr_threshold,
)
from radharmony.longitudinal._change import ChangeSettings, change_score
from radharmony.longitudinal._delta import delta_radiomics
from radharmony.longitudinal._manifest import read_longitudinal_manifest
from radharmony.longitudinal._matching import MatchingRule, lesion_load, track_lesions
from radharmony.longitudinal._run import (
    LongitudinalResult,
    analyse_followups,
    calibrate_change,
    write_longitudinal,
)

__all__ = [
    "AlignmentError",
    "ChangeCalibration",
    "ChangeSettings",
    "LongitudinalResult",
    "MatchingRule",
    "alignment_quality",
    "analyse_followups",
    "bh_threshold",
    "calibrate_change",
    "change_score",
    "delta_radiomics",
    "lesion_load",
    "local_ncc",
    "mirror_fdr_threshold",
    "read_longitudinal_manifest",
    "register",
    "track_lesions",
    "write_longitudinal",
]
