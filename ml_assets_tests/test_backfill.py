"""Reading a backfill from the webserver's answers: which days are done, which failed, and the lines
that tell. The answers are the webserver's own (Dagster 1.13.27), captured from `ml-assets
materialize` runs and cut down to the fields the queries ask for."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from ml_assets.backfill import (
    BackfillError,
    BackfillRun,
    BackfillState,
    code_locations_loaded,
    day_spans,
    launch_params,
    launched_backfill_id,
    parse_backfill,
    summary,
)
from ml_assets.jobs import DATA_LAYER_KEYS

RANGE_START, RANGE_END = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"


def _run(run_id: str, status: str, first: str, last: str, **tags: str) -> dict[str, Any]:
    return {
        "runId": run_id,
        "status": status,
        "startTime": 1796564640.308542,
        "endTime": 1796564641.7747 if status in ("SUCCESS", "FAILURE") else None,
        "tags": [
            {"key": RANGE_END, "value": last},
            {"key": RANGE_START, "value": first},
            {"key": "dagster/backfill", "value": "guvrgxco"},
            *({"key": k, "value": v} for k, v in tags.items()),
        ],
    }


# Two runs of one backfill, newest first as the API lists them: a day that failed to load, and
# three consecutive days that ran together.
ANSWER: dict[str, Any] = {
    "partitionBackfillOrError": {
        "__typename": "PartitionBackfill",
        "status": "COMPLETED_FAILED",
        "error": None,
        "runs": [
            _run(
                "93c8f756-0435-41e0-9322-a7a9f5da7f4d",
                "FAILURE",
                "2016-01-05",
                "2016-01-05",
                **{"dagster/failure_reason": "STEP_FAILURE", "dagster/will_retry": "false"},
            ),
            _run("72d15aaa-49d5-425b-acb9-437218d425ba", "SUCCESS", "2016-01-01", "2016-01-03"),
        ],
    }
}
DAYS = ["2016-01-01", "2016-01-02", "2016-01-03", "2016-01-05"]


def test_a_finished_backfill_names_its_failed_days_and_its_runs() -> None:
    state = parse_backfill(ANSWER)
    assert [run.days for run in state.runs] == [
        ("2016-01-01", "2016-01-02", "2016-01-03"),
        ("2016-01-05",),
    ]
    assert state.closed and state.over(DAYS) and state.done(DAYS) == 4
    assert state.failed(DAYS) == ["2016-01-05"]
    assert (
        state.runs[0].line()
        == "2016-01-01..2016-01-03 (3 days): data layer ok in 1.5 s (run 72d15aaa)"
    )
    assert state.runs[1].line() == "2016-01-05: data layer FAILED in 1.5 s (run 93c8f756)"
    assert summary("guvrgxco", DAYS, state, 60.0) == (
        "backfill guvrgxco: 4 days in 2 runs, 3 ok, 1 failed, in 60 s (4.0 days/min)"
    )


def test_days_of_runs_still_going_are_not_done_and_a_retry_decides_its_days() -> None:
    answer = copy.deepcopy(ANSWER)
    backfill = answer["partitionBackfillOrError"]
    backfill["status"] = "REQUESTED"
    # The failed day is to be launched again: not decided until its retry has run.
    backfill["runs"][0] = _run(
        "93c8f756", "FAILURE", "2016-01-05", "2016-01-05", **{"dagster/will_retry": "true"}
    )
    backfill["runs"][1]["status"] = "STARTED"
    state = parse_backfill(answer)
    assert (state.done(DAYS), state.over(DAYS)) == (0, False)
    assert state.runs_by_status() == "1 started, 1 failure"
    retry = _run("b1a2c3d4", "SUCCESS", "2016-01-05", "2016-01-05")
    backfill["runs"].insert(0, retry)
    state = parse_backfill(answer)
    assert state.done(DAYS) == 1 and "2016-01-05" not in state.failed(DAYS)


def test_days_a_closed_backfill_never_ran_count_as_failed() -> None:
    state = BackfillState("FAILED", (), error="the daemon could not plan it")
    assert state.over(DAYS) and state.failed(DAYS) == DAYS


def test_a_run_line_for_a_canceled_run_says_so() -> None:
    run = BackfillRun("0123456789", "CANCELED", ("2016-01-05",), None)
    assert run.final and run.line() == "2016-01-05: data layer CANCELED (run 01234567)"


def test_day_spans_join_consecutive_days() -> None:
    days = ["2016-02-02", "2016-01-05", "2016-02-01", "2016-02-03", "2016-03-01"]
    assert day_spans(days) == ("2016-01-05, 2016-02-01..2016-02-03 (3 days), 2016-03-01")


def test_the_launch_asks_for_the_data_layer_over_the_days_with_the_run_config() -> None:
    params = launch_params(DATA_LAYER_KEYS, DAYS, "title", {"loggers": {}})
    assert params["assetSelection"] == [{"path": list(k.path)} for k in DATA_LAYER_KEYS]
    assert params["partitionNames"] == DAYS and params["runConfigData"] == {"loggers": {}}


def test_a_refused_backfill_raises_with_what_the_webserver_said() -> None:
    assert (
        launched_backfill_id(
            {
                "launchPartitionBackfill": {
                    "__typename": "LaunchBackfillSuccess",
                    "backfillId": "sfsyjnbe",
                }
            }
        )
        == "sfsyjnbe"
    )
    refused = {
        "launchPartitionBackfill": {
            "__typename": "PythonError",
            "message": "dagster._core.errors.DagsterInvariantViolationError: ...",
        }
    }
    with pytest.raises(
        BackfillError, match=r"refused the backfill.*DagsterInvariantViolationError"
    ):
        launched_backfill_id(refused)


def test_a_code_location_that_failed_to_load_is_an_error_with_its_message() -> None:
    def workspace(status: str, location: dict[str, Any] | None) -> dict[str, Any]:
        entry = {"name": "ml_assets", "loadStatus": status, "locationOrLoadError": location}
        return {"workspaceOrError": {"__typename": "Workspace", "locationEntries": [entry]}}

    assert not code_locations_loaded(workspace("LOADING", None))
    assert code_locations_loaded(workspace("LOADED", {"__typename": "RepositoryLocation"}))
    failed = {"__typename": "PythonError", "message": "ModuleNotFoundError: ml_assets"}
    with pytest.raises(BackfillError, match="ml_assets failed to load:\nModuleNotFoundError"):
        code_locations_loaded(workspace("LOADED", failed))
