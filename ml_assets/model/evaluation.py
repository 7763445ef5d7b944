"""Evaluating a challenger next to the champion on the same evaluation split, and the report."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ml_assets.model.blessing import BlessingPolicy, BlessingVerdict, bless
from ml_assets.model.comparison import OVERALL, Comparison, compare_scores, comparison_groups
from ml_assets.model.features import LABEL
from ml_assets.model.metrics import (
    SLICE_COLUMNS,
    BinaryMetrics,
    binary_metrics,
    calibration_table,
    slice_metrics,
    slice_values,
)
from ml_assets.model.plots import (
    calibration_figure,
    markdown_image,
    png,
    pr_figure,
    roc_figure,
    slice_figure,
)

PROBABILITY = "probability"


@dataclass(frozen=True)
class ModelScores:
    """One model's probabilities on the evaluation split, with its own decision threshold."""

    version: str
    threshold: float
    probabilities: np.ndarray


@dataclass
class EvaluationReport:
    """Metrics, slices, calibration and the blessing of a challenger (and the champion's, if any)."""

    challenger_version: str
    champion_version: str | None
    rows: int
    metrics: BinaryMetrics
    champion_metrics: BinaryMetrics | None
    slices: pd.DataFrame
    calibration: pd.DataFrame
    verdict: BlessingVerdict
    policy: BlessingPolicy
    comparisons: list[Comparison] | None = None
    plots: dict[str, bytes] = field(default_factory=dict)


def score_slices(evaluation: pd.DataFrame, scores: ModelScores, min_count: int) -> pd.DataFrame:
    """A model's metrics per slice of the evaluation rows."""
    scored = evaluation.assign(**{PROBABILITY: scores.probabilities})
    return slice_metrics(scored, LABEL, PROBABILITY, scores.threshold, min_count=min_count)


def compare_models(
    evaluation: pd.DataFrame, challenger: ModelScores, champion: ModelScores, policy: BlessingPolicy
) -> list[Comparison]:
    """The challenger against the champion on the evaluation rows, overall and on every slice
    with enough of both classes (paired bootstrap, Holm's correction)."""
    labels = evaluation[LABEL].to_numpy(dtype="int64")
    keys = {c: slice_values(evaluation[c]).to_numpy() for c in SLICE_COLUMNS}
    groups = comparison_groups(labels, keys, policy.min_slice_class)
    tolerances = {
        name: policy.champion_tolerance if name == OVERALL else policy.slice_tolerance
        for name in groups
    }
    return compare_scores(
        labels,
        challenger.probabilities,
        champion.probabilities,
        groups,
        tolerances,
        policy.resamples,
        policy.error_rate,
    )


def evaluate_models(
    evaluation: pd.DataFrame,
    challenger: ModelScores,
    champion: ModelScores | None,
    policy: BlessingPolicy,
) -> EvaluationReport:
    """Score the challenger (and champion) on the evaluation rows and decide the blessing."""
    if evaluation.empty:
        raise ValueError(
            "the evaluation split is empty: widen evaluation_days or land more labelled days"
        )
    labels = evaluation[LABEL].to_numpy(dtype="float64")
    metrics = binary_metrics(labels, challenger.probabilities, challenger.threshold)
    slices = score_slices(evaluation, challenger, policy.min_slice_count)
    champion_metrics = champion_slices = comparisons = None
    probabilities = {"challenger": challenger.probabilities}
    if champion is not None:
        champion_metrics = binary_metrics(labels, champion.probabilities, champion.threshold)
        champion_slices = score_slices(evaluation, champion, policy.min_slice_count)
        probabilities["champion"] = champion.probabilities
        if metrics.roc_auc is not None and not np.isnan(metrics.roc_auc):
            comparisons = compare_models(evaluation, challenger, champion, policy)
    verdict = bless(metrics, comparisons, policy)
    both = slices.assign(model="challenger")
    if champion_slices is not None:
        both = pd.concat([both, champion_slices.assign(model="champion")], ignore_index=True)
    plots = {
        "roc.png": png(roc_figure(labels, probabilities)),
        "precision_recall.png": png(pr_figure(labels, probabilities)),
        "calibration.png": png(calibration_figure(labels, probabilities)),
        "slices_auc.png": png(slice_figure(both)),
    }
    return EvaluationReport(
        challenger_version=challenger.version,
        champion_version=champion.version if champion else None,
        rows=len(evaluation),
        metrics=metrics,
        champion_metrics=champion_metrics,
        slices=both,
        calibration=calibration_table(labels, challenger.probabilities),
        verdict=verdict,
        policy=policy,
        comparisons=comparisons,
        plots=plots,
    )


def _fmt(value: object) -> str:
    return f"{value:.4f}" if isinstance(value, float) else ("—" if value is None else str(value))


def report_markdown(report: EvaluationReport) -> str:
    """The evaluation as Markdown with the plots embedded, for the Dagster UI."""
    champion = report.champion_metrics.to_dict() if report.champion_metrics else {}
    lines = [
        f"### Challenger v{report.challenger_version}"
        + (
            f" vs champion v{report.champion_version}"
            if report.champion_version
            else " (no champion yet)"
        ),
        f"Evaluation rows: {report.rows}. Blessed: **{'yes' if report.verdict.blessed else 'no'}**",
        "",
        report.verdict.to_markdown(),
        "",
        "| metric | challenger | champion |",
        "| --- | ---: | ---: |",
    ]
    lines += [
        f"| {k} | {_fmt(v)} | {_fmt(champion.get(k))} |"
        for k, v in report.metrics.to_dict().items()
    ]
    if report.comparisons:
        lines += [
            "",
            "| compared on | rows (disputes) | challenger AUC | champion AUC | difference "
            "| bootstrap interval | p | worse |",
            "| --- | ---: | ---: | ---: | ---: | --- | ---: | --- |",
        ]
        lines += [
            f"| {c.name} | {c.positives + c.negatives} ({c.positives}) | {c.challenger_auc:.3f} "
            f"| {c.champion_auc:.3f} | {c.difference:+.3f} | [{c.low:+.3f}, {c.high:+.3f}] "
            f"| {c.p_value:.4f} | {'**yes**' if c.worse else 'no'} |"
            for c in report.comparisons
        ]
    small = report.slices[report.slices["too_small"] & (report.slices["model"] == "challenger")]
    lines += ["", f"Slices too small to judge (< min count): {len(small)}", ""]
    lines += [
        markdown_image(image, name.removesuffix(".png")) for name, image in report.plots.items()
    ]
    return "\n".join(lines)
