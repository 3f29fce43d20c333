"""`gong-logs fields` on DuckDB and PostgreSQL: every column with its type, fill rate, example and view."""

from __future__ import annotations

import json
import uuid
from typing import Any

import psycopg2
import pytest

from gong_source.fields import ExampleRedactor
from gong_source.sandbox import GongSandbox
from tests.conftest import EPOCH, START_DATE, TENANT_MAPPING, Workspace


def fields(tenant: Workspace, *args: str, env: dict[str, Any] | None = None) -> tuple[dict[str, Any], str]:
    """Run `fields` as a user would; return its JSON report and its printed text."""
    report_path = tenant.root / f"fields-{uuid.uuid4().hex[:6]}.json"
    run = tenant.run("fields", *args, "--summary-json", str(report_path), env=env)
    assert run.returncode == 0, run.output
    return json.loads(report_path.read_text()), run.stdout


def columns_of(report: dict[str, Any], table: str) -> dict[str, dict[str, Any]]:
    (entry,) = [t for t in report["tables"] if t["table"] == table]
    return {column["column"]: column for column in entry["columns"]}


@pytest.fixture(params=["duckdb", "postgres"])
def destination_args(request: pytest.FixtureRequest, tenant: Workspace) -> list[str]:
    """Where the tenant loads: the default DuckDB file, or a fresh dataset in the test PostgreSQL."""
    if request.param == "duckdb":
        return []
    tenant.env["DESTINATION__POSTGRES__CREDENTIALS"] = request.getfixturevalue("postgres_url")
    return ["--destination", "postgres", "--dataset-name", f"gong_{uuid.uuid4().hex[:8]}"]


def loaded_tables(tenant: Workspace, args: list[str]) -> set[str]:
    """Data tables in the destination, read without dlt."""
    sql = "SELECT table_name FROM information_schema.tables WHERE table_schema = '{}' AND table_type = 'BASE TABLE'"
    if not args:
        names = {name for (name,) in tenant.query(sql.format("gong_logs"))}
    else:
        url = tenant.env["DESTINATION__POSTGRES__CREDENTIALS"]
        with psycopg2.connect(url) as connection, connection.cursor() as cursor:
            cursor.execute(sql.format(args[-1]))
            names = {name for (name,) in cursor.fetchall()}
    return {name for name in names if not name.startswith("_dlt")}


def test_the_report_gives_every_column_its_type_fill_rate_example_and_view(
    tenant: Workspace, renamed_sandbox: GongSandbox, destination_args: list[str]
) -> None:
    tenant.write_config(TENANT_MAPPING)
    assert tenant.run("--start-date", START_DATE, *destination_args).returncode == 0

    report, text = fields(tenant, *destination_args)

    assert {t["table"] for t in report["tables"]} == loaded_tables(tenant, destination_args)
    plays = renamed_sandbox.truth("UserCallPlay", EPOCH)
    (table,) = [t for t in report["tables"] if t["table"] == "user_call_play"]
    assert table["rows"] == len(plays)
    columns = columns_of(report, "user_call_play")
    call_id = columns["log_record__conversation_id"]
    assert (call_id["data_type"], call_id["fill_rate"], call_id["used_by"]) == ("text", 1.0, ["v_call_plays.call_id"])
    assert call_id["example"] in {e["logRecord"]["conversationId"] for e in plays}
    assert columns["log_record__watched_seconds"]["data_type"] == "bigint"
    assert columns["log_record__watched_seconds"]["used_by"] == ["v_call_plays.played_seconds"]
    impersonated = sum(1 for e in plays if "impersonatorEmailAddress" in e)
    assert columns["impersonator_email_address"]["filled"] == impersonated > 0  # a sparse column still has an example
    assert columns["impersonator_email_address"]["example"].endswith("@acme-corp.example")
    assert columns["impersonator_email_address"]["used_by"] == ["v_impersonated_actions.impersonator_email"]
    token = columns_of(report, "access_log")["log_record__session_token"]
    assert token["example"] == "[withheld: the column name suggests a secret]"
    assert "gst_" not in text and "gst_" not in json.dumps(report)
    assert all(view["status"] == "buildable" for view in report["views"])
    assert "log_record__conversation_id" in text and "v_call_plays.call_id" in text


def test_examples_honour_the_pii_mode_even_for_rows_loaded_before_it(tenant: Workspace) -> None:
    assert tenant.run("--start-date", START_DATE, "--log-types", "AccessLog,ExternallySharedCallAccess").returncode == 0

    report, text = fields(tenant, env={"SOURCES__GONG__PII": "hash"})

    access = columns_of(report, "access_log")
    assert access["user_email_address"]["example"] == "[withheld: pii = hash]"
    assert access["log_record__user_agent"]["example"] == "[withheld: pii = hash]"
    assert access["log_record__remote_address"]["example"] == "[ip]"  # no key rule, but the address pattern
    shared = columns_of(report, "externally_shared_call_access")
    assert shared["log_record__shared_by__email_address"]["example"] == "[withheld: pii = hash]"
    assert "@" not in text and "203.0.113." not in text


def test_the_report_reads_the_destination_on_a_machine_without_the_pipeline(
    tenant: Workspace, renamed_sandbox: GongSandbox, postgres_url: str
) -> None:
    dataset = f"gong_{uuid.uuid4().hex[:8]}"
    tenant.env["DESTINATION__POSTGRES__CREDENTIALS"] = postgres_url
    args = ["--destination", "postgres", "--dataset-name", dataset]
    assert tenant.run("--start-date", START_DATE, "--log-types", "UserCallPlay", *args).returncode == 0

    report, _ = fields(tenant, *args, env={"DLT_DATA_DIR": str(tenant.root / "fresh-worker")})

    assert columns_of(report, "user_call_play")["log_record__conversation_id"]["fill_rate"] == 1.0


def test_nothing_loaded_yet_is_a_clear_error(tenant: Workspace) -> None:
    run = tenant.run("fields")

    assert run.returncode == 1
    assert "Nothing loaded by pipeline gong_logs was found (gong_audit.duckdb in" in run.stderr
    assert not (tenant.root / "gong_audit.duckdb").exists()


def test_run_options_are_refused_by_fields(tenant: Workspace) -> None:
    run = tenant.run("fields", "--start-date", START_DATE)

    assert run.returncode == 1
    assert "fields reads what is loaded; --start-date applies only to a run" in run.stderr


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("log_record__request_headers", "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.sig"),
        ("log_record__header", "Cookie: gsess=9f8e7d6c5b4a"),
        ("log_record__url", "https://app.gong.example/share?access_token=ya29.a0AfH6SM"),
        ("log_record__request_body", '{"apiKey": "sk_live_51Hx"}'),
        ("log_record__note", "-----BEGIN PRIVATE KEY-----MIIEv"),
        ("log_record__echo", "configured-secret-value-123"),
        ("log_record__session_token", "opaque"),
    ],
)
def test_a_value_that_looks_like_or_is_a_secret_is_never_an_example(column: str, value: str) -> None:
    redactor = ExampleRedactor("keep", ["configured-secret-value-123"])

    assert redactor.example(column, value).startswith("[withheld")


def test_a_row_that_names_a_secret_gives_no_example() -> None:
    # A changed setting `password`, a header `X-Api-Key`: the row's other values may be the secret itself.
    redactor = ExampleRedactor("keep", [])

    assert redactor.names_a_secret(("password", "hunter2", 3))
    assert redactor.names_a_secret(("X-Api-Key", "abc123"))
    assert not redactor.names_a_secret(("notify", "ada@acme-corp.example", None))


def test_under_drop_person_fields_and_addresses_are_withheld() -> None:
    redactor = ExampleRedactor("drop", [])

    assert redactor.example("log_record__viewer_email_address", "cfo@prospect-two.example") == "[withheld: pii = drop]"
    assert redactor.example("log_record__request_body", '{"from": "10.1.2.3", "to": "a@b.example"}') == (
        '{"from": "[ip]", "to": "[email]"}'
    )
    assert redactor.example("user_email_address", "a" * 64).startswith("a" * 40)  # a token, not a person's data


def test_on_real_shapes_the_report_shows_what_each_view_reads_and_withholds_people_under_hash(
    workspace: Workspace,
) -> None:
    assert workspace.run("--start-date", START_DATE).returncode == 0

    report, _ = fields(workspace)

    assert all(view["status"] == "buildable" for view in report["views"])
    access = columns_of(report, "access_log")
    assert access["log_record__request_headers__x_forwarded_for"]["used_by"] == ["v_access_by_ip.ip"]
    assert access["log_record__status"]["used_by"] == ["v_access_by_ip.status"]
    plays = columns_of(report, "user_call_play")
    # played seconds read end_time - start_time, start_time with its variant column (0 is an int, the rest floats)
    for column in ("log_record__end_time", "log_record__start_time", "log_record__start_time__v_double"):
        assert plays[column]["used_by"] == ["v_call_plays.played_seconds"], column
    changes = columns_of(report, "user_activity_log__log_record__table_changes__row_changes__column_changes")
    assert changes["old_value"]["used_by"] == ["v_user_activity_changes.old_value"]
    shared = columns_of(report, "externally_shared_call_access")
    viewer = shared["user_email_address"]["used_by"]
    assert viewer == ["v_external_call_views.viewer_email", "v_daily_activity.user_email_address"]

    hashed, text = fields(workspace, env={"SOURCES__GONG__PII": "hash"})

    access = columns_of(hashed, "access_log")
    for column in ("log_record__request_headers__x_forwarded_for", "log_record__request_headers__user_agent"):
        assert access[column]["example"] == "[withheld: pii = hash]", column
    assert columns_of(hashed, "externally_shared_call_access")["log_record__page_viewer_ip"]["example"] == (
        "[withheld: pii = hash]"
    )
    assert columns_of(hashed, "user_activity_log")["log_record__http_request__client_ip"]["example"] == (
        "[withheld: pii = hash]"
    )
    assert "@acme-corp" not in text and "%40" not in text and "203.0.113." not in text and "2001:db8" not in text
