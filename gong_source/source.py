"""The dlt source: one incremental, merge-loaded resource per Gong log type."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Iterator, Optional, Sequence, Union

import dlt
from dlt.extract.resource import DltResource
from dlt.sources.helpers.rest_client.auth import AuthConfigBase

from gong_source.client import GongLogsClient
from gong_source.config import (
    GongCredentials,
    TimeRange,
    build_auth,
    normalize_base_url,
    resolve_log_types,
    resolve_time_range,
)
from gong_source.entries import EntryKeyer, prepare_entries
from gong_source.report import RunReport
from gong_source.settings import CURSOR_FIELD, DEFAULT_BASE_URL, DEFAULT_START_LOOKBACK, ENTRY_KEY_COLUMN, LogType


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
    report: Optional[RunReport] = None,
) -> list[DltResource]:
    """Gong audit logs (`GET /v2/logs`), one table per log type.

    Args:
        base_url: Your Gong API host, e.g. `https://company-17.api.gong.io` (`/v2` optional).
        credentials: An access key pair or an OAuth access token.
        start_date: Where a first run begins (ISO-8601); default 30 days ago. Later runs continue from state.
        end_date: Optional exclusive end of a bounded backfill; such a run does not move the incremental state.
        log_types: Log type names to load (list or comma-separated); default all five.
        report: A `RunReport` to fill with per-type counters, for the pipeline's summary.
    """
    auth = build_auth(credentials)
    api_url = normalize_base_url(base_url)
    selected = resolve_log_types(log_types)
    now = utc_now()
    time_range = resolve_time_range(start_date, end_date, now=now, default_start=now - DEFAULT_START_LOOKBACK)
    run_report = report or RunReport()
    return [log_type_resource(log_type, api_url, auth, time_range, now, run_report) for log_type in selected]


def log_type_resource(
    log_type: LogType,
    api_url: str,
    auth: AuthConfigBase,
    time_range: TimeRange,
    cut_off: datetime,
    report: RunReport,
) -> DltResource:
    """The resource for one log type: reads `[last eventTime, end)` and merges on the entry key."""
    window_end = time_range.end or cut_off

    @dlt.resource(
        name=log_type.table_name,
        write_disposition="merge",
        primary_key=ENTRY_KEY_COLUMN,
        columns={
            ENTRY_KEY_COLUMN: {"data_type": "text", "nullable": False},
            CURSOR_FIELD: {"data_type": "timestamp", "nullable": False},
        },
    )
    def log_entries(
        event_time: dlt.sources.incremental[datetime] = dlt.sources.incremental(
            CURSOR_FIELD, initial_value=time_range.start, end_value=time_range.end
        ),
    ) -> Iterator[list[dict[str, Any]]]:
        window_start = event_time.start_value or time_range.start
        type_report = report.for_type(log_type.name, log_type.table_name)
        type_report.window_start, type_report.window_end = window_start, window_end
        if window_start >= window_end:
            type_report.complete = True
            return
        client = GongLogsClient(api_url, auth)
        keyer = EntryKeyer(log_type.name)
        position = 0
        for page in client.iter_pages(log_type.name, window_start, window_end):
            rows = prepare_entries(page.entries, log_type.name, keyer, first_position=position)
            position += len(rows)
            type_report.total_records = page.total_records
            report.record_page(type_report, rows, CURSOR_FIELD)
            yield rows
        type_report.complete = True

    return log_entries
