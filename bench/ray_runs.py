"""The data layer's run over the same days, launched as a Ray job (dagster-ray's RayRunLauncher)
and as a local process (Dagster's default launcher), side by side.

    .venv/bin/python bench/ray_runs.py [--days 30] [--rows-per-day 1000] [--repeats 2] [--smoke]

One local Ray cluster (a head with its dashboard, whose job server takes the runs, and a worker
node) serves every Ray case. Each case is a fresh home with the same landing files, whose
instance launches runs locally or on Ray (`ml-assets init --runs-on ...`), backfilled by
`ml-assets materialize` (one run: the days fit in DAYS_PER_RUN). Measured from the instance's run
record: `run` (the run's process, start to end: its own work), `launch_to_end` (the run created
to its end: the queue, the launch, the process's start and the run), and the command's wall
time (Dagster's start for the backfill included, the same in both cases). The cases take turns,
each `--repeats` times; the fastest of each counts. The table goes to bench/results/ray_runs.md
(`--smoke`: a temp folder); the last line printed is `ray_runs ratios: ...` (Ray's over local's).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import dagster as dg

from ml_assets.demo import stop_services
from ml_assets.synthetic.export import generate_landing
from resources.home import ProjectHome
from resources.local_services import free_port
from resources.ray_cluster import auth_env, start_head, start_worker, stop_head
from smoke import bench_parser, output_path, parse

CLI = str(Path(sys.executable).parent / "ml-assets")
CASES = ("local", "ray")
FIRST_DAY = date(2016, 1, 1)
COMMAND_TIMEOUT_S = 1800
SMOKE_SIZE = {"days": 2, "rows_per_day": 50, "repeats": 1}
METRICS = ("run", "launch_to_end", "command")


def ml_assets(home: ProjectHome, env: dict[str, str], *args: str) -> float:
    """Run an `ml-assets` command on `home`; its wall seconds, or exit with its output."""
    began = time.monotonic()
    done = subprocess.run(
        [CLI, "--home", str(home.root), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_S,
        check=False,
    )
    if done.returncode != 0:
        sys.exit(
            f"ml-assets {' '.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        )
    return time.monotonic() - began


def run_seconds(home: ProjectHome) -> dict[str, float]:
    """The home's one run: its process's seconds, and from its creation to its end."""
    with dg.DagsterInstance.from_config(str(home.dagster_home)) as instance:
        (record,) = instance.get_run_records()
    if record.dagster_run.status != dg.DagsterRunStatus.SUCCESS:
        sys.exit(f"the run {record.dagster_run.run_id} of {home.root} did not succeed")
    start, end = record.start_time, record.end_time
    if start is None or end is None:
        sys.exit(f"the run {record.dagster_run.run_id} of {home.root} has no start or end time")
    return {"run": end - start, "launch_to_end": end - record.create_timestamp.timestamp()}


def case(
    home: ProjectHome, case_name: str, landing: Path, token: Path, env: dict[str, str]
) -> dict[str, float]:
    """One case in a fresh home: init on its launcher, backfill the landed days; its seconds."""
    shutil.copytree(landing, home.landing)
    # The home's Dagster reaches the cluster with the home's token (ml_assets/demo.py
    # service_env): the cluster's.
    home.ray_token.parent.mkdir(parents=True)
    shutil.copy(token, home.ray_token)
    ml_assets(home, env, "init", "--runs-on", case_name)
    command = ml_assets(home, env, "materialize")
    return {**run_seconds(home), "command": command}


def main() -> None:
    parser = bench_parser(__doc__)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--rows-per-day", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", help="the table's path [default: bench/results/ray_runs.md]")
    args = parse(parser, SMOKE_SIZE)
    out = output_path(args.out, "ray_runs.md", args.smoke)
    work = Path(tempfile.mkdtemp(prefix="ray_runs_"))
    # Ray's session paths end in unix sockets (at most 107 bytes): short temp dirs.
    head_dir = Path(tempfile.mkdtemp(prefix="r", dir="/tmp"))
    worker_dir = Path(tempfile.mkdtemp(prefix="w", dir="/tmp"))
    token = work / "ray_token"
    gcs_port = free_port()
    address = f"127.0.0.1:{gcs_port}"
    env = {**os.environ, "RAY_ADDRESS": address, **auth_env(token)}
    landing = work / "landing"
    generate_landing(landing, FIRST_DAY, args.days, args.rows_per_day, seed=29)
    best: dict[str, dict[str, float]] = {}
    homes: list[ProjectHome] = []
    try:
        start_head(
            head_dir, token, num_cpus=1, port=gcs_port, client_port=free_port(), dashboard=True
        )
        start_worker(address, worker_dir, token, num_cpus=1)
        for repeat in range(args.repeats):
            for name in CASES:
                homes.append(ProjectHome.at(tempfile.mkdtemp(prefix=f"{name}-", dir=work)))
                seconds = case(homes[-1], name, landing, token, env)
                shown = ", ".join(f"{k} {v:.1f} s" for k, v in seconds.items())
                print(f"repeat {repeat + 1} {name}: {shown}", flush=True)
                kept = best.setdefault(name, seconds)
                best[name] = {k: min(kept[k], seconds[k]) for k in METRICS}
    finally:
        # The Dagster `ml-assets materialize` started (code server, webserver, daemon) outlives
        # the command when it is killed (its timeout): stopped by its PID files in each home.
        for home in homes:
            stop_services(home)
        stop_head(worker_dir)
        stop_head(head_dir)
        shutil.rmtree(work, ignore_errors=True)
    ratios = {k: best["ray"][k] / best["local"][k] for k in METRICS}
    rows = [
        f"| {name} | " + " | ".join(f"{best[name][k]:.1f}" for k in METRICS) + " |"
        for name in CASES
    ]
    out.write_text(
        f"# The data layer's run on Ray against a local run\n\n"
        f"{args.days} days of {args.rows_per_day} complaints, one run; fastest of "
        f"{args.repeats}; seconds. Ray: a head (1 CPU, with its dashboard) and a worker node "
        "(1 CPU) on this machine.\n\n"
        f"| launcher | {' | '.join(METRICS)} |\n|---|{'---|' * len(METRICS)}\n"
        + "\n".join(rows)
        + "\n\nratio (ray / local): "
        + ", ".join(f"{k} {v:.2f}" for k, v in ratios.items())
        + "\n"
    )
    out.with_suffix(".json").write_text(json.dumps({"best": best, "ratios": ratios}, indent=2))
    print(f"table: {out}")
    print("ray_runs ratios: " + " ".join(f"{k}={v:.2f}" for k, v in ratios.items()))


if __name__ == "__main__":
    main()
