"""How a log type is read: adaptive time windows whose completion is the durable progress.

Progress is kept in dlt resource state as `progress[key]["loaded_until"]`: every entry with an
eventTime before it is loaded. It only moves when a whole window has been read, so a run cut short (budget,
quota, crash, kill -9) repeats at most the window it was in, whatever order Gong returns entries
in. dlt commits resource state with the data of the same load package, so the two never disagree.
Each run reads from `loaded_until` on, once; the same record counts what was loaded per hour until the hour
is final, when `settle` checks it with Gong's count and re-reads only what Gong wrote late (`coverage.py`).

We keep this watermark ourselves instead of `dlt.sources.incremental`: its last value is the
largest eventTime seen, which is not a safe restart point for a window read only in part.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import chain
from pathlib import Path
from typing import Any, Iterator, Optional

from dlt.sources.helpers.rest_client.auth import AuthConfigBase

from gong_source.budget import BudgetPlanner, LearnedQuota
from gong_source.client import GongLogsClient, HttpSettings
from gong_source.config import TimeRange
from gong_source.coverage import (
    HourBook,
    HourCounts,
    SavedProgress,
    bucket_seconds_for,
    epoch_seconds,
    read_progress,
    write_progress,
)
from gong_source.daily_budget import DailyLedger, remember_turn
from gong_source.entries import EntryKeyer
from gong_source.errors import (
    BudgetShareSpent,
    GongConfigError,
    IncompleteWindowError,
    SecondTooDense,
    StoppedEarly,
)
from gong_source.limits import RequestGovernor
from gong_source.pii import PiiPolicy
from gong_source.report import LogTypeReport, RunReport
from gong_source.settings import BUDGET_WINDOW_FILL, CURSOR_FIELD, PAGE_SIZE, LogType
from gong_source.settle import check_hour, coverage_from_windows, rows_of_page, share_spent_reason

logger = logging.getLogger("gong_source")

INCREMENTAL_KEY = "incremental"
DENSITY_KEY = "density"
"""Resource state: `{"entries_per_second": x}` of the type's last window, so that the next run sizes its
windows to its share of the budget without spending a request to measure first."""
MIN_WINDOW = timedelta(seconds=1)
MAX_WAITING_CHECKS = 2
"""Final hours that may wait for their count check while new entries are read first (a budget too short for
both); beyond this, the oldest are checked before new entries."""
PROGRESS_EVERY_PAGES = 20


@dataclass
class ReadSession:
    """What one run shares across its loads: the report, and the plan built by its first source."""

    report: RunReport = field(default_factory=RunReport)
    batch_loads: bool = False
    """True in the job, which loads in a loop: each load then ends after `load_interval` of reading."""
    plan: Optional[ReadPlan] = None


@dataclass
class ReadPlan:
    """Everything one run needs to read, shared by its resources and by all of its loads."""

    api_url: str
    log_types: list[LogType]
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
    max_requests_per_day: Optional[int] = None
    """The ceiling of calls in a quota day, across runs (`daily_budget.py`); None: none."""
    requests_file: Optional[Path] = None
    """The daily ledger's local file (set by `run_once` from the pipeline's folder; None: the state only)."""
    start: datetime = field(init=False)
    cut_off: datetime = field(init=False)
    final_before: datetime = field(init=False)
    """Hours ending at or before this are final: older than the lookback before the cut-off of `now`, Gong
    writes nothing more into them, so their counts are checked once and they leave the state."""
    ledger: Optional[DailyLedger] = None
    started_monotonic: float = field(default_factory=time.monotonic)
    budget_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    """The types start in parallel threads; the first one fixes the run's budget (`start_budget`)."""
    backfill: bool = field(init=False)
    now: datetime = field(init=False)
    spans: dict[str, timedelta] = field(default_factory=dict)
    started: set[str] = field(default_factory=set)
    clients: dict[str, GongLogsClient] = field(default_factory=dict)
    densities: dict[str, float] = field(default_factory=dict)
    """Entries per second of each type's last window (this run's, or the last run's from state)."""
    planner: BudgetPlanner = field(init=False)
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])

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
        self.final_before = (self.now - self.settle_lag - self.lookback).replace(microsecond=0)
        if self.max_requests_per_day is not None and self.max_requests_per_day < 0:
            raise GongConfigError("sources.gong.max_requests_per_day must be >= 0 (0: no ceiling).")
        names = [log_type.name for log_type in self.log_types]
        self.planner = BudgetPlanner(self.governor, self.governor.max_requests, names)

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


def start_budget(plan: ReadPlan, source_state: dict[str, Any]) -> None:
    """Fix the run's budget, once per run: the day's ceiling left, the quota learned by earlier runs, then each
    log type's share from what it still needs (the density of its last window, kept in state, and the hours
    due for a count check)."""
    with plan.budget_lock:
        if not plan.planner.started:
            _start_budget(plan, source_state)


def open_day_ledger(plan: ReadPlan, source_state: dict[str, Any]) -> DailyLedger:
    """The day's ceiling for this run (`run_once` and `verify`): the quota day's ledger, the run's hard budget
    lowered to what it leaves, and every call written to its local file as it goes out."""
    ledger = plan.ledger = DailyLedger.open(plan.max_requests_per_day, plan.now, source_state, plan.requests_file)
    if ledger.left is not None and plan.governor.limit_to(ledger.left, ledger.spent_reason()):
        plan.planner.max_requests = plan.governor.max_requests
        plan.planner.limit_source = (
            f"sources.gong.max_requests_per_day = {ledger.limit}, of which {ledger.before_run} were sent "
            "earlier today"
        )
    plan.governor.on_sent.append(ledger.write_file)
    return ledger


def _start_budget(plan: ReadPlan, source_state: dict[str, Any]) -> None:
    open_day_ledger(plan, source_state)
    resources: dict[str, Any] = source_state.get("resources", {})
    needs: dict[str, Optional[int]] = {}
    for log_type in plan.log_types:
        state = resources.get(log_type.table_name, {})
        density = _saved_density(state)
        if density is not None:
            plan.densities.setdefault(log_type.name, density)
        saved = _saved_progress(state, plan)
        resume = saved.loaded_until or plan.start
        checks = len(saved.book.due_for_check(plan.final_before, resume))
        needs[log_type.name] = None if density is None else requests_for(density, plan.cut_off - resume) + checks
    plan.planner.start(LearnedQuota.from_state(source_state), needs)


def _saved_progress(state: dict[str, Any], plan: ReadPlan) -> SavedProgress:
    bounded_end = plan.cut_off if plan.backfill else None
    return read_progress(state, plan.progress_key, lookback=plan.lookback, bounded_end=bounded_end, floor=plan.start)


def requests_for(entries_per_second: float, span: timedelta) -> int:
    """Requests a span probably needs in budget-sized windows: at least one, to see that it is empty."""
    entries = entries_per_second * max(0.0, span.total_seconds())
    return max(1, math.ceil(entries / (PAGE_SIZE * BUDGET_WINDOW_FILL)))


def remember_quota(plan: ReadPlan, source_state: dict[str, Any]) -> None:
    """Keep what this run learned about Gong's daily quota in state: the calls Gong answered before it
    stopped the run with a quota 429, or more calls than the learned quota when no 429 came."""
    governor, learned = plan.governor, plan.planner.learned
    answered = governor.answered
    saved = LearnedQuota.from_state(source_state)
    if saved is not None and saved.run_id == plan.run_id:
        answered = max(answered, saved.calls)  # each type writes it when it ends; a later count is never lower
    if plan.ledger is not None:
        plan.ledger.save(source_state, governor.total_sent)
    if governor.quota_resets_in is not None and governor.quota_refused_at is not None:
        elapsed = governor.quota_refused_at - plan.started_monotonic
        remember_turn(source_state, plan.now + timedelta(seconds=elapsed), timedelta(seconds=governor.quota_resets_in))
    if governor.quota_stopped and answered > 0:
        LearnedQuota(answered, plan.now.isoformat(), "quota_429", plan.run_id).save(source_state)
    elif not governor.quota_stopped and learned is not None and answered > learned.calls:
        LearnedQuota(answered, plan.now.isoformat(), "run", plan.run_id).save(source_state)


def requests_left(plan: ReadPlan, type_report: LogTypeReport) -> Optional[int]:
    """Requests the type's range still needs after this run, at its last density (None: not measured)."""
    if type_report.complete:
        return 0
    density = plan.densities.get(type_report.log_type)
    since = type_report.progress_after or plan.start
    return None if density is None else requests_for(density, plan.cut_off - since)


def read_log_type(
    log_type: LogType, plan: ReadPlan, state: dict[str, Any], source_state: Optional[dict[str, Any]] = None
) -> Iterator[Any]:
    """Yield pages of rows for one log type, moving its saved progress window by window; settle its final hours
    (coverage rows, count checks and re-reads of what Gong wrote late) in the same loads."""
    type_report = plan.report.for_type(log_type.name, log_type.table_name)
    if type_report.stopped_reason:
        return  # its share of the run's budget is spent: later loads of the run leave it alone
    source_state = source_state if source_state is not None else {"resources": {log_type.table_name: state}}
    start_budget(plan, source_state)
    saved = _saved_progress(state, plan)
    book = saved.book
    first_load_of_run = log_type.name not in plan.started
    plan.started.add(log_type.name)
    window_start = saved.loaded_until or plan.start
    if first_load_of_run:
        type_report.window_start, type_report.window_end = window_start, plan.cut_off
        type_report.progress_before = type_report.progress_after = saved.upgraded_from or window_start
        type_report.upgraded_from = saved.upgraded_from
        if saved.damaged is not None:
            plan.report.warn(
                f"{log_type.name}: {saved.damaged}; re-reading from {window_start.isoformat()} once to count them "
                "again (merged: no duplicate rows). Nothing to do unless it happens again."
            )
        elif saved.upgraded_from is not None:
            logger.info(
                "%s: state of an earlier version (layout 1): re-reading from %s once, to count it",
                log_type.name,
                window_start.isoformat(),
            )
        if saved.loaded_until and not plan.backfill and log_type.name == "AccessLog":
            _warn_if_beyond_retention(saved.upgraded_from or saved.loaded_until, plan)
    client = plan.client_for(log_type.name, type_report)
    load_started, entries_before = time.monotonic(), type_report.entries
    try:
        # New entries first: under a short budget they matter most (AccessLog is kept ~14 days); then the checks
        # of final hours, which can wait for a later run, unless more than a few wait: then the oldest go first,
        # so that a budget too short for both cannot pile them up in the state.
        while len(book.due_for_check(plan.final_before, window_start)) > MAX_WAITING_CHECKS:
            hour = book.due_for_check(plan.final_before, window_start)[0]
            yield from _check_and_save(client, log_type, plan, type_report, state, book, hour, window_start)
            if _load_is_due(plan, load_started, entries_before, type_report):
                return
        while window_start < plan.cut_off:
            rows_read = False
            for attempt in (1, 2):
                window = _read_window(client, log_type, window_start, plan, type_report, state)
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
            buckets = bucket_seconds_for(plan.densities.get(log_type.name))
            book.add_window(window.start, window.end, window.seconds, plan.final_before, buckets)
            yield from coverage_from_windows(log_type, plan, book, window_start)
            write_progress(state, plan.progress_key, window_start, plan.now, book)
            plan.report.commit_window(type_report, window_start, window.total, window.requests_sent())
            load_done = _load_is_due(plan, load_started, entries_before, type_report)
            if rows_read and window_start < plan.cut_off and load_done:
                return
        for hour in book.due_for_check(plan.final_before, window_start):
            yield from _check_and_save(client, log_type, plan, type_report, state, book, hour, window_start)
            if _load_is_due(plan, load_started, entries_before, type_report):
                return
        type_report.complete = True
        plan.planner.finish(log_type.name)
    except StoppedEarly as stop:
        type_report.stopped_reason = str(stop)
        type_report.stop_kind = stop.kind
        plan.planner.finish(log_type.name)
        logger.warning("%s: stopping early, progress saved up to %s: %s", log_type.name, window_start, stop)
    finally:
        remember_quota(plan, source_state)


def _check_and_save(
    client: GongLogsClient,
    log_type: LogType,
    plan: ReadPlan,
    type_report: LogTypeReport,
    state: dict[str, Any],
    book: HourBook,
    hour: HourCounts,
    loaded_until: datetime,
) -> Iterator[Any]:
    """Count-check one final hour, then save the progress record: also when a budget stop cuts the check
    short, as the parts it re-read keep their counts (their rows are in the same load)."""
    try:
        yield from check_hour(client, log_type, plan, type_report, book, hour)
    finally:
        write_progress(state, plan.progress_key, loaded_until, plan.now, book)


def _load_is_due(plan: ReadPlan, load_started: float, entries_before: int, type_report: LogTypeReport) -> bool:
    """Whether this load has read long enough, or enough: the rest is left to the next load of the run."""
    if plan.load_interval is None:
        return False
    if plan.entries_per_load is not None and type_report.entries - entries_before >= plan.entries_per_load:
        return True
    return time.monotonic() - load_started >= plan.load_interval.total_seconds()


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

    def __init__(self, start: datetime, end: datetime, governor: RequestGovernor, log_type: str) -> None:
        self.start, self.end = start, end
        self.resized = False
        self.total = 0
        self.seconds: Counter[int] = Counter()
        """Entries read per epoch second, counted into the hours' buckets once the window is complete."""
        self.rows: Iterator[list[dict[str, Any]]] = iter(())
        self._governor, self._log_type = governor, log_type
        self._sent_before = governor.sent.get(log_type, 0)

    def __iter__(self) -> Iterator[list[dict[str, Any]]]:
        return self.rows

    def requests_sent(self) -> int:
        """Requests (retries included) the type sent since this window opened."""
        return self._governor.sent.get(self._log_type, 0) - self._sent_before


def _read_window(
    client: GongLogsClient,
    log_type: LogType,
    start: datetime,
    plan: ReadPlan,
    type_report: LogTypeReport,
    state: dict[str, Any],
) -> _Window:
    """Open the next window. Its first page tells `totalRecords`: a window far over the target, or over
    what the type's share of the budget can finish, is given up (one request) and the span resized from
    the density it revealed; an empty one grows the span."""
    name = log_type.name
    span = plan.spans.get(name)
    cap = plan.planner.cap(name)
    if cap == 0:
        raise BudgetShareSpent(share_spent_reason(plan))
    density = plan.densities.get(name)
    if cap is not None and density:
        # Aim below what the held requests can read, so that a density a little off still fits.
        fitting = max(MIN_WINDOW, timedelta(seconds=cap * PAGE_SIZE * BUDGET_WINDOW_FILL / density))
        span = fitting if span is None else min(span, fitting)
    end = plan.cut_off if span is None else min(plan.cut_off, _whole_seconds(start + span))
    window = _Window(start, end, plan.governor, name)
    duration = window.end - window.start
    pages = client.iter_pages(name, window.start, window.end)
    first = next(pages, None)
    total = 0 if first is None else (first.total_records or len(first.entries))
    window.total = total
    if total:  # an empty stretch says little about the density of the rest
        _remember_density(plan, name, state, total, duration)
        # What the rest of the range needs at the density just measured, less the request just sent.
        plan.planner.report_need(name, max(0, requests_for(plan.densities[name], plan.cut_off - start) - 1))
    if type_report.planned_entries is None:
        type_report.planned_entries = total
        if total:
            _log_plan(log_type, window, total, plan)
    if first is None:  # Gong's 404: nothing in this window
        if span is not None:
            plan.spans[name] = span * 4
        return window
    target, limit = plan.window_entries, plan.window_entries * (1.5 if span is None else 3)
    if total > limit and duration > MIN_WINDOW:
        pages.close()
        plan.spans[name] = max(MIN_WINDOW, duration * (target / total))
        window.resized = True
        return window
    if not plan.planner.claim(name, -(-total // PAGE_SIZE)):
        # The requests this type holds cannot finish the window, which would be read in vain.
        pages.close()
        if duration <= MIN_WINDOW:
            raise SecondTooDense(_second_too_dense_reason(plan, window, total))
        window.resized = True
        return window
    if span is not None:
        plan.spans[name] = min(span * 4, max(span / 4, span * (plan.window_entries / max(total, 1))))
    window.rows = _window_rows(first, pages, log_type, total, plan, window)
    return window


def _remember_density(plan: ReadPlan, name: str, state: dict[str, Any], total: int, duration: timedelta) -> None:
    """Keep the type's density from this window's count, for this run and the next (in state)."""
    seconds = duration.total_seconds()
    if seconds <= 0:
        return
    plan.densities[name] = total / seconds
    state[DENSITY_KEY] = {"entries_per_second": total / seconds}


def _saved_density(state: dict[str, Any]) -> Optional[float]:
    saved = state.get(DENSITY_KEY)
    value = saved.get("entries_per_second") if isinstance(saved, dict) else None
    return float(value) if isinstance(value, (int, float)) and value >= 0 else None


def _second_too_dense_reason(plan: ReadPlan, window: _Window, total: int) -> str:
    pages = -(-total // PAGE_SIZE)
    return (
        f"the second at {window.start.isoformat()} alone holds {total} entries ({pages} requests), more than its "
        f"share of this run's budget can read; give the run at least {pages * len(plan.log_types)} requests "
        "(sources.gong.max_requests_per_run), or read this type alone (sources.gong.log_types)"
    )


def _window_rows(
    first: Any, rest: Iterator[Any], log_type: LogType, total: int, plan: ReadPlan, window: _Window
) -> Iterator[list[dict[str, Any]]]:
    """The window's pages as rows: entries parsed, keyed and PII-handled."""
    # One keyer per window: identical entries share an eventTime, hence always a window.
    keyer = EntryKeyer(log_type.name)
    type_report = plan.report.for_type(log_type.name, log_type.table_name)
    where = f" of the window [{window.start.isoformat()}, {window.end.isoformat()})"
    position, started = 0, time.monotonic()
    for page in chain([first], rest):
        rows = rows_of_page(log_type, plan, type_report, page.entries, keyer, position, where)
        position += len(rows)
        window.seconds.update(epoch_seconds(row[CURSOR_FIELD]) for row in rows)
        _log_progress(log_type, type_report, position, total, started)
        yield rows


def _whole_seconds(moment: datetime) -> datetime:
    """Round up to a whole second: Gong takes whole seconds, so windows must meet exactly on them."""
    return moment.replace(microsecond=0) + timedelta(seconds=1) if moment.microsecond else moment


def _log_plan(log_type: LogType, window: _Window, total: int, plan: ReadPlan) -> None:
    requests = -(-total // PAGE_SIZE)
    seconds = requests / plan.governor.max_per_second if plan.governor.max_per_second else 0.0
    held = plan.planner.balance(log_type.name)
    share = "no budget limit" if held is None else f"{held} more requests of the run's budget held for it"
    logger.info(
        "plan %s: %d entries in [%s, %s) -> about %d requests, %.0f s at %.1f/s alone; %s",
        log_type.name,
        total,
        window.start.isoformat(timespec="seconds"),
        window.end.isoformat(timespec="seconds"),
        requests,
        seconds,
        plan.governor.max_per_second,
        share,
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
