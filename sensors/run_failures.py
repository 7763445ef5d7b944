"""A sensor that records every failed run of the code location (and posts it to a webhook)."""

from datetime import UTC, datetime

import dagster as dg

from ml_assets.operations import planned_assets
from resources.alerts import FailureNotifier


def failure_record(context: dg.RunFailureSensorContext) -> dict[str, object]:
    """What is kept of a failed run: which run, which job and partition, which steps, why."""
    run = context.dagster_run
    return {
        "run_id": run.run_id,
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
