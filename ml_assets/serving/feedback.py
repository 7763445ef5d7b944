"""Answered predictions appended to daily JSON-lines files, off the request path, within a byte
budget per day."""

from __future__ import annotations

import json
import logging
import os
import threading
import uuid
from collections import deque
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ml_assets.serving.schemas import PredictionLogInfo
from ml_assets.settings import Settings

logger = logging.getLogger(__name__)
FLUSH_INTERVAL_S = 0.5
# Encoded records waiting for the writer: beyond this, records are dropped (counted) rather than
# slowing requests or growing the replica's memory. A half-second flush holds some 0.9 MB at
# 500 answers/s of 1.7 KB; this leaves room for a slow disk, not for a stalled one.
MAX_QUEUED_BYTES = 32 * 1024 * 1024
LOG_SUFFIX = ".jsonl"


class PredictionLog:
    """A background writer: `append` encodes and enqueues; a thread writes batches to
    `<folder>/YYYY-MM-DD/<writer-id>.jsonl` (one file per process, so replicas never interleave).

    A day's files, all writers' together, take at most `max_bytes_per_day` (writers racing
    each other pass it by a flush's records at most): each writer reads their sizes on disk
    before it writes, so a restarted replica counts what was written before it, and past the
    budget drops the day's further records, warning once per day.
    """

    def __init__(
        self,
        folder: Path,
        max_bytes_per_day: int,
        max_queued_bytes: int = MAX_QUEUED_BYTES,
        flush_interval_s: float = FLUSH_INTERVAL_S,
    ) -> None:
        self.folder = folder
        self.max_bytes_per_day = max_bytes_per_day
        self.max_queued_bytes = max_queued_bytes
        self.dropped = 0
        self.written = 0
        self._queue: deque[tuple[str, bytes]] = deque()
        self._queued_bytes = 0
        self._lock = threading.Lock()  # the queue and the counters
        self._flushing = threading.Lock()  # one flush at a time: the thread's, or a caller's
        self._full_days: set[str] = set()
        self._name = f"{uuid.uuid4().hex[:12]}{LOG_SUFFIX}"
        self._stop = threading.Event()
        self._flush_interval_s = flush_interval_s
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self._thread.start()

    def append(self, record: Mapping[str, Any]) -> None:
        """Queue one answered prediction, encoded; never blocks (a full queue drops it, counted)."""
        line = (json.dumps(record, default=str) + "\n").encode()
        day = str(record.get("request_time", ""))[:10] or datetime.now(UTC).date().isoformat()
        with self._lock:
            if self._queued_bytes + len(line) > self.max_queued_bytes:
                self.dropped += 1
                return
            self._queue.append((day, line))
            self._queued_bytes += len(line)

    def day_bytes(self, day: str) -> int:
        """The bytes of a day's log files on disk, every writer's."""
        try:
            entries = list(os.scandir(self.folder / day))
        except FileNotFoundError:
            return 0
        return sum(e.stat().st_size for e in entries if e.is_file() and e.name.endswith(LOG_SUFFIX))

    def info(self, day: str) -> PredictionLogInfo:
        """The day's budget and bytes, and what this writer dropped since it started."""
        return PredictionLogInfo(
            day=day,
            budget_bytes=self.max_bytes_per_day,
            written_bytes_today=self.day_bytes(day),
            dropped_records=self.dropped,
        )

    def _within_budget(self, day: str, lines: list[bytes]) -> list[bytes]:
        """The lines that fit in the day's budget; the first that does not closes the day."""
        if day in self._full_days:
            return []
        used = self.day_bytes(day)
        for kept, line in enumerate(lines):
            if used + len(line) > self.max_bytes_per_day:
                self._full_days.add(day)
                logger.warning(
                    "the prediction logs of %s reached their budget of %d bytes (%s): this "
                    "replica logs no more answers of that day, and counts them in /model's "
                    "prediction_log.dropped_records",
                    day,
                    self.max_bytes_per_day,
                    Settings.env_name("prediction_log_max_bytes_per_day"),
                )
                return lines[:kept]
            used += len(line)
        return lines

    def _count(self, written: int = 0, dropped: int = 0) -> None:
        with self._lock:
            self.written += written
            self.dropped += dropped

    def _write(self, day: str, lines: list[bytes]) -> None:
        path = self.folder / day / self._name
        # Owner-only whatever the replica's umask (a cluster the project did not start).
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        with os.fdopen(descriptor, "ab") as handle:
            handle.write(b"".join(lines))

    def _run(self) -> None:
        while not self._stop.wait(self._flush_interval_s):
            self.flush()
        self.flush()

    def flush(self) -> None:
        """Write what is queued now (the thread does this every half second); once it returns,
        every record appended before it is written or counted as dropped."""
        with self._flushing:
            with self._lock:
                batch, self._queue = self._queue, deque()
                self._queued_bytes = 0
            by_day: dict[str, list[bytes]] = {}
            for day, line in batch:
                by_day.setdefault(day, []).append(line)
            for day, lines in by_day.items():
                self._write_day(day, lines)

    def _write_day(self, day: str, lines: list[bytes]) -> None:
        """Write the day's lines that fit its budget; count the others as dropped."""
        try:
            kept = self._within_budget(day, lines)
            if kept:
                self._write(day, kept)
        except OSError:
            # Feedback must never fail serving: log and count, keep answering.
            logger.exception("could not write %d prediction records to %s", len(lines), self.folder)
            self._count(dropped=len(lines))
            return
        self._count(written=len(kept), dropped=len(lines) - len(kept))

    def close(self) -> None:
        """Stop the thread after a last flush."""
        self._stop.set()
        self._thread.join(timeout=5)
