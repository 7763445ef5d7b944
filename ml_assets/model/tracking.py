"""Logging a trained model to the active MLflow run and registering it (imports mlflow lazily)."""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from pydantic import BaseModel

from ml_assets.model.network import ModelParams, load_model, save_model
from ml_assets.model.training import TrainedModel

MODEL_NAME: Final = "complaint_dispute_model"  # the registered model in MLflow
MLFLOW_EXPERIMENT: Final = "complaint_disputes"
CHAMPION_ALIAS: Final = "champion"
CHALLENGER_ALIAS: Final = "challenger"
BLESSED_TAG: Final = "blessed_offline"  # on a version the blessing passed: "true"
RETIRED_TAG: Final = "retired"  # on a challenger live evidence refused: why
PREVIOUS_CHAMPION_TAG: Final = "previous_champion"  # on a champion version: the one it replaced
EVALUATION_METRIC_PREFIX: Final = "eval_"  # a version's offline figures on its MLflow run
THRESHOLD_TAG: Final = "decision_threshold"  # on a model version: the threshold chosen at training
# Further tags of a model version, written at training, read back as the served model's provenance.
TRAINING_WINDOW_TAG: Final = "training_window"
DATASET_VERSION_TAG: Final = "training_dataset_data_version"
DAGSTER_RUN_TAG: Final = "dagster_run_id"
CODE_VERSION_TAG_PREFIX: Final = "code_version."  # + asset name: that asset's code version
DEFAULT_DECISION_THRESHOLD: Final = 0.5  # for a version registered without one

if TYPE_CHECKING:
    import keras

logger = logging.getLogger(__name__)

MODEL_ARTIFACT = "model"
# The profile of the newest rows of the model's training dataset (its evaluation split) and the
# model's vocabulary: what the served model's inputs are compared with.
REFERENCE_PROFILE_ARTIFACT = "reference/input_profile.json"
# What loading a version needs, pinned to the installed versions by `pip_requirements`: MLflow's
# own inference of them costs ~11 s per model on this machine. The package itself is one: a
# version stores no code of it (models-from-code), only a file importing it.
MODEL_DISTRIBUTIONS = ("ml-assets", "tensorflow-cpu", "keras", "pandas", "mlflow")


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


def pip_requirements() -> list[str]:
    """The distributions a version needs (`MODEL_DISTRIBUTIONS`), pinned to the installed ones."""
    from importlib.metadata import version

    return [f"{dist}=={version(dist)}" for dist in MODEL_DISTRIBUTIONS]


def epoch_logger() -> keras.callbacks.Callback:
    """MLflow's Keras callback, for `model.fit`: each epoch's loss and metrics (training and
    validation) on the active run, with the optimizer's settings and the model's summary."""
    import mlflow
    from mlflow.keras import MlflowCallback

    class SynchronousMlflowCallback(MlflowCallback):
        """MLflow's callback, with an epoch's figures logged before the next epoch begins.

        Its own hooks log through MLflow's asynchronous queue, whose worker polls with a timed
        wait: a clock that is not the kernel's (the suite's run under faketime) never wakes it,
        and the end of the MLflow run waits for the worker forever. An epoch's figures are a few
        numbers; logging them in line costs milliseconds.
        """

        def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            if self.log_every_epoch and logs is not None:
                mlflow.log_metrics(logs, step=epoch, synchronous=True, model_id=self.model_id)

        def on_test_end(self, logs: dict[str, Any] | None = None) -> None:
            if logs is not None:
                figures = {f"validation_{name}": value for name, value in logs.items()}
                mlflow.log_metrics(figures, synchronous=True, model_id=self.model_id)

    return SynchronousMlflowCallback()


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
    """Log the model as a pyfunc artifact of the active run (code from a file, the network as a
    `.keras` file: nothing pickled) and register a new version."""
    from importlib.resources import as_file, files

    import mlflow

    from ml_assets.model.pyfunc import KERAS_ARTIFACT, MODEL_CODE_FILE

    run = mlflow.active_run()
    if run is None:
        raise RuntimeError(
            "register_model needs an active MLflow run (the dagster-mlflow resource starts one)"
        )
    with (
        tempfile.TemporaryDirectory() as scratch,
        as_file(files("ml_assets.model") / MODEL_CODE_FILE) as model_code,
    ):
        keras_path = save_model(trained.model, Path(scratch))
        # Models-from-code: MLflow copies the file and runs it at load time, and the file only
        # imports the installed package. No `code_paths`: a copy of the package's source in the
        # version would be put first on sys.path and run instead of the installed code.
        info = mlflow.pyfunc.log_model(
            name=MODEL_ARTIFACT,
            python_model=model_code,
            artifacts={KERAS_ARTIFACT: str(keras_path)},
            registered_model_name=name,
            pip_requirements=pip_requirements(),
        )
    return RegisteredModel(
        name, str(info.registered_model_version), run.info.run_id, trained.threshold, window
    )


def keras_artifact(flavors: Mapping[str, Any], uri: str) -> str:
    """The path of a version's `.keras` file inside the version, from its MLmodel flavours."""
    from mlflow.models.model import MODEL_CODE_PATH
    from mlflow.pyfunc import FLAVOR_NAME
    from mlflow.pyfunc.model import CONFIG_KEY_ARTIFACT_RELATIVE_PATH, CONFIG_KEY_ARTIFACTS

    from ml_assets.model.pyfunc import KERAS_ARTIFACT

    pyfunc = flavors.get(FLAVOR_NAME, {})
    artifact = pyfunc.get(CONFIG_KEY_ARTIFACTS, {}).get(KERAS_ARTIFACT, {})
    path = artifact.get(CONFIG_KEY_ARTIFACT_RELATIVE_PATH)
    if path is None:
        raise ValueError(
            f"{uri} holds no {KERAS_ARTIFACT!r} artifact in its pyfunc flavour: it was not "
            "registered by ml-assets. Register a dispute model (train it again) and load that."
        )
    if MODEL_CODE_PATH not in pyfunc:
        # Registered before models-from-code: its python_model is a pickle. The Keras file is the
        # same as today's, so it is loaded with the installed code and the pickle is never read.
        logger.warning(
            "%s stores a pickled python_model (registered before models-from-code); only its "
            "Keras file is loaded. Train again to register a version without pickled code.",
            uri,
        )
    return str(path)


# The variables MLflow's client reads a login from. Its only other source, ~/.mlflow/credentials,
# is one per machine account, not one per project home.
USERNAME_ENV: Final = "MLFLOW_TRACKING_USERNAME"
PASSWORD_ENV: Final = "MLFLOW_TRACKING_PASSWORD"


def log_in_to_registry(username: str, password_file: str) -> None:
    """Make this process's MLflow client log in to the tracking server as `username`."""
    os.environ[USERNAME_ENV] = username
    os.environ[PASSWORD_ENV] = Path(password_file).read_text().strip()


def load_keras_model(version: str, tracking_uri: str, name: str = MODEL_NAME) -> keras.Model:
    """The Keras network of a registered version, loaded by the installed code (nothing the
    version stores is run or unpickled)."""
    import mlflow
    from mlflow.artifacts import download_artifacts
    from mlflow.models import get_model_info

    # Download progress bars would flood run logs and the terminal.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    mlflow.set_tracking_uri(tracking_uri)
    uri = f"models:/{name}/{version}"
    path = keras_artifact(get_model_info(uri).flavors, uri)
    return load_model(Path(download_artifacts(f"{uri}/{path}")))
