"""Secrets never leave the process; person-identifying fields are kept, hashed or dropped as configured."""

from __future__ import annotations

import base64
import json
import re
from datetime import timedelta
from pathlib import Path
from typing import Iterator

import pytest

from gong_source.pii import PiiPolicy, find_addresses, is_record_pii
from gong_source.sandbox import Fault, GongSandbox, SandboxClock, SyntheticLogs
from gong_source.sandbox.data import LOOKALIKES
from gong_source.settings import LOG_TYPES
from tests.conftest import EPOCH, FIRST_CLOCK, START_DATE, Workspace, truth_event_times

SECRET = "Zx9-unusual-secret-Q4"
TOKEN = "Tk7-unusual-oauth-token-W2"
SALT = "pepper-for-tests-0123456789"


def person_values(sandbox: GongSandbox) -> set[str]:
    """Every email, name, IP and user agent the sandbox serves."""
    values: set[str] = set()

    def walk(node: object) -> None:
        if isinstance(node, list):
            for item in node:
                walk(item)
        elif isinstance(node, dict):
            for key, value in node.items():
                if is_record_pii(key) and isinstance(value, str):
                    values.add(value)
                else:
                    walk(value)

    for log_type in LOG_TYPES:
        for entry in sandbox.truth(log_type.name, EPOCH):
            values.update(str(entry[key]) for key in entry if key.endswith(("EmailAddress", "FullName")))
            walk(entry.get("logRecord"))
    return values


def all_text_values(workspace: Workspace) -> set[str]:
    values: set[str] = set()
    columns = workspace.query(
        "SELECT table_name, column_name FROM information_schema.columns "
        "WHERE table_schema = 'gong_logs' AND data_type = 'VARCHAR'"
    )
    for table, column in columns:
        values.update(str(v) for (v,) in workspace.query(f'SELECT DISTINCT "{column}" FROM gong_logs."{table}"'))
    return values


def files_containing(root: Path, needles: list[str]) -> list[str]:
    hits = []
    for path in root.rglob("*"):
        if path.is_file():
            content = path.read_bytes()
            hits += [f"{path}: {needle[:6]}…" for needle in needles if needle.encode() in content]
    return hits


def test_no_secret_in_output_logs_state_or_destination(tmp_path: Path) -> None:
    logs = SyntheticLogs(epoch=EPOCH)
    with GongSandbox(
        logs=logs, clock=SandboxClock(FIRST_CLOCK), access_key_secret=SECRET, access_token=TOKEN
    ) as sandbox:
        workspace = Workspace(tmp_path, sandbox)
        workspace.env["SOURCES__GONG__CREDENTIALS__ACCESS_KEY_SECRET"] = SECRET
        workspace.env["RUNTIME__LOG_LEVEL"] = "DEBUG"
        outputs = [workspace.run("--start-date", START_DATE)]  # success
        sandbox.add_fault(Fault(503, {"requestId": "r", "errors": ["busy"]}, times=2))
        sandbox.clock.advance(timedelta(hours=1))
        outputs.append(workspace.run())  # 5xx retries, then success
        sandbox.add_fault(Fault(200, "{cut", log_type="AccessLog", times=10))
        outputs.append(workspace.run())  # a crash: invalid JSON beyond retries
        outputs.append(workspace.run(env={"SOURCES__GONG__CREDENTIALS__ACCESS_KEY_SECRET": SECRET + "-wrong"}))  # 401
        bearer = {
            "SOURCES__GONG__CREDENTIALS__ACCESS_KEY": None,
            "SOURCES__GONG__CREDENTIALS__ACCESS_KEY_SECRET": None,
            "SOURCES__GONG__CREDENTIALS__ACCESS_TOKEN": TOKEN,
        }
        outputs.append(workspace.run(env=bearer))

    assert [run.returncode for run in outputs] == [0, 0, 1, 1, 0]
    basic = base64.b64encode(f"{sandbox.access_key}:{SECRET}".encode()).decode()
    basic_wrong = base64.b64encode(f"{sandbox.access_key}:{SECRET}-wrong".encode()).decode()
    needles = [SECRET, TOKEN, basic, basic_wrong]
    for run in outputs:
        assert not [needle for needle in needles if needle in run.output]
    assert files_containing(tmp_path, needles) == []


@pytest.mark.parametrize("mode", ["hash", "drop"])
def test_pii_hash_or_drop_leaves_no_raw_email_name_or_ip(workspace: Workspace, sandbox: GongSandbox, mode: str) -> None:
    workspace.env.update({"SOURCES__GONG__PII": mode, "SOURCES__GONG__PII_SALT": SALT})

    result = workspace.run("--start-date", START_DATE)

    assert result.returncode == 0, result.output
    raw = person_values(sandbox)
    assert any("@acme-corp.example" in value for value in raw) and any(v.startswith("203.0.113.") for v in raw)
    assert not raw & all_text_values(workspace)
    # Independent of the code's own field list: no email or IP of any shape in any file the run wrote
    # (the DuckDB file, and dlt's state, trace and load packages).
    pattern = re.compile(rb"[a-z]+\.[a-z]+@acme-corp\.example|203\.0\.113\.\d+|[A-Z][a-z]+ (?:Lovelace|Turing|Hopper)")
    hits = [str(path) for path in workspace.root.rglob("*") if path.is_file() and pattern.search(path.read_bytes())]
    assert hits == []
    for log_type in LOG_TYPES:
        assert workspace.event_times(log_type.table_name) == truth_event_times(sandbox, log_type.name)


def test_pii_hash_maps_a_person_to_the_same_token_across_tables_and_runs(
    workspace: Workspace, sandbox: GongSandbox
) -> None:
    workspace.env.update({"SOURCES__GONG__PII": "hash", "SOURCES__GONG__PII_SALT": SALT})
    assert workspace.run("--start-date", START_DATE).returncode == 0
    sandbox.clock.advance(timedelta(hours=3))
    assert workspace.run().returncode == 0

    per_table = [
        {email for (email,) in workspace.query(f"SELECT DISTINCT user_email_address FROM gong_logs.{table}")}
        for table in ("access_log", "user_call_play", "user_activity_log")
    ]
    assert per_table[0] == per_table[1] == per_table[2]
    assert len(per_table[0]) == 12 and all(len(token) == 64 for token in per_table[0])


def test_pii_hash_without_salt_fails_before_any_request(workspace: Workspace, sandbox: GongSandbox) -> None:
    result = workspace.run("--start-date", START_DATE, env={"SOURCES__GONG__PII": "hash"})

    assert result.returncode == 1
    assert "sources.gong.pii_salt" in result.stderr and "SOURCES__GONG__PII_SALT" in result.stderr
    assert sandbox.stats.requests == []


# Independent of gong_source/pii.py: the addresses the adversarial sandbox hides, by its own shapes.
SERVED_ADDRESS = re.compile(
    r"[A-Za-z0-9.+-]+@[A-Za-z0-9.-]+\.example"  # every e-mail the sandbox serves ends in .example
    r"|\b(?:203\.0\.113|198\.51\.100)\.\d{1,3}\b"  # its IPv4 ranges (documentation blocks)
    r"|2001:0?db8:[0-9a-fA-F:]*[0-9a-fA-F]"  # its IPv6 range, compressed or full
    r"|::ffff:(?:\d{1,3}\.){3}\d{1,3}"  # IPv4 embedded in IPv6
)


def served_addresses(sandbox: GongSandbox) -> set[str]:
    """Every e-mail and IP address in the raw JSON the sandbox serves, lower-cased."""
    found: set[str] = set()
    for log_type in LOG_TYPES:
        for entry in sandbox.truth(log_type.name, EPOCH):
            found.update(match.lower() for match in SERVED_ADDRESS.findall(json.dumps(entry)))
    return found


@pytest.fixture
def adversarial(tmp_path: Path) -> Iterator[Workspace]:
    """A workspace whose sandbox hides addresses in free text, with lookalikes that must survive."""
    logs = SyntheticLogs(epoch=EPOCH, adversarial=True)
    with GongSandbox(logs=logs, clock=SandboxClock(FIRST_CLOCK)) as server:
        yield Workspace(tmp_path, server)


@pytest.mark.parametrize("mode", ["hash", "drop"])
def test_no_raw_address_anywhere_even_inside_free_text(adversarial: Workspace, mode: str) -> None:
    adversarial.env.update({"SOURCES__GONG__PII": mode, "SOURCES__GONG__PII_SALT": SALT})

    result = adversarial.run("--start-date", START_DATE)

    assert result.returncode == 0, result.output
    served = served_addresses(adversarial.sandbox)
    kinds = {"mixed case": "+audit@acme-corp.example", "v6": "2001:db8::", "embedded": "::ffff:", "v4": "198.51.100."}
    assert all(any(part in address for address in served) for part in kinds.values()), kinds
    # Every string of every table, and every file the run wrote (DuckDB, dlt's state, trace, load packages).
    loaded = " ".join(all_text_values(adversarial)).lower()
    assert [address for address in served if address in loaded] == []
    hits = []
    for path in adversarial.root.rglob("*"):
        if path.is_file():
            content = path.read_bytes().lower()
            hits += [f"{path.name}: {address}" for address in served if address.encode() in content]
    assert hits == []
    # Lookalikes come through unchanged; the rest of each string stays readable.
    lookalikes = {
        value for (value,) in adversarial.query("SELECT DISTINCT log_record__lookalikes FROM gong_logs.access_log")
    }
    assert lookalikes == set(LOOKALIKES)
    headers = [v for (v,) in adversarial.query("SELECT value FROM gong_logs.access_log__log_record__request_headers")]
    assert any(value.startswith("https://app.gong.example/share?email=") for value in headers)
    if mode == "drop":
        assert any(value == "[ip], [ip]" for value in headers) and any("[email]" in value for value in headers)
    for log_type in LOG_TYPES:
        assert adversarial.event_times(log_type.table_name) == truth_event_times(adversarial.sandbox, log_type.name)


def test_hash_gives_a_person_the_same_token_by_key_and_inside_free_text(adversarial: Workspace) -> None:
    adversarial.env.update({"SOURCES__GONG__PII": "hash", "SOURCES__GONG__PII_SALT": SALT})
    assert adversarial.run("--start-date", START_DATE).returncode == 0

    by_key = {
        token for (token,) in adversarial.query("SELECT DISTINCT user_email_address FROM gong_logs.user_activity_log")
    }
    in_text = {
        token
        for (token,) in adversarial.query(
            # oldValue is an int, a string or a bool: dlt keeps the strings in a variant column.
            "SELECT DISTINCT old_value__v_text FROM gong_logs.user_activity_log__log_record__table_changes__row_changes"
            "__column_changes WHERE column_name = 'notify'"
        )
    }
    assert len(by_key) == 12 and in_text <= by_key and len(in_text) >= 10
    ip_by_key = {v for (v,) in adversarial.query("SELECT DISTINCT log_record__ip_address FROM gong_logs.access_log")}
    assert all(len(token) == 64 for token in ip_by_key)


@pytest.mark.parametrize(
    ("text", "addresses"),
    [
        ("X-Forwarded-For: 203.0.113.7, 2001:db8::1", ["203.0.113.7", "2001:db8::1"]),
        ("?email=Ada.Lovelace+audit@Acme-Corp.example&x=1", ["Ada.Lovelace+audit@Acme-Corp.example"]),
        ('{"ip": "[2001:db8:0:0:0:0:0:2]:443", "hop": "198.51.100.9:8080"}', ["2001:db8:0:0:0:0:0:2", "198.51.100.9"]),
        (
            "::ffff:192.0.2.128 and 2001:0db8:85a3:0000:0000:8a2e:0370:7334",
            ["::ffff:192.0.2.128", "2001:0db8:85a3:0000:0000:8a2e:0370:7334"],
        ),
        ("client 1.2.3.4.5, api 10.0, at 12:30:45, 2026-01-01T10:20:30Z, mac 00:1A:2B:3C:4D:5E, std::vector", []),
        ("ratio 255.255.255.256 build 2026.11.04 v1.2.3.4beta", []),
        ("client:2001:db8::1, from 2001:db8::7. addr:203.0.113.9.", ["2001:db8::1", "2001:db8::7", "203.0.113.9"]),
        ("fe80::1: refused; [::1]:8080; 2001:db8::1/64", ["fe80::1", "::1", "2001:db8::1"]),
        ("请联系alice@example.com 来自10.0.0.1的请求 ip_10.0.0.2", ["alice@example.com", "10.0.0.1", "10.0.0.2"]),
        ("?email=ALICE%40X.COM&b=bob%2Btag%40y.example", ["ALICE%40X.COM", "bob%2Btag%40y.example"]),
        (
            "<mailto:Bob.Smith@Sub.Example.co.uk> alice@example.com_backup",
            ["Bob.Smith@Sub.Example.co.uk", "alice@example.com"],
        ),
        ("a::b dead::beef :: std::vector", []),
    ],
)
def test_what_the_address_pattern_matches(text: str, addresses: list[str]) -> None:
    assert sorted(find_addresses(text)) == sorted(addresses)


def test_hash_tokens_are_one_per_address_however_it_is_written() -> None:
    policy = PiiPolicy("hash", SALT)
    entry = {
        "userEmailAddress": "Alice@X.example",
        "logRecord": {"ipAddress": "2001:DB8:0::1", "note": "alice%40x.example via [2001:db8::1]:443"},
    }
    policy.apply(entry)
    email_token, ip_token = entry["userEmailAddress"], entry["logRecord"]["ipAddress"]
    assert entry["logRecord"]["note"] == f"{email_token} via [{ip_token}]:443"
