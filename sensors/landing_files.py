"""A sensor factory: new or changed landing files request data-layer runs for their days.

A single changed day runs alone; consecutive changed days (a large export landed at once) run
together, up to DAYS_PER_RUN days a run, each day keeping its own records.
"""

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import dagster as dg

from ml_assets.assets.day_ranges import day_chunks, range_tags
from ml_assets.assets.ingestion import raw_complaints
from ml_assets.ingest.landing import landing_digest
from resources.compat.dagster import UnresolvedAssetJobDefinition
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


@dataclass(frozen=True)
class DayFiles:
    """A day folder's landing files as a tick read them: their content digest and total size."""

    digest: str  # `landing_digest` of the files' names and bytes: what raw_complaints records
    size_bytes: int


@dataclass
class LandingPlan:
    """What a tick decides: the runs to request, the cursor after them, and what to tell."""

    requests: list[dg.RunRequest]
    cursor: LandingCursor
    reported: list[str]  # folders outside the partitions, with content not reported before
    unchanged: list[str]  # read again (new stamps) but holding the bytes already requested

    def skip_reason(self) -> str | None:
        """Why the tick requests nothing (None when it requests runs)."""
        if self.requests:
            return None
        skip = (
            f"ignored folders outside the partitions: {', '.join(self.reported)}"
            if self.reported
            else "no new or changed landing files"
        )
        if self.unchanged:
            shown = ", ".join(self.unchanged[:UNCHANGED_SHOWN])
            more = len(self.unchanged) - UNCHANGED_SHOWN
            skip += f"; re-read with unchanged content: {shown}"
            skip += f" and {more} more" if more > 0 else ""
        return skip


def days_to_read(
    cursor: LandingCursor, stamps: Mapping[str, int], in_partitions: Callable[[str], bool]
) -> list[str]:
    """The day folders a tick reads: stamped otherwise than the cursor saw, among the newest
    stamps, or seen outside the partitions and inside them now."""
    # Stamps are compared, never set against a clock: a source's skewed clock or a file from the
    # future hides nothing, and a folder moved in with old stamps is new to the cursor.
    recent = cursor.watermark_ns - MTIME_LOOKBACK_NS
    changed = {d for d, stamp in stamps.items() if stamp != cursor.stamps.get(d) or stamp > recent}
    # The partitions grow by one day every day (UTC): folders outside them are looked at again.
    grown_into = {d for d in cursor.outside if d in stamps and in_partitions(d)}
    return sorted(changed | grown_into)


def plan_landing_runs(
    cursor: LandingCursor,
    stamps: Mapping[str, int],
    read: Mapping[str, DayFiles],
    in_partitions: Callable[[str], bool],
    ingested_digest: Callable[[str], str | None],
    asset_keys: Sequence[dg.AssetKey],
) -> LandingPlan:
    """Which of the days read become which run requests, and the cursor after them.

    `stamps`: every day folder's change stamp now; `read`: the folders `days_to_read` named
    that hold files; `ingested_digest(day)`: the digest raw_complaints last ingested for a day.
    """
    after = LandingCursor(
        watermark_ns=max([cursor.watermark_ns, *stamps.values()]),
        days=dict(cursor.days),
        # Folders that are gone need no re-check.
        outside={d: digest for d, digest in cursor.outside.items() if d in stamps},
        stamps=dict(stamps),
    )
    wanted: dict[str, tuple[str, int]] = {}  # day -> its content digest and revision
    day_bytes: dict[str, int] = {}
    reported: list[str] = []
    unchanged: list[str] = []
    for day in sorted(read):
        digest = read[day].digest[:DIGEST_CHARS]
        if not in_partitions(day):
            if after.outside.get(day) != digest:  # reported once per content
                after.outside[day] = digest
                reported.append(day)
            continue
        after.outside.pop(day, None)
        seen_digest, revision = after.days.get(day, ["", 0])
        if digest == seen_digest:
            unchanged.append(day)
            continue
        after.days[day] = [digest, int(revision) + 1]
        if ingested_digest(day) == read[day].digest:
            # Already ingested with these exact bytes (by another run or before a cursor reset).
            unchanged.append(day)
            continue
        wanted[day] = (digest, int(revision) + 1)
        day_bytes[day] = read[day].size_bytes
    requests = [
        day_range_request(chunk, wanted, asset_keys)
        for chunk in day_chunks(list(wanted), day_bytes=day_bytes)
    ]
    return LandingPlan(requests, after, reported, unchanged)


def read_day(landing_zone: LandingZone, day: str) -> DayFiles | None:
    """The day folder's files as read now (None when it holds none)."""
    files = landing_zone.files_for_day(day)
    if not files:
        return None
    digest = landing_digest((f.name, landing_zone.read_bytes(f)) for f in files)
    return DayFiles(digest, sum(f.size for f in files))


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
        read = {
            day: files
            for day in days_to_read(cursor, stamps, in_partitions)
            if (files := read_day(landing_zone, day)) is not None
        }
        plan = plan_landing_runs(
            cursor,
            stamps,
            read,
            in_partitions,
            lambda day: latest_data_version(context.instance, raw_complaints.key, day),
            asset_keys,
        )
        if plan.reported:
            context.log.warning(
                f"Landing folders outside the daily partitions (or not named YYYY-MM-DD), not "
                f"ingested yet: {', '.join(plan.reported)}. Partitions run from "
                f"{partitions_def.start.date()} to {partitions_def.get_last_partition_key()} "
                "(yesterday, UTC); a day folder is requested once its day is a partition."
            )
        return dg.SensorResult(
            run_requests=plan.requests, cursor=plan.cursor.dumps(), skip_reason=plan.skip_reason()
        )

    return landing_file_sensor
