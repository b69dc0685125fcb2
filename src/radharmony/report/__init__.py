"""Self-contained HTML study reports (figures embedded; no network needed to view them)."""

from __future__ import annotations

from typing import Any

from radharmony._version import __version__
from radharmony.report._detection import detection_section_body
from radharmony.report._document import HTMLReport
from radharmony.report._explain import case_cards_body, case_table_body, shap_section_body
from radharmony.report._extraction import cohort_section_body, cohort_summary, settings_section_body
from radharmony.report._harmonization import harmonization_section_body
from radharmony.report._html import escape
from radharmony.report._longitudinal import longitudinal_section_body, make_longitudinal_report
from radharmony.report._methods import methods_paragraph
from radharmony.report._model import (
    calibration_figure,
    performance_section_body,
    volume_section_body,
)

__all__ = [
    "HTMLReport",
    "calibration_figure",
    "cohort_summary",
    "detection_section_body",
    "longitudinal_section_body",
    "make_longitudinal_report",
    "make_study_report",
    "methods_paragraph",
]


def make_study_report(result: Any, *, title: str = "radharmony study report") -> HTMLReport:
    """Build the study report of a :class:`~radharmony.study.StudyResult`.

    Sections: summary, cohort and QC, extraction settings with the IBSI compliance result,
    harmonisation diagnostics, model performance (metrics with confidence intervals,
    calibration, conformal coverage and refer rate, leave-one-scanner-out), volume check, global
    SHAP importance, one card per case, and a methods paragraph.

    Parameters
    ----------
    result : StudyResult
        Output of :func:`radharmony.study.run_study`.
    title : str
        Report title.

    Returns
    -------
    HTMLReport
        Call ``save_as_html(path)``; it also displays itself in Jupyter.
    """
    evaluation = result.evaluation
    report = HTMLReport(
        title=title,
        subtitle=(
            f"radharmony {__version__} · manifest {result.config.manifest} · target "
            f"{result.config.target}"
        ),
    )
    report.add_section("summary", "Summary", _summary_body(result))
    if getattr(result, "detection", None) is not None:
        report.add_section(
            "detection", "Lesion detection", detection_section_body(result.detection)
        )
    report.add_section("cohort", "Cohort and quality control", cohort_section_body(result.features))
    compliance = next(iter(result.compliance.values()), None) if result.compliance else None
    body = settings_section_body(result.features, compliance)
    if compliance is None:
        body += (
            "<p>The IBSI compliance of this processing chain was not re-run in this study (no "
            "IBSI benchmark data given). Verify it with <code>radharmony ibsi-check --image IMG "
            "--mask MASK --config digital_phantom --reference REF.csv</code>.</p>"
        )
    report.add_section("settings", "Extraction settings (IBSI terms)", body)
    if result.harmonization is not None:
        report.add_section(
            "harmonisation", "Harmonisation", harmonization_section_body(result.harmonization)
        )
    if getattr(result, "longitudinal", None) is not None:
        body = longitudinal_section_body(result.longitudinal, getattr(result, "delta", None))
        report.add_section("longitudinal", "Follow-up scans", body)
    report.add_section(
        "performance", "Model performance", performance_section_body(evaluation, result.external)
    )
    report.add_section("volume", "Volume check", volume_section_body(evaluation))
    report.add_section(
        "shap", "What drives the predictions (SHAP)", shap_section_body(result.explanation)
    )
    report.add_section(
        "cases",
        "Cases",
        case_cards_body(result.cases, result.oof_explanation) + case_table_body(result.cases),
    )
    report.add_section(
        "methods", "Methods (generated from the settings used)", methods_paragraph(result)
    )
    return report


def _summary_body(result: Any) -> str:
    metrics = result.evaluation.metrics
    auc = metrics.loc["roc_auc"] if "roc_auc" in metrics.index else None
    lines = [
        f"{len(result.analysed)} lesions of {result.analysed['subject_id'].nunique()} subjects on "
        f"{result.analysed['scanner'].nunique()} scanners analysed",
    ]
    if auc is not None:
        lines.append(
            f"ROC AUC {auc['estimate']:.3f} (95 % CI {auc['ci_low']:.3f}–{auc['ci_high']:.3f}), "
            "nested cross-validation"
        )
    lines.append(
        f"conformal sets at {result.evaluation.conformal_level:.0%}: refer rate "
        f"{result.evaluation.refer_rate:.1%}"
    )
    check = result.evaluation.volume_check
    if check is not None:
        lines.append(check.message)
    return "<ul>" + "".join(f"<li>{escape(line)}</li>" for line in lines) + "</ul>"
