"""The composition root: every asset, check, job, sensor and resource of the code location."""

from __future__ import annotations

import os

import dagster as dg

from ml_assets.constants import WAREHOUSE_SCHEMA
from ml_assets.jobs import DATA_LAYER_ASSETS, data_layer_job
from ml_assets.partitions import daily_partitions
from resources.home import ProjectHome, project_home
from resources.landing_zone import LocalLandingZone
from resources.warehouse import Warehouse, WarehouseIOManager
from sensors.landing_files import make_landing_file_sensor

ENVIRONMENT_ENV_VAR = "ML_ASSETS_ENV"


def local_resources(home: ProjectHome) -> dict[str, object]:
    """Resources of a single machine: everything under the project home."""
    return {
        "io_manager": WarehouseIOManager(database=str(home.warehouse), schema=WAREHOUSE_SCHEMA),
        "warehouse": Warehouse(database=str(home.warehouse)),
        "landing_zone": LocalLandingZone(root=str(home.landing)),
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
        assets=DATA_LAYER_ASSETS,
        jobs=[data_layer_job],
        sensors=[make_landing_file_sensor(data_layer_job, daily_partitions)],
        resources=RESOURCES_BY_ENVIRONMENT[environment](home or project_home()),
    )


defs = build_definitions()
