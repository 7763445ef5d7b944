"""Whether a challenger serving beside the champion may replace it: the live evidence of the
requests both versions scored, once their labels arrived."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from ml_assets.model.blessing import BlessingPolicy
from ml_assets.model.comparison import OVERALL, Comparison, compare_scores
from ml_assets.model.metrics import binary_metrics
from ml_assets.monitoring.performance import LABEL_COLUMN

Decision = Literal["promote", "retire", "wait"]


class LivePromotionPolicy(BaseModel):
    """When live evidence promotes a challenger (`LivePromotionConfig` in the launchpad)."""

    model_config = ConfigDict(frozen=True)

    min_labelled: int = Field(
        default=300, ge=20, description="labelled requests both versions scored, at least"
    )
    auc_margin: float = Field(
        default=0.02,
        ge=0.0,
        description="the live AUC difference's interval must lie above minus this",
    )
    ece_ceiling: float = Field(
        default=BlessingPolicy.model_fields["ece_ceiling"].default,
        description="the challenger's live ECE at most this",
    )
    error_rate: float = Field(default=0.05, gt=0, lt=1, description="1 - the interval's level")
    resamples: int = Field(default=2000, ge=100, description="paired bootstrap samples")


@dataclass(frozen=True)
class LiveVerdict:
    """Promote, retire or wait, with every condition in words."""

    decision: Decision
    conditions: list[tuple[str, bool]]
    paired: int
    comparison: Comparison | None = None

    def to_markdown(self) -> str:
        """A bullet list of the conditions marked ✅ or ❌."""
        return "\n".join(f"- {'✅' if ok else '❌'} {text}" for text, ok in self.conditions)

    @property
    def reason(self) -> str:
        """The failed conditions, joined."""
        return "; ".join(text for text, ok in self.conditions if not ok)


def paired_scores(
    served: pd.DataFrame, labels: pd.DataFrame, champion: str, challenger: str
) -> pd.DataFrame:
    """Per labelled complaint both versions scored: its label and each version's latest score."""
    wanted = served[served["model_version"].astype(str).isin([champion, challenger])]
    latest = (
        wanted.assign(model_version=wanted["model_version"].astype(str))
        .sort_values("request_time")
        .drop_duplicates(["complaint_id", "model_version"], keep="last")
        .pivot(index="complaint_id", columns="model_version", values="dispute_probability")
    )
    both = latest.reindex(columns=[champion, challenger]).dropna()
    known = labels.dropna(subset=[LABEL_COLUMN]).drop_duplicates("complaint_id", keep="last")
    joined = both.join(known.set_index("complaint_id")[LABEL_COLUMN], how="inner")
    return pd.DataFrame(
        {
            "complaint_id": joined.index.astype(str),
            LABEL_COLUMN: joined[LABEL_COLUMN].to_numpy(dtype="int64"),
            "champion": joined[champion].to_numpy(dtype="float64"),
            "challenger": joined[challenger].to_numpy(dtype="float64"),
        }
    )


def judge_live(
    paired: pd.DataFrame,
    blessed_offline: bool,
    challenger_threshold: float,
    policy: LivePromotionPolicy,
) -> LiveVerdict:
    """Promote when the challenger was blessed offline, enough labelled requests were scored by
    both, its live AUC is non-inferior to the champion's within the margin (the paired
    bootstrap interval's lower end), and its live ECE is within the ceiling; wait for more
    labels; retire otherwise."""
    n = len(paired)
    blessed = ("blessed offline by the evaluation against the champion", True)
    if not blessed_offline:
        return LiveVerdict("retire", [("not blessed offline", False)], n)
    labels = paired[LABEL_COLUMN].to_numpy(dtype="int64")
    positives = int(labels.sum())
    enough = n >= policy.min_labelled and 0 < positives < n
    counted = (
        f"{n} labelled requests scored by both ({positives} disputed), at least "
        f"{policy.min_labelled} with both outcomes",
        enough,
    )
    if not enough:
        return LiveVerdict("wait", [blessed, counted], n)
    (comparison,) = compare_scores(
        labels,
        paired["challenger"].to_numpy(),
        paired["champion"].to_numpy(),
        {OVERALL: np.arange(n)},
        {OVERALL: policy.auc_margin},
        policy.resamples,
        policy.error_rate,
    )
    non_inferior = comparison.low >= -policy.auc_margin
    auc = (
        f"live AUC {comparison.challenger_auc:.3f} vs champion {comparison.champion_auc:.3f} on "
        f"the same requests: difference {comparison.difference:+.3f}, "
        f"{1 - policy.error_rate:.0%} paired bootstrap interval [{comparison.low:+.3f}, "
        f"{comparison.high:+.3f}], lower end {'>=' if non_inferior else '<'} "
        f"-{policy.auc_margin:.3f}",
        non_inferior,
    )
    ece = binary_metrics(labels, paired["challenger"].to_numpy(), challenger_threshold).ece
    calibrated = ece <= policy.ece_ceiling
    calibration = (
        f"live ECE {ece:.3f} {'<=' if calibrated else '>'} ceiling {policy.ece_ceiling:.3f}",
        calibrated,
    )
    conditions = [blessed, counted, auc, calibration]
    decision: Decision = "promote" if non_inferior and calibrated else "retire"
    return LiveVerdict(decision, conditions, n, comparison)
