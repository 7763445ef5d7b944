"""The project home: the one folder everything the running system writes lives under."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

# The home holds raw complaints (narratives with whatever PII they carry), prediction logs and
# tokens: owner-only folders (0700) and files (0600), whatever the user's umask.
PRIVATE_UMASK = 0o077
PRIVATE_DIR_MODE = 0o700


@dataclass(frozen=True)
class ProjectHome:
    """Paths under the project home; every writer of the project takes its path from here."""

    root: Path

    @classmethod
    def at(cls, root: str | os.PathLike[str]) -> ProjectHome:
        """The home at a folder (`~` expanded, made absolute: runs and services share it)."""
        return cls(Path(root).expanduser().resolve())

    @property
    def landing(self) -> Path:
        """Where sources drop complaint files (laid out by `ml_assets/ingest/landing.py`)."""
        return self.root / "landing"

    @property
    def warehouse(self) -> Path:
        return self.root / "warehouse.duckdb"

    @property
    def mlflow(self) -> Path:
        return self.root / "mlflow"

    @property
    def storage(self) -> Path:
        """Pickled values of assets that are not tables (model references, evaluation reports)."""
        return self.root / "storage"

    @property
    def feature_store(self) -> Path:
        """The online feature store: the newest history snapshot the serving replicas read."""
        return self.root / "feature_store" / "online.sqlite"

    @property
    def predictions(self) -> Path:
        """Answered predictions, one folder per day (the feedback for monitoring)."""
        return self.root / "predictions"

    @property
    def ray_token(self) -> Path:
        """The Ray cluster's authentication token (owner-readable only)."""
        return self.ray_tmp / "auth_token"

    @property
    def dagster_home(self) -> Path:
        return self.root / "dagster"

    @property
    def ray_tmp(self) -> Path:
        """The Ray head's temp dir (Ray's unix sockets end its session paths: keep it short)."""
        return self.root / "ray"

    @property
    def ray_workers(self) -> Path:
        """The folder of the local worker nodes' temp dirs (`ml-assets ray-up --workers N`)."""
        # A sibling of `ray_tmp`, not inside it: stopping the head by its temp dir must not
        # reach the workers (nor the reverse). A short name: Ray's session paths end in unix
        # sockets (at most 107 bytes), some 60 bytes below the temp dir already.
        return self.root / "rayw"

    def ray_worker_tmp(self, index: int) -> Path:
        """The temp dir of local worker node `index` (1, 2, ...)."""
        return self.ray_workers / str(index)

    def ray_worker_tmps(self) -> list[Path]:
        """The temp dirs of the local worker nodes ever started in this home, in index order."""
        if not self.ray_workers.is_dir():
            return []
        found = [path for path in self.ray_workers.iterdir() if path.name.isdigit()]
        return sorted(found, key=lambda path: int(path.name))

    @property
    def postgres(self) -> Path:
        """The home's PostgreSQL server, when its instance is on PostgreSQL: data, socket, password."""
        return self.root / "postgres"

    @property
    def logs(self) -> Path:
        return self.root / "logs"


def make_private(home: ProjectHome) -> None:
    """Create the home owner-only and make this process (and what it starts) create private files.

    The umask covers every writer at once (DuckDB, SQLite, MLflow, Dagster, Ray and the Serve
    replicas it starts); the home's own folder is closed too, so anything older under it that
    was created more openly is not reachable by others either.
    """
    os.umask(PRIVATE_UMASK)
    home.root.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
    home.root.chmod(PRIVATE_DIR_MODE)


def ensure_secret(path: Path) -> None:
    """Create a random secret (a token, a password) readable by the owner only, unless it exists."""
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(secrets.token_hex(32))
