"""The model under test of bench/serving.py: a registered version of a project home, its serving
configuration, the evaluation complaints sent as requests, and the offline answers to check."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np

from ml_assets.serving.predictor import Predictor
from ml_assets.serving.schemas import ServingConfig
from resources.home import ProjectHome
from resources.mlflow_registry import ModelRegistry

# Complaints per request of case (3), and per request of the answer checks.
BATCH = 64
# Complaints per request the bench's servers accept (the Serve app's own maximum is larger).
MAX_COMPLAINTS = 1000


@dataclass
class ModelUnderTest:
    """One registered version, what the servers are configured with, and what they must answer."""

    home: ProjectHome
    version: str
    config: ServingConfig
    records: list[dict[str, Any]]  # raw complaints that map back to the evaluation split
    sample: list[dict[str, Any]]  # the first BATCH of them, sent to check every server's answers
    expected: np.ndarray  # the model's own answers for `sample`, computed in this process


def registry_of(home: ProjectHome) -> ModelRegistry:
    """The home's model registry (the experiment is never written to here)."""
    from ml_assets.model.tracking import MODEL_NAME
    from resources.mlflow_registry import sqlite_tracking_uri

    return ModelRegistry(
        tracking_uri=sqlite_tracking_uri(home.mlflow),
        artifact_location=str(home.mlflow / "artifacts"),
        experiment_name="unused",
        model_name=MODEL_NAME,
    )


def resolve_version(registry: ModelRegistry, wanted: str | None) -> str:
    """The wanted version, else the champion, else the latest registered one."""
    from ml_assets.model.tracking import CHAMPION_ALIAS

    if wanted:
        return registry.get_version(wanted).version
    champion = registry.version_for_alias(CHAMPION_ALIAS)
    if champion is not None:
        return champion.version
    versions = registry.client().search_model_versions(f"name = '{registry.model_name}'")
    if not versions:
        raise SystemExit(f"no registered versions of {registry.model_name}: train a model first")
    return str(max(int(v.version) for v in versions))


def load_records(warehouse: Path) -> list[dict[str, Any]]:
    """Raw complaint records that map back to the evaluation split's model inputs."""
    import duckdb

    from ml_assets.assets.keys import WAREHOUSE_SCHEMA
    from ml_assets.model.features import COMPANY_COLUMN, FEATURE_COLUMNS
    from ml_assets.model.training import EVALUATION, SPLIT_COLUMN
    from ml_assets.serving.deploy import features_to_record

    columns = ", ".join(["complaint_id", COMPANY_COLUMN, *FEATURE_COLUMNS])
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        frame = conn.execute(
            f"select {columns} from {WAREHOUSE_SCHEMA}.training_dataset "
            f"where {SPLIT_COLUMN} = ? order by complaint_id",
            [EVALUATION],
        ).fetchdf()
    if len(frame) < BATCH:
        raise SystemExit(
            f"{len(frame)} evaluation rows in {warehouse}, {BATCH} needed: train a model on "
            "more days first"
        )
    # pandas types a record's keys as Hashable: here they are the column names selected above.
    rows = cast(list[dict[str, Any]], frame.astype(object).to_dict("records"))
    return [features_to_record(row) for row in rows]


def write_bodies(records: list[dict[str, Any]], size: int, path: Path) -> Path:
    """Request bodies of `size` complaints each, one JSON body per line."""
    chunks = [records[i : i + size] for i in range(0, len(records) - size + 1, size)]
    path.write_text("\n".join(json.dumps({"complaints": c}) for c in chunks) + "\n")
    return path


def prepare(
    home: ProjectHome, wanted: str | None, predictions_dir: Path | None
) -> tuple[ModelUnderTest, Predictor]:
    """The version to serve (default: the champion), its config, records and offline answers,
    and the version loaded in this process as the Serve app runs it (a `Predictor`).

    `predictions_dir`: where the Serve app logs its answers (None: no feedback log)."""
    from ml_assets.assets.serving import serving_config
    from ml_assets.model.tracking import load_keras_model

    registry = registry_of(home)
    version = resolve_version(registry, wanted)
    config = serving_config(
        registry,
        version,
        str(predictions_dir or ""),
        MAX_COMPLAINTS,
        feature_store=str(home.feature_store),
    )
    if predictions_dir is None:
        config = config.model_copy(update={"predictions_dir": None})
    records = load_records(home.warehouse)
    model = load_keras_model(version, config.tracking_uri, config.model_name)
    predictor = Predictor(model, config.feature_store)
    sample = records[:BATCH]
    model = ModelUnderTest(
        home, version, config, records, sample, predictor.predict_records(sample)
    )
    return model, predictor
