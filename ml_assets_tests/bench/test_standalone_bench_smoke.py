"""The benches that need nothing prepared run to their last line at their `--smoke` size; no figure
is asserted (pipeline.py generates, lands, materializes and trains in a scratch home of its own)."""

import tempfile
from pathlib import Path

import pytest

from ml_assets_tests.bench.smoke_runs import last_line


def test_prediction_log(tmp_path: Path) -> None:
    out = tmp_path / "prediction_log.md"
    assert last_line("prediction_log.py", "--out", str(out)).startswith("prediction log ratios: ")
    assert out.exists()


@pytest.mark.e2e  # the project's command lines: generate, land, materialize, train
@pytest.mark.services  # `ml-assets materialize` starts dagster dev for its backfills
@pytest.mark.timeout(1200)
def test_pipeline(tmp_path: Path) -> None:
    out = tmp_path / "pipeline.md"
    # Five backfills, each waiting on the daemon's 30-second loop to plan it and to close it.
    work = ["--work", str(tmp_path / "work"), "--out", str(out)]
    line = last_line("pipeline.py", *work, timeout_s=1080)
    assert line.startswith("pipeline ratios: full_history_minutes_sqlite=")
    assert "full_history_minutes_postgres=" in line and "bookkeeping_share=" in line
    assert out.exists()


@pytest.mark.real_data  # its false positives and throughput are measured on the real narratives
def test_pii_recall(tmp_path: Path, real_data_dir: Path) -> None:
    out = tmp_path / "pii_recall.md"
    narratives = str(real_data_dir / "narratives_by_product.csv")
    line = last_line("pii_recall.py", "--narratives", narratives, "--out", str(out))
    assert line.startswith("pii recall figures: min_structured_recall=")
    assert "name_recall=" in line and "fp_share_now=" in line and "texts_per_s_now=" in line
    assert "| date of birth |" in out.read_text()


def test_storages(tmp_path: Path) -> None:
    out = tmp_path / "storages.md"
    # PostgreSQL's socket path must fit 107 bytes: pytest's tmp_path (its run counter, the xdist
    # worker, the test's name) plus a case's folder and port may not.
    with tempfile.TemporaryDirectory(prefix="st", dir="/tmp") as work:
        line = last_line("storages.py", "--work", work, "--out", str(out))
    assert line.startswith("storage ratios: stock_sqlite_vs_project=")
    assert "stock_postgres_vs_project=" in line
    # Each case ran on the storage it names.
    table = out.read_text()
    for storage in (
        "ProjectSqliteEventLogStorage",
        "SqliteEventLogStorage",
        "PostgresEventLogStorage",
    ):
        assert f"| {storage} |" in table


def test_profile_run(tmp_path: Path) -> None:
    out = tmp_path / "profile.md"
    line = last_line("profile_run.py", "--work", str(tmp_path / "home"), "--out", str(out))
    assert line.startswith("profile ratios: run_seconds=")
    report = out.read_text()
    # The project's own assets and Dagster's event storage both show in their tables.
    assert "raw_complaints" in report and "store_event" in report


@pytest.mark.e2e  # a Ray head and worker, `ml-assets materialize` on both launchers
@pytest.mark.services  # Ray, and the dagster dev that `materialize` starts
def test_ray_runs(tmp_path: Path) -> None:
    out = tmp_path / "ray_runs.md"
    line = last_line("ray_runs.py", "--out", str(out))
    assert line.startswith("ray_runs ratios: run=")
    assert "launch_to_end=" in line and "command=" in line
    assert "| ray |" in out.read_text() and "| local |" in out.read_text()


@pytest.mark.real_data  # the AUC with and without history is measured on the real export
def test_history_features(tmp_path: Path, real_data_dir: Path) -> None:
    out = tmp_path / "history_features"
    export = str(real_data_dir / "cfpb_export_2013_2017_labeled.csv")
    line = last_line("history_features.py", "--export", export, "--out", str(out))
    assert line.startswith("history features: lr_auc_without=")
    assert "keras_auc_with=" in line
    assert "| logistic regression |" in out.with_suffix(".md").read_text()


def test_feature_store_latency(tmp_path: Path) -> None:
    out = tmp_path / "feature_store_latency"
    line = last_line("feature_store_latency.py", "--out", str(out))
    assert line.startswith("feature store latency ratios: p50_1=")
    assert (
        "p99_32=" in line
        and "| 32 | with the store's lookup |" in out.with_suffix(".md").read_text()
    )
