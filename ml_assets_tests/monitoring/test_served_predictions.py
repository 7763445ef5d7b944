"""`served_predictions`: the endpoint's logs read line by line, nothing dropped, each day once."""

import io
import json
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import pytest

from ml_assets.assets.keys import WAREHOUSE_SCHEMA
from ml_assets.assets.monitoring import served_predictions
from ml_assets.definitions import local_resources
from ml_assets.jobs import served_predictions_job
from ml_assets.monitoring.served import (
    expired_days,
    file_lines,
    line_count,
    log_digest,
    parse_prediction_logs,
    users_traffic,
)
from ml_assets.partitions import request_day_partitions_through
from ml_assets.settings import Settings
from resources.compat.dagster_testing import create_run_for_test
from resources.home import ProjectHome
from resources.prediction_logs import PredictionLogs
from sensors.prediction_logs import MAX_ATTEMPTS, make_prediction_log_sensor

DAY = "2016-01-05"
# The sensor's calendar: 2016-01-09 is the last complete day, 2016-01-10 is still being written.
REQUEST_DAYS = request_day_partitions_through(date(2016, 1, 10))
sensor = make_prediction_log_sensor(served_predictions_job, REQUEST_DAYS)


def logged(day: str = DAY, n: int = 0, **changes: object) -> str:
    """A log line as the endpoint writes it (ml_assets/serving/app.py)."""
    record = {
        "request_time": f"{day}T10:00:0{n % 10}.000+00:00",
        "model_name": "complaint_dispute_model",
        "model_version": "3",
        "decision_threshold": 0.31,
        "inputs": {"complaint_id": f"c-{n}", "product": "Mortgage", "state": "CA"},
        "dispute_probability": 0.2,
        "disputed": False,
        **changes,
    }
    return json.dumps(record)


def test_every_line_is_a_served_prediction_or_quarantined_with_its_reason() -> None:
    good = [logged(n=0), logged(n=1, model_version="4", dispute_probability=0.7, disputed=True)]
    bad = [
        '{"request_time": "2016-01-05T10:00:00+00:00", "model_na',  # a torn write
        logged(n=2, dispute_probability=1.5),
        logged(n=3, inputs={"complaint_id": "c-3", "colour": "red"}),
        logged(n=4, day="2016-01-06"),
        "",
    ]
    first = "\n".join([good[0], bad[0], bad[1], bad[4]]) + "\n"
    second = "\n".join([bad[2], good[1], bad[3]]).encode() + b"\n\xff\xfe\n"
    log = parse_prediction_logs(
        DAY,
        [
            ("2016-01-05/a.jsonl", file_lines(first.encode())),
            ("2016-01-05/b.jsonl", file_lines(second)),
        ],
    )

    served = log.predictions
    assert served["complaint_id"].tolist() == ["c-0", "c-1"]
    assert served["model_version"].tolist() == ["3", "4"]
    assert served["dispute_probability"].tolist() == [0.2, 0.7]
    assert served["disputed"].tolist() == [False, True]
    assert served["decision_threshold"].tolist() == [0.31, 0.31]
    assert served["request_date"].astype(str).tolist() == [DAY, DAY]
    assert str(served["request_time"].dt.tz) == "UTC"
    assert json.loads(served["inputs"].iloc[0]) == {
        "complaint_id": "c-0",
        "product": "Mortgage",
        "state": "CA",
    }
    assert list(zip(served["source_file"], served["line_number"], strict=True)) == [
        ("2016-01-05/a.jsonl", 1),
        ("2016-01-05/b.jsonl", 2),
    ]

    quarantined = log.quarantined.set_index(["source_file", "line_number"])["reason"].to_dict()
    # Nothing is dropped: 8 lines read, 2 served, 6 quarantined, each with why.
    assert len(quarantined) == 6
    assert "Invalid JSON" in quarantined[("2016-01-05/a.jsonl", 2)]
    assert quarantined[("2016-01-05/a.jsonl", 3)].startswith("dispute_probability: Input should be")
    assert "Invalid JSON" in quarantined[("2016-01-05/a.jsonl", 4)]  # a blank line
    assert quarantined[("2016-01-05/b.jsonl", 1)] == "inputs.colour: Extra inputs are not permitted"
    assert quarantined[("2016-01-05/b.jsonl", 3)].endswith("is not of 2016-01-05")
    assert "Invalid JSON" in quarantined[("2016-01-05/b.jsonl", 4)]  # not UTF-8
    assert log.quarantined.set_index("line_number")["line"][2] == bad[0]


def test_an_empty_day_gives_empty_typed_tables() -> None:
    log = parse_prediction_logs(DAY, [("2016-01-05/a.jsonl", file_lines(b""))])
    assert log.predictions.empty and log.quarantined.empty
    assert str(log.predictions["dispute_probability"].dtype) == "float64"


def test_the_version_of_a_day_is_its_files_names_and_sizes() -> None:
    assert log_digest([("a", 10), ("b", 5)]) == log_digest([("b", 5), ("a", 10)])
    assert log_digest([("a", 10)]) != log_digest([("a", 11)])


class _BoundedReads:
    """A log file that records the size asked of every read, and offers no other way to read
    (iterating, `read()` without a size or `readlines()` fail)."""

    def __init__(self, handle: io.BufferedReader) -> None:
        self.handle = handle
        self.sizes: list[int] = []
        self.consumed = 0

    def readline(self, size: int) -> bytes:
        self.sizes.append(size)
        line = self.handle.readline(size)
        self.consumed += len(line)
        return line

    def __enter__(self) -> "_BoundedReads":
        return self

    def __exit__(self, *_: object) -> None:
        self.handle.close()


def _spied_open(monkeypatch: pytest.MonkeyPatch) -> list[_BoundedReads]:
    """Every log file the resource opens from now on, spied on."""
    opened: list[_BoundedReads] = []
    real_open = Path.open

    def spied(path: Path, *args: Any, **kwargs: Any) -> _BoundedReads:
        opened.append(_BoundedReads(real_open(path, *args, **kwargs)))
        return opened[-1]

    monkeypatch.setattr(Path, "open", spied)
    return opened


def test_a_days_log_is_read_a_line_at_a_time_never_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lines = [logged(n=n) for n in range(2000)]  # 527 KB, 260 bytes a line
    bound = 1024  # what a line may take here: 500 times less than the file
    path = tmp_path / DAY / "replica.jsonl"
    path.parent.mkdir()
    path.write_text("\n".join(lines) + "\n")
    logs = PredictionLogs(root=str(tmp_path))
    (listed,) = logs.files_for_day(DAY)
    with path.open("a") as handle:  # appended after the listing: not read this time
        handle.write(logged(n=2000) + "\n")

    opened = _spied_open(monkeypatch)
    reader = logs.iter_lines(listed, bound)
    first = next(reader)
    (handle,) = opened
    # Lazy: one line read when one is asked for.
    assert first == lines[0].encode() and handle.consumed == len(first) + 1
    log = parse_prediction_logs(DAY, [(listed.name, _counting(reader, bound))])

    assert log.quarantined.empty and len(log.predictions) == 1999  # the rest of the listed lines
    assert all(0 < size <= bound + 1 for size in handle.sizes)  # never an unbounded read
    assert handle.consumed == listed.size
    monkeypatch.undo()
    assert line_count(logs.iter_lines(listed, bound)) == 2000


def _counting(lines: Iterator[bytes], bound: int) -> Iterator[bytes]:
    """The lines, each checked to be within the bound as the parser takes it."""
    for line in lines:
        assert len(line) <= bound
        yield line


@pytest.mark.parametrize("ending", ["\n", ""])
def test_an_over_long_line_is_cut_quarantined_and_the_next_keeps_its_number(
    tmp_path: Path, ending: str
) -> None:
    bound = 1024
    path = tmp_path / DAY / "replica.jsonl"
    path.parent.mkdir()
    over_long = logged(n=1, inputs={"complaint_id": "c-1", "company": "x" * 100_000})
    path.write_text("\n".join([logged(n=0), over_long, logged(n=2), over_long]) + ending)
    logs = PredictionLogs(root=str(tmp_path))
    (listed,) = logs.files_for_day(DAY)

    log = parse_prediction_logs(DAY, [(listed.name, logs.iter_lines(listed, bound))])
    assert log.predictions["line_number"].tolist() == [1, 3]
    assert log.quarantined["line_number"].tolist() == [2, 4]
    assert log.quarantined["line"].str.len().tolist() == [bound, bound]
    assert line_count(logs.iter_lines(listed, bound)) == 4


def test_only_signed_smoke_requests_are_left_out_of_users_traffic() -> None:
    day_lines = [
        logged(n=0),
        logged(n=1, inputs={"complaint_id": "deploy-smoke-1"}),  # an id anyone can send
        logged(n=2, inputs={"complaint_id": "deploy-smoke-2"}, smoke=True),  # the deployer's
        logged(n=3, inputs={"complaint_id": "c-3"}, smoke=True),
    ]
    log = parse_prediction_logs(DAY, [("a.jsonl", file_lines("\n".join(day_lines).encode()))])
    assert log.predictions["smoke"].tolist() == [False, False, True, True]
    assert users_traffic(log.predictions)["complaint_id"].tolist() == ["c-0", "deploy-smoke-1"]
    # Tables stored before the mark was logged: every row is users' traffic, prefix or not.
    older = log.predictions.drop(columns="smoke")
    assert len(users_traffic(older)) == 4
    # Rows stored before, in a table that gained the column since: NULL, users' traffic.
    gained = log.predictions.astype({"smoke": "object"})
    gained.loc[gained.index[:3], "smoke"] = None
    assert users_traffic(gained)["complaint_id"].tolist() == [
        "c-0",
        "deploy-smoke-1",
        "deploy-smoke-2",
    ]


def _write(home: ProjectHome, day: str, name: str, lines: list[str]) -> Path:
    path = home.predictions / day / name
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        handle.write("\n".join(lines) + "\n")
    return path


def _tick(instance: dg.DagsterInstance, home: ProjectHome, cursor: str | None) -> dg.SensorResult:
    context = dg.build_sensor_context(
        instance=instance,
        cursor=cursor,
        resources={"prediction_logs": PredictionLogs(root=str(home.predictions))},
    )
    return sensor(context)


def _rows(home: ProjectHome, table: str) -> list[tuple]:
    with duckdb.connect(str(home.warehouse), read_only=True) as conn:
        return conn.execute(
            f"select source_file, line_number from {WAREHOUSE_SCHEMA}.{table} order by all"
        ).fetchall()


@pytest.fixture
def home(tmp_path: Path) -> ProjectHome:
    return ProjectHome(tmp_path / "home")


def test_a_complete_day_is_ingested_once_and_again_only_when_it_grows(home: ProjectHome) -> None:
    _write(home, DAY, "replica-a.jsonl", [logged(n=0), logged(n=1)])
    _write(home, DAY, "replica-b.jsonl", [logged(n=2), "not json"])
    _write(home, "2016-01-10", "replica-a.jsonl", [logged(day="2016-01-10")])
    with dg.instance_for_test() as instance:
        first = _tick(instance, home, None)
        assert [r.partition_key for r in first.run_requests] == [DAY]
        assert first.skip_reason is None
        # Until the day is ingested each tick asks again under the same run key, which Dagster
        # launches once.
        (same,) = _tick(instance, home, first.cursor).run_requests
        assert same.run_key == first.run_requests[0].run_key

        # A failed (or killed) run: the day is requested again, under the next attempt's key.
        create_run_for_test(
            instance,
            job_name="served_predictions_job",
            status=dg.DagsterRunStatus.FAILURE,
            tags=first.run_requests[0].tags,
        )
        (retry,) = _tick(instance, home, first.cursor).run_requests
        assert retry.run_key.endswith("#1") and first.run_requests[0].run_key.endswith("#0")
        for _ in range(MAX_ATTEMPTS - 1):
            create_run_for_test(
                instance,
                job_name="served_predictions_job",
                status=dg.DagsterRunStatus.FAILURE,
                tags=first.run_requests[0].tags,
            )
        gave_up = _tick(instance, home, first.cursor)
        assert gave_up.run_requests == []  # reported as an error in the tick's log

        def ingest() -> dg.ExecuteInProcessResult:
            return dg.materialize(
                [served_predictions],
                partition_key=DAY,
                resources=local_resources(home),
                instance=instance,
                raise_on_error=False,
            )

        result = ingest()
        assert result.success
        (check,) = result.get_asset_check_evaluations()
        assert not check.passed and check.metadata["quarantined"].value == 1
        assert _rows(home, "served_predictions") == [
            ("2016-01-05/replica-a.jsonl", 1),
            ("2016-01-05/replica-a.jsonl", 2),
            ("2016-01-05/replica-b.jsonl", 1),
        ]
        assert _rows(home, "quarantined_predictions") == [("2016-01-05/replica-b.jsonl", 2)]
        # A fresh cursor (a reset, a new daemon): the instance knows the day is ingested.
        fresh = _tick(instance, home, None)
        assert fresh.run_requests == []
        assert "not complete yet, from 2016-01-10 on: 2016-01-10" in fresh.skip_reason.skip_message

        _write(home, DAY, "replica-b.jsonl", [logged(n=3)])  # a late flush
        again = _tick(instance, home, fresh.cursor)
        assert [r.partition_key for r in again.run_requests] == [DAY]
        assert again.run_requests[0].run_key != first.run_requests[0].run_key
        assert ingest().success
        assert len(_rows(home, "served_predictions")) == 4  # the day replaced, not appended
        assert len(_rows(home, "quarantined_predictions")) == 1


def test_todays_logs_so_far_are_ingested_at_most_as_often_as_asked(home: ProjectHome) -> None:
    today = "2016-01-10"
    now = [1_000_000.0]
    intraday = make_prediction_log_sensor(
        served_predictions_job, REQUEST_DAYS, intraday_every_s=600, clock=lambda: now[0]
    )

    def tick(cursor: str | None) -> dg.SensorResult:
        context = dg.build_sensor_context(
            instance=instance,
            cursor=cursor,
            resources={"prediction_logs": PredictionLogs(root=str(home.predictions))},
        )
        return intraday(context)

    _write(home, today, "replica-a.jsonl", [logged(day=today)])
    with dg.instance_for_test() as instance:
        first = tick(None)
        assert [r.partition_key for r in first.run_requests] == [today]
        _write(home, today, "replica-a.jsonl", [logged(day=today, n=1)])  # it grew
        now[0] += 599
        waited = tick(first.cursor)
        assert waited.run_requests == []
        assert "from 2016-01-10 on: 2016-01-10" in waited.skip_reason.skip_message
        now[0] += 2  # 601 s after the first request
        (again,) = tick(waited.cursor).run_requests
        assert again.partition_key == today and again.run_key != first.run_requests[0].run_key
    # Off (the default): today waits until it is complete, however long.
    with dg.instance_for_test() as instance:
        assert _tick(instance, home, None).run_requests == []


def test_expired_days_are_those_before_the_retention_cutoff() -> None:
    days = ["2016-01-04", "2016-01-05", "2016-01-06"]
    # Kept for 30 days: on 2016-02-05 the cutoff is 2016-01-06, which is still kept.
    assert expired_days(days, date(2016, 2, 5), 30) == ["2016-01-04", "2016-01-05"]
    assert expired_days(days, date(2016, 1, 7), 30) == []


def test_logs_past_retention_are_deleted_only_once_every_line_is_stored(
    home: ProjectHome, monkeypatch: pytest.MonkeyPatch
) -> None:
    ingested, pending, later = DAY, "2016-01-06", "2016-02-19"
    _write(home, ingested, "replica-a.jsonl", [logged(n=0), "not json"])
    _write(home, pending, "replica-a.jsonl", [logged(day=pending)])
    _write(home, later, "replica-a.jsonl", [logged(day=later)])
    monkeypatch.setenv(Settings.env_name("prediction_retention_days"), "30")

    def ingest(day: str, today: str) -> dg.ExecuteInProcessResult:
        monkeypatch.setenv(Settings.env_name("today"), today)
        return dg.materialize(
            [served_predictions],
            partition_key=day,
            resources=local_resources(home),
            instance=instance,
            raise_on_error=False,
        )

    def deleted(result: dg.ExecuteInProcessResult) -> list[str]:
        (event,) = result.asset_materializations_for_node("served_predictions")[:1]
        return event.metadata["expired_log_days_deleted"].value

    with dg.instance_for_test() as instance:
        first = ingest(ingested, "2016-01-10")  # within retention: nothing is deleted
        assert first.success and deleted(first) == []
        # Later: the ingested day is past retention and goes; the pending one, never ingested, stays.
        second = ingest(later, "2016-02-20")
        assert second.success and deleted(second) == [ingested]
        assert sorted(p.name for p in home.predictions.iterdir()) == [pending, later]
        # The stored rows of the deleted day stay, and rerunning it is refused, not emptied.
        rerun = ingest(ingested, "2016-02-20")
        assert not rerun.success
        assert (
            "past their retention"
            in rerun.get_step_failure_events()[0].step_failure_data.error.message
        )
        assert _rows(home, "served_predictions")[0] == ("2016-01-05/replica-a.jsonl", 1)
        assert _rows(home, "quarantined_predictions") == [("2016-01-05/replica-a.jsonl", 2)]
