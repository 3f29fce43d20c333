"""The sandbox behaves like Gong's /v2/logs, checked over HTTP with plain requests."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import requests

from gong_source.entries import parse_event_time
from gong_source.sandbox import GongSandbox, SandboxClock, SyntheticLogs
from gong_source.sandbox.server import NO_RECORDS_MESSAGE

EPOCH = datetime(2026, 1, 1, tzinfo=timezone.utc)


@pytest.fixture
def server() -> Iterator[GongSandbox]:
    with GongSandbox(logs=SyntheticLogs(epoch=EPOCH), clock=SandboxClock(EPOCH + timedelta(hours=12))) as sandbox:
        yield sandbox


def get(server: GongSandbox, auth: tuple[str, str] | None = None, **params: str) -> requests.Response:
    return requests.get(
        f"{server.url}/v2/logs", params=params, auth=auth or (server.access_key, server.access_key_secret), timeout=10
    )


def test_pages_of_100_follow_an_opaque_cursor_to_the_exact_truth(server: GongSandbox) -> None:
    params = {"logType": "AccessLog", "fromDateTime": "2026-01-01T00:00:00Z", "toDateTime": "2026-01-01T10:00:00Z"}
    entries, cursor, pages = [], None, 0
    while True:
        body = get(server, **params, **({"cursor": cursor} if cursor else {})).json()
        assert body["records"]["currentPageNumber"] == pages
        assert body["records"]["totalRecords"] == len(server.truth("AccessLog", EPOCH, EPOCH + timedelta(hours=10)))
        assert len(body["logEntries"]) <= 100
        entries += body["logEntries"]
        pages += 1
        cursor = body["records"].get("cursor")
        if not cursor:
            break
    assert entries == server.truth("AccessLog", EPOCH, EPOCH + timedelta(hours=10))
    assert pages == -(-len(entries) // 100) and pages > 1


def test_cursor_is_bound_to_the_other_parameters(server: GongSandbox) -> None:
    params = {"logType": "AccessLog", "fromDateTime": "2026-01-01T00:00:00Z"}
    cursor = get(server, **params).json()["records"]["cursor"]
    changed = get(server, **{**params, "fromDateTime": "2026-01-01T00:00:01Z"}, cursor=cursor)
    assert changed.status_code == 400
    assert "cursor" in changed.json()["errors"][0]


def test_from_is_inclusive_and_to_is_exclusive(server: GongSandbox) -> None:
    first = server.truth("UserCallPlay", EPOCH)[0]
    moment = datetime.fromisoformat(first["eventTime"]).astimezone(timezone.utc).isoformat()
    assert get(server, logType="UserCallPlay", fromDateTime=moment).json()["logEntries"][0] == first
    assert (
        get(server, logType="UserCallPlay", fromDateTime="2026-01-01T00:00:00Z", toDateTime=moment).status_code == 404
    )


def test_empty_period_is_404_with_gongs_body(server: GongSandbox) -> None:
    response = get(server, logType="AccessLog", fromDateTime="2026-02-01T00:00:00Z")
    assert response.status_code == 404
    assert response.json()["errors"] == [NO_RECORDS_MESSAGE] and response.json()["requestId"]


@pytest.mark.parametrize(
    "params",
    [
        {"logType": "CallLog", "fromDateTime": "2026-01-01T00:00:00Z"},
        {"logType": "AccessLog"},
        {"logType": "AccessLog", "fromDateTime": "yesterday"},
        {"logType": "AccessLog", "fromDateTime": "2026-01-02T00:00:00Z", "toDateTime": "2026-01-01T00:00:00Z"},
    ],
)
def test_malformed_parameters_are_400(server: GongSandbox, params: dict[str, str]) -> None:
    response = get(server, **params)
    assert response.status_code == 400 and response.json()["errors"]


def test_wrong_credentials_are_401_and_bearer_works(server: GongSandbox) -> None:
    params = {"logType": "AccessLog", "fromDateTime": "2026-01-01T00:00:00Z"}
    assert get(server, auth=("sandbox-access-key", "wrong"), **params).status_code == 401
    bearer = requests.get(
        f"{server.url}/v2/logs", params=params, headers={"Authorization": f"Bearer {server.access_token}"}, timeout=10
    )
    assert bearer.status_code == 200


def test_rate_limit_answers_429_with_retry_after() -> None:
    with GongSandbox(clock=SandboxClock(EPOCH + timedelta(hours=1)), max_requests_per_second=3) as sandbox:
        statuses = [get(sandbox, logType="AccessLog", fromDateTime="2026-01-01T00:00:00Z") for _ in range(4)]
    assert [response.status_code for response in statuses[:3]] == [200, 200, 200]
    assert statuses[3].status_code == 429 and statuses[3].headers["Retry-After"] == "1"


def test_clock_reveals_new_entries(server: GongSandbox) -> None:
    before = len(server.truth("AccessLog", EPOCH))
    server.clock.advance(timedelta(hours=1))
    assert len(server.truth("AccessLog", EPOCH)) > before


def test_data_has_mixed_offsets_duplicates_and_no_user_on_external_types(server: GongSandbox) -> None:
    access = server.truth("AccessLog", EPOCH)
    suffixes = {entry["eventTime"][-6:] for entry in access if not entry["eventTime"].endswith("Z")}
    assert {"-08:00", "+05:30"} <= suffixes and any(entry["eventTime"].endswith("Z") for entry in access)
    assert any(access[i] == access[i + 1] for i in range(len(access) - 1))
    assert all("userId" not in entry for entry in server.truth("ExternallySharedCallPlay", EPOCH))


def read_all(server: GongSandbox, **params: str) -> tuple[list[dict[str, Any]], int]:
    """Every page of a query, and Gong's totalRecords."""
    entries: list[dict[str, Any]] = []
    cursor, total = None, 0
    while True:
        body = get(server, **params, **({"cursor": cursor} if cursor else {})).json()
        total = body["records"]["totalRecords"]
        entries += body["logEntries"]
        cursor = body["records"].get("cursor")
        if not cursor:
            return entries, total


def test_shuffled_pages_serve_every_entry_once_in_an_order_unrelated_to_time() -> None:
    clock = SandboxClock(EPOCH + timedelta(hours=12))
    with GongSandbox(logs=SyntheticLogs(epoch=EPOCH), clock=clock, page_order="shuffled") as server:
        params = {"logType": "AccessLog", "fromDateTime": "2026-01-01T00:00:00Z", "toDateTime": "2026-01-01T10:00:00Z"}
        entries, total = read_all(server, **params)
        again, _ = read_all(server, **params)
        truth = server.truth("AccessLog", EPOCH, EPOCH + timedelta(hours=10))

    key = json.dumps
    assert total == len(entries) == len(truth) > 100
    assert Counter(map(key, entries)) == Counter(map(key, truth))  # duplicates served as often as they are
    times = [parse_event_time(entry["eventTime"]) for entry in entries]
    assert times != sorted(times) and entries == again  # not in time order, and the same order for the query
    assert min(times[:100]) < max(times[100:]) and max(times[:100]) > min(times[100:])  # pages overlap in time


def test_late_entries_each_appear_after_their_own_delay() -> None:
    logs = SyntheticLogs(
        epoch=EPOCH, late_every=10, late_delay=timedelta(minutes=1), late_delay_max=timedelta(minutes=40)
    )
    delays = [logs.delay_of("AccessLog", index) for index in range(0, 2000)]
    late = [delay for delay in delays if delay is not None]
    assert len(late) == 200 and all(timedelta(minutes=1) <= delay <= timedelta(minutes=40) for delay in late)
    assert len(set(late)) > 150  # each its own
    index = next(i for i, delay in enumerate(delays) if delay and delay > timedelta(minutes=20))
    written_at = datetime.fromtimestamp(logs.time_ms("AccessLog", index) / 1000, timezone.utc) + delays[index]
    assert logs.is_hidden("AccessLog", index, written_at - timedelta(seconds=1))
    assert not logs.is_hidden("AccessLog", index, written_at + timedelta(seconds=1))
    clock = SandboxClock(written_at - timedelta(seconds=1))
    with GongSandbox(logs=logs, clock=clock) as server:
        moment = logs.entry("AccessLog", index)["eventTime"]
        assert moment not in [entry["eventTime"] for entry in server.truth("AccessLog", EPOCH)]
        count_before = get(server, logType="AccessLog", fromDateTime="2026-01-01T00:00:00Z").json()["records"]
        server.clock.advance(timedelta(seconds=2))
        count_after = get(server, logType="AccessLog", fromDateTime="2026-01-01T00:00:00Z").json()["records"]
        assert count_after["totalRecords"] == count_before["totalRecords"] + logs.copies(index)


def test_entries_older_than_a_types_retention_are_no_longer_served() -> None:
    clock = SandboxClock(EPOCH + timedelta(days=20))
    with GongSandbox(clock=clock, retention={"AccessLog": timedelta(days=14)}) as server:
        old = get(server, logType="AccessLog", fromDateTime="2026-01-01T00:00:00Z", toDateTime="2026-01-06T00:00:00Z")
        kept = get(server, logType="AccessLog", fromDateTime="2026-01-07T00:00:00Z", toDateTime="2026-01-08T00:00:00Z")
        other = get(
            server, logType="UserCallPlay", fromDateTime="2026-01-01T00:00:00Z", toDateTime="2026-01-06T00:00:00Z"
        )
    assert old.status_code == 404 and kept.status_code == 200 and other.status_code == 200
