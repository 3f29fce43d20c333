"""Ready SQL views for common audit questions, created after each load from the columns that exist.

Each view lists the columns it needs; a view whose columns are not (yet) in the schema is skipped,
and views select explicit columns, so new fields from Gong never break them. Union views take every
log-type table that has the needed columns, and grow as more tables appear.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable, Optional

from dlt.common.schema import Schema
from dlt.pipeline.pipeline import Pipeline

from gong_source.settings import LOG_TYPES

logger = logging.getLogger("gong_source")

Qualify = Callable[[str], str]


@dataclass(frozen=True)
class AuditView:
    """One view: its name, the question it answers, and how to build its SQL from the schema."""

    name: str
    question: str
    build: Callable[[Schema, Qualify], Optional[str]]


def _has(schema: Schema, table: str, *columns: str) -> bool:
    return table in schema.tables and all(column in schema.tables[table]["columns"] for column in columns)


def _call_plays(schema: Schema, q: Qualify) -> Optional[str]:
    needed = ("event_time", "user_email_address", "log_record__call_id", "log_record__play_duration_seconds")
    if not _has(schema, "user_call_play", *needed):
        return None
    return (
        "SELECT event_time, user_id, user_email_address, log_record__call_id AS call_id, "
        f"log_record__play_duration_seconds AS played_seconds FROM {q('user_call_play')}"
    )


def _external_call_views(schema: Schema, q: Qualify) -> Optional[str]:
    needed = ("event_time", "log_record__call_id", "log_record__viewer_email_address", "log_record__ip_address")
    parts = [
        f"SELECT event_time, '{kind}' AS action, log_record__call_id AS call_id, "
        f"log_record__viewer_email_address AS viewer_email, log_record__ip_address AS viewer_ip FROM {q(table)}"
        for table, kind in (("externally_shared_call_access", "opened"), ("externally_shared_call_play", "played"))
        if _has(schema, table, *needed)
    ]
    return " UNION ALL ".join(parts) or None


def _impersonated_actions(schema: Schema, q: Qualify) -> Optional[str]:
    needed = ("event_time", "impersonator_email_address", "user_email_address")
    parts = [
        f"SELECT event_time, '{t.name}' AS log_type, impersonator_email_address AS impersonator_email, "
        f"user_email_address AS on_behalf_of_email FROM {q(t.table_name)} WHERE impersonator_email_address IS NOT NULL"
        for t in LOG_TYPES
        if _has(schema, t.table_name, *needed)
    ]
    return " UNION ALL ".join(parts) or None


def _access_by_ip(schema: Schema, q: Qualify) -> Optional[str]:
    if not _has(schema, "access_log", "event_time", "log_record__ip_address", "log_record__action"):
        return None
    return (
        "SELECT log_record__ip_address AS ip, count(*) AS events, "
        "count(*) FILTER (WHERE log_record__action = 'LOGIN_FAILED') AS failed_logins, "
        f"min(event_time) AS first_seen, max(event_time) AS last_seen FROM {q('access_log')} GROUP BY 1"
    )


def _daily_activity(schema: Schema, q: Qualify) -> Optional[str]:
    parts = [
        f"SELECT CAST(event_time AS DATE) AS day, user_email_address, '{t.name}' AS log_type FROM {q(t.table_name)}"
        for t in LOG_TYPES
        if _has(schema, t.table_name, "event_time", "user_email_address")
    ]
    if not parts:
        return None
    union = " UNION ALL ".join(parts)
    return (
        f"SELECT day, user_email_address, log_type, count(*) AS events FROM ({union}) AS activity "
        "GROUP BY day, user_email_address, log_type"
    )


AUDIT_VIEWS: tuple[AuditView, ...] = (
    AuditView("v_call_plays", "Who played which calls, and for how long?", _call_plays),
    AuditView(
        "v_external_call_views",
        "Which externally shared calls were opened or played, by whom, from where?",
        _external_call_views,
    ),
    AuditView(
        "v_impersonated_actions", "What was done while impersonating, by whom and for whom?", _impersonated_actions
    ),
    AuditView("v_access_by_ip", "Access and failed logins per IP address.", _access_by_ip),
    AuditView("v_daily_activity", "Daily activity per user across all log types.", _daily_activity),
)


def create_audit_views(pipeline: Pipeline) -> list[str]:
    """Create or replace every view whose columns exist; return the names created."""
    schema = pipeline.default_schema
    created = []
    with pipeline.sql_client() as client:
        for view in AUDIT_VIEWS:
            body = view.build(schema, client.make_qualified_table_name)
            if body is None:
                logger.info("view %s skipped: the columns it needs are not loaded yet", view.name)
                continue
            client.execute_sql(f"CREATE OR REPLACE VIEW {client.make_qualified_table_name(view.name)} AS {body}")
            created.append(view.name)
    return created
