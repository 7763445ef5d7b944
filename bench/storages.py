"""One ranged run of the data layer on three Dagster storages side by side: the project's SQLite
event log (resources/event_log.py), Dagster's stock SQLite storage with its event batching, and
stock dagster-postgres (also batching) on a PostgreSQL server of the home's own, through its
PgBouncer as the platform runs it and straight to the server (`stock_postgres_unpooled`).

    .venv/bin/python bench/storages.py [--days 30] [--rows-per-day 1000] [--repeats 2] [--smoke]

Every case runs the same days of the same landing files, as one run of `DAYS` days (a
backfill's runs compute up to `DAYS_PER_RUN`), in a fresh process and a home of its own; the
cases take turns, each `--repeats` times, and the fastest of each counts. The table goes to
bench/results/storages.md (`--smoke`: a temp folder); the last line printed is
`storage ratios: ...` (a case's seconds over the project's storage's).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from datetime import date, timedelta
from pathlib import Path

from resources.event_log import EVENT_BATCH_SIZE, EVENT_BATCH_SIZE_ENV
from smoke import bench_parser, output_path, parse

CLI = str(Path(sys.executable).parent / "ml-assets")
CASES = ("project_sqlite", "stock_sqlite", "stock_postgres", "stock_postgres_unpooled")
FIRST_DAY = date(2016, 1, 1)
CASE_TIMEOUT_S = 1800
GENERATE_TIMEOUT_S = 900
SMOKE_SIZE = {"days": 3, "rows_per_day": 100, "repeats": 1}

# One case in a process of its own: the home's instance on its storage, then the run.
CASE = """
import json, sys, time
from datetime import date, timedelta
from pathlib import Path
import dagster as dg
import yaml
from ml_assets.assets.day_ranges import range_tags
from ml_assets.definitions import build_definitions
from ml_assets.instance import InstanceStorage, init_home
from resources.home import ProjectHome
from resources.local_postgres import stop_postgres
from resources.local_services import free_port

case, root, first, n = sys.argv[1], Path(sys.argv[2]), sys.argv[3], int(sys.argv[4])
home = ProjectHome.at(root)
if case.startswith("stock_postgres"):
    storage = InstanceStorage(kind="postgres", postgres_port=free_port())
    init_home(home, storage)
    if case == "stock_postgres_unpooled":
        # Straight to the server's socket (the server's port), bypassing the home's PgBouncer.
        path = home.dagster_home / "dagster.yaml"
        config = yaml.safe_load(path.read_text())
        config["storage"]["postgres"]["postgres_db"]["port"] = storage.server(home).port
        path.write_text(yaml.safe_dump(config))
else:
    init_home(home)
if case == "stock_sqlite":
    # Dagster's default storage: the instance without the project's event log.
    path = home.dagster_home / "dagster.yaml"
    config = yaml.safe_load(path.read_text())
    config.pop("event_log_storage")
    path.write_text(yaml.safe_dump(config))
days = [(date.fromisoformat(first) + timedelta(days=i)).isoformat() for i in range(n)]
job = build_definitions(home).resolve_job_def("data_layer_job")
quiet = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}
try:
    with dg.DagsterInstance.from_config(str(home.dagster_home)) as instance:
        storage = type(instance.event_log_storage).__name__
        began = time.monotonic()
        result = job.execute_in_process(
            tags=range_tags(days), instance=instance, raise_on_error=False, run_config=quiet
        )
        seconds = time.monotonic() - began
        events = len(instance.get_records_for_run(result.run_id, limit=None).records)
finally:
    stop_postgres(home.logs)
assert result.success, f"the run on {case} failed"
print("CASE", json.dumps({"storage": storage, "seconds": seconds, "events": events}))
"""


def parse_args() -> argparse.Namespace:
    parser = bench_parser(__doc__)
    parser.add_argument("--days", type=int, default=30, help="days of the one run")
    parser.add_argument("--rows-per-day", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=2, help="runs of each case")
    parser.add_argument("--work", type=Path, help="scratch folder (default: a temp folder)")
    parser.add_argument("--out", help="the Markdown table (default bench/results/storages.md)")
    return parse(parser, SMOKE_SIZE)


def run_case(case: str, home: Path, landing: Path, args: argparse.Namespace) -> dict[str, float]:
    """One run of the case in a fresh home on the shared landing files."""
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    (home / "landing").symlink_to(landing)
    env = {
        **os.environ,
        "ML_ASSETS_HOME": str(home),
        "DAGSTER_HOME": str(home / "dagster"),
        # Dagster's own batching, on for every case (the project's storage sets it itself).
        EVENT_BATCH_SIZE_ENV: str(EVENT_BATCH_SIZE),
    }
    argv = [sys.executable, "-c", CASE, case, str(home), FIRST_DAY.isoformat(), str(args.days)]
    done = subprocess.run(
        argv, env=env, capture_output=True, text=True, timeout=CASE_TIMEOUT_S, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"{case} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    figures = json.loads(done.stdout.split("CASE ", 1)[1].splitlines()[0])
    print(f"{case}: {figures['seconds']:.1f} s, {figures['events']} events", flush=True)
    return figures


def main() -> int:
    """Generate the days, run the cases in turn, print and write the table and the ratios."""
    args = parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="bench_storages_"))
    source = work / "source"
    shutil.rmtree(source, ignore_errors=True)
    generate = [CLI, "generate", "--start", FIRST_DAY.isoformat(), "--days", str(args.days)]
    subprocess.run(
        [*generate, "--rows-per-day", str(args.rows_per_day)],
        env={**os.environ, "ML_ASSETS_HOME": str(source)},
        check=True,
        capture_output=True,
        timeout=GENERATE_TIMEOUT_S,
    )
    results: dict[str, list[dict[str, float]]] = {case: [] for case in CASES}
    for _ in range(args.repeats):
        for case in CASES:
            results[case].append(run_case(case, work / case, source / "landing", args))
    best = {case: min(runs, key=lambda r: r["seconds"]) for case, runs in results.items()}
    project = best["project_sqlite"]["seconds"]
    last = FIRST_DAY + timedelta(days=args.days - 1)
    lines = [
        f"# bench/storages.py: one run of {args.days} days ({FIRST_DAY}..{last}), "
        f"{args.rows_per_day:,} complaints a day ({date.today().isoformat()})",
        "",
        f"Fastest of {args.repeats} runs of each case, in turns; machine: {os.cpu_count()} cores.",
        "",
        "| case | event log storage | seconds | events | vs the project's |",
        "| --- | --- | ---: | ---: | ---: |",
        *(
            f"| {case} | {r['storage']} | {r['seconds']:.1f} | {r['events']:,.0f} | "
            f"{r['seconds'] / project:.2f} |"
            for case, r in best.items()
        ),
    ]
    out = output_path(args.out, "storages.md", args.smoke)
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"written {out}")
    ratios = {case: best[case]["seconds"] / project for case in CASES[1:]}
    print("storage ratios: " + " ".join(f"{c}_vs_project={v:.3f}" for c, v in ratios.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
