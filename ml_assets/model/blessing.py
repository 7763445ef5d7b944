"""The blessing: whether a challenger model is good enough to replace the champion."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from ml_assets.model.comparison import OVERALL, Comparison
from ml_assets.model.metrics import MIN_SLICE_COUNT, BinaryMetrics

# Comparisons sitting exactly on a boundary (0.70 vs 0.71 - 0.01) must not fail on float noise.
_EPS = 1e-12


class BlessingPolicy(BaseModel):
    """Thresholds a challenger must meet to be blessed (`BlessingConfig` in the launchpad)."""

    model_config = ConfigDict(frozen=True)

    auc_floor: float = Field(default=0.55, description="the challenger's ROC AUC at least this")
    champion_tolerance: float = Field(
        default=0.01,
        description="refused when more than this below the champion's AUC, beyond noise",
    )
    slice_tolerance: float = Field(
        default=0.05,
        description="refused when a judged slice is more than this below the champion's, "
        "beyond noise",
    )
    # 50 of each class (measured in bench/gate.py, 20 seeds of the default model on the demo's
    # 60 days): 2.6% of equal challengers refused, against 6.1% with 20. Fewer disputes leave a
    # slice's AUC too noisy to judge (8 disputes move it by +-0.1).
    min_slice_class: int = Field(
        default=50,
        ge=5,
        description="a slice is judged only with at least this many disputes and non-disputes",
    )
    error_rate: float = Field(
        default=0.05,
        gt=0,
        lt=1,
        description="chance of refusing an equal challenger, over all comparisons (Holm)",
    )
    resamples: int = Field(
        default=2000, ge=100, description="paired bootstrap samples of the evaluation rows"
    )
    min_slice_count: int = Field(
        default=MIN_SLICE_COUNT, description="slices with fewer rows are reported as too small"
    )
    # Users read `dispute_probability` as a probability: the default model measures about 0.02.
    ece_ceiling: float = Field(default=0.10, description="expected calibration error at most this")


@dataclass(frozen=True)
class BlessingVerdict:
    """The outcome and every condition checked, in words."""

    blessed: bool
    conditions: list[tuple[str, bool]]

    @property
    def failures(self) -> list[str]:
        """The conditions that failed, in words."""
        return [text for text, passed in self.conditions if not passed]

    def to_markdown(self) -> str:
        """A bullet list of the conditions marked ✅ or ❌."""
        return "\n".join(f"- {'✅' if passed else '❌'} {text}" for text, passed in self.conditions)


def _at_least(value: float, bound: float) -> bool:
    return value >= bound - _EPS


def _comparison_conditions(
    comparisons: Sequence[Comparison], policy: BlessingPolicy
) -> list[tuple[str, bool]]:
    """The overall comparison, then every slice worse beyond noise (or one line saying none)."""
    rate = policy.error_rate
    conditions = [(c.describe(rate), not c.worse) for c in comparisons if c.name == OVERALL]
    slices = [c for c in comparisons if c.name != OVERALL]
    conditions += [(c.describe(rate), False) for c in slices if c.worse]
    if not any(c.worse for c in slices):
        within_noise = sum(c.difference < -c.tolerance for c in slices)
        conditions.append(
            (
                f"no slice worse beyond noise: {len(slices)} slice(s) judged, each with >= "
                f"{policy.min_slice_class} disputes and >= {policy.min_slice_class} "
                f"non-disputes ({within_noise} below champion - {policy.slice_tolerance:.3f} "
                "only within noise)",
                True,
            )
        )
    return conditions


def gate_rule(policy: BlessingPolicy) -> str:
    """How the comparisons with the champion decide, in words (for the check's metadata)."""
    return (
        f"Challenger and champion are scored on the same evaluation rows, overall and on every "
        f"slice with >= {policy.min_slice_class} disputes and >= {policy.min_slice_class} "
        f"non-disputes. A comparison refuses when the challenger's AUC is below the champion's "
        f"by more than its tolerance ({policy.champion_tolerance:.3f} overall, "
        f"{policy.slice_tolerance:.3f} per slice) and the paired, class-stratified bootstrap "
        f"({policy.resamples} samples) shows it worse, with Holm's correction over all the "
        f"comparisons at {policy.error_rate:.0%}."
    )


def bless(
    challenger: BinaryMetrics,
    comparisons: Sequence[Comparison] | None,
    policy: BlessingPolicy,
) -> BlessingVerdict:
    """Bless the challenger if it clears the AUC floor and the calibration ceiling, and no
    comparison with the champion (None: there is none) shows it worse beyond noise."""
    auc = challenger.roc_auc
    if auc is None or math.isnan(auc):
        return BlessingVerdict(
            blessed=False,
            conditions=[("challenger AUC undefined: evaluation split has one class only", False)],
        )
    floor = policy.auc_floor
    above_floor = _at_least(auc, floor)
    calibrated = challenger.ece <= policy.ece_ceiling + _EPS
    conditions = [
        (f"challenger AUC {auc:.3f} {'>=' if above_floor else '<'} floor {floor:.3f}", above_floor),
        (
            f"challenger ECE {challenger.ece:.3f} {'<=' if calibrated else '>'} ceiling "
            f"{policy.ece_ceiling:.3f} (mean probability {challenger.mean_probability:.3f}, "
            f"positive rate {challenger.positives / challenger.count:.3f})",
            calibrated,
        ),
    ]
    if comparisons is None:
        conditions.append(("no champion yet: nothing to compare", True))
    else:
        conditions += _comparison_conditions(comparisons, policy)
    return BlessingVerdict(blessed=all(passed for _, passed in conditions), conditions=conditions)
