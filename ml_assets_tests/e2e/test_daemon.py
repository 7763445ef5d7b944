"""The landing-file sensor under the real Dagster daemon: a landed day is ingested once, and again
only when its bytes change, whatever its file stamps say."""

from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from ml_assets.operations import run_days
from ml_assets_tests.e2e.dagster_daemon import (
    landing_sensor_skips,
    ml_assets,
    running_daemon,
    wait_for,
)
from ml_assets_tests.factories import edit_keeping_size_and_mtime, touch

pytestmark = [pytest.mark.e2e, pytest.mark.services, pytest.mark.timeout(900)]
DAYS = ["2016-03-01", "2016-03-02"]
LAND_TWO_DAYS = ("generate", "--start", DAYS[0], "--days", "2", "--rows-per-day", "30")
SENSOR_INTERVAL = {"ML_ASSETS_SENSOR_INTERVAL_S": "5"}


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
            return [r for r in instance.get_runs() if r.is_finished]

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
        assert len(instance.get_runs()) == 1

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
        assert len(instance.get_runs()) == 2
