"""The home's Dagster instance: on SQLite by default, on the home's PostgreSQL when chosen."""

import subprocess
import sys
from pathlib import Path
from typing import get_args

import dagster as dg
import pytest
import yaml
from dagster_ray import RayRunLauncher

from ml_assets.assets.keys import DEPLOYED_MODEL
from ml_assets.cli.platform import RUNS_ON, STORAGES
from ml_assets.instance import (
    RAY_RUN_CPUS,
    STORAGE_FILE,
    InstanceStorage,
    RunsOn,
    Storage,
    code_location,
    code_server_workspace,
    dagster_yaml,
    home_storage,
    init_home,
    ray_asset_env,
)
from ml_assets.settings import SECRET_FIELDS, Settings
from ml_assets_tests.postgres import home_on
from resources.compat.dagster_ray import QuotedRayRunLauncher
from resources.home import ProjectHome
from resources.local_postgres import DATABASE, SUPERUSER, server_bindir


@dg.asset
def figure() -> int:
    """A value to materialize."""
    return 42


def test_the_command_line_offers_the_instances_storages() -> None:
    assert get_args(Storage) == STORAGES


def test_the_backfills_code_server_is_the_code_location_the_ui_knows() -> None:
    # The checkout's workspace (`dagster dev` at the repository root) and the code server that
    # `ml-assets materialize` starts name one location: the backfill's runs belong to it.
    (entry,) = yaml.safe_load((Path(__file__).parents[1] / "workspace.yaml").read_text())[
        "load_from"
    ]
    location = code_location()
    assert (location.module, location.name) == (
        entry["python_module"]["module_name"],
        entry["python_module"]["location_name"],
    )
    (served,) = yaml.safe_load(code_server_workspace(location, 4321))["load_from"]
    assert served == {
        "grpc_server": {"host": "127.0.0.1", "port": 4321, "location_name": "ml_assets"}
    }


def settings_before(text: str, key: str) -> list[str]:
    """The lines of a dagster.yaml before `key`'s block, comments left out."""
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    return lines[: lines.index(f"{key}:")]


def test_the_two_templates_differ_only_in_their_storage(tmp_path: Path) -> None:
    home = ProjectHome(tmp_path)
    sqlite = dagster_yaml(home, InstanceStorage())
    postgres = dagster_yaml(home, InstanceStorage(kind="postgres", postgres_port=15432))
    assert settings_before(sqlite, "event_log_storage") == settings_before(postgres, "storage")
    assert "module: resources.event_log" in sqlite and "postgres" not in sqlite
    # Its own server, through its PgBouncer: the pooler's socket beside the server's, in the home
    # (the server's port is 15432, the pooler's socket is named by the next number); no password.
    assert f'host: "{home.postgres}"' in postgres
    assert "port: 15433" in postgres and f"db_name: {DATABASE}" in postgres
    assert "password:" not in postgres


def test_a_home_without_a_choice_is_on_sqlite_and_says_so(tmp_path: Path) -> None:
    home = ProjectHome(tmp_path)
    init_home(home)
    assert home_storage(home) == InstanceStorage(kind="sqlite")
    assert "event_log_storage" in (home.dagster_home / "dagster.yaml").read_text()
    (home.dagster_home / STORAGE_FILE).write_text('{"kind": "oracle"}')
    with pytest.raises(ValueError, match="fix it, or delete it"):
        home_storage(home)


def test_an_instance_on_postgres_keeps_its_runs_in_the_server(tmp_path: Path) -> None:
    with home_on("postgres", tmp_path / "home") as home:
        with dg.DagsterInstance.from_config(str(home.dagster_home)) as instance:
            run_id = dg.materialize([figure], instance=instance).run_id
        # A command that opens the instance later keeps it where the home chose.
        init_home(home)
        assert home_storage(home).kind == "postgres"
        with dg.DagsterInstance.from_config(str(home.dagster_home)) as instance:
            run = instance.get_run_by_id(run_id)
            assert run is not None and run.is_success
            record = instance.get_latest_materialization_event(dg.AssetKey("figure"))
            assert record is not None and record.run_id == run_id
        # Read from the server itself: the run is in PostgreSQL, no SQLite run storage exists.
        server = home_storage(home).server(home)
        assert server is not None
        query = f"select count(*) from runs where run_id = '{run_id}'"
        psql = [str(server_bindir() / "psql"), "-h", str(server.socket_dir)]
        psql += ["-p", str(server.port), "-U", SUPERUSER, "-d", DATABASE, "-tAc", query]
        done = subprocess.run(psql, capture_output=True, text=True, timeout=30, check=True)
        assert done.stdout == "1\n"
        assert not list(home.dagster_home.rglob("*.db"))


def test_the_command_line_offers_where_runs_go() -> None:
    assert get_args(RunsOn) == RUNS_ON


def test_runs_on_ray_add_the_launcher_and_nothing_else(tmp_path: Path) -> None:
    home = ProjectHome(tmp_path)
    for storage in (InstanceStorage(), InstanceStorage(kind="postgres", postgres_port=15432)):
        local = dagster_yaml(home, storage, "127.0.0.1:6380")
        on_ray = dagster_yaml(home, storage.model_copy(update={"runs_on": "ray"}), "127.0.0.1:6380")
        assert "run_launcher" not in yaml.safe_load(local)
        config = yaml.safe_load(on_ray)
        launcher = config.pop("run_launcher")
        assert config == yaml.safe_load(local)
        ray = launcher["config"]["ray"]
        assert ray["address"] == "127.0.0.1:6380" and ray["num_cpus"] == RAY_RUN_CPUS
        # The run's `dagster` is this environment's, whatever the node's PATH holds.
        assert ray["runtime_env"]["env_vars"]["PATH"].startswith(f"{Path(sys.executable).parent}:")
        # Names only, the instance's and every setting's among them: no value.
        assert {"DAGSTER_HOME", "ML_ASSETS_HOME", "MLFLOW_TRACKING_PASSWORD", "RAY_ADDRESS"} <= set(
            ray["env_vars"]
        )
        assert all(name.isidentifier() for name in ray["env_vars"])
        # A secret only where a run needs it (a job's environment is readable with the cluster's
        # token): the webhook's URL nowhere (the sensor posts), the endpoint's token to deploys.
        secrets = {Settings.env_name(field) for field in SECRET_FIELDS}
        assert not secrets & set(ray["env_vars"])
        assert launcher["config"]["asset_env_vars"] == {
            DEPLOYED_MODEL.to_user_string(): [Settings.env_name("api_token")]
        }


def test_a_home_on_ray_remembers_it_and_its_instance_launches_with_dagster_ray(
    tmp_path: Path,
) -> None:
    home = ProjectHome(tmp_path)
    init_home(home, InstanceStorage(runs_on="ray"))
    init_home(home)  # a later command keeps the home's choice
    assert home_storage(home) == InstanceStorage(runs_on="ray")
    with dg.DagsterInstance.from_config(str(home.dagster_home)) as instance:
        # The quoting subclass (ml_assets_tests/resources/test_dagster_ray_launcher.py), with
        # the variables only some assets' runs get.
        launcher = instance.run_launcher
        assert isinstance(launcher, QuotedRayRunLauncher)
        assert launcher.asset_env_vars == ray_asset_env()
    init_home(home, InstanceStorage())
    with dg.DagsterInstance.from_config(str(home.dagster_home)) as instance:
        assert not isinstance(instance.run_launcher, RayRunLauncher)
