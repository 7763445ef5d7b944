"""How many complaints a day receives: growth over the years, fewer at weekends."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np

# Weekday volume, Monday first: the CFPB receives fewer complaints at weekends.
WEEKDAY_FACTORS: tuple[float, ...] = (1.06, 1.08, 1.05, 1.02, 0.98, 0.92, 0.9)
# Yearly growth of the complaint volume (log scale): the CFPB received about 200 complaints a day
# in 2012 and thousands a day in the 2020s, about 30 % more each year.
VOLUME_GROWTH_PER_YEAR = 0.30


def rows_for_day(day: date, rows_per_day: int) -> int:
    """A day's row count: `rows_per_day` with a deterministic weekday effect, never 0 if asked."""
    if rows_per_day <= 0:
        return 0
    return max(1, round(rows_per_day * WEEKDAY_FACTORS[day.weekday()]))


def rows_by_day(start: date, end: date, rows: int) -> list[tuple[date, int]]:
    """`rows` complaints spread over [start, end], growing over the years, fewer at weekends.

    The counts add up to exactly `rows` (cumulative rounding of the days' weights).
    """
    days = (end - start).days + 1
    if days < 1:
        raise ValueError(f"the export's end {end} is before its start {start}")
    offsets = np.arange(days)
    weekdays = (start.weekday() + offsets) % 7
    weights = (
        np.exp(VOLUME_GROWTH_PER_YEAR * offsets / 365.25) * np.array(WEEKDAY_FACTORS)[weekdays]
    )
    cumulative = np.floor(np.cumsum(weights) / weights.sum() * rows + 1e-9).astype(np.int64)
    counts = np.diff(cumulative, prepend=0)
    return [(start + timedelta(days=int(i)), int(n)) for i, n in zip(offsets, counts, strict=True)]
