"""Settling final hours: each becomes a row of the coverage record, counted with Gong once if it has to be.

An hour read only after it was final needs no call (`coverage_from_windows`). An hour read in part before it
was final gets one count call once it is final, and where the counts differ, the halving search re-reads what
Gong wrote late (`check_hour`). Either way the rows, the coverage row and the hour's removal from the state go
into the same load: a run killed during a check loses nothing, and the next run checks the hour again.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING, Any, Iterator

from gong_source.coverage import (
    METHOD_COUNT_CHECK,
    METHOD_WINDOWS,
    HourBook,
    HourCounts,
    as_coverage,
    coverage_row,
)
from gong_source.entries import EntryKeyer, prepare_entries
from gong_source.errors import BudgetShareSpent
from gong_source.recount import CountSearch
from gong_source.report import LogTypeReport
from gong_source.settings import CURSOR_FIELD, LogType

if TYPE_CHECKING:
    from gong_source.client import GongLogsClient
    from gong_source.windows import ReadPlan

logger = logging.getLogger("gong_source")


def rows_of_page(
    log_type: LogType,
    plan: ReadPlan,
    type_report: LogTypeReport,
    entries: list[Any],
    keyer: EntryKeyer,
    position: int,
    where: str,
) -> list[dict[str, Any]]:
    """A page's entries as rows (keyed, PII handled, eventTime in UTC), counted in the run's report."""
    rows = prepare_entries(entries, log_type.name, keyer, position, pii=plan.pii, where=where)
    plan.report.record_page(type_report, rows, CURSOR_FIELD)
    return rows


def coverage_from_windows(
    log_type: LogType, plan: ReadPlan, book: HourBook, loaded_until: datetime
) -> Iterator[Any]:
    """Coverage rows for the hours read completely and only after they were final (no call: complete windows
    hold all that Gong had), and forget their counts."""
    settled = book.settled_by_windows(plan.final_before, loaded_until)
    if not settled:
        return
    rows = []
    for hour in settled:
        loaded = hour.loaded
        rows.append(
            coverage_row(
                log_type.name,
                hour,
                gong_count=loaded,
                rows_loaded=loaded,
                outcome="complete",
                method=METHOD_WINDOWS,
                checked_at=plan.now,
            )
        )
        book.settle(hour)
    plan.report.record_coverage(plan.report.for_type(log_type.name, log_type.table_name), ["complete"] * len(rows))
    yield as_coverage(rows)


def check_hour(
    client: GongLogsClient,
    log_type: LogType,
    plan: ReadPlan,
    type_report: LogTypeReport,
    book: HourBook,
    hour: HourCounts,
) -> Iterator[Any]:
    """Count a final hour with Gong; re-read the buckets that differ; yield their rows, then the coverage row."""
    name = log_type.name
    sent_before = plan.governor.sent.get(name, 0)
    search = CountSearch(
        client,
        name,
        hour.segments(),
        make_rows=lambda entries, keyer, position, where: rows_of_page(
            log_type, plan, type_report, entries, keyer, position, where
        ),
        hold=lambda requests: hold_requests(plan, name, requests),
        available=lambda: plan.planner.available(name),
    )
    try:
        yield from search.run()
    finally:
        # The re-reads that finished stay counted even if the check is stopped (their rows are in this load), so
        # that the next run's check goes on from there instead of starting over.
        hour.set_segment_counts(search.recounted)
        hour.late_found += search.late_entries
        requests = plan.governor.sent.get(name, 0) - sent_before
        hour.check_requests += requests
        plan.report.record_check_calls(
            type_report, search.count_calls, requests - search.count_calls, search.late_entries
        )
    after, gong, late = hour.loaded, search.gong_count or 0, hour.late_found
    if search.short or after < gong:
        outcome = "short"
    elif search.more or after > gong:
        outcome = "more"
    else:
        outcome = "repaired" if late else "complete"
    plan.report.record_check(type_report, outcome)
    if search.late_entries:
        logger.info("%s: %d late entries found in the hour %s and loaded", name, search.late_entries, hour.key)
    if outcome in ("short", "more"):
        plan.report.warn(
            f"{name}, hour {hour.range_start.isoformat()}: Gong counts {gong} entries, {after} are loaded "
            f"({'Gong serves fewer than it counts' if outcome == 'short' else 'more rows than Gong counts'}); "
            "recorded in log_coverage. `gong-logs verify --repair` checks it again."
        )
    row = coverage_row(
        name,
        hour,
        gong_count=gong,
        rows_loaded=after,
        outcome=outcome,
        method=METHOD_COUNT_CHECK,
        checked_at=plan.now,
        late_entries=late,
        requests=hour.check_requests,
    )
    book.settle(hour)
    yield as_coverage([row])


def hold_requests(plan: ReadPlan, log_type: str, requests: int) -> None:
    """Make sure the type holds `requests` more requests of the run's budget, or stop it for this run."""
    if requests > 0 and not plan.planner.hold(log_type, requests):
        raise BudgetShareSpent(share_spent_reason(plan))


def share_spent_reason(plan: ReadPlan) -> str:
    """Why a log type stops when its share of the run's budget is spent."""
    planner = plan.planner
    return (
        f"its share of this run's budget is spent (the run's budget: {planner.budget} requests, from "
        f"{planner.budget_source()}, shared by {len(plan.log_types)} log type(s))"
    )
