"""`raw_complaints`: a day's landing files as read, versioned by their bytes."""

import dagster as dg
import pandas as pd

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

# Stored per day in DuckDB; the IO manager replaces exactly the partition's rows.
PARTITIONED_TABLE = {"partition_expr": INGESTION_DATE_COLUMN, "schema": WAREHOUSE_SCHEMA}


@dg.asset(
    partitions_def=daily_partitions,
    metadata=PARTITIONED_TABLE,
    group_name=LANDING_ASSET_GROUP,
    code_version="1",
    pool=DUCKDB_POOL,
    kinds={"pandas", "duckdb"},
)
def raw_complaints(
    context: dg.AssetExecutionContext, landing_zone: LandingZone
) -> dg.Output[pd.DataFrame]:
    """The partition's landing files in the canonical schema, with source file and line per row."""
    day = context.partition_key
    files = landing_zone.files_for_day(day)
    if not files:
        raise dg.Failure(
            f"No landing files for {day} in the landing zone. Land data first "
            "(`ml-assets generate ...` or `ml-assets land-cfpb PATH`), or pick a day that has files."
        )
    contents = [(f.name, landing_zone.read_bytes(f)) for f in files]
    try:
        frame = read_landing_day(contents, day)
    except LandingFileError as exc:
        raise dg.Failure(str(exc)) from exc
    digest = landing_digest(contents)
    return dg.Output(
        frame,
        # The bytes decide the version: landing the same file again leaves downstream fresh.
        data_version=dg.DataVersion(digest),
        metadata={
            "files": [f.name for f in files],
            "bytes": sum(f.size for f in files),
            "rows_read": len(frame),
            "malformed_records": int(frame["parse_error"].notna().sum()),
            "landing_digest": digest,
        },
    )
