"""Asset jobs: named selections that sensors and users launch."""

from __future__ import annotations

import dagster as dg

from ml_assets.assets.ingestion import raw_complaints
from ml_assets.assets.statistics import complaint_statistics
from ml_assets.assets.validation import validate_complaints
from ml_assets.partitions import daily_partitions

DATA_LAYER_ASSETS = [raw_complaints, validate_complaints, complaint_statistics]

# One day's data layer is three quick steps: run them in one process instead of paying the
# code location's import in a subprocess per step (about 5 s each on this machine).
data_layer_job = dg.define_asset_job(
    "data_layer_job",
    selection=dg.AssetSelection.assets(*DATA_LAYER_ASSETS),
    partitions_def=daily_partitions,
    executor_def=dg.in_process_executor,
    description="Ingest, validate and profile one ingestion day.",
)
