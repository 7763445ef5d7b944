"""`ml-assets materialize`: a Dagster asset backfill of the data layer over the landed days.

The backfill is the one the Dagster UI's "Materialize" launches over a range of partitions: the
daemon splits it into runs of up to DAYS_PER_RUN consecutive days (the assets' BackfillPolicy)
and launches them under the instance's run queue and concurrency pools. It goes through the
platform's `dagster dev` when that runs (`ml-assets up`); otherwise this command starts what
`dagster dev` runs (code server, webserver, daemon) for the backfill and stops it at the end.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ml_assets.cli.common import QUIET_RUN_CONFIG
from resources.home import ProjectHome

if TYPE_CHECKING:
    from ml_assets.backfill import BackfillState

# Seconds between two readings of the backfill's runs.
POLL_S = 3.0
# Each of Dagster's services answers within seconds here; a loaded machine takes far longer.
DAGSTER_START_TIMEOUT_S = 240.0


@dataclass(frozen=True)
class Daemon:
    """The daemon of a Dagster this command starts: its service name, command and environment."""

    service: str
    argv: list[str]
    env: dict[str, str]

    def start(self, home: ProjectHome) -> None:
        """Start it; its backfill loop plans and closes backfills at once, then every 30 s."""
        from resources.local_services import start_service

        start_service(home.logs, self.service, self.argv, self.env)

    def restart(self, home: ProjectHome) -> None:
        """Stop it and start it again, so that its backfill loop runs now."""
        from resources.local_services import stop_service

        stop_service(home.logs, self.service)
        self.start(home)


@dataclass
class Dagster:
    """The Dagster a backfill goes through: its webserver, and the services that run it."""

    url: str
    services: list[str]
    # The daemon of a Dagster started here, which this command starts and restarts. Dagster's
    # backfill loop runs when the daemon starts, then every 30 s (DEFAULT_DAEMON_INTERVAL_SECONDS,
    # which no setting changes): it starts once the backfill exists, rather than leaving it
    # waiting for the next loop, and again once every day is decided, to close it then.
    daemon: Daemon | None = None
    restarted: bool = False

    @property
    def started(self) -> bool:
        """Started by this command, which stops it at the end (the platform's runs its own daemon)."""
        return self.daemon is not None

    def check_running(self, home: ProjectHome) -> None:
        """Raise with its log's tail when one of its services no longer runs."""
        from ml_assets.backfill import BackfillError
        from resources.local_services import log_file, log_tail, running_pid

        for service in self.services:
            if running_pid(home.logs, service) is None:
                log = log_file(home.logs, service)
                raise BackfillError(f"{service} has ended; {log}:\n{log_tail(log)}")

    def launched(self, home: ProjectHome) -> None:
        """The backfill exists: start the daemon if this command runs it."""
        if self.daemon is not None:
            self.daemon.start(home)
            self.services.append(self.daemon.service)

    def decided(self, home: ProjectHome) -> None:
        """Every day is decided: have the daemon close the backfill now, if this command runs it."""
        if self.daemon is not None and not self.restarted:
            self.daemon.restart(home)
            self.restarted = True


def landed_days(home: ProjectHome, start: date | None, end: date | None) -> list[str]:
    """Day folders in the landing zone, optionally within [start, end]."""
    from ml_assets.ingest.landing import DATE_FORMAT, complaints_root
    from resources.landing_zone import is_day_folder

    root = complaints_root(home.landing)
    days = (
        sorted(p.name for p in root.iterdir() if p.is_dir() and is_day_folder(p.name))
        if root.is_dir()
        else []
    )
    low = start.strftime(DATE_FORMAT) if start else ""
    high = end.strftime(DATE_FORMAT) if end else "9999"
    return [d for d in days if low <= d <= high]


def partition_days(home: ProjectHome, start: date | None, end: date | None) -> list[str]:
    """The landed days in [start, end] that are daily partitions; says which were skipped."""
    from ml_assets.partitions import daily_partitions

    landed = landed_days(home, start, end)
    days = [d for d in landed if daily_partitions.has_partition_key(d)]
    if outside := sorted(set(landed) - set(days)):
        click.echo(f"skipped landing folders outside the daily partitions: {', '.join(outside)}")
    return days


@contextmanager
def dagster_for_backfill(home: ProjectHome, work: str = "backfill") -> Iterator[Dagster]:
    """The platform's running `dagster dev` (`ml-assets up`), else a Dagster started for the
    backfill (or the `work` named, e.g. a training run) and stopped afterwards.

    The one started here is what `dagster dev` runs, as separate services: a code server, the
    webserver on it, and, once the backfill is launched, the daemon. It has no sensors
    (`ML_ASSETS_SENSORS=false`): the landing sensor would request runs of the same days beside
    the backfill, and automation would train. Left running it would be a platform without its
    sensors, so it stops when the backfill ends and the machine is as it was; start the
    platform first (`ml-assets up`) to save its start-up.
    """
    from ml_assets.backfill import BackfillError
    from ml_assets.demo import (
        BACKFILL_CODE_SERVICE,
        BACKFILL_DAEMON_SERVICE,
        BACKFILL_SERVICES,
        BACKFILL_WEBSERVER_SERVICE,
        DAGSTER_SERVICE,
        dagster_webserver,
        service_env,
    )
    from ml_assets.instance import code_location, code_server_workspace
    from ml_assets.settings import Settings
    from resources.local_services import (
        free_port,
        log_file,
        running_pid,
        start_service,
        stop_service,
        wait_http,
        wait_port,
    )

    if running := [s for s in BACKFILL_SERVICES if running_pid(home.logs, s) is not None]:
        raise BackfillError(
            f"another `ml-assets materialize` has its Dagster running on this home "
            f"({', '.join(running)}); wait for it, or stop it with `ml-assets down` if it was killed"
        )
    if url := dagster_webserver(home, DAGSTER_SERVICE):
        click.echo(f"{work} through the running dagster dev at {url}")
        yield Dagster(url, [DAGSTER_SERVICE])
        return
    bin_dir = Path(sys.executable).parent
    env = {**service_env(home), Settings.env_name("sensors"): "false"}
    location = code_location()
    code_port = free_port()
    workspace = home.dagster_home / "backfill-workspace.yaml"
    workspace.write_text(code_server_workspace(location, code_port))
    ui_port = free_port()
    url = f"http://127.0.0.1:{ui_port}"

    daemon_argv = [str(bin_dir / "dagster-daemon"), "run", "-w", str(workspace)]
    daemon = Daemon(BACKFILL_DAEMON_SERVICE, daemon_argv, env)
    click.echo(
        f"starting Dagster for this {work}, without sensors (UI {url}, logs {home.logs}); "
        f"it stops when the {work} ends (`ml-assets up` first keeps one running)"
    )
    try:
        try:
            argv = [str(bin_dir / "dagster"), "code-server", "start", "-h", "127.0.0.1"]
            argv += ["-p", str(code_port), "-m", location.module, "--location-name", location.name]
            pgid = start_service(home.logs, BACKFILL_CODE_SERVICE, argv, env)
            # The code server listens once it has loaded the code: the webserver then finds it.
            log = log_file(home.logs, BACKFILL_CODE_SERVICE)
            wait_port(code_port, DAGSTER_START_TIMEOUT_S, log, pgid=pgid)
            argv = [str(bin_dir / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(ui_port)]
            argv += ["-w", str(workspace)]
            pgid = start_service(home.logs, BACKFILL_WEBSERVER_SERVICE, argv, env)
            log = log_file(home.logs, BACKFILL_WEBSERVER_SERVICE)
            wait_http(f"{url}/server_info", DAGSTER_START_TIMEOUT_S, log, pgid=pgid)
        except (RuntimeError, TimeoutError) as exc:  # it ended, or never answered: its log says why
            raise BackfillError(f"Dagster did not start: {exc}") from exc
        services = [BACKFILL_CODE_SERVICE, BACKFILL_WEBSERVER_SERVICE]
        yield Dagster(url, services, daemon=daemon)
    finally:
        stopped = [s for s in BACKFILL_SERVICES if stop_service(home.logs, s)]
        workspace.unlink(missing_ok=True)
        click.echo(f"stopped what this command started: {', '.join(stopped)}")


def wait_for_code_location(home: ProjectHome, dagster: Dagster) -> None:
    """Wait until the webserver has loaded the code location; raise with its error if it failed."""
    from ml_assets.backfill import CODE_LOCATIONS, BackfillError, code_locations_loaded, graphql

    deadline = time.monotonic() + DAGSTER_START_TIMEOUT_S
    while not code_locations_loaded(graphql(dagster.url, CODE_LOCATIONS)):
        dagster.check_running(home)
        if time.monotonic() > deadline:
            raise BackfillError(
                f"the webserver did not load the code location within "
                f"{DAGSTER_START_TIMEOUT_S:.0f} s; see the logs of {', '.join(dagster.services)} "
                f"under {home.logs}"
            )
        time.sleep(1)


def follow(home: ProjectHome, dagster: Dagster, backfill_id: str, days: list[str]) -> BackfillState:
    """Follow the backfill until every day is decided: a line per finished run, a progress bar
    on a terminal (days done of total, rate, time left). A Dagster started for the backfill is
    followed until its daemon has also closed the backfill, so that none stays open after it
    (it runs no daemon once this command ends)."""
    from tqdm import tqdm

    from ml_assets.backfill import read_backfill

    shown: set[str] = set()
    # disable=None: no bar when stderr is not a terminal (CI logs, tests); the lines remain.
    with tqdm(total=len(days), unit="day", desc=f"backfill {backfill_id}", disable=None) as bar:
        while True:
            dagster.check_running(home)
            state = read_backfill(dagster.url, backfill_id)
            for run in state.runs:
                if run.final and run.run_id not in shown:
                    shown.add(run.run_id)
                    tqdm.write(run.line())
            bar.update(state.done(days) - bar.n)
            if state.over(days) and (state.closed or not dagster.started):
                bar.set_postfix_str(state.status.lower())
                return state
            if state.over(days):
                dagster.decided(home)
            # The daemon plans a backfill, and closes it, on its loop: every 30 s.
            waiting = "closing" if state.over(days) else state.status.lower()
            bar.set_postfix_str(state.runs_by_status() or waiting)
            time.sleep(POLL_S)


def report(home: ProjectHome, days: Sequence[str], state: BackfillState) -> int:
    """The failed days and what failed in their runs, on stderr; the exit code."""
    import dagster as dg

    from ml_assets.backfill import day_spans
    from ml_assets.operations import step_failures

    failed = state.failed(days)
    if not failed:
        return 0
    click.echo(f"failed partitions: {day_spans(failed)} (see the runs in the Dagster UI)", err=True)
    if state.error:
        click.echo(f"  the backfill: {state.error}", err=True)
    with dg.DagsterInstance.from_config(str(home.dagster_home)) as instance:
        for run in state.runs:
            if run.final and run.status != "SUCCESS":
                for failure in step_failures(instance, run.run_id) or [run.status.lower()]:
                    click.echo(
                        f"  run {run.run_id[:8]} [{day_spans(run.days)}] {failure}", err=True
                    )
    return 1


def run_backfill(
    home: ProjectHome, dagster: Dagster, days: list[str]
) -> tuple[str, BackfillState, float]:
    """Launch the data layer's backfill of `days` and follow it; its id, end state and seconds."""
    from ml_assets.backfill import launch_backfill, launch_params
    from ml_assets.jobs import DATA_LAYER_KEYS

    wait_for_code_location(home, dagster)
    title = f"ml-assets materialize {days[0]}..{days[-1]}"
    # Step events go to the instance (and the UI); the run workers' console logs warnings only.
    params = launch_params(DATA_LAYER_KEYS, days, title, QUIET_RUN_CONFIG)
    backfill_id = launch_backfill(dagster.url, params)
    dagster.launched(home)
    began = time.monotonic()
    click.echo(f"backfill {backfill_id}: {len(days)} landed days {days[0]}..{days[-1]}")
    try:
        state = follow(home, dagster, backfill_id, days)
    except KeyboardInterrupt:
        click.echo(
            f"interrupted: backfill {backfill_id} stays requested; the daemon goes on with it "
            "whenever Dagster runs (`ml-assets up`), or cancel it in the UI",
            err=True,
        )
        raise
    return backfill_id, state, time.monotonic() - began


def materialize_landed_days(home: ProjectHome, start: date | None, end: date | None) -> int:
    """Backfill the data layer for the landed days in [start, end]; the exit code."""
    from ml_assets.backfill import BackfillError, summary
    from ml_assets.ingest.landing import complaints_root
    from ml_assets.instance import init_home

    init_home(home)
    days = partition_days(home, start, end)
    if not days:
        click.echo(
            f"no landing files under {complaints_root(home.landing)}: run `ml-assets generate` first",
            err=True,
        )
        return 1
    try:
        with dagster_for_backfill(home) as dagster:
            backfill_id, state, seconds = run_backfill(home, dagster, days)
    except BackfillError as exc:
        click.echo(f"error: {exc}", err=True)
        return 1
    click.echo(summary(backfill_id, days, state, seconds))
    return report(home, days, state)
