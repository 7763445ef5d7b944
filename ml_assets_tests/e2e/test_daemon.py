"""The landing-file sensor under the real Dagster daemon: a landed day is ingested, once."""

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
pytestmark = pytest.mark.e2e


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def daemon(home: Path) -> Iterator[subprocess.Popen[bytes]]:
    env = {**os.environ, "ML_ASSETS_HOME": str(home), "DAGSTER_HOME": str(home / "dagster")}
    subprocess.run([str(BIN / "ml-assets"), "init"], env=env, check=True, capture_output=True)
    log = (home / "daemon.log").open("wb")
    process = subprocess.Popen(
        [str(BIN / "dagster-daemon"), "run", "-w", "workspace.yaml"],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group, ended as a whole below
    )
    yield process
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    log.close()


def wait_for(predicate, timeout: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(2)
    pytest.fail(
        f"timed out after {timeout:.0f} s waiting for {what}; daemon log:\n{log.read_text()[-4000:]}"
    )


def test_the_daemon_ingests_a_landed_day_once(home: Path, daemon: subprocess.Popen[bytes]) -> None:
    env = {**os.environ, "ML_ASSETS_HOME": str(home)}
    land_two_days = [
        str(BIN / "ml-assets"),
        "generate",
        "--start",
        "2016-03-01",
        "--days",
        "2",
        "--rows-per-day",
        "30",
    ]
    subprocess.run(land_two_days, env=env, check=True, capture_output=True)
    with dg.DagsterInstance.from_config(str(home / "dagster")) as instance:

        def finished_runs() -> list[dg.DagsterRun]:
            runs = instance.get_runs()
            return [r for r in runs if r.is_finished]

        wait_for(lambda: len(finished_runs()) == 2, 240, "two data-layer runs", home / "daemon.log")
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
        subprocess.run(land_two_days, env=env, check=True, capture_output=True)
        wait_for(lambda: len(ticks()) > before, 120, "another sensor tick", home / "daemon.log")
        assert len(instance.get_runs()) == 2
