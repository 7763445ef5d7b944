"""The synthetic world written in the official CFPB format: landing days, full-history exports.

An export is plain CSV, or zipped or gzipped as the CFPB ships it.
"""

from __future__ import annotations

import csv
import gzip
import io
import multiprocessing
import os
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import IO, Any

from ml_assets.ingest.cfpb_vocabulary import OFFICIAL_HEADER
from ml_assets.ingest.landing import day_folder, write_atomically
from ml_assets.synthetic.defects import apply_defects, truncated
from ml_assets.synthetic.drift import Drift
from ml_assets.synthetic.labels import PENDING_LABEL, UNLABELLED, labels_published
from ml_assets.synthetic.narratives import DEFAULT_SIGNAL, NarrativeSignal
from ml_assets.synthetic.profile import Profile, default_profile
from ml_assets.synthetic.records import ID_EPOCH, IDS_PER_DAY, day_rng, sample_records
from ml_assets.synthetic.samplers import Model, compile_model
from ml_assets.synthetic.volume import rows_by_day, rows_for_day

LANDING_FILE_NAME = "synthetic.csv"
# Days of an export are generated in chunks of about this many rows: few tasks, little text held
# per task.
EXPORT_CHUNK_ROWS = 20_000


def csv_line(fields: Sequence[str]) -> str:
    """One CSV line (QUOTE_MINIMAL, '\\n' line end)."""
    buffer = io.StringIO()
    csv.writer(buffer, quoting=csv.QUOTE_MINIMAL, lineterminator="\n").writerow(fields)
    return buffer.getvalue()


def _check_day(day: date, rows: int, defect_rate: float) -> None:
    """Refuse rows beyond a day's id block, a defect rate outside [0, 1], a day before ID_EPOCH."""
    if not 0 <= rows < IDS_PER_DAY:
        raise ValueError(f"rows must be in [0, {IDS_PER_DAY}), got {rows} on {day.isoformat()}")
    if not 0.0 <= defect_rate <= 1.0:
        raise ValueError(f"defect_rate must be in [0, 1], got {defect_rate}")
    if day < ID_EPOCH:
        raise ValueError(f"day must be on or after {ID_EPOCH.isoformat()}, got {day.isoformat()}")


def day_lines(
    day: date,
    rows: int,
    seed: int,
    defect_rate: float,
    model: Model,
    signal: NarrativeSignal,
    label: bool = True,
    last_of_file: bool = True,
    unlabelled: str = UNLABELLED,
    drift: Drift | None = None,
) -> list[str]:
    """One day's CSV records (no header).

    Without `label` the dispute field reads `unlabelled`: "N/A", as in the real database after
    April 2017, or PENDING_LABEL before a day's labels are published. A truncation defect only
    cuts the day's last record when it is the last of the file: a cut mid-file would merge two
    records.
    """
    _check_day(day, rows, defect_rate)
    rng = day_rng(seed, day)
    records = sample_records(rng, day, rows, model, signal, drift)
    cut_last = apply_defects(rng, records, defect_rate, day)
    if not label:
        for record in records:
            record["Consumer disputed?"] = unlabelled
    lines = [csv_line([r[name] for name in OFFICIAL_HEADER]) for r in records]
    if cut_last and lines and last_of_file:
        lines[-1] = truncated(rng, lines[-1])
    return lines


def generate_day(
    day: date,
    rows: int,
    seed: int,
    defect_rate: float = 0.0,
    profile: Profile | None = None,
    signal: NarrativeSignal = DEFAULT_SIGNAL,
    labelled: bool = True,
    drift: Drift | None = None,
) -> str:
    """The CSV text of one day's landing file in the official CFPB export format.

    Without `labelled`, the day as first published: every dispute field still empty.
    """
    _check_day(day, rows, defect_rate)
    model = compile_model(profile if profile is not None else default_profile())
    return csv_line(OFFICIAL_HEADER) + "".join(
        day_lines(
            day,
            rows,
            seed,
            defect_rate,
            model,
            signal,
            labelled,
            unlabelled=PENDING_LABEL,
            drift=drift,
        )
    )


def generate_landing(
    landing_root: Path,
    start: date,
    days: int,
    rows_per_day: int,
    seed: int,
    defect_rate: float = 0.0,
    profile: Profile | None = None,
    signal: NarrativeSignal = DEFAULT_SIGNAL,
    label_delay_days: tuple[int, int] | None = None,
    as_of: date | None = None,
    drift: Drift | None = None,
) -> list[Path]:
    """Write `days` daily synthetic files from `start` under landing_root; returns their paths.

    With `label_delay_days`, a day's dispute labels are published that many days after it (drawn
    per day): a day whose labels are not out by `as_of` is written without them. Writing the
    same days again later lands the days whose labels came out since as changed files.
    """
    if label_delay_days is not None and as_of is None:
        raise ValueError("label_delay_days needs as_of, the day the landing happens")
    chosen = profile if profile is not None else default_profile()
    paths: list[Path] = []
    for offset in range(days):
        day = start + timedelta(days=offset)
        labelled = labels_published(day, as_of or day, seed, label_delay_days)
        text = generate_day(
            day,
            rows_for_day(day, rows_per_day),
            seed,
            defect_rate,
            chosen,
            signal,
            labelled,
            drift,
        )
        path = day_folder(landing_root, day) / LANDING_FILE_NAME
        write_atomically(path, text.encode("utf-8"))
        paths.append(path)
    return paths


@dataclass(frozen=True)
class ExportSummary:
    """What `generate_export` wrote."""

    path: Path
    rows: int
    days: int
    first_day: date
    last_day: date
    busiest_day_rows: int
    labelled_until: date | None


@contextmanager
def _export_text(path: Path, name: str) -> Iterator[IO[str]]:
    """A text stream into `path` for the export `name`, by its suffix.

    Plain CSV, `.zip` (one CSV inside, as the CFPB ships it) or `.gz`.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    if name.endswith(".zip"):
        member = name.removesuffix(".zip")
        member = member if member.endswith(".csv") else f"{member}.csv"
        with (
            zipfile.ZipFile(
                path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1
            ) as archive,
            archive.open(member, "w", force_zip64=True) as raw,
            io.TextIOWrapper(raw, encoding="utf-8", newline="") as text,
        ):
            yield text
    elif name.endswith(".gz"):
        with gzip.open(path, "wt", encoding="utf-8", newline="", compresslevel=1) as text:
            yield text
    else:
        with path.open("w", encoding="utf-8", newline="") as text:
            yield text


# A day of an export: the day, its rows, whether it is labelled, whether it ends the file.
ExportTask = tuple[date, int, bool, bool]
# State of an export's worker processes: the compiled model and options (set once per worker).
_WORKER: dict[str, Any] = {}


def _init_export_worker(options: dict[str, Any]) -> None:
    """Compile the model once per worker process, beside the export's options."""
    _WORKER.update(options, model=compile_model(options["profile"]))


def _export_days(plan: list[ExportTask]) -> str:
    """The CSV text of consecutive days of an export (worker side)."""
    w = _WORKER
    return "".join(
        "".join(
            day_lines(day, n, w["seed"], w["defect_rate"], w["model"], w["signal"], label, last)
        )
        for day, n, label, last in plan
    )


def _export_chunks(
    plan: list[tuple[date, int]], labels_until: date | None
) -> list[list[ExportTask]]:
    """The export's days as tasks, in consecutive chunks of about EXPORT_CHUNK_ROWS rows."""
    tasks = [
        (day, n, labels_until is None or day <= labels_until, i == len(plan) - 1)
        for i, (day, n) in enumerate(plan)
    ]
    chunks: list[list[ExportTask]] = [[]]
    chunk_rows = 0
    for task in tasks:
        if chunk_rows >= EXPORT_CHUNK_ROWS:
            chunks.append([])
            chunk_rows = 0
        chunks[-1].append(task)
        chunk_rows += task[1]
    return chunks


def generate_export(
    path: Path,
    rows: int,
    start: date,
    end: date,
    seed: int,
    defect_rate: float = 0.0,
    profile: Profile | None = None,
    signal: NarrativeSignal = DEFAULT_SIGNAL,
    labels_until: date | None = None,
    workers: int = 1,
) -> ExportSummary:
    """One file in the official export format with `rows` complaints received from start to end.

    Streams a few days at a time, so memory does not grow with `rows`; `workers` processes
    generate days in parallel (each day has its own seed, so the bytes do not depend on them).
    Each day's records are those `generate_day` writes for that day's row count, except that only
    the export's last record can be truncated. Days after `labels_until` carry no dispute label
    ("N/A").
    """
    chosen = profile if profile is not None else default_profile()
    plan = rows_by_day(start, end, rows)
    busiest = max(n for _, n in plan)
    if busiest >= IDS_PER_DAY:
        raise ValueError(
            f"{rows} rows over {start}..{end} put {busiest} on one day, more than the generator's "
            f"{IDS_PER_DAY - 1}: ask for fewer rows or a longer period"
        )
    chunks = _export_chunks(plan, labels_until)
    options = {"profile": chosen, "seed": seed, "defect_rate": defect_rate, "signal": signal}
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with _export_text(tmp, path.name) as out:
            out.write(csv_line(OFFICIAL_HEADER))
            if workers <= 1:
                _init_export_worker(options)
                texts: Iterable[str] = map(_export_days, chunks)
                out.writelines(texts)
            else:
                # Spawned, not forked: the caller may have threads (a Dagster step, a test run).
                with ProcessPoolExecutor(
                    workers,
                    mp_context=multiprocessing.get_context("spawn"),
                    initializer=_init_export_worker,
                    initargs=(options,),
                ) as pool:
                    out.writelines(pool.map(_export_days, chunks))
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return ExportSummary(path, rows, len(plan), start, end, busiest, labels_until)
