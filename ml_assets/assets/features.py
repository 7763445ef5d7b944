"""`complaint_features`: the model's inputs per complaint, per ingestion day."""

import dagster as dg
import pandas as pd

from ml_assets.assets.ingestion import PARTITIONED_TABLE
from ml_assets.constants import DUCKDB_POOL, LABEL_COLUMN
from ml_assets.model.features import to_features
from ml_assets.partitions import daily_partitions

# Bump when the raw-to-input mapping changes: every features partition and the model go stale.
FEATURES_CODE_VERSION = "1"
FEATURES_GROUP = "features"


@dg.asset(
    partitions_def=daily_partitions,
    metadata=PARTITIONED_TABLE,
    group_name=FEATURES_GROUP,
    code_version=FEATURES_CODE_VERSION,
    pool=DUCKDB_POOL,
    kinds={"pandas", "duckdb"},
)
def complaint_features(validated_complaints: pd.DataFrame) -> dg.Output[pd.DataFrame]:
    """Model inputs (categoricals, zip3, narrative) and the label of each validated complaint."""
    features = to_features(validated_complaints)
    return dg.Output(
        features,
        metadata={
            "rows": len(features),
            "labelled": int(validated_complaints[LABEL_COLUMN].notna().sum()),
            "with_narrative": int((features["narrative"] != "").sum()),
        },
    )
