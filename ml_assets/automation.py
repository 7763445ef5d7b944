"""Declarative automation: which assets rerun when, and the retraining policy (defined once)."""

from dataclasses import dataclass
from datetime import timedelta
from typing import Final

import dagster as dg

from ml_assets.assets.evaluation import champion_model, model_evaluation
from ml_assets.assets.evidence import evidence_after, materializations_after
from ml_assets.assets.features import complaint_features
from ml_assets.assets.history import company_history, feature_store, label_log
from ml_assets.assets.keys import INPUT_DRIFT, RETRAIN_EVIDENCE_METADATA, SERVED_PREDICTIONS
from ml_assets.assets.monitoring import input_drift, live_performance
from ml_assets.assets.promotion import live_promotion
from ml_assets.assets.serving import deployed_model
from ml_assets.assets.statistics import complaint_statistics
from ml_assets.assets.training import dispute_model, training_dataset
from ml_assets.assets.validation import validate_complaints
from ml_assets.partitions import platform_today
from ml_assets.runs import IN_FLIGHT

# input_drift runs by itself for days this recent only: older days are history, not news, and a
# backfill of years would otherwise compare every one of them with today's model.
DRIFT_RECENT_DAYS: Final = 14

AutomationCondition = dg.AutomationCondition
# `.since_last_handled()` below carries `pyright: ignore[reportAttributeAccessIssue]`: Dagster
# annotates its `self` as AutomationCondition[AssetOrCheckKey], which a condition on AssetKey
# does not match for an invariant type checker, though it is exactly the documented use.


@dataclass(frozen=True)
class RetrainPolicy:
    """When the model retrains: whichever of these comes first, never while training runs.

    The first three are settings (ml_assets/settings.py: their defaults and why).
    """

    min_new_partitions: int
    cron: str | None  # None: evidence only
    # Evidence of the last days waits this long: their labels are still arriving, and a model
    # retrained now would not learn from the days that drifted. 0: act at once.
    labels_settle_days: int
    cron_timezone: str = "UTC"
    # Evidence from monitoring: an input_drift error, a degraded live_performance day.
    on_drift_error: bool = True
    on_live_degradation: bool = True


class NewLabelledPartitions(AutomationCondition):
    """True when enough features partitions with labels were written since the target last ran,
    and no features partition is being written right now (retrain once the landing settles)."""

    def __init__(self, features_key: dg.AssetKey, minimum: int) -> None:
        self.features_key = features_key
        self.minimum = minimum

    @property
    def name(self) -> str:
        return f"new_labelled_partitions>={self.minimum}"

    @property
    def description(self) -> str:
        return (
            f"at least {self.minimum} partitions of {self.features_key.to_user_string()} "
            "with labelled rows were written since the last materialization, none in progress"
        )

    # Async, as Dagster's own conditions are (it awaits a coroutine); its base class annotates
    # the sync form and Dagster ignores the mismatch the same way.
    async def evaluate(self, context: dg.AutomationContext) -> dg.AutomationResult:  # pyright: ignore[reportIncompatibleMethodOverride]
        view = context.asset_graph_view
        in_progress = await view.compute_run_in_progress_subset(
            key=self.features_key, from_subset=view.get_full_subset(key=self.features_key)
        )
        fresh = (
            not in_progress.is_empty
            or new_labelled_partitions(view.instance, context.key, self.features_key) < self.minimum
        )
        true_subset = context.get_empty_subset() if fresh else context.candidate_subset
        return dg.AutomationResult(context, true_subset)


def new_labelled_partitions(
    instance: dg.DagsterInstance, target: dg.AssetKey, features_key: dg.AssetKey
) -> int:
    """Distinct features partitions with labelled rows materialized after the target's latest run."""
    partitions: set[str] = set()
    for materialization in materializations_after(instance, target, features_key):
        labelled = materialization.metadata.get("labelled")
        if materialization.partition and labelled and labelled.value:
            partitions.add(materialization.partition)
    return len(partitions)


class EvidenceRecorded(AutomationCondition):
    """True when a monitoring asset recorded evidence for retraining (an input-drift error, a
    degraded live AUC) after the target last ran, on a day whose labels have settled."""

    def __init__(self, evidence_key: dg.AssetKey, label: str, settle_days: int) -> None:
        self.evidence_key = evidence_key
        self.label = label
        self.settle_days = settle_days

    @property
    def name(self) -> str:
        return self.label

    @property
    def description(self) -> str:
        return (
            f"{self.evidence_key.to_user_string()} recorded {RETRAIN_EVIDENCE_METADATA} since "
            f"the last training, on a day at least {self.settle_days} day(s) old"
        )

    # Async, as Dagster's own conditions are (it awaits a coroutine); its base class annotates
    # the sync form and Dagster ignores the mismatch the same way.
    async def evaluate(self, context: dg.AutomationContext) -> dg.AutomationResult:  # pyright: ignore[reportIncompatibleMethodOverride]
        settled = platform_today() - timedelta(days=self.settle_days - 1)
        found = evidence_after(
            context.asset_graph_view.instance, context.key, self.evidence_key, settled
        )
        true_subset = context.candidate_subset if found else context.get_empty_subset()
        return dg.AutomationResult(context, true_subset)


class TargetedByRunInFlight(AutomationCondition):
    """True for every partition of the asset while a queued or running run targets the asset.

    Dagster's `in_progress()` misses the days of a run over a range of days, and its
    `executed_with_root_target()` holds for one day of such a run only (the asset's latest
    materialization), so a tick in the middle of a ranged run requested the days that run was
    about to write. Waiting until no run targets the asset closes that gap; the updates the run
    makes are then handled by `since_last_handled` (its own writes come after its inputs').
    """

    def __init__(self, watched: dg.AssetKey | None = None) -> None:
        # None: the asset itself; a key: an upstream asset whose ranged runs it must wait for.
        self.watched = watched

    @property
    def name(self) -> str:
        if self.watched is None:
            return "targeted_by_run_in_flight"
        return f"{self.watched.to_user_string()}_targeted_by_run_in_flight"

    @property
    def description(self) -> str:
        what = "this asset" if self.watched is None else self.watched.to_user_string()
        return f"a queued or running run targets {what} (or names no assets)"

    # Async, as Dagster's own conditions are (it awaits a coroutine); its base class annotates
    # the sync form and Dagster ignores the mismatch the same way.
    async def evaluate(self, context: dg.AutomationContext) -> dg.AutomationResult:  # pyright: ignore[reportIncompatibleMethodOverride]
        runs = context.asset_graph_view.instance.get_runs(filters=dg.RunsFilter(statuses=IN_FLIGHT))
        key = self.watched or context.key
        # A run without an asset selection runs its whole job: count it as targeting.
        busy = any(r.asset_selection is None or key in r.asset_selection for r in runs)
        true_subset = context.candidate_subset if busy else context.get_empty_subset()
        return dg.AutomationResult(context, true_subset)


def upstream_or_code_changed(label: str) -> AutomationCondition:
    """Rerun when an upstream partition changed or this asset's code did, once deps are ready.

    `eager()` without its latest-time-window clause: a late file or a correction for any day
    must reach that day's downstream partitions; unpartitioned assets follow their upstream.
    """
    return (
        (AutomationCondition.any_deps_updated() | AutomationCondition.code_version_changed())
        .since_last_handled()  # pyright: ignore[reportAttributeAccessIssue]
        .with_label("upstream_or_code_changed")
        & ~AutomationCondition.any_deps_missing()
        & ~AutomationCondition.any_deps_in_progress()
        & ~AutomationCondition.in_progress()
    ).with_label(label)


def champion_changed() -> AutomationCondition:
    """`deployed_model`: redeploy when the champion (or the serving code) changed, once the
    online store exists; a refreshed store is no reason, the replicas reload it themselves."""
    return (
        (
            AutomationCondition.any_deps_updated().ignore(
                dg.AssetSelection.assets(feature_store.key)
            )
            | AutomationCondition.code_version_changed()
        )
        .since_last_handled()  # pyright: ignore[reportAttributeAccessIssue]
        .with_label("champion_or_code_changed")
        & ~AutomationCondition.any_deps_missing()
        & ~AutomationCondition.any_deps_in_progress()
        & ~AutomationCondition.in_progress()
    ).with_label("champion_changed")


def history_changed() -> AutomationCondition:
    """`feature_store`: rewrite the snapshot when company history changed, once no run writes
    history (a ranged run's days are not "in progress" to Dagster: TargetedByRunInFlight)."""
    return (
        (AutomationCondition.any_deps_updated() | AutomationCondition.code_version_changed())
        .since_last_handled()  # pyright: ignore[reportAttributeAccessIssue]
        .with_label("history_or_code_changed")
        & ~TargetedByRunInFlight(company_history.key)
        & ~AutomationCondition.any_deps_in_progress()
        & ~AutomationCondition.in_progress()
    ).with_label("history_changed")


def evidence_changed() -> AutomationCondition:
    """`live_promotion`: rerun when served predictions, live performance or labels change.

    Neither missing days (most request days have none) nor runs in progress hold it back: under
    steady traffic today's logs are ingested nearly all the time, and each of those runs
    replaces its day in one transaction, so what it reads is whole."""
    return (
        (AutomationCondition.any_deps_updated() | AutomationCondition.code_version_changed())
        .since_last_handled()  # pyright: ignore[reportAttributeAccessIssue]
        .with_label("evidence_or_code_changed")
        & ~AutomationCondition.in_progress()
    ).with_label("live_evidence_changed")


def labels_or_logs_changed() -> AutomationCondition:
    """`live_performance` of a request day: rerun when labels land for the days before it (their
    features change) or its logs do, once the day's served predictions exist.

    Unlike `upstream_or_code_changed`, a features day that was never landed (a gap in the
    source, or a source lagging the endpoint's real date) does not block the day.
    """
    served_missing = AutomationCondition.any_deps_match(AutomationCondition.missing()).allow(
        dg.AssetSelection.assets(SERVED_PREDICTIONS)
    )
    return (
        (AutomationCondition.any_deps_updated() | AutomationCondition.code_version_changed())
        .since_last_handled()  # pyright: ignore[reportAttributeAccessIssue]
        .with_label("labels_or_logs_changed")
        & ~served_missing
        & ~AutomationCondition.any_deps_in_progress()
        & ~AutomationCondition.in_progress()
    ).with_label("labels_or_logs_changed")


def recent_inputs_changed() -> AutomationCondition:
    """`input_drift` of a day: rerun when its landed complaints or served requests change, for
    recent days only (a backfill of years is history, not drift of today's model's inputs)."""
    return (
        (AutomationCondition.any_deps_updated() | AutomationCondition.code_version_changed())
        .since_last_handled()  # pyright: ignore[reportAttributeAccessIssue]
        .with_label("inputs_changed")
        & AutomationCondition.in_latest_time_window(timedelta(days=DRIFT_RECENT_DAYS))
        # `any_deps_in_progress()` misses the days of a ranged run of the data layer (see
        # TargetedByRunInFlight): a day's drift waits until its features are written.
        & ~TargetedByRunInFlight(complaint_features.key)
        & ~AutomationCondition.any_deps_in_progress()
        & ~AutomationCondition.in_progress()
    ).with_label("recent_inputs_changed")


def retrain_condition(policy: RetrainPolicy) -> AutomationCondition:
    """The retraining policy for `training_dataset`, the root of the model chain."""
    features_key = complaint_features.key
    triggers = (
        NewLabelledPartitions(features_key, policy.min_new_partitions)
        | AutomationCondition.code_version_changed()
        # The features' code changed: their partitions are requested in the same tick, so
        # the same backfill rewrites them first and then retrains.
        | AutomationCondition.any_deps_match(AutomationCondition.code_version_changed())
    )
    if policy.on_drift_error:
        triggers = triggers | EvidenceRecorded(
            INPUT_DRIFT, "input_drift_error", policy.labels_settle_days
        )
    if policy.on_live_degradation:
        triggers = triggers | EvidenceRecorded(
            live_performance.key, "live_performance_degraded", policy.labels_settle_days
        )
    if policy.cron:
        triggers = triggers | AutomationCondition.cron_tick_passed(
            policy.cron, policy.cron_timezone
        )
    return (
        triggers.since_last_handled().with_label("retrain_policy")  # pyright: ignore[reportAttributeAccessIssue]
        # No `~any_deps_missing()`: the dependency is the *latest* features partition, which is
        # missing whenever the newest landed day is older than yesterday (real exports always).
        & ~AutomationCondition.any_deps_in_progress()
        & ~AutomationCondition.in_progress()
    ).with_label("retrain")


def automated_assets(
    policy: RetrainPolicy, promote_on_live_evidence: bool = False
) -> list[dg.AssetsDefinition]:
    """Every asset downstream of the landing sensor's raw_complaints, with its condition;
    `live_promotion` automated only when the platform promotes on live evidence."""
    per_partition = [
        validate_complaints,
        complaint_statistics,
        complaint_features,
        label_log,
        company_history,
    ]
    partition_changed = upstream_or_code_changed("partition_changed") & ~TargetedByRunInFlight()
    chain = {
        dispute_model: upstream_or_code_changed("follow_upstream"),
        model_evaluation: upstream_or_code_changed("follow_upstream"),
        # champion_model reads the blessing itself: it promotes, or records the refusal.
        champion_model: upstream_or_code_changed("follow_upstream"),
        deployed_model: champion_changed(),
    }
    return [
        live_promotion.with_attributes(automation_condition=evidence_changed())
        if promote_on_live_evidence
        else live_promotion,
        *(
            a.with_attributes(
                automation_condition=partition_changed.with_label("partition_changed")
            )
            for a in per_partition
        ),
        feature_store.with_attributes(automation_condition=history_changed()),
        live_performance.with_attributes(automation_condition=labels_or_logs_changed()),
        input_drift.with_attributes(automation_condition=recent_inputs_changed()),
        training_dataset.with_attributes(automation_condition=retrain_condition(policy)),
        *(a.with_attributes(automation_condition=c) for a, c in chain.items()),
    ]
