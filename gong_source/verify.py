"""`gong-logs verify`: count each log type's days with Gong, compare with the warehouse, repair what differs.

One call per log type and UTC day counts the day (`records.totalRecords` of its first page); the warehouse
counts its rows of the same day. With `--repair`, a day holding fewer rows than Gong counts is halved with
counts, Gong's against the warehouse's, and only the buckets that differ are re-read and merged: the search
the job uses for late entries (`recount.py`). AccessLog days older than Gong keeps them (about 14 days) are
"no longer at Gong" when Gong counts fewer than the warehouse holds: not a difference, and never repaired.

Its calls count against the run's budget, the learned quota and the day's ceiling like a run's, and the day's
count is committed to dlt state by a load (with the repaired rows, or with the state alone).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import partial
from typing import Any, Optional

import dlt
from dlt.extract.resource import DltResource
from dlt.pipeline.pipeline import Pipeline

from gong_source.budget import LearnedQuota
from gong_source.coverage import HOURS_KEY, Segment, bucket_seconds_for, epoch_seconds
from gong_source.daily_budget import DAY
from gong_source.destinations import destination_for, duckdb_database, run_into, wait_for_duckdb_file
from gong_source.errors import GongConfigError, StoppedEarly
from gong_source.explain import explain
from gong_source.recount import CountSearch, gong_total
from gong_source.runner import PIPELINE_NAME, AnotherRunInProgress, exclusive_run, lock_wait, requests_file
from gong_source.settings import LogType
from gong_source.settle import rows_of_page
from gong_source.source import gong_source, log_table_resource
from gong_source.windows import INCREMENTAL_KEY, ReadPlan, ReadSession, open_day_ledger, remember_quota

EXIT_DIFFERENCES = 65
"""`verify` found differences it did not repair (EX_DATAERR): the data needs a look, or `--repair`."""

COMPLETE, MISSING, MORE, GONE, REPAIRED, SHORT = (
    "complete",
    "missing",
    "more",
    "no longer at Gong",
    "repaired",
    "short",
)
DIFFERENCES = (MISSING, MORE, SHORT)


@dataclass
class DayCheck:
    """One log type's UTC day (or the part of it in the range): Gong's count against the warehouse's."""

    log_type: LogType
    start: datetime
    end: datetime
    warehouse_count: int = 0
    gong_count: Optional[int] = None
    """None: not counted (the run stopped before)."""
    status: str = "not checked"
    repaired_entries: int = 0
    requests: int = 0

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, for `--summary-json`."""
        return {
            "log_type": self.log_type.name,
            "table": self.log_type.table_name,
            "day": self.start.date().isoformat(),
            "range": [self.start.isoformat(), self.end.isoformat()],
            "gong_count": self.gong_count,
            "warehouse_count": self.warehouse_count,
            "status": self.status,
            "repaired_entries": self.repaired_entries,
            "requests": self.requests,
        }


@dataclass
class VerifyReport:
    """What `verify` found and did."""

    start: Optional[datetime] = None
    end: Optional[datetime] = None
    repair: bool = False
    end_given: bool = False
    """Without --end-date each log type is counted up to its final hours, and no further than the job settled."""
    ends: dict[str, datetime] = field(default_factory=dict)
    """Where each log type's count ends (its start: nothing to count, the job has not read that far)."""
    days: list[DayCheck] = field(default_factory=list)
    status: str = "failed"
    """complete (no difference left); differences (some left: exit 65); stopped (budget, quota or the day's
    ceiling: exit 75); skipped (another run holds the pipeline: exit 75); failed (exit 1)."""
    error: Optional[str] = None
    exception: Optional[BaseException] = field(default=None, repr=False)
    stopped_reason: Optional[str] = None
    requests: int = 0
    requests_today: Optional[dict[str, Any]] = None

    @property
    def exit_code(self) -> int:
        """0 nothing left to repair; 65 differences left; 75 stopped early or skipped; 1 failed."""
        return {"complete": 0, "differences": EXIT_DIFFERENCES, "stopped": 75, "skipped": 75}.get(self.status, 1)

    def as_dict(self) -> dict[str, Any]:
        """The machine-readable summary (`--summary-json`)."""
        return {
            "command": "verify",
            "exit_code": self.exit_code,
            "status": self.status,
            "error": self.error,
            "stopped_reason": self.stopped_reason,
            "range": [_iso(self.start), _iso(self.end)],
            "ends": {name: end.isoformat() for name, end in self.ends.items()},
            "repair": self.repair,
            "requests": self.requests,
            "requests_today": self.requests_today,
            "counts": dict(Counter(day.status for day in self.days)),
            "days": [day.as_dict() for day in self.days],
        }


def verify(
    *,
    start_date: Optional[str],
    end_date: Optional[str] = None,
    log_types: Optional[str] = None,
    repair: bool = False,
    destination: Optional[str] = None,
    dataset_name: Optional[str] = None,
    pipeline: Optional[Pipeline] = None,
) -> VerifyReport:
    """Count `[start_date, end_date)` per log type and UTC day, with Gong and in the warehouse; repair the days
    that lack rows if `repair`. `end_date` defaults to where hours are final (now less the settle lag and the
    lookback): the job still checks later hours for late entries itself. Never raises: the report says."""
    report = VerifyReport(repair=repair)
    session = ReadSession()
    try:
        if not start_date:
            raise GongConfigError("verify needs --start-date (and optionally --end-date): the range to count.")
        chosen = destination_for(destination) if pipeline is None else None
        gong_source(session=session, start_date=start_date, end_date=end_date, log_types=log_types)
        plan = session.plan
        assert plan is not None
        if end_date is None:
            plan.cut_off = min(plan.cut_off, plan.final_before)
            if plan.cut_off <= plan.start:
                raise GongConfigError(
                    f"nothing from --start-date {plan.start.isoformat()} on is final yet: an hour is final "
                    f"{plan.lookback.total_seconds():.0f} s (sources.gong.lookback_seconds) plus the settle lag after "
                    "it ends. Give an earlier --start-date, or --end-date to count it anyway."
                )
        report.start, report.end = plan.start, plan.cut_off
        report.end_given = end_date is not None
        if pipeline is None:
            pipeline = dlt.pipeline(
                pipeline_name=PIPELINE_NAME, destination=chosen, dataset_name=dataset_name or PIPELINE_NAME
            )
        with exclusive_run(pipeline):
            plan.requests_file = requests_file(pipeline)
            database = duckdb_database(pipeline)
            if database is not None and database.exists():
                wait_for_duckdb_file(database, lock_wait(None))  # as a run does: an analyst's shell may hold it
            if not pipeline.default_schema_name and not (database is not None and not database.exists()):
                pipeline.sync_destination()  # a fresh machine: state and schema are in the destination
            _verify_under_lock(pipeline, plan, report)
    except AnotherRunInProgress as busy:
        report.status, report.error = "skipped", str(busy)
    except Exception as failure:
        report.status, report.error, report.exception = "failed", explain(failure), failure
    finally:
        if session.plan is not None:
            session.plan.close()
            report.requests = session.plan.governor.total_sent
            ledger = session.plan.ledger
            if ledger is not None:
                ledger.write_file(report.requests)
                report.requests_today = {
                    "day_start": ledger.day_start.isoformat(),
                    "with_this_run": ledger.before_run + report.requests,
                    "max_requests_per_day": ledger.limit,
                }
    return report


def _verify_under_lock(pipeline: Pipeline, plan: ReadPlan, report: VerifyReport) -> None:
    source_state: dict[str, Any] = dict(pipeline.state.get("sources", {}).get("gong", {}))
    _fix_budget(plan, source_state)
    for log_type in plan.log_types:
        end = plan.cut_off if report.end_given else min(plan.cut_off, _settled_until(source_state, log_type))
        report.ends[log_type.name] = max(end, plan.start)
        report.days += [DayCheck(log_type, start, day_end) for start, day_end in _days(plan.start, end)]
    _count_in_warehouse(pipeline, report.days)
    retention_start = plan.now - plan.access_log_retention
    try:
        for day in report.days:
            _count_with_gong(plan, day, retention_start)
    except StoppedEarly as stop:
        report.stopped_reason = str(stop)
    to_repair = [day for day in report.days if day.status == MISSING] if report.repair else []
    buckets = {id(day): _warehouse_buckets(pipeline, day) for day in to_repair if not report.stopped_reason}
    # A load commits the day's count of calls to dlt state, with the repaired rows or alone.
    source = _repair_source(plan, [day for day in to_repair if id(day) in buckets], buckets, report)
    run_into(pipeline, source)
    if report.stopped_reason:
        report.status = "stopped"
    elif any(day.status in DIFFERENCES for day in report.days):
        report.status = "differences"
    else:
        report.status = "complete"


def _settled_until(source_state: dict[str, Any], log_type: LogType) -> datetime:
    """How far the job has read a log type and settled its final hours: its progress, or its oldest hour still
    waiting for a count check (far in the future when the job never read it: then all of it is missing)."""
    resource = source_state.get("resources", {}).get(log_type.table_name, {})
    saved = (resource.get("progress") or {}).get(INCREMENTAL_KEY) or {}
    try:
        settled = datetime.fromisoformat(saved["loaded_until"])
        waiting = [datetime.fromisoformat(hour) for hour in saved.get(HOURS_KEY) or {}]
    except (KeyError, TypeError, ValueError):
        return datetime.max.replace(tzinfo=timezone.utc)
    return min([settled, *waiting])


def _fix_budget(plan: ReadPlan, source_state: dict[str, Any]) -> None:
    """The run's hard budget: `max_requests_per_run`, the day's ceiling left, and the learned quota."""
    open_day_ledger(plan, source_state)
    learned = LearnedQuota.from_state(source_state)
    if learned is not None:
        plan.governor.limit_to(
            learned.calls,
            f"the run's budget of {learned.calls} requests (Gong's daily quota as learned on {learned.learned_at[:16]})"
            " is spent",
        )


def _days(start: datetime, end: datetime) -> Iterator[tuple[datetime, datetime]]:
    """UTC days of `[start, end)`, the first and last cut to the range."""
    day = start.replace(hour=0, minute=0, second=0, microsecond=0)
    while day < end:
        yield max(day, start), min(day + DAY, end)
        day += DAY


def _sql_time(moment: datetime) -> str:
    """A timestamp literal the destinations compare with their timestamp columns (our own value, not input)."""
    return "'" + moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S+00:00") + "'"


def _count_in_warehouse(pipeline: Pipeline, days: list[DayCheck]) -> None:
    """Rows per log type and day, read with the destination's SQL client."""
    loaded: set[str] = set(pipeline.default_schema.tables) if pipeline.default_schema_name else set()
    with pipeline.sql_client() as client:
        for day in days:
            if day.log_type.table_name not in loaded:
                continue  # never loaded: zero rows
            table, column = client.make_qualified_table_name(day.log_type.table_name), client.escape_column_name(
                "event_time"
            )
            rows = client.execute_sql(
                f"SELECT COUNT(*) FROM {table} WHERE {column} >= {_sql_time(day.start)} "
                f"AND {column} < {_sql_time(day.end)}"
            )
            day.warehouse_count = int(rows[0][0]) if rows else 0


def _count_with_gong(plan: ReadPlan, day: DayCheck, retention_start: datetime) -> None:
    """One call: Gong's count of the day, and the day's status against the warehouse."""
    name = day.log_type.name
    client = plan.client_for(name, plan.report.for_type(name, day.log_type.table_name))
    sent = plan.governor.sent.get(name, 0)
    pages = client.iter_pages(name, day.start, day.end)
    try:
        day.gong_count = gong_total(next(pages, None))
    finally:
        pages.close()
    day.requests += plan.governor.sent.get(name, 0) - sent
    if day.gong_count == day.warehouse_count:
        day.status = COMPLETE
    elif name == "AccessLog" and day.start < retention_start and day.gong_count < day.warehouse_count:
        day.status = GONE
    elif day.gong_count > day.warehouse_count:
        day.status = MISSING
    else:
        day.status = MORE


def _warehouse_buckets(pipeline: Pipeline, day: DayCheck) -> list[Segment]:
    """The day cut in buckets (sized by its density), each with the rows the warehouse holds in it."""
    seconds = max(1, int((day.end - day.start).total_seconds()))
    size = bucket_seconds_for((day.gong_count or 0) / seconds)
    first, last = epoch_seconds(day.start), epoch_seconds(day.end)
    edges = list(range(first - first % size, last, size))
    counts = [0] * len(edges)
    if day.warehouse_count:
        with pipeline.sql_client() as client:
            table, column = client.make_qualified_table_name(day.log_type.table_name), client.escape_column_name(
                "event_time"
            )
            rows = client.execute_sql(
                f"SELECT {column} FROM {table} WHERE {column} >= {_sql_time(day.start)} "
                f"AND {column} < {_sql_time(day.end)}"
            )
        for (moment,) in rows or []:
            counts[(epoch_seconds(_aware(moment)) - edges[0]) // size] += 1
    return [
        Segment(max(first, edge), min(last, edge + size), count) for edge, count in zip(edges, counts, strict=True)
    ]


def _aware(moment: Any) -> datetime:
    value = moment if isinstance(moment, datetime) else datetime.fromisoformat(str(moment))
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


@dlt.source(name="gong", section="gong")
def _repair_source(
    plan: ReadPlan, days: list[DayCheck], buckets: dict[int, list[Segment]], report: VerifyReport
) -> list[DltResource]:
    """The re-read rows of the days to repair, into their log tables; and the day's calls into the state."""

    def repaired(log_type: LogType) -> Iterator[Any]:
        source_state = dlt.current.source_state()
        try:
            for day in days:
                if day.log_type is log_type and not report.stopped_reason:
                    yield from _repair_day(plan, day, buckets[id(day)], report)
        finally:
            remember_quota(plan, source_state)

    return [log_table_resource(log_type, partial(repaired, log_type)) for log_type in plan.log_types]


def _repair_day(plan: ReadPlan, day: DayCheck, segments: list[Segment], report: VerifyReport) -> Iterator[Any]:
    name = day.log_type.name
    type_report = plan.report.for_type(name, day.log_type.table_name)
    client = plan.client_for(name, type_report)
    sent = plan.governor.sent.get(name, 0)
    search = CountSearch(
        client,
        name,
        segments,
        make_rows=lambda entries, keyer, position, where: rows_of_page(
            day.log_type, plan, type_report, entries, keyer, position, where
        ),
        hold=lambda _: None,  # the governor stops the whole verify when its budget is spent
    )
    try:
        yield from search.run(known_count=day.gong_count)
    except StoppedEarly as stop:
        report.stopped_reason = str(stop)  # the parts re-read so far are loaded; the day stays "missing"
    finally:
        day.requests += plan.governor.sent.get(name, 0) - sent
        day.repaired_entries = search.late_entries
        day.warehouse_count += search.late_entries
    if not report.stopped_reason:
        day.status = SHORT if search.short or day.warehouse_count < (day.gong_count or 0) else REPAIRED


def verify_lines(report: VerifyReport) -> list[str]:
    """What `verify` found, for a person: a line per log type, then every day that is not complete."""
    if report.status in ("failed", "skipped"):
        return []
    lines = [
        f"Verified [{_iso(report.start)}, {_iso(report.end)}) per UTC day against Gong: {report.requests} calls."
        + (f" STOPPED EARLY (exit 75): {report.stopped_reason}." if report.stopped_reason else ""),
        f"{'Log type':<28} {'days':>5} {'complete':>9} {'differ':>7} {'Gong':>10} {'warehouse':>10}",
    ]
    by_type: dict[str, list[DayCheck]] = {}
    for day in report.days:
        by_type.setdefault(day.log_type.name, []).append(day)
    for name, end in report.ends.items():
        if name not in by_type:
            lines.append(f"{name:<28} not counted: the job has not read and settled it past {end.isoformat()} yet")
        elif report.end and end < report.end:
            lines.append(f"{name:<28} counted up to {end.isoformat()}: the job has not settled it further yet")
    for name, days in by_type.items():
        counted = [day for day in days if day.gong_count is not None]
        lines.append(
            f"{name:<28} {len(days):>5} {sum(day.status in (COMPLETE, REPAIRED, GONE) for day in days):>9} "
            f"{sum(day.status in DIFFERENCES for day in days):>7} {sum(day.gong_count or 0 for day in counted):>10} "
            f"{sum(day.warehouse_count for day in counted):>10}"
        )
    for day in report.days:
        if day.status == COMPLETE:
            continue
        what = {
            MISSING: f"{(day.gong_count or 0) - day.warehouse_count} missing"
            + ("" if report.repair else "; gong-logs verify --repair re-reads only what differs"),
            MORE: f"{day.warehouse_count - (day.gong_count or 0)} more rows than Gong counts",
            GONE: "Gong counts fewer: it no longer keeps AccessLog this old (about 14 days); not a difference",
            REPAIRED: f"{day.repaired_entries} missing entr{'y' if day.repaired_entries == 1 else 'ies'} re-read "
            "and loaded",
            SHORT: "Gong serves fewer entries than it counts, even read again",
        }.get(day.status, day.status)
        gong = "-" if day.gong_count is None else str(day.gong_count)
        lines.append(
            f"  {day.log_type.name} {day.start.date().isoformat()}: Gong {gong}, warehouse {day.warehouse_count}: "
            f"{day.status}" + (f" ({what})" if what != day.status else "")
        )
    left = sum(day.status in DIFFERENCES for day in report.days)
    if report.status == "differences":
        lines.append(f"{left} day(s) differ (exit {EXIT_DIFFERENCES}).")
    return lines


def _iso(moment: Optional[datetime]) -> Optional[str]:
    return moment.isoformat() if moment else None
