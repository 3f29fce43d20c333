"""What a run says, rendered from its report: the text summary, the stop explanation, the JSON summary.

`close_report` copies what the rendering needs from the run's plan (requests, budget, pace, why it stopped)
into the report, so that a finished `RunReport` carries everything and renders without the plan.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any, Optional

from gong_source.coverage import COVERAGE_TABLE
from gong_source.report import LogTypeReport, RunReport
from gong_source.windows import ReadPlan, requests_left

EXIT_CODES = {"complete": 0, "stopped": 75, "skipped": 75, "failed": 1}
"""The job's exit code per run status: 75 (EX_TEMPFAIL) means progress is saved, run again later."""
EXIT_STOPPED_EARLY = EXIT_CODES["stopped"]


def exit_code(report: RunReport) -> int:
    """The process exit code of a finished run."""
    return EXIT_CODES[report.status]


def close_report(report: RunReport, plan: Optional[ReadPlan]) -> None:
    """Copy the run's requests, budget, pace and stop explanation from its plan into the report."""
    governor = plan.governor if plan else None
    for type_report in report.log_types.values():
        type_report.requests = governor.sent.get(type_report.log_type, 0) if governor else 0
    if plan is None or governor is None:
        return
    report.requests = governor.total_sent
    report.rate_limit = governor.pace_summary()
    report.budget = budget_summary(report, plan)
    if report.stopped_reason:
        report.stop_explanation = stop_explanation(report, plan)


def summary_lines(report: RunReport) -> list[str]:
    """Standard output of a run: per type the window, requests, entries and eventTime range; rows per table;
    the rate-limit line (when Gong answered 429); the audit views."""
    lines = [
        "Log type                     window asked for (UTC)                        requests fetched  "
        "eventTime range fetched"
    ]
    for type_report in report.log_types.values():
        window = f"[{_short(type_report.window_start)}, {_short(type_report.window_end)})"
        seen = (
            f"{_short(type_report.first_event_time)} .. {_short(type_report.last_event_time)}"
            if type_report.first_event_time
            else "no new entries"
        )
        state = "" if type_report.complete else "  (incomplete)"
        lines.append(
            f"{type_report.log_type:<28} {window:<46} {type_report.requests:>8} {type_report.entries:>7}  {seen}{state}"
        )
    tables = {name: count for name, count in sorted(report.rows_per_table.items()) if not name.startswith("_dlt")}
    lines.append(
        f"Rows written per table in {report.loads} load(s) (re-read entries are merged, never duplicated):"
        if tables
        else "Rows written per table: none (nothing new)"
    )
    lines += [f"  {name:<{max(map(len, tables))}} {count:>8}" for name, count in tables.items()]
    lines += calls_lines(report)
    if report.rate_limit and report.rate_limit["http_429"]:
        lines.append(rate_limit_line(report.rate_limit))
    return lines + view_lines(report)


def calls_lines(report: RunReport) -> list[str]:
    """What the run's calls were spent on, the late entries they found, and the hours put in the coverage record."""
    types = report.log_types.values()
    new = sum(r.requests_new_entries for r in types)
    checks = sum(r.requests_count_checks for r in types)
    rereads = sum(r.requests_rereads for r in types)
    late = sum(r.late_entries for r in types)
    lines = [
        f"Calls: {new} for new entries, {checks} to count final hours, {rereads} to re-read what differed; "
        f"{late} late entr{'y' if late == 1 else 'ies'} found and loaded."
    ]
    outcomes: Counter[str] = Counter()
    for type_report in types:
        outcomes.update(type_report.hour_outcomes)
    if outcomes:
        told = ", ".join(f"{count} {outcome}" for outcome, count in sorted(outcomes.items()))
        lines.append(f"Coverage: {sum(outcomes.values())} final hour(s) recorded in {COVERAGE_TABLE} ({told}).")
    return lines


def message_lines(report: RunReport) -> list[str]:
    """Standard error of a run: the stop explanation, warnings and notes, or the error."""
    if report.status == "failed":
        return [f"ERROR: {report.error}"]
    if report.status == "skipped":
        return [f"SKIPPED (exit {EXIT_CODES['skipped']}): {report.error}"]
    warnings = [f"WARNING: {warning}" for warning in report.warnings]
    return report.stop_explanation + warnings + [f"NOTE: {note}" for note in report.notes]


def view_lines(report: RunReport) -> list[str]:
    """Which views were created; for each one skipped or incomplete, what is missing and the setting that maps it."""
    if report.views_unsupported:
        return [f"Audit views: none ({report.views_unsupported})"]
    if not report.views:
        return []
    created = [view["view"] for view in report.views if view["status"] == "created"]
    lines = [f"Audit views: {', '.join(created) or 'none'}", *(f"  {note}" for note in report.view_notes)]
    if any(view["status"] != "created" and "columns" in view for view in report.views):  # a view on Gong's fields
        lines.append(
            "  `gong-logs fields` lists every loaded column; docs/views.md (Views on your tenant) shows the mapping."
        )
    return lines


def rate_limit_line(pace: dict[str, Any]) -> str:
    """One line on how the run shared Gong's per-company rate limit (printed when another client showed up)."""
    lowest, settled = pace["pace_lowest_per_second"], pace["pace_settled_per_second"]
    return (
        f"Rate limit: {pace['http_429']} x 429 (the company's other integrations use the limit too); pace cut "
        f"{pace['pace_cuts']} time(s)"
        + (f", lowest {lowest:.2f}/s" if lowest is not None else "")
        + (f", {settled:.2f}/s at the end" if settled is not None else "")
        + f" (limit {pace['limit_per_second']:g}/s); "
        + f"{pace['waited_for_retry_after_seconds']:.0f} s held for Retry-After."
    )


def summary_dict(report: RunReport) -> dict[str, Any]:
    """The machine-readable run summary (`--summary-json`), for monitoring."""
    return {
        "exit_code": exit_code(report),
        "status": report.status,
        "error": report.error,
        "complete": report.status == "complete",
        "stopped_reason": report.stopped_reason,
        "loads": report.loads,
        "requests": report.requests,
        "budget_remaining": report.budget["remaining"] if report.budget else None,
        "budget": report.budget,
        "rate_limit": report.rate_limit,
        "warnings": report.warnings,
        "log_types": [type_report.as_dict() for type_report in report.log_types.values()],
        "views": report.views,
    }


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write JSON atomically: a reader never sees half a file."""
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(data, indent=2, default=str))
    temporary.replace(path)


def budget_summary(report: RunReport, plan: ReadPlan) -> dict[str, Any]:
    """The run's planned budget, where it came from, and what the rest needs."""
    planner, governor = plan.planner, plan.governor
    need = requests_still_needed(report, plan)
    learned = planner.learned
    return {
        "planned": planner.budget,
        "max_requests_per_run": governor.max_requests,
        "remaining": governor.remaining,
        "limited_by": planner.budget_source() if planner.budget is not None else None,
        "learned_quota": {"calls": learned.calls, "learned_at": learned.learned_at} if learned else None,
        "quota_stopped": governor.quota_stopped,
        "requests_answered": governor.answered,
        "requests_committed": sum(r.committed_requests for r in report.log_types.values()),
        "requests_left": need,
        "runs_left_at_this_budget": 0 if need == 0 else planner.runs_needed(need) if need else None,
        "requests_today": requests_today(plan),
    }


def requests_today(plan: ReadPlan) -> Optional[dict[str, Any]]:
    """The quota day's calls across runs, against `max_requests_per_day` (`daily_budget.py`)."""
    ledger = plan.ledger
    if ledger is None:
        return None
    return {
        "day_start": ledger.day_start.isoformat(),
        "before_this_run": ledger.before_run,
        "with_this_run": ledger.before_run + plan.governor.total_sent,
        "max_requests_per_day": ledger.limit,
    }


def requests_still_needed(report: RunReport, plan: ReadPlan) -> Optional[int]:
    """Requests every type's range still needs after this run (None: some type's density is unknown)."""
    lefts = [requests_left(plan, type_report) for type_report in report.log_types.values()]
    return None if any(left is None for left in lefts) else sum(left or 0 for left in lefts)


def stop_explanation(report: RunReport, plan: ReadPlan) -> list[str]:
    """Exit 75's message: per log type, how far progress moved in this run, and if it did not, why and
    which setting would help; then what the rest takes at this budget."""
    governor, planner = plan.governor, plan.planner
    committed = sum(r.committed_requests for r in report.log_types.values())
    reason = governor.stop_reason or (
        f"the run's request budget of {planner.budget} ({planner.budget_source()}) is used up by the shares "
        "of its log types"
    )
    lines = [
        f"STOPPED EARLY (exit {EXIT_STOPPED_EARLY}): {reason}. What was read is loaded; "
        f"{governor.total_sent} requests this run, {committed} of them in windows whose progress is now "
        f"committed. Budget: {planner.budget if planner.budget is not None else 'unlimited'} "
        f"({planner.budget_source()})."
    ]
    lines += [f"  {r.log_type}: {describe_progress(r, plan)}" for r in report.log_types.values()]
    need = requests_still_needed(report, plan)
    if need is not None:
        runs = planner.runs_needed(need)
        at_budget = f", about {runs} more run(s) at this budget" if runs else ""
        lines.append(f"The rest needs about {need} requests{at_budget}. The next run continues from here.")
    else:
        lines.append("The next run continues from here.")
    return lines


def describe_progress(type_report: LogTypeReport, plan: ReadPlan) -> str:
    """One log type's progress in this run, in words; when it did not move, why and what would help."""
    before, after = _short(type_report.progress_before), _short(type_report.progress_after)
    sent = plan.governor.sent.get(type_report.log_type, 0)
    if type_report.progress_moved:
        state = "complete" if type_report.complete else "more to read"
        return (
            f"progress moved {before} -> {after} UTC ({type_report.committed_entries} entries in "
            f"{type_report.committed_windows} committed window(s), {sent} requests; {state})"
        )
    if type_report.complete:
        return f"complete, nothing new since {before} UTC"
    why, helps = _why_not_moved(type_report, plan, sent)
    return f"progress did NOT move (still {before} UTC): {why}; {helps}"


def _why_not_moved(type_report: LogTypeReport, plan: ReadPlan, sent: int) -> tuple[str, str]:
    """Why a type's progress did not move in this run, and which setting would help."""
    planner, governor = plan.planner, plan.governor
    minimum = 2 * len(plan.log_types)
    if type_report.stop_kind == "dense_second":
        return type_report.stopped_reason or "", "until then this type cannot move"
    if governor.quota_stopped and not type_report.stopped_by_budget_share:
        learned = governor.answered
        why = (
            f"Gong's daily quota (a 429 with a long Retry-After) stopped the run before one of its windows was "
            f"complete ({sent} requests, none of them finished a window)"
        )
        if learned > 0:
            why += (
                f". The next run plans its windows to fit the {learned} calls Gong answered in this one (the "
                "learned quota, kept in dlt state)"
            )
        return why, (
            "what helps: schedule the run before the company's other integrations use the quota, or read fewer "
            "log types at once (sources.gong.log_types)"
        )
    why = (
        f"its share of the run's budget ({sent} requests) did not finish a window (the first request of a range "
        "not measured before only counts its entries; the next run sizes its windows from the density measured now)"
    )
    if planner.learned is not None and planner.budget_source().startswith("Gong's daily quota"):
        return why, (
            f"the run plans with {planner.budget_source()}; what helps: leave this job more of the company's daily "
            "quota, or read fewer log types at once (sources.gong.log_types)"
        )
    if planner.limit_source is not None and plan.ledger is not None:
        return why, (
            f"the day's ceiling binds ({planner.limit_source}); the next day begins "
            f"{plan.ledger.next_day.isoformat()}, or raise sources.gong.max_requests_per_day"
        )
    if governor.max_requests is not None and governor.max_requests < minimum:
        return why, (
            f"what helps: raise sources.gong.max_requests_per_run (now {governor.max_requests}) to at least "
            f"{minimum} (2 per log type)"
        )
    return why, f"what helps: a larger sources.gong.max_requests_per_run (now {governor.max_requests})"


def _short(moment: Optional[datetime]) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S") if moment else "-"
