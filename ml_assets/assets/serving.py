"""`deployed_model`: the champion served by Ray Serve, checked over HTTP before it counts as deployed."""

import dagster as dg
import pandas as pd
from pydantic import Field

from ml_assets.assets.evaluation import champion_model
from ml_assets.assets.keys import MODEL_GROUP
from ml_assets.model.features import FEATURE_COLUMNS
from ml_assets.model.tracking import (
    CHAMPION_ALIAS,
    DEFAULT_DECISION_THRESHOLD,
    THRESHOLD_TAG,
    provenance,
)
from ml_assets.model.training import EVALUATION, SPLIT_COLUMN
from ml_assets.serving.auth import token_digest
from ml_assets.serving.schemas import MAX_COMPLAINTS, ServingConfig
from resources.mlflow_registry import ModelRegistry
from resources.ray_cluster import RayCluster

SERVING_CODE_VERSION = "2"


class DeploymentConfig(dg.Config):
    """How the champion is served and checked."""

    smoke_rows: int = Field(
        default=20, ge=1, description="evaluation complaints sent as smoke requests"
    )
    max_complaints: int = Field(
        default=MAX_COMPLAINTS, ge=1, le=MAX_COMPLAINTS, description="per /predict request"
    )


def serving_config(
    registry: ModelRegistry,
    version: str,
    predictions_dir: str,
    max_complaints: int,
    api_token: str = "",
) -> ServingConfig:
    """The Serve `user_config` of a registered version, with its provenance."""
    found = registry.get_version(version)
    return ServingConfig(
        tracking_uri=registry.tracking_uri,
        model_name=found.name,
        model_version=found.version,
        decision_threshold=float(found.tags.get(THRESHOLD_TAG, DEFAULT_DECISION_THRESHOLD)),
        predictions_dir=predictions_dir,
        max_complaints=max_complaints,
        api_token_sha256=token_digest(api_token.strip()) if api_token.strip() else None,
        provenance=provenance(
            CHAMPION_ALIAS, found.run_id, found.tags, registry.run_metrics(found.run_id)
        ),
    )


@dg.asset(
    group_name=MODEL_GROUP,
    code_version=SERVING_CODE_VERSION,
    io_manager_key="model_io_manager",
    deps=[champion_model],
    kinds={"ray"},
)
def deployed_model(
    config: DeploymentConfig,
    training_dataset: pd.DataFrame,
    ray_cluster: RayCluster,
    model_registry: ModelRegistry,
) -> dg.Output[ServingConfig]:
    """Deploys (or moves in place) the Ray Serve app to the champion and checks it over HTTP."""
    from ml_assets.model.network import predict_proba
    from ml_assets.model.tracking import load_keras_model
    from ml_assets.serving.deploy import SmokeTestFailed, deploy_checked, features_to_record

    # The registry's alias, not champion_model's stored value: `ml-assets rollback` moves only
    # the alias, and a redeploy (the serving sensor's, after a Ray restart) must follow it.
    champion = model_registry.version_for_alias(CHAMPION_ALIAS)
    if champion is None:
        raise dg.Failure(
            f"model {model_registry.model_name!r} has no '{CHAMPION_ALIAS}' alias: train and "
            "bless a model first (`ml-assets train`, or materialize champion_model)"
        )

    def config_for(version: str) -> ServingConfig:
        return serving_config(
            model_registry,
            version,
            ray_cluster.predictions_dir,
            config.max_complaints,
            ray_cluster.api_token,
        )

    wanted = config_for(champion.version)
    ray_cluster.connect()
    sample = training_dataset[training_dataset[SPLIT_COLUMN] == EVALUATION].head(config.smoke_rows)
    model = load_keras_model(
        wanted.model_version, model_registry.tracking_uri, model_registry.model_name
    )
    expected = predict_proba(model, sample[list(FEATURE_COLUMNS)])
    records = [features_to_record(r) for r in sample[list(FEATURE_COLUMNS)].to_dict("records")]
    try:
        previous, smoke = deploy_checked(
            wanted,
            config_for,
            ray_cluster.endpoint,
            ray_cluster.http_host,
            ray_cluster.http_port,
            records,
            expected,
            ray_cluster.api_token or None,
        )
    except SmokeTestFailed as exc:
        raise dg.Failure(str(exc)) from exc
    return dg.Output(
        wanted,
        metadata={
            "endpoint": dg.MetadataValue.url(f"{ray_cluster.endpoint}/docs"),
            "version": wanted.model_version,
            "previous_version": previous or "none",
            "smoke_requests": smoke.requests,
            "smoke_latency_ms_p50": smoke.latency_ms_p50,
            "smoke_max_difference": smoke.max_difference,
        },
    )
