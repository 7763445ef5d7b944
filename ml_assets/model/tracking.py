"""Logging a trained model to the active MLflow run and registering it (imports mlflow lazily)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from ml_assets.constants import (
    CODE_VERSION_TAG_PREFIX,
    DAGSTER_RUN_TAG,
    DATASET_VERSION_TAG,
    EVALUATION_METRIC_PREFIX,
    MODEL_NAME,
    TRAINING_WINDOW_TAG,
)
from ml_assets.model.network import ModelParams, save_model
from ml_assets.model.training import TrainedModel

if TYPE_CHECKING:
    import keras

MODEL_ARTIFACT = "model"
# The profile of the newest rows of the model's training dataset (its evaluation split) and the
# model's vocabulary: what the served model's inputs are compared with.
REFERENCE_PROFILE_ARTIFACT = "reference/input_profile.json"
# Pinned by hand: MLflow's inference of requirements costs ~11 s per model on this machine.
PIP_REQUIREMENTS = ["tensorflow-cpu==2.21.0", "keras==3.15.1", "pandas==2.3.3", "mlflow==3.17.2"]


@dataclass(frozen=True)
class RegisteredModel:
    """A trained model as registered in MLflow: what later assets and the server load."""

    name: str
    version: str
    run_id: str
    threshold: float
    window: str


def version_tags(
    window: str, dataset_version: str | None, code_versions: Mapping[str, str], asset: str
) -> dict[str, str]:
    """The tags a trained model's run and version carry (read back by `provenance`)."""
    return {
        TRAINING_WINDOW_TAG: window,
        DATASET_VERSION_TAG: dataset_version or "unknown",
        **{f"{CODE_VERSION_TAG_PREFIX}{name}": version for name, version in code_versions.items()},
        "dagster_asset": asset,
    }


def provenance(
    alias: str, run_id: str, tags: Mapping[str, str], metrics: Mapping[str, float]
) -> dict[str, Any]:
    """Where a registered version comes from: its runs, window, data and code, and evaluation."""
    return {
        "alias": alias,
        "mlflow_run_id": run_id,
        "dagster_run_id": tags.get(DAGSTER_RUN_TAG),
        "training_window": tags.get(TRAINING_WINDOW_TAG),
        "data_versions": {"training_dataset": tags.get(DATASET_VERSION_TAG, "unknown")},
        "code_versions": {
            k.removeprefix(CODE_VERSION_TAG_PREFIX): v
            for k, v in tags.items()
            if k.startswith(CODE_VERSION_TAG_PREFIX)
        },
        "evaluation": {
            k.removeprefix(EVALUATION_METRIC_PREFIX): v
            for k, v in metrics.items()
            if k.startswith(EVALUATION_METRIC_PREFIX)
        },
    }


def epoch_logger() -> keras.callbacks.Callback:
    """MLflow's Keras callback, for `model.fit`: each epoch's loss and metrics (training and
    validation) on the active run, with the optimizer's settings and the model's summary."""
    from mlflow.keras import MlflowCallback

    return MlflowCallback()


def log_training(trained: TrainedModel, params: ModelParams, tags: Mapping[str, str]) -> None:
    """Parameters, tags, calibration and threshold of the active run (the epochs log themselves
    during training, through `epoch_logger`)."""
    import mlflow

    mlflow.log_params(params.as_dict())
    mlflow.set_tags(dict(tags))
    mlflow.log_metrics(
        {
            "epochs_trained": len(next(iter(trained.history.values()), [])),
            "decision_threshold": trained.threshold,
            "calibration_slope": trained.calibration.slope,
            "calibration_intercept": trained.calibration.intercept,
        }
    )


def log_reference_profile(profile: BaseModel) -> None:
    """Log the model's reference input profile on the active run (drift and skew compare to it)."""
    # Typed as any pydantic model: the profile's shape is monitoring's business, which sits above
    # the model layer (it reads the served model's logs), so this module does not import it.
    import mlflow

    mlflow.log_dict(profile.model_dump(), REFERENCE_PROFILE_ARTIFACT)


def register_model(trained: TrainedModel, window: str, name: str = MODEL_NAME) -> RegisteredModel:
    """Log the model as a pyfunc artifact of the active run and register a new version."""
    import mlflow

    from ml_assets.model.pyfunc import KERAS_ARTIFACT, DisputeModel

    run = mlflow.active_run()
    if run is None:
        raise RuntimeError(
            "register_model needs an active MLflow run (the dagster-mlflow resource starts one)"
        )
    with tempfile.TemporaryDirectory() as scratch:
        keras_path = save_model(trained.model, Path(scratch))
        info = mlflow.pyfunc.log_model(
            name=MODEL_ARTIFACT,
            python_model=DisputeModel(),
            artifacts={KERAS_ARTIFACT: str(keras_path)},
            registered_model_name=name,
            pip_requirements=PIP_REQUIREMENTS,
        )
    return RegisteredModel(
        name, str(info.registered_model_version), run.info.run_id, trained.threshold, window
    )


def load_keras_model(version: str, tracking_uri: str, name: str = MODEL_NAME) -> keras.Model:
    """The Keras network of a registered version (for scoring the model's own input columns)."""
    import mlflow

    # Download progress bars would flood run logs and the terminal.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    mlflow.set_tracking_uri(tracking_uri)
    return mlflow.pyfunc.load_model(f"models:/{name}/{version}").unwrap_python_model().model
