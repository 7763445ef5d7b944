"""A sensor factory: new or changed landing files request data-layer runs for their days.

A single changed day runs alone; consecutive changed days (a large export landed at once) run
together, up to DAYS_PER_RUN days a run, each day keeping its own records.
"""

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field

import dagster as dg

from ml_assets.assets.day_ranges import day_chunks, range_tags
from ml_assets.assets.ingestion import raw_complaints
from ml_assets.ingest.landing import landing_digest
from resources.compat import UnresolvedAssetJobDefinition
from resources.landing_zone import LandingZone, is_day_folder
from sensors.data_versions import latest_data_version

# Days stamped within this window of the newest stamp seen are looked at again, because file
# systems stamp coarsely (a second write may keep the first one's stamp); the digest comparison
# keeps that from requesting twice.
MTIME_LOOKBACK_NS = 5_000_000_000
DIGEST_CHARS = 16
DIGEST_TAG = "ml_assets/landing_digest"
UNCHANGED_SHOWN = 10  # days named in a tick's skip reason, of those re-read and found unchanged
# Dagster's run retries (enabled in the instance, `ml-assets init`): a day's run that fails or
# whose worker dies is launched again from the failed step, twice at most; then the run failure
# sensor reports it as failed for good. Rewriting a day replaces its rows, so a retry heals a
# day a killed run left half written.
RETRY_TAGS = {"dagster/max_retries": "2", "dagster/retry_strategy": "FROM_FAILURE"}


@dataclass
class LandingCursor:
    """What the sensor saw: per day folder, its stamp; per day in the partitions, the digest and
    revision it requested; per folder outside them, the digest it reported (re-checked every tick);
    and the newest stamp seen (the watermark)."""

    watermark_ns: int = 0
    days: dict[str, list[str | int]] = field(default_factory=dict)
    outside: dict[str, str] = field(default_factory=dict)
    stamps: dict[str, int] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str | None) -> "LandingCursor":
        if not text:
            return cls()
        data = json.loads(text)
        return cls(
            watermark_ns=int(data["watermark_ns"]),
            days=dict(data["days"]),
            outside=dict(data.get("outside", {})),
            # Cursors written before per-day stamps: every day is read (and hashed) once more.
            stamps={day: int(stamp) for day, stamp in data.get("stamps", {}).items()},
        )

    def dumps(self) -> str:
        return json.dumps(
            {
                "watermark_ns": self.watermark_ns,
                "days": self.days,
                "outside": self.outside,
                "stamps": self.stamps,
            },
            sort_keys=True,
        )


def day_range_request(
    days: Sequence[str], seen: dict[str, tuple[str, int]], asset_keys: Sequence[dg.AssetKey]
) -> dg.RunRequest:
    """One run for consecutive changed days: a single day's partition, or the range of them.

    The run key is each day's content digest plus revision: an unchanged file never triggers
    twice, and a file that changes back to an earlier content (A -> B -> A) still triggers.
    """
    keys = [f"{day}@{seen[day][0]}#{seen[day][1]}" for day in days]
    # Named explicitly so the run records its assets: automation conditions then see that the
    # run that updated a day also updated its downstream assets.
    selection = list(asset_keys)
    if len(days) == 1:
        (day,) = days
        return dg.RunRequest(
            run_key=keys[0],
            partition_key=day,
            asset_selection=selection,
            tags={DIGEST_TAG: seen[day][0], **RETRY_TAGS},
        )
    digest = hashlib.sha256(" ".join(keys).encode()).hexdigest()[:DIGEST_CHARS]
    return dg.RunRequest(
        run_key=f"{days[0]}..{days[-1]}@{digest}",
        asset_selection=selection,
        tags={**range_tags(days), DIGEST_TAG: digest, **RETRY_TAGS},
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
        stamps = landing_zone.day_stamps()
        # A day is read when its stamp differs from the one seen (stamps are compared, never set
        # against a clock: a source's skewed clock or a file from the future hides nothing; a
        # folder moved in with old stamps is new to the cursor), or is among the newest.
        recent = cursor.watermark_ns - MTIME_LOOKBACK_NS
        changed = {d for d, stamp in stamps.items() if stamp != cursor.stamps.get(d)}
        changed |= {d for d, stamp in stamps.items() if stamp > recent}
        # Folders that are gone need no re-check; the others outside the partitions are looked
        # at again each tick, as the partitions grow by one day every day (UTC).
        cursor.outside = {d: digest for d, digest in cursor.outside.items() if d in stamps}
        candidates = changed | {d for d in cursor.outside if in_partitions(d)}
        wanted: dict[str, tuple[str, int]] = {}  # day -> its content digest and revision
        day_bytes: dict[str, int] = {}  # day -> bytes of its landing files
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
            if latest_data_version(context.instance, raw_complaints.key, day) == full_digest:
                # Already ingested with these exact bytes (by another run or before a cursor reset).
                unchanged.append(day)
                continue
            wanted[day] = (digest, int(revision) + 1)
            day_bytes[day] = sum(f.size for f in files)
        requests = [
            day_range_request(chunk, wanted, asset_keys)
            for chunk in day_chunks(wanted, day_bytes=day_bytes)
        ]
        cursor.stamps = stamps
        cursor.watermark_ns = max([cursor.watermark_ns, *stamps.values()])
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
