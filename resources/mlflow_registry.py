"""MLflow: the tracking resource of dagster-mlflow, and the model registry the pipeline promotes in."""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dagster as dg

if TYPE_CHECKING:
    from mlflow import MlflowClient


def sqlite_tracking_uri(folder: Path) -> str:
    """The tracking URI of a sqlite MLflow store in `folder` (the registry needs a database)."""
    return f"sqlite:///{folder / 'mlflow.db'}"


# How long a step waits for another process's write lock on the sqlite store before failing.
# MLflow's own wait (sqlite's busy timeout, 20 s) ends in a bare "database is locked" from
# SQLAlchemy, mid-way through whatever the step was doing.
STORE_LOCK_TIMEOUT_S = 60.0


def _prepare_store(tracking_uri: str, lock_timeout_s: float = STORE_LOCK_TIMEOUT_S) -> None:
    """Create the folder of a new sqlite store (sqlite creates the file, not its folder); for an
    existing one, fail clearly unless its write lock can be had within `lock_timeout_s`."""
    if not tracking_uri.startswith("sqlite:///"):
        return
    path = Path(tracking_uri.removeprefix("sqlite:///"))
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        return
    import sqlite3

    connection = sqlite3.connect(path, timeout=lock_timeout_s)
    try:
        # Taken and given back at once: proves the store is writable before any work that the
        # lock would otherwise interrupt half done.
        connection.execute("BEGIN IMMEDIATE")
        connection.rollback()
    except sqlite3.OperationalError as exc:
        raise dg.Failure(
            f"The MLflow store {path} stayed locked by another process for {lock_timeout_s:.0f} s "
            f"({exc}). Nothing was registered and the champion alias was not moved. Let the other "
            "writer finish (a training run, an `mlflow` command) or stop it, then run again."
        ) from exc
    finally:
        connection.close()


def check_store_not_lost(tracking_uri: str, instance: Any, asset_name: str) -> None:
    """Fail when a sqlite store is missing although `asset_name` (the promotion) was materialized:
    MLflow would silently create an empty registry, and the next model would become champion."""
    if not asset_name or instance is None or not tracking_uri.startswith("sqlite:///"):
        return
    path = Path(tracking_uri.removeprefix("sqlite:///"))
    if path.exists():
        return
    promoted = instance.get_latest_materialization_event(dg.AssetKey(asset_name))
    if promoted is not None:
        raise dg.Failure(
            f"The MLflow store {path} is missing, but {asset_name} was materialized before (run "
            f"{promoted.run_id}): the registry and its champion are there. Restore the store "
            f"(from a backup of {path.parent}) and run again; to start a new registry on purpose, "
            f"wipe {asset_name}'s materializations in the Dagster UI first."
        )


def ensure_experiment(
    tracking_uri: str,
    name: str,
    artifact_location: str,
    lock_timeout_s: float = STORE_LOCK_TIMEOUT_S,
) -> str:
    """The id of the experiment, created with its artifacts under the project home if missing."""
    from mlflow import MlflowClient

    _prepare_store(tracking_uri, lock_timeout_s)
    client = MlflowClient(tracking_uri=tracking_uri)
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    # Without an explicit location MLflow would write artifacts to ./mlruns of the current
    # directory; everything the project writes belongs under ML_ASSETS_HOME.
    Path(artifact_location).mkdir(parents=True, exist_ok=True)
    return client.create_experiment(name, artifact_location=Path(artifact_location).as_uri())


def mlflow_tracking_resource(
    tracking_uri: str, experiment_name: str, artifact_location: str, promoted_by: str = ""
) -> dg.ResourceDefinition:
    """dagster-mlflow's `mlflow_tracking` resource, with the experiment created in the project home first."""

    def start(context: dg.InitResourceContext) -> Any:
        # dagster_mlflow imports mlflow (seconds): only steps that use the resource pay for it.
        from dagster_mlflow.resources import MlFlow

        check_store_not_lost(tracking_uri, context.instance, promoted_by)
        ensure_experiment(tracking_uri, experiment_name, artifact_location)
        return MlFlow(context)

    # The subset of dagster-mlflow's config that MlFlow reads; the rest defaults to unset.
    return dg.ResourceDefinition(
        resource_fn=start,
        config_schema={
            "experiment_name": dg.Field(str, default_value=experiment_name),
            "mlflow_tracking_uri": dg.Field(str, default_value=tracking_uri),
        },
        description="dagster-mlflow tracking: one MLflow run per Dagster run, tagged with its id.",
    )


@dataclass(frozen=True)
class ModelVersion:
    """A registered model version and what was recorded with it."""

    name: str
    version: str
    run_id: str
    tags: Mapping[str, str]
    aliases: tuple[str, ...]

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"


def _version(found: Any) -> ModelVersion:
    # MLflow returns the version as a string from some calls and an int from others.
    return ModelVersion(
        found.name, str(found.version), found.run_id, dict(found.tags), tuple(found.aliases)
    )


class ModelRegistry(dg.ConfigurableResource):
    """The MLflow model registry of the project: versions, aliases, and evaluation artifacts."""

    tracking_uri: str
    artifact_location: str
    experiment_name: str
    model_name: str
    ui_url: str = "http://127.0.0.1:5000"
    # The login of an authenticated tracking server, for the processes this one starts (the
    # Serve replicas); empty with a store file.
    username: str = ""
    password_file: str = ""
    lock_timeout_s: float = STORE_LOCK_TIMEOUT_S
    # The asset that moves the champion alias: once it has been materialized, a missing store
    # is a lost registry, not a first run (see check_store_not_lost).
    promoted_by: str = ""

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        check_store_not_lost(self.tracking_uri, context.instance, self.promoted_by)

    def client(self) -> MlflowClient:
        from mlflow import MlflowClient

        _prepare_store(self.tracking_uri, self.lock_timeout_s)
        return MlflowClient(tracking_uri=self.tracking_uri)

    def experiment_id(self) -> str:
        return ensure_experiment(
            self.tracking_uri, self.experiment_name, self.artifact_location, self.lock_timeout_s
        )

    def run_url(self, run_id: str) -> str:
        return f"{self.ui_url}/#/experiments/{self.experiment_id()}/runs/{run_id}"

    def get_version(self, version: str) -> ModelVersion:
        return _version(self.client().get_model_version(self.model_name, version))

    def version_for_alias(self, alias: str) -> ModelVersion | None:
        """The version an alias points at, or None when the alias (or the model) does not exist."""
        from mlflow.exceptions import MlflowException

        try:
            found = self.client().get_model_version_by_alias(self.model_name, alias)
        except MlflowException as exc:
            if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
                return None
            raise
        return _version(found)

    def run_metrics(self, run_id: str) -> dict[str, float]:
        """The latest value of every metric of a run."""
        return dict(self.client().get_run(run_id).data.metrics)

    def run_json(self, run_id: str, path: str) -> dict[str, Any]:
        """A JSON artifact of a run, e.g. a model's reference input profile."""
        import mlflow.artifacts

        return mlflow.artifacts.load_dict(
            f"{self.client().get_run(run_id).info.artifact_uri}/{path}"
        )

    def set_alias(self, alias: str, version: str) -> None:
        self.client().set_registered_model_alias(self.model_name, alias, version)

    def delete_alias(self, alias: str) -> None:
        self.client().delete_registered_model_alias(self.model_name, alias)

    def set_version_tag(self, version: str, key: str, value: str) -> None:
        self.client().set_model_version_tag(self.model_name, version, key, value)

    def log_metrics(self, run_id: str, metrics: Mapping[str, float], step: int = 0) -> None:
        """Add metrics at one step to a finished run (e.g. a day of its live performance)."""
        client = self.client()
        for key, value in metrics.items():
            client.log_metric(run_id, key, value, step=step)

    def log_to_run(
        self, run_id: str, metrics: Mapping[str, float], files: Mapping[str, bytes], folder: str
    ) -> None:
        """Add metrics and files (name -> bytes) to a finished run, e.g. its evaluation."""
        self.log_metrics(run_id, metrics)
        client = self.client()
        with tempfile.TemporaryDirectory() as scratch:
            for name, data in files.items():
                path = Path(scratch) / name
                path.write_bytes(data)
                client.log_artifact(run_id, str(path), artifact_path=folder)
