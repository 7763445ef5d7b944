"""Generated files read back with the production reader, shared by the synthetic world's tests."""

from __future__ import annotations

from datetime import date

import pandas as pd

from ml_assets.ingest.cfpb_format import read_complaints_csv

DAY = date(2016, 3, 1)


def parse(text: str, source: str = "synthetic.csv") -> pd.DataFrame:
    """A generated file read back with the production reader."""
    return read_complaints_csv(text.encode("utf-8"), source)


def labels(frame: pd.DataFrame) -> pd.Series:
    """The dispute label as 1.0/0.0, NaN when missing."""
    return frame["consumer_disputed"].map({"Yes": 1.0, "No": 0.0}).astype(float)
