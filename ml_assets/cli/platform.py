"""The platform commands: the project home, the demos, the local services, backfills."""

from __future__ import annotations

import time
from datetime import date, timedelta
from typing import TYPE_CHECKING

import click

from ml_assets.cli.common import Day, ProjectDefault, demo_defaults, with_home
from ml_assets.cli.serving import start_ray, stop_ray
from resources.home import ProjectHome

if TYPE_CHECKING:
    import dagster as dg

    from ml_assets.operations import RunSummary

# Backfill statuses after which it launches no more runs.
BACKFILL_FINISHED = frozenset(
    {"COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED", "COMPLETED"}
)
RUN_NOT_DONE = ("QUEUED", "STARTED", "STARTING", "NOT_STARTED")
# The instance's storages (`ml_assets.instance.Storage`, which takes a second to import).
STORAGES = ("sqlite", "postgres")


def webserver_url() -> str:
    """The local Dagster webserver (`ml_assets.settings.UI_PORT`)."""
    from ml_assets.settings import UI_PORT

    return f"http://127.0.0.1:{UI_PORT}"


@click.command("init")
@with_home
def init(home: ProjectHome) -> int:
    """Create the project home and its Dagster instance config.

    \b
    Examples:
      ml-assets init
      ml-assets --home /tmp/ml_assets_home init
    """
    from ml_assets.instance import init_home

    init_home(home)
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
    type=click.Choice(["first-model", "drift"]),
    default="first-model",
    help="first-model: land, train, serve, land more days; drift: serve, drift arrives, "
    "input_drift errors, retrain, blessing, the new champion serves, recovery (use an empty "
    "project home: `make demo-drift`).",
)
@with_home
def demo(home: ProjectHome, days: int, more_days: int, ui_port: int, scenario: str) -> int:
    """The whole platform on synthetic data, driven by sensors.

    \b
    Examples:
      ml-assets demo --days 60 --ui-port 3000
      ml-assets --home .ml_assets-drift demo --scenario drift
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
@click.option(
    "--storage",
    type=click.Choice(STORAGES),
    default=None,
    help="Where the Dagster instance keeps runs and events: sqlite (files in the home, a new "
    "home's) or postgres (a PostgreSQL server in the home, on ML_ASSETS_POSTGRES_PORT). The home "
    "remembers it. Unset: the home's.",
)
@with_home
def up(home: ProjectHome, ui_port: int, storage: str | None) -> int:
    """Start Ray, dagster dev, the MLflow UI (and PostgreSQL, if chosen).

    \b
    Examples:
      ml-assets up --ui-port 3000
      ml-assets up --storage postgres
    """
    from ml_assets.demo import DAGSTER_SERVICE, DemoSettings, start_services
    from ml_assets.instance import InstanceStorage, home_storage, init_home
    from ml_assets.settings import load_settings
    from resources.local_postgres import SUPERUSER
    from resources.local_services import running_pid

    chosen = None
    if storage is not None:
        port = load_settings().postgres_port if storage == "postgres" else None
        chosen = InstanceStorage.model_validate({"kind": storage, "postgres_port": port})
    if chosen not in (None, home_storage(home)) and running_pid(home.logs, DAGSTER_SERVICE):
        raise click.UsageError(
            "dagster dev runs on this home's current storage: stop the platform (`ml-assets "
            "down`) before choosing another"
        )
    init_home(home, chosen)
    start_ray(home, None)
    settings = DemoSettings(ui_port=ui_port)
    start_services(home, settings)
    click.echo(
        f"Dagster UI http://127.0.0.1:{ui_port}, MLflow UI http://127.0.0.1:{settings.mlflow_port}; "
        f"logs in {home.logs}"
    )
    server = home_storage(home).server(home)
    if server is not None:
        click.echo(
            f"Dagster's storage: PostgreSQL on 127.0.0.1:{server.port} (user {SUPERUSER}, "
            f"password in {server.password_file}), data in {server.data}"
        )
    return 0


@click.command("down")
@with_home
def down(home: ProjectHome) -> int:
    """Stop dagster dev, the MLflow UI, PostgreSQL and Ray (by PID).

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


@click.command("backfill")
@click.option("--start", type=Day(), required=True, help="First day.")
@click.option("--end", type=Day(), required=True, help="Last day.")
@click.option("--url", cls=ProjectDefault, default=webserver_url, help="The Dagster webserver.")
@click.option("--timeout", type=float, default=3600.0, help="Seconds to wait for the backfill.")
@with_home
def backfill(home: ProjectHome, start: date, end: date, url: str, timeout: float) -> int:
    """Backfill the data layer through the running Dagster.

    The Dagster webserver (`ml-assets up`) launches the runs of a range of days; this waits
    for them and reports.

    \b
    Example:
      ml-assets up && ml-assets backfill --start 2016-01-01 --end 2016-03-30
    """
    import dagster as dg

    days = [(start + timedelta(days=i)).isoformat() for i in range((end - start).days + 1)]
    with dg.DagsterInstance.from_config(str(home.dagster_home)) as instance:
        return run_backfill(instance, url, days, timeout)


def run_backfill(instance: dg.DagsterInstance, url: str, days: list[str], timeout: float) -> int:
    """Launch a data-layer backfill of `days`, wait until its runs are done; the exit code."""
    from ml_assets.jobs import DATA_LAYER_KEYS
    from ml_assets.operations import backfill_status, launch_backfill, runs_after, wait_until

    known = {r.run_id for r in instance.get_runs()}
    began = time.monotonic()
    backfill_id = launch_backfill(f"{url}/graphql", DATA_LAYER_KEYS, days)
    click.echo(f"backfill {backfill_id}: {len(days)} days {days[0]}..{days[-1]}, data layer")

    def backfill_runs() -> list[RunSummary]:
        return [r for r in runs_after(instance, known) if r.launched_by.endswith(backfill_id)]

    def progress() -> str:
        runs = backfill_runs()
        done = sum(r.status == "SUCCESS" for r in runs)
        return f"{backfill_status(instance, backfill_id)}: {done}/{len(runs)} runs succeeded"

    wait_until(
        lambda: (
            backfill_status(instance, backfill_id) in BACKFILL_FINISHED
            and not any(r.status in RUN_NOT_DONE for r in runs_after(instance, known))
        ),
        progress,
        timeout,
        f"backfill {backfill_id}",
    )
    runs = backfill_runs()
    failed = [r for r in runs if r.status != "SUCCESS"]
    click.echo(
        f"backfill {backfill_id} {backfill_status(instance, backfill_id)} in "
        f"{time.monotonic() - began:.0f} s: {len(runs)} runs, {len(failed)} not successful"
    )
    for run in failed:
        click.echo(f"  {run.describe()}", err=True)
    return 1 if failed else 0


COMMANDS = (init, demo, up, down, backfill)
