"""`ml-assets demo --scenario challenger`: a challenger earns the champion's place on live traffic.

The drift story's world (`demo_drift`), with the platform promoting on live evidence: a model is
trained on stable days and served; complaints drift and the retraining policy trains a
challenger on the new days; blessed offline, it does not replace the champion but enters shadow
beside it; the next day's complaints are answered by the champion and scored by the challenger
too; their labels land; `live_promotion` compares both versions on the same labelled requests
and promotes the challenger (or retires it, saying why); the endpoint moves to the new champion
while a client keeps sending, and no request fails.
"""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date

import dagster as dg
import requests

from ml_assets.assets.keys import DECISION_METADATA, LIVE_PROMOTION
from ml_assets.demo import DemoSettings, print_runs, served, start_services
from ml_assets.demo_drift import (
    SCENARIO_ENV,
    DriftDays,
    DriftScenario,
    DriftStory,
    refuse_busy_ports,
    serve_requests,
    version_served,
)
from ml_assets.operations import runs_after, wait_until
from ml_assets.serving.auth import bearer_headers
from ml_assets.settings import load_settings
from resources.home import ProjectHome

PAUSE_S = 0.05  # between the steady client's requests: about 20 a second, as a user might
CHALLENGER_ENV = {
    **SCENARIO_ENV,
    "ML_ASSETS_CHALLENGER_MODE": "shadow",
    "ML_ASSETS_PROMOTE_ON_LIVE_EVIDENCE": "true",
}


@dataclass
class SteadyClient:
    """Sends one complaint after another until stopped, cycling through `complaints` under ids
    of its own (traffic like the day's, not one complaint repeated, which input_drift would
    rightly call drift): how many answers, and which failed."""

    endpoint: str
    complaints: list[dict]
    answered: int = 0
    failed: list[str] = field(default_factory=list)
    versions: set[str] = field(default_factory=set)
    _stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        headers = bearer_headers(load_settings().token())
        for n in itertools.count():
            if self._stop.is_set():
                return
            complaint = {**self.complaints[n % len(self.complaints)], "complaint_id": f"steady-{n}"}
            try:
                answer = requests.post(
                    f"{self.endpoint}/predict",
                    json={"complaints": [complaint]},
                    headers=headers,
                    timeout=30,
                )
                if answer.ok:
                    self.versions.add(str(answer.json()["model_version"]))
                else:
                    self.failed.append(f"HTTP {answer.status_code}")
            except requests.RequestException as exc:
                self.failed.append(str(exc))
            self.answered += 1
            self._stop.wait(PAUSE_S)

    @contextmanager
    def sending(self) -> Iterator[SteadyClient]:
        thread = threading.Thread(target=self.run, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            thread.join(timeout=60)


def _challenger(endpoint: str) -> dict | None:
    """The challenger /model describes (None: none)."""
    answer = requests.get(
        f"{endpoint}/model", headers=bearer_headers(load_settings().token()), timeout=10
    )
    return answer.json().get("challenger") if answer.ok else None


def _latest_promotion(instance: dg.DagsterInstance) -> dict[str, object]:
    event = instance.get_latest_materialization_event(LIVE_PROMOTION)
    meta = event.asset_materialization.metadata if event and event.asset_materialization else {}
    return {k: v.value for k, v in meta.items()}


@dataclass(frozen=True)
class ChallengerScenario:
    """The story's steps, on the drift story's platform."""

    drift: DriftScenario

    def enters_shadow(self, first: str) -> str:
        """2..3. Drift arrives; the challenger trained on it serves in shadow; its version."""
        drift, endpoint = self.drift, self.drift.settings.endpoint
        known = drift.run_ids()
        drift.drift_arrives()
        wait_until(
            lambda: _challenger(endpoint) is not None,
            lambda: f"{len(runs_after(drift.instance, known))} runs launched since the drift",
            drift.settings.timeout_s,
            "a challenger in shadow",
        )
        drift.settle("the platform to settle")
        challenger = _challenger(endpoint) or {}
        version = str(challenger.get("model_version"))
        print(
            f"3. challenger: version {version} trained on the drifted days, blessed offline, "
            f"serves in {challenger.get('mode')} beside champion {first} (/model shows it)"
        )
        print_runs("   the drift caused", runs_after(drift.instance, known))
        return version

    def earns_its_place(self, first: str, challenger: str) -> str:
        """4..6. The next day is answered (and shadowed), its labels land, live_promotion
        decides; the champion changes under a steady client. The decision's outcome."""
        drift, endpoint = self.drift, self.drift.settings.endpoint
        next_day = drift.days.next_day
        complaints = drift.requests_of(next_day, drift.story.rows_per_day)
        answered_by = serve_requests(endpoint, complaints)
        drift.settle("the requests to be ingested")
        print(
            f"4. live traffic: version {answered_by} answered {len(complaints)} complaints of "
            f"{next_day}; version {challenger} scored each of them in shadow"
        )
        known = drift.run_ids()
        client = SteadyClient(endpoint, complaints)
        with client.sending():
            drift.land(next_day)
            wait_until(
                lambda: (
                    _latest_promotion(drift.instance).get(DECISION_METADATA)
                    in ("promote", "retire")
                ),
                lambda: f"{len(runs_after(drift.instance, known))} runs launched since the labels",
                drift.settings.timeout_s,
                "live_promotion's decision",
            )
            decision = _latest_promotion(drift.instance)
            if decision[DECISION_METADATA] == "promote":
                wait_until(
                    lambda: version_served(endpoint) == challenger,
                    lambda: f"serving {version_served(endpoint)}",
                    drift.settings.timeout_s,
                    f"version {challenger} serving",
                )
        # Settled once the client stopped: its requests keep the intraday ingestion busy.
        drift.settle("the platform to settle")
        print(f"5. labels landed for {next_day}; live_promotion: {decision['outcome']}")
        for line in str(decision.get("conditions", "")).splitlines():
            print(f"   {line}")
        print(
            f"6. champion {version_served(endpoint)} serves; a client sent {client.answered} "
            f"requests meanwhile, answered by {sorted(client.versions)}: "
            f"{len(client.failed)} failed"
        )
        print_runs("   the labels caused", runs_after(drift.instance, known))
        if client.failed:
            raise RuntimeError(f"requests failed while the champion changed: {client.failed[:3]}")
        return str(decision["outcome"])


def run_challenger_demo(home: ProjectHome, settings: DemoSettings, today: date) -> str:
    """The story; returns the last line (`challenger demo ok: ...`)."""
    story = DriftStory()
    refuse_busy_ports(home, settings)
    os.environ.update(CHALLENGER_ENV)
    start_services(home, settings)
    with dg.DagsterInstance.from_config(str(home.dagster_home)) as instance:
        drift = DriftScenario(home, settings, instance, story, DriftDays.before(today, story))
        first = drift.serve()
        challenger = ChallengerScenario(drift).enters_shadow(first)
        outcome = ChallengerScenario(drift).earns_its_place(first, challenger)
    now = (served(settings.endpoint) or {}).get("model_version")
    return f"challenger demo ok: {outcome}; version {now} serving at {settings.endpoint}/predict"
