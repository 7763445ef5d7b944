"""The landing zone's contract: day folders, content digests, and splitting real exports by day."""

from __future__ import annotations

import csv
import hashlib
import io
import os
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from ml_assets.constants import DATE_FORMAT, OFFICIAL_TO_CANONICAL
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


# Official header name of the complaint id (the column a landed export without ids gets).
_OFFICIAL_ID_COLUMN = next(k for k, v in OFFICIAL_TO_CANONICAL.items() if v == "complaint_id")


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
    # Days landed that the given partitions do not cover (their rows wait until they do).
    days_outside_partitions: list[str] = field(default_factory=list)

    @property
    def rows_landed(self) -> int:
        return sum(self.rows_by_day.values())


def id_column_for(header: list[str]) -> str:
    """The complaint id column to add to a header without one, in the header's own style."""
    official = any(name.strip() in OFFICIAL_TO_CANONICAL for name in header)
    return _OFFICIAL_ID_COLUMN if official else "complaint_id"


def land_cfpb_export(
    path: Path,
    landing_root: Path,
    source: str | None = None,
    encoding: str = "utf-8-sig",
    is_partition: Callable[[str], bool] | None = None,
) -> LandingReport:
    """Split a real CFPB export into daily landing files by `Date received`, losing no row.

    An export without complaint ids gets a `Complaint ID` column of `<source>-L<line>`, the line
    the record starts on in the export: unique over all its days, and the same when it is landed
    again. A malformed record (wrong field count) whose date is readable goes to its day like any
    other, where reading flags it and validation rejects it; only records without a readable date
    go to `_unroutable/`. With `is_partition`, days it refuses are listed in the report.
    """
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
    add_ids = "complaint_id" not in columns
    out_header = [*header, id_column_for(header)] if add_ids else header

    report = LandingReport(source=source)
    by_day: dict[date, list[list[str]]] = {}
    unroutable: list[list[str]] = []
    for record in records:
        report.rows_read += 1
        fields = record.fields
        day = parse_cfpb_date(fields[date_index]) if len(fields) > date_index else None
        if day is None:
            # Without a readable date a record cannot be put in a day; keep it whole.
            unroutable.append([str(record.line), record.text])
            continue
        # A malformed record keeps its wrong field count (one more with the id), so reading the
        # day file flags it as a parse error instead of mis-mapping its fields.
        by_day.setdefault(day, []).append(
            [*fields, f"{source}-L{record.line}"] if add_ids else fields
        )

    for day, rows in sorted(by_day.items()):
        key = day.strftime(DATE_FORMAT)
        target = day_folder(landing_root, day) / f"{source}.csv"
        changed = write_atomically(target, to_csv_bytes(out_header, rows))
        (report.files_written if changed else report.files_unchanged).append(target)
        report.rows_by_day[key] = len(rows)
        if is_partition is not None and not is_partition(key):
            report.days_outside_partitions.append(key)
    if unroutable:
        report.unroutable_rows = len(unroutable)
        report.unroutable_file = landing_root / UNROUTABLE_FOLDER / f"{source}.csv"
        write_atomically(
            report.unroutable_file, to_csv_bytes(["source_line", "record"], unroutable)
        )
    return report
