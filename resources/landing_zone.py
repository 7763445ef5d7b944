"""Where daily landing files arrive: an abstract client and its local-filesystem implementation."""

from __future__ import annotations

import os
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

import dagster as dg

_DAY_FOLDER = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def change_stamp_ns(stat: os.stat_result) -> int:
    """When a file or folder last changed: the later of its mtime and its ctime.

    Tools that preserve mtimes (`mv` of a prepared folder, `rsync -a`, `cp -p`) set an old mtime,
    but the system stamps the ctime when the entry is created, renamed or its content replaced.
    """
    return max(stat.st_mtime_ns, stat.st_ctime_ns)


@dataclass(frozen=True)
class LandingFile:
    """One landing file: its path relative to the landing root, size and change stamp."""

    name: str
    day: str
    size: int
    mtime_ns: int  # change_stamp_ns: the later of mtime and ctime


class LandingZone(dg.ConfigurableResource, ABC):
    """Lists and reads the daily complaint files that sources drop for ingestion."""

    @abstractmethod
    def files_for_day(self, day: str) -> list[LandingFile]:
        """The CSV files landed for one ingestion day, sorted by name."""

    @abstractmethod
    def day_stamps(self) -> dict[str, int]:
        """Each folder of the days folder (day folders, or misnamed ones) with its stamp: the
        latest `change_stamp_ns` of the folder and its landing files.

        A folder's stamp changes when a file is added, renamed in or removed; a file rewritten in
        place changes its own. Either changes the day's stamp.
        """

    @abstractmethod
    def read_bytes(self, file: LandingFile) -> bytes:
        """The content of a landing file."""


class LocalLandingZone(LandingZone):
    """Landing files in a local folder (`ML_ASSETS_HOME/landing` by default)."""

    root: str
    # The folder under `root` whose subfolders are the ingestion days; the landing code owns the
    # layout (`ml_assets/ingest/landing.py`) and the definitions pass its name in.
    days_folder: str

    @property
    def days_root(self) -> Path:
        return Path(self.root) / self.days_folder

    def _stat(self, path: Path) -> LandingFile:
        stat = path.stat()
        return LandingFile(
            name=path.relative_to(self.root).as_posix(),
            day=path.parent.name,
            size=stat.st_size,
            mtime_ns=change_stamp_ns(stat),
        )

    @staticmethod
    def _is_landing_file(entry: os.DirEntry[str]) -> bool:
        # Dot-files are writers' temporary files, renamed into place when complete.
        return entry.is_file() and entry.name.endswith(".csv") and not entry.name.startswith(".")

    @staticmethod
    def _is_day_entry(entry: os.DirEntry[str]) -> bool:
        # Dot-folders are being prepared (e.g. before a `mv` into place), like dot-files.
        return entry.is_dir() and not entry.name.startswith(".")

    def files_for_day(self, day: str) -> list[LandingFile]:
        folder = self.days_root / day
        if not folder.is_dir():
            return []
        with os.scandir(folder) as entries:
            return sorted(
                (self._stat(Path(e.path)) for e in entries if self._is_landing_file(e)),
                key=lambda f: f.name,
            )

    def day_stamps(self) -> dict[str, int]:
        if not self.days_root.is_dir():
            return {}
        stamps: dict[str, int] = {}
        with os.scandir(self.days_root) as days:
            for day in days:
                if not self._is_day_entry(day):
                    continue
                with os.scandir(day.path) as entries:
                    files = [change_stamp_ns(e.stat()) for e in entries if self._is_landing_file(e)]
                stamps[day.name] = max([change_stamp_ns(day.stat()), *files])
        return stamps

    def read_bytes(self, file: LandingFile) -> bytes:
        return (Path(self.root) / file.name).read_bytes()


def is_day_folder(name: str) -> bool:
    """Whether a landing folder name has the YYYY-MM-DD form of an ingestion day."""
    return bool(_DAY_FOLDER.match(name))
