"""Live performance: served predictions joined with the labels that arrived since, per version."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from ml_assets.columns import REQUEST_DATE_COLUMN
from ml_assets.model.blessing import BlessingPolicy
from ml_assets.model.metrics import binary_metrics

LABEL_COLUMN = "label"
LIVE_PERFORMANCE_COLUMNS: dict[str, str] = {
    REQUEST_DATE_COLUMN: "datetime64[ns]",
    "model_version": "string",
    "served": "int64",  # predictions answered that day
    "labelled": "int64",  # of those, the ones whose label has arrived
    "positives": "int64",
    "roc_auc": "float64",
    "pr_auc": "float64",
    "ece": "float64",
    "mean_probability": "float64",  # predicted positive rate, as probabilities
    "positive_rate": "float64",  # actual
    "predicted_positive_rate": "float64",  # share answered `disputed` at the served threshold
    "precision": "float64",
    "recall": "float64",
    "threshold": "float64",
}


def join_labels(served: pd.DataFrame, labels: pd.DataFrame) -> pd.DataFrame:
    """Served predictions with their complaint's label (NaN until it arrives).

    `labels` has complaint_id and label (0/1, NaN when not known yet); a complaint landed twice
    keeps one label, the known one.
    """
    known = labels.dropna(subset=[LABEL_COLUMN]).drop_duplicates("complaint_id", keep="last")
    return served.merge(
        known[["complaint_id", LABEL_COLUMN]], on="complaint_id", how="left", validate="m:1"
    )


def live_performance(day: str, joined: pd.DataFrame) -> pd.DataFrame:
    """Per model version served on `day`: labelled predictions, ROC and PR AUC, ECE, predicted
    against actual positive rate, precision and recall at the threshold it served with."""
    rows: list[dict[str, object]] = []
    for version, rows_of_version in joined.groupby("model_version", sort=True):
        thresholds = rows_of_version["decision_threshold"].dropna().unique()
        if len(thresholds) > 1:
            raise ValueError(
                f"version {version} served with {len(thresholds)} thresholds on {day}: "
                f"{sorted(thresholds)}; one version has one threshold"
            )
        threshold = float(thresholds[0]) if len(thresholds) else math.nan
        labelled = rows_of_version.dropna(subset=[LABEL_COLUMN])
        row: dict[str, object] = {
            REQUEST_DATE_COLUMN: pd.Timestamp(day),
            "model_version": str(version),
            "served": len(rows_of_version),
            "labelled": len(labelled),
            "threshold": threshold,
        }
        if len(labelled) and not math.isnan(threshold):
            probabilities = labelled["dispute_probability"].to_numpy(dtype="float64")
            metrics = binary_metrics(
                labelled[LABEL_COLUMN].to_numpy(dtype="float64"), probabilities, threshold
            )
            row |= {
                "positives": metrics.positives,
                "roc_auc": metrics.roc_auc,
                "pr_auc": metrics.pr_auc,
                "ece": metrics.ece,
                "mean_probability": metrics.mean_probability,
                "positive_rate": metrics.positives / metrics.count,
                "predicted_positive_rate": float(np.mean(probabilities >= threshold)),
                "precision": metrics.precision,
                "recall": metrics.recall,
            }
        else:
            row["positives"] = int(labelled[LABEL_COLUMN].sum()) if len(labelled) else 0
        rows.append(row)
    return pd.DataFrame(rows, columns=list(LIVE_PERFORMANCE_COLUMNS)).astype(
        LIVE_PERFORMANCE_COLUMNS
    )


class LiveEvidencePolicy(BaseModel):
    """When a version's live performance on a day is evidence for retraining (`LiveConfig`)."""

    model_config = ConfigDict(frozen=True)

    auc_floor: float = Field(
        default=BlessingPolicy.model_fields["auc_floor"].default,
        description="live ROC AUC below this (the blessing's floor)",
    )
    margin: float = Field(default=0.05, description="or more than this below the offline ROC AUC")
    # Fewer labelled predictions on a day: its AUC is noise.
    min_labelled: int = Field(default=200, description="on a day with at least this many labels")


def live_degradation(
    labelled: int, live_auc: float, offline_auc: float | None, policy: LiveEvidencePolicy
) -> str:
    """Why a version's live ROC AUC on a day is evidence for retraining, or "" when it is not
    (too few labels, or within the floor and the margin below its offline AUC)."""
    if labelled < policy.min_labelled or math.isnan(live_auc):
        return ""
    if live_auc < policy.auc_floor:
        return (
            f"live ROC AUC {live_auc:.3f} below the floor {policy.auc_floor:.2f} "
            f"({labelled} labelled)"
        )
    if offline_auc is not None and live_auc < offline_auc - policy.margin:
        return (
            f"live ROC AUC {live_auc:.3f} more than {policy.margin:.2f} below the offline "
            f"{offline_auc:.3f} ({labelled} labelled)"
        )
    return ""
