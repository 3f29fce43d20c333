"""The connector where users work: the installed command and dlt's dataset access after a run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import dlt

from gong_source.sandbox import GongSandbox
from tests.conftest import START_DATE, Workspace, truth_event_times


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
    segments = dataset.query("SELECT count(*) FROM user_call_play__log_record__played_segments").fetchall()

    assert len(plays) == sum(truth_event_times(sandbox, "UserCallPlay").values())
    assert segments[0][0] > len(plays)
