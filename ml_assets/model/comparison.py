"""A challenger against the champion on the same rows: paired bootstrap AUC differences, overall
and per slice, with Holm's correction for the number of comparisons."""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

# The comparison of every evaluation row, beside the slices'.
OVERALL = "overall"


@dataclass(frozen=True)
class Comparison:
    """One comparison (overall, or a slice): the AUCs, the interval of their difference, and
    whether it shows the challenger worse."""

    name: str
    positives: int
    negatives: int
    challenger_auc: float
    champion_auc: float
    low: float  # the difference's interval, challenger minus champion
    high: float
    p_value: float  # one-sided, of "the challenger is not worse" (difference >= 0)
    tolerance: float
    worse: bool = False  # significant after Holm's correction, and by more than the tolerance

    @property
    def difference(self) -> float:
        """Challenger AUC minus champion AUC on the rows themselves."""
        return self.challenger_auc - self.champion_auc

    def describe(self, error_rate: float) -> str:
        """The comparison in words: both AUCs, the tolerance, and what the bootstrap says."""
        sign = "<" if self.difference < -self.tolerance else ">="
        interval = (
            f"difference {self.difference:+.3f}, {1 - error_rate:.0%} bootstrap interval "
            f"[{self.low:+.3f}, {self.high:+.3f}], one-sided p {self.p_value:.4f}"
        )
        verdict = "worse beyond noise" if self.worse else "not worse beyond noise"
        prefix = "challenger AUC" if self.name == OVERALL else f"{self.name}: challenger AUC"
        return (
            f"{prefix} {self.challenger_auc:.3f} {sign} champion {self.champion_auc:.3f} - "
            f"{self.tolerance:.3f} ({interval}, {self.positives}+{self.negatives} rows): {verdict}"
        )


def _rank_auc(labels: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """ROC AUC of each row of `scores` (resamples x rows) against `labels` of the same shape."""
    from scipy.stats import rankdata

    ranks = rankdata(scores, axis=-1)  # ties share their mean rank, as scikit-learn's AUC counts
    positives = labels.sum(axis=-1)
    negatives = labels.shape[-1] - positives
    rank_sum = (ranks * labels).sum(axis=-1)
    return (rank_sum - positives * (positives + 1) / 2) / (positives * negatives)


def resample_rows(labels: np.ndarray, rows: np.ndarray, resamples: int, key: str) -> np.ndarray:
    """Row indices of `resamples` bootstrap samples of `rows` (resamples x rows), positives and
    negatives drawn separately so that every sample keeps both classes in the same numbers.

    Seeded by `key` alone, so that every model is scored on the same samples: the differences
    are paired."""
    rng = np.random.default_rng(zlib.crc32(key.encode()))
    positives = rows[labels[rows] == 1]
    negatives = rows[labels[rows] == 0]
    return np.concatenate(
        [
            rng.choice(positives, (resamples, positives.size)),
            rng.choice(negatives, (resamples, negatives.size)),
        ],
        axis=1,
    )


def auc_draws(labels: np.ndarray, scores: np.ndarray, samples: np.ndarray) -> np.ndarray:
    """A model's AUC on each bootstrap sample (a row of `samples`)."""
    return _rank_auc(labels[samples].astype("float64"), scores[samples])


def holm(p_values: list[float], error_rate: float) -> list[bool]:
    """Which hypotheses Holm's step-down procedure rejects at a family-wise `error_rate`.

    Written here because neither installed library has it: SciPy corrects only for the false
    discovery rate (`false_discovery_control`), and statsmodels' `multipletests` would be a
    dependency for these few lines."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    rejected = [False] * len(p_values)
    for rank, index in enumerate(order):
        if p_values[index] > error_rate / (len(p_values) - rank):
            break
        rejected[index] = True
    return rejected


def compare(
    names: list[str],
    counts: Mapping[str, tuple[int, int]],
    challenger: Mapping[str, tuple[float, np.ndarray]],
    champion: Mapping[str, tuple[float, np.ndarray]],
    tolerances: Mapping[str, float],
    error_rate: float,
) -> list[Comparison]:
    """Each comparison's verdict from both models' AUC on the rows and on the same bootstrap
    samples: worse when the difference is below zero with Holm's correction over all of them,
    and below minus its tolerance on the rows themselves."""
    found = []
    for name in names:
        (chal_auc, chal_draws), (champ_auc, champ_draws) = challenger[name], champion[name]
        differences = chal_draws - champ_draws
        low, high = np.quantile(differences, [error_rate / 2, 1 - error_rate / 2])
        # The share of samples where the challenger is not worse, counting the rows themselves
        # as one more sample, so that no p-value is 0.
        p_value = (1 + int((differences >= 0).sum())) / (1 + differences.size)
        positives, negatives = counts[name]
        found.append(
            Comparison(
                name,
                positives,
                negatives,
                chal_auc,
                champ_auc,
                float(low),
                float(high),
                p_value,
                tolerances[name],
            )
        )
    rejected = holm([c.p_value for c in found], error_rate)
    return [
        Comparison(**{**c.__dict__, "worse": bool(r and c.difference < -c.tolerance)})
        for c, r in zip(found, rejected, strict=True)
    ]


def comparison_groups(
    labels: np.ndarray, slice_keys: Mapping[str, np.ndarray], min_class: int
) -> dict[str, np.ndarray]:
    """The rows of each comparison: all of them ("overall"), and each slice ("column=value")
    with at least `min_class` positives and as many negatives."""
    groups = {OVERALL: np.arange(labels.size)}
    for column, keys in slice_keys.items():
        for value in np.unique(keys):
            rows = np.flatnonzero(keys == value)
            positives = int(labels[rows].sum())
            if positives >= min_class and rows.size - positives >= min_class:
                groups[f"{column}={value}"] = rows
    return groups


def compare_scores(
    labels: np.ndarray,
    challenger: np.ndarray,
    champion: np.ndarray,
    groups: Mapping[str, np.ndarray],
    tolerances: Mapping[str, float],
    resamples: int,
    error_rate: float,
) -> list[Comparison]:
    """Both models' AUCs on each group of rows and on the same bootstrap samples of it, judged
    by `compare`."""
    drawn: dict[str, dict[str, tuple[float, np.ndarray]]] = {"challenger": {}, "champion": {}}
    counts = {}
    for name, rows in groups.items():
        samples = resample_rows(labels, rows, resamples, name)
        for model, scores in (("challenger", challenger), ("champion", champion)):
            on_rows = float(auc_draws(labels, scores, rows[None, :])[0])
            drawn[model][name] = (on_rows, auc_draws(labels, scores, samples))
        positives = int(labels[rows].sum())
        counts[name] = (positives, rows.size - positives)
    return compare(
        list(groups), counts, drawn["challenger"], drawn["champion"], tolerances, error_rate
    )
