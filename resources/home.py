"""The project home: the one folder everything the running system writes lives under."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

HOME_ENV_VAR = "ML_ASSETS_HOME"
# The repository root is two levels up from this file (resources/home.py).
REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_HOME = REPO_ROOT / ".ml_assets"
# Landing layout: <landing>/complaints/YYYY-MM-DD/<source>.csv, one folder per ingestion day.
COMPLAINTS_FOLDER = "complaints"
UNROUTABLE_FOLDER = "_unroutable"
# Where a loader spools day files before renaming them in (a dot folder no reader lists).
STAGING_FOLDER = ".staging"


@dataclass(frozen=True)
class ProjectHome:
    """Paths under `ML_ASSETS_HOME`; every writer of the project takes its path from here."""

    root: Path

    @property
    def landing(self) -> Path:
        return self.root / "landing"

    @property
    def complaints_landing(self) -> Path:
        return self.landing / COMPLAINTS_FOLDER

    @property
    def unroutable(self) -> Path:
        """Rows a loader could not assign to a day: kept, never dropped."""
        return self.landing / UNROUTABLE_FOLDER

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
        return self.root / "ray"

    @property
    def logs(self) -> Path:
        return self.root / "logs"


def project_home(root: str | os.PathLike[str] | None = None) -> ProjectHome:
    """The project home from an explicit root, else `ML_ASSETS_HOME`, else `.ml_assets/` in the repo."""
    chosen = root or os.environ.get(HOME_ENV_VAR) or DEFAULT_HOME
    return ProjectHome(Path(chosen).expanduser().resolve())
