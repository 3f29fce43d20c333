"""The same end-to-end check on every destination we support: full load, then an incremental run."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Protocol

import duckdb
import psycopg2
import pytest
from deltalake import DeltaTable

from gong_source.coverage import floor_hour
from gong_source.sandbox import GongSandbox
from gong_source.settings import LOG_TYPES
from tests.conftest import EPOCH, START_DATE, Workspace, truth_event_times
from tests.expected_views import expected_views, normalized, select_view


class Target(Protocol):
    """What differs between destinations: how to point the job at one, and how to read it back."""

    args: list[str]
    env: dict[str, str]
    has_views: bool

    def query(self, workspace: Workspace, sql: str) -> list[tuple[Any, ...]]: ...


class DuckDbTarget:
    args: list[str] = []
    env: dict[str, str] = {}
    has_views = True

    def query(self, workspace: Workspace, sql: str) -> list[tuple[Any, ...]]:
        return workspace.query(sql.format(dataset="gong_logs"))


class PostgresTarget:
    def __init__(self, url: str) -> None:
        self.url = url
        self.dataset = f"gong_{uuid.uuid4().hex[:8]}"
        self.args = ["--destination", "postgres", "--dataset-name", self.dataset]
        self.env = {"DESTINATION__POSTGRES__CREDENTIALS": url}
        self.has_views = True

    def query(self, workspace: Workspace, sql: str) -> list[tuple[Any, ...]]:
        with psycopg2.connect(self.url) as connection, connection.cursor() as cursor:
            cursor.execute(sql.format(dataset=self.dataset))
            return list(cursor.fetchall())


class FilesystemTarget:
    """Parquet files in Delta tables under a local folder, read back with DuckDB."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.args = ["--destination", "filesystem"]
        self.env = {"DESTINATION__FILESYSTEM__BUCKET_URL": str(folder)}
        self.has_views = False

    def query(self, workspace: Workspace, sql: str) -> list[tuple[Any, ...]]:
        connection = duckdb.connect()
        connection.execute("CREATE SCHEMA gong_logs")
        for table_dir in (self.folder / "gong_logs").iterdir():
            if (table_dir / "_delta_log").is_dir():
                arrow_table = DeltaTable(str(table_dir)).to_pyarrow_table()  # noqa: F841 - read by DuckDB below
                connection.execute(f'CREATE TABLE gong_logs."{table_dir.name}" AS SELECT * FROM arrow_table')
        return connection.execute(sql.format(dataset="gong_logs")).fetchall()


@pytest.fixture(params=["duckdb", "postgres", "filesystem"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Target:
    if request.param == "postgres":
        return PostgresTarget(request.getfixturevalue("postgres_url"))
    if request.param == "filesystem":
        return FilesystemTarget(tmp_path / "lake")
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
    if target.has_views:  # every view equals the rows computed from the served JSON
        for view, rows in expected_views(sandbox).items():
            assert normalized(target.query(workspace, select_view(view))) == rows, view
    assert_coverage_equals_truth(target, workspace, sandbox)


def assert_coverage_equals_truth(target: Target, workspace: Workspace, sandbox: GongSandbox) -> None:
    """Every final hour is in the coverage record with the sandbox's count; v_coverage sums it per day."""
    hours = target.query(
        workspace, "SELECT log_type, range_start, range_end, gong_count, rows_loaded, day FROM {dataset}.log_coverage"
    )
    final_hours = (floor_hour(sandbox.clock.now() - timedelta(hours=1)) - EPOCH) // timedelta(hours=1)
    assert len(hours) == len(LOG_TYPES) * final_hours  # from 2026-01-01T00:00 to the last final hour
    per_day: Counter[tuple[str, str]] = Counter()
    for log_type, start, end, gong_count, rows_loaded, day in hours:
        truth = sum(truth_event_times(sandbox, log_type, start, end.isoformat()).values())
        assert gong_count == rows_loaded == truth, (log_type, start)
        per_day[(log_type, str(day))] += truth
    if target.has_views:
        summed = target.query(workspace, "SELECT log_type, day, gong_count, rows_loaded FROM {dataset}.v_coverage")
        assert {(log_type, str(day)): (g, r) for log_type, day, g, r in summed} == {
            key: (count, count) for key, count in per_day.items()
        }


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
