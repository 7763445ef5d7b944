"""Reading Dagster runs: which are still under way, and which assets a run set out to build.

Shared by the automation conditions, the sensors and the CLI's view of the instance.
"""

import dagster as dg

# Queued or not yet started counts too: a run waiting for a slot will still do its work.
IN_FLIGHT = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]


def planned_assets(instance: dg.DagsterInstance, run: dg.DagsterRun) -> set[dg.AssetKey]:
    """The assets a run set out to materialize (a job run without a selection runs all of its)."""
    if run.asset_selection:
        return set(run.asset_selection)
    events = instance.get_records_for_run(
        run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED
    ).records
    return {
        key
        for e in events
        if e.event_log_entry.dagster_event
        and (key := e.event_log_entry.dagster_event.asset_key) is not None
    }
