"""Realistic defects of a landing file, as real exports have them.

Unknown states, malformed dates, missing products, duplicated ids, and a last record cut as by an
interrupted download.
"""

from __future__ import annotations

from datetime import date

import numpy as np

DEFECT_UNKNOWN_STATE = "unknown_state"
DEFECT_MALFORMED_DATE = "malformed_date"
DEFECT_MISSING_PRODUCT = "missing_product"
DEFECT_DUPLICATE_ID = "duplicate_id"
DEFECT_TRUNCATED = "truncated"

# Kinds that may hit any row; truncation only ever hits the file's last record.
ROW_DEFECT_KINDS: tuple[str, ...] = (
    DEFECT_UNKNOWN_STATE,
    DEFECT_MALFORMED_DATE,
    DEFECT_MISSING_PRODUCT,
    DEFECT_DUPLICATE_ID,
)

DEFECT_KINDS: tuple[str, ...] = (*ROW_DEFECT_KINDS, DEFECT_TRUNCATED)
UNKNOWN_STATES: tuple[str, ...] = ("ZZ", "XX", "QQ")
MALFORMED_DATES: tuple[str, ...] = ("{year}-13-45", "13/45/{year}", "yesterday")


def apply_defects(
    rng: np.random.Generator, records: list[dict[str, str]], defect_rate: float, day: date
) -> bool:
    """Corrupt about `defect_rate` of the rows in place; True when the last record is to be cut."""
    rows = len(records)
    if defect_rate <= 0 or rows == 0:
        return False
    expected = defect_rate * rows
    share = len(ROW_DEFECT_KINDS) / len(DEFECT_KINDS)
    # Row 0 is left alone so that a duplicated id always has an earlier row to copy.
    count = min(int(rng.binomial(rows - 1, min(defect_rate * share, 1.0))), rows - 1)
    targets = np.sort(rng.choice(np.arange(1, rows), size=count, replace=False)) if count else []
    kinds = rng.integers(0, len(ROW_DEFECT_KINDS), size=count)
    for row, kind in zip(targets, kinds, strict=True):
        corrupt(rng, records, int(row), ROW_DEFECT_KINDS[int(kind)], day)
    return bool(rng.random() < min(1.0, expected / len(DEFECT_KINDS)))


def corrupt(
    rng: np.random.Generator, records: list[dict[str, str]], row: int, kind: str, day: date
) -> None:
    """Apply one defect kind to records[row] in place."""
    record = records[row]
    if kind == DEFECT_UNKNOWN_STATE:
        record["State"] = UNKNOWN_STATES[int(rng.integers(0, len(UNKNOWN_STATES)))]
    elif kind == DEFECT_MALFORMED_DATE:
        template = MALFORMED_DATES[int(rng.integers(0, len(MALFORMED_DATES)))]
        record["Date received"] = template.format(year=day.year)
    elif kind == DEFECT_MISSING_PRODUCT:
        record["Product"] = ""
    elif kind == DEFECT_DUPLICATE_ID:
        record["Complaint ID"] = records[int(rng.integers(0, row))]["Complaint ID"]
    else:
        raise ValueError(f"unknown defect kind {kind!r}")


def truncated(rng: np.random.Generator, line: str) -> str:
    """A record cut mid-way, as in an interrupted download: no line end, its last fields lost."""
    # Cutting before the last comma (the separator of the numeric complaint id) drops a field.
    last_comma = line.rstrip("\n").rfind(",")
    start = max(1, min(len(line) // 5, last_comma - 1))
    return line[: int(rng.integers(start, max(start + 1, last_comma)))]
