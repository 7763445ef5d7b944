"""The run launcher on Ray without Ray: the command it submits, the variables each run gets, and
its debug info (which run monitoring writes into a failed run's message)."""

import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from dagster_ray import RayRunLauncher
from ray.job_submission import JobDetails, JobStatus, JobType

from resources.compat.dagster_ray import ExecuteRunArgs, LaunchRunContext, QuotedRayRunLauncher

SECRET = "s3cr3t-token-value"
SECRET_ENV = "SOME_SERVICE_TOKEN"
EVERY_RUN_ENV = "SOME_SETTING"
ADDRESS = "127.0.0.1:1"  # never reached: the submission is stubbed


@dg.op
def noop() -> None:
    """Nothing: the job exists for its code origin."""


@dg.job
def some_job() -> None:
    noop()


@dg.asset
def deployed() -> int:
    return 1


@dg.asset
def other() -> int:
    return 2


class Submitted:
    """A stand-in for `_launch_ray_job`: what the launcher would submit to Ray."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, dg.DagsterRun]] = []

    def __call__(self, submission_id: str, entrypoint: str, run: dg.DagsterRun) -> None:
        self.calls.append((submission_id, entrypoint, run))


def stub_submission(launcher: RayRunLauncher, instance: dg.DagsterInstance) -> Submitted:
    """Register the launcher with `instance`, replace its submission; what it submits."""
    launcher.register_instance(instance)
    submitted = Submitted()
    launcher._launch_ray_job = submitted  # type: ignore[method-assign]
    return submitted


def split_or_none(command: str) -> list[str] | None:
    """The shell's words of `command`, None when the shell cannot split it at all."""
    try:
        return shlex.split(command)
    except ValueError:  # "No closing quotation"
        return None


def test_the_command_splits_back_into_the_run_arguments_whatever_they_quote(
    tmp_path: Path,
) -> None:
    # The instance's reference (JSON in the command) holds its paths, and so this quote.
    home = tmp_path / "it's home"
    home.mkdir()
    with dg.instance_for_test(temp_dir=str(home)) as instance:
        origin = dg.reconstructable(some_job).get_python_origin()
        run = dg.DagsterRun(job_name="some_job", run_id="r1", job_code_origin=origin)
        expected = list(
            ExecuteRunArgs(
                job_origin=origin,
                run_id=run.run_id,
                instance_ref=instance.get_ref(),
                set_exit_code_on_failure=True,
            ).get_command_args()
        )
        assert "'" in expected[-1]
        context = LaunchRunContext(run, None)
        ours = QuotedRayRunLauncher(address=ADDRESS)
        submitted = stub_submission(ours, instance)
        ours.launch_run(context)
        ((submission_id, entrypoint, _),) = submitted.calls
        assert submission_id == "dagster-run-r1"
        assert shlex.split(entrypoint) == expected
        # Mutation check: dagster-ray's own launcher's command does not split back into them.
        upstream = RayRunLauncher(address=ADDRESS)
        submitted = stub_submission(upstream, instance)
        upstream.launch_run(context)
        ((_, upstream_entrypoint, _),) = submitted.calls
        assert split_or_none(upstream_entrypoint) != expected


@pytest.fixture
def materialized() -> Iterator[tuple[dg.DagsterInstance, dict[str, dg.DagsterRun]]]:
    """An instance with one run of each asset (each run's execution plan names its asset)."""
    with dg.instance_for_test() as instance:
        runs = {}
        for asset in (deployed, other):
            result = dg.materialize([asset], instance=instance)
            run = instance.get_run_by_id(result.run_id)
            assert run is not None
            runs[asset.key.to_user_string()] = run
        yield instance, runs


def forwarded(launcher: QuotedRayRunLauncher, run: dg.DagsterRun) -> list[str]:
    """The variables dagster-ray forwards to the run's job (its tag's, else the launcher's)."""
    from dagster_ray.core.run_launcher import RayLauncherConfig

    seen = launcher._with_asset_env(run)
    return RayLauncherConfig.from_tags(seen.tags).env_vars or launcher.env_vars or []


def test_an_assets_variables_go_to_the_runs_that_materialize_it_alone(
    materialized: tuple[dg.DagsterInstance, dict[str, dg.DagsterRun]],
) -> None:
    instance, runs = materialized
    launcher = QuotedRayRunLauncher(
        asset_env_vars={"deployed": [SECRET_ENV]}, address=ADDRESS, env_vars=[EVERY_RUN_ENV]
    )
    launcher.register_instance(instance)
    assert forwarded(launcher, runs["deployed"]) == [EVERY_RUN_ENV, SECRET_ENV]
    assert forwarded(launcher, runs["other"]) == [EVERY_RUN_ENV]
    # Only the launcher's copy of the run carries them: the stored run keeps its tags.
    stored = instance.get_run_by_id(runs["deployed"].run_id)
    assert stored is not None and "dagster-ray/config" not in stored.tags


def test_the_launcher_reads_its_asset_variables_from_the_instance_config() -> None:
    config = {"ray": {"address": ADDRESS}, "asset_env_vars": {"deployed": [SECRET_ENV]}}
    launcher = QuotedRayRunLauncher.from_config_value(None, config)
    assert launcher.asset_env_vars == {"deployed": [SECRET_ENV]}
    assert launcher.address == ADDRESS


class FakeJobClient:
    """A job client whose one job ran run `run_id` with a secret in its environment."""

    def __init__(self, run_id: str) -> None:
        self.job = JobDetails(
            type=JobType.SUBMISSION,
            job_id="02000000",
            submission_id=f"dagster-run-{run_id}",
            status=JobStatus.FAILED,
            entrypoint="dagster api execute_run '{}'",
            message="Job entrypoint command failed with exit code 1",
            metadata={"dagster/run-id": run_id},
            runtime_env={"env_vars": {SECRET_ENV: SECRET}},
            driver_node_id="node-abc",
        )

    def list_jobs(self) -> list[JobDetails]:
        return [self.job]


def debug_info(launcher: RayRunLauncher, method: Any, run: dg.DagsterRun) -> str:
    """`method`'s debug info for the run, the launcher's client the fake one."""
    launcher.__dict__["client"] = FakeJobClient(run.run_id)  # the cached_property's slot
    info = method(launcher, run)
    assert isinstance(info, str)
    return info


def test_the_debug_info_names_the_job_and_never_its_environment() -> None:
    run = dg.DagsterRun(job_name="some_job", run_id="r2")
    launcher = QuotedRayRunLauncher(address=ADDRESS)
    info = debug_info(launcher, QuotedRayRunLauncher.get_run_worker_debug_info, run)
    assert SECRET not in info and SECRET_ENV not in info
    for shown in ("dagster-run-r2", "FAILED", "node-abc", "exit code 1"):
        assert shown in info
    # Mutation check: dagster-ray's own debug info is the job's details, its environment in them.
    assert SECRET in debug_info(launcher, RayRunLauncher.get_run_worker_debug_info, run)
