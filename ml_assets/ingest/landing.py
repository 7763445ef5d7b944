"""The landing zone's contract: day folders, content digests, and splitting real exports by day."""

from __future__ import annotations

import csv
import filecmp
import functools
import gzip
import hashlib
import io
import os
import re
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import IO, Final

from ml_assets.ingest.cfpb_format import (
    ColumnMapping,
    LandingFileError,
    apply_column_mapping,
    canonical_header,
    iter_csv_records,
    parse_cfpb_date,
)
from ml_assets.ingest.cfpb_vocabulary import OFFICIAL_TO_CANONICAL

DATE_FORMAT: Final = "%Y-%m-%d"

# Landing layout: <landing>/complaints/YYYY-MM-DD/<source>.csv, one folder per ingestion day.
COMPLAINTS_FOLDER = "complaints"
# Rows a loader could not assign to a day: kept, never dropped.
UNROUTABLE_FOLDER = "_unroutable"
# Where a loader spools day files before renaming them in (a dot folder no reader lists).
STAGING_FOLDER = ".staging"
# What an export is read from: a plain or zipped file, or gzip's own stream.
ByteStream = IO[bytes] | gzip.GzipFile
# A source names its day files, `<day>/<source>.csv`: without a separator or `..` they stay in
# their day folder, and without a leading dot the landing zone sees them (its readers skip
# dot-files as writers' temporaries, `resources/landing_zone.py`).
_SOURCE_NAME = re.compile(r"[A-Za-z0-9_-]+")


def check_source_name(name: str) -> str:
    """`name` if it can name a source's landing files; else a ValueError saying what can."""
    if not _SOURCE_NAME.fullmatch(name):
        raise ValueError(
            f"{name!r} cannot name landing files: a source name has letters, digits, '-' and '_' "
            "only (no path separator, no leading dot), e.g. cfpb_2024"
        )
    return name


def complaints_root(landing_root: Path) -> Path:
    """The folder of the day folders: `<landing>/complaints`."""
    return landing_root / COMPLAINTS_FOLDER


def day_folder(landing_root: Path, day: date) -> Path:
    """The folder of one ingestion day: `<landing>/complaints/YYYY-MM-DD`."""
    return complaints_root(landing_root) / day.strftime(DATE_FORMAT)


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


def move_in_atomically(staged: Path, path: Path) -> bool:
    """Rename a finished file over `path`; False (and `staged` removed) when it held the same bytes.

    The bytes reach the disk before the rename, so a crash leaves the old file or the new one.
    """
    if path.exists() and filecmp.cmp(staged, path, shallow=False):
        staged.unlink()
        return False
    # Per file, not one os.sync(): that flushes every process's writes on the machine.
    with staged.open("rb") as handle:
        os.fsync(handle.fileno())
    path.parent.mkdir(parents=True, exist_ok=True)
    os.replace(staged, path)
    return True


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


# Export archives and their suffixes; what is left of the name is the source of the day files.
_ARCHIVE_SUFFIXES = (".zip", ".gz")


def export_source_name(path: Path) -> str:
    """The name an export's day files get: its file name without `.csv`, `.zip` or `.gz`."""
    name = path.name
    for suffix in _ARCHIVE_SUFFIXES:
        name = name.removesuffix(suffix)
    return name.removesuffix(".csv")


@contextmanager
def open_export(path: Path) -> Iterator[ByteStream]:
    """The bytes of an export, `.csv`, `.csv.zip` (one CSV inside) or `.csv.gz`, as a stream."""
    try:
        if path.name.endswith(".zip"):
            with zipfile.ZipFile(path) as archive:
                members = [m for m in archive.infolist() if not m.is_dir()]
                if len(members) != 1:
                    raise LandingFileError(
                        f"{path}: a zipped export must hold exactly one CSV file, this one holds "
                        f"{[m.filename for m in members]}. Unzip it and land the CSV file."
                    )
                with archive.open(members[0]) as handle:
                    yield handle
        elif path.name.endswith(".gz"):
            with gzip.open(path, "rb") as handle:
                yield handle
        else:
            with path.open("rb") as handle:
                yield handle
    except (zipfile.BadZipFile, gzip.BadGzipFile, EOFError) as exc:
        raise LandingFileError(
            f"{path}: not a readable archive ({exc}). Download the export again, or unpack it and "
            "land the CSV file."
        ) from exc


class DaySpool:
    """CSV rows per key (a day, or unroutable rows), spooled to one file per key on disk.

    Rows are buffered as CSV text and appended to the key's file whenever the buffer outgrows
    `limit_chars`, so memory stays bounded however many rows and days an export has. The bytes
    of each file are what one `csv.writer` over all of the key's rows would write.
    """

    def __init__(self, folder: Path, limit_chars: int) -> None:
        self.folder = folder
        self.limit_chars = limit_chars
        self.rows: dict[str, int] = {}
        self._headers: dict[str, list[str]] = {}
        self._buffers: dict[str, io.StringIO] = {}
        self._writers: dict[str, object] = {}
        self._buffered = 0
        folder.mkdir(parents=True, exist_ok=True)

    def path(self, key: str) -> Path:
        return self.folder / f"{key}.csv"

    def add(self, key: str, header: list[str], row: list[str], text: str | None = None) -> None:
        """Append one row to a key's file (its header first, when the key is new). `text`, when
        given, is the row as `csv.writer` writes it, without the line end, written as it is."""
        buffer = self._buffers.get(key)
        if buffer is None:
            buffer = self._buffers[key] = io.StringIO()
            self._writers[key] = csv.writer(buffer, lineterminator="\n")
            if key not in self.rows:
                self.rows[key] = 0
                self._headers[key] = header
                self._writers[key].writerow(header)  # type: ignore[attr-defined]
        if text is None:
            before = buffer.tell()
            self._writers[key].writerow(row)  # type: ignore[attr-defined]
            self._buffered += buffer.tell() - before
        else:
            self._buffered += buffer.write(text) + buffer.write("\n")
        self.rows[key] += 1
        if self._buffered > self.limit_chars:
            self.flush()

    def flush(self) -> None:
        """Append every buffered row to its key's file and empty the buffers."""
        for key, buffer in self._buffers.items():
            # newline="" keeps the writer's "\n" line ends as they are on every platform.
            with self.path(key).open("a", encoding="utf-8", newline="") as handle:
                handle.write(buffer.getvalue())
        self._buffers.clear()
        self._writers.clear()
        self._buffered = 0


# About 64 MB of buffered CSV text before a spool writes to disk: peak memory stays in the low
# hundreds of MB whatever the export's size, and a small export is written in one go.
SPOOL_LIMIT_CHARS = 64 * 1024 * 1024
_UNROUTABLE_KEY = "unroutable"
_UNROUTABLE_HEADER = ["source_line", "record"]


def _decoded_lines(handle: ByteStream, encoding: str, path: Path) -> Iterator[str]:
    """The physical lines of an export's bytes, decoded; raises naming the line and the fix."""
    text = io.TextIOWrapper(handle, encoding=encoding, newline="")
    lines_read = 0
    try:
        for content in text:
            lines_read += 1
            yield content
    except UnicodeDecodeError as exc:
        raise LandingFileError(
            f"{path}: cannot be decoded as {encoding} (near line {lines_read + 1}). Pass the file's "
            "encoding, e.g. `ml-assets land-cfpb PATH --encoding latin-1`."
        ) from exc


def land_cfpb_export(
    path: Path,
    landing_root: Path,
    source: str | None = None,
    encoding: str = "utf-8-sig",
    is_partition: Callable[[str], bool] | None = None,
    columns: ColumnMapping | None = None,
    spool_limit_chars: int = SPOOL_LIMIT_CHARS,
) -> LandingReport:
    """Split a real CFPB export into daily landing files by `Date received`, losing no row.

    The export is streamed (`.csv`, `.csv.zip` or `.csv.gz`), so memory does not grow with its
    size. An export without complaint ids gets a `Complaint ID` column of `<source>-L<line>`, the
    line the record starts on in the export: unique over all its days, and the same when it is
    landed again. A malformed record (wrong field count) whose date is readable goes to its day
    like any other, where reading flags it and validation rejects it; only records without a
    readable date go to `_unroutable/`. `columns` renames (or drops) the file's columns first; day
    files carry the renamed header. With `is_partition`, days it refuses are listed in the report.
    A `source` (default: the export's file name) that `check_source_name` refuses raises first.
    """
    source = check_source_name(export_source_name(path) if source is None else source)
    report = LandingReport(source=source)
    with open_export(path) as handle:
        records = iter_csv_records(_decoded_lines(handle, encoding, path))
        header_record = next(records, None)
        if header_record is None:
            raise LandingFileError(f"{path}: the file is empty, not even a CSV header.")
        header = header_record.fields
        kept: list[int] | None = None
        if columns:
            header, kept = apply_column_mapping(header, columns)
        canonical = canonical_header(header, str(path))
        date_index = canonical.index("date_received")
        add_ids = "complaint_id" not in canonical
        out_header = [*header, id_column_for(header)] if add_ids else header
        width = len(header_record.fields)

        staging = Path(tempfile.mkdtemp(prefix=f"{source}.", dir=_staging_root(landing_root)))
        try:
            spool = DaySpool(staging, spool_limit_chars)
            for record in records:
                report.rows_read += 1
                fields = record.fields
                if kept is not None and len(fields) == width:
                    # A malformed record keeps all its fields: which one to drop is unknown.
                    fields = [fields[i] for i in kept]
                day = _day_key(fields[date_index]) if len(fields) > date_index else None
                if day is None:
                    # Without a readable date a record cannot be put in a day; keep it whole.
                    spool.add(_UNROUTABLE_KEY, _UNROUTABLE_HEADER, [str(record.line), record.text])
                    continue
                # A malformed record keeps its wrong field count (one more with the id), so
                # reading the day file flags it as a parse error instead of mis-mapping fields.
                if add_ids:
                    spool.add(day, out_header, [*fields, f"{source}-L{record.line}"])
                elif kept is None and '"' not in record.text:
                    # No quote: the fields hold no comma or line end either, so the line is
                    # what csv.writer would write of them (a tenth of the landing's time).
                    spool.add(day, out_header, fields, record.text)
                else:
                    spool.add(day, out_header, fields)
            spool.flush()
            _move_spooled_in(spool, landing_root, source, report, is_partition)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return report


@functools.lru_cache(maxsize=1 << 16)
def _day_key(value: str) -> str | None:
    """The landing day (YYYY-MM-DD) of a `Date received` field, or None when it has none."""
    day = parse_cfpb_date(value)
    return day.strftime(DATE_FORMAT) if day else None


def _staging_root(landing_root: Path) -> Path:
    """The landing zone's staging folder (same file system, so day files are renamed in)."""
    root = landing_root / STAGING_FOLDER
    root.mkdir(parents=True, exist_ok=True)
    return root


def _move_spooled_in(
    spool: DaySpool,
    landing_root: Path,
    source: str,
    report: LandingReport,
    is_partition: Callable[[str], bool] | None,
) -> None:
    """Rename each spooled day file into its day folder (unchanged ones left alone)."""
    for key in sorted(k for k in spool.rows if k != _UNROUTABLE_KEY):
        target = day_folder(landing_root, date.fromisoformat(key)) / f"{source}.csv"
        changed = move_in_atomically(spool.path(key), target)
        (report.files_written if changed else report.files_unchanged).append(target)
        report.rows_by_day[key] = spool.rows[key]
        if is_partition is not None and not is_partition(key):
            report.days_outside_partitions.append(key)
    if _UNROUTABLE_KEY in spool.rows:
        report.unroutable_rows = spool.rows[_UNROUTABLE_KEY]
        report.unroutable_file = landing_root / UNROUTABLE_FOLDER / f"{source}.csv"
        move_in_atomically(spool.path(_UNROUTABLE_KEY), report.unroutable_file)
