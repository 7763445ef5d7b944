"""A sensor: each complete day of prediction logs is ingested into `served_predictions` once,
and again only if a writer appended to it afterwards; today's logs so far, when asked to."""

import json
import time
from collections.abc import Callable

import dagster as dg

from ml_assets.assets.keys import SERVED_PREDICTIONS
from ml_assets.monitoring.served import log_digest
from resources.compat.dagster import UnresolvedAssetJobDefinition
from resources.prediction_logs import PredictionLogs
from sensors.data_versions import latest_data_version

DIGEST_CHARS = 16
DAY_TAG = "ml_assets/prediction_log_day"
DIGEST_TAG = "ml_assets/prediction_log_digest"
# A day whose ingestion failed is requested again, at most this many times per content.
MAX_ATTEMPTS = 3


def failed_attempts(instance: dg.DagsterInstance, day: str, digest: str) -> int:
    """Runs that tried to ingest this content of the day and failed."""
    return len(
        instance.get_runs(
            filters=dg.RunsFilter(
                tags={DAY_TAG: day, DIGEST_TAG: digest[:DIGEST_CHARS]},
                statuses=[dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED],
            )
        )
    )


def _read_cursor(text: str | None) -> tuple[dict[str, str], dict[str, float]]:
    """Ingested digests by day, and when today's logs were last requested (by day)."""
    if not text:
        return {}, {}
    cursor = json.loads(text)
    if "ingested" not in cursor:  # the cursor before intraday ingestion: digests only
        return cursor, {}
    return cursor["ingested"], cursor.get("intraday_requested_at", {})


def make_prediction_log_sensor(
    job: UnresolvedAssetJobDefinition,
    partitions_def: dg.TimeWindowPartitionsDefinition,
    minimum_interval_seconds: int = 30,
    intraday_every_s: int | None = None,
    clock: Callable[[], float] = time.time,
) -> dg.SensorDefinition:
    """A RUNNING sensor requesting `job` for each complete day whose logs are new or grew, and,
    with `intraday_every_s`, for today's logs so far at most that often.

    `partitions_def` ends with today (the request days): its last key is the day replicas are
    still writing.
    """

    @dg.sensor(
        name="prediction_log_sensor",
        job=job,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Ingests each complete day of the endpoint's prediction logs"
        + (f", and today's every {intraday_every_s} s." if intraday_every_s is not None else "."),
    )
    def prediction_log_sensor(
        context: dg.SensorEvaluationContext, prediction_logs: PredictionLogs
    ) -> dg.SensorResult:
        # The cursor holds the digest each day had when found ingested: a tick lists names and
        # sizes, and asks the instance only about days not ingested as they are now.
        ingested, intraday = _read_cursor(context.cursor)
        today = partitions_def.get_last_partition_key()
        now = clock()
        requests, waiting, given_up = [], [], []
        for day in prediction_logs.days():
            if not partitions_def.has_partition_key(day):
                waiting.append(day)  # a day after today: a replica's clock is ahead
                continue
            digest = log_digest((f.name, f.size) for f in prediction_logs.files_for_day(day))
            if ingested.get(day) == digest:
                continue
            if latest_data_version(context.instance, SERVED_PREDICTIONS, day) == digest:
                ingested[day] = digest
                continue
            if day == today and (
                intraday_every_s is None or now - intraday.get(day, 0.0) < intraday_every_s
            ):
                waiting.append(day)  # replicas are still writing it
                continue
            # A run key per content and attempt: Dagster requests a key once, so a run that
            # failed (or was killed) is requested again under the next attempt's key.
            attempt = failed_attempts(context.instance, day, digest)
            if attempt >= MAX_ATTEMPTS:
                given_up.append(day)
                continue
            if day == today:
                intraday = {day: now}  # earlier days are complete: forget their times
            requests.append(
                dg.RunRequest(
                    run_key=f"{day}@{digest[:DIGEST_CHARS]}#{attempt}",
                    partition_key=day,
                    tags={DAY_TAG: day, DIGEST_TAG: digest[:DIGEST_CHARS]},
                )
            )
        if given_up:
            context.log.error(
                f"Prediction logs of {', '.join(given_up)} failed to ingest {MAX_ATTEMPTS} times "
                "(see those runs); they are requested again when their logs change, or rerun "
                "served_predictions for those days from the UI."
            )
        skip = None
        if not requests:
            skip = "no new or grown prediction logs of a complete day"
            if waiting:
                skip += f" (days not complete yet, from {today} on: {', '.join(waiting)})"
        cursor = {"ingested": ingested, "intraday_requested_at": intraday}
        return dg.SensorResult(
            run_requests=requests, cursor=json.dumps(cursor, sort_keys=True), skip_reason=skip
        )

    return prediction_log_sensor
