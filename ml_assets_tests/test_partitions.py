"""The platform's today and the daily partitions that end before it."""

from datetime import UTC, date, datetime, timedelta, timezone

import pytest
import time_machine

from ml_assets.partitions import (
    daily_partitions,
    daily_partitions_before,
    platform_today,
    request_day_partitions,
    request_day_partitions_through,
)
from ml_assets.settings import Settings, SettingsError, load_settings
from ml_assets_tests.world import TODAY, YESTERDAY

TODAY_ENV_VAR = Settings.env_name("today")

# 23:30 on 30 November in New York is already 1 December in UTC.
EVENING_IN_NEW_YORK = datetime(2026, 11, 30, 23, 30, tzinfo=timezone(timedelta(hours=-5)))


def test_without_a_pin_today_is_the_clocks_utc_day(monkeypatch: pytest.MonkeyPatch) -> None:
    assert platform_today(Settings(today=None), lambda: EVENING_IN_NEW_YORK) == date(2026, 12, 1)
    monkeypatch.setenv(TODAY_ENV_VAR, " ")
    assert load_settings().today is None


def test_a_pin_overrides_the_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TODAY_ENV_VAR, "2016-02-29")
    assert platform_today(now=lambda: EVENING_IN_NEW_YORK) == date(2016, 2, 29)


def test_a_malformed_pin_says_how_to_fix_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TODAY_ENV_VAR, "29/02/2016")
    with pytest.raises(
        SettingsError,
        match=r"ML_ASSETS_TODAY='29/02/2016': Input should be a valid date.* unset it",
    ):
        load_settings()


def test_pinned_partitions_end_the_day_before_whatever_the_clock() -> None:
    partitions = daily_partitions_before(date(2016, 3, 1))
    with time_machine.travel(datetime(2031, 7, 4, 12, tzinfo=UTC), tick=False):
        assert partitions.get_last_partition_key() == "2016-02-29"
        assert not partitions.has_partition_key("2016-03-01")
    assert partitions.get_first_partition_key() == "2011-12-01"


def test_unpinned_partitions_grow_with_the_clock() -> None:
    partitions = daily_partitions_before(None)
    with time_machine.travel(datetime(2026, 11, 30, 0, 0, 1, tzinfo=UTC), tick=False):
        assert partitions.get_last_partition_key() == "2026-11-29"
    with time_machine.travel(datetime(2026, 12, 1, 0, 0, 1, tzinfo=UTC), tick=False):
        assert partitions.get_last_partition_key() == "2026-11-30"


def test_the_suite_runs_in_its_pinned_world() -> None:
    assert platform_today() == TODAY
    assert daily_partitions.get_last_partition_key() == YESTERDAY.isoformat()


def test_request_days_run_up_to_today_pinned_or_with_the_clock() -> None:
    assert request_day_partitions.get_last_partition_key() == TODAY.isoformat()
    assert daily_partitions.get_last_partition_key() == YESTERDAY.isoformat()
    unpinned = request_day_partitions_through(None)
    with time_machine.travel(datetime(2026, 11, 30, 23, 59, 59, tzinfo=UTC), tick=False):
        assert unpinned.get_last_partition_key() == "2026-11-30"
    with time_machine.travel(datetime(2026, 12, 1, 0, 0, 1, tzinfo=UTC), tick=False):
        assert unpinned.get_last_partition_key() == "2026-12-01"
