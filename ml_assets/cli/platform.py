"""The platform commands: the project home, the demos, the local services."""

from __future__ import annotations

import time
from datetime import timedelta

import click

from ml_assets.cli.common import ProjectDefault, demo_defaults, with_home
from ml_assets.cli.serving import start_ray, stop_ray
from resources.home import ProjectHome


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
@with_home
def up(home: ProjectHome, ui_port: int) -> int:
    """Start Ray, dagster dev (with its daemon) and the MLflow UI.

    \b
    Example:
      ml-assets up --ui-port 3000
    """
    from ml_assets.demo import DemoSettings, start_services
    from ml_assets.instance import init_home

    init_home(home)
    start_ray(home, None)
    settings = DemoSettings(ui_port=ui_port)
    start_services(home, settings)
    click.echo(
        f"Dagster UI http://127.0.0.1:{ui_port}, MLflow UI http://127.0.0.1:{settings.mlflow_port}; "
        f"logs in {home.logs}"
    )
    return 0


@click.command("down")
@with_home
def down(home: ProjectHome) -> int:
    """Stop dagster dev, the MLflow UI and Ray (by PID).

    \b
    Example:
      ml-assets down
    """
    from ml_assets.demo import stop_services

    stopped = stop_services(home)
    click.echo(f"stopped: {', '.join(stopped) or 'no Dagster or MLflow UI was running'}")
    stop_ray(home)
    return 0


COMMANDS = (init, demo, up, down)
