"""The asset graph's names: asset keys, groups, the warehouse schema and pool, shared metadata.

Asset modules, jobs, sensors and the demo refer to each other's assets through these keys rather
than by importing each other (which made a circle: training -> evidence -> evaluation -> training).
"""

from __future__ import annotations

from typing import Final

import dagster as dg

# --- asset keys (each the name of the asset function that defines it) ---------------------------
RAW_COMPLAINTS: Final = dg.AssetKey("raw_complaints")
VALIDATED_COMPLAINTS: Final = dg.AssetKey("validated_complaints")
REJECTED_COMPLAINTS: Final = dg.AssetKey("rejected_complaints")
COMPLAINT_STATISTICS: Final = dg.AssetKey("complaint_statistics")
COMPLAINT_FEATURES: Final = dg.AssetKey("complaint_features")
TRAINING_DATASET: Final = dg.AssetKey("training_dataset")
DISPUTE_MODEL: Final = dg.AssetKey("dispute_model")
MODEL_EVALUATION: Final = dg.AssetKey("model_evaluation")
CHAMPION_MODEL: Final = dg.AssetKey("champion_model")
DEPLOYED_MODEL: Final = dg.AssetKey("deployed_model")
SERVED_PREDICTIONS: Final = dg.AssetKey("served_predictions")
QUARANTINED_PREDICTIONS: Final = dg.AssetKey("quarantined_predictions")
INPUT_DRIFT: Final = dg.AssetKey("input_drift")
LIVE_PERFORMANCE: Final = dg.AssetKey("live_performance")
LIVE_PROMOTION: Final = dg.AssetKey("live_promotion")
COMPLAINT_SCORES: Final = dg.AssetKey("complaint_scores")
LABEL_LOG: Final = dg.AssetKey("label_log")
COMPANY_HISTORY: Final = dg.AssetKey("company_history")
FEATURE_STORE: Final = dg.AssetKey("feature_store")

# --- groups --------------------------------------------------------------------------------------
DATA_LAYER_GROUP: Final = "data_layer"
FEATURES_GROUP: Final = "features"
MODEL_GROUP: Final = "model"
MONITORING_GROUP: Final = "monitoring"

# --- the warehouse (DuckDB) ----------------------------------------------------------------------
WAREHOUSE_SCHEMA: Final = "complaints"  # DuckDB schema of every table the assets write
DUCKDB_POOL: Final = "duckdb_warehouse"  # Dagster concurrency pool of every DuckDB writer
FEATURES_TABLE: Final = f"{WAREHOUSE_SCHEMA}.{COMPLAINT_FEATURES.path[-1]}"
LABEL_LOG_TABLE: Final = f"{WAREHOUSE_SCHEMA}.{LABEL_LOG.path[-1]}"
HISTORY_TABLE: Final = f"{WAREHOUSE_SCHEMA}.{COMPANY_HISTORY.path[-1]}"
# input_drift's partition column: the ingestion and request day it compares.
DRIFT_DATE_COLUMN: Final = "drift_date"

# --- metadata entries other assets and the automation read ---------------------------------------
# champion_model's record of the version it made champion (read by the retraining policy).
CHAMPION_METADATA: Final = "champion"
# ... and of the blessed challenger it left to live evidence (the retraining policy waits on it).
AWAITING_METADATA: Final = "awaiting_live_evidence"
# live_promotion's decision: promote, retire, wait (or none: no challenger).
DECISION_METADATA: Final = "decision"
# A monitoring asset's materialization that carries this entry (non-empty) is evidence the
# retraining policy acts on; the text says what was seen.
RETRAIN_EVIDENCE_METADATA: Final = "retrain_evidence"
# ... and this one names the model version the evidence is about (drift: the reference compared
# with; live performance: the champion judged). Evidence about a replaced champion is answered.
EVIDENCE_VERSION_METADATA: Final = "reference_version"

# Tables stored per ingestion day: the IO manager replaces exactly a run's days, in one transaction.
PARTITIONED_TABLE: Final = {"partition_expr": "ingestion_date", "schema": WAREHOUSE_SCHEMA}
