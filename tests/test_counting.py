"""Late entries found by counting, not by re-reading: the coverage record, `verify`, the day's ceiling, and the
upgrade from the previous state layout."""

from __future__ import annotations

import json
import math
import signal
import subprocess
import sys
import tarfile
import threading
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import duckdb
import pytest

from gong_source.coverage import floor_hour
from gong_source.entries import parse_event_time
from gong_source.sandbox import Fault, GongSandbox, SandboxClock, SyntheticLogs
from gong_source.settings import LOG_TYPES
from tests.conftest import EPOCH, FIRST_CLOCK, PIPELINE_SCRIPT, START_DATE, Workspace, truth_event_times

FIXTURES = Path(__file__).parent / "fixtures"
LOOKBACK = timedelta(hours=1)


def gong_time(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def from_gong_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def coverage(workspace: Workspace, log_type: str) -> list[tuple[Any, ...]]:
    """The coverage record of a type: (range_start, range_end, gong_count, rows_loaded, late, outcome, method)."""
    if "log_coverage" not in workspace.tables():
        return []
    return workspace.query(
        "SELECT range_start, range_end, gong_count, rows_loaded, late_entries, outcome, method "
        f"FROM gong_logs.log_coverage WHERE log_type = '{log_type}' ORDER BY hour_start"
    )


def test_one_late_entry_in_an_hour_of_20000_is_found_and_loaded_in_at_most_10_calls(tmp_path: Path) -> None:
    late_index = 12_345  # at about 00:37, written 30 minutes late
    logs = SyntheticLogs(
        epoch=EPOCH,
        intervals_seconds={"AccessLog": 0.18},
        max_entries_per_type=20_000,
        late_entries={"AccessLog": {late_index: timedelta(minutes=30)}},
    )
    with GongSandbox(logs=logs, clock=SandboxClock(EPOCH + timedelta(hours=1))) as sandbox:
        workspace = Workspace(tmp_path, sandbox)
        summary = tmp_path / "summary.json"
        assert workspace.run("--start-date", START_DATE, "--log-types", "AccessLog").returncode == 0
        late_moment = parse_event_time(logs.entry("AccessLog", late_index)["eventTime"])
        assert late_moment not in workspace.event_times("access_log")
        sandbox.clock.advance(timedelta(hours=1, minutes=1))  # the hour is final: older than the lookback
        before = len(sandbox.stats.requests)

        second = workspace.run("--log-types", "AccessLog", "--summary-json", str(summary))

        assert second.returncode == 0, second.output
        in_the_hour = [p for p in sandbox.stats.requests[before:] if p["toDateTime"] <= "2026-01-01T01:00:00Z"]
        assert 2 <= len(in_the_hour) <= 10, in_the_hour
        # It halved: each count covers a shorter range than the one before, down to a few seconds.
        spans = [
            (from_gong_time(p["toDateTime"]) - from_gong_time(p["fromDateTime"])).total_seconds()
            for p in in_the_hour
            if "cursor" not in p
        ]
        assert spans[0] == 3600 and min(spans) <= 60
        assert workspace.event_times("access_log") == truth_event_times(sandbox, "AccessLog")
        assert sum(truth_event_times(sandbox, "AccessLog").values()) == 20_000 + 20_000 // 37 + 1
        access_log = json.loads(summary.read_text())["log_types"][0]
        assert access_log["late_entries_found"] == 1
        assert access_log["requests_by_purpose"]["count_checks"] + access_log["requests_by_purpose"]["re_reads"] == len(
            in_the_hour
        )
        assert coverage(workspace, "AccessLog")[0][2:6] == (20_541, 20_541, 1, "repaired")


def expected_after_runs(snapshots: list[Counter[datetime]], final: Counter[datetime]) -> Counter[datetime]:
    """What the runs so far could have loaded: what each saw of its own new range, and what the last one saw of
    the hours already final (their count checks find the late entries)."""
    expected: Counter[datetime] = Counter()
    for snapshot in [*snapshots, final]:
        expected |= snapshot
    return expected


def test_runs_every_10_minutes_with_late_entries_and_shuffled_pages_load_what_they_could_see(tmp_path: Path) -> None:
    intervals = {"AccessLog": 6, "UserActivityLog": 60, "UserCallPlay": 30}
    logs = SyntheticLogs(
        epoch=EPOCH,
        intervals_seconds={**intervals, "ExternallySharedCallAccess": 300, "ExternallySharedCallPlay": 400},
        late_every={"AccessLog": 40, "UserActivityLog": 7, "UserCallPlay": 9, "ExternallySharedCallAccess": 3},
        late_delay=timedelta(minutes=1),
        late_delay_max=timedelta(minutes=40),
    )
    start = FIRST_CLOCK - timedelta(hours=3)
    with GongSandbox(logs=logs, clock=SandboxClock(FIRST_CLOCK), page_order="shuffled") as sandbox:
        workspace = Workspace(tmp_path, sandbox)
        seen: dict[str, list[Counter[datetime]]] = {t.name: [] for t in LOG_TYPES}
        previous_cut_off = start
        for run in range(13):
            now = sandbox.clock.now()
            for log_type in LOG_TYPES:
                seen[log_type.name].append(truth_event_times(sandbox, log_type.name, previous_cut_off, now.isoformat()))
            result = workspace.run(*(("--start-date", start.isoformat()) if run == 0 else ()))
            assert result.returncode == 0, result.output
            final_before = floor_hour(now - LOOKBACK)
            for log_type in LOG_TYPES:
                final = truth_event_times(sandbox, log_type.name, start, final_before.isoformat())
                assert workspace.event_times(log_type.table_name) == expected_after_runs(seen[log_type.name], final), (
                    run,
                    log_type.name,
                )
            previous_cut_off = now
            sandbox.clock.advance(timedelta(minutes=10))

        assert sandbox.page_order == "shuffled" and sum(
            1 for answer in sandbox.stats.log if answer.params.get("cursor")
        ), "some reads must have spanned pages"
        # Late entries were found by counting: every hour up to the last final one holds all Gong has.
        late_found = workspace.query("SELECT sum(late_entries) FROM gong_logs.log_coverage")[0][0]
        assert late_found > 0
        for log_type in LOG_TYPES:
            for range_start, range_end, gong_count, rows_loaded, _, outcome, _ in coverage(workspace, log_type.name):
                truth = sum(truth_event_times(sandbox, log_type.name, range_start, range_end.isoformat()).values())
                assert gong_count == rows_loaded == truth, (log_type.name, range_start)
                assert outcome in ("complete", "repaired")
        # v_coverage agrees with counts taken from the sandbox, per day.
        for log_type, day, hours, gong_count, rows_loaded, status in workspace.query(
            "SELECT log_type, day, hours_recorded, gong_count, rows_loaded, status FROM gong_logs.v_coverage"
        ):
            recorded = [row for row in coverage(workspace, log_type) if row[0].date() == day]
            truth = sum(sum(truth_event_times(sandbox, log_type, r[0], r[1].isoformat()).values()) for r in recorded)
            assert (hours, gong_count, rows_loaded) == (len(recorded), truth, truth)
            assert status == "partial"  # the sandbox's day 2026-01-02 is not over; the start was mid-day


def first_request_of_check(params: dict[str, str]) -> bool:
    return params.get("toDateTime", "") <= "2026-01-01T01:00:00Z"


@pytest.mark.parametrize("killed_at_call", [1, 2, 4], ids=["hour-count", "first-half-count", "later-call"])
def test_a_run_killed_during_a_count_check_or_re_read_loses_nothing(tmp_path: Path, killed_at_call: int) -> None:
    # 2,000 AccessLog entries an hour; three of the first hour written 25 minutes late, one after the first run.
    logs = SyntheticLogs(
        epoch=EPOCH, intervals_seconds={"AccessLog": 1.8}, late_every=700, late_delay=timedelta(minutes=25)
    )
    with GongSandbox(logs=logs, clock=SandboxClock(EPOCH + timedelta(hours=1))) as sandbox:
        workspace = Workspace(tmp_path, sandbox)
        assert workspace.run("--start-date", START_DATE, "--log-types", "AccessLog").returncode == 0
        sandbox.clock.advance(timedelta(hours=1, minutes=1))
        calls = Counter[str]()

        def nth_call_of_the_check(params: dict[str, str]) -> bool:
            if not first_request_of_check(params):
                return False
            calls["check"] += 1
            return calls["check"] == killed_at_call

        gate = threading.Event()
        sandbox.add_fault(Fault(action="gate", gate=gate, matches=nth_call_of_the_check))
        env = {**workspace.env, "SOURCES__GONG__NOW": sandbox.clock.now().isoformat()}
        process = subprocess.Popen(
            [sys.executable, str(PIPELINE_SCRIPT), "--log-types", "AccessLog"],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while sandbox.pending_faults and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.02)
        assert not sandbox.pending_faults, "the check never made that call"
        process.send_signal(signal.SIGKILL)
        process.wait()
        gate.set()

        requests = len(sandbox.stats.requests)

        rerun = workspace.run("--log-types", "AccessLog")

        assert rerun.returncode == 0, rerun.output
        assert workspace.event_times("access_log") == truth_event_times(sandbox, "AccessLog")
        # The rerun checked the hour again, from its count, and recorded it as repaired.
        hour_counts = [
            p
            for p in sandbox.stats.requests[requests:]
            if (p["fromDateTime"], p["toDateTime"]) == ("2026-01-01T00:00:00Z", "2026-01-01T01:00:00Z")
            and "cursor" not in p
        ]
        assert len(hour_counts) == 1
        (row,) = coverage(workspace, "AccessLog")[:1]
        assert row[5] == "repaired" and row[4] == 1  # the one entry of the hour written late


def entry_keys(workspace: Workspace, table: str) -> list[str]:
    return sorted(key for (key,) in workspace.query(f"SELECT _entry_key FROM gong_logs.{table}"))


def test_verify_reports_rows_deleted_from_the_warehouse_and_repair_puts_them_back_exactly(
    workspace: Workspace, sandbox: GongSandbox
) -> None:
    assert workspace.run("--start-date", START_DATE).returncode == 0
    keys_before = {table: entry_keys(workspace, table) for table in ("access_log", "user_call_play")}
    with duckdb.connect(str(workspace.root / "gong_audit.duckdb")) as connection:
        for table in keys_before:
            connection.execute(
                f"DELETE FROM gong_logs.{table} WHERE event_time >= '2026-01-01 10:00:00+00' "
                "AND event_time < '2026-01-01 10:40:00+00'"
            )
    deleted = {table: len(keys) - len(entry_keys(workspace, table)) for table, keys in keys_before.items()}
    assert all(deleted.values())
    summary = workspace.root / "verify.json"
    requests_before = len(sandbox.stats.requests)

    found = workspace.run("verify", "--start-date", START_DATE, "--summary-json", str(summary))

    assert found.returncode == 65, found.output
    # One call per log type and UTC day of [start, the last final hour): 2 days, 5 types.
    assert len(sandbox.stats.requests) - requests_before == 10
    report = json.loads(summary.read_text())
    missing = {(d["table"], d["day"]): d for d in report["days"] if d["status"] == "missing"}
    assert set(missing) == {("access_log", "2026-01-01"), ("user_call_play", "2026-01-01")}
    for table, count in deleted.items():
        assert missing[(table, "2026-01-01")]["gong_count"] - missing[(table, "2026-01-01")]["warehouse_count"] == count
        assert f"{count} missing; gong-logs verify --repair" in found.stdout
    assert {table: len(keys) - len(entry_keys(workspace, table)) for table, keys in keys_before.items()} == deleted

    repaired = workspace.run("verify", "--start-date", START_DATE, "--repair", "--summary-json", str(summary))

    assert repaired.returncode == 0, repaired.output
    assert {table: entry_keys(workspace, table) for table in keys_before} == keys_before
    for log_type in LOG_TYPES:
        assert workspace.event_times(log_type.table_name) == truth_event_times(sandbox, log_type.name)
    report = json.loads(summary.read_text())
    assert report["counts"] == {"complete": 8, "repaired": 2}
    assert sum(d["repaired_entries"] for d in report["days"]) == sum(deleted.values())
    # Counting the days again, then at most a read of each day that differs (halving where it pays: one late
    # entry in 20,000 above); the day's count is not asked for twice.
    repaired_days = [d for d in report["days"] if d["status"] == "repaired"]
    assert report["requests"] <= 10 + sum(math.ceil(d["gong_count"] / 100) for d in repaired_days)


def test_verify_says_access_log_past_gongs_retention_is_no_longer_at_gong(tmp_path: Path) -> None:
    logs = SyntheticLogs(epoch=EPOCH, intervals_seconds={"AccessLog": 600})
    clock = SandboxClock(EPOCH + timedelta(days=10, hours=12))  # at noon: retention cuts a day in two
    with GongSandbox(logs=logs, clock=clock, retention={"AccessLog": timedelta(days=14)}) as sandbox:
        workspace = Workspace(tmp_path, sandbox)
        summary = tmp_path / "verify.json"
        assert workspace.run("--start-date", START_DATE, "--log-types", "AccessLog").returncode == 0
        sandbox.clock.advance(timedelta(days=10))  # Gong no longer has the first 6.5 days
        assert workspace.run("--log-types", "AccessLog").returncode == 0

        result = workspace.run(
            "verify", "--start-date", START_DATE, "--log-types", "AccessLog", "--summary-json", str(summary)
        )

        assert result.returncode == 0, result.output
        statuses = Counter(day["status"] for day in json.loads(summary.read_text())["days"])
        assert statuses == {"no longer at Gong": 7, "complete": 14}, statuses
        assert "it no longer keeps AccessLog this old" in result.stdout


def test_hourly_runs_stop_at_the_days_ceiling_and_the_next_day_continues_exactly(tmp_path: Path) -> None:
    with GongSandbox(logs=SyntheticLogs(epoch=EPOCH), clock=SandboxClock(EPOCH + timedelta(hours=18))) as sandbox:
        workspace = Workspace(tmp_path, sandbox)
        summary = tmp_path / "summary.json"
        ceiling = {"SOURCES__GONG__MAX_REQUESTS_PER_DAY": "40"}
        day_one: list[tuple[int, int]] = []
        for hour in range(6):  # 18:00 to 23:00
            before = len(sandbox.stats.requests)
            result = workspace.run(*(("--start-date", START_DATE) if hour == 0 else ()), env=ceiling)
            day_one.append((result.returncode, len(sandbox.stats.requests) - before))
            if result.returncode == 75:
                assert "sources.gong.max_requests_per_day" in result.stderr, result.stderr
            sandbox.clock.advance(timedelta(hours=1))
        codes = [code for code, _ in day_one]
        assert sum(requests for _, requests in day_one) <= 40
        assert codes[0] == 0 and codes[-1] == 75, day_one
        assert day_one[-1][1] == 0  # the ceiling was spent: not even one call

        sandbox.clock.advance(timedelta(minutes=30))  # 00:30: a new UTC day
        next_day = workspace.run("--summary-json", str(summary), env=ceiling)

        assert next_day.returncode == 0, next_day.output
        for log_type in LOG_TYPES:
            assert workspace.event_times(log_type.table_name) == truth_event_times(sandbox, log_type.name)
        today = json.loads(summary.read_text())["budget"]["requests_today"]
        assert today["day_start"] == "2026-01-02T00:00:00+00:00" and today["before_this_run"] == 0
        assert 0 < today["with_this_run"] <= 40


def loads_recorded(workspace: Workspace) -> int:
    """Loads in the workspace's DuckDB file (0 when nothing was ever loaded)."""
    if not (workspace.root / "gong_audit.duckdb").exists() or "_dlt_loads" not in workspace.tables():
        return 0
    return int(workspace.query("SELECT count(*) FROM gong_logs._dlt_loads")[0][0])


def test_a_run_killed_before_its_first_load_still_counts_toward_the_days_ceiling(
    workspace: Workspace, sandbox: GongSandbox
) -> None:
    gate = threading.Event()
    sandbox.add_fault(Fault(action="gate", gate=gate, times=100))  # every type's first request is held
    env = {
        **workspace.env,
        "SOURCES__GONG__NOW": sandbox.clock.now().isoformat(),
        "SOURCES__GONG__MAX_REQUESTS_PER_SECOND": "5",  # 0.2 s apart: each is written to the local count
        "SOURCES__GONG__MAX_REQUESTS_PER_DAY": "1000",
    }
    process = subprocess.Popen(
        [sys.executable, str(PIPELINE_SCRIPT), "--start-date", START_DATE],
        cwd=workspace.root,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while len(sandbox.stats.requests) < len(LOG_TYPES) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    process.send_signal(signal.SIGKILL)
    process.wait()
    gate.set()  # the faults left answer at once from now on
    sent = len(sandbox.stats.requests)
    assert sent == len(LOG_TYPES) and loads_recorded(workspace) == 0, "killed before anything was loaded"
    summary = workspace.root / "summary.json"

    rerun = workspace.run("--start-date", START_DATE, "--summary-json", str(summary))

    assert rerun.returncode == 0, rerun.output
    assert json.loads(summary.read_text())["budget"]["requests_today"]["before_this_run"] == sent


def unpack_previous_release(root: Path, with_local_state: bool) -> None:
    with tarfile.open(FIXTURES / "layout1_pipeline.tar.xz") as archive:
        archive.extractall(root, filter="data") if sys.version_info >= (3, 12) else archive.extractall(root)
    if not with_local_state:  # a fresh worker: dlt restores the state from the destination
        import shutil

        shutil.rmtree(root / "dlt")


@pytest.mark.parametrize(
    ("with_local_state", "backfill_first"),
    [(True, False), (False, False), (True, True)],
    ids=["same-machine", "fresh-worker", "a-bounded-backfill-first"],
)
def test_a_pipeline_in_the_previous_state_layout_carries_on_after_the_upgrade(
    tmp_path: Path, with_local_state: bool, backfill_first: bool
) -> None:
    unpack_previous_release(tmp_path, with_local_state)
    history_start = datetime(2026, 1, 2, tzinfo=timezone.utc)
    # Entries Gong wrote after the previous release's run (its lookback would have re-read them): here, rows of
    # its last half hour taken out of its database.
    with duckdb.connect(str(tmp_path / "gong_audit.duckdb")) as connection:
        for log_type in LOG_TYPES:
            connection.execute(
                f"DELETE FROM gong_logs.{log_type.table_name} WHERE event_time >= '2026-01-02 05:30:00+00'"
            )
    with GongSandbox(logs=SyntheticLogs(epoch=EPOCH), clock=SandboxClock(FIRST_CLOCK + timedelta(hours=2))) as sandbox:
        workspace = Workspace(tmp_path, sandbox)
        summary = tmp_path / "summary.json"
        if backfill_first:  # writes a layout-2 record beside the incremental one, still in layout 1
            backfill = workspace.run("--start-date", "2026-01-01T00:00:00Z", "--end-date", "2026-01-01T02:00:00Z")
            assert backfill.returncode == 0, backfill.output
        requests = len(sandbox.stats.requests)

        upgraded = workspace.run("--summary-json", str(summary))

        assert upgraded.returncode == 0, upgraded.output
        assert "state of an earlier version (layout 1): re-reading from 2026-01-02T05:00:00+00:00 once" in (
            upgraded.stderr
        )
        # It went on from its saved progress, less the lookback (from the start of that hour), once.
        froms = {p["fromDateTime"] for p in sandbox.stats.requests[requests:] if p["logType"] == "AccessLog"}
        assert froms == {"2026-01-02T05:00:00Z"}, froms
        for log_type in LOG_TYPES:
            loaded = workspace.event_times(log_type.table_name)
            expected = truth_event_times(sandbox, log_type.name, history_start)
            if backfill_first:
                expected += truth_event_times(sandbox, log_type.name, EPOCH, "2026-01-01T02:00:00Z")
            assert loaded == expected, log_type.name
        for entry in json.loads(summary.read_text())["log_types"]:
            assert entry["state_upgraded_from"] == "2026-01-02T06:00:00+00:00"
        sandbox.clock.advance(timedelta(minutes=20))
        requests = len(sandbox.stats.requests)

        assert workspace.run().returncode == 0
        # Layout 2 now: it reads only what is new.
        new_from = gong_time(FIRST_CLOCK + timedelta(hours=2))
        assert {p["fromDateTime"] for p in sandbox.stats.requests[requests:]} == {new_from}


def test_a_state_written_by_a_newer_version_is_refused_clearly(workspace: Workspace, sandbox: GongSandbox) -> None:
    assert workspace.run("--start-date", START_DATE, "--log-types", "AccessLog").returncode == 0
    state_file = workspace.root / "dlt" / "pipelines" / "gong_logs" / "state.json"
    state = json.loads(state_file.read_text())
    state["sources"]["gong"]["resources"]["access_log"]["layout"] = 3
    state_file.write_text(json.dumps(state))
    sandbox.clock.advance(timedelta(minutes=10))
    requests = len(sandbox.stats.requests)

    refused = workspace.run("--log-types", "AccessLog")

    assert refused.returncode == 1
    assert "layout 3, newer than this version of gong-logs reads (2)" in refused.stderr
    assert len(sandbox.stats.requests) == requests


def test_a_backfill_records_every_final_hour_without_an_extra_call(tmp_path: Path) -> None:
    dense: dict[str, float | None] = {"AccessLog": 20, "UserActivityLog": 60, "UserCallPlay": 30}
    logs = SyntheticLogs(epoch=EPOCH, intervals_seconds={**dense, "ExternallySharedCallAccess": 600})
    with GongSandbox(logs=logs, clock=SandboxClock(FIRST_CLOCK)) as sandbox:
        workspace = Workspace(tmp_path, sandbox)
        summary_path = tmp_path / "summary.json"

        result = workspace.run("--start-date", START_DATE, "--summary-json", str(summary_path))

        assert result.returncode == 0, result.output
        summary = {entry["log_type"]: entry for entry in json.loads(summary_path.read_text())["log_types"]}
        for log_type in LOG_TYPES:
            name = log_type.name
            assert (
                summary[name]["requests_by_purpose"]["count_checks"]
                == summary[name]["requests_by_purpose"]["re_reads"]
                == 0
            )
            record = coverage(workspace, name)
            # Every hour but the last (read within the lookback, so not final yet) is recorded, from its windows:
            # empty hours too (ExternallySharedCallPlay has no entries at all).
            assert len(record) == 29, name
            assert {row[6] for row in record} == {"windows"} and {row[5] for row in record} == {"complete"}
            final = truth_event_times(sandbox, name, EPOCH, (FIRST_CLOCK - LOOKBACK).isoformat())
            assert sum(row[2] for row in record) == sum(row[3] for row in record) == sum(final.values())


def test_a_check_that_needs_more_than_a_runs_budget_goes_on_in_parts_while_new_entries_keep_moving(
    tmp_path: Path,
) -> None:
    # 10,000 AccessLog entries an hour; 200 of the first hour written 30 minutes late, half after the first run.
    logs = SyntheticLogs(
        epoch=EPOCH, intervals_seconds={"AccessLog": 0.36}, late_every=50, late_delay=timedelta(minutes=30)
    )
    with GongSandbox(logs=logs, clock=SandboxClock(EPOCH + timedelta(hours=1))) as sandbox:
        workspace = Workspace(tmp_path, sandbox)
        summary = tmp_path / "summary.json"
        assert workspace.run("--start-date", START_DATE, "--log-types", "AccessLog").returncode == 0
        sandbox.clock.advance(timedelta(hours=1, minutes=1))
        budget = {"SOURCES__GONG__MAX_REQUESTS_PER_RUN": "40", "SOURCES__GONG__LOAD_INTERVAL_SECONDS": "600"}
        progress: list[str] = []
        late_found = 0
        for _ in range(14):
            run = workspace.run("--log-types", "AccessLog", "--summary-json", str(summary), env=budget)
            assert run.returncode in (0, 75), run.output
            access_log = json.loads(summary.read_text())["log_types"][0]
            progress.append(access_log["progress_after"])
            late_found += access_log["late_entries_found"]
            if coverage(workspace, "AccessLog"):
                break
            sandbox.clock.advance(timedelta(minutes=10))

        # Every run moved the new entries on, and the check of the first hour got done, a part per run.
        assert progress == sorted(set(progress)), progress
        first_hour = coverage(workspace, "AccessLog")[0]
        assert first_hour[5] == "repaired" and first_hour[2] == first_hour[3]
        first_run = EPOCH + timedelta(hours=1)
        late = sum(logs.copies(i) for i in range(10_000) if logs.is_hidden("AccessLog", i, first_run))
        assert first_hour[4] == late_found == late > 90
        hour = truth_event_times(sandbox, "AccessLog", EPOCH, "2026-01-01T01:00:00Z")
        loaded = workspace.event_times("access_log")
        assert Counter({moment: loaded[moment] for moment in hour}) == hour


def test_a_run_past_a_learned_quota_with_an_hour_to_check_ends_cleanly(tmp_path: Path) -> None:
    logs = SyntheticLogs(
        epoch=EPOCH, intervals_seconds={"AccessLog": 1.8}, late_every=50, late_delay=timedelta(minutes=30)
    )
    with GongSandbox(logs=logs, clock=SandboxClock(EPOCH + timedelta(hours=1))) as sandbox:
        workspace = Workspace(tmp_path, sandbox)
        one_load = {"SOURCES__GONG__LOAD_INTERVAL_SECONDS": "600"}
        assert workspace.run("--start-date", START_DATE, "--log-types", "AccessLog", env=one_load).returncode == 0
        sandbox.clock.advance(timedelta(minutes=10))
        sandbox.next_day()
        sandbox.daily_quota = 3  # a quota 429 after 3 calls: the job learns a quota of 3
        assert workspace.run("--log-types", "AccessLog", env=one_load).returncode == 75
        sandbox.next_day()
        sandbox.daily_quota = None
        sandbox.clock.advance(timedelta(minutes=51))  # 02:01: the first hour is due for a count check

        run = workspace.run("--log-types", "AccessLog", env=one_load)

        # Past the learned quota the job explores in small windows; a count check must not turn that into a
        # load that sends nothing, which the job would take for a loop (exit 1).
        assert run.returncode in (0, 75), run.output
        assert coverage(workspace, "AccessLog")[0][5] in ("complete", "repaired")


def test_damaged_counts_in_the_state_are_counted_again_from_a_re_read(
    workspace: Workspace, sandbox: GongSandbox
) -> None:
    assert workspace.run("--start-date", START_DATE, "--log-types", "AccessLog").returncode == 0
    state_file = workspace.root / "dlt" / "pipelines" / "gong_logs" / "state.json"
    state = json.loads(state_file.read_text())
    hours = state["sources"]["gong"]["resources"]["access_log"]["progress"]["incremental"]["hours"]
    assert list(hours) == ["2026-01-02T05:00:00+00:00"]  # the hour read before it was final
    hours["2026-01-02T05:00:00+00:00"]["counts"] = [1, 2, 3]  # not an hour's buckets
    state_file.write_text(json.dumps(state))
    sandbox.clock.advance(timedelta(hours=2))
    requests = len(sandbox.stats.requests)

    rerun = workspace.run("--log-types", "AccessLog")

    assert rerun.returncode == 0, rerun.output
    assert "could not be read" in rerun.stderr and "re-reading from 2026-01-02T05:00:00+00:00 once" in rerun.stderr
    assert {p["fromDateTime"] for p in sandbox.stats.requests[requests:]} == {"2026-01-02T05:00:00Z"}
    assert workspace.event_times("access_log") == truth_event_times(sandbox, "AccessLog")
    assert [row[0].hour for row in coverage(workspace, "AccessLog")][-3:] == [4, 5, 6]
