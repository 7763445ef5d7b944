from pathlib import Path

import dagster as dg

from ml_assets.definitions import build_definitions, defs
from ml_assets.ingest.landing import complaints_root
from resources.home import ProjectHome

ASSETS = {
    "raw_complaints",
    "validated_complaints",
    "rejected_complaints",
    "complaint_statistics",
    "complaint_features",
    "label_log",
    "company_history",
    "feature_store",
    "training_dataset",
    "dispute_model",
    "model_evaluation",
    "champion_model",
    "deployed_model",
    "complaint_scores",
    "live_promotion",
    "served_predictions",
    "quarantined_predictions",
    "live_performance",
    "input_drift",
}


def test_definitions_load_with_every_asset_check_job_and_sensor() -> None:
    graph = defs.resolve_asset_graph()
    assert {k.to_user_string() for k in graph.get_all_asset_keys()} == ASSETS
    assert {k.name for k in graph.asset_check_keys} == {
        "rows_reconcile",
        "typed_contract",
        "no_unmasked_pii",
        "rejected_rate",
        "label_balance",
        "blessing",
        "log_lines_readable",
        "landed_inputs_drift",
        "served_inputs_skew",
    }
    assert defs.resolve_job_def("data_layer_job").partitions_def is not None
    assert defs.resolve_job_def("training_job").partitions_def is None
    for sensor in ("landing_file_sensor", "prediction_log_sensor"):
        assert defs.resolve_sensor_def(sensor).default_status == dg.DefaultSensorStatus.RUNNING
    for key in graph.get_all_asset_keys():
        assert graph.get(key).code_version, f"{key} has no code_version"


def test_resources_point_into_the_project_home(tmp_path: Path) -> None:
    home = ProjectHome(tmp_path)
    resources = build_definitions(home).resources
    assert resources["landing_zone"].root == str(tmp_path / "landing")
    # The sensor reads the day folders where the landing code writes them.
    assert resources["landing_zone"].days_root == complaints_root(home.landing)
    assert resources["io_manager"].database == str(tmp_path / "warehouse.duckdb")
    # The replicas read the online store where feature_store writes it.
    assert resources["ray_cluster"].feature_store == str(home.feature_store)
    assert home.feature_store.is_relative_to(tmp_path)
