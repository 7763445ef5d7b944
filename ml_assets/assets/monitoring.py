"""`served_predictions`: the endpoint's prediction logs of a day, in the warehouse."""

from collections.abc import Iterator

import dagster as dg
import pandas as pd

from ml_assets.assets.features import FEATURES_TABLE, complaint_features
from ml_assets.constants import (
    DEFAULT_DECISION_THRESHOLD,
    DUCKDB_POOL,
    LIVE_LABEL_LOOKBACK_DAYS,
    LIVE_PLOT_DAYS,
    MONITORING_ASSET_GROUP,
    PARTITIONS_START_DATE,
    REQUEST_DATE_COLUMN,
    THRESHOLD_TAG,
    WAREHOUSE_SCHEMA,
)
from ml_assets.model.features import LABEL
from ml_assets.model.plots import markdown_image, over_time_png
from ml_assets.monitoring.performance import LABEL_COLUMN, join_labels
from ml_assets.monitoring.performance import live_performance as live_performance_table
from ml_assets.monitoring.served import log_digest, parse_prediction_logs
from ml_assets.partitions import daily_partitions
from resources.mlflow_registry import ModelRegistry
from resources.prediction_logs import PredictionLogs
from resources.warehouse import Warehouse

SERVED = dg.AssetKey("served_predictions")
QUARANTINED = dg.AssetKey("quarantined_predictions")
# Stored per request day; the IO manager replaces exactly the day's rows, in one transaction.
REQUEST_DAY_TABLE = {"partition_expr": REQUEST_DATE_COLUMN, "schema": WAREHOUSE_SCHEMA}
# Figures of each day's live performance logged on the served version's MLflow run.
LOGGED_FIGURES = ("labelled", "roc_auc", "pr_auc", "ece", "mean_probability", "positive_rate")


@dg.multi_asset(
    outs={
        "served_predictions": dg.AssetOut(
            metadata=REQUEST_DAY_TABLE, code_version="1", kinds={"pandas", "duckdb"}
        ),
        "quarantined_predictions": dg.AssetOut(
            metadata=REQUEST_DAY_TABLE, code_version="1", kinds={"pandas", "duckdb"}
        ),
    },
    partitions_def=daily_partitions,
    group_name=MONITORING_ASSET_GROUP,
    pool=DUCKDB_POOL,
    check_specs=[
        dg.AssetCheckSpec(
            "log_lines_readable",
            asset=SERVED,
            description="Every line of the day's prediction logs is a served prediction.",
        )
    ],
)
def served_predictions(
    context: dg.AssetExecutionContext, prediction_logs: PredictionLogs
) -> Iterator[dg.Output | dg.AssetCheckResult]:
    """The request day's logged predictions (model version, time, inputs, outputs), and the lines
    that could not be read, each with its reason."""
    day = context.partition_key
    files = prediction_logs.files_for_day(day)
    log = parse_prediction_logs(day, [(f.name, prediction_logs.read_bytes(f)) for f in files])
    # Names and sizes decide the version: logs only grow, and a day read once is not read again
    # until a writer appends to it.
    version = dg.DataVersion(log_digest((f.name, f.size) for f in files))
    predictions, quarantined = log.predictions, log.quarantined
    yield dg.Output(
        predictions,
        output_name="served_predictions",
        data_version=version,
        metadata={
            "files": [f.name for f in files],
            "bytes": sum(f.size for f in files),
            "predictions": len(predictions),
            "model_versions": {
                str(v): int(n) for v, n in predictions["model_version"].value_counts().items()
            },
        },
    )
    reasons = quarantined["reason"].value_counts()
    yield dg.Output(
        quarantined,
        output_name="quarantined_predictions",
        data_version=version,
        metadata={"lines": len(quarantined)},
    )
    yield dg.AssetCheckResult(
        asset_key=SERVED,
        check_name="log_lines_readable",
        passed=quarantined.empty,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "quarantined": len(quarantined),
            "reasons": {str(r): int(n) for r, n in reasons.head(10).items()},
        },
    )


def _labels(warehouse: Warehouse, complaint_ids: list[str]) -> pd.DataFrame:
    """The known labels of these complaints, from the features table (the label the model learns)."""
    with warehouse.connect() as conn:
        return conn.execute(
            f"select complaint_id, {LABEL}::double as {LABEL_COLUMN} from {FEATURES_TABLE} "
            f"where complaint_id in (select unnest(?::varchar[])) and {LABEL} is not null",
            [complaint_ids],
        ).fetchdf()


def _history(warehouse: Warehouse, day: pd.Timestamp) -> pd.DataFrame:
    """Earlier days of live_performance, for the plot over time."""
    with warehouse.connect() as conn:
        exists = conn.execute(
            "select count(*) from information_schema.tables where table_schema = ? "
            "and table_name = 'live_performance'",
            [WAREHOUSE_SCHEMA],
        ).fetchone()[0]
        if not exists:
            return pd.DataFrame()
        return conn.execute(
            f"select * from {WAREHOUSE_SCHEMA}.live_performance where {REQUEST_DATE_COLUMN} "
            "between ? and ? - interval 1 day",
            [(day - pd.Timedelta(days=LIVE_PLOT_DAYS)).to_pydatetime(), day.to_pydatetime()],
        ).fetchdf()


@dg.asset(
    partitions_def=daily_partitions,
    metadata=REQUEST_DAY_TABLE,
    group_name=MONITORING_ASSET_GROUP,
    code_version="1",
    pool=DUCKDB_POOL,
    kinds={"pandas", "duckdb", "mlflow"},
    ins={"served_predictions": dg.AssetIn(key=SERVED)},
    # Labels arrive with a later re-landing of the complaint's ingestion day: those days'
    # features make this day stale, and automation reruns exactly it.
    deps=[
        dg.AssetDep(
            complaint_features,
            partition_mapping=dg.TimeWindowPartitionMapping(
                start_offset=-LIVE_LABEL_LOOKBACK_DAYS, end_offset=0
            ),
        )
    ],
)
def live_performance(
    context: dg.AssetExecutionContext,
    served_predictions: pd.DataFrame,
    warehouse: Warehouse,
    model_registry: ModelRegistry,
) -> dg.Output[pd.DataFrame]:
    """Per model version served that day: its predictions joined with the labels that arrived,
    scored as the offline evaluation scores (ROC and PR AUC, ECE, rates, precision, recall)."""
    day = context.partition_key
    served = served_predictions.copy()
    # Logs written before the threshold was logged: the version's registered threshold.
    for version in served.loc[served["decision_threshold"].isna(), "model_version"].unique():
        registered = model_registry.get_version(str(version)).tags.get(THRESHOLD_TAG)
        served.loc[served["model_version"] == version, "decision_threshold"] = float(
            registered or DEFAULT_DECISION_THRESHOLD
        )
    ids = served["complaint_id"].dropna().astype(str).unique().tolist()
    table = live_performance_table(day, join_labels(served, _labels(warehouse, ids)))
    for row in table.itertuples(index=False):
        figures = {
            f"live_{name}": float(getattr(row, name))
            for name in LOGGED_FIGURES
            if not pd.isna(getattr(row, name))
        }
        if figures:
            version = model_registry.get_version(str(row.model_version))
            model_registry.log_metrics(version.run_id, figures, step=_day_step(day))
    earlier = _history(warehouse, pd.Timestamp(day))
    history = pd.concat([earlier, table], ignore_index=True) if len(earlier) else table
    plot = over_time_png(history, REQUEST_DATE_COLUMN, ("roc_auc", "ece", "labelled"))
    return dg.Output(
        table,
        metadata={
            "served": int(table["served"].sum()),
            "labelled": int(table["labelled"].sum()),
            "by_version": dg.MetadataValue.md(
                table.drop(columns=[REQUEST_DATE_COLUMN]).to_markdown(index=False, floatfmt=".3f")
            ),
            "over_time": dg.MetadataValue.md(markdown_image(plot, "live performance over time")),
        },
    )


def _day_step(day: str) -> int:
    """An MLflow step per request day (days since the partitions' start), so metrics plot by day."""
    return (pd.Timestamp(day) - pd.Timestamp(PARTITIONS_START_DATE)).days
