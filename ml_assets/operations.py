"""The running platform seen from outside: what the Dagster instance says.

Used by `ml-assets demo`, `ml-assets materialize` and the end-to-end tests; these watch and
report, they never materialize anything themselves (the sensors, automation and backfills do).
"""

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta

import dagster as dg

from ml_assets.runs import IN_FLIGHT, planned_assets
from resources.compat.dagster import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
    PARTITION_NAME_TAG,
    BulkActionsFilter,
    BulkActionStatus,
    InstigatorStatus,
    InstigatorType,
    TickStatus,
)

FINISHED_TICKS = [TickStatus.SKIPPED, TickStatus.SUCCESS, TickStatus.FAILURE]


@dataclass(frozen=True)
class RunSummary:
    """One launched run: what it was for and how it ended."""

    run_id: str
    status: str
    days: tuple[str, ...]  # the partitions it computed: one day, a range of days, or none
    assets: tuple[str, ...]
    launched_by: str

    @property
    def partition(self) -> str | None:
        """The day of a run of one day (None for a range, or an unpartitioned run)."""
        return self.days[0] if len(self.days) == 1 else None

    @property
    def span(self) -> str:
        """The run's days as text: "D", "D1..D2 (N days)", or "" without partitions."""
        if len(self.days) > 1:
            return f"{self.days[0]}..{self.days[-1]} ({len(self.days)} days)"
        return self.days[0] if self.days else ""

    def describe(self) -> str:
        """One line for a terminal."""
        where = f"[{self.span}] " if self.days else ""
        return f"{self.run_id[:8]} {self.status.lower():8} {where}{', '.join(self.assets)} ({self.launched_by})"


def run_days(tags: Mapping[str, str]) -> tuple[str, ...]:
    """The days a run computes, from its tags: its partition, or every day of its range."""
    if PARTITION_NAME_TAG in tags:
        return (tags[PARTITION_NAME_TAG],)
    if ASSET_PARTITION_RANGE_START_TAG not in tags:
        return ()
    first = date.fromisoformat(tags[ASSET_PARTITION_RANGE_START_TAG])
    last = date.fromisoformat(tags[ASSET_PARTITION_RANGE_END_TAG])
    return tuple((first + timedelta(days=i)).isoformat() for i in range((last - first).days + 1))


def summarize(instance: dg.DagsterInstance, run: dg.DagsterRun) -> RunSummary:
    """What a run did, from its tags and planned assets."""
    tags = run.tags
    launched_by = (
        tags.get("dagster/sensor_name")
        or ("backfill " + tags["dagster/backfill"] if "dagster/backfill" in tags else "")
        or "manual"
    )
    return RunSummary(
        run_id=run.run_id,
        status=run.status.value,
        days=run_days(tags),
        assets=tuple(sorted(k.to_user_string() for k in planned_assets(instance, run))),
        launched_by=launched_by,
    )


def runs_after(instance: dg.DagsterInstance, known: set[str]) -> list[RunSummary]:
    """Runs not in `known`, oldest first."""
    runs = [r for r in instance.get_runs() if r.run_id not in known]
    return [summarize(instance, r) for r in reversed(runs)]


def in_flight(instance: dg.DagsterInstance) -> int:
    """Runs queued or running, plus backfills still requesting runs."""
    runs = instance.get_runs_count(dg.RunsFilter(statuses=IN_FLIGHT))
    backfills = instance.get_backfills(
        filters=BulkActionsFilter(statuses=[BulkActionStatus.REQUESTED])
    )
    return runs + len(backfills)


def materialized_partitions(instance: dg.DagsterInstance, key: dg.AssetKey) -> set[str]:
    """Partition keys of `key` that have a materialization."""
    return set(instance.get_materialized_partitions(key))


def wait_until(
    done: Callable[[], bool],
    progress: Callable[[], str],
    timeout_s: float,
    what: str,
    every_s: float = 10.0,
) -> None:
    """Poll `done`, printing `progress()` every `every_s`; raise after `timeout_s`."""
    began = time.monotonic()
    shown = 0.0
    while not done():
        elapsed = time.monotonic() - began
        if elapsed > timeout_s:
            raise TimeoutError(f"gave up after {timeout_s:.0f} s waiting for {what}: {progress()}")
        if elapsed - shown >= every_s:
            print(f"  [{elapsed:5.0f} s] {progress()}", flush=True)
            shown = elapsed
        time.sleep(2)


def sensors_ticked_since(instance: dg.DagsterInstance, since: float) -> bool:
    """Whether every sensor not stopped has finished a tick that began after `since` (Unix time)."""
    states = [
        s
        for s in instance.all_instigator_state()
        if s.instigator_type != InstigatorType.SCHEDULE and s.status != InstigatorStatus.STOPPED
    ]
    return all(
        instance.get_ticks(
            s.instigator_origin_id, s.selector_id, after=since, limit=1, statuses=FINISHED_TICKS
        )
        for s in states
    )


def wait_quiet(
    instance: dg.DagsterInstance,
    timeout_s: float,
    what: str,
    on_poll: Callable[[], object] = lambda: None,
) -> None:
    """Wait until nothing is in flight and every sensor has since had a tick that launched nothing.

    A tick that began after the last change saw the platform at rest, so if it launched nothing,
    nothing more will come: no quiet period to guess, a settle costs one sensor interval.
    """
    since: float | None = time.time()  # when first seen at rest; None while something runs
    runs = instance.get_runs_count()

    def settled() -> bool:
        nonlocal since, runs
        on_poll()
        if in_flight(instance) or instance.get_runs_count() != runs:
            since, runs = None, instance.get_runs_count()
            return False
        if since is None:
            # Seen at rest only now: a tick begun earlier may have seen the last run still going.
            since = time.time()
            return False
        # Ticks first, then the runs again: a finished tick has already created what it launched.
        ticked = sensors_ticked_since(instance, since)
        return ticked and not in_flight(instance) and instance.get_runs_count() == runs

    wait_until(
        settled,
        lambda: f"{in_flight(instance)} runs or backfills in flight",
        timeout_s,
        what,
    )


def step_failures(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    """What failed in a run: "step: the first line of its error", per failed step."""
    failures = []
    for record in instance.get_records_for_run(
        run_id, of_type=dg.DagsterEventType.STEP_FAILURE
    ).records:
        event = record.event_log_entry.dagster_event
        data = event.step_failure_data if event else None
        # A dg.Failure's own description, else the error ("ValueError: ...").
        raised = data.user_failure_data.description if data and data.user_failure_data else None
        message = raised or (data.error.message if data and data.error else None) or "?"
        failures.append(f"{record.event_log_entry.step_key}: {message.strip().splitlines()[0]}")
    return failures
