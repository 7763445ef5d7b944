"""The data commands: generate or land complaint files, materialize the data layer, count rows."""

from __future__ import annotations

import os
import time
from datetime import date, timedelta
from importlib.resources import as_file
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ml_assets.cli.common import (
    ColumnMappingFile,
    Day,
    DayRange,
    ProjectDefault,
    drift_defaults,
    narrative_defaults,
    packaged_mapping_names,
    with_home,
)
from resources.home import ProjectHome

if TYPE_CHECKING:
    from ml_assets.synthetic.drift import Drift
    from ml_assets.synthetic.narratives import NarrativeSignal


@click.command("generate")
@click.option(
    "--start",
    type=Day(),
    help="First day [default: --days days up to yesterday; with --export the CFPB's first day].",
)
@click.option("--days", type=click.IntRange(min=1), default=30, help="Days of landing files.")
@click.option("--rows-per-day", type=int, default=400)
@click.option(
    "--export",
    metavar="FILE",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write one full-history export (.csv, .csv.zip or .csv.gz) instead of day files.",
)
@click.option("--rows", type=int, default=5_000_000, help="Rows of the --export file.")
@click.option("--end", type=Day(), help="Last day of the --export file [default: yesterday].")
@click.option(
    "--workers",
    type=int,
    default=os.cpu_count() or 1,
    help="Processes generating the --export file (one per core).",
)
@click.option(
    "--labels-until",
    type=Day(),
    help="Last day with dispute labels in the --export file, later days 'N/A' (the real "
    "database stopped collecting disputes in April 2017) [default: every day labelled].",
)
@click.option(
    "--label-delay-days",
    type=DayRange(),
    help="A day's dispute labels are published MIN to MAX days after it (drawn per day, "
    "seeded): days whose labels are not out by today land without them, and generating the "
    "same days again later lands them again with their labels.",
)
@click.option(
    "--drift-from",
    type=Day(),
    help="Complaints from this day on drift: a product-mix shift, a new issue disputed far "
    "more often, changed narrative wording (the options below; the drift demo uses this).",
)
@click.option(
    "--drift-product",
    cls=ProjectDefault,
    default=lambda: drift_defaults().product,
    help="The product whose share grows ('' for none).",
)
@click.option(
    "--drift-product-share",
    cls=ProjectDefault,
    type=click.FloatRange(0, 1),
    default=lambda: drift_defaults().product_share,
    help="Share of complaints moved to it.",
)
@click.option(
    "--drift-issue",
    cls=ProjectDefault,
    default=lambda: drift_defaults().issue,
    help="A new issue ('' for none).",
)
@click.option(
    "--drift-wording-share",
    cls=ProjectDefault,
    type=click.FloatRange(0, 1),
    default=lambda: drift_defaults().wording_share,
    help="Share of narrative words drawn from new wording (0 for none).",
)
@click.option("--seed", type=int, default=7)
@click.option(
    "--defect-rate", type=float, default=0.0, help="Share of rows with realistic defects."
)
@click.option(
    "--narrative-share",
    cls=ProjectDefault,
    type=click.FloatRange(0, 1),
    default=lambda: narrative_defaults().share,
    help="Share of complaints with a narrative.",
)
@click.option(
    "--text-signal",
    cls=ProjectDefault,
    type=click.FloatRange(min=0),
    default=lambda: narrative_defaults().strength,
    help="How strongly narrative wording tracks disputes: 0 none, 2 easy to learn.",
)
@with_home
def generate(
    home: ProjectHome,
    start: date | None,
    days: int,
    rows_per_day: int,
    export: Path | None,
    rows: int,
    end: date | None,
    workers: int,
    labels_until: date | None,
    label_delay_days: tuple[int, int] | None,
    drift_from: date | None,
    drift_product: str,
    drift_product_share: float,
    drift_issue: str,
    drift_wording_share: float,
    seed: int,
    defect_rate: float,
    narrative_share: float,
    text_signal: float,
) -> int:
    """Write synthetic landing files in the CFPB export format.

    \b
    Examples:
      ml-assets generate --days 30      # the 30 days up to yesterday, like a live feed
      ml-assets generate --start 2016-01-01 --days 30 --rows-per-day 400 --defect-rate 0.01
      ml-assets generate --export complaints.csv.zip --rows 2000000
    """
    from ml_assets.synthetic.drift import Drift
    from ml_assets.synthetic.narratives import NarrativeSignal

    signal = NarrativeSignal(narrative_share, text_signal)
    if export:
        return generate_export_file(
            export, rows, start, end, seed, defect_rate, signal, labels_until, workers
        )
    drift = (
        Drift(
            drift_from,
            product=drift_product or None,
            product_share=drift_product_share,
            issue=drift_issue or None,
            wording_share=drift_wording_share or None,
        )
        if drift_from
        else None
    )
    return generate_days(
        home, start, days, rows_per_day, seed, defect_rate, signal, label_delay_days, drift
    )


def generate_days(
    home: ProjectHome,
    start: date | None,
    days: int,
    rows_per_day: int,
    seed: int,
    defect_rate: float,
    signal: NarrativeSignal,
    label_delay_days: tuple[int, int] | None,
    drift: Drift | None,
) -> int:
    """`generate`: daily landing files, by default the days up to yesterday."""
    from ml_assets.ingest.landing import complaints_root
    from ml_assets.instance import init_home
    from ml_assets.partitions import platform_today
    from ml_assets.synthetic.export import generate_landing
    from ml_assets.synthetic.labels import pending_label_days

    today = platform_today()
    start = start or (today - timedelta(days=days))
    init_home(home)
    began = time.monotonic()
    paths = generate_landing(
        home.landing,
        start,
        days,
        rows_per_day,
        seed,
        defect_rate=defect_rate,
        signal=signal,
        label_delay_days=label_delay_days,
        as_of=today,
        drift=drift,
    )
    last = start + timedelta(days=days - 1)
    every_day = (start + timedelta(days=i) for i in range(days))
    pending = pending_label_days(every_day, today, seed, label_delay_days)
    labels = f"; labels not published yet for {len(pending)} day(s)" if pending else ""
    click.echo(
        f"generated {len(paths)} daily landing files {start}..{last} under "
        f"{complaints_root(home.landing)} in {time.monotonic() - began:.1f} s{labels}"
    )
    return 0


def generate_export_file(
    path: Path,
    rows: int,
    start: date | None,
    end: date | None,
    seed: int,
    defect_rate: float,
    signal: NarrativeSignal,
    labels_until: date | None,
    workers: int,
) -> int:
    """`generate --export FILE`: one full-history file in the official export format."""
    from ml_assets.partitions import PARTITIONS_START_DATE, platform_today
    from ml_assets.synthetic.export import generate_export

    start = start or date.fromisoformat(PARTITIONS_START_DATE)
    end = end or (platform_today() - timedelta(days=1))
    began = time.monotonic()
    summary = generate_export(
        path,
        rows,
        start,
        end,
        seed,
        defect_rate=defect_rate,
        signal=signal,
        labels_until=labels_until,
        workers=workers,
    )
    labels = f", labelled up to {summary.labelled_until}" if summary.labelled_until else ""
    click.echo(
        f"generated {summary.rows} complaints received {summary.first_day}..{summary.last_day} "
        f"({summary.days} days, up to {summary.busiest_day_rows} a day{labels}) in "
        f"{summary.path} ({summary.path.stat().st_size / 1e6:.1f} MB) in "
        f"{time.monotonic() - began:.1f} s"
    )
    return 0


@click.command("land-cfpb")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--source",
    help="Name of the landed files: letters, digits, '-' and '_' [default: the export's file "
    "name].",
)
@click.option("--encoding", default="utf-8-sig", help="The export's encoding.")
@click.option(
    "--columns",
    type=ColumnMappingFile(),
    help="For layouts other than the CFPB's: a JSON object from the file's column names to "
    "official ones (null drops a column), as the name of a packaged mapping "
    f"({', '.join(packaged_mapping_names())}) or a file.",
)
@with_home
def land_cfpb(
    home: ProjectHome, path: Path, source: str | None, encoding: str, columns: Traversable | None
) -> int:
    """Split a real CFPB export into daily landing files.

    PATH is the export: .csv, .csv.zip (as downloaded) or .csv.gz.

    \b
    Examples:
      ml-assets land-cfpb complaints.csv.zip
      ml-assets land-cfpb export.csv --source cfpb_2024 --encoding latin-1
      ml-assets land-cfpb republished.csv --columns camel_case
    """
    from ml_assets.ingest.cfpb_format import load_column_mapping
    from ml_assets.ingest.landing import land_cfpb_export
    from ml_assets.instance import init_home
    from ml_assets.partitions import daily_partitions

    name = source_name(path, source)
    mapping = None
    if columns is not None:
        with as_file(columns) as mapping_path:
            mapping = load_column_mapping(mapping_path)
    init_home(home)
    report = land_cfpb_export(
        path,
        home.landing,
        source=name,
        encoding=encoding,
        is_partition=daily_partitions.has_partition_key,
        columns=mapping,
    )
    days = sorted(report.rows_by_day)
    click.echo(
        f"{report.source}: read {report.rows_read} rows; landed {report.rows_landed} rows in "
        f"{len(days)} day files ({days[0] if days else '-'}..{days[-1] if days else '-'}), "
        f"{len(report.files_written)} written, {len(report.files_unchanged)} unchanged"
    )
    if report.unroutable_rows:
        click.echo(
            f"{report.unroutable_rows} rows had no readable 'Date received' and were kept in "
            f"{report.unroutable_file} (fix them and land again)"
        )
    if outside := report.days_outside_partitions:
        click.echo(
            f"warning: {len(outside)} day file(s) fall outside the daily partitions "
            f"({outside[0]}..{outside[-1]}) and will not be ingested until they are inside"
        )
    return 0


def source_name(path: Path, source: str | None) -> str:
    """`land-cfpb`'s source: `--source`, else the export's file name; a usage error unless the
    landing code accepts it (checked before anything is written)."""
    from ml_assets.ingest.landing import check_source_name, export_source_name

    try:
        return check_source_name(export_source_name(path) if source is None else source)
    except ValueError as exc:
        derived = f" (from the file name of {path}: pass --source NAME)" if source is None else ""
        raise click.BadParameter(
            f"{exc}{derived}", ctx=click.get_current_context(), param_hint="'--source'"
        ) from exc


@click.command("materialize")
@click.option("--start", type=Day(), help="First landed day [default: the first].")
@click.option("--end", type=Day(), help="Last landed day [default: the last].")
@with_home
def materialize(home: ProjectHome, start: date | None, end: date | None) -> int:
    """Backfill the data layer for landed days, as the Dagster UI does.

    An asset backfill on the project's Dagster instance: the daemon runs consecutive days
    together under the instance's run queue and pools. It goes through the running platform
    (`ml-assets up`), else through Dagster's code server, webserver and daemon started for it
    and stopped at the end. Exits 1 naming the failed days.

    \b
    Examples:
      ml-assets materialize
      ml-assets materialize --start 2013-06-01 --end 2013-12-31
    """
    from ml_assets.cli.materialize import materialize_landed_days

    return materialize_landed_days(home, start, end)


@click.command("counts")
@click.option("--by-day", is_flag=True, help="A line per day as well.")
@with_home
def counts(home: ProjectHome, by_day: bool) -> int:
    """Rows read, valid and rejected in the warehouse.

    Exits 2 when they do not reconcile (read = valid + rejected).

    \b
    Example:
      ml-assets counts --by-day
    """
    from ml_assets.assets.keys import WAREHOUSE_SCHEMA
    from resources.warehouse import Warehouse

    if not home.warehouse.exists():
        click.echo(f"no warehouse at {home.warehouse}: materialize the data layer first", err=True)
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
    if by_day:
        for day, n_read, n_valid, n_rejected in rows:
            click.echo(f"{day}  read {n_read:6d}  valid {n_valid:6d}  rejected {n_rejected:5d}")
    click.echo(
        f"{len(rows)} partitions: read {read}, valid {valid}, rejected {rejected}, valid + rejected = {valid + rejected}"
    )
    return 0 if read == valid + rejected else 2


COMMANDS = (generate, land_cfpb, materialize, counts)
