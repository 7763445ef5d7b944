"""What the tests that train and serve on a test Ray head share: its resources, the data layer."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from pathlib import Path

import dagster as dg

from ml_assets.assets.day_ranges import range_tags
from ml_assets.assets.history import feature_store
from ml_assets.definitions import local_resources
from ml_assets.jobs import DATA_LAYER_ASSETS
from resources.home import ProjectHome
from resources.ray_cluster import RayCluster


def resources_on_head(
    home: ProjectHome, gcs_port: int, token_path: Path, http_port: int, api_token: str
) -> dict[str, object]:
    """The home's local resources, with a RayCluster on the test head at 127.0.0.1:`gcs_port`."""
    return {
        **local_resources(home),
        "ray_cluster": RayCluster(
            address=f"127.0.0.1:{gcs_port}",
            token_path=str(token_path),
            predictions_dir=str(home.predictions),
            feature_store=str(home.feature_store),
            http_port=http_port,
            api_token=api_token,
        ),
    }


def materialize_data_layer(
    instance: dg.DagsterInstance, resources: dict[str, object], days: Sequence[date]
) -> None:
    """Materialize the data layer over `days` in one ranged run, then the online store from its
    history (as the platform's automation does); fail the test unless both succeed."""
    assert dg.materialize(
        DATA_LAYER_ASSETS,
        resources=resources,
        tags=range_tags([day.isoformat() for day in days]),
        instance=instance,
    ).success
    assert dg.materialize([feature_store], resources=resources, instance=instance).success
