"""Reading CFPB complaint exports (official or snake_case header) into the canonical schema."""

from __future__ import annotations

import csv
import io
import itertools
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime

import pandas as pd

from ml_assets.constants import (
    CANONICAL_COLUMNS,
    INGESTION_DATE_COLUMN,
    OFFICIAL_HEADER,
    OFFICIAL_TO_CANONICAL,
    PARSE_ERROR_COLUMN,
    RAW_RECORD_COLUMN,
    REQUIRED_CANONICAL_COLUMNS,
    SNAKE_CASE_ALIASES,
    SOURCE_FILE_COLUMN,
    SOURCE_LINE_COLUMN,
)

RAW_COLUMNS: tuple[str, ...] = (
    *CANONICAL_COLUMNS,
    SOURCE_FILE_COLUMN,
    SOURCE_LINE_COLUMN,
    PARSE_ERROR_COLUMN,
    RAW_RECORD_COLUMN,
)
# Official exports use M/D/YYYY (older ones) or ISO dates; some snake_case dumps use either too.
_DATE_FORMATS: tuple[str, ...] = ("%Y-%m-%d", "%m/%d/%Y", "%m/%d/%y")
# A date, optionally followed by a time of day after "T" or a space (HH:MM[:SS[.ffffff]]).
_DATE_AND_TIME = re.compile(
    r"^(?P<date>[^T ]+)(?:[T ](?:[01]\d|2[0-3]):[0-5]\d(?::[0-5]\d(?:\.\d{1,6})?)?)?$"
)
# Numbers stored by spreadsheet tools lose leading zeros: "716" was "00716" (Puerto Rico).
_ZIP_MISSING_ZEROS = re.compile(r"^(\d{3,4}|\d{1,2}XX)$")


class LandingFileError(ValueError):
    """A landing file that cannot be read at all; the message names the file and the fix."""


@dataclass(frozen=True)
class CsvRecord:
    """One CSV record with the physical line it starts on and its original text."""

    line: int
    fields: list[str]
    text: str


def parse_cfpb_date(value: str | None) -> date | None:
    """The date in a CFPB date field (ISO or M/D/YYYY), or None when empty or malformed."""
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    # Some exports carry a time part ("2016-01-05T00:00:00"); anything else after it is garbage.
    match = _DATE_AND_TIME.match(text)
    if match is None:
        return None
    for fmt in _DATE_FORMATS:
        try:
            return datetime.strptime(match["date"], fmt).date()
        except ValueError:
            continue
    return None


def restore_zip_code(value: str | None) -> str | None:
    """A ZIP code with a leading zero lost by spreadsheet tools put back, where that is unambiguous."""
    if value is None:
        return None
    text = value.strip()
    # Every US ZIP has 5 digits and no valid ZIP starts with "000", so 3 or 4 digits can only
    # be a ZIP whose leading zeros were stripped; shorter forms are left for validation to reject.
    if _ZIP_MISSING_ZEROS.match(text):
        return text.zfill(5)
    return text


def canonical_header(header: Sequence[str], source: str) -> list[str]:
    """Canonical column names for a file's header; raises naming what is missing or unknown."""
    mapped: list[str] = []
    unknown: list[str] = []
    for name in header:
        key = name.strip()
        snake = key.lower()
        if key in OFFICIAL_TO_CANONICAL:
            mapped.append(OFFICIAL_TO_CANONICAL[key])
        elif snake in SNAKE_CASE_ALIASES:
            mapped.append(SNAKE_CASE_ALIASES[snake])
        elif snake in CANONICAL_COLUMNS:
            mapped.append(snake)
        else:
            unknown.append(name)
            mapped.append(name)
    missing = [c for c in REQUIRED_CANONICAL_COLUMNS if c not in mapped]
    duplicated = sorted({c for c in mapped if mapped.count(c) > 1})
    problems: list[str] = []
    if missing:
        problems.append(f"lacks columns {missing}")
    if unknown:
        problems.append(f"has columns this loader does not know {unknown}")
    if duplicated:
        problems.append(f"maps several columns to {duplicated}")
    if problems:
        raise LandingFileError(
            f"{source}: not a CFPB complaints export: its header {'; '.join(problems)}. "
            f"Expected the official export header ({', '.join(OFFICIAL_HEADER)}) or its "
            "snake_case form (date_received, zip_code/zipcode, consumer_disputed?/consumer_disputed, ...)."
        )
    return mapped


def decode_landing_bytes(data: bytes, source: str) -> str:
    """The text of a landing file, which must be UTF-8; raises naming the file and the fix."""
    if not data:
        raise LandingFileError(
            f"{source}: the file is empty (0 bytes), not even a header. Remove it or land the day's "
            "export again."
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise LandingFileError(
            f"{source}: not valid UTF-8 (byte {exc.start}, line {line}). Landing files must be UTF-8: "
            "re-land the export with `ml-assets land-cfpb PATH --encoding latin-1` (or the file's "
            "real encoding), which converts it."
        ) from exc


def _single_line_record(lines: list[str], index: int) -> CsvRecord:
    """The physical line at `index` (0-based) read as a CSV record on its own."""
    text = lines[index].rstrip("\r\n")
    try:
        fields = next(csv.reader([text]), [])
    except csv.Error:
        fields = [text]  # not even one line parses: keep it whole as one (malformed) field
    return CsvRecord(index + 1, fields, text)


def iter_csv_records(text: str) -> Iterator[CsvRecord]:
    """CSV records with start line and original text; quoted newlines stay inside a record.

    The first record (the header) sets the width. A record of another width that spans several
    physical lines is taken for an unclosed quote that swallowed the lines after it: its first
    line is read on its own and reading resumes on the next line, so that a stray quote costs one
    malformed row instead of the rest of the file. Line numbers are always physical lines.
    """
    # The reader counts the same physical lines as this list, so slices give a record's text.
    lines = io.StringIO(text, newline="").readlines()
    width: int | None = None
    resume = 0  # 0-based index of the line the current reader started on
    while resume < len(lines):
        reader = csv.reader(itertools.islice(lines, resume, None))
        end = resume  # a record covers lines[start:end]
        while True:
            start = end
            try:
                fields = next(reader)
            except StopIteration:
                return
            except csv.Error:
                # E.g. a field over the csv module's size limit: an unclosed quote ran on.
                break
            end = resume + reader.line_num
            if not fields:  # a blank line holds no record
                continue
            if width is None:
                width = len(fields)
            elif len(fields) != width and end - start > 1:
                break
            yield CsvRecord(start + 1, fields, "".join(lines[start:end]).rstrip("\r\n"))
        # The record starting at lines[start] ran on over several lines: read that line alone.
        single = _single_line_record(lines, start)
        if single.fields:
            yield single
        resume = start + 1


def read_complaints_csv(data: bytes, source: str) -> pd.DataFrame:
    """Rows of a CFPB export in the canonical schema, all strings, with source file and line."""
    records = iter_csv_records(decode_landing_bytes(data, source))
    header_record = next(records, None)
    if header_record is None:
        raise LandingFileError(f"{source}: the file holds no CSV header.")
    columns = canonical_header(header_record.fields, source)
    width = len(columns)
    rows: list[dict[str, object]] = []
    for record in records:
        values: list[str | None] = [v if v != "" else None for v in record.fields]
        problem = None
        if len(values) != width:
            # A truncated or overlong record: keep what is there, flag it, keep its text.
            problem = f"expected {width} fields, found {len(values)}"
            values = (values + [None] * width)[:width]
        row: dict[str, object] = dict(zip(columns, values, strict=True))
        row[SOURCE_LINE_COLUMN] = record.line
        row[PARSE_ERROR_COLUMN] = problem
        row[RAW_RECORD_COLUMN] = record.text if problem else None
        rows.append(row)
    return to_raw_frame(rows, source)


def derived_complaint_id(source: str, line: int) -> str:
    """A stable id for rows of files that carry none: the day folder, file and line they came from.

    The day folder (the parent folder of `source`, when it has one) keeps the ids of one export's
    day files apart: each of them has a line 2.
    """
    parts = source.rsplit("/", 2)
    stem = parts[-1].removesuffix(".csv")
    return f"{parts[-2]}/{stem}-L{line}" if len(parts) > 1 else f"{stem}-L{line}"


def to_raw_frame(rows: list[dict[str, object]], source: str) -> pd.DataFrame:
    """The canonical raw frame (string columns) for parsed rows of one file."""
    frame = pd.DataFrame(
        rows,
        columns=[*CANONICAL_COLUMNS, SOURCE_LINE_COLUMN, PARSE_ERROR_COLUMN, RAW_RECORD_COLUMN],
    )
    frame[SOURCE_FILE_COLUMN] = source
    frame["complaint_id"] = frame["complaint_id"].astype(object)
    missing_id = frame["complaint_id"].isna()
    frame.loc[missing_id, "complaint_id"] = [
        derived_complaint_id(source, int(line))
        for line in frame.loc[missing_id, SOURCE_LINE_COLUMN]
    ]
    frame["zip_code"] = frame["zip_code"].map(restore_zip_code, na_action="ignore")
    return cast_raw_frame(frame[list(RAW_COLUMNS)])


def cast_raw_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A raw frame with the warehouse dtypes (strings, nullable line numbers)."""
    out = frame.copy()
    for column in RAW_COLUMNS:
        if column not in out.columns:
            out[column] = None
    out = out[list(RAW_COLUMNS) + [c for c in out.columns if c not in RAW_COLUMNS]]
    for column in RAW_COLUMNS:
        out[column] = out[column].astype("Int64" if column == SOURCE_LINE_COLUMN else "string")
    return out


def empty_raw_frame() -> pd.DataFrame:
    """A raw frame with no rows and the warehouse dtypes."""
    return cast_raw_frame(pd.DataFrame(columns=list(RAW_COLUMNS)))


def read_landing_day(files: list[tuple[str, bytes]], day: str) -> pd.DataFrame:
    """All rows of one ingestion day's landing files, tagged with the day as a timestamp."""
    frames = [read_complaints_csv(data, name) for name, data in sorted(files)]
    frame = pd.concat(frames, ignore_index=True) if frames else empty_raw_frame()
    frame[INGESTION_DATE_COLUMN] = pd.Timestamp(day).as_unit("ns")
    return frame
