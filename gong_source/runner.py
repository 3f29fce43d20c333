"""Running the connector once: the lock, the pipeline, loads until done or stopped, then the views.

`run_once` is the one entry point the command line, the demo and the Airflow and Dagster recipes share:

    from gong_source import run_once
    report = run_once(destination="postgres")   # config and secrets the dlt way
    report.raise_for_failure()                  # or read report.status: complete, stopped, skipped, failed
"""

from __future__ import annotations

import fcntl
import logging
import math
from collections import Counter
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import dlt
from dlt.common.configuration.exceptions import ConfigurationException
from dlt.common.destination.exceptions import UnknownDestinationModule
from dlt.extract.source import DltSource
from dlt.pipeline.pipeline import Pipeline

from gong_source.destinations import (
    DUCKDB_LOCK_WAIT_SECONDS,
    destination_for,
    duckdb_database,
    is_file_destination,
    run_into,
    wait_for_duckdb_file,
)
from gong_source.errors import GongAuthError, GongConfigError, GongError
from gong_source.explain import error_chain, explain
from gong_source.report import RunReport
from gong_source.run_summary import close_report
from gong_source.source import gong_source
from gong_source.views import (
    COVERAGE_VIEW,
    ViewColumns,
    checked_view_columns,
    create_audit_views,
    create_coverage_view,
    view_warnings,
)
from gong_source.windows import ReadSession

logger = logging.getLogger("gong_source")

PIPELINE_NAME = "gong_logs"
"""The pipeline's name and its default dataset."""


NOT_HELPED_BY_WAITING = (GongConfigError, GongAuthError, ConfigurationException, UnknownDestinationModule)
"""Failures a retry meets again: configuration (ours or dlt's: a missing setting) and credentials Gong refused."""


class AnotherRunInProgress(GongError):
    """The pipeline is already running in another process."""


def run_once(
    pipeline: Optional[Pipeline] = None,
    *,
    destination: Optional[str] = None,
    dataset_name: Optional[str] = None,
    view_columns: Optional[ViewColumns] = None,
    duckdb_lock_wait_seconds: Optional[float] = None,
    start_over: bool = False,
    **source_options: Any,
) -> RunReport:
    """Load what is new, window after window, until every log type is complete or the run stops on purpose;
    then (re)create the audit views. Never raises for a failed run: the report says what happened.

    `pipeline`: your own dlt pipeline (default: `gong_logs` into `destination`, dataset `gong_logs`; DuckDB
    in gong_audit.duckdb). `view_columns`: the tenant's view mapping (default: `sources.gong.view_columns`,
    checked against the loaded tables before any request). `start_over`: drop the pipeline's local state
    first, under the lock (the demo does when its database was deleted). `source_options`: arguments of `gong_source`
    (start_date, end_date, log_types, ...); what is not given comes from dlt config.
    """
    session = ReadSession(batch_loads=True)
    report = session.report
    try:
        if pipeline is None:
            chosen = destination_for(destination)  # a misspelt destination is the first thing said
            first_source = gong_source(session=session, **source_options)  # then the Gong configuration
            pipeline = dlt.pipeline(
                pipeline_name=PIPELINE_NAME, destination=chosen, dataset_name=dataset_name or PIPELINE_NAME
            )
        else:
            first_source = gong_source(session=session, **source_options)
        sources = _sources(first_source, lambda: gong_source(session=session, **source_options))
        with exclusive_run(pipeline):
            if start_over:
                pipeline = pipeline.drop()
            if session.plan is not None:
                session.plan.requests_file = requests_file(pipeline)
            database = duckdb_database(pipeline)
            if database is not None:
                wait_for_duckdb_file(database, lock_wait(duckdb_lock_wait_seconds))
            if view_columns is None:
                # Under the lock: on a machine without local state this restores the pipeline from the destination.
                view_columns = checked_view_columns(pipeline, restore_schema=not is_file_destination(pipeline))
            _load(pipeline, sources, session)
            _create_views(pipeline, view_columns, report)
        report.status = "stopped" if report.stopped_reason else "complete"
    except AnotherRunInProgress as busy:
        report.status, report.error = "skipped", str(busy)
    except Exception as failure:
        report.status, report.error, report.exception = "failed", explain(failure), failure
        report.retry_helps = not any(isinstance(cause, NOT_HELPED_BY_WAITING) for cause in error_chain(failure))
    finally:
        if session.plan:
            session.plan.close()
            if session.plan.ledger is not None:
                session.plan.ledger.write_file(session.plan.governor.total_sent)
        close_report(report, session.plan)
    return report


def requests_file(pipeline: Pipeline) -> Path:
    """The daily ledger's local file, beside the pipeline's working folder (`daily_budget.py`)."""
    return Path(pipeline.pipelines_dir) / f"{pipeline.pipeline_name}.requests_today.json"


@contextmanager
def exclusive_run(pipeline: Pipeline) -> Iterator[None]:
    """Hold a lock beside the pipeline's working directory; a second concurrent run refuses to start.

    dlt has no lock of its own, and two runs of one pipeline would race on its state and packages.
    """
    lock_path = Path(pipeline.pipelines_dir) / f"{pipeline.pipeline_name}.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("a+") as lock_file:
        try:
            fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise AnotherRunInProgress(
                f"Another run of pipeline {pipeline.pipeline_name} is in progress (lock {lock_path}); this run "
                "did nothing. Let it finish; schedule runs so they do not overlap."
            ) from None
        try:
            yield
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)


def refuse_settings_that_drop_failed_packages() -> None:
    """Progress is committed with the data; dlt settings that discard a failed package would lose entries."""
    dangerous = {
        "load.raise_on_failed_jobs": False,  # a failed package would be reported as loaded
        "load.auto_abort_on_terminal_error": True,  # a failed package would be thrown away
    }
    for key, value in dangerous.items():
        configured: Any = dlt.config.get(key)
        if configured is not None and str(configured).lower() == str(value).lower():
            raise GongConfigError(
                f"{key} = {value} would let a failed load drop entries while their progress is kept. "
                f"Remove that setting (env {key.upper().replace('.', '__')})."
            )


def _load(pipeline: Pipeline, sources: Iterator[DltSource], session: ReadSession) -> None:
    """Load window after window until every log type is complete or stopped for this run."""
    refuse_settings_that_drop_failed_packages()
    report, rows = session.report, Counter[str]()
    if pipeline.has_pending_data:
        logger.warning("Finishing a load package left by an earlier run before reading anything new.")
        pipeline.run()
    for source in sources:
        sent_before = session.plan.governor.total_sent if session.plan else 0
        run_into(pipeline, source)
        report.loads += 1
        normalize_info = pipeline.last_trace.last_normalize_info if pipeline.last_trace else None
        rows.update(normalize_info.row_counts if normalize_info else {})
        report.rows_per_table = dict(rows)
        sent_any = session.plan is not None and session.plan.governor.total_sent > sent_before
        if report.finished:
            # Every type is complete, or stopped (the budget, its share of it, or Gong's quota). Types stopped for
            # lack of requests read on if the pool got some; a reopened load that could send nothing ends the run.
            if not sent_any or not _reopen_for_the_pool(session):
                break
        elif not sent_any:
            raise GongError("A load read nothing new although some log types are incomplete; stopping, not looping.")


def _create_views(pipeline: Pipeline, view_columns: ViewColumns, report: RunReport) -> None:
    """(Re)create the audit views the loaded columns allow; a failure is a warning (the data is loaded)."""
    if is_file_destination(pipeline):
        report.views_unsupported = "the destination holds files; query the tables"
        return
    try:
        outcomes = create_audit_views(pipeline, view_columns)
    except Exception as error:  # views are a convenience: the run's data is loaded either way
        report.warn(f"the audit views were not created ({explain(error)}); the tables are loaded")
        return
    report.views = [outcome.as_dict() for outcome in outcomes]
    report.view_notes = [outcome.summary() for outcome in outcomes if outcome.reason()]
    for warning in view_warnings(outcomes):
        report.warn(warning)
    try:
        coverage = create_coverage_view(pipeline)
    except Exception as error:  # as above: a convenience over the loaded data
        coverage = {"view": COVERAGE_VIEW, "status": "failed", "error": explain(error)}
    report.views.append(coverage)
    if coverage["status"] == "failed":
        report.warn(f"view {COVERAGE_VIEW} was not created: {coverage['error']}")


def _sources(first: DltSource, make_next: Callable[[], DltSource]) -> Iterator[DltSource]:
    """The run's first source, then a new one per further load (they share the run's session)."""
    yield first
    while True:
        yield make_next()


def _reopen_for_the_pool(session: ReadSession) -> bool:
    """After a load: types that stopped for lack of requests read on in another load if requests that
    other types did not need came free meanwhile (the planner's pool)."""
    plan = session.plan
    if plan is None or plan.governor.stop_reason or not plan.planner.can_grant():
        return False
    return bool(session.report.reopen_share_stopped())


def lock_wait(configured: Optional[float]) -> float:
    """Seconds to wait for another process to close the DuckDB file (argument, then config, then default)."""
    value: Any = configured if configured is not None else dlt.config.get("sources.gong.duckdb_lock_wait_seconds")
    if value is None:
        return DUCKDB_LOCK_WAIT_SECONDS
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds >= 0):
        raise GongConfigError(f"sources.gong.duckdb_lock_wait_seconds must be a number of seconds >= 0, not {value!r}.")
    return seconds
