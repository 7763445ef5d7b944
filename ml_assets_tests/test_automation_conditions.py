"""The automation conditions, evaluated tick by tick against a real instance and DuckDB."""

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import dagster as dg
import duckdb
import numpy as np
import pandas as pd
import pytest

from ml_assets.assets.day_ranges import range_tags
from ml_assets.assets.evidence import challenger_on_trial, current_champion, evidence_after
from ml_assets.assets.history import feature_store
from ml_assets.assets.keys import (
    AWAITING_METADATA,
    CHAMPION_METADATA,
    COMPANY_HISTORY,
    COMPLAINT_FEATURES,
    DECISION_METADATA,
    INPUT_DRIFT,
    RETRAIN_EVIDENCE_METADATA,
    WAREHOUSE_SCHEMA,
)
from ml_assets.assets.monitoring import input_drift
from ml_assets.automation import new_labelled_partitions
from ml_assets.definitions import (
    build_definitions,
)
from ml_assets.jobs import DATA_LAYER_ASSETS, DATA_LAYER_KEYS, MONITORING_ASSETS
from ml_assets.model.features import LABEL
from ml_assets.model.tracking import CHAMPION_ALIAS, REFERENCE_PROFILE_ARTIFACT
from ml_assets.monitoring.drift import InputProfile, reference_profile
from ml_assets.settings import Settings
from ml_assets.synthetic.export import generate_landing
from resources.compat.dagster_testing import create_run_for_test
from resources.home import ProjectHome

START = date(2016, 3, 1)
MIN_PARTITIONS = 3
TRAINING = dg.AssetKey("training_dataset")
MODEL_CHAIN = {
    "training_dataset",
    "dispute_model",
    "model_evaluation",
    "champion_model",
    "deployed_model",
}


class Ticks:
    """Evaluates the code location's automation conditions, carrying the cursor."""

    def __init__(self, defs: dg.Definitions, instance: dg.DagsterInstance) -> None:
        self.defs, self.instance, self.cursor = defs, instance, None

    def tick(self, at: datetime | None = None) -> dict[str, list[str | None]]:
        """Requested partitions (None: unpartitioned) by asset, evaluated at `at` (default now)."""
        result = dg.evaluate_automation_conditions(
            defs=self.defs, instance=self.instance, cursor=self.cursor, evaluation_time=at
        )
        self.cursor = result.cursor
        requested: dict[str, list[str | None]] = {}
        for entry in result.results:
            if isinstance(entry.key, dg.AssetKey) and entry.true_subset.size:
                partitions = sorted(
                    ap.partition_key
                    for ap in entry.true_subset.expensively_compute_asset_partitions()
                )
                requested[entry.key.to_user_string()] = partitions
        return requested


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ProjectHome:
    monkeypatch.setenv(Settings.env_name("retrain_min_partitions"), str(MIN_PARTITIONS))
    # Ticks here run on the real clock: no calendar trigger may fall between two of them.
    monkeypatch.setenv(Settings.env_name("retrain_cron"), "")
    home = ProjectHome(tmp_path / "home")
    generate_landing(home.landing, START, MIN_PARTITIONS + 1, 40, seed=3)
    return home


def ingest(defs: dg.Definitions, instance: dg.DagsterInstance, day: date) -> None:
    """A day through the data layer, and the online store refreshed after it (as the platform's
    automation does: the tests below are about what else reruns)."""
    result = dg.materialize(
        DATA_LAYER_ASSETS,
        resources=defs.resources,
        partition_key=day.isoformat(),
        instance=instance,
    )
    assert result.success
    refresh_store(defs, instance)


def refresh_store(defs: dg.Definitions, instance: dg.DagsterInstance) -> None:
    stored = dg.materialize([feature_store], resources=defs.resources, instance=instance)
    assert stored.success


def test_the_retrain_policy_waits_for_enough_new_labelled_days(home: ProjectHome) -> None:
    defs = build_definitions(home)
    with dg.instance_for_test() as instance:
        ticks = Ticks(defs, instance)
        assert ticks.tick() == {}  # the first evaluation only sets the cursors
        for offset in range(MIN_PARTITIONS - 1):
            ingest(defs, instance, START + timedelta(days=offset))
        # Days ingested by a data-layer run: nothing downstream within the data layer reruns.
        assert ticks.tick() == {}
        assert new_labelled_partitions(instance, TRAINING, COMPLAINT_FEATURES) == MIN_PARTITIONS - 1

        ingest(defs, instance, START + timedelta(days=MIN_PARTITIONS - 1))
        requested = ticks.tick()
        # The whole model chain in one tick (one run), gated by the blessing on the way.
        assert set(requested) == MODEL_CHAIN
        assert ticks.tick() == {}  # requested once, not again while it is handled


def test_a_raw_correction_reruns_only_that_days_downstream(home: ProjectHome) -> None:
    defs = build_definitions(home)
    days = [START + timedelta(days=i) for i in range(MIN_PARTITIONS - 1)]
    with dg.instance_for_test() as instance:
        ticks = Ticks(defs, instance)
        ticks.tick()
        for day in days:
            ingest(defs, instance, day)
        ticks.tick()
        # raw_complaints alone for the *older* day (a correction, as from the UI).
        raw = next(a for a in DATA_LAYER_ASSETS if dg.AssetKey("raw_complaints") in a.keys)
        dg.materialize(
            [raw], resources=defs.resources, partition_key=days[0].isoformat(), instance=instance
        )
        day = days[0].isoformat()
        assert ticks.tick() == {
            "validated_complaints": [day],
            "rejected_complaints": [day],
            "complaint_statistics": [day],
            "complaint_features": [day],
            "label_log": [day],
            "company_history": [day],
        }


def test_a_feature_code_bump_requests_every_ingested_day_once(home: ProjectHome) -> None:
    defs = build_definitions(home)
    days = [START + timedelta(days=i) for i in range(MIN_PARTITIONS - 1)]
    bumped = defs.map_resolved_asset_specs(
        func=lambda spec: spec.replace_attributes(code_version="bumped"),
        selection="complaint_features",
    )
    with dg.instance_for_test() as instance:
        for day in days:
            ingest(defs, instance, day)
        ticks = Ticks(defs, instance)
        assert ticks.tick() == {}  # the running code location, before the change
        ticks.defs = bumped
        requested = ticks.tick()
        assert requested.pop("complaint_features") == [d.isoformat() for d in days]
        # The model chain follows (too few new days for the policy: the code change triggers it).
        assert set(requested) == MODEL_CHAIN
        features = next(a for a in DATA_LAYER_ASSETS if COMPLAINT_FEATURES in a.keys)
        bumped_features = bumped.resolve_assets_def(COMPLAINT_FEATURES)
        assert (
            bumped_features.code_versions_by_key[COMPLAINT_FEATURES]
            == "bumped"
            != features.code_versions_by_key[COMPLAINT_FEATURES]
        )
        for day in days:
            dg.materialize(
                [
                    bumped_features,
                    *(a for a in DATA_LAYER_ASSETS if COMPLAINT_FEATURES not in a.keys),
                ],
                selection=[COMPLAINT_FEATURES],
                resources=defs.resources,
                partition_key=day.isoformat(),
                instance=instance,
            )
        # Rewritten with the new code: no partition is requested again.
        assert "complaint_features" not in ticks.tick()


# A Monday: the default policy's weekly tick is Monday 04:00 UTC.
MONDAY_MORNING = datetime(2016, 3, 7, 3, 58, tzinfo=UTC)


@pytest.mark.parametrize(("cron", "retrains"), [("0 4 * * 1", True), ("", False)])
def test_the_calendar_trigger_retrains_once_after_its_tick_or_never_when_disabled(
    home: ProjectHome, monkeypatch: pytest.MonkeyPatch, cron: str, retrains: bool
) -> None:
    assert MONDAY_MORNING.weekday() == 0
    monkeypatch.setenv(Settings.env_name("retrain_cron"), cron)
    monkeypatch.setenv(
        Settings.env_name("retrain_min_partitions"), "100"
    )  # the evidence trigger stays quiet
    defs = build_definitions(home)
    with dg.instance_for_test() as instance:
        ingest(defs, instance, START)
        ticks = Ticks(defs, instance)
        minute = timedelta(minutes=1)
        assert ticks.tick(MONDAY_MORNING) == {}
        assert ticks.tick(MONDAY_MORNING + minute) == {}  # 03:59: the tick has not passed
        requested = ticks.tick(MONDAY_MORNING + 3 * minute)  # 04:01
        assert set(requested) == (MODEL_CHAIN if retrains else set())
        assert ticks.tick(MONDAY_MORNING + 4 * minute) == {}  # once per tick


def test_a_run_over_several_days_requests_nothing_downstream_and_a_raw_range_all_its_days(
    home: ProjectHome,
) -> None:
    defs = build_definitions(home)
    days = [(START + timedelta(days=i)).isoformat() for i in range(MIN_PARTITIONS)]
    job = defs.resolve_job_def("data_layer_job")
    with dg.instance_for_test() as instance:
        ticks = Ticks(defs, instance)
        ticks.tick()
        # The sensor's run over consecutive days: every day's downstream is done in that run.
        assert job.execute_in_process(instance=instance, tags=range_tags(days)).success
        # The store waits while a run writes company history (another range of the backfill).
        writing = create_run_for_test(
            instance,
            job_name="data_layer_job",
            status=dg.DagsterRunStatus.STARTED,
            asset_selection=frozenset({COMPANY_HISTORY}),
        )
        assert "feature_store" not in ticks.tick()
        instance.report_run_failed(writing)
        requested = ticks.tick()
        # Only the online store, which follows the history once no run writes it.
        assert {k: v for k, v in requested.items() if k not in MODEL_CHAIN} == {
            "feature_store": [None]
        }
        refresh_store(defs, instance)
        # raw_complaints alone over the range (as from the UI): every day's downstream follows.
        raw_only = [dg.AssetKey("raw_complaints")]
        assert job.execute_in_process(
            instance=instance, tags=range_tags(days), asset_selection=raw_only
        ).success
        # While a run targets the data layer, nothing is requested for it (a tick can fall in
        # the middle of a run over many days).
        busy = create_run_for_test(
            instance,
            job_name="data_layer_job",
            status=dg.DagsterRunStatus.STARTED,
            asset_selection=frozenset(DATA_LAYER_KEYS),
        )
        assert {k for k in ticks.tick() if k not in MODEL_CHAIN} == set()
        instance.report_run_failed(busy)
        requested = ticks.tick()
        downstream = ["validated_complaints", "rejected_complaints", "complaint_statistics"]
        assert {k: v for k, v in requested.items() if k not in MODEL_CHAIN} == {
            **dict.fromkeys(downstream, days),
            "complaint_features": days,
            "label_log": days,
            "company_history": days,
        }


def test_late_labels_rerun_the_live_performance_of_the_request_days_after_them(
    home: ProjectHome,
) -> None:
    defs = build_definitions(home)
    registry = defs.resources["model_registry"]
    client = registry.client()
    mlflow_run = client.create_run(registry.experiment_id())
    client.create_registered_model(registry.model_name)
    version = client.create_model_version(
        registry.model_name, "file:///nowhere", mlflow_run.info.run_id
    ).version
    served_day = START + timedelta(days=2)
    folder = home.predictions / served_day.isoformat()
    folder.mkdir(parents=True)
    (folder / "replica.jsonl").write_text(
        json.dumps(
            {
                "request_time": f"{served_day.isoformat()}T09:00:00+00:00",
                "model_name": registry.model_name,
                "model_version": str(version),
                "decision_threshold": 0.3,
                "inputs": {"complaint_id": "any"},
                "dispute_probability": 0.25,
                "disputed": False,
            }
        )
        + "\n"
    )
    with dg.instance_for_test() as instance:
        ticks = Ticks(defs, instance)
        ticks.tick()
        # Only two of the eight days before the request day were ever landed and ingested.
        ingest(defs, instance, START)
        ingest(defs, instance, START + timedelta(days=1))
        monitored = dg.materialize(
            MONITORING_ASSETS,
            resources=defs.resources,
            partition_key=served_day.isoformat(),
            instance=instance,
        )
        assert monitored.success
        assert ticks.tick() == {}
        # A day before the request day lands again (its labels came out): its data layer ran,
        # and the live performance of the request day after it is requested, and nothing else.
        ingest(defs, instance, START + timedelta(days=1))
        assert ticks.tick() == {"live_performance": [served_day.isoformat()]}


def _champion_with_reference(defs: dg.Definitions, reference: InputProfile) -> str:
    """A registered champion whose run holds `reference` as its training inputs' profile."""
    registry = defs.resources["model_registry"]
    client = registry.client()
    run = client.create_run(registry.experiment_id())
    client.log_dict(run.info.run_id, reference.model_dump(), REFERENCE_PROFILE_ARTIFACT)
    client.create_registered_model(registry.model_name)
    version = client.create_model_version(registry.model_name, "file:///nowhere", run.info.run_id)
    client.set_registered_model_alias(registry.model_name, CHAMPION_ALIAS, version.version)
    return run.info.run_id


def _promoted(instance: dg.DagsterInstance, version: str) -> None:
    """Dagster's record of a promotion, as `champion_model` writes it."""
    instance.report_runless_asset_event(
        dg.AssetMaterialization("champion_model", metadata={CHAMPION_METADATA: version})
    )


def _features_of(home: ProjectHome, day: date) -> pd.DataFrame:
    with duckdb.connect(str(home.warehouse), read_only=True) as conn:
        return conn.execute(
            f"select * from {WAREHOUSE_SCHEMA}.complaint_features where ingestion_date = ?",
            [datetime(day.year, day.month, day.day)],
        ).fetchdf()


@pytest.mark.parametrize(
    ("drifted", "settle_days", "retrains"),
    [(True, 0, True), (False, 0, False), (True, 500, False)],
    ids=["drifted", "stable", "drifted-labels-not-settled"],
)
def test_an_input_drift_error_retrains_once_and_stable_inputs_do_not(
    home: ProjectHome,
    monkeypatch: pytest.MonkeyPatch,
    drifted: bool,
    settle_days: int,
    retrains: bool,
) -> None:
    monkeypatch.setenv(Settings.env_name("retrain_settle_days"), str(settle_days))
    defs = build_definitions(home)
    with dg.instance_for_test() as instance:
        ticks = Ticks(defs, instance)
        ingest(defs, instance, START)
        features = _features_of(home, START)
        if drifted:  # the model was trained on student loans only
            features = features.assign(product="Student loan")
        _champion_with_reference(defs, reference_profile(features, ["fee"]))
        _promoted(instance, "1")
        assert ticks.tick() == {}  # the first evaluation only sets the cursors
        result = dg.materialize(
            [input_drift],
            resources=defs.resources,
            partition_key=START.isoformat(),
            instance=instance,
            run_config={"ops": {"input_drift": {"config": {"min_rows": 10}}}},
        )
        (event,) = result.get_asset_materialization_events()
        evidence = event.materialization.metadata[RETRAIN_EVIDENCE_METADATA].value
        assert ("landed inputs drifted: product (linf)" in evidence) == drifted
        assert set(ticks.tick()) == (MODEL_CHAIN if retrains else set())
        assert ticks.tick() == {}  # once, not again while it is handled


def _serve(home: ProjectHome, day: date, version: str, answers: dict[str, float]) -> None:
    """The endpoint's log of a day: one prediction per complaint id."""
    folder = home.predictions / day.isoformat()
    folder.mkdir(parents=True)
    (folder / "replica.jsonl").write_text(
        "".join(
            json.dumps(
                {
                    "request_time": f"{day.isoformat()}T09:00:00+00:00",
                    "model_name": "complaint_dispute_model",
                    "model_version": version,
                    "decision_threshold": 0.5,
                    "inputs": {"complaint_id": complaint},
                    "dispute_probability": probability,
                    "disputed": probability >= 0.5,
                }
            )
            + "\n"
            for complaint, probability in answers.items()
        )
    )


@pytest.mark.parametrize(
    ("offline_auc", "wrong", "evidence"),
    [
        (None, True, "below the floor"),
        (None, False, ""),
        # Right more often than not (AUC about 0.8), but 0.15 below what evaluation measured.
        (0.99, "partly", "below the offline 0.990"),
    ],
    ids=["below-floor", "healthy", "below-offline"],
)
def test_degraded_live_performance_retrains_and_healthy_performance_does_not(
    home: ProjectHome, offline_auc: float | None, wrong: bool | str, evidence: str
) -> None:
    defs = build_definitions(home)
    registry = defs.resources["model_registry"]
    with dg.instance_for_test() as instance:
        ticks = Ticks(defs, instance)
        ingest(defs, instance, START)
        labels = _features_of(home, START).set_index("complaint_id")[LABEL].dropna()
        run_id = _champion_with_reference(defs, reference_profile(_features_of(home, START), []))
        _promoted(instance, "1")
        assert ticks.tick() == {}  # the first evaluation only sets the cursors
        if offline_auc is not None:
            registry.client().log_metric(run_id, "eval_roc_auc", offline_auc)
        rng = np.random.default_rng(5)
        if wrong == "partly":  # the label plus noise: about 0.8 to 0.9 of pairs ordered right
            scores = labels + rng.normal(0, 0.6, len(labels))
            answers = (1 / (1 + np.exp(-scores))).to_dict()
        else:
            answers = ((1 - labels) if wrong else labels).mul(0.8).add(0.1).to_dict()
        _serve(home, START, "1", answers)
        result = dg.materialize(
            MONITORING_ASSETS,
            resources=defs.resources,
            partition_key=START.isoformat(),
            instance=instance,
            run_config={"ops": {"live_performance": {"config": {"min_labelled": 20}}}},
        )
        (event,) = [
            e
            for e in result.get_asset_materialization_events()
            if e.asset_key.to_user_string() == "live_performance"
        ]
        recorded = event.materialization.metadata[RETRAIN_EVIDENCE_METADATA].value
        assert (evidence in recorded) if evidence else recorded == ""
        assert set(ticks.tick()) == (MODEL_CHAIN if evidence else set())


def _drift_against_version_1(
    home: ProjectHome,
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    ticks: Ticks,
    champion_record: dict[str, str],
) -> None:
    """A day whose inputs drifted from version 1's reference, measured after champion_model
    recorded `champion_record` (and after the first tick, which only sets the cursors)."""
    ingest(defs, instance, START)
    features = _features_of(home, START).assign(product="Student loan")
    _champion_with_reference(defs, reference_profile(features, ["fee"]))
    instance.report_runless_asset_event(
        dg.AssetMaterialization("champion_model", metadata=champion_record)
    )
    assert ticks.tick() == {}
    dg.materialize(
        [input_drift],
        resources=defs.resources,
        partition_key=START.isoformat(),
        instance=instance,
        run_config={"ops": {"input_drift": {"config": {"min_rows": 10}}}},
    )


def test_evidence_about_a_champion_already_replaced_does_not_retrain_again(
    home: ProjectHome,
) -> None:
    defs = build_definitions(home)
    with dg.instance_for_test() as instance:
        ticks = Ticks(defs, instance)
        _drift_against_version_1(home, defs, instance, ticks, {CHAMPION_METADATA: "1"})
        # A retrain that started on earlier evidence promoted version 2 meanwhile: this drift
        # was measured against version 1, which no longer serves.
        _promoted(instance, "2")
        # Nothing retrains (and this runless promotion had no blessing to deploy after).
        assert ticks.tick() == {}


def test_evidence_waits_while_a_challenger_is_on_trial_and_follows_a_live_promotion(
    home: ProjectHome,
) -> None:
    defs = build_definitions(home)
    with dg.instance_for_test() as instance:
        ticks = Ticks(defs, instance)
        # champion_model kept version 1 and left blessed version 2 to live evidence.
        on_trial = {CHAMPION_METADATA: "1", AWAITING_METADATA: "2"}
        _drift_against_version_1(home, defs, instance, ticks, on_trial)
        assert challenger_on_trial(instance) == "2"
        # Evidence against version 1 while its remedy serves beside it: nothing retrains.
        assert evidence_after(instance, TRAINING, INPUT_DRIFT) == []
        assert ticks.tick() == {}
        # live_promotion retired the challenger: the evidence against version 1 counts again.
        instance.report_runless_asset_event(
            dg.AssetMaterialization(
                "live_promotion", metadata={DECISION_METADATA: "retire", CHAMPION_METADATA: "1"}
            )
        )
        assert challenger_on_trial(instance) is None and current_champion(instance) == "1"
        assert evidence_after(instance, TRAINING, INPUT_DRIFT)
        # ... until a promotion: the drift was measured against version 1, no longer serving.
        instance.report_runless_asset_event(
            dg.AssetMaterialization(
                "live_promotion", metadata={DECISION_METADATA: "promote", CHAMPION_METADATA: "2"}
            )
        )
        assert current_champion(instance) == "2"
        assert evidence_after(instance, TRAINING, INPUT_DRIFT) == []
        # Its next run finds no challenger beside the new champion, and says which it is.
        instance.report_runless_asset_event(
            dg.AssetMaterialization(
                "live_promotion", metadata={DECISION_METADATA: "none", CHAMPION_METADATA: "2"}
            )
        )
        assert evidence_after(instance, TRAINING, INPUT_DRIFT) == []
