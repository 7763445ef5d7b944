"""Tests of the metrics layer: what the blessing, the slices and the logs rely on.

The figures themselves are scikit-learn's; these tests check the wiring around them (which class
is positive, the threshold's side, None for undefined AUCs, the slice table, the calibration bins
the ECE weighs, the errors for bad input).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from sklearn.calibration import calibration_curve
from sklearn.metrics import f1_score

from ml_assets.model.blessing import BlessingPolicy
from ml_assets.model.evaluation import ModelScores, evaluate_models
from ml_assets.model.features import LABEL
from ml_assets.model.metrics import (
    CALIBRATION_BINS,
    CALIBRATION_COLUMNS,
    MIN_SLICE_COUNT,
    MISSING_SLICE_VALUE,
    SLICE_COLUMNS,
    SLICE_METRIC_COLUMNS,
    BinaryMetrics,
    best_f1_threshold,
    binary_metrics,
    calibration_table,
    expected_calibration_error,
    slice_metrics,
)


def _random(seed: int, n: int = 2000) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.2).astype(int)
    p = np.clip(0.2 + 0.25 * y + rng.normal(0, 0.15, n), 0.01, 0.99)
    return y, p


def test_headline_metrics_of_a_hand_countable_example() -> None:
    # Pairs (positive, negative) ranked right: 0.4>0.1, 0.9>0.1, 0.9>0.6 -> AUC 3/4.
    m = binary_metrics(np.array([0, 0, 1, 1]), np.array([0.1, 0.6, 0.4, 0.9]), 0.5)
    assert (m.count, m.positives) == (4, 2)
    assert m.roc_auc == pytest.approx(0.75)
    # Predicted positive: 0.6 (wrong) and 0.9 (right).
    assert (m.accuracy, m.precision, m.recall) == (0.5, 0.5, 0.5)
    assert m.brier == pytest.approx((0.1**2 + 0.6**2 + 0.6**2 + 0.1**2) / 4)
    assert m.mean_probability == pytest.approx(0.5)
    assert m.baseline_accuracy == 0.5
    assert m.threshold == 0.5


def test_a_probability_at_the_threshold_is_positive() -> None:
    m = binary_metrics(np.array([1, 0]), np.array([0.5, 0.2]), 0.5)
    assert m.recall == 1.0 and m.precision == 1.0 and m.accuracy == 1.0


def test_perfect_and_inverted_ranking() -> None:
    y = np.array([0, 0, 1, 1])
    assert binary_metrics(y, np.array([0.1, 0.2, 0.8, 0.9]), 0.5).roc_auc == 1.0
    assert binary_metrics(y, np.array([0.9, 0.8, 0.2, 0.1]), 0.5).roc_auc == 0.0


@pytest.mark.parametrize("label", [0, 1])
def test_single_class_has_no_auc_but_a_loss(label: int) -> None:
    m = binary_metrics(np.full(10, label), np.linspace(0.1, 0.9, 10), 0.5)
    assert m.roc_auc is None and m.pr_auc is None
    assert math.isfinite(m.log_loss) and math.isfinite(m.brier)
    assert m.baseline_accuracy == 1.0


def test_a_certain_mistake_has_a_finite_loss() -> None:
    # scikit-learn clips probabilities at float64's epsilon: large, but loggable.
    m = binary_metrics(np.array([1, 0]), np.array([0.0, 1.0]), 0.5)
    assert math.isfinite(m.log_loss) and m.log_loss > 30


def test_bool_labels_accepted() -> None:
    y, p = _random(4, 300)
    assert binary_metrics(y.astype(bool), p, 0.5) == binary_metrics(y, p, 0.5)


@pytest.mark.parametrize(
    ("y", "p", "message"),
    [
        ([], [], "empty"),
        ([0, 1, 1], [0.2, 0.4], "length mismatch"),
        ([0, 1], [0.2, 1.2], r"\[0, 1\]"),
        ([0, 1], [-0.1, 0.5], r"\[0, 1\]"),
        ([0, 1], [0.2, float("nan")], "NaN"),
        ([0, 2], [0.2, 0.4], "0 or 1"),
        ([0, float("nan")], [0.2, 0.4], "NaN"),
    ],
)
def test_bad_input_raises(y: list[float], p: list[float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        binary_metrics(np.array(y, dtype=float), np.array(p, dtype=float), 0.5)


def test_bad_threshold_and_shape_raise() -> None:
    with pytest.raises(ValueError, match="finite"):
        binary_metrics(np.array([0, 1]), np.array([0.2, 0.4]), math.nan)
    with pytest.raises(ValueError, match="1-D"):
        binary_metrics(np.zeros((2, 2)), np.zeros((2, 2)), 0.5)
    with pytest.raises(ValueError, match="numeric"):
        binary_metrics(np.array(["a", "b"]), np.array([0.2, 0.4]), 0.5)


def test_to_dict_is_plain() -> None:
    y, p = _random(5, 200)
    d = binary_metrics(y, p, 0.4).to_dict()
    assert set(d) == set(BinaryMetrics.__dataclass_fields__)
    assert type(d["count"]) is int and type(d["positives"]) is int
    assert all(type(v) is float for k, v in d.items() if k not in ("count", "positives"))
    single = binary_metrics(np.zeros(3), np.array([0.1, 0.2, 0.3]), 0.5).to_dict()
    assert single["roc_auc"] is None and single["pr_auc"] is None


def test_calibration_table_counts_every_row_in_its_bin() -> None:
    y, p = _random(6)
    table = calibration_table(y, p)
    assert list(table.columns) == list(CALIBRATION_COLUMNS)
    assert table["count"].sum() == len(y)
    assert len(table) <= CALIBRATION_BINS and (table["count"] > 0).all()
    assert (
        (table["mean_predicted"] >= table["bin_low"])
        & (table["mean_predicted"] <= table["bin_high"])
    ).all()


def test_calibration_counts_and_rates_describe_the_same_rows_on_bin_edges() -> None:
    # Every probability on an edge: counted in the bin scikit-learn averages it in (the lower).
    p = np.repeat(np.linspace(0.0, 1.0, 11), 3)
    y = np.tile([0, 1, 1], 11)
    table = calibration_table(y, p, bins=10)
    observed, predicted = calibration_curve(y, p, n_bins=10, strategy="uniform")
    assert table["mean_predicted"].tolist() == pytest.approx(predicted)
    assert table["observed_rate"].tolist() == pytest.approx(observed)
    assert table["count"].tolist() == [6] + [3] * 9
    assert (table["mean_predicted"] <= table["bin_high"] + 1e-12).all()
    assert (table["mean_predicted"] >= table["bin_low"] - 1e-12).all()


def test_ece_is_the_row_weighted_gap_and_zero_when_calibrated() -> None:
    # Bin [0.2, 0.3): 4 rows at 0.25 with 1 positive; bin [0.7, 0.8): 4 at 0.75 with 3.
    calibrated = binary_metrics(
        np.array([1, 0, 0, 0, 1, 1, 1, 0]), np.array([0.25] * 4 + [0.75] * 4), 0.5
    )
    assert calibrated.ece == pytest.approx(0.0)
    # The same rows with every probability 0.1 too high.
    assert binary_metrics(
        np.array([1, 0, 0, 0, 1, 1, 1, 0]), np.array([0.35] * 4 + [0.85] * 4), 0.5
    ).ece == pytest.approx(0.1)
    # One bin 0.5 off holding 3 of the 4 rows, the other exact.
    table = pd.DataFrame(
        {"count": [3, 1], "mean_predicted": [0.9, 0.2], "observed_rate": [0.4, 0.2]}
    )
    assert expected_calibration_error(table) == pytest.approx(3 * 0.5 / 4)


def test_calibration_bins_must_be_positive() -> None:
    with pytest.raises(ValueError, match="bins"):
        calibration_table(np.array([0, 1]), np.array([0.2, 0.4]), bins=0)


def test_best_f1_threshold_is_a_score_that_maximizes_f1() -> None:
    y, p = _random(9, 400)
    best = best_f1_threshold(y, p)
    assert best in set(p)
    f1s = {t: f1_score(y, (p >= t).astype(int)) for t in np.unique(p)}
    assert f1s[best] == pytest.approx(max(f1s.values()), abs=1e-12)


def test_best_f1_threshold_takes_the_highest_of_equally_good_thresholds() -> None:
    # F1 2/3 at 0.9 (1 of 2 positives, no false one) and at 0.6 (both, with 2 false ones).
    y = np.array([1, 0, 0, 1])
    p = np.array([0.9, 0.8, 0.7, 0.6])
    f1s = {t: f1_score(y, (p >= t).astype(int)) for t in p}
    assert f1s[0.9] == pytest.approx(f1s[0.6]) == pytest.approx(max(f1s.values()))
    assert best_f1_threshold(y, p) == 0.9


def test_best_f1_threshold_when_the_top_scores_are_negatives() -> None:
    # Above 0.7 no positive is caught (F1 0, precision and recall 0), the best is 0.5.
    y = np.array([0, 0, 1, 1, 0])
    p = np.array([0.95, 0.9, 0.7, 0.5, 0.1])
    assert best_f1_threshold(y, p) == 0.5


def test_best_f1_threshold_without_positives() -> None:
    assert best_f1_threshold(np.zeros(5), np.linspace(0, 1, 5)) == 0.5


def _slice_frame(seed: int = 11) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = 600
    y, p = _random(seed, n)
    state = rng.choice(["CA", "TX", "NY"], size=n, p=[0.6, 0.35, 0.05]).astype(object)
    state[:7] = None
    return pd.DataFrame(
        {
            "label": y,
            "prob": p,
            "product": rng.choice(["Mortgage", "Debt collection"], size=n),
            "state": state,
            "company_response": "Closed with explanation",
        }
    )


def test_a_slice_is_scored_as_the_whole_evaluation_is() -> None:
    frame = _slice_frame()
    table = slice_metrics(frame, "label", "prob", 0.5)
    assert list(table.columns) == list(SLICE_METRIC_COLUMNS)
    assert set(table["slice_column"]) == set(SLICE_COLUMNS)
    for column in SLICE_COLUMNS:
        assert table.loc[table["slice_column"] == column, "count"].sum() == len(frame)
    assert MISSING_SLICE_VALUE in set(table.loc[table["slice_column"] == "state", "slice_value"])

    ca = table[(table["slice_column"] == "state") & (table["slice_value"] == "CA")].iloc[0]
    sub = frame[frame["state"] == "CA"]
    whole = binary_metrics(sub["label"].to_numpy(), sub["prob"].to_numpy(), 0.5)
    assert (ca["count"], ca["positives"]) == (whole.count, whole.positives)
    assert ca["positive_rate"] == pytest.approx(whole.positives / whole.count)
    assert ca["roc_auc"] == whole.roc_auc and ca["pr_auc"] == whole.pr_auc
    assert ca["log_loss"] == whole.log_loss and ca["accuracy"] == whole.accuracy
    assert not ca["too_small"]


def test_a_too_small_slice_is_flagged_without_auc() -> None:
    table = slice_metrics(_slice_frame(), "label", "prob", 0.5)
    assert (table["too_small"] == (table["count"] < MIN_SLICE_COUNT)).all()
    small = table[table["too_small"]]
    assert len(small) > 0
    assert small["roc_auc"].isna().all() and small["pr_auc"].isna().all()
    assert small["log_loss"].notna().all()


def test_a_one_class_slice_is_large_but_has_no_auc() -> None:
    frame = _slice_frame()
    frame.loc[frame["product"] == "Mortgage", "label"] = 0
    table = slice_metrics(frame, "label", "prob", 0.5, columns=["product"], min_count=10)
    mortgage = table[table["slice_value"] == "Mortgage"].iloc[0]
    assert math.isnan(mortgage["roc_auc"]) and not mortgage["too_small"]
    assert math.isfinite(mortgage["log_loss"])


def test_the_blessing_judges_only_slices_with_both_classes_in_numbers() -> None:
    # The champion is perfect and the challenger inverts the ranking, so every slice the blessing
    # judges fails it: a slice it must not judge (one class, too few rows) must not show up.
    big, small = MIN_SLICE_COUNT * 2, MIN_SLICE_COUNT - 1
    frame = pd.DataFrame(
        {
            "product": ["two classes"] * big + ["one class"] * big + ["too small"] * small,
            "label": [0, 1] * (big // 2) + [0] * big + [0, 1] * (small // 2) + [1],
        }
    ).assign(state="CA", company_response="x")
    labels = frame["label"].to_numpy()
    champion = ModelScores("1", 0.5, np.where(labels == 1, 0.9, 0.1))
    challenger = ModelScores("2", 0.5, np.where(labels == 1, 0.1, 0.9))
    # No floor and no ceiling: only the comparisons can fail; a slice needs 50 of each class.
    policy = BlessingPolicy(auc_floor=0.0, ece_ceiling=1.0, min_slice_class=MIN_SLICE_COUNT)
    report = evaluate_models(frame.rename(columns={"label": LABEL}), challenger, champion, policy)
    assert report.comparisons is not None
    judged = {c.name for c in report.comparisons}
    # state and company_response have one value each: those slices are every row.
    assert judged == {"overall", "product=two classes", "state=CA", "company_response=x"}
    assert all(c.worse for c in report.comparisons)
    assert len(report.verdict.failures) == len(judged)


def test_slice_metrics_sorted() -> None:
    table = slice_metrics(_slice_frame(), "label", "prob", 0.5)
    assert table["slice_column"].tolist() == sorted(table["slice_column"])
    for _, group in table.groupby("slice_column"):
        assert group["count"].is_monotonic_decreasing


def test_slice_metrics_min_count_and_columns_arguments() -> None:
    table = slice_metrics(_slice_frame(), "label", "prob", 0.5, columns=["state"], min_count=1)
    assert set(table["slice_column"]) == {"state"}
    assert not table["too_small"].any()


def test_slice_metrics_empty_and_missing_column() -> None:
    empty = slice_metrics(_slice_frame().iloc[:0], "label", "prob", 0.5)
    assert empty.empty and list(empty.columns) == list(SLICE_METRIC_COLUMNS)
    with pytest.raises(ValueError, match="lacks column"):
        slice_metrics(_slice_frame(), "label", "prob", 0.5, columns=["nope"])
