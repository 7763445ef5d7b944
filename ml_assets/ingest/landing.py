"""The landing zone's contract: day folders, content digests, and splitting real exports by day."""

from __future__ import annotations

import csv
import hashlib
import io
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from ml_assets.constants import DATE_FORMAT
from ml_assets.ingest.cfpb_format import (
    LandingFileError,
    canonical_header,
    iter_csv_records,
    parse_cfpb_date,
)
from resources.home import COMPLAINTS_FOLDER, UNROUTABLE_FOLDER


def day_folder(landing_root: Path, day: date) -> Path:
    """The folder of one ingestion day: `<landing>/complaints/YYYY-MM-DD`."""
    return landing_root / COMPLAINTS_FOLDER / day.strftime(DATE_FORMAT)


def landing_digest(files: Iterable[tuple[str, bytes]]) -> str:
    """A content hash of a day's landing files (names and bytes), stable across rewrites."""
    digest = hashlib.sha256()
    for name, data in sorted(files):
        digest.update(name.encode() + b"\0" + hashlib.sha256(data).digest())
    return digest.hexdigest()


def write_atomically(path: Path, data: bytes) -> bool:
    """Write `data` to `path` via a temporary file and rename; False when it already held them."""
    if path.exists() and path.read_bytes() == data:
        # Unchanged content keeps its mtime, so sensors need not even hash it again.
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    # A dot-prefixed temporary name is ignored by readers until the rename makes it whole.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return True


def to_csv_bytes(header: list[str], rows: Iterable[list[str]]) -> bytes:
    """UTF-8 CSV bytes of a header and rows, quoting as the CFPB export does."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue().encode("utf-8")


@dataclass
class LandingReport:
    """What a loader landed: files written per day, and rows it could not route to a day."""

    source: str
    rows_read: int = 0
    rows_by_day: dict[str, int] = field(default_factory=dict)
    files_written: list[Path] = field(default_factory=list)
    files_unchanged: list[Path] = field(default_factory=list)
    unroutable_rows: int = 0
    unroutable_file: Path | None = None

    @property
    def rows_landed(self) -> int:
        return sum(self.rows_by_day.values())


def land_cfpb_export(
    path: Path, landing_root: Path, source: str | None = None, encoding: str = "utf-8-sig"
) -> LandingReport:
    """Split a real CFPB export into daily landing files by `Date received`, losing no row."""
    source = source or path.stem
    try:
        text = path.read_bytes().decode(encoding)
    except UnicodeDecodeError as exc:
        raise LandingFileError(
            f"{path}: cannot be decoded as {encoding} (byte {exc.start}). Pass the file's encoding, "
            "e.g. `ml-assets land-cfpb PATH --encoding latin-1`."
        ) from exc
    records = iter_csv_records(text)
    header_record = next(records, None)
    if header_record is None:
        raise LandingFileError(f"{path}: the file is empty, not even a CSV header.")
    header = header_record.fields
    columns = canonical_header(header, str(path))
    date_index = columns.index("date_received")

    report = LandingReport(source=source)
    by_day: dict[date, list[list[str]]] = {}
    unroutable: list[list[str]] = []
    for record in records:
        report.rows_read += 1
        day = (
            parse_cfpb_date(record.fields[date_index])
            if len(record.fields) == len(header)
            else None
        )
        if day is None:
            # Malformed records and unreadable dates cannot be put in a day; keep them whole.
            unroutable.append([str(record.line), record.text])
        else:
            by_day.setdefault(day, []).append(record.fields)

    for day, rows in sorted(by_day.items()):
        target = day_folder(landing_root, day) / f"{source}.csv"
        changed = write_atomically(target, to_csv_bytes(header, rows))
        (report.files_written if changed else report.files_unchanged).append(target)
        report.rows_by_day[day.strftime(DATE_FORMAT)] = len(rows)
    if unroutable:
        report.unroutable_rows = len(unroutable)
        report.unroutable_file = landing_root / UNROUTABLE_FOLDER / f"{source}.csv"
        write_atomically(
            report.unroutable_file, to_csv_bytes(["source_line", "record"], unroutable)
        )
    return report
