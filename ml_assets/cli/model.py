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
    "outcome",
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
            f"check {check.check_name}: {'passed' if check.passed else 'refused'} ({check.metadata['failed'].value})"
        )
    refused = [c for c in checks if not c.passed]
    if not result.success:
        click.echo(
            f"training run {result.run_id[:8]} FAILED in {seconds:.0f} s (see the run in the Dagster UI)"
        )
        return 1
    if refused:
        # A refusal is the gate's outcome, not an error of the run: the champion stays.
        click.echo(
            f"training run {result.run_id[:8]} ok in {seconds:.0f} s: the challenger was refused, "
            "the champion stays"
        )
    else:
        click.echo(
            f"training run {result.run_id[:8]} ok in {seconds:.0f} s: the challenger is the champion now"
        )
    return 0


@click.command("rollback")
@click.option(
    "--no-deploy",
    is_flag=True,
    help="Only move the alias; the serving sensor deploys it within a minute.",
)
@with_home
def rollback(home: ProjectHome, no_deploy: bool) -> int:
    """Move the champion back to the previous one, and serve it now.

    The endpoint moves in place (Serve reconfigures its replicas, no smoke test: the version
    served before): no request fails. Without a Ray cluster only the alias moves, and the
    serving sensor deploys it once one is up.

    \b
    Example:
      ml-assets rollback
    """
    import dagster as dg

    from ml_assets.assets.keys import DEPLOYED_MODEL
    from ml_assets.assets.serving import serve_version
    from ml_assets.definitions import build_definitions
    from ml_assets.model.promotion import rollback as roll_back

    began = time.monotonic()
    definitions = build_definitions(home)
    resources = definitions.resources or {}
    registry = resources["model_registry"]
    try:
        change = roll_back(registry)
    except ValueError as exc:
        click.echo(f"error: {exc}", err=True)
        return 1
    click.echo(f"champion of {registry.model_name}: version {change.previous} -> {change.champion}")
    if no_deploy:
        return 0
    wanted = {k: resources[k] for k in ("model_registry", "ray_cluster", "serving_policy")}
    # Built as a run builds them: the token's EnvVar resolved to its value.
    with dg.build_resources(wanted) as built:
        try:
            built.ray_cluster.check_reachable()
        except OSError as exc:
            click.echo(
                f"no Ray cluster ({exc}): the serving sensor deploys v{change.champion} once "
                "one is up"
            )
            return 0
        serve_version(
            change.champion, built.model_registry, built.ray_cluster, built.serving_policy
        )
    seconds = time.monotonic() - began
    with dg.DagsterInstance.from_config(str(home.dagster_home)) as instance:
        # Recorded like a deployment, so that the asset's history shows what serves.
        instance.report_runless_asset_event(
            dg.AssetMaterialization(
                DEPLOYED_MODEL,
                metadata={
                    "version": change.champion,
                    "previous_version": change.previous or "none",
                    "deployed_by": "ml-assets rollback",
                },
            )
        )
    click.echo(f"serving v{change.champion} after {seconds:.1f} s")
    return 0


COMMANDS = (train, rollback)
