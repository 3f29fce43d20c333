"""Dagster recipe: the Gong audit-log tables as one asset, materialized by running the connector once.

    pip install "gong-logs[postgres]" "dagster>=1.13,<1.14"
    dagster dev -f deploy/dagster/gong_logs_assets.py

It calls `gong_source.run_once`, as the `gong-logs` command does: the view mapping checked before any request,
loads until every log type is complete or the run stops on purpose (budget, Gong's daily quota), then the audit
views. The source is configured the dlt way (.dlt/secrets.toml or SOURCES__GONG__... variables).
"""

# No `from __future__ import annotations`: Dagster inspects the real type of `context`.

from typing import Any

import dlt
from dagster import (
    AssetExecutionContext,
    AssetsDefinition,
    Definitions,
    Failure,
    MaterializeResult,
    asset,
    definitions,
)
from dlt.pipeline.pipeline import Pipeline

from gong_source import run_once
from gong_source.run_summary import message_lines, summary_lines


def gong_log_assets(pipeline: Pipeline, **source_options: Any) -> AssetsDefinition:
    """The asset of the Gong audit-log tables that `pipeline` loads (source options as `gong_source` takes)."""

    @asset(name="gong_logs", group_name="gong_logs")
    def gong_logs(context: AssetExecutionContext) -> MaterializeResult:
        report = run_once(pipeline, **source_options)
        for line in summary_lines(report) + message_lines(report):
            context.log.info(line)
        report.raise_for_failure()
        if report.status == "skipped":  # another run of the pipeline holds its lock: nothing was loaded
            raise Failure(description=report.error, allow_retries=True)
        return MaterializeResult(
            metadata={
                "status": report.status,  # "stopped": progress saved, the next materialization continues
                "requests": report.requests,
                "rows": sum(count for table, count in report.rows_per_table.items() if not table.startswith("_dlt")),
                "views": [view["view"] for view in report.views if view["status"] == "created"],
            }
        )

    return gong_logs


@definitions  # built when Dagster loads the code location, not at import
def defs() -> Definitions:
    """What `dagster dev -f` loads: the configured source into PostgreSQL."""
    pipeline = dlt.pipeline(pipeline_name="gong_logs", dataset_name="gong_logs", destination="postgres")
    return Definitions(assets=[gong_log_assets(pipeline)])
