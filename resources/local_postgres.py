"""A PostgreSQL server of the project home's own, for a Dagster instance on `dagster-postgres`.

The system's server binaries (Debian's `postgresql` package: `initdb`, `postgres`, `pg_isready`,
`psql`, `createdb`), not a pip-installed server: the distribution patches and updates them, they
are the PostgreSQL production instances run, and the pip-installable one (`pgserver`) trusts
every local connection and, as root, opens the folders above its data to every user. Its data,
Unix socket and password live in one owner-only folder of the home; it listens on 127.0.0.1 only.

Dagster reaches it through PgBouncer (Debian's `pgbouncer`), PostgreSQL's standard connection
pooler: dagster-postgres opens a connection per call (SQLAlchemy's NullPool, so that no process
holds connections), and a new PostgreSQL session forks a backend, 2-3 ms of CPU each, thousands of
times a minute in a backfill. PgBouncer hands each call a session it keeps open (0.4 ms).
"""

from __future__ import annotations

import fcntl
import os
import pwd
import shutil
import signal
import subprocess
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psutil
import tenacity

from resources.home import PRIVATE_DIR_MODE, ensure_secret
from resources.local_services import log_file, running_pid, start_service, stop_server

SERVICE = "postgres"
POOLER_SERVICE = "pgbouncer"
SUPERUSER = "ml_assets"
DATABASE = "dagster"
# `initdb` takes about a second, a start under a second; far longer means something hangs.
INIT_TIMEOUT_S = 120
START_TIMEOUT_S = 60
STOP_TIMEOUT_S = 60
CLIENT_TIMEOUT_S = 30
# A Unix socket's path holds 108 bytes with its closing NUL (unix(7)).
SOCKET_PATH_MAX = 107
MAX_PORT = 65535
# What the project runs: the server, and the client tools that wait for it and create its database.
BINARIES = ("initdb", "postgres", "pg_isready", "psql", "createdb")
POOLER = "pgbouncer"
# Debian installs PgBouncer as a system daemon, off an ordinary user's PATH.
POOLER_DIRS = (Path("/usr/sbin"), Path("/usr/local/sbin"))
# Debian and Ubuntu keep each major version's binaries here, off the PATH.
DEBIAN_BINDIRS = Path("/usr/lib/postgresql")
INSTALL_HINT = (
    "install them with `make pg-deps` (Debian or Ubuntu: `apt-get install postgresql pgbouncer`; "
    "elsewhere the PostgreSQL server and PgBouncer packages, with `pg_config` or `initdb` and "
    "`pgbouncer` on the PATH)"
)
# PostgreSQL refuses to run as root. As root, the server runs in a user namespace of its own in
# which this account stands for root: it keeps root's ownership of the home's files (the home
# stays root's alone), without root's capabilities.
UNPRIVILEGED_ACCOUNT = "nobody"


def _bindir_candidates() -> Iterator[Path]:
    """Where the server binaries may be: `pg_config --bindir`, the PATH, Debian's folders."""
    pg_config = shutil.which("pg_config")
    if pg_config is not None:
        done = subprocess.run(
            [pg_config, "--bindir"], capture_output=True, text=True, timeout=CLIENT_TIMEOUT_S
        )
        if done.returncode == 0:
            yield Path(done.stdout.strip())
    initdb = shutil.which("initdb")
    if initdb is not None:
        yield Path(initdb).resolve().parent
    # The newest major version first.
    versions = [p for p in DEBIAN_BINDIRS.glob("*/bin") if p.parent.name.isdigit()]
    yield from sorted(versions, key=lambda p: int(p.parent.name), reverse=True)


def server_bindir(candidates: Sequence[Path] | None = None) -> Path:
    """The first folder holding every binary the project runs; fails with how to install them."""
    searched = list(_bindir_candidates() if candidates is None else candidates)
    for folder in searched:
        if all((folder / name).is_file() for name in BINARIES):
            return folder
    where = (
        ", ".join(map(str, searched)) or f"no pg_config or initdb on the PATH, no {DEBIAN_BINDIRS}"
    )
    raise FileNotFoundError(
        f"PostgreSQL's server binaries ({', '.join(BINARIES)}) were not found (searched: {where}): "
        + INSTALL_HINT
    )


def unprivileged(argv: list[str]) -> list[str]:
    """`argv` as a command PostgreSQL accepts to run: as is, or as root in a user namespace."""
    if os.geteuid() != 0:
        return argv
    unshare = shutil.which("unshare")
    if unshare is None:
        raise FileNotFoundError(
            "PostgreSQL does not run as root, and util-linux's `unshare` (to run it as an "
            "ordinary user of a namespace of its own) is not on the PATH: install util-linux, "
            "or run ml-assets as an ordinary user"
        )
    account = pwd.getpwnam(UNPRIVILEGED_ACCOUNT)
    return [
        unshare, "--user", f"--map-user={account.pw_uid}", f"--map-group={account.pw_gid}", *argv,
    ]  # fmt: skip


def pooler_binary() -> Path:
    """PgBouncer's binary; fails with how to install it."""
    search = os.pathsep.join([os.environ.get("PATH", ""), *map(str, POOLER_DIRS)])
    found = shutil.which(POOLER, path=search)
    if found is None:
        raise FileNotFoundError(
            f"PgBouncer (`{POOLER}`) was not found on {search}: " + INSTALL_HINT
        )
    return Path(found)


def pooler_config(socket_dir: Path, pooler_dir: Path, port: int, pooler_port: int) -> str:
    """PgBouncer's configuration: the home's database, pooled, on a Unix socket only."""
    # Single quotes: a home's path may hold spaces; PgBouncer reads the connection string as libpq.
    return f"""[databases]
{DATABASE} = host='{socket_dir}' port={port} dbname={DATABASE} user={SUPERUSER}

[pgbouncer]
; No TCP: clients use the socket in the owner-only folder, so only the owner can connect, and
; PgBouncer trusts them as the server's own socket does. The port only names that socket.
listen_addr =
listen_port = {pooler_port}
unix_socket_dir = {socket_dir}
unix_socket_mode = 0700
auth_type = trust
auth_file = {pooler_dir / "users.txt"}
; Session pooling: a client keeps its server session until it disconnects, so session settings
; (the webserver's statement_timeout) stay its own; DISCARD ALL resets them for the next client.
pool_mode = session
; The daemon's threads, the webserver, four runs and their steps, with room to spare; PostgreSQL
; allows 100 connections.
default_pool_size = 40
max_client_conn = 500
; A line per connection would be one per Dagster call.
log_connections = 0
log_disconnections = 0
"""


def _check_socket_path(folder: Path, port: int) -> None:
    """Fail, saying what to do, when a Unix socket's path would be longer than sockets allow."""
    path = folder / f".s.PGSQL.{port}"
    if len(os.fsencode(path)) > SOCKET_PATH_MAX:
        raise ValueError(
            f"the socket path {path} is {len(os.fsencode(path))} bytes, more than the "
            f"{SOCKET_PATH_MAX} a Unix socket's path may hold: set ML_ASSETS_HOME to a shorter path"
        )


def _wait_until(ready: Callable[[], bool], failure: str, log: Path) -> None:
    """Ask `ready` every 0.2 s until it is true; after START_TIMEOUT_S, fail naming the log."""
    waiting = tenacity.Retrying(
        retry=tenacity.retry_if_result(lambda ok: not ok),
        wait=tenacity.wait_fixed(0.2),
        stop=tenacity.stop_after_delay(START_TIMEOUT_S),
    )
    try:
        waiting(ready)
    except tenacity.RetryError as exc:
        raise TimeoutError(f"{failure} within {START_TIMEOUT_S} s; see {log}") from exc


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on `path` (two commands starting the server at once take turns)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _run(argv: list[str], what: str, timeout_s: float) -> str:
    """Run a PostgreSQL tool; its output, or an error with what it said."""
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s)
    if done.returncode != 0:
        raise RuntimeError(f"{what} failed ({' '.join(argv)}):\n{done.stdout}{done.stderr}")
    return done.stdout


def _exited(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@dataclass(frozen=True)
class LocalPostgres:
    """The server of one project home: data in `folder`, PID file and log in `logs`."""

    folder: Path
    logs: Path
    port: int

    @property
    def data(self) -> Path:
        return self.folder / "data"

    @property
    def password_file(self) -> Path:
        """The superuser's password, for connections over TCP (owner-readable only)."""
        return self.folder / "password"

    @property
    def socket_dir(self) -> Path:
        """Where the server's Unix socket is: inside the owner-only folder, so the owner's alone."""
        return self.folder

    @property
    def pooler_port(self) -> int:
        """The number of PgBouncer's socket, beside the server's: Dagster's way in (no TCP port)."""
        # The same folder as the server's socket rather than a deeper one: a socket's path holds
        # at most SOCKET_PATH_MAX bytes, and PgBouncer silently cuts a longer one short.
        return self.port + 1 if self.port < MAX_PORT else self.port - 1

    @property
    def pooler_dir(self) -> Path:
        """PgBouncer's configuration (owner-only, like the folder it is in)."""
        return self.folder / "pooler"

    @property
    def log(self) -> Path:
        return log_file(self.logs, SERVICE)

    def start(self) -> bool:
        """Start the server unless it runs (creating its data and database first); True if started.

        Answers on 127.0.0.1:`port` (password: scram-sha-256) and on its Unix socket (trusted:
        only the owner can reach it, the PostgreSQL docs' way for a single-user machine); its
        PgBouncer, on a socket beside it (`pooler_port`), pools the sessions of Dagster's
        connections."""
        bindir = server_bindir()
        pooler = pooler_binary()
        for port in (self.port, self.pooler_port):
            _check_socket_path(self.socket_dir, port)
        self.folder.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
        self.folder.chmod(PRIVATE_DIR_MODE)
        with _locked(self.folder / "start.lock"):
            started = running_pid(self.logs, SERVICE) is None
            if started:
                if not (self.data / "PG_VERSION").exists():
                    self._init(bindir)
                argv = [
                    str(bindir / "postgres"), "-D", str(self.data),
                    "-c", "listen_addresses=127.0.0.1", "-c", f"port={self.port}",
                    # Quoted: the setting is a list, and a home's path may hold a comma.
                    "-c", f'unix_socket_directories="{self.socket_dir}"',
                    "-c", "unix_socket_permissions=0700",
                ]  # fmt: skip
                start_service(self.logs, SERVICE, unprivileged(argv), dict(os.environ))
            self._wait_ready(bindir, started)
            self._create_database(bindir)
            if running_pid(self.logs, POOLER_SERVICE) is None:
                self._start_pooler(pooler)
            self._wait_pooler(bindir)
        return started

    def _start_pooler(self, pooler: Path) -> None:
        self.pooler_dir.mkdir(mode=PRIVATE_DIR_MODE, exist_ok=True)
        (self.pooler_dir / "users.txt").write_text(f'"{SUPERUSER}" ""\n')
        config = self.pooler_dir / "pgbouncer.ini"
        config.write_text(
            pooler_config(self.socket_dir, self.pooler_dir, self.port, self.pooler_port)
        )
        start_service(
            self.logs, POOLER_SERVICE, unprivileged([str(pooler), str(config)]), dict(os.environ)
        )

    def _wait_pooler(self, bindir: Path) -> None:
        """Wait until the pooler hands out sessions of the server; fail at once if it ended."""

        def answering() -> bool:
            pid = running_pid(self.logs, POOLER_SERVICE)
            if pid is None or _exited(pid):
                log = log_file(self.logs, POOLER_SERVICE)
                tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
                raise RuntimeError(f"PgBouncer exited while starting; {log}:\n{tail}")
            check = [
                str(bindir / "pg_isready"), "-q", "-h", str(self.socket_dir),
                "-p", str(self.pooler_port),
                "-U", SUPERUSER, "-d", DATABASE,
            ]  # fmt: skip
            return subprocess.run(check, timeout=CLIENT_TIMEOUT_S).returncode == 0

        _wait_until(answering, "PgBouncer did not answer", log_file(self.logs, POOLER_SERVICE))

    def _init(self, bindir: Path) -> None:
        ensure_secret(self.password_file)
        argv = [
            str(bindir / "initdb"), "-D", str(self.data), "-U", SUPERUSER,
            f"--pwfile={self.password_file}", "--auth-local=trust", "--auth-host=scram-sha-256",
            "--encoding=UTF8", "--no-locale",
        ]  # fmt: skip
        _run(unprivileged(argv), "initdb", INIT_TIMEOUT_S)

    def _client(self, bindir: Path, tool: str) -> list[str]:
        """A client tool's command over the server's socket, as the superuser."""
        return [
            str(bindir / tool),
            "-h",
            str(self.socket_dir),
            "-p",
            str(self.port),
            "-U",
            SUPERUSER,
        ]

    def _wait_ready(self, bindir: Path, started: bool) -> None:
        """Wait until the server accepts connections; fail at once if it ended meanwhile."""

        def accepting() -> bool:
            pid = running_pid(self.logs, SERVICE)
            if pid is None or _exited(pid):
                tail = self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""
                raise RuntimeError(f"PostgreSQL exited while starting; {self.log}:\n{tail}")
            check = [*self._client(bindir, "pg_isready"), "-q"]
            code = subprocess.run(check, timeout=CLIENT_TIMEOUT_S).returncode
            # pg_isready: 0 accepting, 1 still starting, 2 no answer at all.
            if code == 2 and not started:
                raise RuntimeError(
                    f"The home's PostgreSQL runs (PID {pid}) but does not answer on port "
                    f"{self.port}: it was started with another port. Stop it (`ml-assets down`) "
                    "and start it again."
                )
            return code == 0

        _wait_until(accepting, "PostgreSQL did not accept connections", self.log)

    def _create_database(self, bindir: Path) -> None:
        query = f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}'"
        psql = [*self._client(bindir, "psql"), "-d", "postgres", "-tAc", query]
        if _run(psql, "psql", CLIENT_TIMEOUT_S).strip() != "1":
            createdb = [*self._client(bindir, "createdb"), DATABASE]
            _run(createdb, "createdb", CLIENT_TIMEOUT_S)


def stop_postgres(logs: Path, timeout_s: float = STOP_TIMEOUT_S) -> bool:
    """Stop the pooler, then the server, whose PID files are in `logs`; False if neither ran.

    SIGTERM is PgBouncer's immediate shutdown (its clients, Dagster's processes, have ended).
    SIGINT is PostgreSQL's "fast" shutdown: it ends the sessions, writes a checkpoint and exits
    (SIGTERM would wait for every client to disconnect)."""
    pooler = stop_server(logs, POOLER_SERVICE, signal.SIGTERM, timeout_s)
    return stop_server(logs, SERVICE, signal.SIGINT, timeout_s) or pooler
