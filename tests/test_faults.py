"""The fault matrix: whatever goes wrong, re-running as a scheduler would ends with every table equal to the truth."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import duckdb
import pytest

from gong_source.sandbox import Fault, GongSandbox, SandboxClock, SyntheticLogs
from gong_source.settings import LOG_TYPES
from tests.conftest import EPOCH, FIRST_CLOCK, PIPELINE_SCRIPT, START_DATE, PipelineRun, Workspace, truth_event_times

MAX_SCHEDULED_RUNS = 4


def run_until_success(workspace: Workspace, *args: str, env: dict[str, str] | None = None) -> list[PipelineRun]:
    """Run the job like a scheduler does, until it exits 0 (or give up after a few runs)."""
    runs: list[PipelineRun] = []
    while len(runs) < MAX_SCHEDULED_RUNS:
        runs.append(workspace.run(*args, env=env))
        if runs[-1].returncode == 0:
            break
        assert runs[-1].returncode in (1, 75), runs[-1].output
        args = ()  # later runs are plain scheduled runs
    assert runs[-1].returncode == 0, runs[-1].output
    return runs


def assert_all_tables_equal_truth(workspace: Workspace, sandbox: GongSandbox) -> None:
    for log_type in LOG_TYPES:
        assert workspace.event_times(log_type.table_name) == truth_event_times(sandbox, log_type.name), log_type.name
        total, distinct = workspace.query(
            f"SELECT count(*), count(DISTINCT _entry_key) FROM gong_logs.{log_type.table_name}"
        )[0]
        assert total == distinct
    entries = sandbox.truth("UserActivityLog", EPOCH)
    columns = sum(
        len(row["columnChanges"]) for e in entries for t in e["logRecord"]["tableChanges"] for row in t["rowChanges"]
    )
    child = "gong_logs.user_activity_log__log_record__table_changes__row_changes__column_changes"
    assert workspace.query(f"SELECT count(*) FROM {child}") == [(columns,)]


def test_random_5xx_on_10_percent_of_requests(tmp_path: Path) -> None:
    with GongSandbox(logs=SyntheticLogs(epoch=EPOCH), clock=SandboxClock(FIRST_CLOCK), error_rate=0.1) as sandbox:
        workspace = Workspace(tmp_path, sandbox)
        run_until_success(workspace, "--start-date", START_DATE)
        assert sum(sandbox.stats.statuses[code] for code in (500, 502, 503)) > 0
        assert_all_tables_equal_truth(workspace, sandbox)


RETRIED = "retried within the run"
NEXT_RUN = "fails the run, the next one succeeds"
LOOPING_PAGE = {
    "requestId": "loop",
    "records": {"totalRecords": 300, "currentPageSize": 1, "currentPageNumber": 0, "cursor": "same-cursor"},
    "logEntries": [{"eventTime": "2026-01-01T00:00:00Z", "logRecord": {}}],
}
NO_EVENT_TIME_PAGE = {
    "requestId": "bad",
    "records": {"totalRecords": 1, "currentPageSize": 1},
    "logEntries": [{"userId": "1", "logRecord": {}}],
}


@pytest.mark.parametrize(
    ("faults", "outcome"),
    [
        pytest.param(
            [Fault(429, {"requestId": "s", "errors": ["slow"]}, headers={"Retry-After": "1"}, times=6)],
            RETRIED,
            id="429-storm",
        ),
        pytest.param(
            [Fault(429, {"requestId": "n", "errors": ["slow"]}, times=3)], RETRIED, id="429-without-retry-after"
        ),
        pytest.param([Fault(action="reset", times=2)], RETRIED, id="connection-reset-mid-body"),
        pytest.param([Fault(action="truncate", times=2)], RETRIED, id="body-cut-in-half"),
        pytest.param([Fault(action="delay", delay=3.0, times=1)], RETRIED, id="slower-than-timeout"),
        pytest.param(
            # One type, fewer times than runtime.request_max_attempts (5): spread over racing types, six
            # could all reach the type that started first and fail it.
            [Fault(200, "<html>maintenance</html>", content_type="text/html", log_type="AccessLog", times=4)],
            RETRIED,
            id="html-200",
        ),
        pytest.param([Fault(200, {"requestId": "x", "records": {}}, times=1)], NEXT_RUN, id="json-without-logEntries"),
        pytest.param(
            [Fault(200, {"requestId": "x", "logEntries": {"not": "a list"}}, times=1)],
            NEXT_RUN,
            id="logEntries-not-a-list",
        ),
        pytest.param(
            [Fault(503, {"requestId": "f", "errors": ["down"]}, follow_up_pages_only=True, times=2)],
            RETRIED,
            id="5xx-mid-cursor",
        ),
        pytest.param([Fault(200, LOOPING_PAGE, log_type="AccessLog", times=2)], NEXT_RUN, id="repeating-cursor"),
        pytest.param([Fault(200, NO_EVENT_TIME_PAGE, log_type="AccessLog")], NEXT_RUN, id="entry-without-eventTime"),
    ],
)
def test_fault_then_reruns_end_equal_to_truth(
    workspace: Workspace, sandbox: GongSandbox, faults: list[Fault], outcome: str
) -> None:
    for fault in faults:
        sandbox.add_fault(fault)

    runs = run_until_success(workspace, "--start-date", START_DATE, env={"RUNTIME__REQUEST_TIMEOUT": "1"})

    assert sandbox.pending_faults == 0, "every fault was served"
    assert len(runs) == (1 if outcome == RETRIED else 2), [run.output for run in runs]
    assert_all_tables_equal_truth(workspace, sandbox)
    assert all("Traceback" not in run.output for run in runs)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"userId": "1", "logRecord": {}}, "has an unusable eventTime None"),
        ({"eventTime": "last tuesday", "logRecord": {}}, "has an unusable eventTime 'last tuesday'"),
    ],
)
def test_an_entry_without_a_usable_event_time_fails_clearly(
    workspace: Workspace, sandbox: GongSandbox, entry: dict[str, object], message: str
) -> None:
    page = {"requestId": "bad", "records": {"totalRecords": 1, "currentPageSize": 1}, "logEntries": [entry]}
    sandbox.add_fault(Fault(200, page, log_type="AccessLog"))

    failed = workspace.run("--start-date", START_DATE, "--log-types", "AccessLog")

    assert failed.returncode == 1
    assert message in failed.stderr and "no entry is silently dropped" in failed.stderr
    assert "AccessLog entry #0 of the window [2026-01-01T00:00:00+00:00, 2026-01-02T06:00:00+00:00)" in failed.stderr
    assert "access_log" not in workspace.tables()


def start_pipeline(workspace: Workspace, *args: str) -> subprocess.Popen[str]:
    env = {**workspace.env, "SOURCES__GONG__NOW": workspace.sandbox.clock.now().isoformat()}
    return subprocess.Popen(
        [sys.executable, str(PIPELINE_SCRIPT), *args],
        cwd=workspace.root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_requests(sandbox: GongSandbox, count: int, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 60
    while len(sandbox.stats.requests) < count and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)


def test_a_second_concurrent_run_refuses_and_the_first_finishes(workspace: Workspace, sandbox: GongSandbox) -> None:
    sandbox.max_requests_per_second = 10
    workspace.env["SOURCES__GONG__MAX_REQUESTS_PER_SECOND"] = "8"
    first = start_pipeline(workspace, "--start-date", START_DATE)
    wait_for_requests(sandbox, 3, first)
    assert first.poll() is None, "the first run ended before the second started"

    second = workspace.run("--start-date", START_DATE)
    _, first_err = first.communicate(timeout=120)

    assert second.returncode == 75
    assert "Another run of pipeline gong_logs is in progress" in second.stderr
    assert first.returncode == 0, first_err
    assert_all_tables_equal_truth(workspace, sandbox)


@pytest.mark.parametrize(
    ("kill_after_requests", "then_wait"),
    [(2, 0.0), (12, 0.0), (22, 0.0), (22, 0.3)],
    ids=["early-extract", "mid-extract", "extract-done", "normalize-or-load"],
)
def test_sigkill_at_any_point_then_reruns_end_equal_to_truth(
    workspace: Workspace, sandbox: GongSandbox, kill_after_requests: int, then_wait: float
) -> None:
    # 22 requests read everything; killing right after the last one lands in extract's end, normalize or load.
    process = start_pipeline(workspace, "--start-date", START_DATE)
    wait_for_requests(sandbox, kill_after_requests, process)
    time.sleep(then_wait)
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=60)
    assert process.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    sandbox.clock.advance(timedelta(hours=2))  # new entries appear before the next scheduled run

    runs = run_until_success(workspace)

    assert_all_tables_equal_truth(workspace, sandbox)
    assert len(runs) == 1, "one scheduled run finishes what was pending and becomes current"
    if then_wait:  # killed after extract: the package it left is finished first, in the same run
        assert "Finishing a load package left by an earlier run" in runs[0].stderr


def test_a_failed_load_is_finished_by_the_next_run_which_then_reads_on(
    workspace: Workspace, sandbox: GongSandbox
) -> None:
    assert workspace.run("--start-date", START_DATE).returncode == 0
    sandbox.clock.advance(timedelta(hours=1))
    gate = threading.Event()
    sandbox.add_fault(Fault(action="gate", gate=gate, log_type="AccessLog"))
    process = start_pipeline(workspace)
    wait_for_requests(sandbox, len(sandbox.stats.requests) + 1, process)
    # The run is extracting; hold DuckDB's file lock so that its load step cannot write.
    with duckdb.connect(str(workspace.root / "gong_audit.duckdb")):
        gate.set()
        _, failed_err = process.communicate(timeout=120)
    assert process.returncode == 1, failed_err
    # One line naming the process that holds the file (this test's), not dlt's exception chain.
    assert "gong_audit.duckdb is open in another process: python" in failed_err, failed_err
    assert f"(PID {os.getpid()})" in failed_err and "Nothing was lost" in failed_err
    sandbox.clock.advance(timedelta(hours=1))  # more entries before the next scheduled run

    next_run = workspace.run()

    assert next_run.returncode == 0, next_run.output
    assert "Finishing a load package left by an earlier run" in next_run.stderr
    assert_all_tables_equal_truth(workspace, sandbox)
