from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from ml_assets.ingest.cfpb_format import read_landing_day
from ml_assets.ingest.validation import split_valid_rejected
from ml_assets.model.features import (
    FEATURE_COLUMNS,
    LABEL,
    records_to_arrays,
    to_features,
)
from ml_assets.model.network import (
    ModelParams,
    PlattScaling,
    build_model,
    fit_model,
    fit_platt_scaling,
    load_model,
    predict_proba,
    save_model,
    with_platt_scaling,
)
from ml_assets.synthetic.export import generate_day
from ml_assets_tests.world import LEARNABLE

# These tests are about the complaint's own fields: the history input has its own test below.
PARAMS = ModelParams(epochs=6, learning_rate=1e-2, batch_size=256, use_history=False)


def features_of(days: range) -> pd.DataFrame:
    """Labelled features of synthetic days (from 2016-01-01) whose wording a model can learn."""
    frames = []
    for offset in days:
        day = pd.Timestamp("2016-01-01") + pd.Timedelta(days=offset)
        text = generate_day(day.date(), 300, seed=11, signal=LEARNABLE)
        raw = read_landing_day([("d.csv", text.encode())], str(day.date()))
        frames.append(to_features(split_valid_rejected(raw).valid))
    return pd.concat(frames, ignore_index=True).dropna(subset=[LABEL])


@pytest.fixture(scope="module")
def features() -> pd.DataFrame:
    return features_of(range(8))


@pytest.fixture(scope="module")
def model(features: pd.DataFrame):
    inputs = features[list(FEATURE_COLUMNS)]
    network = build_model(inputs, PARAMS)
    labels = features[LABEL].to_numpy()
    history = fit_model(network, inputs, labels, inputs.tail(200), labels[-200:], PARAMS)
    assert len(history["loss"]) == PARAMS.epochs and "val_auc" in history
    return network


def test_the_network_learns_what_separates_disputes_on_days_it_never_saw(model) -> None:
    unseen = features_of(range(10, 12))
    probability = predict_proba(model, unseen[list(FEATURE_COLUMNS)])
    auc = roc_auc_score(unseen[LABEL].astype(int), probability)
    assert auc >= 0.65, f"held-out AUC {auc:.3f} after {PARAMS.epochs} epochs"


def test_raw_complaints_in_probabilities_out_in_request_order(model) -> None:
    story = "I was charged a fee of $XXXX on my card without any notice."
    records = [
        {"product": "Credit card", "state": "CA", "consumer_complaint_narrative": story},
        {"product": "Mortgage", "state": "TX", "zip_code": "75001"},
    ]
    together = predict_proba(model, pd.DataFrame(records_to_arrays(records)))
    alone = [predict_proba(model, pd.DataFrame(records_to_arrays([r])))[0] for r in records]
    assert together.shape == (2,) and together == pytest.approx(alone, abs=1e-6)
    assert together[0] != pytest.approx(together[1], abs=1e-4)


def test_unseen_categories_share_one_out_of_vocabulary_answer(model) -> None:
    def score(product: str) -> float:
        record = {"product": product, "state": "NY", "consumer_complaint_narrative": ""}
        return float(predict_proba(model, pd.DataFrame(records_to_arrays([record])))[0])

    unseen = [score("A product the model never saw"), score("Another unknown product")]
    assert np.isfinite(unseen).all() and unseen[0] == pytest.approx(unseen[1], abs=1e-7)
    assert score("Mortgage") != pytest.approx(unseen[0], abs=1e-4)
    empty = predict_proba(model, pd.DataFrame(records_to_arrays([{}])))
    assert np.isfinite(empty).all()


def test_saved_model_reloads_with_identical_predictions(
    model, features: pd.DataFrame, tmp_path: Path
) -> None:
    inputs = features[list(FEATURE_COLUMNS)].head(300)
    reloaded = load_model(save_model(model, tmp_path))
    np.testing.assert_allclose(
        predict_proba(reloaded, inputs), predict_proba(model, inputs), atol=1e-6
    )


def test_platt_scaling_never_reverses_the_ranking_and_then_fixes_only_the_base_rate() -> None:
    rng = np.random.default_rng(3)
    labels = (rng.random(400) < 0.2).astype(int)
    # A network that ranks backwards on these validation rows (noise on a small split).
    probabilities = np.where(labels == 1, 0.3, 0.6) + rng.normal(0, 0.05, 400)
    scaling = fit_platt_scaling(labels, np.clip(probabilities, 0.01, 0.99))
    assert scaling.slope == 1.0
    logits = np.log(probabilities / (1 - probabilities))
    calibrated = 1 / (1 + np.exp(-(logits + scaling.intercept)))
    assert calibrated.mean() == pytest.approx(labels.mean(), abs=1e-6)
    assert np.array_equal(np.argsort(calibrated), np.argsort(probabilities))


def test_platt_scaling_recovers_a_known_miscalibration() -> None:
    rng = np.random.default_rng(5)
    true_logits = rng.normal(-1.5, 1.2, size=20_000)
    labels = (rng.uniform(size=true_logits.size) < 1 / (1 + np.exp(-true_logits))).astype(float)
    # An overconfident model: its logits are twice the truth, shifted up by one.
    reported = 1 / (1 + np.exp(-(2 * true_logits + 1)))
    scaling = fit_platt_scaling(labels, reported)
    assert scaling.slope == pytest.approx(0.5, abs=0.05)
    assert scaling.intercept == pytest.approx(-0.5, abs=0.1)


def test_the_calibrated_network_is_its_logit_rescaled_and_survives_saving(
    model, features: pd.DataFrame, tmp_path: Path
) -> None:
    inputs = features[list(FEATURE_COLUMNS)].head(300)
    raw = np.clip(predict_proba(model, inputs), 1e-7, 1 - 1e-7)
    scaling = PlattScaling(slope=0.7, intercept=-0.4)
    calibrated = with_platt_scaling(model, scaling)
    expected = 1 / (1 + np.exp(-(0.7 * np.log(raw / (1 - raw)) - 0.4)))
    np.testing.assert_allclose(predict_proba(calibrated, inputs), expected, atol=1e-5)
    reloaded = load_model(save_model(calibrated, tmp_path))
    np.testing.assert_allclose(
        predict_proba(reloaded, inputs), predict_proba(calibrated, inputs), atol=1e-6
    )


def layer_names(model) -> set[str]:
    return {layer.name for layer in model.layers}


@pytest.mark.parametrize(
    ("changes", "present", "absent"),
    [
        ({}, {"wide_logit", "deep_logit", "narrative_mean", "zip3_embedding"}, set()),
        ({"architecture": "wide"}, {"wide_logit"}, {"deep_hidden", "narrative_mean", "zip3_hash"}),
        ({"architecture": "deep"}, {"deep_logit", "narrative_mean"}, {"wide_logit"}),
        ({"use_narrative": False}, {"wide_logit", "deep_logit"}, {"narrative_tokens"}),
    ],
)
def test_ablation_switches_drop_the_parts_they_name_and_keep_every_input(
    features: pd.DataFrame, changes: dict, present: set[str], absent: set[str]
) -> None:
    inputs = features[list(FEATURE_COLUMNS)]
    model = build_model(inputs, ModelParams(**{"use_history": False, **changes}))
    assert present <= layer_names(model) and not absent & layer_names(model)
    # The serving schema is the same whatever the variant.
    assert {t.name for t in model.inputs} == set(FEATURE_COLUMNS)
    calibrated = with_platt_scaling(model, PlattScaling(slope=1.0, intercept=0.0))
    np.testing.assert_allclose(
        predict_proba(calibrated, inputs.head(50)), predict_proba(model, inputs.head(50)), atol=1e-6
    )


def test_wide_l2_penalises_the_wide_logit_and_an_extra_hashed_input_is_embedded(
    features: pd.DataFrame,
) -> None:
    inputs = features[list(FEATURE_COLUMNS)].assign(company="Bank A")
    model = build_model(inputs, ModelParams(wide_l2=1e-2, use_history=False), {"company": 50})
    assert model.get_layer("wide_logit").kernel_regularizer is not None
    assert model.get_layer("deep_logit").kernel_regularizer is None
    assert model.get_layer("company_embedding").input_dim == 50
    assert predict_proba(model, inputs.head(5)).shape == (5,)
    wide = build_model(inputs, ModelParams(architecture="wide", use_history=False), {"company": 50})
    assert wide.get_layer("company_hash").output_mode == "one_hot"


def test_the_history_enters_as_one_input_logged_normalized_and_is_required(
    tmp_path: Path,
) -> None:
    from ml_assets.model.history import HISTORY_FEATURES, with_history_from
    from ml_assets.model.network import HISTORY_INPUT, model_input_names

    frames, validated = [], []
    for offset in range(6):
        day = pd.Timestamp("2016-01-01") + pd.Timedelta(days=offset)
        raw = read_landing_day(
            [("d.csv", generate_day(day.date(), 200, seed=5).encode())], str(day.date())
        )
        valid = split_valid_rejected(raw).valid
        validated.append(valid)
        frames.append(to_features(valid))
    features = pd.concat(frames, ignore_index=True)
    rows = with_history_from(pd.concat(validated, ignore_index=True), features, date(2016, 1, 7))
    rows = rows.dropna(subset=[LABEL]).reset_index(drop=True)
    params = ModelParams(epochs=2, batch_size=256)
    model = build_model(rows, params)
    assert set(model_input_names(model)) == {*FEATURE_COLUMNS, HISTORY_INPUT}
    assert model.get_layer(HISTORY_INPUT).output.shape[-1] == len(HISTORY_FEATURES)
    labels = rows[LABEL].to_numpy()
    fit_model(model, rows, labels, rows.tail(100), labels[-100:], params)
    # Normalized on the training rows after log(1 + count): mean ~0 there, whatever the scale.
    logged = model.get_layer("history_log_counts")(rows[list(HISTORY_FEATURES)].to_numpy("float32"))
    normalized = np.asarray(model.get_layer("history_normalization")(logged))
    np.testing.assert_allclose(normalized.mean(axis=0), 0.0, atol=1e-3)
    reloaded = load_model(save_model(model, tmp_path))
    np.testing.assert_allclose(
        predict_proba(reloaded, rows.head(30)), predict_proba(model, rows.head(30)), atol=1e-6
    )
    # The history changes the answer, and a model that takes it refuses inputs without it.
    shifted = rows.head(30).assign(company_dispute_rate_365d=0.99, company_complaints_365d=5e4)
    assert not np.allclose(predict_proba(model, shifted), predict_proba(model, rows.head(30)))
    with pytest.raises(KeyError, match="join them first"):
        predict_proba(model, rows.head(5)[list(FEATURE_COLUMNS)])
