"""Asset jobs: named selections that sensors and users launch."""

import dagster as dg

from ml_assets.assets.evaluation import blessing, champion_model, model_evaluation
from ml_assets.assets.features import complaint_features
from ml_assets.assets.history import company_history, label_log
from ml_assets.assets.ingestion import raw_complaints
from ml_assets.assets.monitoring import input_drift, live_performance, served_predictions
from ml_assets.assets.scoring import complaint_scores
from ml_assets.assets.serving import deployed_model
from ml_assets.assets.statistics import complaint_statistics
from ml_assets.assets.training import dispute_model, training_dataset
from ml_assets.assets.validation import validate_complaints
from ml_assets.partitions import daily_partitions, request_day_partitions

DATA_LAYER_ASSETS = [
    raw_complaints,
    validate_complaints,
    complaint_statistics,
    complaint_features,
    label_log,
    company_history,
]
DATA_LAYER_KEYS = [key for asset in DATA_LAYER_ASSETS for key in asset.keys]
MODEL_LAYER_ASSETS = [training_dataset, dispute_model, model_evaluation, champion_model]
MODEL_LAYER_CHECKS = [blessing]

# One day's data layer is a few quick steps: run them in one process instead of paying the
# code location's import in a subprocess per step (about 5 s each on this machine).
data_layer_job = dg.define_asset_job(
    "data_layer_job",
    selection=dg.AssetSelection.assets(*DATA_LAYER_ASSETS),
    partitions_def=daily_partitions,
    executor_def=dg.in_process_executor,
    description="Ingest, validate, profile and featurize ingestion days, and log their labels and "
    "company history.",
)

# In one process too: TensorFlow and MLflow are imported once, not once per step.
training_job = dg.define_asset_job(
    "training_job",
    selection=dg.AssetSelection.assets(*MODEL_LAYER_ASSETS),
    executor_def=dg.in_process_executor,
    description="Build the training window, train, evaluate against the champion, bless and promote.",
)

# Needs a running Ray cluster (`make serve-up`); kept apart so training works without one.
deployment_job = dg.define_asset_job(
    "deployment_job",
    selection=dg.AssetSelection.assets(deployed_model),
    executor_def=dg.in_process_executor,
    description="Serve the champion on Ray Serve and check it over HTTP.",
)
SERVING_ASSETS = [deployed_model]

# Needs a running Ray cluster too; one run scores up to DAYS_PER_RUN days (its backfill policy).
scoring_job = dg.define_asset_job(
    "scoring_job",
    selection=dg.AssetSelection.assets(complaint_scores),
    partitions_def=daily_partitions,
    executor_def=dg.in_process_executor,
    description="Score one ingestion day's complaints with the champion, by Ray Data on the cluster.",
)

MONITORING_ASSETS = [served_predictions, live_performance, input_drift]
served_predictions_job = dg.define_asset_job(
    "served_predictions_job",
    selection=dg.AssetSelection.assets(*MONITORING_ASSETS),
    partitions_def=request_day_partitions,
    executor_def=dg.in_process_executor,
    description="Ingest one request day of the endpoint's prediction logs.",
)
