"""`deployed_model`: the champion served by Ray Serve, checked over HTTP before it counts as deployed."""

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import dagster as dg
import pandas as pd
from pydantic import Field

from ml_assets.assets.evaluation import champion_model
from ml_assets.assets.history import store_parity
from ml_assets.assets.keys import FEATURE_STORE, MODEL_GROUP
from ml_assets.assets.policy import ServingPolicy
from ml_assets.model.features import COMPANY_COLUMN, FEATURE_COLUMNS
from ml_assets.model.tracking import (
    CHALLENGER_ALIAS,
    CHAMPION_ALIAS,
    DEFAULT_DECISION_THRESHOLD,
    RETIRED_TAG,
    THRESHOLD_TAG,
    provenance,
)
from ml_assets.model.training import EVALUATION, SPLIT_COLUMN
from ml_assets.serving.auth import token_digest
from ml_assets.serving.schemas import (
    MAX_COMPLAINTS,
    ChallengerConfig,
    RegistryLogin,
    ServingConfig,
)
from ml_assets.serving.smoke import read_key, smoke_key
from ml_assets.settings import ChallengerServing
from resources.compat.ray import with_code_version
from resources.home import ensure_secret
from resources.mlflow_registry import ModelRegistry
from resources.ray_cluster import RayCluster
from resources.warehouse import Warehouse

SERVING_CODE_VERSION = "4"  # 4: company history from the online store
SMOKE_KEY_FILE = "serve_smoke_key"
LOG_BUDGET_DEFAULT: int = ServingConfig.model_fields["prediction_log_max_bytes_per_day"].default


class DeploymentConfig(dg.Config):
    """How the champion is served and checked."""

    smoke_rows: int = Field(
        default=20, ge=1, description="evaluation complaints sent as smoke requests"
    )
    max_complaints: int = Field(
        default=MAX_COMPLAINTS, ge=1, le=MAX_COMPLAINTS, description="per /predict request"
    )
    # Dagster config has no optional Literal: "platform" stands for "not set here".
    challenger_mode: Literal["platform", ChallengerServing] = Field(
        default="platform",
        description="off, shadow or split for this deployment; platform: the serving_policy "
        "resource's (ML_ASSETS_CHALLENGER_MODE)",
    )
    challenger_share: float | None = Field(
        default=None,
        ge=0.0,
        le=1.0,
        description="split: the challenger's share of complaints (default: serving_policy's)",
    )


def challenger_config(
    registry: ModelRegistry, champion: str, mode: str, share: float
) -> ChallengerConfig | None:
    """The challenger to serve beside `champion`: the `challenger` alias unless it is the
    champion (None: none, or mode "off")."""
    found = registry.version_for_alias(CHALLENGER_ALIAS) if mode != "off" else None
    if found is None or found.version == champion or RETIRED_TAG in found.tags:
        return None
    return ChallengerConfig(
        model_version=found.version,
        decision_threshold=float(found.tags.get(THRESHOLD_TAG, DEFAULT_DECISION_THRESHOLD)),
        mode="shadow" if mode == "shadow" else "split",
        share=share,
    )


def smoke_key_file(ray_cluster: RayCluster) -> Path:
    """The key that signs the deployer's smoke requests, made on first use: beside the
    cluster's Ray token (the cluster's secrets, owner-only, in the project home)."""
    path = Path(ray_cluster.token_path).with_name(SMOKE_KEY_FILE)
    ensure_secret(path)
    return path


def serving_config(
    registry: ModelRegistry,
    version: str,
    predictions_dir: str,
    max_complaints: int,
    api_token: str = "",
    challenger: ChallengerConfig | None = None,
    log_bytes_per_day: int = LOG_BUDGET_DEFAULT,
    smoke_key_path: Path | None = None,
    feature_store: str | None = None,
) -> ServingConfig:
    """The Serve `user_config` of a registered version, with its provenance (`smoke_key_path`:
    the key whose signature marks smoke requests; None: none is marked; `feature_store`: the
    online store a version that takes company history reads)."""
    found = registry.get_version(version)
    return ServingConfig(
        tracking_uri=registry.tracking_uri,
        registry_login=(
            RegistryLogin(username=registry.username, password_file=registry.password_file)
            if registry.username
            else None
        ),
        model_name=found.name,
        model_version=found.version,
        decision_threshold=float(found.tags.get(THRESHOLD_TAG, DEFAULT_DECISION_THRESHOLD)),
        predictions_dir=predictions_dir,
        max_complaints=max_complaints,
        api_token_sha256=token_digest(api_token.strip()) if api_token.strip() else None,
        provenance=provenance(
            CHAMPION_ALIAS, found.run_id, found.tags, registry.run_metrics(found.run_id)
        ),
        challenger=challenger,
        prediction_log_max_bytes_per_day=log_bytes_per_day,
        smoke_key=smoke_key(smoke_key_path) if smoke_key_path else None,
        feature_store=feature_store,
    )


def versioned() -> Callable[[Any], Any]:
    """Gives Serve deployments the serving code's version, so that redeploys of the same code
    reconfigure the running replicas in place."""
    from ml_assets.serving.deploy import serving_code_version

    return functools.partial(with_code_version, code_version=serving_code_version())


def serve_version(
    version: str,
    model_registry: ModelRegistry,
    ray_cluster: RayCluster,
    serving_policy: ServingPolicy,
    max_complaints: int = MAX_COMPLAINTS,
) -> ServingConfig:
    """Move the running endpoint to a version it served before (a rollback), in place.

    No smoke test: the version answered correctly when it served, and a rollback has to be
    quick. Returns once the endpoint answers with it."""
    from ml_assets.serving.deploy import deploy, served_version

    config = serving_config(
        model_registry,
        version,
        ray_cluster.predictions_dir,
        max_complaints,
        ray_cluster.api_token,
        challenger_config(
            model_registry,
            version,
            serving_policy.challenger_mode,
            serving_policy.challenger_share,
        ),
        serving_policy.prediction_log_max_bytes_per_day,
        smoke_key_file(ray_cluster),
        ray_cluster.feature_store or None,
    )
    ray_cluster.connect()
    deploy(config, ray_cluster.http_host, ray_cluster.http_port, versioned())
    now = served_version(ray_cluster.endpoint)
    if now != version:
        raise RuntimeError(
            f"the endpoint answers with version {now} after the rollback to {version}: "
            "see the Serve logs under the Ray temp dir, then run deployment_job"
        )
    return config


@dg.asset(
    group_name=MODEL_GROUP,
    code_version=SERVING_CODE_VERSION,
    io_manager_key="model_io_manager",
    # A promotion or retirement by live_promotion reaches the endpoint through the serving
    # sensor, which compares what serves with what should.
    # The online store: what the replicas look company history up in.
    deps=[champion_model, FEATURE_STORE],
    kinds={"ray"},
)
def deployed_model(
    config: DeploymentConfig,
    training_dataset: pd.DataFrame,
    ray_cluster: RayCluster,
    model_registry: ModelRegistry,
    serving_policy: ServingPolicy,
    warehouse: Warehouse,
) -> dg.Output[ServingConfig]:
    """Deploys (or moves in place) the Ray Serve app to the champion and checks it over HTTP."""
    from ml_assets.model.network import HISTORY_INPUT, model_input_names, predict_proba
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

    challenger = challenger_config(
        model_registry,
        champion.version,
        serving_policy.challenger_mode
        if config.challenger_mode == "platform"
        else config.challenger_mode,
        serving_policy.challenger_share
        if config.challenger_share is None
        else config.challenger_share,
    )

    key_file = smoke_key_file(ray_cluster)

    def config_for(version: str) -> ServingConfig:
        return serving_config(
            model_registry,
            version,
            ray_cluster.predictions_dir,
            config.max_complaints,
            ray_cluster.api_token,
            challenger,
            serving_policy.prediction_log_max_bytes_per_day,
            key_file,
            ray_cluster.feature_store or None,
        )

    wanted = config_for(champion.version)
    ray_cluster.connect()
    sample = training_dataset[training_dataset[SPLIT_COLUMN] == EVALUATION].head(config.smoke_rows)
    model = load_keras_model(
        wanted.model_version, model_registry.tracking_uri, model_registry.model_name
    )
    snapshot_date = None
    if HISTORY_INPUT in model_input_names(model):
        # The complaints as if they arrived now: with the history the endpoint will look up,
        # which must be the offline history of the store's day, value for value.
        sample, snapshot_date = store_parity(warehouse, ray_cluster.feature_store, sample)
    expected = predict_proba(model, sample)
    stored = sample[[COMPANY_COLUMN, *FEATURE_COLUMNS]].to_dict("records")
    records = [features_to_record(r) for r in stored]
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
            versioned(),
            read_key(key_file),
        )
    except SmokeTestFailed as exc:
        raise dg.Failure(str(exc)) from exc
    return dg.Output(
        wanted,
        metadata={
            "endpoint": dg.MetadataValue.url(f"{ray_cluster.endpoint}/docs"),
            "version": wanted.model_version,
            "previous_version": previous or "none",
            "challenger": (
                f"v{challenger.model_version} in {challenger.mode}"
                + (f" ({challenger.share:.0%})" if challenger.mode == "split" else "")
                if challenger
                else "none"
            ),
            "smoke_requests": smoke.requests,
            "smoke_latency_ms_p50": smoke.latency_ms_p50,
            "smoke_max_difference": smoke.max_difference,
            "feature_snapshot_date": str(snapshot_date or "none (the model takes no history)"),
        },
    )
