"""The Ray cluster that outlives Dagster runs: a local head by default, any cluster by RAY_ADDRESS."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import dagster as dg
import psutil

from resources.compat.ray import reload_ray_config
from resources.home import ensure_secret

DEFAULT_GCS_PORT = 6379
# `ray start --head` takes 6-7 s on 2 cores; far longer means it hangs. A worker node starts
# fewer processes (no GCS) and is bounded by the same limit.
HEAD_START_TIMEOUT_S = 180
# The ports Ray would otherwise fix (its dashboard agent's 52365, its workers' 10002-19999), left
# to the OS (0), so that a demo's, a bench's and a test's heads share one machine. The node and
# object managers, the metrics and runtime-env agents already take OS-chosen ports; the client
# server cannot (`client_port`), nor the GCS (`port`).
OS_CHOSEN_PORT_FLAGS = (
    "--dashboard-agent-listen-port=0",
    "--min-worker-port=0",
    "--max-worker-port=0",
)
# The dashboard, when runs go to Ray: on loopback only, on a port the OS chooses.
DASHBOARD_FLAGS = ("--include-dashboard=true", "--dashboard-host=127.0.0.1", "--dashboard-port=0")


def auth_env(token_path: Path) -> dict[str, str]:
    """Environment for Ray processes and clients: token authentication with the project's token.

    Ray's own ports listen beyond loopback even on a 127.0.0.1 head; the token keeps others out."""
    return {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token_path)}


def start_head(
    temp_dir: Path,
    token_path: Path,
    num_cpus: int,
    port: int = DEFAULT_GCS_PORT,
    extra_env: Mapping[str, str] | None = None,
    client_port: int | None = None,
    dashboard: bool = False,
) -> None:
    """`ray start --head` on this machine: temp dir and token in the project home.

    `extra_env` reaches every process of the cluster (Serve reads its proxy hooks from there).
    `client_port`: Ray's client server's port (None: Ray's default, 10001, which a second head
    on the same machine, a test's or a bench's, cannot share).
    `dashboard`: start Ray's dashboard, whose job server takes Dagster's runs as Ray jobs
    (RayRunLauncher), on 127.0.0.1 and an OS-chosen port (job clients find it through the GCS;
    its HTTP API asks for the token). Off otherwise: its modules take ~1 GB RSS."""
    ensure_secret(token_path)
    temp_dir.mkdir(parents=True, exist_ok=True)
    command = [
        _ray_script(), "start", "--head", f"--port={port}", f"--num-cpus={num_cpus}",
        "--node-ip-address=127.0.0.1", "--disable-usage-stats", f"--temp-dir={temp_dir}",
        *(DASHBOARD_FLAGS if dashboard else ("--include-dashboard=false",)),
        *OS_CHOSEN_PORT_FLAGS,
    ]  # fmt: skip
    if client_port is not None:
        command.append(f"--ray-client-server-port={client_port}")
    _ray_start(
        command, temp_dir, token_path, extra_env, "`ray start --head`", "The Ray head did not start"
    )


def start_worker(
    head_address: str,
    temp_dir: Path,
    token_path: Path,
    num_cpus: int,
    extra_env: Mapping[str, str] | None = None,
) -> None:
    """`ray start --address=head_address`: one more node on 127.0.0.1, joined with the head's token.

    The node keeps its own temp dir (Ray 2.60 takes `--temp-dir` per node), so that
    `stop_node(temp_dir)` stops this node only. `extra_env` reaches the node's processes (Serve's
    proxy hooks, as on the head)."""
    if not token_path.exists():
        raise RuntimeError(
            f"No Ray token at {token_path}: a worker node joins with its head's token; start the "
            "head first (`ml-assets ray-up`)"
        )
    temp_dir.mkdir(parents=True, exist_ok=True)
    command = [
        _ray_script(), "start", f"--address={head_address}", f"--num-cpus={num_cpus}",
        "--node-ip-address=127.0.0.1", "--disable-usage-stats", f"--temp-dir={temp_dir}",
        *OS_CHOSEN_PORT_FLAGS,
    ]  # fmt: skip
    _ray_start(
        command,
        temp_dir,
        token_path,
        extra_env,
        f"`ray start --address={head_address}`",
        f"A Ray worker node could not join the head at {head_address} (is the head up, with "
        f"the token {token_path}?)",
    )


def _ray_start(
    command: list[str],
    temp_dir: Path,
    token_path: Path,
    extra_env: Mapping[str, str] | None,
    what: str,
    failure: str,
) -> None:
    """Run a `ray start` command (`what`, named in errors) with the token; fail with its reason."""
    try:
        subprocess.run(
            command,
            env={**os.environ, **(extra_env or {}), **auth_env(token_path)},
            check=True,
            capture_output=True,
            text=True,
            timeout=HEAD_START_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired as exc:
        raise RuntimeError(
            f"{what} did not finish in {HEAD_START_TIMEOUT_S} s; its logs are under "
            f"{temp_dir}/session_latest/logs (stop what it started with `ml-assets ray-down`)"
        ) from exc
    except subprocess.CalledProcessError as exc:
        raise RuntimeError(f"{failure}:\n{_tail(exc.stderr or exc.stdout or '')}") from exc


def _tail(output: str, lines: int = 5) -> str:
    """The last lines of a command's output: Ray ends a failure's traceback with its reason."""
    return "\n".join(output.strip().splitlines()[-lines:])


def _ray_script() -> str:
    """The `ray` script of this interpreter's environment, whether or not the venv is on PATH."""
    return str(Path(sys.executable).parent / "ray")


def _under(path: str, marker: str) -> bool:
    """Whether `path` is the folder `marker` or inside it (`/h/ray-w1` is not under `/h/ray`)."""
    return path == marker or path.startswith(marker + os.sep)


def _names_folder(cmdline: list[str], marker: str) -> bool:
    """Whether an argument names `marker` or a path inside it (bare or as `--flag=path`)."""
    return any(_under(part, marker) for arg in cmdline for part in (arg, arg.partition("=")[2]))


def _holds_files_under(process: psutil.Process, marker: str) -> bool:
    try:
        return any(_under(f.path, marker) for f in process.open_files())
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return False


def cluster_processes(temp_dir: Path) -> list[psutil.Process]:
    """The Ray cluster that uses `temp_dir`, its descendants, and the daemons it left detached.

    Workers rename themselves `ray::...`, so they are found through their parents; Ray's client
    server is started detached and names no temp dir, but keeps its log files open under it."""
    marker = str(temp_dir.resolve())
    found: dict[int, psutil.Process] = {}
    for process in psutil.process_iter(["cmdline"]):
        if process.pid == os.getpid():
            continue
        if _names_folder(process.info["cmdline"] or [], marker) or _holds_files_under(
            process, marker
        ):
            found[process.pid] = process
    for process in list(found.values()):
        with contextlib.suppress(psutil.NoSuchProcess):
            for child in process.children(recursive=True):
                found.setdefault(child.pid, child)
    return sorted(found.values(), key=lambda p: p.pid)


def has_job_server(temp_dir: Path) -> bool:
    """Whether the Ray head that uses `temp_dir` runs its dashboard's modules, the job server
    (which takes Ray jobs: dagster-ray's runs) among them."""
    commands = []
    for process in cluster_processes(temp_dir):
        # A process may end, or turn out another user's, between the listing and this read.
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            commands.append(process.cmdline())
    # Ray starts its dashboard's process in any case; a head without the dashboard passes it
    # `--disable-frontend` and loads none of the modules, the job server's among them (Ray 2.60:
    # `start_api_server` in ray/_private/services.py). No API asks a head for its modules.
    return any(
        any("dashboard/dashboard.py" in arg for arg in command)
        and "--disable-frontend" not in command
        for command in commands
    )


def cluster_pids(temp_dir: Path) -> list[int]:
    """PIDs of the Ray cluster that uses `temp_dir` (see `cluster_processes`), no other cluster's."""
    return [process.pid for process in cluster_processes(temp_dir)]


def stop_head(temp_dir: Path, timeout_s: float = 10.0) -> int:
    """Stop the Ray node (head or worker) that uses `temp_dir`, by PID (`ray stop` would end
    every cluster on the machine); a worker's temp dir stops that worker only, the head's the head.

    psutil signals a process only while its PID still has the start time it was found with, so
    a PID reused meanwhile is left alone. The GCS, raylet and agents outwait any SIGTERM grace
    (measured: still up after 30 s), hence a short one before SIGKILL; the cluster keeps no
    state that outlives it."""
    processes = cluster_processes(temp_dir)
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.terminate()
    _, alive = psutil.wait_procs(processes, timeout=timeout_s)
    for process in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()
    psutil.wait_procs(alive, timeout=timeout_s)
    return len(processes)


class RayCluster(dg.ConfigurableResource):
    """Where the serving app runs: the Ray cluster address and the Serve HTTP endpoint."""

    address: str
    token_path: str
    predictions_dir: str
    http_host: str = "127.0.0.1"
    http_port: int = 8000
    # The endpoint's bearer token ("" leaves it open); set from ML_ASSETS_API_TOKEN as an EnvVar,
    # so the UI shows the variable's name, never the token.
    api_token: str = ""
    # The online feature store's file (the feature_store asset writes it, replicas read it): a
    # path every node of the cluster reaches.
    feature_store: str = ""

    @property
    def endpoint(self) -> str:
        return f"http://{self.http_host}:{self.http_port}"

    def check_reachable(self, timeout_s: float = 3.0) -> None:
        """Raise OSError unless the cluster's address accepts a connection."""
        # ray.init retries an absent cluster for a minute; a plain connect answers at once.
        host, _, port = self.address.removeprefix("ray://").partition(":")
        socket.create_connection((host, int(port or DEFAULT_GCS_PORT)), timeout=timeout_s).close()

    def connect(self) -> None:
        """Join the cluster as a client; fails with how to start one when none is reachable."""
        # Ray reads its auth mode when it is first imported and caches it: set it before.
        os.environ.update(auth_env(Path(self.token_path)))
        import ray

        if ray.is_initialized():
            return
        reload_ray_config()
        try:
            self.check_reachable()
        except OSError as exc:
            raise dg.Failure(
                f"No Ray cluster reachable at {self.address} ({exc}). Start the local one with "
                "`make serve-up` (or `ml-assets ray-up`), or point RAY_ADDRESS at a running cluster."
            ) from exc
        try:
            ray.init(
                address=self.address,
                namespace="ml_assets",
                log_to_driver=False,
                configure_logging=False,
            )
        except (ConnectionError, RuntimeError) as exc:
            raise dg.Failure(
                f"No Ray cluster reachable at {self.address} ({exc}). Start the local one with "
                "`make serve-up` (or `ml-assets ray-up`), or point RAY_ADDRESS at a running cluster."
            ) from exc
