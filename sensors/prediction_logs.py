"""A sensor: each complete day of prediction logs is ingested into `served_predictions` once,
and again only if a writer appended to it afterwards."""

import json

import dagster as dg
from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition

from ml_assets.assets.monitoring import SERVED
from ml_assets.monitoring.served import log_digest
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


def make_prediction_log_sensor(
    job: UnresolvedAssetJobDefinition,
    partitions_def: dg.TimeWindowPartitionsDefinition,
    minimum_interval_seconds: int = 30,
) -> dg.SensorDefinition:
    """A RUNNING sensor requesting `job` for each complete day whose logs are new or grew."""

    @dg.sensor(
        name="prediction_log_sensor",
        job=job,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Ingests each complete day of the endpoint's prediction logs.",
    )
    def prediction_log_sensor(
        context: dg.SensorEvaluationContext, prediction_logs: PredictionLogs
    ) -> dg.SensorResult:
        # The cursor holds the digest each day had when found ingested: a tick lists names and
        # sizes, and asks the instance only about days not ingested as they are now.
        ingested: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
        requests, waiting, given_up = [], [], []
        for day in prediction_logs.days():
            if not partitions_def.has_partition_key(day):
                waiting.append(day)  # not a complete UTC day yet: replicas are writing it
                continue
            digest = log_digest((f.name, f.size) for f in prediction_logs.files_for_day(day))
            if ingested.get(day) == digest:
                continue
            if latest_data_version(context.instance, SERVED, day) == digest:
                ingested[day] = digest
                continue
            # A run key per content and attempt: Dagster requests a key once, so a run that
            # failed (or was killed) is requested again under the next attempt's key.
            attempt = failed_attempts(context.instance, day, digest)
            if attempt >= MAX_ATTEMPTS:
                given_up.append(day)
                continue
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
                skip += (
                    f" (days not complete yet, after {partitions_def.get_last_partition_key()}: "
                )
                skip += f"{', '.join(waiting)})"
        return dg.SensorResult(
            run_requests=requests, cursor=json.dumps(ingested, sort_keys=True), skip_reason=skip
        )

    return prediction_log_sensor
