"""`ml-assets demo --scenario drift`: the production loop, driven by sensors and automation.

A model is trained on a stable world and served; complaints drift (a product-mix shift, a new
issue disputed far more often, new wording); the endpoint answers them; their day files land with
labels; `input_drift` errors and live performance drops; the retraining policy retrains on that
evidence; the blessing compares challenger and champion; the new champion is deployed; it answers
the next day's complaints, and drift and live performance recover. Each step prints its figures.

The days: 14 stable days up to 15 days ago, 13 drifted days up to the day before yesterday, and
yesterday, the day the new champion answers. The endpoint logs every request on today, which the
prediction-log sensor ingests as it grows (intraday ingestion on): the day's live performance
has a row per version that answered.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import dagster as dg
import pandas as pd
import requests

from ml_assets.assets.keys import (
    DEPLOYED_MODEL,
    DRIFT_DATE_COLUMN,
    INPUT_DRIFT,
    LIVE_PERFORMANCE,
    RETRAIN_EVIDENCE_METADATA,
    WAREHOUSE_SCHEMA,
)
from ml_assets.assets.monitoring import LIVE_LABEL_LOOKBACK_DAYS
from ml_assets.assets.training import RETRAIN_EVIDENCE_TAG
from ml_assets.columns import REQUEST_DATE_COLUMN
from ml_assets.demo import (
    DAGSTER_SERVICE,
    DemoSettings,
    print_runs,
    served,
    start_services,
)
from ml_assets.ingest.cfpb_format import read_complaints_csv
from ml_assets.model.features import RAW_INPUT_FIELDS
from ml_assets.model.tracking import CHAMPION_ALIAS
from ml_assets.operations import runs_after, wait_quiet, wait_until
from ml_assets.serving.auth import bearer_headers
from ml_assets.settings import load_settings
from ml_assets.synthetic.drift import Drift
from ml_assets.synthetic.export import generate_day
from resources.home import ProjectHome
from resources.local_services import running_pid
from resources.warehouse import Warehouse

# The platform's settings for the story: the count trigger needs every stable day for the first
# model, so the drifted days alone never reach it; no calendar trigger; today's logs ingested as
# they grow.
SCENARIO_ENV = {
    "ML_ASSETS_RETRAIN_MIN_PARTITIONS": "14",
    "ML_ASSETS_RETRAIN_CRON": "",
    "ML_ASSETS_INTRADAY_INGEST_S": "0",
}
REQUEST_BATCH = 500  # complaints per request, under the endpoint's limit


@dataclass(frozen=True)
class DriftStory:
    """The days of the story, relative to the real today (the day requests are logged on)."""

    stable_days: int = 14
    drifted_days: int = 13
    rows_per_day: int = 400
    served_per_day: int = 150  # complaints of each recent drifted day sent to the endpoint
    seed: int = 7


def _listening(port: int) -> bool:
    """Whether something accepts connections on 127.0.0.1:port."""
    with socket.socket() as probe:
        probe.settimeout(1.0)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _scenario_env() -> None:
    """The story's platform settings, for the services this process starts."""
    os.environ.update(SCENARIO_ENV)


def _land(home: ProjectHome, day: date, story: DriftStory, drift: Drift) -> Path:
    """Write a day's file, labelled (the republished database), into the landing zone."""
    from ml_assets.ingest.landing import day_folder, write_atomically

    text = generate_day(day, story.rows_per_day, story.seed, drift=drift)
    path = day_folder(home.landing, day) / "synthetic.csv"
    write_atomically(path, text.encode("utf-8"))
    return path


def _requests_of(day: date, story: DriftStory, drift: Drift, count: int) -> list[dict]:
    """The first `count` complaints of a day as the endpoint receives them (no label)."""
    text = generate_day(day, story.rows_per_day, story.seed, drift=drift)
    frame = read_complaints_csv(text.encode("utf-8"), f"{day}.csv").head(count)
    fields = ["complaint_id", *RAW_INPUT_FIELDS]
    frame = frame.reindex(columns=fields).astype(object)
    return [
        {k: v for k, v in row.items() if isinstance(v, str)} for row in frame.to_dict("records")
    ]


def serve_requests(endpoint: str, complaints: list[dict]) -> str:
    """Send complaints to /predict in batches; the version that answered."""
    versions = set()
    for start in range(0, len(complaints), REQUEST_BATCH):
        answer = requests.post(
            f"{endpoint}/predict",
            json={"complaints": complaints[start : start + REQUEST_BATCH]},
            headers=bearer_headers(load_settings().token()),
            timeout=120,
        )
        answer.raise_for_status()
        versions.add(str(answer.json()["model_version"]))
    return ",".join(sorted(versions))


def _query(home: ProjectHome, table: str, sql: str, params: list[object]) -> pd.DataFrame:
    """Rows of a warehouse table (none when the table does not exist yet)."""
    warehouse = Warehouse(database=str(home.warehouse))
    if not warehouse.has_table(WAREHOUSE_SCHEMA, table):
        return pd.DataFrame()
    with warehouse.connect() as conn:
        return conn.execute(sql, params).fetchdf()


def _drift_summary(home: ProjectHome, first: date, last: date, source: str) -> str:
    """The worst features of `source` over days first..last, with their levels."""
    table = _query(
        home,
        "input_drift",
        f"select {DRIFT_DATE_COLUMN} as day, reference_version, feature, value, level from "
        f"{WAREHOUSE_SCHEMA}.input_drift where source = ? and {DRIFT_DATE_COLUMN} between ? and ?",
        [source, pd.Timestamp(first).to_pydatetime(), pd.Timestamp(last).to_pydatetime()],
    )
    if table.empty:
        return f"{source}: not compared"
    days = table.groupby("day")["level"].agg(lambda levels: "error" in set(levels))
    worst = table.groupby("feature")["value"].mean().sort_values(ascending=False).head(4)
    figures = ", ".join(f"{feature} {value:.2f}" for feature, value in worst.items())
    versions = ", ".join(sorted(set(table["reference_version"])))
    return (
        f"{source}: error on {int(days.sum())}/{len(days)} day(s) against version {versions}; "
        f"mean of the worst: {figures}"
    )


def _live(home: ProjectHome, day: date) -> str:
    """live_performance of a request day, one line per version."""
    table = _query(
        home,
        "live_performance",
        f"select model_version, served, labelled, roc_auc, ece, mean_probability, positive_rate "
        f"from {WAREHOUSE_SCHEMA}.live_performance where {REQUEST_DATE_COLUMN} = ? "
        "order by model_version",
        [pd.Timestamp(day).to_pydatetime()],
    )
    if table.empty:
        return "not computed yet"
    return "; ".join(
        f"version {r.model_version}: {r.labelled}/{r.served} labelled, ROC AUC {r.roc_auc:.3f}, "
        f"ECE {r.ece:.3f}, mean probability {r.mean_probability:.3f} vs rate {r.positive_rate:.3f}"
        for r in table.itertuples(index=False)
    )


def _evidence(instance: dg.DagsterInstance, known: set[str]) -> list[str]:
    """The retrain evidence the monitoring assets recorded in runs not in `known`."""
    lines = []
    for key in (INPUT_DRIFT, LIVE_PERFORMANCE):
        records = instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=key), limit=500)
        for record in reversed(records.records):
            materialization = record.asset_materialization
            if materialization is None or record.run_id in known:
                continue
            entry = materialization.metadata.get(RETRAIN_EVIDENCE_METADATA)
            if entry is not None and entry.value:
                lines.append(f"{key.to_user_string()} {materialization.partition}: {entry.value}")
    return lines or ["none recorded"]


def _evaluation(instance: dg.DagsterInstance) -> str:
    """The latest model_evaluation: challenger against champion, and the verdict."""
    event = instance.get_latest_materialization_event(dg.AssetKey("model_evaluation"))
    meta = event.asset_materialization.metadata if event and event.asset_materialization else {}

    def value(name: str) -> object:
        return meta[name].value if name in meta else None

    champion = value("champion_roc_auc")
    return (
        f"challenger ROC AUC {value('roc_auc'):.3f}, ECE {value('ece'):.3f}; champion "
        f"{f'{champion:.3f}' if champion is not None else 'none'} on the same evaluation days; "
        f"blessed: {value('blessed')}"
    )


def refuse_busy_ports(home: ProjectHome, settings: DemoSettings) -> None:
    """Fail when the story would start its services on ports another platform holds."""
    if running_pid(home.logs, DAGSTER_SERVICE) is not None:
        return  # this home's own services, reused
    ports = (settings.ui_port, settings.mlflow_port, urlsplit(settings.endpoint).port)
    busy = [p for p in ports if p and _listening(p)]
    if busy:
        raise RuntimeError(
            f"port(s) {busy} are in use, by another project home's platform perhaps: stop it "
            "first (`make down`); the drift story needs its own"
        )


def version_served(endpoint: str) -> str:
    """The model version the endpoint serves ("None" when nothing answers)."""
    return str((served(endpoint) or {}).get("model_version"))


@dataclass(frozen=True)
class DriftDays:
    """The story's days and its drift, from the real today."""

    stable: list[date]
    drifted: list[date]
    next_day: date  # yesterday: the day the new champion answers
    today: date  # the day requests are logged on
    drift: Drift

    @classmethod
    def before(cls, today: date, story: DriftStory) -> DriftDays:
        """The stable days, then the drifted days up to the day before yesterday, then yesterday."""
        yesterday = today - timedelta(days=1)
        drift_start = yesterday - timedelta(days=story.drifted_days)
        stable_start = drift_start - timedelta(days=story.stable_days)
        return cls(
            stable=[stable_start + timedelta(days=i) for i in range(story.stable_days)],
            drifted=[drift_start + timedelta(days=i) for i in range(story.drifted_days)],
            next_day=yesterday,
            today=today,
            drift=Drift(drift_start),
        )


@dataclass(frozen=True)
class DriftScenario:
    """The story's steps, on one platform."""

    home: ProjectHome
    settings: DemoSettings
    instance: dg.DagsterInstance
    story: DriftStory
    days: DriftDays

    def run_ids(self) -> set[str]:
        """The runs so far, to tell a step's runs from those before it."""
        return {r.run_id for r in self.instance.get_runs()}

    def land(self, day: date) -> None:
        """Write a day's labelled file into the landing zone."""
        _land(self.home, day, self.story, self.days.drift)

    def requests_of(self, day: date, count: int) -> list[dict]:
        """The first `count` complaints of a day as the endpoint receives them."""
        return _requests_of(day, self.story, self.days.drift, count)

    def settle(self, what: str) -> None:
        """Wait until the platform is quiet (see `wait_quiet`)."""
        wait_quiet(self.instance, self.settings.timeout_s, what)

    def serve(self) -> str:
        """1. The stable days land and the platform serves its first model; its version."""
        stable = self.days.stable
        for day in stable:
            self.land(day)
        print(f"1. serve: landed {len(stable)} stable days {stable[0]}..{stable[-1]}")
        wait_until(
            lambda: self.instance.get_latest_materialization_event(DEPLOYED_MODEL) is not None,
            lambda: f"{len(runs_after(self.instance, set()))} runs launched",
            self.settings.timeout_s,
            "the first served model",
        )
        self.settle("the platform to settle")
        first = version_served(self.settings.endpoint)
        print(f"   version {first} serves; {_evaluation(self.instance)}")
        return first

    def drift_arrives(self) -> None:
        """2. Complaints of the drifted days are answered, then their days land with labels
        (which reach today's live performance within its lookback)."""
        drifted = self.days.drifted
        answered_days = drifted[-(LIVE_LABEL_LOOKBACK_DAYS - 1) :]
        complaints = [
            c for day in answered_days for c in self.requests_of(day, self.story.served_per_day)
        ]
        answered_by = serve_requests(self.settings.endpoint, complaints)
        for day in drifted:
            self.land(day)
        print(
            f"2. drift arrives: version {answered_by} answered {len(complaints)} drifted "
            f"complaints of {answered_days[0]}..{answered_days[-1]}; the {len(drifted)} drifted "
            f"days {drifted[0]}..{drifted[-1]} landed with labels"
        )

    def retrain_on_evidence(self, first: str, known: set[str]) -> str:
        """3..6. input_drift errors, the policy retrains, the blessing decides, the new champion
        is deployed, all by the sensors and automation; the new champion's version."""
        instance = self.instance
        wait_until(
            lambda: version_served(self.settings.endpoint) not in ("None", first),
            lambda: f"{len(runs_after(instance, known))} runs launched since the drift landed",
            self.settings.timeout_s,
            "a retrained champion",
        )
        self.settle("the platform to settle")
        print(f"3. evidence against version {first}, as the monitoring assets recorded it:")
        for line in _evidence(instance, known):
            print(f"   {line}")
        retrains = [
            r
            for r in instance.get_runs()
            if r.run_id not in known and RETRAIN_EVIDENCE_TAG in r.tags
        ]
        for run in retrains:
            print(f"4. retrain: run {run.run_id[:8]}, tagged {RETRAIN_EVIDENCE_TAG}:")
            print(f"   {run.tags[RETRAIN_EVIDENCE_TAG]}")
        if not retrains:
            raise RuntimeError("the champion changed without a run tagged with retrain evidence")
        print(f"5. blessing: {_evaluation(instance)}")
        second = version_served(self.settings.endpoint)
        print(f"6. version {second} is the champion and serves")
        print_runs("   the drift caused", runs_after(instance, known))
        return second

    def recover(self, second: str) -> None:
        """7. The new champion answers the next day's complaints, that day lands, and its drift
        recovers (raises when it does not)."""
        home, next_day, today = self.home, self.days.next_day, self.days.today
        known = self.run_ids()
        complaints = self.requests_of(next_day, self.story.rows_per_day)
        answered_by = serve_requests(self.settings.endpoint, complaints)
        # Answered first, labelled later: the day lands once its requests are ingested (a day
        # landing while its requests' ingestion runs can leave that run's figures without
        # the new labels until the next change of the request day).
        self.settle("the requests to be ingested")
        self.land(next_day)
        self.settle("the platform to settle")
        print(
            f"7. recovery: version {answered_by} answered {len(complaints)} complaints of "
            f"{next_day}, which then landed"
        )
        drifted = self.days.drifted
        print(f"   drifted days: {_drift_summary(home, drifted[0], drifted[-1], 'landed')}")
        print(f"   the next day: {_drift_summary(home, next_day, next_day, 'landed')}")
        print(f"   today's requests: {_drift_summary(home, today, today, 'served')}")
        print(f"   live performance {today}: {_live(home, today)}")
        print_runs("   the next day caused", runs_after(self.instance, known))
        levels = _query(
            home,
            "input_drift",
            f"select level from {WAREHOUSE_SCHEMA}.input_drift where source = 'landed' "
            f"and {DRIFT_DATE_COLUMN} = ?",
            [pd.Timestamp(next_day).to_pydatetime()],
        )
        if levels.empty or "error" in set(levels["level"]):
            raise RuntimeError(
                f"the drift of {next_day} against version {second} did not recover: "
                f"{_drift_summary(home, next_day, next_day, 'landed')}"
            )


def run_drift_demo(home: ProjectHome, settings: DemoSettings, today: date) -> str:
    """The story; returns the last line (`drift demo ok: ...`)."""
    story = DriftStory()
    refuse_busy_ports(home, settings)
    _scenario_env()
    start_services(home, settings)
    with dg.DagsterInstance.from_config(str(home.dagster_home)) as instance:
        scenario = DriftScenario(home, settings, instance, story, DriftDays.before(today, story))
        first = scenario.serve()
        known = scenario.run_ids()
        scenario.drift_arrives()
        second = scenario.retrain_on_evidence(first, known)
        scenario.recover(second)
    return (
        f"drift demo ok: version {second} ({CHAMPION_ALIAS}, retrained on evidence) serving at "
        f"{settings.endpoint}/predict"
    )
