"""A version's tags, as training writes them, read back as the served model's provenance."""

from ml_assets.model.tracking import (
    CHAMPION_ALIAS,
    DAGSTER_RUN_TAG,
    DATASET_VERSION_TAG,
    provenance,
    version_tags,
)


def test_what_training_tags_is_what_serving_reports() -> None:
    tags = {
        **version_tags(
            "2017-03-01..2017-04-30",
            "abc123",
            {"complaint_features": "3", "training_dataset": "2", "dispute_model": "5"},
            "dispute_model",
        ),
        DAGSTER_RUN_TAG: "run-1",
    }
    metrics = {"eval_roc_auc": 0.71, "eval_log_loss": 0.45, "val_auc": 0.8}

    assert provenance(CHAMPION_ALIAS, "mlflow-run", tags, metrics) == {
        "alias": CHAMPION_ALIAS,
        "mlflow_run_id": "mlflow-run",
        "dagster_run_id": "run-1",
        "training_window": "2017-03-01..2017-04-30",
        "data_versions": {"training_dataset": "abc123"},
        "code_versions": {"complaint_features": "3", "training_dataset": "2", "dispute_model": "5"},
        # Only the evaluation split's figures: validation metrics are training's business.
        "evaluation": {"roc_auc": 0.71, "log_loss": 0.45},
    }


def test_a_version_without_tags_says_unknown_rather_than_failing() -> None:
    assert version_tags("w", None, {}, "dispute_model")[DATASET_VERSION_TAG] == ("unknown")
    found = provenance(CHAMPION_ALIAS, "r", {}, {})
    assert found["data_versions"] == {"training_dataset": "unknown"}
    assert found["dagster_run_id"] is None and found["code_versions"] == {}
