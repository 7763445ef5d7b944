"""A real `dagster-daemon` on a project home under tmp_path, ended by its process group."""

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import duckdb
import pytest

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
COMMAND_TIMEOUT_S = 600  # one `ml-assets` command (the longest, `train`, takes about a minute)
STOP_TIMEOUT_S = 60


def home_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment of the project's commands for `home`."""
    return {
        **os.environ,
        "ML_ASSETS_HOME": str(home),
        "DAGSTER_HOME": str(home / "dagster"),
        **extra,
    }


def ml_assets(home: Path, *args: str, timeout: float = COMMAND_TIMEOUT_S) -> str:
    """Run an `ml-assets` command on `home`; its output, or the test fails with it."""
    done = subprocess.run(
        [str(BIN / "ml-assets"), *args],
        env=home_env(home),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, f"ml-assets {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@contextmanager
def running_daemon(
    home: Path, workspace: Path = REPO / "workspace.yaml", **env: str
) -> Iterator[Path]:
    """`dagster-daemon run` for `home` (initialized first); yields its log file."""
    ml_assets(home, "init")
    log_path = home / f"daemon-{time.monotonic_ns()}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(BIN / "dagster-daemon"), "run", "-w", str(workspace)],
            cwd=REPO,
            env=home_env(home, **env),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, ended as a whole below
        )
        try:
            yield log_path
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=STOP_TIMEOUT_S)


def wait_for(predicate: Callable[[], bool], timeout: float, what: str, log: Path) -> None:
    """Poll `predicate` every 2 s; fail with the daemon log's tail after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(2)
    pytest.fail(
        f"timed out after {timeout:.0f} s waiting for {what}; daemon log:\n{log.read_text()[-4000:]}"
    )


def landing_sensor_skips(instance: dg.DagsterInstance) -> list[str]:
    """Skip reasons of the landing sensor's ticks, oldest first."""
    state = next(s for s in instance.all_instigator_state() if s.name == "landing_file_sensor")
    ticks = instance.get_ticks(state.instigator_origin_id, state.selector_id)
    return [t.skip_reason or "" for t in reversed(ticks)]


def warehouse_tables(home: Path) -> dict[str, list[tuple]]:
    """Every table of the home's warehouse, rows sorted."""
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as conn:
        tables = conn.execute("select schema_name, table_name from duckdb_tables()").fetchall()
        return {
            f"{s}.{t}": conn.execute(f"select * from {s}.{t} order by all").fetchall()
            for s, t in tables
        }
