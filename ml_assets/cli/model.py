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
    "search_best_config",
    "search_best_val_auc",
    "search_default_val_auc",
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
@click.option(
    "--search",
    is_flag=True,
    help="Search hyperparameters with Ray Tune on the Ray cluster first (`ml-assets ray-up`).",
)
@with_home
def train(
    home: ProjectHome,
    window_days: int,
    evaluation_days: int,
    split: str,
    end_date: date | None,
    epochs: int | None,
    search: bool,
) -> int:
    """Train, evaluate, bless and promote a model.

    The model learns from a window of labelled days, up to the newest by default.

    Exits 0 when the challenger is the champion now or was not blessed (the champion stays),
    1 when the run failed.

    \b
    Examples:
      ml-assets train        # the default window, up to the newest labelled day
      ml-assets train --window-days 2000 --evaluation-days 437 --split time
      ml-assets train --search   # a Ray Tune search first, on the running Ray cluster
    """
    import dagster as dg

    from ml_assets.definitions import build_definitions
    from ml_assets.instance import home_storage, init_home

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
    model_config: dict[str, object] = {"epochs": epochs} if epochs else {}
    if search:
        model_config["search"] = True
    if model_config:
        run_config["ops"]["dispute_model"] = {"config": model_config}
    if home_storage(home).runs_on != "local":
        # The run goes where the instance launches runs (a Ray job), as the UI's would.
        return launch_training(home, run_config)
    job = build_definitions(home).resolve_job_def("training_job")
    began = time.monotonic()
    with dg.DagsterInstance.from_config(str(home.dagster_home)) as instance:
        result = job.execute_in_process(
            instance=instance, raise_on_error=False, run_config=run_config
        )
    return print_training_result(result, time.monotonic() - began)


def launch_training(home: ProjectHome, run_config: dict[str, Any]) -> int:
    """Launch `training_job` through the home's Dagster, whose run launcher places it; wait for
    the run and print it as `train` does; the exit code."""
    import dagster as dg

    from ml_assets.backfill import BackfillError
    from ml_assets.cli.materialize import POLL_S, dagster_for_backfill, wait_for_code_location
    from ml_assets.instance import code_location

    began = time.monotonic()
    try:
        # The platform's dagster dev, else one started for this run (its daemon dequeues it).
        with dagster_for_backfill(home, "training run") as dagster:
            wait_for_code_location(home, dagster)
            run_id = launch_run(dagster.url, code_location().name, "training_job", run_config)
            dagster.launched(home)
            click.echo(f"training run {run_id[:8]} launched by the instance's run launcher")
            with dg.DagsterInstance.from_config(str(home.dagster_home)) as instance:
                while not (run := instance.get_run_by_id(run_id)) or not run.is_finished:
                    dagster.check_running(home)
                    time.sleep(POLL_S)
                records = instance.all_logs(
                    run_id,
                    of_type={
                        dg.DagsterEventType.ASSET_MATERIALIZATION,
                        dg.DagsterEventType.ASSET_CHECK_EVALUATION,
                    },
                )
    except BackfillError as exc:
        click.echo(f"error: {exc}", err=True)
        return 1
    materializations = [m for r in records if (m := r.asset_materialization)]
    checks = [c for r in records if (c := r.asset_check_evaluation)]
    seconds = time.monotonic() - began
    return print_training_outcome(materializations, checks, run.is_success, run_id, seconds)


LAUNCH_RUN = """
mutation LaunchRun($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on Error { message }
    ... on RunConfigValidationInvalid { errors { message } }
  }
}
"""


def launch_run(url: str, location: str, job: str, run_config: dict[str, Any]) -> str:
    """Launch a run of `job` through the webserver at `url` (as the UI's Launchpad does); its id."""
    from ml_assets.backfill import BackfillError, graphql

    selector = {"repositoryLocationName": location, "repositoryName": "__repository__"}
    params = {"selector": {**selector, "jobName": job}, "runConfigData": run_config}
    result = graphql(url, LAUNCH_RUN, {"params": params})["launchRun"]
    if result["__typename"] != "LaunchRunSuccess":
        raise BackfillError(f"the webserver refused the run of {job}: {result}")
    return result["run"]["runId"]


def print_training_result(result: dg.ExecuteInProcessResult, seconds: float) -> int:
    """Print a line per model-layer asset and the blessing; the exit code of `train`."""
    materializations = [e.materialization for e in result.get_asset_materialization_events()]
    checks = list(result.get_asset_check_evaluations())
    return print_training_outcome(materializations, checks, result.success, result.run_id, seconds)


def print_training_outcome(
    materializations: list[dg.AssetMaterialization],
    checks: list[dg.AssetCheckEvaluation],
    success: bool,
    run_id: str,
    seconds: float,
) -> int:
    """Print a training run's line per model-layer asset and its blessing; the exit code."""
    for materialization in materializations:
        shown = {
            k: v.value for k, v in materialization.metadata.items() if k in TRAINING_SUMMARY_KEYS
        }
        click.echo(f"{materialization.asset_key.to_user_string()}: {shown}")
    for check in checks:
        click.echo(
            f"check {check.check_name}: {'passed' if check.passed else 'refused'} ({check.metadata['failed'].value})"
        )
    refused = [c for c in checks if not c.passed]
    if not success:
        click.echo(
            f"training run {run_id[:8]} FAILED in {seconds:.0f} s (see the run in the Dagster UI)"
        )
        return 1
    if refused:
        # A refusal is the gate's outcome, not an error of the run: the champion stays.
        click.echo(
            f"training run {run_id[:8]} ok in {seconds:.0f} s: the challenger was refused, "
            "the champion stays"
        )
    else:
        click.echo(
            f"training run {run_id[:8]} ok in {seconds:.0f} s: the challenger is the champion now"
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
