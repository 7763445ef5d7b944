"""The daily partitions by ingestion date, and the platform's "today" they end before."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, timedelta

import dagster as dg

from ml_assets.constants import PARTITIONS_START_DATE, TODAY_ENV_VAR

# ML_ASSETS_TODAY is read here rather than in definitions.py: every partitioned asset binds the
# partitions definition when its module is imported.


def pinned_today(environ: Mapping[str, str]) -> date | None:
    """The day set in ML_ASSETS_TODAY, or None when the platform follows the real date."""
    text = environ.get(TODAY_ENV_VAR, "").strip()
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"{TODAY_ENV_VAR}={text!r} is not a date in YYYY-MM-DD form: fix it, or unset it to "
            "follow the real date"
        ) from None


def platform_today(
    environ: Mapping[str, str] = os.environ,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> date:
    """Today in UTC (partitions are UTC days, whatever the machine's zone), unless pinned."""
    return pinned_today(environ) or now().astimezone(UTC).date()


def daily_partitions_before(today: date | None) -> dg.DailyPartitionsDefinition:
    """One partition per day from the first CFPB complaint to the day before `today`.

    None follows the clock: the last partition is yesterday (the last complete UTC day) and a
    long-running process gains a partition every day. A file for today is reported by the
    sensor and picked up once its day is complete.
    """
    return dg.DailyPartitionsDefinition(
        start_date=PARTITIONS_START_DATE, end_date=today.isoformat() if today else None
    )


def request_day_partitions_through(today: date | None) -> dg.DailyPartitionsDefinition:
    """The monitoring assets' request days: like `daily_partitions_before`, and today as well.

    The endpoint logs today's requests as they come: today's partition exists so that its logs
    so far can be ingested (the sensor does it when intraday ingestion is on, a user from the UI).
    """
    return dg.DailyPartitionsDefinition(
        start_date=PARTITIONS_START_DATE,
        end_date=(today + timedelta(days=1)).isoformat() if today else None,
        end_offset=1,
    )


daily_partitions = daily_partitions_before(pinned_today(os.environ))
request_day_partitions = request_day_partitions_through(pinned_today(os.environ))
