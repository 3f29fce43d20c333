"""The same end-to-end check on every destination we support: full load, then an incremental run."""

from __future__ import annotations

import os
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any, Protocol

import psycopg2
import pytest

from gong_source.sandbox import GongSandbox
from gong_source.settings import LOG_TYPES
from tests.conftest import EPOCH, START_DATE, Workspace, truth_event_times
from tests.postgres_server import PostgresServer, PostgresUnavailable


class Target(Protocol):
    """What differs between destinations: how to point the job at one, and how to read it back."""

    args: list[str]
    env: dict[str, str]

    def query(self, workspace: Workspace, sql: str) -> list[tuple[Any, ...]]: ...


class DuckDbTarget:
    args: list[str] = []
    env: dict[str, str] = {}

    def query(self, workspace: Workspace, sql: str) -> list[tuple[Any, ...]]:
        return workspace.query(sql.format(dataset="gong_logs"))


class PostgresTarget:
    def __init__(self, url: str) -> None:
        self.url = url
        self.dataset = f"gong_{uuid.uuid4().hex[:8]}"
        self.args = ["--destination", "postgres", "--dataset-name", self.dataset]
        self.env = {"DESTINATION__POSTGRES__CREDENTIALS": url}

    def query(self, workspace: Workspace, sql: str) -> list[tuple[Any, ...]]:
        with psycopg2.connect(self.url) as connection, connection.cursor() as cursor:
            cursor.execute(sql.format(dataset=self.dataset))
            return list(cursor.fetchall())


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A PostgreSQL server for the session; skipped only where none can be started, never in CI."""
    try:
        server = PostgresServer().start()
    except PostgresUnavailable as problem:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the PostgreSQL tests, but no server could be started: {problem}")
        pytest.skip(f"no PostgreSQL server could be started here: {problem}")
    yield server.url
    server.stop()


@pytest.fixture(params=["duckdb", "postgres"])
def target(request: pytest.FixtureRequest) -> Target:
    if request.param == "postgres":
        return PostgresTarget(request.getfixturevalue("postgres_url"))
    return DuckDbTarget()


def loaded_event_times(target: Target, workspace: Workspace, table: str) -> Counter[datetime]:
    rows = target.query(workspace, f"SELECT event_time FROM {{dataset}}.{table}")
    return Counter(moment.astimezone(timezone.utc) for (moment,) in rows)


def assert_equal_to_truth(target: Target, workspace: Workspace, sandbox: GongSandbox) -> None:
    for log_type in LOG_TYPES:
        truth = truth_event_times(sandbox, log_type.name)
        assert loaded_event_times(target, workspace, log_type.table_name) == truth, log_type.name
    entries = sandbox.truth("UserActivityLog", EPOCH)
    changes = sum(
        len(r["columnChanges"]) for e in entries for t in e["logRecord"]["tableChanges"] for r in t["rowChanges"]
    )
    # PostgreSQL caps identifiers at 63 characters, so dlt shortens the deepest child table's name there.
    tables = target.query(
        workspace, "SELECT DISTINCT table_name FROM information_schema.tables WHERE table_schema = '{dataset}'"
    )
    (deepest,) = [name for (name,) in tables if name.endswith("column_changes")]
    assert target.query(workspace, f"SELECT count(*) FROM {{dataset}}.{deepest}") == [(changes,)]
    plays = len(sandbox.truth("UserCallPlay", EPOCH))
    assert target.query(workspace, "SELECT count(*) FROM {dataset}.v_call_plays") == [(plays,)]


def test_full_load_then_incremental_run_equal_the_truth(
    workspace: Workspace, sandbox: GongSandbox, target: Target
) -> None:
    workspace.env.update(target.env)

    first = workspace.run("--start-date", START_DATE, *target.args)
    assert first.returncode == 0, first.output
    assert_equal_to_truth(target, workspace, sandbox)
    sandbox.clock.advance(timedelta(hours=3))

    second = workspace.run(*target.args)

    assert second.returncode == 0, second.output
    assert_equal_to_truth(target, workspace, sandbox)
