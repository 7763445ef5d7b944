"""The feature store's assets on landed synthetic days: the label log records when labels arrived,
company history is written per day, and feature_store writes the newest snapshot for serving."""

from datetime import date
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
import pytest

from ml_assets.assets.day_ranges import range_tags
from ml_assets.assets.history import feature_store
from ml_assets.columns import INGESTION_DATE_COLUMN
from ml_assets.definitions import local_resources
from ml_assets.jobs import DATA_LAYER_ASSETS
from ml_assets.model.history import (
    ARRIVED_ON,
    HISTORY_FEATURES,
    history_snapshots,
    join_history,
)
from ml_assets.model.online_store import OnlineStore
from ml_assets.synthetic.export import generate_landing
from ml_assets_tests.world import TODAY
from resources.home import ProjectHome

FIRST = date(2016, 3, 1)
DAYS = [f"2016-03-0{d}" for d in range(1, 7)]
LANDED_ON = date(2016, 3, 7)  # the first landing: labels published within 2 days are out
LATE_ON = date(2016, 3, 20)  # the second: every label is out


def frame(home: ProjectHome, sql: str) -> pd.DataFrame:
    with duckdb.connect(str(home.warehouse), read_only=True) as conn:
        return conn.execute(sql).fetchdf()


def land_and_materialize(home: ProjectHome, as_of: date, instance: dg.DagsterInstance) -> None:
    generate_landing(
        home.landing, FIRST, len(DAYS), 80, seed=5, label_delay_days=(1, 10), as_of=as_of
    )
    result = dg.materialize(
        DATA_LAYER_ASSETS,
        resources=local_resources(home),
        tags=range_tags(DAYS),
        instance=instance,
    )
    assert result.success


@pytest.fixture
def home(tmp_path: Path) -> ProjectHome:
    return ProjectHome(tmp_path / "home")


def test_late_labels_arrive_on_the_day_they_land_and_the_store_serves_the_newest_day(
    home: ProjectHome, monkeypatch: pytest.MonkeyPatch
) -> None:
    instance = dg.DagsterInstance.ephemeral()
    monkeypatch.setenv("ML_ASSETS_TODAY", LANDED_ON.isoformat())
    land_and_materialize(home, LANDED_ON, instance)
    first = frame(home, "select * from complaints.label_log")
    pending = first[first["disputed"].isna()]
    assert len(pending) > 0, "the world should leave some days' labels unpublished at first"
    labelled = first[first["disputed"].notna()]
    # Published with their day: arrived on that day.
    assert (labelled[ARRIVED_ON] == labelled[INGESTION_DATE_COLUMN]).all()

    monkeypatch.setenv("ML_ASSETS_TODAY", LATE_ON.isoformat())
    land_and_materialize(home, LATE_ON, instance)
    second = frame(home, "select * from complaints.label_log").set_index("complaint_id")
    late = second.loc[pending["complaint_id"]]
    late = late[late["disputed"].notna()]  # a few complaints never get a label
    assert len(late) > len(pending) / 2
    assert (late[ARRIVED_ON] == pd.Timestamp(LATE_ON)).all()
    # Labels logged the first time keep their arrival.
    kept = second.loc[labelled["complaint_id"], ARRIVED_ON]
    assert kept.tolist() == labelled[ARRIVED_ON].tolist()

    # company_history holds each day's own contributions; its snapshot of the last day is the
    # store's, and a complaint of the next day gets the same inputs from both.
    result = dg.materialize(
        [feature_store],
        resources=local_resources(home),
        instance=instance,
        selection=[feature_store],
    )
    assert result.success
    store = OnlineStore.open(home.feature_store)
    assert store.snapshot_date == date(2016, 3, 6)
    contributions = frame(home, "select * from complaints.company_history")
    assert set(contributions[INGESTION_DATE_COLUMN].dt.strftime("%Y-%m-%d")) == set(DAYS)
    snapshot = history_snapshots(contributions, [date(2016, 3, 6)])
    valid = frame(
        home, "select * from complaints.validated_complaints where ingestion_date = '2016-03-06'"
    ).assign(**{INGESTION_DATE_COLUMN: pd.Timestamp("2016-03-07")})
    offline = join_history(valid, snapshot).reset_index(drop=True)
    online = store.lookup(valid["company"].tolist(), valid["product"].tolist())
    pd.testing.assert_frame_equal(offline, online, check_exact=True)
    assert list(online.columns) == list(HISTORY_FEATURES)
    # A late label counts once it arrived: the snapshot as of 03-19 sees none of them.
    before = history_snapshots(contributions, [date(2016, 3, 19)])
    overall = before[before["level"] == "overall"].iloc[0]
    assert overall["labelled_30d"] == len(labelled)
    after = history_snapshots(contributions, [LATE_ON])
    assert after[after["level"] == "overall"].iloc[0]["labelled_30d"] == len(labelled) + len(late)
    assert TODAY > LATE_ON  # the pinned world's today is not what these runs were given


def test_feature_store_without_history_says_what_to_materialize(home: ProjectHome) -> None:
    result = dg.materialize([feature_store], resources=local_resources(home), raise_on_error=False)
    assert not result.success
    failure = result.failure_data_for_node("feature_store")
    assert failure is not None and failure.error is not None
    assert "company_history is empty: materialize the data layer" in failure.error.message


def test_a_join_that_would_read_a_day_without_history_fails_naming_it(
    home: ProjectHome, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ml_assets.assets.history import with_history
    from resources.warehouse import Warehouse

    monkeypatch.setenv("ML_ASSETS_TODAY", LATE_ON.isoformat())
    land_and_materialize(home, LATE_ON, dg.DagsterInstance.ephemeral())
    warehouse = Warehouse(database=str(home.warehouse))
    with warehouse.connect() as conn:
        last = conn.execute(
            "select * from complaints.complaint_features where ingestion_date = '2016-03-06'"
        ).fetchdf()
    assert with_history(warehouse, last)["company_complaints_30d"].max() > 0
    # The history of 03-03, which the snapshot as of 03-05 reads, was never written.
    with warehouse.connect(read_only=False) as conn:
        conn.execute("delete from complaints.company_history where ingestion_date = '2016-03-03'")
    with pytest.raises(dg.Failure, match=r"1 day\(s\) with complaints .*\(2016-03-03\)"):
        with_history(warehouse, last)
