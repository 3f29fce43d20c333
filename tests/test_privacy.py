"""Secrets never leave the process; person-identifying fields are kept, hashed or dropped as configured."""

from __future__ import annotations

import base64
import json
import re
from datetime import timedelta
from pathlib import Path
from typing import Any, Iterator

import pytest

from gong_source.pii import PiiPolicy, find_addresses, hop_address, is_record_pii
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
        sandbox.clock.advance(timedelta(minutes=1))  # something to read: a run at the same moment asks nothing
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


SERVED_EMAIL = re.compile(r"[A-Za-z0-9.+-]+(?:@|%40)[A-Za-z0-9.-]+\.example")


def sensitive_values(sandbox: GongSandbox) -> dict[str, set[str]]:
    """What must not survive `hash` or `drop`, read from the served JSON by the test's own rules: every hop of
    `x-forwarded-for`, viewer and client IPs, user agents, names, and every e-mail address anywhere (in a URL
    with `%40` too), by the fields Gong puts them in."""
    found: dict[str, set[str]] = {
        "hop": set(), "proxy": set(), "page_viewer_ip": set(), "clientIp": set(), "user-agent": set(), "name": set()
    }
    for log_type in LOG_TYPES:
        for entry in sandbox.truth(log_type.name, EPOCH):
            record = entry["logRecord"]
            headers = record.get("request_headers", {})
            if "x-forwarded-for" in headers:
                client, *proxies = [hop.strip() for hop in headers["x-forwarded-for"].split(",")]
                found["hop"].add(client)
                found["proxy"].update(proxies)
                found["user-agent"].add(headers["user-agent"])
            if "page_viewer_ip" in record:
                found["page_viewer_ip"].add(record["page_viewer_ip"])
            if "httpRequest" in record:
                found["clientIp"].add(record["httpRequest"]["clientIp"])
            found["name"].update(entry[key] for key in entry if key.endswith("FullName"))
            for place, text in (
                ("requested_url", record.get("requested_url")),
                ("referer", headers.get("referer")),
                ("message", record.get("message")),
                ("body", record.get("httpRequest", {}).get("body")),
                ("value", json.dumps(record.get("tableChanges", []))),
                ("top level", json.dumps({k: v for k, v in entry.items() if k != "logRecord"})),
            ):
                found.setdefault(f"e-mail in {place}", set()).update(SERVED_EMAIL.findall(text or ""))
    return found


@pytest.mark.parametrize("mode", ["hash", "drop"])
def test_pii_hash_or_drop_leaves_no_hop_ip_agent_name_or_email_anywhere(
    workspace: Workspace, sandbox: GongSandbox, mode: str
) -> None:
    workspace.env.update({"SOURCES__GONG__PII": mode, "SOURCES__GONG__PII_SALT": SALT})

    result = workspace.run("--start-date", START_DATE)

    assert result.returncode == 0, result.output
    sensitive = sensitive_values(sandbox)
    assert all(sensitive.values()), {kind: len(values) for kind, values in sensitive.items()}
    assert any(":" in hop for hop in sensitive["hop"]) and any("%40" in e for e in sensitive["e-mail in requested_url"])
    needles = {value.lower() for values in sensitive.values() for value in values}
    loaded = "\n".join(all_text_values(workspace)).lower()
    assert sorted(needle for needle in needles if needle in loaded) == []
    # Every file the run wrote: the DuckDB file, dlt's state, trace and load packages.
    hits = []
    for path in workspace.root.rglob("*"):
        if path.is_file():
            content = path.read_bytes().lower()
            hits += [f"{path.name}: {needle}" for needle in needles if needle.encode() in content]
    assert hits == []
    # A product version in free text is not an address: it stays, the client's IP beside it does not.
    messages = [m for (m,) in workspace.query("SELECT log_record__message FROM gong_logs.access_log")]
    versions = [m for m in messages if m.startswith("Unsupported browser Chrome/122.0.0.0 from ")]
    assert versions and all(re.fullmatch(r"[0-9a-f]{64}|\[ip\]", m.rsplit(" ", 1)[1]) for m in versions)
    for log_type in LOG_TYPES:
        assert workspace.event_times(log_type.table_name) == truth_event_times(sandbox, log_type.name)


def test_hash_gives_a_client_one_token_in_every_hop_viewer_ip_and_client_ip_so_tables_join(
    workspace: Workspace, sandbox: GongSandbox
) -> None:
    workspace.env.update({"SOURCES__GONG__PII": "hash", "SOURCES__GONG__PII_SALT": SALT})

    assert workspace.run("--start-date", START_DATE).returncode == 0

    sensitive = sensitive_values(sandbox)
    both = sensitive["hop"] & sensitive["page_viewer_ip"]
    assert both, "the sandbox must serve a client seen in AccessLog and as a shared call's viewer"
    access = {ip for (ip,) in workspace.query("SELECT DISTINCT ip FROM gong_logs.v_access_by_ip")}
    viewers = {ip for (ip,) in workspace.query("SELECT DISTINCT viewer_ip FROM gong_logs.v_external_call_views")}
    clients = {
        ip for (ip,) in workspace.query("SELECT log_record__http_request__client_ip FROM gong_logs.user_activity_log")
    }
    assert len(access) == len(sensitive["hop"]) and all(re.fullmatch(r"[0-9a-f]{64}", ip) for ip in access)
    assert len(access & viewers) == len(both)  # the client hop, not the chain nor a proxy, joins the viewer IP
    assert len(access & clients) == len(sensitive["hop"] & sensitive["clientIp"]) > 0


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
    referer_sql = "SELECT log_record__request_headers__referer FROM gong_logs.access_log"
    referers = [value for (value,) in adversarial.query(referer_sql)]
    assert any(str(value).startswith("https://app.gong.example/share?email=") for value in referers)
    messages = [v for (v,) in adversarial.query("SELECT log_record__message FROM gong_logs.access_log")]
    if mode == "drop":
        assert any('"hop": "[ip]:8080"' in value and "[email]" in value for value in messages)
        assert "log_record__request_headers__x_forwarded_for" not in {
            name for (name,) in adversarial.query("SELECT column_name FROM information_schema.columns")
        }
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
            "SELECT DISTINCT old_value FROM gong_logs.user_activity_log__log_record__table_changes__row_changes"
            "__column_changes WHERE column_name = 'notify_email'"
        )
    }
    assert len(by_key) == 12 and in_text <= by_key and len(in_text) >= 10
    client_ips = "SELECT DISTINCT log_record__http_request__client_ip FROM gong_logs.user_activity_log"
    ip_by_key = {v for (v,) in adversarial.query(client_ips)}
    assert len(ip_by_key) > 10 and all(len(token) == 64 for token in ip_by_key)


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
        ("Mozilla/5.0 (X11) AppleWebKit/537.36 Chrome/122.0.0.0 Safari/537.36", []),
        ("Mozilla/5.0 (Windows NT 10.0) Chrome/122.0.0.0 Safari/537.36 Edg/122.0.0.0", []),
        ("Gong/1.2.3.4 X-Client_v2.b/10.0.0.1 (KHTML, like Gecko)", ["10.0.0.1"]),
        ("Blocked IP/203.0.113.9, Client/203.0.113.10 via LB/10.0.0.5", ["203.0.113.9", "203.0.113.10", "10.0.0.5"]),
        ("Edg/122.0.0.0 from 10.1.2.3", ["10.1.2.3"]),
        ("GET /ips/10.1.2.3", ["10.1.2.3"]),
        ("http://10.0.0.1/x", ["10.0.0.1"]),
        (
            "/Users/10.1.2.3 https://Gong.example/10.0.0.2 /10.0.0.3 x-Gong/10.0.0.4",
            ["10.1.2.3", "10.0.0.2", "10.0.0.3", "10.0.0.4"],
        ),
        ("agent=Chrome/1.2.3.4:8080 and Chrome/1.2.3.4.5", []),
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


SHARED_ACCESS = {
    "logRecord": {
        "request_headers": {
            "x-forwarded-for": "203.0.113.7, 10.0.4.2",
            "user-agent": "Mozilla/5.0 (X11) AppleWebKit/537.36 Chrome/122.0.0.0 Safari/537.36",
            "referer": "https://app.gong.example/call?id=7",
        },
        "page_viewer_ip": "203.0.113.7",
        "httpRequest": {"clientIp": "203.0.113.7", "verb": "GET"},
        "message": "denied 203.0.113.7",
    }
}
"""An entry in Gong's real shapes: AccessLog headers, UserActivityLog `httpRequest`, a shared call's viewer IP."""


def shared_access() -> dict[str, Any]:
    return json.loads(json.dumps(SHARED_ACCESS))


def test_hash_token_of_the_client_is_the_same_in_every_hop_key_and_text() -> None:
    entry = shared_access()
    PiiPolicy("hash", SALT).apply(entry)

    record = entry["logRecord"]
    hops = record["request_headers"]["x-forwarded-for"].split(", ")
    assert len(hops) == 2 and all(re.fullmatch(r"[0-9a-f]{64}", hop) for hop in hops)
    client, proxy = hops
    assert client != proxy
    assert record["page_viewer_ip"] == record["httpRequest"]["clientIp"] == client
    assert record["message"] == f"denied {client}"
    assert re.fullmatch(r"[0-9a-f]{64}", record["request_headers"]["user-agent"])
    assert record["request_headers"]["referer"] == "https://app.gong.example/call?id=7"
    assert record["httpRequest"]["verb"] == "GET"


def test_hash_token_of_a_hop_ignores_case_port_brackets_and_spacing() -> None:
    policy = PiiPolicy("hash", SALT)
    entry = {
        "logRecord": {
            "X_Forwarded_For": " 2001:DB8::5 ,[2001:db8:0::6]:443,10.0.4.2:8080,unknown,",
            "ipAddress": "2001:db8::5",
            "pageViewerIp": "2001:db8::6",
            "note": "from 10.0.4.2 via 2001:0db8::5",
        }
    }
    policy.apply(entry)

    record = entry["logRecord"]
    v6, bracketed, v4, unknown, empty = record["X_Forwarded_For"].split(", ")
    assert v6 == record["ipAddress"] and bracketed == record["pageViewerIp"]
    assert record["note"] == f"from {v4} via {v6}"
    assert re.fullmatch(r"[0-9a-f]{64}", unknown) and unknown not in (v6, bracketed, v4)
    assert empty == ""


def test_drop_deletes_the_key_rule_fields_and_marks_addresses_in_text() -> None:
    entry = shared_access()
    PiiPolicy("drop", None).apply(entry)

    assert entry == {
        "logRecord": {
            "request_headers": {"referer": "https://app.gong.example/call?id=7"},
            "httpRequest": {"verb": "GET"},
            "message": "denied [ip]",
        }
    }


@pytest.mark.parametrize(
    "key",
    [
        *("x-forwarded-for", "X-Forwarded-For", "X_Forwarded_For", "xforwardedfor"),
        *("page_viewer_ip", "pageViewerIp", "pageviewerip", "clientIp", "client_ip", "ipAddress", "ip"),
        *("user-agent", "userAgent", "user_agent", "viewerEmailAddress", "viewer_email_address", "userFullName"),
    ],
)
def test_key_rule_covers_names_however_written(key: str) -> None:
    assert is_record_pii(key)


@pytest.mark.parametrize(
    "key", ["referer", "requested_url", "message", "call_id", "userId", "verb", "endpointUri", "zip", "x-request-id"]
)
def test_key_rule_leaves_other_names(key: str) -> None:
    assert not is_record_pii(key)


@pytest.mark.parametrize(
    ("hop", "address"),
    [
        ("203.0.113.7", "203.0.113.7"),
        (" 10.0.4.2:8080 ", "10.0.4.2"),
        ("[2001:db8::5]:443", "2001:db8::5"),
        ("[2001:db8::5]", "2001:db8::5"),
        ("2001:db8::5", "2001:db8::5"),
        ("unknown", "unknown"),
        ("host:80", "host:80"),
        ("[2001:db8::5]:x", "[2001:db8::5]:x"),
    ],
)
def test_hop_address(hop: str, address: str) -> None:
    assert hop_address(hop) == address
