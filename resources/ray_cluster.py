"""The Ray cluster that outlives Dagster runs: a local head by default, any cluster by RAY_ADDRESS."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg

DEFAULT_GCS_PORT = 6379
# `ray start --head` takes 6-7 s on 2 cores; far longer means it hangs.
HEAD_START_TIMEOUT_S = 180


def auth_env(token_path: Path) -> dict[str, str]:
    """Environment for Ray processes and clients: token authentication with the project's token.

    Ray's own ports listen beyond loopback even on a 127.0.0.1 head; the token keeps others out."""
    return {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token_path)}


def ensure_token(token_path: Path) -> None:
    """Create the cluster token (readable by the owner only) if it does not exist."""
    if token_path.exists():
        return
    token_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(token_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(secrets.token_hex(32))


def start_head(
    temp_dir: Path, token_path: Path, num_cpus: int, port: int = DEFAULT_GCS_PORT
) -> None:
    """`ray start --head` on this machine: no dashboard, temp dir and token in the project home."""
    ensure_token(token_path)
    temp_dir.mkdir(parents=True, exist_ok=True)
    # The `ray` script of this interpreter's environment, whether or not the venv is on PATH.
    ray_script = str(Path(sys.executable).parent / "ray")
    command = [
        ray_script, "start", "--head", f"--port={port}", f"--num-cpus={num_cpus}",
        "--node-ip-address=127.0.0.1", "--include-dashboard=false", "--disable-usage-stats",
        f"--temp-dir={temp_dir}",
    ]  # fmt: skip
    try:
        subprocess.run(
            command,
            env={**os.environ, **auth_env(token_path)},
            check=True,
            capture_output=True,
            text=True,
            timeout=HEAD_START_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired as exc:
        raise RuntimeError(
            f"`ray start --head` did not finish in {HEAD_START_TIMEOUT_S} s; its logs are under "
            f"{temp_dir}/session_latest/logs (stop what it started with `ml-assets ray-down`)"
        ) from exc


def _processes() -> dict[int, tuple[int, bytes]]:
    """Every process: pid -> (parent pid, command line)."""
    table = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        # The command name in stat is parenthesised and may hold spaces: split after it.
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        table[int(entry.name)] = (parent, cmdline)
    return table


def cluster_pids(temp_dir: Path) -> list[int]:
    """PIDs of the Ray cluster that uses `temp_dir` and of their descendants (workers rename
    themselves `ray::...`, so they are found through their parents), and no other cluster's."""
    marker = str(temp_dir.resolve()).encode()
    table = _processes()
    found = {pid for pid, (_, cmdline) in table.items() if marker in cmdline and pid != os.getpid()}
    grew = True
    while grew:
        children = {pid for pid, (parent, _) in table.items() if parent in found} - found
        found |= children
        grew = bool(children)
    return sorted(found)


def stop_head(temp_dir: Path, timeout_s: float = 30.0) -> int:
    """Stop this project's Ray processes by PID (`ray stop` would end every cluster on the machine)."""
    pids = cluster_pids(temp_dir)
    for pid in pids:
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.5)
    for pid in pids:
        _signal(pid, signal.SIGKILL)
    return len(pids)


def _signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return not Path(f"/proc/{pid}/status").read_text().count("zombie")


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

    @property
    def endpoint(self) -> str:
        return f"http://{self.http_host}:{self.http_port}"

    def connect(self) -> None:
        """Join the cluster as a client; fails with how to start one when none is reachable."""
        # Ray reads its auth mode when it is first imported and caches it: set it before.
        os.environ.update(auth_env(Path(self.token_path)))
        import ray
        from ray._raylet import Config

        if ray.is_initialized():
            return
        Config.initialize("")
        host, _, port = self.address.removeprefix("ray://").partition(":")
        try:
            # ray.init retries an absent cluster for a minute; a plain connect answers at once.
            socket.create_connection((host, int(port or DEFAULT_GCS_PORT)), timeout=3).close()
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
