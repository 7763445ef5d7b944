"""Answered predictions appended to daily JSON-lines files, off the request path."""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)
FLUSH_INTERVAL_S = 0.5
MAX_QUEUED = 100_000  # beyond this, records are dropped (counted) rather than slowing requests


class PredictionLog:
    """A background writer: `append` only enqueues; a thread writes batches to
    `<folder>/YYYY-MM-DD/<writer-id>.jsonl` (one file per process, so replicas never interleave)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.dropped = 0
        self.written = 0
        self._queue: queue.Queue[dict[str, Any]] = queue.Queue(maxsize=MAX_QUEUED)
        self._name = f"{uuid.uuid4().hex[:12]}.jsonl"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self._thread.start()

    def append(self, record: Mapping[str, Any]) -> None:
        """Queue one answered prediction; never blocks and never raises."""
        try:
            self._queue.put_nowait(dict(record))
        except queue.Full:
            self.dropped += 1

    def _drain(self) -> list[dict[str, Any]]:
        batch = []
        while True:
            try:
                batch.append(self._queue.get_nowait())
            except queue.Empty:
                return batch

    def _write(self, batch: list[dict[str, Any]]) -> None:
        by_day: dict[str, list[str]] = {}
        for record in batch:
            day = str(record.get("request_time", ""))[:10] or datetime.now(UTC).date().isoformat()
            by_day.setdefault(day, []).append(json.dumps(record, default=str))
        for day, lines in by_day.items():
            path = self.folder / day / self._name
            # Owner-only whatever the replica's umask (a cluster the project did not start).
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            with os.fdopen(descriptor, "a", encoding="utf-8") as handle:
                handle.write("\n".join(lines) + "\n")
        self.written += len(batch)

    def _run(self) -> None:
        while not self._stop.wait(FLUSH_INTERVAL_S):
            self.flush()
        self.flush()

    def flush(self) -> None:
        """Write what is queued now (the thread does this every half second)."""
        batch = self._drain()
        if not batch:
            return
        try:
            self._write(batch)
        except OSError:
            # Feedback must never fail serving: log and count, keep answering.
            logger.exception("could not write %d prediction records to %s", len(batch), self.folder)
            self.dropped += len(batch)

    def close(self) -> None:
        """Stop the thread after a last flush."""
        self._stop.set()
        self._thread.join(timeout=5)
