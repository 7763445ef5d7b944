"""End to end through the real command lines: `ml-assets` and the Dagster CLI, in subprocesses."""

import os
import re
import shutil
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import dagster as dg
import pytest

from ml_assets.jobs import DATA_LAYER_KEYS
from ml_assets.model.blessing import BlessingPolicy
from ml_assets_tests.e2e.dagster_daemon import warehouse_tables
from ml_assets_tests.world import FIRST_MODEL_MARGIN, LEARNABLE, YESTERDAY

AUC_FLOOR = BlessingPolicy().auc_floor

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]


# What a user's shell usually has: group and others may read what is created.
OPEN_UMASK = 0o022


def run(home: Path, *args: str, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ML_ASSETS_HOME": str(home), "DAGSTER_HOME": str(home / "dagster")}
    return subprocess.run(
        args,
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        preexec_fn=lambda: os.umask(OPEN_UMASK),
    )


def readable_by_others(root: Path) -> list[str]:
    """Paths under root (root included) whose mode lets group or others in."""
    return [str(p) for p in [root, *root.rglob("*")] if p.stat().st_mode & 0o077]


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, (
        f"{result.args} failed:\n{result.stdout}\n{result.stderr[-3000:]}"
    )
    return result.stdout


def test_generate_materialize_and_count_synthetic_days(tmp_path: Path) -> None:
    home = tmp_path / "home"
    out = ok(
        run(
            home,
            str(BIN / "ml-assets"),
            "generate",
            "--start",
            "2016-01-01",
            "--days",
            "3",
            "--rows-per-day",
            "60",
            "--defect-rate",
            "0.05",
        )
    )
    assert "generated 3 daily landing files 2016-01-01..2016-01-03" in out
    out = ok(run(home, str(BIN / "ml-assets"), "materialize"))
    # Consecutive days are one run; each day still has its own materializations.
    assert "2016-01-01..2016-01-03 (3 days): data layer ok" in out
    counts = ok(run(home, str(BIN / "ml-assets"), "counts"))
    read, valid, rejected = map(
        int, re.search(r"read (\d+), valid (\d+), rejected (\d+)", counts).groups()
    )
    assert read == valid + rejected and rejected > 0
    # Landing files, warehouse, Dagster's storage: owner-only, whatever the caller's umask.
    assert readable_by_others(home) == []
    with dg.DagsterInstance.from_config(str(home / "dagster")) as instance:
        (run_record,) = instance.get_runs()
        assert run_record.is_success
        assert run_record.tags["dagster/asset_partition_range_start"] == "2016-01-01"
        assert run_record.tags["dagster/asset_partition_range_end"] == "2016-01-03"
        materialized = instance.get_materialized_partitions(dg.AssetKey("complaint_features"))
        assert materialized == {"2016-01-01", "2016-01-02", "2016-01-03"}


def _data_versions(home: Path) -> dict[tuple[str, str], str]:
    """Per data-layer asset and day, the data version of its latest materialization."""
    versions: dict[tuple[str, str], str] = {}
    with dg.DagsterInstance.from_config(str(home / "dagster")) as instance:
        for key in DATA_LAYER_KEYS:
            for record in instance.fetch_materializations(key, limit=1000).records:  # newest first
                versions.setdefault(
                    (key.to_user_string(), record.partition_key),
                    record.asset_materialization.tags["dagster/data_version"],
                )
    return versions


def test_runs_in_parallel_processes_give_what_one_process_gives(tmp_path: Path) -> None:
    parallel, serial = tmp_path / "parallel", tmp_path / "serial"
    # Three stretches of consecutive days: three runs.
    for start in ("2016-01-01", "2016-01-10", "2016-01-20"):
        ok(run(parallel, str(BIN / "ml-assets"), "generate", "--start", start, "--days", "2"))
    shutil.copytree(parallel / "landing", serial / "landing")
    out = ok(run(parallel, str(BIN / "ml-assets"), "materialize", "--parallel", "2"))
    ok(run(serial, str(BIN / "ml-assets"), "materialize", "--parallel", "1"))
    assert out.count("data layer ok") == 3 and "3 runs, 2 at a time in worker processes" in out
    with dg.DagsterInstance.from_config(str(parallel / "dagster")) as instance:
        step_starts = [
            record.event_log_entry.dagster_event
            for run_record in instance.get_runs()
            for record in instance.get_records_for_run(
                run_record.run_id, of_type=dg.DagsterEventType.STEP_START
            ).records
        ]
        # Worker processes, not the command's own: at most two (a busy machine may leave one idle).
        assert 1 <= len({event.pid for event in step_starts}) <= 2
    assert warehouse_tables(parallel) == warehouse_tables(serial)
    versions = _data_versions(parallel)
    assert len(versions) == 5 * 6 and versions == _data_versions(serial)


@pytest.mark.real_data
def test_real_labelled_export_lands_and_reconciles_to_every_row(
    tmp_path: Path, real_data_dir: Path
) -> None:
    home = tmp_path / "home"
    out = ok(
        run(
            home,
            str(BIN / "ml-assets"),
            "land-cfpb",
            str(real_data_dir / "cfpb_export_2013_2017_labeled.csv"),
        )
    )
    assert "read 3186 rows; landed 3186 rows in 98 day files" in out
    ok(run(home, str(BIN / "ml-assets"), "materialize"))
    counts = ok(run(home, str(BIN / "ml-assets"), "counts"))
    assert "98 partitions: read 3186" in counts
    assert "valid + rejected = 3186" in counts


def test_cli_errors_are_clear_and_non_zero(tmp_path: Path) -> None:
    bad = tmp_path / "odd.csv"
    bad.write_text("a,b\n1,2\n")
    result = run(tmp_path / "home", str(BIN / "ml-assets"), "land-cfpb", str(bad))
    assert result.returncode == 1
    assert "odd.csv: not a CFPB complaints export" in result.stderr
    result = run(tmp_path / "home", str(BIN / "ml-assets"), "materialize")
    assert result.returncode == 1 and "run `ml-assets generate` first" in result.stderr


def test_dagster_cli_loads_the_code_location_and_materializes_a_partition(tmp_path: Path) -> None:
    home = tmp_path / "home"
    ok(
        run(
            home,
            str(BIN / "ml-assets"),
            "generate",
            "--start",
            "2016-02-01",
            "--days",
            "1",
            "--rows-per-day",
            "40",
        )
    )
    ok(run(home, str(BIN / "dagster"), "definitions", "validate", "-w", "workspace.yaml"))
    ok(run(home, str(BIN / "ml-assets"), "init"))
    result = run(
        home,
        str(BIN / "dagster"),
        "job",
        "execute",
        "-m",
        "ml_assets.definitions",
        "-j",
        "data_layer_job",
        "--tags",
        '{"dagster/partition": "2016-02-01"}',
    )
    ok(result)
    with dg.DagsterInstance.from_config(str(home / "dagster")) as instance:
        record = instance.get_latest_materialization_event(dg.AssetKey("validated_complaints"))
        assert record is not None and record.asset_materialization.partition == "2016-02-01"


def test_train_twice_then_roll_back_from_the_command_line(tmp_path: Path) -> None:
    home = tmp_path / "home"
    cli = str(BIN / "ml-assets")
    signal = ["--narrative-share", str(LEARNABLE.share), "--text-signal", str(LEARNABLE.strength)]
    generated = ok(run(home, cli, "generate", "--days", "12", "--rows-per-day", "400", *signal))
    # The 12 days up to the (pinned) yesterday, as a live feed lands them.
    assert f"{YESTERDAY - timedelta(days=11)}..{YESTERDAY}" in generated
    ok(run(home, cli, "materialize"))
    first = ok(run(home, cli, "train", "--window-days", "12", "--evaluation-days", "4"))
    auc = float(re.search(r"'roc_auc': ([0-9.]+)", first).group(1))
    assert auc >= AUC_FLOOR + FIRST_MODEL_MARGIN, first
    assert "check blessing: passed" in first and "the challenger is the champion now" in first
    second = ok(run(home, cli, "train", "--window-days", "12", "--evaluation-days", "4"))
    assert "check blessing: passed" in second  # the same data and seed: as good as the champion
    assert "'previous': '1'" in second
    assert "version 2 -> 1" in ok(run(home, cli, "rollback"))
    result = run(home, cli, "rollback")
    assert result.returncode == 1 and "nothing to roll back" in result.stderr
    assert not (REPO / "mlruns").exists()
