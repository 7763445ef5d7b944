"""A PostgreSQL server of the project home's own, for a Dagster instance on `dagster-postgres`.

The system's server binaries (Debian's `postgresql` package: `initdb`, `postgres`, `pg_isready`,
`psql`, `createdb`), not a pip-installed server: the distribution patches and updates them, they
are the PostgreSQL production instances run, and the pip-installable one (`pgserver`) trusts
every local connection and, as root, opens the folders above its data to every user. Its data,
Unix socket and password live in one owner-only folder of the home; it listens on 127.0.0.1 only.
"""

from __future__ import annotations

import fcntl
import os
import pwd
import shutil
import signal
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psutil
import tenacity

from resources.home import PRIVATE_DIR_MODE, ensure_secret
from resources.local_services import running_pid, start_service, stop_server

SERVICE = "postgres"
SUPERUSER = "ml_assets"
DATABASE = "dagster"
# `initdb` takes about a second, a start under a second; far longer means something hangs.
INIT_TIMEOUT_S = 120
START_TIMEOUT_S = 60
STOP_TIMEOUT_S = 60
CLIENT_TIMEOUT_S = 30
# What the project runs: the server, and the client tools that wait for it and create its database.
BINARIES = ("initdb", "postgres", "pg_isready", "psql", "createdb")
# Debian and Ubuntu keep each major version's binaries here, off the PATH.
DEBIAN_BINDIRS = Path("/usr/lib/postgresql")
INSTALL_HINT = (
    "install them with `make pg-deps` (Debian or Ubuntu: `apt-get install postgresql`; elsewhere "
    "the PostgreSQL server package, with `pg_config` or `initdb` on the PATH)"
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
    def log(self) -> Path:
        return self.logs / f"{SERVICE}.log"

    def start(self) -> bool:
        """Start the server unless it runs (creating its data and database first); True if started.

        Answers on 127.0.0.1:`port` (password: scram-sha-256) and on its Unix socket (trusted:
        only the owner can reach it, the PostgreSQL docs' way for a single-user machine)."""
        bindir = server_bindir()
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
        return started

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

        waiting = tenacity.Retrying(
            retry=tenacity.retry_if_result(lambda ok: not ok),
            wait=tenacity.wait_fixed(0.2),
            stop=tenacity.stop_after_delay(START_TIMEOUT_S),
        )
        try:
            waiting(accepting)
        except tenacity.RetryError as exc:
            raise TimeoutError(
                f"PostgreSQL did not accept connections within {START_TIMEOUT_S} s; see {self.log}"
            ) from exc

    def _create_database(self, bindir: Path) -> None:
        query = f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}'"
        psql = [*self._client(bindir, "psql"), "-d", "postgres", "-tAc", query]
        if _run(psql, "psql", CLIENT_TIMEOUT_S).strip() != "1":
            createdb = [*self._client(bindir, "createdb"), DATABASE]
            _run(createdb, "createdb", CLIENT_TIMEOUT_S)


def stop_postgres(logs: Path, timeout_s: float = STOP_TIMEOUT_S) -> bool:
    """Stop the server whose PID file is in `logs`; False if it was not running.

    SIGINT is PostgreSQL's "fast" shutdown: it ends the sessions, writes a checkpoint and exits
    (SIGTERM would wait for every client to disconnect)."""
    return stop_server(logs, SERVICE, signal.SIGINT, timeout_s)
