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
from ml_assets.constants import (
    DUCKDB_POOL,
    INGESTION_DATE_COLUMN,
    LANDING_ASSET_GROUP,
    WAREHOUSE_SCHEMA,
)
from ml_assets.ingest.cfpb_format import LandingFileError, read_landing_day
from ml_assets.ingest.landing import landing_digest
from ml_assets.partitions import daily_partitions
from resources.landing_zone import LandingZone

# Stored per day in DuckDB; the IO manager replaces exactly the run's days, in one transaction.
PARTITIONED_TABLE = {"partition_expr": INGESTION_DATE_COLUMN, "schema": WAREHOUSE_SCHEMA}
RAW = dg.AssetKey("raw_complaints")


def _read_day(landing_zone: LandingZone, day: str) -> tuple[pd.DataFrame, DayRecord]:
    """One day's landing files read, and the day's record (its bytes decide its version)."""
    files = landing_zone.files_for_day(day)
    contents = [(f.name, landing_zone.read_bytes(f)) for f in files]
    try:
        frame = read_landing_day(contents, day)
    except LandingFileError as exc:
        raise dg.Failure(str(exc)) from exc
    digest = landing_digest(contents)
    metadata: Metadata = {
        "files": [f.name for f in files],
        "bytes": sum(f.size for f in files),
        "rows_read": len(frame),
        "malformed_records": int(frame["parse_error"].notna().sum()),
        "landing_digest": digest,
    }
    return frame, DayRecord(metadata, data_version=digest)


@dg.asset(
    partitions_def=daily_partitions,
    metadata=PARTITIONED_TABLE,
    group_name=LANDING_ASSET_GROUP,
    code_version="1",
    pool=DUCKDB_POOL,
    backfill_policy=DAILY_BACKFILL_POLICY,
    kinds={"pandas", "duckdb"},
)
def raw_complaints(
    context: dg.AssetExecutionContext, landing_zone: LandingZone
) -> Iterator[dg.Output[pd.DataFrame] | dg.AssetMaterialization]:
    """The run's days of landing files in the canonical schema, with source file and line per row."""
    days = run_days(context)
    if empty := [day for day in days if not landing_zone.files_for_day(day)]:
        raise dg.Failure(
            f"No landing files for {', '.join(empty[:10])}{' ...' if len(empty) > 10 else ''} in "
            "the landing zone. Land data first (`ml-assets generate ...` or `ml-assets land-cfpb "
            "PATH`), or pick days that have files."
        )
    read = {day: _read_day(landing_zone, day) for day in days}
    frames = {day: f for day, (f, _) in read.items()}
    records = {day: record for day, (_, record) in read.items()}
    frame = pd.concat(frames.values(), ignore_index=True)
    # The bytes decide each day's version: landing the same file again leaves downstream fresh.
    yield from outputs_by_day(context, RAW, frame, records, frames)
