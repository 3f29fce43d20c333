"""Dagster recipe: one asset per Gong log type table, materialized by dagster-dlt.

    pip install "gong-logs[postgres]" "dagster-dlt>=0.29,<0.30"
    dagster dev -f deploy/dagster/gong_logs_assets.py

The source is configured the dlt way (.dlt/secrets.toml or SOURCES__GONG__... variables), which must be
present when Dagster loads this file: dagster-dlt reads the source to name the assets.
"""

# No `from __future__ import annotations`: Dagster inspects the real type of `context`.

from collections.abc import Iterator
from typing import Any

import dlt
from dagster import AssetExecutionContext, AssetsDefinition, Definitions, definitions
from dagster_dlt import DagsterDltResource, dlt_assets
from dlt.extract.source import DltSource
from dlt.pipeline.pipeline import Pipeline

from gong_source import gong_source


def gong_log_assets(source: DltSource, pipeline: Pipeline) -> AssetsDefinition:
    """The assets of one Gong source loaded by one dlt pipeline."""

    @dlt_assets(dlt_source=source, dlt_pipeline=pipeline, name="gong_logs", group_name="gong_logs")
    def gong_logs(context: AssetExecutionContext, dlt: DagsterDltResource) -> Iterator[Any]:
        yield from dlt.run(context=context)

    return gong_logs


@definitions  # built when Dagster loads the code location, not at import
def defs() -> Definitions:
    """What `dagster dev -f` loads: the configured source into PostgreSQL."""
    pipeline = dlt.pipeline(pipeline_name="gong_logs", dataset_name="gong_logs", destination="postgres")
    return Definitions(assets=[gong_log_assets(gong_source(), pipeline)], resources={"dlt": DagsterDltResource()})
