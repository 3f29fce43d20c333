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
from typing import Optional

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


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A loopback port bound for the whole test but not listening: a connection to it is refused, and no other
    test's server (pytest-xdist runs two at once) can take it meanwhile."""
    with socket.socket() as bound:
        bound.bind(("127.0.0.1", 0))
        yield int(bound.getsockname()[1])


NO_PROXY_SETTINGS: dict[str, Optional[str]] = {
    name: None for base in ("http_proxy", "https_proxy", "all_proxy", "no_proxy") for name in (base, base.upper())
}
"""Whatever proxy the machine running the tests has: requests reads both spellings, the lower case first."""


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
    requests_before = len(sandbox.stats.requests)
    with duckdb_file_held_open(workspace) as holder:
        locked = workspace.run(env={"SOURCES__GONG__DUCKDB_LOCK_WAIT_SECONDS": "2"})

    line = error_line(locked)
    assert "gong_audit.duckdb is open in another process (waited 2 s): python" in line, line
    # The holder's command line, its script hidden: a word with `=` may be a password.
    assert f"(PID {holder.pid}): " in line and " -c [hidden]" in line and "duckdb.connect" not in line, line
    assert "sources.gong.duckdb_lock_wait_seconds" in line and "Nothing was lost" in line
    assert len(sandbox.stats.requests) == requests_before  # it waited, then gave up before reading Gong

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


@pytest.mark.parametrize("kind", ["dns", "refused", "tls", "timeout", "proxy"])
def test_gong_unreachable_says_which_host_and_why_and_the_next_run_is_exact(
    workspace: Workspace, sandbox: GongSandbox, silent_server: int, closed_port: int, kind: str
) -> None:
    assert workspace.run("--start-date", START_DATE, "--log-types", "AccessLog").returncode == 0
    sandbox.clock.advance(timedelta(hours=3))
    port = int(sandbox.url.rsplit(":", 1)[1].split("/")[0])
    unreachable = "ERROR: Gong could not be reached at "
    cases: dict[str, tuple[str, dict[str, Optional[str]], str]] = {
        "dns": ("https://gong-logs-test.invalid", {}, f"{unreachable}https://gong-logs-test.invalid: the host name "
                "does not resolve (DNS). Check sources.gong.base_url"),
        "refused": (f"http://127.0.0.1:{closed_port}", {}, f"{unreachable}http://127.0.0.1:{closed_port}: the "
                    "connection was refused"),
        "tls": (f"https://127.0.0.1:{port}", {}, "the TLS handshake failed"),  # the sandbox speaks plain http
        "timeout": (f"http://127.0.0.1:{silent_server}", {"RUNTIME__REQUEST_TIMEOUT": "1"}, "ERROR: Gong at "
                    f"http://127.0.0.1:{silent_server} accepted the connection but did not answer within "
                    "runtime.request_timeout"),
        "proxy": (
            "https://company-17.api.gong.io",
            {"HTTPS_PROXY": f"http://127.0.0.1:{closed_port}", "https_proxy": f"http://127.0.0.1:{closed_port}"},
            f"{unreachable}https://company-17.api.gong.io: the proxy refused or failed the connection",
        ),
    }  # fmt: skip
    base_url, env, expected = cases[kind]
    settings = {**NO_PROXY_SETTINGS, "SOURCES__GONG__BASE_URL": base_url, "RUNTIME__REQUEST_MAX_ATTEMPTS": "2", **env}

    failed = workspace.run("--log-types", "AccessLog", env=settings)

    line = error_line(failed)
    assert expected in line and "Nothing was lost" in line, line
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
    workspace: Workspace, sandbox: GongSandbox, postgres_url: str, closed_port: int
) -> None:
    target = PostgresTarget(postgres_url)
    down = re.sub(r":\d+/", f":{closed_port}/", postgres_url)

    refused = workspace.run("--start-date", START_DATE, *target.args, env={"DESTINATION__POSTGRES__CREDENTIALS": down})

    line = error_line(refused)
    assert "The destination postgres could not be reached: " in line and "Connection refused" in line, line
    assert "destination.postgres.credentials" in line and "local-test" not in line  # never the password
    assert sandbox.stats.requests == []  # nothing read from Gong that could not be loaded
    again = workspace.run("--start-date", START_DATE, *target.args, env=target.env)
    assert again.returncode == 0, again.output[-3000:]
    assert_equal_to_truth(target, workspace, sandbox)


def test_a_missing_destination_setting_names_the_variable_in_one_line(
    workspace: Workspace, sandbox: GongSandbox
) -> None:
    missing = workspace.run("--destination", "postgres", env={"DESTINATION__POSTGRES__CREDENTIALS": None})

    line = error_line(missing)
    assert "A required setting is missing: Missing 1 field(s) in configuration PostgresClientConfiguration" in line
    assert "Set DESTINATION__POSTGRES__CREDENTIALS (or its parts, such as DESTINATION__POSTGRES__CREDENTIALS__" in line
    assert sandbox.stats.requests == []
