import os
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest
import time_machine

from ml_assets.assets.day_ranges import DAYS_PER_RUN
from ml_assets.definitions import local_resources
from ml_assets.ingest.landing import COMPLAINTS_FOLDER
from ml_assets.jobs import DATA_LAYER_ASSETS, DATA_LAYER_KEYS, data_layer_job
from ml_assets.partitions import daily_partitions
from ml_assets.synthetic.export import generate_landing
from ml_assets.synthetic.labels import labels_published
from ml_assets_tests.factories import csv_file, csv_line, land, touch
from ml_assets_tests.world import TODAY
from resources.home import ProjectHome
from resources.landing_zone import LocalLandingZone, change_stamp_ns
from sensors.landing_files import make_landing_file_sensor

DAY = "2016-01-05"
sensor = make_landing_file_sensor(data_layer_job, daily_partitions, DATA_LAYER_KEYS)


class Ticker:
    """Evaluates the sensor tick after tick, carrying the cursor as the daemon does."""

    def __init__(self, landing: Path, instance: dg.DagsterInstance) -> None:
        self.landing = landing
        self.instance = instance
        self.cursor: str | None = None

    def tick(self) -> dg.SensorResult:
        context = dg.build_sensor_context(
            instance=self.instance,
            cursor=self.cursor,
            resources={
                "landing_zone": LocalLandingZone(
                    root=str(self.landing), days_folder=COMPLAINTS_FOLDER
                )
            },
        )
        result = sensor(context)
        self.cursor = result.cursor
        return result


@pytest.fixture
def ticker(tmp_path: Path) -> Iterator[Ticker]:
    with dg.instance_for_test() as instance:
        yield Ticker(tmp_path / "home" / "landing", instance)


def _days(request: dg.RunRequest) -> list[str]:
    """The days a request runs: its partition, or every day of its range."""
    if request.partition_key is not None:
        return [request.partition_key]
    first = date.fromisoformat(request.tags["dagster/asset_partition_range_start"])
    last = date.fromisoformat(request.tags["dagster/asset_partition_range_end"])
    return [(first + timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]


def _partitions(result: dg.SensorResult) -> list[str]:
    return sorted(day for r in result.run_requests or [] for day in _days(r))


def test_the_sensor_is_running_by_default() -> None:
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING


def test_a_new_file_requests_its_partition_and_the_same_file_nothing(ticker: Ticker) -> None:
    land(ticker.landing, DAY, csv_file(csv_line()))
    first = ticker.tick()
    assert _partitions(first) == [DAY]
    assert first.run_requests[0].run_key.startswith(f"{DAY}@")

    again = ticker.tick()
    assert again.run_requests == []
    assert again.skip_reason.skip_message.startswith("no new or changed landing files")


def test_the_same_bytes_with_a_new_mtime_are_read_and_request_nothing(ticker: Ticker) -> None:
    path = land(ticker.landing, DAY, csv_file(csv_line()))
    assert _partitions(ticker.tick()) == [DAY]
    stamp = touch(path, seconds_ahead=60)
    assert change_stamp_ns(path.stat()) == stamp
    result = ticker.tick()
    assert result.run_requests == []
    assert result.skip_reason.skip_message == (
        f"no new or changed landing files; re-read with unchanged content: {DAY}"
    )


def test_a_stamp_from_the_future_does_not_hide_later_changes(ticker: Ticker) -> None:
    ahead = land(ticker.landing, DAY, csv_file(csv_line()))
    touch(ahead, seconds_ahead=3600)  # a source whose clock runs an hour fast
    other = land(ticker.landing, "2016-01-06", csv_file(csv_line(Date_received="2016-01-06")))
    assert _partitions(ticker.tick()) == [DAY, "2016-01-06"]
    other.write_text(csv_file(csv_line(Date_received="2016-01-06", State="NY")))
    assert _partitions(ticker.tick()) == ["2016-01-06"]


def test_changed_bytes_of_the_same_size_and_mtime_are_requested(ticker: Ticker) -> None:
    path = land(ticker.landing, DAY, csv_file(csv_line(State="MA")))
    first = ticker.tick().run_requests[0]
    before = path.stat()
    changed = csv_file(csv_line(State="NY"))
    assert len(changed.encode()) == before.st_size
    path.write_text(changed)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))  # as a tool preserving mtimes
    after = path.stat()
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    second = ticker.tick().run_requests
    # The change stamp is the later of mtime and ctime, and writing moved the ctime.
    assert [r.partition_key for r in second] == [DAY]
    assert second[0].run_key != first.run_key


def test_a_changed_file_requests_again_with_a_new_run_key(ticker: Ticker) -> None:
    path = land(ticker.landing, DAY, csv_file(csv_line()))
    first = ticker.tick().run_requests[0]
    path.write_text(csv_file(csv_line(), csv_line(Complaint_ID="2")))
    second = ticker.tick().run_requests
    assert [r.partition_key for r in second] == [DAY]
    assert second[0].run_key != first.run_key


def test_content_changing_back_still_triggers(ticker: Ticker) -> None:
    path = land(ticker.landing, DAY, csv_file(csv_line()))
    keys = [ticker.tick().run_requests[0].run_key]
    for text in (csv_file(csv_line(State="NY")), csv_file(csv_line())):
        path.write_text(text)
        keys.append(ticker.tick().run_requests[0].run_key)
    assert len(set(keys)) == 3


def test_only_the_changed_days_are_requested(ticker: Ticker) -> None:
    for day in ("2016-01-05", "2016-01-06", "2016-01-07"):
        land(ticker.landing, day, csv_file(csv_line(Date_received=day)))
    assert _partitions(ticker.tick()) == ["2016-01-05", "2016-01-06", "2016-01-07"]
    land(ticker.landing, "2016-01-06", csv_file(csv_line(Date_received="2016-01-06", State="NY")))
    land(ticker.landing, "2016-01-08", csv_file(csv_line(Date_received="2016-01-08")))
    assert _partitions(ticker.tick()) == ["2016-01-06", "2016-01-08"]


def test_folders_outside_the_partitions_are_reported_not_crashed_on(ticker: Ticker) -> None:
    today, tomorrow = TODAY.isoformat(), (TODAY + timedelta(days=1)).isoformat()
    for folder in ("2010-01-01", today, tomorrow, "misc"):
        land(ticker.landing, folder, csv_file(csv_line()))
    result = ticker.tick()
    assert result.run_requests == []
    message = result.skip_reason.skip_message
    assert (
        message == f"ignored folders outside the partitions: 2010-01-01, {today}, {tomorrow}, misc"
    )
    land(ticker.landing, DAY, csv_file(csv_line()))
    assert _partitions(ticker.tick()) == [DAY]  # and they are not reported again


def test_an_empty_landing_zone_skips(ticker: Ticker) -> None:
    assert ticker.tick().run_requests == []


def test_a_day_already_ingested_with_the_same_bytes_is_not_requested_again(ticker: Ticker) -> None:
    path = land(ticker.landing, DAY, csv_file(csv_line()))
    home = ProjectHome(ticker.landing.parent)
    result = dg.materialize(
        DATA_LAYER_ASSETS,
        resources=local_resources(home),
        partition_key=DAY,
        instance=ticker.instance,
    )
    assert result.success
    assert ticker.tick().run_requests == []  # a fresh cursor, but the instance knows the bytes
    path.write_text(csv_file(csv_line(State="NY")))
    assert _partitions(ticker.tick()) == [DAY]


def test_a_day_seen_before_it_was_a_partition_is_requested_once_it_is(ticker: Ticker) -> None:
    # On 2016-01-05 (UTC) the last partition is 2016-01-04: that day's folder is early.
    with time_machine.travel(datetime(2016, 1, 5, 6, tzinfo=UTC), tick=False):
        land(ticker.landing, DAY, csv_file(csv_line()))
        early = ticker.tick()
        assert early.run_requests == []
        assert DAY in early.skip_reason.skip_message
        quiet = ticker.tick()  # reported when new or changed, not on every tick
        assert quiet.skip_reason.skip_message == "no new or changed landing files"
    assert _partitions(ticker.tick()) == [DAY]  # a day later it is a partition
    assert ticker.tick().run_requests == []


def test_an_early_day_that_changes_is_reported_again(ticker: Ticker) -> None:
    with time_machine.travel(datetime(2016, 1, 5, 6, tzinfo=UTC), tick=False):
        path = land(ticker.landing, DAY, csv_file(csv_line()))
        assert DAY in ticker.tick().skip_reason.skip_message
        path.write_text(csv_file(csv_line(State="NY")))
        assert DAY in ticker.tick().skip_reason.skip_message


def _age(*paths: Path) -> None:
    """Give paths an old mtime, as `rsync -a`, `cp -p` and `mv` of a prepared folder keep."""
    old = datetime(2016, 1, 1, tzinfo=UTC).timestamp()
    for path in paths:
        os.utime(path, (old, old))


def test_a_day_folder_moved_in_with_old_mtimes_is_requested(ticker: Ticker, tmp_path: Path) -> None:
    land(ticker.landing, DAY, csv_file(csv_line()))
    assert _partitions(ticker.tick()) == [DAY]
    staged = land(
        tmp_path / "staging", "2016-01-06", csv_file(csv_line(Date_received="2016-01-06"))
    )
    _age(staged, staged.parent)
    staged.parent.rename(ticker.landing / "complaints" / "2016-01-06")
    assert _partitions(ticker.tick()) == ["2016-01-06"]


def test_a_file_replaced_with_its_old_mtime_kept_is_requested_again(ticker: Ticker) -> None:
    path = land(ticker.landing, DAY, csv_file(csv_line()))
    assert _partitions(ticker.tick()) == [DAY]
    path.write_text(csv_file(csv_line(State="NY")))  # cp -p: new content, old mtime
    _age(path, path.parent)
    assert _partitions(ticker.tick()) == [DAY]


def test_many_consecutive_days_are_requested_as_ranges_and_a_lone_day_alone(
    ticker: Ticker,
) -> None:
    first = date(2016, 1, 1)
    days = [(first + timedelta(days=i)).isoformat() for i in range(DAYS_PER_RUN + 30)]
    lone = (first + timedelta(days=len(days) + 10)).isoformat()
    for day in [*days, lone]:
        received = f"{day[5:7]}/{day[8:10]}/{day[:4]}"
        land(ticker.landing, day, csv_file(csv_line(Date_received=received)))
    result = ticker.tick()
    requests = sorted(result.run_requests, key=lambda r: _days(r)[0])
    assert [len(_days(r)) for r in requests] == [DAYS_PER_RUN, 30, 1]
    assert _partitions(result) == sorted([*days, lone])
    assert requests[-1].partition_key == lone  # a single day runs alone, as before
    assert len({r.run_key for r in requests}) == 3
    assert ticker.tick().run_requests == []  # the same files: nothing again


def test_late_labels_rerun_exactly_the_days_whose_labels_came_out(ticker: Ticker) -> None:
    start, days, delay = date(2016, 2, 1), 10, (1, 4)
    first_as_of, later_as_of = start + timedelta(days=days), start + timedelta(days=days + 2)

    def land_as_of(as_of: date) -> None:
        generate_landing(ticker.landing, start, days, 20, 7, label_delay_days=delay, as_of=as_of)

    land_as_of(first_as_of)
    assert len(_partitions(ticker.tick())) == days
    land_as_of(later_as_of)  # the same days published again, two days later
    came_out = {
        (start + timedelta(days=i)).isoformat()
        for i in range(days)
        if not labels_published(start + timedelta(days=i), first_as_of, 7, delay)
        and labels_published(start + timedelta(days=i), later_as_of, 7, delay)
    }
    assert came_out and len(came_out) < days
    assert set(_partitions(ticker.tick())) == came_out
    assert ticker.tick().run_requests == []
