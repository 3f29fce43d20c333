"""Audit views on the sandbox tenant and on a tenant whose `logRecord` names differ: candidates, the mapping,
and skips that explain themselves."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg2
import pytest
from dlt.common.schema import Schema

from gong_source.sandbox import GongSandbox
from gong_source.settings import LOG_TYPES
from gong_source.views import plan_audit_views, read_view_columns, view_warnings
from tests.conftest import EPOCH, START_DATE, TENANT_MAPPING, Workspace
from tests.expected_views import as_text, expected_views, first_hop, normalized, select_view


def truth(sandbox: GongSandbox, log_type: str) -> list[dict[str, Any]]:
    return sandbox.truth(log_type, EPOCH)


def views_by_name(summary_path: Path) -> dict[str, dict[str, Any]]:
    """The audit views' outcomes (v_coverage, on the job's own coverage record, is tested in test_counting.py)."""
    views = json.loads(summary_path.read_text())["views"]
    return {view["view"]: view for view in views if view["view"] != "v_coverage"}


def test_on_real_shapes_every_view_equals_the_rows_computed_from_the_served_json(
    workspace: Workspace, sandbox: GongSandbox
) -> None:
    summary = workspace.root / "summary.json"
    first = workspace.run("--start-date", START_DATE)
    assert first.returncode == 0, first.output
    sandbox.clock.advance(timedelta(hours=3))  # entries with new fields (new columns) arrive

    second = workspace.run("--summary-json", str(summary))

    assert second.returncode == 0, second.output
    created = second.stdout.split("Audit views: ")[1].splitlines()[0].split(", ")
    assert sorted(created) == sorted([*expected_views(sandbox), "v_coverage"])
    views = views_by_name(summary)
    assert all(view["status"] == "created" for view in views.values()), views
    # Every view reads what real tenants send, with no mapping: nothing is missing, nothing NULL for lack of a
    # column (AccessLog's `action`, kept for other tenants, is NULL without a note: real entries have none).
    assert [view["null_columns"] for view in views.values()] == [[]] * len(views)
    assert views["v_access_by_ip"]["columns"]["access_log"]["ip"] == "log_record__request_headers__x_forwarded_for"
    assert views["v_call_plays"]["columns"]["user_call_play"]["played_seconds"] == (
        "log_record__end_time - log_record__start_time"
    )
    expected = expected_views(sandbox)
    for view, rows in expected.items():
        assert normalized(workspace.query(select_view(view).format(dataset="gong_logs"))) == rows, view
    # The data makes each view prove something: sessions of several segments, proxies behind clients,
    # IPv6 clients, failed requests, composite keys, changes of every value type, impersonation.
    assert any(row[6] > 1 for row in expected["v_call_plays"])
    served = [e["logRecord"] for e in sandbox.truth("AccessLog", EPOCH)]
    assert any("," in r["request_headers"]["x-forwarded-for"] for r in served)
    assert any(":" in first_hop(r["request_headers"]["x-forwarded-for"]) for r in served)  # type: ignore[operator]
    assert {row[4] for row in expected["v_access_by_ip"]} >= {200, 401, 403}
    assert any(row[8] and ", " in row[8] for row in expected["v_user_activity_changes"])
    assert any(row[3] for row in expected["v_user_activity_changes"])
    assert {row[11] for row in expected["v_user_activity_changes"]} >= {None, "true", "false"}


def test_the_sandboxs_earlier_invented_shapes_are_still_read_by_the_fallbacks(
    tmp_path: Path, invented_sandbox: GongSandbox
) -> None:
    workspace = Workspace(tmp_path, invented_sandbox)
    summary = tmp_path / "summary.json"

    run = workspace.run("--start-date", START_DATE, "--summary-json", str(summary))

    assert run.returncode == 0, run.output
    views = views_by_name(summary)
    assert all(view["status"] == "created" for view in views.values()), views
    assert views["v_access_by_ip"]["columns"]["access_log"]["ip"] == "log_record__ip_address"
    entries = {t.name: invented_sandbox.truth(t.name, EPOCH) for t in LOG_TYPES}

    def one(sql: str) -> object:
        return workspace.query(sql)[0][0]

    plays = entries["UserCallPlay"]
    assert one("SELECT count(*) FROM gong_logs.v_call_plays") == len(plays)  # no session: a play per entry
    assert one("SELECT sum(played_seconds) FROM gong_logs.v_call_plays") == sum(
        e["logRecord"]["playDurationSeconds"] for e in plays
    )
    shared = entries["ExternallySharedCallAccess"] + entries["ExternallySharedCallPlay"]
    assert Counter(workspace.query("SELECT viewer_email, viewer_ip FROM gong_logs.v_external_call_views")) == Counter(
        (e["logRecord"]["viewerEmailAddress"], e["logRecord"]["ipAddress"]) for e in shared
    )
    failed = sum(1 for e in entries["AccessLog"] if e["logRecord"]["action"] == "LOGIN_FAILED")
    assert one("SELECT sum(events) FROM gong_logs.v_access_by_ip WHERE action = 'LOGIN_FAILED'") == failed > 0
    changes = [
        c
        for e in entries["UserActivityLog"]
        for t in e["logRecord"]["tableChanges"]
        for r in t["rowChanges"]
        for c in r["columnChanges"]
    ]
    assert Counter(
        workspace.query("SELECT column_name, old_value FROM gong_logs.v_user_activity_changes")
    ) == Counter((c["columnName"], as_text(c["oldValue"])) for c in changes)
    with_user = sum(1 for rows in entries.values() for e in rows if "userEmailAddress" in e)
    assert one("SELECT sum(events) FROM gong_logs.v_daily_activity") == with_user


def test_without_a_mapping_the_views_that_cannot_be_answered_are_skipped_with_their_reason(
    tenant: Workspace, renamed_sandbox: GongSandbox
) -> None:
    summary = tenant.root / "summary.json"

    run = tenant.run("--start-date", START_DATE, "--summary-json", str(summary))

    assert run.returncode == 0, run.output
    views = views_by_name(summary)
    assert {name for name, view in views.items() if view["status"] == "created"} == {
        "v_external_call_views",
        "v_impersonated_actions",
        "v_daily_activity",
        "v_user_activity_changes",
    }
    (call_id,) = views["v_call_plays"]["missing_required"]
    assert call_id["setting"] == "sources.gong.view_columns.user_call_play.call_id"
    assert "log_record__call_id" in call_id["problem"]
    (ip,) = views["v_access_by_ip"]["missing_required"]
    assert ip["setting"] == "sources.gong.view_columns.access_log.ip"
    # Candidates found what they could, table by table: the nested call id and the client IP.
    external = views["v_external_call_views"]
    assert external["columns"]["externally_shared_call_play"]["call_id"] == "log_record__call__id"
    assert external["columns"]["externally_shared_call_access"]["viewer_ip"] == "log_record__client_ip"
    # The external viewer in the top-level user fields, as real tenants write it, is found without a mapping.
    assert external["columns"]["externally_shared_call_access"]["viewer_email"] == "user_email_address"
    assert "viewer_email" not in {m["concept"] for m in external["null_columns"]}
    assert "v_call_plays: SKIPPED - user_call_play has no call_id column" in run.stdout
    assert "map it with sources.gong.view_columns.access_log.ip" in run.stdout
    assert "v_call_plays" not in tenant.tables()
    opened = truth(renamed_sandbox, "ExternallySharedCallAccess")
    assert Counter(
        tenant.query("SELECT viewer_email FROM gong_logs.v_external_call_views WHERE action = 'opened'")
    ) == Counter((e["userEmailAddress"],) for e in opened)


def test_with_the_mapping_every_view_is_created_and_equals_the_expected_rows(
    tenant: Workspace, renamed_sandbox: GongSandbox
) -> None:
    config = tenant.write_config(TENANT_MAPPING)
    summary = tenant.root / "summary.json"

    run = tenant.run("--start-date", START_DATE, "--summary-json", str(summary))

    assert run.returncode == 0, run.output
    assert all(view["status"] == "created" for view in views_by_name(summary).values())
    plays = truth(renamed_sandbox, "UserCallPlay")
    assert Counter(
        tenant.query("SELECT call_id, played_seconds, user_email_address FROM gong_logs.v_call_plays")
    ) == Counter(
        (e["logRecord"]["conversationId"], e["logRecord"]["watchedSeconds"], e["userEmailAddress"]) for e in plays
    )
    shared = [
        (action, e["logRecord"]["call"]["id"], e["userEmailAddress"], e["logRecord"]["clientIp"])
        for log_type, action in (("ExternallySharedCallAccess", "opened"), ("ExternallySharedCallPlay", "played"))
        for e in truth(renamed_sandbox, log_type)
    ]
    assert Counter(
        tenant.query("SELECT action, call_id, viewer_email, viewer_ip FROM gong_logs.v_external_call_views")
    ) == Counter(shared)
    access = Counter(
        (e["logRecord"]["remoteAddress"], e["logRecord"]["eventName"]) for e in truth(renamed_sandbox, "AccessLog")
    )
    assert dict(
        ((ip, action), events)
        for ip, action, events in tenant.query("SELECT ip, action, events FROM gong_logs.v_access_by_ip")
    ) == dict(access)
    everything = [e for t in LOG_TYPES for e in truth(renamed_sandbox, t.name)]
    impersonated = sum(1 for e in everything if "impersonatorEmailAddress" in e)
    assert tenant.query("SELECT count(*) FROM gong_logs.v_impersonated_actions") == [(impersonated,)]
    assert impersonated > 0
    with_user = sum(1 for e in everything if "userEmailAddress" in e)
    assert tenant.query("SELECT sum(events) FROM gong_logs.v_daily_activity") == [(with_user,)]

    # Without the mapping, a view that can no longer be answered is dropped, not left on an old column.
    config.unlink()
    again = tenant.run()
    assert again.returncode == 0, again.output
    assert "v_call_plays: SKIPPED" in again.stdout
    assert "v_call_plays" not in tenant.tables()


def test_a_mapped_column_the_tenant_lacks_is_refused_before_any_request(
    tenant: Workspace, renamed_sandbox: GongSandbox
) -> None:
    assert tenant.run("--start-date", START_DATE, "--log-types", "UserCallPlay").returncode == 0
    requests_before = len(renamed_sandbox.stats.requests)
    typo = {"user_call_play": {"call_id": "log_record__conversation_idd"}}

    run = tenant.run(env={"SOURCES__GONG__VIEW_COLUMNS": json.dumps(typo)})

    assert run.returncode == 1
    assert "sources.gong.view_columns.user_call_play.call_id = 'log_record__conversation_idd'" in run.stderr
    assert "Did you mean log_record__conversation_id?" in run.stderr
    assert len(renamed_sandbox.stats.requests) == requests_before
    # The same on a machine without the pipeline's local state: the schema comes from the destination.
    fresh = tenant.run(env={"SOURCES__GONG__VIEW_COLUMNS": json.dumps(typo), "DLT_DATA_DIR": str(tenant.root / "new")})
    assert fresh.returncode == 1, fresh.output
    assert "Did you mean log_record__conversation_id?" in fresh.stderr
    assert len(renamed_sandbox.stats.requests) == requests_before


def test_a_mapped_column_of_a_table_loaded_for_the_first_time_is_checked_after_the_load(tenant: Workspace) -> None:
    typo = {"user_call_play": {"call_id": "log_record__conversation_idd"}}
    summary = tenant.root / "summary.json"

    run = tenant.run(
        "--start-date",
        START_DATE,
        "--summary-json",
        str(summary),
        env={"SOURCES__GONG__VIEW_COLUMNS": json.dumps(typo)},
    )

    assert run.returncode == 0, run.output  # the entries are loaded; the next run refuses before any request
    warnings = json.loads(summary.read_text())["warnings"]
    assert any("the mapping of user_call_play.call_id to 'log_record__conversation_idd'" in w for w in warnings)
    assert "WARNING: view v_call_plays: the mapping of user_call_play.call_id" in run.stderr
    assert tenant.run(env={"SOURCES__GONG__VIEW_COLUMNS": json.dumps(typo)}).returncode == 1


@pytest.mark.parametrize(
    ("mapping", "message"),
    [
        ({"call_plays": {"call_id": "x"}}, "no view reads a table 'call_plays'"),
        (
            {"user_call_play": {"callid": "x"}},
            "It can map: event_time, call_id, user_id, user_email, played_seconds, player_session_id, play_speed,",
        ),
        ({"access_log": {"ip": ""}}, "must be a column name of access_log"),
        ("{not json", "is not valid JSON"),
    ],
)
def test_a_malformed_mapping_is_refused_before_any_request_even_on_a_first_run(
    tenant: Workspace, renamed_sandbox: GongSandbox, mapping: Any, message: str
) -> None:
    value = mapping if isinstance(mapping, str) else json.dumps(mapping)

    run = tenant.run("--start-date", START_DATE, env={"SOURCES__GONG__VIEW_COLUMNS": value})

    assert run.returncode == 1
    assert message in run.stderr
    assert renamed_sandbox.stats.requests == []


def _schema_with(table: str, columns: dict[str, str]) -> Schema:
    schema = Schema("gong")
    schema.update_table(
        {"name": table, "columns": {name: {"name": name, "data_type": kind} for name, kind in columns.items()}}  # type: ignore[typeddict-item]
    )
    return schema


def test_two_candidates_in_one_table_are_ambiguous_and_never_guessed() -> None:
    schema = _schema_with(
        "access_log",
        {"event_time": "timestamp", "log_record__ip_address": "text", "log_record__client_ip": "text"},
    )

    (access,) = [o for o in plan_audit_views(schema) if o.name == "v_access_by_ip"]

    assert not access.buildable
    assert (
        "ip is ambiguous in access_log: log_record__ip_address and log_record__client_ip both exist" in access.reason()
    )
    mapped = [
        o
        for o in plan_audit_views(schema, {"access_log": {"ip": "log_record__client_ip"}})
        if o.name == "v_access_by_ip"
    ]
    assert mapped[0].parts[0].sources["ip"] == "log_record__client_ip"


def test_a_candidate_of_the_wrong_type_is_not_used() -> None:
    schema = _schema_with(
        "user_call_play",
        {
            "event_time": "timestamp",
            "_entry_key": "text",
            "log_record__call_id": "text",
            "log_record__play_duration_seconds": "text",
        },
    )

    (plays,) = [o for o in plan_audit_views(schema) if o.name == "v_call_plays"]

    assert plays.buildable and plays.parts[0].sources["played_seconds"] is None
    assert "log_record__play_duration_seconds holds text" in plays.reason()


def test_mapped_names_are_trimmed_and_an_empty_mapping_maps_nothing() -> None:
    assert read_view_columns({"access_log": {"ip": " log_record__remote_address "}}) == {
        "access_log": {"ip": "log_record__remote_address"}
    }
    assert read_view_columns({}) == {}


def test_a_view_from_an_older_version_is_replaced_on_postgresql(
    tenant: Workspace, renamed_sandbox: GongSandbox, postgres_url: str
) -> None:
    # PostgreSQL refuses CREATE OR REPLACE VIEW when the columns change (an upgrade, a new mapping).
    dataset = f"gong_{uuid.uuid4().hex[:8]}"
    tenant.env["DESTINATION__POSTGRES__CREDENTIALS"] = postgres_url
    tenant.write_config(TENANT_MAPPING)
    args = ["--destination", "postgres", "--dataset-name", dataset, "--log-types", "AccessLog"]
    assert tenant.run("--start-date", START_DATE, *args).returncode == 0
    with psycopg2.connect(postgres_url) as connection, connection.cursor() as cursor:
        cursor.execute(f"DROP VIEW {dataset}.v_access_by_ip")  # what an older version of the job created:
        cursor.execute(
            f"CREATE VIEW {dataset}.v_access_by_ip AS SELECT log_record__remote_address AS ip, "
            f"count(*) AS events, 0 AS failed_logins FROM {dataset}.access_log GROUP BY 1"
        )
    renamed_sandbox.clock.advance(timedelta(hours=1))

    run = tenant.run(*args)

    assert run.returncode == 0, run.output
    assert "v_access_by_ip" in run.stdout.split("Audit views:")[1].splitlines()[0]
    with psycopg2.connect(postgres_url) as connection, connection.cursor() as cursor:
        cursor.execute(f"SELECT sum(events), count(DISTINCT action) FROM {dataset}.v_access_by_ip")
        events, actions = cursor.fetchone()
    assert events == len(truth(renamed_sandbox, "AccessLog")) and actions > 1


def test_two_spellings_and_a_changed_value_column_typed_by_an_earlier_version_are_warnings() -> None:
    schema = _schema_with(
        "user_activity_log",
        {
            "event_time": "timestamp",
            "log_record__http_request__client_ip": "text",
            "log_record__ip_address": "text",  # an old spelling next to the real one
        },
    )
    changes = schema.naming.shorten_fragments("user_activity_log", "log_record", "table_changes")
    rows = schema.naming.shorten_fragments(changes, "row_changes")
    values = schema.naming.shorten_fragments(rows, "column_changes")
    for name, parent, columns in (
        (changes, "user_activity_log", {"table_name": "text"}),
        (rows, changes, {}),
        (values, rows, {"old_value": "timestamp", "new_value": "text"}),  # as an earlier version could load it
    ):
        all_columns = {"_dlt_id": "text", "_dlt_parent_id": "text", **columns}
        hints = {c: {"name": c, "data_type": t} for c, t in all_columns.items()}
        schema.update_table({"name": name, "parent": parent, "columns": hints})  # type: ignore[typeddict-item]

    outcomes = plan_audit_views(schema)

    (changes_view,) = [o for o in outcomes if o.name == "v_user_activity_changes"]
    assert changes_view.buildable and changes_view.parts[0].sources["client_ip"] is None
    warnings = view_warnings(outcomes)
    assert any(w.startswith("view v_user_activity_changes: ip is ambiguous in user_activity_log") for w in warnings)
    (typed,) = [w for w in warnings if "made so by an earlier version" in w]
    assert typed.startswith(f"{values}.old_value is timestamp") and "loads it as text" in typed
