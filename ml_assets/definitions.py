"""The composition root: every asset, check, job, sensor and resource of the code location."""

from __future__ import annotations

import os

import dagster as dg

from ml_assets.assets.evaluation import champion_model
from ml_assets.assets.ingestion import raw_complaints
from ml_assets.assets.monitoring import served_predictions
from ml_assets.assets.serving import deployed_model
from ml_assets.automation import RetrainPolicy, automated_assets
from ml_assets.constants import (
    API_TOKEN_ENV_VAR,
    DEFAULT_PREDICTION_RETENTION_DAYS,
    MLFLOW_EXPERIMENT,
    MODEL_NAME,
    PREDICTION_RETENTION_ENV_VAR,
    WAREHOUSE_SCHEMA,
)
from ml_assets.ingest.landing import COMPLAINTS_FOLDER
from ml_assets.jobs import (
    DATA_LAYER_KEYS,
    MODEL_LAYER_CHECKS,
    data_layer_job,
    deployment_job,
    served_predictions_job,
    training_job,
)
from ml_assets.partitions import daily_partitions, request_day_partitions
from resources.alerts import FileAndWebhookNotifier
from resources.home import PRIVATE_UMASK, ProjectHome, project_home
from resources.landing_zone import LocalLandingZone
from resources.mlflow_registry import ModelRegistry, mlflow_tracking_resource, sqlite_tracking_uri
from resources.prediction_logs import PredictionLogs
from resources.ray_cluster import DEFAULT_GCS_PORT, RayCluster
from resources.warehouse import Warehouse, WarehouseIOManager
from sensors.landing_files import make_landing_file_sensor
from sensors.prediction_logs import make_prediction_log_sensor
from sensors.run_failures import make_run_failure_sensor
from sensors.serving import make_serving_sensor

ENVIRONMENT_ENV_VAR = "ML_ASSETS_ENV"
# Read here, at the composition root, and nowhere else.
RETRAIN_MIN_PARTITIONS_ENV_VAR = "ML_ASSETS_RETRAIN_MIN_PARTITIONS"
RETRAIN_CRON_ENV_VAR = "ML_ASSETS_RETRAIN_CRON"
RETRAIN_SETTLE_DAYS_ENV_VAR = "ML_ASSETS_RETRAIN_SETTLE_DAYS"
SENSOR_INTERVAL_ENV_VAR = "ML_ASSETS_SENSOR_INTERVAL_S"
# Set (seconds): today's prediction logs so far are ingested that often; unset: complete days only.
INTRADAY_INGEST_ENV_VAR = "ML_ASSETS_INTRADAY_INGEST_S"
FAILURE_WEBHOOK_ENV_VAR = "ML_ASSETS_FAILURE_WEBHOOK_URL"
DEFAULT_SENSOR_INTERVAL_S = 30
# What moves the champion alias: once it has run, a missing MLflow store is a loss, not a start.
PROMOTION_ASSET = champion_model.key.to_user_string()


def local_resources(home: ProjectHome) -> dict[str, object]:
    """Resources of a single machine: everything under the project home."""
    tracking_uri = sqlite_tracking_uri(home.mlflow)
    artifacts = str(home.mlflow / "artifacts")
    return {
        "io_manager": WarehouseIOManager(database=str(home.warehouse), schema=WAREHOUSE_SCHEMA),
        "model_io_manager": dg.FilesystemIOManager(base_dir=str(home.storage)),
        "warehouse": Warehouse(database=str(home.warehouse)),
        "landing_zone": LocalLandingZone(root=str(home.landing), days_folder=COMPLAINTS_FOLDER),
        "prediction_logs": PredictionLogs(
            root=str(home.predictions),
            retention_days=int(
                os.environ.get(PREDICTION_RETENTION_ENV_VAR, DEFAULT_PREDICTION_RETENTION_DAYS)
            ),
        ),
        "mlflow": mlflow_tracking_resource(
            tracking_uri, MLFLOW_EXPERIMENT, artifacts, promoted_by=PROMOTION_ASSET
        ),
        "ray_cluster": RayCluster(
            address=os.environ.get("RAY_ADDRESS", f"127.0.0.1:{DEFAULT_GCS_PORT}"),
            token_path=str(home.ray_token),
            predictions_dir=str(home.predictions),
            http_host=os.environ.get("ML_ASSETS_SERVE_HOST", "127.0.0.1"),
            http_port=int(os.environ.get("ML_ASSETS_SERVE_PORT", "8000")),
            api_token=dg.EnvVar(API_TOKEN_ENV_VAR) if os.environ.get(API_TOKEN_ENV_VAR) else "",
        ),
        "failure_notifier": FileAndWebhookNotifier(
            path=str(home.logs / "run_failures.jsonl"),
            webhook_url=dg.EnvVar(FAILURE_WEBHOOK_ENV_VAR).get_value(""),
        ),
        "model_registry": ModelRegistry(
            tracking_uri=tracking_uri,
            artifact_location=artifacts,
            experiment_name=MLFLOW_EXPERIMENT,
            model_name=MODEL_NAME,
            promoted_by=PROMOTION_ASSET,
        ),
    }


# Environment-keyed resource sets; a deployment adds its own key here (e.g. a shared warehouse).
RESOURCES_BY_ENVIRONMENT = {"local": local_resources}


def retrain_policy() -> RetrainPolicy:
    """The retraining policy, with the environment's overrides of its defaults."""
    defaults = RetrainPolicy()
    return RetrainPolicy(
        min_new_partitions=int(
            os.environ.get(RETRAIN_MIN_PARTITIONS_ENV_VAR, defaults.min_new_partitions)
        ),
        # Set but empty: no calendar trigger, the model retrains on new evidence only.
        cron=os.environ.get(RETRAIN_CRON_ENV_VAR, defaults.cron) or None,
        labels_settle_days=int(
            os.environ.get(RETRAIN_SETTLE_DAYS_ENV_VAR, defaults.labels_settle_days)
        ),
    )


def build_definitions(
    home: ProjectHome | None = None, environment: str | None = None
) -> dg.Definitions:
    """The code location's definitions for a project home and environment."""
    environment = environment or os.environ.get(ENVIRONMENT_ENV_VAR, "local")
    if environment not in RESOURCES_BY_ENVIRONMENT:
        raise ValueError(
            f"{ENVIRONMENT_ENV_VAR}={environment!r} is not one of {sorted(RESOURCES_BY_ENVIRONMENT)}"
        )
    # What the code server and its runs write is owner-only, also when `dagster dev` was started
    # without the CLI (which makes the home itself private).
    os.umask(PRIVATE_UMASK)
    interval = int(os.environ.get(SENSOR_INTERVAL_ENV_VAR, DEFAULT_SENSOR_INTERVAL_S))
    intraday = os.environ.get(INTRADAY_INGEST_ENV_VAR, "").strip()
    automation_sensor = dg.AutomationConditionSensorDefinition(
        "automation_sensor",
        target=dg.AssetSelection.all(include_sources=False),
        # The implicit default sensor would be STOPPED; the retrain policy runs user code.
        default_status=dg.DefaultSensorStatus.RUNNING,
        use_user_code_server=True,
        minimum_interval_seconds=interval,
    )
    return dg.Definitions(
        # Roots (sensor-driven) as they are; the rest with their automation conditions.
        assets=[raw_complaints, served_predictions, *automated_assets(retrain_policy())],
        asset_checks=MODEL_LAYER_CHECKS,
        jobs=[data_layer_job, training_job, deployment_job, served_predictions_job],
        sensors=[
            make_landing_file_sensor(data_layer_job, daily_partitions, DATA_LAYER_KEYS, interval),
            make_prediction_log_sensor(
                served_predictions_job,
                request_day_partitions,
                interval,
                intraday_every_s=int(intraday) if intraday else None,
            ),
            automation_sensor,
            make_run_failure_sensor(interval),
            make_serving_sensor(deployment_job, deployed_model.key, interval),
        ],
        resources=RESOURCES_BY_ENVIRONMENT[environment](home or project_home()),
        # Every run in one process: a step subprocess re-imports the code location (~5 s each).
        executor=dg.in_process_executor,
    )


defs = build_definitions()
