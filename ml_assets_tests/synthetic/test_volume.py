"""Daily volume: never zero when asked, growing over the years, lower at weekends."""

from __future__ import annotations

from datetime import date, timedelta

import pandas as pd

from ml_assets.synthetic.volume import rows_by_day, rows_for_day
from ml_assets_tests.synthetic.read_back import DAY


def test_rows_for_day_never_zero() -> None:
    assert rows_for_day(DAY, 1) == 1
    assert rows_for_day(DAY, 0) == 0
    assert all(rows_for_day(DAY + timedelta(days=i), 2) >= 1 for i in range(7))


def test_rows_by_day_add_up_grow_over_the_years_and_dip_at_weekends() -> None:
    plan = rows_by_day(date(2011, 12, 1), date(2026, 11, 29), 5_000_000)
    counts = pd.Series({day: n for day, n in plan})
    assert counts.sum() == 5_000_000
    by_year = counts.groupby([d.year for d in counts.index]).mean()
    assert by_year[2025] > 20 * by_year[2012]
    assert by_year.is_monotonic_increasing
    weekday = counts.groupby([d.weekday() for d in counts.index]).mean()
    assert weekday[6] < weekday[1]
