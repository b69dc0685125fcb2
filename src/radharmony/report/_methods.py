"""A methods paragraph generated from the settings and versions actually used."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any

from radharmony._cases import failures_of
from radharmony.report._extraction import extraction_methods
from radharmony.report._html import escape


def _version(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "unknown"


def methods_paragraph(result: Any) -> str:
    """Return an HTML paragraph describing the study's methods, ready to adapt for a paper.

    Parameters
    ----------
    result : StudyResult
        Output of :func:`radharmony.study.run_study`.
    """
    config = result.config
    evaluation = result.evaluation
    n_lesions = len(result.analysed)
    n_subjects = result.analysed["subject_id"].nunique()
    n_scanners = result.analysed["scanner"].nunique()
    harmonised = bool(evaluation.settings.get("harmonize"))
    sentences = [
        extraction_methods(result.features),
        escape(
            f"The analysis included {n_lesions} lesions of {n_subjects} subjects imaged on "
            f"{n_scanners} scanners ({len(failures_of(result.features))} cases or "
            f"lesions failed extraction; {result.unlabelled} lesions had no label)."
        ),
    ]
    if harmonised:
        covariates = ", ".join(config.covariates) or "none"
        sentences.append(
            escape(
                "Scanner effects were harmonised with ComBat (empirical Bayes, estimation as in "
                f"neuroCombat {_version('neuroCombat')}) applied only to features with evidence "
                "of a scanner effect in the training data (Kruskal-Wallis, Benjamini-Hochberg "
                "FDR 5 %), after a Yeo-Johnson transform of skewed features; preserved "
                f"covariates: {covariates}. The harmoniser was fitted within each training fold "
                "and applied unchanged to the corresponding test fold."
            )
        )
    sentences.append(
        escape(
            f"A classifier ({config.model.replace('_', ' ')}; scikit-learn "
            f"{_version('scikit-learn')}) with removal of near-constant and highly correlated "
            "features, standardisation, feature selection and "
            f"{config.calibration} probability calibration fitted on out-of-fold scores of "
            "whole-pipeline refits was deployed as an ensemble of "
            f"{config.inner_cv} members, each tuned, calibrated and fitted without one fold of "
            "subjects, and evaluated by nested cross-validation of that whole procedure "
            f"({config.cv} outer folds, grouped by subject so that lesions of one subject never "
            "appear in both training and test folds); every fitted step was learnt on training "
            "folds only. Confidence intervals are "
            f"{evaluation.settings.get('confidence_level', 0.95):.0%} "
            f"bootstrap intervals ({config.n_bootstrap} class-stratified resamples of subjects). "
            f"CV+ conformal prediction sets were built at {config.conformal_level:.0%} nominal "
            f"coverage{' per class (Mondrian)' if evaluation.mondrian else ''} with subjects as "
            "calibration units; cases whose set was not a single class, or that a "
            "nearest-neighbour domain check placed outside the training data, were flagged for "
            "referral. A volume-only model was evaluated on the same folds and compared with "
            "the signature (DeLong test, or a patient bootstrap with several lesions per "
            f"subject). Feature contributions were computed with SHAP {_version('shap')}."
        )
    )
    if result.external is not None:
        sentences.append(
            escape(
                "External validity was assessed by leave-one-scanner-out validation without "
                "harmonisation."
            )
        )
    return "<div class='methods'><p>" + " ".join(sentences) + "</p></div>"
