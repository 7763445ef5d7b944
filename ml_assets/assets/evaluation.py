"""`model_evaluation`, its `blessing` check, and `champion_model`, which promotes or keeps."""

import dagster as dg
import pandas as pd

from ml_assets.assets.keys import AWAITING_METADATA, CHAMPION_METADATA, MODEL_GROUP
from ml_assets.assets.policy import ServingPolicy
from ml_assets.model.blessing import BlessingPolicy, gate_rule
from ml_assets.model.evaluation import (
    EvaluationReport,
    ModelScores,
    evaluate_models,
    report_markdown,
)
from ml_assets.model.network import predict_proba
from ml_assets.model.promotion import ChampionChange, promote
from ml_assets.model.tracking import (
    BLESSED_TAG,
    CHAMPION_ALIAS,
    DEFAULT_DECISION_THRESHOLD,
    EVALUATION_METRIC_PREFIX,
    THRESHOLD_TAG,
    RegisteredModel,
    load_keras_model,
)
from ml_assets.model.training import EVALUATION, SPLIT_COLUMN
from resources.mlflow_registry import ModelRegistry

EVALUATION_CODE_VERSION = "3"  # 3: each model scored on the inputs it takes
# champion_model's record of the version it made champion (read by the retraining policy).
CHAMPION_CODE_VERSION = "2"


class BlessingConfig(dg.Config, BlessingPolicy):
    """When a challenger may replace the champion (the fields and defaults of `BlessingPolicy`)."""


def _scores(
    registry: ModelRegistry, version: str, threshold: float, rows: pd.DataFrame
) -> ModelScores:
    model = load_keras_model(version, registry.tracking_uri, registry.model_name)
    return ModelScores(version, threshold, predict_proba(model, rows))


@dg.asset(
    io_manager_key="model_io_manager",
    group_name=MODEL_GROUP,
    code_version=EVALUATION_CODE_VERSION,
    kinds={"mlflow"},
)
def model_evaluation(
    config: BlessingConfig,
    dispute_model: RegisteredModel,
    training_dataset: pd.DataFrame,
    model_registry: ModelRegistry,
) -> dg.Output[EvaluationReport]:
    """Challenger and champion scored on the same evaluation split: metrics, slices, plots, blessing."""
    rows = training_dataset[training_dataset[SPLIT_COLUMN] == EVALUATION].reset_index(drop=True)
    challenger = _scores(model_registry, dispute_model.version, dispute_model.threshold, rows)
    current = model_registry.version_for_alias(CHAMPION_ALIAS)
    champion = None
    if current is not None and current.version != dispute_model.version:
        champion = _scores(
            model_registry,
            current.version,
            float(current.tags.get(THRESHOLD_TAG, DEFAULT_DECISION_THRESHOLD)),
            rows,
        )
    # A plain policy in the stored report: the run config class need not unpickle elsewhere.
    policy = BlessingPolicy.model_validate(config.model_dump())
    report = evaluate_models(rows, challenger, champion, policy)
    metrics = {
        f"{EVALUATION_METRIC_PREFIX}{k}": v
        for k, v in report.metrics.to_dict().items()
        if isinstance(v, float)
    }
    # `mlflow.models.evaluate` (MLflow 3.17) was tried here and rejected. It computes ROC AUC, log
    # loss and the ROC, PR and calibration plots only from a scikit-learn, XGBoost or CatBoost
    # flavour's `predict_proba` (mlflow/mlflow#10323 asks for more). Our pyfunc's `predict`
    # returns probabilities, which it reads as class labels: `model="models:/NAME/VERSION"`, or
    # the probabilities as a static `predictions` column, fails with "Classification metrics
    # can't handle a mix of binary and continuous targets". Given labels at the threshold, it
    # logs only accuracy, precision, recall, F1 and a confusion matrix (0.7 s warm, 3 s cold),
    # through the fluent API's global tracking URI. So scikit-learn's metrics are logged here.
    model_registry.log_to_run(dispute_model.run_id, metrics, report.plots, folder="evaluation")
    return dg.Output(
        report,
        metadata={
            "report": dg.MetadataValue.md(report_markdown(report)),
            "roc_auc": report.metrics.roc_auc,
            "ece": report.metrics.ece,
            "mean_probability": report.metrics.mean_probability,
            "positive_rate": report.metrics.positives / report.metrics.count,
            "champion_roc_auc": report.champion_metrics.roc_auc
            if report.champion_metrics
            else None,
            "blessed": report.verdict.blessed,
            "mlflow_run": dg.MetadataValue.url(model_registry.run_url(dispute_model.run_id)),
        },
    )


@dg.asset_check(
    asset=model_evaluation,
    # Blocking for the order only: champion_model runs after it and reads the verdict. A refusal
    # is a WARN, the gate's outcome, so the run stays green and no failure alert fires.
    blocking=True,
    description="The challenger is good enough to replace the champion.",
    # Evaluated whenever its report is: automated runs only execute checks whose condition holds.
    automation_condition=dg.AutomationCondition.any_deps_updated(),
)
def blessing(model_evaluation: EvaluationReport) -> dg.AssetCheckResult:
    """Pass when the challenger clears the AUC floor, the ECE ceiling, the champion's AUC and
    every big slice."""
    verdict = model_evaluation.verdict
    return dg.AssetCheckResult(
        passed=verdict.blessed,
        severity=dg.AssetCheckSeverity.WARN,
        description=refusal(model_evaluation) if not verdict.blessed else None,
        metadata={
            "conditions": dg.MetadataValue.md(verdict.to_markdown()),
            "failed": "; ".join(verdict.failures) or "none",
            "rule": dg.MetadataValue.md(gate_rule(model_evaluation.policy)),
            "challenger_version": model_evaluation.challenger_version,
        },
    )


def refusal(report: EvaluationReport) -> str:
    """What a refusal leaves in place, and every condition it failed."""
    kept = f"kept v{report.champion_version}" if report.champion_version else "no champion"
    return f"{kept}; challenger v{report.challenger_version} refused: " + "; ".join(
        report.verdict.failures
    )


@dg.asset(
    io_manager_key="model_io_manager",
    group_name=MODEL_GROUP,
    code_version=CHAMPION_CODE_VERSION,
    kinds={"mlflow"},
)
def champion_model(
    model_evaluation: EvaluationReport,
    model_registry: ModelRegistry,
    serving_policy: ServingPolicy,
) -> dg.Output[ChampionChange | None]:
    """Moves the `champion` alias to a blessed challenger, or records that the champion stays."""
    if not model_evaluation.verdict.blessed:
        # A refusal is the gate's outcome: recorded here, in words, and the run stays green.
        kept = model_evaluation.champion_version
        return dg.Output(
            ChampionChange(champion=kept, previous=None) if kept else None,
            metadata={
                **({CHAMPION_METADATA: kept} if kept else {}),
                "outcome": refusal(model_evaluation),
            },
        )
    challenger = model_evaluation.challenger_version
    model_registry.set_version_tag(challenger, BLESSED_TAG, "true")
    kept = model_evaluation.champion_version
    if kept and serving_policy.promote_on_live_evidence:
        # The champion stays until live_promotion has the challenger's live evidence.
        return dg.Output(
            ChampionChange(champion=kept, previous=None),
            metadata={
                CHAMPION_METADATA: kept,
                AWAITING_METADATA: challenger,
                "outcome": f"kept v{kept}; challenger v{challenger} blessed offline, serving "
                f"beside it ({serving_policy.challenger_mode}) until live_promotion decides",
            },
        )
    change = promote(model_registry, challenger)
    return dg.Output(
        change,
        metadata={
            CHAMPION_METADATA: change.champion,
            "previous": change.previous or "none",
            "outcome": f"challenger v{change.champion} is the champion"
            + (f", replacing v{change.previous}" if change.previous else ""),
        },
    )
