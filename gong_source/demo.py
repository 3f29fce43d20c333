"""The demo: a local Gong sandbox loaded into its own DuckDB file, then two audit questions answered in SQL.

It needs no Gong account and never touches a real pipeline (its own pipeline name, state and database).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import dlt
import duckdb

from gong_source.config import GongCredentials
from gong_source.report import RunReport
from gong_source.runner import PIPELINE_NAME, run_once
from gong_source.sandbox import GongSandbox
from gong_source.source import utc_now

DEMO_PIPELINE_NAME = "gong_logs_demo"
DEMO_DATABASE = "gong_logs_demo.duckdb"
DEMO_HISTORY = timedelta(days=2)
DEMO_QUERIES = (
    (
        "who played calls the longest (player sessions, all loads so far)",
        "v_call_plays",
        """
SELECT user_email_address, count(*) AS sessions, round(sum(played_seconds) / 60.0) AS minutes
FROM {table}
GROUP BY user_email_address
ORDER BY minutes DESC, user_email_address
LIMIT 5
""",
        "  {0:<40} {1:>5} sessions {2:>7} min",
    ),
    (
        "where refused requests came from (client IP: the first hop of x-forwarded-for)",
        "v_access_by_ip",
        """
SELECT ip, status, path, sum(events) AS refused
FROM {table}
WHERE status IN (401, 403)
GROUP BY ip, status, path
ORDER BY refused DESC, ip, path
LIMIT 5
""",
        "  {0:<40} {1:>5} {2:<32} {3:>4} refused",
    ),
)
"""The demo's example questions: (question, view, SQL, row format)."""


def demo_database() -> Path:
    """The demo's DuckDB file, in the current folder."""
    return Path.cwd() / DEMO_DATABASE


def run_demo(**source_options: Any) -> RunReport:
    """Serve synthetic logs from a local sandbox and load them into the demo database (like a real run)."""
    database = demo_database()
    with GongSandbox() as sandbox:
        options = {
            "base_url": sandbox.url,
            "credentials": GongCredentials(access_key=sandbox.access_key, access_key_secret=sandbox.access_key_secret),
            "start_date": (utc_now() - DEMO_HISTORY).isoformat(),
            "now": utc_now().isoformat(),  # the sandbox follows the wall clock, whatever sources.gong.now says
            "max_requests_per_second": 50,  # a local sandbox has no Gong limit to respect
            **source_options,
        }
        pipeline = dlt.pipeline(
            pipeline_name=DEMO_PIPELINE_NAME,
            destination=dlt.destinations.duckdb(str(database)),
            dataset_name=PIPELINE_NAME,
        )
        print(f"Demo: Gong sandbox at {sandbox.url}, loading into {DEMO_DATABASE} (pipeline {DEMO_PIPELINE_NAME}).")
        # The sandbox's names fit every view; a view_columns mapping of your tenant's would not.
        # The demo database was deleted: start over, not from stale state.
        return run_once(pipeline, view_columns={}, start_over=not database.exists(), **options)


def example_query_lines(report: RunReport) -> list[str]:
    """Example audit questions answered in SQL on the demo database (on the views the run created)."""
    created = {view["view"] for view in report.views if view["status"] == "created"}
    lines: list[str] = []
    with duckdb.connect(str(demo_database()), read_only=True) as connection:
        for question, view, sql, row_format in DEMO_QUERIES:
            if view not in created:
                continue
            query = sql.format(table=f"{PIPELINE_NAME}.{view}")
            rows = connection.execute(query).fetchall()
            lines += ["", f"Example query: {question}", query.strip()]
            lines += [row_format.format(*(str(value) for value in row)) for row in rows]
    return lines
