"""The monitoring assets: served predictions, their live performance, and input drift and skew."""

import json
from collections.abc import Iterator
from datetime import date
from typing import Final

import dagster as dg
import pandas as pd

from ml_assets.assets.features import complaint_features
from ml_assets.assets.keys import (
    DRIFT_DATE_COLUMN,
    DUCKDB_POOL,
    EVIDENCE_VERSION_METADATA,
    FEATURES_TABLE,
    INPUT_DRIFT,
    LIVE_PERFORMANCE,
    MONITORING_GROUP,
    QUARANTINED_PREDICTIONS,
    RETRAIN_EVIDENCE_METADATA,
    SERVED_PREDICTIONS,
    WAREHOUSE_SCHEMA,
)
from ml_assets.columns import INGESTION_DATE_COLUMN, REQUEST_DATE_COLUMN
from ml_assets.model.features import FEATURE_COLUMNS, LABEL, to_model_inputs
from ml_assets.model.plots import markdown_image, over_time_figure, png
from ml_assets.model.tracking import (
    CHAMPION_ALIAS,
    DEFAULT_DECISION_THRESHOLD,
    EVALUATION_METRIC_PREFIX,
    REFERENCE_PROFILE_ARTIFACT,
    THRESHOLD_TAG,
)
from ml_assets.monitoring.drift import (
    DRIFT_COLUMNS,
    DriftLevel,
    DriftThresholds,
    InputProfile,
    compare_profiles,
    profile_inputs,
    worst_features,
    worst_level,
)
from ml_assets.monitoring.performance import (
    LABEL_COLUMN,
    LiveEvidencePolicy,
    join_labels,
    live_degradation,
)
from ml_assets.monitoring.performance import live_performance as live_performance_table
from ml_assets.monitoring.served import (
    SMOKE_COLUMN,
    answered_traffic,
    expired_days,
    line_count,
    log_digest,
    parse_prediction_logs,
    users_traffic,
)
from ml_assets.partitions import PARTITIONS_START_DATE, platform_today, request_day_partitions
from ml_assets.serving.schemas import MAX_LOGGED_LINE_BYTES
from resources.mlflow_registry import ModelRegistry
from resources.prediction_logs import PredictionLogs
from resources.warehouse import Warehouse

# A request day's live performance reruns when labels land for complaints of this many days
# before it (complaints are scored when filed; their labels come with a later re-landing).
LIVE_LABEL_LOOKBACK_DAYS: Final = 7
# Features named in the drift checks' metadata.
WORST_FEATURES: Final = 5
LIVE_PLOT_DAYS: Final = 60  # request days shown in live_performance's plot

LANDED_SOURCE = "landed"
SERVED_SOURCE = "served"
# The check of each compared source: drift of the landed complaints, skew of the served requests.
DRIFT_CHECKS = {LANDED_SOURCE: "landed_inputs_drift", SERVED_SOURCE: "served_inputs_skew"}
# Stored per request day; the IO manager replaces exactly the day's rows, in one transaction.
REQUEST_DAY_TABLE = {"partition_expr": REQUEST_DATE_COLUMN, "schema": WAREHOUSE_SCHEMA}
# Figures of each day's live performance logged on the served version's MLflow run.
LOGGED_FIGURES = ("labelled", "roc_auc", "pr_auc", "ece", "mean_probability", "positive_rate")


@dg.multi_asset(
    outs={
        # 2: every field scrubbed, and the deployer's signed smoke requests marked (`smoke`).
        "served_predictions": dg.AssetOut(
            metadata=REQUEST_DAY_TABLE, code_version="2", kinds={"pandas", "duckdb"}
        ),
        "quarantined_predictions": dg.AssetOut(
            metadata=REQUEST_DAY_TABLE, code_version="2", kinds={"pandas", "duckdb"}
        ),
    },
    partitions_def=request_day_partitions,
    group_name=MONITORING_GROUP,
    pool=DUCKDB_POOL,
    check_specs=[
        dg.AssetCheckSpec(
            "log_lines_readable",
            asset=SERVED_PREDICTIONS,
            description="Every line of the day's prediction logs is a served prediction.",
        )
    ],
)
def served_predictions(
    context: dg.AssetExecutionContext, prediction_logs: PredictionLogs, warehouse: Warehouse
) -> Iterator[dg.Output | dg.AssetCheckResult]:
    """The request day's logged predictions (model version, time, inputs, outputs), and the lines
    that could not be read, each with its reason; expired days' logs deleted once stored."""
    day = context.partition_key
    today = platform_today()
    files = prediction_logs.files_for_day(day)
    if not files and day in expired_days([day], today, prediction_logs.retention_days):
        raise dg.Failure(
            f"the prediction logs of {day} are past their retention "
            f"({prediction_logs.retention_days} days) and were deleted once ingested: the rows "
            "stored for it stay as they are (rerunning would replace them with nothing)"
        )
    deleted = _delete_expired_logs(prediction_logs, warehouse, today, keep=day)
    # Streamed: a day's logs are read a line at a time, never held whole.
    log = parse_prediction_logs(
        day, ((f.name, prediction_logs.iter_lines(f, MAX_LOGGED_LINE_BYTES)) for f in files)
    )
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
            "smoke_requests": int(predictions[SMOKE_COLUMN].sum()),
            "model_versions": {
                str(v): int(n) for v, n in predictions["model_version"].value_counts().items()
            },
            "expired_log_days_deleted": deleted,
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
        asset_key=SERVED_PREDICTIONS,
        check_name="log_lines_readable",
        passed=quarantined.empty,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "quarantined": len(quarantined),
            "reasons": {str(r): int(n) for r, n in reasons.head(10).items()},
        },
    )


def _delete_expired_logs(
    logs: PredictionLogs, warehouse: Warehouse, today: date, keep: str
) -> list[str]:
    """Delete the log folders past retention whose every line is stored (served or quarantined)."""
    expired = [d for d in expired_days(logs.days(), today, logs.retention_days) if d != keep]
    if not expired:
        return []
    stored = dict.fromkeys(expired, 0)
    for key in (SERVED_PREDICTIONS, QUARANTINED_PREDICTIONS):
        table = f"{WAREHOUSE_SCHEMA}.{key.path[-1]}"
        if warehouse.has_table(WAREHOUSE_SCHEMA, key.path[-1]):
            for d, n in warehouse.partition_counts(table, REQUEST_DATE_COLUMN, expired).items():
                stored[d] += n
    deleted = []
    for d in expired:
        lines = sum(
            line_count(logs.iter_lines(f, MAX_LOGGED_LINE_BYTES)) for f in logs.files_for_day(d)
        )
        if lines == stored[d]:  # anything not yet stored waits for its own run
            logs.delete_day(d)
            deleted.append(d)
    return deleted


def known_labels(warehouse: Warehouse, complaint_ids: list[str]) -> pd.DataFrame:
    """The known labels of these complaints, from the features table (the label the model learns)."""
    with warehouse.connect() as conn:
        return conn.execute(
            f"select complaint_id, {LABEL}::double as {LABEL_COLUMN} from {FEATURES_TABLE} "
            f"where complaint_id in (select unnest(?::varchar[])) and {LABEL} is not null",
            [complaint_ids],
        ).fetchdf()


def _history(warehouse: Warehouse, day: pd.Timestamp) -> pd.DataFrame:
    """Earlier days of live_performance, for the plot over time."""
    if not warehouse.has_table(WAREHOUSE_SCHEMA, LIVE_PERFORMANCE.path[-1]):
        return pd.DataFrame()
    with warehouse.connect() as conn:
        return conn.execute(
            f"select * from {WAREHOUSE_SCHEMA}.{LIVE_PERFORMANCE.path[-1]} where {REQUEST_DATE_COLUMN} "
            "between ? and ? - interval 1 day",
            [(day - pd.Timedelta(days=LIVE_PLOT_DAYS)).to_pydatetime(), day.to_pydatetime()],
        ).fetchdf()


class LiveConfig(dg.Config, LiveEvidencePolicy):
    """When live performance is evidence for retraining (the fields of `LiveEvidencePolicy`)."""


@dg.asset(
    partitions_def=request_day_partitions,
    metadata=REQUEST_DAY_TABLE,
    group_name=MONITORING_GROUP,
    code_version="1",
    pool=DUCKDB_POOL,
    kinds={"pandas", "duckdb", "mlflow"},
    ins={"served_predictions": dg.AssetIn(key=SERVED_PREDICTIONS)},
    # Labels arrive with a later re-landing of the complaint's ingestion day: those days'
    # features make this day stale, and automation reruns exactly it.
    deps=[
        dg.AssetDep(
            complaint_features,
            partition_mapping=dg.TimeWindowPartitionMapping(
                start_offset=-LIVE_LABEL_LOOKBACK_DAYS,
                end_offset=0,
                allow_nonexistent_upstream_partitions=True,
            ),
        )
    ],
)
def live_performance(
    context: dg.AssetExecutionContext,
    config: LiveConfig,
    served_predictions: pd.DataFrame,
    warehouse: Warehouse,
    model_registry: ModelRegistry,
) -> dg.Output[pd.DataFrame]:
    """Per model version served that day: its predictions joined with the labels that arrived,
    scored as the offline evaluation scores (ROC and PR AUC, ECE, rates, precision, recall)."""
    day = context.partition_key
    served = users_traffic(served_predictions).copy()
    # Logs written before the threshold was logged: the version's registered threshold.
    for version in served.loc[served["decision_threshold"].isna(), "model_version"].unique():
        registered = model_registry.get_version(str(version)).tags.get(THRESHOLD_TAG)
        served.loc[served["model_version"] == version, "decision_threshold"] = float(
            registered or DEFAULT_DECISION_THRESHOLD
        )
    ids = served["complaint_id"].dropna().astype(str).unique().tolist()
    table = live_performance_table(day, join_labels(served, known_labels(warehouse, ids)))
    champion = model_registry.version_for_alias(CHAMPION_ALIAS)
    evidence = []
    # Records, not itertuples: pandas-stubs type a named tuple's fields as any scalar (str too).
    for row in table.to_dict("records"):
        version = model_registry.get_version(str(row["model_version"]))
        figures = {
            f"live_{name}": float(row[name]) for name in LOGGED_FIGURES if not pd.isna(row[name])
        }
        if figures:
            model_registry.log_metrics(version.run_id, figures, step=_day_step(day))
        offline = model_registry.run_metrics(version.run_id).get(
            f"{EVALUATION_METRIC_PREFIX}roc_auc"
        )
        reason = live_degradation(
            int(row["labelled"]),
            float(row["roc_auc"]),
            offline,
            config,
        )
        # Only the served champion's performance calls for retraining: a version it replaced
        # answered that day too, and its figures are history.
        if reason and champion is not None and str(champion.version) == str(row["model_version"]):
            evidence.append(f"version {row['model_version']}: {reason}")
    earlier = _history(warehouse, pd.Timestamp(day))
    history = pd.concat([earlier, table], ignore_index=True) if len(earlier) else table
    plot = png(over_time_figure(history, REQUEST_DATE_COLUMN, ("roc_auc", "ece", "labelled")))
    return dg.Output(
        table,
        metadata={
            "served": int(table["served"].sum()),
            "labelled": int(table["labelled"].sum()),
            "by_version": dg.MetadataValue.md(
                table.drop(columns=[REQUEST_DATE_COLUMN]).to_markdown(index=False, floatfmt=".3f")
            ),
            "over_time": dg.MetadataValue.md(markdown_image(plot, "live performance over time")),
            # Read by the retraining policy: a degraded day is evidence (empty: none).
            RETRAIN_EVIDENCE_METADATA: "; ".join(evidence),
            EVIDENCE_VERSION_METADATA: str(champion.version) if champion else "none",
        },
    )


def _day_step(day: str) -> int:
    """An MLflow step per request day (days since the partitions' start), so metrics plot by day."""
    return (pd.Timestamp(day) - pd.Timestamp(PARTITIONS_START_DATE)).days


_SAME_DAY_IF_LANDED = dg.TimeWindowPartitionMapping(allow_nonexistent_upstream_partitions=True)


class DriftConfig(dg.Config, DriftThresholds):
    """Thresholds of input_drift's checks: warn beyond the first, error beyond the second."""


def _landed_inputs(warehouse: Warehouse, day: str) -> tuple[pd.DataFrame, pd.Series]:
    """The day's landed complaints as model inputs, and their labels (NaN until they arrive)."""
    if not warehouse.has_table(WAREHOUSE_SCHEMA, complaint_features.key.path[-1]):
        return pd.DataFrame(columns=list(FEATURE_COLUMNS)), pd.Series(dtype="float64")
    with warehouse.connect() as conn:
        rows = conn.execute(
            f"select * from {FEATURES_TABLE} where {INGESTION_DATE_COLUMN} = ?",
            [pd.Timestamp(day).to_pydatetime()],
        ).fetchdf()
    return rows[list(FEATURE_COLUMNS)], rows[LABEL].astype("float64")


def _served_inputs(warehouse: Warehouse, day: str) -> pd.DataFrame:
    """The day's served requests, mapped to model inputs exactly as the endpoint maps them."""
    if not warehouse.has_table(WAREHOUSE_SCHEMA, SERVED_PREDICTIONS.path[-1]):
        return pd.DataFrame(columns=list(FEATURE_COLUMNS))
    with warehouse.connect() as conn:
        logged = conn.execute(
            f"select * from {WAREHOUSE_SCHEMA}.{SERVED_PREDICTIONS.path[-1]} "
            f"where {REQUEST_DATE_COLUMN} = ?",
            [pd.Timestamp(day).to_pydatetime()],
        ).fetchdf()
    logged = answered_traffic(logged)
    return to_model_inputs(pd.DataFrame([json.loads(i) for i in logged["inputs"]]))


@dg.asset(
    partitions_def=request_day_partitions,
    metadata={"partition_expr": DRIFT_DATE_COLUMN, "schema": WAREHOUSE_SCHEMA},
    group_name=MONITORING_GROUP,
    code_version="1",
    pool=DUCKDB_POOL,
    kinds={"pandas", "duckdb", "scipy"},
    deps=[
        # Today is a request day but not yet an ingestion day: its landed side is empty.
        dg.AssetDep(complaint_features, partition_mapping=_SAME_DAY_IF_LANDED),
        SERVED_PREDICTIONS,
    ],
    check_specs=[
        dg.AssetCheckSpec(
            DRIFT_CHECKS[LANDED_SOURCE],
            asset=INPUT_DRIFT,
            description="The day's landed complaints look like the served model's training data.",
        ),
        dg.AssetCheckSpec(
            DRIFT_CHECKS[SERVED_SOURCE],
            asset=INPUT_DRIFT,
            description="The day's served requests look like the served model's training data "
            "(training/serving skew).",
        ),
    ],
)
def input_drift(
    context: dg.AssetExecutionContext,
    config: DriftConfig,
    warehouse: Warehouse,
    model_registry: ModelRegistry,
) -> Iterator[dg.Output | dg.AssetCheckResult]:
    """Per feature: how far the day's landed complaints (drift) and served requests (skew) moved
    from the served model's training data, with the level each reached."""
    day = context.partition_key
    thresholds: DriftThresholds = config
    champion = model_registry.version_for_alias(CHAMPION_ALIAS)
    frames = []
    sources: dict[str, tuple[int, pd.DataFrame]] = {}
    if champion is not None:
        reference = InputProfile.model_validate(
            model_registry.run_json(champion.run_id, REFERENCE_PROFILE_ARTIFACT)
        )
        landed, labels = _landed_inputs(warehouse, day)
        served = _served_inputs(warehouse, day)
        for source, inputs, known in (
            (LANDED_SOURCE, landed, labels),
            (SERVED_SOURCE, served, None),
        ):
            current = profile_inputs(inputs, known, reference.vocabulary)
            drift = compare_profiles(source, reference, current, thresholds)
            sources[source] = (len(inputs), drift)
            frames.append(drift)
    table = (
        pd.concat(frames, ignore_index=True)
        if frames
        else pd.DataFrame(columns=list(DRIFT_COLUMNS))
    )
    table.insert(0, DRIFT_DATE_COLUMN, pd.Timestamp(day))
    # The version compared with: a day compared before a retrain keeps its first verdict.
    table.insert(1, "reference_version", str(champion.version) if champion else "")
    # Typed even when empty (no champion yet): the first write creates the warehouse table.
    table = table.astype(
        {DRIFT_DATE_COLUMN: "datetime64[ns]", "reference_version": "string", **DRIFT_COLUMNS}
    )
    levels = {source: worst_level(drift).value for source, (_, drift) in sources.items()}
    yield dg.Output(
        table,
        metadata={
            EVIDENCE_VERSION_METADATA: str(champion.version)
            if champion
            else "none: no champion yet",
            "levels": dg.MetadataValue.json(levels),
            # Read by the retraining policy: drift or skew at the error level is evidence.
            RETRAIN_EVIDENCE_METADATA: _drift_evidence(sources, thresholds),
            "rows": dg.MetadataValue.json({s: n for s, (n, _) in sources.items()}),
            "drift": dg.MetadataValue.md(
                table.drop(columns=[DRIFT_DATE_COLUMN]).to_markdown(index=False, floatfmt=".3f")
                if len(table)
                else "nothing compared"
            ),
        },
    )
    for source, check in DRIFT_CHECKS.items():
        rows, drift = sources.get(source, (0, table.iloc[0:0]))
        level = worst_level(drift)
        yield dg.AssetCheckResult(
            asset_key=INPUT_DRIFT,
            check_name=check,
            passed=level == DriftLevel.OK,
            severity=dg.AssetCheckSeverity.ERROR
            if level == DriftLevel.ERROR
            else dg.AssetCheckSeverity.WARN,
            metadata={
                "level": level.value,
                "rows": rows,
                "judged": bool(len(drift)),
                "reason": _not_judged(champion is not None, rows, thresholds.min_rows)
                if drift.empty
                else "",
                "worst_features": dg.MetadataValue.json(
                    worst_features(drift, thresholds, WORST_FEATURES)
                ),
            },
        )


def _not_judged(has_champion: bool, rows: int, min_rows: int) -> str:
    """Why a source of the day was not compared."""
    if not has_champion:
        return "no champion model yet: nothing is served to compare with"
    return f"{rows} rows, fewer than {min_rows}: too few to judge"


def _drift_evidence(
    sources: dict[str, tuple[int, pd.DataFrame]], thresholds: DriftThresholds
) -> str:
    """The sources that drifted to the error level and their worst features ("" when none)."""
    reasons = []
    for source, (_, drift) in sources.items():
        if worst_level(drift) == DriftLevel.ERROR:
            errors = drift[drift["level"] == DriftLevel.ERROR.value]
            worst = ", ".join(worst_features(errors, thresholds, 3))
            reasons.append(f"{source} inputs drifted: {worst}")
    return "; ".join(reasons)
