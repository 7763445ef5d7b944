"""A sensor that brings serving back: the endpoint gone (a Ray head restarted, `make down` then
`make up`) or serving another version than the champion requests a deployment run."""

import json
import time
from dataclasses import asdict, dataclass

import dagster as dg

from ml_assets.assets.policy import ServingPolicy
from ml_assets.assets.serving import challenger_config
from ml_assets.model.tracking import CHAMPION_ALIAS
from ml_assets.runs import IN_FLIGHT
from ml_assets.serving.deploy import served_versions
from resources.compat.dagster import UnresolvedAssetJobDefinition
from resources.mlflow_registry import ModelRegistry
from resources.ray_cluster import RayCluster

REDEPLOY_TAG = "ml_assets/redeploy"
# A redeploy of the same champion that did not bring it back is not requested again for this
# long: a deployment that keeps failing (a broken model, a cluster out of memory) is reported by
# the run failure sensor, not retried every tick.
REDEPLOY_BACKOFF_S = 600


@dataclass(frozen=True)
class Wanted:
    """The versions an endpoint serves, or should: the champion, and a challenger beside it."""

    champion: str | None
    challenger: str | None = None

    def __str__(self) -> str:
        if self.champion is None:
            return "nothing"
        beside = f" beside challenger {self.challenger}" if self.challenger else ""
        return f"version {self.champion}{beside}"


@dataclass
class ServingCursor:
    """What was last requested (`Wanted`, in words), and when (seconds since the epoch)."""

    version: str = ""
    requested_at: float = 0.0

    @classmethod
    def parse(cls, text: str | None) -> "ServingCursor":
        return cls(**json.loads(text)) if text else cls()

    def dumps(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


def make_serving_sensor(
    job: UnresolvedAssetJobDefinition,
    deployed: dg.AssetKey,
    minimum_interval_seconds: int = 30,
) -> dg.SensorDefinition:
    """A RUNNING sensor that requests `job` (the deployment) when the endpoint lacks the champion.

    Not while any run that deploys (`deployed` in its selection) is under way: a promotion's own
    deployment, or this sensor's last request."""

    @dg.sensor(
        name="serving_sensor",
        job=job,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Redeploys the champion when the endpoint is gone or serves another version.",
    )
    def serving_sensor(
        context: dg.SensorEvaluationContext,
        ray_cluster: RayCluster,
        model_registry: ModelRegistry,
        serving_policy: ServingPolicy,
    ) -> dg.SensorResult:
        cursor = ServingCursor.parse(context.cursor)
        found = model_registry.version_for_alias(CHAMPION_ALIAS)
        if found is None:
            return dg.SensorResult(skip_reason="no champion yet: nothing to serve")
        expected = challenger_config(
            model_registry,
            found.version,
            serving_policy.challenger_mode,
            serving_policy.challenger_share,
        )
        # What should serve: the champion, and the challenger beside it (a promotion or a
        # retirement by live_promotion changes them without a deployment of its own).
        wanted = Wanted(found.version, expected.model_version if expected else None)
        try:
            ray_cluster.check_reachable()
        except OSError as exc:
            return dg.SensorResult(
                skip_reason=f"no Ray cluster at {ray_cluster.address} ({exc}); the champion is "
                "redeployed once one is up (`make serve-up` or `ml-assets ray-up`)"
            )
        served = Wanted(*served_versions(ray_cluster.endpoint))
        if served == wanted:
            return dg.SensorResult(skip_reason=f"serving {wanted}")
        in_flight = [
            record.dagster_run.run_id
            for record in context.instance.get_run_records(dg.RunsFilter(statuses=IN_FLIGHT))
            if record.dagster_run.job_name == job.name
            or deployed in (record.dagster_run.asset_selection or ())
        ]
        if in_flight:
            return dg.SensorResult(skip_reason=f"run {in_flight[0]} is deploying")
        now = time.time()
        if cursor.version == str(wanted) and now - cursor.requested_at < REDEPLOY_BACKOFF_S:
            return dg.SensorResult(
                skip_reason=f"the endpoint serves {served}, and {wanted} was requested "
                f"{now - cursor.requested_at:.0f} s ago; next request after "
                f"{REDEPLOY_BACKOFF_S} s (see that run's failure)"
            )
        context.log.warning(
            f"{ray_cluster.endpoint} serves {served}; wanted: {wanted}: requesting a deployment"
        )
        return dg.SensorResult(
            run_requests=[dg.RunRequest(tags={REDEPLOY_TAG: f"{served}->{wanted}"})],
            cursor=ServingCursor(str(wanted), now).dumps(),
        )

    return serving_sensor
