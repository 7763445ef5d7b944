"""`complaint_statistics`: a per-day profile of the validated complaints."""

import dagster as dg
import pandas as pd

from ml_assets.assets.ingestion import PARTITIONED_TABLE
from ml_assets.constants import DUCKDB_POOL, LABEL_COLUMN, LANDING_ASSET_GROUP
from ml_assets.ingest.statistics import profile_complaints, statistic, statistics_markdown
from ml_assets.partitions import daily_partitions


@dg.asset(
    partitions_def=daily_partitions,
    metadata=PARTITIONED_TABLE,
    group_name=LANDING_ASSET_GROUP,
    code_version="1",
    pool=DUCKDB_POOL,
    kinds={"pandas", "duckdb"},
)
def complaint_statistics(
    context: dg.AssetExecutionContext,
    validated_complaints: pd.DataFrame,
    rejected_complaints: pd.DataFrame,
) -> dg.Output[pd.DataFrame]:
    """Row counts, missing rates, distinct counts, top categories, narrative lengths, label balance."""
    day = pd.Timestamp(context.partition_key)
    stats = profile_complaints(validated_complaints, len(rejected_complaints), day)
    return dg.Output(
        stats,
        metadata={
            "summary": dg.MetadataValue.md(statistics_markdown(stats)),
            "valid_rows": int(statistic(stats, "*", "row_count")),
            "dispute_rate": statistic(stats, LABEL_COLUMN, "positive_rate"),
        },
    )
