"""The model layer in process: real DuckDB and a real MLflow sqlite store under tmp_path.

One world for the module (the tests' fixed dates, `ml_assets_tests.world`): 14 days of complaints
whose wording the model can learn, then three trainings, each set up for one outcome:
- "first": no champion yet; blessed because it clears the AUC floor by a wide margin;
- "worse": a network left at its random initialisation; refused because it is worse than
  the champion;
- "retrained": the first model's recipe on the same data; blessed on its merits (as good as the
  champion) and promoted.
Tests that change the world (rollback, new data, a changed feature mapping) work on a copy.
"""

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
from mlflow import MlflowClient
from sklearn.metrics import roc_auc_score

from ml_assets.assets.day_ranges import range_tags
from ml_assets.assets.features import complaint_features
from ml_assets.assets.keys import WAREHOUSE_SCHEMA
from ml_assets.columns import INGESTION_DATE_COLUMN
from ml_assets.definitions import local_resources
from ml_assets.demo import SAMPLE_COMPLAINT
from ml_assets.jobs import DATA_LAYER_ASSETS, MODEL_LAYER_ASSETS, MODEL_LAYER_CHECKS
from ml_assets.model.blessing import BlessingPolicy
from ml_assets.model.features import LABEL, to_features
from ml_assets.model.history import history_snapshots, join_history
from ml_assets.model.network import predict_proba
from ml_assets.model.promotion import rollback
from ml_assets.model.tracking import (
    CHALLENGER_ALIAS,
    CHAMPION_ALIAS,
    PREVIOUS_CHAMPION_TAG,
    REFERENCE_PROFILE_ARTIFACT,
    THRESHOLD_TAG,
    load_keras_model,
)
from ml_assets.model.training import EVALUATION, SPLIT_COLUMN
from ml_assets.monitoring.drift import InputProfile
from ml_assets.synthetic.export import generate_landing
from ml_assets.synthetic.narratives import DISPUTE_PHRASES, RESOLVED_PHRASES
from ml_assets_tests.world import FIRST_MODEL_MARGIN, LEARNABLE, YESTERDAY, days_up_to_yesterday
from resources.compat.dagster_testing import StaleStatus, get_stale_status_resolver
from resources.home import ProjectHome
from resources.mlflow_registry import ModelRegistry
from resources.warehouse import Warehouse

AUC_FLOOR = BlessingPolicy().auc_floor
CHAMPION_AUC_TOLERANCE = BlessingPolicy().champion_tolerance

pytestmark = pytest.mark.timeout(900)
DAYS = days_up_to_yesterday(14)
ROWS_PER_DAY = 250
SEED = 5
ALL_ASSETS = [*DATA_LAYER_ASSETS, *MODEL_LAYER_ASSETS, *MODEL_LAYER_CHECKS]
MODEL_KEYS = [a.key for a in MODEL_LAYER_ASSETS]
WINDOW = {"training_dataset": {"config": {"window_days": len(DAYS), "evaluation_days": 4}}}
# So small a learning rate for one epoch that the network stays at its random initialisation.
UNTRAINED = {"learning_rate": 1e-7, "epochs": 1}
# How much worse than the champion the untrained network is, at least (AUC).
UNTRAINED_GAP = 0.10


@dataclass
class World:
    home: ProjectHome
    instance_dir: Path
    instance: dg.DagsterInstance
    registry: ModelRegistry
    runs: dict[str, dg.ExecuteInProcessResult]


def open_instance(folder: Path) -> dg.DagsterInstance:
    """A persistent Dagster instance in `folder` (copied with the home by `scratch`)."""
    folder.mkdir(parents=True, exist_ok=True)
    return dg.DagsterInstance.local_temp(str(folder))


def ingest(home: ProjectHome, instance: dg.DagsterInstance, days: list[str]) -> None:
    """The data layer over `days` in one run, as the landing sensor runs consecutive days."""
    result = dg.materialize(
        DATA_LAYER_ASSETS, resources=local_resources(home), tags=range_tags(days), instance=instance
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


def build_world(root: Path, instance: dg.DagsterInstance) -> World:
    """The fixture's landed, ingested days and its first model, under `root`."""
    home = ProjectHome(root / "home")
    generate_landing(home.landing, DAYS[0], len(DAYS), ROWS_PER_DAY, SEED, signal=LEARNABLE)
    ingest(home, instance, [day.isoformat() for day in DAYS])
    world = World(home, root / "instance", instance, local_resources(home)["model_registry"], {})
    train(world, "first")
    return world


@pytest.fixture(scope="module", autouse=True)
def op_determinism() -> Iterator[None]:
    """TensorFlow's deterministic kernels for this module's trainings; the prior state after it.

    A test compares two trainings of one recipe on the same data bit for bit. Seeds alone gave
    bit-equal trainings on this machine's CPU kernels (measured, 3 of 3), but only op determinism
    makes that TensorFlow's promise on any hardware. It cost nothing measurable here (a 6-epoch
    training: 7.6-15.6 s without, 10.9-13.2 s with, under load; the same figures). The flag is
    process-wide and pytest-xdist runs other modules in this process after this one: restored.
    """
    import tensorflow as tf

    # TensorFlow exports enable_op_determinism but neither its inverse nor the getter.
    from tensorflow.python.framework import config as tf_config

    was_enabled = tf_config.is_op_determinism_enabled()
    tf.config.experimental.enable_op_determinism()
    yield
    if not was_enabled:
        tf_config.disable_op_determinism()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("model_layer")
    with open_instance(root / "instance") as instance:
        world = build_world(root, instance)
        train(world, "worse", dispute_model=UNTRAINED)
        train(world, "retrained")
        yield world


@pytest.fixture
def scratch(world: World, tmp_path: Path) -> Iterator[World]:
    """A copy of the module's world (project home and Dagster instance) for a test to change."""
    shutil.copytree(world.home.root, tmp_path / "home")
    shutil.copytree(world.instance_dir, tmp_path / "instance")
    home = ProjectHome(tmp_path / "home")
    with open_instance(tmp_path / "instance") as instance:
        registry = local_resources(home)["model_registry"]
        yield World(home, tmp_path / "instance", instance, registry, dict(world.runs))


def metadata(result: dg.ExecuteInProcessResult, node: str) -> dict:
    return {k: v.value for k, v in result.asset_materializations_for_node(node)[0].metadata.items()}


def blessing_of(result: dg.ExecuteInProcessResult) -> dg.AssetCheckEvaluation:
    (check,) = result.get_asset_check_evaluations()
    return check


def test_first_training_is_blessed_because_it_clears_the_floor_by_a_margin(world: World) -> None:
    result = world.runs["first"]
    auc = metadata(result, "model_evaluation")["roc_auc"]
    assert auc >= AUC_FLOOR + FIRST_MODEL_MARGIN, (
        f"the first model's evaluation AUC {auc:.3f} is only {auc - AUC_FLOOR:+.3f} from the "
        f"blessing floor {AUC_FLOOR}; the fixture needs a margin of {FIRST_MODEL_MARGIN}: give "
        "its synthetic world more signal or rows"
    )
    assert result.success
    check = blessing_of(result)
    assert check.passed and check.metadata["failed"].value == "none"
    assert metadata(result, "dispute_model")["version"] == "1"
    assert (
        metadata(result, "champion_model").items() >= {"champion": "1", "previous": "none"}.items()
    )
    report = metadata(result, "model_evaluation")["report"]
    assert f"| roc_auc | {auc:.4f} |" in report and "data:image/png;base64," in report
    dataset = metadata(result, "training_dataset")
    assert set(dataset["splits"]) == {"train", "validation", "evaluation"}
    assert dataset["window"] == f"{DAYS[0]}..{YESTERDAY}"


def test_the_reported_auc_is_the_registered_models_auc_on_the_evaluation_split(
    world: World,
) -> None:
    with Warehouse(database=str(world.home.warehouse)).connect() as conn:
        dataset = conn.execute(f"select * from {WAREHOUSE_SCHEMA}.training_dataset").fetchdf()
    evaluation = dataset[dataset[SPLIT_COLUMN] == EVALUATION]
    model = load_keras_model("1", world.registry.tracking_uri, world.registry.model_name)
    probabilities = predict_proba(model, evaluation)
    expected = roc_auc_score(evaluation[LABEL].astype(int), probabilities)
    # The dataset table holds the latest window: every training of the fixture used the same one.
    assert metadata(world.runs["first"], "model_evaluation")["roc_auc"] == pytest.approx(expected)


def test_the_mlflow_run_is_finished_and_carries_lineage(world: World) -> None:
    client = MlflowClient(tracking_uri=world.registry.tracking_uri)
    version = world.registry.get_version("1")
    run = client.get_run(version.run_id)
    assert run.info.status == "FINISHED"
    tags = run.data.tags
    assert tags["dagster_run_id"] == world.runs["first"].run_id
    assert tags["training_window"] == f"{DAYS[0]}..{YESTERDAY}"
    expected_code = complaint_features.code_versions_by_key[complaint_features.key]
    assert tags["code_version.complaint_features"] == expected_code
    assert tags["training_dataset_data_version"] not in ("", "unknown")
    assert run.data.params["learning_rate"] == "0.003"
    assert run.data.metrics["eval_roc_auc"] == pytest.approx(
        metadata(world.runs["first"], "model_evaluation")["roc_auc"]
    )
    val_auc = [m.value for m in client.get_metric_history(version.run_id, "val_auc")]
    assert max(val_auc) == pytest.approx(
        metadata(world.runs["first"], "dispute_model")["best_val_auc"]
    )
    artifacts = {a.path for a in client.list_artifacts(version.run_id, "evaluation")}
    assert {
        "evaluation/roc.png",
        "evaluation/calibration.png",
        "evaluation/slices_auc.png",
    } <= artifacts
    assert float(version.tags[THRESHOLD_TAG]) == pytest.approx(
        metadata(world.runs["first"], "dispute_model")["threshold"]
    )
    # The reference input drift and skew compare with: the profile of the newest days (the
    # evaluation split) and the narrative vocabulary the network learned.
    reference = InputProfile.model_validate(
        world.registry.run_json(version.run_id, REFERENCE_PROFILE_ARTIFACT)
    )
    splits = metadata(world.runs["first"], "training_dataset")["splits"]
    assert reference.rows == splits[EVALUATION]["rows"]
    assert reference.label_rate == pytest.approx(
        splits[EVALUATION]["positives"] / splits[EVALUATION]["rows"]
    )
    assert len(reference.vocabulary) > 100 and "" not in reference.vocabulary
    assert sum(reference.categories["product"].values()) == pytest.approx(1.0)


def test_a_worse_challenger_fails_the_blessing_because_it_is_worse(world: World) -> None:
    result = world.runs["worse"]
    auc = metadata(result, "model_evaluation")["roc_auc"]
    champion_auc = metadata(result, "model_evaluation")["champion_roc_auc"]
    assert champion_auc == pytest.approx(
        metadata(world.runs["first"], "model_evaluation")["roc_auc"]
    )
    assert champion_auc - auc >= UNTRAINED_GAP, (
        f"the untrained challenger (AUC {auc:.3f}) is only {champion_auc - auc:.3f} worse than "
        f"the champion ({champion_auc:.3f}); the scenario needs a gap of {UNTRAINED_GAP}"
    )
    # A refusal is the gate's outcome: the run stays green, the check says why.
    assert result.success
    check = blessing_of(result)
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
    regression = (
        f"challenger AUC {auc:.3f} < champion {champion_auc:.3f} - {CHAMPION_AUC_TOLERANCE:.3f} "
    )
    failed = check.metadata["failed"].value.split("; ")
    assert any(f.startswith(regression) and f.endswith(": worse beyond noise") for f in failed)
    assert "Holm's correction" in check.metadata["rule"].value
    outcome = metadata(result, "champion_model")
    assert outcome["champion"] == "1"
    assert outcome["outcome"] == f"kept v1; challenger v2 refused: {check.metadata['failed'].value}"
    assert world.registry.get_version("2").aliases == ()  # never champion; the challenger moved on
    # The champion stayed: the next evaluation compared against the first model.
    assert metadata(world.runs["retrained"], "model_evaluation")["champion_roc_auc"] == (
        pytest.approx(champion_auc)
    )


def test_a_challenger_as_good_as_the_champion_is_blessed_on_its_merits(world: World) -> None:
    result = world.runs["retrained"]
    evaluation = metadata(result, "model_evaluation")
    assert evaluation["roc_auc"] >= evaluation["champion_roc_auc"] - CHAMPION_AUC_TOLERANCE
    check = blessing_of(result)
    assert check.passed, check.metadata["failed"].value
    conditions = check.metadata["conditions"].value
    assert "❌" not in conditions and "champion" in conditions and "slice" in conditions
    assert result.success
    assert metadata(result, "champion_model").items() >= {"champion": "3", "previous": "1"}.items()
    champion = world.registry.version_for_alias(CHAMPION_ALIAS)
    assert champion.version == "3" and champion.tags[PREVIOUS_CHAMPION_TAG] == "1"
    assert world.registry.version_for_alias(CHALLENGER_ALIAS).version == "3"


def test_right_after_training_the_model_layer_is_fresh(world: World) -> None:
    resolver = get_stale_status_resolver(world.instance, ALL_ASSETS)
    assert {key: resolver.get_status(key) for key in MODEL_KEYS} == dict.fromkeys(
        MODEL_KEYS, StaleStatus.FRESH
    )


def test_rollback_moves_the_champion_back_and_stops_at_the_first(scratch: World) -> None:
    change = rollback(scratch.registry)
    assert (change.champion, change.previous) == ("1", "3")
    assert scratch.registry.version_for_alias(CHAMPION_ALIAS).version == "1"
    with pytest.raises(ValueError, match="nothing to roll back"):
        rollback(scratch.registry)


def test_new_data_for_the_newest_day_makes_the_training_window_stale(scratch: World) -> None:
    resolver = get_stale_status_resolver(scratch.instance, ALL_ASSETS)
    assert resolver.get_status(dg.AssetKey("training_dataset")) == StaleStatus.FRESH
    # A corrected, longer file for the newest day.
    generate_landing(scratch.home.landing, YESTERDAY, 1, 300, seed=6, signal=LEARNABLE)
    ingest(scratch.home, scratch.instance, [YESTERDAY.isoformat()])
    resolver = get_stale_status_resolver(scratch.instance, ALL_ASSETS)
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


def test_a_changed_feature_mapping_reruns_down_the_chain_and_never_upstream(
    scratch: World,
) -> None:
    assets = [changed_feature_mapping() if a is complaint_features else a for a in ALL_ASSETS]
    upstream = [
        dg.AssetKey(n) for n in ("raw_complaints", "validated_complaints", "complaint_statistics")
    ]

    def status(key: dg.AssetKey, partition: str | None = None) -> StaleStatus:
        return get_stale_status_resolver(scratch.instance, assets).get_status(key, partition)

    day = YESTERDAY.isoformat()
    assert status(complaint_features.key, day) == StaleStatus.STALE  # its code changed
    assert all(status(key, day) == StaleStatus.FRESH for key in upstream)
    assert status(dg.AssetKey("training_dataset")) == StaleStatus.FRESH  # not yet: one hop a run

    # Dagster 1.13 marks an asset stale for its own code version or a new upstream data version:
    # the change travels down as each stale asset reruns (what automation does).
    rerun = dg.materialize(
        assets,
        selection=[complaint_features.key],
        resources=local_resources(scratch.home),
        tags=range_tags([day.isoformat() for day in DAYS]),
        instance=scratch.instance,
    )
    assert rerun.success
    assert status(dg.AssetKey("training_dataset")) == StaleStatus.STALE
    dataset = dg.materialize(
        assets,
        selection=[dg.AssetKey("training_dataset")],
        resources=local_resources(scratch.home),
        instance=scratch.instance,
        run_config={"ops": WINDOW},
    )
    assert dataset.success
    assert status(dg.AssetKey("dispute_model")) == StaleStatus.STALE
    assert all(status(key, day) == StaleStatus.FRESH for key in upstream)


def complaint(narrative: str) -> dict[str, str]:
    """The demo's ordinary mortgage complaint with the given narrative."""
    return {**SAMPLE_COMPLAINT, "consumer_complaint_narrative": narrative}


def test_the_registered_model_reads_dispute_wording_from_raw_fields(world: World) -> None:
    import mlflow

    mlflow.set_tracking_uri(world.registry.tracking_uri)
    model = mlflow.pyfunc.load_model(f"models:/{world.registry.model_name}/1")
    story = "My home loan was transferred to XXXX on XX/XX/XXXX and problems started right away."
    raw = pd.DataFrame(
        [
            complaint(" ".join([story, *DISPUTE_PHRASES[:3]])),
            complaint(story),
            complaint(" ".join([story, *RESOLVED_PHRASES[:3]])),
        ]
    )
    # The same company history for the three (the store's, as of yesterday): only words differ.
    disputed, plain, resolved = model.predict(with_yesterdays_history(world, raw))
    assert disputed > plain > resolved, (disputed, plain, resolved)
    with pytest.raises(KeyError, match="join them first"):
        model.predict(raw)


def with_yesterdays_history(world: World, raw: pd.DataFrame) -> pd.DataFrame:
    """Raw complaints filed today, with the company history the online store would give them."""
    with Warehouse(database=str(world.home.warehouse)).connect() as conn:
        contributions = conn.execute(f"select * from {WAREHOUSE_SCHEMA}.company_history").fetchdf()
    snapshot = history_snapshots(contributions, [YESTERDAY])
    today = raw.assign(**{INGESTION_DATE_COLUMN: pd.Timestamp(YESTERDAY) + pd.Timedelta(days=1)})
    return pd.concat([raw, join_history(today, snapshot)], axis=1)


def first_model_figures(world: World) -> dict[str, object]:
    """What the first training produced: its data, its training and its evaluation."""
    result = world.runs["first"]
    dataset = metadata(result, "training_dataset")
    model = metadata(result, "dispute_model")
    evaluation = metadata(result, "model_evaluation")
    return {
        "window": dataset["window"],
        "splits": dataset["splits"],
        "threshold": model["threshold"],
        "epochs": model["epochs"],
        "best_val_auc": model["best_val_auc"],
        "roc_auc": evaluation["roc_auc"],
    }


@pytest.mark.timeout(1200)
def test_the_world_and_its_first_model_are_the_same_on_another_date(
    world: World, tmp_path: Path
) -> None:
    import time_machine

    # The clock crosses midnight and a new year while the world is built (it takes > 5 s).
    other_day = datetime(2031, 12, 31, 23, 59, 55, tzinfo=UTC)
    with (
        time_machine.travel(other_day, tick=True),
        open_instance(tmp_path / "instance") as instance,
    ):
        other = build_world(tmp_path, instance)
    # Exactly equal, floats included: op determinism is on for this module (`op_determinism`).
    assert first_model_figures(other) == first_model_figures(world)


def _serve_evaluation_rows(world: World, versions: list[str]) -> int:
    """Log each version's real answers to the evaluation rows as served predictions (as shadow
    and champion logs would); the number of rows."""
    with Warehouse(database=str(world.home.warehouse)).connect() as conn:
        dataset = conn.execute(f"select * from {WAREHOUSE_SCHEMA}.training_dataset").fetchdf()
    rows = dataset[dataset[SPLIT_COLUMN] == EVALUATION]
    frames = []
    for version in versions:
        model = load_keras_model(version, world.registry.tracking_uri, world.registry.model_name)
        frames.append(
            pd.DataFrame(
                {
                    "complaint_id": rows["complaint_id"].astype(str).to_numpy(),
                    "model_version": version,
                    "request_time": pd.Timestamp(YESTERDAY, tz="UTC"),
                    "dispute_probability": predict_proba(model, rows),
                }
            )
        )
    served = pd.concat(frames, ignore_index=True)  # noqa: F841 (read by DuckDB below)
    with Warehouse(database=str(world.home.warehouse)).connect(read_only=False) as conn:
        conn.execute(
            f"create or replace table {WAREHOUSE_SCHEMA}.served_predictions as select * from served"
        )
    return len(rows)


def _live_promotion(world: World, **config: object) -> dict:
    from ml_assets.assets.promotion import live_promotion

    result = dg.materialize(
        [live_promotion],
        resources=local_resources(world.home),
        instance=world.instance,
        run_config={"ops": {"live_promotion": {"config": config}}},
    )
    assert result.success
    return metadata(result, "live_promotion")


def test_live_evidence_promotes_an_equal_challenger_and_retires_a_worse_one(
    scratch: World,
) -> None:
    from ml_assets.model.tracking import BLESSED_TAG, RETIRED_TAG

    registry = scratch.registry
    assert registry.version_for_alias(CHAMPION_ALIAS).version == "3"
    rows = _serve_evaluation_rows(scratch, ["1", "2", "3"])
    # The untrained version 2 beside champion 3: blessed or not, live evidence retires it.
    registry.set_alias(CHALLENGER_ALIAS, "2")
    registry.set_version_tag("2", BLESSED_TAG, "true")
    waiting = _live_promotion(scratch, min_labelled=rows + 1)
    assert waiting["decision"] == "wait" and waiting["paired_labelled_requests"] == rows
    retired = _live_promotion(scratch, min_labelled=50)
    assert retired["decision"] == "retire", retired["conditions"]
    assert retired["outcome"].startswith("kept v3; challenger v2 retired: live AUC")
    assert registry.get_version("2").tags[RETIRED_TAG].startswith("live AUC")
    assert registry.version_for_alias(CHAMPION_ALIAS).version == "3"
    # Version 1 is the same recipe on the same days: as good as the champion, it is promoted.
    registry.set_alias(CHALLENGER_ALIAS, "1")
    promoted = _live_promotion(scratch, min_labelled=50, auc_margin=0.05)
    assert promoted["decision"] == "promote", promoted["conditions"]
    assert promoted["outcome"] == "challenger v1 is the champion, replacing v3"
    assert "❌" not in promoted["conditions"]
    champion = registry.version_for_alias(CHAMPION_ALIAS)
    assert champion.version == "1" and champion.tags[PREVIOUS_CHAMPION_TAG] == "3"
