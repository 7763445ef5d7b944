"""Input drift and training/serving skew: a day's model inputs against the served model's
training data, feature by feature (TFDV's comparators, computed with pandas and scipy)."""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from enum import StrEnum

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from ml_assets.model.features import CATEGORICAL_FEATURES, LABEL, TEXT_FEATURE

# Narrative lengths (in tokens) are compared as a histogram over these edges: fixed, so the
# reference and every day share the bins, and wide at the top, where real narratives spread out.
NARRATIVE_LENGTH_EDGES: tuple[float, ...] = (1, 25, 50, 100, 150, 200, 300, 500, 1000, math.inf)
# Keras' TextVectorization "lower_and_strip_punctuation" standardization, as its source defines
# it: repeated here so the drift asset counts tokens as the model does without importing
# TensorFlow (seconds of start-up and a GiB of memory for one regex).
_PUNCTUATION = re.compile(r'[!"#$%&()\*\+,-\./:;<=>?@\[\\\]^_`{|}~\']')

DRIFT_COLUMNS: dict[str, str] = {
    "source": "string",  # landed (the day's complaints) or served (the day's requests)
    "feature": "string",
    "statistic": "string",  # linf, jsd, oov_increase
    "value": "float64",
    "worst": "string",  # the category (or bin) that moved most
    "rows": "int64",  # rows of the day compared
    "level": "string",
}


class DriftLevel(StrEnum):
    """How far a feature moved: within the warning threshold, beyond it, or beyond the error one."""

    OK = "ok"
    WARN = "warn"
    ERROR = "error"


class DriftThresholds(BaseModel):
    """Warning and error thresholds of each statistic (`DriftConfig` in the launchpad)."""

    model_config = ConfigDict(frozen=True)

    # L-infinity distance between category shares (TFDV's comparator); measured on stable
    # synthetic days of 400 rows the largest per day is about 0.06 (sampling noise).
    linf_warn: float = Field(default=0.10, description="category shares, L-infinity")
    linf_error: float = 0.20
    # Jensen-Shannon divergence (base 2) of narrative-length histograms and of the empty share.
    jsd_warn: float = Field(default=0.05, description="Jensen-Shannon divergence")
    jsd_error: float = 0.15
    oov_warn: float = Field(default=0.05, description="rise of out-of-vocabulary share")
    oov_error: float = 0.15
    # Fewer rows in a day: its frequencies are noise, not judged.
    min_rows: int = Field(default=100, description="fewer rows in a day: not judged")

    def level(self, statistic: str, value: float) -> DriftLevel:
        """The level of one statistic's value."""
        warn, error = {
            "linf": (self.linf_warn, self.linf_error),
            "jsd": (self.jsd_warn, self.jsd_error),
            "oov_increase": (self.oov_warn, self.oov_error),
        }[statistic]
        if value > error:
            return DriftLevel.ERROR
        return DriftLevel.WARN if value > warn else DriftLevel.OK


class InputProfile(BaseModel):
    """What a set of model inputs looks like: the reference a model is logged with, or a day."""

    model_config = ConfigDict(frozen=True)

    rows: int
    categories: dict[str, dict[str, float]]  # feature -> category -> share of rows
    narrative_lengths: list[float]  # share of non-empty narratives per NARRATIVE_LENGTH_EDGES bin
    empty_narrative_share: float
    oov_share: float  # share of narrative tokens outside the vocabulary
    label_rate: float | None  # share disputed among labelled rows; None: no labels
    # The model's narrative vocabulary: kept in a model's reference, empty in a day's profile.
    vocabulary: list[str] = Field(default_factory=list)


def tokens(text: str) -> list[str]:
    """A narrative's tokens, standardized as the model's TextVectorization does."""
    return _PUNCTUATION.sub("", text.lower()).split()


def _shares(values: pd.Series) -> dict[str, float]:
    """Share of rows per value."""
    return {str(k): float(v) for k, v in values.astype(str).value_counts(normalize=True).items()}


def _length_histogram(lengths: np.ndarray) -> list[float]:
    """Share of non-empty narratives per length bin (all zero without any)."""
    counts, _ = np.histogram(lengths[lengths > 0], bins=np.array(NARRATIVE_LENGTH_EDGES))
    total = counts.sum()
    return [float(c / total) if total else 0.0 for c in counts]


def profile_inputs(
    inputs: pd.DataFrame, labels: pd.Series | None, vocabulary: Iterable[str]
) -> InputProfile:
    """The profile of model inputs (columns of FEATURE_COLUMNS) and their labels (0/1/NaN)."""
    vocabulary = list(vocabulary)
    known = set(vocabulary)
    narratives = [tokens(str(t)) for t in inputs[TEXT_FEATURE].fillna("")]
    counted = Counter(token for narrative in narratives for token in narrative)
    total_tokens = sum(counted.values())
    outside = sum(n for token, n in counted.items() if token not in known)
    lengths = np.array([len(n) for n in narratives], dtype="float64")
    labelled = labels.dropna() if labels is not None else pd.Series(dtype="float64")
    return InputProfile(
        rows=len(inputs),
        categories={name: _shares(inputs[name]) for name in CATEGORICAL_FEATURES},
        narrative_lengths=_length_histogram(lengths),
        empty_narrative_share=float((lengths == 0).mean()) if len(lengths) else 0.0,
        oov_share=outside / total_tokens if total_tokens else 0.0,
        label_rate=float(labelled.astype(float).mean()) if len(labelled) else None,
    )


def reference_profile(features: pd.DataFrame, vocabulary: Sequence[str]) -> InputProfile:
    """A model's reference: the profile of rows of its training dataset, and its vocabulary."""
    profile = profile_inputs(features, features[LABEL], vocabulary)
    return profile.model_copy(update={"vocabulary": list(vocabulary)})


def linf_distance(reference: dict[str, float], current: dict[str, float]) -> tuple[float, str]:
    """The L-infinity distance between two category frequency tables, and the category behind it
    (a category absent from one side counts as share 0 there)."""
    categories = sorted(set(reference) | set(current))
    if not categories:
        return 0.0, ""
    gaps = [abs(reference.get(c, 0.0) - current.get(c, 0.0)) for c in categories]
    worst = int(np.argmax(gaps))
    return float(gaps[worst]), categories[worst]


def js_divergence(reference: Sequence[float], current: Sequence[float]) -> float:
    """Jensen-Shannon divergence (base 2, in [0, 1]) between two histograms; 0 when either is empty."""
    from scipy.spatial.distance import jensenshannon

    p, q = np.asarray(reference, dtype="float64"), np.asarray(current, dtype="float64")
    if p.sum() == 0 or q.sum() == 0:
        return 0.0
    # scipy returns the distance, the square root of the divergence.
    return float(jensenshannon(p, q, base=2) ** 2)


def _bernoulli(share: float) -> list[float]:
    return [share, 1.0 - share]


def compare_profiles(
    source: str, reference: InputProfile, current: InputProfile, thresholds: DriftThresholds
) -> pd.DataFrame:
    """One row per feature and statistic: how far `current` moved from `reference`, and its level.

    A day with fewer than `min_rows` rows gives no rows: its frequencies are noise.
    """
    if current.rows < thresholds.min_rows:
        return pd.DataFrame(columns=list(DRIFT_COLUMNS)).astype(DRIFT_COLUMNS)
    rows: list[tuple[str, str, float, str]] = []
    for name in CATEGORICAL_FEATURES:
        value, worst = linf_distance(reference.categories[name], current.categories.get(name, {}))
        rows.append((name, "linf", value, worst))
    length_gaps = np.abs(
        np.asarray(reference.narrative_lengths) - np.asarray(current.narrative_lengths)
    )
    worst_bin = int(np.argmax(length_gaps))
    rows.append(
        (
            "narrative_length",
            "jsd",
            js_divergence(reference.narrative_lengths, current.narrative_lengths),
            f"[{NARRATIVE_LENGTH_EDGES[worst_bin]:g}, {NARRATIVE_LENGTH_EDGES[worst_bin + 1]:g})",
        )
    )
    rows.append(
        (
            "empty_narrative_share",
            "jsd",
            js_divergence(
                _bernoulli(reference.empty_narrative_share),
                _bernoulli(current.empty_narrative_share),
            ),
            f"{reference.empty_narrative_share:.3f} -> {current.empty_narrative_share:.3f}",
        )
    )
    rows.append(
        (
            "narrative_vocabulary",
            "oov_increase",
            max(0.0, current.oov_share - reference.oov_share),
            f"{reference.oov_share:.3f} -> {current.oov_share:.3f}",
        )
    )
    if reference.label_rate is not None and current.label_rate is not None:
        value, _ = linf_distance(
            {"1": reference.label_rate, "0": 1 - reference.label_rate},
            {"1": current.label_rate, "0": 1 - current.label_rate},
        )
        rows.append(
            (
                "label_balance",
                "linf",
                value,
                f"{reference.label_rate:.3f} -> {current.label_rate:.3f}",
            )
        )
    frame = pd.DataFrame(
        [
            {
                "source": source,
                "feature": feature,
                "statistic": statistic,
                "value": value,
                "worst": worst,
                "rows": current.rows,
                "level": thresholds.level(statistic, value).value,
            }
            for feature, statistic, value, worst in rows
        ],
        columns=list(DRIFT_COLUMNS),
    )
    return frame.astype(DRIFT_COLUMNS)


def worst_level(drift: pd.DataFrame) -> DriftLevel:
    """The highest level among the rows (OK when there are none)."""
    levels = set(drift["level"])
    for level in (DriftLevel.ERROR, DriftLevel.WARN):
        if level.value in levels:
            return level
    return DriftLevel.OK


def worst_features(drift: pd.DataFrame, thresholds: DriftThresholds, limit: int) -> dict[str, str]:
    """The features that moved most relative to their error threshold, for check metadata."""
    errors = {"linf": thresholds.linf_error, "jsd": thresholds.jsd_error}
    errors["oov_increase"] = thresholds.oov_error
    ranked = (
        drift.assign(_ratio=drift["value"] / drift["statistic"].map(errors))
        .sort_values("_ratio", ascending=False)
        .head(limit)
    )
    return {
        f"{r.feature} ({r.statistic})": f"{r.value:.3f} [{r.level}] worst: {r.worst}"
        for r in ranked.itertuples(index=False)
    }
