"""The composition root: every asset, check, job, sensor and resource of the code location."""

from __future__ import annotations

import os

import dagster as dg

from ml_assets.assets.evaluation import champion_model
from ml_assets.assets.ingestion import raw_complaints
from ml_assets.assets.keys import WAREHOUSE_SCHEMA
from ml_assets.assets.monitoring import served_predictions
from ml_assets.assets.policy import ServingPolicy
from ml_assets.assets.scoring import complaint_scores
from ml_assets.assets.serving import deployed_model
from ml_assets.automation import RetrainPolicy, automated_assets
from ml_assets.ingest.landing import COMPLAINTS_FOLDER
from ml_assets.jobs import (
    DATA_LAYER_KEYS,
    MODEL_LAYER_CHECKS,
    data_layer_job,
    deployment_job,
    scoring_job,
    served_predictions_job,
    training_job,
)
from ml_assets.model.tracking import MLFLOW_EXPERIMENT, MODEL_NAME, log_in_to_registry
from ml_assets.partitions import daily_partitions, request_day_partitions
from ml_assets.settings import Settings, load_settings
from resources.alerts import FileAndWebhookNotifier
from resources.home import PRIVATE_UMASK, ProjectHome
from resources.landing_zone import LocalLandingZone
from resources.mlflow_registry import ModelRegistry, mlflow_tracking_resource, sqlite_tracking_uri
from resources.mlflow_server import REGISTRY_USER, password_file, running_server
from resources.prediction_logs import PredictionLogs
from resources.ray_cluster import RayCluster
from resources.warehouse import Warehouse, WarehouseIOManager
from sensors.landing_files import make_landing_file_sensor
from sensors.prediction_logs import make_prediction_log_sensor
from sensors.run_failures import make_run_failure_sensor
from sensors.serving import make_serving_sensor

# What moves the champion alias: once it has run, a missing MLflow store is a loss, not a start.
PROMOTION_ASSET = champion_model.key.to_user_string()


def local_resources(home: ProjectHome, settings: Settings | None = None) -> dict[str, object]:
    """Resources of a single machine: everything under the project home."""
    settings = settings or load_settings()
    # While the home's authenticated tracking server runs, every client goes through it (and
    # its login): the CLI, the code server, the runs, and the replicas they deploy.
    server = running_server(home)
    username, secret = (REGISTRY_USER, str(password_file(home))) if server else ("", "")
    if server:
        log_in_to_registry(username, secret)
    tracking_uri = server or sqlite_tracking_uri(home.mlflow)
    artifacts = str(home.mlflow / "artifacts")
    return {
        "io_manager": WarehouseIOManager(database=str(home.warehouse), schema=WAREHOUSE_SCHEMA),
        "model_io_manager": dg.FilesystemIOManager(base_dir=str(home.storage)),
        "warehouse": Warehouse(database=str(home.warehouse)),
        "landing_zone": LocalLandingZone(root=str(home.landing), days_folder=COMPLAINTS_FOLDER),
        "prediction_logs": PredictionLogs(
            root=str(home.predictions),
            retention_days=settings.prediction_retention_days,
        ),
        "mlflow": mlflow_tracking_resource(
            tracking_uri, MLFLOW_EXPERIMENT, artifacts, promoted_by=PROMOTION_ASSET
        ),
        "ray_cluster": RayCluster(
            address=settings.ray_gcs_address,
            token_path=str(home.ray_token),
            predictions_dir=str(home.predictions),
            feature_store=str(home.feature_store),
            http_host=settings.serve_host,
            http_port=settings.serve_port,
            # Secrets reach resources as EnvVars: the UI shows the variable's name, never its value.
            api_token=_secret(settings, "api_token"),
        ),
        "serving_policy": ServingPolicy(
            challenger_mode=settings.challenger_mode,
            challenger_share=settings.challenger_share,
            promote_on_live_evidence=settings.promote_on_live_evidence,
            prediction_log_max_bytes_per_day=settings.prediction_log_max_bytes_per_day,
        ),
        "failure_notifier": FileAndWebhookNotifier(
            path=str(home.logs / "run_failures.jsonl"),
            # The variable's name: the notifier reads the URL (a secret) when it posts.
            webhook_url_env=Settings.env_name("failure_webhook_url"),
        ),
        "model_registry": ModelRegistry(
            tracking_uri=tracking_uri,
            artifact_location=artifacts,
            experiment_name=MLFLOW_EXPERIMENT,
            model_name=MODEL_NAME,
            promoted_by=PROMOTION_ASSET,
            ui_url=server or ModelRegistry.model_fields["ui_url"].default,
            username=username,
            password_file=secret,
        ),
    }


# Environment-keyed resource sets; a deployment adds its own key here (e.g. a shared warehouse).
RESOURCES_BY_ENVIRONMENT = {"local": local_resources}


def _secret(settings: Settings, field: str) -> dg.EnvVar | str:
    """A secret setting as the EnvVar that holds it, or "" when it is unset."""
    return dg.EnvVar(Settings.env_name(field)) if getattr(settings, field) is not None else ""


def retrain_policy(settings: Settings) -> RetrainPolicy:
    """The retraining policy the settings ask for."""
    return RetrainPolicy(
        min_new_partitions=settings.retrain_min_partitions,
        cron=settings.retrain_cron,
        labels_settle_days=settings.retrain_settle_days,
    )


def build_definitions(
    home: ProjectHome | None = None, settings: Settings | None = None
) -> dg.Definitions:
    """The code location's definitions for a project home (default: the settings' home)."""
    settings = settings or load_settings()
    home = home or ProjectHome.at(settings.home)
    # What the code server and its runs write is owner-only, also when `dagster dev` was started
    # without the CLI (which makes the home itself private).
    os.umask(PRIVATE_UMASK)
    interval = settings.sensor_interval_s
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
        assets=[
            raw_complaints,
            served_predictions,
            # Launched by hand (scoring_job): it needs the Ray cluster, which runs apart.
            complaint_scores,
            *automated_assets(retrain_policy(settings), settings.promote_on_live_evidence),
        ],
        asset_checks=MODEL_LAYER_CHECKS,
        jobs=[data_layer_job, training_job, deployment_job, served_predictions_job, scoring_job],
        sensors=[
            make_landing_file_sensor(data_layer_job, daily_partitions, DATA_LAYER_KEYS, interval),
            make_prediction_log_sensor(
                served_predictions_job,
                request_day_partitions,
                interval,
                intraday_every_s=settings.intraday_ingest_s,
            ),
            automation_sensor,
            make_run_failure_sensor(interval),
            make_serving_sensor(deployment_job, deployed_model.key, interval),
        ]
        if settings.sensors
        else [],
        resources=RESOURCES_BY_ENVIRONMENT[settings.env](home, settings),
        # Every run in one process: a step subprocess re-imports the code location (~5 s each).
        executor=dg.in_process_executor,
    )


defs = build_definitions()
