"""What was loaded, counted per hour until Gong can no longer add to the hour; and the coverage record.

Gong writes some entries minutes after their `eventTime`. Instead of re-reading the recent past on every run,
the job keeps, in the log type's progress record in dlt state, how many entries it loaded in each bucket
(a few seconds to ten minutes, by density) of every hour that is not yet *final*: older than the lookback
before the run's cut-off. Once an hour is final it is settled, once:

- an hour read only after it was final: the windows that read it were complete, so what they held is Gong's
  count (no call);
- an hour read (in part) before it was final: one call counts it with Gong (`records.totalRecords`); where the
  counts differ, `recount.CountSearch` halves the hour with counts and re-reads only the buckets that differ.

Either way the hour leaves the state and becomes a row of the coverage record (`log_coverage`), which an
auditor reads per log type and hour: Gong's count, the rows loaded, when it was checked and the outcome.
The counts are committed in the same load package as the rows they count, so the two never disagree.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Final, Mapping, Optional

import dlt
from dlt.extract.resource import DltResource

from gong_source.errors import StateLayoutError

HOUR: Final = timedelta(hours=1)
HOUR_SECONDS: Final = 3600

STATE_LAYOUT: Final = 2
"""The layout of a log type's resource state. 1 (no `layout` key): `progress[key] = {loaded_until, read_at}`,
each run re-reading the lookback. 2 (`layout: 2`): each `progress[key]` also holds `hours`, the counts of
hours not yet settled, and `loaded_until` is exact (each run reads from it, never before it). A record without
`hours` is layout 1's, whatever the resource's `layout` (an upgraded backfill record beside an incremental one
not yet upgraded): its first run re-reads its lookback once to count it (`read_progress`)."""
LAYOUT_KEY: Final = "layout"
HOURS_KEY: Final = "hours"

BUCKET_SECONDS_LADDER: Final = (5, 10, 15, 20, 30, 60, 120, 300, 600)
"""Bucket sizes (each divides an hour). The halving search stops at one bucket, so a bucket should hold about
half a page: one late entry in an hour of 20,000 is then found in 10 calls, where 60-second buckets would
need 11. Sparse types get larger buckets, which keeps the state small (at most 720 numbers an hour)."""
ENTRIES_PER_BUCKET: Final = 50
DEFAULT_BUCKET_SECONDS: Final = 60
"""For a type whose density is not known yet."""

COVERAGE_TABLE: Final = "log_coverage"
METHOD_WINDOWS: Final = "windows"
"""The hour was read only after it was final: its complete windows were its count."""
METHOD_COUNT_CHECK: Final = "count_check"
"""The hour was read (in part) before it was final, and counted with Gong once final."""


def floor_hour(moment: datetime) -> datetime:
    """The start of the UTC hour holding `moment`."""
    return moment.astimezone(timezone.utc).replace(minute=0, second=0, microsecond=0)


def bucket_seconds_for(entries_per_second: Optional[float]) -> int:
    """The largest bucket that holds about `ENTRIES_PER_BUCKET` entries at this density."""
    if entries_per_second is None:
        return DEFAULT_BUCKET_SECONDS
    fitting = [size for size in BUCKET_SECONDS_LADDER if size * entries_per_second <= ENTRIES_PER_BUCKET]
    return fitting[-1] if fitting else BUCKET_SECONDS_LADDER[0]


def epoch_seconds(moment: datetime) -> int:
    """Whole seconds since the epoch (eventTime is read to the millisecond; buckets are whole seconds)."""
    return math.floor(moment.timestamp())


@dataclass
class Segment:
    """A bucket of an hour as the halving search sees it: `[start, end)` and the entries loaded in it."""

    start: int
    end: int
    loaded: int


@dataclass
class HourCounts:
    """The entries loaded in one UTC hour, per bucket, until the hour is settled.

    Normally the whole hour; the first hour of a first run that starts mid-hour covers `[first_second, 3600)`.
    """

    start: datetime
    bucket_seconds: int
    counts: list[int]
    needs_check: bool = False
    """Part of it was read before it was final: Gong may have written entries into it since."""
    first_second: int = 0
    late_found: int = 0
    """Late entries re-read so far by a check of this hour that a budget stop cut short (a later run finishes it)."""
    check_requests: int = 0
    """Calls spent so far on such a check."""

    @classmethod
    def new(cls, start: datetime, bucket_seconds: int, first_second: int = 0) -> HourCounts:
        """An hour with nothing counted yet."""
        return cls(start, bucket_seconds, [0] * (HOUR_SECONDS // bucket_seconds), first_second=first_second)

    @classmethod
    def from_state(cls, key: str, value: dict[str, Any]) -> HourCounts:
        """Read one hour from the state (`hours[<ISO hour>]`)."""
        bucket_seconds = int(value["bucket_seconds"])
        counts = [int(count) for count in value["counts"]]
        if bucket_seconds not in BUCKET_SECONDS_LADDER or len(counts) != HOUR_SECONDS // bucket_seconds:
            raise ValueError(f"hour {key}: {len(counts)} buckets of {bucket_seconds} s do not make an hour")
        return cls(
            datetime.fromisoformat(key),
            bucket_seconds,
            counts,
            bool(value.get("needs_check", False)),
            int(value.get("first_second", 0)),
            int(value.get("late_found", 0)),
            int(value.get("check_requests", 0)),
        )

    def to_state(self) -> dict[str, Any]:
        """The hour as kept in the state."""
        value: dict[str, Any] = {"bucket_seconds": self.bucket_seconds, "counts": self.counts}
        if self.needs_check:
            value["needs_check"] = True
        if self.first_second:
            value["first_second"] = self.first_second
        if self.late_found:
            value["late_found"] = self.late_found
        if self.check_requests:
            value["check_requests"] = self.check_requests
        return value

    @property
    def key(self) -> str:
        return self.start.isoformat()

    @property
    def range_start(self) -> datetime:
        return self.start + timedelta(seconds=self.first_second)

    @property
    def range_end(self) -> datetime:
        return self.start + HOUR

    @property
    def loaded(self) -> int:
        return sum(self.counts)

    def add(self, second_of_hour: int, entries: int) -> None:
        """Count entries loaded at this second of the hour."""
        if self.first_second <= second_of_hour < HOUR_SECONDS:
            self.counts[second_of_hour // self.bucket_seconds] += entries

    def segments(self) -> list[Segment]:
        """The hour's buckets (the first one cut at `first_second`), in epoch seconds."""
        base = epoch_seconds(self.start)
        first_bucket = self.first_second // self.bucket_seconds
        return [
            Segment(
                base + max(self.first_second, index * self.bucket_seconds),
                base + (index + 1) * self.bucket_seconds,
                self.counts[index],
            )
            for index in range(first_bucket, len(self.counts))
        ]

    def set_segment_counts(self, recounted: dict[int, int]) -> None:
        """Replace the counts of re-read segments (indices of `segments()`) by what the re-read held."""
        first_bucket = self.first_second // self.bucket_seconds
        for index, count in recounted.items():
            self.counts[first_bucket + index] = count


@dataclass
class HourBook:
    """The hours of one progress record (a log type's incremental progress, or one bounded backfill) that are
    not settled yet, and the rules that settle them."""

    hours: dict[str, HourCounts] = field(default_factory=dict)
    bounded_end: Optional[datetime] = None
    """A bounded backfill's end: it counts whole hours only, as its first and last hours may be partial reads of
    hours that the incremental progress covers."""

    @classmethod
    def from_state(cls, record: Optional[dict[str, Any]], bounded_end: Optional[datetime] = None) -> HourBook:
        """The hours of a progress record (none for a record of layout 1)."""
        saved = (record or {}).get(HOURS_KEY) or {}
        return cls({key: HourCounts.from_state(key, value) for key, value in saved.items()}, bounded_end)

    def to_state(self) -> dict[str, Any]:
        """The hours as kept in the progress record, oldest first."""
        return {key: self.hours[key].to_state() for key in sorted(self.hours)}

    def add_window(
        self,
        start: datetime,
        end: datetime,
        seconds: Counter[int],
        final_before: datetime,
        bucket_seconds: int,
    ) -> None:
        """Count a completely read window `[start, end)` (`seconds`: entries per epoch second). An hour it
        reached before `final_before` was read while Gong could still write into it: it needs a count check."""
        hour = floor_hour(start)
        while hour < end:
            counts = self.hours.get(hour.isoformat())
            if counts is None:
                first_second = int((start - hour).total_seconds()) if start > hour else 0
                partial = first_second > 0 or (self.bounded_end is not None and hour + HOUR > self.bounded_end)
                if self.bounded_end is None or not partial:
                    counts = self.hours[hour.isoformat()] = HourCounts.new(hour, bucket_seconds, first_second)
            if counts is not None and min(end, hour + HOUR) > max(start, final_before):
                counts.needs_check = True
            hour += HOUR
        for second, entries in seconds.items():
            counts = self.hours.get(datetime.fromtimestamp(second - second % HOUR_SECONDS, timezone.utc).isoformat())
            if counts is not None:
                counts.add(second % HOUR_SECONDS, entries)

    def settled_by_windows(self, final_before: datetime, loaded_until: datetime) -> list[HourCounts]:
        """Hours read completely, and only after they were final: their windows' counts are Gong's."""
        return [hour for hour in self._due(final_before, loaded_until) if not hour.needs_check]

    def due_for_check(self, final_before: datetime, loaded_until: datetime) -> list[HourCounts]:
        """Hours read completely, now final, part of which was read before: each needs one count call."""
        return [hour for hour in self._due(final_before, loaded_until) if hour.needs_check]

    def _due(self, final_before: datetime, loaded_until: datetime) -> list[HourCounts]:
        limit = min(final_before, loaded_until)
        return [self.hours[key] for key in sorted(self.hours) if self.hours[key].range_end <= limit]

    def settle(self, hour: HourCounts) -> None:
        """The hour is in the coverage record now: forget its counts."""
        self.hours.pop(hour.key, None)


def coverage_row(
    log_type: str,
    hour: HourCounts,
    *,
    gong_count: int,
    rows_loaded: int,
    outcome: str,
    method: str,
    checked_at: datetime,
    late_entries: int = 0,
    requests: int = 0,
) -> dict[str, Any]:
    """One row of the coverage record: what Gong counted in the hour once final, and what was loaded.

    `outcome`: complete (Gong's count equals the rows loaded); repaired (it did not, and re-reading the buckets
    that differ loaded the missing entries); short (Gong counts more than it serves, even read again); more (more
    rows were loaded than Gong counts: Gong served an entry differently on two reads, or no longer has it)."""
    return {
        "log_type": log_type,
        "hour_start": hour.start,
        "range_start": hour.range_start,
        "range_end": hour.range_end,
        "day": hour.start.date(),
        "gong_count": gong_count,
        "rows_loaded": rows_loaded,
        "late_entries": late_entries,
        "outcome": outcome,
        "method": method,
        "checked_at": checked_at,
        "requests": requests,
    }


COVERAGE_COLUMNS: Final[dict[str, Any]] = {
    "log_type": {"data_type": "text", "nullable": False},
    "hour_start": {"data_type": "timestamp", "nullable": False},
    "range_start": {"data_type": "timestamp", "nullable": False},
    "range_end": {"data_type": "timestamp", "nullable": False},
    "day": {"data_type": "date", "nullable": False},
    "gong_count": {"data_type": "bigint", "nullable": False},
    "rows_loaded": {"data_type": "bigint", "nullable": False},
    "late_entries": {"data_type": "bigint", "nullable": False},
    "outcome": {"data_type": "text", "nullable": False},
    "method": {"data_type": "text", "nullable": False},
    "checked_at": {"data_type": "timestamp", "nullable": False},
    "requests": {"data_type": "bigint", "nullable": False},
}


def with_coverage_table(resource: DltResource) -> DltResource:
    """Give a log type's resource the hints of the coverage table, which it also writes: each log type puts its
    coverage rows in the same load as the rows and state they describe."""
    # A table variant starts as a copy of the resource's hints; `columns={}` drops the log table's columns.
    resource.apply_hints(table_name=COVERAGE_TABLE, create_table_variant=True, columns={})
    resource.apply_hints(
        table_name=COVERAGE_TABLE,
        create_table_variant=True,
        write_disposition="merge",
        primary_key=["log_type", "hour_start"],
        columns=COVERAGE_COLUMNS,
    )
    return resource


def as_coverage(rows: list[dict[str, Any]]) -> Any:
    """Rows for the coverage table (see `with_coverage_table`)."""
    return dlt.mark.with_table_name(rows, COVERAGE_TABLE)


@dataclass
class SavedProgress:
    """A progress record as this version reads it: where reading goes on, and the hours not settled."""

    loaded_until: Optional[datetime]
    """Every entry before it is loaded and counted (None: nothing read yet for this key)."""
    book: HourBook
    upgraded_from: Optional[datetime] = None
    """Layout 1's `loaded_until`, when the record was written by an earlier version (see `STATE_LAYOUT`), or a
    damaged record's: reading goes on from `loaded_until`, before it, once."""
    damaged: Optional[str] = None
    """Why the record's counts could not be read (None: they could, or it is layout 1's)."""


def read_progress(
    state: Mapping[str, Any], key: str, *, lookback: timedelta, bounded_end: Optional[datetime], floor: datetime
) -> SavedProgress:
    """The saved progress of `key` in a log type's resource state, upgraded from layout 1 if need be.

    Layout 1 kept no counts: reading goes on from the start of the hour the lookback began in (the hour of
    `loaded_until` for a bounded backfill or a record read long after its end, which the old lookback skipped),
    so the first run re-reads that once and counts it; the merge key keeps re-read entries single. A bounded
    backfill (`bounded_end`) does not re-read before its own start (`floor`).
    """
    bounded = bounded_end is not None
    layout = state.get(LAYOUT_KEY, 1)
    if not isinstance(layout, int) or layout > STATE_LAYOUT:
        raise StateLayoutError(
            f"the saved state has layout {layout!r}, newer than this version of gong-logs reads ({STATE_LAYOUT}): "
            "a later version wrote it. Run that version (or a newer one) on this pipeline; an older one would "
            "lose its progress."
        )
    record = (state.get("progress") or {}).get(key)
    book = HourBook(bounded_end=bounded_end)
    if not record:
        return SavedProgress(None, book)
    loaded_until = datetime.fromisoformat(record["loaded_until"])
    if HOURS_KEY in record:  # layout 2 writes `hours` in every record; a record without it is layout 1's
        try:
            return SavedProgress(loaded_until, HourBook.from_state(record, bounded_end))
        except (KeyError, TypeError, ValueError) as damage:
            # Counts that cannot be read are counted again: re-read from the oldest hour not settled yet.
            restart = min([floor_hour(loaded_until - lookback), *_hour_keys(record[HOURS_KEY])])
            damaged = f"its counts of the hours not settled yet could not be read ({damage})"
            return SavedProgress(max(restart, floor) if bounded else restart, book, loaded_until, damaged)
    read_at = datetime.fromisoformat(record.get("read_at") or record["loaded_until"])
    read_recently = not bounded and read_at - loaded_until < lookback
    restart = floor_hour(loaded_until - lookback if read_recently else loaded_until)
    if bounded:
        restart = max(restart, floor)
    return SavedProgress(restart, book, upgraded_from=loaded_until)


def _hour_keys(hours: Any) -> list[datetime]:
    """The hours a damaged `hours` record names, where they can be read."""
    found = []
    for key in hours if isinstance(hours, dict) else ():
        try:
            found.append(floor_hour(datetime.fromisoformat(str(key))))
        except ValueError:
            continue
    return found


def write_progress(state: dict[str, Any], key: str, loaded_until: datetime, read_at: datetime, book: HourBook) -> None:
    """Save a progress record in this version's layout (committed with the load that carries its rows)."""
    state.setdefault("progress", {})[key] = {
        "loaded_until": loaded_until.isoformat(),
        "read_at": read_at.isoformat(),
        HOURS_KEY: book.to_state(),
    }
    state[LAYOUT_KEY] = STATE_LAYOUT
