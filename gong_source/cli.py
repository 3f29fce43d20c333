"""The command line of gong-logs (`pipelines/gong_logs_pipeline.py`, or the installed `gong-logs`).

    gong-logs                 # incremental run, config from .dlt/ or env
    gong-logs --demo          # no Gong account: a local sandbox into DuckDB
    gong-logs fields          # every loaded column: type, fill rate, example, the view it feeds

Exit codes: 0 everything asked for is loaded; 75 stopped early on purpose with progress saved
(budget or Gong's daily quota spent), or another run of the pipeline was in progress; 1 any error
(the message says what to fix).
"""

from __future__ import annotations

import argparse
import fcntl
import json
import logging
import sys
from collections import Counter
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any, Callable, Iterator, NoReturn, Optional, Sequence

import dlt
from dlt.common.configuration.exceptions import ConfigFieldMissingException
from dlt.common.destination import TLoaderFileFormat
from dlt.common.destination.exceptions import UnknownDestinationModule
from dlt.extract.source import DltSource
from dlt.pipeline.pipeline import Pipeline

from gong_source import GongConfigError, GongCredentials, GongError, LogTypeReport, RunReport, gong_source
from gong_source.config import parse_datetime
from gong_source.fields import ExampleRedactor, fields_report, fields_report_dict, print_fields_report
from gong_source.sandbox import GongSandbox
from gong_source.source import utc_now
from gong_source.views import (
    ViewColumns,
    ViewOutcome,
    checked_view_columns,
    create_audit_views,
    read_view_columns,
    view_warnings,
)
from gong_source.windows import ReadPlan, ReadSession, requests_left

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_STOPPED_EARLY = 75  # EX_TEMPFAIL: progress is saved, run again later to continue

DELTA_WRITE_DISPOSITION: Any = {"disposition": "merge", "strategy": "upsert"}
"""On the filesystem destination, tables are Delta tables merged by key (dlt supports upsert there)."""
PIPELINE_NAME = "gong_logs"
DUCKDB_FILE = "gong_audit.duckdb"
"""Not `gong_logs.duckdb`: DuckDB cannot resolve a schema (dataset) named like its catalog (file)."""
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
RUN_ONLY_OPTIONS = ("start_date", "end_date", "log_types")


class AnotherRunInProgress(GongError):
    """The pipeline is already running in another process."""


class _ArgumentParser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        """Exit 1 (not argparse's 2): every error of this job has the same exit code."""
        self.print_usage(sys.stderr)
        self.exit(EXIT_ERROR, f"{self.prog}: error: {message}\nRun with --help to see every option.\n")


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = _ArgumentParser(
        prog="gong-logs",
        description="Incrementally load Gong audit logs (GET /v2/logs) into a dlt destination.",
        epilog=(
            "Exit codes: 0 loaded everything asked for; 75 stopped early with progress saved, or another run "
            "was in progress (run again later); 1 error."
        ),
    )
    parser.add_argument(
        "command",
        nargs="?",
        choices=("run", "fields"),
        default="run",
        help="run (default): load what is new; fields: report every loaded column (type, fill rate, example, "
        "the view column it feeds) to map a tenant's field names to the views",
    )
    parser.add_argument("--start-date", help="where a first run begins, ISO-8601 (default: 30 days ago)")
    parser.add_argument("--end-date", help="exclusive end of a bounded backfill, ISO-8601 (state is not moved)")
    parser.add_argument("--log-types", help="comma-separated subset, e.g. AccessLog,UserCallPlay (default: all five)")
    parser.add_argument("--destination", help=f"any dlt destination name (default: duckdb, file {DUCKDB_FILE})")
    parser.add_argument("--dataset-name", help="dataset (schema) to load into (default: gong_logs)")
    parser.add_argument(
        "--summary-json", metavar="PATH", help="also write a machine-readable run summary (or fields report) here"
    )
    parser.add_argument(
        "--demo",
        action="store_true",
        help=f"start a local Gong sandbox and load it into {DEMO_DATABASE}; needs no Gong account",
    )
    args = parser.parse_args(argv)
    if args.demo and (args.destination or args.dataset_name):
        parser.error(f"--demo always loads into its own {DEMO_DATABASE}; drop --destination/--dataset-name.")
    given = [f"--{name.replace('_', '-')}" for name in RUN_ONLY_OPTIONS if getattr(args, name) is not None]
    if args.command == "fields" and given:
        verb = "applies" if len(given) == 1 else "apply"
        parser.error(f"fields reads what is loaded; {', '.join(given)} {verb} only to a run.")
    return args


def source_options(args: argparse.Namespace) -> dict[str, Any]:
    """The source arguments given on the command line; the rest come from dlt config."""
    options = {"start_date": args.start_date, "end_date": args.end_date, "log_types": args.log_types}
    return {name: value for name, value in options.items() if value is not None}


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the job and return its exit code."""
    args = parse_args(argv)
    configure_logging()
    session = ReadSession(batch_loads=True)
    exit_code, error = EXIT_ERROR, None
    try:
        if args.command == "fields":
            return report_fields(args)
        exit_code = run_demo(args, session) if args.demo else run(args, session)
    except AnotherRunInProgress as busy:
        exit_code, error = EXIT_STOPPED_EARLY, str(busy)
        print(f"SKIPPED (exit {EXIT_STOPPED_EARLY}): {busy}", file=sys.stderr)
    except Exception as failure:
        error = explain(failure)
        print(f"ERROR: {error}", file=sys.stderr)
    finally:
        if session.plan:
            session.plan.close()
        if args.summary_json and args.command == "run":
            # Written whatever happened, so that a monitor never reads a stale success.
            write_summary_json(Path(args.summary_json), session, exit_code, error)
    return exit_code


def configure_logging() -> None:
    """Plans, progress and warnings of the connector go to stderr; dlt keeps its own logger."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
    connector_logger = logging.getLogger("gong_source")
    connector_logger.addHandler(handler)
    connector_logger.setLevel(logging.INFO)
    connector_logger.propagate = False


def run(args: argparse.Namespace, session: ReadSession) -> int:
    """The production job: Gong (from config) into the chosen destination."""
    options = source_options(args)
    first_source = gong_source(session=session, **options)  # validates the configuration before anything else
    pipeline = dlt.pipeline(
        pipeline_name=PIPELINE_NAME,
        destination=destination_for(args.destination or "duckdb"),
        dataset_name=args.dataset_name or PIPELINE_NAME,
    )
    sources = iter_sources(first_source, lambda: gong_source(session=session, **options))
    with exclusive_run(pipeline):
        # Under the lock: on a machine without local state this restores the pipeline from the destination.
        view_columns = checked_view_columns(pipeline, restore_schema=not is_file_destination(pipeline))
        exit_code = load(pipeline, sources, session, view_columns)
    warn_if_start_date_ignored(args.start_date if not args.end_date else None, session.report)
    return exit_code


def destination_for(name: str) -> Any:
    """The destination to load into; DuckDB defaults to DUCKDB_FILE unless its credentials are configured."""
    configured: Any = dlt.secrets.get("destination.duckdb.credentials") or dlt.config.get(
        "destination.duckdb.credentials"
    )
    if name == "duckdb" and not configured:
        return dlt.destinations.duckdb(str(Path.cwd() / DUCKDB_FILE))
    return name


def run_demo(args: argparse.Namespace, session: ReadSession) -> int:
    """Serve synthetic logs from a local sandbox and load them into a separate demo database."""
    with GongSandbox() as sandbox:
        options = {"start_date": (utc_now() - DEMO_HISTORY).isoformat(), **source_options(args)}
        demo_database = Path.cwd() / DEMO_DATABASE
        credentials = GongCredentials(access_key=sandbox.access_key, access_key_secret=sandbox.access_key_secret)
        demo_options = {
            "base_url": sandbox.url,
            "credentials": credentials,
            "now": utc_now().isoformat(),  # the sandbox follows the wall clock, whatever sources.gong.now says
            "max_requests_per_second": 50,  # a local sandbox has no Gong limit to respect
            **options,
        }
        first_source = gong_source(session=session, **demo_options)
        pipeline = dlt.pipeline(
            pipeline_name=DEMO_PIPELINE_NAME,
            destination=dlt.destinations.duckdb(str(demo_database)),
            dataset_name=PIPELINE_NAME,
        )
        print(f"Demo: Gong sandbox at {sandbox.url}, loading into {DEMO_DATABASE} (pipeline {DEMO_PIPELINE_NAME}).")
        sources = iter_sources(first_source, lambda: gong_source(session=session, **demo_options))
        with exclusive_run(pipeline):
            if not demo_database.exists():
                pipeline = pipeline.drop()  # the demo database was deleted: start over, not from stale state
            # The sandbox's names fit every view; a view_columns mapping of your tenant's would not.
            exit_code = load(pipeline, sources, session, view_columns={})
    if exit_code == EXIT_OK:
        print_demo_query(pipeline, {view["view"] for view in session.report.views if view["status"] == "created"})
    return exit_code


def report_fields(args: argparse.Namespace) -> int:
    """`gong-logs fields`: profile what the pipeline loaded, and say what each view reads or lacks."""
    if args.demo:
        database = Path.cwd() / DEMO_DATABASE
        destination: Any = dlt.destinations.duckdb(str(database))
        pipeline_name, dataset, pii_mode = DEMO_PIPELINE_NAME, PIPELINE_NAME, "keep"
    else:
        database = Path.cwd() / DUCKDB_FILE
        destination = destination_for(args.destination or "duckdb")
        pipeline_name, dataset = PIPELINE_NAME, args.dataset_name or PIPELINE_NAME
        pii_mode = str(dlt.config.get("sources.gong.pii") or "keep")
    mapping = {} if args.demo else read_view_columns()
    pipeline = dlt.pipeline(pipeline_name=pipeline_name, destination=destination, dataset_name=dataset)
    default_file_missing = isinstance(destination, dlt.destinations.duckdb) and not database.exists()
    if not pipeline.default_schema_name and not default_file_missing:
        pipeline.sync_destination()  # a fresh machine (an ephemeral worker): the schema is in the destination
    if not pipeline.default_schema_name:
        where = f"{database.name} in {Path.cwd()}" if default_file_missing else f"dataset {dataset}"
        raise GongError(
            f"Nothing loaded by pipeline {pipeline_name} was found ({where}). Run the job first, from this folder, "
            "or pass the --destination and --dataset-name it loads into."
        )
    redactor = ExampleRedactor(pii_mode, configured_secrets())
    profiles, outcomes = fields_report(pipeline, mapping, redactor, with_views=not is_file_destination(pipeline))
    print_fields_report(pipeline, profiles, outcomes, pii_mode)
    if args.summary_json:
        write_json(Path(args.summary_json), fields_report_dict(profiles, outcomes, pii_mode))
    return EXIT_OK


def configured_secrets() -> list[str]:
    """The configured secret values: an example that contains one is withheld."""
    keys = ("credentials.access_key_secret", "credentials.access_token", "pii_salt")
    values: list[Any] = [dlt.secrets.get(f"sources.gong.{key}") for key in keys]
    return [str(value) for value in values if value]


def iter_sources(first: DltSource, make_next: Callable[[], DltSource]) -> Iterator[DltSource]:
    """The run's first source, then a new one per further load (they share the run's session)."""
    yield first
    while True:
        yield make_next()


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


def load(
    pipeline: Pipeline, sources: Iterator[DltSource], session: ReadSession, view_columns: Optional[ViewColumns] = None
) -> int:
    """Load window after window until every log type is complete or the run stops early; then report.

    Call it holding `exclusive_run(pipeline)`.
    """
    refuse_settings_that_drop_failed_packages()
    report, row_counts, loads = session.report, Counter[str](), 0
    if pipeline.has_pending_data:
        print("Finishing a load package left by an earlier run before reading anything new.", file=sys.stderr)
        pipeline.run()
    for source in sources:
        sent_before = session.plan.governor.total_sent if session.plan else 0
        if is_file_destination(pipeline):
            # Plain files cannot merge; Delta tables can (by key), so re-reads stay exactly-once there too.
            for resource in source.resources.values():
                resource.apply_hints(table_format="delta", write_disposition=DELTA_WRITE_DISPOSITION)
            pipeline.run(source, loader_file_format="parquet")
        else:
            file_format = preferred_file_format(pipeline)
            if file_format:
                pipeline.run(source, loader_file_format=file_format)
            else:
                pipeline.run(source)
        loads += 1
        session.loads = loads
        normalize_info = pipeline.last_trace.last_normalize_info if pipeline.last_trace else None
        row_counts.update(normalize_info.row_counts if normalize_info else {})
        if report.finished and not reopen_for_the_pool(session):
            break  # every type is complete, or stopped (the budget, its share of it, or Gong's quota)
        if session.plan is None or session.plan.governor.total_sent == sent_before:
            raise GongError("A load read nothing new although some log types are incomplete; stopping, not looping.")
    session.count_requests()
    print_summary(report, dict(row_counts), loads)
    if session.plan is not None:
        print_rate_limit(session.plan.governor.pace_summary())
    if is_file_destination(pipeline):
        print("Audit views: none (the destination holds files; query the tables)")
    else:
        try:
            outcomes = create_audit_views(pipeline, view_columns)
            report.views = [outcome.as_dict() for outcome in outcomes]
            print_views(outcomes)
            for warning in view_warnings(outcomes):
                report.warn(warning)
        except Exception as error:  # the data is loaded; views are a convenience, so warn instead
            report.warn(f"the audit views were not created ({explain(error)}); the tables are loaded")
    if report.stopped_reason and session.plan:
        print_stop(report, session.plan)
    for warning in report.warnings:
        print(f"WARNING: {warning}", file=sys.stderr)
    return EXIT_STOPPED_EARLY if report.stopped_reason else EXIT_OK


def print_views(outcomes: list[ViewOutcome]) -> None:
    """Which views were created; for each one skipped or incomplete, what is missing and the setting that maps it."""
    created = [outcome.name for outcome in outcomes if outcome.created]
    print(f"Audit views: {', '.join(created) or 'none'}")
    for outcome in outcomes:
        if outcome.reason():
            print(f"  {outcome.summary()}")
    if any(not outcome.created for outcome in outcomes):
        print('  `gong-logs fields` lists every loaded column; README "Views on your tenant" shows the mapping.')


def print_stop(report: RunReport, plan: ReadPlan) -> None:
    """Exit 75's message: per log type, how far progress moved in this run, and if it did not, why and
    which setting would help; then what the rest takes at this budget."""
    governor, planner = plan.governor, plan.planner
    committed = sum(r.committed_requests for r in report.log_types.values())
    reason = governor.stop_reason or (
        f"the run's request budget of {planner.budget} ({planner.budget_source()}) is used up by the shares "
        "of its log types"
    )
    print(
        f"STOPPED EARLY (exit {EXIT_STOPPED_EARLY}): {reason}. What was read is loaded; "
        f"{governor.total_sent} requests this run, {committed} of them in windows whose progress is now "
        f"committed. Budget: {planner.budget if planner.budget is not None else 'unlimited'} "
        f"({planner.budget_source()}).",
        file=sys.stderr,
    )
    for type_report in report.log_types.values():
        print(f"  {type_report.log_type}: {describe_progress(type_report, plan)}", file=sys.stderr)
    need = requests_still_needed(report, plan)
    if need is not None:
        runs = planner.runs_needed(need)
        at_budget = f", about {runs} more run(s) at this budget" if runs else ""
        print(f"The rest needs about {need} requests{at_budget}. The next run continues from here.", file=sys.stderr)
    else:
        print("The next run continues from here.", file=sys.stderr)


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
    if governor.max_requests is not None and governor.max_requests < minimum:
        return why, (
            f"what helps: raise sources.gong.max_requests_per_run (now {governor.max_requests}) to at least "
            f"{minimum} (2 per log type)"
        )
    return why, f"what helps: a larger sources.gong.max_requests_per_run (now {governor.max_requests})"


def reopen_for_the_pool(session: ReadSession) -> bool:
    """After a load: types that stopped for lack of requests read on in another load if requests that
    other types did not need came free meanwhile (the planner's pool)."""
    plan = session.plan
    if plan is None or plan.governor.stop_reason or not plan.planner.can_grant():
        return False
    return bool(session.report.reopen_share_stopped())


def write_summary_json(path: Path, session: ReadSession, exit_code: int, error: Optional[str]) -> None:
    """The machine-readable run summary, written atomically for monitoring."""
    report = session.report
    governor = session.plan.governor if session.plan else None
    session.count_requests()
    summary = {
        "exit_code": exit_code,
        "error": error,
        "complete": report.complete and exit_code == EXIT_OK,
        "stopped_reason": report.stopped_reason,
        "loads": session.loads,
        "requests": governor.total_sent if governor else 0,
        "budget_remaining": governor.remaining if governor else None,
        "budget": budget_summary(session),
        "rate_limit": governor.pace_summary() if governor else None,
        "warnings": report.warnings,
        "log_types": [type_report.as_dict() for type_report in report.log_types.values()],
        "views": report.views,
    }
    write_json(path, summary)


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write JSON atomically: a reader never sees half a file."""
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(data, indent=2, default=str))
    temporary.replace(path)


def requests_still_needed(report: RunReport, plan: ReadPlan) -> Optional[int]:
    """Requests every type's range still needs after this run (None: some type's density is unknown)."""
    lefts = [requests_left(plan, type_report) for type_report in report.log_types.values()]
    return None if any(left is None for left in lefts) else sum(left or 0 for left in lefts)


def budget_summary(session: ReadSession) -> Optional[dict[str, Any]]:
    """The run's planned budget, where it came from, and what the rest needs."""
    plan = session.plan
    if plan is None:
        return None
    planner = plan.planner
    need = requests_still_needed(session.report, plan)
    learned = planner.learned
    return {
        "planned": planner.budget,
        "max_requests_per_run": plan.governor.max_requests,
        "limited_by": planner.budget_source() if planner.budget is not None else None,
        "learned_quota": {"calls": learned.calls, "learned_at": learned.learned_at} if learned else None,
        "quota_stopped": plan.governor.quota_stopped,
        "requests_answered": plan.governor.answered,
        "requests_committed": sum(r.committed_requests for r in session.report.log_types.values()),
        "requests_left": need,
        "runs_left_at_this_budget": 0 if need == 0 else planner.runs_needed(need) if need else None,
    }


def warn_if_start_date_ignored(start_date: Optional[str], report: RunReport) -> None:
    """Say so when --start-date had no effect because incremental state already exists."""
    requested = parse_datetime(start_date, "--start-date")
    if requested is None:
        return
    continued = [r for r in report.log_types.values() if r.window_start and r.window_start > requested]
    if continued:
        print(
            f"NOTE: --start-date {start_date} was ignored for {', '.join(r.log_type for r in continued)}: they "
            "continue from their saved state. To re-load older history, run a bounded backfill with "
            "--start-date and --end-date; it merges into the same tables without moving the state.",
            file=sys.stderr,
        )


def print_summary(report: RunReport, row_counts: dict[str, int], loads: int) -> None:
    """Rows loaded per table, and the eventTime range each log type covered."""
    print(
        "Log type                     window asked for (UTC)                        requests fetched  "
        "eventTime range fetched"
    )
    for type_report in report.log_types.values():
        window = f"[{_short(type_report.window_start)}, {_short(type_report.window_end)})"
        seen = (
            f"{_short(type_report.first_event_time)} .. {_short(type_report.last_event_time)}"
            if type_report.first_event_time
            else "no new entries"
        )
        state = "" if type_report.complete else "  (incomplete)"
        print(
            f"{type_report.log_type:<28} {window:<46} {type_report.requests:>8} {type_report.entries:>7}  {seen}{state}"
        )
    tables = {name: count for name, count in sorted(row_counts.items()) if not name.startswith("_dlt")}
    print(
        f"Rows written per table in {loads} load(s) (re-read entries are merged, never duplicated):"
        if tables
        else "Rows written per table: none (nothing new)"
    )
    for name, count in tables.items():
        print(f"  {name:<{max(map(len, tables))}} {count:>8}")


def print_rate_limit(pace: dict[str, Any]) -> None:
    """One line on how the run shared Gong's per-company rate limit (only when another client showed up)."""
    if not pace["http_429"]:
        return
    lowest, settled = pace["pace_lowest_per_second"], pace["pace_settled_per_second"]
    print(
        f"Rate limit: {pace['http_429']} x 429 (the company's other integrations use the limit too); pace cut "
        f"{pace['pace_cuts']} time(s)"
        + (f", lowest {lowest:.2f}/s" if lowest is not None else "")
        + (f", {settled:.2f}/s at the end" if settled is not None else "")
        + f" (limit {pace['limit_per_second']:g}/s); "
        + f"{pace['waited_for_retry_after_seconds']:.0f} s held for Retry-After."
    )


def print_demo_query(pipeline: Pipeline, created_views: set[str]) -> None:
    """Show example audit questions answered in SQL on the demo database (on the views it created)."""
    for question, view, sql, row_format in DEMO_QUERIES:
        if view not in created_views:
            continue
        with pipeline.sql_client() as client:
            query = sql.format(table=client.make_qualified_table_name(view))
            rows = client.execute_sql(query) or []
        print(f"\nExample query: {question}")
        print(query.strip())
        for row in rows:
            print(row_format.format(*(str(value) for value in row)))


def explain(error: BaseException) -> str:
    """A one-paragraph, secret-free explanation of a failure, preferring our own messages."""
    for cause in _causes(error):
        if isinstance(cause, GongError):
            return str(cause)
        if isinstance(cause, UnknownDestinationModule):
            return (
                f"dlt does not know the destination {cause.ref!r}. Use a dlt destination name "
                "such as duckdb, postgres, bigquery, snowflake or filesystem, and install its extra "
                "(pip install 'dlt[postgres]')."
            )
        if isinstance(cause, ConfigFieldMissingException):
            return f"A required setting is missing: {cause}"
    return f"{type(error).__name__}: {error}"


def _causes(error: BaseException) -> list[BaseException]:
    """The error and everything it wraps (dlt wraps step failures several levels deep)."""
    chain: list[BaseException] = []
    pending: list[Optional[BaseException]] = [error]
    while pending:
        current = pending.pop(0)
        if current is None or current in chain:
            continue
        chain.append(current)
        pending += [current.__cause__, current.__context__, getattr(current, "exception", None)]
    return chain


def _short(moment: Any) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S") if moment else "-"
