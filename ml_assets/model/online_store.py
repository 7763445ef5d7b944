"""The online store: the newest history snapshot in a read-only SQLite file the replicas open.

No feature-store library: Feast 0.67 (the maintained one with a SQLite online store) requires
tenacity<9 and prometheus_client<0.25, against this project's tenacity 9.2.1 (checked with
`pip install --dry-run feast`, 2026-12). The store is one table of one snapshot, written whole
and swapped in with an atomic rename, so a replica never reads half of one.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Final

import numpy as np
import pandas as pd

from ml_assets.model.history import (
    AS_OF,
    COMPANY_LEVEL,
    COMPANY_PRODUCT_LEVEL,
    HISTORY_FEATURES,
    KEY,
    LEVEL,
    LEVELS,
    OVERALL_LEVEL,
    SNAPSHOT_COLUMNS,
    key_token,
    pair_key,
    unseen_row,
)

TABLE: Final = "history"
META_TABLE: Final = "meta"
SNAPSHOT_DATE: Final = "snapshot_date"


def write_online_store(snapshot: pd.DataFrame, path: Path) -> date:
    """Write one day's snapshot (history_snapshots of one day) to `path`, replacing it whole;
    returns the snapshot's day."""
    days = pd.to_datetime(snapshot[AS_OF]).dt.date.unique()
    if len(days) != 1:
        raise ValueError(f"an online store holds one snapshot day, given {len(days)}: {days[:5]}")
    day = days[0]
    if not (snapshot[LEVEL] == OVERALL_LEVEL).any():
        raise ValueError(
            f"the snapshot of {day} has no overall row: build it with history_snapshots"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    partial.unlink(missing_ok=True)
    try:
        with sqlite3.connect(partial) as con:
            rows = snapshot.loc[:, [LEVEL, KEY, *SNAPSHOT_COLUMNS]]
            rows.to_sql(TABLE, con, index=False)
            con.execute(f"create unique index {TABLE}_key on {TABLE} ({LEVEL}, {KEY})")
            con.execute(f"create table {META_TABLE} (name text primary key, value text)")
            con.execute(f"insert into {META_TABLE} values (?, ?)", (SNAPSHOT_DATE, day.isoformat()))
        con.close()
        # Replicas holding the old file keep reading it until they reopen: the rename is atomic.
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return day


@dataclass
class OnlineStore:
    """A snapshot held in memory: per level, key -> its SNAPSHOT_COLUMNS values."""

    path: Path
    snapshot_date: date
    rows: dict[str, dict[str, np.ndarray]]
    unseen: np.ndarray
    _stamp: tuple[int, int] = field(default=(0, 0), repr=False)

    @classmethod
    def open(cls, path: Path) -> OnlineStore:
        """Load the store at `path` (read-only)."""
        if not path.exists():
            raise FileNotFoundError(
                f"no online feature store at {path}: materialize the feature_store asset "
                "(it follows company_history) before serving a model that reads history"
            )
        stamp = _stamp(path)
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as con:
            (day,) = con.execute(
                f"select value from {META_TABLE} where name = ?", (SNAPSHOT_DATE,)
            ).fetchone()
            table = pd.read_sql(f"select * from {TABLE}", con)
        con.close()
        values = table.loc[:, list(SNAPSHOT_COLUMNS)].to_numpy(dtype="float64")
        rows: dict[str, dict[str, np.ndarray]] = {level: {} for level in (*LEVELS, OVERALL_LEVEL)}
        for level, key, row in zip(table[LEVEL], table[KEY], values, strict=True):
            rows[str(level)][str(key)] = row
        (overall,) = rows[OVERALL_LEVEL].values()
        unseen = unseen_row(pd.Series(overall, index=list(SNAPSHOT_COLUMNS))).to_numpy("float64")
        return cls(path, date.fromisoformat(day), rows, unseen, stamp)

    def lookup(self, companies: Sequence[object], products: Sequence[object]) -> pd.DataFrame:
        """HISTORY_FEATURES of complaints by company and product; a key never seen gets the
        overall rates and no counts."""
        return pd.DataFrame(self.lookup_array(companies, products), columns=list(HISTORY_FEATURES))

    def lookup_array(self, companies: Sequence[object], products: Sequence[object]) -> np.ndarray:
        """`lookup` as a float64 array (n, 72): the serving path, dict lookups and no frames
        (a pandas frame per request cost 5 ms at 1 client)."""
        company_rows, product_rows = self.rows[COMPANY_LEVEL], self.rows[COMPANY_PRODUCT_LEVEL]
        out = np.empty((len(companies), len(HISTORY_FEATURES)), dtype="float64")
        width = len(SNAPSHOT_COLUMNS)
        for i, (company, product) in enumerate(zip(companies, products, strict=True)):
            key = key_token(company)
            out[i, :width] = company_rows.get(key, self.unseen)
            out[i, width:] = product_rows.get(pair_key(key, key_token(product)), self.unseen)
        return out

    def replaced(self) -> bool:
        """Whether the file was replaced (a newer snapshot) since it was loaded."""
        return self.path.exists() and _stamp(self.path) != self._stamp


def _stamp(path: Path) -> tuple[int, int]:
    status = path.stat()
    return status.st_ino, status.st_mtime_ns
