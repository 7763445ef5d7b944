"""The home's PostgreSQL server: started in the home, its owner's alone, stopped without a trace."""

import os
import socket
import stat
import subprocess
from pathlib import Path

import psutil
import pytest

import resources.local_postgres
from ml_assets_tests.postgres import free_port, require_server_binaries
from resources.local_postgres import (
    DATABASE,
    INSTALL_HINT,
    MAX_PORT,
    POOLER_SERVICE,
    SERVICE,
    SOCKET_PATH_MAX,
    SUPERUSER,
    LocalPostgres,
    pooler_binary,
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
    assert not pid_file(server.logs, POOLER_SERVICE).exists()
    assert not stop_postgres(server.logs)
    # Its data outlives it: a second start finds the database again.
    try:
        assert server.start()
        assert psql(bindir, str(server.socket_dir), server.port, "select 1", None).stdout == "1\n"
    finally:
        stop_postgres(server.logs)


def backend_pids(host: Path, port: int, connections: int) -> list[int]:
    """The server process that answers each of `connections` connections opened one after another
    (as dagster-postgres opens them: one per call; psql autocommits, as its engine does)."""
    pids = []
    for _ in range(connections):
        done = psql(server_bindir(), str(host), port, "select pg_backend_pid()", None)
        assert done.returncode == 0, done.stderr
        pids.append(int(done.stdout))
    return pids


def test_the_pooler_hands_each_connection_a_session_it_keeps_open(tmp_path: Path) -> None:
    require_server_binaries()
    server = LocalPostgres(tmp_path / "postgres", tmp_path / "logs", free_port())
    try:
        server.start()
        pooler_pid = running_pid(server.logs, POOLER_SERVICE)
        assert pooler_pid is not None
        pooler = psutil.Process(pooler_pid)
        # No TCP at all: only the socket in the owner-only folder.
        assert [c for c in pooler.net_connections(kind="inet")] == []
        assert stat.S_IMODE(server.pooler_dir.stat().st_mode) == 0o700
        # Straight to the server, each connection forks a backend of its own; through the
        # pooler, one backend serves them all.
        assert len(set(backend_pids(server.socket_dir, server.port, 10))) == 10
        assert len(set(backend_pids(server.socket_dir, server.pooler_port, 10))) == 1
    finally:
        assert stop_postgres(server.logs)
    assert not pooler.is_running() or pooler.status() == psutil.STATUS_ZOMBIE


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


def home_folder(tmp_path: Path, port: int, extra: int = 0) -> Path:
    """A server folder whose socket paths are SOCKET_PATH_MAX bytes long, plus `extra`."""
    base = len(os.fsencode(tmp_path / "d" / "postgres" / f".s.PGSQL.{port}"))
    pad = SOCKET_PATH_MAX + extra - base
    assert pad >= 0, "pytest's temp folder is already too deep for this test"
    return tmp_path / ("d" * (pad + 1)) / "postgres"


def test_a_home_whose_socket_paths_just_fit_serves_through_its_pooler(tmp_path: Path) -> None:
    require_server_binaries()
    port = free_port()
    assert len(str(port)) == len(str(port + 1))  # both sockets' paths as long
    server = LocalPostgres(home_folder(tmp_path, port), tmp_path / "logs", port)
    try:
        server.start()
        assert len(set(backend_pids(server.socket_dir, server.pooler_port, 3))) == 1
    finally:
        assert stop_postgres(server.logs)


def test_a_home_too_deep_for_a_socket_says_so_before_starting(tmp_path: Path) -> None:
    require_server_binaries()
    port = free_port()
    server = LocalPostgres(home_folder(tmp_path, port, extra=1), tmp_path / "logs", port)
    with pytest.raises(ValueError, match="set ML_ASSETS_HOME to a shorter path"):
        server.start()
    assert running_pid(server.logs, SERVICE) is None
    assert running_pid(server.logs, POOLER_SERVICE) is None


def test_the_pooler_socket_has_a_valid_number_on_the_last_port(tmp_path: Path) -> None:
    assert LocalPostgres(tmp_path, tmp_path, MAX_PORT).pooler_port == MAX_PORT - 1
    assert LocalPostgres(tmp_path, tmp_path, 15432).pooler_port == 15433


def test_missing_binaries_say_how_to_install_them(tmp_path: Path) -> None:
    (tmp_path / "initdb").touch()  # a folder with only some of them
    with pytest.raises(FileNotFoundError) as raised:
        server_bindir([tmp_path])
    assert str(tmp_path) in str(raised.value) and INSTALL_HINT in str(raised.value)
    assert "make pg-deps" in INSTALL_HINT


def test_a_missing_pooler_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "")
    monkeypatch.setattr(resources.local_postgres, "POOLER_DIRS", ())
    with pytest.raises(FileNotFoundError, match="PgBouncer") as raised:
        pooler_binary()
    assert INSTALL_HINT in str(raised.value) and "pgbouncer" in INSTALL_HINT
