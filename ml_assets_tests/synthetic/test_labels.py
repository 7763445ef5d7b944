"""Dispute labels: rates close to the real ones, and labels published days after the complaints."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pandas as pd
import pytest

from ml_assets.synthetic.export import generate_landing
from ml_assets.synthetic.labels import label_delay
from ml_assets_tests.synthetic.read_back import labels, parse


def test_dispute_rate_is_close_to_the_real_one(many_rows: pd.DataFrame) -> None:
    rate = labels(many_rows).mean()
    assert 0.17 <= rate <= 0.23
    missing = labels(many_rows).isna().mean()
    assert 0 < missing < 0.05


def test_dispute_rate_varies_by_company_response(many_rows: pd.DataFrame) -> None:
    by_response = labels(many_rows).groupby(many_rows["company_response"]).mean()
    assert by_response["Closed with monetary relief"] < by_response["Closed with explanation"]


def test_late_labels_land_first_without_and_then_with_labels(tmp_path: Path) -> None:
    start, days, delay = date(2016, 3, 1), 12, (2, 5)
    first_as_of = start + timedelta(days=days)  # the day after the last day
    later_as_of = first_as_of + timedelta(days=3)
    waits = {
        start + timedelta(days=i): label_delay(7, start + timedelta(days=i), delay)
        for i in range(days)
    }
    assert set(waits.values()) <= set(range(2, 6)) and len(set(waits.values())) > 1
    assert label_delay(7, start, delay) == waits[start]  # seeded: the same on every call

    def land(root: Path, as_of: date | None, delays: tuple[int, int] | None) -> dict[date, bytes]:
        paths = generate_landing(root, start, days, 30, 7, label_delay_days=delays, as_of=as_of)
        return {start + timedelta(days=i): p.read_bytes() for i, p in enumerate(paths)}

    published = land(tmp_path / "published", None, None)
    first = land(tmp_path / "live", first_as_of, delay)
    for day, text in first.items():
        labels = set(parse(text.decode())["consumer_disputed"].dropna())
        if day + timedelta(days=waits[day]) < first_as_of:
            assert text == published[day], day
        else:
            # Published without labels: every dispute field empty, everything else the same.
            assert labels == set(), day
            assert text != published[day]
            assert len(parse(text.decode())) == len(parse(published[day].decode()))
    later = land(tmp_path / "live", later_as_of, delay)
    changed = {day for day in first if later[day] != first[day]}
    assert changed == {
        day
        for day, wait in waits.items()
        if first_as_of <= day + timedelta(days=wait) < later_as_of
    }
    assert changed and all(later[day] == published[day] for day in changed)
    with pytest.raises(ValueError, match="needs as_of"):
        generate_landing(tmp_path / "x", start, 1, 10, 7, label_delay_days=delay)
