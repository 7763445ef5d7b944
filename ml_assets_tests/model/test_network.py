from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ml_assets.ingest.cfpb_format import read_landing_day
from ml_assets.ingest.generator import generate_day
from ml_assets.ingest.validation import split_valid_rejected
from ml_assets.model.features import (
    FEATURE_COLUMNS,
    LABEL,
    records_to_arrays,
    to_features,
)
from ml_assets.model.network import (
    ModelParams,
    build_model,
    fit_model,
    load_model,
    predict_proba,
    save_model,
)

PARAMS = ModelParams(epochs=2, batch_size=256, max_tokens=2000, sequence_length=64)


@pytest.fixture(scope="module")
def features() -> pd.DataFrame:
    frames = []
    for offset in range(4):
        day = pd.Timestamp("2016-01-01") + pd.Timedelta(days=offset)
        raw = read_landing_day(
            [("d.csv", generate_day(day.date(), 300, seed=11).encode())], str(day.date())
        )
        frames.append(to_features(split_valid_rejected(raw).valid))
    return pd.concat(frames, ignore_index=True).dropna(subset=[LABEL])


@pytest.fixture(scope="module")
def model(features: pd.DataFrame):
    inputs = features[list(FEATURE_COLUMNS)]
    network = build_model(inputs, PARAMS)
    labels = features[LABEL].to_numpy()
    history = fit_model(network, inputs, labels, inputs.tail(200), labels[-200:], PARAMS)
    assert len(history["loss"]) >= 1 and "val_auc" in history
    return network


def test_raw_complaint_in_probability_out(model) -> None:
    record = {
        "product": "Mortgage",
        "issue": "Loan servicing",
        "state": "CA",
        "zip_code": "94110",
        "consumer_complaint_narrative": "still has not been resolved",
    }
    probability = predict_proba(model, pd.DataFrame(records_to_arrays([record])))
    assert probability.shape == (1,) and 0.0 < probability[0] < 1.0


def test_empty_narratives_and_unseen_categories_work(model) -> None:
    records = [
        {},
        {
            "product": "A product the model never saw",
            "state": "ZZ",
            "zip_code": "XXXXX",
            "consumer_complaint_narrative": "",
        },
    ]
    probability = predict_proba(model, pd.DataFrame(records_to_arrays(records)))
    assert np.isfinite(probability).all() and ((probability > 0) & (probability < 1)).all()


def test_saved_model_reloads_with_identical_predictions(
    model, features: pd.DataFrame, tmp_path: Path
) -> None:
    inputs = features[list(FEATURE_COLUMNS)].head(300)
    reloaded = load_model(save_model(model, tmp_path))
    np.testing.assert_allclose(
        predict_proba(reloaded, inputs), predict_proba(model, inputs), atol=1e-6
    )
