"""The benches that need nothing prepared run to their last line at their `--smoke` size; no figure
is asserted (pipeline.py generates, lands, materializes and trains in a scratch home of its own)."""

from pathlib import Path

import pytest

from ml_assets_tests.bench.smoke_runs import last_line


def test_prediction_log(tmp_path: Path) -> None:
    out = tmp_path / "prediction_log.md"
    assert last_line("prediction_log.py", "--out", str(out)).startswith("prediction log ratios: ")
    assert out.exists()


@pytest.mark.e2e  # the project's command lines: generate, land, materialize, train
@pytest.mark.services  # `ml-assets materialize` starts dagster dev for its backfills
@pytest.mark.timeout(900)
def test_pipeline(tmp_path: Path) -> None:
    out = tmp_path / "pipeline.md"
    line = last_line("pipeline.py", "--work", str(tmp_path / "work"), "--out", str(out))
    assert line.startswith("pipeline ratios: land_vs_duckdb_read=")
    assert out.exists()
