"""The training window at volume: only its labelled days leave DuckDB, and it ends where labels do."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
import pytest

from ml_assets.assets.keys import WAREHOUSE_SCHEMA
from ml_assets.assets.training import training_dataset
from ml_assets.columns import INGESTION_DATE_COLUMN
from ml_assets.ingest.cfpb_format import cfpb_timestamps, read_complaints_csv
from ml_assets.ingest.validation import split_valid_rejected
from ml_assets.model.features import LABEL, to_features
from ml_assets.model.history import LOG_COLUMNS, day_contributions, log_label_arrivals
from ml_assets.synthetic.export import generate_export
from resources.warehouse import Warehouse

LABELS_UNTIL = date(2017, 4, 24)


def _warehouse_with_features(folder: Path, labels_until: date | None) -> Warehouse:
    """A warehouse whose complaint_features hold 2017-03-01..2017-05-10, labelled up to a day."""
    export = folder / "complaints.csv"
    generate_export(
        export, 8000, date(2017, 3, 1), date(2017, 5, 10), seed=1, labels_until=labels_until
    )
    raw = read_complaints_csv(export.read_bytes(), "complaints.csv")
    raw[INGESTION_DATE_COLUMN] = cfpb_timestamps(raw["date_received"])
    valid = split_valid_rejected(raw).valid
    features = to_features(valid)  # noqa: F841 (read by DuckDB below)
    # The days' company history, as the data layer writes it beside the features.
    nothing = pd.DataFrame(columns=list(LOG_COLUMNS))
    history = day_contributions(log_label_arrivals(valid, nothing, date(2017, 5, 11)))  # noqa: F841
    database = folder / "warehouse.duckdb"
    with duckdb.connect(str(database)) as conn:
        conn.execute(f"create schema {WAREHOUSE_SCHEMA}")
        conn.execute(
            f"create table {WAREHOUSE_SCHEMA}.complaint_features as select * from features"
        )
        conn.execute(f"create table {WAREHOUSE_SCHEMA}.company_history as select * from history")
    return Warehouse(database=str(database))


def _materialize(warehouse: Warehouse, **config: object) -> tuple[pd.DataFrame, dict]:
    result = dg.materialize(
        [training_dataset],
        resources={"warehouse": warehouse, "io_manager": dg.InMemoryIOManager()},
        run_config={"ops": {"training_dataset": {"config": {"window_days": 20, **config}}}},
    )
    (event,) = result.get_asset_materialization_events()
    metadata = {k: v.value for k, v in event.materialization.metadata.items()}
    return result.output_for_node("training_dataset"), metadata


def test_the_window_ends_on_the_newest_labelled_day_not_the_newest_day(tmp_path: Path) -> None:
    dataset, metadata = _materialize(_warehouse_with_features(tmp_path, LABELS_UNTIL))
    assert metadata["window"] == "2017-04-05..2017-04-24"
    assert metadata["window_end"] == "newest day with labels"
    assert metadata["newest_feature_day"] == "2017-05-10"
    assert metadata["newest_labelled_day"] == "2017-04-24"
    days = pd.to_datetime(dataset[INGESTION_DATE_COLUMN]).dt.date
    assert days.min() == date(2017, 4, 5) and days.max() == LABELS_UNTIL
    assert dataset[LABEL].notna().all() and len(dataset) > 1500


def test_an_end_date_in_the_config_wins(tmp_path: Path) -> None:
    _, metadata = _materialize(
        _warehouse_with_features(tmp_path, LABELS_UNTIL), end_date="2017-04-10"
    )
    assert metadata["window"] == "2017-03-22..2017-04-10"
    assert metadata["window_end"] == "end_date (config)"


def test_features_without_any_label_fail_saying_what_to_do(tmp_path: Path) -> None:
    warehouse = _warehouse_with_features(tmp_path, date(2017, 2, 1))
    with pytest.raises(
        dg.Failure, match=r"no labelled rows \(newest day 2017-05-10\).*stopped collecting"
    ):
        _materialize(warehouse)
