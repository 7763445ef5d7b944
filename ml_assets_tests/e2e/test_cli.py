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

from ml_assets.definitions import build_definitions
from ml_assets.instance import init_home
from ml_assets.jobs import DATA_LAYER_KEYS
from ml_assets.model.blessing import BlessingPolicy
from ml_assets.settings import Settings
from ml_assets_tests.e2e.dagster_daemon import warehouse_tables
from ml_assets_tests.world import FIRST_MODEL_MARGIN, LEARNABLE, YESTERDAY
from resources.home import ProjectHome

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


@pytest.mark.services  # `ml-assets materialize` starts Dagster for its backfill
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
    # A backfill through a Dagster of its own, stopped at the end; consecutive days are one
    # run, each day still has its own materializations.
    assert "starting Dagster for this backfill" in out
    stopped = "dagster-backfill-daemon, dagster-backfill-webserver, dagster-backfill-code-server"
    assert f"stopped what this command started: {stopped}" in out
    assert "2016-01-01..2016-01-03 (3 days): data layer ok" in out
    assert re.search(r"backfill \w+: 3 days in 1 run, 3 ok, 0 failed", out)
    assert not list((home / "logs").glob("*.pid"))
    counts = ok(run(home, str(BIN / "ml-assets"), "counts"))
    read, valid, rejected = map(
        int, re.search(r"read (\d+), valid (\d+), rejected (\d+)", counts).groups()
    )
    assert read == valid + rejected and rejected > 0
    # Landing files, warehouse, Dagster's storage: owner-only, whatever the caller's umask.
    assert readable_by_others(home) == []
    with dg.DagsterInstance.from_config(str(home / "dagster")) as instance:
        (run_record,) = instance.get_runs()  # the backfill's: no sensor ran beside it
        assert run_record.is_success and "dagster/backfill" in run_record.tags
        # Closed by the daemon before the command stopped it: nothing left open.
        (backfill,) = instance.get_backfills()
        assert backfill.backfill_id == run_record.tags["dagster/backfill"]
        assert backfill.status.value == "COMPLETED_SUCCESS"
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


def _one_day_at_a_time(home: Path, days: list[str]) -> None:
    """The data layer of each day in a run of its own, in process: Dagster's single-partition runs."""
    project = ProjectHome.at(home)
    init_home(project)
    job = build_definitions(project, Settings(home=home)).resolve_job_def("data_layer_job")
    with dg.DagsterInstance.from_config(str(project.dagster_home)) as instance:
        for day in days:
            assert job.execute_in_process(partition_key=day, instance=instance).success


@pytest.mark.services
def test_the_backfill_gives_what_one_day_at_a_time_gives(tmp_path: Path) -> None:
    backfilled, daily = tmp_path / "backfilled", tmp_path / "daily"
    # Three stretches of consecutive days: the daemon makes a run of each.
    for start in ("2016-01-01", "2016-01-10", "2016-01-20"):
        ok(run(backfilled, str(BIN / "ml-assets"), "generate", "--start", start, "--days", "2"))
    shutil.copytree(backfilled / "landing", daily / "landing")
    out = ok(run(backfilled, str(BIN / "ml-assets"), "materialize"))
    assert out.count("data layer ok") == 3 and "6 days in 3 runs, 6 ok, 0 failed" in out
    days = ["2016-01-01", "2016-01-02", "2016-01-10", "2016-01-11", "2016-01-20", "2016-01-21"]
    _one_day_at_a_time(daily, days)
    with dg.DagsterInstance.from_config(str(backfilled / "dagster")) as instance:
        runs = instance.get_runs()
        assert len(runs) == 3 and all(r.is_success for r in runs)
        assert len({r.tags["dagster/backfill"] for r in runs}) == 1
    assert warehouse_tables(backfilled) == warehouse_tables(daily)
    versions = _data_versions(backfilled)
    assert len(versions) == len(DATA_LAYER_KEYS) * 6 and versions == _data_versions(daily)


@pytest.mark.services
def test_a_failed_day_fails_the_command_which_names_it(tmp_path: Path) -> None:
    home = tmp_path / "home"
    ok(run(home, str(BIN / "ml-assets"), "generate", "--start", "2016-01-01", "--days", "2"))
    unreadable = home / "landing" / "complaints" / "2016-01-05" / "other.csv"
    unreadable.parent.mkdir()
    unreadable.write_text("a,b\n1,2\n")
    result = run(home, str(BIN / "ml-assets"), "materialize")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "2016-01-01..2016-01-02 (2 days): data layer ok" in result.stdout
    assert "2016-01-05: data layer FAILED" in result.stdout
    assert "3 days in 2 runs, 2 ok, 1 failed" in result.stdout
    assert "failed partitions: 2016-01-05 (see the runs in the Dagster UI)" in result.stderr
    # What failed, and why, in the step's own words.
    assert "raw_complaints: complaints/2016-01-05/other.csv: not a CFPB complaints export" in (
        result.stderr
    )


@pytest.mark.real_data
@pytest.mark.services
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


@pytest.mark.services
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
