"""Only stale assets rerun: the five scenarios on a real Dagster instance driven by the daemon.

One project home for the module; each scenario asserts on the runs the daemon actually launched
after it. The retrain policy is set to 12 new labelled days, so the initial 12 days train once and
the single days landed later do not; no Ray cluster runs, so `deployed_model` fails and the
run-failure sensor records it.
"""

import json
import textwrap
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest

from ml_assets.operations import RunSummary, in_flight, runs_after
from ml_assets_tests.e2e.dagster_daemon import ml_assets, running_daemon, wait_for

pytestmark = pytest.mark.e2e
# As in the live feed: the new day is yesterday (UTC), the newest partition, which the model
# chain follows through training_dataset's LastPartitionMapping.
YESTERDAY = datetime.now(UTC).date() - timedelta(days=1)
DAYS = [(YESTERDAY - timedelta(days=n)).isoformat() for n in range(12, 0, -1)]
NEW_DAY = YESTERDAY.isoformat()
CHANGED_DAY = DAYS[4]
DAEMON_ENV = {
    "ML_ASSETS_SENSOR_INTERVAL_S": "5",
    "ML_ASSETS_RETRAIN_MIN_PARTITIONS": str(len(DAYS)),
    "RAY_ADDRESS": "127.0.0.1:9",  # nothing listens: deployed_model fails fast
}
DATA_LAYER = {"raw_complaints", "validated_complaints", "rejected_complaints"}
DATA_LAYER |= {"complaint_statistics", "complaint_features"}
MODEL_CHAIN = {"training_dataset", "dispute_model", "model_evaluation", "champion_model"}
SETTLE_S = 25.0  # five sensor intervals without anything in flight


@dataclass
class Platform:
    home: Path
    log: Path
    instance: dg.DagsterInstance
    daemon: ExitStack  # closing it stops the daemon: never two on one instance (shared cursors)

    def settle(self, timeout: float = 600) -> None:
        """Wait until nothing is in flight for SETTLE_S (the sensors had their ticks)."""
        import time

        quiet = [time.monotonic()]

        def settled() -> bool:
            if in_flight(self.instance):
                quiet[0] = time.monotonic()
            return time.monotonic() - quiet[0] >= SETTLE_S

        wait_for(settled, timeout, "the platform to settle", self.log)

    def known(self) -> set[str]:
        return {r.run_id for r in self.instance.get_runs()}

    def land(self, day: str, seed: int = 7) -> None:
        ml_assets(self.home, "generate", "--start", day, "--days", "1", "--rows-per-day", "300",
                  "--seed", str(seed))  # fmt: skip


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    home = tmp_path_factory.mktemp("automation") / "home"
    ml_assets(home, "generate", "--start", DAYS[0], "--days", str(len(DAYS)),
              "--rows-per-day", "300", "--seed", "7")  # fmt: skip
    with (
        ExitStack() as daemon,
        dg.DagsterInstance.from_config(str(home / "dagster")) as instance,
    ):
        log = daemon.enter_context(running_daemon(home, **DAEMON_ENV))
        platform = Platform(home, log, instance, daemon)
        wait_for(lambda: len(instance.get_runs()) >= len(DAYS), 300, "ingestion runs", log)
        platform.settle(900)
        yield platform


def partitions_of(runs: list[RunSummary], asset: str) -> list[str]:
    return sorted(r.partition or "" for r in runs if asset in r.assets)


def test_initial_days_are_ingested_and_the_policy_trains_once(platform: Platform) -> None:
    runs = runs_after(platform.instance, set())
    assert partitions_of(runs, "raw_complaints") == DAYS
    training = [r for r in runs if "dispute_model" in r.assets]
    assert len(training) == 1, [r.describe() for r in runs]
    assert MODEL_CHAIN | {"deployed_model"} <= set(training[0].assets)
    # Every failed run is recorded by the run-failure sensor. With a blessed model the chain
    # stops at deployed_model (no Ray cluster here); without, at the blessing, and no champion.
    failures = (platform.home / "logs" / "run_failures.jsonl").read_text().splitlines()
    recorded = [json.loads(line) for line in failures]
    assert [f["run_id"] for f in recorded] == [training[0].run_id]
    champion = platform.instance.get_latest_materialization_event(dg.AssetKey("champion_model"))
    blessed = champion is not None
    expected_failure = "deployed_model" if blessed else "model_evaluation_blessing"
    assert recorded[0]["failed_steps"] == [expected_failure]


def test_1_a_new_day_runs_only_its_partition(platform: Platform) -> None:
    known = platform.known()
    platform.land(NEW_DAY)
    wait_for(lambda: bool(runs_after(platform.instance, known)), 120, "a run", platform.log)
    platform.settle()
    runs = runs_after(platform.instance, known)
    assert [(r.partition, set(r.assets)) for r in runs] == [(NEW_DAY, DATA_LAYER)]
    assert all(r.status == "SUCCESS" for r in runs)  # 1 new day < 12: no retrain


def test_2_the_same_file_again_runs_nothing(platform: Platform) -> None:
    known = platform.known()
    platform.land(NEW_DAY)
    platform.settle()
    assert runs_after(platform.instance, known) == []


def test_3_a_changed_old_day_reruns_only_that_day(platform: Platform) -> None:
    known = platform.known()
    platform.land(CHANGED_DAY, seed=8)
    wait_for(lambda: bool(runs_after(platform.instance, known)), 120, "a run", platform.log)
    platform.settle()
    runs = runs_after(platform.instance, known)
    assert [(r.partition, set(r.assets)) for r in runs] == [(CHANGED_DAY, DATA_LAYER)]


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


def stale_set(instance: dg.DagsterInstance, workspace: Path) -> set[str]:
    """What the UI's "Materialize changed and missing" would select, via its GraphQL API."""
    from dagster_graphql.test.utils import define_out_of_process_context, execute_dagster_graphql

    days = [*DAYS, NEW_DAY]
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


def test_4_and_5_a_feature_code_bump_reruns_exactly_the_stale_set(
    platform: Platform, tmp_path: Path
) -> None:
    workspace = bumped_workspace(tmp_path)
    # 5: with the daemon still on the old code, the UI's stale set for the new code.
    # Dagster marks the features (code version) and their direct child stale; assets of the
    # chain never materialized (deployed_model: no Ray here) are missing, so selected too.
    missing = {
        name
        for name in MODEL_CHAIN | {"deployed_model"}
        if platform.instance.get_latest_materialization_event(dg.AssetKey(name)) is None
    }
    expected = {f"complaint_features[{d}]" for d in [*DAYS, NEW_DAY]}
    expected |= {"training_dataset"} | missing
    assert stale_set(platform.instance, workspace) == expected

    # 4: the daemon on the new code reruns features everywhere and the model chain, no more.
    known = platform.known()
    platform.daemon.close()  # the old code's daemon; the new one takes over its cursors
    with running_daemon(platform.home, workspace, **DAEMON_ENV) as log:
        platform.log = log
        wait_for(
            lambda: any("dispute_model" in r.assets for r in runs_after(platform.instance, known)),
            600,
            "the retraining after the code bump",
            log,
        )
        platform.settle(900)
    runs = runs_after(platform.instance, known)
    assert partitions_of(runs, "complaint_features") == sorted([*DAYS, NEW_DAY])
    ran = {a for r in runs for a in r.assets}
    assert ran == {"complaint_features"} | MODEL_CHAIN | {"deployed_model"}
    assert not ran & {"raw_complaints", "validated_complaints", "complaint_statistics"}
