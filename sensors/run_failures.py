"""A sensor that records every failed run of the code location (and posts it to a webhook)."""

import time
from datetime import UTC, datetime

import dagster as dg

from ml_assets.runs import planned_assets
from resources.alerts import FailureNotifier
from resources.compat.dagster import WILL_RETRY_TAG

# The instance tags a failed run with whether it will be retried just after it stores the
# failure, which this sensor may read first: it waits this long for the tag.
RETRY_DECISION_WAIT_S = 10.0


def run_with_retry_decision(context: dg.RunFailureSensorContext) -> dg.DagsterRun:
    """The failed run, read again once the instance has tagged whether it will be retried."""
    deadline = time.monotonic() + RETRY_DECISION_WAIT_S
    while True:
        run = context.instance.get_run_by_id(context.dagster_run.run_id) or context.dagster_run
        decided = WILL_RETRY_TAG in run.tags or not context.instance.run_retries_enabled
        if decided or time.monotonic() > deadline:
            return run
        time.sleep(0.2)


def failure_record(context: dg.RunFailureSensorContext) -> dict[str, object]:
    """What is kept of a failed run: which run, which job and partition, which steps, why."""
    run = run_with_retry_decision(context)
    return {
        "run_id": run.run_id,
        # False: failed for good (no retries asked for, or the last one); someone must look.
        "will_retry": run.tags.get(WILL_RETRY_TAG) == "true",
        "retry_number": int(run.tags.get("dagster/retry_number", "0")),
        "job": run.job_name,
        "partition": run.tags.get("dagster/partition"),
        "assets": sorted(k.to_user_string() for k in planned_assets(context.instance, run)),
        "failed_steps": sorted(e.step_key for e in context.get_step_failure_events() if e.step_key),
        "message": context.failure_event.message or "",
        "recorded_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def make_run_failure_sensor(minimum_interval_seconds: int = 30) -> dg.SensorDefinition:
    """A RUNNING run-failure sensor handing each failure to the `failure_notifier` resource."""

    @dg.run_failure_sensor(
        name="run_failure_sensor",
        default_status=dg.DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=minimum_interval_seconds,
    )
    def run_failure_sensor(
        context: dg.RunFailureSensorContext, failure_notifier: FailureNotifier
    ) -> None:
        failure_notifier.notify(failure_record(context))

    return run_failure_sensor
