"""The serving path of a model that takes company history: looked up in the online store at
request time, the same inputs as the offline join, refreshed when the store is replaced."""

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ml_assets.columns import INGESTION_DATE_COLUMN
from ml_assets.ingest.cfpb_format import read_landing_day
from ml_assets.ingest.validation import split_valid_rejected
from ml_assets.model.features import LABEL, to_features
from ml_assets.model.history import (
    HISTORY_FEATURES,
    LOG_COLUMNS,
    day_contributions,
    history_snapshots,
    join_history,
    log_label_arrivals,
    with_history_from,
)
from ml_assets.model.network import ModelParams, build_model, predict_proba
from ml_assets.model.online_store import write_online_store
from ml_assets.serving.predictor import Predictor
from ml_assets.synthetic.export import generate_day

DAYS = [date(2016, 2, d) for d in range(1, 6)]


@pytest.fixture(scope="module")
def world() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Validated complaints of five days, and their features with history."""
    validated = []
    for day in DAYS:
        text = generate_day(day, 150, seed=9)
        validated.append(
            split_valid_rejected(read_landing_day([("d.csv", text.encode())], str(day))).valid
        )
    valid = pd.concat(validated, ignore_index=True)
    features = with_history_from(valid, to_features(valid), date(2016, 2, 6))
    return valid, features


def test_the_replica_looks_up_what_the_offline_join_gives_and_follows_a_new_store(
    world: tuple[pd.DataFrame, pd.DataFrame], tmp_path: Path
) -> None:
    valid, features = world
    model = build_model(features.dropna(subset=[LABEL]), ModelParams())
    nothing = pd.DataFrame(columns=list(LOG_COLUMNS))
    contributions = day_contributions(log_label_arrivals(valid, nothing, date(2016, 2, 6)))
    store = tmp_path / "online.sqlite"
    write_online_store(history_snapshots(contributions, [DAYS[-2]]), store)
    with pytest.raises(ValueError, match="feature store's path"):
        Predictor(model, None)
    predictor = Predictor(model, str(store))
    assert predictor.snapshot_date == DAYS[-2]
    # The last day's complaints, as requests: the store's history is the offline join's.
    last = features[features[INGESTION_DATE_COLUMN] == pd.Timestamp(DAYS[-1])].head(40)
    records = valid[valid[INGESTION_DATE_COLUMN] == pd.Timestamp(DAYS[-1])].head(40)
    records = records.to_dict("records")
    online = predictor.history(records)
    np.testing.assert_array_equal(online, last[list(HISTORY_FEATURES)].to_numpy("float32"))
    np.testing.assert_allclose(
        predictor.predict_records(records), predict_proba(model, last), rtol=1e-5, atol=1e-6
    )
    # A company never seen: the priors, not an error.
    (unseen,) = predictor.history([{"company": "Never Seen LLC", "product": "Mortgage"}])
    assert unseen[list(HISTORY_FEATURES).index("company_complaints_365d")] == 0.0

    # feature_store writes the next day's snapshot: the replica serves it from the next request.
    write_online_store(history_snapshots(contributions, [DAYS[-1]]), store)
    assert predictor.snapshot_date == DAYS[-1]  # what /model reports, before any request
    after = predictor.history(records)
    next_day = join_history(
        pd.DataFrame(records).assign(
            **{INGESTION_DATE_COLUMN: pd.Timestamp(DAYS[-1]) + pd.Timedelta(days=1)}
        ),
        history_snapshots(contributions, [DAYS[-1]]),
    )
    np.testing.assert_array_equal(after, next_day.to_numpy("float32"))
    assert not np.array_equal(after, online)
