"""`training_dataset` and `dispute_model`: a window of labelled features, and the model trained on it."""

import hashlib

import dagster as dg
import pandas as pd
from pydantic import Field

from ml_assets.assets.evidence import evidence_after
from ml_assets.assets.features import FEATURES_CODE_VERSION, complaint_features
from ml_assets.assets.history import with_history
from ml_assets.assets.keys import (
    COMPANY_HISTORY,
    DUCKDB_POOL,
    FEATURES_TABLE,
    INPUT_DRIFT,
    LIVE_PERFORMANCE,
    MODEL_GROUP,
    TRAINING_DATASET,
    WAREHOUSE_SCHEMA,
)
from ml_assets.columns import INGESTION_DATE_COLUMN
from ml_assets.model.features import LABEL
from ml_assets.model.network import ModelParams, narrative_vocabulary
from ml_assets.model.search import (
    DEFAULT_TRIALS,
    SearchResult,
    TrialTracking,
    search_hyperparameters,
)
from ml_assets.model.tracking import (
    CHALLENGER_ALIAS,
    DAGSTER_RUN_TAG,
    THRESHOLD_TAG,
    RegisteredModel,
    epoch_logger,
    log_reference_profile,
    log_training,
    register_model,
    version_tags,
)
from ml_assets.model.training import (
    EVALUATION,
    SPLIT_COLUMN,
    TrainingWindow,
    split_dataset,
    split_summary,
    train_dispute_model,
    training_window,
)
from ml_assets.monitoring.drift import reference_profile
from resources.compat.dagster import DATA_VERSION_TAG
from resources.compat.ray import free_cpus_per_node
from resources.mlflow_registry import ModelRegistry
from resources.ray_cluster import RayCluster
from resources.warehouse import Warehouse

RETRAIN_EVIDENCE_TAG = "ml_assets/retrain_evidence"
SEARCH_RUN_NAME = "search"  # the nested MLflow run that holds the trials' runs
SEARCH_RUN_TAG = "search_run_id"  # on the final model's run: the search that chose its params
MAX_TAG_CHARS = 240
DATASET_CODE_VERSION = "2"  # 2: with the company history features
MODEL_CODE_VERSION = "2"  # 2: takes the company history features


class TrainingWindowConfig(dg.Config, TrainingWindow):
    """Which labelled days the model learns from (the fields and defaults of `TrainingWindow`)."""


class ModelConfig(dg.Config, ModelParams):
    """Hyperparameters of the dispute model (the fields and defaults of `ModelParams`), and
    whether a Ray Tune search on the Ray cluster chooses some of them first."""

    search: bool = Field(
        default=False,
        description="search learning rate, embedding sizes, hidden units and dropout with Ray "
        "Tune (ASHA) on the Ray cluster first, then train with the best configuration",
    )
    search_trials: int = Field(default=DEFAULT_TRIALS, ge=1, description="trials of the search")

    def params(self) -> ModelParams:
        """The hyperparameters alone (the search's switches are not the model's)."""
        return ModelParams.model_validate(self.model_dump(include=set(ModelParams.model_fields)))


def _newest_days(warehouse: Warehouse) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The newest day with features, and the newest day with labelled features."""
    with warehouse.connect() as conn:
        newest, labelled = conn.execute(
            f"select max({INGESTION_DATE_COLUMN}), "
            f"max({INGESTION_DATE_COLUMN}) filter (where {LABEL} is not null) from {FEATURES_TABLE}"
        ).fetchone() or (None, None)
    if newest is None:
        raise dg.Failure(
            "complaint_features is empty: materialize the data layer and features first."
        )
    if labelled is None:
        raise dg.Failure(
            f"complaint_features has no labelled rows (newest day {pd.Timestamp(newest).date()}): "
            "land days whose 'Consumer disputed?' is filled (the CFPB stopped collecting it in "
            "April 2017), or set end_date."
        )
    return pd.Timestamp(newest), pd.Timestamp(labelled)


@dg.asset(
    deps=[
        dg.AssetDep(complaint_features, partition_mapping=dg.LastPartitionMapping()),
        dg.AssetDep(COMPANY_HISTORY, partition_mapping=dg.LastPartitionMapping()),
    ],
    metadata={"schema": WAREHOUSE_SCHEMA},
    group_name=MODEL_GROUP,
    code_version=DATASET_CODE_VERSION,
    pool=DUCKDB_POOL,
    kinds={"pandas", "duckdb"},
)
def training_dataset(
    context: dg.AssetExecutionContext, config: TrainingWindowConfig, warehouse: Warehouse
) -> dg.Output[pd.DataFrame]:
    """Labelled features of the training window, split into train, validation and evaluation.

    By default the window ends on the newest day with labels, not the newest day: in the real
    database labels stop in April 2017 while complaints keep coming.
    """
    newest, newest_labelled = _newest_days(warehouse)
    end = pd.Timestamp(config.end_date) if config.end_date else newest_labelled
    window = training_window(end, config.window_days)
    with warehouse.connect() as conn:
        # Only the window's labelled rows leave DuckDB, whatever the table's size.
        features = conn.execute(
            f"select * from {FEATURES_TABLE} where {INGESTION_DATE_COLUMN} between ? and ? "
            f"and {LABEL} is not null",
            [window.start.to_pydatetime(), window.end.to_pydatetime()],
        ).fetchdf()
    # Each row's company history as of the day before it was ingested (the feature store's).
    features = with_history(warehouse, features)
    dataset = split_dataset(features, window, config.split, config.evaluation_days)
    digest = hashlib.sha256(
        pd.util.hash_pandas_object(dataset, index=False).to_numpy().tobytes()
    ).hexdigest()
    summary = split_summary(dataset)
    evidence = [
        str(e)
        for key in (INPUT_DRIFT, LIVE_PERFORMANCE)
        for e in evidence_after(context.instance, context.asset_key, key)
    ]
    if evidence:
        # The run's tags say which evidence it answers (the automation evaluation names the
        # condition; this names the days and figures).
        context.instance.add_run_tags(
            context.run_id, {RETRAIN_EVIDENCE_TAG: _clipped("; ".join(evidence))}
        )
    return dg.Output(
        dataset,
        # The content decides the version: the same window and rows leave the model fresh.
        data_version=dg.DataVersion(digest[:24]),
        metadata={
            "window": str(window),
            "window_end": "end_date (config)" if config.end_date else "newest day with labels",
            "newest_feature_day": str(newest.date()),
            "newest_labelled_day": str(newest_labelled.date()),
            "split": config.split,
            "rows": len(dataset),
            "splits": summary,
            "retrain_evidence": dg.MetadataValue.md(
                "\n".join(f"- {e}" for e in evidence) or "none since the last dataset"
            ),
        },
    )


def _clipped(text: str) -> str:
    """A tag value short enough for the UI's run list (the full text is in the metadata)."""
    return text if len(text) <= MAX_TAG_CHARS else text[: MAX_TAG_CHARS - 1] + "…"


@dg.asset(
    # dagster-mlflow's resource is function-style, so the registry comes through the context too.
    required_resource_keys={"mlflow", "model_registry", "ray_cluster"},
    io_manager_key="model_io_manager",
    group_name=MODEL_GROUP,
    code_version=MODEL_CODE_VERSION,
    kinds={"keras", "mlflow"},
)
def dispute_model(
    context: dg.AssetExecutionContext, config: ModelConfig, training_dataset: pd.DataFrame
) -> dg.Output[RegisteredModel]:
    """The wide & deep Keras model trained on the window, logged and registered in MLflow as challenger."""
    import mlflow

    model_registry: ModelRegistry = context.resources.model_registry
    days = pd.to_datetime(training_dataset[INGESTION_DATE_COLUMN])
    window = f"{days.min().date()}..{days.max().date()}"
    dataset_event = context.instance.get_latest_materialization_event(TRAINING_DATASET)
    materialization = dataset_event.asset_materialization if dataset_event else None
    dataset_version = (
        (materialization.tags or {}).get(DATA_VERSION_TAG) if materialization else None
    )
    tags = version_tags(
        window,
        dataset_version,
        {
            complaint_features.key.to_user_string(): FEATURES_CODE_VERSION,
            TRAINING_DATASET.to_user_string(): DATASET_CODE_VERSION,
            context.asset_key.to_user_string(): MODEL_CODE_VERSION,
        },
        context.asset_key.to_user_string(),
    )
    params = config.params()
    search: SearchResult | None = None
    try:
        if config.search:
            search = _search(context.resources.ray_cluster, training_dataset, params, config)
            params = search.best_params
        trained = train_dispute_model(training_dataset, params, callbacks=[epoch_logger()])
        log_training(trained, params, tags)
        # Drift is measured from the newest days of the window, the ones the model is blessed
        # on: after a retrain on a changed world they are the new world, while the whole
        # window would still mix in the old one for weeks and call for retraining every day.
        newest = training_dataset[training_dataset[SPLIT_COLUMN] == EVALUATION]
        log_reference_profile(reference_profile(newest, narrative_vocabulary(trained.model)))
        registered = register_model(trained, window)
    except BaseException:
        mlflow.end_run(status="FAILED")
        raise
    mlflow.end_run()
    for key, value in {
        **tags,
        THRESHOLD_TAG: str(trained.threshold),
        DAGSTER_RUN_TAG: context.run_id,
    }.items():
        model_registry.set_version_tag(registered.version, key, value)
    model_registry.set_alias(CHALLENGER_ALIAS, registered.version)
    return dg.Output(
        registered,
        metadata={
            "version": registered.version,
            "mlflow_run": dg.MetadataValue.url(model_registry.run_url(registered.run_id)),
            "threshold": trained.threshold,
            "best_val_auc": max(trained.history.get("val_auc", [float("nan")])),
            "epochs": len(trained.history.get("loss", [])),
            **(_search_metadata(search) if search else {}),
        },
    )


def _search(
    ray_cluster: RayCluster, dataset: pd.DataFrame, params: ModelParams, config: ModelConfig
) -> SearchResult:
    """The search on the Ray cluster, its trials nested under a "search" run inside the active
    (the final model's) MLflow run."""
    import mlflow

    # Fails naming how to start a cluster when none is reachable: no silent local Ray.
    ray_cluster.connect()
    run = mlflow.start_run(run_name=SEARCH_RUN_NAME, nested=True)
    try:
        # The run's experiment by id: the trials land beside it whatever the environment says.
        tracking = TrialTracking(mlflow.get_tracking_uri(), run.info.experiment_id, run.info.run_id)
        found = search_hyperparameters(
            dataset, params, tracking, free_cpus_per_node(), trials=config.search_trials
        )
        mlflow.log_params(found.best_config)
        mlflow.log_metrics(
            {
                "best_val_auc": found.best_val_auc,
                "default_val_auc": found.default_val_auc,
                "trials": len(found.trials),
                "seconds": found.seconds,
            }
        )
        mlflow.log_table(found.trials, "search/trials.json")
    except BaseException:
        # Only the search's run: the caller ends the final model's run as failed.
        mlflow.end_run(status="FAILED")
        raise
    mlflow.end_run()
    mlflow.set_tag(SEARCH_RUN_TAG, run.info.run_id)
    return found


def _search_metadata(search: SearchResult) -> dict[str, dg.MetadataValue]:
    """What the search found, for the asset's metadata."""
    return {
        "search_best_config": dg.MetadataValue.json(search.best_config),
        "search_best_val_auc": dg.MetadataValue.float(search.best_val_auc),
        "search_default_val_auc": dg.MetadataValue.float(search.default_val_auc),
        "search_chose_default": dg.MetadataValue.bool(search.best_is_default),
        "search_trials": dg.MetadataValue.int(len(search.trials)),
        "search_seconds": dg.MetadataValue.float(round(search.seconds, 1)),
        "search_table": dg.MetadataValue.md(search.trials.to_markdown(index=False)),
    }
