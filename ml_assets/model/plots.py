"""Small PNG evaluation plots (ROC, PR, reliability, slices) for run artifacts and Dagster metadata."""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ml_assets.model.metrics import (
    CALIBRATION_BINS,
    binary_metrics,
    calibration_table,
    pr_curve,
    roc_curve,
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


def _figure(height: float = FIGSIZE[1]) -> Figure:
    """A pyplot-free figure, so plotting never touches global backend state."""
    from matplotlib.figure import Figure

    return Figure(figsize=(FIGSIZE[0], height), dpi=DPI, layout="tight")


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def _both_classes(y_true: np.ndarray) -> bool:
    labels = np.asarray(y_true, dtype=float)
    return bool(labels.size) and 0.0 < labels.sum() < labels.size


def _note(ax: Axes, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, fontsize=9)


def roc_png(y_true: np.ndarray, probs: Mapping[str, np.ndarray]) -> bytes:
    """The ROC figure as PNG bytes."""
    return _png(roc_figure(y_true, probs))


def roc_figure(y_true: np.ndarray, probs: Mapping[str, np.ndarray]) -> Figure:
    """ROC curves, one per model, with AUC in the legend and the chance diagonal."""
    figure = _figure()
    ax = figure.add_subplot()
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=0.8, label="chance")
    if _both_classes(y_true):
        for name, prob in probs.items():
            fpr, tpr, _ = roc_curve(y_true, prob)
            auc = binary_metrics(y_true, prob, 0.5).roc_auc
            ax.plot(fpr, tpr, linewidth=1.4, label=f"{name} (AUC {auc:.3f})")
    else:
        _note(ax, "one class only: no ROC curve")
    ax.set(xlim=(0, 1), ylim=(0, 1.01), xlabel="false positive rate", ylabel="true positive rate")
    ax.set_title("ROC", fontsize=10)
    ax.legend(loc="lower right", fontsize=7)
    return figure


def pr_png(y_true: np.ndarray, probs: Mapping[str, np.ndarray]) -> bytes:
    """The precision-recall figure as PNG bytes."""
    return _png(pr_figure(y_true, probs))


def pr_figure(y_true: np.ndarray, probs: Mapping[str, np.ndarray]) -> Figure:
    """Precision-recall curves, one per model, with average precision and the base rate."""
    figure = _figure()
    ax = figure.add_subplot()
    labels = np.asarray(y_true, dtype=float)
    if labels.size:
        base_rate = float(labels.mean())
        ax.axhline(
            base_rate,
            linestyle="--",
            color="grey",
            linewidth=0.8,
            label=f"base rate {base_rate:.3f}",
        )
    if _both_classes(labels):
        for name, prob in probs.items():
            recall, precision, _ = pr_curve(labels, prob)
            ap = binary_metrics(labels, prob, 0.5).pr_auc
            # Recall rises along the arrays, so each step takes the precision at its right end,
            # as average precision counts it: the area under the steps is the AP shown.
            ax.step(recall, precision, where="pre", linewidth=1.4, label=f"{name} (AP {ap:.3f})")
    else:
        _note(ax, "one class only: no precision-recall curve")
    ax.set(xlim=(0, 1), ylim=(0, 1.01), xlabel="recall", ylabel="precision")
    ax.set_title("Precision-recall", fontsize=10)
    ax.legend(loc="upper right", fontsize=7)
    return figure


def calibration_png(
    y_true: np.ndarray, probs: Mapping[str, np.ndarray], bins: int = CALIBRATION_BINS
) -> bytes:
    """The reliability diagram as PNG bytes."""
    return _png(calibration_figure(y_true, probs, bins))


def calibration_figure(
    y_true: np.ndarray, probs: Mapping[str, np.ndarray], bins: int = CALIBRATION_BINS
) -> Figure:
    """Reliability diagram: observed positive rate against mean predicted probability per bin."""
    figure = _figure()
    ax = figure.add_subplot()
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=0.8, label="perfect")
    for name, prob in probs.items():
        table = calibration_table(y_true, prob, bins)
        ece = binary_metrics(y_true, prob, 0.5).ece
        ax.plot(
            table["mean_predicted"],
            table["observed_rate"],
            marker="o",
            markersize=3,
            linewidth=1.2,
            label=f"{name} (ECE {ece:.3f})",
        )
    ax.set(xlim=(0, 1), ylim=(0, 1.01), xlabel="mean predicted probability", ylabel="observed rate")
    ax.set_title("Reliability", fontsize=10)
    ax.legend(loc="upper left", fontsize=7)
    return figure


def _slice_label(column: Any, value: Any) -> str:
    return f"{column}={value}"


def slice_png(slices: pd.DataFrame, metric: str = "roc_auc") -> bytes:
    """The per-slice bar chart as PNG bytes."""
    return _png(slice_figure(slices, metric))


def slice_figure(slices: pd.DataFrame, metric: str = "roc_auc") -> Figure:
    """Horizontal bars of a metric per large-enough slice, grouped by slice column (and by model)."""
    if metric not in slices.columns:
        raise ValueError(f"slice_png: no column {metric!r} in the slice table")
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


def markdown_image(png: bytes, alt: str) -> str:
    """An inline Markdown image of PNG bytes as a base64 data URI."""
    safe_alt = alt.replace("\\", "\\\\").replace("[", "\\[").replace("]", "\\]")
    encoded = base64.b64encode(png).decode("ascii")
    return f"![{safe_alt}](data:image/png;base64,{encoded})"


def over_time_png(
    frame: pd.DataFrame, date_column: str, metrics: tuple[str, ...], by: str = "model_version"
) -> bytes:
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
    return _png(figure)
