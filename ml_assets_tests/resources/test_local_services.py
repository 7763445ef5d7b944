"""Local services by PID: started in their own process group, stopped as a whole."""

import os
import socket
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import psutil
import pytest

from resources.local_services import (
    _group_alive,
    _is_zombie,
    free_port,
    group_pids,
    pid_file,
    rss_bytes,
    running_pid,
    service_argv,
    start_service,
    stop_service,
    wait_http,
    wait_port,
)


def test_a_stopped_service_is_not_waited_for_while_it_awaits_reaping(tmp_path: Path) -> None:
    # Started by this process, the service is its child: once stopped it lingers as a zombie
    # until reaped. The stop must count it as gone, not wait out its timeout (the test's
    # timeout is far shorter than the one given here).
    pid = start_service(tmp_path, "sleeper", ["sleep", "3600"], dict(os.environ))
    assert running_pid(tmp_path, "sleeper") == pid and _group_alive(pid)
    assert stop_service(tmp_path, "sleeper", timeout_s=3600)
    assert _is_zombie(pid) and not _group_alive(pid)
    assert running_pid(tmp_path, "sleeper") is None
    os.waitpid(pid, 0)
    assert not stop_service(tmp_path, "sleeper")  # nothing left to stop


@pytest.mark.parametrize("content", ["", "1 12345.0", "0 1.0", "4242", "x 1.0"])
def test_a_pid_file_without_a_safe_pid_and_start_time_is_refused(
    tmp_path: Path, content: str
) -> None:
    pid_file(tmp_path, "svc").write_text(content)
    with pytest.raises(ValueError, match="refusing to signal"):
        running_pid(tmp_path, "svc")
    with pytest.raises(ValueError, match="refusing to signal"):
        stop_service(tmp_path, "svc")
    assert pid_file(tmp_path, "svc").exists()  # kept for the user to look at


def test_a_reused_pid_is_never_signalled(tmp_path: Path) -> None:
    # This test's own PID, with a start time it never had: the PID file's process is gone.
    started = psutil.Process(os.getpid()).create_time()
    pid_file(tmp_path, "svc").write_text(f"{os.getpid()} {started - 60!r}")
    assert running_pid(tmp_path, "svc") is None
    assert not pid_file(tmp_path, "svc").exists()
    assert not stop_service(tmp_path, "svc")  # and this process is still here to assert it


def test_a_service_group_is_its_processes_and_their_memory(tmp_path: Path) -> None:
    # A shell whose child, a sleep, stays in the shell's process group.
    pid = start_service(tmp_path, "pair", ["sh", "-c", "sleep 3600 & wait"], dict(os.environ))
    try:
        children: list[psutil.Process] = []
        while not children:  # the shell starts its child a moment later
            children = psutil.Process(pid).children()
        members = sorted([pid, children[0].pid])
        assert group_pids(pid) == members
        assert os.getpid() not in group_pids(pid)
        assert rss_bytes(members) > rss_bytes(members[:1]) > 0
    finally:
        assert stop_service(tmp_path, "pair", timeout_s=60)
    os.waitpid(pid, 0)
    # The sleep may linger as a zombie until whoever adopted it reaps it: dead all the same.
    assert not _group_alive(pid) and rss_bytes(members) == 0


class _Ok(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_wait_http_returns_once_answered_and_times_out_with_the_log(tmp_path: Path) -> None:
    server = HTTPServer(("127.0.0.1", 0), _Ok)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        wait_http(f"http://127.0.0.1:{server.server_port}/", 60, tmp_path / "absent.log")
    finally:
        server.shutdown()
        server.server_close()
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    log = tmp_path / "svc.log"
    log.write_text("early lines\nthe reason it failed\n")
    with pytest.raises(TimeoutError, match=r"did not answer within 0 s(.|\n)*the reason it failed"):
        wait_http(f"http://127.0.0.1:{closed}/", 0, log)


def test_wait_http_gives_up_with_the_log_once_its_service_has_ended(tmp_path: Path) -> None:
    # A service that dies at start: the wait ends with its log's tail, not after its timeout
    # (the test's own timeout is far shorter than the one given here).
    argv = ["sh", "-c", "echo 'cannot bind: address in use'; exit 3"]
    pgid = start_service(tmp_path, "dying", argv, dict(os.environ))
    with pytest.raises(RuntimeError, match=r"has ended(.|\n)*cannot bind: address in use"):
        wait_http(f"http://127.0.0.1:{free_port()}/", 3600, tmp_path / "dying.log", pgid=pgid)


def test_wait_port_returns_once_listening_and_gives_up_when_its_service_ends(
    tmp_path: Path,
) -> None:
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        wait_port(listening.getsockname()[1], 60, tmp_path / "absent.log")
    # A code server that fails to load its code never listens: the wait ends with its log.
    argv = ["sh", "-c", "echo 'ModuleNotFoundError: no module named ml_assets'; exit 1"]
    pgid = start_service(tmp_path, "code", argv, dict(os.environ))
    with pytest.raises(RuntimeError, match=r"has ended(.|\n)*ModuleNotFoundError"):
        wait_port(free_port(), 3600, tmp_path / "code.log", pgid=pgid)


def test_service_argv_is_the_running_services_command_line(tmp_path: Path) -> None:
    assert service_argv(tmp_path, "sleeper") is None
    start_service(tmp_path, "sleeper", ["sleep", "3600"], dict(os.environ))
    try:
        assert service_argv(tmp_path, "sleeper") == ["sleep", "3600"]
    finally:
        stop_service(tmp_path, "sleeper")


def test_service_argv_waits_out_a_process_still_in_its_exec(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What CI under load saw: the first read fell between the exec closing its pipe and the
    # kernel setting the new program's arguments, and gave [].
    start_service(tmp_path, "sleeper", ["sleep", "3600"], dict(os.environ))
    real = psutil.Process.cmdline
    reads: list[int] = []

    def mid_exec_once(self: psutil.Process) -> list[str]:
        reads.append(1)
        return [] if len(reads) == 1 else real(self)

    monkeypatch.setattr(psutil.Process, "cmdline", mid_exec_once)
    try:
        assert service_argv(tmp_path, "sleeper") == ["sleep", "3600"]
        assert len(reads) == 2
    finally:
        stop_service(tmp_path, "sleeper")
