"""Shared fixtures: a Gong sandbox on loopback and a runner for the real pipeline script."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator, Optional

import duckdb
import pytest

from gong_source.entries import parse_event_time
from gong_source.sandbox import GongSandbox, SandboxClock, SyntheticLogs
from tests.postgres_server import PostgresServer, PostgresUnavailable

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PIPELINE_SCRIPT = PROJECT_ROOT / "pipelines" / "gong_logs_pipeline.py"

EPOCH = datetime(2026, 1, 1, tzinfo=timezone.utc)
START_DATE = "2026-01-01T00:00:00Z"
FIRST_CLOCK = datetime(2026, 1, 2, 6, 0, tzinfo=timezone.utc)
NEW_FIELDS_FROM = datetime(2026, 1, 2, 7, 0, tzinfo=timezone.utc)
"""After FIRST_CLOCK: entries carrying the late fields only appear once the clock moves on."""


@dataclass
class PipelineRun:
    """A finished run of the pipeline script."""

    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


class Workspace:
    """A temporary working directory with its own dlt state and DuckDB file, pointed at a sandbox."""

    def __init__(self, root: Path, sandbox: GongSandbox) -> None:
        self.root = root
        self.sandbox = sandbox
        self.env = {
            **{key: value for key, value in os.environ.items() if not key.startswith(("SOURCES__", "DESTINATION__"))},
            "DLT_DATA_DIR": str(root / "dlt"),
            "RUNTIME__DLTHUB_TELEMETRY": "false",
            "RUNTIME__REQUEST_BACKOFF_FACTOR": "0",
            "SOURCES__GONG__BASE_URL": sandbox.url,
            "SOURCES__GONG__CREDENTIALS__ACCESS_KEY": sandbox.access_key,
            "SOURCES__GONG__CREDENTIALS__ACCESS_KEY_SECRET": sandbox.access_key_secret,
            # Tests run fast and see everything up to the sandbox clock; the limit tests set their own values.
            "SOURCES__GONG__MAX_REQUESTS_PER_SECOND": "1000",
            "SOURCES__GONG__SETTLE_LAG_SECONDS": "0",
            # One window per type per load, so that the tests see multi-load runs with little data.
            "SOURCES__GONG__LOAD_INTERVAL_SECONDS": "0",
        }

    def run(self, *args: str, env: Optional[dict[str, Optional[str]]] = None) -> PipelineRun:
        """Run `pipelines/gong_logs_pipeline.py` as a user would; `None` in `env` unsets a variable."""
        # The pipeline's "now" is the sandbox's clock, as Gong's is the real one.
        run_env = {**self.env, "SOURCES__GONG__NOW": self.sandbox.clock.now().isoformat()}
        for key, value in (env or {}).items():
            if value is None:
                run_env.pop(key, None)
            else:
                run_env[key] = value
        done = subprocess.run(
            [sys.executable, str(PIPELINE_SCRIPT), *args],
            cwd=self.root,
            env=run_env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        return PipelineRun(done.returncode, done.stdout, done.stderr)

    def write_config(self, text: str) -> Path:
        """Write the workspace's `.dlt/config.toml`, as a user edits it."""
        config = self.root / ".dlt" / "config.toml"
        config.parent.mkdir(exist_ok=True)
        config.write_text(text)
        return config

    def query(self, sql: str, database: str = "gong_audit.duckdb") -> list[tuple[Any, ...]]:
        """Run SQL on the workspace's DuckDB file (schema `gong_logs`)."""
        with duckdb.connect(str(self.root / database), read_only=True) as connection:
            return connection.execute(sql).fetchall()

    def tables(self, database: str = "gong_audit.duckdb") -> set[str]:
        """Tables in the `gong_logs` dataset."""
        rows = self.query("SELECT table_name FROM information_schema.tables WHERE table_schema = 'gong_logs'", database)
        return {name for (name,) in rows}

    def event_times(self, table: str) -> Counter[datetime]:
        """The multiset of loaded event times of one table, in UTC."""
        rows = self.query(f"SELECT event_time FROM gong_logs.{table}")
        return Counter(moment.astimezone(timezone.utc) for (moment,) in rows)


def truth_event_times(
    sandbox: GongSandbox, log_type: str, start: datetime = EPOCH, end: Optional[str] = None
) -> Counter[datetime]:
    """The multiset of event times the sandbox serves for a type in `[start, end)`, in UTC."""
    entries = sandbox.truth(log_type, start, *([datetime.fromisoformat(end)] if end else []))
    return Counter(parse_event_time(entry["eventTime"]) for entry in entries)


@pytest.fixture
def sandbox() -> Iterator[GongSandbox]:
    """A Gong sandbox with about 2,600 entries over 30 hours, its clock stopped at FIRST_CLOCK."""
    logs = SyntheticLogs(epoch=EPOCH, new_fields_from=NEW_FIELDS_FROM)
    with GongSandbox(logs=logs, clock=SandboxClock(FIRST_CLOCK)) as server:
        yield server


TENANT_MAPPING = """\
# The renamed tenant: what `gong-logs fields` shows, mapped to the views' columns.
[sources.gong.view_columns.user_call_play]
call_id = "log_record__conversation_id"
played_seconds = "log_record__watched_seconds"

[sources.gong.view_columns.access_log]
ip = "log_record__remote_address"
action = "log_record__event_name"

[sources.gong.view_columns.externally_shared_call_access]
viewer_email = "user_email_address"

[sources.gong.view_columns.externally_shared_call_play]
viewer_email = "user_email_address"
"""


@pytest.fixture
def renamed_sandbox() -> Iterator[GongSandbox]:
    """A tenant whose `logRecord` names no view expects (`SyntheticLogs(shape="renamed")`)."""
    logs = SyntheticLogs(epoch=EPOCH, shape="renamed")
    with GongSandbox(logs=logs, clock=SandboxClock(FIRST_CLOCK)) as server:
        yield server


@pytest.fixture
def invented_sandbox() -> Iterator[GongSandbox]:
    """A tenant with the sandbox's earlier, invented shapes (`SyntheticLogs(shape="invented")`): the views
    read it through their fallback spellings."""
    logs = SyntheticLogs(epoch=EPOCH, new_fields_from=NEW_FIELDS_FROM, shape="invented")
    with GongSandbox(logs=logs, clock=SandboxClock(FIRST_CLOCK)) as server:
        yield server


@pytest.fixture
def tenant(tmp_path: Path, renamed_sandbox: GongSandbox) -> Workspace:
    """A clean working directory whose pipeline reads from the renamed tenant."""
    return Workspace(tmp_path, renamed_sandbox)


@pytest.fixture
def workspace(tmp_path: Path, sandbox: GongSandbox) -> Workspace:
    """A clean working directory whose pipeline reads from `sandbox`."""
    return Workspace(tmp_path, sandbox)


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
