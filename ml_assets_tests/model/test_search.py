"""The Ray Tune search on a real Ray head on 127.0.0.1: ASHA's decisions, the nested MLflow runs,
and `dispute_model` with its search flag going through the same blessing as any challenger."""

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import mlflow
import pandas as pd
import pytest
from mlflow import MlflowClient

from ml_assets.definitions import local_resources
from ml_assets.ingest.cfpb_format import read_landing_day
from ml_assets.ingest.validation import split_valid_rejected
from ml_assets.jobs import DATA_LAYER_ASSETS, MODEL_LAYER_ASSETS, MODEL_LAYER_CHECKS
from ml_assets.model.features import to_features
from ml_assets.model.network import ModelParams
from ml_assets.model.search import (
    MLFLOW_EXPERIMENT_ID_ENV,
    SEARCH_METRIC,
    TrialTracking,
    search_hyperparameters,
    trial_table,
)
from ml_assets.model.tracking import CHALLENGER_ALIAS, CHAMPION_ALIAS, MLFLOW_EXPERIMENT
from ml_assets.model.training import split_dataset, training_window
from ml_assets.synthetic.export import generate_day, generate_landing
from ml_assets_tests.e2e.ray_cluster_helpers import materialize_data_layer
from ml_assets_tests.world import LEARNABLE, days_up_to_yesterday
from resources.compat.ray import free_cpus_per_node
from resources.home import ProjectHome
from resources.local_services import free_port
from resources.mlflow_registry import sqlite_tracking_uri
from resources.ray_cluster import RayCluster, start_head, stop_head

pytestmark = [pytest.mark.services, pytest.mark.timeout(600)]
PARENT_TAG = "mlflow.parentRunId"
# The default trial learns; the other one so slowly that it stays at its random initialisation,
# below the default's first epoch, where ASHA's first rung cuts it.
# The search's own tests run on features without the company history (the history is the
# feature store's, tested with it): the trials' models take the complaint's fields.
BASE = ModelParams(epochs=2, learning_rate=1e-2, batch_size=256, patience=5, use_history=False)
UNTRAINED_RATE = 1e-7
DAYS = days_up_to_yesterday(10)
# MLflow's variables of this process: Ray's MLflow logger and the dagster-mlflow resource set them
# (subprocesses of later tests would inherit them).
MLFLOW_VARIABLES = ("MLFLOW_TRACKING_URI", MLFLOW_EXPERIMENT_ID_ENV, "MLFLOW_EXPERIMENT_NAME")


@pytest.fixture(autouse=True)
def mlflow_process_state(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """This process's MLflow tracking URI and its variables given back when the test ends."""
    for name in MLFLOW_VARIABLES:
        # Set first, so that monkeypatch records it (it records nothing it deletes that was not
        # there), then as it was.
        monkeypatch.setenv(name, os.environ.get(name, ""))
        if not os.environ[name]:
            monkeypatch.delenv(name)
    uri = mlflow.get_tracking_uri() if mlflow.is_tracking_uri_set() else None
    yield
    # mlflow.set_tracking_uri(None) is how MLflow unsets it (its own tests do so).
    mlflow.set_tracking_uri(uri)  # pyright: ignore[reportArgumentType]


@pytest.fixture(scope="module")
def cluster() -> Iterator[RayCluster]:
    """A Ray head of two CPUs in a short temp dir, this process connected to it."""
    # Ray's session paths end in unix sockets (at most 107 bytes): a short temp dir of our own.
    ray_dir = Path(tempfile.mkdtemp(prefix="r", dir="/tmp"))
    port = free_port()
    start_head(ray_dir, ray_dir / "auth_token", num_cpus=2, port=port, client_port=free_port())
    try:
        cluster = RayCluster(
            address=f"127.0.0.1:{port}",
            token_path=str(ray_dir / "auth_token"),
            predictions_dir=str(ray_dir / "predictions"),
        )
        cluster.connect()
        yield cluster
    finally:
        import ray

        ray.shutdown()
        stop_head(ray_dir)
        shutil.rmtree(ray_dir, ignore_errors=True)


def dataset() -> pd.DataFrame:
    """Six synthetic days a model can learn, split in time (the last two held out)."""
    frames = []
    for offset in range(6):
        day = pd.Timestamp("2016-01-01") + pd.Timedelta(days=offset)
        text = generate_day(day.date(), 300, seed=11, signal=LEARNABLE)
        raw = read_landing_day([("d.csv", text.encode())], str(day.date()))
        frames.append(to_features(split_valid_rejected(raw).valid))
    features = pd.concat(frames, ignore_index=True)
    return split_dataset(features, training_window(pd.Timestamp("2016-01-06"), 6), "time", 2)


def test_asha_stops_the_weak_trial_and_each_trial_is_a_nested_mlflow_run(
    cluster: RayCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tracking_uri = sqlite_tracking_uri(tmp_path)
    client = MlflowClient(tracking_uri)
    experiment_id = client.create_experiment("search_test")
    # Ray's MLflow logger reads the variable before the name it is given: another experiment
    # there must not draw the trials away from their parent's.
    monkeypatch.setenv(MLFLOW_EXPERIMENT_ID_ENV, client.create_experiment("elsewhere"))
    parent = client.create_run(experiment_id, run_name="search")
    # One trial at a time: the default reaches ASHA's first rung before the other does.
    found = search_hyperparameters(
        dataset(),
        BASE,
        TrialTracking(tracking_uri, experiment_id, parent.info.run_id),
        free_cpus_per_node(),
        space={"learning_rate": (UNTRAINED_RATE,)},
        trials=2,
        concurrency=1,
    )
    client.set_terminated(parent.info.run_id)
    trials = found.trials
    assert list(trials["learning_rate"]) == [BASE.learning_rate, UNTRAINED_RATE]
    # ASHA's verdict: the slow trial ran one epoch of two, the default both.
    assert list(trials["epochs"]) == [2, 1]
    assert trials[SEARCH_METRIC].iloc[0] > trials[SEARCH_METRIC].iloc[1]
    # The chosen configuration is the trial with the best reported validation AUC.
    assert found.best_config == {"learning_rate": BASE.learning_rate}
    assert found.best_val_auc == trials[SEARCH_METRIC].max() == found.default_val_auc
    assert found.best_params == BASE

    runs = client.search_runs(
        [experiment_id, os.environ[MLFLOW_EXPERIMENT_ID_ENV]],
        f"tags.`{PARENT_TAG}` = '{parent.info.run_id}'",
    )
    assert [run.info.experiment_id for run in runs] == [experiment_id] * 2
    by_rate = {float(run.data.params["learning_rate"]): run for run in runs}
    assert set(by_rate) == {BASE.learning_rate, UNTRAINED_RATE}
    for rate, epochs in ((BASE.learning_rate, 2), (UNTRAINED_RATE, 1)):
        run = by_rate[rate]
        assert run.info.status == "FINISHED"
        history = client.get_metric_history(run.info.run_id, SEARCH_METRIC)
        assert len(history) == epochs
        reported = trials.loc[trials["learning_rate"] == rate, SEARCH_METRIC].item()
        assert max(m.value for m in history) == pytest.approx(reported)


def test_the_search_refuses_to_run_without_a_cluster(monkeypatch: pytest.MonkeyPatch) -> None:
    import ray

    # Tune would otherwise start a private Ray beside the caller's process.
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    with pytest.raises(RuntimeError, match="connect to one first"):
        search_hyperparameters(dataset(), BASE, None, {"n1": 2.0})


@pytest.mark.parametrize("free", [{"n1": 0.5, "n2": 0.5}, {"n1": 0.0}, {}])
def test_the_search_refuses_a_cluster_where_no_node_has_room_for_a_trial(
    monkeypatch: pytest.MonkeyPatch, free: dict[str, float]
) -> None:
    import ray

    # Refused before Tune starts: its trials would wait forever, pending.
    monkeypatch.setattr(ray, "is_initialized", lambda: True)
    with pytest.raises(RuntimeError, match=r"add a node \(`ml-assets ray-up --workers 1`\)"):
        search_hyperparameters(dataset(), BASE, None, free)


def test_the_search_refuses_a_field_the_model_does_not_have(cluster: RayCluster) -> None:
    with pytest.raises(ValueError, match="not ModelParams fields"):
        search_hyperparameters(
            dataset(), BASE, None, free_cpus_per_node(), space={"momentum": (0.9,)}
        )


def test_trials_that_all_fail_before_a_report_are_refused_with_the_first_error(
    cluster: RayCluster,
) -> None:
    # A dropout ModelParams refuses: every trial's parameters fail validation in its worker,
    # before its first epoch.
    broken = ModelParams.model_construct(**{**BASE.as_dict(), "dropout": 5.0})
    with pytest.raises(RuntimeError, match=r"1 of 1 trials failed, the first with: .*dropout"):
        search_hyperparameters(
            dataset(), broken, None, free_cpus_per_node(), space={"dropout": (5.0,)}, trials=1
        )


def test_a_table_without_trials_is_refused() -> None:
    with pytest.raises(RuntimeError, match="no trial reported 'val_auc'"):
        trial_table([], ["learning_rate"])


def test_dispute_model_with_search_registers_a_challenger_the_blessing_judges(
    cluster: RayCluster, tmp_path: Path
) -> None:
    home = ProjectHome(tmp_path / "home")
    generate_landing(home.landing, DAYS[0], len(DAYS), 250, 5, signal=LEARNABLE)
    # The test head, and the home's online store (materialize_data_layer writes it).
    on_head = RayCluster(
        address=cluster.address,
        token_path=cluster.token_path,
        predictions_dir=cluster.predictions_dir,
        feature_store=str(home.feature_store),
    )
    resources = {**local_resources(home), "ray_cluster": on_head}
    with dg.instance_for_test() as instance:
        materialize_data_layer(instance, resources, DAYS)
        search = {"search": True, "search_trials": 2, "epochs": 2, "batch_size": 256}
        result = dg.materialize(
            [*DATA_LAYER_ASSETS, *MODEL_LAYER_ASSETS, *MODEL_LAYER_CHECKS],
            selection=[a.key for a in MODEL_LAYER_ASSETS],
            resources=resources,
            instance=instance,
            run_config={
                "ops": {
                    "training_dataset": {
                        "config": {"window_days": len(DAYS), "evaluation_days": 3}
                    },
                    "dispute_model": {"config": search},
                }
            },
            raise_on_error=False,
        )
    assert result.success
    model = {
        k: v.value
        for k, v in result.asset_materializations_for_node("dispute_model")[0].metadata.items()
    }
    assert model["search_trials"] == 2
    (check,) = result.get_asset_check_evaluations()
    assert check.check_name == "blessing"
    # The blessing judged the version the search's training registered.
    assert check.metadata["challenger_version"].value == model["version"]
    registry = resources["model_registry"]
    version = registry.get_version(model["version"])
    client = MlflowClient(registry.tracking_uri)
    experiment = client.get_experiment_by_name(MLFLOW_EXPERIMENT)
    assert experiment is not None
    # The version's run holds the search's run, which holds the trials.
    (search_run,) = client.search_runs(
        [experiment.experiment_id], f"tags.`{PARENT_TAG}` = '{version.run_id}'"
    )
    assert search_run.info.run_name == "search"
    trial_runs = client.search_runs(
        [experiment.experiment_id], f"tags.`{PARENT_TAG}` = '{search_run.info.run_id}'"
    )
    assert len(trial_runs) == 2
    best = max(
        max(m.value for m in client.get_metric_history(r.info.run_id, SEARCH_METRIC))
        for r in trial_runs
    )
    assert model["search_best_val_auc"] == pytest.approx(best)
    # The final model was trained with the best trial's configuration.
    final = client.get_run(version.run_id).data.params
    assert {k: float(final[k]) for k in model["search_best_config"]} == pytest.approx(
        model["search_best_config"]
    )
    # Registered as challenger, then judged by the blessing like any other: the first model of
    # the registry becomes champion when blessed, and there is no champion when it is refused.
    aliases = set(registry.get_version(model["version"]).aliases)
    champion = registry.version_for_alias(CHAMPION_ALIAS)
    if check.passed:
        assert CHAMPION_ALIAS in aliases
    else:
        assert CHALLENGER_ALIAS in aliases
        assert champion is None
