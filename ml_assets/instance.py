"""The project home's Dagster instance: its dagster.yaml and workspace, written from package data."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from typing import Final

from ml_assets.assets.day_ranges import CONCURRENT_DATA_RUNS
from ml_assets.ingest.landing import complaints_root
from resources.home import ProjectHome

# Package data (pyproject.toml): found the same way in a checkout and in an installed wheel.
TEMPLATES: Final = files("ml_assets") / "templates"
WORKSPACE_FILE: Final = "workspace.yaml"


def dagster_yaml(home: ProjectHome) -> str:
    """The instance configuration of a project home."""
    return (
        (TEMPLATES / "dagster.yaml")
        .read_text()
        .format(
            # Where Dagster's default SQLite event log keeps its files: existing homes keep their
            # history.
            event_log_dir=home.dagster_home / "history" / "runs",
            concurrent_runs=CONCURRENT_DATA_RUNS,
        )
    )


def _write_if_changed(target: Path, text: str) -> None:
    """Write a file only when its text changes (its modification time tells when it did)."""
    if not target.exists() or target.read_text() != text:
        target.write_text(text)


def init_home(home: ProjectHome) -> None:
    """Create the project home's folders, its Dagster instance and the workspace `dagster dev` loads."""
    for folder in (complaints_root(home.landing), home.dagster_home, home.logs):
        folder.mkdir(parents=True, exist_ok=True)
    _write_if_changed(home.dagster_home / "dagster.yaml", dagster_yaml(home))
    _write_if_changed(home.dagster_home / WORKSPACE_FILE, (TEMPLATES / WORKSPACE_FILE).read_text())
    import dagster as dg

    # Create the instance's sqlite storages now: the daemon's threads and the webserver would
    # otherwise race to create them and can corrupt the migration history ("more than one head").
    with dg.DagsterInstance.from_config(str(home.dagster_home)) as instance:
        instance.get_runs(limit=1)
