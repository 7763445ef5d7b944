"""The daily partitions by ingestion date, and the platform's "today" they end before."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Final

import dagster as dg

from ml_assets.settings import Settings, load_settings

# The CFPB complaint database starts on 2011-12-01; the synthetic feed runs up to yesterday.
PARTITIONS_START_DATE: Final = "2011-12-01"

# The platform's today is read here rather than in definitions.py: every partitioned asset binds
# the partitions definition when its module is imported.


def platform_today(
    settings: Settings | None = None, now: Callable[[], datetime] = lambda: datetime.now(UTC)
) -> date:
    """Today in UTC (partitions are UTC days, whatever the machine's zone), unless pinned."""
    pinned = (settings or load_settings()).today
    return pinned or now().astimezone(UTC).date()


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


# ML_ASSETS_TODAY (settings.today) pins it: a replay of a past period, or a test's fixed world.
PINNED_TODAY = load_settings().today
daily_partitions = daily_partitions_before(PINNED_TODAY)
request_day_partitions = request_day_partitions_through(PINNED_TODAY)
