"""A real `dagster-daemon` on a project home under tmp_path, ended by its process group."""

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def home_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment of the project's commands for `home`."""
    return {
        **os.environ,
        "ML_ASSETS_HOME": str(home),
        "DAGSTER_HOME": str(home / "dagster"),
        **extra,
    }


def ml_assets(home: Path, *args: str) -> None:
    """Run an `ml-assets` command on `home`; fail the test with its output when it fails."""
    done = subprocess.run(
        [str(BIN / "ml-assets"), *args], env=home_env(home), capture_output=True, text=True
    )
    assert done.returncode == 0, f"ml-assets {' '.join(args)}:\n{done.stdout}\n{done.stderr}"


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
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=30)


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
