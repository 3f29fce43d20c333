"""HTTP access to Gong's `GET /v2/logs`: paging, Gong's status-code rules and response checks."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from typing import Any, Generator, Optional
from urllib.parse import parse_qs, urlsplit

from dlt.common.configuration.resolve import resolve_configuration
from dlt.common.configuration.specs import RuntimeConfiguration
from dlt.sources.helpers.requests.retry import Client
from dlt.sources.helpers.rest_client.auth import AuthConfigBase
from dlt.sources.helpers.rest_client.client import RESTClient
from dlt.sources.helpers.rest_client.exceptions import IgnoreResponseException
from dlt.sources.helpers.rest_client.paginators import JSONResponseCursorPaginator
from requests import Response

from gong_source.errors import (
    GongApiError,
    GongAuthError,
    GongConfigError,
    GongResponseError,
    IncompleteWindowError,
    StoppedEarly,
    TruncatedBodyError,
)
from gong_source.limits import GovernedAdapter, RequestGovernor
from gong_source.report import LogTypeReport, RunReport
from gong_source.settings import LOGS_PATH, LOGS_READ_SCOPE, NOT_FOUND_MEANS_EMPTY, SHORT_RETRY_AFTER_SECONDS

MAX_ERROR_TEXT = 300
"""How much of a non-Gong error body goes into a message."""


@dataclass
class LogPage:
    """One page of `/v2/logs`: its entries and Gong's `records` counters."""

    entries: list[Any]
    total_records: Optional[int]


def format_gong_time(moment: datetime, round_up: bool = False) -> str:
    """Render an aware datetime in whole UTC seconds, as Gong documents it: 2026-01-31T08:00:00Z.

    Rounds down by default (an inclusive start then reads a little more, which the merge absorbs);
    `round_up` suits an exclusive end.
    """
    whole = moment.astimezone(timezone.utc)
    if round_up and whole.microsecond:
        whole += timedelta(seconds=1)
    return whole.replace(microsecond=0).isoformat().replace("+00:00", "Z")


class RepeatingCursorPaginator(JSONResponseCursorPaginator):
    """dlt's cursor paginator on `records.cursor`, which fails instead of looping on a repeated cursor."""

    def __init__(self) -> None:
        super().__init__(cursor_path="records.cursor", cursor_param="cursor")
        self._seen_cursors: set[str] = set()

    def update_state(self, response: Response, data: Optional[list[Any]] = None) -> None:
        super().update_state(response, data)
        cursor = self._next_reference
        if cursor is None:
            return
        if cursor in self._seen_cursors:
            raise GongResponseError(
                f"Gong returned a cursor it had already returned ({_describe_url(response)}); "
                "paging would never end, so the run stopped. Retry later; if it persists, report the "
                "requestId to Gong support.",
                response=response,
                request_id=str(response.json().get("requestId")),
            )
        self._seen_cursors.add(cursor)


@dataclass(frozen=True)
class HttpSettings:
    """Timeouts and retries: dlt's `runtime.request_*` settings plus the longest Retry-After to wait out."""

    timeout: float
    max_attempts: int
    backoff_factor: float
    max_retry_after: float

    @classmethod
    def from_runtime_config(cls, max_retry_after: float) -> HttpSettings:
        """dlt's documented `runtime.request_*` settings, with our longest Retry-After to wait out."""
        if max_retry_after < 0:
            raise GongConfigError("sources.gong.max_retry_after_seconds must be >= 0.")
        runtime = resolve_configuration(RuntimeConfiguration())
        return cls(
            timeout=float(runtime.request_timeout),
            max_attempts=runtime.request_max_attempts,
            backoff_factor=runtime.request_backoff_factor,
            max_retry_after=max_retry_after,
        )


class GongLogsClient:
    """Reads one log type's entries for a time range, page by page, within Gong's limits.

    One per log type for a whole run (see `ReadPlan.client_for`): its `RESTClient` holds one
    `requests` session; only the governor (rate limit and budget) is shared between log types.
    """

    def __init__(
        self,
        base_url: str,
        auth: AuthConfigBase,
        log_type: str,
        http: HttpSettings,
        governor: RequestGovernor,
        report: RunReport,
        type_report: LogTypeReport,
    ) -> None:
        self._log_type = log_type
        self._governor = governor
        self._max_retry_after = http.max_retry_after
        self._report = report
        self._type_report = type_report
        retrying = Client(
            request_timeout=http.timeout,
            raise_for_status=False,
            request_max_attempts=http.max_attempts,
            request_backoff_factor=http.backoff_factor,
            # dlt caps both Retry-After and its backoff at this; a longer Retry-After stops the run instead.
            request_max_retry_delay=http.max_retry_after,
            retry_condition=lambda _, error: isinstance(error, TruncatedBodyError),
        )
        session = retrying.session
        adapter = GovernedAdapter(governor, log_type, on_failure=lambda: report.count(type_report, retries=1))
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        self._client = RESTClient(base_url=base_url, auth=auth, headers={"Accept": "application/json"}, session=session)

    def close(self) -> None:
        """Close the HTTP session and its connections."""
        self._client.session.close()

    def _on_response(self, response: Response, *args: Any, **kwargs: Any) -> None:
        """Count throttling and retries, stop on a quota-sized Retry-After, then apply Gong's rules."""
        status = response.status_code
        self._governor.count_answer(status)
        if status == 429 or status >= 500:
            self._report.count(self._type_report, throttled=int(status == 429), retries=1)
        if status == 429:
            wait = _retry_after_seconds(response)
            if wait is None or wait <= self._max_retry_after:
                # The company's per-second limit: every resource waits (1 s when Gong gives no Retry-After), and
                # the pace slows down.
                self._governor.throttled_for(SHORT_RETRY_AFTER_SECONDS if wait is None else wait)
            if wait is not None and wait > self._max_retry_after:
                reason = (
                    f"Gong asked to wait {wait:.0f} s before the next call (429 Retry-After) for {self._log_type}, "
                    f"longer than sources.gong.max_retry_after_seconds={self._max_retry_after:.0f}: the daily "
                    "quota is probably spent"
                )
                self._governor.quota_refused(wait)
                self._governor.stop(reason, quota=True)
                raise StoppedEarly(reason)
        check_logs_response(response, *args, **kwargs)

    def iter_pages(self, log_type: str, start: datetime, end: datetime) -> Generator[LogPage, None, None]:
        """Yield the pages of `log_type` entries with `start <= eventTime < end`.

        Every page request repeats the same `logType`, `fromDateTime` and `toDateTime`, as Gong's
        cursor requires. An empty period (Gong's 404) yields nothing. Raises if the pages hold
        fewer entries than Gong's `totalRecords`, so that a short read is never taken as complete.
        """
        params = {
            "logType": log_type,
            "fromDateTime": format_gong_time(start),
            "toDateTime": format_gong_time(end, round_up=True),
        }
        fetched, total = 0, None
        for page in self._client.paginate(
            LOGS_PATH,
            params=params,
            paginator=RepeatingCursorPaginator(),
            data_selector="logEntries",
            # Our hook replaces dlt's default raise_for_status hook, so it raises for every error itself.
            hooks={"response": [self._on_response]},
        ):
            records = page.response.json().get("records") or {}
            total = records.get("totalRecords") if isinstance(records.get("totalRecords"), int) else None
            fetched += len(page)
            yield LogPage(entries=list(page), total_records=total)
        if total is not None and fetched < total:
            raise IncompleteWindowError(
                f"Gong reported {total} {log_type} entries for [{params['fromDateTime']}, {params['toDateTime']}) "
                f"but its pages held only {fetched}, even after reading the window again. Progress was not moved "
                "past it; run again, and report it to Gong support if it persists."
            )


def check_logs_response(response: Response, *args: Any, **kwargs: Any) -> None:
    """Response hook: accept Gong's 200 pages, treat Gong's 404 as empty, and raise clear errors."""
    status = response.status_code
    if response.is_redirect:
        return  # requests follows it (and drops Authorization if the host changes); the final response is checked
    if status == 200:
        body = _json_body(response)
        if not isinstance(body, dict) or not isinstance(body.get("logEntries"), list):
            raise GongResponseError(
                f"{_describe_url(response)} answered 200 with a body that is not Gong's logs response "
                f"(no 'logEntries' list): {_shape(response)}. Check sources.gong.base_url; the "
                "page was not treated as empty.",
                response=response,
            )
        records = body.get("records")
        if records is not None and not isinstance(records, dict):
            raise GongResponseError(
                f"{_describe_url(response)} answered 200 with a 'records' field that is not an object.",
                response=response,
            )
        # dlt's data selector and paginator each call response.json(); decode the body only once.
        response.json = lambda **_: body  # type: ignore[method-assign]
        return

    gong_error = _gong_error_body(response)
    request_id = gong_error.get("requestId") if gong_error else None
    errors = [str(error) for error in gong_error.get("errors", [])] if gong_error else []
    gong_says = f" Gong says: {'; '.join(errors)} (requestId {request_id})." if gong_error else ""
    if status == NOT_FOUND_MEANS_EMPTY and gong_error is not None and not _is_follow_up_page(response):
        raise IgnoreResponseException()
    if status == NOT_FOUND_MEANS_EMPTY and gong_error is not None:
        raise GongResponseError(
            f"{_describe_url(response)} answered 404 (no records) while following a cursor, after earlier "
            f"pages had entries.{gong_says} The window was not read completely, so nothing from this run was "
            "loaded; run it again.",
            response=response,
            request_id=request_id,
            errors=errors,
        )
    if status == NOT_FOUND_MEANS_EMPTY:
        raise GongApiError(
            f"{_describe_url(response)} answered 404 without Gong's JSON error body: this is not Gong's "
            f"/v2/logs endpoint. Check sources.gong.base_url (env SOURCES__GONG__BASE_URL); it should be "
            f"your Gong API host such as https://company-17.api.gong.io. Body: {_snippet(response)!r}",
            response=response,
        )
    if status in (401, 403):
        raise GongAuthError(
            f"Gong rejected the credentials with {status} at {_describe_url(response)}.{gong_says} Check "
            "sources.gong.credentials.access_key / access_key_secret (env SOURCES__GONG__CREDENTIALS__ACCESS_KEY, "
            "SOURCES__GONG__CREDENTIALS__ACCESS_KEY_SECRET) or sources.gong.credentials.access_token: the key "
            f"may have expired or been revoked, and it needs the '{LOGS_READ_SCOPE}' scope.",
            response=response,
            request_id=request_id,
            errors=errors,
        )
    if status == 400:
        raise GongApiError(
            f"Gong refused the request as malformed (400) at {_describe_url(response)}.{gong_says} "
            "Check start_date, end_date and log_types.",
            response=response,
            request_id=request_id,
            errors=errors,
        )
    if status == 429 or status >= 500:
        raise GongApiError(
            f"{_describe_url(response)} still answered {status} after dlt's retries "
            f"(runtime.request_max_attempts).{gong_says} The run stopped with nothing half-written; "
            "run it again later, it resumes from the last loaded entry.",
            response=response,
            request_id=request_id,
            errors=errors,
        )
    details = gong_says or f" Body: {_snippet(response)!r}"
    raise GongApiError(
        f"{_describe_url(response)} answered an unexpected {status}.{details}",
        response=response,
        request_id=request_id,
        errors=errors,
    )


def _retry_after_seconds(response: Response) -> Optional[float]:
    """The Retry-After header in seconds (Gong sends an integer; HTTP also allows a date), or None."""
    header = response.headers.get("Retry-After", "").strip()
    if not header:
        return None
    try:
        return max(0.0, float(header))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(header)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


def _is_follow_up_page(response: Response) -> bool:
    """Whether the request carried a cursor: Gong's 404 means "empty" only for a first page."""
    return "cursor" in parse_qs(urlsplit(response.request.url or "").query)


def _json_body(response: Response) -> Any:
    try:
        return json.loads(response.content)
    except ValueError:
        raise TruncatedBodyError(
            f"{_describe_url(response)} answered {response.status_code} with a body that is not valid JSON "
            f"(possibly cut off), also after retries: {_shape(response)}. Nothing from it was loaded; run again.",
            response=response,
        ) from None


def _gong_error_body(response: Response) -> Optional[dict[str, Any]]:
    """Gong's error body `{"requestId": ..., "errors": [...]}`, or None if the body is anything else."""
    try:
        body = json.loads(response.content)
    except ValueError:
        return None
    if isinstance(body, dict) and isinstance(body.get("errors"), list) and "requestId" in body:
        return body
    return None


def _describe_url(response: Response) -> str:
    """`GET https://host/v2/logs?logType=...` without the long opaque cursor."""
    parts = urlsplit(response.url)
    query = "&".join(pair for pair in parts.query.split("&") if pair and not pair.startswith("cursor="))
    return f"GET {parts.scheme}://{parts.netloc}{parts.path}" + (f"?{query}" if query else "")


def _shape(response: Response) -> str:
    """Describe a 200 body without quoting it: it may hold log entries, hence personal data."""
    content_type = response.headers.get("Content-Type", "no content type")
    return f"{len(response.content)} bytes of {content_type}"


def _snippet(response: Response) -> str:
    return response.content[:MAX_ERROR_TEXT].decode("utf-8", errors="replace")
