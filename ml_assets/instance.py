"""The project home's Dagster instance: its dagster.yaml and workspace, written from package data."""

from __future__ import annotations

import json
from importlib.resources import files
from pathlib import Path
from typing import Final, Literal, NamedTuple

import yaml
from pydantic import BaseModel, ValidationError

from ml_assets.assets.day_ranges import CONCURRENT_DATA_RUNS
from ml_assets.ingest.landing import complaints_root
from resources.home import ProjectHome
from resources.local_postgres import DATABASE, SUPERUSER, LocalPostgres

# Package data (pyproject.toml): found the same way in a checkout and in an installed wheel.
TEMPLATES: Final = files("ml_assets") / "templates"
WORKSPACE_FILE: Final = "workspace.yaml"
# Where the home remembers its storage, next to dagster.yaml.
STORAGE_FILE: Final = "storage.json"

Storage = Literal["sqlite", "postgres"]
TEMPLATE_FILES: Final[dict[Storage, str]] = {
    "sqlite": "dagster.yaml",
    "postgres": "dagster-postgres.yaml",
}


class InstanceStorage(BaseModel, frozen=True):
    """Where the instance keeps runs, events and schedules: SQLite files, or the home's PostgreSQL."""

    kind: Storage = "sqlite"
    # The home's PostgreSQL server's port (kind "postgres" only).
    postgres_port: int | None = None

    def server(self, home: ProjectHome) -> LocalPostgres | None:
        """The home's PostgreSQL server, if the instance is on one."""
        if self.kind != "postgres":
            return None
        if self.postgres_port is None:
            raise ValueError("a PostgreSQL instance needs the port of its server")
        return LocalPostgres(home.postgres, home.logs, self.postgres_port)


def home_storage(home: ProjectHome) -> InstanceStorage:
    """The storage the home's instance was set up with (SQLite until another is chosen)."""
    path = home.dagster_home / STORAGE_FILE
    if not path.exists():
        return InstanceStorage()
    try:
        return InstanceStorage.model_validate_json(path.read_text())
    except ValidationError as error:
        raise ValueError(
            f"{path} does not say which storage the instance uses ({error}): fix it, or delete it "
            "and choose one with `ml-assets up --storage sqlite|postgres`"
        ) from None


def dagster_yaml(home: ProjectHome, storage: InstanceStorage) -> str:
    """The instance configuration of a project home on a storage."""
    template = (TEMPLATES / TEMPLATE_FILES[storage.kind]).read_text()
    server = storage.server(home)
    if server is None:
        return template.format(
            # Where Dagster's default SQLite event log keeps its files: existing homes keep their
            # history.
            event_log_dir=home.dagster_home / "history" / "runs",
            concurrent_runs=CONCURRENT_DATA_RUNS,
        )
    return template.format(
        concurrent_runs=CONCURRENT_DATA_RUNS,
        username=SUPERUSER,
        db_name=DATABASE,
        port=server.pooler_port,
        # A JSON string is a YAML scalar whatever the path holds (spaces, colons, #).
        socket_dir=json.dumps(str(server.socket_dir)),
    )


class CodeLocation(NamedTuple):
    """The code location the workspace loads: its module of definitions and its name."""

    module: str
    name: str


def code_location() -> CodeLocation:
    """The package's code location, as its workspace template names it."""
    (entry,) = yaml.safe_load((TEMPLATES / WORKSPACE_FILE).read_text())["load_from"]
    module = entry["python_module"]
    return CodeLocation(module["module_name"], module["location_name"])


def code_server_workspace(location: CodeLocation, port: int) -> str:
    """A workspace whose code location is served by a running code server on 127.0.0.1:`port`."""
    server = {"host": "127.0.0.1", "port": port, "location_name": location.name}
    return yaml.safe_dump({"load_from": [{"grpc_server": server}]})


def _write_if_changed(target: Path, text: str) -> None:
    """Write a file only when its text changes (its modification time tells when it did)."""
    if not target.exists() or target.read_text() != text:
        target.write_text(text)


def init_home(home: ProjectHome, storage: InstanceStorage | None = None) -> None:
    """Create the project home's folders, its Dagster instance and the workspace `dagster dev` loads.

    `storage` chooses where the instance keeps its records, and the home remembers it; None keeps
    the home's. An instance on PostgreSQL starts the home's server unless it runs."""
    for folder in (complaints_root(home.landing), home.dagster_home, home.logs):
        folder.mkdir(parents=True, exist_ok=True)
    storage = storage or home_storage(home)
    server = storage.server(home)
    if server is not None:
        server.start()
    _write_if_changed(home.dagster_home / STORAGE_FILE, storage.model_dump_json() + "\n")
    _write_if_changed(home.dagster_home / "dagster.yaml", dagster_yaml(home, storage))
    _write_if_changed(home.dagster_home / WORKSPACE_FILE, (TEMPLATES / WORKSPACE_FILE).read_text())
    import dagster as dg

    # Create the instance's storages now: the daemon's threads and the webserver would otherwise
    # race to create them and can corrupt the migration history ("more than one head").
    with dg.DagsterInstance.from_config(str(home.dagster_home)) as instance:
        instance.get_runs(limit=1)
