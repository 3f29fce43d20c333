"""What each audit view must hold, computed from the JSON the sandbox served (real Gong shapes), never from
the views' SQL; and the SELECT that reads the same columns back from any destination."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from datetime import datetime, timezone
from typing import Any, Callable, Optional

from gong_source.entries import parse_event_time
from gong_source.sandbox import GongSandbox
from gong_source.settings import LOG_TYPES
from tests.conftest import EPOCH

Row = tuple[Any, ...]

VIEW_COLUMNS: dict[str, tuple[str, ...]] = {
    "v_call_plays": (
        "event_time",
        "call_id",
        "user_id",
        "user_email_address",
        "played_seconds",
        "player_session_id",
        "segments",
        "play_speed",
        "device",
        "last_event_time",
    ),
    "v_external_call_views": (
        "action",
        "event_time",
        "call_id",
        "viewer_email",
        "viewer_ip",
        "sharing_id",
        "viewer_name",
        "played_seconds",
        "player_session_id",
    ),
    "v_access_by_ip": ("ip", "action", "method", "path", "status", "events", "first_seen", "last_seen"),
    "v_user_activity_changes": (
        "event_time",
        "user_id",
        "user_email_address",
        "impersonator_email",
        "client_ip",
        "method",
        "endpoint",
        "table_name",
        "primary_key",
        "column_name",
        "operation",
        "old_value",
        "new_value",
    ),
    "v_impersonated_actions": ("event_time", "impersonator_email", "on_behalf_of_email", "log_type"),
    "v_daily_activity": ("user_email_address", "log_type", "events"),
}


def select_view(view: str) -> str:
    """The SELECT reading a view's columns in `VIEW_COLUMNS` order (`{dataset}` left to fill in).

    Daily activity is compared per user and log type: which day an instant falls on depends on the
    database session's time zone."""
    if view == "v_daily_activity":
        return (
            "SELECT user_email_address, log_type, CAST(sum(events) AS BIGINT) FROM {dataset}.v_daily_activity "
            "GROUP BY user_email_address, log_type"
        )
    return f"SELECT {', '.join(VIEW_COLUMNS[view])} FROM {{dataset}}.{view}"


def normalized(rows: list[Row]) -> Counter[Row]:
    """Rows as a multiset, comparable across destinations: floats to 6 decimals, times in UTC."""

    def value(item: Any) -> Any:
        if isinstance(item, float):
            return round(item, 6)
        if isinstance(item, datetime):
            return item.astimezone(timezone.utc)
        return item

    return Counter(tuple(value(item) for item in row) for row in rows)


def first_hop(chain: Optional[str]) -> Optional[str]:
    """The client of an `x-forwarded-for` chain (its first entry, trimmed)."""
    return None if chain is None else chain.split(",")[0].strip()


def as_text(value: Any) -> Any:
    """A changed value as the connector loads it: strings as they are, anything else as JSON text."""
    return value if value is None or isinstance(value, str) else json.dumps(value)


def _time(entry: dict[str, Any]) -> datetime:
    return parse_event_time(entry["eventTime"])


def call_plays(entries: list[dict[str, Any]]) -> list[Row]:
    """One row per player session: its segments' `end_time - start_time` summed."""
    sessions: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for entry in entries:
        sessions[entry["logRecord"]["video_player_instance_id"]].append(entry)
    rows = []
    for session, segments in sessions.items():
        first = segments[0]
        times = [_time(segment) for segment in segments]
        records = [segment["logRecord"] for segment in segments]
        rows.append(
            (
                min(times),
                first["logRecord"]["call_id"],
                first["userId"],
                first["userEmailAddress"],
                sum(record["end_time"] - record["start_time"] for record in records),
                session,
                len(segments),
                float(max(record["play_speed"] for record in records)),
                max(record["device"] for record in records),
                max(times),
            )
        )
    return rows


def external_call_views(opened: list[dict[str, Any]], played: list[dict[str, Any]]) -> list[Row]:
    """One row per opening or played segment of an externally shared call."""
    rows = []
    for action, entries in (("opened", opened), ("played", played)):
        for entry in entries:
            record = entry["logRecord"]
            seconds = record["end_time"] - record["start_time"] if action == "played" else None
            rows.append(
                (
                    action,
                    _time(entry),
                    record["call_id"],
                    entry["userEmailAddress"],
                    first_hop(record.get("page_viewer_ip")),
                    record["time_based_secure_sharing_id"],
                    entry.get("userFullName"),
                    seconds,
                    record.get("video_player_instance_id"),
                )
            )
    return rows


def access_by_ip(entries: list[dict[str, Any]]) -> list[Row]:
    """Requests grouped by client IP (first hop), method, path and status."""
    groups: dict[Row, list[datetime]] = defaultdict(list)
    for entry in entries:
        record = entry["logRecord"]
        key = (
            first_hop(record["request_headers"]["x-forwarded-for"]),
            None,
            record["method"],
            record["requested_uri"],
            record["status"],
        )
        groups[key].append(_time(entry))
    return [(*key, len(times), min(times), max(times)) for key, times in groups.items()]


def user_activity_changes(entries: list[dict[str, Any]]) -> list[Row]:
    """One row per changed column; a row change without columns, or a table change without rows, once."""
    rows = []
    for entry in entries:
        record = entry["logRecord"]
        request = record["httpRequest"]
        who = (
            _time(entry),
            entry["userId"],
            entry["userEmailAddress"],
            entry.get("impersonatorEmailAddress"),
            first_hop(request["clientIp"]),
            request["verb"],
            request["endpointUri"],
        )
        for table in record["tableChanges"]:
            if not table["rowChanges"]:
                rows.append((*who, table["tableName"], None, None, None, None, None))
            for row in table["rowChanges"]:
                keys = ", ".join(f"{k['columnName']}={as_text(k['columnValue'])}" for k in row["primaryKeyColumns"])
                changes = row["columnChanges"] or [None]
                for change in changes:
                    if change is None:
                        rows.append((*who, table["tableName"], keys or None, None, None, None, None))
                        continue
                    rows.append(
                        (
                            *who,
                            table["tableName"],
                            keys or None,
                            change["columnName"],
                            change["operation"],
                            as_text(change["oldValue"]),
                            as_text(change["newValue"]),
                        )
                    )
    return rows


def impersonated_actions(truth: dict[str, list[dict[str, Any]]]) -> list[Row]:
    return [
        (_time(entry), entry["impersonatorEmailAddress"], entry.get("userEmailAddress"), log_type)
        for log_type, entries in truth.items()
        for entry in entries
        if "impersonatorEmailAddress" in entry
    ]


def daily_activity(truth: dict[str, list[dict[str, Any]]]) -> list[Row]:
    days: Counter[Row] = Counter(
        (entry["userEmailAddress"], log_type)
        for log_type, entries in truth.items()
        for entry in entries
        if "userEmailAddress" in entry
    )
    return [(*key, events) for key, events in days.items()]


def expected_views(sandbox: GongSandbox) -> dict[str, Counter[Row]]:
    """Every view's rows, from the entries the sandbox serves up to its clock."""
    truth = {log_type.name: sandbox.truth(log_type.name, EPOCH) for log_type in LOG_TYPES}
    builders: dict[str, Callable[[], list[Row]]] = {
        "v_call_plays": lambda: call_plays(truth["UserCallPlay"]),
        "v_external_call_views": lambda: external_call_views(
            truth["ExternallySharedCallAccess"], truth["ExternallySharedCallPlay"]
        ),
        "v_access_by_ip": lambda: access_by_ip(truth["AccessLog"]),
        "v_user_activity_changes": lambda: user_activity_changes(truth["UserActivityLog"]),
        "v_impersonated_actions": lambda: impersonated_actions(truth),
        "v_daily_activity": lambda: daily_activity(truth),
    }
    return {view: normalized(build()) for view, build in builders.items()}
