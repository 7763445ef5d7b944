"""The data layer at full scale, side by side in one run: a generated full-history export through
landing, validation, statistics and features, against DuckDB reading the same file, plus a new
day on a full history against a small one, and training inside the asset against plain Keras.

    .venv/bin/python bench/pipeline.py [--rows 5000000] [--work DIR] [--smoke]

Each phase runs as its own process (the commands a user runs), so its wall time and peak RSS
(summed over the processes it starts) are its own. The full table goes to
bench/results/pipeline.md (`--smoke`: a few thousand complaints over three weeks, the table in a
temp folder); the last line printed is `pipeline ratios: ...`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import psutil

from smoke import bench_parser, output_path, parse

# The project's command line, from this interpreter's environment.
CLI = str(Path(sys.executable).parent / "ml-assets")
DEFAULT_WORK = Path("/tmp/ml_assets_bench_pipeline")
# A fixed calendar: the export ends on END, the platform's today is two days later, so END + 1
# is the "new day" that lands on top of the history.
END = date(2026, 11, 29)
NEW_DAY = END + timedelta(days=1)
TODAY = END + timedelta(days=2)
PHASE_TIMEOUT_S = 3 * 3600
SMALL_HISTORY_DAYS = 7
TRAIN_EPOCHS = 3
RSS_SAMPLE_S = 0.2
# --smoke: three weeks of a few thousand complaints, the new day and small history at 200 a day.
SMOKE_SIZE = {"rows": 4000, "start": END - timedelta(days=20), "day_rows": 200, "epochs": 1}


@dataclass
class Phase:
    """One measured command."""

    name: str
    seconds: float
    peak_rss_gib: float
    output: str


def tree_rss_bytes(root: psutil.Process) -> int:
    """RSS of a process and all its descendants, summed (workers of a pool run side by side)."""
    total = 0
    for process in [root, *root.children(recursive=True)]:
        # A process that ended between the listing and the reading has no memory left to count.
        with contextlib.suppress(psutil.NoSuchProcess):
            total += process.memory_info().rss
    return total


# Runs the command and prints the largest RSS any process of its tree reached (the kernel's
# RUSAGE_CHILDREN of this fresh process: exact, but of one process, not of several side by side).
PEAK_WRAPPER = (
    "import resource, subprocess, sys; "
    "code = subprocess.call(sys.argv[1:]); "
    "print('PEAK_RSS_KB', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); "
    "sys.exit(code)"
)


def measured(name: str, command: list[str], env: dict[str, str]) -> Phase:
    """Run a command to the end; its wall time and peak RSS: the larger of the summed RSS of its
    process tree (sampled every RSS_SAMPLE_S, so a short peak can slip between samples) and the
    exact peak of its largest process."""
    began = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-c", PEAK_WRAPPER, *command],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    root = psutil.Process(process.pid)
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.wait(RSS_SAMPLE_S):
            try:
                peak = max(peak, tree_rss_bytes(root))
            except psutil.NoSuchProcess:
                return

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        output, _ = process.communicate(timeout=PHASE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        raise
    finally:
        done.set()
        sampler.join()
    seconds = time.monotonic() - began
    if process.returncode != 0:
        raise RuntimeError(f"{name} failed ({process.returncode}):\n{output[-4000:]}")
    line = next(x for x in output.splitlines() if x.startswith("PEAK_RSS_KB"))
    largest = int(line.split()[1]) * 1024
    phase = Phase(name, seconds, max(peak, largest) / 1024**3, output)
    print(f"{name}: {seconds:.1f} s, peak RSS {phase.peak_rss_gib:.2f} GiB", flush=True)
    return phase


def environment(home: Path) -> dict[str, str]:
    return {
        **os.environ,
        "ML_ASSETS_HOME": str(home),
        "DAGSTER_HOME": str(home / "dagster"),
        "ML_ASSETS_TODAY": TODAY.isoformat(),
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }


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
from ml_assets.model.features import FEATURE_COLUMNS, LABEL
from ml_assets.model.network import ModelParams, build_model, to_tensors
from ml_assets.model.training import SPLIT_COLUMN, TRAIN
database, epochs = sys.argv[1], int(sys.argv[2])
with duckdb.connect(database, read_only=True) as conn:
    data = conn.execute("select * from complaints.training_dataset").fetchdf()
train = data[data[SPLIT_COLUMN] == TRAIN]
params = ModelParams()
model = build_model(train[list(FEATURE_COLUMNS)], params)
inputs, labels = to_tensors(train[list(FEATURE_COLUMNS)]), train[LABEL].to_numpy()
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


def data_layer(args: argparse.Namespace, export: Path, full: Path) -> dict[str, Phase]:
    """Generate the export, read it with DuckDB, land it and materialize the data layer."""
    period = ["--start", str(args.start), "--end", str(END)]
    phases = {
        "generate": measured(
            "generate",
            [CLI, "generate", "--export", str(export), "--rows", str(args.rows), *period],
            environment(full),
        ),
        "duckdb": measured(
            "duckdb", [sys.executable, "-c", DUCKDB_PASS, str(export)], environment(full)
        ),
    }
    phases["land"] = measured("land", [CLI, "land-cfpb", str(export)], environment(full))
    phases["materialize"] = measured("materialize", [CLI, "materialize"], environment(full))
    return phases


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


def ratios(phases: dict[str, Phase], asset: dict[str, Any]) -> dict[str, float]:
    """The figures the table's targets apply to."""
    _, _, duckdb_s = last_line(phases["duckdb"], "DUCKDB")
    plain_rows, plain_epochs, plain_s = last_line(phases["plain_keras"], "PLAIN")
    data_layer_s = phases["land"].seconds + phases["materialize"].seconds
    asset_rate = asset["train_rows"] * asset["epochs"] / asset["seconds"]
    plain_rate = int(plain_rows) * int(plain_epochs) / float(plain_s)
    return {
        "land_vs_duckdb_read": float(duckdb_s) / data_layer_s,
        "full_history_minutes": data_layer_s / 60,
        "new_day_vs_small_history": phases["new_day_full"].seconds
        / phases["new_day_small"].seconds,
        "peak_rss_gib": max(p.peak_rss_gib for n, p in phases.items() if n != "generate"),
        "train_vs_plain_keras": asset_rate / plain_rate,
        "asset_examples_per_s": asset_rate,
        "plain_examples_per_s": plain_rate,
    }


def summary(
    phases: dict[str, Phase], asset: dict[str, Any], figures: dict[str, float], export: Path
) -> list[str]:
    """The Markdown table of bench/results/pipeline.md."""
    rows, days, _ = last_line(phases["duckdb"], "DUCKDB")
    table = ["| phase | seconds | rows/s | peak RSS GiB |", "| --- | ---: | ---: | ---: |"]
    for name, phase in phases.items():
        rate = (
            int(rows) / phase.seconds
            if name in ("generate", "duckdb", "land", "materialize")
            else None
        )
        table.append(
            f"| {name} | {phase.seconds:.1f} | {f'{rate:,.0f}' if rate else '-'} | "
            f"{phase.peak_rss_gib:.2f} |"
        )
    return [
        f"# bench/pipeline.py: {int(rows):,} complaints, {days} days ({date.today().isoformat()})",
        "",
        f"Export {export.stat().st_size / 1e9:.2f} GB, plain CSV; machine: {os.cpu_count()} cores.",
        "",
        *table,
        "",
        f"Training: {asset['train_rows']:,} train rows of the window {asset['window']}, "
        f"{asset['epochs']} epochs: {figures['asset_examples_per_s']:,.0f} examples/s in the asset "
        "(the whole dispute_model step: fit, early stopping, threshold, MLflow logging and "
        f"registration) against {figures['plain_examples_per_s']:,.0f} examples/s of a plain "
        "`model.fit` on the same arrays.",
        "",
        "| figure | value | target |",
        "| --- | ---: | --- |",
        f"| land_vs_duckdb_read | {figures['land_vs_duckdb_read']:.3f} | >= 0.25 |",
        f"| full_history_minutes | {figures['full_history_minutes']:.1f} | <= 15 |",
        f"| new_day_vs_small_history | {figures['new_day_vs_small_history']:.2f} | <= 1.2 |",
        f"| peak_rss_gib | {figures['peak_rss_gib']:.2f} | <= 4 |",
        f"| train_vs_plain_keras | {figures['train_vs_plain_keras']:.2f} | >= 0.8 |",
    ]


def main() -> int:
    """Run the phases, print and write the table, then the ratios line."""
    args = parse_args()
    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    export = args.work / "complaints.csv"
    full, small = args.work / "full", args.work / "small"
    phases = data_layer(args, export, full)
    phases.update(new_day(args, full, small))
    trained, asset = training(args, full)
    phases.update(trained)
    figures = ratios(phases, asset)
    lines = summary(phases, asset, figures, export)
    out = output_path(args.out, "pipeline.md", args.smoke)
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"written {out}")
    shown = [k for k in figures if not k.endswith("_per_s")]
    print(
        "pipeline ratios: "
        + " ".join(
            f"{k}={figures[k]:.1f}" if k == "full_history_minutes" else f"{k}={figures[k]:.3f}"
            for k in shown
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
