"""`ml-assets`: generate or land data, materialize the data layer, and report what the warehouse holds."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from ml_assets.assets.day_ranges import CONCURRENT_DATA_RUNS
from ml_assets.assets.keys import WAREHOUSE_SCHEMA
from ml_assets.ingest.cfpb_format import LandingFileError
from ml_assets.ingest.landing import COMPLAINTS_FOLDER, DATE_FORMAT, complaints_root
from ml_assets.instance import init_home
from ml_assets.settings import load_settings
from ml_assets.synthetic.drift import Drift
from ml_assets.synthetic.narratives import NARRATIVE_SHARE
from resources.home import ProjectHome, make_private

# The Dagster instance of the project home: sqlite storage, and one DuckDB writer at a time.

# Step events go to the Dagster instance (and UI); the terminal gets warnings and a line per day.
QUIET_RUN_CONFIG: dict[str, Any] = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
TRAINING_SUMMARY_KEYS = (
    "window",
    "rows",
    "version",
    "threshold",
    "best_val_auc",
    "roc_auc",
    "champion_roc_auc",
    "blessed",
    "champion",
    "previous",
    "mlflow_run",
)


def _date(text: str) -> date:
    try:
        return datetime.strptime(text, DATE_FORMAT).date()
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date in YYYY-MM-DD form") from exc


def _share(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not a share between 0 and 1")
    return value


def _day_range(text: str) -> tuple[int, int]:
    """MIN-MAX days (e.g. 2-5), or one number N for N-N."""
    low, _, high = text.partition("-")
    try:
        bounds = (int(low), int(high or low))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not MIN-MAX days, e.g. 2-5") from None
    if not 0 <= bounds[0] <= bounds[1]:
        raise argparse.ArgumentTypeError(f"{text!r}: need 0 <= MIN <= MAX")
    return bounds


def _non_negative(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} is negative")
    return value


def cmd_init(args: argparse.Namespace, home: ProjectHome) -> int:
    init_home(home)
    print(f"project home: {home.root}\nDAGSTER_HOME={home.dagster_home}")
    return 0


def cmd_generate(args: argparse.Namespace, home: ProjectHome) -> int:
    from ml_assets.partitions import platform_today
    from ml_assets.synthetic.export import generate_landing
    from ml_assets.synthetic.labels import pending_label_days
    from ml_assets.synthetic.narratives import NarrativeSignal

    signal = NarrativeSignal(args.narrative_share, args.text_signal)
    if args.export:
        return generate_export_file(args, signal)
    today = platform_today()
    start = args.start or (today - timedelta(days=args.days))
    init_home(home)
    began = time.monotonic()
    paths = generate_landing(
        home.landing,
        start,
        args.days,
        args.rows_per_day,
        args.seed,
        defect_rate=args.defect_rate,
        signal=signal,
        label_delay_days=args.label_delay_days,
        as_of=today,
        drift=Drift(
            args.drift_from,
            product=args.drift_product or None,
            product_share=args.drift_product_share,
            issue=args.drift_issue or None,
            wording_share=args.drift_wording_share or None,
        )
        if args.drift_from
        else None,
    )
    last = start + timedelta(days=args.days - 1)
    every_day = (start + timedelta(days=i) for i in range(args.days))
    pending = pending_label_days(every_day, today, args.seed, args.label_delay_days)
    labels = f"; labels not published yet for {len(pending)} day(s)" if pending else ""
    print(
        f"generated {len(paths)} daily landing files {start}..{last} under "
        f"{complaints_root(home.landing)} in {time.monotonic() - began:.1f} s{labels}"
    )
    return 0


def generate_export_file(args: argparse.Namespace, signal: Any) -> int:
    """`generate --export FILE`: one full-history file in the official export format."""
    from ml_assets.partitions import PARTITIONS_START_DATE, platform_today
    from ml_assets.synthetic.export import generate_export

    start = args.start or date.fromisoformat(PARTITIONS_START_DATE)
    end = args.end or (platform_today() - timedelta(days=1))
    began = time.monotonic()
    summary = generate_export(
        Path(args.export),
        args.rows,
        start,
        end,
        args.seed,
        defect_rate=args.defect_rate,
        signal=signal,
        labels_until=args.labels_until,
        workers=args.workers,
    )
    labels = f", labelled up to {summary.labelled_until}" if summary.labelled_until else ""
    print(
        f"generated {summary.rows} complaints received {summary.first_day}..{summary.last_day} "
        f"({summary.days} days, up to {summary.busiest_day_rows} a day{labels}) in "
        f"{summary.path} ({summary.path.stat().st_size / 1e6:.1f} MB) in "
        f"{time.monotonic() - began:.1f} s"
    )
    return 0


def cmd_land_cfpb(args: argparse.Namespace, home: ProjectHome) -> int:
    from ml_assets.ingest.cfpb_format import load_column_mapping
    from ml_assets.ingest.landing import land_cfpb_export
    from ml_assets.partitions import daily_partitions

    columns = load_column_mapping(args.columns) if args.columns else None
    init_home(home)
    report = land_cfpb_export(
        Path(args.path),
        home.landing,
        source=args.source,
        encoding=args.encoding,
        is_partition=daily_partitions.has_partition_key,
        columns=columns,
    )
    days = sorted(report.rows_by_day)
    print(
        f"{report.source}: read {report.rows_read} rows; landed {report.rows_landed} rows in "
        f"{len(days)} day files ({days[0] if days else '-'}..{days[-1] if days else '-'}), "
        f"{len(report.files_written)} written, {len(report.files_unchanged)} unchanged"
    )
    if report.unroutable_rows:
        print(
            f"{report.unroutable_rows} rows had no readable 'Date received' and were kept in "
            f"{report.unroutable_file} (fix them and land again)"
        )
    if report.days_outside_partitions:
        outside = report.days_outside_partitions
        print(
            f"warning: {len(outside)} day file(s) fall outside the daily partitions "
            f"({outside[0]}..{outside[-1]}) and will not be ingested until they are inside"
        )
    return 0


def landed_days(home: ProjectHome, start: date | None, end: date | None) -> list[str]:
    """Day folders in the landing zone, optionally within [start, end]."""
    from resources.landing_zone import is_day_folder

    root = complaints_root(home.landing)
    days = (
        sorted(p.name for p in root.iterdir() if p.is_dir() and is_day_folder(p.name))
        if root.is_dir()
        else []
    )
    low = start.strftime(DATE_FORMAT) if start else ""
    high = end.strftime(DATE_FORMAT) if end else "9999"
    return [d for d in days if low <= d <= high]


def landed_bytes(home: ProjectHome, days: Sequence[str]) -> dict[str, int]:
    """Bytes of each day's landing files."""
    from resources.landing_zone import LocalLandingZone

    zone = LocalLandingZone(root=str(home.landing), days_folder=COMPLAINTS_FOLDER)
    return {day: sum(f.size for f in zone.files_for_day(day)) for day in days}


# The data-layer job and instance of this process: built once per process (a pool worker runs
# several chunks of days), as building them takes seconds.
_data_layer: dict[str, Any] = {}


def _start_data_layer(root: str) -> None:
    """Build the data-layer job and open the Dagster instance of the project home at `root`."""
    import dagster as dg

    from ml_assets.definitions import build_definitions

    home = ProjectHome(Path(root))
    _data_layer["job"] = build_definitions(home).resolve_job_def("data_layer_job")
    _data_layer["instance"] = dg.DagsterInstance.from_config(str(home.dagster_home))


def _materialize_days(days: list[str]) -> tuple[list[str], bool, float, str]:
    """One run of the data layer over consecutive days: the days, success, seconds, run id."""
    from ml_assets.assets.day_ranges import range_tags

    began = time.monotonic()
    result = _data_layer["job"].execute_in_process(
        tags=range_tags(days),
        instance=_data_layer["instance"],
        raise_on_error=False,
        run_config=QUIET_RUN_CONFIG,
    )
    return days, result.success, time.monotonic() - began, result.run_id


def cmd_materialize(args: argparse.Namespace, home: ProjectHome) -> int:
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from multiprocessing import get_context

    from ml_assets.assets.day_ranges import day_chunks
    from ml_assets.partitions import daily_partitions

    init_home(home)
    landed = landed_days(home, args.start, args.end)
    days = [d for d in landed if daily_partitions.has_partition_key(d)]
    if outside := sorted(set(landed) - set(days)):
        print(f"skipped landing folders outside the daily partitions: {', '.join(outside)}")
    if not days:
        print(
            f"no landing files under {complaints_root(home.landing)}: run `ml-assets generate` first",
            file=sys.stderr,
        )
        return 1
    # Consecutive days run together (up to DAYS_PER_RUN a run, and MAX_LANDING_BYTES_PER_RUN of
    # landing files): a run costs seconds to start.
    chunks = day_chunks(days, day_bytes=landed_bytes(home, days))
    failed: list[str] = []

    def report(days: list[str], success: bool, seconds: float, run_id: str) -> None:
        label = days[0] if len(days) == 1 else f"{days[0]}..{days[-1]} ({len(days)} days)"
        status = "ok" if success else "FAILED"
        print(f"{label}: data layer {status} in {seconds:.1f} s (run {run_id[:8]})", flush=True)
        if not success:
            failed.extend(days)

    workers = min(args.parallel, len(chunks))
    if workers <= 1:
        _start_data_layer(str(home.root))
        with _data_layer["instance"]:
            for chunk in chunks:
                report(*_materialize_days(chunk))
    else:
        # A run computes on one core (Dagster's bookkeeping of each day is Python): runs in
        # parallel processes use the others. Their DuckDB writes take turns on the file's lock.
        print(f"{len(chunks)} runs, {workers} at a time in worker processes", flush=True)
        with ProcessPoolExecutor(
            workers,
            mp_context=get_context("spawn"),  # no fork of a process holding Dagster's threads
            initializer=_start_data_layer,
            initargs=(str(home.root),),
        ) as pool:
            futures = {pool.submit(_materialize_days, c): c for c in chunks}
            for future in as_completed(futures):
                try:
                    report(*future.result())
                except Exception as exc:  # a worker that died or could not build the job
                    days = futures[future]
                    print(
                        f"{days[0]}..{days[-1]}: no run result ({type(exc).__name__}: {exc})",
                        file=sys.stderr,
                        flush=True,
                    )
                    failed.extend(days)
    if failed:
        print(
            f"failed partitions: {', '.join(sorted(failed))} (see the runs in the Dagster UI)",
            file=sys.stderr,
        )
        return 1
    return 0


def cmd_train(args: argparse.Namespace, home: ProjectHome) -> int:
    import dagster as dg

    from ml_assets.definitions import build_definitions

    init_home(home)
    window: dict[str, object] = {
        "window_days": args.window_days,
        "evaluation_days": args.evaluation_days,
        "split": args.split,
    }
    if args.end_date:
        window["end_date"] = args.end_date.strftime(DATE_FORMAT)
    run_config = {**QUIET_RUN_CONFIG, "ops": {"training_dataset": {"config": window}}}
    if args.epochs:
        run_config["ops"]["dispute_model"] = {"config": {"epochs": args.epochs}}
    job = build_definitions(home).resolve_job_def("training_job")
    began = time.monotonic()
    with dg.DagsterInstance.from_config(str(home.dagster_home)) as instance:
        result = job.execute_in_process(
            instance=instance, raise_on_error=False, run_config=run_config
        )
    return print_training_result(result, time.monotonic() - began)


def print_training_result(result: Any, seconds: float) -> int:
    """Print a line per model-layer asset and the blessing; the exit code of `train`."""
    for event in result.get_asset_materialization_events():
        materialization = event.materialization
        shown = {
            k: v.value for k, v in materialization.metadata.items() if k in TRAINING_SUMMARY_KEYS
        }
        print(f"{materialization.asset_key.to_user_string()}: {shown}")
    checks = list(result.get_asset_check_evaluations())
    for check in checks:
        print(
            f"check {check.check_name}: {'passed' if check.passed else 'FAILED'} ({check.metadata['failed'].value})"
        )
    failed_steps = {e.step_key for e in result.get_step_failure_events()}
    only_not_blessed = any(not c.passed for c in checks) and all(
        "blessing" in k for k in failed_steps
    )
    if result.success:
        print(
            f"training run {result.run_id[:8]} ok in {seconds:.0f} s: the challenger is the champion now"
        )
    elif only_not_blessed:
        # Not blessed is the gate working, not an error of the run: the champion stays.
        print(
            f"training run {result.run_id[:8]} in {seconds:.0f} s: challenger not blessed, champion unchanged"
        )
    else:
        print(
            f"training run {result.run_id[:8]} FAILED in {seconds:.0f} s (see the run in the Dagster UI)"
        )
        return 1
    return 0


def cmd_rollback(args: argparse.Namespace, home: ProjectHome) -> int:
    from ml_assets.definitions import build_definitions
    from ml_assets.model.promotion import rollback

    registry = build_definitions(home).resources["model_registry"]
    try:
        change = rollback(registry)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"champion of {registry.model_name}: version {change.previous} -> {change.champion}")
    return 0


def cmd_ray_up(args: argparse.Namespace, home: ProjectHome) -> int:
    import os

    from ml_assets.serving.deploy import PROXY_ENV
    from resources.ray_cluster import cluster_pids, start_head

    if cluster_pids(home.ray_tmp):
        print(f"the project's Ray head is already running (temp dir {home.ray_tmp})")
        return 0
    # Ray's session paths end in unix sockets (at most 107 bytes): keep the temp dir short.
    start_head(
        home.ray_tmp,
        home.ray_token,
        num_cpus=args.num_cpus or os.cpu_count() or 2,
        extra_env=PROXY_ENV,
    )
    print(f"Ray head started on 127.0.0.1 (temp dir {home.ray_tmp}, token {home.ray_token})")
    return 0


def cmd_ray_down(args: argparse.Namespace, home: ProjectHome) -> int:
    from resources.ray_cluster import stop_head

    stopped = stop_head(home.ray_tmp)
    print(f"stopped {stopped} Ray processes of {home.ray_tmp}")
    return 0


def cmd_deploy(args: argparse.Namespace, home: ProjectHome) -> int:
    import dagster as dg

    from ml_assets.definitions import build_definitions

    init_home(home)
    job = build_definitions(home).resolve_job_def("deployment_job")
    with dg.DagsterInstance.from_config(str(home.dagster_home)) as instance:
        result = job.execute_in_process(
            instance=instance, raise_on_error=False, run_config=QUIET_RUN_CONFIG
        )
    for event in result.get_asset_materialization_events():
        shown = {k: v.value for k, v in event.materialization.metadata.items()}
        print(f"deployed_model: {shown}")
    if not result.success:
        for failure in result.get_step_failure_events():
            print(f"error: {failure.step_failure_data.error.message.strip()}", file=sys.stderr)
        return 1
    return 0


def cmd_predict(args: argparse.Namespace, home: ProjectHome) -> int:
    import json

    import requests

    if args.json:
        complaints = [json.loads(args.json)]
    else:
        lines = Path(args.file).read_text().splitlines()
        complaints = [json.loads(line) for line in lines if line.strip()]
    from ml_assets.serving.auth import bearer_headers
    from ml_assets.settings import load_settings

    answer = requests.post(
        f"{args.url}/predict",
        json={"complaints": complaints},
        headers=bearer_headers(load_settings().token()),
        timeout=60,
    )
    if not answer.ok:
        print(f"error {answer.status_code}: {answer.text}", file=sys.stderr)
        return 1
    body = answer.json()
    for prediction in body["predictions"]:
        print(json.dumps({**prediction, "model": f"{body['model_name']} v{body['model_version']}"}))
    return 0


def cmd_counts(args: argparse.Namespace, home: ProjectHome) -> int:
    from resources.warehouse import Warehouse

    if not home.warehouse.exists():
        print(
            f"no warehouse at {home.warehouse}: materialize the data layer first", file=sys.stderr
        )
        return 1
    # Waits for a running writer's lock instead of failing.
    with Warehouse(database=str(home.warehouse)).connect() as conn:
        rows = conn.execute(
            f"""
            select r.day, r.n as read, coalesce(v.n, 0) as valid, coalesce(j.n, 0) as rejected
            from (select ingestion_date::date as day, count(*) n from {WAREHOUSE_SCHEMA}.raw_complaints group by 1) r
            left join (select ingestion_date::date as day, count(*) n from {WAREHOUSE_SCHEMA}.validated_complaints group by 1) v using (day)
            left join (select ingestion_date::date as day, count(*) n from {WAREHOUSE_SCHEMA}.rejected_complaints group by 1) j using (day)
            order by 1
            """
        ).fetchall()
    read = sum(r[1] for r in rows)
    valid = sum(r[2] for r in rows)
    rejected = sum(r[3] for r in rows)
    if args.by_day:
        for day, n_read, n_valid, n_rejected in rows:
            print(f"{day}  read {n_read:6d}  valid {n_valid:6d}  rejected {n_rejected:5d}")
    print(
        f"{len(rows)} partitions: read {read}, valid {valid}, rejected {rejected}, valid + rejected = {valid + rejected}"
    )
    return 0 if read == valid + rejected else 2


def cmd_demo(args: argparse.Namespace, home: ProjectHome) -> int:
    from ml_assets.demo import DemoSettings, run_demo
    from ml_assets.partitions import platform_today

    init_home(home)
    began = time.monotonic()
    cmd_ray_up(argparse.Namespace(num_cpus=None), home)
    settings = DemoSettings(days=args.days, more_days=args.more_days, ui_port=args.ui_port)
    if args.scenario == "drift":
        from ml_assets.demo_drift import run_drift_demo

        last_line = run_drift_demo(home, settings, platform_today())
    else:
        last_line = run_demo(home, settings, platform_today() - timedelta(days=1))
    print(f"demo took {time.monotonic() - began:.0f} s")
    print(last_line)
    return 0


def cmd_up(args: argparse.Namespace, home: ProjectHome) -> int:
    from ml_assets.demo import DemoSettings, start_services

    init_home(home)
    cmd_ray_up(argparse.Namespace(num_cpus=None), home)
    start_services(home, DemoSettings(ui_port=args.ui_port))
    print(
        f"Dagster UI http://127.0.0.1:{args.ui_port}, MLflow UI http://127.0.0.1:5000; logs in {home.logs}"
    )
    return 0


def cmd_down(args: argparse.Namespace, home: ProjectHome) -> int:
    from ml_assets.demo import stop_services

    stopped = stop_services(home)
    print(f"stopped: {', '.join(stopped) or 'no Dagster or MLflow UI was running'}")
    return cmd_ray_down(args, home)


def cmd_backfill(args: argparse.Namespace, home: ProjectHome) -> int:
    import dagster as dg

    from ml_assets.jobs import DATA_LAYER_KEYS
    from ml_assets.operations import backfill_status, launch_backfill, runs_after, wait_until

    days = [
        (args.start + timedelta(days=i)).isoformat()
        for i in range((args.end - args.start).days + 1)
    ]
    with dg.DagsterInstance.from_config(str(home.dagster_home)) as instance:
        known = {r.run_id for r in instance.get_runs()}
        began = time.monotonic()
        backfill_id = launch_backfill(f"{args.url}/graphql", DATA_LAYER_KEYS, days)
        print(f"backfill {backfill_id}: {len(days)} days {days[0]}..{days[-1]}, data layer")
        finished = {"COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED", "COMPLETED"}

        def progress() -> str:
            runs = [r for r in runs_after(instance, known) if r.launched_by.endswith(backfill_id)]
            done = sum(r.status == "SUCCESS" for r in runs)
            return f"{backfill_status(instance, backfill_id)}: {done}/{len(runs)} runs succeeded"

        wait_until(
            lambda: (
                backfill_status(instance, backfill_id) in finished
                and not any(
                    r.status in ("QUEUED", "STARTED", "STARTING", "NOT_STARTED")
                    for r in runs_after(instance, known)
                )
            ),
            progress,
            args.timeout,
            f"backfill {backfill_id}",
        )
        runs = [r for r in runs_after(instance, known) if r.launched_by.endswith(backfill_id)]
        failed = [r for r in runs if r.status != "SUCCESS"]
        print(
            f"backfill {backfill_id} {backfill_status(instance, backfill_id)} in "
            f"{time.monotonic() - began:.0f} s: {len(runs)} runs, {len(failed)} not successful"
        )
        for run in failed:
            print(f"  {run.describe()}", file=sys.stderr)
    return 1 if failed else 0


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    from ml_assets.model.training import TrainingWindow

    parser = argparse.ArgumentParser(prog="ml-assets", description=__doc__)
    parser.add_argument(
        "--home", help="project home (default: $ML_ASSETS_HOME or .ml_assets/ in the repo)"
    )
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser(
        "init", help="create the project home and its Dagster instance config"
    ).set_defaults(func=cmd_init)

    gen = sub.add_parser(
        "generate", help="write synthetic daily landing files in the CFPB export format"
    )
    gen.add_argument(
        "--start",
        type=_date,
        help="first day (default: --days days up to yesterday; with --export the CFPB's first day)",
    )
    gen.add_argument("--days", type=int, default=30)
    gen.add_argument("--rows-per-day", type=int, default=400)
    gen.add_argument(
        "--export",
        metavar="FILE",
        help="write one full-history export (.csv, .csv.zip or .csv.gz) instead of day files",
    )
    gen.add_argument(
        "--rows", type=int, default=5_000_000, help="rows of the --export file (default 5,000,000)"
    )
    gen.add_argument("--end", type=_date, help="last day of the --export file (default yesterday)")
    gen.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="processes generating the --export file (default: one per core)",
    )
    gen.add_argument(
        "--labels-until",
        type=_date,
        help="last day with dispute labels in the --export file, later days 'N/A' (the real "
        "database stopped collecting disputes in April 2017); default: every day labelled",
    )
    gen.add_argument(
        "--label-delay-days",
        type=_day_range,
        metavar="MIN-MAX",
        help="a day's dispute labels are published MIN to MAX days after it (drawn per day, "
        "seeded): days whose labels are not out by today land without them, and generating "
        "the same days again later lands them again with their labels",
    )
    gen.add_argument(
        "--drift-from",
        type=_date,
        metavar="DATE",
        help="complaints from DATE on drift: a product-mix shift, a new issue disputed far more "
        "often, changed narrative wording (the options below; the drift demo uses this)",
    )
    drift_defaults = Drift(date.min)
    gen.add_argument(
        "--drift-product",
        default=drift_defaults.product,
        help=f"the product whose share grows (default {drift_defaults.product!r}; '' for none)",
    )
    gen.add_argument(
        "--drift-product-share",
        type=_share,
        default=drift_defaults.product_share,
        help=f"share of complaints moved to it (default {drift_defaults.product_share})",
    )
    gen.add_argument(
        "--drift-issue",
        default=drift_defaults.issue,
        help=f"a new issue (default {drift_defaults.issue!r}; '' for none)",
    )
    gen.add_argument(
        "--drift-wording-share",
        type=_share,
        default=drift_defaults.wording_share,
        help="share of narrative words drawn from new wording (default "
        f"{drift_defaults.wording_share}; 0 for none)",
    )
    gen.add_argument("--seed", type=int, default=7)
    gen.add_argument(
        "--defect-rate", type=float, default=0.0, help="share of rows with realistic defects"
    )
    gen.add_argument(
        "--narrative-share",
        type=_share,
        default=NARRATIVE_SHARE,
        help=f"share of complaints with a narrative (default {NARRATIVE_SHARE})",
    )
    gen.add_argument(
        "--text-signal",
        type=_non_negative,
        default=1.0,
        help="how strongly narrative wording tracks disputes: 1 default, 0 none, 2 easy to learn",
    )
    gen.set_defaults(func=cmd_generate)

    land = sub.add_parser("land-cfpb", help="split a real CFPB export into daily landing files")
    land.add_argument("path", help="the export: .csv, .csv.zip (as downloaded) or .csv.gz")
    land.add_argument("--source", help="name of the landed files (default: the export's file name)")
    land.add_argument(
        "--encoding", default="utf-8-sig", help="the export's encoding (default UTF-8)"
    )
    land.add_argument(
        "--columns",
        type=Path,
        help="JSON object from the file's column names to official ones (null drops a column), "
        "for layouts other than the CFPB's; e.g. ml_assets/ingest/column_mappings/camel_case.json",
    )
    land.set_defaults(func=cmd_land_cfpb)

    mat = sub.add_parser(
        "materialize",
        help="materialize the data layer for landed days (consecutive days share a run)",
    )
    mat.add_argument("--start", type=_date)
    mat.add_argument("--end", type=_date)
    mat.add_argument(
        "--parallel",
        type=int,
        default=CONCURRENT_DATA_RUNS,
        help=f"runs at once, each in its own process (default {CONCURRENT_DATA_RUNS}, "
        "ml_assets/assets/day_ranges.py: one per core here)",
    )
    mat.set_defaults(func=cmd_materialize)

    train = sub.add_parser(
        "train", help="train, evaluate, bless and promote a model on a window of days"
    )
    window = TrainingWindow()
    train.add_argument("--window-days", type=int, default=window.window_days)
    train.add_argument("--evaluation-days", type=int, default=window.evaluation_days)
    train.add_argument("--split", choices=["time", "hash"], default="time")
    train.add_argument(
        "--end-date",
        type=_date,
        help="last day of the window (default: the newest day with labelled features)",
    )
    train.add_argument("--epochs", type=int, help="override the model's epochs")
    train.set_defaults(func=cmd_train)

    sub.add_parser(
        "rollback", help="move the champion alias back to the previous champion"
    ).set_defaults(func=cmd_rollback)

    up = sub.add_parser("ray-up", help="start the project's local Ray head (127.0.0.1, token auth)")
    up.add_argument("--num-cpus", type=int)
    up.set_defaults(func=cmd_ray_up)
    sub.add_parser("ray-down", help="stop the project's Ray processes (by PID)").set_defaults(
        func=cmd_ray_down
    )
    sub.add_parser("deploy", help="serve the champion on Ray Serve and check it").set_defaults(
        func=cmd_deploy
    )
    predict = sub.add_parser("predict", help="query the served model")
    source = predict.add_mutually_exclusive_group(required=True)
    source.add_argument("--file", help="JSON lines, one complaint per line")
    source.add_argument("--json", help="one complaint as a JSON object")
    predict.add_argument("--url", default="http://127.0.0.1:8000")
    predict.set_defaults(func=cmd_predict)

    counts = sub.add_parser("counts", help="rows read, valid and rejected in the warehouse")
    counts.add_argument("--by-day", action="store_true")
    counts.set_defaults(func=cmd_counts)
    demo = sub.add_parser("demo", help="the whole platform on synthetic data, driven by sensors")
    demo.add_argument("--days", type=int, default=60)
    demo.add_argument("--more-days", type=int, default=3)
    demo.add_argument("--ui-port", type=int, default=3000)
    demo.add_argument(
        "--scenario",
        choices=("first-model", "drift"),
        default="first-model",
        help="first-model: land, train, serve, land more days; drift: serve, drift arrives, "
        "input_drift errors, retrain, blessing, the new champion serves, recovery (use an "
        "empty project home: `make demo-drift`)",
    )
    demo.set_defaults(func=cmd_demo)
    up_all = sub.add_parser("up", help="start Ray, dagster dev (with its daemon) and the MLflow UI")
    up_all.add_argument("--ui-port", type=int, default=3000)
    up_all.set_defaults(func=cmd_up)
    sub.add_parser("down", help="stop dagster dev, the MLflow UI and Ray (by PID)").set_defaults(
        func=cmd_down
    )
    backfill = sub.add_parser(
        "backfill", help="backfill the data layer for a date range through the running Dagster"
    )
    backfill.add_argument("--start", type=_date, required=True)
    backfill.add_argument("--end", type=_date, required=True)
    backfill.add_argument("--url", default="http://127.0.0.1:3000", help="the Dagster webserver")
    backfill.add_argument("--timeout", type=float, default=3600.0)
    backfill.set_defaults(func=cmd_backfill)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `ml-assets` console script."""
    args = build_parser().parse_args(argv)
    if getattr(args, "days", 1) is not None and getattr(args, "days", 1) < 1:
        print("--days must be at least 1", file=sys.stderr)
        return 2
    home = ProjectHome.at(args.home or load_settings().home)
    make_private(home)
    try:
        return args.func(args, home)
    except (LandingFileError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
