"""Tests of the numpy metrics, cross-checked against scikit-learn."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from ml_assets.model.metrics import (
    CALIBRATION_BINS,
    MIN_SLICE_COUNT,
    MISSING_SLICE_VALUE,
    SLICE_COLUMNS,
    SLICE_METRIC_COLUMNS,
    BinaryMetrics,
    best_f1_threshold,
    binary_metrics,
    calibration_table,
    curves,
    slice_metrics,
)


def _random(seed: int, n: int = 2000) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.2).astype(int)
    # Informative but noisy scores, kept away from 0 and 1 so log-loss clipping never matters.
    p = np.clip(0.2 + 0.25 * y + rng.normal(0, 0.15, n), 0.01, 0.99)
    return y, p


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_matches_sklearn_on_random_data(seed: int) -> None:
    y, p = _random(seed)
    m = binary_metrics(y, p, 0.5)
    assert m.roc_auc == pytest.approx(skm.roc_auc_score(y, p), abs=1e-9)
    assert m.pr_auc == pytest.approx(skm.average_precision_score(y, p), abs=1e-9)
    assert m.log_loss == pytest.approx(skm.log_loss(y, p), abs=1e-9)
    assert m.brier == pytest.approx(skm.brier_score_loss(y, p), abs=1e-9)
    predicted = (p >= 0.5).astype(int)
    assert m.accuracy == pytest.approx(skm.accuracy_score(y, predicted), abs=1e-12)
    assert m.precision == pytest.approx(
        skm.precision_score(y, predicted, zero_division=0), abs=1e-12
    )
    assert m.recall == pytest.approx(skm.recall_score(y, predicted), abs=1e-12)
    assert m.count == len(y)
    assert m.positives == int(y.sum())
    assert m.baseline_accuracy == pytest.approx(1 - y.mean())


def test_ties_match_sklearn() -> None:
    rng = np.random.default_rng(7)
    y = (rng.random(1500) < 0.25).astype(int)
    # Scores on a coarse grid: many ties, within and across classes.
    p = np.round(np.clip(0.3 + 0.2 * y + rng.normal(0, 0.2, 1500), 0, 1), 1)
    m = binary_metrics(y, p, 0.5)
    assert m.roc_auc == pytest.approx(skm.roc_auc_score(y, p), abs=1e-9)
    assert m.pr_auc == pytest.approx(skm.average_precision_score(y, p), abs=1e-9)


def test_all_tied_scores_give_half_auc() -> None:
    y = np.array([0, 1, 0, 1, 1])
    m = binary_metrics(y, np.full(5, 0.3), 0.5)
    assert m.roc_auc == pytest.approx(0.5)
    assert m.precision == 0.0  # nothing predicted positive


def test_perfect_and_inverted_ranking() -> None:
    y = np.array([0, 0, 1, 1])
    assert binary_metrics(y, np.array([0.1, 0.2, 0.8, 0.9]), 0.5).roc_auc == 1.0
    assert binary_metrics(y, np.array([0.9, 0.8, 0.2, 0.1]), 0.5).roc_auc == 0.0


@pytest.mark.parametrize("label", [0, 1])
def test_single_class_has_no_auc(label: int) -> None:
    m = binary_metrics(np.full(10, label), np.linspace(0.1, 0.9, 10), 0.5)
    assert m.roc_auc is None
    assert m.pr_auc is None
    assert math.isfinite(m.log_loss)
    assert m.baseline_accuracy == 1.0


def test_log_loss_clips_certain_mistakes() -> None:
    m = binary_metrics(np.array([1, 0]), np.array([0.0, 1.0]), 0.5)
    assert m.log_loss == pytest.approx(-math.log(1e-7), rel=1e-6)


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


def test_to_dict_is_plain() -> None:
    y, p = _random(5, 200)
    d = binary_metrics(y, p, 0.4).to_dict()
    assert set(d) == set(BinaryMetrics.__dataclass_fields__)
    assert type(d["count"]) is int and type(d["positives"]) is int
    assert all(type(v) is float for k, v in d.items() if k not in ("count", "positives"))
    single = binary_metrics(np.zeros(3), np.array([0.1, 0.2, 0.3]), 0.5).to_dict()
    assert single["roc_auc"] is None and single["pr_auc"] is None


def test_calibration_bins_sum_to_count_and_ece() -> None:
    y, p = _random(6)
    table = calibration_table(y, p)
    assert list(table.columns) == [
        "bin_low",
        "bin_high",
        "count",
        "mean_predicted",
        "observed_rate",
    ]
    assert table["count"].sum() == len(y)
    assert len(table) <= CALIBRATION_BINS
    assert (table["count"] > 0).all()
    assert (
        (table["mean_predicted"] >= table["bin_low"])
        & (table["mean_predicted"] <= table["bin_high"])
    ).all()
    expected_ece = float(
        (table["count"] * (table["mean_predicted"] - table["observed_rate"]).abs()).sum() / len(y)
    )
    assert binary_metrics(y, p, 0.5).ece == pytest.approx(expected_ece)


def test_calibration_omits_empty_bins_and_keeps_one_in_last() -> None:
    table = calibration_table(np.array([0, 1, 1]), np.array([0.05, 0.95, 1.0]), bins=10)
    assert table["count"].tolist() == [1, 2]
    assert table["bin_high"].iloc[-1] == 1.0


def test_sklearn_calibration_curve_agrees() -> None:
    from sklearn.calibration import calibration_curve

    y, p = _random(8)
    table = calibration_table(y, p, bins=5)
    observed, predicted = calibration_curve(y, p, n_bins=5, strategy="uniform")
    np.testing.assert_allclose(table["observed_rate"], observed, atol=1e-12)
    np.testing.assert_allclose(table["mean_predicted"], predicted, atol=1e-12)


def test_best_f1_threshold_matches_brute_force() -> None:
    y, p = _random(9, 400)
    best = best_f1_threshold(y, p)
    assert best in set(p)
    f1s = {t: skm.f1_score(y, (p >= t).astype(int)) for t in np.unique(p)}
    assert f1s[best] == pytest.approx(max(f1s.values()), abs=1e-12)


def test_best_f1_threshold_without_positives() -> None:
    assert best_f1_threshold(np.zeros(5), np.linspace(0, 1, 5)) == 0.5


def test_curves_match_sklearn() -> None:
    y, p = _random(10, 500)
    c = curves(y, p)
    fpr, tpr, _ = skm.roc_curve(y, p, drop_intermediate=False)
    np.testing.assert_allclose(c["fpr"], fpr)
    np.testing.assert_allclose(c["tpr"], tpr)
    precision, recall, _ = skm.precision_recall_curve(y, p)
    np.testing.assert_allclose(c["recall"], recall[::-1])
    np.testing.assert_allclose(c["precision"], precision[::-1])


def test_curves_need_both_classes() -> None:
    with pytest.raises(ValueError, match="both classes"):
        curves(np.zeros(4), np.array([0.1, 0.2, 0.3, 0.4]))


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


def test_slice_metrics_rows_and_values() -> None:
    frame = _slice_frame()
    table = slice_metrics(frame, "label", "prob", 0.5)
    assert list(table.columns) == list(SLICE_METRIC_COLUMNS)
    assert set(table["slice_column"]) == set(SLICE_COLUMNS)
    for column in SLICE_COLUMNS:
        assert table.loc[table["slice_column"] == column, "count"].sum() == len(frame)
    assert MISSING_SLICE_VALUE in set(table.loc[table["slice_column"] == "state", "slice_value"])

    ca = table[(table["slice_column"] == "state") & (table["slice_value"] == "CA")].iloc[0]
    sub = frame[frame["state"] == "CA"]
    assert ca["count"] == len(sub)
    assert ca["positives"] == sub["label"].sum()
    assert ca["positive_rate"] == pytest.approx(sub["label"].mean())
    assert ca["roc_auc"] == pytest.approx(skm.roc_auc_score(sub["label"], sub["prob"]), abs=1e-9)
    assert ca["pr_auc"] == pytest.approx(
        skm.average_precision_score(sub["label"], sub["prob"]), abs=1e-9
    )
    assert ca["log_loss"] == pytest.approx(skm.log_loss(sub["label"], sub["prob"]), abs=1e-9)
    assert ca["accuracy"] == pytest.approx(((sub["prob"] >= 0.5) == sub["label"]).mean())
    assert not ca["too_small"]


def test_slice_metrics_too_small_flag() -> None:
    table = slice_metrics(_slice_frame(), "label", "prob", 0.5)
    assert (table["too_small"] == (table["count"] < MIN_SLICE_COUNT)).all()
    small = table[table["too_small"]]
    assert len(small) > 0
    assert small["roc_auc"].isna().all() and small["pr_auc"].isna().all()
    assert small["log_loss"].notna().all()


def test_slice_metrics_single_class_slice_has_nan_auc() -> None:
    frame = _slice_frame()
    frame.loc[frame["product"] == "Mortgage", "label"] = 0
    table = slice_metrics(frame, "label", "prob", 0.5, columns=["product"], min_count=10)
    mortgage = table[table["slice_value"] == "Mortgage"].iloc[0]
    assert math.isnan(mortgage["roc_auc"]) and not mortgage["too_small"]


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
