"""Gong's API facts and the connector's defaults, each kept as a named constant with its reason."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Final

DEFAULT_BASE_URL: Final = "https://api.gong.io"
"""Gong's default API host; OAuth apps get a per-customer host (`api_base_url_for_customer`)."""

API_VERSION_PATH: Final = "/v2"
LOGS_PATH: Final = "logs"

LOGS_READ_SCOPE: Final = "api:logs:read"
"""OAuth scope (and API-key permission) that `/v2/logs` requires."""

PAGE_SIZE: Final = 100
"""Gong returns at most this many entries per page; it is not configurable on the request."""

NOT_FOUND_MEANS_EMPTY: Final = 404
"""Gong answers a period without logs with 404 and its JSON error body, not with an empty 200."""

DEFAULT_START_LOOKBACK: Final = timedelta(days=30)
"""A first run without `start_date` begins this long before now: enough history to be useful,
small enough to stay inside one day's API quota for most tenants."""

LOOPBACK_HOSTS: Final = frozenset({"127.0.0.1", "localhost", "::1"})
"""Hosts allowed over plain http (the sandbox and tests); everything else must be https."""

ENTRY_KEY_COLUMN: Final = "_entry_key"
"""Merge key derived from each entry's content, since Gong's log entries carry no id."""

CURSOR_FIELD: Final = "eventTime"


@dataclass(frozen=True)
class LogType:
    """One Gong `logType` and the table it loads into."""

    name: str
    table_name: str


LOG_TYPES: Final[tuple[LogType, ...]] = (
    LogType("AccessLog", "access_log"),
    LogType("UserActivityLog", "user_activity_log"),
    LogType("UserCallPlay", "user_call_play"),
    LogType("ExternallySharedCallAccess", "externally_shared_call_access"),
    LogType("ExternallySharedCallPlay", "externally_shared_call_play"),
)
LOG_TYPES_BY_NAME: Final = {log_type.name: log_type for log_type in LOG_TYPES}

GONG_MAX_REQUESTS_PER_SECOND: Final = 3.0
"""Gong's documented per-company rate limit."""

GONG_DAILY_QUOTA: Final = 10_000
"""Gong's documented per-company daily request quota."""

DEFAULT_MAX_REQUESTS_PER_RUN: Final = GONG_DAILY_QUOTA // 4
"""A quarter of the daily quota: a scheduled run leaves room for other runs and other integrations."""

DEFAULT_MAX_REQUESTS_PER_DAY: Final = GONG_DAILY_QUOTA // 2
"""Half of the company's daily quota for this job, across all its runs: the other half stays for the company's
other integrations (CRM sync, revenue tools). A busy tenant on a 5-minute schedule needs about 1,900 calls a
day; the ceiling matters when a job catches up (an hourly schedule could otherwise spend 2,500 an hour), and
a month's backfill of a busy tenant (about 20,000 calls) then takes four days, well within AccessLog's 14."""

SHORT_RETRY_AFTER_SECONDS: Final = 1.0
"""The wait after a 429 that gives no Retry-After: a second, the span of Gong's per-second limit."""

DEFAULT_MAX_RETRY_AFTER: Final = timedelta(seconds=60)
"""A 429 asking to wait longer than this means the daily quota is spent: stop cleanly (exit 75), don't sleep."""

DEFAULT_SETTLE_LAG: Final = timedelta(minutes=5)
"""Gong writes some entries minutes after their eventTime; the last few minutes are left for the next run."""

DEFAULT_LOOKBACK: Final = timedelta(hours=1)
"""Each incremental run re-reads this much before what it had loaded, to catch late-arriving entries."""

ACCESS_LOG_RETENTION: Final = timedelta(days=14)
"""Gong reportedly keeps AccessLog entries for about 14 days; a pipeline further behind loses entries."""

DEFAULT_WINDOW_ENTRIES: Final = 5_000
"""Entries per window: the last, partly filled page of each window costs at most 2% more requests than one
cursor over everything."""
BUDGET_WINDOW_FILL: Final = 0.9
"""A window sized to the requests a type holds aims at 90% of their pages' capacity: a density that is off
by up to 10% still fits, and a window that does not fit costs its one first request, not the window."""
DEFAULT_LOAD_INTERVAL: Final = timedelta(seconds=60)
"""The job loads (and so makes progress durable) after this much reading: at Gong's 3 calls/s about 18,000
entries, which a crash would read again. Each load costs a fixed second or so, so much shorter loads cost
throughput on a fast API (a backfill of 1M entries would pay 40 loads at one 5,000-entry window per load)."""
DEFAULT_ENTRIES_PER_LOAD: Final = 20_000
"""...and, per log type, after this many entries: what DuckDB merges at once, hence its memory (1M entries
in one load peaked at 1.27 GB; in loads of 20,000 entries per type at 0.36-0.55 GB)."""
