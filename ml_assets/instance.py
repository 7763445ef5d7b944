"""The project home's Dagster instance: its dagster.yaml and workspace, written from package data."""

from __future__ import annotations

import json
import sys
from importlib.resources import files
from pathlib import Path
from typing import Final, Literal, NamedTuple

import yaml
from pydantic import BaseModel, ValidationError

from ml_assets.assets.day_ranges import CONCURRENT_DATA_RUNS
from ml_assets.assets.keys import DEPLOYED_MODEL
from ml_assets.ingest.landing import complaints_root
from ml_assets.model.tracking import PASSWORD_ENV, USERNAME_ENV
from ml_assets.settings import SECRET_FIELDS, Settings, load_settings
from resources.event_log import EVENT_BATCH_SIZE_ENV
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
# pyarrow reads its allocator from this variable, once, when a process first allocates.
ARROW_MEMORY_POOL_ENV: Final = "ARROW_DEFAULT_MEMORY_POOL"

# Where the instance launches its runs: a process on this machine (Dagster's default launcher),
# or a Ray job on the cluster (dagster-ray's RayRunLauncher, the `run_launcher` block of
# RAY_RUNS_TEMPLATE). A run launcher rather than dagster-ray's `ray_executor` (a Ray job per
# step): the jobs run their steps in one process on purpose (a step's process imports the code
# location again, ~5 s); DuckDB's warehouse takes one writer at a time, which the instance's
# concurrency pool counts per run (`granularity: run`); and a run stays what the instance queues,
# retries and shows, only its process is placed on the cluster.
RunsOn = Literal["local", "ray"]
RAY_RUNS_TEMPLATE: Final = "run-launcher-ray.yaml"
# The CPU a run's process takes on the cluster: a run is one process. Asking for a resource also
# lets Ray place the process on any node; a job that asks for none runs on the head node.
RAY_RUN_CPUS: Final = 1


class InstanceStorage(BaseModel, frozen=True):
    """Where the instance keeps runs, events and schedules (SQLite files, or the home's
    PostgreSQL), and where it launches runs (here, or on the Ray cluster)."""

    kind: Storage = "sqlite"
    # The home's PostgreSQL server's port (kind "postgres" only).
    postgres_port: int | None = None
    runs_on: RunsOn = "local"

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


def ray_run_env() -> list[str]:
    """The variables every run on Ray takes from the process that launches it: the instance, the
    project's settings but its secrets, the MLflow login (runs log to MLflow), the tuning of
    runs' processes.

    Names only: the launcher reads their values when it submits the run (a secret reaches the
    Ray job's environment, never dagster.yaml); an unset one is left out. Whoever holds the
    cluster's token can read a job's runtime environment (Ray's job API and dashboard show it),
    so a secret goes only where a run needs it: the failure webhook's URL to no run (the
    run-failure sensor posts, in the daemon), the endpoint's token to deploying runs alone
    (`ray_asset_env`)."""
    names = {
        "DAGSTER_HOME",
        *(
            Settings.env_name(field)
            for field in Settings.model_fields
            if field not in SECRET_FIELDS
        ),
        EVENT_BATCH_SIZE_ENV,
        ARROW_MEMORY_POOL_ENV,
        USERNAME_ENV,
        PASSWORD_ENV,
    }
    return sorted(names)


def ray_asset_env() -> dict[str, list[str]]:
    """The variables only the runs on Ray that materialize an asset take, by asset: the
    endpoint's token, which `deployed_model` deploys (as its digest) and its smoke test sends."""
    return {DEPLOYED_MODEL.to_user_string(): [Settings.env_name("api_token")]}


def run_launcher_yaml(ray_address: str) -> str:
    """The `run_launcher` block that makes every run of the instance a Ray job at `ray_address`."""
    template = (TEMPLATES / RAY_RUNS_TEMPLATE).read_text()
    return template.format(
        # JSON is YAML: a string and a list, whatever they hold.
        address=json.dumps(ray_address),
        path=json.dumps(f"{Path(sys.executable).parent}:${{PATH}}"),
        num_cpus=RAY_RUN_CPUS,
        env_vars=json.dumps(ray_run_env()),
        asset_env_vars=json.dumps(ray_asset_env()),
    )


def dagster_yaml(home: ProjectHome, storage: InstanceStorage, ray_address: str = "") -> str:
    """The instance configuration of a project home on a storage; runs on Ray go to the cluster
    at `ray_address` (default: the settings' RAY_ADDRESS, else the local head)."""
    template = (TEMPLATES / TEMPLATE_FILES[storage.kind]).read_text()
    server = storage.server(home)
    if server is None:
        text = template.format(
            # Where Dagster's default SQLite event log keeps its files: existing homes keep their
            # history.
            event_log_dir=home.dagster_home / "history" / "runs",
            concurrent_runs=CONCURRENT_DATA_RUNS,
        )
    else:
        text = template.format(
            concurrent_runs=CONCURRENT_DATA_RUNS,
            username=SUPERUSER,
            db_name=DATABASE,
            port=server.pooler_port,
            # A JSON string is a YAML scalar whatever the path holds (spaces, colons, #).
            socket_dir=json.dumps(str(server.socket_dir)),
        )
    if storage.runs_on == "ray":
        text += run_launcher_yaml(ray_address or load_settings().ray_gcs_address)
    return text


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
