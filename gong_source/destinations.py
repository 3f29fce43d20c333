"""Where a run loads: the destination by name (checked first, with the closest name suggested), DuckDB's default
file and its lock, and how each kind of destination is written (parquet, Delta tables on the filesystem)."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Optional

import dlt
import duckdb
from dlt.common.destination import Destination, TLoaderFileFormat
from dlt.common.destination.exceptions import UnknownDestinationModule
from dlt.pipeline.pipeline import Pipeline

from gong_source.coverage import COVERAGE_TABLE
from gong_source.errors import GongConfigError, GongError
from gong_source.explain import DUCKDB_LOCK, duckdb_lock_holder, duckdb_locked_message, unknown_destination_message

logger = logging.getLogger("gong_source")

DUCKDB_FILE = "gong_audit.duckdb"
"""Not `gong_logs.duckdb`: DuckDB cannot resolve a schema (dataset) named like its catalog (file)."""
DELTA_WRITE_DISPOSITION: Any = {"disposition": "merge", "strategy": "upsert"}
"""On the filesystem destination, tables are Delta tables merged by key (dlt supports upsert there)."""
DUCKDB_LOCK_WAIT_SECONDS = 30.0
"""How long a run waits for another process (an analyst's DuckDB shell) to close the DuckDB file before it gives
up: a scheduler and an analyst share the file, and a shell is often closed within seconds."""
LOCK_POLL_SECONDS = 1.0


def destination_for(name: Optional[str]) -> Destination[Any, Any]:
    """The destination named on the command line (default duckdb, in DUCKDB_FILE unless configured otherwise).

    Checked before anything else, so that a misspelt name is what the user hears about first.
    """
    name = name or "duckdb"
    configured: Any = dlt.secrets.get("destination.duckdb.credentials") or dlt.config.get(
        "destination.duckdb.credentials"
    )
    if name == "duckdb" and not configured:
        return dlt.destinations.duckdb(str(Path.cwd() / DUCKDB_FILE))
    try:
        destination = Destination.from_reference(name)
    except UnknownDestinationModule:
        destination = None
    if destination is None:
        raise GongConfigError(unknown_destination_message(name))
    return destination


def is_file_destination(pipeline: Pipeline) -> bool:
    """Whether the pipeline loads files (dlt's filesystem destination) rather than into a database."""
    return pipeline.destination is not None and pipeline.destination.destination_type.endswith("filesystem")


def preferred_file_format(pipeline: Pipeline) -> Optional[TLoaderFileFormat]:
    """Parquet where the destination loads it (DuckDB, among others); otherwise the destination's default.

    dlt's default for DuckDB, insert_values, loaded 100k entries 2.4x slower and peaked at 1.9 GB instead of
    0.35 GB (DuckDB parsing the INSERT statements); see tests/benchmarks/bench_throughput.py.
    """
    if pipeline.destination is None:
        return None
    capabilities = pipeline.destination.capabilities()
    return "parquet" if "parquet" in capabilities.supported_loader_file_formats else None


def run_into(pipeline: Pipeline, source: Any) -> None:
    """One `pipeline.run` of a source, in the file format and table format that suit the destination."""
    if is_file_destination(pipeline):
        # Plain files cannot merge; Delta tables can (by key), so re-reads stay exactly-once there too.
        for resource in source.resources.values():
            resource.apply_hints(table_format="delta", write_disposition=DELTA_WRITE_DISPOSITION)
            resource.apply_hints(  # the coverage table each log type's resource also writes
                table_name=COVERAGE_TABLE,
                create_table_variant=True,
                table_format="delta",
                write_disposition=DELTA_WRITE_DISPOSITION,
            )
        pipeline.run(source, loader_file_format="parquet")
        return
    file_format = preferred_file_format(pipeline)
    if file_format:
        pipeline.run(source, loader_file_format=file_format)
    else:
        pipeline.run(source)


def duckdb_database(pipeline: Pipeline) -> Optional[Path]:
    """The DuckDB file a pipeline loads into, or None for other destinations (or an in-memory database)."""
    if pipeline.destination is None or not pipeline.destination.destination_type.endswith("duckdb"):
        return None
    database = getattr(pipeline.destination_client().config.credentials, "database", None)  # does not connect
    return Path(database) if isinstance(database, str) and database != ":memory:" else None


def wait_for_duckdb_file(database: Path, wait_seconds: float) -> None:
    """Wait (at most `wait_seconds`) until no other process holds the DuckDB file; then raise what to do.

    DuckDB lets one process open a file for writing; a run that met the lock mid-load would fail after reading.
    """
    if not database.exists():
        return
    started, announced = time.monotonic(), False
    while True:
        try:
            duckdb.connect(str(database)).close()
            return
        except duckdb.IOException as locked:
            if not DUCKDB_LOCK.search(str(locked)):
                raise
            holder = duckdb_lock_holder(str(locked))
            waited = time.monotonic() - started
            if waited >= wait_seconds:
                raise GongError(duckdb_locked_message(str(database), holder, waited)) from None
            if not announced:
                logger.warning(
                    "The DuckDB file %s is open in another process (%s); waiting up to %.0f s for it to close.",
                    database, holder, wait_seconds,
                )  # fmt: skip
                announced = True
            time.sleep(min(LOCK_POLL_SECONDS, wait_seconds - waited))
