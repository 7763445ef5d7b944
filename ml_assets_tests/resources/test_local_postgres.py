"""The home's PostgreSQL server: started in the home, its owner's alone, stopped without a trace."""

import os
import socket
import stat
import subprocess
from pathlib import Path

import psutil
import pytest

from ml_assets_tests.postgres import free_port, require_server_binaries
from resources.local_postgres import (
    DATABASE,
    INSTALL_HINT,
    SERVICE,
    SUPERUSER,
    LocalPostgres,
    server_bindir,
    stop_postgres,
)
from resources.local_services import pid_file, running_pid


def psql(
    bindir: Path, host: str, port: int, query: str, password: str | None
) -> subprocess.CompletedProcess[str]:
    """`query` through psql as the superuser; over TCP for a host address, else the socket."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    if password is not None:
        env["PGPASSWORD"] = password
    argv = [str(bindir / "psql"), "-h", host, "-p", str(port), "-U", SUPERUSER, "-d", DATABASE]
    return subprocess.run(
        [*argv, "-tAc", query], env=env, capture_output=True, text=True, timeout=30
    )


def server_processes(logs: Path) -> list[psutil.Process]:
    """The postmaster, then its workers."""
    pid = running_pid(logs, SERVICE)
    assert pid is not None
    postmaster = psutil.Process(pid)
    return [postmaster, *postmaster.children(recursive=True)]


def test_the_server_keeps_its_data_in_the_home_for_its_owner_alone(tmp_path: Path) -> None:
    bindir = require_server_binaries()
    server = LocalPostgres(tmp_path / "postgres", tmp_path / "logs", free_port())
    try:
        assert server.start()
        assert not server.start()  # already running: left as it is
        processes = server_processes(server.logs)
        # Listening on loopback only, on the configured port (the postmaster listens, its
        # workers come and go).
        listening = {
            (c.laddr.ip, c.laddr.port)
            for c in processes[0].net_connections(kind="inet")
            if c.status == psutil.CONN_LISTEN
        }
        assert listening == {("127.0.0.1", server.port)}
        for path in (server.folder, server.data):
            assert stat.S_IMODE(path.stat().st_mode) == 0o700
        assert stat.S_IMODE(server.password_file.stat().st_mode) == 0o600
        # The database exists; the socket in the home needs no password, TCP does.
        assert psql(bindir, str(server.socket_dir), server.port, "select 1", None).stdout == "1\n"
        refused = psql(bindir, "127.0.0.1", server.port, "select 1", "not-the-password")
        assert refused.returncode != 0 and "password authentication failed" in refused.stderr
        password = server.password_file.read_text().strip()
        accepted = psql(bindir, "127.0.0.1", server.port, "select current_database()", password)
        assert accepted.stdout == f"{DATABASE}\n", accepted.stderr
    finally:
        assert stop_postgres(server.logs)
    # No process left, the port free again, no PID file.
    assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in processes)
    with socket.socket() as sock:
        # Reusable: the connections the server closed wait out TIME_WAIT; only a listener fails.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", server.port))
        sock.listen()
    assert not pid_file(server.logs, SERVICE).exists()
    assert not stop_postgres(server.logs)
    # Its data outlives it: a second start finds the database again.
    try:
        assert server.start()
        assert psql(bindir, str(server.socket_dir), server.port, "select 1", None).stdout == "1\n"
    finally:
        stop_postgres(server.logs)


def test_a_server_that_cannot_listen_fails_with_its_log(tmp_path: Path) -> None:
    require_server_binaries()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        server = LocalPostgres(tmp_path / "postgres", tmp_path / "logs", taken.getsockname()[1])
        try:
            with pytest.raises(RuntimeError, match=r"exited while starting(.|\n)*could not bind"):
                server.start()
        finally:
            stop_postgres(server.logs)


def test_missing_binaries_say_how_to_install_them(tmp_path: Path) -> None:
    (tmp_path / "initdb").touch()  # a folder with only some of them
    with pytest.raises(FileNotFoundError) as raised:
        server_bindir([tmp_path])
    assert str(tmp_path) in str(raised.value) and INSTALL_HINT in str(raised.value)
    assert "make pg-deps" in INSTALL_HINT
