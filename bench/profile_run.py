"""Where a backfill's run spends its time: one ranged run of the data layer under cProfile.

    .venv/bin/python bench/profile_run.py [--days 365] [--rows-per-day 900] [--smoke]

Generates the days into a scratch home, runs `data_layer_job` over all of them as one run (what
a backfill's run computes, without the launch) on the project's instance, and writes the top 20
functions by cumulative and by own time to bench/results/profile-ranged-run.md (`--smoke`: three
days, a temp folder). cProfile slows Python code down more than C code, so the shares are a map of
where the time goes, not the run's speed (bench/pipeline.py measures that). The last line printed
is `profile ratios: ...`.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

from smoke import bench_parser, output_path, parse

CLI = str(Path(sys.executable).parent / "ml-assets")
FIRST_DAY = date(2016, 1, 1)
GENERATE_TIMEOUT_S = 1800
TOP = 20
SMOKE_SIZE = {"days": 3, "rows_per_day": 100}
# Frames named by where they live, so that the table reads without the machine's paths.
SHORT_PATHS = ("site-packages/", "/ml_assets/", "/resources/")
PROJECT = ("/ml_assets/", "/resources/")
# Where Dagster creates, logs and stores events: the run's bookkeeping rather than its data.
DAGSTER_BOOKKEEPING = (
    "dagster/_core/events/",
    "dagster/_core/storage/event_log/",
    "dagster/_core/instance/methods/event_methods",
    "dagster/_core/log_manager",
    "dagster_shared/serdes/",
)


def parse_args() -> argparse.Namespace:
    parser = bench_parser(__doc__)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--rows-per-day", type=int, default=900)
    parser.add_argument("--work", type=Path, help="scratch home (default: a temp folder)")
    parser.add_argument("--out", help="the report (default bench/results/profile-ranged-run.md)")
    return parse(parser, SMOKE_SIZE)


def where(path: str, line: int, name: str) -> str:
    """A function as `module path:line name`, its path from the package on."""
    for marker in SHORT_PATHS:
        if marker in path:
            path = marker.strip("/") + "/" + path.split(marker, 1)[1]
            break
    return f"`{path}:{line}` {name}"


def top_table(
    stats: pstats.Stats, key: str, total: float, within: tuple[str, ...] = ()
) -> list[str]:
    """The TOP functions by `key` ("cumulative" or "tottime") as a Markdown table; `within`:
    only functions whose file path holds one of these parts."""
    # pstats keeps its table in an attribute its stubs do not declare.
    table: dict = stats.stats  # pyright: ignore[reportAttributeAccessIssue]
    column = 3 if key == "cumulative" else 2
    chosen = [item for item in table.items() if not within or any(w in item[0][0] for w in within)]
    rows = sorted(chosen, key=lambda item: item[1][column], reverse=True)[:TOP]
    lines = [
        "| function | calls | own s | cumulative s | share |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for (path, line, name), (_, calls, own, cumulative, _) in rows:
        share = (cumulative if key == "cumulative" else own) / total
        lines.append(
            f"| {where(path, line, name)} | {calls:,} | {own:.1f} | {cumulative:.1f} | {share:.1%} |"
        )
    return lines


def main() -> int:
    """Generate, run once under the profiler, write the two tables and the ratios line."""
    args = parse_args()
    home = args.work or Path(tempfile.mkdtemp(prefix="bench_profile_"))
    env = {**os.environ, "ML_ASSETS_HOME": str(home), "DAGSTER_HOME": str(home / "dagster")}
    os.environ.update(env)
    generate = [CLI, "generate", "--start", FIRST_DAY.isoformat(), "--days", str(args.days)]
    subprocess.run(
        [*generate, "--rows-per-day", str(args.rows_per_day)],
        env=env,
        check=True,
        capture_output=True,
        timeout=GENERATE_TIMEOUT_S,
    )
    import dagster as dg

    from ml_assets.assets.day_ranges import range_tags
    from ml_assets.definitions import build_definitions
    from ml_assets.instance import init_home
    from resources.home import ProjectHome

    project = ProjectHome.at(home)
    init_home(project)
    days = [(FIRST_DAY + timedelta(days=i)).isoformat() for i in range(args.days)]
    job = build_definitions(project).resolve_job_def("data_layer_job")
    quiet = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}
    profiler = cProfile.Profile()
    with dg.DagsterInstance.from_config(str(project.dagster_home)) as instance:
        began = time.monotonic()
        profiler.enable()
        result = job.execute_in_process(
            tags=range_tags(days), instance=instance, raise_on_error=False, run_config=quiet
        )
        profiler.disable()
        seconds = time.monotonic() - began
    if not result.success:
        raise RuntimeError("the profiled run failed; run it without the profiler to see why")
    stats = pstats.Stats(profiler)
    total: float = stats.total_tt  # pyright: ignore[reportAttributeAccessIssue]
    lines = [
        f"# bench/profile_run.py: one run of {args.days} days, {args.rows_per_day:,} complaints a "
        f"day ({date.today().isoformat()})",
        "",
        f"{seconds:.1f} s under cProfile ({total:.1f} s of profiled time); machine: "
        f"{os.cpu_count()} cores.",
        "",
        f"## Top {TOP} of the project's code by cumulative time",
        "",
        *top_table(stats, "cumulative", total, PROJECT),
        "",
        f"## Top {TOP} of Dagster's bookkeeping by cumulative time (events, storage, logging)",
        "",
        *top_table(stats, "cumulative", total, DAGSTER_BOOKKEEPING),
        "",
        f"## Top {TOP} by own time",
        "",
        *top_table(stats, "tottime", total),
    ]
    out = output_path(args.out, "profile-ranged-run.md", args.smoke)
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"written {out}")
    print(f"profile ratios: run_seconds={seconds:.1f} days={args.days}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
