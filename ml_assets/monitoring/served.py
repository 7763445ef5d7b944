"""The endpoint's prediction logs as tables: every line a served prediction or quarantined."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta

import pandas as pd
from pydantic import ValidationError

from ml_assets.columns import REQUEST_DATE_COLUMN
from ml_assets.privacy import scrub, scrub_record
from ml_assets.serving.schemas import FREE_TEXT_FIELDS, LoggedPrediction

SMOKE_COLUMN = "smoke"
SERVED_COLUMNS: dict[str, str] = {
    REQUEST_DATE_COLUMN: "datetime64[ns]",
    "request_time": "datetime64[ns, UTC]",
    "model_name": "string",
    "model_version": "string",
    "decision_threshold": "float64",
    "complaint_id": "string",
    "dispute_probability": "float64",
    "disputed": "bool",
    "role": "string",  # champion, challenger (answered under a split) or shadow (no user saw it)
    SMOKE_COLUMN: "bool",  # a deployment's smoke request (signed by the deployer), not users' traffic
    "inputs": "string",  # the complaint as the model read it (scrubbed; JSON), for drift and skew
    "source_file": "string",
    "line_number": "int64",
}
QUARANTINE_COLUMNS: dict[str, str] = {
    REQUEST_DATE_COLUMN: "datetime64[ns]",
    "source_file": "string",
    "line_number": "int64",
    "line": "string",
    "reason": "string",
}
SHADOW_ROLE = "shadow"
# A quarantined line's reason keeps pydantic's first errors, not a wall of them.
REASON_ERRORS = 3


@dataclass(frozen=True)
class ServedLog:
    """One day's logged predictions, and the lines that could not be read as one."""

    predictions: pd.DataFrame
    quarantined: pd.DataFrame


def log_digest(files: Iterable[tuple[str, int]]) -> str:
    """The version of a day's logs: their names and sizes (the writers only ever append)."""
    text = "\n".join(f"{name}\t{size}" for name, size in sorted(files))
    return hashlib.sha256(text.encode()).hexdigest()


def file_lines(data: bytes) -> list[bytes]:
    """A log file's bytes as the prediction logs' reader yields them: its lines, without their
    newlines (the newline that ends the last line opens no record)."""
    lines = data.split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    return lines


def line_count(lines: Iterable[bytes]) -> int:
    """The records of a log file's lines, as `parse_prediction_logs` numbers them."""
    return sum(1 for _ in lines)


def expired_days(days: Iterable[str], today: date, retention_days: int) -> list[str]:
    """The log days (YYYY-MM-DD) older than the retention period, oldest first."""
    cutoff = today - timedelta(days=retention_days)
    return sorted(day for day in days if date.fromisoformat(day) < cutoff)


def _reason(error: ValidationError) -> str:
    """pydantic's errors, as `field: message` (the first REASON_ERRORS)."""
    parts = [
        f"{'.'.join(str(p) for p in e['loc']) or 'line'}: {e['msg']}"
        for e in error.errors()[:REASON_ERRORS]
    ]
    more = error.error_count() - REASON_ERRORS
    return "; ".join(parts) + (f" (+{more} more)" if more > 0 else "")


def _parse_line(raw: bytes, day: str) -> tuple[LoggedPrediction | None, str]:
    """A log line as a served prediction of `day`, or None and why it is not one."""
    try:
        logged = LoggedPrediction.model_validate_json(raw)
    except ValidationError as error:
        return None, _reason(error)
    if logged.request_day != day:
        return None, f"request_time {logged.request_time.isoformat()} is not of {day}"
    return logged, ""


def _frame(rows: list[dict[str, object]], columns: dict[str, str]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=list(columns)).astype(columns)


def parse_prediction_logs(day: str, files: Iterable[tuple[str, Iterable[bytes]]]) -> ServedLog:
    """Every line of a day's logs (each file's name and lines, without their newlines, read one
    at a time) as a served prediction, or quarantined with why."""
    served: list[dict[str, object]] = []
    quarantined: list[dict[str, object]] = []
    request_date = pd.Timestamp(day)
    for name, lines in files:
        for number, raw in enumerate(lines, start=1):
            line = raw.decode("utf-8", errors="replace")
            logged, reason = _parse_line(raw, day)
            if logged is None:
                quarantined.append(
                    {
                        REQUEST_DATE_COLUMN: request_date,
                        "source_file": name,
                        "line_number": number,
                        "line": scrub(line),
                        "reason": reason,
                    }
                )
                continue
            # Masked again: logs written before the endpoint scrubbed every field, or by another
            # writer.
            inputs = scrub_record(logged.inputs.model_dump(exclude_none=True), FREE_TEXT_FIELDS)
            served.append(
                {
                    REQUEST_DATE_COLUMN: request_date,
                    "request_time": logged.request_time,
                    "model_name": logged.model_name,
                    "model_version": logged.model_version,
                    "decision_threshold": logged.decision_threshold,
                    "complaint_id": logged.inputs.complaint_id,
                    "dispute_probability": logged.dispute_probability,
                    "disputed": logged.disputed,
                    "role": logged.role,
                    SMOKE_COLUMN: logged.smoke,
                    "inputs": json.dumps(inputs, sort_keys=True),
                    "source_file": name,
                    "line_number": number,
                }
            )
    return ServedLog(_frame(served, SERVED_COLUMNS), _frame(quarantined, QUARANTINE_COLUMNS))


def users_traffic(served: pd.DataFrame) -> pd.DataFrame:
    """Served predictions without a deployment's smoke requests: those its signature marked.

    A complaint id proves nothing (anyone can send `deploy-smoke-1`): rows stored before the
    mark was logged, in a table without the column or with it empty, are users' traffic."""
    if SMOKE_COLUMN not in served.columns:
        return served
    smoke = served[SMOKE_COLUMN].astype("boolean").fillna(False).astype(bool)
    return served[~smoke]


def answered_traffic(served: pd.DataFrame) -> pd.DataFrame:
    """Users' requests as they were answered: without smoke requests and shadow scores (a
    shadowed complaint would otherwise count twice)."""
    users = users_traffic(served)
    if "role" not in users.columns:  # tables stored before challengers served
        return users
    return users[users["role"].astype("string").fillna("champion") != SHADOW_ROLE]
