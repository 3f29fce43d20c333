"""What a run did, per log type: the window it asked for, pages, entries and eventTime range."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Optional


@dataclass
class LogTypeReport:
    """Counters for one log type in one run."""

    log_type: str
    table_name: str
    window_start: Optional[datetime] = None
    window_end: Optional[datetime] = None
    pages: int = 0
    entries: int = 0
    total_records: Optional[int] = None
    first_event_time: Optional[datetime] = None
    last_event_time: Optional[datetime] = None
    complete: bool = False


@dataclass
class RunReport:
    """Shared by the resources of one source; safe to update from parallel resources."""

    log_types: dict[str, LogTypeReport] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def for_type(self, log_type: str, table_name: str) -> LogTypeReport:
        """Return (creating if needed) the report of one log type."""
        with self._lock:
            return self.log_types.setdefault(log_type, LogTypeReport(log_type, table_name))

    def record_page(self, report: LogTypeReport, rows: list[dict[str, Any]], event_time_field: str) -> None:
        """Count one fetched page and widen the observed eventTime range."""
        times = [row[event_time_field] for row in rows]
        with self._lock:
            report.pages += 1
            report.entries += len(rows)
            if times:
                low, high = min(times), max(times)
                if report.first_event_time is None or low < report.first_event_time:
                    report.first_event_time = low
                if report.last_event_time is None or high > report.last_event_time:
                    report.last_event_time = high
