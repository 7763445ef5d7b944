"""Promotion on live evidence: the requests both versions scored, once labelled."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ml_assets.monitoring.live_promotion import LivePromotionPolicy, judge_live, paired_scores
from ml_assets.monitoring.performance import LABEL_COLUMN

POLICY = LivePromotionPolicy(resamples=500)
N = 800


def _served(labels: np.ndarray, champion: np.ndarray, challenger: np.ndarray) -> pd.DataFrame:
    ids = [f"c{i}" for i in range(labels.size)]
    time = pd.Timestamp("2026-11-02T10:00", tz="UTC")
    return pd.concat(
        [
            pd.DataFrame(
                {
                    "complaint_id": ids,
                    "model_version": version,
                    "request_time": time,
                    "dispute_probability": scores,
                }
            )
            for version, scores in (("1", champion), ("2", challenger))
        ],
        ignore_index=True,
    )


def _world(seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Labels (about 20% disputed) and a champion's calibrated-ish scores with some signal."""
    rng = np.random.default_rng(seed)
    labels = (rng.random(N) < 0.2).astype(int)
    logits = -1.6 + 1.2 * labels + rng.normal(0, 1, N)
    return labels, 1 / (1 + np.exp(-logits))


def _labels(labels: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame(
        {"complaint_id": [f"c{i}" for i in range(labels.size)], LABEL_COLUMN: labels}
    )


def test_only_complaints_both_scored_and_labelled_are_paired_latest_score_first() -> None:
    labels, champion = _world()
    served = _served(labels[:5], champion[:5], champion[:5] / 2)
    later = served.iloc[[0]].assign(
        request_time=pd.Timestamp("2026-11-03", tz="UTC"), dispute_probability=0.99
    )
    only_one = pd.DataFrame(
        {"complaint_id": ["c9"], "model_version": "1", "request_time": later["request_time"],
         "dispute_probability": 0.5}
    )  # fmt: skip
    known = _labels(labels[:5]).assign(**{LABEL_COLUMN: [1.0, 0.0, np.nan, 1.0, 0.0]})
    paired = paired_scores(pd.concat([served, later, only_one]), known, "1", "2")
    assert paired["complaint_id"].tolist() == ["c0", "c1", "c3", "c4"]
    assert paired.loc[0, "champion"] == 0.99  # the later answer of c0
    assert paired[LABEL_COLUMN].tolist() == [1, 0, 1, 0]


def test_too_few_labelled_requests_wait() -> None:
    labels, champion = _world()
    few = paired_scores(
        _served(labels[:100], champion[:100], champion[:100]), _labels(labels), "1", "2"
    )
    verdict = judge_live(few, True, 0.3, POLICY)
    assert verdict.decision == "wait" and verdict.paired == 100
    assert verdict.reason.startswith("100 labelled requests scored by both")


def test_an_equal_challenger_is_promoted_and_a_worse_one_retired_saying_why() -> None:
    labels, champion = _world()
    rng = np.random.default_rng(11)
    # Equal: the champion's scores with a little noise of its own.
    equal = np.clip(champion + rng.normal(0, 0.01, N), 0, 1)
    promoted = judge_live(
        paired_scores(_served(labels, champion, equal), _labels(labels), "1", "2"),
        True,
        0.3,
        POLICY,
    )
    assert promoted.decision == "promote", promoted.reason
    assert all(ok for _, ok in promoted.conditions)
    # Worse: the ranking of the disputed half reversed against the rest.
    worse = np.where(rng.random(N) < 0.5, 1 - champion, champion)
    retired = judge_live(
        paired_scores(_served(labels, champion, worse), _labels(labels), "1", "2"),
        True,
        0.3,
        POLICY,
    )
    assert retired.decision == "retire"
    assert retired.comparison is not None and retired.comparison.high < 0
    assert "lower end < -0.020" in retired.reason


def test_a_miscalibrated_challenger_is_retired_however_well_it_ranks() -> None:
    labels, champion = _world()
    overconfident = champion**0.2  # same ranking, probabilities far above the dispute rate
    verdict = judge_live(
        paired_scores(_served(labels, champion, overconfident), _labels(labels), "1", "2"),
        True,
        0.3,
        POLICY,
    )
    assert verdict.decision == "retire"
    assert (
        verdict.reason.startswith("live ECE")
        and f"> ceiling {POLICY.ece_ceiling:.3f}" in verdict.reason
    )


def test_a_challenger_not_blessed_offline_is_retired() -> None:
    labels, champion = _world()
    paired = paired_scores(_served(labels, champion, champion), _labels(labels), "1", "2")
    verdict = judge_live(paired, False, 0.3, POLICY)
    assert (verdict.decision, verdict.reason) == ("retire", "not blessed offline")


@pytest.mark.parametrize("margin", [0.0, 0.5])
def test_the_margin_decides_a_slightly_worse_challenger(margin: float) -> None:
    labels, champion = _world()
    rng = np.random.default_rng(5)
    slightly = np.clip(champion + rng.normal(0, 0.15, N), 0, 1)
    paired = paired_scores(_served(labels, champion, slightly), _labels(labels), "1", "2")
    verdict = judge_live(
        paired, True, 0.3, POLICY.model_copy(update={"auc_margin": margin, "ece_ceiling": 1.0})
    )
    assert verdict.decision == ("retire" if margin == 0.0 else "promote")
