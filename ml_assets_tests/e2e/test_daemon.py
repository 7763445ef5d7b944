"""The landing-file sensor under the real Dagster daemon: a landed day is ingested once, and again
only when its bytes change, whatever its file stamps say."""

import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import psutil
import pytest

from ml_assets.assets.keys import FEATURE_STORE
from ml_assets.operations import run_days
from ml_assets_tests.e2e.dagster_daemon import (
    landing_sensor_skips,
    ml_assets,
    running_daemon,
    wait_for,
    warehouse_tables,
)
from ml_assets_tests.factories import edit_keeping_size_and_mtime, touch

pytestmark = [pytest.mark.e2e, pytest.mark.services, pytest.mark.timeout(900)]
DAYS = ["2016-03-01", "2016-03-02"]
LAND_TWO_DAYS = ("generate", "--start", DAYS[0], "--days", "2", "--rows-per-day", "30")
SENSOR_INTERVAL = {"ML_ASSETS_SENSOR_INTERVAL_S": "5"}
KILL_ROWS = "3000"  # enough for validation to take a moment


def data_runs(instance: dg.DagsterInstance) -> list[dg.DagsterRun]:
    """The data layer's runs: not the automation's refreshes of the online store that follow."""
    return [
        r for r in instance.get_runs() if FEATURE_STORE not in (r.asset_selection or frozenset())
    ]


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def daemon_log(home: Path) -> Iterator[Path]:
    with running_daemon(home, **SENSOR_INTERVAL) as log:
        yield log


def test_the_daemon_ingests_a_day_once_and_again_only_when_its_bytes_change(
    home: Path, daemon_log: Path
) -> None:
    ml_assets(home, *LAND_TWO_DAYS)
    landed = home / "landing" / "complaints" / DAYS[0] / "synthetic.csv"
    with dg.DagsterInstance.from_config(str(home / "dagster")) as instance:

        def finished_runs() -> list[dg.DagsterRun]:
            return [r for r in data_runs(instance) if r.is_finished]

        # Both days landed in one tick: one run over the two consecutive days.
        wait_for(lambda: len(finished_runs()) == 1, 240, "the data-layer run", daemon_log)
        runs = finished_runs()
        assert all(r.is_success for r in runs), [r.status for r in runs]
        assert [run_days(r.tags) for r in runs] == [tuple(DAYS)]
        assert instance.get_materialized_partitions(dg.AssetKey("complaint_features")) == set(DAYS)

        # The same bytes with a new mtime: the sensor reads the day again and requests nothing.
        seen = len(landing_sensor_skips(instance))
        touch(landed)
        reread = f"re-read with unchanged content: {DAYS[0]}"
        wait_for(
            lambda: any(reread in skip for skip in landing_sensor_skips(instance)[seen:]),
            120,
            f"a tick that re-read {DAYS[0]}",
            daemon_log,
        )
        assert len(data_runs(instance)) == 1

        # Changed bytes with the same size and mtime: exactly one more run, for that day.
        edit_keeping_size_and_mtime(landed)
        wait_for(lambda: len(finished_runs()) == 2, 240, "the run of the changed day", daemon_log)
        (rerun,) = [r for r in finished_runs() if r.run_id not in {r.run_id for r in runs}]
        assert rerun.is_success and rerun.tags["dagster/partition"] == DAYS[0]
        seen = len(landing_sensor_skips(instance))
        wait_for(
            lambda: len(landing_sensor_skips(instance)) >= seen + 2,
            120,
            "two more sensor ticks",
            daemon_log,
        )
        assert len(data_runs(instance)) == 2


def run_worker(instance: dg.DagsterInstance, run_id: str) -> psutil.Process | None:
    """The process executing the run (the one that reported its start), once it has started."""
    records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.RUN_START).records
    return psutil.Process(records[0].event_log_entry.dagster_event.pid) if records else None


def step_started(instance: dg.DagsterInstance, run_id: str, step: str) -> bool:
    records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.STEP_START).records
    return any(r.event_log_entry.step_key == step for r in records)


def test_a_run_killed_mid_partition_is_retried_and_the_day_ingested_once(tmp_path: Path) -> None:
    home, reference = tmp_path / "home", tmp_path / "reference"
    ml_assets(home, "generate", "--start", DAYS[0], "--days", "1", "--rows-per-day", KILL_ROWS)
    shutil.copytree(home / "landing", reference / "landing")
    ml_assets(reference, "materialize")
    # Landed once the failure sensor has ticked: a run-status sensor's first tick sets its cursor
    # after every event already stored, so a failure before that tick is never reported.
    staged = tmp_path / "staged"
    shutil.move(home / "landing", staged)
    (home / "landing").mkdir()
    with (
        running_daemon(home, **SENSOR_INTERVAL) as log,
        dg.DagsterInstance.from_config(str(home / "dagster")) as instance,
    ):
        initiated = "Initiating run_failure_sensor"
        wait_for(lambda: initiated in log.read_text(), 240, "the failure sensor's first tick", log)
        shutil.copytree(staged, home / "landing", dirs_exist_ok=True)
        wait_for(lambda: len(data_runs(instance)) == 1, 240, "the day's run", log)
        (first,) = data_runs(instance)
        # Killed as soon as validation starts: raw rows written, validated and rejected not yet.
        deadline = time.monotonic() + 240
        while not step_started(instance, first.run_id, "validate_complaints"):
            assert time.monotonic() < deadline, log.read_text()[-4000:]
            time.sleep(0.05)
        worker = run_worker(instance, first.run_id)
        assert worker is not None
        for process in [*worker.children(recursive=True), worker]:
            process.kill()  # SIGKILL: no handler runs, as with the OOM killer
        wait_for(
            lambda: any(r.is_success for r in data_runs(instance)), 300, "the retried run", log
        )
        runs = {r.run_id: r for r in data_runs(instance)}
        failures = home / "logs" / "run_failures.jsonl"

        def reported() -> list[dict]:
            lines = failures.read_text().splitlines() if failures.exists() else []
            return [json.loads(line) for line in lines]

        wait_for(lambda: bool(reported()), 120, "the failure report", log)
    (report,) = reported()
    assert report["run_id"] == first.run_id and report["will_retry"] is True
    killed, retry = runs[first.run_id], next(r for r in runs.values() if r.run_id != first.run_id)
    assert len(runs) == 2 and killed.status == dg.DagsterRunStatus.FAILURE
    assert killed.tags["dagster/will_retry"] == "true"
    assert retry.is_success and retry.tags["dagster/retry_number"] == "1"
    assert retry.parent_run_id == killed.run_id and retry.tags["dagster/partition"] == DAYS[0]
    # What a run that was never killed writes, row for row: nothing twice, nothing missing.
    assert warehouse_tables(home) == warehouse_tables(reference)
