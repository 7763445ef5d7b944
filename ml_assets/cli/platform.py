"""The platform commands: the project home, the demos, the local services."""

from __future__ import annotations

import time
from datetime import timedelta

import click

from ml_assets.cli.common import ProjectDefault, demo_defaults, with_home
from ml_assets.cli.serving import start_ray, stop_ray
from resources.home import ProjectHome

# The instance's storages and where it launches runs (`ml_assets.instance.Storage` and
# `RunsOn`, which take a second to import).
STORAGES = ("sqlite", "postgres")
RUNS_ON = ("local", "ray")

storage_option = click.option(
    "--storage",
    type=click.Choice(STORAGES),
    default=None,
    help="Where the Dagster instance keeps runs and events: sqlite (files in the home, a new "
    "home's) or postgres (a PostgreSQL server in the home, on ML_ASSETS_POSTGRES_PORT). The home "
    "remembers it. Unset: the home's.",
)


runs_on_option = click.option(
    "--runs-on",
    type=click.Choice(RUNS_ON),
    default=None,
    help="Where the instance launches runs: local (a process on this machine, a new home's) or "
    "ray (each run a Ray job on the cluster, dagster-ray's RayRunLauncher; Ray's dashboard then "
    "runs too, for its job server). The home remembers it. Unset: the home's.",
)


def init_on_storage(home: ProjectHome, storage: str | None, runs_on: str | None = None) -> None:
    """Set up the home on the chosen storage and runs (None: the home's), refusing to switch
    under a running dagster dev."""
    from ml_assets.demo import DAGSTER_SERVICE
    from ml_assets.instance import InstanceStorage, home_storage, init_home
    from ml_assets.settings import load_settings
    from resources.local_services import running_pid

    current = home_storage(home)
    chosen = current.model_dump()
    if storage is not None:
        port = load_settings().postgres_port if storage == "postgres" else None
        chosen.update(kind=storage, postgres_port=port)
    if runs_on is not None:
        chosen["runs_on"] = runs_on
    setup = InstanceStorage.model_validate(chosen)
    if setup != current and running_pid(home.logs, DAGSTER_SERVICE):
        raise click.UsageError(
            "dagster dev runs on this home's current storage and run launcher: stop the "
            "platform (`ml-assets down`) before choosing others"
        )
    init_home(home, setup)


def check_job_server(home: ProjectHome) -> None:
    """Refuse runs on Ray while the home's Ray head runs without its dashboard (the job server)."""
    from resources.ray_cluster import cluster_pids, has_job_server

    if cluster_pids(home.ray_tmp) and not has_job_server(home.ray_tmp):
        raise click.UsageError(
            f"the project's Ray head ({home.ray_tmp}) runs without its dashboard, whose job "
            "server takes runs on Ray: stop it (`ml-assets ray-down`) and run this again"
        )


@click.command("init")
@storage_option
@runs_on_option
@with_home
def init(home: ProjectHome, storage: str | None, runs_on: str | None) -> int:
    """Create the project home and its Dagster instance (on SQLite or PostgreSQL).

    With --storage postgres it also starts the home's PostgreSQL server.

    \b
    Examples:
      ml-assets init
      ml-assets --home /tmp/ml_assets_home init --storage postgres
      ml-assets init --runs-on ray
    """
    init_on_storage(home, storage, runs_on)
    click.echo(f"project home: {home.root}\nDAGSTER_HOME={home.dagster_home}")
    return 0


@click.command("demo")
@click.option(
    "--days",
    cls=ProjectDefault,
    type=click.IntRange(min=1),
    default=lambda: demo_defaults().days,
    help="Days landed before the first model.",
)
@click.option(
    "--more-days",
    cls=ProjectDefault,
    type=int,
    default=lambda: demo_defaults().more_days,
    help="Days landed once the model serves.",
)
@click.option(
    "--ui-port",
    cls=ProjectDefault,
    type=int,
    default=lambda: demo_defaults().ui_port,
    help="The Dagster UI's port.",
)
@click.option(
    "--scenario",
    type=click.Choice(["first-model", "drift", "challenger"]),
    default="first-model",
    help="first-model: land, train, serve, land more days; drift: serve, drift arrives, "
    "input_drift errors, retrain, blessing, the new champion serves, recovery (use an empty "
    "project home: `make demo-drift`); challenger: serve, drift arrives, a challenger enters "
    "shadow, labels arrive, it is promoted (or retired) on live evidence, no request fails "
    "(an empty home: `make demo-challenger`).",
)
@with_home
def demo(home: ProjectHome, days: int, more_days: int, ui_port: int, scenario: str) -> int:
    """The whole platform on synthetic data, driven by sensors.

    \b
    Examples:
      ml-assets demo --days 60 --ui-port 3000
      ml-assets --home .ml_assets-drift demo --scenario drift
      ml-assets --home .ml_assets-challenger demo --scenario challenger
    """
    from ml_assets.demo import DemoSettings, run_demo
    from ml_assets.instance import init_home
    from ml_assets.partitions import platform_today

    init_home(home)
    began = time.monotonic()
    start_ray(home, None)
    settings = DemoSettings(days=days, more_days=more_days, ui_port=ui_port)
    if scenario == "drift":
        from ml_assets.demo_drift import run_drift_demo

        last_line = run_drift_demo(home, settings, platform_today())
    elif scenario == "challenger":
        from ml_assets.demo_challenger import run_challenger_demo

        last_line = run_challenger_demo(home, settings, platform_today())
    else:
        last_line = run_demo(home, settings, platform_today() - timedelta(days=1))
    click.echo(f"demo took {time.monotonic() - began:.0f} s")
    click.echo(last_line)
    return 0


@click.command("up")
@click.option(
    "--ui-port",
    cls=ProjectDefault,
    type=int,
    default=lambda: demo_defaults().ui_port,
    help="The Dagster UI's port.",
)
@storage_option
@runs_on_option
@with_home
def up(home: ProjectHome, ui_port: int, storage: str | None, runs_on: str | None) -> int:
    """Start Ray, dagster dev, the MLflow server (and PostgreSQL, if chosen).

    \b
    Examples:
      ml-assets up --ui-port 3000
      ml-assets up --storage postgres
      ml-assets up --runs-on ray      # every run a Ray job on the cluster
    """
    from ml_assets.demo import DemoSettings, registry_login_hint, start_services
    from ml_assets.instance import home_storage
    from resources.local_postgres import SUPERUSER

    init_on_storage(home, storage, runs_on)
    start_ray(home, None)
    if home_storage(home).runs_on == "ray":
        check_job_server(home)
    settings = DemoSettings(ui_port=ui_port)
    start_services(home, settings)
    click.echo(
        f"Dagster UI http://127.0.0.1:{ui_port}, MLflow UI http://127.0.0.1:{settings.mlflow_port} "
        f"({registry_login_hint(home)}); logs in {home.logs}"
    )
    server = home_storage(home).server(home)
    if server is not None:
        click.echo(
            f"Dagster's storage: PostgreSQL on 127.0.0.1:{server.port} (user {SUPERUSER}, "
            f"password in {server.password_file}), data in {server.data}"
        )
    return 0


@click.command("mlflow")
@with_home
def mlflow_server(home: ProjectHome) -> int:
    """Start the MLflow server alone, with its authentication.

    \b
    Examples:
      ml-assets mlflow
    """
    from ml_assets.demo import DemoSettings, registry_login_hint, start_registry

    url = start_registry(home, DemoSettings().mlflow_port)
    click.echo(f"MLflow {url} ({registry_login_hint(home)}); stop it with ml-assets down")
    return 0


@click.command("down")
@with_home
def down(home: ProjectHome) -> int:
    """Stop Dagster, the MLflow UI, PostgreSQL and Ray (by PID).

    \b
    Example:
      ml-assets down
    """
    from ml_assets.demo import stop_services
    from resources.local_postgres import SERVICE, stop_postgres

    # PostgreSQL last: Dagster's processes write to it until they end.
    stopped = stop_services(home)
    if stop_postgres(home.logs):
        stopped.append(SERVICE)
    click.echo(
        f"stopped: {', '.join(stopped) or 'no Dagster, MLflow UI or PostgreSQL was running'}"
    )
    stop_ray(home)
    return 0


COMMANDS = (init, demo, up, mlflow_server, down)
