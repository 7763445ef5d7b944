"""Reading CFPB complaint exports (official or snake_case header) into the canonical schema."""

from __future__ import annotations

import csv
import functools
import io
import json
import re
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from ml_assets.columns import (
    CANONICAL_COLUMNS,
    INGESTION_DATE_COLUMN,
    PARSE_ERROR_COLUMN,
    RAW_RECORD_COLUMN,
    SOURCE_FILE_COLUMN,
    SOURCE_LINE_COLUMN,
)
from ml_assets.ingest.cfpb_vocabulary import (
    HISTORICAL_HEADER_ALIASES,
    OFFICIAL_HEADER,
    OFFICIAL_TO_CANONICAL,
    REQUIRED_CANONICAL_COLUMNS,
    SNAKE_CASE_ALIASES,
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


# Exports repeat the same few thousand date strings millions of times: parse each once.
@functools.lru_cache(maxsize=1 << 16)
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


def _dates_by_format(text: pd.Series) -> pd.Series:
    """Timestamps of date strings, format by format as `parse_cfpb_date` tries them (NaT: none fit)."""
    parts = text.str.extract(_DATE_AND_TIME.pattern, expand=True)["date"]
    out = pd.Series(pd.NaT, index=text.index, dtype="datetime64[ns]")
    for fmt in _DATE_FORMATS:
        todo = out.isna() & parts.notna()
        if not todo.any():
            break
        out[todo] = pd.to_datetime(parts[todo], format=fmt, errors="coerce")
    return out


def _per_distinct_value(values: pd.Series, parse: Callable[[pd.Series], pd.Series]) -> pd.Series:
    """`parse` applied to the distinct values of a column only, spread back to every row.

    A day's dates are a handful of distinct strings: parsing those, not every row, is what
    makes date columns of millions of rows cheap.
    """
    codes, distinct = pd.factorize(values, use_na_sentinel=False)
    parsed = parse(pd.Series(distinct, dtype=values.dtype))
    return pd.Series(parsed.to_numpy()[codes], index=values.index)


def cfpb_timestamps(values: pd.Series) -> pd.Series:
    """`parse_cfpb_date` over a column as timestamps (NaT when empty, malformed or out of range)."""
    return _per_distinct_value(values, _cfpb_timestamps)


def cfpb_dates_parse(values: pd.Series) -> pd.Series:
    """Per value, whether `parse_cfpb_date` reads a date (missing values count as parsing)."""
    return _per_distinct_value(values, _cfpb_dates_parse).astype(bool)


def _cfpb_timestamps(values: pd.Series) -> pd.Series:
    """Column operations parse the bulk; only values they leave unparsed (malformed ones, or forms
    pandas reads more strictly than `strptime`, such as "2013-7-29") go through
    `parse_cfpb_date` one by one, so the result is exactly the scalar parser's."""
    text = values.astype("string").str.strip()
    out = _dates_by_format(text)
    residue = out.isna() & text.notna() & (text != "")
    if residue.any():
        out[residue] = pd.to_datetime(
            text[residue].map(parse_cfpb_date, na_action="ignore"), errors="coerce"
        )
    return out


def _cfpb_dates_parse(values: pd.Series) -> pd.Series:
    """Whether each value parses, as `_cfpb_timestamps` parses it."""
    text = values.astype("string").str.strip()
    parsed = _dates_by_format(text).notna()
    residue = ~parsed & values.notna()
    if residue.any():
        parsed[residue] = np.array([parse_cfpb_date(str(v)) is not None for v in values[residue]])
    return parsed | values.isna()


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


def _canonical_name(name: str) -> str | None:
    """The canonical column a header name stands for, in any layout the CFPB has published."""
    key = name.strip()
    snake = key.lower()
    if key in OFFICIAL_TO_CANONICAL:
        return OFFICIAL_TO_CANONICAL[key]
    if key in HISTORICAL_HEADER_ALIASES:
        return HISTORICAL_HEADER_ALIASES[key]
    if snake in SNAKE_CASE_ALIASES:
        return SNAKE_CASE_ALIASES[snake]
    return snake if snake in CANONICAL_COLUMNS else None


def canonical_header(header: Sequence[str], source: str) -> list[str]:
    """Canonical column names for a file's header; raises naming what is missing or unknown.

    Optional columns an older export lacks (narrative, public response, tags, consent, id) are
    simply absent: readers fill them with nulls.
    """
    mapped: list[str] = []
    unknown: list[str] = []
    for name in header:
        canonical = _canonical_name(name)
        if canonical is None:
            unknown.append(name)
        mapped.append(canonical or name)
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
            f"Expected the official export header ({', '.join(OFFICIAL_HEADER)}), an older one "
            "(2012-2014: 'Company response'), or its snake_case form (date_received, "
            "zip_code/zipcode, consumer_disputed?/consumer_disputed, ...). For another layout, "
            "land it with `ml-assets land-cfpb PATH --columns MAPPING.json` (a JSON object from "
            "the file's column names to official ones; null drops a column)."
        )
    return mapped


# A user's column mapping: the file's column name -> an official or canonical name, or None to
# drop the column while landing.
ColumnMapping = Mapping[str, str | None]


def load_column_mapping(path: Path) -> dict[str, str | None]:
    """A column mapping read from a JSON file; raises naming the entries that map to nothing known."""
    try:
        mapping = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise LandingFileError(f"{path}: cannot read the column mapping ({exc}).") from exc
    if not isinstance(mapping, dict) or not all(
        isinstance(k, str) and (v is None or isinstance(v, str)) for k, v in mapping.items()
    ):
        raise LandingFileError(
            f'{path}: a column mapping is one JSON object of "file column": "official column" '
            '(or null to drop it), e.g. {"DateReceived": "Date received", "ZipCode": "ZIP code"}.'
        )
    unknown = sorted(v for v in mapping.values() if v is not None and _canonical_name(v) is None)
    if unknown:
        raise LandingFileError(
            f"{path}: maps columns to names this loader does not know {unknown}. Use the official "
            f"names ({', '.join(OFFICIAL_HEADER)}) or their snake_case form."
        )
    return mapping


def apply_column_mapping(
    header: Sequence[str], mapping: ColumnMapping
) -> tuple[list[str], list[int]]:
    """The header renamed by a mapping, and the indices of the fields kept (dropped ones left out).

    Names the mapping lacks stay as they are, and entries the file lacks are ignored: one mapping
    serves every vintage of a layout. A misspelt entry still fails, as a missing or unknown column.
    """
    renamed: list[str] = []
    kept: list[int] = []
    for index, name in enumerate(header):
        target = mapping.get(name.strip(), name)
        if target is not None:
            renamed.append(target)
            kept.append(index)
    return renamed, kept


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


def _single_line_record(text: str, line: int) -> CsvRecord:
    """One physical line read as a CSV record on its own."""
    text = text.rstrip("\r\n")
    try:
        fields = next(csv.reader([text]), [])
    except csv.Error:
        fields = [text]  # not even one line parses: keep it whole as one (malformed) field
    return CsvRecord(line, fields, text)


def iter_csv_records(lines: Iterable[str]) -> Iterator[CsvRecord]:
    """CSV records of physical lines, with start line and original text, streamed.

    Quoted newlines stay inside a record. The first record (the header) sets the width. A record
    of another width that spans several physical lines is taken for an unclosed quote that
    swallowed the lines after it: its first line is read on its own and reading resumes on the
    next line, so that a stray quote costs one malformed row instead of the rest of the file.
    Line numbers are always physical lines. Pass lines split as `open(..., newline="")` does.

    Written around the csv module by hand because no library reader does all of it: DuckDB's and
    pyarrow's CSV readers report neither the physical line each record starts on (the id of
    exports without ids, and the lineage of every row) nor its original text, and a stray quote
    makes them reject or swallow the rest of the file instead of one line.
    """
    source = iter(lines)
    pending: deque[str] = deque()  # lines of a run-on record, to be read again
    taken: list[str] = []  # the physical lines of the record being read
    line = 1  # the physical line taken[0] is
    width: int | None = None

    def feed() -> Iterator[str]:
        while True:
            if pending:
                text = pending.popleft()
            else:
                text = next(source, None)
                if text is None:
                    return
            taken.append(text)
            yield text

    while True:
        # csv.reader pulls one line at a time and only reads on inside a quoted field, so
        # `taken` holds exactly the lines of the record it returns.
        reader = csv.reader(feed())
        while True:
            try:
                fields = next(reader)
            except StopIteration:
                return
            except csv.Error:
                # E.g. a field over the csv module's size limit: an unclosed quote ran on.
                break
            if not fields:  # a blank line holds no record
                line += len(taken)
                taken.clear()
                continue
            if width is None:
                width = len(fields)
            elif len(fields) != width and len(taken) > 1:
                break
            yield CsvRecord(line, fields, "".join(taken).rstrip("\r\n"))
            line += len(taken)
            taken.clear()
        # The record starting at `line` ran on over several lines: read that line alone.
        first, rest = taken[0], taken[1:]
        taken.clear()
        pending.extendleft(reversed(rest))
        single = _single_line_record(first, line)
        if single.fields:
            yield single
        line += 1


def read_complaints_csv(data: bytes, source: str) -> pd.DataFrame:
    """Rows of a CFPB export in the canonical schema, all strings, with source file and line."""
    return cast_raw_frame(_read_uncast(data, source))


def _read_uncast(data: bytes, source: str) -> pd.DataFrame:
    """`read_complaints_csv` before the casts, which cost the same for 10 rows as for 10,000:
    a run over thousands of days casts its concatenated rows once."""
    text = decode_landing_bytes(data, source)
    read = _well_formed_records(text)
    if read is None:
        return _read_record_by_record(text, source)
    header, body, lines = read
    body.columns = canonical_header(header, source)
    frame = body.mask(body == "")
    frame[SOURCE_LINE_COLUMN] = lines
    frame[PARSE_ERROR_COLUMN] = None
    frame[RAW_RECORD_COLUMN] = None
    return to_raw_frame(frame, source)


def _well_formed_records(text: str) -> tuple[list[str], pd.DataFrame, np.ndarray] | None:
    """The header, every record as strings and the physical line each record starts on, read by
    pyarrow's CSV reader; or None when the file is not plainly well formed, and only the
    record-by-record reader keeps every guarantee.

    Plainly well formed: every record as wide as the header, no blank line, lines ending in \\n
    or \\r\\n. Line numbers then follow from the records' own newlines. Day files written by
    `land-cfpb` and the generator are like this; pyarrow reads them ~10x faster than the csv
    module does record by record.
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv

    if text.count("\r") != text.count("\r\n"):
        return None
    first_line = text.split("\n", 1)[0].removesuffix("\r")
    if not first_line or '"' in first_line:
        return None
    header = next(csv.reader([first_line]))
    names = [f"f{i}" for i in range(len(header))]
    try:
        table = pacsv.read_csv(
            io.BytesIO(text.encode("utf-8")),
            read_options=pacsv.ReadOptions(column_names=names, skip_rows=1),
            parse_options=pacsv.ParseOptions(newlines_in_values=True, ignore_empty_lines=False),
            convert_options=pacsv.ConvertOptions(
                column_types=dict.fromkeys(names, pa.string()),
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except pa.ArrowInvalid:
        return None  # a record of another width (or a blank line, a record of one empty field)
    # pyarrow.compute's functions are generated when it is imported: no checker can see them.
    lengths = (pc.max(pc.utf8_length(c)) for c in table.columns)  # pyright: ignore[reportAttributeAccessIssue]
    longest = max((length.as_py() or 0 for length in lengths), default=0)
    if longest > csv.field_size_limit():
        return None  # the csv module refuses so long a field: to it, the record is malformed
    body = table.to_pandas()
    if len(body) and (body == "").all(axis=1).any():
        # A blank line is no record to the csv module but a record of empty fields to pyarrow
        # (as is a record of nothing but commas: rare enough to read the slow way too).
        return None
    if text.count("\n") + (not text.endswith("\n")) == len(body) + 1:
        lines = np.arange(2, len(body) + 2)
    else:
        # Quoted newlines: each shifts the physical line of every record after it.
        newlines = sum(body[c].str.count("\n").to_numpy() for c in body.columns)
        lines = 2 + np.concatenate([[0], np.cumsum(1 + newlines)[:-1]]).astype(int)
    return header, body, lines


def _read_record_by_record(text: str, source: str) -> pd.DataFrame:
    """`read_complaints_csv` for any file: malformed records kept, flagged, with their text."""
    records = iter_csv_records(io.StringIO(text, newline=""))
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
    return to_raw_frame(
        pd.DataFrame(
            rows, columns=[*columns, SOURCE_LINE_COLUMN, PARSE_ERROR_COLUMN, RAW_RECORD_COLUMN]
        ),
        source,
    )


def derived_complaint_id(source: str, line: int) -> str:
    """A stable id for rows of files that carry none: the day folder, file and line they came from.

    The day folder (the parent folder of `source`, when it has one) keeps the ids of one export's
    day files apart: each of them has a line 2.
    """
    parts = source.rsplit("/", 2)
    stem = parts[-1].removesuffix(".csv")
    return f"{parts[-2]}/{stem}-L{line}" if len(parts) > 1 else f"{stem}-L{line}"


def to_raw_frame(parsed: pd.DataFrame, source: str) -> pd.DataFrame:
    """The canonical raw columns for the parsed rows of one file (`cast_raw_frame` types them)."""
    frame = parsed.reindex(
        columns=[*CANONICAL_COLUMNS, SOURCE_LINE_COLUMN, PARSE_ERROR_COLUMN, RAW_RECORD_COLUMN]
    )
    frame[SOURCE_FILE_COLUMN] = source
    frame["complaint_id"] = frame["complaint_id"].astype(object)
    missing_id = frame["complaint_id"].isna()
    frame.loc[missing_id, "complaint_id"] = [
        derived_complaint_id(source, int(line))
        for line in frame.loc[missing_id, SOURCE_LINE_COLUMN]
    ]
    frame["zip_code"] = frame["zip_code"].map(restore_zip_code, na_action="ignore")
    return frame[list(RAW_COLUMNS)]


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
    return read_landing_days({day: files})


def read_landing_days(files: Mapping[str, list[tuple[str, bytes]]]) -> pd.DataFrame:
    """All rows of the landing files of several days (files by day), each tagged with its day."""
    frames = []
    for day, day_files in sorted(files.items()):
        for name, data in sorted(day_files):
            frame = _read_uncast(data, name)
            frame[INGESTION_DATE_COLUMN] = pd.Timestamp(day).as_unit("ns")
            frames.append(frame)
    if not frames:
        frame = empty_raw_frame()
        frame[INGESTION_DATE_COLUMN] = pd.Series(dtype="datetime64[ns]")
        return frame
    return cast_raw_frame(pd.concat(frames, ignore_index=True))
