"""`ml-assets materialize`: runs of the data layer over landed days, in worker processes."""

from __future__ import annotations

import functools
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ml_assets.cli.common import QUIET_RUN_CONFIG
from resources.home import ProjectHome

if TYPE_CHECKING:
    import dagster as dg

# What a run reports: its days, success, seconds and run id.
RunReport = tuple[list[str], bool, float, str]


@dataclass(frozen=True)
class DataLayer:
    """The data-layer job and the Dagster instance of a project home (seconds to build)."""

    job: dg.JobDefinition
    instance: dg.DagsterInstance

    def run(self, days: list[str]) -> RunReport:
        """One run of the data layer over consecutive days."""
        from ml_assets.assets.day_ranges import range_tags

        began = time.monotonic()
        result = self.job.execute_in_process(
            tags=range_tags(days),
            instance=self.instance,
            raise_on_error=False,
            run_config=QUIET_RUN_CONFIG,
        )
        return days, result.success, time.monotonic() - began, result.run_id


def build_data_layer(root: str) -> DataLayer:
    """The data layer of the project home at `root`."""
    import dagster as dg

    from ml_assets.definitions import build_definitions

    home = ProjectHome(Path(root))
    return DataLayer(
        build_definitions(home).resolve_job_def("data_layer_job"),
        dg.DagsterInstance.from_config(str(home.dagster_home)),
    )


@functools.cache
def _worker_data_layer(root: str) -> DataLayer:
    """A pool worker's data layer: built once (by the pool's initializer), then runs every chunk."""
    return build_data_layer(root)


def _run_in_worker(root: str, days: list[str]) -> RunReport:
    """A chunk of days, run in a pool worker."""
    return _worker_data_layer(root).run(days)


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


def landed_bytes(home: ProjectHome, days: Sequence[str]) -> dict[str, int]:
    """Bytes of each day's landing files."""
    from ml_assets.ingest.landing import COMPLAINTS_FOLDER
    from resources.landing_zone import LocalLandingZone

    zone = LocalLandingZone(root=str(home.landing), days_folder=COMPLAINTS_FOLDER)
    return {day: sum(f.size for f in zone.files_for_day(day)) for day in days}


def _report(days: list[str], success: bool, seconds: float, run_id: str) -> bool:
    """Print a run's line; whether it succeeded."""
    label = days[0] if len(days) == 1 else f"{days[0]}..{days[-1]} ({len(days)} days)"
    status = "ok" if success else "FAILED"
    click.echo(f"{label}: data layer {status} in {seconds:.1f} s (run {run_id[:8]})")
    return success


def run_in_this_process(home: ProjectHome, chunks: list[list[str]]) -> list[str]:
    """Run the chunks one after the other in this process; the days of failed runs."""
    failed: list[str] = []
    data_layer = build_data_layer(str(home.root))
    with data_layer.instance:
        for chunk in chunks:
            if not _report(*data_layer.run(chunk)):
                failed.extend(chunk)
    return failed


def run_in_workers(home: ProjectHome, chunks: list[list[str]], workers: int) -> list[str]:
    """Run the chunks in `workers` processes; the days of failed runs (or of workers that died)."""
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from multiprocessing import get_context

    # A run computes on one core (Dagster's bookkeeping of each day is Python): runs in
    # parallel processes use the others. Their DuckDB writes take turns on the file's lock.
    click.echo(f"{len(chunks)} runs, {workers} at a time in worker processes")
    failed: list[str] = []
    with ProcessPoolExecutor(
        workers,
        mp_context=get_context("spawn"),  # no fork of a process holding Dagster's threads
        initializer=_worker_data_layer,
        initargs=(str(home.root),),
    ) as pool:
        futures = {pool.submit(_run_in_worker, str(home.root), c): c for c in chunks}
        for future in as_completed(futures):
            days = futures[future]
            try:
                succeeded = _report(*future.result())
            except Exception as exc:  # a worker that died or could not build the job
                click.echo(
                    f"{days[0]}..{days[-1]}: no run result ({type(exc).__name__}: {exc})", err=True
                )
                succeeded = False
            if not succeeded:
                failed.extend(days)
    return failed


def materialize_landed_days(
    home: ProjectHome, start: date | None, end: date | None, parallel: int
) -> int:
    """Materialize the data layer for the landed days in [start, end]; the exit code."""
    from ml_assets.assets.day_ranges import day_chunks
    from ml_assets.ingest.landing import complaints_root
    from ml_assets.instance import init_home
    from ml_assets.partitions import daily_partitions

    init_home(home)
    landed = landed_days(home, start, end)
    days = [d for d in landed if daily_partitions.has_partition_key(d)]
    if outside := sorted(set(landed) - set(days)):
        click.echo(f"skipped landing folders outside the daily partitions: {', '.join(outside)}")
    if not days:
        click.echo(
            f"no landing files under {complaints_root(home.landing)}: run `ml-assets generate` first",
            err=True,
        )
        return 1
    # Consecutive days run together (up to DAYS_PER_RUN a run, and MAX_LANDING_BYTES_PER_RUN of
    # landing files): a run costs seconds to start.
    chunks = day_chunks(days, day_bytes=landed_bytes(home, days))
    workers = min(parallel, len(chunks))
    if workers <= 1:
        failed = run_in_this_process(home, chunks)
    else:
        failed = run_in_workers(home, chunks, workers)
    if failed:
        click.echo(
            f"failed partitions: {', '.join(sorted(failed))} (see the runs in the Dagster UI)",
            err=True,
        )
        return 1
    return 0
