"""The sandbox behaves like Gong's /v2/logs, checked over HTTP with plain requests."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import pytest
import requests

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
