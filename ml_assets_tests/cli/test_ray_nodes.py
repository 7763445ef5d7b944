"""`ml-assets ray-up --workers N` and `ray-down`: which nodes start and stop, with what (no Ray)."""

from __future__ import annotations

import inspect
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

import resources.ray_cluster as ray_cluster
from ml_assets.cli import cli
from ml_assets.cli.serving import WORKER_CPUS
from ml_assets.serving.deploy import PROXY_ENV
from resources.home import ProjectHome
from resources.ray_cluster import DEFAULT_GCS_PORT, cluster_pids
from resources.ray_cluster import start_worker as real_start_worker


@dataclass
class FakeRay:
    """Records what the commands ask of Ray; `running` holds the temp dirs of live nodes."""

    running: set[Path] = field(default_factory=set)
    heads: list[tuple[Path, Path, int, Mapping[str, str] | None]] = field(default_factory=list)
    workers: list[tuple[str, Path, Path, int, Mapping[str, str] | None]] = field(
        default_factory=list
    )
    stopped: list[Path] = field(default_factory=list)

    def start_head(
        self,
        temp_dir: Path,
        token_path: Path,
        num_cpus: int,
        extra_env: Mapping[str, str] | None = None,
        **options: object,  # the head's other choices (its dashboard): not this file's subject
    ) -> None:
        self.heads.append((temp_dir, token_path, num_cpus, extra_env))
        self.running.add(temp_dir)

    def start_worker(self, *args: object, **kwargs: object) -> None:
        # Bound by the real function's signature: a call it would refuse fails here too.
        call = inspect.signature(real_start_worker).bind(*args, **kwargs)
        call.apply_defaults()
        head_address, temp_dir, token_path, num_cpus, extra_env = call.arguments.values()
        self.workers.append((head_address, temp_dir, token_path, num_cpus, extra_env))
        temp_dir.mkdir(parents=True)
        self.running.add(temp_dir)

    def cluster_pids(self, temp_dir: Path) -> list[int]:
        return [1] if temp_dir in self.running else []

    def stop_head(self, temp_dir: Path) -> int:
        self.stopped.append(temp_dir)
        was_running = temp_dir in self.running
        self.running.discard(temp_dir)
        return 3 if was_running else 0


@pytest.fixture
def fake_ray(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeRay]:
    fake = FakeRay()
    for name in ("start_head", "start_worker", "cluster_pids", "stop_head"):
        monkeypatch.setattr(ray_cluster, name, getattr(fake, name))
    yield fake


def invoke(home: ProjectHome, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--home", str(home.root), *args], catch_exceptions=False)


def test_ray_up_starts_the_head_then_workers_with_its_token_and_own_temp_dirs(
    fake_ray: FakeRay, tmp_path: Path
) -> None:
    home = ProjectHome.at(tmp_path / "home")
    result = invoke(home, "ray-up", "--num-cpus", "2", "--workers", "2")
    assert result.exit_code == 0, result.output
    assert fake_ray.heads == [(home.ray_tmp, home.ray_token, 2, PROXY_ENV)]
    head = f"127.0.0.1:{DEFAULT_GCS_PORT}"
    assert fake_ray.workers == [
        (head, home.ray_worker_tmp(1), home.ray_token, WORKER_CPUS, PROXY_ENV),
        (head, home.ray_worker_tmp(2), home.ray_token, WORKER_CPUS, PROXY_ENV),
    ]
    # Again with one more: the head and the two running workers are left as they are.
    result = invoke(home, "ray-up", "--workers", "3", "--worker-cpus", "2")
    assert result.exit_code == 0, result.output
    assert len(fake_ray.heads) == 1 and len(fake_ray.workers) == 3
    assert fake_ray.workers[-1][1:4] == (home.ray_worker_tmp(3), home.ray_token, 2)
    assert "already running" in result.output


def test_ray_up_refuses_a_negative_count_and_a_worker_without_cpus(
    fake_ray: FakeRay, tmp_path: Path
) -> None:
    home = ProjectHome.at(tmp_path / "home")
    for args in (["--workers", "-1"], ["--worker-cpus", "0"]):
        result = CliRunner().invoke(cli, ["--home", str(home.root), "ray-up", *args])
        assert result.exit_code == 2 and "Invalid value" in result.output
    assert fake_ray.heads == [] and fake_ray.workers == []


@pytest.mark.parametrize("command", ["ray-down", "down"])
def test_down_stops_every_worker_node_and_the_head(
    fake_ray: FakeRay, tmp_path: Path, command: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ml_assets.demo
    import resources.local_postgres

    # `down` stops Dagster, MLflow and PostgreSQL first: none runs in this home.
    monkeypatch.setattr(ml_assets.demo, "stop_services", lambda home: [])
    monkeypatch.setattr(resources.local_postgres, "stop_postgres", lambda logs: False)
    home = ProjectHome.at(tmp_path / "home")
    assert invoke(home, "ray-up", "--workers", "2").exit_code == 0
    result = invoke(home, command)
    assert result.exit_code == 0, result.output
    # Workers first: the head's GCS is what they would otherwise wait for.
    assert fake_ray.stopped == [home.ray_worker_tmp(1), home.ray_worker_tmp(2), home.ray_tmp]
    assert fake_ray.running == set()


def test_worker_temp_dirs_are_short_siblings_of_the_heads_in_index_order(tmp_path: Path) -> None:
    home = ProjectHome.at(tmp_path / "home")
    assert home.ray_worker_tmps() == []
    for index in (10, 2, 1):
        home.ray_worker_tmp(index).mkdir(parents=True)
    (home.ray_workers / "notes").mkdir()
    assert home.ray_worker_tmps() == [home.ray_worker_tmp(i) for i in (1, 2, 10)]
    head = str(home.ray_tmp)
    assert all(not str(path).startswith(head + "/") for path in home.ray_worker_tmps())


@pytest.fixture
def sleepers(tmp_path: Path) -> Iterator[dict[str, subprocess.Popen[bytes]]]:
    """Processes naming `<tmp>/ray` and `<tmp>/ray-w1/...` (one as a flag), like Ray's do."""
    code = "import sys, time; time.sleep(60)"
    started = {
        "head": subprocess.Popen([sys.executable, "-c", code, f"--temp-dir={tmp_path / 'ray'}"]),
        "worker": subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "ray-w1" / "s")]),
    }
    try:
        yield started
    finally:
        for process in started.values():
            process.kill()
            process.wait()


def test_a_node_is_found_by_its_temp_dir_and_not_by_a_sibling_sharing_its_prefix(
    sleepers: dict[str, subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    assert cluster_pids(tmp_path / "ray") == [sleepers["head"].pid]
    assert cluster_pids(tmp_path / "ray-w1") == [sleepers["worker"].pid]
    assert cluster_pids(tmp_path / "ra") == []
