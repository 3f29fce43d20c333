"""How a log type is read: adaptive time windows whose completion is the durable progress.

Progress is kept in dlt resource state as `progress[key]["loaded_until"]`: every entry with an
eventTime before it is loaded. It only moves when a whole window has been read, so a run cut short (budget,
quota, crash, kill -9) repeats at most the window it was in, whatever order Gong returns entries
in. dlt commits resource state with the data of the same load package, so the two never disagree.

We keep this watermark ourselves instead of `dlt.sources.incremental`: its last value is the
largest eventTime seen, which is not a safe restart point for a window read only in part.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import chain
from typing import Any, Iterator, Optional

from dlt.sources.helpers.rest_client.auth import AuthConfigBase

from gong_source.client import GongLogsClient, HttpSettings
from gong_source.config import TimeRange
from gong_source.entries import EntryKeyer, prepare_entries
from gong_source.errors import GongConfigError, IncompleteWindowError, StoppedEarly
from gong_source.limits import RequestGovernor
from gong_source.pii import PiiPolicy
from gong_source.report import LogTypeReport, RunReport
from gong_source.settings import CURSOR_FIELD, PAGE_SIZE, LogType

logger = logging.getLogger("gong_source")

INCREMENTAL_KEY = "incremental"
MIN_WINDOW = timedelta(seconds=1)
PROGRESS_EVERY_PAGES = 20


@dataclass
class ReadSession:
    """What one run shares across its loads: the report, and the plan built by its first source."""

    report: RunReport = field(default_factory=RunReport)
    batch_loads: bool = False
    """True in the job, which loads in a loop: each load then ends after `load_interval` of reading."""
    plan: Optional[ReadPlan] = None
    loads: int = 0

    def count_requests(self) -> None:
        """Copy each log type's request count from the governor into the report."""
        governor = self.plan.governor if self.plan else None
        for type_report in self.report.log_types.values():
            type_report.requests = governor.sent.get(type_report.log_type, 0) if governor else 0


@dataclass
class ReadPlan:
    """Everything one run needs to read, shared by its resources and by all of its loads."""

    api_url: str
    auth: AuthConfigBase
    http: HttpSettings
    governor: RequestGovernor
    report: RunReport
    time_range: TimeRange
    settle_lag: timedelta
    lookback: timedelta
    window_entries: int
    access_log_retention: timedelta
    pii: Optional[PiiPolicy] = None
    load_interval: Optional[timedelta] = None
    """Stop a load after the first window that ends this much reading later (0: after every window);
    None reads everything in one load."""
    entries_per_load: Optional[int] = None
    """With `load_interval`: also stop a log type's load after the first window that reaches this many entries."""
    start: datetime = field(init=False)
    cut_off: datetime = field(init=False)
    backfill: bool = field(init=False)
    now: datetime = field(init=False)
    spans: dict[str, timedelta] = field(default_factory=dict)
    started: set[str] = field(default_factory=set)
    clients: dict[str, GongLogsClient] = field(default_factory=dict)

    def __post_init__(self) -> None:
        durations = [("settle_lag_seconds", self.settle_lag), ("lookback_seconds", self.lookback)]
        if self.load_interval is not None:
            durations.append(("load_interval_seconds", self.load_interval))
        for name, value in durations:
            if value < timedelta(0):
                raise GongConfigError(f"sources.gong.{name} must be >= 0.")
        if self.entries_per_load is not None and self.entries_per_load < 1:
            raise GongConfigError("sources.gong.entries_per_load must be at least 1.")
        if self.window_entries < PAGE_SIZE:
            raise GongConfigError(f"sources.gong.window_entries must be at least one page ({PAGE_SIZE}).")
        self.now = self.time_range.now
        self.backfill = self.time_range.end is not None
        # Whole seconds, as Gong takes them, so that windows meet exactly.
        self.start = self.time_range.start.replace(microsecond=0)
        self.cut_off = (self.time_range.end or self.now - self.settle_lag).replace(microsecond=0)

    def client_for(self, log_type: str, type_report: LogTypeReport) -> GongLogsClient:
        """The log type's client, kept for all loads of the run so its connections are reused."""
        if log_type not in self.clients:
            self.clients[log_type] = GongLogsClient(
                self.api_url, self.auth, log_type, self.http, self.governor, self.report, type_report
            )
        return self.clients[log_type]

    def close(self) -> None:
        """Close every HTTP session of the run."""
        for client in self.clients.values():
            client.close()
        self.clients.clear()

    @property
    def progress_key(self) -> str:
        """The state key of this run's progress: the incremental one, or one per backfill range."""
        return f"backfill {self.start.isoformat()} {self.cut_off.isoformat()}" if self.backfill else INCREMENTAL_KEY


def read_log_type(log_type: LogType, plan: ReadPlan, state: dict[str, Any]) -> Iterator[list[dict[str, Any]]]:
    """Yield pages of rows for one log type, moving its saved progress window by window."""
    type_report = plan.report.for_type(log_type.name, log_type.table_name)
    progress: dict[str, dict[str, str]] = state.setdefault("progress", {})
    saved = progress.get(plan.progress_key)
    first_load_of_run = log_type.name not in plan.started
    plan.started.add(log_type.name)
    window_start = _resume_point(saved, plan, first_load_of_run)
    if first_load_of_run:
        type_report.window_start, type_report.window_end = window_start, plan.cut_off
        if saved and not plan.backfill and log_type.name == "AccessLog":
            _warn_if_beyond_retention(datetime.fromisoformat(saved["loaded_until"]), plan)
    client = plan.client_for(log_type.name, type_report)
    load_started, entries_before = time.monotonic(), type_report.entries
    try:
        while window_start < plan.cut_off:
            rows_read = False
            for attempt in (1, 2):
                window = _read_window(client, log_type, window_start, plan, type_report)
                try:
                    for rows in window:
                        rows_read = True
                        yield rows
                    break
                except IncompleteWindowError:
                    if attempt == 2:
                        raise
                    # Gong may have written entries while we paged; the merge absorbs what is read twice.
                    logger.warning("%s: a window came back short of totalRecords; reading it again", log_type.name)
            if window.resized:
                continue
            window_start = window.end
            progress[plan.progress_key] = {"loaded_until": window_start.isoformat(), "read_at": plan.now.isoformat()}
            load_done = _load_is_due(plan, load_started, entries_before, type_report)
            if rows_read and window_start < plan.cut_off and load_done:
                return
        type_report.complete = True
    except StoppedEarly as stop:
        type_report.stopped_reason = str(stop)
        logger.warning("%s: stopping early, progress saved up to %s: %s", log_type.name, window_start, stop)


def _load_is_due(plan: ReadPlan, load_started: float, entries_before: int, type_report: LogTypeReport) -> bool:
    """Whether this load has read long enough, or enough: the rest is left to the next load of the run."""
    if plan.load_interval is None:
        return False
    if plan.entries_per_load is not None and type_report.entries - entries_before >= plan.entries_per_load:
        return True
    return time.monotonic() - load_started >= plan.load_interval.total_seconds()


def _resume_point(saved: Optional[dict[str, str]], plan: ReadPlan, first_load_of_run: bool) -> datetime:
    """Where to start: saved progress, less the lookback when it was read recently enough for late entries."""
    if not saved:
        return plan.start
    loaded_until = datetime.fromisoformat(saved["loaded_until"])
    read_at = datetime.fromisoformat(saved["read_at"])
    if first_load_of_run and not plan.backfill and read_at - loaded_until < plan.lookback:
        # Re-read a little to catch entries Gong wrote after that read; a window read long after its
        # end (a resumed backfill) had them all already.
        return (loaded_until - plan.lookback).replace(microsecond=0)
    return loaded_until


def _warn_if_beyond_retention(loaded_until: datetime, plan: ReadPlan) -> None:
    behind = plan.now - loaded_until
    if behind > plan.access_log_retention:
        message = (
            f"AccessLog was last loaded up to {loaded_until.isoformat()}, {behind.days} days ago. Gong keeps "
            f"AccessLog entries for about {plan.access_log_retention.days} days, so entries from before "
            f"{(plan.now - plan.access_log_retention).isoformat(timespec='seconds')} may already be lost. "
            "Schedule the pipeline at least daily."
        )
        plan.report.warn(message)
        logger.warning(message)


class _Window:
    """One `[start, end)` read: yields row pages; `resized` if it was given up to read a smaller window."""

    def __init__(self, start: datetime, end: datetime) -> None:
        self.start, self.end = start, end
        self.resized = False
        self.rows: Iterator[list[dict[str, Any]]] = iter(())

    def __iter__(self) -> Iterator[list[dict[str, Any]]]:
        return self.rows


def _read_window(
    client: GongLogsClient, log_type: LogType, start: datetime, plan: ReadPlan, type_report: LogTypeReport
) -> _Window:
    """Open the next window. Its first page tells `totalRecords`: a window far over the target is given
    up (one request) and the span resized from the density it revealed; an empty one grows the span."""
    span = plan.spans.get(log_type.name)
    window = _Window(start, plan.cut_off if span is None else min(plan.cut_off, _whole_seconds(start + span)))
    pages = client.iter_pages(log_type.name, window.start, window.end)
    first = next(pages, None)
    if first is None:  # Gong's 404: nothing in this window
        if span is not None:
            plan.spans[log_type.name] = span * 4
        if type_report.planned_entries is None:
            type_report.planned_entries = 0
        return window
    total = first.total_records or len(first.entries)
    if type_report.planned_entries is None:
        type_report.planned_entries = total
        _log_plan(log_type, window, total, plan)
    target, limit = plan.window_entries, plan.window_entries * (1.5 if span is None else 3)
    remaining = plan.governor.remaining
    if remaining is not None and total > (remaining + 1) * PAGE_SIZE:
        # The budget cannot finish this window, which would be read in vain: aim at half of what is left.
        target = limit = max(PAGE_SIZE, remaining * PAGE_SIZE // 2)
    duration = window.end - window.start
    if total > limit and duration > MIN_WINDOW:
        pages.close()
        plan.spans[log_type.name] = max(MIN_WINDOW, duration * (target / total))
        window.resized = True
        return window
    if span is not None:
        plan.spans[log_type.name] = min(span * 4, max(span / 4, span * (plan.window_entries / max(total, 1))))
    window.rows = _window_rows(first, pages, log_type, total, plan, window)
    return window


def _window_rows(
    first: Any, rest: Iterator[Any], log_type: LogType, total: int, plan: ReadPlan, window: _Window
) -> Iterator[list[dict[str, Any]]]:
    # One keyer per window: identical entries share an eventTime, hence always a window.
    keyer = EntryKeyer(log_type.name)
    type_report = plan.report.for_type(log_type.name, log_type.table_name)
    where = f" of the window [{window.start.isoformat()}, {window.end.isoformat()})"
    position, started = 0, time.monotonic()
    for page in chain([first], rest):
        rows = prepare_entries(page.entries, log_type.name, keyer, position, pii=plan.pii, where=where)
        position += len(rows)
        plan.report.record_page(type_report, rows, CURSOR_FIELD)
        _log_progress(log_type, type_report, position, total, started)
        yield rows


def _whole_seconds(moment: datetime) -> datetime:
    """Round up to a whole second: Gong takes whole seconds, so windows must meet exactly on them."""
    return moment.replace(microsecond=0) + timedelta(seconds=1) if moment.microsecond else moment


def _log_plan(log_type: LogType, window: _Window, total: int, plan: ReadPlan) -> None:
    requests = -(-total // PAGE_SIZE)
    seconds = requests / plan.governor.max_per_second if plan.governor.max_per_second else 0.0
    remaining = plan.governor.remaining
    fits = "no budget limit" if remaining is None else ("fits" if requests <= remaining else "does NOT fit")
    logger.info(
        "plan %s: %d entries in [%s, %s) -> about %d requests, %.0f s at %.1f/s alone; %s the remaining budget (%s)",
        log_type.name,
        total,
        window.start.isoformat(timespec="seconds"),
        window.end.isoformat(timespec="seconds"),
        requests,
        seconds,
        plan.governor.max_per_second,
        fits,
        "unlimited" if remaining is None else remaining,
    )


def _log_progress(log_type: LogType, type_report: LogTypeReport, position: int, total: int, started: float) -> None:
    planned = type_report.planned_entries or total
    if type_report.pages % PROGRESS_EVERY_PAGES or not planned:
        return
    done = min(type_report.entries, planned)
    elapsed = time.monotonic() - started
    rate = position / elapsed if elapsed > 0 else 0.0
    eta = (planned - done) / rate if rate else 0.0
    logger.info(
        "%s: %d pages, %d/%d entries (%.0f%%), ETA %.0f s",
        log_type.name,
        type_report.pages,
        done,
        planned,
        100.0 * done / planned,
        eta,
    )
