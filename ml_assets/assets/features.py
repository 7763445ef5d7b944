"""`complaint_features`: the model's inputs per complaint, per ingestion day."""

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
    COMPLAINT_FEATURES,
    DUCKDB_POOL,
    FEATURES_GROUP,
    PARTITIONED_TABLE,
    VALIDATED_COMPLAINTS,
)
from ml_assets.columns import INGESTION_DATE_COLUMN
from ml_assets.model.features import LABEL, to_features
from ml_assets.partitions import daily_partitions

# Bump when the raw-to-input mapping changes: every features partition and the model go stale.
FEATURES_CODE_VERSION = "2"  # 2: the company, for the history join
# The table the model layer and the monitoring read labelled features from.


def _day_metadata(rows: pd.DataFrame) -> Metadata:
    return {
        "rows": len(rows),
        "labelled": int(rows[LABEL].notna().sum()),
        "with_narrative": int((rows["narrative"] != "").sum()),
    }


@dg.asset(
    partitions_def=daily_partitions,
    metadata=PARTITIONED_TABLE,
    group_name=FEATURES_GROUP,
    code_version=FEATURES_CODE_VERSION,
    pool=DUCKDB_POOL,
    backfill_policy=DAILY_BACKFILL_POLICY,
    kinds={"pandas", "duckdb"},
)
def complaint_features(
    context: dg.AssetExecutionContext, validated_complaints: pd.DataFrame
) -> Iterator[dg.Output[pd.DataFrame] | dg.AssetMaterialization]:
    """Model inputs (categoricals, zip3, narrative) and the label of each validated complaint."""
    days = run_days(context)
    features = to_features(validated_complaints)
    groups = dict(iter(features.groupby(INGESTION_DATE_COLUMN, sort=False)))
    by_day = {day: groups.get(pd.Timestamp(day), features.iloc[0:0]) for day in days}
    records = {day: DayRecord(_day_metadata(rows)) for day, rows in by_day.items()}
    yield from outputs_by_day(
        context, COMPLAINT_FEATURES, features, records, by_day, inputs=[VALIDATED_COMPLAINTS]
    )
