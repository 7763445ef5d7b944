"""Runs over a range of days: one run computes many daily partitions, each day keeps its record.

Dagster 1.13 turns the one Output of a ranged run into a materialization per day that all carry
the same data version and metadata (dagster#34013: no per-partition data versions for
materializations). Staleness, the landing sensor's "same bytes, nothing runs" and the per-day
metadata in the UI need each day's own, so after the Output every asset of a ranged run yields
one `AssetMaterialization` per day, tagged as a single-day run would tag it: these come last
and are each day's latest record. A single-day run yields nothing extra.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Final

import dagster as dg
import pandas as pd

# Dagster's provenance tags and version formula (private: resources/compat/dagster.py says why).
from resources.compat.dagster import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
    CODE_VERSION_TAG,
    DATA_VERSION_IS_USER_PROVIDED_TAG,
    DATA_VERSION_TAG,
    PARTITION_NAME_TAG,
    compute_logical_data_version,
    get_input_data_version_tag,
    get_input_event_pointer_tag,
)
from resources.warehouse import PARTITION_ROW_COUNT, STORAGE_KIND, table_metadata

# Runs in that pool at once (each holds a slot from launch to end: the instance's dagster.yaml),
# so runs of `ml-assets materialize` at once: one per core here. A run computes on one core;
# DuckDB writes of several processes take turns on the file's lock.
CONCURRENT_DATA_RUNS: Final = 2
# Days one run of the data layer computes at most (backfills, the sensor, `ml-assets materialize`):
# each run costs a new process that imports Dagster and the code location, and its run and step
# events, so the full history's 5,478 days take 122 runs at 45 where they took 183 at 30.
# Dagster's BackfillPolicy splits a backfill by day count only, so the count bounds a run's
# memory: a run of the 45 busiest days (2.5 MB of landing files, 4,300 complaints each) peaks at
# 0.9 GiB, of 60 at 1.1 GiB, and CONCURRENT_DATA_RUNS run side by side with dagster dev's
# processes (4 GiB for the whole tree).
DAYS_PER_RUN: Final = 45
# A run also holds at most this many bytes of landing files (the sensor): its frames take about
# 20 times their CSV size in memory.
MAX_LANDING_BYTES_PER_RUN: Final = 50 * 2**20

# Backfills and automation split N days into runs of at most DAYS_PER_RUN consecutive days.
DAILY_BACKFILL_POLICY = dg.BackfillPolicy.multi_run(max_partitions_per_run=DAYS_PER_RUN)
# Metadata as assets give it: names to plain values or MetadataValue objects.
Metadata = dict[str, Any]


@dataclass(frozen=True)
class DayRecord:
    """What one day of a ranged run records: its metadata and, for a root asset, its version."""

    metadata: Mapping[str, Any] = field(default_factory=dict)
    data_version: str | None = None  # None: derived from the inputs, as Dagster derives it


def run_days(context: dg.AssetExecutionContext) -> list[str]:
    """The days (partition keys) this run computes, oldest first."""
    return list(context.partition_keys)


def _day_versions(
    instance: dg.DagsterInstance, key: dg.AssetKey, days: Sequence[str]
) -> dict[str, str]:
    """The latest data version of each day of an asset."""
    tags = instance.event_log_storage.get_latest_tags_by_partition(
        key,
        dg.DagsterEventType.ASSET_MATERIALIZATION,
        [DATA_VERSION_TAG],
        asset_partitions=list(days),
    )
    versions = {day: t[DATA_VERSION_TAG] for day, t in tags.items() if DATA_VERSION_TAG in t}
    if missing := sorted(set(days) - set(versions)):
        raise dg.Failure(
            f"{key.to_user_string()} has no data version for {missing[:5]}: materialize those days "
            "of it first."
        )
    return versions


def _latest_storage_id(instance: dg.DagsterInstance, key: dg.AssetKey) -> int:
    """The storage id of an asset's latest materialization (any day): the input event pointer."""
    records = instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=key), limit=1)
    if not records.records:
        raise dg.Failure(f"{key.to_user_string()} was never materialized: materialize it first.")
    return records.records[0].storage_id


def day_materializations(
    context: dg.AssetExecutionContext,
    key: dg.AssetKey,
    records: Mapping[str, DayRecord],
    inputs: Sequence[dg.AssetKey] = (),
) -> Iterator[dg.AssetMaterialization]:
    """Per-day materializations of `key` for a ranged run (nothing for a single day).

    Yield them after the asset's Output. A day's data version is its record's own, or what a
    single-day run computes: the code version hashed with the hash of each input day's version.
    """
    if len(records) <= 1:
        return
    code_version = context.assets_def.code_versions_by_key[key] or context.run_id
    days = sorted(records)
    versions = {dep: _day_versions(context.instance, dep, days) for dep in inputs}
    pointers = {dep: _latest_storage_id(context.instance, dep) for dep in inputs}
    for day in days:
        record = records[day]
        tags = {CODE_VERSION_TAG: code_version}
        if record.data_version is not None:
            tags[DATA_VERSION_TAG] = record.data_version
            tags[DATA_VERSION_IS_USER_PROVIDED_TAG] = "true"
        else:
            # A one-day input's version is the hash of that day's version (Dagster's rule for a
            # partition subset of one key).
            day_inputs = {
                dep: dg.DataVersion(hashlib.sha256(versions[dep][day].encode()).hexdigest())
                for dep in inputs
            }
            for dep, version in day_inputs.items():
                tags[get_input_data_version_tag(dep)] = version.value
                tags[get_input_event_pointer_tag(dep)] = str(pointers[dep])
            tags[DATA_VERSION_TAG] = compute_logical_data_version(code_version, day_inputs).value
        yield dg.AssetMaterialization(
            asset_key=key, partition=day, metadata=dict(record.metadata), tags=tags
        )


def outputs_by_day(
    context: dg.AssetExecutionContext,
    key: dg.AssetKey,
    value: pd.DataFrame,
    records: Mapping[str, DayRecord],
    frames: Mapping[str, pd.DataFrame],
    inputs: Sequence[dg.AssetKey] = (),
    output_name: str = "result",
) -> Iterator[dg.Output | dg.AssetMaterialization]:
    """An asset's output for its run's days: for one day, the Output with that day's record; for
    several, the Output and then each day's own materialization (`frames`: each day's rows)."""
    add_day_metadata(context, key, records)
    if len(records) == 1:
        (record,) = records.values()
        version = dg.DataVersion(record.data_version) if record.data_version else None
        yield dg.Output(value, output_name, metadata=dict(record.metadata), data_version=version)
        return
    yield dg.Output(value, output_name)
    yield from day_materializations(context, key, with_table(records, frames), inputs)


def add_day_metadata(
    context: dg.AssetExecutionContext, key: dg.AssetKey, records: Mapping[str, DayRecord]
) -> None:
    """Put each day's metadata on the run's own per-day events too (ranged runs only)."""
    if len(records) <= 1:
        return
    for day, record in records.items():
        context.add_asset_metadata(dict(record.metadata), asset_key=key, partition_key=day)


def with_table(
    records: Mapping[str, DayRecord], frames: Mapping[str, pd.DataFrame]
) -> dict[str, DayRecord]:
    """Records with what the warehouse records of a day stored alone: row count and kind, and
    the table's columns on the newest day only."""
    newest = max(records)
    # The columns are the table's, the same every day, and a column schema is most of an event's
    # size: Dagster serialises each event several times, so thousands of copies cost minutes.
    # The UI shows the schema of the asset's latest materialization, the newest day's.
    return {
        day: DayRecord(
            {
                **record.metadata,
                PARTITION_ROW_COUNT: len(frames[day]),
                **(table_metadata(frames[day]) if day == newest else STORAGE_KIND),
            },
            record.data_version,
        )
        for day, record in records.items()
    }


def day_chunks(
    days: Sequence[str],
    size: int = DAYS_PER_RUN,
    day_bytes: Mapping[str, int] | None = None,
    max_bytes: int = MAX_LANDING_BYTES_PER_RUN,
) -> list[list[str]]:
    """Days (YYYY-MM-DD) grouped into runs: consecutive calendar days, at most `size` per run
    and, given each day's landing bytes, at most `max_bytes` of them (a day alone may exceed it)."""
    chunks: list[list[str]] = []
    previous: date | None = None
    held = 0
    for day in sorted(days):
        current = date.fromisoformat(day)
        weight = (day_bytes or {}).get(day, 0)
        follows = previous is not None and (current - previous).days == 1
        if follows and len(chunks[-1]) < size and held + weight <= max_bytes:
            chunks[-1].append(day)
            held += weight
        else:
            chunks.append([day])
            held = weight
        previous = current
    return chunks


def range_tags(days: Sequence[str]) -> dict[str, str]:
    """Run tags of a run over consecutive days: a single day's partition, or the range's ends."""
    if len(days) == 1:
        return {PARTITION_NAME_TAG: days[0]}
    return {ASSET_PARTITION_RANGE_START_TAG: days[0], ASSET_PARTITION_RANGE_END_TAG: days[-1]}
