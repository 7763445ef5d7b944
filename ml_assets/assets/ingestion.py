"""`raw_complaints`: a day's landing files as read, versioned by their bytes."""

from collections.abc import Iterator

import dagster as dg
import pandas as pd

from ml_assets.assets.day_ranges import (
    DAILY_BACKFILL_POLICY,
    DayRecord,
    Metadata,
    outputs_by_day,
    run_days,
)
from ml_assets.assets.keys import (
    DATA_LAYER_GROUP,
    DUCKDB_POOL,
    PARTITIONED_TABLE,
    RAW_COMPLAINTS,
)
from ml_assets.columns import INGESTION_DATE_COLUMN, NARRATIVE_COLUMN, RAW_RECORD_COLUMN
from ml_assets.ingest.cfpb_format import LandingFileError, read_landing_days
from ml_assets.ingest.landing import landing_digest
from ml_assets.partitions import daily_partitions
from ml_assets.privacy import scrub_columns
from resources.landing_zone import LandingZone

# Stored per day in DuckDB; the IO manager replaces exactly the run's days, in one transaction.
# Free text a consumer wrote (the narrative, and a malformed record's raw line, which holds it).
FREE_TEXT_COLUMNS = (NARRATIVE_COLUMN, RAW_RECORD_COLUMN)


def _landing_files(
    landing_zone: LandingZone, days: list[str]
) -> dict[str, list[tuple[str, bytes]]]:
    """Each day's landing files: (name, bytes)."""
    return {
        day: [(f.name, landing_zone.read_bytes(f)) for f in landing_zone.files_for_day(day)]
        for day in days
    }


def _day_record(day_files: list[tuple[str, bytes]], rows: pd.DataFrame) -> DayRecord:
    """A day's record: its files, sizes and rows; its bytes decide its version."""
    digest = landing_digest(day_files)
    metadata: Metadata = {
        "files": [name for name, _ in day_files],
        "bytes": sum(len(data) for _, data in day_files),
        "rows_read": len(rows),
        "malformed_records": int(rows["parse_error"].notna().sum()),
        "landing_digest": digest,
    }
    return DayRecord(metadata, data_version=digest)


@dg.asset(
    partitions_def=daily_partitions,
    metadata=PARTITIONED_TABLE,
    group_name=DATA_LAYER_GROUP,
    # 3: the scrubber masks more kinds (phones, addresses, dates of birth, names): days stored
    # before are stale, so their narratives match what the endpoint now masks.
    code_version="3",
    pool=DUCKDB_POOL,
    backfill_policy=DAILY_BACKFILL_POLICY,
    kinds={"pandas", "duckdb"},
)
def raw_complaints(
    context: dg.AssetExecutionContext, landing_zone: LandingZone
) -> Iterator[dg.Output[pd.DataFrame] | dg.AssetMaterialization]:
    """The run's days of landing files in the canonical schema, with source file and line per row."""
    days = run_days(context)
    files = _landing_files(landing_zone, days)
    if empty := [day for day in days if not files[day]]:
        raise dg.Failure(
            f"No landing files for {', '.join(empty[:10])}{' ...' if len(empty) > 10 else ''} in "
            "the landing zone. Land data first (`ml-assets generate ...` or `ml-assets land-cfpb "
            "PATH`), or pick days that have files."
        )
    try:
        # Personal data stays in the landing zone (the raw zone): the warehouse gets it masked.
        frame = scrub_columns(read_landing_days(files), FREE_TEXT_COLUMNS)
    except LandingFileError as exc:
        raise dg.Failure(str(exc)) from exc
    by_day = dict(iter(frame.groupby(INGESTION_DATE_COLUMN, sort=False)))
    frames = {day: by_day.get(pd.Timestamp(day), frame.iloc[0:0]) for day in days}
    records = {day: _day_record(files[day], frames[day]) for day in days}
    # The bytes decide each day's version: landing the same file again leaves downstream fresh.
    yield from outputs_by_day(context, RAW_COMPLAINTS, frame, records, frames)
