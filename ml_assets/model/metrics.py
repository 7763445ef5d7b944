"""Binary-classification metrics, calibration and per-slice evaluation on top of scikit-learn."""

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
MISSING_SLICE_VALUE = "[missing]"
CALIBRATION_COLUMNS: tuple[str, ...] = (
    "bin_low",
    "bin_high",
    "count",
    "mean_predicted",
    "observed_rate",
)
# The slice table's columns, in order, with the dtypes of an empty table.
_SLICE_METRIC_DTYPES: dict[str, Any] = {
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
SLICE_METRIC_COLUMNS: tuple[str, ...] = tuple(_SLICE_METRIC_DTYPES)


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
    """Labels as a 0/1 int array and probabilities as a float array, or a clear ValueError."""
    # scikit-learn checks shapes too, but accepts any score (ROC AUC) or label set (log loss with
    # `labels`); these messages say which of our inputs is wrong and what it holds.
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
    return labels.astype(int), probs


def _ranking_metrics(labels: np.ndarray, probs: np.ndarray) -> tuple[float | None, float | None]:
    """ROC AUC and average precision, None when the labels hold one class only."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    # scikit-learn answers NaN with a warning (ROC AUC) or a number (AP: 0 without positives, 1
    # with positives only); neither ranks anything, and the blessing reads None as "undefined".
    if labels.min() == labels.max():
        return None, None
    return float(roc_auc_score(labels, probs)), float(average_precision_score(labels, probs))


def _log_loss(labels: np.ndarray, probs: np.ndarray) -> float:
    from sklearn.metrics import log_loss

    # `labels` lets a one-class slice have a log loss; scikit-learn clips at float64's epsilon.
    return float(log_loss(labels, probs, labels=[0, 1]))


def _accuracy(labels: np.ndarray, probs: np.ndarray, threshold: float) -> float:
    from sklearn.metrics import accuracy_score

    return float(accuracy_score(labels, probs >= threshold))


def _calibration(labels: np.ndarray, probs: np.ndarray, bins: int) -> pd.DataFrame:
    from sklearn.calibration import calibration_curve

    if bins < 1:
        raise ValueError(f"bins must be at least 1, got {bins}")
    observed, predicted = calibration_curve(labels, probs, n_bins=bins, strategy="uniform")
    # calibration_curve drops empty bins and returns no counts, which the ECE weighs by: count
    # with its own rule (an inner edge belongs to the bin below it).
    edges = np.linspace(0.0, 1.0, bins + 1)
    counts = np.bincount(np.searchsorted(edges[1:-1], probs), minlength=bins)
    filled = counts > 0
    return pd.DataFrame(
        {
            "bin_low": edges[:-1][filled],
            "bin_high": edges[1:][filled],
            "count": counts[filled].astype(int),
            "mean_predicted": predicted,
            "observed_rate": observed,
        },
        columns=list(CALIBRATION_COLUMNS),
    )


def calibration_table(y_true: Any, y_prob: Any, bins: int = CALIBRATION_BINS) -> pd.DataFrame:
    """Mean predicted probability and observed positive rate per non-empty equal-width bin
    (scikit-learn's `calibration_curve`), with the rows in each bin."""
    labels, probs = _validate(y_true, y_prob)
    return _calibration(labels, probs, bins)


def expected_calibration_error(table: pd.DataFrame) -> float:
    """ECE: the gap between mean predicted and observed rate per bin, weighted by the bin's rows."""
    # No ECE in scikit-learn (nor in MLflow's evaluation): it is this one weighted mean.
    gaps = (table["mean_predicted"] - table["observed_rate"]).abs()
    return float((table["count"] * gaps).sum() / table["count"].sum())


def binary_metrics(y_true: np.ndarray, y_prob: np.ndarray, threshold: float) -> BinaryMetrics:
    """All headline metrics of one set of predictions; a row is positive when prob >= threshold."""
    from sklearn.metrics import brier_score_loss, precision_recall_fscore_support

    labels, probs = _validate(y_true, y_prob)
    if not math.isfinite(threshold):
        raise ValueError(f"threshold must be finite, got {threshold}")
    positive_rate = float(labels.mean())
    roc_auc, pr_auc = _ranking_metrics(labels, probs)
    # Nothing predicted positive, or no positives: 0, without a warning per one-class day.
    precision, recall, _, _ = precision_recall_fscore_support(
        labels,
        probs >= threshold,
        average="binary",
        # scikit-learn has no type hints: inferred from the default "warn", the type says str.
        zero_division=0,  # pyright: ignore[reportArgumentType]
    )
    return BinaryMetrics(
        count=labels.size,
        positives=int(labels.sum()),
        roc_auc=roc_auc,
        pr_auc=pr_auc,
        log_loss=_log_loss(labels, probs),
        brier=float(brier_score_loss(labels, probs, labels=[0, 1])),
        accuracy=_accuracy(labels, probs, threshold),
        baseline_accuracy=max(positive_rate, 1.0 - positive_rate),
        precision=float(precision),
        recall=float(recall),
        threshold=float(threshold),
        ece=expected_calibration_error(_calibration(labels, probs, CALIBRATION_BINS)),
        mean_probability=float(probs.mean()),
    )


def best_f1_threshold(y_true: Any, y_prob: Any) -> float:
    """The predicted value that, used as threshold (prob >= t), maximizes F1; 0.5 without positives."""
    from sklearn.metrics import precision_recall_curve

    labels, probs = _validate(y_true, y_prob)
    if not labels.any():
        return 0.5
    precision, recall, thresholds = precision_recall_curve(labels, probs)
    # The curve's last point (recall 0) has no threshold. F1 is 0 where no positive is caught yet
    # (precision and recall 0: the top scores are negatives).
    precision, recall = precision[:-1], recall[:-1]
    denominator = precision + recall
    f1 = np.divide(
        2.0 * precision * recall, denominator, out=np.zeros_like(denominator), where=denominator > 0
    )
    # Thresholds rise along the arrays: the last maximum is the highest among equally good ones.
    return float(thresholds[len(f1) - 1 - int(np.argmax(f1[::-1]))])


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
    roc_auc, pr_auc = (None, None) if too_small else _ranking_metrics(labels, probs)
    return {
        "slice_column": column,
        "slice_value": value,
        "count": count,
        "positives": positives,
        "positive_rate": positives / count,
        "roc_auc": math.nan if roc_auc is None else roc_auc,
        "pr_auc": math.nan if pr_auc is None else pr_auc,
        "log_loss": _log_loss(labels, probs),
        "accuracy": _accuracy(labels, probs, threshold),
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
        return result.astype(_SLICE_METRIC_DTYPES)
    return result.sort_values(
        ["slice_column", "count", "slice_value"], ascending=[True, False, True], kind="stable"
    ).reset_index(drop=True)
