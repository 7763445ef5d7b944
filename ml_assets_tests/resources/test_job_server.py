"""Whether a Ray head runs its job server, read from its processes' command lines (faked here)."""

from pathlib import Path

import psutil
import pytest

import resources.ray_cluster as ray_cluster
from resources.ray_cluster import has_job_server

PYTHON = "/venv/bin/python"
DASHBOARD = "/venv/lib/python3.11/site-packages/ray/dashboard/dashboard.py"
RAYLET = ["/venv/lib/python3.11/site-packages/ray/core/src/ray/raylet/raylet", "--node_id=x"]


class FakeProcess:
    """A process whose command line is `cmdline`, or that fails to show it with `error`."""

    def __init__(self, cmdline: list[str], error: Exception | None = None) -> None:
        self._cmdline = cmdline
        self.error = error

    def cmdline(self) -> list[str]:
        if self.error is not None:
            raise self.error
        return self._cmdline


def with_processes(monkeypatch: pytest.MonkeyPatch, processes: list[FakeProcess]) -> None:
    monkeypatch.setattr(ray_cluster, "cluster_processes", lambda temp_dir: processes)


# Processes that vanish, turn zombie or belong to another user while they are read.
UNREADABLE = [
    FakeProcess([], psutil.NoSuchProcess(1)),
    FakeProcess([], psutil.AccessDenied(2)),
    FakeProcess([], psutil.ZombieProcess(3)),
]


def test_a_head_with_its_dashboard_has_the_job_server(monkeypatch: pytest.MonkeyPatch) -> None:
    dashboard = FakeProcess([PYTHON, "-u", DASHBOARD, "--host=127.0.0.1", "--port=8265"])
    with_processes(monkeypatch, [*UNREADABLE, FakeProcess(RAYLET), dashboard])
    assert has_job_server(Path("/tmp/r"))


def test_a_head_without_its_dashboard_has_none(monkeypatch: pytest.MonkeyPatch) -> None:
    # What `ray start --include-dashboard=false` runs (ray/_private/services.py).
    dashboard = FakeProcess(
        [PYTHON, "-u", DASHBOARD, "--modules-to-load=UsageStatsHead", "--disable-frontend"]
    )
    with_processes(monkeypatch, [*UNREADABLE, FakeProcess(RAYLET), dashboard])
    assert not has_job_server(Path("/tmp/r"))


def test_no_head_has_no_job_server(monkeypatch: pytest.MonkeyPatch) -> None:
    with_processes(monkeypatch, UNREADABLE)
    assert not has_job_server(Path("/tmp/r"))
