"""What happened since a model last trained: materializations after its dataset's latest one.

Read by the retraining policy's conditions (to decide) and by `training_dataset` (to record why
it ran); both read the same records, so a run's tags name what its automation saw.
"""

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date

import dagster as dg

from ml_assets.assets.keys import (
    AWAITING_METADATA,
    CHAMPION_METADATA,
    CHAMPION_MODEL,
    DECISION_METADATA,
    EVIDENCE_VERSION_METADATA,
    LIVE_PROMOTION,
    RETRAIN_EVIDENCE_METADATA,
)

PAGE = 1000


@dataclass(frozen=True)
class Evidence:
    """A monitoring asset's day that calls for retraining, and what it saw."""

    asset: str
    partition: str
    reason: str

    def __str__(self) -> str:
        return f"{self.asset} {self.partition}: {self.reason}"


def materializations_after(
    instance: dg.DagsterInstance, target: dg.AssetKey, key: dg.AssetKey
) -> Iterator[dg.AssetMaterialization]:
    """Materializations of `key` stored after the latest materialization of `target`, oldest first."""
    latest = instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=target), limit=1)
    after = latest.records[0].storage_id if latest.records else None
    cursor = None
    while True:
        page = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=key, after_storage_id=after),
            limit=PAGE,
            cursor=cursor,
            ascending=True,
        )
        for record in page.records:
            if record.asset_materialization is not None:
                yield record.asset_materialization
        if not page.has_more:
            return
        cursor = page.cursor


def current_champion(instance: dg.DagsterInstance) -> str | None:
    """The champion version as last recorded (None before the first): by `champion_model`, or
    by `live_promotion` when it decided later (it promotes on live evidence)."""
    latest: tuple[int, str] | None = None
    for key in (CHAMPION_MODEL, LIVE_PROMOTION):
        records = instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=key), limit=1)
        for record in records.records:
            materialization = record.asset_materialization
            entry = materialization.metadata.get(CHAMPION_METADATA) if materialization else None
            if entry is not None and (latest is None or record.storage_id > latest[0]):
                latest = (record.storage_id, str(entry.value))
    return latest[1] if latest else None


def challenger_on_trial(instance: dg.DagsterInstance) -> str | None:
    """The blessed challenger champion_model last left to live evidence, while live_promotion
    has not promoted or retired it since (None: none on trial)."""
    event = instance.get_latest_materialization_event(CHAMPION_MODEL)
    materialization = event.asset_materialization if event else None
    entry = materialization.metadata.get(AWAITING_METADATA) if materialization else None
    if event is None or entry is None:
        return None
    for decided in materializations_after(instance, CHAMPION_MODEL, LIVE_PROMOTION):
        decision = decided.metadata.get(DECISION_METADATA)
        if decision is not None and decision.value in ("promote", "retire"):
            return None
    return str(entry.value)


def evidence_after(
    instance: dg.DagsterInstance,
    target: dg.AssetKey,
    key: dg.AssetKey,
    settled_before: date | None = None,
) -> list[Evidence]:
    """Evidence `key` recorded about the current champion after `target` last materialized,
    latest per day; with `settled_before`, only of days before it (labels of later days may
    still be arriving).

    Evidence about an earlier champion is answered: a retrain already replaced it (drift of
    days compared while that retrain ran would otherwise start a second one). So is evidence
    while a challenger is on trial: the remedy is serving beside the champion.
    """
    if challenger_on_trial(instance) is not None:
        return []
    champion = current_champion(instance)
    latest: dict[str, str] = {}
    for materialization in materializations_after(instance, target, key):
        day = materialization.partition
        entry = materialization.metadata.get(RETRAIN_EVIDENCE_METADATA)
        version = materialization.metadata.get(EVIDENCE_VERSION_METADATA)
        if day is None:
            continue
        about_champion = version is not None and str(version.value) == champion
        # A later run of the same day replaces its verdict: late labels can clear a day.
        latest[day] = str(entry.value) if entry is not None and about_champion else ""
    return [
        Evidence(key.to_user_string(), day, reason)
        for day, reason in sorted(latest.items())
        if reason and (settled_before is None or date.fromisoformat(day) < settled_before)
    ]
