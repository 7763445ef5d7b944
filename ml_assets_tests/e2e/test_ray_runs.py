"""Runs on Ray end to end: a home whose instance launches every run as a Ray job (dagster-ray's
RayRunLauncher) on a two-node cluster whose head has no CPU for them (as KubeRay's heads), so
that every run lands on the worker node; a backfill of the data layer and a training run through
it write what local runs of the same landed days write."""

import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
import pytest
import yaml
from dagster_ray import RayRunLauncher
from dagster_ray.core.run_launcher import get_job_submission_id_from_run_id

from ml_assets.assets.day_ranges import range_tags
from ml_assets.definitions import local_resources
from ml_assets.demo import stop_services
from ml_assets.jobs import DATA_LAYER_ASSETS, MODEL_LAYER_ASSETS, MODEL_LAYER_CHECKS
from ml_assets.model.tracking import DAGSTER_RUN_TAG, MODEL_NAME, TRAINING_WINDOW_TAG
from ml_assets.synthetic.export import generate_landing
from ml_assets_tests.world import LEARNABLE, days_up_to_yesterday
from resources.compat.ray import reload_ray_config
from resources.home import ProjectHome
from resources.local_services import free_port
from resources.mlflow_registry import sqlite_tracking_uri
from resources.ray_cluster import auth_env, start_head, start_worker, stop_head

pytestmark = [pytest.mark.e2e, pytest.mark.services, pytest.mark.timeout(600)]
BIN = Path(sys.executable).parent
DAYS = days_up_to_yesterday(8)
ROWS_PER_DAY = 120
SEED = 29
WINDOW = ("--window-days", str(len(DAYS)), "--evaluation-days", "3", "--epochs", "2")
COMMAND_TIMEOUT_S = 400
# What the instance's run launcher reports for each run it submits (dagster-ray 0.4.8).
CREATING_RAY_JOB = "Creating Ray run job"


@dataclass
class RayRuns:
    """A home whose runs went to Ray, the cluster's address, and what its commands printed."""

    home: ProjectHome
    address: str
    node_ids: dict[str, str]  # node id -> "head" | "worker"
    materialized: str
    trained: str


def ml_assets(home: ProjectHome, env: dict[str, str], *args: str) -> str:
    """Run an `ml-assets` command on `home`; its output, or the test fails with it."""
    done = subprocess.run(
        [str(BIN / "ml-assets"), "--home", str(home.root), *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_S,
    )
    assert done.returncode == 0, f"ml-assets {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def node_ids(address: str) -> dict[str, str]:
    """The cluster's alive nodes, by id: the head and the worker."""
    import ray

    ray.init(address=address, log_to_driver=False, configure_logging=False)
    try:
        return {
            node["NodeID"]: "head" if node["Resources"].get("node:__internal_head__") else "worker"
            for node in ray.nodes()
            if node["Alive"]
        }
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def ray_runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RayRuns]:
    home = ProjectHome(tmp_path_factory.mktemp("ray_runs") / "home")
    # Ray's session paths end in unix sockets (at most 107 bytes): short temp dirs of our own.
    head_dir = Path(tempfile.mkdtemp(prefix="r", dir="/tmp"))
    worker_dir = Path(tempfile.mkdtemp(prefix="w", dir="/tmp"))
    gcs_port = free_port()
    address = f"127.0.0.1:{gcs_port}"
    # The launcher in the daemon, and this test's job client, log in with the home's token.
    try:
        with pytest.MonkeyPatch.context() as patch:
            for name, value in auth_env(home.ray_token).items():
                patch.setenv(name, value)
            reload_ray_config()
            try:
                # No CPU on the head (Serve is not used here): a run asks for one CPU
                # (RAY_RUN_CPUS), which only the worker node has.
                start_head(
                    head_dir,
                    home.ray_token,
                    num_cpus=0,
                    port=gcs_port,
                    client_port=free_port(),
                    dashboard=True,
                )
                start_worker(address, worker_dir, home.ray_token, num_cpus=1)
                generate_landing(
                    home.landing, DAYS[0], len(DAYS), ROWS_PER_DAY, SEED, signal=LEARNABLE
                )
                env = {"RAY_ADDRESS": address}
                ml_assets(home, env, "init", "--runs-on", "ray")
                materialized = ml_assets(home, env, "materialize")
                trained = ml_assets(home, env, "train", *WINDOW)
                yield RayRuns(home, address, node_ids(address), materialized, trained)
            finally:
                # The Dagster a command started (code server, webserver, daemon) outlives it
                # when the command is killed (its timeout): stopped by its PID files.
                stop_services(home)
                stop_head(worker_dir)
                stop_head(head_dir)
    finally:
        # The variables are restored: Ray's config in this worker process forgets the token.
        reload_ray_config()


@pytest.fixture(scope="module")
def local_home(tmp_path_factory: pytest.TempPathFactory) -> ProjectHome:
    """The same landed days, data layer and training run in this process: a local run's output."""
    home = ProjectHome(tmp_path_factory.mktemp("local_runs") / "home")
    generate_landing(home.landing, DAYS[0], len(DAYS), ROWS_PER_DAY, SEED, signal=LEARNABLE)
    resources = local_resources(home)
    window = {"window_days": len(DAYS), "evaluation_days": 3}
    run_config = {
        "ops": {
            "training_dataset": {"config": window},
            "dispute_model": {"config": {"epochs": 2}},
        }
    }
    with dg.instance_for_test() as instance:
        days = [day.isoformat() for day in DAYS]
        tags = range_tags(days)
        assert dg.materialize(
            DATA_LAYER_ASSETS, resources=resources, tags=tags, instance=instance
        ).success
        assert dg.materialize(
            [*DATA_LAYER_ASSETS, *MODEL_LAYER_ASSETS, *MODEL_LAYER_CHECKS],
            selection=[asset.key for asset in MODEL_LAYER_ASSETS],
            resources=resources,
            run_config=run_config,
            instance=instance,
        ).success
    return home


def ray_jobs(address: str) -> dict[str, tuple[str, str]]:
    """The jobs submitted to the cluster: submission id -> (status, the node its driver ran on)."""
    from ray.job_submission import JobSubmissionClient

    return {
        job.submission_id: (str(job.status), str(job.driver_node_id))
        for job in JobSubmissionClient(address).list_jobs()
        if job.submission_id  # not the drivers that joined by `ray.init` (this test's)
    }


def instance_runs(home: ProjectHome) -> list[dg.DagsterRun]:
    with dg.DagsterInstance.from_config(str(home.dagster_home)) as instance:
        return list(instance.get_runs())


def test_the_home_launches_its_runs_on_ray_without_a_secret_in_dagster_yaml(
    ray_runs: RayRuns,
) -> None:
    with dg.DagsterInstance.from_config(str(ray_runs.home.dagster_home)) as instance:
        assert isinstance(instance.run_launcher, RayRunLauncher)
    text = (ray_runs.home.dagster_home / "dagster.yaml").read_text()
    launcher = yaml.safe_load(text)["run_launcher"]
    assert launcher["config"]["ray"]["address"] == ray_runs.address
    forwarded = launcher["config"]["ray"]["env_vars"]
    assert {"DAGSTER_HOME", "ML_ASSETS_HOME", "RAY_ADDRESS"} <= set(forwarded)
    # The endpoint's token goes to deploying runs alone, the webhook's URL to none.
    assert not {"ML_ASSETS_API_TOKEN", "ML_ASSETS_FAILURE_WEBHOOK_URL"} & set(forwarded)
    assert launcher["config"]["asset_env_vars"] == {"deployed_model": ["ML_ASSETS_API_TOKEN"]}
    # Names only: no value, the token's included, is written into the instance's configuration.
    assert not [name for name in forwarded if "=" in name]
    assert ray_runs.home.ray_token.read_text().strip() not in text


def test_every_run_was_a_ray_job_that_succeeded(ray_runs: RayRuns) -> None:
    runs = instance_runs(ray_runs.home)
    jobs = {run.job_name for run in runs}
    assert {"training_job"} < jobs and len(runs) >= 2, jobs
    assert all(run.is_success for run in runs)
    submitted = ray_jobs(ray_runs.address)
    assert sorted(ray_runs.node_ids.values()) == ["head", "worker"]
    for run in runs:
        status, node = submitted[get_job_submission_id_from_run_id(run.run_id)]
        assert status == "SUCCEEDED"
        # The run asked for a CPU, which the head has none of: Ray ran it on the worker node.
        assert ray_runs.node_ids.get(node) == "worker", (run.job_name, node, ray_runs.node_ids)


def test_the_runs_events_are_in_the_instance_as_a_local_runs(ray_runs: RayRuns) -> None:
    with dg.DagsterInstance.from_config(str(ray_runs.home.dagster_home)) as instance:
        for run in instance.get_runs():
            logs = instance.all_logs(run.run_id)
            (created,) = [
                e.dagster_event.event_specific_data
                for e in logs
                if e.dagster_event is not None
                and (e.dagster_event.message or "").endswith(CREATING_RAY_JOB)
            ]
            # The launcher's engine event names the Ray job, as the UI shows it in the run's log.
            submission = created.metadata["Ray Job Submission ID"].value
            assert submission == get_job_submission_id_from_run_id(run.run_id)
            materializations = [m for e in logs if (m := e.asset_materialization)]
            assert materializations, f"run {run.run_id} ({run.job_name}) materialized nothing"
            # Each with the metadata its asset reports (row counts, versions, AUCs...).
            assert all(m.metadata for m in materializations)
            # The run's own process logged its steps from the Ray job.
            steps = [e for e in logs if e.dagster_event_type == dg.DagsterEventType.STEP_SUCCESS]
            assert steps
        features = instance.get_materialized_partitions(dg.AssetKey("complaint_features"))
        assert features == {day.isoformat() for day in DAYS}
    assert f"{len(DAYS)} days in 1 run, {len(DAYS)} ok, 0 failed" in ray_runs.materialized
    assert "launched by the instance's run launcher" in ray_runs.trained


def warehouse_tables(home: ProjectHome) -> dict[str, pd.DataFrame]:
    """Every warehouse table, sorted, its landing paths relative to the home's landing zone."""
    with duckdb.connect(str(home.warehouse), read_only=True) as con:
        names = con.execute(
            "select table_schema, table_name from information_schema.tables order by all"
        ).fetchall()
        tables = {}
        for schema, table in names:
            frame = con.execute(f'select * from "{schema}"."{table}"').df()
            if "source_file" in frame:
                frame["source_file"] = frame["source_file"].str.removeprefix(str(home.landing))
            frame = frame.sort_values(list(frame.columns)).reset_index(drop=True)
            tables[f"{schema}.{table}"] = frame
    return tables


def test_the_warehouse_holds_what_a_local_run_writes(
    ray_runs: RayRuns, local_home: ProjectHome
) -> None:
    on_ray, local = warehouse_tables(ray_runs.home), warehouse_tables(local_home)
    assert on_ray.keys() == local.keys() and len(on_ray) >= 4
    for name, frame in local.items():
        assert len(frame) > 0 or "rejected" in name, name
        pd.testing.assert_frame_equal(on_ray[name], frame, obj=name)


def registered_versions(home: ProjectHome) -> list[dict[str, str]]:
    from mlflow import MlflowClient

    client = MlflowClient(sqlite_tracking_uri(home.mlflow))
    return [dict(v.tags) for v in client.search_model_versions(f"name='{MODEL_NAME}'")]


def test_the_registry_holds_a_version_tagged_as_a_local_runs(
    ray_runs: RayRuns, local_home: ProjectHome
) -> None:
    (on_ray,) = registered_versions(ray_runs.home)
    (local,) = registered_versions(local_home)
    assert on_ray.keys() == local.keys()
    assert on_ray[TRAINING_WINDOW_TAG] == local[TRAINING_WINDOW_TAG]
    (training,) = [r for r in instance_runs(ray_runs.home) if r.job_name == "training_job"]
    # Registered by the run that ran as a Ray job.
    assert on_ray[DAGSTER_RUN_TAG] == training.run_id
