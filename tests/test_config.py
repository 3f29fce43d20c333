"""Validation of base URL, credentials, dates and log types (no HTTP involved)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from dlt.sources.helpers.rest_client.auth import BearerTokenAuth, HttpBasicAuth

from gong_source.config import (
    GongCredentials,
    build_auth,
    normalize_base_url,
    parse_datetime,
    resolve_log_types,
    resolve_time_range,
)
from gong_source.errors import GongConfigError

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("configured", "expected"),
    [
        ("https://api.gong.io", "https://api.gong.io/v2"),
        ("https://company-17.api.gong.io/v2/", "https://company-17.api.gong.io/v2"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080/v2"),
        ("http://localhost:9/v2", "http://localhost:9/v2"),
        ("http://[::1]:8080", "http://[::1]:8080/v2"),
    ],
)
def test_base_url_accepts_hosts_with_or_without_v2(configured: str, expected: str) -> None:
    assert normalize_base_url(configured) == expected


@pytest.mark.parametrize(
    ("configured", "message"),
    [
        ("http://api.gong.io", "plain http for a non-loopback host"),
        ("https://api.gong.io/v2/logs", "only the host"),
        ("https://api.gong.io/api", "only the host"),
        ("api.gong.io", "is not an http(s) URL"),
        ("https://key:Pw-91zz@api.gong.io", "must not contain credentials"),
        ("ftp://key:Pw-91zz@api.gong.io", "must not contain credentials"),
    ],
)
def test_base_url_rejects_unsafe_or_wrong_urls(configured: str, message: str) -> None:
    with pytest.raises(GongConfigError, match="base_url") as raised:
        normalize_base_url(configured)
    assert message in str(raised.value)
    assert "Pw-91zz" not in str(raised.value)


def test_auth_is_basic_for_a_key_pair_and_bearer_for_a_token() -> None:
    assert isinstance(build_auth(GongCredentials(access_key="k", access_key_secret="s")), HttpBasicAuth)
    assert isinstance(build_auth(GongCredentials(access_token="t")), BearerTokenAuth)


@pytest.mark.parametrize(
    ("credentials", "message"),
    [
        (GongCredentials(), "No Gong credentials are configured"),
        (GongCredentials(access_key="k"), "access_key_secret is missing"),
        (GongCredentials(access_key="k", access_key_secret="hunter2", access_token="tok3n"), "keep exactly one"),
    ],
)
def test_bad_credentials_explain_what_to_set_without_echoing_secrets(
    credentials: GongCredentials, message: str
) -> None:
    with pytest.raises(GongConfigError) as raised:
        build_auth(credentials)
    text = str(raised.value).replace("\n", " ")
    assert message in text
    assert "hunter2" not in text and "tok3n" not in text


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-01-31", datetime(2026, 1, 31, tzinfo=timezone.utc)),
        ("2026-01-31T02:30:00-08:00", datetime(2026, 1, 31, 10, 30, tzinfo=timezone.utc)),
        ("2026-01-31T08:00:00Z", datetime(2026, 1, 31, 8, tzinfo=timezone.utc)),
        ("2026-01-31T08:00:00", datetime(2026, 1, 31, 8, tzinfo=timezone.utc)),
    ],
)
def test_dates_parse_to_utc(value: str, expected: datetime) -> None:
    parsed = parse_datetime(value, "start_date")
    assert parsed == expected and parsed is not None and parsed.utcoffset() == timedelta(0)


def test_time_range_defaults_and_checks() -> None:
    assert resolve_time_range(None, None, NOW).start == NOW - timedelta(days=30)
    with pytest.raises(GongConfigError, match="in the future"):
        resolve_time_range("2026-12-01", None, NOW)
    with pytest.raises(GongConfigError, match="not after start_date"):
        resolve_time_range("2026-02-01", "2026-02-01", NOW)
    with pytest.raises(GongConfigError, match="not a valid date"):
        resolve_time_range("2026-02-30", None, NOW)
    with pytest.raises(GongConfigError, match="a bounded backfill needs both"):
        resolve_time_range(None, "2026-02-01", NOW)


def test_log_types_accept_lists_and_comma_strings() -> None:
    assert [t.table_name for t in resolve_log_types("AccessLog, UserCallPlay")] == ["access_log", "user_call_play"]
    assert [t.name for t in resolve_log_types(["UserActivityLog"])] == ["UserActivityLog"]
    assert len(resolve_log_types(None)) == 5
    with pytest.raises(GongConfigError, match="Valid values: AccessLog"):
        resolve_log_types(["accesslog"])
