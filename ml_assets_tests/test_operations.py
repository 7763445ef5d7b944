"""Reading the instance for the demo and the backfill command."""

import time
from pathlib import Path

import dagster as dg
import pytest

from ml_assets.operations import (
    in_flight,
    runs_after,
    sensors_ticked_since,
    wait_quiet,
    wait_until,
)
from resources.compat.dagster import InstigatorStatus, InstigatorType, TickStatus
from resources.compat.dagster_testing import (
    InProcessCodeLocationOrigin,
    InstigatorState,
    LoadableTargetOrigin,
    RemoteInstigatorOrigin,
    RemoteRepositoryOrigin,
    TickData,
    create_run_for_test,
)


@dg.asset(partitions_def=dg.DailyPartitionsDefinition(start_date="2016-01-01"))
def daily() -> None:
    return None


def test_runs_after_names_partition_assets_and_launcher() -> None:
    with dg.instance_for_test() as instance:
        known = {r.run_id for r in instance.get_runs()}
        dg.materialize([daily], instance=instance, partition_key="2016-01-02")
        (run,) = runs_after(instance, known)
        assert (run.status, run.partition, run.assets, run.launched_by) == (
            "SUCCESS",
            "2016-01-02",
            ("daily",),
            "manual",
        )
        assert runs_after(instance, {run.run_id}) == []


def test_wait_quiet_polls_until_settled_and_wait_until_times_out() -> None:
    polls = []
    with dg.instance_for_test() as instance:
        assert in_flight(instance) == 0
        wait_quiet(instance, 10, "nothing", lambda: polls.append(1))
    assert polls
    with pytest.raises(TimeoutError, match="waiting for never: still waiting"):
        wait_until(lambda: False, lambda: "still waiting", 0.5, "never")


def sensor_state(
    instance: dg.DagsterInstance, name: str, status: InstigatorStatus
) -> InstigatorState:
    """A sensor's stored state, as the daemon keeps it."""
    location = InProcessCodeLocationOrigin(LoadableTargetOrigin(python_file=str(Path(__file__))))
    origin = RemoteInstigatorOrigin(RemoteRepositoryOrigin(location, "repo"), name)
    state = InstigatorState(origin, InstigatorType.SENSOR, status)
    instance.add_instigator_state(state)
    return state


def add_tick(
    instance: dg.DagsterInstance, state: InstigatorState, status: TickStatus, at: float
) -> None:
    instance.create_tick(
        TickData(
            instigator_origin_id=state.instigator_origin_id,
            instigator_name=state.instigator_name,
            instigator_type=InstigatorType.SENSOR,
            status=status,
            timestamp=at,
            selector_id=state.selector_id,
            run_ids=[],
            run_keys=[],
        )
    )


def test_settled_means_every_running_sensor_finished_a_tick_begun_after_the_change() -> None:
    with dg.instance_for_test() as instance:
        landing = sensor_state(instance, "landing", InstigatorStatus.DECLARED_IN_CODE)
        automation = sensor_state(instance, "automation", InstigatorStatus.RUNNING)
        sensor_state(instance, "stopped", InstigatorStatus.STOPPED)
        since = 1_000_000.0
        assert not sensors_ticked_since(instance, since)
        add_tick(instance, landing, TickStatus.SKIPPED, since - 1)  # began before the change
        add_tick(instance, automation, TickStatus.STARTED, since + 1)  # not finished
        assert not sensors_ticked_since(instance, since)
        add_tick(instance, landing, TickStatus.SUCCESS, since + 2)
        assert not sensors_ticked_since(instance, since)  # automation has not finished one
        add_tick(instance, automation, TickStatus.SKIPPED, since + 3)
        assert sensors_ticked_since(instance, since)  # the stopped sensor never counts
        assert not sensors_ticked_since(instance, since + 3)


def test_wait_quiet_returns_after_the_sensors_tick_and_not_before() -> None:
    with dg.instance_for_test() as instance:
        state = sensor_state(instance, "landing", InstigatorStatus.DECLARED_IN_CODE)
        with pytest.raises(TimeoutError, match="waiting for a tick"):
            wait_quiet(instance, 1, "a tick")
        polls = []

        def tick_once() -> None:
            if not polls:
                add_tick(instance, state, TickStatus.SKIPPED, time.time() + 0.01)
            polls.append(1)

        wait_quiet(instance, 30, "a tick", tick_once)
        assert len(polls) == 1  # the tick made on the first poll is enough


def test_a_tick_that_began_while_a_run_was_going_does_not_count() -> None:
    with dg.instance_for_test() as instance:
        state = sensor_state(instance, "automation", InstigatorStatus.DECLARED_IN_CODE)
        run = create_run_for_test(instance, status=dg.DagsterRunStatus.STARTED)
        polls: list[str] = []

        def step() -> None:
            # Poll 1: a tick while the run goes; 2: the run ends; 4: a tick after it ended.
            if len(polls) in (0, 3):
                add_tick(instance, state, TickStatus.SKIPPED, time.time())
            if len(polls) == 1:
                instance.report_run_failed(instance.get_run_by_id(run.run_id))
            polls.append("poll")

        wait_quiet(instance, 60, "the tick after the run", step)
        assert len(polls) == 4
