import asyncio
import json
import logging
import secrets
import socket
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import dagster as dg
import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from ml_assets.ingest.cfpb_format import read_landing_day
from ml_assets.ingest.validation import split_valid_rejected
from ml_assets.model.features import FEATURE_COLUMNS, records_to_arrays, to_features
from ml_assets.monitoring.served import file_lines, parse_prediction_logs, users_traffic
from ml_assets.privacy import MASK
from ml_assets.serving import app as served_app
from ml_assets.serving.deploy import features_to_record
from ml_assets.serving.feedback import PredictionLog
from ml_assets.serving.predictor import split_by_lengths
from ml_assets.serving.schemas import (
    FREE_TEXT_FIELDS,
    MAX_CODE_CHARS,
    MAX_LABEL_CHARS,
    MAX_LOGGED_LINE_BYTES,
    MAX_TEXT_CHARS,
    ChallengerConfig,
    Complaint,
    PredictRequest,
    ServingConfig,
)
from ml_assets.serving.smoke import is_smoke, load_key, sign, smoke_key
from ml_assets.synthetic.export import generate_day
from resources.ray_cluster import RayCluster

DAY = "2026-11-24"
NEVER_S = 3600.0  # a writer whose thread never flushes by itself: the test flushes it


def test_evaluation_rows_map_back_to_records_with_the_same_model_inputs() -> None:
    raw = read_landing_day(
        [("d.csv", generate_day(pd.Timestamp("2016-01-05").date(), 300, seed=3).encode())],
        "2016-01-05",
    )
    features = to_features(split_valid_rejected(raw).valid)[list(FEATURE_COLUMNS)]
    records = [features_to_record(row) for row in features.to_dict("records")]
    arrays = records_to_arrays(records)
    for name in FEATURE_COLUMNS:
        assert list(arrays[name]) == list(features[name].astype(str)), name


def test_the_prediction_log_writes_every_record_once_under_its_request_day(
    tmp_path: Path,
) -> None:
    # What an append costs the request path is measured by bench/prediction_log.py.
    log = PredictionLog(tmp_path, max_bytes_per_day=1 << 30)
    for i in range(1000):
        day = "2026-11-24" if i % 2 else "2026-11-25"
        log.append({"request_time": f"{day}T23:59:59", "model_version": "1", "inputs": {"i": i}})
    log.close()
    by_day = {
        folder.name: sorted(
            json.loads(line)["inputs"]["i"]
            for f in folder.glob("*.jsonl")
            for line in f.read_text().splitlines()
        )
        for folder in tmp_path.iterdir()
    }
    assert by_day == {"2026-11-24": list(range(1, 1000, 2)), "2026-11-25": list(range(0, 1000, 2))}
    assert (log.written, log.dropped) == (1000, 0)


def test_an_unwritable_log_folder_never_raises(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    log = PredictionLog(blocker, max_bytes_per_day=1 << 30)
    log.append({"request_time": "2026-11-24T10:00:00"})
    log.close()
    assert log.dropped == 1 and log.written == 0


def test_no_reachable_cluster_fails_with_how_to_start_one(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cluster = RayCluster(
        address=f"127.0.0.1:{port}", token_path=str(tmp_path / "t"), predictions_dir=str(tmp_path)
    )
    with pytest.raises(dg.Failure, match="make serve-up"):
        cluster.connect()


def test_probabilities_of_a_batch_split_back_in_request_order() -> None:
    parts = split_by_lengths(np.arange(6, dtype=float), [3, 1, 2])
    assert [list(p) for p in parts] == [[0, 1, 2], [3], [4, 5]]
    with pytest.raises(ValueError, match="6 values for 5"):
        split_by_lengths(np.arange(6, dtype=float), [3, 2])


def _record(n: int, day: str = DAY) -> dict[str, Any]:
    """A logged prediction of `day`, about 200 bytes once encoded."""
    return {"request_time": f"{day}T10:00:00.000+00:00", "inputs": {"complaint_id": f"c-{n}"}}


def _line_bytes(record: dict[str, Any]) -> int:
    return len(json.dumps(record).encode()) + 1


def test_past_its_byte_budget_a_day_is_logged_no_further_warned_once_and_counted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    size = _line_bytes(_record(0))
    log = PredictionLog(tmp_path, max_bytes_per_day=10 * size, flush_interval_s=NEVER_S)
    with caplog.at_level(logging.WARNING, logger="ml_assets.serving.feedback"):
        for batch in range(3):  # three flushes past the budget: one warning
            for n in range(6):
                log.append(_record(batch * 6 + n))
            log.flush()
        log.append(_record(99, day="2026-11-25"))  # another day has a budget of its own
        log.close()
    files = list((tmp_path / DAY).glob("*.jsonl"))
    lines = [json.loads(line) for f in files for line in f.read_text().splitlines()]
    # The first ten fit; every record after them is dropped, also the shorter ones.
    assert [r["inputs"]["complaint_id"] for r in lines] == [f"c-{n}" for n in range(10)]
    assert sum(f.stat().st_size for f in files) <= 10 * size
    assert (log.written, log.dropped) == (11, 8)
    warnings = [r for r in caplog.records if "reached their budget" in r.getMessage()]
    assert len(warnings) == 1 and DAY in warnings[0].getMessage()
    info = log.info(DAY)
    assert (info.budget_bytes, info.written_bytes_today, info.dropped_records) == (
        10 * size,
        10 * size,
        8,
    )

    # A restarted replica (another writer) counts the day's bytes on disk: nothing more fits.
    restarted = PredictionLog(tmp_path, max_bytes_per_day=10 * size, flush_interval_s=NEVER_S)
    restarted.append(_record(100))
    restarted.close()
    assert (restarted.written, restarted.dropped) == (0, 1)


def test_the_queue_is_bounded_in_bytes(tmp_path: Path) -> None:
    size = _line_bytes(_record(0))
    log = PredictionLog(
        tmp_path, max_bytes_per_day=1 << 30, max_queued_bytes=3 * size, flush_interval_s=NEVER_S
    )
    for n in range(5):
        log.append(_record(n))
    assert log.dropped == 2  # counted when refused, before anything is written
    log.close()
    assert log.written == 3


def test_every_free_text_field_is_masked_before_the_model_and_the_log() -> None:
    body = PredictRequest.model_validate(
        {
            "complaints": [
                {
                    "complaint_id": "3151234",
                    "company": "Acme, call me at 555-201-3344",
                    "sub_issue": "see www.example.com/me",
                    "zip_code": "94110",
                    "product": "Mortgage",
                    "consumer_complaint_narrative": "Reach me at jane.roe@example.com.",
                    "timely_response": True,
                }
            ]
        }
    )
    (record,) = served_app.request_records(body)
    assert record == {
        # A real CFPB id (7 digits, a local phone number's shape) stays: labels join on it.
        "complaint_id": "3151234",
        "company": f"Acme, call me at {MASK}",
        "sub_issue": f"see {MASK}",
        "zip_code": "94110",
        "product": "Mortgage",
        "consumer_complaint_narrative": f"Reach me at {MASK}.",
        "timely_response": True,
    }
    assert set(FREE_TEXT_FIELDS) == set(Complaint.model_fields) - {"complaint_id"}


@pytest.mark.parametrize(
    "complaint_id",
    ["jane.roe@example.com", "my name is Jane Roe", "12 Elm Street", "", "-1", "x" * 65],
)
def test_a_complaint_id_holds_an_identifier_and_no_text(complaint_id: str) -> None:
    # Never scrubbed (the key labels join on), so it cannot carry words, e-mails or addresses.
    with pytest.raises(ValidationError):
        PredictRequest.model_validate({"complaints": [{"complaint_id": complaint_id}]})
    for kept in ("3151234", "c-2016-01-05-000017", "deploy-smoke-1", "a1b2c3d4e5f6"):
        assert PredictRequest.model_validate({"complaints": [{"complaint_id": kept}]})


@pytest.mark.parametrize(
    ("field", "cap"),
    [("company", MAX_LABEL_CHARS), ("state", MAX_CODE_CHARS), ("timely_response", MAX_CODE_CHARS)],
)
def test_a_field_over_its_cap_is_refused_by_the_schema(field: str, cap: int) -> None:
    assert PredictRequest.model_validate({"complaints": [{field: "x" * cap}]})
    with pytest.raises(ValidationError) as error:
        PredictRequest.model_validate({"complaints": [{field: "x" * (cap + 1)}]})
    assert "string_too_long" in {e["type"] for e in error.value.errors()}
    # The contract says so: every field a caller types has a maxLength (FastAPI answers a 422).
    complaint = served_app.contract(False)["components"]["schemas"]["Complaint"]["properties"]
    for name, schema in complaint.items():
        strings = [s for s in schema["anyOf"] if s.get("type") == "string"]
        assert strings and all("maxLength" in s for s in strings), name


def test_a_logged_line_is_bounded_whatever_the_fields_hold() -> None:
    # Astral characters are the longest JSON escapes (a surrogate pair: 12 bytes).
    widest = "\U0001f600"
    caps = {"consumer_complaint_narrative": MAX_TEXT_CHARS}
    complaint = {
        name: widest * caps.get(name, MAX_LABEL_CHARS if name in _LABELS else MAX_CODE_CHARS)
        for name in FREE_TEXT_FIELDS
    }
    complaint["complaint_id"] = "x" * MAX_CODE_CHARS  # an identifier: ASCII, one byte each
    body = PredictRequest.model_validate({"complaints": [complaint]})
    record = {
        "request_time": f"{DAY}T10:00:00.000+00:00",
        "model_name": "complaint_dispute_model",
        "model_version": "123",
        "decision_threshold": 0.123456789,
        "inputs": body.complaints[0].model_dump(exclude_none=True),
        "dispute_probability": 0.123456789,
        "disputed": True,
        "role": "challenger",
        "smoke": False,
    }
    assert len(json.dumps(record)) + 1 <= MAX_LOGGED_LINE_BYTES


_LABELS = {
    name
    for name, field in Complaint.model_json_schema()["properties"].items()
    if any(s.get("maxLength") == MAX_LABEL_CHARS for s in field["anyOf"])
}


def test_only_the_deployment_key_signs_a_smoke_request_and_only_its_complaints() -> None:
    key = secrets.token_hex(32).encode()
    body = PredictRequest.model_validate({"complaints": [{"complaint_id": "deploy-smoke-1"}]})
    other = PredictRequest.model_validate({"complaints": [{"complaint_id": "c-1"}]})
    assert is_smoke(key, body, sign(key, body))
    assert not is_smoke(key, body, None)  # the id alone is nothing
    assert not is_smoke(key, body, sign(b"another key", body))
    assert not is_smoke(key, other, sign(key, body))  # a signature does not move to others
    assert not is_smoke(key, body, "not hex \u00e9")
    assert not is_smoke(None, body, sign(key, body))  # a deployment without a key marks none


def test_a_replica_refuses_a_key_file_that_is_not_its_configured_key(tmp_path: Path) -> None:
    path = tmp_path / "key"
    path.write_text(secrets.token_hex(32))
    reference = smoke_key(path)
    assert load_key(reference) == path.read_text().encode()
    path.write_text(secrets.token_hex(32))  # another deployment's key
    with pytest.raises(RuntimeError, match="run deployment_job again"):
        load_key(reference)
    path.unlink()
    with pytest.raises(RuntimeError, match="cannot read the smoke-request key"):
        load_key(reference)


class _Champion:
    """A model that answers 0.25 for every complaint (and takes no company history)."""

    snapshot_date = None

    def predict_records(self, records: list[dict[str, Any]]) -> np.ndarray:
        return np.full(len(records), 0.25)


class _Challenger:
    """The challenger deployment's handle: version "2", answering 0.75."""

    def __init__(self) -> None:
        self.score = SimpleNamespace(remote=self._score)

    async def _score(self, records: list[dict[str, Any]]) -> tuple[str, list[float]]:
        return "2", [0.75] * len(records)


def _server(monkeypatch: pytest.MonkeyPatch) -> Any:
    """The app's own class, without Ray: its model loading and `@serve.batch` (which needs a
    replica) replaced by the fake champion."""
    wrapper = served_app.DisputeModelServer.func_or_class
    assert isinstance(wrapper, type)
    cls = next(c for c in wrapper.__mro__[1:] if c.__name__ == "DisputeModelServer")
    # Serve's ingress keeps the class with a copy of its module's globals (cloudpickle).
    monkeypatch.setitem(cls.reconfigure.__globals__, "load_predictor", lambda *_: _Champion())
    server = cls(_Challenger())

    async def score(records: list[dict[str, Any]]) -> np.ndarray:
        return server.predictor.predict_records(records)

    server._score = score
    return server


def _config(tmp_path: Path, key_file: Path, **changes: Any) -> dict[str, Any]:
    config = ServingConfig(
        tracking_uri="sqlite:///nowhere.db",
        model_name="complaint_dispute_model",
        model_version="1",
        decision_threshold=0.5,
        provenance={"alias": "champion", "mlflow_run_id": "run-1"},
        predictions_dir=str(tmp_path / "predictions"),
        challenger=ChallengerConfig(
            model_version="2", decision_threshold=0.5, mode="split", share=1.0
        ),
        smoke_key=smoke_key(key_file),
    )
    return config.model_copy(update=changes).model_dump()


def test_only_a_signed_smoke_request_is_kept_on_the_champion_and_out_of_users_traffic(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key_file = tmp_path / "key"
    key_file.write_text(secrets.token_hex(32))
    key = key_file.read_text().encode()
    server = _server(monkeypatch)
    server.reconfigure(_config(tmp_path, key_file))

    def body(complaint_id: str) -> PredictRequest:
        return PredictRequest.model_validate({"complaints": [{"complaint_id": complaint_id}]})

    def ask(complaint_id: str, signed_with: bytes | None) -> str | None:
        signature = sign(signed_with, body(complaint_id)) if signed_with else None
        answer = asyncio.run(server.predict(body(complaint_id), None, signature))
        return answer.predictions[0].model_version

    # Every complaint goes to the challenger (a split of share 1.0) but a signed smoke request.
    assert ask("deploy-smoke-1", None) == "2"
    assert ask("deploy-smoke-2", b"a guessed key") == "2"
    assert ask("deploy-smoke-3", key) == "1"
    assert ask("c-4", key) == "1"  # the signature marks it, not the id
    server.feedback.flush()

    day = next((tmp_path / "predictions").iterdir()).name
    log = parse_prediction_logs(
        day,
        [(p.name, file_lines(p.read_bytes())) for p in (tmp_path / "predictions" / day).iterdir()],
    )
    assert log.quarantined.empty
    users = users_traffic(log.predictions)
    assert sorted(users["complaint_id"]) == ["deploy-smoke-1", "deploy-smoke-2"]
    assert sorted(log.predictions.loc[log.predictions["smoke"], "complaint_id"]) == [
        "c-4",
        "deploy-smoke-3",
    ]
    server.feedback.close()


def test_model_reports_the_answers_not_logged_past_the_budget(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key_file = tmp_path / "key"
    key_file.write_text(secrets.token_hex(32))
    server = _server(monkeypatch)
    server.reconfigure(_config(tmp_path, key_file, prediction_log_max_bytes_per_day=1000))
    body = PredictRequest.model_validate(
        {"complaints": [{"complaint_id": f"c-{n}"} for n in range(20)]}
    )
    asyncio.run(server.predict(body, None))
    server.feedback.flush()
    info = asyncio.run(server.model_info(None)).prediction_log
    # What did not fit is counted, and /model says so (today's bytes: within the budget).
    assert info.budget_bytes == 1000 and info.written_bytes_today <= 1000
    assert info.dropped_records == 20 - server.feedback.written > 0
    server.feedback.close()
