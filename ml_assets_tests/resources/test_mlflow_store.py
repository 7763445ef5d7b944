"""The MLflow store under faults: a store locked by another process fails a step clearly, before
anything is registered or promoted."""

import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from ml_assets.model.promotion import promote
from ml_assets.model.tracking import CHAMPION_ALIAS
from resources.mlflow_registry import ModelRegistry, sqlite_tracking_uri

HOLD_TIMEOUT_S = 60


def hold_write_lock(database: Path) -> subprocess.Popen[str]:
    """Another process holding the sqlite store's write lock until a line arrives on its stdin."""
    code = (
        "import sqlite3, sys; c = sqlite3.connect(sys.argv[1], isolation_level=None); "
        "c.execute('BEGIN EXCLUSIVE'); print('locked', flush=True); sys.stdin.readline(); "
        "c.execute('ROLLBACK')"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code, str(database)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    return holder


def test_a_locked_store_fails_the_promotion_clearly_and_leaves_the_champion(
    tmp_path: Path,
) -> None:
    registry = ModelRegistry(
        tracking_uri=sqlite_tracking_uri(tmp_path / "mlflow"),
        artifact_location=str(tmp_path / "mlflow" / "artifacts"),
        experiment_name="faults",
        model_name="dispute_model",
        lock_timeout_s=1.0,
    )
    client = registry.client()
    client.create_registered_model(registry.model_name)
    for _ in range(2):
        client.create_model_version(registry.model_name, source="file:///nowhere")
    promote(registry, "1")

    holder = hold_write_lock(tmp_path / "mlflow" / "mlflow.db")
    try:
        with pytest.raises(dg.Failure, match="stayed locked by another process") as raised:
            promote(registry, "2")
        assert "champion alias was not moved" in str(raised.value.description)
    finally:
        holder.communicate("\n", timeout=HOLD_TIMEOUT_S)
    assert registry.version_for_alias(CHAMPION_ALIAS).version == "1"
    # Released: the same promotion goes through.
    assert promote(registry, "2").previous == "1"
    assert registry.version_for_alias(CHAMPION_ALIAS).version == "2"


@dg.asset(name="champion_model")
def promotion() -> int:
    """Stands for the asset that moves the alias: only its history matters here."""
    return 1


@dg.asset
def champion_version(model_registry: ModelRegistry) -> str:
    """A step that reads the registry, as training and evaluation do."""
    found = model_registry.version_for_alias(CHAMPION_ALIAS)
    return found.version if found else "none"


def test_a_lost_store_fails_the_step_instead_of_starting_an_empty_registry(
    tmp_path: Path,
) -> None:
    database = tmp_path / "mlflow" / "mlflow.db"
    registry = ModelRegistry(
        tracking_uri=sqlite_tracking_uri(tmp_path / "mlflow"),
        artifact_location=str(tmp_path / "mlflow" / "artifacts"),
        experiment_name="faults",
        model_name="dispute_model",
        promoted_by="champion_model",
    )
    resources = {
        "model_registry": registry,
        "io_manager": dg.FilesystemIOManager(base_dir=str(tmp_path / "io")),
    }
    with dg.instance_for_test() as instance:
        # Before any promotion a missing store is a first run: it is created.
        assert dg.materialize([champion_version], resources=resources, instance=instance).success
        assert database.exists()
        assert dg.materialize([promotion], resources=resources, instance=instance).success
        database.unlink()
        lost = dg.materialize(
            [champion_version], resources=resources, instance=instance, raise_on_error=False
        )
    assert not lost.success
    (failed_setup,) = [e for e in lost.all_events if e.event_type_value == "RESOURCE_INIT_FAILURE"]
    message = failed_setup.event_specific_data.error.to_string()
    assert "is missing, but champion_model was materialized before" in message
    assert not database.exists()  # not silently replaced by an empty registry
