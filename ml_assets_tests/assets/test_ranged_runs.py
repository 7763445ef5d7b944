"""A run over many days records exactly what runs of one day each record."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from ml_assets.assets.day_ranges import day_chunks, range_tags
from ml_assets.assets.keys import WAREHOUSE_SCHEMA
from ml_assets.definitions import build_definitions
from ml_assets.ingest.landing import complaints_root
from ml_assets.jobs import DATA_LAYER_ASSETS, DATA_LAYER_KEYS
from ml_assets.synthetic.export import generate_landing
from ml_assets_tests.factories import csv_file, csv_line, edit_keeping_size_and_mtime, land
from resources.compat.dagster_testing import StaleStatus, get_stale_status_resolver
from resources.home import ProjectHome
from resources.warehouse import COLUMN_SCHEMA

FIRST = date(2016, 3, 1)
DAYS = [(FIRST + timedelta(days=i)).isoformat() for i in range(6)]
TABLES = [key.path[-1] for key in DATA_LAYER_KEYS]
# What differs between any two runs, whoever ran them: not part of what a day records.
RUN_SPECIFIC = ("dagster/input_event_pointer/",)
# The IO manager's account of the write (the run's query and the table's path): the ranged run's
# own events carry it for the range.
IO_MANAGER_KEYS = ("Query", "dagster/table_name")


def _run(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    days: list[str],
    selection: list[dg.AssetKey] | None = None,
) -> dg.ExecuteInProcessResult:
    job = defs.resolve_job_def("data_layer_job")
    return job.execute_in_process(
        instance=instance, tags=range_tags(days), raise_on_error=False, asset_selection=selection
    )


def _world(folder: Path) -> tuple[ProjectHome, dg.Definitions, dg.DagsterInstance]:
    home = ProjectHome(folder)
    generate_landing(home.landing, FIRST, len(DAYS), 250, seed=8, defect_rate=0.05)
    instance = dg.DagsterInstance.ephemeral()
    return home, build_definitions(home), instance


@pytest.fixture(scope="module")
def daily(tmp_path_factory: pytest.TempPathFactory):
    home, defs, instance = _world(tmp_path_factory.mktemp("daily"))
    for day in DAYS:
        assert _run(defs, instance, [day]).success
    return home, defs, instance


@pytest.fixture(scope="module")
def ranged(tmp_path_factory: pytest.TempPathFactory):
    home, defs, instance = _world(tmp_path_factory.mktemp("ranged"))
    result = _run(defs, instance, DAYS)
    assert result.success
    return home, defs, instance, result


def _tables(home: ProjectHome) -> dict[str, list[tuple]]:
    with duckdb.connect(str(home.warehouse), read_only=True) as conn:
        return {
            t: conn.execute(f"select * from {WAREHOUSE_SCHEMA}.{t} order by all").fetchall()
            for t in TABLES
        }


def _latest_records(instance: dg.DagsterInstance) -> dict[tuple[str, str], tuple[dict, dict]]:
    """Per asset and day: the latest materialization's tags (run-specific ones out) and metadata."""
    out = {}
    for key in DATA_LAYER_KEYS:
        for day in DAYS:
            (record,) = instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=key, asset_partitions=[day]), limit=1
            ).records
            event = record.asset_materialization
            tags = {k: v for k, v in (event.tags or {}).items() if not k.startswith(RUN_SPECIFIC)}
            tags = {k: v for k, v in tags.items() if not k.startswith("dagster/backfill")}
            metadata = {k: v for k, v in event.metadata.items() if k not in IO_MANAGER_KEYS}
            out[(key.to_user_string(), day)] = (tags, metadata)
    return out


def test_one_run_over_the_days_writes_the_same_tables(daily, ranged) -> None:
    assert _tables(ranged[0]) == _tables(daily[0])
    assert all(_tables(daily[0]).values())


def test_each_day_keeps_its_own_data_version_and_metadata(daily, ranged) -> None:
    by_day, in_range = _latest_records(daily[2]), _latest_records(ranged[2])
    assert in_range.keys() == by_day.keys()
    for (asset, day), (tags, metadata) in by_day.items():
        if day != DAYS[-1]:
            # A ranged run records the table's columns once, on its newest day.
            assert in_range[asset, DAYS[-1]][1][COLUMN_SCHEMA] == metadata.pop(COLUMN_SCHEMA)
        assert in_range[asset, day] == (tags, metadata), (asset, day)
    versions = {by_day[("raw_complaints", d)][0]["dagster/data_version"] for d in DAYS}
    assert len(versions) == len(DAYS)  # every day its own version, not one per run


def test_the_ranged_run_is_one_run_and_checks_each_day(ranged) -> None:
    *_, instance, result = ranged
    assert len(instance.get_runs()) == 1
    per_day = {
        (e.check_name, e.partition): e.passed
        for e in result.get_asset_check_evaluations()
        if e.partition is not None
    }
    # Every day's reconcile verdict; the other checks per day only on the days they fail.
    assert {d: per_day.pop(("rows_reconcile", d)) for d in DAYS} == dict.fromkeys(DAYS, True)
    whole = {e.check_name: e for e in result.get_asset_check_evaluations() if not e.partition}
    assert set(whole) == {
        "rows_reconcile",
        "typed_contract",
        "no_unmasked_pii",
        "rejected_rate",
        "label_balance",
    }
    failed = {(name, d) for name, e in whole.items() for d in e.metadata["failed_days"].value}
    assert set(per_day) == failed and not any(per_day.values())
    assert all(whole[name].passed == (not any(n == name for n, _ in failed)) for name in whole)


def test_after_a_ranged_run_a_changed_day_makes_only_that_day_stale(ranged) -> None:
    home, defs, instance, _ = ranged
    validated = dg.AssetKey("validated_complaints")

    def stale_days() -> list[str]:
        resolver = get_stale_status_resolver(instance, DATA_LAYER_ASSETS)
        return [d for d in DAYS if resolver.get_status(validated, d) != StaleStatus.FRESH]

    assert stale_days() == []
    raw_only = [dg.AssetKey("raw_complaints")]
    assert _run(defs, instance, DAYS, raw_only).success  # the same bytes again, over the range
    assert stale_days() == []
    edit_keeping_size_and_mtime(complaints_root(home.landing) / DAYS[2] / "synthetic.csv")
    assert _run(defs, instance, DAYS, raw_only).success  # one day's bytes changed
    assert stale_days() == [DAYS[2]]


def test_days_are_grouped_into_runs_of_consecutive_days() -> None:
    days = ["2016-01-01", "2016-01-02", "2016-01-04", "2016-01-05", "2016-01-06", "2016-02-01"]
    assert day_chunks(days, size=2) == [
        ["2016-01-01", "2016-01-02"],
        ["2016-01-04", "2016-01-05"],
        ["2016-01-06"],
        ["2016-02-01"],
    ]
    assert day_chunks(list(reversed(days)), size=90)[1] == [
        "2016-01-04",
        "2016-01-05",
        "2016-01-06",
    ]


def test_runs_also_hold_at_most_a_cap_of_landing_bytes() -> None:
    days = [f"2016-01-0{d}" for d in range(1, 8)]
    sizes = dict(zip(days, [40, 40, 30, 90, 10, 150, 5], strict=True))
    # 40+40 fit under 100 and +30 would not; 90+10 fit; 150 alone exceeds the cap, and runs alone.
    assert day_chunks(days, size=90, day_bytes=sizes, max_bytes=100) == [
        ["2016-01-01", "2016-01-02"],
        ["2016-01-03"],
        ["2016-01-04", "2016-01-05"],
        ["2016-01-06"],
        ["2016-01-07"],
    ]
    assert day_chunks(days, size=90, day_bytes=sizes, max_bytes=10**9) == [days]


def test_a_day_with_many_rejected_rows_warns_for_that_day_only(tmp_path: Path) -> None:
    home = ProjectHome(tmp_path)
    days = ["2016-01-04", "2016-01-05", "2016-01-06"]
    for number, day in enumerate(days):
        received = f"{day[5:7]}/{day[8:10]}/{day[:4]}"
        states = ["ZZ"] * 5 if day == days[1] else ["NJ"] * 5  # ZZ: not a state, rejected
        records = [
            csv_line(Date_received=received, Complaint_ID=f"{number}{i}", State=state)
            for i, state in enumerate(states)
        ]
        land(home.landing, day, csv_file(*records))
    instance = dg.DagsterInstance.ephemeral()
    result = _run(build_definitions(home), instance, days)
    assert result.success  # a WARN check does not fail the run
    per_day = {
        e.partition: e
        for e in result.get_asset_check_evaluations()
        if e.check_name == "rejected_rate" and e.partition is not None
    }
    assert {d: e.passed for d, e in per_day.items()} == {days[1]: False}  # the failing day only
    assert per_day[days[1]].severity == dg.AssetCheckSeverity.WARN
    (whole,) = [
        e
        for e in result.get_asset_check_evaluations()
        if e.check_name == "rejected_rate" and e.partition is None
    ]
    assert not whole.passed and whole.metadata["failed_days"].value == [days[1]]
