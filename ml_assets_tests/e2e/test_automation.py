"""Only stale assets rerun: the scenarios on a real Dagster instance driven by the daemon.

One project home for the module, in the tests' fixed world. Its 12 days carry a signal the model
learns (`LEARNABLE`), so the first training is blessed by design; no Ray cluster runs, so that
run stops at `deployed_model`, and the run-failure sensor records it. The retrain policy needs 12
new labelled days and has no calendar trigger, so nothing else trains unless code changes.

The scenarios run twice: on the embedded SQLite instance, and on a PostgreSQL server of the home's
own (`ml-assets up --storage postgres`), which must show the same.

Each scenario asserts on the runs the daemon launched after it began, on days of its own, so the
scenarios hold in any order. Their extra days are older than the training window: a retraining
in this module always trains on the same 12 days, and gives the first model again.
"""

import json
import textwrap
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import pytest

from ml_assets.automation import DRIFT_RECENT_DAYS
from ml_assets.model.blessing import BlessingPolicy
from ml_assets.model.training import TrainingWindow
from ml_assets.operations import RunSummary, runs_after, wait_quiet
from ml_assets_tests.e2e.dagster_daemon import (
    landing_sensor_skips,
    ml_assets,
    running_daemon,
    wait_for,
)
from ml_assets_tests.factories import edit_keeping_size_and_mtime, touch
from ml_assets_tests.postgres import home_on
from ml_assets_tests.world import FIRST_MODEL_MARGIN, LEARNABLE, days_up_to_yesterday

# `slow`: ~10 minutes of daemon ticks on 2 cores; `make test-slow` runs it, and CI runs that too.
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.services,
    pytest.mark.slow,
    pytest.mark.timeout(1800),
]
DAYS = [d.isoformat() for d in days_up_to_yesterday(12)]
RAW_KEY = dg.AssetKey("raw_complaints")
LATE_DAY = (date.fromisoformat(DAYS[0]) - timedelta(days=90)).isoformat()
TOUCHED_DAY = (date.fromisoformat(DAYS[0]) - timedelta(days=91)).isoformat()
CHANGED_DAY = DAYS[4]
assert TrainingWindow().window_days < 90, (
    "the scenarios' late days must stay outside the training window"
)
assert DRIFT_RECENT_DAYS < 90, "the scenarios' late days must stay outside the drift window"
GENERATE = ["--rows-per-day", "300", "--seed", "7"]
GENERATE += ["--narrative-share", str(LEARNABLE.share), "--text-signal", str(LEARNABLE.strength)]
DAEMON_ENV = {
    "ML_ASSETS_SENSOR_INTERVAL_S": "5",
    "ML_ASSETS_RETRAIN_MIN_PARTITIONS": str(len(DAYS)),
    "ML_ASSETS_RETRAIN_CRON": "",  # evidence only: no calendar tick may fall inside the test
    "RAY_ADDRESS": "127.0.0.1:9",  # nothing listens: deployed_model fails fast
}
DATA_LAYER = {"raw_complaints", "validated_complaints", "rejected_complaints"}
DATA_LAYER |= {"complaint_statistics", "complaint_features", "label_log", "company_history"}
# The automation's refresh of the online store, once a data-layer run changed company history.
STORE_REFRESH = {"feature_store"}
MODEL_CHAIN = {"training_dataset", "dispute_model", "model_evaluation", "champion_model"}


@dataclass
class Platform:
    home: Path
    log: Path
    instance: dg.DagsterInstance
    scratch: Path
    daemon: ExitStack  # closing it stops the daemon: never two on one instance (shared cursors)
    initial: set[str] = field(default_factory=set)  # runs launched for the module's first days

    def settle(self, timeout: float = 600) -> None:
        """Wait until nothing is in flight and every sensor has since ticked without launching."""
        try:
            wait_quiet(self.instance, timeout, "the platform to settle")
        except TimeoutError as error:
            pytest.fail(f"{error}; daemon log:\n{self.log.read_text()[-4000:]}")

    def known(self) -> set[str]:
        return {r.run_id for r in self.instance.get_runs()}

    def land(self, day: str) -> None:
        ml_assets(self.home, "generate", "--start", day, "--days", "1", *GENERATE)

    def landed_file(self, day: str) -> Path:
        return self.home / "landing" / "complaints" / day / "synthetic.csv"

    def landed_days(self) -> list[str]:
        return sorted(p.name for p in (self.home / "landing" / "complaints").iterdir())

    def wait_for_new_run(self, known: set[str]) -> None:
        wait_for(lambda: bool(runs_after(self.instance, known)), 120, "a run", self.log)

    def failures(self, run_id: str) -> list[dict]:
        """What the run-failure sensor recorded for a run."""
        lines = (self.home / "logs" / "run_failures.jsonl").read_text().splitlines()
        return [r for r in map(json.loads, lines) if r["run_id"] == run_id]

    def materialization(self, run_id: str, asset: str) -> dg.AssetMaterialization | None:
        records = self.instance.get_records_for_run(
            run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION
        ).records
        events = [r.event_log_entry.asset_materialization for r in records]
        return next((e for e in events if e and e.asset_key.to_user_string() == asset), None)


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def platform(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Platform]:
    root = tmp_path_factory.mktemp(f"automation-{request.param}")
    with home_on(request.param, root / "home") as project_home:
        home = project_home.root
        ml_assets(home, "generate", "--start", DAYS[0], "--days", str(len(DAYS)), *GENERATE)
        with dg.DagsterInstance.from_config(str(home / "dagster")) as instance:
            daemon = ExitStack()
            log = daemon.enter_context(running_daemon(home, **DAEMON_ENV))
            platform = Platform(home, log, instance, root, daemon)
            try:
                # The days landed together: a run (or a few) over consecutive days, not one per day.
                wait_for(
                    lambda: set(DAYS) <= instance.get_materialized_partitions(RAW_KEY),
                    300,
                    "ingestion of every day",
                    log,
                )
                platform.settle(900)
                platform.initial = platform.known()
                yield platform
            finally:
                platform.daemon.close()


def partitions_of(runs: list[RunSummary], asset: str) -> list[str]:
    return sorted(day for r in runs if asset in r.assets for day in r.days)


def refreshed_store_and_the_rest(runs: list[RunSummary]) -> list[RunSummary]:
    """The runs other than the store's refreshes, having checked that it was refreshed, well."""
    refreshes = [r for r in runs if set(r.assets) == STORE_REFRESH]
    assert refreshes and all(r.status == "SUCCESS" for r in refreshes), [r.describe() for r in runs]
    return [r for r in runs if r not in refreshes]


def training_runs(runs: list[RunSummary]) -> list[RunSummary]:
    return [r for r in runs if "dispute_model" in r.assets]


def test_initial_days_are_ingested_and_the_blessed_model_is_promoted(platform: Platform) -> None:
    runs = [r for r in runs_after(platform.instance, set()) if r.run_id in platform.initial]
    assert partitions_of(runs, "raw_complaints") == DAYS
    assert all(r.status == "SUCCESS" for r in runs if r.days), [r.describe() for r in runs]
    # One run over the days landed together, then the drift of each recent day.
    assert len([r for r in runs if set(r.assets) >= DATA_LAYER]) == 1
    # The online store was written, in a run of its own or in the training's (the same tick).
    store = dg.AssetKey(sorted(STORE_REFRESH)[0])
    assert platform.instance.get_latest_materialization_event(store) is not None
    assert partitions_of(runs, "input_drift") == DAYS
    (training,) = training_runs(runs)
    assert set(training.assets) - STORE_REFRESH == MODEL_CHAIN | {"deployed_model"}
    evaluation = platform.materialization(training.run_id, "model_evaluation")
    auc = evaluation.metadata["roc_auc"].value
    assert auc >= BlessingPolicy().auc_floor + FIRST_MODEL_MARGIN, (
        f"AUC {auc:.3f}: too close to {BlessingPolicy().auc_floor}"
    )
    assert evaluation.metadata["blessed"].value is True
    # Blessed, so promoted in the same run; then stopped at deployed_model (no Ray here), which
    # the run-failure sensor recorded.
    champion = platform.materialization(training.run_id, "champion_model")
    assert champion is not None and champion.metadata["champion"].value == "1"
    assert training.status == "FAILURE"
    assert [f["failed_steps"] for f in platform.failures(training.run_id)] == [["deployed_model"]]


def test_1_a_late_day_runs_only_its_partition(platform: Platform) -> None:
    known = platform.known()
    platform.land(LATE_DAY)
    platform.wait_for_new_run(known)
    platform.settle()
    runs = refreshed_store_and_the_rest(runs_after(platform.instance, known))
    assert [(r.partition, set(r.assets)) for r in runs] == [(LATE_DAY, DATA_LAYER)]
    assert all(r.status == "SUCCESS" for r in runs)  # one new day < 12: no retraining


def test_2_the_same_bytes_with_a_new_mtime_run_nothing(platform: Platform) -> None:
    known = platform.known()
    platform.land(TOUCHED_DAY)
    platform.wait_for_new_run(known)
    platform.settle()
    assert partitions_of(runs_after(platform.instance, known), "raw_complaints") == [TOUCHED_DAY]

    known = platform.known()
    seen = len(landing_sensor_skips(platform.instance))
    touch(platform.landed_file(TOUCHED_DAY))
    reread = f"re-read with unchanged content: {TOUCHED_DAY}"
    wait_for(
        lambda: any(reread in skip for skip in landing_sensor_skips(platform.instance)[seen:]),
        120,
        f"a sensor tick that re-read {TOUCHED_DAY}",
        platform.log,
    )
    platform.settle()
    assert runs_after(platform.instance, known) == []


def test_3_a_corrected_day_with_the_same_size_and_mtime_reruns_only_that_day(
    platform: Platform,
) -> None:
    known = platform.known()
    edit_keeping_size_and_mtime(platform.landed_file(CHANGED_DAY))
    platform.wait_for_new_run(known)
    platform.settle()
    runs = refreshed_store_and_the_rest(runs_after(platform.instance, known))
    # A recent day: its input drift is measured again too (a day 90 days old is history).
    assert sorted((r.partition, tuple(sorted(r.assets))) for r in runs) == sorted(
        [(CHANGED_DAY, tuple(sorted(DATA_LAYER))), (CHANGED_DAY, ("input_drift",))]
    )
    assert all(r.status == "SUCCESS" for r in runs)


NODES_QUERY = """
query Nodes {
  assetNodes { assetKey { path } isPartitioned staleStatus }
}
"""
BY_PARTITION_QUERY = """
query ByPartition($keys: [AssetKeyInput!]!, $days: [String!]!) {
  assetNodes(assetKeys: $keys) { assetKey { path } staleStatusByPartition(partitions: $days) }
}
"""


def bumped_workspace(folder: Path) -> Path:
    """The project's code location with the feature mapping's code version bumped."""
    module = folder / "bumped_definitions.py"
    module.write_text(
        textwrap.dedent(
            """
            import ml_assets.definitions as project

            defs = project.defs.map_resolved_asset_specs(
                func=lambda spec: spec.replace_attributes(code_version="2-test"),
                selection="complaint_features",
            )
            """
        )
    )
    workspace = folder / "workspace.yaml"
    repo = Path(__file__).resolve().parents[2]
    workspace.write_text(
        "load_from:\n"
        "  - python_file:\n"
        f"      relative_path: {module}\n"
        f"      working_directory: {repo}\n"
        "      location_name: ml_assets\n"  # the same location: sensor cursors carry over
    )
    return workspace


MONITORING = ("served_predictions", "quarantined_predictions", "live_performance")


def stale_set(instance: dg.DagsterInstance, workspace: Path, days: list[str]) -> set[str]:
    """What the UI's "Materialize changed and missing" would select, via its GraphQL API."""
    from dagster_graphql.test.utils import define_out_of_process_context, execute_dagster_graphql

    with define_out_of_process_context(str(workspace), None, instance) as context:
        nodes = execute_dagster_graphql(context, NODES_QUERY)
        assert not nodes.errors, nodes.errors
        assert nodes.data["assetNodes"], f"the code location in {workspace} did not load"
        partitioned = [n["assetKey"] for n in nodes.data["assetNodes"] if n["isPartitioned"]]
        by_partition = execute_dagster_graphql(
            context, BY_PARTITION_QUERY, {"keys": partitioned, "days": days}
        )
        assert not by_partition.errors, by_partition.errors
    selected = {
        "/".join(n["assetKey"]["path"])
        for n in nodes.data["assetNodes"]
        if not n["isPartitioned"] and n["staleStatus"] != "FRESH"
    }
    for node in by_partition.data["assetNodes"]:
        name = "/".join(node["assetKey"]["path"])
        statuses = dict(zip(days, node["staleStatusByPartition"], strict=True))
        selected |= {f"{name}[{day}]" for day, status in statuses.items() if status != "FRESH"}
    return selected


def test_4_and_5_a_feature_code_bump_reruns_exactly_the_stale_set(platform: Platform) -> None:
    workspace = bumped_workspace(platform.scratch)
    days = platform.landed_days()
    # 5: with the daemon still on the old code, the UI's stale set for the new code.
    # Dagster marks an asset stale for its own code version or new upstream data, so only the
    # features are stale until they rerun; deployed_model never materialized (no Ray here), so
    # it is missing and selected too.
    # live_promotion is not automated (the platform promotes when blessed): missing too.
    expected = {f"complaint_features[{d}]" for d in days} | {"deployed_model", "live_promotion"}
    # Nothing was served on those days: the monitoring assets are missing there, as before.
    expected |= {f"{name}[{d}]" for name in MONITORING for d in days}
    # complaint_scores is scored on demand on a Ray cluster (no automation, no Ray here): missing.
    expected |= {f"complaint_scores[{d}]" for d in days}
    # The late days are older than DRIFT_RECENT_DAYS: automation never measured their drift.
    expected |= {f"input_drift[{d}]" for d in (LATE_DAY, TOUCHED_DAY)}
    assert stale_set(platform.instance, workspace, days) == expected

    # 4: the daemon on the new code reruns features everywhere and the model chain, no more.
    known = platform.known()
    platform.daemon.close()  # the old code's daemon; the new one takes over its cursors
    platform.daemon = ExitStack()
    platform.log = platform.daemon.enter_context(
        running_daemon(platform.home, workspace, **DAEMON_ENV)
    )
    wait_for(
        lambda: bool(training_runs(runs_after(platform.instance, known))),
        600,
        "the retraining after the code bump",
        platform.log,
    )
    platform.settle(900)
    runs = runs_after(platform.instance, known)
    assert partitions_of(runs, "complaint_features") == days
    ran = {a for r in runs for a in r.assets}
    assert ran == {"complaint_features", "input_drift"} | MODEL_CHAIN | {"deployed_model"}
    assert partitions_of(runs, "input_drift") == DAYS  # the recent days
    # The same 12 days and the same mapping: the retrained model is the first one again, so it
    # is blessed and promoted, and the run stops at deployed_model.
    (training,) = training_runs(runs)
    champion = platform.materialization(training.run_id, "champion_model")
    assert champion is not None and champion.metadata["previous"].value == "1"
    assert [f["failed_steps"] for f in platform.failures(training.run_id)] == [["deployed_model"]]
