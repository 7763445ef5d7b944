"""Features with their company history joined, for tests of models that take it."""

from datetime import date

import pandas as pd

from ml_assets.columns import INGESTION_DATE_COLUMN
from ml_assets.model.history import (
    LOG_COLUMNS,
    as_of_day,
    day_contributions,
    history_snapshots,
    join_history,
    log_label_arrivals,
)

NOTHING_LOGGED = pd.DataFrame(columns=list(LOG_COLUMNS))


def with_history(validated: pd.DataFrame, features: pd.DataFrame, today: date) -> pd.DataFrame:
    """`features` (rows of `validated`) with HISTORY_FEATURES as the feature store gives them:
    labels as published by `today`, history as of the day before each row's day."""
    contributions = day_contributions(log_label_arrivals(validated, NOTHING_LOGGED, today))
    days = sorted(as_of_day(features[INGESTION_DATE_COLUMN]).dt.date.unique())
    joined = join_history(features, history_snapshots(contributions, days))
    return pd.concat([features, joined], axis=1)
