"""dagster-ray's run launcher (0.4.8), with the run's command quoted for the shell, secrets kept
out of the run's debug info, and some variables forwarded only to the runs that need them.

`RayRunLauncher` submits a run as the Ray job `dagster api execute_run '<run arguments as
JSON>'`, a shell command, wrapping the JSON in single quotes as it is: the command breaks at the
first single quote the JSON holds ("Got unexpected extra arguments"). This instance's does: its
event log is the project's own class (resources/event_log.py), so Dagster serializes the
instance's storage as YAML inside YAML, whose strings are single-quoted. The launcher below builds
the same command with `shlex.join`; everything else (the job, its environment, its health checks,
termination) is dagster-ray's. dagster-ray's main branch quotes the same way; no upstream issue
reports it yet.

dagster-ray's `get_run_worker_debug_info` returns each Ray job's `JobDetails` as text, its
`runtime_env` (every forwarded variable's value) included; Dagster's run monitoring writes it into
the failure message of a failed, stopped or timed-out run, which the UI and the event log show.
The launcher below reports the job's id, status, message and node only.

It relies on dagster-ray's private names `_launch_ray_job` (the submission: the job's environment,
resources and labels) and `_instance`, and builds the command from Dagster's private
`ExecuteRunArgs`/`ResumeRunArgs`, as dagster-ray and Dagster's own launchers do: no public API
gives a run's command. See `resources/compat/__init__.py`.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from typing import Any

import dagster as dg
from dagster._config.config_schema import UserConfigSchema
from dagster._core.launcher import LaunchRunContext, ResumeRunContext
from dagster._core.storage.dagster_run import DagsterRun
from dagster._grpc.types import ExecuteRunArgs, ResumeRunArgs
from dagster._serdes import ConfigurableClassData
from dagster_ray import RayRunLauncher
from dagster_ray.configs import USER_DEFINED_RAY_KEY
from dagster_ray.core.run_launcher import RayLauncherConfig, get_job_submission_id_from_run_id

# Re-exported for the tests, which build the command the launcher must submit.
__all__ = ["ASSET_ENV_VARS_KEY", "ExecuteRunArgs", "LaunchRunContext", "QuotedRayRunLauncher"]

# The launcher's own config key, beside dagster-ray's `ray`: asset key -> the variables forwarded
# only to runs that materialize that asset.
ASSET_ENV_VARS_KEY = "asset_env_vars"


class QuotedRayRunLauncher(RayRunLauncher):
    """dagster-ray's RayRunLauncher (configured the same, under `ray`), its job's command quoted
    with shlex, its debug info without the job's environment; `asset_env_vars` names variables
    forwarded only to the runs that materialize an asset."""

    def __init__(
        self,
        asset_env_vars: Mapping[str, Sequence[str]] | None = None,
        inst_data: ConfigurableClassData | None = None,
        **ray_config: Any,
    ) -> None:
        self.asset_env_vars = {key: list(names) for key, names in (asset_env_vars or {}).items()}
        super().__init__(inst_data=inst_data, **ray_config)

    @classmethod
    def config_type(cls) -> UserConfigSchema:
        """dagster-ray's `ray` block, and the variables some assets' runs alone get."""
        schema = super().config_type()
        # dagster-ray's is a dict ({"ray": ...}); UserConfigSchema's type does not say so.
        if not isinstance(schema, dict):
            raise TypeError(f"dagster-ray's run launcher config is no longer a dict: {schema!r}")
        return {
            **schema,
            ASSET_ENV_VARS_KEY: dg.Field(dg.Map(str, [str]), is_required=False, default_value={}),
        }

    @classmethod
    def from_config_value(
        cls, inst_data: ConfigurableClassData | None, config_value: Mapping[str, Any]
    ) -> QuotedRayRunLauncher:
        """The launcher of a dagster.yaml's `run_launcher.config`."""
        return cls(
            asset_env_vars=config_value.get(ASSET_ENV_VARS_KEY),
            inst_data=inst_data,
            **config_value["ray"],
        )

    def launch_run(self, context: LaunchRunContext) -> None:
        """Submit the run as the Ray job `dagster-run-<run id>`: `dagster api execute_run` with
        its arguments quoted for the shell."""
        run = context.dagster_run
        self._submit(run, ExecuteRunArgs, get_job_submission_id_from_run_id(run.run_id))

    def resume_run(self, context: ResumeRunContext) -> None:
        """Resubmit a run whose job died (run monitoring) as a new Ray job, numbered by its
        attempt: `dagster api resume_run` with its arguments quoted for the shell."""
        run = context.dagster_run
        submission_id = get_job_submission_id_from_run_id(
            run.run_id, resume_attempt_number=context.resume_attempt_number
        )
        self._submit(run, ResumeRunArgs, submission_id)

    def _submit(
        self,
        run: DagsterRun,
        args_type: type[ExecuteRunArgs] | type[ResumeRunArgs],
        submission_id: str,
    ) -> None:
        """Submit `run` as the Ray job `submission_id`: the `dagster api` command of `args_type`
        (execute or resume), its arguments quoted for the shell."""
        origin = run.job_code_origin
        if origin is None:
            raise ValueError(f"run {run.run_id} has no code origin: it cannot be launched")
        args = args_type(
            job_origin=origin,
            run_id=run.run_id,
            instance_ref=self._instance.get_ref(),
            set_exit_code_on_failure=True,
        ).get_command_args()
        self._launch_ray_job(submission_id, shlex.join(args), self._with_asset_env(run))

    def get_run_worker_debug_info(
        self, run: DagsterRun, include_container_logs: bool | None = True
    ) -> str | None:
        """The run's Ray jobs: id, status, message and node; never their environment (which
        holds the forwarded secrets) nor their command. Run monitoring reports an error here."""
        jobs = [
            job
            for job in self.client.list_jobs()
            if (job.metadata or {}).get("dagster/run-id") == run.run_id
        ]
        return "\n".join(
            f"Ray job {job.submission_id}: {job.status}, node {job.driver_node_id}, "
            f"message: {job.message}"
            for job in jobs
        )

    def _with_asset_env(self, run: DagsterRun) -> DagsterRun:
        """The run as `_launch_ray_job` sees it: with the variables of the assets it
        materializes added to its `dagster-ray/config` tag (this copy only; stored runs keep
        theirs), the tag dagster-ray reads a run's own Ray settings from."""
        keys = {key.to_user_string() for key in self._asset_keys(run)}
        extra = sorted(
            {
                name
                for asset, names in self.asset_env_vars.items()
                if asset in keys
                for name in names
            }
        )
        if not extra:
            return run
        config = RayLauncherConfig.from_tags(run.tags)
        env_vars = [*(config.env_vars or self.env_vars or []), *extra]
        tag = config.model_copy(update={"env_vars": env_vars}).model_dump_json(exclude_none=True)
        return run.with_tags({**run.tags, USER_DEFINED_RAY_KEY: tag})

    def _asset_keys(self, run: DagsterRun) -> set[dg.AssetKey]:
        """The assets the run's steps materialize (its execution plan, whatever launched it)."""
        if run.execution_plan_snapshot_id is None:
            return set()
        plan = self._instance.get_execution_plan_snapshot(run.execution_plan_snapshot_id)
        return {
            output.properties.asset_key
            for step in plan.steps
            for output in step.outputs
            if output.properties is not None and output.properties.asset_key is not None
        }
