"""The landing sensor's planning on plain inputs: which days become which run requests."""

from collections.abc import Callable
from datetime import date, timedelta

import dagster as dg

from ml_assets.assets.day_ranges import DAYS_PER_RUN, MAX_LANDING_BYTES_PER_RUN
from sensors.landing_files import (
    DIGEST_CHARS,
    DIGEST_TAG,
    MTIME_LOOKBACK_NS,
    RETRY_TAGS,
    DayFiles,
    LandingCursor,
    LandingPlan,
    days_to_read,
    plan_landing_runs,
)

KEYS = [dg.AssetKey("raw_complaints")]
FIRST = date(2016, 1, 1)  # the partitions: the days of 2016
PARTITIONS = {(FIRST + timedelta(days=i)).isoformat() for i in range(366)}
SECOND = 1_000_000_000


def in_partitions(day: str) -> bool:
    return day in PARTITIONS


def days_from(first: date, count: int) -> list[str]:
    return [(first + timedelta(days=i)).isoformat() for i in range(count)]


def never_ingested(day: str) -> None:
    return None


def files(content: str, size: int = 100) -> DayFiles:
    """A day's files whose full digest is `content` repeated past the cursor's digest length."""
    return DayFiles(digest=(content * 64)[:64], size_bytes=size)


def span(request: dg.RunRequest) -> str:
    """A request's day, or its range of days."""
    if request.partition_key is not None:
        return request.partition_key
    tags = request.tags
    return f"{tags['dagster/asset_partition_range_start']}..{tags['dagster/asset_partition_range_end']}"


def plan(
    read: dict[str, DayFiles],
    cursor: LandingCursor | None = None,
    stamps: dict[str, int] | None = None,
    ingested: Callable[[str], str | None] = never_ingested,
) -> LandingPlan:
    stamps = stamps if stamps is not None else dict.fromkeys(read, 10 * SECOND)
    return plan_landing_runs(cursor or LandingCursor(), stamps, read, in_partitions, ingested, KEYS)


def test_a_new_day_is_requested_alone_with_its_digest_and_first_revision() -> None:
    result = plan({"2016-01-05": files("a")})
    (request,) = result.requests
    digest = files("a").digest[:DIGEST_CHARS]
    assert request.partition_key == "2016-01-05"
    assert request.run_key == f"2016-01-05@{digest}#1"
    assert request.tags == {DIGEST_TAG: digest, **RETRY_TAGS}
    assert request.asset_selection == KEYS
    assert result.cursor.days == {"2016-01-05": [digest, 1]}
    assert result.cursor.stamps == {"2016-01-05": 10 * SECOND}
    assert result.cursor.watermark_ns == 10 * SECOND
    assert result.skip_reason() is None


def test_the_same_content_again_is_not_requested_and_a_new_one_is_the_next_revision() -> None:
    first = plan({"2016-01-05": files("a")})
    again = plan({"2016-01-05": files("a")}, first.cursor)
    assert again.requests == [] and again.unchanged == ["2016-01-05"]
    assert again.skip_reason() == (
        "no new or changed landing files; re-read with unchanged content: 2016-01-05"
    )
    changed = plan({"2016-01-05": files("b")}, again.cursor)
    (request,) = changed.requests
    assert request.run_key == f"2016-01-05@{files('b').digest[:DIGEST_CHARS]}#2"
    back = plan({"2016-01-05": files("a")}, changed.cursor)  # A -> B -> A still triggers
    assert [r.run_key for r in back.requests] == [
        f"2016-01-05@{files('a').digest[:DIGEST_CHARS]}#3"
    ]


def test_a_day_ingested_with_these_bytes_is_recorded_not_requested() -> None:
    ingested = {"2016-01-05": files("a").digest}
    result = plan({"2016-01-05": files("a")}, ingested=ingested.get)
    assert result.requests == [] and result.unchanged == ["2016-01-05"]
    assert result.cursor.days == {"2016-01-05": [files("a").digest[:DIGEST_CHARS], 1]}


def test_consecutive_days_run_as_ranges_and_a_lone_day_alone() -> None:
    days = [*days_from(FIRST, DAYS_PER_RUN + 1), "2016-12-01"]
    result = plan({day: files(day) for day in days})
    spans = [span(r) for r in result.requests]
    # DAYS_PER_RUN days at most a run; the one after them, and a day apart, alone.
    assert spans == [f"{days[0]}..{days[DAYS_PER_RUN - 1]}", days[DAYS_PER_RUN], "2016-12-01"]
    assert len({r.run_key for r in result.requests}) == 3


def test_consecutive_days_too_large_together_run_apart() -> None:
    days = days_from(FIRST, 2)
    result = plan({day: files(day, size=MAX_LANDING_BYTES_PER_RUN) for day in days})
    assert [r.partition_key for r in result.requests] == days


def test_a_folder_outside_the_partitions_is_reported_once_per_content_and_forgotten_once_gone() -> (
    None
):
    read = {"2015-12-31": files("x"), "misc": files("y")}
    first = plan(read)
    assert first.requests == [] and first.reported == ["2015-12-31", "misc"]
    assert first.skip_reason() == "ignored folders outside the partitions: 2015-12-31, misc"
    again = plan(read, first.cursor)
    assert again.reported == [] and again.skip_reason() == "no new or changed landing files"
    gone = plan({}, again.cursor, stamps={"misc": 10 * SECOND})
    assert gone.cursor.outside == {"misc": files("y").digest[:DIGEST_CHARS]}


def test_planning_leaves_the_given_cursor_as_it_was() -> None:
    cursor = LandingCursor(watermark_ns=5, days={"2016-01-05": ["old", 1]}, stamps={"x": 1})
    before = cursor.dumps()
    plan({"2016-01-05": files("a"), "2016-01-06": files("b")}, cursor)
    assert cursor.dumps() == before


def test_a_tick_reads_restamped_recent_and_newly_in_partition_days_only() -> None:
    watermark = 100 * SECOND
    cursor = LandingCursor(
        watermark_ns=watermark,
        stamps={
            "2016-01-01": 10 * SECOND,  # unchanged and old: not read
            "2016-01-02": 10 * SECOND,  # restamped below
            "2016-01-03": watermark - MTIME_LOOKBACK_NS + 1,  # among the newest: read again
            "2016-01-04": 10 * SECOND,  # unchanged, but it was outside the partitions
            "2015-12-31": 10 * SECOND,  # unchanged and still outside
        },
        outside={"2016-01-04": "d", "2015-12-31": "e", "2015-12-30": "gone"},
    )
    stamps = {**cursor.stamps, "2016-01-02": 3 * SECOND, "2016-01-09": 1}  # a folder moved in
    assert days_to_read(cursor, stamps, in_partitions) == [
        "2016-01-02",
        "2016-01-03",
        "2016-01-04",
        "2016-01-09",
    ]
