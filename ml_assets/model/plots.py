"""Evaluation plots (ROC, PR, reliability, slices, over time) as matplotlib Figures outside pyplot."""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from ml_assets.model.metrics import (
    CALIBRATION_BINS,
    calibration_table,
    expected_calibration_error,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

FIGSIZE: tuple[float, float] = (5.0, 3.5)
DPI = 80
# State slices can number ~60: give each bar row some height, but keep the image bounded.
SLICE_ROW_INCHES = 0.16
MAX_SLICE_HEIGHT = 14.0
_METRIC_LABELS: dict[str, str] = {
    "roc_auc": "ROC AUC",
    "pr_auc": "average precision",
    "log_loss": "log loss",
    "accuracy": "accuracy",
    "positive_rate": "positive rate",
    "ece": "ECE",
}
_CHANCE_STYLE: dict[str, Any] = {"color": "grey", "linewidth": 0.8}
_LegendLoc = Literal["lower right", "upper right", "upper left"]


def _figure(height: float = FIGSIZE[1]) -> Figure:
    """A figure outside pyplot's registry, so plotting never touches its global state."""
    # scikit-learn's displays import pyplot even when given axes, but only call it without them.
    from matplotlib.figure import Figure

    return Figure(figsize=(FIGSIZE[0], height), dpi=DPI, layout="tight")


def png(figure: Figure) -> bytes:
    """A figure as PNG bytes (for MLflow artifacts and Markdown images)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def markdown_image(image: bytes, alt: str) -> str:
    """An inline Markdown image of PNG bytes as a base64 data URI."""
    safe_alt = alt.replace("\\", "\\\\").replace("[", "\\[").replace("]", "\\]")
    encoded = base64.b64encode(image).decode("ascii")
    return f"![{safe_alt}](data:image/png;base64,{encoded})"


def _both_classes(y_true: np.ndarray) -> bool:
    labels = np.asarray(y_true, dtype=float)
    return bool(labels.size) and 0.0 < labels.sum() < labels.size


def _note(ax: Axes, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, fontsize=9)


def _finish(ax: Axes, title: str, xlabel: str, ylabel: str, legend_loc: _LegendLoc) -> None:
    # The displays label axes with "(Positive label: 1)" and square the axes; our figures are
    # small and wide, and every model's label is the positive class.
    ax.set(xlim=(0, 1), ylim=(0, 1.01), xlabel=xlabel, ylabel=ylabel, aspect="auto")
    ax.set_title(title, fontsize=10)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc=legend_loc, fontsize=7)


def _curves_figure(
    y_true: np.ndarray, probs: Mapping[str, np.ndarray], kind: Literal["roc", "pr"]
) -> Figure:
    """One scikit-learn curve display per model, its score in the legend, and the chance level."""
    from sklearn.metrics import (
        PrecisionRecallDisplay,
        RocCurveDisplay,
        average_precision_score,
        roc_auc_score,
    )

    display, score, score_name = {
        "roc": (RocCurveDisplay, roc_auc_score, "AUC"),
        "pr": (PrecisionRecallDisplay, average_precision_score, "AP"),
    }[kind]
    figure = _figure()
    ax = figure.add_subplot()
    if _both_classes(y_true):
        for i, (name, prob) in enumerate(probs.items()):
            display.from_predictions(
                y_true,
                prob,
                pos_label=1,
                ax=ax,
                # Three decimals (the displays show two): the blessing's tolerance is 0.01.
                curve_kwargs={"label": f"{name} ({score_name} {score(y_true, prob):.3f})"},
                plot_chance_level=i == 0,
                chance_level_kw=_CHANCE_STYLE,
            )
    else:
        _note(ax, f"one class only: no {'ROC' if kind == 'roc' else 'precision-recall'} curve")
    if kind == "roc":
        _finish(ax, "ROC", "false positive rate", "true positive rate", "lower right")
    else:
        _finish(ax, "Precision-recall", "recall", "precision", "upper right")
    return figure


def roc_figure(y_true: np.ndarray, probs: Mapping[str, np.ndarray]) -> Figure:
    """ROC curves (scikit-learn's RocCurveDisplay), one per model, AUC in the legend, chance line."""
    return _curves_figure(y_true, probs, "roc")


def pr_figure(y_true: np.ndarray, probs: Mapping[str, np.ndarray]) -> Figure:
    """Precision-recall steps (PrecisionRecallDisplay), one per model, AP in the legend, and the
    base rate (the chance level)."""
    return _curves_figure(y_true, probs, "pr")


def calibration_figure(
    y_true: np.ndarray, probs: Mapping[str, np.ndarray], bins: int = CALIBRATION_BINS
) -> Figure:
    """Reliability diagram (CalibrationDisplay): observed rate against mean predicted probability
    per equal-width bin, one line per model with its ECE."""
    from sklearn.calibration import CalibrationDisplay

    figure = _figure()
    ax = figure.add_subplot()
    for name, prob in probs.items():
        ece = expected_calibration_error(calibration_table(y_true, prob, bins))
        CalibrationDisplay.from_predictions(
            y_true,
            prob,
            n_bins=bins,
            strategy="uniform",
            pos_label=1,
            ax=ax,
            label=f"{name} (ECE {ece:.3f})",
            marker="o",
            markersize=3,
            linewidth=1.2,
        )
    _finish(ax, "Reliability", "mean predicted probability", "observed rate", "upper left")
    return figure


def _slice_label(column: Any, value: Any) -> str:
    return f"{column}={value}"


def slice_figure(slices: pd.DataFrame, metric: str = "roc_auc") -> Figure:
    """Horizontal bars of a metric per large-enough slice, grouped by slice column (and by model)."""
    # Hand-written: scikit-learn has no bar display, and MLflow's evaluation has no slices.
    if metric not in slices.columns:
        raise ValueError(f"slice_figure: no column {metric!r} in the slice table")
    usable = slices
    if "too_small" in usable.columns:
        usable = usable[~usable["too_small"].astype(bool)]
    usable = usable[usable[metric].notna()]
    models: list[Any] = list(pd.unique(usable["model"])) if "model" in usable.columns else [None]
    # Keep the slice table's own order (column, then size) so each column's values stay together.
    keys = list(dict.fromkeys(zip(usable["slice_column"], usable["slice_value"], strict=True)))
    height = min(
        MAX_SLICE_HEIGHT, max(FIGSIZE[1], 1.0 + SLICE_ROW_INCHES * len(keys) * len(models))
    )
    figure = _figure(height)
    ax = figure.add_subplot()
    metric_label = _METRIC_LABELS.get(metric, metric)
    ax.set_title(f"{metric_label} per slice", fontsize=10)
    if not keys:
        _note(ax, "no slice large enough to plot")
        ax.set_axis_off()
        return figure
    position = {key: i for i, key in enumerate(keys)}
    bar_height = 0.8 / len(models)
    for m, model in enumerate(models):
        rows = usable if model is None else usable[usable["model"] == model]
        y = np.array(
            [position[k] for k in zip(rows["slice_column"], rows["slice_value"], strict=True)],
            dtype=float,
        )
        offset = (m - (len(models) - 1) / 2.0) * bar_height
        ax.barh(
            y + offset,
            rows[metric].to_numpy(dtype=float),
            height=bar_height,
            label=None if model is None else str(model),
        )
    columns = [k[0] for k in keys]
    for i in range(1, len(columns)):
        if columns[i] != columns[i - 1]:
            ax.axhline(i - 0.5, color="grey", linewidth=0.6)
    ax.set_yticks(range(len(keys)), [_slice_label(*k) for k in keys], fontsize=6)
    ax.invert_yaxis()
    if metric in ("roc_auc", "pr_auc", "accuracy", "positive_rate"):
        ax.set_xlim(0, 1)
    if metric == "roc_auc":
        ax.axvline(0.5, linestyle="--", color="grey", linewidth=0.8)
    ax.set_xlabel(metric_label)
    if models != [None]:
        # Below the axes: inside, it would hide the ends of the bars it describes.
        ax.legend(
            loc="upper center",
            bbox_to_anchor=(0.5, -0.12),
            ncol=len(models),
            fontsize=7,
            frameon=False,
        )
    return figure


def over_time_figure(
    frame: pd.DataFrame, date_column: str, metrics: tuple[str, ...], by: str = "model_version"
) -> Figure:
    """One panel per metric: its value per day, a line per `by` value (e.g. model version)."""
    figure = _figure(height=FIGSIZE[1] * len(metrics) * 0.7)
    axes = figure.subplots(len(metrics), 1, sharex=True, squeeze=False)[:, 0]
    for ax, metric in zip(axes, metrics, strict=True):
        rows = frame.dropna(subset=[metric])
        if rows.empty:
            _note(ax, f"no {metric} yet")
        for value, line in rows.groupby(by, sort=True):
            line = line.sort_values(date_column)
            ax.plot(line[date_column], line[metric], marker="o", markersize=3, label=f"v{value}")
        ax.set_ylabel(_METRIC_LABELS.get(metric, metric), fontsize=8)
        ax.tick_params(labelsize=7)
    if not frame.empty:
        axes[0].legend(fontsize=7, frameon=False)
    figure.autofmt_xdate()
    return figure
