"""Tests of the challenger blessing and its comparisons with the champion."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from ml_assets.model.blessing import BlessingPolicy, BlessingVerdict, bless, gate_rule
from ml_assets.model.comparison import (
    OVERALL,
    Comparison,
    auc_draws,
    compare_scores,
    comparison_groups,
    holm,
    resample_rows,
)
from ml_assets.model.evaluation import ModelScores, evaluate_models
from ml_assets.model.features import LABEL
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


def _comparison(name: str, challenger: float, champion: float, worse: bool) -> Comparison:
    tolerance = POLICY.champion_tolerance if name == OVERALL else POLICY.slice_tolerance
    difference = challenger - champion
    return Comparison(
        name, 100, 400, challenger, champion, difference - 0.05, difference + 0.05,
        0.001 if worse else 0.4, tolerance, worse,
    )  # fmt: skip


EVEN = [_comparison(OVERALL, 0.70, 0.70, False), _comparison("state=CA", 0.70, 0.68, False)]


def test_the_launchpad_config_is_the_policy_with_its_defaults() -> None:
    from ml_assets.assets.evaluation import BlessingConfig

    assert BlessingConfig().model_dump() == POLICY.model_dump()
    assert isinstance(BlessingConfig(auc_floor=0.6), BlessingPolicy)
    assert POLICY.min_slice_count == MIN_SLICE_COUNT


def test_passes_with_no_champion_above_floor() -> None:
    verdict = bless(_metrics(AUC_FLOOR + 0.1), None, POLICY)
    assert verdict.blessed
    assert verdict.failures == []
    assert ("no champion yet: nothing to compare", True) in verdict.conditions
    assert any(
        text.startswith("challenger AUC") and ">= floor" in text for text, _ in verdict.conditions
    )


def test_fails_below_floor() -> None:
    verdict = bless(_metrics(AUC_FLOOR - 0.05), None, POLICY)
    assert not verdict.blessed
    assert len(verdict.failures) == 1
    assert f"< floor {AUC_FLOOR:.3f}" in verdict.failures[0]


def test_a_miscalibrated_challenger_fails_however_good_its_auc() -> None:
    # The demo's champion before calibration: AUC fine, probabilities far above the base rate.
    overconfident = dataclasses.replace(_metrics(AUC_FLOOR + 0.2), ece=0.29, mean_probability=0.49)
    verdict = bless(overconfident, None, POLICY)
    assert not verdict.blessed
    (failure,) = verdict.failures
    assert failure == (
        f"challenger ECE 0.290 > ceiling {POLICY.ece_ceiling:.3f} "
        "(mean probability 0.490, positive rate 0.200)"
    )
    at_ceiling = dataclasses.replace(overconfident, ece=POLICY.ece_ceiling)
    assert bless(at_ceiling, None, POLICY).blessed


def test_exactly_at_floor_passes() -> None:
    assert bless(_metrics(AUC_FLOOR), None, POLICY).blessed


def test_single_class_evaluation_fails_clearly() -> None:
    verdict = bless(_metrics(None), EVEN, POLICY)
    assert not verdict.blessed
    assert any("one class only" in text for text in verdict.failures)


def test_worse_than_champion_beyond_noise_fails_in_words() -> None:
    worse = [_comparison(OVERALL, 0.60, 0.70, True), EVEN[1]]
    verdict = bless(_metrics(0.60), worse, POLICY)
    assert not verdict.blessed
    (failure,) = verdict.failures
    assert failure.startswith(
        f"challenger AUC 0.600 < champion 0.700 - {POLICY.champion_tolerance:.3f} "
        "(difference -0.100, 95% bootstrap interval [-0.150, -0.050], one-sided p 0.0010"
    )
    assert failure.endswith("100+400 rows): worse beyond noise")


def test_lower_than_the_champion_within_noise_passes() -> None:
    # Below the tolerance on these rows, but the bootstrap does not show it: an equal model.
    noisy = [_comparison(OVERALL, 0.68, 0.70, False), _comparison("state=CA", 0.55, 0.70, False)]
    verdict = bless(_metrics(0.68), noisy, POLICY)
    assert verdict.blessed, verdict.failures
    texts = [text for text, _ in verdict.conditions]
    assert texts[2].endswith("not worse beyond noise")
    assert texts[3].startswith("no slice worse beyond noise: 1 slice(s) judged")
    assert "(1 below champion - 0.050 only within noise)" in texts[3]


def test_each_slice_worse_beyond_noise_has_its_own_condition() -> None:
    slices = [
        _comparison(OVERALL, 0.70, 0.70, False),
        _comparison("state=CA", 0.60, 0.80, True),
        _comparison("product=Mortgage", 0.60, 0.80, True),
        _comparison("state=TX", 0.60, 0.80, False),
    ]
    verdict = bless(_metrics(0.70), slices, POLICY)
    assert [text.split(":")[0] for text in verdict.failures] == ["state=CA", "product=Mortgage"]


def test_all_failures_listed_in_words_and_markdown() -> None:
    challenger = dataclasses.replace(_metrics(0.50), ece=0.2)
    worse = [_comparison(OVERALL, 0.50, 0.80, True), _comparison("state=CA", 0.40, 0.80, True)]
    verdict = bless(challenger, worse, POLICY)
    assert not verdict.blessed
    assert len(verdict.failures) == 4
    assert "floor" in verdict.failures[0]
    assert "ECE 0.200 > ceiling" in verdict.failures[1]
    assert "champion 0.800" in verdict.failures[2]
    assert verdict.failures[3].startswith("state=CA:")
    assert all(";" not in text for text in verdict.failures)  # the check joins them with "; "
    lines = verdict.to_markdown().splitlines()
    assert len(lines) == len(verdict.conditions) == 4
    assert all(line.startswith("- ❌ ") for line in lines)


def test_markdown_marks_passed_conditions() -> None:
    verdict = bless(_metrics(0.70), None, POLICY)
    assert isinstance(verdict, BlessingVerdict)
    assert verdict.to_markdown().splitlines() == [f"- ✅ {text}" for text, _ in verdict.conditions]


def test_the_rule_states_the_slice_minimum_and_the_correction() -> None:
    rule = gate_rule(POLICY.model_copy(update={"min_slice_class": 30, "resamples": 500}))
    assert ">= 30 disputes and >= 30 non-disputes" in rule
    assert "(500 samples)" in rule and "Holm's correction" in rule and "at 5%" in rule


# The comparisons themselves, against references someone else wrote.


def test_the_rank_auc_is_scikit_learns_with_ties() -> None:
    rng = np.random.default_rng(7)
    labels = rng.integers(0, 2, 300)
    scores = np.round(rng.random(300) + labels * 0.3, 1)  # rounded: many ties
    samples = resample_rows(labels, np.arange(300), 5, "ties")
    drawn = auc_draws(labels, scores, samples)
    expected = [roc_auc_score(labels[s], scores[s]) for s in samples]
    np.testing.assert_allclose(drawn, expected, rtol=1e-12)


def test_holm_rejects_as_in_holms_paper() -> None:
    # Holm (1979): sorted p-values against alpha/(m - rank); the first one above stops it.
    assert holm([0.01, 0.04, 0.03, 0.005], 0.05) == [True, False, False, True]
    assert holm([0.011, 0.02, 0.03], 0.05) == [True, True, True]
    assert holm([0.2, 0.01], 0.05) == [False, True]


def test_resamples_keep_both_classes_and_are_the_same_for_every_model() -> None:
    labels = np.array([1] * 30 + [0] * 70)
    first = resample_rows(labels, np.arange(100), 50, "state=CA")
    again = resample_rows(labels, np.arange(100), 50, "state=CA")
    np.testing.assert_array_equal(first, again)
    assert (labels[first].sum(axis=1) == 30).all()


def _frame(rows_per_state: dict[str, tuple[int, int]]) -> pd.DataFrame:
    """Evaluation rows with (positives, negatives) per state."""
    parts = [
        pd.DataFrame({"state": state, LABEL: [1] * pos + [0] * neg})
        for state, (pos, neg) in rows_per_state.items()
    ]
    return pd.concat(parts, ignore_index=True).assign(product="Mortgage", company_response="x")


def test_only_slices_with_enough_of_both_classes_are_compared() -> None:
    frame = _frame({"CA": (60, 300), "TX": (49, 400), "NY": (80, 49), "WA": (50, 50)})
    labels = frame[LABEL].to_numpy()
    groups = comparison_groups(labels, {"state": frame["state"].to_numpy()}, 50)
    assert set(groups) == {OVERALL, "state=CA", "state=WA"}
    np.testing.assert_array_equal(groups["state=WA"], np.flatnonzero(frame["state"] == "WA"))


def _scores(labels: np.ndarray, signal: float, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).random(labels.size) + signal * labels


def test_an_equal_challenger_passes_and_a_slice_ranked_backwards_fails() -> None:
    frame = _frame({"CA": (150, 450), "TX": (150, 450), "NY": (150, 450)})
    labels = frame[LABEL].to_numpy()
    champion = _scores(labels, 0.6, seed=1)
    equal = _scores(labels, 0.6, seed=2)
    backwards = equal.copy()
    in_ca = (frame["state"] == "CA").to_numpy()
    backwards[in_ca] = 2 - backwards[in_ca]  # CA's ranking inverted
    groups = comparison_groups(labels, {"state": frame["state"].to_numpy()}, 50)
    tolerances = {n: 0.01 if n == OVERALL else 0.05 for n in groups}
    judged = {
        name: compare_scores(labels, scores, champion, groups, tolerances, 1000, 0.05)
        for name, scores in (("equal", equal), ("backwards", backwards))
    }
    assert not any(c.worse for c in judged["equal"])
    worse = {c.name for c in judged["backwards"] if c.worse}
    assert "state=CA" in worse and not worse & {"state=TX", "state=NY"}
    ca = next(c for c in judged["backwards"] if c.name == "state=CA")
    assert ca.high < 0 and ca.p_value < 0.05 / len(groups)
    assert ca.challenger_auc == pytest.approx(roc_auc_score(labels[in_ca], backwards[in_ca]))


def test_evaluate_models_refuses_on_the_comparisons_and_reports_them() -> None:
    frame = _frame({"CA": (150, 450), "TX": (150, 450)})
    labels = frame[LABEL].to_numpy()
    champion = ModelScores("1", 0.5, 1 / (1 + np.exp(-(_scores(labels, 2.0, 1) - 1.5))))
    worse = ModelScores("2", 0.5, 1 / (1 + np.exp(-(_scores(labels, 0.3, 2) - 1.5))))
    policy = BlessingPolicy(auc_floor=0.0, ece_ceiling=1.0, resamples=500)
    report = evaluate_models(frame, worse, champion, policy)
    assert not report.verdict.blessed
    assert report.comparisons is not None
    assert {c.name for c in report.comparisons} == {
        OVERALL, "state=CA", "state=TX", "product=Mortgage", "company_response=x",
    }  # fmt: skip
    assert report.verdict.failures[0].startswith("challenger AUC")
    assert report.verdict.failures[0].endswith("worse beyond noise")
