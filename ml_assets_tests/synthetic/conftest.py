"""Fixtures of the synthetic world's tests."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import pytest

from ml_assets.synthetic.export import generate_day
from ml_assets_tests.synthetic.read_back import DAY, parse


@pytest.fixture(scope="package")
def many_rows() -> pd.DataFrame:
    """20,000 generated rows over 40 days (shared by the modules that measure rates)."""
    frames = [
        parse(generate_day(DAY + timedelta(days=i), 500, seed=3), f"d{i}.csv") for i in range(40)
    ]
    return pd.concat(frames, ignore_index=True)
