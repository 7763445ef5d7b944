"""The drift story's calendar: which days are stable, drifted and answered by the new champion."""

from datetime import date, timedelta

from ml_assets.demo_drift import DriftDays, DriftStory


def test_the_story_days_end_the_day_before_today_in_order() -> None:
    today = date(2027, 3, 1)  # across February's end
    story = DriftStory()
    days = DriftDays.before(today, story)
    assert len(days.stable) == story.stable_days and len(days.drifted) == story.drifted_days
    assert days.stable[-1] == today - timedelta(days=15)
    assert days.drifted[0] == today - timedelta(days=14)
    assert days.drifted[-1] == today - timedelta(days=2)
    assert days.next_day == date(2027, 2, 28) and days.today == today
    calendar = [*days.stable, *days.drifted, days.next_day]
    assert calendar == [calendar[0] + timedelta(days=i) for i in range(len(calendar))]
    assert days.drift.start == days.drifted[0]
