"""A sensor factory: new or changed landing files request a data-layer run for their day."""

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import dagster as dg
from dagster._core.definitions.data_version import DATA_VERSION_TAG
from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition

from ml_assets.assets.ingestion import raw_complaints
from ml_assets.ingest.landing import landing_digest
from resources.landing_zone import LandingZone, is_day_folder

# Files written within this window before the last tick are looked at again, because file
# systems stamp mtimes coarsely; the digest comparison keeps that from requesting twice.
MTIME_LOOKBACK_NS = 5_000_000_000
DIGEST_CHARS = 16
DIGEST_TAG = "ml_assets/landing_digest"
UNCHANGED_SHOWN = 10  # days named in a tick's skip reason, of those re-read and found unchanged


def ingested_digest(instance: dg.DagsterInstance, day: str) -> str | None:
    """The landing digest (data version) of the day's latest `raw_complaints` materialization."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=raw_complaints.key, asset_partitions=[day]), limit=1
    ).records
    if not records or records[0].asset_materialization is None:
        return None
    return records[0].asset_materialization.tags.get(DATA_VERSION_TAG)


@dataclass
class LandingCursor:
    """What the sensor saw: a stamp watermark; per day in the partitions, the digest and revision
    it requested; per folder outside them, the digest it reported (re-checked every tick)."""

    watermark_ns: int = 0
    days: dict[str, list[str | int]] = field(default_factory=dict)
    outside: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str | None) -> "LandingCursor":
        if not text:
            return cls()
        data = json.loads(text)
        return cls(
            watermark_ns=int(data["watermark_ns"]),
            days=dict(data["days"]),
            outside=dict(data.get("outside", {})),
        )

    def dumps(self) -> str:
        return json.dumps(
            {"watermark_ns": self.watermark_ns, "days": self.days, "outside": self.outside},
            sort_keys=True,
        )


def make_landing_file_sensor(
    job: UnresolvedAssetJobDefinition,
    partitions_def: dg.TimeWindowPartitionsDefinition,
    asset_keys: Sequence[dg.AssetKey],
    minimum_interval_seconds: int = 30,
) -> dg.SensorDefinition:
    """A RUNNING sensor that requests `job` for exactly the days whose landing files changed."""

    def in_partitions(day: str) -> bool:
        return is_day_folder(day) and partitions_def.has_partition_key(day)

    @dg.sensor(
        name="landing_file_sensor",
        job=job,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Requests a data-layer run for each day whose landing files are new or changed.",
    )
    def landing_file_sensor(
        context: dg.SensorEvaluationContext, landing_zone: LandingZone
    ) -> dg.SensorResult:
        cursor = LandingCursor.parse(context.cursor)
        changed, newest = landing_zone.days_changed_since(cursor.watermark_ns - MTIME_LOOKBACK_NS)
        folders = set(landing_zone.day_folders())
        # Folders that are gone need no re-check; the others outside the partitions are looked
        # at again each tick, as the partitions grow by one day every day (UTC).
        cursor.outside = {d: digest for d, digest in cursor.outside.items() if d in folders}
        candidates = (
            set(changed)
            # A folder moved in with old stamps throughout may look unchanged: new names count.
            | {d for d in folders if d not in cursor.days and d not in cursor.outside}
            | {d for d in cursor.outside if in_partitions(d)}
        )
        requests: list[dg.RunRequest] = []
        reported: list[str] = []
        unchanged: list[str] = []  # read again (new stamps) but holding the bytes already seen
        for day in sorted(candidates):
            files = landing_zone.files_for_day(day)
            if not files:
                continue
            full_digest = landing_digest((f.name, landing_zone.read_bytes(f)) for f in files)
            digest = full_digest[:DIGEST_CHARS]
            if not in_partitions(day):
                if cursor.outside.get(day) != digest:  # reported once per content
                    cursor.outside[day] = digest
                    reported.append(day)
                continue
            cursor.outside.pop(day, None)
            seen_digest, revision = cursor.days.get(day, ["", 0])
            if digest == seen_digest:
                unchanged.append(day)
                continue
            cursor.days[day] = [digest, int(revision) + 1]
            if ingested_digest(context.instance, day) == full_digest:
                # Already ingested with these exact bytes (by another run or before a cursor reset).
                unchanged.append(day)
                continue
            # Content plus revision: an unchanged file never triggers twice, and a file that
            # changes back to an earlier content (A -> B -> A) still triggers.
            requests.append(
                dg.RunRequest(
                    run_key=f"{day}@{digest}#{int(revision) + 1}",
                    partition_key=day,
                    # Named explicitly so the run records its assets: automation conditions then
                    # see that the run that updated a day also updated its downstream assets.
                    asset_selection=list(asset_keys),
                    tags={DIGEST_TAG: digest},
                )
            )
        # A stamp from the future (a source's fast clock, `touch -d`) must not hide the changes
        # of the coming minutes: the watermark never passes now, so such a file is re-read (and
        # found unchanged) each tick until the clock catches up with it.
        cursor.watermark_ns = min(newest, time.time_ns())
        if reported:
            context.log.warning(
                f"Landing folders outside the daily partitions (or not named YYYY-MM-DD), not "
                f"ingested yet: {', '.join(reported)}. Partitions run from "
                f"{partitions_def.start.date()} to {partitions_def.get_last_partition_key()} "
                "(yesterday, UTC); a day folder is requested once its day is a partition."
            )
        skip = None
        if not requests:
            skip = (
                f"ignored folders outside the partitions: {', '.join(reported)}"
                if reported
                else "no new or changed landing files"
            )
            if unchanged:
                shown = ", ".join(unchanged[:UNCHANGED_SHOWN])
                more = (
                    f" and {len(unchanged) - UNCHANGED_SHOWN} more"
                    if len(unchanged) > UNCHANGED_SHOWN
                    else ""
                )
                skip += f"; re-read with unchanged content: {shown}{more}"
        return dg.SensorResult(run_requests=requests, cursor=cursor.dumps(), skip_reason=skip)

    return landing_file_sensor
