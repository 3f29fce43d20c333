"""The Airflow recipe (deploy/airflow) run under Airflow, as a user runs it: `airflow db migrate`, then
`airflow dags test`, twice, from a tenant with Gong's real shapes into PostgreSQL, each task on a worker with
no local state; then once with a mistyped view mapping, which fails before any request.

Airflow's pins fight ours less than its size argues for its own virtual environment, `.venv-airflow`,
made from `pip install -e .[airflow]` on first use (about 45 s; `.ci/run` makes it before the tests).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg2
import pytest

from gong_source.sandbox import GongSandbox
from tests.conftest import PROJECT_ROOT, START_DATE, Workspace
from tests.test_destinations import PostgresTarget, assert_equal_to_truth

AIRFLOW_VENV = Path(os.environ.get("GONG_LOGS_AIRFLOW_VENV", PROJECT_ROOT / ".venv-airflow"))
DAGS_FOLDER = PROJECT_ROOT / "deploy" / "airflow"
DAG_DATASET = "gong_logs"
"""The dataset the recipe loads into (it names it, as a user's copy would)."""


def ensure_airflow() -> Path:
    """The `airflow` command of the Airflow virtual environment, made if missing."""
    airflow = AIRFLOW_VENV / "bin" / "airflow"
    if airflow.exists():
        return airflow
    commands = [
        [sys.executable, "-m", "venv", str(AIRFLOW_VENV)],
        [str(AIRFLOW_VENV / "bin" / "pip"), "install", "--quiet", "-e", f"{PROJECT_ROOT}[airflow]"],
    ]
    for command in commands:
        done = subprocess.run(command, capture_output=True, text=True, timeout=900)
        if done.returncode != 0:
            message = f"could not install Airflow into {AIRFLOW_VENV}: {done.stderr.strip()[-800:]}"
            if os.environ.get("CI"):
                pytest.fail(f"CI must run the Airflow recipe, but {message}")
            pytest.skip(message)
    return airflow


@pytest.fixture(scope="session")
def airflow() -> Path:
    return ensure_airflow()


@pytest.fixture
def dag_dataset(postgres_url: str) -> Iterator[PostgresTarget]:
    """The recipe's dataset in the test PostgreSQL, empty before the test and dropped after it."""
    target = PostgresTarget(postgres_url)
    target.dataset = DAG_DATASET

    def drop() -> None:
        with psycopg2.connect(postgres_url) as connection, connection.cursor() as cursor:
            cursor.execute(f"DROP SCHEMA IF EXISTS {DAG_DATASET} CASCADE")

    drop()
    yield target
    drop()


def run_airflow(
    airflow: Path, workspace: Workspace, postgres_url: str, *args: str, view_columns: Any = None
) -> subprocess.CompletedProcess[str]:
    """An `airflow` command with the recipe's DAGs folder, configured the dlt way through the environment
    (a view mapping, when given, as JSON)."""
    env = {
        **workspace.env,
        "AIRFLOW_HOME": str(workspace.root / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "DESTINATION__POSTGRES__CREDENTIALS": postgres_url,
        "SOURCES__GONG__START_DATE": START_DATE,
        "SOURCES__GONG__NOW": workspace.sandbox.clock.now().isoformat(),
        **({"SOURCES__GONG__VIEW_COLUMNS": json.dumps(view_columns)} if view_columns else {}),
        "PATH": f"{airflow.parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    command = [str(airflow), *args]
    return subprocess.run(command, env=env, cwd=workspace.root, capture_output=True, text=True, timeout=600)


def test_the_dag_loads_every_table_equal_to_the_truth_across_two_runs_on_fresh_workers(
    airflow: Path, workspace: Workspace, sandbox: GongSandbox, postgres_url: str, dag_dataset: PostgresTarget
) -> None:
    migrated = run_airflow(airflow, workspace, postgres_url, "db", "migrate")
    assert migrated.returncode == 0, migrated.stderr[-3000:]

    first = run_airflow(airflow, workspace, postgres_url, "dags", "test", "gong_logs", "2026-01-02T06:00:00+00:00")

    assert first.returncode == 0, (first.stdout + first.stderr)[-5000:]
    assert dag_run_state(first) == "success"
    assert_equal_to_truth(dag_dataset, workspace, sandbox)
    sandbox.clock.advance(timedelta(hours=3))  # new entries, and entries with new fields

    second = run_airflow(airflow, workspace, postgres_url, "dags", "test", "gong_logs", "2026-01-02T09:00:00+00:00")

    assert second.returncode == 0, (second.stdout + second.stderr)[-5000:]
    assert dag_run_state(second) == "success"
    # Continued from the state kept in PostgreSQL; every view equals the rows computed from the served JSON.
    assert_equal_to_truth(dag_dataset, workspace, sandbox)
    views = dag_dataset.query(
        workspace, "SELECT table_name FROM information_schema.views WHERE table_schema = '{dataset}'"
    )
    assert {name for (name,) in views} == {
        "v_call_plays",
        "v_external_call_views",
        "v_impersonated_actions",
        "v_access_by_ip",
        "v_daily_activity",
        "v_user_activity_changes",
        "v_coverage",
    }

    # A mapping that names a column the tenant lacks: the first task refuses it, before any request to Gong.
    requests_before = len(sandbox.stats.requests)
    typo = {"access_log": {"ip": "log_record__request_headers__x_forwarded_fo"}}
    third = run_airflow(
        airflow, workspace, postgres_url, "dags", "test", "gong_logs", "2026-01-02T10:00:00+00:00", view_columns=typo
    )
    assert dag_run_state(third) == "failed"
    assert "Did you mean log_record__request_headers__x_forwarded_for?" in third.stdout + third.stderr
    assert len(sandbox.stats.requests) == requests_before


def dag_run_state(run: subprocess.CompletedProcess[str]) -> str:
    """The final state of the DAG run that `airflow dags test` logged."""
    found = re.search(r"DagRun Finished: dag_id=gong_logs,.*?state=(\w+)", run.stdout + run.stderr)
    assert found, (run.stdout + run.stderr)[-5000:]
    return found.group(1)
