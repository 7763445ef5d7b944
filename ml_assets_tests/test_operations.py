"""Reading the instance for the demo and the backfill command."""

import dagster as dg
import pytest

from ml_assets.operations import in_flight, runs_after, wait_quiet, wait_until


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
        wait_quiet(instance, 0.1, 10, "nothing", lambda: polls.append(1))
    assert polls
    with pytest.raises(TimeoutError, match="waiting for never: still waiting"):
        wait_until(lambda: False, lambda: "still waiting", 0.5, "never")
