"""`complaint_statistics`: a per-day profile of the validated complaints."""

from collections.abc import Iterator

import dagster as dg
import pandas as pd

from ml_assets.assets.day_ranges import (
    DAILY_BACKFILL_POLICY,
    DayRecord,
    outputs_by_day,
    run_days,
)
from ml_assets.assets.keys import (
    COMPLAINT_STATISTICS,
    DATA_LAYER_GROUP,
    DUCKDB_POOL,
    PARTITIONED_TABLE,
    REJECTED_COMPLAINTS,
    VALIDATED_COMPLAINTS,
)
from ml_assets.columns import INGESTION_DATE_COLUMN, LABEL_COLUMN
from ml_assets.ingest.statistics import figures, profile_days, statistics_markdown
from ml_assets.partitions import daily_partitions


def _record(stats: pd.DataFrame) -> DayRecord:
    figure = figures(stats)
    return DayRecord(
        {
            "summary": dg.MetadataValue.md(statistics_markdown(stats)),
            "valid_rows": int(figure["*", "row_count"]),
            "dispute_rate": figure[LABEL_COLUMN, "positive_rate"],
        }
    )


@dg.asset(
    partitions_def=daily_partitions,
    metadata=PARTITIONED_TABLE,
    group_name=DATA_LAYER_GROUP,
    code_version="1",
    pool=DUCKDB_POOL,
    backfill_policy=DAILY_BACKFILL_POLICY,
    kinds={"pandas", "duckdb"},
)
def complaint_statistics(
    context: dg.AssetExecutionContext,
    validated_complaints: pd.DataFrame,
    rejected_complaints: pd.DataFrame,
) -> Iterator[dg.Output[pd.DataFrame] | dg.AssetMaterialization]:
    """Row counts, missing rates, distinct counts, top categories, narrative lengths, label balance."""
    days = run_days(context)
    rejected = rejected_complaints.groupby(INGESTION_DATE_COLUMN).size()
    stats = profile_days(validated_complaints, rejected, [pd.Timestamp(day) for day in days])
    groups = dict(iter(stats.groupby(INGESTION_DATE_COLUMN, sort=False)))
    by_day = {day: groups[pd.Timestamp(day)].reset_index(drop=True) for day in days}
    records = {day: _record(day_stats) for day, day_stats in by_day.items()}
    yield from outputs_by_day(
        context,
        COMPLAINT_STATISTICS,
        stats,
        records,
        by_day,
        inputs=[REJECTED_COMPLAINTS, VALIDATED_COMPLAINTS],
    )
