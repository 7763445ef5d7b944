"""dagster-ray's run launcher (0.4.8), with the run's command quoted for the shell.

`RayRunLauncher` submits a run as the Ray job `dagster api execute_run '<run arguments as
JSON>'`, a shell command, wrapping the JSON in single quotes as it is: the command breaks at the
first single quote the JSON holds ("Got unexpected extra arguments"). This instance's does: its
event log is the project's own class (resources/event_log.py), so Dagster serializes the
instance's storage as YAML inside YAML, whose strings are single-quoted. The launcher below builds
the same command with `shlex.join`; everything else (the job, its environment, its health checks,
termination) is dagster-ray's. dagster-ray's main branch quotes the same way; no upstream issue
reports it yet.

It builds the command from Dagster's private `ExecuteRunArgs`/`ResumeRunArgs`, as dagster-ray
and Dagster's own launchers do: no public API gives a run's command. See
`resources/compat/__init__.py`.
"""

from __future__ import annotations

import shlex

from dagster._core.launcher import LaunchRunContext, ResumeRunContext
from dagster._grpc.types import ExecuteRunArgs, ResumeRunArgs
from dagster_ray import RayRunLauncher
from dagster_ray.core.run_launcher import get_job_submission_id_from_run_id


class QuotedRayRunLauncher(RayRunLauncher):
    """dagster-ray's RayRunLauncher, its job's command quoted with shlex (configured the same)."""

    def launch_run(self, context: LaunchRunContext) -> None:
        run = context.dagster_run
        origin = run.job_code_origin
        if origin is None:
            raise ValueError(f"run {run.run_id} has no code origin: it cannot be launched")
        args = ExecuteRunArgs(
            job_origin=origin,
            run_id=run.run_id,
            instance_ref=self._instance.get_ref(),
            set_exit_code_on_failure=True,
        ).get_command_args()
        submission_id = get_job_submission_id_from_run_id(run.run_id)
        self._launch_ray_job(submission_id, shlex.join(args), run)

    def resume_run(self, context: ResumeRunContext) -> None:
        run = context.dagster_run
        origin = run.job_code_origin
        if origin is None:
            raise ValueError(f"run {run.run_id} has no code origin: it cannot be resumed")
        args = ResumeRunArgs(
            job_origin=origin,
            run_id=run.run_id,
            instance_ref=self._instance.get_ref(),
            set_exit_code_on_failure=True,
        ).get_command_args()
        submission_id = get_job_submission_id_from_run_id(
            run.run_id, resume_attempt_number=context.resume_attempt_number
        )
        self._launch_ray_job(submission_id, shlex.join(args), run)
