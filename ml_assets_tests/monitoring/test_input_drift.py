"""Input drift and skew: hand-computed figures on small frames, each level reached, the asset."""

import json
import math
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
import pytest

from ml_assets.assets.keys import INPUT_DRIFT, RETRAIN_EVIDENCE_METADATA, WAREHOUSE_SCHEMA
from ml_assets.assets.monitoring import input_drift
from ml_assets.definitions import local_resources
from ml_assets.model.features import CATEGORICAL_FEATURES, FEATURE_COLUMNS, LABEL, MISSING_TOKEN
from ml_assets.model.tracking import CHAMPION_ALIAS, REFERENCE_PROFILE_ARTIFACT
from ml_assets.monitoring.drift import (
    DriftLevel,
    DriftThresholds,
    compare_profiles,
    js_divergence,
    linf_distance,
    profile_inputs,
    reference_profile,
    tokens,
    worst_features,
    worst_level,
)
from ml_assets.serving.schemas import SMOKE_COMPLAINT_ID_PREFIX
from resources.home import ProjectHome

DAY = "2016-01-05"
THRESHOLDS = DriftThresholds(
    linf_warn=0.1,
    linf_error=0.2,
    jsd_warn=0.05,
    jsd_error=0.15,
    oov_warn=0.05,
    oov_error=0.15,
    min_rows=4,
)


def _inputs(products: list[str], narratives: list[str]) -> pd.DataFrame:
    """Model inputs where only the product and the narrative vary."""
    frame = pd.DataFrame({name: [MISSING_TOKEN] * len(products) for name in FEATURE_COLUMNS})
    frame["product"] = products
    frame["narrative"] = narratives
    return frame


def test_linf_is_the_largest_gap_between_category_shares() -> None:
    reference = {"Mortgage": 0.5, "Debt collection": 0.3, "Credit card": 0.2}
    current = {"Mortgage": 0.35, "Debt collection": 0.3, "Student loan": 0.35}
    # Gaps: Mortgage 0.15, Debt collection 0, Credit card 0.2, Student loan (new) 0.35.
    assert linf_distance(reference, current) == (pytest.approx(0.35), "Student loan")
    assert linf_distance(reference, reference) == (0.0, "Credit card")


def test_jensen_shannon_divergence_matches_its_definition() -> None:
    p, q = [0.5, 0.5], [0.9, 0.1]
    m = [0.7, 0.3]

    def kl(a: list[float], b: list[float]) -> float:
        return sum(x * math.log2(x / y) for x, y in zip(a, b, strict=True))

    assert js_divergence(p, q) == pytest.approx(0.5 * kl(p, m) + 0.5 * kl(q, m))
    assert js_divergence([1, 0], [0, 1]) == pytest.approx(1.0)
    assert js_divergence(p, p) == 0.0


def test_tokens_are_standardized_as_the_models_vectorizer_does() -> None:
    assert tokens('I called XXXX, twice!  They said: "no."') == [
        "i",
        "called",
        "xxxx",
        "twice",
        "they",
        "said",
        "no",
    ]


def test_a_profile_counts_shares_lengths_vocabulary_and_labels() -> None:
    inputs = _inputs(
        ["Mortgage", "Mortgage", "Credit card", "Mortgage"],
        ["late fee charged", "", "fee fee unknownword", ""],
    )
    profile = profile_inputs(inputs, pd.Series([1.0, 0.0, math.nan, 0.0]), ["fee", "late"])
    assert profile.categories["product"] == {"Mortgage": 0.75, "Credit card": 0.25}
    assert profile.empty_narrative_share == 0.5
    assert profile.narrative_lengths[0] == 1.0  # both narratives have 3 tokens: bin [1, 25)
    assert profile.oov_share == pytest.approx(2 / 6)  # "charged", "unknownword" of 6 tokens
    assert profile.label_rate == pytest.approx(1 / 3)  # the unlabelled row is left out
    assert profile.vocabulary == []  # a day's profile does not carry the vocabulary
    features = inputs.assign(**{LABEL: [1.0, 0.0, 0.0, 0.0]})
    assert reference_profile(features, ["fee"]).vocabulary == ["fee"]


def _compare(products: list[str], narratives: list[str], labels: list[float] | None = None):
    reference_inputs = _inputs(
        ["Mortgage", "Mortgage", "Credit card", "Debt collection"] * 5,
        ["late fee charged"] * 20,
    )
    reference = reference_profile(
        reference_inputs.assign(**{LABEL: [1.0, 0.0, 0.0, 0.0] * 5}),
        ["late", "fee", "charged"],
    )
    current = profile_inputs(
        _inputs(products, narratives),
        pd.Series(labels) if labels is not None else None,
        reference.vocabulary,
    )
    return compare_profiles("landed", reference, current, THRESHOLDS).set_index("feature")


def test_the_same_data_is_ok_on_every_feature() -> None:
    drift = _compare(
        ["Mortgage", "Mortgage", "Credit card", "Debt collection"],
        ["late fee charged"] * 4,
        [1.0, 0.0, 0.0, 0.0],
    )
    assert set(drift.index) == {
        *CATEGORICAL_FEATURES,
        "narrative_length",
        "empty_narrative_share",
        "narrative_vocabulary",
        "label_balance",
    }
    assert (drift["value"] == 0).all() and worst_level(drift.reset_index()) == DriftLevel.OK


def test_each_statistic_reaches_warn_and_error() -> None:
    # Mortgage 0.5 -> 7/11 (gap 0.136: warn, the others 0.068); labels 0.25 -> 6/11 (error).
    warned = _compare(
        ["Mortgage"] * 7 + ["Credit card", "Debt collection"] * 2,
        ["late fee charged"] * 11,
        [1.0, 0.0] * 5 + [1.0],
    )
    assert warned.loc["product", "level"] == "warn"
    assert warned.loc["product", "worst"] == "Mortgage"
    assert warned.loc["label_balance", "level"] == "error"
    # Every narrative empty: the empty share moves 0 -> 1 (JSD 1: error); no tokens, no OOV.
    emptied = _compare(["Mortgage", "Mortgage", "Credit card", "Debt collection"], [""] * 4)
    assert emptied.loc["empty_narrative_share", "level"] == "error"
    assert "label_balance" not in emptied.index  # no labels yet: not compared
    # New wording: 1 unknown token of 11 (0.09, warn), then 3 of 9 (0.33, error).
    reworded = _compare(
        ["Mortgage", "Mortgage", "Credit card", "Debt collection"],
        ["late fee charged", "late fee charged", "late fee charged", "fee unknown"],
    )
    assert reworded.loc["narrative_vocabulary", "value"] == pytest.approx(1 / 11)
    assert reworded.loc["narrative_vocabulary", "level"] == "warn"
    unknown = _compare(
        ["Mortgage", "Mortgage", "Credit card", "Debt collection"],
        ["late fee charged", "late fee charged", "new new new", ""],
    )
    assert unknown.loc["narrative_vocabulary", "level"] == "error"
    # Longer narratives: all 3-token ones become 30-token ones (JSD 1 between the histograms).
    longer = _compare(
        ["Mortgage", "Mortgage", "Credit card", "Debt collection"], ["late fee charged " * 10] * 4
    )
    assert longer.loc["narrative_length", "level"] == "error"
    assert longer.loc["narrative_length", "worst"] in ("[1, 25)", "[25, 50)")
    ranked = worst_features(unknown.reset_index(), THRESHOLDS, 1)
    assert list(ranked) == ["narrative_vocabulary (oov_increase)"]


def test_too_few_rows_are_not_judged() -> None:
    assert _compare(["Student loan"] * 3, [""] * 3).empty


def _world(
    home: ProjectHome, day_products: list[str], served_products: list[str], smoke: int = 0
) -> None:
    """A champion whose run holds a reference profile, a day of features and of served requests."""
    resources = local_resources(home)
    registry = resources["model_registry"]
    client = registry.client()
    run = client.create_run(registry.experiment_id())
    reference = reference_profile(
        _inputs(["Mortgage", "Credit card"] * 50, ["late fee"] * 100).assign(**{LABEL: 0.0}),
        ["late", "fee"],
    )
    client.log_dict(run.info.run_id, reference.model_dump(), REFERENCE_PROFILE_ARTIFACT)
    client.create_registered_model(registry.model_name)
    version = client.create_model_version(registry.model_name, "file:///nowhere", run.info.run_id)
    client.set_registered_model_alias(registry.model_name, CHAMPION_ALIAS, version.version)
    features = _inputs(day_products, ["late fee"] * len(day_products)).assign(
        complaint_id=[f"c{i}" for i in range(len(day_products))],
        ingestion_date=pd.Timestamp(DAY),
        **{LABEL: math.nan},
    )
    served = pd.DataFrame(
        {
            "request_date": pd.Timestamp(DAY),
            # A deployment's smoke requests (evaluation rows, signed) come last: not users'
            # traffic.
            "complaint_id": [f"r{i}" for i in range(len(served_products))]
            + [f"{SMOKE_COMPLAINT_ID_PREFIX}{i}" for i in range(smoke)],
            "smoke": [False] * len(served_products) + [True] * smoke,
            "inputs": [
                json.dumps({"product": p, "consumer_complaint_narrative": "late fee"})
                for p in [*served_products, *["Credit card"] * smoke]
            ],
        }
    )
    home.root.mkdir(parents=True, exist_ok=True)
    with duckdb.connect(str(home.warehouse)) as conn:
        conn.execute(f"create schema if not exists {WAREHOUSE_SCHEMA}")
        for name, frame in (("complaint_features", features), ("served_predictions", served)):
            conn.register("frame", frame)
            conn.execute(f"create table {WAREHOUSE_SCHEMA}.{name} as select * from frame")
            conn.unregister("frame")


def _materialize(home: ProjectHome) -> dg.ExecuteInProcessResult:
    with dg.instance_for_test() as instance:
        return dg.materialize(
            [input_drift],
            partition_key=DAY,
            resources=local_resources(home),
            instance=instance,
            raise_on_error=False,
        )


def test_the_asset_errors_on_drifted_landed_days_and_warns_on_skewed_requests(
    tmp_path: Path,
) -> None:
    home = ProjectHome(tmp_path / "home")
    # Landed: all mortgages (share 0.5 -> 1.0: error); served: 65 % mortgages (0.15 off: warn).
    # 100 smoke requests of credit cards would bring the share to 0.43 (ok) if counted.
    _world(home, ["Mortgage"] * 150, ["Mortgage"] * 130 + ["Credit card"] * 70, smoke=100)
    result = _materialize(home)
    assert result.success
    checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
    landed, served = checks["landed_inputs_drift"], checks["served_inputs_skew"]
    assert (landed.passed, landed.severity) == (False, dg.AssetCheckSeverity.ERROR)
    assert "product (linf)" in next(iter(landed.metadata["worst_features"].value))
    assert (served.passed, served.severity) == (False, dg.AssetCheckSeverity.WARN)
    (event,) = result.get_asset_materialization_events()
    assert event.materialization.metadata[RETRAIN_EVIDENCE_METADATA].value.startswith(
        "landed inputs drifted: product (linf)"
    )
    assert event.materialization.metadata["levels"].value == {
        "landed": "error",
        "served": "warn",
    }
    with duckdb.connect(str(home.warehouse), read_only=True) as conn:
        rows = conn.execute(
            f"select source, value from {WAREHOUSE_SCHEMA}.input_drift where feature = 'product'"
        ).fetchall()
    assert sorted(rows) == [("landed", pytest.approx(0.5)), ("served", pytest.approx(0.15))]
    assert input_drift.key == INPUT_DRIFT


def test_the_asset_passes_stable_days_and_says_why_a_small_day_is_not_judged(
    tmp_path: Path,
) -> None:
    home = ProjectHome(tmp_path / "home")
    _world(home, ["Mortgage", "Credit card"] * 60, ["Mortgage"] * 3)
    checks = {c.check_name: c for c in _materialize(home).get_asset_check_evaluations()}
    assert checks["landed_inputs_drift"].passed
    assert checks["landed_inputs_drift"].metadata["judged"].value is True
    skew = checks["served_inputs_skew"]
    assert skew.passed and skew.metadata["judged"].value is False
    assert "3 rows, fewer than 100" in skew.metadata["reason"].value


def test_a_day_before_any_champion_is_an_empty_typed_table_and_later_days_append(
    tmp_path: Path,
) -> None:
    home = ProjectHome(tmp_path / "home")
    home.root.mkdir(parents=True)
    before = _materialize(home)
    assert before.success
    checks = {c.check_name: c for c in before.get_asset_check_evaluations()}
    assert checks["landed_inputs_drift"].passed
    assert "no champion model yet" in checks["landed_inputs_drift"].metadata["reason"].value
    # The empty first write created the table with real types, so a judged day fits into it.
    _world(home, ["Mortgage"] * 150, ["Mortgage"] * 130 + ["Credit card"] * 70)
    assert _materialize(home).success
    with duckdb.connect(str(home.warehouse), read_only=True) as conn:
        types = dict(
            conn.execute(
                "select column_name, data_type from information_schema.columns "
                f"where table_schema = '{WAREHOUSE_SCHEMA}' and table_name = 'input_drift'"
            ).fetchall()
        )
        versions = conn.execute(
            f"select distinct reference_version from {WAREHOUSE_SCHEMA}.input_drift"
        ).fetchall()
    assert types["reference_version"] == "VARCHAR" and types["value"] == "DOUBLE"
    assert versions == [("1",)]
