"""End to end: sandbox over loopback HTTP -> pipelines/gong_logs_pipeline.py -> DuckDB."""

from __future__ import annotations

import base64
import json
import re
from collections import Counter
from datetime import timedelta
from pathlib import Path

import duckdb
import pytest

from gong_source.entries import parse_event_time
from gong_source.sandbox import Fault, GongSandbox, SandboxClock, SyntheticLogs
from gong_source.settings import LOG_TYPES
from tests.conftest import EPOCH, FIRST_CLOCK, NEW_FIELDS_FROM, START_DATE, Workspace, truth_event_times


def test_full_load_matches_truth_for_all_five_tables(workspace: Workspace, sandbox: GongSandbox) -> None:
    result = workspace.run("--start-date", START_DATE)

    assert result.returncode == 0, result.output
    for log_type in LOG_TYPES:
        truth = truth_event_times(sandbox, log_type.name)
        assert sum(truth.values()) > 0
        assert workspace.event_times(log_type.table_name) == truth, log_type.name
        assert f"{log_type.table_name} " in result.stdout
    (duplicate_keys,) = workspace.query("SELECT count(*) - count(DISTINCT _entry_key) FROM gong_logs.access_log")[0]
    assert duplicate_keys == 0


def test_rows_have_snake_case_columns_and_utc_event_time(workspace: Workspace) -> None:
    assert workspace.run("--start-date", START_DATE).returncode == 0

    columns = dict(
        workspace.query(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'gong_logs' AND table_name = 'access_log'"
        )
    )
    assert columns["event_time"] == "TIMESTAMP WITH TIME ZONE"
    for column in (
        "user_id",
        "user_email_address",
        "user_full_name",
        "impersonator_full_name",
        "log_record__request_headers__x_forwarded_for",
        "log_record__request_headers__user_agent",
        "log_record__mdc__xtid",
        "_entry_key",
    ):
        assert column in columns, column
    assert columns["log_record__status"] == "BIGINT"
    # start_time is 0 (an int) where a session starts at the beginning and a float elsewhere: every value
    # still loads, the floats in a variant column next to it.
    plays = dict(
        workspace.query(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'gong_logs' AND table_name = 'user_call_play'"
        )
    )
    assert plays["log_record__start_time"] == "BIGINT" and plays["log_record__start_time__v_double"] == "DOUBLE"
    assert workspace.query(
        "SELECT count(log_record__start_time) + count(log_record__start_time__v_double) = count(*) "
        "FROM gong_logs.user_call_play"
    ) == [(True,)]
    externally_shared = {
        name
        for (name,) in workspace.query(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = 'gong_logs' AND table_name = 'externally_shared_call_access'"
        )
    }
    assert "user_id" not in externally_shared  # the external viewer has an e-mail address, no Gong user id
    assert {"user_email_address", "log_record__page_viewer_ip"} <= externally_shared


def test_nested_lists_land_in_child_tables_linked_to_parents(workspace: Workspace, sandbox: GongSandbox) -> None:
    assert workspace.run("--start-date", START_DATE).returncode == 0

    entries = sandbox.truth("UserActivityLog", EPOCH)
    tables = [change for entry in entries for change in entry["logRecord"]["tableChanges"]]
    rows = [row for table in tables for row in table["rowChanges"]]
    columns = [column for row in rows for column in row["columnChanges"]]
    base = "gong_logs.user_activity_log__log_record__table_changes"
    counts = workspace.query(
        f"SELECT (SELECT count(*) FROM {base}), (SELECT count(*) FROM {base}__row_changes), "
        f"(SELECT count(*) FROM {base}__row_changes__column_changes)"
    )[0]
    assert counts == (len(tables), len(rows), len(columns))
    orphans = workspace.query(
        f"SELECT count(*) FROM {base}__row_changes__column_changes c "
        f"LEFT JOIN {base}__row_changes r ON c._dlt_parent_id = r._dlt_id "
        f"LEFT JOIN {base} t ON r._dlt_parent_id = t._dlt_id "
        "LEFT JOIN gong_logs.user_activity_log a ON t._dlt_parent_id = a._dlt_id AND c._dlt_root_id = a._dlt_id "
        "WHERE a._dlt_id IS NULL"
    )[0][0]
    assert orphans == 0
    # oldValue is null, a string, an int or a bool: every value loads as text in one column.
    def text(value: object) -> object:
        return value if value is None or isinstance(value, str) else json.dumps(value)

    loaded = Counter(workspace.query(f"SELECT old_value, new_value FROM {base}__row_changes__column_changes"))
    assert loaded == Counter((text(c["oldValue"]), text(c["newValue"])) for c in columns)
    assert {type(c["oldValue"]) for c in columns} == {type(None), str, int, bool}
    keys = [key for row in rows for key in row["primaryKeyColumns"]]
    assert workspace.query(f"SELECT count(*) FROM {base}__row_changes__primary_key_columns") == [(len(keys),)]


def test_a_changed_value_that_looks_like_a_timestamp_does_not_make_the_column_a_timestamp(
    workspace: Workspace, sandbox: GongSandbox
) -> None:
    changes = [
        {"columnName": "expires", "operation": "UPDATE", "oldValue": "2026-01-01T00:00:00Z", "newValue": "5"},
        {"columnName": "limit", "operation": "UPDATE", "oldValue": 5, "newValue": True},
        {"columnName": "year", "operation": "UPDATE", "oldValue": "true", "newValue": "2025"},
    ]
    record = {"tableChanges": [{"tableName": "t", "rowChanges": [{"primaryKeyColumns": [], "columnChanges": changes}]}]}
    page = {
        "requestId": "typed",
        "records": {"totalRecords": 1, "currentPageSize": 1, "currentPageNumber": 0},
        "logEntries": [{"userId": "1", "eventTime": "2026-01-01T00:10:00Z", "logRecord": record}],
    }
    sandbox.add_fault(Fault(200, page, log_type="UserActivityLog", times=1))

    one_hour = ["--start-date", START_DATE, "--end-date", "2026-01-01T01:00:00Z"]
    run = workspace.run(*one_hour, "--log-types", "UserActivityLog")

    assert run.returncode == 0, run.output
    child = "user_activity_log__log_record__table_changes__row_changes__column_changes"
    types = workspace.query(
        f"SELECT column_name, data_type FROM information_schema.columns WHERE table_name = '{child}' "
        "AND column_name IN ('old_value', 'new_value')"
    )
    assert dict(types) == {"old_value": "VARCHAR", "new_value": "VARCHAR"}
    assert sorted(workspace.query(f"SELECT old_value, new_value FROM gong_logs.{child}")) == [
        ("2026-01-01T00:00:00Z", "5"),
        ("5", "true"),
        ("true", "2025"),
    ]


def test_second_run_with_nothing_new_loads_nothing_and_sends_one_request_per_type(
    workspace: Workspace, sandbox: GongSandbox
) -> None:
    assert workspace.run("--start-date", START_DATE).returncode == 0
    first_requests = len(sandbox.stats.requests)
    before = {t.table_name: workspace.event_times(t.table_name) for t in LOG_TYPES}

    same_moment = workspace.run()
    sandbox.clock.advance(timedelta(seconds=40))
    a_little_later = workspace.run()

    assert same_moment.returncode == a_little_later.returncode == 0, same_moment.output + a_little_later.output
    new_requests = sandbox.stats.requests[first_requests:]
    # Nothing can be new at the same moment; 40 s later each type asks once for those 40 s (Gong: 404).
    assert Counter(params["logType"] for params in new_requests) == {t.name: 1 for t in LOG_TYPES}
    assert {params["fromDateTime"] for params in new_requests} == {"2026-01-02T06:00:00Z"}
    assert {t.table_name: workspace.event_times(t.table_name) for t in LOG_TYPES} == before


def test_new_entries_around_the_cut_off_load_exactly_once_whatever_their_offset(
    workspace: Workspace, sandbox: GongSandbox
) -> None:
    assert workspace.run("--start-date", START_DATE).returncode == 0
    first_requests = len(sandbox.stats.requests)
    sandbox.clock.advance(timedelta(hours=3))

    second = workspace.run()

    assert second.returncode == 0, second.output
    # The second run reads what is new, from its first cut-off on, once; and counts, with one call, the hour
    # the first run read before it was final (the hour before the cut-off, which Gong could still write into).
    asked = [
        (params["fromDateTime"], params["toDateTime"], "cursor" in params)
        for params in sandbox.stats.requests[first_requests:]
        if params["logType"] == "AccessLog"
    ]
    assert sorted(asked) == [
        ("2026-01-02T05:00:00Z", "2026-01-02T06:00:00Z", False),
        ("2026-01-02T06:00:00Z", "2026-01-02T09:00:00Z", False),
    ]
    near_cut_off = [
        entry
        for entry in sandbox.truth("AccessLog", FIRST_CLOCK - timedelta(minutes=15))
        if parse_event_time(entry["eventTime"]) < FIRST_CLOCK + timedelta(minutes=15)
    ]
    offsets = {entry["eventTime"][-6:] if not entry["eventTime"].endswith("Z") else "Z" for entry in near_cut_off}
    assert {"Z", "-08:00", "+05:30"} <= offsets
    # Text order of these timestamps differs from time order: a string cursor would lose or repeat rows.
    raw_times = [entry["eventTime"] for entry in near_cut_off]
    assert sorted(raw_times) != sorted(raw_times, key=parse_event_time)
    loaded = workspace.event_times("access_log")
    for entry in near_cut_off:
        moment = parse_event_time(entry["eventTime"])
        assert loaded[moment] == raw_times.count(entry["eventTime"]), entry["eventTime"]
    for log_type in LOG_TYPES:
        assert workspace.event_times(log_type.table_name) == truth_event_times(sandbox, log_type.name)


def test_fields_that_appear_later_add_columns(workspace: Workspace, sandbox: GongSandbox) -> None:
    assert workspace.run("--start-date", START_DATE).returncode == 0
    assert not workspace.query(
        "SELECT 1 FROM information_schema.columns WHERE table_schema = 'gong_logs' "
        "AND table_name = 'access_log' AND column_name = 'log_record__mfa_method'"
    )
    sandbox.clock.advance(timedelta(hours=3))

    assert workspace.run().returncode == 0

    with_field, without_field = workspace.query(
        "SELECT count(log_record__mfa_method), count(*) - count(log_record__mfa_method) FROM gong_logs.access_log"
    )[0]
    expected_new = sum(1 for entry in sandbox.truth("AccessLog", NEW_FIELDS_FROM))
    assert with_field == expected_new > 0
    assert without_field == sum(truth_event_times(sandbox, "AccessLog", EPOCH).values()) - expected_new


def test_identical_entries_stay_two_rows_after_re_reads(workspace: Workspace, sandbox: GongSandbox) -> None:
    truth = truth_event_times(sandbox, "UserCallPlay")
    duplicated = [moment for moment, count in truth.items() if count == 2]
    assert duplicated, "the sandbox must serve byte-identical entries"
    assert workspace.run("--start-date", START_DATE).returncode == 0

    # A bounded backfill re-reads the whole period; merge on the entry key keeps every row once.
    reread = workspace.run("--start-date", START_DATE, "--end-date", FIRST_CLOCK.isoformat())

    assert reread.returncode == 0, reread.output
    loaded = workspace.event_times("user_call_play")
    assert loaded == truth
    changes = [
        change
        for entry in sandbox.truth("UserActivityLog", EPOCH)
        for table in entry["logRecord"]["tableChanges"]
        for row in table["rowChanges"]
        for change in row["columnChanges"]
    ]
    child = "gong_logs.user_activity_log__log_record__table_changes__row_changes__column_changes"
    assert workspace.query(f"SELECT count(*) FROM {child}") == [(len(changes),)]  # child rows merged too
    assert all(loaded[moment] == 2 for moment in duplicated)
    keys = workspace.query(
        "SELECT _entry_key FROM gong_logs.user_call_play WHERE event_time = ?".replace(
            "?", f"'{duplicated[0].isoformat()}'::TIMESTAMPTZ"
        )
    )
    assert sorted(key[-2:] for (key,) in keys) == ["-0", "-1"]


def test_type_without_data_gets_404_and_loads_nothing(tmp_path: Path) -> None:
    logs = SyntheticLogs(epoch=EPOCH, intervals_seconds={"AccessLog": 600, "ExternallySharedCallPlay": None})
    with GongSandbox(logs=logs, clock=SandboxClock(FIRST_CLOCK)) as sandbox:
        workspace = Workspace(tmp_path, sandbox)
        result = workspace.run("--start-date", START_DATE, "--log-types", "AccessLog,ExternallySharedCallPlay")

        assert result.returncode == 0, result.output
        assert sandbox.stats.statuses[404] == 1
        assert "externally_shared_call_play" not in workspace.tables()
        assert workspace.event_times("access_log") == truth_event_times(sandbox, "AccessLog")


def test_a_404_that_is_not_gongs_fails_naming_the_url(workspace: Workspace, sandbox: GongSandbox) -> None:
    sandbox.add_fault(Fault(404, "<html><body>Not Found</body></html>", content_type="text/html"))

    result = workspace.run("--start-date", START_DATE, "--log-types", "AccessLog")

    assert result.returncode == 1
    assert f"{sandbox.url}/v2/logs?logType=AccessLog" in result.stderr
    assert "not Gong's" in result.stderr and "SOURCES__GONG__BASE_URL" in result.stderr


def test_401_exits_1_with_advice_and_no_secret(workspace: Workspace) -> None:
    secret = "Zq8-very-distinct-secret-41"
    basic = base64.b64encode(f"{workspace.sandbox.access_key}:{secret}".encode()).decode()

    result = workspace.run("--start-date", START_DATE, env={"SOURCES__GONG__CREDENTIALS__ACCESS_KEY_SECRET": secret})

    assert result.returncode == 1
    for hint in ("401", "SOURCES__GONG__CREDENTIALS__ACCESS_KEY_SECRET", "access_token", "api:logs:read", "expired"):
        assert hint in result.stderr, hint
    assert secret not in result.output and basic not in result.output
    assert "Traceback" not in result.output


def test_bearer_token_auth_loads(workspace: Workspace, sandbox: GongSandbox) -> None:
    result = workspace.run(
        "--start-date",
        START_DATE,
        "--log-types",
        "UserCallPlay",
        env={
            "SOURCES__GONG__CREDENTIALS__ACCESS_KEY": None,
            "SOURCES__GONG__CREDENTIALS__ACCESS_KEY_SECRET": None,
            "SOURCES__GONG__CREDENTIALS__ACCESS_TOKEN": sandbox.access_token,
        },
    )

    assert result.returncode == 0, result.output
    assert workspace.event_times("user_call_play") == truth_event_times(sandbox, "UserCallPlay")


def test_log_types_selects_a_subset(workspace: Workspace, sandbox: GongSandbox) -> None:
    result = workspace.run("--start-date", START_DATE, "--log-types", "AccessLog,UserCallPlay")

    assert result.returncode == 0, result.output
    assert {params["logType"] for params in sandbox.stats.requests} == {"AccessLog", "UserCallPlay"}
    assert {"access_log", "user_call_play"} <= workspace.tables()
    assert (
        not {"user_activity_log", "externally_shared_call_access", "externally_shared_call_play"} & workspace.tables()
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--start-date", "last tuesday"], "is not a valid date"),
        (["--start-date", START_DATE, "--end-date", "2026-13-01"], "is not a valid date"),
        (["--start-date", "2026-01-02", "--end-date", "2026-01-01"], "is not after start_date"),
        (["--start-date", "2099-01-01"], "is in the future"),
        (["--end-date", "2026-01-02"], "a bounded backfill needs both"),
        (["--log-types", "AccessLog,CallLog"], "Unknown log type(s) CallLog"),
        (["--no-such-flag"], "unrecognized arguments"),
    ],
)
def test_bad_input_fails_before_any_request(
    workspace: Workspace, sandbox: GongSandbox, args: list[str], message: str
) -> None:
    result = workspace.run(*args)

    assert result.returncode == 1
    assert message in result.stderr
    assert sandbox.stats.requests == []


def test_missing_credentials_name_the_keys_to_set(workspace: Workspace, sandbox: GongSandbox) -> None:
    result = workspace.run(
        env={"SOURCES__GONG__CREDENTIALS__ACCESS_KEY": None, "SOURCES__GONG__CREDENTIALS__ACCESS_KEY_SECRET": None}
    )

    assert result.returncode == 1
    for key in (
        "sources.gong.credentials.access_key",
        "SOURCES__GONG__CREDENTIALS__ACCESS_KEY_SECRET",
        "SOURCES__GONG__CREDENTIALS__ACCESS_TOKEN",
    ):
        assert key in result.stderr, key
    assert sandbox.stats.requests == []


def test_400_shows_gongs_errors_and_request_id(workspace: Workspace, sandbox: GongSandbox) -> None:
    sandbox.add_fault(Fault(400, {"requestId": "req-4711", "errors": ["fromDateTime is out of range"]}))

    result = workspace.run("--start-date", START_DATE, "--log-types", "AccessLog")

    assert result.returncode == 1
    assert "fromDateTime is out of range" in result.stderr and "req-4711" in result.stderr


def test_429_and_5xx_are_retried_honouring_retry_after(workspace: Workspace, sandbox: GongSandbox) -> None:
    sandbox.add_fault(Fault(503, {"requestId": "r1", "errors": ["busy"]}, times=2))
    sandbox.add_fault(Fault(429, {"requestId": "r2", "errors": ["slow down"]}, headers={"Retry-After": "1"}))

    result = workspace.run("--start-date", START_DATE, "--log-types", "AccessLog")

    assert result.returncode == 0, result.output
    assert sandbox.stats.statuses[503] == 2 and sandbox.stats.statuses[429] == 1
    assert workspace.event_times("access_log") == truth_event_times(sandbox, "AccessLog")
    # The sandbox's own clock: the retry after the 429 came no sooner than Retry-After allowed.
    answers = sandbox.stats.answers
    after_429 = next(i for i, (_, status) in enumerate(answers) if status == 429)
    assert answers[after_429 + 1][0] - answers[after_429][0] >= 1.0


def test_demo_loads_all_tables_then_only_what_is_new(workspace: Workspace, tmp_path: Path) -> None:
    database = "gong_logs_demo.duckdb"

    def table_counts() -> dict[str, tuple[int, int]]:
        return {
            t.table_name: workspace.query(
                f"SELECT count(*), count(DISTINCT _entry_key) FROM gong_logs.{t.table_name}", database
            )[0]
            for t in LOG_TYPES
        }

    # The demo starts its own sandbox and ignores the configured Gong account and its view mapping.
    real_tenant = {
        "SOURCES__GONG__BASE_URL": "https://example.invalid",
        "SOURCES__GONG__VIEW_COLUMNS": json.dumps({"user_call_play": {"call_id": "log_record__conversation_id"}}),
    }
    first = workspace.run("--demo", env=real_tenant)
    assert first.returncode == 0, first.output
    assert "Example query" in first.stdout and "@acme-corp.example" in first.stdout
    created = first.stdout.split("Audit views: ")[1].splitlines()[0].split(", ")
    assert len(created) == 7 and "v_user_activity_changes" in created and "v_coverage" in created
    # Both example questions get answers: minutes played per person, refused requests per client IP.
    answers = re.findall(r"^ {2}\S+@acme-corp\.example +\d+ sessions +([\d.]+) min$", first.stdout, re.M)
    assert len(answers) == 5 and all(float(minutes) > 0 for minutes in answers)
    assert len(re.findall(r"^ {2}[0-9a-f.:]+ +40[13] /\S+ +\d+ refused$", first.stdout, re.M)) == 5
    after_first = table_counts()
    second = workspace.run("--demo", env=real_tenant)

    assert second.returncode == 0, second.output
    fields = workspace.run("fields", "--demo", env=real_tenant)
    assert fields.returncode == 0, fields.output
    assert "log_record__call_id" in fields.stdout and "v_call_plays.call_id" in fields.stdout
    after_second = table_counts()
    for table, (total, distinct) in after_second.items():
        assert total == distinct > 0, table
        # The second run reads only what appeared since (and counts an hour that became final).
        assert 0 <= total - after_first[table][0] <= 5, table
    assert not (tmp_path / "gong_audit.duckdb").exists()
    assert sorted(path.name for path in (tmp_path / "dlt" / "pipelines").iterdir()) == [
        "gong_logs_demo",
        "gong_logs_demo.lock",
        "gong_logs_demo.requests_today.json",
    ]
    # Deleting the demo database starts the demo over rather than continuing from stale state.
    (tmp_path / database).unlink()
    third = workspace.run("--demo")
    assert third.returncode == 0, third.output
    assert workspace.query("SELECT count(*) FROM gong_logs.access_log", database)[0][0] > 1000


def test_a_200_that_is_not_gongs_shape_is_never_treated_as_empty(workspace: Workspace, sandbox: GongSandbox) -> None:
    portal = "<html><body>Welcome to the login portal</body></html>"
    sandbox.add_fault(Fault(200, portal, content_type="text/html", times=10))  # more than the retries

    result = workspace.run("--start-date", START_DATE, "--log-types", "AccessLog")

    assert result.returncode == 1
    assert "not valid JSON" in result.stderr and "bytes of text/html" in result.stderr
    assert "Welcome" not in result.stderr  # a 200 body may hold log entries: it is never quoted


def test_a_repeating_cursor_stops_the_run(workspace: Workspace, sandbox: GongSandbox) -> None:
    page = {
        "requestId": "loop",
        "records": {"totalRecords": 300, "currentPageSize": 1, "currentPageNumber": 0, "cursor": "same-cursor"},
        "logEntries": [{"eventTime": "2026-01-01T00:00:00Z", "logRecord": {}}],
    }
    sandbox.add_fault(Fault(200, page, times=3))

    result = workspace.run("--start-date", START_DATE, "--log-types", "AccessLog")

    assert result.returncode == 1
    assert "cursor it had already returned" in result.stderr
    assert len(sandbox.stats.requests) == 2


def test_a_404_after_the_first_page_is_an_error_not_the_end(workspace: Workspace, sandbox: GongSandbox) -> None:
    gong_404 = {"requestId": "r404", "errors": ["No log records found corresponding to the provided log type"]}
    sandbox.add_fault(Fault(404, gong_404, follow_up_pages_only=True))

    result = workspace.run("--start-date", START_DATE, "--log-types", "AccessLog")

    assert result.returncode == 1
    assert "while following a cursor" in result.stderr and "r404" in result.stderr
    assert "access_log" not in workspace.tables()


def test_a_window_short_of_total_records_is_read_again_then_fails(workspace: Workspace, sandbox: GongSandbox) -> None:
    short_page = {
        "requestId": "short",
        "records": {"totalRecords": 250, "currentPageSize": 1, "currentPageNumber": 0},
        "logEntries": [{"eventTime": "2026-01-01T00:00:00Z", "logRecord": {}}],
    }
    sandbox.add_fault(Fault(200, short_page, times=1))

    recovered = workspace.run("--start-date", START_DATE, "--log-types", "UserCallPlay")

    assert recovered.returncode == 0, recovered.output
    assert "reading it again" in recovered.stderr
    sandbox.add_fault(Fault(200, short_page, times=2))

    failed = workspace.run("--start-date", START_DATE, "--log-types", "AccessLog")

    assert failed.returncode == 1
    assert "reported 250 AccessLog entries" in failed.stderr and "held only 1" in failed.stderr
    assert "access_log" not in workspace.tables()


def test_403_is_an_auth_error(workspace: Workspace, sandbox: GongSandbox) -> None:
    sandbox.add_fault(Fault(403, {"requestId": "r403", "errors": ["insufficient scope"]}))

    result = workspace.run("--start-date", START_DATE, "--log-types", "AccessLog")

    assert result.returncode == 1
    assert "403" in result.stderr and "api:logs:read" in result.stderr and "insufficient scope" in result.stderr


def test_a_json_200_without_log_entries_is_an_error(workspace: Workspace, sandbox: GongSandbox) -> None:
    sandbox.add_fault(Fault(200, {"requestId": "r", "records": {"totalRecords": 0}}))

    result = workspace.run("--start-date", START_DATE, "--log-types", "AccessLog")

    assert result.returncode == 1
    assert "no 'logEntries' list" in result.stderr


def test_help_lists_every_flag_and_exit_codes(workspace: Workspace) -> None:
    result = workspace.run("--help")

    assert result.returncode == 0
    for flag in ("--start-date", "--end-date", "--log-types", "--destination", "--dataset-name", "--demo"):
        assert flag in result.stdout
    assert "75" in result.stdout


def test_unknown_destination_and_future_end_date_fail_before_any_request(
    workspace: Workspace, sandbox: GongSandbox
) -> None:
    unknown = workspace.run("--destination", "warehouse9000")
    future = workspace.run("--start-date", START_DATE, "--end-date", "2099-01-01")

    assert unknown.returncode == 1 and "dlt does not know the destination 'warehouse9000'" in unknown.stderr
    assert future.returncode == 1 and "end_date 2099-01-01T00:00:00+00:00 is in the future" in future.stderr
    assert sandbox.stats.requests == []


def test_dataset_name_and_duckdb_path_are_configurable(workspace: Workspace, sandbox: GongSandbox) -> None:
    target = workspace.root / "elsewhere.duckdb"

    result = workspace.run(
        "--start-date",
        START_DATE,
        "--log-types",
        "UserCallPlay",
        "--dataset-name",
        "audit",
        env={"DESTINATION__DUCKDB__CREDENTIALS": str(target)},
    )

    assert result.returncode == 0, result.output
    assert not (workspace.root / "gong_audit.duckdb").exists()
    with duckdb.connect(str(target), read_only=True) as connection:
        loaded = connection.execute("SELECT count(*) FROM audit.user_call_play").fetchone()
    assert loaded == (sum(truth_event_times(sandbox, "UserCallPlay").values()),)


def test_an_ignored_start_date_is_reported(workspace: Workspace) -> None:
    assert workspace.run("--start-date", "2026-01-02T00:00:00Z", "--log-types", "AccessLog").returncode == 0

    again = workspace.run("--start-date", START_DATE, "--log-types", "AccessLog")

    assert again.returncode == 0
    assert "--start-date 2026-01-01T00:00:00Z was ignored for AccessLog" in again.stderr
    assert "--end-date" in again.stderr


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"SOURCES__GONG__CREDENTIALS__ACCESS_TOKEN": "tok-both"}, "keep exactly one of them"),
        ({"SOURCES__GONG__BASE_URL": "http://company-17.api.gong.io"}, "plain http for a non-loopback host"),
        ({"SOURCES__GONG__BASE_URL": "https://company-17.api.gong.io/api/v3"}, "only the host, optionally"),
        ({"SOURCES__GONG__PII": "mask"}, "sources.gong.pii is 'mask'"),
        ({"SOURCES__GONG__MAX_REQUESTS_PER_SECOND": "0"}, "max_requests_per_second must be above 0"),
        ({"LOAD__RAISE_ON_FAILED_JOBS": "false"}, "would let a failed load drop entries"),
    ],
)
def test_bad_configuration_fails_before_any_request(
    workspace: Workspace, sandbox: GongSandbox, env: dict[str, str], message: str
) -> None:
    result = workspace.run("--start-date", START_DATE, env=dict(env))

    assert result.returncode == 1
    assert message in result.stderr
    assert "tok-both" not in result.output
    assert sandbox.stats.requests == []
