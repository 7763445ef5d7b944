"""`ml-assets demo`: the platform runs itself on synthetic data, and the demo watches and tells.

Starts (or reuses) the Ray head, `dagster dev` and the MLflow UI, lands 60 days, waits while the
landing sensor and declarative automation ingest, train, bless, promote and deploy, asks the
endpoint for a prediction, then lands 3 more days and shows which runs that caused.
"""

import json
import os
import sys
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import requests

from ml_assets.assets.keys import COMPLAINT_FEATURES, DEPLOYED_MODEL
from ml_assets.ingest.landing import complaints_root
from ml_assets.instance import ARROW_MEMORY_POOL_ENV, WORKSPACE_FILE
from ml_assets.jobs import DATA_LAYER_KEYS
from ml_assets.model.tracking import MODEL_NAME
from ml_assets.operations import (
    RunSummary,
    materialized_partitions,
    runs_after,
    wait_quiet,
    wait_until,
)
from ml_assets.serving.auth import bearer_headers
from ml_assets.settings import MLFLOW_PORT, SERVE_PORT, UI_PORT, load_settings
from ml_assets.synthetic.export import generate_landing
from ml_assets.synthetic.labels import pending_label_days
from resources.home import ProjectHome
from resources.local_services import (
    group_pids,
    log_file,
    port_taken,
    rss_bytes,
    running_pid,
    service_argv,
    start_service,
    stop_service,
    wait_http,
)
from resources.mlflow_server import (
    MLFLOW_SERVICE,
    REGISTRY_USER,
    check_store_kept,
    password_file,
    running_server,
    server_argv,
    server_env,
)
from resources.ray_cluster import auth_env, cluster_pids

DAGSTER_SERVICE = "dagster-dev"
# What `ml-assets materialize` starts for its backfill alone (no sensors) when the platform's
# `dagster dev` does not run: its parts as services of their own, so that the daemon starts after
# the backfill exists. It stops them at the end (`ml-assets down` too, if it was killed).
BACKFILL_CODE_SERVICE = "dagster-backfill-code-server"
BACKFILL_WEBSERVER_SERVICE = "dagster-backfill-webserver"
BACKFILL_DAEMON_SERVICE = "dagster-backfill-daemon"
# In the order they stop: nothing launches runs, then nothing reads the code, then the code.
BACKFILL_SERVICES = (BACKFILL_DAEMON_SERVICE, BACKFILL_WEBSERVER_SERVICE, BACKFILL_CODE_SERVICE)
DATA_LAYER = {key.to_user_string() for key in DATA_LAYER_KEYS}
SAMPLE_COMPLAINT = {
    "complaint_id": "demo-1",
    "product": "Mortgage",
    "issue": "Loan servicing, payments, escrow account",
    "state": "CA",
    "zip_code": "94110",
    "company_response": "Closed with explanation",
    "timely_response": "Yes",
    "submitted_via": "Web",
    "consumer_complaint_narrative": "I called five times and it still has not been resolved.",
}


@dataclass(frozen=True)
class DemoSettings:
    """What the demo lands and where its services listen."""

    days: int = 60
    more_days: int = 3
    rows_per_day: int = 400
    seed: int = 7
    defect_rate: float = 0.01
    # As in the real database, a day's dispute labels come out days after its complaints.
    label_delay_days: tuple[int, int] = (1, 4)
    ui_port: int = UI_PORT
    mlflow_port: int = MLFLOW_PORT
    endpoint: str = f"http://127.0.0.1:{SERVE_PORT}"
    timeout_s: float = 1800.0


def service_env(home: ProjectHome) -> dict[str, str]:
    """The environment of the services of a project home."""
    from resources.event_log import EVENT_BATCH_SIZE, EVENT_BATCH_SIZE_ENV

    return {
        # Dagster stores a batch of events in one write on any storage when this is set: the
        # project's SQLite event log sets it itself, dagster-postgres's runs need it from here.
        EVENT_BATCH_SIZE_ENV: str(EVENT_BATCH_SIZE),
        # pyarrow's default pool (mimalloc) keeps what a step freed for the next: a run of the
        # data layer over 45 busy days peaked 0.1 GiB higher with it, in the same time.
        ARROW_MEMORY_POOL_ENV: "system",
        **os.environ,
        "DAGSTER_HOME": str(home.dagster_home),
        "ML_ASSETS_HOME": str(home.root),
        # The run launcher submits runs to the home's Ray cluster with its token (runs on Ray).
        **auth_env(home.ray_token),
    }


def dagster_dev_argv(home: ProjectHome, port: int) -> list[str]:
    """`dagster dev` (webserver, daemon, code server) of a project home on 127.0.0.1:`port`."""
    argv = [str(Path(sys.executable).parent / "dagster"), "dev", "-h", "127.0.0.1", "-p", str(port)]
    # The installed package's code location (init_home writes the workspace from package data).
    return [*argv, "-w", str(home.dagster_home / WORKSPACE_FILE)]


def dagster_webserver(home: ProjectHome, service: str = DAGSTER_SERVICE) -> str | None:
    """The running `dagster dev`'s webserver (its command line's port), or None when none runs."""
    argv = service_argv(home.logs, service)
    if argv is None:
        return None
    return f"http://127.0.0.1:{argv[argv.index('-p') + 1]}"


def launch_registry(home: ProjectHome, port: int) -> None:
    """Start the home's MLflow server, with its authentication, unless it runs.

    An older home's UI without authentication is replaced: the platform's clients only go
    through a server that asks for a login."""
    if running_pid(home.logs, MLFLOW_SERVICE) is not None and "--app-name" not in (
        service_argv(home.logs, MLFLOW_SERVICE) or []
    ):
        stop_service(home.logs, MLFLOW_SERVICE)
    if running_pid(home.logs, MLFLOW_SERVICE) is not None:
        return
    if port_taken(port):
        raise RuntimeError(
            f"127.0.0.1:{port} is taken by a process this home did not start: the platform "
            "would send its MLflow login there. Stop that process, then start again."
        )
    check_store_kept(home)
    env = {**service_env(home), **server_env(home)}
    start_service(home.logs, MLFLOW_SERVICE, server_argv(home, port), env)


def start_registry(home: ProjectHome, port: int) -> str:
    """The home's MLflow server's URL once it answers (started first unless it runs)."""
    launch_registry(home, port)
    log = log_file(home.logs, MLFLOW_SERVICE)
    # /health answers without a login: it shows the server, its auth app included, is up.
    wait_http(f"http://127.0.0.1:{port}/health", 120, log, running_pid(home.logs, MLFLOW_SERVICE))
    url = running_server(home)
    if url is None:
        raise RuntimeError(f"the MLflow server does not listen on 127.0.0.1:{port}; {log}")
    return url


def registry_login_hint(home: ProjectHome) -> str:
    """Where a person finds the MLflow server's login (never the password itself)."""
    return f"user {REGISTRY_USER}, password in {password_file(home)}"


def start_services(home: ProjectHome, settings: DemoSettings) -> None:
    """Start the MLflow server and dagster dev (webserver + daemon) unless already running.

    MLflow first: the code server that `dagster dev` starts reads, when it loads, whether the
    home's tracking server runs, and then sends every run's registry calls through it."""
    start_registry(home, settings.mlflow_port)
    if running_pid(home.logs, DAGSTER_SERVICE) is None:
        argv = dagster_dev_argv(home, settings.ui_port)
        start_service(home.logs, DAGSTER_SERVICE, argv, service_env(home))
    wait_http(
        f"http://127.0.0.1:{settings.ui_port}/server_info",
        180,
        log_file(home.logs, DAGSTER_SERVICE),
    )


def stop_services(home: ProjectHome) -> list[str]:
    """Stop the services this module started (by their process groups); the names stopped."""
    services = (DAGSTER_SERVICE, *BACKFILL_SERVICES, MLFLOW_SERVICE)
    return [name for name in services if stop_service(home.logs, name)]


class MemoryWatch:
    """Resident memory of Dagster, MLflow UI and Ray together; keeps the peak it saw."""

    def __init__(self, home: ProjectHome) -> None:
        self.home = home
        self.peak: dict[str, int] = {"total": 0}

    def sample(self) -> dict[str, int]:
        """Current RSS per service (bytes), updating the peak."""
        now = {"ray": rss_bytes(cluster_pids(self.home.ray_tmp))}
        for name in (DAGSTER_SERVICE, MLFLOW_SERVICE):
            pid = running_pid(self.home.logs, name)
            now[name] = rss_bytes(group_pids(pid)) if pid else 0
        now["total"] = sum(now.values())
        if now["total"] > self.peak["total"]:
            self.peak = now
        return now


def gib(n: int) -> str:
    """Bytes as GiB for a terminal."""
    return f"{n / 2**30:.2f} GiB"


def land(
    home: ProjectHome, start: date, days: int, settings: DemoSettings, as_of: date
) -> list[str]:
    """Write `days` synthetic landing days from `start` as published by `as_of`; the day keys."""
    generate_landing(
        home.landing,
        start,
        days,
        settings.rows_per_day,
        settings.seed,
        defect_rate=settings.defect_rate,
        label_delay_days=settings.label_delay_days,
        as_of=as_of,
    )
    return [(start + timedelta(days=i)).isoformat() for i in range(days)]


def pending_labels(days: list[str], as_of: date, settings: DemoSettings) -> set[str]:
    """The days whose labels are not published by `as_of`."""
    dates = [date.fromisoformat(d) for d in days]
    pending = pending_label_days(dates, as_of, settings.seed, settings.label_delay_days)
    return {day.isoformat() for day in pending}


def served(endpoint: str) -> dict[str, object] | None:
    """The endpoint's health answer, or None when nothing answers."""
    try:
        answer = requests.get(f"{endpoint}/healthz", timeout=5)
    except requests.RequestException:
        return None
    return answer.json() if answer.ok else None


def print_runs(title: str, runs: list[RunSummary]) -> None:
    """The runs a step of the story caused: one line per kind of one-day run, one per other run."""
    print(f"{title}: {len(runs)} run(s)")
    by_kind: dict[tuple[str, tuple[str, ...], str], list[str]] = {}
    for run in runs:
        if run.partition:
            key = (run.status.lower(), run.assets, run.launched_by)
            by_kind.setdefault(key, []).append(run.partition)
        else:
            print(f"  {run.describe()}")
    for (status, assets, launched_by), days in by_kind.items():
        span = days[0] if len(days) == 1 else f"{min(days)}..{max(days)}"
        print(f"  {len(days)} x {status:8} [{span}] {', '.join(assets)} ({launched_by})")


@dataclass(frozen=True)
class Platform:
    """What a demo's steps act on and watch: the project home, the instance, memory."""

    home: ProjectHome
    settings: DemoSettings
    instance: dg.DagsterInstance
    memory: MemoryWatch

    def run_ids(self) -> set[str]:
        """The runs so far, to tell a step's runs from those before it."""
        return {r.run_id for r in self.instance.get_runs()}


def ask_for_a_prediction(endpoint: str) -> None:
    """POST the sample complaint to the endpoint and print its answer."""
    answer = requests.post(
        f"{endpoint}/predict",
        json={"complaints": [SAMPLE_COMPLAINT]},
        headers=bearer_headers(load_settings().token()),
        timeout=60,
    )
    answer.raise_for_status()
    print(f"prediction from {endpoint}/predict: {json.dumps(answer.json())}")
    print(f"company history as of: {feature_snapshot_date(endpoint)} (the online feature store)")


def feature_snapshot_date(endpoint: str) -> str | None:
    """The day of the company history the endpoint serves (its /model)."""
    info = requests.get(
        f"{endpoint}/model", headers=bearer_headers(load_settings().token()), timeout=60
    )
    info.raise_for_status()
    return info.json().get("feature_snapshot_date")


def serve_first_days(platform: Platform, first: date, as_of: date) -> tuple[list[str], set[str]]:
    """Land the first days as published by `as_of` and wait until the platform has ingested,
    trained, blessed, deployed and settled; the days, and those whose labels are pending."""
    home, settings, instance = platform.home, platform.settings, platform.instance
    known = platform.run_ids()
    days = land(home, first, settings.days, settings, as_of)
    pending = pending_labels(days, as_of, settings)
    print(
        f"landed {len(days)} days {days[0]}..{days[-1]} under {complaints_root(home.landing)} "
        f"(labels not published yet for {len(pending)}: {', '.join(sorted(pending))})"
    )
    print("waiting for the landing sensor and automation (ingest, train, bless, deploy) ...")

    def features_done() -> int:
        return len(materialized_partitions(instance, COMPLAINT_FEATURES) & set(days))

    def deployed() -> bool:
        return instance.get_latest_materialization_event(DEPLOYED_MODEL) is not None

    def first_model_served() -> bool:
        platform.memory.sample()  # at every poll, for the peak
        return features_done() == len(days) and deployed()

    wait_until(
        first_model_served,
        lambda: (
            f"{features_done()}/{len(days)} days featurized, "
            f"{len(runs_after(instance, known))} runs launched, "
            f"deployed: {'yes' if deployed() else 'not yet'}"
        ),
        settings.timeout_s,
        "the first served model",
    )
    wait_quiet(instance, settings.timeout_s, "the platform to settle", platform.memory.sample)
    print_runs(f"the first {len(days)} days caused", runs_after(instance, known))
    return days, pending


def land_more_days(
    platform: Platform, first: date, today: date, days: list[str], pending: set[str]
) -> list[RunSummary]:
    """Land the next days as published `today`, which republishes the earlier days whose labels
    came out since; the runs that caused, having checked that no other day ran."""
    home, settings, instance = platform.home, platform.settings, platform.instance
    known = platform.run_ids()
    all_days = land(home, first, settings.days + settings.more_days, settings, today)
    new_days = all_days[settings.days :]
    labelled_late = sorted(pending - pending_labels(days, today, settings))
    print(
        f"landed {len(new_days)} more days {new_days[0]}..{new_days[-1]}, and again the "
        f"{len(labelled_late)} earlier day(s) whose labels came out since: "
        f"{', '.join(labelled_late) or 'none'}"
    )
    wait_quiet(instance, settings.timeout_s, "the new days", platform.memory.sample)
    later = runs_after(instance, known)
    print_runs("the new days and the late labels caused", later)
    # Landing days: runs of the data layer (monitoring runs are by request day).
    partitions = sorted({day for r in later if DATA_LAYER & set(r.assets) for day in r.days})
    expected = set(new_days) | set(labelled_late)
    print(f"partitions that ran: {partitions or 'none (the files were already ingested)'}")
    if set(partitions) - expected:
        raise RuntimeError(
            f"partitions other than the new days and the late labels ran: "
            f"{sorted(set(partitions) - expected)}"
        )
    return later


def print_memory_and_addresses(memory: MemoryWatch, settings: DemoSettings) -> None:
    """The services' memory now and at its peak, and where to look next."""
    now = memory.sample()
    print(
        f"memory now: {gib(now['total'])} (Ray {gib(now['ray'])}, dagster dev "
        f"{gib(now[DAGSTER_SERVICE])}, MLflow UI {gib(now[MLFLOW_SERVICE])}); peak seen "
        f"{gib(memory.peak['total'])} (Ray {gib(memory.peak['ray'])}, dagster dev "
        f"{gib(memory.peak[DAGSTER_SERVICE])}, MLflow UI {gib(memory.peak[MLFLOW_SERVICE])})"
    )
    print(f"Dagster UI: http://127.0.0.1:{settings.ui_port}")
    print(
        f"MLflow UI:  http://127.0.0.1:{settings.mlflow_port} ({registry_login_hint(memory.home)})"
    )
    print(f"Endpoint:   {settings.endpoint}/predict (OpenAPI at {settings.endpoint}/docs)")
    print("Stop everything: make down (ml-assets down)")


def run_demo(home: ProjectHome, settings: DemoSettings, yesterday: date) -> str:
    """The story; returns the last line (`demo ok: ...`)."""
    start_services(home, settings)
    memory = MemoryWatch(home)
    first = yesterday - timedelta(days=settings.days + settings.more_days - 1)
    more = yesterday - timedelta(days=settings.more_days - 1)
    with dg.DagsterInstance.from_config(str(home.dagster_home)) as instance:
        platform = Platform(home, settings, instance, memory)
        # The first days land as published the day after the last of them; the later ones as
        # published today, when the labels of some earlier days have come out too.
        days, pending = serve_first_days(platform, first, as_of=more)
        health = served(settings.endpoint)
        if not health or not health.get("model_loaded"):
            raise RuntimeError(f"nothing serves at {settings.endpoint} after deployment: {health}")
        before = str(health["model_version"])
        ask_for_a_prediction(settings.endpoint)
        later = land_more_days(platform, first, yesterday + timedelta(days=1), days, pending)
        retrained = any("dispute_model" in r.assets for r in later)
        version = str((served(settings.endpoint) or {}).get("model_version"))
        print(
            f"retrained: {'yes' if retrained else 'no (the policy waits for more new days)'}; "
            f"serving version {version} (before: {before}); company history as of "
            f"{feature_snapshot_date(settings.endpoint)}"
        )
    print_memory_and_addresses(memory, settings)
    return f"demo ok: model {MODEL_NAME} version {version} serving at {settings.endpoint}/predict"
