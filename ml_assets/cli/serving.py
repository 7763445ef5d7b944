"""The serving commands: the project's Ray head, deploying the champion, querying the endpoint."""

from __future__ import annotations

from pathlib import Path

import click

from ml_assets.cli.common import QUIET_RUN_CONFIG, ProjectDefault, with_home
from resources.home import ProjectHome

# A local worker node's CPUs: on one machine the nodes share its cores, so a node is a placement
# target (room for both 0.5-CPU model replicas), not extra compute.
WORKER_CPUS = 1


def endpoint_url() -> str:
    """The served model's local endpoint, on the port the settings serve it on."""
    from ml_assets.settings import load_settings

    return f"http://127.0.0.1:{load_settings().serve_port}"


def start_ray(
    home: ProjectHome, num_cpus: int | None, workers: int = 0, worker_cpus: int = WORKER_CPUS
) -> None:
    """Start the project's Ray head unless it is running already, then local worker nodes
    1..`workers` that are not running, `worker_cpus` CPUs each."""
    import os

    from ml_assets.instance import home_storage
    from ml_assets.serving.deploy import PROXY_ENV
    from resources.ray_cluster import DEFAULT_GCS_PORT, cluster_pids, start_head, start_worker

    if cluster_pids(home.ray_tmp):
        click.echo(f"the project's Ray head is already running (temp dir {home.ray_tmp})")
    else:
        # Ray's session paths end in unix sockets (at most 107 bytes): keep the temp dir short.
        start_head(
            home.ray_tmp,
            home.ray_token,
            num_cpus=num_cpus or os.cpu_count() or 2,
            extra_env=PROXY_ENV,
            # Its job server takes the runs when the home's runs go to Ray (`--runs-on ray`).
            dashboard=home_storage(home).runs_on == "ray",
        )
        click.echo(
            f"Ray head started on 127.0.0.1 (temp dir {home.ray_tmp}, token {home.ray_token})"
        )
    for index in range(1, workers + 1):
        temp_dir = home.ray_worker_tmp(index)
        if cluster_pids(temp_dir):
            click.echo(f"Ray worker node {index} is already running (temp dir {temp_dir})")
            continue
        # Every node runs a Serve proxy (or may): each needs the request guard's hook too.
        start_worker(
            f"127.0.0.1:{DEFAULT_GCS_PORT}",
            temp_dir,
            home.ray_token,
            num_cpus=worker_cpus,
            extra_env=PROXY_ENV,
        )
        click.echo(f"Ray worker node {index} joined ({worker_cpus} CPU, temp dir {temp_dir})")


def stop_ray(home: ProjectHome) -> None:
    """Stop the project's Ray processes, every local worker node's and the head's, by PID."""
    from resources.ray_cluster import stop_head

    for temp_dir in [*home.ray_worker_tmps(), home.ray_tmp]:
        stopped = stop_head(temp_dir)
        if stopped or temp_dir == home.ray_tmp:
            click.echo(f"stopped {stopped} Ray processes of {temp_dir}")


@click.command("ray-up")
@click.option(
    "--num-cpus", type=int, help="CPUs Ray may schedule on the head [default: one per core]."
)
@click.option(
    "--workers",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Worker nodes to start beside the head on this machine, each with its own temp dir.",
)
@click.option(
    "--worker-cpus",
    type=click.IntRange(min=1),
    default=WORKER_CPUS,
    show_default=True,
    help="CPUs Ray may schedule on each worker node.",
)
@with_home
def ray_up(home: ProjectHome, num_cpus: int | None, workers: int, worker_cpus: int) -> int:
    """Start the project's local Ray head (127.0.0.1, token auth) and worker nodes.

    Worker nodes (--workers) join the head with its token; a node already running is left
    as it is.

    \b
    Examples:
      ml-assets ray-up --num-cpus 2
      ml-assets ray-up --workers 2 --worker-cpus 1
    """
    start_ray(home, num_cpus, workers, worker_cpus)
    return 0


@click.command("ray-down")
@with_home
def ray_down(home: ProjectHome) -> int:
    """Stop the project's Ray processes, worker nodes and head (by PID).

    Other Ray clusters on the machine are left alone.

    \b
    Example:
      ml-assets ray-down
    """
    stop_ray(home)
    return 0


@click.command("deploy")
@with_home
def deploy(home: ProjectHome) -> int:
    """Serve the champion on Ray Serve and check it.

    \b
    Example:
      ml-assets ray-up && ml-assets deploy
    """
    import dagster as dg

    from ml_assets.definitions import build_definitions
    from ml_assets.instance import init_home

    init_home(home)
    job = build_definitions(home).resolve_job_def("deployment_job")
    with dg.DagsterInstance.from_config(str(home.dagster_home)) as instance:
        result = job.execute_in_process(
            instance=instance, raise_on_error=False, run_config=QUIET_RUN_CONFIG
        )
    for event in result.get_asset_materialization_events():
        shown = {k: v.value for k, v in event.materialization.metadata.items()}
        click.echo(f"deployed_model: {shown}")
    if not result.success:
        for failure in result.get_step_failure_events():
            error = failure.step_failure_data.error
            message = error.message.strip() if error else "the step failed"
            click.echo(f"error: {message}", err=True)
        return 1
    return 0


@click.command("predict")
@click.option(
    "--file",
    "path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="JSON lines, one complaint per line.",
)
@click.option("--json", "complaint", help="One complaint as a JSON object.")
@click.option("--url", cls=ProjectDefault, default=endpoint_url, help="The served model.")
@with_home
def predict(home: ProjectHome, path: Path | None, complaint: str | None, url: str) -> int:
    """Query the served model with --file or --json (one of them).

    The endpoint's token, if set (ML_ASSETS_API_TOKEN), is sent as a bearer token.

    \b
    Examples:
      ml-assets predict --json '{"product": "Credit card", "state": "NY"}'
      ml-assets predict --file complaints.jsonl
    """
    import json

    import requests

    from ml_assets.serving.auth import bearer_headers
    from ml_assets.settings import load_settings

    if (path is None) == (complaint is None):
        raise click.UsageError("give one of --file or --json")
    if complaint is not None:
        complaints = [json.loads(complaint)]
    else:
        assert path is not None
        lines = path.read_text().splitlines()
        complaints = [json.loads(line) for line in lines if line.strip()]
    answer = requests.post(
        f"{url}/predict",
        json={"complaints": complaints},
        headers=bearer_headers(load_settings().token()),
        timeout=60,
    )
    if not answer.ok:
        click.echo(f"error {answer.status_code}: {answer.text}", err=True)
        return 1
    body = answer.json()
    for prediction in body["predictions"]:
        model = f"{body['model_name']} v{body['model_version']}"
        click.echo(json.dumps({**prediction, "model": model}))
    return 0


COMMANDS = (ray_up, ray_down, deploy, predict)
