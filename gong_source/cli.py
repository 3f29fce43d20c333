"""The command line of gong-logs (`pipelines/gong_logs_pipeline.py`, or the installed `gong-logs`): it parses the
arguments, dispatches to a run (`gong_source.runner.run_once`), the demo or the fields report, prints what the
run says (`gong_source.run_summary`) and maps the outcome to an exit code.

    gong-logs                 # incremental run, config from .dlt/ or env
    gong-logs --demo          # no Gong account: a local sandbox into DuckDB
    gong-logs fields          # every loaded column: type, fill rate, example, the view it feeds
    gong-logs verify --start-date 2026-11-01 [--end-date ...] [--repair]   # count days with Gong, compare

Exit codes: 0 everything asked for is loaded; 75 stopped early on purpose with progress saved
(budget, the day's ceiling or Gong's daily quota spent), or another run of the pipeline was in progress;
1 any error (the message says what to fix); 65 (verify only) differences found and not repaired.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any, NoReturn, Optional, Sequence

from gong_source.config import parse_datetime
from gong_source.demo import DEMO_DATABASE, example_query_lines, run_demo
from gong_source.destinations import DUCKDB_FILE
from gong_source.explain import explain
from gong_source.fields import report_fields
from gong_source.report import RunReport
from gong_source.run_summary import EXIT_CODES, exit_code, message_lines, summary_dict, summary_lines, write_json
from gong_source.runner import run_once
from gong_source.verify import EXIT_DIFFERENCES, verify, verify_lines

EXIT_OK = EXIT_CODES["complete"]
EXIT_ERROR = EXIT_CODES["failed"]
RUN_ONLY_OPTIONS = ("start_date", "end_date", "log_types")
"""Options of a run (and of verify) that `fields` refuses."""


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
            f"was in progress (run again later); 1 error; {EXIT_DIFFERENCES} (verify) differences found and not "
            "repaired."
        ),
    )
    parser.add_argument(
        "command",
        nargs="?",
        choices=("run", "fields", "verify"),
        default="run",
        help="run (default): load what is new; fields: report every loaded column (type, fill rate, example, "
        "the view column it feeds) to map a tenant's field names to the views; verify: count [--start-date, "
        "--end-date) per log type and UTC day with Gong and in the warehouse (about one call per type and day)",
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
        "--repair",
        action="store_true",
        help="with verify: re-read the parts of the days that lack rows (halving with counts) and merge them",
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
    if args.repair and args.command != "verify":
        parser.error("--repair applies only to verify.")
    if args.command == "verify" and args.demo:
        parser.error("verify checks a real pipeline; drop --demo.")
    if args.command == "verify" and not args.start_date:
        parser.error("verify needs --start-date: the first day to count (--end-date: the exclusive end).")
    return args


def source_options(args: argparse.Namespace) -> dict[str, Any]:
    """The source arguments given on the command line; the rest come from dlt config."""
    options = {"start_date": args.start_date, "end_date": args.end_date, "log_types": args.log_types}
    return {name: value for name, value in options.items() if value is not None}


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the job and return its exit code."""
    args = parse_args(argv)
    configure_logging()
    if args.command == "fields":
        try:
            summary = Path(args.summary_json) if args.summary_json else None
            report_fields(args.destination, args.dataset_name, demo=args.demo, summary_json=summary)
            return EXIT_OK
        except Exception as failure:
            print(f"ERROR: {explain(failure)}", file=sys.stderr)
            return EXIT_ERROR
    if args.command == "verify":
        return run_verify(args)
    report = RunReport(error="the run was interrupted")  # what the summary says if nothing else gets to
    try:
        if args.demo:
            report = run_demo(**source_options(args))
        else:
            report = run_once(destination=args.destination, dataset_name=args.dataset_name, **source_options(args))
        if report.status in ("complete", "stopped"):
            print("\n".join(summary_lines(report)))
            note_if_start_date_ignored(args, report)
        for line in message_lines(report):
            print(line, file=sys.stderr)
        if args.demo and report.status == "complete":
            print("\n".join(example_query_lines(report)))
    except Exception as failure:  # run_once reports its own failures; this is the demo's sandbox or queries
        report.status, report.error = "failed", explain(failure)
        print(f"ERROR: {report.error}", file=sys.stderr)
    finally:
        if args.summary_json:
            # Written whatever happened, so that a monitor never reads a stale success.
            write_json(Path(args.summary_json), summary_dict(report))
    return exit_code(report)


def run_verify(args: argparse.Namespace) -> int:
    """`gong-logs verify`: print what it found, write its JSON summary, return its exit code."""
    report = verify(
        start_date=args.start_date,
        end_date=args.end_date,
        log_types=args.log_types,
        repair=args.repair,
        destination=args.destination,
        dataset_name=args.dataset_name,
    )
    lines = verify_lines(report)
    if lines:
        print("\n".join(lines))
    if report.error:
        print(f"{'SKIPPED' if report.status == 'skipped' else 'ERROR'}: {report.error}", file=sys.stderr)
    if args.summary_json:
        write_json(Path(args.summary_json), report.as_dict())
    return report.exit_code


def configure_logging() -> None:
    """Plans, progress and warnings of the connector go to stderr; dlt keeps its own logger."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
    connector_logger = logging.getLogger("gong_source")
    connector_logger.addHandler(handler)
    connector_logger.setLevel(logging.INFO)
    connector_logger.propagate = False


def note_if_start_date_ignored(args: argparse.Namespace, report: RunReport) -> None:
    """Say so when --start-date had no effect because incremental state already exists."""
    requested = None if args.end_date else parse_datetime(args.start_date, "--start-date")
    continued = [r for r in report.log_types.values() if requested and r.window_start and r.window_start > requested]
    if continued:
        report.notes.append(
            f"--start-date {args.start_date} was ignored for {', '.join(r.log_type for r in continued)}: they "
            "continue from their saved state. To re-load older history, run a bounded backfill with "
            "--start-date and --end-date; it merges into the same tables without moving the state."
        )
