"""Binary-classification metrics, calibration and per-slice evaluation in plain numpy."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

# The evaluation is sliced by these columns; a slice with fewer rows is reported as too small.
SLICE_COLUMNS: tuple[str, ...] = ("product", "state", "company_response")
MIN_SLICE_COUNT = 50
CALIBRATION_BINS = 10
LOG_LOSS_EPS = 1e-7
MISSING_SLICE_VALUE = "[missing]"
CALIBRATION_COLUMNS: tuple[str, ...] = (
    "bin_low",
    "bin_high",
    "count",
    "mean_predicted",
    "observed_rate",
)
SLICE_METRIC_COLUMNS: tuple[str, ...] = (
    "slice_column",
    "slice_value",
    "count",
    "positives",
    "positive_rate",
    "roc_auc",
    "pr_auc",
    "log_loss",
    "accuracy",
    "too_small",
)
_EMPTY_SLICE_DTYPES: dict[str, Any] = {
    "slice_column": str,
    "slice_value": str,
    "count": int,
    "positives": int,
    "positive_rate": float,
    "roc_auc": float,
    "pr_auc": float,
    "log_loss": float,
    "accuracy": float,
    "too_small": bool,
}


@dataclass(frozen=True)
class BinaryMetrics:
    """Evaluation of predicted probabilities against binary labels at one decision threshold."""

    count: int
    positives: int
    roc_auc: float | None
    pr_auc: float | None
    log_loss: float
    brier: float
    accuracy: float
    baseline_accuracy: float
    precision: float
    recall: float
    threshold: float
    ece: float
    mean_probability: float  # next to positives / count: calibration in the large

    def to_dict(self) -> dict[str, Any]:
        """Plain ints and floats (None kept) for logging."""
        out: dict[str, Any] = {}
        for key, value in asdict(self).items():
            if value is None:
                out[key] = None
            elif key in ("count", "positives"):
                out[key] = int(value)
            else:
                out[key] = float(value)
        return out


def _validate(y_true: Any, y_prob: Any) -> tuple[np.ndarray, np.ndarray]:
    """Labels as a 0/1 float array and probabilities as a float array, or a clear ValueError."""
    try:
        labels = np.asarray(y_true, dtype=float)
        probs = np.asarray(y_prob, dtype=float)
    except (TypeError, ValueError) as error:
        raise ValueError(f"labels and probabilities must be numeric: {error}") from error
    if labels.ndim != 1 or probs.ndim != 1:
        raise ValueError(
            f"labels and probabilities must be 1-D, got shapes {labels.shape} and {probs.shape}"
        )
    if labels.size == 0:
        raise ValueError("cannot evaluate an empty set of predictions")
    if labels.size != probs.size:
        raise ValueError(f"length mismatch: {labels.size} labels but {probs.size} probabilities")
    if np.isnan(labels).any():
        raise ValueError("labels contain NaN (unlabelled rows cannot be evaluated)")
    if not np.isin(labels, (0.0, 1.0)).all():
        bad = np.unique(labels[~np.isin(labels, (0.0, 1.0))])[:5]
        raise ValueError(f"labels must be 0 or 1, found {bad.tolist()}")
    if np.isnan(probs).any():
        raise ValueError(f"probabilities contain {int(np.isnan(probs).sum())} NaN value(s)")
    if (probs < 0.0).any() or (probs > 1.0).any():
        raise ValueError(
            f"probabilities must lie in [0, 1], found min {probs.min():.6g} max {probs.max():.6g}"
        )
    return labels, probs


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks, tied values sharing the mean of their ranks."""
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    group_end = np.cumsum(counts).astype(float)
    return (group_end - (counts - 1) / 2.0)[inverse]


def _roc_auc(labels: np.ndarray, probs: np.ndarray) -> float | None:
    positives = int(labels.sum())
    negatives = labels.size - positives
    if positives == 0 or negatives == 0:
        return None
    rank_sum = float(_average_ranks(probs)[labels == 1.0].sum())
    return (rank_sum - positives * (positives + 1) / 2.0) / (positives * negatives)


def _descending_counts(
    labels: np.ndarray, probs: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct scores (descending) with cumulative true and false positives at each."""
    order = np.argsort(-probs, kind="mergesort")
    sorted_probs = probs[order]
    sorted_labels = labels[order]
    # Last index of each run of equal scores: every tied row is counted at the same threshold.
    last = np.r_[np.flatnonzero(np.diff(sorted_probs)), sorted_probs.size - 1]
    tps = np.cumsum(sorted_labels)[last]
    fps = (last + 1) - tps
    return sorted_probs[last], tps, fps


def roc_curve(y_true: Any, y_prob: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """False and true positive rates (starting at 0, 0) with their thresholds; needs both classes."""
    labels, probs = _validate(y_true, y_prob)
    thresholds, tps, fps = _descending_counts(labels, probs)
    if tps[-1] == 0 or fps[-1] == 0:
        raise ValueError("a ROC curve needs both classes in the labels")
    fpr = np.r_[0.0, fps / fps[-1]]
    tpr = np.r_[0.0, tps / tps[-1]]
    return fpr, tpr, np.r_[np.inf, thresholds]


def pr_curve(y_true: Any, y_prob: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Recall (rising from 0) and precision (starting at 1) with their thresholds; needs positives."""
    labels, probs = _validate(y_true, y_prob)
    thresholds, tps, fps = _descending_counts(labels, probs)
    if tps[-1] == 0:
        raise ValueError("a precision-recall curve needs at least one positive label")
    recall = np.r_[0.0, tps / tps[-1]]
    precision = np.r_[1.0, tps / (tps + fps)]
    return recall, precision, np.r_[np.inf, thresholds]


def curves(y_true: Any, y_prob: Any) -> dict[str, np.ndarray]:
    """ROC (fpr, tpr) and PR (recall, precision) arrays for plotting; needs both classes."""
    fpr, tpr, _ = roc_curve(y_true, y_prob)
    recall, precision, _ = pr_curve(y_true, y_prob)
    return {"fpr": fpr, "tpr": tpr, "recall": recall, "precision": precision}


def _average_precision(labels: np.ndarray, probs: np.ndarray) -> float | None:
    positives = int(labels.sum())
    if positives == 0 or positives == labels.size:
        return None
    _, tps, fps = _descending_counts(labels, probs)
    recall = np.r_[0.0, tps / tps[-1]]
    precision = tps / (tps + fps)
    return float(np.sum(np.diff(recall) * precision))


def _log_loss(labels: np.ndarray, probs: np.ndarray) -> float:
    clipped = np.clip(probs, LOG_LOSS_EPS, 1.0 - LOG_LOSS_EPS)
    return float(-np.mean(labels * np.log(clipped) + (1.0 - labels) * np.log1p(-clipped)))


def _bin_index(probs: np.ndarray, bins: int) -> np.ndarray:
    """Equal-width bin of each probability; 1.0 falls in the last bin."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    return np.searchsorted(edges[1:-1], probs, side="right")


def _calibration(labels: np.ndarray, probs: np.ndarray, bins: int) -> pd.DataFrame:
    if bins < 1:
        raise ValueError(f"bins must be at least 1, got {bins}")
    index = _bin_index(probs, bins)
    counts = np.bincount(index, minlength=bins)
    prob_sums = np.bincount(index, weights=probs, minlength=bins)
    label_sums = np.bincount(index, weights=labels, minlength=bins)
    filled = counts > 0
    edges = np.linspace(0.0, 1.0, bins + 1)
    return pd.DataFrame(
        {
            "bin_low": edges[:-1][filled],
            "bin_high": edges[1:][filled],
            "count": counts[filled].astype(int),
            "mean_predicted": prob_sums[filled] / counts[filled],
            "observed_rate": label_sums[filled] / counts[filled],
        },
        columns=list(CALIBRATION_COLUMNS),
    )


def calibration_table(y_true: Any, y_prob: Any, bins: int = CALIBRATION_BINS) -> pd.DataFrame:
    """Mean predicted probability and observed positive rate per non-empty equal-width bin."""
    labels, probs = _validate(y_true, y_prob)
    return _calibration(labels, probs, bins)


def _ece(table: pd.DataFrame, total: int) -> float:
    gaps = (table["mean_predicted"] - table["observed_rate"]).abs()
    return float((table["count"] * gaps).sum() / total)


def binary_metrics(y_true: np.ndarray, y_prob: np.ndarray, threshold: float) -> BinaryMetrics:
    """All headline metrics of one set of predictions; a row is positive when prob >= threshold."""
    labels, probs = _validate(y_true, y_prob)
    if not math.isfinite(threshold):
        raise ValueError(f"threshold must be finite, got {threshold}")
    count = labels.size
    positives = int(labels.sum())
    predicted = probs >= threshold
    true_positives = int((predicted & (labels == 1.0)).sum())
    predicted_positives = int(predicted.sum())
    positive_rate = positives / count
    return BinaryMetrics(
        count=count,
        positives=positives,
        roc_auc=_roc_auc(labels, probs),
        pr_auc=_average_precision(labels, probs),
        log_loss=_log_loss(labels, probs),
        brier=float(np.mean((probs - labels) ** 2)),
        accuracy=float(np.mean(predicted == (labels == 1.0))),
        baseline_accuracy=max(positive_rate, 1.0 - positive_rate),
        precision=true_positives / predicted_positives if predicted_positives else 0.0,
        recall=true_positives / positives if positives else 0.0,
        threshold=float(threshold),
        ece=_ece(_calibration(labels, probs, CALIBRATION_BINS), count),
        mean_probability=float(probs.mean()),
    )


def best_f1_threshold(y_true: Any, y_prob: Any) -> float:
    """The predicted value that, used as threshold (prob >= t), maximizes F1; 0.5 without positives."""
    labels, probs = _validate(y_true, y_prob)
    positives = labels.sum()
    if positives == 0:
        return 0.5
    thresholds, tps, fps = _descending_counts(labels, probs)
    f1 = 2.0 * tps / (tps + fps + positives)
    # argmax takes the first maximum: the highest threshold among equally good ones.
    return float(thresholds[int(np.argmax(f1))])


def _slice_row(
    column: str,
    value: str,
    labels: np.ndarray,
    probs: np.ndarray,
    threshold: float,
    min_count: int,
) -> dict[str, Any]:
    count = labels.size
    positives = int(labels.sum())
    too_small = count < min_count
    roc_auc = None if too_small else _roc_auc(labels, probs)
    pr_auc = None if too_small else _average_precision(labels, probs)
    return {
        "slice_column": column,
        "slice_value": value,
        "count": count,
        "positives": positives,
        "positive_rate": positives / count,
        "roc_auc": math.nan if roc_auc is None else roc_auc,
        "pr_auc": math.nan if pr_auc is None else pr_auc,
        "log_loss": _log_loss(labels, probs),
        "accuracy": float(np.mean((probs >= threshold) == (labels == 1.0))),
        "too_small": too_small,
    }


def slice_values(values: pd.Series) -> pd.Series:
    """Slice keys as strings, missing values grouped under one marker."""
    as_object = values.astype(object)
    return as_object.where(as_object.notna(), MISSING_SLICE_VALUE).astype(str)


def slice_metrics(
    frame: pd.DataFrame,
    label_column: str,
    prob_column: str,
    threshold: float,
    columns: Sequence[str] = SLICE_COLUMNS,
    min_count: int = MIN_SLICE_COUNT,
) -> pd.DataFrame:
    """One row of metrics per (slice_column, slice_value); AUCs are NaN on too small or one-class slices."""
    missing = [c for c in (label_column, prob_column, *columns) if c not in frame.columns]
    if missing:
        raise ValueError(f"slice_metrics: frame lacks column(s) {missing}")
    if not math.isfinite(threshold):
        raise ValueError(f"threshold must be finite, got {threshold}")
    rows: list[dict[str, Any]] = []
    if len(frame):
        labels, probs = _validate(frame[label_column].to_numpy(), frame[prob_column].to_numpy())
        for column in columns:
            keys = slice_values(frame[column]).to_numpy()
            for value in np.unique(keys):
                mask = keys == value
                rows.append(
                    _slice_row(column, str(value), labels[mask], probs[mask], threshold, min_count)
                )
    result = pd.DataFrame(rows, columns=list(SLICE_METRIC_COLUMNS))
    if result.empty:
        return result.astype(_EMPTY_SLICE_DTYPES)
    return result.sort_values(
        ["slice_column", "count", "slice_value"], ascending=[True, False, True], kind="stable"
    ).reset_index(drop=True)
