"""The composition root: every asset, check, job, sensor and resource of the code location."""

from __future__ import annotations

import os

import dagster as dg

from ml_assets.constants import MLFLOW_EXPERIMENT, MODEL_NAME, WAREHOUSE_SCHEMA
from ml_assets.jobs import (
    DATA_LAYER_ASSETS,
    MODEL_LAYER_ASSETS,
    MODEL_LAYER_CHECKS,
    SERVING_ASSETS,
    data_layer_job,
    deployment_job,
    training_job,
)
from ml_assets.partitions import daily_partitions
from resources.home import ProjectHome, project_home
from resources.landing_zone import LocalLandingZone
from resources.mlflow_registry import ModelRegistry, mlflow_tracking_resource, sqlite_tracking_uri
from resources.ray_cluster import DEFAULT_GCS_PORT, RayCluster
from resources.warehouse import Warehouse, WarehouseIOManager
from sensors.landing_files import make_landing_file_sensor

ENVIRONMENT_ENV_VAR = "ML_ASSETS_ENV"


def local_resources(home: ProjectHome) -> dict[str, object]:
    """Resources of a single machine: everything under the project home."""
    tracking_uri = sqlite_tracking_uri(home.mlflow)
    artifacts = str(home.mlflow / "artifacts")
    return {
        "io_manager": WarehouseIOManager(database=str(home.warehouse), schema=WAREHOUSE_SCHEMA),
        "model_io_manager": dg.FilesystemIOManager(base_dir=str(home.storage)),
        "warehouse": Warehouse(database=str(home.warehouse)),
        "landing_zone": LocalLandingZone(root=str(home.landing)),
        "mlflow": mlflow_tracking_resource(tracking_uri, MLFLOW_EXPERIMENT, artifacts),
        "ray_cluster": RayCluster(
            address=os.environ.get("RAY_ADDRESS", f"127.0.0.1:{DEFAULT_GCS_PORT}"),
            token_path=str(home.ray_token),
            predictions_dir=str(home.predictions),
            http_host=os.environ.get("ML_ASSETS_SERVE_HOST", "127.0.0.1"),
            http_port=int(os.environ.get("ML_ASSETS_SERVE_PORT", "8000")),
        ),
        "model_registry": ModelRegistry(
            tracking_uri=tracking_uri,
            artifact_location=artifacts,
            experiment_name=MLFLOW_EXPERIMENT,
            model_name=MODEL_NAME,
        ),
    }


# Environment-keyed resource sets; a deployment adds its own key here (e.g. a shared warehouse).
RESOURCES_BY_ENVIRONMENT = {"local": local_resources}


def build_definitions(
    home: ProjectHome | None = None, environment: str | None = None
) -> dg.Definitions:
    """The code location's definitions for a project home and environment."""
    environment = environment or os.environ.get(ENVIRONMENT_ENV_VAR, "local")
    if environment not in RESOURCES_BY_ENVIRONMENT:
        raise ValueError(
            f"{ENVIRONMENT_ENV_VAR}={environment!r} is not one of {sorted(RESOURCES_BY_ENVIRONMENT)}"
        )
    return dg.Definitions(
        assets=[*DATA_LAYER_ASSETS, *MODEL_LAYER_ASSETS, *SERVING_ASSETS],
        asset_checks=MODEL_LAYER_CHECKS,
        jobs=[data_layer_job, training_job, deployment_job],
        sensors=[make_landing_file_sensor(data_layer_job, daily_partitions)],
        resources=RESOURCES_BY_ENVIRONMENT[environment](home or project_home()),
    )


defs = build_definitions()
