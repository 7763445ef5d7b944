"""The project's event log: Dagster's SQLite storage with open connections and WAL commits."""

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from sqlalchemy import event
from sqlalchemy.engine import Engine

from ml_assets.instance import init_home
from resources.event_log import ProjectSqliteEventLogStorage
from resources.home import ProjectHome

# Dagster's watcher reads the log when the file system says it changed: well under a second.
WATCH_TIMEOUT_S = 10.0
DAYS = dg.DailyPartitionsDefinition(start_date="2016-01-01", end_date="2016-01-11")


@dg.asset(partitions_def=DAYS)
def daily_figure(
    context: dg.AssetExecutionContext,
) -> Iterator[dg.Output | dg.AssetMaterialization]:
    """One output over the run's days, then each day's own materialization (as ranged runs do)."""
    yield dg.Output(len(context.partition_keys))
    for day in context.partition_keys:
        yield dg.AssetMaterialization(asset_key="daily_figure", partition=day)


class Discard(dg.IOManager):
    """Stores nothing: the events are what these tests look at."""

    def handle_output(self, context: dg.OutputContext, obj: object) -> None:
        pass

    def load_input(self, context: dg.InputContext) -> object:
        raise NotImplementedError


@pytest.fixture
def home(tmp_path: Path) -> ProjectHome:
    home = ProjectHome(tmp_path)
    init_home(home)
    return home


@contextmanager
def counted_connections(folder: Path) -> Iterator[list[str]]:
    """The SQLite databases in `folder` that any engine opens a connection to inside the block."""
    opened: list[str] = []

    def count(dbapi_connection: Any, _: object) -> None:
        path = Path(dbapi_connection.execute("pragma database_list").fetchone()[2])
        if path.parent == folder:
            opened.append(path.name)

    event.listen(Engine, "connect", count)
    try:
        yield opened
    finally:
        event.remove(Engine, "connect", count)


def _materialize(instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [daily_figure],
        instance=instance,
        resources={"io_manager": Discard()},
        tags={
            "dagster/asset_partition_range_start": "2016-01-01",
            "dagster/asset_partition_range_end": "2016-01-10",
        },
    )


def test_the_project_instance_keeps_a_connection_per_database_and_commits_without_fsync(
    home: ProjectHome,
) -> None:
    with dg.DagsterInstance.from_config(str(home.dagster_home)) as instance:
        storage = instance.event_log_storage
        assert isinstance(storage, ProjectSqliteEventLogStorage)
        with counted_connections(home.dagster_home / "history" / "runs") as opened:
            result = _materialize(instance)
        events = instance.get_records_for_run(result.run_id, limit=10_000).records
        # Dagster's own storage opens a connection per event and per mirrored asset event.
        assert len(events) > 40 and len(opened) <= 4, (len(events), opened)
        with storage.run_connection(result.run_id) as conn:
            assert conn.exec_driver_sql("pragma journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("pragma synchronous").scalar() == 1  # NORMAL
        records = instance.fetch_materializations(dg.AssetKey("daily_figure"), limit=100)
        assert len(records.records) == 20  # Dagster's ten and the asset's own ten


@contextmanager
def counted_commits() -> Iterator[list[str]]:
    """The databases (file names) of the transactions any engine commits inside the block."""
    committed: list[str] = []

    def count(conn: Any) -> None:
        committed.append(Path(conn.engine.url.database).name)

    event.listen(Engine, "commit", count)
    try:
        yield committed
    finally:
        event.remove(Engine, "commit", count)


def _materializations_of(
    instance: dg.DagsterInstance, run_id: str, copy_to: str
) -> list[dg.EventLogEntry]:
    """The run's materialization events, as if another run (`copy_to`) had written them."""
    records = instance.get_records_for_run(
        run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION, limit=10_000
    ).records
    return [r.event_log_entry._replace(run_id=copy_to) for r in records]


def test_a_batch_of_events_commits_once_per_database_or_not_at_all(
    home: ProjectHome, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = dg.AssetKey("daily_figure")
    with dg.DagsterInstance.from_config(str(home.dagster_home)) as instance:
        storage = instance.event_log_storage
        source = _materialize(instance).run_id
        batch = _materializations_of(instance, source, copy_to="batch-run")
        assert len(batch) == 20
        storage.store_event(batch[0])  # creates the run's database, in transactions of its own
        with counted_commits() as committed:
            storage.store_event_batch(batch[1:])
        # Dagster's base class commits every event, and every asset event twice.
        assert sorted(committed) == ["batch-run.db", "index.db"], committed
        assert len(instance.get_records_for_run("batch-run").records) == 20
        assert len(instance.fetch_materializations(key, limit=100).records) == 40

        failing = _materializations_of(instance, source, copy_to="failing-run")
        instance.report_engine_event("run started", run_id="failing-run", job_name="job")
        stored = storage._store_asset_event
        calls: list[int] = []

        def fail_on_the_third(conn: Any, event_entry: Any, event_id: int) -> None:
            calls.append(event_id)
            if len(calls) == 3:
                raise RuntimeError("disk full")
            stored(conn, event_entry, event_id)

        monkeypatch.setattr(storage, "_store_asset_event", fail_on_the_third)
        with pytest.raises(RuntimeError, match="disk full"):
            storage.store_event_batch(failing)
        # Nothing of the failed batch stays: Dagster then stores its events one by one.
        (started,) = instance.get_records_for_run("failing-run").records
        assert started.event_log_entry.message == "run started"
        assert len(instance.fetch_materializations(key, limit=100).records) == 40


def test_two_instances_on_one_home_see_each_others_events_at_once(home: ProjectHome) -> None:
    with (
        dg.DagsterInstance.from_config(str(home.dagster_home)) as first,
        dg.DagsterInstance.from_config(str(home.dagster_home)) as second,
    ):
        key = dg.AssetKey("daily_figure")
        assert first.get_latest_materialization_event(key) is None  # opens first's connections
        result = _materialize(second)
        latest = first.get_latest_materialization_event(key)
        assert latest is not None and latest.run_id == result.run_id
        again = _materialize(first)
        assert second.get_latest_materialization_event(key).run_id == again.run_id


def test_the_live_run_log_sees_events_while_the_writer_keeps_its_connection(
    home: ProjectHome,
) -> None:
    run_id = "0123abcd-0000-4000-8000-000000000000"
    seen: list[str] = []
    with (
        dg.DagsterInstance.from_config(str(home.dagster_home)) as ui,
        dg.DagsterInstance.from_config(str(home.dagster_home)) as worker,
    ):
        worker.report_engine_event(
            "run started", run_id=run_id, job_name="job"
        )  # the run's database exists
        ui.event_log_storage.watch(run_id, None, lambda entry, _: seen.append(entry.message))
        for n in range(3):
            worker.report_engine_event(f"step {n}", run_id=run_id, job_name="job")
            deadline = time.monotonic() + WATCH_TIMEOUT_S
            while f"step {n}" not in seen and time.monotonic() < deadline:
                time.sleep(0.05)
            assert f"step {n}" in seen, seen  # the worker's connection is still open


def test_a_wipe_leaves_no_connection_on_deleted_files(home: ProjectHome) -> None:
    with dg.DagsterInstance.from_config(str(home.dagster_home)) as instance:
        first = _materialize(instance)
        assert instance.get_records_for_run(first.run_id).records
        instance.event_log_storage.wipe()
        assert not instance.get_records_for_run(first.run_id).records
        second = _materialize(instance)
        with dg.DagsterInstance.from_config(str(home.dagster_home)) as fresh:
            # What this process writes after the wipe is in the files every process reads.
            assert len(fresh.get_records_for_run(second.run_id).records) > 40
