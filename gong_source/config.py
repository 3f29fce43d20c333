"""Validation of everything a user configures: base URL, credentials, dates and log types.

Every function here raises `GongConfigError` with a message that names the setting to fix,
and runs before the first request.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Iterable, Optional, Union
from urllib.parse import urlsplit

from dlt.common.configuration import configspec
from dlt.common.configuration.specs import CredentialsConfiguration
from dlt.common.typing import TSecretStrValue
from dlt.sources.helpers.rest_client.auth import AuthConfigBase, BearerTokenAuth, HttpBasicAuth

from gong_source.errors import GongConfigError
from gong_source.settings import (
    API_VERSION_PATH,
    DEFAULT_START_LOOKBACK,
    LOG_TYPES,
    LOG_TYPES_BY_NAME,
    LOOPBACK_HOSTS,
    LogType,
)

DateInput = Union[str, date, datetime, None]

CREDENTIALS_HELP = (
    "Set either an API key pair:\n"
    "  sources.gong.credentials.access_key / access_key_secret in .dlt/secrets.toml,\n"
    "  or env SOURCES__GONG__CREDENTIALS__ACCESS_KEY and SOURCES__GONG__CREDENTIALS__ACCESS_KEY_SECRET;\n"
    "or an OAuth token:\n"
    "  sources.gong.credentials.access_token, or env SOURCES__GONG__CREDENTIALS__ACCESS_TOKEN."
)


@configspec
class GongCredentials(CredentialsConfiguration):
    """Gong API credentials: an access key pair (Basic auth) or an OAuth access token (Bearer)."""

    access_key: Optional[str] = None
    access_key_secret: Optional[TSecretStrValue] = None
    access_token: Optional[TSecretStrValue] = None


def build_auth(credentials: Optional[GongCredentials]) -> AuthConfigBase:
    """Return dlt's Basic or Bearer auth for the credentials, or explain what is missing."""
    access_key = (credentials.access_key or "").strip() if credentials else ""
    access_key_secret = (credentials.access_key_secret or "").strip() if credentials else ""
    access_token = (credentials.access_token or "").strip() if credentials else ""
    if access_token and (access_key or access_key_secret):
        raise GongConfigError(
            "Both an OAuth access_token and an access key pair are configured for Gong; "
            "keep exactly one of them (remove sources.gong.credentials.access_token or "
            "sources.gong.credentials.access_key/access_key_secret)."
        )
    if access_token:
        return BearerTokenAuth(token=access_token)
    if access_key and access_key_secret:
        return HttpBasicAuth(username=access_key, password=access_key_secret)
    if access_key or access_key_secret:
        missing = "access_key_secret" if access_key else "access_key"
        raise GongConfigError(
            f"Gong credentials are incomplete: sources.gong.credentials.{missing} is missing "
            f"(env SOURCES__GONG__CREDENTIALS__{missing.upper()}).\n{CREDENTIALS_HELP}"
        )
    raise GongConfigError(f"No Gong credentials are configured.\n{CREDENTIALS_HELP}")


def normalize_base_url(base_url: str) -> str:
    """Return `https://host[:port]/v2` for a configured base URL, or explain why it is invalid."""
    parts = urlsplit((base_url or "").strip())
    # Echo neither query nor fragment in messages: they may hold a token.
    raw = f"{parts.scheme}://{parts.netloc}{parts.path}" if parts.scheme else parts.path
    if "@" in parts.netloc:
        raise GongConfigError(
            "sources.gong.base_url must not contain credentials; configure them under "
            f"sources.gong.credentials instead.\n{CREDENTIALS_HELP}"
        )
    hint = "Set sources.gong.base_url (env SOURCES__GONG__BASE_URL) to e.g. https://company-17.api.gong.io"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise GongConfigError(f"sources.gong.base_url {raw!r} is not an http(s) URL. {hint}.")
    if parts.scheme == "http" and parts.hostname not in LOOPBACK_HOSTS:
        raise GongConfigError(
            f"sources.gong.base_url {raw!r} uses plain http for a non-loopback host; "
            f"Gong credentials must only travel over https. {hint}."
        )
    path = parts.path.rstrip("/")
    if path not in ("", API_VERSION_PATH):
        raise GongConfigError(
            f"sources.gong.base_url {raw!r} has the path {parts.path!r}; only the host, optionally "
            f"followed by {API_VERSION_PATH}, is accepted. {hint}."
        )
    if parts.query or parts.fragment:
        raise GongConfigError(f"sources.gong.base_url {raw!r} must not carry a query or fragment. {hint}.")
    return f"{parts.scheme}://{parts.netloc}{API_VERSION_PATH}"


def parse_datetime(value: DateInput, setting: str) -> Optional[datetime]:
    """Parse a date or ISO-8601 datetime to an aware UTC datetime; naive values are taken as UTC."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, date):
        parsed = datetime(value.year, value.month, value.day)
    else:
        text = str(value).strip()
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise GongConfigError(
                f"{setting} {text!r} is not a valid date. Use an ISO-8601 date or datetime, "
                "e.g. 2026-01-31, 2026-01-31T08:00:00Z or 2026-01-31T00:00:00-08:00."
            ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc)


@dataclass(frozen=True)
class TimeRange:
    """The validated `[start, end)` range a run asks for; `end` None means "up to now"."""

    start: datetime
    end: Optional[datetime]
    now: datetime


def resolve_time_range(start_date: DateInput, end_date: DateInput, now: datetime) -> TimeRange:
    """Validate start/end dates against each other and the clock; no start means 30 days before `now`."""
    start = parse_datetime(start_date, "start_date (--start-date, sources.gong.start_date)") or (
        now - DEFAULT_START_LOOKBACK
    )
    end = parse_datetime(end_date, "end_date (--end-date, sources.gong.end_date)")
    if end is not None and parse_datetime(start_date, "start_date") is None:
        raise GongConfigError(
            "end_date is set but start_date is not: a bounded backfill needs both, so that a resumed run "
            "continues the same range. Set --start-date (sources.gong.start_date) too."
        )
    if start >= now:
        raise GongConfigError(
            f"start_date {start.isoformat()} is in the future (now is {now.isoformat(timespec='seconds')}); "
            "choose a start date in the past."
        )
    if end is not None and end > now:
        raise GongConfigError(
            f"end_date {end.isoformat()} is in the future (now is {now.isoformat(timespec='seconds')}); "
            "omit end_date to load everything up to now and keep the incremental state moving."
        )
    if end is not None and end <= start:
        raise GongConfigError(
            f"end_date {end.isoformat()} is not after start_date {start.isoformat()}; "
            "the range is [start_date, end_date), so end_date must be later."
        )
    return TimeRange(start=start, end=end, now=now)


def resolve_log_types(log_types: Union[str, Iterable[str], None]) -> list[LogType]:
    """Map configured log type names (a list or a comma-separated string) to `LogType`s."""
    if log_types is None:
        return list(LOG_TYPES)
    names = log_types.split(",") if isinstance(log_types, str) else list(log_types)
    names = [name.strip() for name in names if name and name.strip()]
    if not names:
        return list(LOG_TYPES)
    unknown = [name for name in names if name not in LOG_TYPES_BY_NAME]
    if unknown:
        raise GongConfigError(
            f"Unknown log type(s) {', '.join(unknown)} in log_types (--log-types, sources.gong.log_types). "
            f"Valid values: {', '.join(LOG_TYPES_BY_NAME)}."
        )
    return [LOG_TYPES_BY_NAME[name] for name in dict.fromkeys(names)]
