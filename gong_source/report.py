"""What a run did, per log type, for the human summary and the machine-readable one."""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Optional

from gong_source.errors import GongError


@dataclass
class LogTypeReport:
    """Counters for one log type in one run (across all its loads)."""

    log_type: str
    table_name: str
    window_start: Optional[datetime] = None
    window_end: Optional[datetime] = None
    planned_entries: Optional[int] = None
    requests: int = 0
    pages: int = 0
    entries: int = 0
    throttled: int = 0
    retries: int = 0
    first_event_time: Optional[datetime] = None
    last_event_time: Optional[datetime] = None
    complete: bool = False
    stopped_reason: Optional[str] = None
    stop_kind: Optional[str] = None
    """Why it stopped: "run" (budget spent or Gong's quota), "share" (its share of the budget is spent; it
    reads on when other types leave requests), "dense_second" (a second holds more than its share can read)."""
    progress_before: Optional[datetime] = None
    """Saved progress (`loaded_until`) when the run started: every entry before it was loaded."""
    progress_after: Optional[datetime] = None
    """Progress committed by this run (equal to `progress_before` if no window was completed)."""
    committed_windows: int = 0
    committed_entries: int = 0
    committed_requests: int = 0
    """Requests of the windows this run completed (their rows and progress are loaded together)."""
    requests_count_checks: int = 0
    """Calls that counted a final hour (or a half of one) with Gong."""
    requests_rereads: int = 0
    """Calls that re-read the parts of final hours whose counts differed."""
    late_entries: int = 0
    """Entries the re-reads found that had not been loaded: Gong wrote them after the run that read their hour."""
    hour_outcomes: Counter[str] = field(default_factory=Counter)
    """Hours put in the coverage record by this run, per outcome."""
    hours_count_checked: int = 0
    upgraded_from: Optional[datetime] = None
    """Progress of a state written by an earlier version (layout 1): this run re-read its last hour(s) once."""

    @property
    def requests_new_entries(self) -> int:
        """Calls spent on what was new (including a window's first page given up to resize it)."""
        return max(0, self.requests - self.requests_count_checks - self.requests_rereads)

    @property
    def stopped_by_budget_share(self) -> bool:
        """Whether only this type stopped, for lack of requests of its own."""
        return self.stop_kind in ("share", "dense_second")

    @property
    def progress_moved(self) -> bool:
        """Whether this run moved the type's progress."""
        if self.progress_after is None:
            return False
        return self.progress_before is None or self.progress_after > self.progress_before

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready summary of this log type."""
        return {
            "log_type": self.log_type,
            "table": self.table_name,
            "window": [_iso(self.window_start), _iso(self.window_end)],
            "planned_entries": self.planned_entries,
            "requests": self.requests,
            "pages": self.pages,
            "entries": self.entries,
            "http_429": self.throttled,
            "retries": self.retries,
            "event_time_range": [_iso(self.first_event_time), _iso(self.last_event_time)],
            "complete": self.complete,
            "stopped_reason": self.stopped_reason,
            "progress_before": _iso(self.progress_before),
            "progress_after": _iso(self.progress_after),
            "progress_moved": self.progress_moved,
            "committed_windows": self.committed_windows,
            "committed_entries": self.committed_entries,
            "committed_requests": self.committed_requests,
            "requests_by_purpose": {
                "new_entries": self.requests_new_entries,
                "count_checks": self.requests_count_checks,
                "re_reads": self.requests_rereads,
            },
            "late_entries_found": self.late_entries,
            "coverage": {
                "hours_recorded": sum(self.hour_outcomes.values()),
                "hours_count_checked": self.hours_count_checked,
                "outcomes": dict(self.hour_outcomes),
            },
            "state_upgraded_from": _iso(self.upgraded_from),
        }


@dataclass
class RunReport:
    """Shared by the resources of a run; safe to update from parallel resources."""

    log_types: dict[str, LogTypeReport] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    views: list[dict[str, Any]] = field(default_factory=list)
    """Each audit view's outcome after the run (created or skipped, and why), for `--summary-json`."""
    view_notes: list[str] = field(default_factory=list)
    """One line per view skipped or incomplete: what is missing (`ViewOutcome.summary()`)."""
    views_unsupported: Optional[str] = None
    """Why no view was attempted (a filesystem destination holds files)."""
    notes: list[str] = field(default_factory=list)
    """Advice that is not a warning (a --start-date that had no effect)."""

    # The outcome, filled in when the run ends (gong_source.runner.run_once):
    status: str = "failed"
    """complete (every type read to its end); stopped (early, on purpose, progress saved); skipped (another run
    of the pipeline was in progress); failed (see `error`)."""
    error: Optional[str] = None
    """One line on what went wrong and what to do (gong_source.explain), when the run failed or was skipped."""
    exception: Optional[BaseException] = field(default=None, repr=False)
    retry_helps: bool = True
    """False for a failure that waiting does not fix (configuration, credentials): a scheduler should not retry."""
    loads: int = 0
    rows_per_table: dict[str, int] = field(default_factory=dict)
    requests: int = 0
    budget: Optional[dict[str, Any]] = None
    """The run's planned budget, where it came from, and what the rest needs (see run_summary.budget_summary)."""
    rate_limit: Optional[dict[str, Any]] = None
    """How the run shared Gong's per-company rate limit (RequestGovernor.pace_summary)."""
    stop_explanation: list[str] = field(default_factory=list)
    """Exit 75's message: why the run stopped, each type's progress, what the rest takes."""
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def raise_for_failure(self) -> None:
        """Raise `GongError` with the run's one-line explanation if it failed (for schedulers' tasks)."""
        if self.status == "failed":
            raise GongError(self.error or "the run failed") from self.exception

    def for_type(self, log_type: str, table_name: str) -> LogTypeReport:
        """Return (creating if needed) the report of one log type."""
        with self._lock:
            return self.log_types.setdefault(log_type, LogTypeReport(log_type, table_name))

    def warn(self, message: str) -> None:
        """Keep a warning for the end-of-run summary."""
        with self._lock:
            if message not in self.warnings:
                self.warnings.append(message)

    def count(self, report: LogTypeReport, **increments: int) -> None:
        """Add to some counters of one log type, e.g. `count(r, throttled=1, retries=1)`."""
        with self._lock:
            for name, value in increments.items():
                setattr(report, name, getattr(report, name) + value)

    def commit_window(self, report: LogTypeReport, loaded_until: datetime, entries: int, requests: int) -> None:
        """A whole window was read: progress moves to its end with the load that carries its rows."""
        with self._lock:
            if report.progress_after is None or loaded_until > report.progress_after:
                report.progress_after = loaded_until
            report.committed_windows += 1
            report.committed_entries += entries
            report.committed_requests += requests

    def record_coverage(self, report: LogTypeReport, outcomes: list[str]) -> None:
        """Hours put in the coverage record."""
        with self._lock:
            report.hour_outcomes.update(outcomes)

    def record_check_calls(self, report: LogTypeReport, count_calls: int, reread_calls: int, late: int) -> None:
        """What a count check did (finished or stopped): its calls to count and to re-read, the late entries."""
        with self._lock:
            report.requests_count_checks += count_calls
            report.requests_rereads += max(0, reread_calls)
            report.late_entries += late

    def record_check(self, report: LogTypeReport, outcome: str) -> None:
        """A final hour was counted with Gong (and re-read where it differed), and recorded."""
        with self._lock:
            report.hours_count_checked += 1
            report.hour_outcomes[outcome] += 1

    def reopen_share_stopped(self) -> list[str]:
        """Let the types that ran out of their share read again (the pool got requests); returns them."""
        reopened = []
        with self._lock:
            for report in self.log_types.values():
                if report.stop_kind == "share" and not report.complete:
                    report.stopped_reason, report.stop_kind = None, None
                    reopened.append(report.log_type)
        return reopened

    def record_page(self, report: LogTypeReport, rows: list[dict[str, Any]], event_time_field: str) -> None:
        """Count one fetched page and widen the observed eventTime range."""
        if not rows:
            self.count(report, pages=1)
            return
        times = [row[event_time_field] for row in rows]
        low, high = min(times), max(times)
        with self._lock:
            report.pages += 1
            report.entries += len(rows)
            if report.first_event_time is None or low < report.first_event_time:
                report.first_event_time = low
            if report.last_event_time is None or high > report.last_event_time:
                report.last_event_time = high

    @property
    def stopped_reason(self) -> Optional[str]:
        """Why the run stopped early, if any log type did (a stop of the whole run before a type's own)."""
        stopped = [r for r in self.log_types.values() if r.stopped_reason]
        stopped.sort(key=lambda r: r.stopped_by_budget_share)
        return stopped[0].stopped_reason if stopped else None

    @property
    def finished(self) -> bool:
        """Whether every log type is either complete or stopped for this run."""
        return all(r.complete or r.stopped_reason for r in self.log_types.values())

    @property
    def complete(self) -> bool:
        """Whether every log type read its whole window."""
        return all(r.complete for r in self.log_types.values())


def _iso(moment: Optional[datetime]) -> Optional[str]:
    return moment.isoformat() if moment else None
