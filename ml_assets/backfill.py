"""An asset backfill through the Dagster webserver's GraphQL API: launch it, read where it is.

Dagster 1.13 has no public Python API that launches an asset backfill: `PartitionBackfill` and
`DagsterInstance.add_backfill` are internal (a public `launch_backfill` was proposed in
dagster#26731 and closed unmerged), and `dagster job backfill` makes a job backfill, one run per
partition, not an asset backfill with the assets' BackfillPolicy. The webserver's GraphQL API is
public and is what the UI's "Materialize" calls, so the same mutation launches the same backfill,
and the same query reads its runs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import dagster as dg
import requests

from ml_assets.operations import run_days

# Run statuses after which a run does nothing more; backfill statuses after which the daemon
# launches nothing more for it.
FINISHED_RUN = frozenset({"SUCCESS", "FAILURE", "CANCELED"})
CLOSED_BACKFILL = frozenset(
    {"COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"}
)
# A failed run that the daemon launches again (run retries): its days are not decided yet.
WILL_RETRY_TAG = "dagster/will_retry"
GRAPHQL_TIMEOUT_S = 60

LAUNCH_BACKFILL = """
mutation LaunchBackfill($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on Error { message }
  }
}
"""

BACKFILL_RUNS = """
query BackfillRuns($id: String!) {
  partitionBackfillOrError(backfillId: $id) {
    __typename
    ... on PartitionBackfill {
      status
      error { message }
      runs { runId status startTime endTime tags { key value } }
    }
    ... on Error { message }
  }
}
"""

CODE_LOCATIONS = """
query CodeLocations {
  workspaceOrError {
    __typename
    ... on Workspace {
      locationEntries {
        name
        loadStatus
        locationOrLoadError { __typename ... on Error { message } }
      }
    }
    ... on Error { message }
  }
}
"""


class BackfillError(RuntimeError):
    """The webserver refused, or could not tell about, a backfill; the message says what it said."""


def graphql(url: str, query: str, variables: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The `data` of a GraphQL answer from the webserver at `url`."""
    try:
        answer = requests.post(
            f"{url}/graphql",
            json={"query": query, "variables": dict(variables or {})},
            timeout=GRAPHQL_TIMEOUT_S,
        )
        answer.raise_for_status()
    except requests.RequestException as exc:
        raise BackfillError(f"the Dagster webserver at {url} did not answer: {exc}") from exc
    body = answer.json()
    if body.get("errors") or not body.get("data"):
        raise BackfillError(f"the Dagster webserver at {url} answered: {body}")
    return body["data"]


def code_locations_loaded(data: Mapping[str, Any]) -> bool:
    """Whether every code location of a `CODE_LOCATIONS` answer has loaded; raise if one failed."""
    workspace = data["workspaceOrError"]
    if workspace["__typename"] != "Workspace":
        raise BackfillError(f"the webserver could not read its workspace: {workspace}")
    loaded = True
    for entry in workspace["locationEntries"]:
        location = entry.get("locationOrLoadError") or {}
        if location.get("__typename") == "PythonError":
            raise BackfillError(
                f"the code location {entry['name']} failed to load:\n{location['message']}"
            )
        loaded = loaded and entry["loadStatus"] == "LOADED" and bool(location)
    return loaded


def launch_params(
    assets: Sequence[dg.AssetKey],
    days: Sequence[str],
    title: str,
    run_config: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The `LaunchBackfillParams` of an asset backfill of these assets over these days."""
    params: dict[str, Any] = {
        "assetSelection": [{"path": list(key.path)} for key in assets],
        "partitionNames": list(days),
        "title": title,
        "tags": [{"key": "launched_by", "value": "ml-assets materialize"}],
    }
    if run_config:
        params["runConfigData"] = dict(run_config)
    return params


def launched_backfill_id(data: Mapping[str, Any]) -> str:
    """The backfill id of a `LAUNCH_BACKFILL` answer; raise with what the webserver said."""
    result = data.get("launchPartitionBackfill") or {}
    if result.get("__typename") != "LaunchBackfillSuccess":
        raise BackfillError(f"the webserver refused the backfill: {result or data}")
    return result["backfillId"]


def launch_backfill(url: str, params: Mapping[str, Any]) -> str:
    """Launch an asset backfill through the webserver at `url` (as the UI does); its id."""
    return launched_backfill_id(graphql(url, LAUNCH_BACKFILL, {"params": params}))


@dataclass(frozen=True)
class BackfillRun:
    """A run the backfill launched: its days and how it is doing."""

    run_id: str
    status: str  # DagsterRunStatus' name: QUEUED, STARTED, SUCCESS, FAILURE, ...
    days: tuple[str, ...]
    seconds: float | None  # start to end, once finished
    will_retry: bool = False

    @property
    def final(self) -> bool:
        """Finished and not to be launched again: its days' outcome."""
        return self.status in FINISHED_RUN and not self.will_retry

    def line(self) -> str:
        """One line for a terminal, once final."""
        span = self.days[0] if len(self.days) == 1 else day_range(self.days)
        status = {"SUCCESS": "ok", "FAILURE": "FAILED"}.get(self.status, self.status)
        took = f" in {self.seconds:.1f} s" if self.seconds is not None else ""
        return f"{span}: data layer {status}{took} (run {self.run_id[:8]})"


@dataclass(frozen=True)
class BackfillState:
    """What a backfill has done so far: its status and its runs, oldest first."""

    status: str
    runs: tuple[BackfillRun, ...]
    error: str | None = None

    @property
    def closed(self) -> bool:
        """The daemon launches nothing more for this backfill."""
        return self.status in CLOSED_BACKFILL

    def outcomes(self) -> dict[str, str]:
        """Each decided day's outcome: the status of the newest final run that computed it, as
        long as no newer run of that day is still going."""
        outcome: dict[str, str] = {}
        for run in self.runs:  # oldest first: a retry's outcome replaces its parent's
            for day in run.days:
                if run.final:
                    outcome[day] = run.status
                else:
                    outcome.pop(day, None)
        return outcome

    def done(self, days: Sequence[str]) -> int:
        """How many of `days` are decided (succeeded or failed for good)."""
        outcome = self.outcomes()
        return sum(day in outcome for day in days)

    def over(self, days: Sequence[str]) -> bool:
        """Every day is decided, or the daemon gave up on those that are not."""
        return self.closed or self.done(days) == len(days)

    def failed(self, days: Sequence[str]) -> list[str]:
        """Once over: the days that did not succeed (failed, canceled, or never run by a closed
        backfill)."""
        outcome = self.outcomes()
        return [day for day in days if outcome.get(day, "NOT RUN") != "SUCCESS"]

    def runs_by_status(self) -> str:
        """The runs not final yet, counted by status ("1 started, 2 queued")."""
        going = [run.status.lower() for run in self.runs if not run.final]
        return ", ".join(f"{going.count(s)} {s}" for s in sorted(set(going), key=going.index))


def parse_backfill(data: Mapping[str, Any]) -> BackfillState:
    """A `BACKFILL_RUNS` answer as a BackfillState."""
    backfill = data["partitionBackfillOrError"]
    if backfill["__typename"] != "PartitionBackfill":
        raise BackfillError(f"the webserver could not read the backfill: {backfill}")
    runs = []
    for run in backfill["runs"]:
        tags = {tag["key"]: tag["value"] for tag in run["tags"]}
        start, end = run.get("startTime"), run.get("endTime")
        runs.append(
            BackfillRun(
                run_id=run["runId"],
                status=run["status"],
                days=run_days(tags),
                seconds=end - start if start is not None and end is not None else None,
                will_retry=tags.get(WILL_RETRY_TAG) == "true",
            )
        )
    # The API lists the newest run first.
    error = (backfill.get("error") or {}).get("message")
    return BackfillState(backfill["status"], tuple(reversed(runs)), error)


def read_backfill(url: str, backfill_id: str) -> BackfillState:
    """The backfill's status and runs, from the webserver at `url`."""
    return parse_backfill(graphql(url, BACKFILL_RUNS, {"id": backfill_id}))


def day_range(days: Sequence[str]) -> str:
    """Consecutive days as "first..last (N days)"."""
    return f"{days[0]}..{days[-1]} ({len(days)} days)"


def day_spans(days: Sequence[str]) -> str:
    """Days as text, consecutive ones as one range: "2016-01-05, 2016-02-01..2016-02-03 (3 days)"."""
    from datetime import date, timedelta

    spans: list[list[str]] = []
    for day in sorted(days):
        follows = spans and date.fromisoformat(spans[-1][-1]) + timedelta(days=1) == (
            date.fromisoformat(day)
        )
        if follows:
            spans[-1].append(day)
        else:
            spans.append([day])
    return ", ".join(span[0] if len(span) == 1 else day_range(span) for span in spans)


def summary(backfill_id: str, days: Sequence[str], state: BackfillState, seconds: float) -> str:
    """The line that ends a followed backfill: days, runs, outcome and rate."""
    failed = len(state.failed(days))
    runs = len(state.runs)
    rate = len(days) / seconds * 60 if seconds > 0 else 0.0
    return (
        f"backfill {backfill_id}: {len(days)} days in {runs} "
        f"run{'s' if runs != 1 else ''}, {len(days) - failed} ok, {failed} failed, in "
        f"{seconds:.0f} s ({rate:.1f} days/min)"
    )
