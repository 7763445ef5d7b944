"""The landing-file sensor under the real Dagster daemon: a landed day is ingested, once."""

from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from ml_assets_tests.e2e.dagster_daemon import ml_assets, running_daemon, wait_for

pytestmark = pytest.mark.e2e
LAND_TWO_DAYS = ("generate", "--start", "2016-03-01", "--days", "2", "--rows-per-day", "30")


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def daemon_log(home: Path) -> Iterator[Path]:
    with running_daemon(home) as log:
        yield log


def test_the_daemon_ingests_a_landed_day_once(home: Path, daemon_log: Path) -> None:
    ml_assets(home, *LAND_TWO_DAYS)
    with dg.DagsterInstance.from_config(str(home / "dagster")) as instance:

        def finished_runs() -> list[dg.DagsterRun]:
            return [r for r in instance.get_runs() if r.is_finished]

        wait_for(lambda: len(finished_runs()) == 2, 240, "two data-layer runs", daemon_log)
        runs = finished_runs()
        assert all(r.is_success for r in runs), [r.status for r in runs]
        assert sorted(r.tags["dagster/partition"] for r in runs) == ["2016-03-01", "2016-03-02"]

        sensor_state = next(
            s for s in instance.all_instigator_state() if s.name == "landing_file_sensor"
        )

        def ticks() -> list:
            return instance.get_ticks(sensor_state.instigator_origin_id, sensor_state.selector_id)

        # The same files landed again: the next tick requests nothing.
        before = len(ticks())
        ml_assets(home, *LAND_TWO_DAYS)
        wait_for(lambda: len(ticks()) > before, 120, "another sensor tick", daemon_log)
        assert len(instance.get_runs()) == 2
