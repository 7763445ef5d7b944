"""The model layer in process: real DuckDB and a real MLflow sqlite store under tmp_path."""

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
from dagster._core.definitions.data_version import StaleStatus
from dagster._utils.test.data_versions import get_stale_status_resolver
from mlflow import MlflowClient

from ml_assets.assets.features import complaint_features
from ml_assets.constants import (
    CHALLENGER_ALIAS,
    CHAMPION_ALIAS,
    PREVIOUS_CHAMPION_TAG,
    THRESHOLD_TAG,
)
from ml_assets.definitions import local_resources
from ml_assets.ingest.generator import generate_landing
from ml_assets.jobs import DATA_LAYER_ASSETS, MODEL_LAYER_ASSETS, MODEL_LAYER_CHECKS
from ml_assets.model.features import to_features
from ml_assets.model.promotion import rollback
from resources.home import ProjectHome
from resources.mlflow_registry import ModelRegistry

# The window ends yesterday (UTC), the newest daily partition, as in the live feed: Dagster
# tracks the training window's staleness through the last partition (LastPartitionMapping).
DAYS = 14
YESTERDAY = datetime.now(UTC).date() - timedelta(days=1)
START = YESTERDAY - timedelta(days=DAYS - 1)
ALL_ASSETS = [*DATA_LAYER_ASSETS, *MODEL_LAYER_ASSETS, *MODEL_LAYER_CHECKS]
MODEL_KEYS = [a.key for a in MODEL_LAYER_ASSETS]
WINDOW = {"training_dataset": {"config": {"window_days": DAYS, "evaluation_days": 4}}}


@dataclass
class World:
    home: ProjectHome
    instance: dg.DagsterInstance
    registry: ModelRegistry
    runs: dict[str, dg.ExecuteInProcessResult]


def ingest(home: ProjectHome, instance: dg.DagsterInstance, day: date) -> None:
    result = dg.materialize(
        DATA_LAYER_ASSETS,
        resources=local_resources(home),
        partition_key=day.isoformat(),
        instance=instance,
    )
    assert result.success


def train(world: World, name: str, **ops: dict) -> dg.ExecuteInProcessResult:
    run_config = {"ops": {**WINDOW, **{op: {"config": config} for op, config in ops.items()}}}
    result = dg.materialize(
        ALL_ASSETS,
        selection=dg.AssetSelection.assets(*MODEL_KEYS),
        resources=local_resources(world.home),
        instance=world.instance,
        run_config=run_config,
        raise_on_error=False,
    )
    world.runs[name] = result
    return result


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    home = ProjectHome(tmp_path_factory.mktemp("model_layer") / "home")
    generate_landing(home.landing, START, DAYS, 250, seed=5)
    with dg.instance_for_test() as instance:
        for offset in range(DAYS):
            ingest(home, instance, START + timedelta(days=offset))
        world = World(home, instance, local_resources(home)["model_registry"], {})
        train(world, "first")
        # Deliberately worse: a learning rate so small that the network stays near its random init.
        train(world, "worse", dispute_model={"learning_rate": 1e-7, "epochs": 1})
        # A policy that blesses anything: the champion moves and records the one it replaced.
        train(
            world,
            "forced",
            model_evaluation={"auc_floor": 0.0, "champion_tolerance": 1.0, "slice_tolerance": 1.0},
        )
        yield world


def evaluation_metadata(result: dg.ExecuteInProcessResult) -> dict:
    return result.asset_materializations_for_node("model_evaluation")[0].metadata


def test_first_training_registers_evaluates_blesses_and_promotes(world: World) -> None:
    result = world.runs["first"]
    assert result.success
    assert [c.passed for c in result.get_asset_check_evaluations()] == [True]
    model_meta = result.asset_materializations_for_node("dispute_model")[0].metadata
    assert model_meta["version"].value == "1"
    assert model_meta["mlflow_run"].value.startswith("http://127.0.0.1:5000/#/experiments/")
    report = evaluation_metadata(result)["report"].value
    assert "data:image/png;base64," in report and "| roc_auc |" in report
    dataset_meta = result.asset_materializations_for_node("training_dataset")[0].metadata
    assert set(dataset_meta["splits"].value) == {"train", "validation", "evaluation"}


def test_the_mlflow_run_is_finished_and_carries_lineage(world: World) -> None:
    client = MlflowClient(tracking_uri=world.registry.tracking_uri)
    version = world.registry.get_version("1")
    run = client.get_run(version.run_id)
    assert run.info.status == "FINISHED"
    tags = run.data.tags
    assert tags["dagster_run_id"] == world.runs["first"].run_id
    assert tags["training_window"] == f"{START}..{YESTERDAY}"
    expected_code = complaint_features.code_versions_by_key[complaint_features.key]
    assert tags["code_version.complaint_features"] == expected_code
    assert tags["training_dataset_data_version"] not in ("", "unknown")
    assert "learning_rate" in run.data.params and "eval_roc_auc" in run.data.metrics
    assert len(client.get_metric_history(version.run_id, "val_auc")) >= 1
    artifacts = {a.path for a in client.list_artifacts(version.run_id, "evaluation")}
    assert {
        "evaluation/roc.png",
        "evaluation/calibration.png",
        "evaluation/slices_auc.png",
    } <= artifacts
    assert float(version.tags[THRESHOLD_TAG]) > 0


def test_a_worse_challenger_fails_the_blessing_and_the_champion_stays(world: World) -> None:
    result = world.runs["worse"]
    assert not result.success
    (check,) = result.get_asset_check_evaluations()
    assert not check.passed
    assert "champion" in check.metadata["failed"].value
    assert not result.asset_materializations_for_node("champion_model")
    first_auc = evaluation_metadata(world.runs["first"])["roc_auc"].value
    assert evaluation_metadata(result)["champion_roc_auc"].value == pytest.approx(first_auc)
    assert (
        world.registry.get_version("2").aliases == ()
    )  # never champion; challenger moved on to v3


def test_a_blessed_challenger_becomes_champion_and_records_the_previous_one(world: World) -> None:
    assert world.runs["forced"].success
    champion = world.registry.version_for_alias(CHAMPION_ALIAS)
    assert champion is not None and champion.version == "3"
    assert champion.tags[PREVIOUS_CHAMPION_TAG] == "1"
    assert world.registry.version_for_alias(CHALLENGER_ALIAS).version == "3"


def test_right_after_training_the_model_layer_is_fresh(world: World) -> None:
    resolver = get_stale_status_resolver(world.instance, ALL_ASSETS)
    for key in MODEL_KEYS:
        assert resolver.get_status(key) == StaleStatus.FRESH, key


def test_rollback_moves_the_champion_back_and_stops_at_the_first(world: World) -> None:
    change = rollback(world.registry)
    assert (change.champion, change.previous) == ("1", "3")
    assert world.registry.version_for_alias(CHAMPION_ALIAS).version == "1"
    with pytest.raises(ValueError, match="nothing to roll back"):
        rollback(world.registry)


def test_new_data_for_the_newest_day_makes_the_training_window_stale(world: World) -> None:
    generate_landing(world.home.landing, YESTERDAY, 1, 300, seed=6)  # a corrected, longer file
    ingest(world.home, world.instance, YESTERDAY)
    resolver = get_stale_status_resolver(world.instance, ALL_ASSETS)
    assert resolver.get_status(dg.AssetKey("training_dataset")) == StaleStatus.STALE


def test_nothing_is_written_outside_the_project_home(world: World) -> None:
    assert not (Path.cwd() / "mlruns").exists() and not (Path.cwd() / "mlartifacts").exists()
    assert (world.home.mlflow / "mlflow.db").exists() and any(
        (world.home.mlflow / "artifacts").iterdir()
    )


def changed_feature_mapping() -> dg.AssetsDefinition:
    """complaint_features with a changed mapping (narratives lower-cased) and a bumped code version."""
    spec = complaint_features.specs_by_key[complaint_features.key]

    @dg.asset(
        name="complaint_features",
        partitions_def=complaint_features.partitions_def,
        metadata=dict(spec.metadata),
        group_name=spec.group_name,
        code_version="changed",
    )
    def changed(validated_complaints: pd.DataFrame) -> pd.DataFrame:
        features = to_features(validated_complaints)
        features["narrative"] = features["narrative"].str.lower()
        return features

    return changed


def test_a_changed_feature_mapping_reruns_down_the_chain_and_never_upstream(world: World) -> None:
    assets = [changed_feature_mapping() if a is complaint_features else a for a in ALL_ASSETS]
    upstream = [
        dg.AssetKey(n) for n in ("raw_complaints", "validated_complaints", "complaint_statistics")
    ]

    def status(key: dg.AssetKey, partition: str | None = None) -> StaleStatus:
        return get_stale_status_resolver(world.instance, assets).get_status(key, partition)

    day = YESTERDAY.isoformat()
    assert status(complaint_features.key, day) == StaleStatus.STALE  # its code changed
    assert all(status(key, day) == StaleStatus.FRESH for key in upstream)

    # Dagster 1.13 marks an asset stale for its own code version or a new upstream data version:
    # the change travels down as each stale asset reruns (what automation does, issue 5).
    for offset in range(DAYS):
        partition = (START + timedelta(days=offset)).isoformat()
        rerun = dg.materialize(
            assets,
            selection=[complaint_features.key],
            resources=local_resources(world.home),
            partition_key=partition,
            instance=world.instance,
        )
        assert rerun.success
    assert status(dg.AssetKey("training_dataset")) == StaleStatus.STALE
    dataset = dg.materialize(
        assets,
        selection=[dg.AssetKey("training_dataset")],
        resources=local_resources(world.home),
        instance=world.instance,
        run_config={"ops": WINDOW},
    )
    assert dataset.success
    assert status(dg.AssetKey("dispute_model")) == StaleStatus.STALE
    assert all(status(key, day) == StaleStatus.FRESH for key in upstream)


def test_the_registered_pyfunc_scores_a_dataframe_of_raw_fields(world: World) -> None:
    import mlflow

    mlflow.set_tracking_uri(world.registry.tracking_uri)
    model = mlflow.pyfunc.load_model(f"models:/{world.registry.model_name}/1")
    raw = pd.DataFrame(
        [
            {
                "product": "Mortgage",
                "zip_code": "94110",
                "consumer_complaint_narrative": "no one responded",
            },
            {"product": "Never seen", "timely_response": "No"},
        ]
    )
    probabilities = model.predict(raw)
    assert probabilities.shape == (2,) and ((probabilities > 0) & (probabilities < 1)).all()
