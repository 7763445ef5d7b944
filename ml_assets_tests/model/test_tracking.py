"""A trained model as MLflow stores it: epochs logged by MLflow's Keras callback, a version that
holds no pickle, and loaders that run the installed code."""

from __future__ import annotations

import logging
import re
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from importlib.resources import files
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from mlflow.artifacts import download_artifacts

from ml_assets.ingest.cfpb_format import read_landing_day
from ml_assets.ingest.validation import split_valid_rejected
from ml_assets.model.features import FEATURE_COLUMNS, RAW_INPUT_FIELDS, to_features
from ml_assets.model.network import KERAS_FILE, ModelParams, predict_proba, save_model
from ml_assets.model.pyfunc import KERAS_ARTIFACT, MODEL_CODE_FILE, DisputeModel
from ml_assets.model.tracking import (
    epoch_logger,
    keras_artifact,
    load_keras_model,
    log_training,
    pip_requirements,
    register_model,
)
from ml_assets.model.training import TrainedModel, Window, split_dataset, train_dispute_model
from ml_assets.synthetic.export import generate_day
from ml_assets_tests.world import LEARNABLE

NAME = "dispute_model_test"
# A model of the complaint's own fields: these tests are about the registry, not the history.
PARAMS = ModelParams(
    epochs=3, batch_size=256, max_tokens=2000, sequence_length=48, use_history=False
)
FIRST_DAY = date(2016, 3, 1)
# What pickle.dump writes first with protocols 2 to 5 (PROTO opcode, then the protocol number).
PICKLE_HEADER = re.compile(rb"\x80[\x02-\x05]")
PICKLE_SUFFIXES = {".pkl", ".pickle", ".joblib", ".cloudpickle"}


@dataclass(frozen=True)
class Registered:
    """A model trained and registered in a scratch MLflow store, and what it was trained on."""

    tracking_uri: str
    trained: TrainedModel
    run_id: str
    version: str
    complaints: pd.DataFrame  # validated complaints of days the model never saw


def validated_days(offsets: range, rows: int) -> pd.DataFrame:
    """Validated complaints of generated days (from FIRST_DAY) whose wording a model can learn."""
    frames = []
    for offset in offsets:
        day = FIRST_DAY + timedelta(days=offset)
        text = generate_day(day, rows, seed=5, signal=LEARNABLE)
        raw = read_landing_day([("d.csv", text.encode())], str(day))
        frames.append(split_valid_rejected(raw).valid)
    return pd.concat(frames, ignore_index=True)


@pytest.fixture(scope="module")
def registered(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registered]:
    folder = tmp_path_factory.mktemp("mlflow")
    tracking_uri = f"sqlite:///{folder / 'mlflow.db'}"
    previous_uri = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(tracking_uri)
    experiment = MlflowClient().create_experiment(
        "tracking_test", artifact_location=(folder / "artifacts").as_uri()
    )
    features = to_features(validated_days(range(4), 300))
    window = Window(pd.Timestamp(FIRST_DAY), pd.Timestamp(FIRST_DAY + timedelta(days=3)))
    dataset = split_dataset(features, window, "hash", evaluation_days=1)
    # As the dispute_model asset does it: train inside the run, the epochs logged as they end.
    run = mlflow.start_run(experiment_id=experiment)
    try:
        trained = train_dispute_model(dataset, PARAMS, callbacks=[epoch_logger()])
        # The epochs logged in line: no asynchronous logging thread was started, whose timed
        # waits hang the suite's run under faketime at the end of the run.
        assert not [t for t in threading.enumerate() if t.name == "MLflowAsyncLoggingLoop"]
        log_training(trained, PARAMS, {"training_window": str(window)})
        version = register_model(trained, str(window), NAME)
    finally:
        mlflow.end_run()
    yield Registered(
        tracking_uri,
        trained,
        run.info.run_id,
        version.version,
        validated_days(range(10, 11), 40).head(8),
    )
    mlflow.set_tracking_uri(previous_uri)


def version_folder(registered: Registered, version: str) -> Path:
    """The local folder of a version's files (the scratch store keeps its artifacts on disk)."""
    mlflow.set_tracking_uri(registered.tracking_uri)
    return Path(download_artifacts(f"models:/{NAME}/{version}"))


def expected_probabilities(registered: Registered) -> np.ndarray:
    """The in-memory Keras model's answers on the complaints, through the features table path."""
    inputs = to_features(registered.complaints)[list(FEATURE_COLUMNS)]
    return predict_proba(registered.trained.model, inputs)


def pickles_in(folder: Path) -> list[str]:
    """Every file under `folder` (and every member of a zip file, as a `.keras` file is) that is
    named or starts like a pickle."""
    found = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        members: list[tuple[str, bytes]] = [(str(path.relative_to(folder)), path.read_bytes())]
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                members += [(f"{members[0][0]}!{m}", archive.read(m)) for m in archive.namelist()]
        found += [
            name
            for name, data in members
            if Path(name).suffix in PICKLE_SUFFIXES
            or "pickle" in Path(name).name
            or PICKLE_HEADER.match(data)
        ]
    return found


def test_no_artifact_of_a_registered_version_is_a_pickle(registered: Registered) -> None:
    folder = version_folder(registered, registered.version)
    files = {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}
    assert files == {
        "MLmodel",
        MODEL_CODE_FILE,
        f"artifacts/{KERAS_FILE}",
        "conda.yaml",
        "python_env.yaml",
        "registered_model_meta",
        "requirements.txt",
    }
    assert pickles_in(folder) == []


def test_the_pickle_check_finds_a_pickled_model(tmp_path: Path) -> None:
    """The check above can fail: the old way of logging (a DisputeModel instance) is caught."""
    import pickle

    (tmp_path / "python_model.pkl").write_bytes(pickle.dumps({"a": 1}, protocol=5))
    (tmp_path / "renamed.bin").write_bytes(pickle.dumps([1], protocol=2))
    assert pickles_in(tmp_path) == ["python_model.pkl", "renamed.bin"]


def test_the_stored_code_only_binds_the_installed_class(registered: Registered) -> None:
    folder = version_folder(registered, registered.version)
    stored = (folder / MODEL_CODE_FILE).read_text()
    assert stored == (files("ml_assets.model") / MODEL_CODE_FILE).read_text()
    # No copy of the package's source rides along (MLflow would put it first on sys.path).
    assert not (folder / "code").exists()
    assert (folder / "requirements.txt").read_text().split() == pip_requirements()
    assert pip_requirements()[0].startswith("ml-assets==")


def test_mlflow_loads_the_version_with_the_installed_class_and_same_answers(
    registered: Registered,
) -> None:
    mlflow.set_tracking_uri(registered.tracking_uri)
    loaded = mlflow.pyfunc.load_model(f"models:/{NAME}/{registered.version}")
    assert type(loaded.unwrap_python_model()) is DisputeModel
    raw = registered.complaints[list(RAW_INPUT_FIELDS)]
    probabilities = np.asarray(loaded.predict(raw), dtype="float64")
    expected = expected_probabilities(registered)
    assert len(np.unique(expected.round(4))) > 1, "a constant model would prove nothing"
    assert probabilities == pytest.approx(expected, abs=1e-6)


def test_the_projects_loader_gives_the_same_network(registered: Registered) -> None:
    model = load_keras_model(registered.version, registered.tracking_uri, NAME)
    inputs = to_features(registered.complaints)[list(FEATURE_COLUMNS)]
    assert predict_proba(model, inputs) == pytest.approx(
        expected_probabilities(registered), abs=1e-6
    )


def test_a_version_registered_with_a_pickle_loads_without_reading_it(
    registered: Registered, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    mlflow.set_tracking_uri(registered.tracking_uri)
    keras_file = save_model(registered.trained.model, tmp_path)
    # As register_model did before models-from-code: the instance is cloudpickled.
    mlflow.start_run(experiment_id=MlflowClient().get_run(registered.run_id).info.experiment_id)
    try:
        old = mlflow.pyfunc.log_model(
            name="model",
            python_model=DisputeModel(),
            artifacts={KERAS_ARTIFACT: str(keras_file)},
            registered_model_name=NAME,
            pip_requirements=pip_requirements(),
        )
    finally:
        mlflow.end_run()
    version = str(old.registered_model_version)
    folder = version_folder(registered, version)
    assert pickles_in(folder) == ["python_model.pkl"]
    pickled = folder / "python_model.pkl"
    # Unpickling this would fail: loading works only if the pickle is never read.
    pickled.write_bytes(b"\x80\x05 not a pickle")

    with caplog.at_level(logging.WARNING, logger="ml_assets.model.tracking"):
        model = load_keras_model(version, registered.tracking_uri, NAME)

    inputs = to_features(registered.complaints)[list(FEATURE_COLUMNS)]
    assert predict_proba(model, inputs) == pytest.approx(
        expected_probabilities(registered), abs=1e-6
    )
    assert "pickled python_model" in caplog.text and "Train again" in caplog.text


def test_a_model_that_ml_assets_did_not_register_is_refused_with_the_fix() -> None:
    keras_flavour = {"keras": {"save_format": "keras"}}
    with pytest.raises(ValueError, match=r"models:/other/3 holds no 'keras_model'.*train it again"):
        keras_artifact(keras_flavour, "models:/other/3")


def test_each_epoch_is_logged_by_mlflows_keras_callback(registered: Registered) -> None:
    client = MlflowClient(tracking_uri=registered.tracking_uri)
    history = registered.trained.history
    assert {"loss", "auc", "val_loss", "val_auc"} <= history.keys()
    for name, values in history.items():
        logged = client.get_metric_history(registered.run_id, name)
        assert [m.step for m in logged] == list(range(len(values))), name
        assert [m.value for m in logged] == pytest.approx(values, rel=1e-6), name
    run = client.get_run(registered.run_id)
    assert run.data.metrics["epochs_trained"] == len(history["loss"])
    assert run.data.params["learning_rate"] == str(PARAMS.learning_rate)
