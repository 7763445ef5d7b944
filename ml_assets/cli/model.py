"""The model commands: train a challenger (and promote it if blessed), roll the champion back."""

from __future__ import annotations

import time
from datetime import date
from typing import TYPE_CHECKING, Any

import click

from ml_assets.cli.common import QUIET_RUN_CONFIG, Day, ProjectDefault, training_window, with_home
from resources.home import ProjectHome

if TYPE_CHECKING:
    import dagster as dg

# The metadata of the model-layer assets that `train` prints (the rest is in the Dagster UI).
TRAINING_SUMMARY_KEYS = (
    "window",
    "rows",
    "version",
    "threshold",
    "best_val_auc",
    "roc_auc",
    "champion_roc_auc",
    "blessed",
    "champion",
    "previous",
    "mlflow_run",
)


@click.command("train")
@click.option(
    "--window-days",
    cls=ProjectDefault,
    type=int,
    default=lambda: training_window().window_days,
    help="Days in the training window.",
)
@click.option(
    "--evaluation-days",
    cls=ProjectDefault,
    type=int,
    default=lambda: training_window().evaluation_days,
    help="Most recent days held out (time split).",
)
@click.option(
    "--split",
    cls=ProjectDefault,
    type=click.Choice(["time", "hash"]),
    default=lambda: training_window().split,
    help="A time split, or the book's 9:1 hash split.",
)
@click.option(
    "--end-date",
    type=Day(),
    help="Last day of the window [default: the newest day with labelled features].",
)
@click.option("--epochs", type=int, help="Override the model's epochs.")
@with_home
def train(
    home: ProjectHome,
    window_days: int,
    evaluation_days: int,
    split: str,
    end_date: date | None,
    epochs: int | None,
) -> int:
    """Train, evaluate, bless and promote a model.

    The model learns from a window of labelled days, up to the newest by default.

    Exits 0 when the challenger is the champion now or was not blessed (the champion stays),
    1 when the run failed.

    \b
    Examples:
      ml-assets train        # the default window, up to the newest labelled day
      ml-assets train --window-days 2000 --evaluation-days 437 --split time
    """
    import dagster as dg

    from ml_assets.definitions import build_definitions
    from ml_assets.instance import init_home

    init_home(home)
    window: dict[str, object] = {
        "window_days": window_days,
        "evaluation_days": evaluation_days,
        "split": split,
    }
    if end_date:
        window["end_date"] = end_date.isoformat()
    run_config: dict[str, Any] = {
        **QUIET_RUN_CONFIG,
        "ops": {"training_dataset": {"config": window}},
    }
    if epochs:
        run_config["ops"]["dispute_model"] = {"config": {"epochs": epochs}}
    job = build_definitions(home).resolve_job_def("training_job")
    began = time.monotonic()
    with dg.DagsterInstance.from_config(str(home.dagster_home)) as instance:
        result = job.execute_in_process(
            instance=instance, raise_on_error=False, run_config=run_config
        )
    return print_training_result(result, time.monotonic() - began)


def print_training_result(result: dg.ExecuteInProcessResult, seconds: float) -> int:
    """Print a line per model-layer asset and the blessing; the exit code of `train`."""
    for event in result.get_asset_materialization_events():
        materialization = event.materialization
        shown = {
            k: v.value for k, v in materialization.metadata.items() if k in TRAINING_SUMMARY_KEYS
        }
        click.echo(f"{materialization.asset_key.to_user_string()}: {shown}")
    checks = list(result.get_asset_check_evaluations())
    for check in checks:
        click.echo(
            f"check {check.check_name}: {'passed' if check.passed else 'FAILED'} ({check.metadata['failed'].value})"
        )
    failed_steps = {e.step_key or "" for e in result.get_step_failure_events()}
    only_not_blessed = any(not c.passed for c in checks) and all(
        "blessing" in k for k in failed_steps
    )
    if result.success:
        click.echo(
            f"training run {result.run_id[:8]} ok in {seconds:.0f} s: the challenger is the champion now"
        )
    elif only_not_blessed:
        # Not blessed is the gate working, not an error of the run: the champion stays.
        click.echo(
            f"training run {result.run_id[:8]} in {seconds:.0f} s: challenger not blessed, champion unchanged"
        )
    else:
        click.echo(
            f"training run {result.run_id[:8]} FAILED in {seconds:.0f} s (see the run in the Dagster UI)"
        )
        return 1
    return 0


@click.command("rollback")
@with_home
def rollback(home: ProjectHome) -> int:
    """Move the champion alias back to the previous champion.

    \b
    Example:
      ml-assets rollback
    """
    from ml_assets.definitions import build_definitions
    from ml_assets.model.promotion import rollback as roll_back

    registry = (build_definitions(home).resources or {})["model_registry"]
    try:
        change = roll_back(registry)
    except ValueError as exc:
        click.echo(f"error: {exc}", err=True)
        return 1
    click.echo(f"champion of {registry.model_name}: version {change.previous} -> {change.champion}")
    return 0


COMMANDS = (train, rollback)
