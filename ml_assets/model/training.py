"""The training dataset (window and split) and model training, as pure functions."""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from ml_assets.columns import INGESTION_DATE_COLUMN
from ml_assets.model.features import LABEL
from ml_assets.model.metrics import best_f1_threshold
from ml_assets.model.network import (
    ModelParams,
    PlattScaling,
    build_model,
    fit_model,
    fit_platt_scaling,
    input_columns,
    predict_proba,
    with_platt_scaling,
)

if TYPE_CHECKING:
    import keras

SPLIT_COLUMN = "split"
TRAIN, VALIDATION, EVALUATION = "train", "validation", "evaluation"
HASH_BUCKETS = 10  # the book's 9:1 split: one bucket of ten is held out
SplitKind = Literal["time", "hash"]


class TrainingWindow(BaseModel):
    """Which labelled days a model learns from and how they are split (`TrainingWindowConfig`)."""

    model_config = ConfigDict(frozen=True)

    window_days: int = Field(default=60, ge=2, description="days in the window")
    evaluation_days: int = Field(
        default=7, ge=1, description="most recent days held out (time split)"
    )
    split: SplitKind = Field(default="time", description="'time' or the book's 9:1 'hash' split")
    end_date: str | None = Field(
        default=None, description="last day (YYYY-MM-DD); default: latest day with features"
    )


@dataclass(frozen=True)
class Window:
    """The inclusive range of ingestion days a training dataset covers."""

    start: pd.Timestamp
    end: pd.Timestamp

    def __str__(self) -> str:
        return f"{self.start.date()}..{self.end.date()}"


def training_window(last_day: pd.Timestamp, window_days: int) -> Window:
    """The `window_days` days ending with `last_day`."""
    end = pd.Timestamp(last_day).normalize()
    return Window(end - pd.Timedelta(days=window_days - 1), end)


def hash_bucket(complaint_ids: pd.Series) -> np.ndarray:
    """A stable bucket in [0, HASH_BUCKETS) per complaint id (crc32, not Python's salted hash)."""
    return np.array([zlib.crc32(str(i).encode()) % HASH_BUCKETS for i in complaint_ids], dtype=int)


def split_dataset(
    features: pd.DataFrame, window: Window, kind: SplitKind, evaluation_days: int
) -> pd.DataFrame:
    """Labelled features of the window with a split column: train, validation or evaluation."""
    days = pd.to_datetime(features[INGESTION_DATE_COLUMN])
    labelled = features.loc[
        features[LABEL].notna() & (days >= window.start) & (days <= window.end)
    ].copy()
    labelled = labelled.sort_values([INGESTION_DATE_COLUMN, "complaint_id"]).reset_index(drop=True)
    bucket = hash_bucket(labelled["complaint_id"])
    if kind == "time":
        cutoff = window.end - pd.Timedelta(days=evaluation_days - 1)
        held_out = (
            pd.to_datetime(labelled[INGESTION_DATE_COLUMN]).to_numpy() >= cutoff.to_datetime64()
        )
        validation = ~held_out & (bucket == 0)
    else:
        held_out = bucket == 0
        validation = bucket == 1
    # Early stopping and the decision threshold use a slice of the training data, so the
    # evaluation split is never used to tune anything.
    labelled[SPLIT_COLUMN] = np.where(held_out, EVALUATION, np.where(validation, VALIDATION, TRAIN))
    labelled[SPLIT_COLUMN] = labelled[SPLIT_COLUMN].astype("string")
    labelled[LABEL] = labelled[LABEL].astype("float64")
    return labelled


def split_summary(dataset: pd.DataFrame) -> dict[str, dict[str, int | str]]:
    """Rows, positives and date range per split."""
    summary: dict[str, dict[str, int | str]] = {}
    for name, rows in dataset.groupby(SPLIT_COLUMN, observed=True):
        days = pd.to_datetime(rows[INGESTION_DATE_COLUMN])
        summary[str(name)] = {
            "rows": len(rows),
            "positives": int(rows[LABEL].sum()),
            "first_day": str(days.min().date()),
            "last_day": str(days.max().date()),
        }
    return summary


@dataclass
class TrainedModel:
    """A trained network (calibrated), its per-epoch history, and the calibration and decision
    threshold chosen on validation."""

    model: keras.Model
    history: dict[str, list[float]]
    threshold: float
    calibration: PlattScaling


def fitting_splits(dataset: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The train and validation splits of a training dataset, each with both classes."""
    train = dataset[dataset[SPLIT_COLUMN] == TRAIN]
    validation = dataset[dataset[SPLIT_COLUMN] == VALIDATION]
    for name, rows in ((TRAIN, train), (VALIDATION, validation)):
        if rows[LABEL].nunique() < 2:
            raise ValueError(
                f"the {name} split has {len(rows)} rows and not both classes: widen the training "
                "window (window_days) or land more labelled data"
            )
    return train, validation


def train_dispute_model(
    dataset: pd.DataFrame,
    params: ModelParams,
    extra_hashed: Mapping[str, int] | None = None,
    callbacks: Sequence[keras.callbacks.Callback] = (),
) -> TrainedModel:
    """Fit the network on the train split, stop early, calibrate and pick the threshold on
    validation (never on the evaluation split).

    `extra_hashed` (column -> hash bins): dataset columns beyond FEATURE_COLUMNS for the network
    to embed, as `build_model` takes them (for benches trying a feature before it is one).
    `callbacks` go to `model.fit` (MLflow's, to log each epoch on the active run).
    """
    train, validation = fitting_splits(dataset)
    inputs = input_columns(params, list(extra_hashed or {}))
    model = build_model(train[inputs], params, extra_hashed)
    history = fit_model(
        model,
        train[inputs],
        train[LABEL].to_numpy(),
        validation[inputs],
        validation[LABEL].to_numpy(),
        params,
        callbacks=callbacks,
    )
    validation_labels = validation[LABEL].to_numpy()
    calibration = fit_platt_scaling(validation_labels, predict_proba(model, validation[inputs]))
    calibrated = with_platt_scaling(model, calibration)
    threshold = best_f1_threshold(validation_labels, predict_proba(calibrated, validation[inputs]))
    return TrainedModel(calibrated, history, threshold, calibration)
