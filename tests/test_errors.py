"""The errors people meet in real life, as a new user meets them: one actionable line, exit 1, nothing lost.

Each case ends with a run that works, whose tables equal the truth: the failure cost the next run nothing.
"""

from __future__ import annotations

import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import pytest

from gong_source.sandbox import GongSandbox
from tests.conftest import START_DATE, PipelineRun, Workspace, truth_event_times
from tests.test_destinations import PostgresTarget, assert_equal_to_truth
from tests.test_faults import assert_all_tables_equal_truth, start_pipeline


def error_line(run: PipelineRun) -> str:
    """The run's one ERROR line; it failed with exit 1 and printed no traceback nor dlt's exception chain."""
    assert run.returncode == 1, run.output[-3000:]
    errors = [line for line in run.stderr.splitlines() if line.startswith("ERROR: ")]
    assert len(errors) == 1, run.stderr[-3000:]
    assert "Traceback" not in run.output and "PipelineStepFailed" not in run.output, run.output[-3000:]
    return errors[0]


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A loopback port that accepts connections and never answers: a request to it times out."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(16)
        yield int(server.getsockname()[1])


@contextmanager
def duckdb_file_held_open(workspace: Workspace) -> Iterator[subprocess.Popen[str]]:
    """Another process with the workspace's DuckDB file open, as an analyst's DuckDB shell has it, until the end
    of the block (closing its standard input closes the file)."""
    script = "import duckdb, sys; c = duckdb.connect('gong_audit.duckdb'); print('open', flush=True); sys.stdin.read()"
    holder = subprocess.Popen(
        [sys.executable, "-c", script], cwd=workspace.root, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "open"
        yield holder
    finally:
        if holder.poll() is None:
            holder.communicate("", timeout=30)


def test_a_duckdb_file_open_elsewhere_names_the_process_and_the_next_run_is_exact(
    workspace: Workspace, sandbox: GongSandbox
) -> None:
    assert workspace.run("--start-date", START_DATE).returncode == 0
    sandbox.clock.advance(timedelta(hours=3))
    with duckdb_file_held_open(workspace) as holder:
        locked = workspace.run(env={"SOURCES__GONG__DUCKDB_LOCK_WAIT_SECONDS": "0"})

    line = error_line(locked)
    assert "gong_audit.duckdb is open in another process: python" in line, line
    assert f"(PID {holder.pid}): " in line and "import duckdb" in line, line  # the holder's command line
    assert "sources.gong.duckdb_lock_wait_seconds" in line and "Nothing was lost" in line
    assert len(sandbox.stats.requests) > 0
    requests_before = len(sandbox.stats.requests)

    again = workspace.run()

    assert again.returncode == 0, again.output[-3000:]
    assert len(sandbox.stats.requests) > requests_before
    assert_all_tables_equal_truth(workspace, sandbox)


def test_a_run_waits_for_the_duckdb_file_and_goes_on_once_it_is_closed(
    workspace: Workspace, sandbox: GongSandbox
) -> None:
    assert workspace.run("--start-date", START_DATE, "--log-types", "UserCallPlay").returncode == 0
    sandbox.clock.advance(timedelta(hours=3))
    workspace.env["SOURCES__GONG__DUCKDB_LOCK_WAIT_SECONDS"] = "120"
    with duckdb_file_held_open(workspace) as holder:
        waiting = start_pipeline(workspace, "--log-types", "UserCallPlay")
        assert waiting.stderr is not None
        announced = next((line for line in waiting.stderr if "another process" in line), "")  # before it waits
    _, err = waiting.communicate(timeout=120)

    assert "is open in another process" in announced and f"PID {holder.pid}" in announced, announced + err
    assert "waiting up to 120 s" in announced
    assert waiting.returncode == 0, err[-3000:]
    assert workspace.event_times("user_call_play") == truth_event_times(sandbox, "UserCallPlay")


@pytest.mark.parametrize(
    "kind",
    ["dns", "refused", "tls", "timeout", "proxy"],
)
def test_gong_unreachable_says_which_host_and_why_and_the_next_run_is_exact(
    workspace: Workspace, sandbox: GongSandbox, silent_server: int, kind: str
) -> None:
    assert workspace.run("--start-date", START_DATE, "--log-types", "AccessLog").returncode == 0
    sandbox.clock.advance(timedelta(hours=3))
    port = int(sandbox.url.rsplit(":", 1)[1].split("/")[0])
    cases = {
        "dns": ("https://gong-logs-test.invalid", {}, "gong-logs-test.invalid: the host name does not resolve (DNS)"),
        "refused": (f"http://127.0.0.1:{closed_port()}", {}, "the connection was refused"),
        "tls": (f"https://127.0.0.1:{port}", {}, "the TLS handshake failed"),  # the sandbox speaks plain http
        "timeout": (f"http://127.0.0.1:{silent_server}", {"RUNTIME__REQUEST_TIMEOUT": "1"}, "timed out"),
        "proxy": (
            "https://company-17.api.gong.io",
            {"HTTPS_PROXY": f"http://127.0.0.1:{closed_port()}", "NO_PROXY": ""},
            "https://company-17.api.gong.io: the proxy refused or failed the connection",
        ),
    }
    base_url, env, why = cases[kind]
    settings = {"SOURCES__GONG__BASE_URL": base_url, "RUNTIME__REQUEST_MAX_ATTEMPTS": "2", **env}

    unreachable = workspace.run("--log-types", "AccessLog", env=settings)

    line = error_line(unreachable)
    assert line.startswith("ERROR: Gong could not be reached at "), line
    assert why in line and "Check sources.gong.base_url" in line, line
    again = workspace.run("--log-types", "AccessLog")
    assert again.returncode == 0, again.output[-3000:]
    assert workspace.event_times("access_log") == truth_event_times(sandbox, "AccessLog")


def test_a_misspelt_destination_is_said_first_with_the_closest_name(workspace: Workspace, sandbox: GongSandbox) -> None:
    no_credentials = {key: None for key in workspace.env if key.startswith("SOURCES__GONG__CREDENTIALS")}

    misspelt = workspace.run("--destination", "snowflak", env=no_credentials)

    line = error_line(misspelt)
    assert "dlt does not know the destination 'snowflak'. Did you mean snowflake?" in line, line
    assert "credentials" not in line.split("Did you mean")[0]
    assert sandbox.stats.requests == []


def test_a_destination_that_refuses_connections_fails_before_reading_gong_and_the_next_run_is_exact(
    workspace: Workspace, sandbox: GongSandbox, postgres_url: str
) -> None:
    target = PostgresTarget(postgres_url)
    down = re.sub(r":\d+/", f":{closed_port()}/", postgres_url)

    refused = workspace.run("--start-date", START_DATE, *target.args, env={"DESTINATION__POSTGRES__CREDENTIALS": down})

    line = error_line(refused)
    assert "The destination postgres could not be reached: " in line and "Connection refused" in line, line
    assert "destination.postgres.credentials" in line and "local-test" not in line  # never the password
    assert sandbox.stats.requests == []  # nothing read from Gong that could not be loaded
    again = workspace.run("--start-date", START_DATE, *target.args, env=target.env)
    assert again.returncode == 0, again.output[-3000:]
    assert_equal_to_truth(target, workspace, sandbox)
