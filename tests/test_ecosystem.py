"""The connector where users work: the installed command and dlt's dataset access after a run."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from typing import Any

import dlt
import duckdb
import pytest
import yaml

from gong_source import GongCredentials
from gong_source.sandbox import GongSandbox
from gong_source.settings import LOG_TYPES
from tests.conftest import START_DATE, Workspace, truth_event_times


def sandbox_options(sandbox: GongSandbox) -> dict[str, Any]:
    """The source's options as a library user gives them, pointed at the sandbox."""
    return {
        "base_url": sandbox.url,
        "credentials": GongCredentials(access_key=sandbox.access_key, access_key_secret=sandbox.access_key_secret),
        "start_date": START_DATE,
        "now": sandbox.clock.now().isoformat(),
        "settle_lag_seconds": 0,
        "max_requests_per_second": 1000,
    }


def assert_counts_equal_truth(database: Path, sandbox: GongSandbox) -> None:
    with duckdb.connect(str(database), read_only=True) as connection:
        for log_type in LOG_TYPES:
            rows = connection.execute(f"SELECT count(*) FROM gong_logs.{log_type.table_name}").fetchone()
            assert rows == (sum(truth_event_times(sandbox, log_type.name).values()),), log_type.name


def test_the_installed_gong_logs_command_is_the_pipeline() -> None:
    command = Path(sys.executable).with_name("gong-logs")

    result = subprocess.run([str(command), "--help"], capture_output=True, text=True, timeout=60)

    assert result.returncode == 0, result.stderr
    assert "usage: gong-logs" in result.stdout and "--summary-json" in result.stdout


def test_pipeline_dataset_reads_the_loaded_tables(workspace: Workspace, sandbox: GongSandbox) -> None:
    assert workspace.run("--start-date", START_DATE, "--log-types", "UserCallPlay").returncode == 0
    pipeline = dlt.attach(
        "gong_logs",
        pipelines_dir=str(workspace.root / "dlt" / "pipelines"),
        destination=dlt.destinations.duckdb(str(workspace.root / "gong_audit.duckdb")),
    )

    dataset = pipeline.dataset()
    plays = dataset["user_call_play"].select("_entry_key", "event_time").fetchall()
    sessions = dataset.query("SELECT count(DISTINCT log_record__video_player_instance_id) FROM user_call_play")

    assert len(plays) == sum(truth_event_times(sandbox, "UserCallPlay").values())
    assert 0 < sessions.fetchall()[0][0] < len(plays)  # several segments per player session


def test_the_github_actions_recipe_is_valid_and_safe() -> None:
    recipe = Path(__file__).resolve().parent.parent / "deploy" / "github-actions" / "gong-logs.yml"
    workflow = yaml.safe_load(recipe.read_text())

    triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as true
    assert triggers["schedule"][0]["cron"]
    assert workflow["concurrency"]["cancel-in-progress"] is False
    (job,) = workflow["jobs"].values()
    secrets = {key: value for key, value in job["env"].items() if "CREDENTIALS" in key}
    assert len(secrets) == 3 and all(value.startswith("${{ secrets.") for value in secrets.values())
    run_step = next(step for step in job["steps"] if "gong-logs" in step.get("run", ""))
    assert "--destination postgres" in run_step["run"] and '"$code" -eq 75' in run_step["run"]


def run_dlt_command(workspace: Workspace, *args: str) -> subprocess.CompletedProcess[str]:
    """dlt's command line, from the folder the job runs in, as a user types it."""
    dlt_command = Path(sys.executable).with_name("dlt")
    return subprocess.run(
        [str(dlt_command), *args], cwd=workspace.root, env=workspace.env, capture_output=True, text=True, timeout=120
    )


def test_dlt_pipeline_info_works_after_a_run(workspace: Workspace) -> None:
    assert workspace.run("--start-date", START_DATE, "--log-types", "AccessLog").returncode == 0

    info = run_dlt_command(workspace, "pipeline", "gong_logs", "info")

    assert info.returncode == 0, info.stderr
    assert "pipeline_name: gong_logs" in info.stdout and "dataset_name: gong_logs" in info.stdout


def test_dlt_pipeline_show_says_it_needs_dlt_hub(workspace: Workspace) -> None:
    # docs/querying.md: `dlt pipeline gong_logs show` needs dlt[hub] (dlthub, under the proprietary dltHub EULA, so
    # not installed here), marimo and ibis-framework. This keeps that statement true for the pinned dlt.
    if importlib.util.find_spec("dlthub") is not None:
        pytest.skip("dlt[hub] is installed here: `show` would start the dashboard instead")

    show = run_dlt_command(workspace, "pipeline", "gong_logs", "show")

    assert show.returncode == 0, show.stderr
    assert "Install dlt[hub] for workspace dashboard" in show.stdout + show.stderr


def test_the_dagster_recipe_runs_the_connector_once_and_loads_every_table(tmp_path: Path, sandbox: GongSandbox) -> None:
    from dagster import materialize

    recipe_path = Path(__file__).resolve().parent.parent / "deploy" / "dagster" / "gong_logs_assets.py"
    spec = importlib.util.spec_from_file_location("gong_logs_assets", recipe_path)
    assert spec is not None and spec.loader is not None
    recipe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(recipe)
    pipeline = dlt.pipeline(
        pipeline_name="gong_logs_dagster",
        pipelines_dir=str(tmp_path / "pipelines"),
        destination=dlt.destinations.duckdb(str(tmp_path / "dagster.duckdb")),
        dataset_name="gong_logs",
    )

    result = materialize([recipe.gong_log_assets(pipeline, **sandbox_options(sandbox))])

    assert result.success
    (materialization,) = result.asset_materializations_for_node("gong_logs")
    metadata = {key: value.value for key, value in materialization.metadata.items()}
    assert metadata["status"] == "complete" and metadata["requests"] > 0
    assert "v_call_plays" in metadata["views"]  # run_once made the audit views too
    assert_counts_equal_truth(tmp_path / "dagster.duckdb", sandbox)
