"""Long-running local services (dagster dev, the MLflow UI), started and stopped by PID."""

import os
import signal
import subprocess
import time
from pathlib import Path

import psutil
import requests


def pid_file(logs: Path, name: str) -> Path:
    """Where a service's process-group id is kept."""
    return logs / f"{name}.pid"


def running_pid(logs: Path, name: str) -> int | None:
    """The service's PID when the process that wrote its PID file is alive, else None.

    The file holds the PID and its start time: a PID the system reused for something else is
    stale (the file is removed), never a process to signal."""
    path = pid_file(logs, name)
    if not path.exists():
        return None
    fields = path.read_text().split()
    if len(fields) != 2 or not fields[0].isdigit() or int(fields[0]) <= 1:
        # Signalling a process group of 0 or 1 would reach this shell or every process we may.
        raise ValueError(
            f"{path} holds {path.read_text()!r}, not a PID above 1 and its start time: refusing "
            f"to signal anything; stop {name} by hand if it runs, then delete the file"
        )
    pid, started = int(fields[0]), float(fields[1])
    try:
        same = psutil.Process(pid).create_time() == started
    except psutil.NoSuchProcess:
        same = False
    if not same:
        path.unlink(missing_ok=True)
        return None
    return pid


def start_service(logs: Path, name: str, argv: list[str], env: dict[str, str]) -> int:
    """Start `argv` in its own session (so the whole group can be stopped), logging to a file."""
    logs.mkdir(parents=True, exist_ok=True)
    with (logs / f"{name}.log").open("ab") as log:
        process = subprocess.Popen(
            argv,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            # Its own process group: `dagster dev` ignores SIGTERM when started as a background
            # job of a non-interactive shell, but a session leader of its own stops on it.
            start_new_session=True,
        )
    started = psutil.Process(process.pid).create_time()
    pid_file(logs, name).write_text(f"{process.pid} {started!r}")
    return process.pid


def stop_service(logs: Path, name: str, timeout_s: float = 60.0) -> bool:
    """SIGTERM the service's process group, SIGKILL it after `timeout_s`; False if not running."""
    pid = running_pid(logs, name)
    if pid is None:
        return False
    os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and _group_alive(pid):
        time.sleep(0.5)
    if _group_alive(pid):
        os.killpg(pid, signal.SIGKILL)
    pid_file(logs, name).unlink(missing_ok=True)
    return True


def _group_alive(pgid: int) -> bool:
    # Not `killpg(pgid, 0)`: it succeeds while an exited member waits to be reaped (a zombie,
    # e.g. a service started by the calling process itself), and the stop would wait it out.
    return any(not _is_zombie(pid) for pid in group_pids(pgid))


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return True  # gone: as good as dead
    # The command name is parenthesised and may hold spaces: the state follows the last ")".
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def wait_http(url: str, timeout_s: float, log: Path) -> None:
    """Wait until `url` answers 200; raise with the log's tail when it does not in time."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if requests.get(url, timeout=2).ok:
                return
        except requests.RequestException:
            pass
        time.sleep(1)
    tail = log.read_text(errors="replace")[-3000:] if log.exists() else "(no log)"
    raise TimeoutError(f"{url} did not answer within {timeout_s:.0f} s; {log}:\n{tail}")


def group_pids(pgid: int) -> list[int]:
    """The live processes of a process group."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.getpgid(int(entry.name)) == pgid:
                    pids.append(int(entry.name))
            except ProcessLookupError:
                continue
    return pids


def rss_bytes(pids: list[int]) -> int:
    """Resident memory of these processes together (those that ended meanwhile count 0)."""
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
                    break
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total
