"""Long-running local services (dagster dev, the MLflow UI), started and stopped by PID."""

import contextlib
import os
import signal
import socket
import subprocess
from collections.abc import Callable
from pathlib import Path

import psutil
import requests
import tenacity


def pid_file(logs: Path, name: str) -> Path:
    """Where a service's process-group id is kept."""
    return logs / f"{name}.pid"


def log_file(logs: Path, name: str) -> Path:
    """Where a service's output goes."""
    return logs / f"{name}.log"


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
    with log_file(logs, name).open("ab") as log:
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
    # Not psutil.wait_procs: it waits out a zombie that is not its caller's child.
    outlived = tenacity.Retrying(
        retry=tenacity.retry_if_result(bool),
        wait=tenacity.wait_fixed(0.5),
        stop=tenacity.stop_after_delay(timeout_s),
        retry_error_callback=lambda _: True,  # still alive when the time is up
    )
    if outlived(_group_alive, pid):
        os.killpg(pid, signal.SIGKILL)
    pid_file(logs, name).unlink(missing_ok=True)
    return True


def stop_server(logs: Path, name: str, signum: int, timeout_s: float = 60.0) -> bool:
    """Send `signum` to a service that stops its own children, wait for it and them to end.

    For a server whose workers each run in a session of their own (PostgreSQL's do), so that
    its process group is itself alone: signalling the group would reach none of them, and
    signalling each would bypass the server's own shutdown. What outlives `timeout_s` is
    SIGKILLed. False if the service was not running."""
    pid = running_pid(logs, name)
    if pid is None:
        return False
    server = psutil.Process(pid)
    processes = [server, *server.children(recursive=True)]
    server.send_signal(signum)
    outlived = tenacity.Retrying(
        retry=tenacity.retry_if_result(bool),
        wait=tenacity.wait_fixed(0.2),
        stop=tenacity.stop_after_delay(timeout_s),
        retry_error_callback=lambda _: True,  # still alive when the time is up
    )
    if outlived(lambda: not all(map(_has_ended, processes))):
        for process in processes:
            # psutil signals only a process whose PID still has the start time it was found with.
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()
    pid_file(logs, name).unlink(missing_ok=True)
    return True


def _group_alive(pgid: int) -> bool:
    # Not `killpg(pgid, 0)`: it succeeds while an exited member waits to be reaped (a zombie,
    # e.g. a service started by the calling process itself), and the stop would wait it out.
    return any(not _is_zombie(pid) for pid in group_pids(pgid))


def _has_ended(process: psutil.Process) -> bool:
    # is_running() is False for a PID reused since the process was found (its start time).
    try:
        return not process.is_running() or process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _is_zombie(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True  # gone: as good as dead


def wait_http(url: str, timeout_s: float, log: Path, pgid: int | None = None) -> None:
    """Wait until `url` answers 200; raise with the log's tail when it does not in time, or as
    soon as the process group `pgid` (the service that should answer) has ended."""

    def answers() -> bool:
        try:
            return requests.get(url, timeout=2).ok
        except requests.RequestException:
            return False

    _wait_answer(answers, url, timeout_s, log, pgid)


def wait_port(port: int, timeout_s: float, log: Path, pgid: int | None = None) -> None:
    """Wait until 127.0.0.1:`port` accepts connections; raise as `wait_http` does."""

    def accepts() -> bool:
        with socket.socket() as sock:
            sock.settimeout(2)
            return sock.connect_ex(("127.0.0.1", port)) == 0

    _wait_answer(accepts, f"127.0.0.1:{port}", timeout_s, log, pgid)


def _wait_answer(
    answers: Callable[[], bool], address: str, timeout_s: float, log: Path, pgid: int | None
) -> None:
    """Poll `answers` every second until true; raise with the log's tail when the time is up or
    the process group `pgid` has ended."""

    def ended() -> bool:
        return pgid is not None and not _group_alive(pgid)

    late = tenacity.stop_after_delay(timeout_s)
    waiting = tenacity.Retrying(
        retry=tenacity.retry_if_result(lambda ok: not ok),
        wait=tenacity.wait_fixed(1),
        stop=lambda attempt: late(attempt) or ended(),
    )
    try:
        waiting(answers)
    except tenacity.RetryError as exc:
        if ended():
            raise RuntimeError(
                f"the service that was to answer at {address} has ended; {log}:\n{log_tail(log)}"
            ) from exc
        raise TimeoutError(
            f"{address} did not answer within {timeout_s:.0f} s; {log}:\n{log_tail(log)}"
        ) from exc


def log_tail(log: Path, chars: int = 3000) -> str:
    """The end of a service's log, to show with an error."""
    return log.read_text(errors="replace")[-chars:] if log.exists() else "(no log)"


def service_argv(logs: Path, name: str) -> list[str] | None:
    """The command line of the running service (None when it does not run)."""
    pid = running_pid(logs, name)
    if pid is None:
        return None
    # A process that has just been started reads as [] while the kernel ends its exec: the
    # parent's Popen returns once the exec closed its close-on-exec pipe, a moment before the
    # new program's argument area is set. Read again until it is there.
    read = tenacity.Retrying(
        retry=tenacity.retry_if_result(lambda argv: argv == []),
        wait=tenacity.wait_fixed(0.05),
        stop=tenacity.stop_after_delay(5.0),
        retry_error_callback=lambda _: [],  # a process whose exec never completes
    )
    try:
        return read(psutil.Process(pid).cmdline)
    except psutil.NoSuchProcess:
        return None


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on now, for a service to bind next."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def group_pids(pgid: int) -> list[int]:
    """The live processes of a process group."""
    pids = []
    # psutil has no process group: `os.getpgid` reads each process's.
    for pid in psutil.pids():
        with contextlib.suppress(ProcessLookupError):
            if os.getpgid(pid) == pgid:
                pids.append(pid)
    return pids


def group_listens_on(pgid: int, port: int) -> bool:
    """Whether a process of the group `pgid` listens on TCP `port` of this machine (rather than
    another user's process that took the port first)."""
    for pid in group_pids(pgid):
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            for connection in psutil.Process(pid).net_connections("tcp"):
                if connection.status == psutil.CONN_LISTEN and connection.laddr.port == port:
                    return True
    return False


def port_taken(port: int) -> bool:
    """Whether something accepts connections on 127.0.0.1:`port` now."""
    with socket.socket() as sock:
        sock.settimeout(2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def rss_bytes(pids: list[int]) -> int:
    """Resident memory of these processes together (those that ended meanwhile count 0)."""
    total = 0
    for pid in pids:
        with contextlib.suppress(psutil.NoSuchProcess):
            total += psutil.Process(pid).memory_info().rss
    return total
