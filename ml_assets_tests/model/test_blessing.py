"""Tests of the challenger blessing."""

from __future__ import annotations

import dataclasses

import pandas as pd

from ml_assets.model.blessing import BlessingPolicy, BlessingVerdict, bless
from ml_assets.model.metrics import MIN_SLICE_COUNT, BinaryMetrics

POLICY = BlessingPolicy()
AUC_FLOOR = POLICY.auc_floor


def _metrics(auc: float | None) -> BinaryMetrics:
    return BinaryMetrics(
        count=1000,
        positives=200,
        roc_auc=auc,
        pr_auc=None if auc is None else 0.3,
        log_loss=0.5,
        brier=0.15,
        accuracy=0.8,
        baseline_accuracy=0.8,
        precision=0.4,
        recall=0.3,
        threshold=0.5,
        ece=0.02,
        mean_probability=0.2,
    )


def _slices(rows: list[tuple[str, str, int, float]]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "slice_column": column,
                "slice_value": value,
                "count": count,
                "roc_auc": auc,
                "too_small": count < MIN_SLICE_COUNT,
            }
            for column, value, count, auc in rows
        ]
    )


BIG = MIN_SLICE_COUNT * 4
SMALL = MIN_SLICE_COUNT - 1
SLICES = _slices([("state", "CA", BIG, 0.70), ("state", "TX", BIG, 0.68)])


def test_the_launchpad_config_is_the_policy_with_its_defaults() -> None:
    from ml_assets.assets.evaluation import BlessingConfig

    assert BlessingConfig().model_dump() == POLICY.model_dump()
    assert isinstance(BlessingConfig(auc_floor=0.6), BlessingPolicy)
    assert POLICY.min_slice_count == MIN_SLICE_COUNT


def test_passes_with_no_champion_above_floor() -> None:
    verdict = bless(_metrics(AUC_FLOOR + 0.1), SLICES, None, None, POLICY)
    assert verdict.blessed
    assert verdict.failures == []
    assert ("no champion yet: nothing to compare", True) in verdict.conditions
    assert any(
        text.startswith("challenger AUC") and ">= floor" in text for text, _ in verdict.conditions
    )


def test_fails_below_floor() -> None:
    verdict = bless(_metrics(AUC_FLOOR - 0.05), SLICES, None, None, POLICY)
    assert not verdict.blessed
    assert len(verdict.failures) == 1
    assert f"< floor {AUC_FLOOR:.3f}" in verdict.failures[0]


def test_a_miscalibrated_challenger_fails_however_good_its_auc() -> None:
    # The demo's champion before calibration: AUC fine, probabilities far above the base rate.
    overconfident = dataclasses.replace(_metrics(AUC_FLOOR + 0.2), ece=0.29, mean_probability=0.49)
    verdict = bless(overconfident, SLICES, None, None, POLICY)
    assert not verdict.blessed
    (failure,) = verdict.failures
    assert failure == (
        f"challenger ECE 0.290 > ceiling {POLICY.ece_ceiling:.3f} "
        "(mean probability 0.490, positive rate 0.200)"
    )
    at_ceiling = dataclasses.replace(overconfident, ece=POLICY.ece_ceiling)
    assert bless(at_ceiling, SLICES, None, None, POLICY).blessed


def test_exactly_at_floor_passes() -> None:
    assert bless(_metrics(AUC_FLOOR), SLICES, None, None, POLICY).blessed


def test_single_class_evaluation_fails_clearly() -> None:
    verdict = bless(_metrics(None), SLICES, _metrics(0.7), SLICES, POLICY)
    assert not verdict.blessed
    assert any("one class only" in text for text in verdict.failures)


def test_worse_than_champion_beyond_tolerance_fails() -> None:
    champion = _metrics(0.70)
    challenger = _metrics(0.70 - POLICY.champion_tolerance - 0.01)
    verdict = bless(challenger, SLICES, champion, SLICES, POLICY)
    assert not verdict.blessed
    assert len(verdict.failures) == 1
    assert "champion 0.700" in verdict.failures[0]


def test_worse_than_champion_within_tolerance_passes() -> None:
    champion = _metrics(0.70)
    within = bless(_metrics(0.70 - POLICY.champion_tolerance / 2), SLICES, champion, SLICES, POLICY)
    at_edge = bless(_metrics(0.70 - POLICY.champion_tolerance), SLICES, champion, SLICES, POLICY)
    assert within.blessed and at_edge.blessed


def test_slice_regression_fails_naming_the_slice() -> None:
    champion_slices = _slices([("state", "CA", BIG, 0.60), ("state", "TX", BIG, 0.68)])
    challenger_slices = _slices([("state", "CA", BIG, 0.51), ("state", "TX", BIG, 0.70)])
    verdict = bless(_metrics(0.70), challenger_slices, _metrics(0.69), champion_slices, POLICY)
    assert not verdict.blessed
    assert verdict.failures == [
        f"state=CA: challenger AUC 0.510 < champion 0.600 - {POLICY.slice_tolerance:.3f}"
    ]


def test_each_failed_slice_has_its_own_condition() -> None:
    champion_slices = _slices([("state", "CA", BIG, 0.80), ("product", "Mortgage", BIG, 0.80)])
    challenger_slices = _slices([("state", "CA", BIG, 0.60), ("product", "Mortgage", BIG, 0.60)])
    verdict = bless(_metrics(0.70), challenger_slices, _metrics(0.70), champion_slices, POLICY)
    assert len(verdict.failures) == 2
    assert any(text.startswith("state=CA:") for text in verdict.failures)
    assert any(text.startswith("product=Mortgage:") for text in verdict.failures)


def test_small_slices_are_ignored() -> None:
    champion_slices = _slices([("state", "WY", BIG, 0.90), ("state", "CA", SMALL, 0.90)])
    challenger_slices = _slices([("state", "WY", SMALL, 0.40), ("state", "CA", BIG, 0.40)])
    verdict = bless(_metrics(0.70), challenger_slices, _metrics(0.70), champion_slices, POLICY)
    assert verdict.blessed


def test_unmatched_and_undefined_slices_are_ignored() -> None:
    champion_slices = _slices([("state", "NY", BIG, 0.90), ("state", "CA", BIG, float("nan"))])
    challenger_slices = _slices([("state", "TX", BIG, 0.40), ("state", "CA", BIG, 0.40)])
    verdict = bless(_metrics(0.70), challenger_slices, _metrics(0.70), champion_slices, POLICY)
    assert verdict.blessed


def test_policy_min_slice_count_is_used() -> None:
    champion_slices = _slices([("state", "WY", 20, 0.90)])
    challenger_slices = _slices([("state", "WY", 20, 0.40)])
    strict = POLICY.model_copy(update={"min_slice_count": 10})
    verdict = bless(_metrics(0.70), challenger_slices, _metrics(0.70), champion_slices, strict)
    assert verdict.failures and verdict.failures[0].startswith("state=WY:")
    assert bless(_metrics(0.70), challenger_slices, _metrics(0.70), champion_slices, POLICY).blessed


def test_all_failures_listed_in_words_and_markdown() -> None:
    champion_slices = _slices([("state", "CA", BIG, 0.80)])
    challenger_slices = _slices([("state", "CA", BIG, 0.40)])
    challenger = dataclasses.replace(_metrics(0.50), ece=0.2)
    verdict = bless(challenger, challenger_slices, _metrics(0.80), champion_slices, POLICY)
    assert not verdict.blessed
    assert len(verdict.failures) == 4
    assert "floor" in verdict.failures[0]
    assert "ECE 0.200 > ceiling" in verdict.failures[1]
    assert "champion 0.800" in verdict.failures[2]
    assert verdict.failures[3].startswith("state=CA:")
    markdown = verdict.to_markdown()
    lines = markdown.splitlines()
    assert len(lines) == len(verdict.conditions) == 4
    assert all(line.startswith("- ❌ ") for line in lines)


def test_markdown_marks_passed_conditions() -> None:
    verdict = bless(_metrics(0.70), SLICES, None, None, POLICY)
    assert isinstance(verdict, BlessingVerdict)
    assert verdict.to_markdown().splitlines() == [f"- ✅ {text}" for text, _ in verdict.conditions]
