"""The endpoint's prediction logs: `<root>/YYYY-MM-DD/<writer>.jsonl`, appended to, never edited."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import dagster as dg
from pydantic import Field

from resources.landing_zone import is_day_folder

LOG_SUFFIX = ".jsonl"
SKIP_CHUNK_BYTES = 64 * 1024  # an over-long line is skipped this much at a time


@dataclass(frozen=True)
class LogFile:
    """One writer's log of one day: its path relative to the root, and its size when listed."""

    name: str
    size: int


class PredictionLogs(dg.ConfigurableResource):
    """Lists and streams the daily JSON-lines logs the endpoint's replicas write; deletes expired days."""

    root: str
    retention_days: int = Field(default=30, ge=1, description="days a log is kept once ingested")

    def delete_day(self, day: str) -> None:
        """Delete one day's listed log files (those the retention rule counted), then its folder
        if nothing else is left in it."""
        if not is_day_folder(day):
            raise ValueError(f"{day!r} is not a day folder name")
        for file in self.files_for_day(day):
            (Path(self.root) / file.name).unlink()
        with contextlib.suppress(OSError):  # something else is in it: it stays, with that
            (Path(self.root) / day).rmdir()

    def days(self) -> list[str]:
        """The day folders (YYYY-MM-DD) that hold logs, oldest first."""
        folder = Path(self.root)
        if not folder.is_dir():
            return []
        return sorted(e.name for e in os.scandir(folder) if e.is_dir() and is_day_folder(e.name))

    def files_for_day(self, day: str) -> list[LogFile]:
        """The day's log files, sorted by name, with their sizes now."""
        folder = Path(self.root) / day
        if not folder.is_dir():
            return []
        return sorted(
            (
                LogFile(f"{day}/{entry.name}", entry.stat().st_size)
                for entry in os.scandir(folder)
                if entry.is_file()
                and entry.name.endswith(LOG_SUFFIX)
                and not entry.name.startswith(".")
            ),
            key=lambda f: f.name,
        )

    def iter_lines(self, file: LogFile, max_line_bytes: int) -> Iterator[bytes]:
        """The lines of the file's first `size` bytes (what was listed, even if a writer appended
        since), one at a time, without their newlines: what is held is one line, of at most
        `max_line_bytes` (a longer one is cut there, the rest of it read past and not kept)."""
        with (Path(self.root) / file.name).open("rb") as handle:
            left = file.size
            while left > 0:
                # Bounded reads only: a line and its newline, never more than what was listed.
                line = handle.readline(min(left, max_line_bytes + 1))
                if not line:
                    return  # the file shrank since it was listed: what is left is all there is
                left -= len(line)
                if not line.endswith(b"\n") and left > 0:
                    left = _skip_line(handle, left)
                yield line.removesuffix(b"\n")[:max_line_bytes]


def _skip_line(handle: BinaryIO, left: int) -> int:
    """Read past the rest of an over-long line (in bounded chunks); the bytes left after it."""
    while left > 0:
        rest = handle.readline(min(left, SKIP_CHUNK_BYTES))
        if not rest:
            return 0
        left -= len(rest)
        if rest.endswith(b"\n"):
            break
    return left
