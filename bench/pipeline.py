"""The data layer at full scale through the users' path, side by side in one run: a generated
full-history export landed, then materialized by `ml-assets materialize` (a Dagster asset backfill
planned by the daemon) on SQLite and on PostgreSQL, against DuckDB reading the same file; a new
day on a full history against a small one; training inside the asset against plain Keras.

    .venv/bin/python bench/pipeline.py [--rows 5000000] [--export FILE] [--work DIR] [--smoke]

Each phase runs as its own process (the commands a user runs), so its wall time and peak RSS
(summed over the processes it starts: Dagster's code server, webserver, daemon and runs, and
the home's PostgreSQL server with its PgBouncer) are its own. Each backfill's run time is split
into the data code and Dagster's bookkeeping (bench/pipeline_runs.py says how). The full table
goes to bench/results/pipeline.md (`--smoke`: a few thousand complaints over three weeks, the
table in a temp folder); the last line printed is `pipeline ratios: ...`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from pipeline_runs import RUN_SPLIT, Phase, measured
from resources.local_postgres import POOLER_SERVICE
from resources.local_postgres import SERVICE as POSTGRES_SERVICE
from resources.local_services import free_port, running_pid
from smoke import bench_parser, output_path, parse

# The project's command line, from this interpreter's environment.
CLI = str(Path(sys.executable).parent / "ml-assets")
DEFAULT_WORK = Path("/tmp/ml_assets_bench_pipeline")
# A fixed calendar: the export ends on END, the platform's today is two days later, so END + 1
# is the "new day" that lands on top of the history.
END = date(2026, 11, 29)
NEW_DAY = END + timedelta(days=1)
TODAY = END + timedelta(days=2)
STORAGES = ("sqlite", "postgres")
SMALL_HISTORY_DAYS = 7
TRAIN_EPOCHS = 3
DOWN_TIMEOUT_S = 300
# --smoke: three weeks of a few thousand complaints, the new day and small history at 200 a day.
SMOKE_SIZE = {"rows": 4000, "start": END - timedelta(days=20), "day_rows": 200, "epochs": 1}


def environment(home: Path, postgres_port: int | None = None) -> dict[str, str]:
    env = {
        **os.environ,
        "ML_ASSETS_HOME": str(home),
        "DAGSTER_HOME": str(home / "dagster"),
        "ML_ASSETS_TODAY": TODAY.isoformat(),
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    if postgres_port is not None:
        env["ML_ASSETS_POSTGRES_PORT"] = str(postgres_port)
    return env


def postgres_of(home: Path) -> Callable[[], list[int]]:
    """The home's PostgreSQL server and its pooler, as PIDs whose trees count towards a phase's
    memory."""

    def pids() -> list[int]:
        found = (running_pid(home / "logs", name) for name in (POSTGRES_SERVICE, POOLER_SERVICE))
        return [pid for pid in found if pid is not None]

    return pids


DUCKDB_PASS = """
import sys, time, duckdb
began = time.monotonic()
rows = duckdb.sql(
    "select \\"Date received\\" as day, count(*) as n from read_csv(?, header=true, all_varchar=true) "
    "group by 1",
    params=[sys.argv[1]],
).fetchall()
print("DUCKDB", sum(n for _, n in rows), len(rows), time.monotonic() - began)
"""

PLAIN_KERAS = """
import json, sys, time
import duckdb
from ml_assets.model.features import LABEL
from ml_assets.model.network import ModelParams, build_model, model_input_names, to_tensors
from ml_assets.model.training import SPLIT_COLUMN, TRAIN
database, epochs = sys.argv[1], int(sys.argv[2])
with duckdb.connect(database, read_only=True) as conn:
    data = conn.execute("select * from complaints.training_dataset").fetchdf()
train = data[data[SPLIT_COLUMN] == TRAIN]
params = ModelParams()
model = build_model(train, params)
inputs, labels = to_tensors(train, model_input_names(model)), train[LABEL].to_numpy()
began = time.monotonic()
model.fit(inputs, labels, batch_size=params.batch_size, epochs=epochs, verbose=0)
print("PLAIN", len(train), epochs, time.monotonic() - began)
"""

ASSET_TIMING = """
import json, sys
import dagster as dg
with dg.DagsterInstance.from_config(sys.argv[1]) as instance:
    (run,) = instance.get_runs(filters=dg.RunsFilter(job_name="training_job"), limit=1)
    times = {}
    for record in instance.get_records_for_run(run.run_id).records:
        entry = record.event_log_entry
        event = entry.dagster_event
        if event and event.step_key == "dispute_model" and event.event_type_value in (
            "STEP_START", "STEP_SUCCESS"
        ):
            times[event.event_type_value] = entry.timestamp
    dataset = instance.get_latest_materialization_event(dg.AssetKey("training_dataset"))
    model = instance.get_latest_materialization_event(dg.AssetKey("dispute_model"))
    splits = dataset.asset_materialization.metadata["splits"].value
    print("ASSET", json.dumps({
        "seconds": times["STEP_SUCCESS"] - times["STEP_START"],
        "train_rows": splits["train"]["rows"],
        "epochs": model.asset_materialization.metadata["epochs"].value,
        "window": dataset.asset_materialization.metadata["window"].value,
    }))
"""


def last_line(phase: Phase, prefix: str) -> list[str]:
    """The words after `prefix` on the phase's line that starts with it."""
    return next(x for x in phase.output.splitlines() if x.startswith(prefix)).split()[1:]


def parse_args() -> argparse.Namespace:
    parser = bench_parser(__doc__)
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument(
        "--start",
        type=date.fromisoformat,
        default=date(2011, 12, 1),
        help="first day of the export (default: the CFPB's first day, the full history)",
    )
    parser.add_argument(
        "--export",
        type=Path,
        help="an export `ml-assets generate --export` wrote before, ending on "
        f"{END}, to land instead of generating one (the generate phase is then not measured)",
    )
    parser.add_argument(
        "--day-rows", type=int, default=3500, help="complaints of the new day and the small history"
    )
    parser.add_argument("--epochs", type=int, default=TRAIN_EPOCHS, help="of the training phase")
    parser.add_argument("--work", type=Path, help=f"scratch folder (default {DEFAULT_WORK})")
    parser.add_argument("--out", help="the Markdown table (default bench/results/pipeline.md)")
    args = parse(parser, SMOKE_SIZE)
    if args.work is None:
        # A smoke run's scratch is its own, never a full run's.
        args.work = Path(tempfile.mkdtemp(prefix="bench_pipeline_")) if args.smoke else DEFAULT_WORK
    return args


def export_phases(args: argparse.Namespace, export: Path, full: Path) -> dict[str, Phase]:
    """Generate the export (unless given) and read it with DuckDB: the limit of a pass over it."""
    phases = {}
    if args.export is None:
        period = ["--start", str(args.start), "--end", str(END)]
        phases["generate"] = measured(
            "generate",
            [CLI, "generate", "--export", str(export), "--rows", str(args.rows), *period],
            environment(full),
        )
    phases["duckdb"] = measured(
        "duckdb", [sys.executable, "-c", DUCKDB_PASS, str(export)], environment(full)
    )
    return phases


def data_layer(
    export: Path, homes: dict[str, Path], ports: dict[str, int | None]
) -> tuple[dict[str, Phase], dict[str, dict[str, float]]]:
    """Land the export once, then materialize the data layer on each storage: the backfill's
    wall time and memory, and its runs' time split into data code and bookkeeping."""
    first, *others = STORAGES
    env = {storage: environment(homes[storage], ports[storage]) for storage in STORAGES}
    phases = {"land": measured("land", [CLI, "land-cfpb", str(export)], env[first])}
    for storage in others:
        # The same landing files (hard links: nothing writes to them), the same command: landing
        # does not touch the instance, so its time counts towards each storage's history.
        shutil.copytree(homes[first] / "landing", homes[storage] / "landing", copy_function=os.link)
    splits = {}
    for storage in STORAGES:
        measured(f"init ({storage})", [CLI, "init", "--storage", storage], env[storage])
        phases[f"materialize_{storage}"] = measured(
            f"materialize ({storage})",
            [CLI, "materialize"],
            env[storage],
            services=postgres_of(homes[storage]),
        )
        split = measured(
            f"runs of the backfill ({storage})",
            [sys.executable, "-c", RUN_SPLIT, str(homes[storage] / "dagster")],
            env[storage],
        )
        splits[storage] = json.loads(split.output.split("SPLIT ", 1)[1].splitlines()[0])
    return phases, splits


def new_day(args: argparse.Namespace, full: Path, small: Path) -> dict[str, Phase]:
    """One new day on top of the full history, and the same day on top of a small one."""
    rows = ["--rows-per-day", str(args.day_rows)]
    day = ["generate", "--start", str(NEW_DAY), "--days", "1", *rows]
    only_new_day = ["materialize", "--start", str(NEW_DAY), "--end", str(NEW_DAY)]
    measured("new day files", [CLI, *day], environment(full))
    phases = {
        "new_day_full": measured("new day, full history", [CLI, *only_new_day], environment(full))
    }
    history = ["generate", "--start", str(NEW_DAY - timedelta(days=SMALL_HISTORY_DAYS))]
    measured(
        "small history",
        [CLI, *history, "--days", str(SMALL_HISTORY_DAYS + 1), *rows],
        environment(small),
    )
    measured(
        "small history data layer", [CLI, "materialize", "--end", str(END)], environment(small)
    )
    phases["new_day_small"] = measured(
        f"new day, {SMALL_HISTORY_DAYS}-day history", [CLI, *only_new_day], environment(small)
    )
    return phases


def training(args: argparse.Namespace, full: Path) -> tuple[dict[str, Phase], dict[str, Any]]:
    """Train through the asset, then plain `model.fit` on the same rows for as many epochs."""
    phases = {
        "train": measured(
            "train (60-day window)", [CLI, "train", "--epochs", str(args.epochs)], environment(full)
        )
    }
    timing = measured(
        "asset timing",
        [sys.executable, "-c", ASSET_TIMING, str(full / "dagster")],
        environment(full),
    )
    asset = json.loads(timing.output.split("ASSET ", 1)[1].splitlines()[0])
    phases["plain_keras"] = measured(
        "plain keras",
        [sys.executable, "-c", PLAIN_KERAS, str(full / "warehouse.duckdb"), str(asset["epochs"])],
        environment(full),
    )
    return phases, asset


def ratios(
    phases: dict[str, Phase], asset: dict[str, Any], splits: dict[str, dict[str, float]]
) -> dict[str, float]:
    """The figures the table's targets apply to."""
    _, _, duckdb_s = last_line(phases["duckdb"], "DUCKDB")
    plain_rows, plain_epochs, plain_s = last_line(phases["plain_keras"], "PLAIN")
    asset_rate = asset["train_rows"] * asset["epochs"] / asset["seconds"]
    plain_rate = int(plain_rows) * int(plain_epochs) / float(plain_s)
    history = {s: phases["land"].seconds + phases[f"materialize_{s}"].seconds for s in STORAGES}
    share = {s: 1 - splits[s]["data_seconds"] / splits[s]["run_seconds"] for s in STORAGES}
    return {
        **{f"full_history_minutes_{s}": history[s] / 60 for s in STORAGES},
        # Of the embedded default, SQLite; the table has both.
        "bookkeeping_share": share["sqlite"],
        "new_day_vs_small_history": phases["new_day_full"].seconds
        / phases["new_day_small"].seconds,
        "peak_rss_gib": max(p.peak_rss_gib for n, p in phases.items() if n != "generate"),
        "train_vs_plain_keras": asset_rate / plain_rate,
        "land_vs_duckdb_read": float(duckdb_s) / min(history.values()),
        **{f"bookkeeping_share_{s}": share[s] for s in STORAGES},
        "asset_examples_per_s": asset_rate,
        "plain_examples_per_s": plain_rate,
    }


# The figures of the last line, in its order (the table shows every figure).
LAST_LINE = (
    "full_history_minutes_sqlite",
    "full_history_minutes_postgres",
    "bookkeeping_share",
    "new_day_vs_small_history",
    "peak_rss_gib",
    "train_vs_plain_keras",
)
TARGETS = {
    "full_history_minutes_sqlite": "<= 15 (faster storage), <= 20 (other)",
    "full_history_minutes_postgres": "<= 15 (faster storage), <= 20 (other)",
    "new_day_vs_small_history": "<= 1.2",
    "peak_rss_gib": "<= 4",
    "train_vs_plain_keras": ">= 0.8",
}


def summary(
    phases: dict[str, Phase],
    asset: dict[str, Any],
    figures: dict[str, float],
    splits: dict[str, dict[str, float]],
    export: Path,
) -> list[str]:
    """The Markdown table of bench/results/pipeline.md."""
    rows, days, _ = last_line(phases["duckdb"], "DUCKDB")
    per_row = ("generate", "duckdb", "land", *(f"materialize_{s}" for s in STORAGES))
    table = ["| phase | seconds | rows/s | peak RSS GiB |", "| --- | ---: | ---: | ---: |"]
    for name, phase in phases.items():
        rate = int(rows) / phase.seconds if name in per_row else None
        table.append(
            f"| {name} | {phase.seconds:.1f} | {f'{rate:,.0f}' if rate else '-'} | "
            f"{phase.peak_rss_gib:.2f} |"
        )
    runs = ["| storage | runs | events | run seconds | data code | bookkeeping |"]
    runs.append("| --- | ---: | ---: | ---: | ---: | ---: |")
    for storage, split in splits.items():
        data, total = split["data_seconds"], split["run_seconds"]
        runs.append(
            f"| {storage} | {split['runs']:.0f} | {split['events']:,.0f} | {total:,.0f} | "
            f"{data:,.0f} s | {1 - data / total:.1%} |"
        )
    shown = [k for k in figures if not k.endswith("_per_s")]
    return [
        f"# bench/pipeline.py: {int(rows):,} complaints, {days} days ({date.today().isoformat()})",
        "",
        f"Export {export.stat().st_size / 1e9:.2f} GB, plain CSV; machine: {os.cpu_count()} cores.",
        "Peak RSS sums each phase's process tree (Dagster's services and their runs) and the home's "
        "PostgreSQL server with its PgBouncer, shared memory (PostgreSQL's buffers, which every "
        "server process maps) counted once.",
        "",
        *table,
        "",
        "The backfills' runs, launch to end, summed over runs (two run at once): the data code "
        "(reading inputs, computing, writing outputs) against Dagster's bookkeeping (launching "
        "the run and loading the code, planned events, each day's materialization, data "
        "version and check, storing every event).",
        "",
        *runs,
        "",
        f"Training: {asset['train_rows']:,} train rows of the window {asset['window']}, "
        f"{asset['epochs']} epochs: {figures['asset_examples_per_s']:,.0f} examples/s in the asset "
        "(the whole dispute_model step: fit, early stopping, threshold, MLflow logging and "
        f"registration) against {figures['plain_examples_per_s']:,.0f} examples/s of a plain "
        "`model.fit` on the same arrays.",
        "",
        "| figure | value | target |",
        "| --- | ---: | --- |",
        *(f"| {k} | {figures[k]:.3f} | {TARGETS.get(k, '-')} |" for k in shown),
    ]


def stop_postgres(home: Path, port: int | None) -> None:
    """Stop what a home's commands left running (its PostgreSQL server), by PID."""
    subprocess.run(
        [CLI, "down"], env=environment(home, port), timeout=DOWN_TIMEOUT_S, capture_output=True
    )


def main() -> int:
    """Run the phases, print and write the table, then the ratios line."""
    args = parse_args()
    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    export = args.export or args.work / "complaints.csv"
    homes = {storage: args.work / f"full_{storage}" for storage in STORAGES}
    small = args.work / "small"
    ports = {"sqlite": None, "postgres": free_port()}
    try:
        phases = export_phases(args, export, homes["sqlite"])
        landed, splits = data_layer(export, homes, ports)
        phases.update(landed)
        phases.update(new_day(args, homes["sqlite"], small))
        trained, asset = training(args, homes["sqlite"])
        phases.update(trained)
    finally:
        stop_postgres(homes["postgres"], ports["postgres"])
    figures = ratios(phases, asset, splits)
    lines = summary(phases, asset, figures, splits, export)
    out = output_path(args.out, "pipeline.md", args.smoke)
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"written {out}")
    print("pipeline ratios: " + " ".join(f"{k}={figures[k]:.3f}" for k in LAST_LINE))
    return 0


if __name__ == "__main__":
    sys.exit(main())
