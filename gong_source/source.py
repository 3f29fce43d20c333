"""The dlt source: one merge-loaded resource per Gong log type, read in parallel within Gong's limits."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterator, Optional, Sequence, Union

import dlt
from dlt.common.schema.typing import TSimpleRegex
from dlt.common.typing import TSecretStrValue
from dlt.extract.resource import DltResource

from gong_source.client import HttpSettings
from gong_source.config import (
    GongCredentials,
    build_auth,
    normalize_base_url,
    parse_datetime,
    resolve_log_types,
    resolve_time_range,
)
from gong_source.coverage import with_coverage_table
from gong_source.entries import CHANGED_VALUE_COLUMNS
from gong_source.limits import RequestGovernor
from gong_source.pii import PiiPolicy
from gong_source.settings import (
    ACCESS_LOG_RETENTION,
    CURSOR_FIELD,
    DEFAULT_BASE_URL,
    DEFAULT_ENTRIES_PER_LOAD,
    DEFAULT_LOAD_INTERVAL,
    DEFAULT_LOOKBACK,
    DEFAULT_MAX_REQUESTS_PER_DAY,
    DEFAULT_MAX_REQUESTS_PER_RUN,
    DEFAULT_MAX_RETRY_AFTER,
    DEFAULT_SETTLE_LAG,
    DEFAULT_WINDOW_ENTRIES,
    ENTRY_KEY_COLUMN,
    GONG_MAX_REQUESTS_PER_SECOND,
    LogType,
)
from gong_source.windows import ReadPlan, ReadSession, read_log_type


def utc_now() -> datetime:
    """The current time in UTC, to whole seconds."""
    return datetime.now(timezone.utc).replace(microsecond=0)


@dlt.source(name="gong", section="gong")
def gong_source(
    base_url: str = DEFAULT_BASE_URL,
    credentials: GongCredentials = dlt.secrets.value,
    start_date: Optional[str] = None,
    end_date: Optional[str] = None,
    log_types: Union[str, Sequence[str], None] = None,
    max_requests_per_second: float = GONG_MAX_REQUESTS_PER_SECOND,
    max_requests_per_run: Optional[int] = DEFAULT_MAX_REQUESTS_PER_RUN,
    max_requests_per_day: Optional[int] = DEFAULT_MAX_REQUESTS_PER_DAY,
    max_retry_after_seconds: float = DEFAULT_MAX_RETRY_AFTER.total_seconds(),
    settle_lag_seconds: float = DEFAULT_SETTLE_LAG.total_seconds(),
    lookback_seconds: float = DEFAULT_LOOKBACK.total_seconds(),
    access_log_retention_days: float = ACCESS_LOG_RETENTION.days,
    window_entries: int = DEFAULT_WINDOW_ENTRIES,
    load_interval_seconds: float = DEFAULT_LOAD_INTERVAL.total_seconds(),
    entries_per_load: int = DEFAULT_ENTRIES_PER_LOAD,
    pii: str = "keep",
    pii_salt: Optional[TSecretStrValue] = None,
    now: Optional[str] = None,
    session: Optional[ReadSession] = None,
) -> list[DltResource]:
    """Gong audit logs (`GET /v2/logs`), one table per log type.

    Args:
        base_url: Your Gong API host, e.g. `https://company-17.api.gong.io` (`/v2` optional).
        credentials: An access key pair or an OAuth access token.
        start_date: Where a first run begins (ISO-8601); default 30 days ago. Later runs continue from state.
        end_date: Exclusive end of a bounded backfill, which keeps its own progress and leaves the incremental one.
        log_types: Log type names to load (list or comma-separated); default all five.
        max_requests_per_second: Pace shared by all log types (Gong allows 3).
        max_requests_per_run: Budget of requests; when spent the run stops cleanly. 0 or None: unlimited.
        max_requests_per_day: Ceiling of requests in a quota day, counted across runs; when reached the run stops
            cleanly. 0 or None: none.
        max_retry_after_seconds: Longest 429 Retry-After to wait out; a longer one stops the run cleanly.
        settle_lag_seconds: The newest entries are left for the next run, as Gong may still be writing them.
        lookback_seconds: How late Gong may write an entry: an hour is final (checked with Gong's count once,
            late entries re-read) this long after the cut-off passed it.
        access_log_retention_days: Warn when AccessLog progress is older than this.
        window_entries: Target entries per window (windows are what progress is saved by).
        load_interval_seconds: In the job's load loop, end a load at the first window done after this much
            reading (0: after every window), so that progress becomes durable that often.
        entries_per_load: In that loop, also end a log type's load at the first window done after this many
            entries, which bounds what the destination merges at once (its memory).
        pii: `keep`, `hash` (HMAC-SHA256 with `pii_salt`) or `drop` the person-identifying fields (see pii.py).
        pii_salt: The secret key of `hash`; keep it stable so a person maps to the same token across runs.
        now: Pretend the current time is this (tests and reproducible replays); default: the system clock.
        session: Shared by the loads of one run (the CLI's loop); a standalone source reads all in one load.
    """
    run = session or ReadSession()
    selected = resolve_log_types(log_types)
    text_columns = {TSimpleRegex(column): "text" for column in CHANGED_VALUE_COLUMNS}
    dlt.current.source_schema().update_preferred_types(text_columns)  # type: ignore[arg-type]
    if run.plan is None:
        run.plan = ReadPlan(
            api_url=normalize_base_url(base_url),
            log_types=selected,
            auth=build_auth(credentials),
            http=HttpSettings.from_runtime_config(max_retry_after=max_retry_after_seconds),
            governor=RequestGovernor(max_requests_per_second, max_requests_per_run or None),
            report=run.report,
            time_range=resolve_time_range(
                start_date, end_date, now=parse_datetime(now, "sources.gong.now") or utc_now()
            ),
            settle_lag=timedelta(seconds=settle_lag_seconds),
            lookback=timedelta(seconds=lookback_seconds),
            window_entries=window_entries,
            access_log_retention=timedelta(days=access_log_retention_days),
            pii=PiiPolicy(pii, pii_salt),
            load_interval=timedelta(seconds=load_interval_seconds) if run.batch_loads else None,
            entries_per_load=entries_per_load,
            max_requests_per_day=max_requests_per_day or None,
        )
    return [log_type_resource(log_type, run.plan) for log_type in selected]


def log_type_resource(log_type: LogType, plan: ReadPlan) -> DltResource:
    """The resource for one log type: windows of `/v2/logs`, merged on the derived entry key."""
    return log_table_resource(
        log_type,
        lambda: read_log_type(log_type, plan, dlt.current.resource_state(), dlt.current.source_state()),
    )


def log_table_resource(log_type: LogType, rows: Callable[[], Iterator[Any]]) -> DltResource:
    """A resource writing one log type's table (merged on the derived entry key) and its coverage rows:
    `rows` yields them (the job's windows, or `gong-logs verify --repair`'s re-reads)."""

    @dlt.resource(
        name=log_type.table_name,
        write_disposition="merge",
        primary_key=ENTRY_KEY_COLUMN,
        columns={
            ENTRY_KEY_COLUMN: {"data_type": "text", "nullable": False},
            CURSOR_FIELD: {"data_type": "timestamp", "nullable": False},
        },
        parallelized=True,
    )
    def log_entries() -> Iterator[Any]:
        yield from rows()

    return with_coverage_table(log_entries)
