"""The blessing: whether a challenger model is good enough to replace the champion."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from ml_assets.model.metrics import MIN_SLICE_COUNT, BinaryMetrics

# Comparisons sitting exactly on a boundary (0.70 vs 0.71 - 0.01) must not fail on float noise.
_EPS = 1e-12
_SLICE_KEY = ["slice_column", "slice_value"]


class BlessingPolicy(BaseModel):
    """Thresholds a challenger must meet to be blessed (`BlessingConfig` in the launchpad)."""

    model_config = ConfigDict(frozen=True)

    auc_floor: float = Field(default=0.55, description="the challenger's ROC AUC at least this")
    champion_tolerance: float = Field(
        default=0.01, description="and at most this below the champion's"
    )
    slice_tolerance: float = Field(
        default=0.05, description="and on every large slice at most this below the champion's"
    )
    min_slice_count: int = Field(
        default=MIN_SLICE_COUNT, description="slices with fewer evaluation rows are not judged"
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


def _large_slices(slices: pd.DataFrame, min_count: int, prefix: str) -> pd.DataFrame:
    """Slices with at least min_count rows and a defined AUC, keyed by column and string value."""
    missing = [c for c in (*_SLICE_KEY, "count", "roc_auc") if c not in slices.columns]
    if missing:
        raise ValueError(f"{prefix} slice table lacks column(s) {missing}")
    large = slices[(slices["count"] >= min_count) & slices["roc_auc"].notna()]
    return pd.DataFrame(
        {
            "slice_column": large["slice_column"].astype(str),
            "slice_value": large["slice_value"].astype(str),
            f"{prefix}_auc": large["roc_auc"].astype(float),
        }
    )


def _slice_conditions(
    challenger_slices: pd.DataFrame, champion_slices: pd.DataFrame, policy: BlessingPolicy
) -> list[tuple[str, bool]]:
    tolerance = policy.slice_tolerance
    matched = _large_slices(challenger_slices, policy.min_slice_count, "challenger").merge(
        _large_slices(champion_slices, policy.min_slice_count, "champion"),
        on=_SLICE_KEY,
        how="inner",
    )
    conditions: list[tuple[str, bool]] = []
    for row in matched.sort_values(_SLICE_KEY).to_dict("records"):
        challenger_auc, champion_auc = float(row["challenger_auc"]), float(row["champion_auc"])
        if not _at_least(challenger_auc, champion_auc - tolerance):
            conditions.append(
                (
                    f"{row['slice_column']}={row['slice_value']}: challenger AUC "
                    f"{challenger_auc:.3f} < champion {champion_auc:.3f} - {tolerance:.3f}",
                    False,
                )
            )
    if not conditions:
        conditions.append(
            (
                f"no slice regression: {len(matched)} slice(s) with >= {policy.min_slice_count} "
                f"rows in both evaluations, none below champion AUC - {tolerance:.3f}",
                True,
            )
        )
    return conditions


def bless(
    challenger: BinaryMetrics,
    challenger_slices: pd.DataFrame,
    champion: BinaryMetrics | None,
    champion_slices: pd.DataFrame | None,
    policy: BlessingPolicy,
) -> BlessingVerdict:
    """Bless the challenger if it clears the AUC floor and the calibration ceiling, and holds up
    against the champion and on its slices."""
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
    if champion is None:
        conditions.append(("no champion yet: nothing to compare", True))
    elif champion.roc_auc is None or math.isnan(champion.roc_auc):
        conditions.append(("champion AUC undefined on this evaluation: nothing to compare", True))
    else:
        tolerance = policy.champion_tolerance
        holds = _at_least(auc, champion.roc_auc - tolerance)
        conditions.append(
            (
                f"challenger AUC {auc:.3f} {'>=' if holds else '<'} champion "
                f"{champion.roc_auc:.3f} - {tolerance:.3f}",
                holds,
            )
        )
    if champion is not None:
        if champion_slices is None:
            conditions.append(("champion slice metrics unavailable: slices not compared", True))
        else:
            conditions += _slice_conditions(challenger_slices, champion_slices, policy)
    return BlessingVerdict(blessed=all(passed for _, passed in conditions), conditions=conditions)
