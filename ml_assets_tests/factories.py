"""Small builders of test inputs in the project's formats."""

from __future__ import annotations

import csv
import io
import os
import time
from pathlib import Path

import pandas as pd

from ml_assets.ingest.cfpb_format import read_landing_day
from ml_assets.ingest.cfpb_vocabulary import OFFICIAL_HEADER

OFFICIAL_HEADER_LINE = ",".join(f'"{h}"' if "," in h else h for h in OFFICIAL_HEADER)
DEFAULT_FIELDS: dict[str, str] = {
    "Date received": "01/05/2016",
    "Product": "Credit card",
    "Sub-product": "",
    "Issue": "Billing disputes",
    "Sub-issue": "",
    "Consumer complaint narrative": "",
    "Company public response": "",
    "Company": "Bank A",
    "State": "MA",
    "ZIP code": "02134",
    "Tags": "",
    "Consumer consent provided?": "N/A",
    "Submitted via": "Web",
    "Date sent to company": "01/06/2016",
    "Company response to consumer": "Closed with explanation",
    "Timely response?": "Yes",
    "Consumer disputed?": "No",
    "Complaint ID": "1700001",
}


def csv_line(**fields: str) -> str:
    """One official-format CSV record; keyword names are official headers with spaces as '_'."""
    values = dict(DEFAULT_FIELDS)
    for key, value in fields.items():
        header = next(
            h for h in OFFICIAL_HEADER if h.replace(" ", "_").replace("-", "_").rstrip("?") == key
        )
        values[header] = value
    return ",".join(
        f'"{v}"' if ("," in v or "\n" in v) else v for v in (values[h] for h in OFFICIAL_HEADER)
    )


def csv_file(*records: str) -> str:
    """A landing file's text with the official header."""
    return "\n".join([OFFICIAL_HEADER_LINE, *records]) + "\n"


def raw_day(day: str, *records: str) -> pd.DataFrame:
    """The raw frame of one day holding the given records."""
    return read_landing_day([(f"{day}/test.csv", csv_file(*records).encode())], day)


def land(landing_root: Path, day: str, text: str | bytes, name: str = "test.csv") -> Path:
    """Write a landing file for a day and return its path."""
    path = landing_root / "complaints" / day / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, str):
        path.write_text(text)
    else:
        path.write_bytes(text)
    return path


def touch(path: Path, seconds_ahead: float = 0.0) -> int:
    """A new mtime for a file, its bytes unchanged (`touch`, or a source rewriting the same data):
    now, or `seconds_ahead` in the future (a source whose clock runs fast). Returns the stamp."""
    stamp = time.time_ns() + int(seconds_ahead * 1e9)
    os.utime(path, ns=(stamp, stamp))
    return stamp


def edit_keeping_size_and_mtime(path: Path) -> None:
    """Correct the last digit of one ZIP code in a landing file, keeping its size and its mtime.

    What a tool that preserves times (`rsync -t`, `cp -p`) leaves after a correction of the same
    length: only the file's ctime tells that it changed. The model sees ZIP3 only, so the model
    inputs stay the same.
    """
    before = path.stat()
    rows = list(csv.reader(io.StringIO(path.read_text(), newline="")))
    zip_column = rows[0].index("ZIP code")
    row = next(
        r for r in reversed(rows[1:]) if len(r) > zip_column and r[zip_column][-1:].isdigit()
    )
    row[zip_column] = row[zip_column][:-1] + str((int(row[zip_column][-1]) + 1) % 10)
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    data = buffer.getvalue().encode()
    assert len(data) == before.st_size, f"{path}: an edit must keep the size"
    path.write_bytes(data)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
