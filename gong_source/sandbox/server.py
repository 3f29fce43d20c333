"""A Gong-compatible HTTP server for `GET /v2/logs`, serving `SyntheticLogs` on loopback.

It follows Gong's documented behaviour: Basic or Bearer auth, 400 for malformed parameters,
404 with Gong's JSON body for an empty period, pages of 100 with an opaque cursor bound to the
other parameters, inclusive `fromDateTime` and exclusive `toDateTime`, and optionally the
3 calls/s limit (a token bucket) with 429 and `Retry-After: 1`, shared with a `Neighbour` (another
integration of the company) if one is given, and a daily quota: after `daily_quota` calls in a
"day", 429 with `Retry-After: 3600` until the test calls `next_day()`. Faults can be queued for tests.
Pages come in eventTime order, or (`page_order="shuffled"`) in an order of the query's own: Gong documents none.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import random
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Optional, Union
from urllib.parse import parse_qs, urlsplit

from gong_source.sandbox.data import SyntheticLogs
from gong_source.settings import LOG_TYPES_BY_NAME, PAGE_SIZE

NO_RECORDS_MESSAGE = "No log records found corresponding to the provided log type and time range"
FAR_FUTURE = datetime(9999, 1, 1, tzinfo=timezone.utc)


class SandboxClock:
    """The sandbox's notion of now: fixed and movable (tests), or following the wall clock (demo)."""

    def __init__(self, now: Optional[datetime] = None) -> None:
        self._fixed = now
        self._lock = threading.Lock()

    def now(self) -> datetime:
        """Entries are visible once their eventTime is before this moment."""
        with self._lock:
            return self._fixed if self._fixed is not None else datetime.now(timezone.utc)

    def advance(self, delta: timedelta) -> None:
        """Move a fixed clock forward, so that new entries appear."""
        with self._lock:
            assert self._fixed is not None, "a wall clock cannot be moved"
            self._fixed += delta


@dataclass
class Fault:
    """A fault for the next matching request(s).

    `action` "respond" serves the canned status and body instead of the real answer; "reset" sends
    the real answer's headers and half its body, then drops the connection; "truncate" serves the
    real 200 cut in half (invalid JSON, consistent Content-Length); "delay" answers after `delay` s;
    "gate" answers once the test opens `gate`, so a test can act while the pipeline is mid-run.
    """

    status: int = 200
    body: Union[str, bytes, dict[str, Any]] = ""
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"
    log_type: Optional[str] = None
    times: int = 1
    follow_up_pages_only: bool = False
    """Serve only to requests that carry a cursor (page 2 and later)."""
    action: str = "respond"
    delay: float = 0.0
    gate: Optional[threading.Event] = None
    """With action "gate": hold the real answer until the test sets this event (at most 60 s)."""
    matches: Optional[Callable[[dict[str, str]], bool]] = None
    """Serve only to requests whose query parameters this accepts (e.g. one window's `fromDateTime`)."""


@dataclass
class Reply:
    """What the HTTP handler sends: `cut_at` drops the connection after that many body bytes."""

    status: int
    headers: dict[str, str]
    body: bytes
    cut_at: Optional[int] = None
    delay: float = 0.0


PAGE_ORDERS = ("time", "shuffled")

QUOTA_RETRY_AFTER = "3600"
"""Retry-After of a 429 once the day's quota is spent: longer than any wait a run should sit out."""


@dataclass
class Answer:
    """One /v2/logs request as answered: its parameters, status, day and whether it was a window's last page."""

    params: dict[str, str]
    status: int
    day: int
    last_page: bool

    @property
    def window(self) -> tuple[str, str, str]:
        """(logType, fromDateTime, toDateTime): the window this request read a page of."""
        return (self.params.get("logType", ""), self.params.get("fromDateTime", ""), self.params.get("toDateTime", ""))


@dataclass
class TokenBucket:
    """Gong's per-company limit as the sandbox models it: `rate` tokens a second, at most one second's worth
    (`capacity`); a call that finds less than one token is refused, whoever makes it."""

    rate: float
    tokens: float = 0.0
    at: float = 0.0

    def __post_init__(self) -> None:
        self.tokens = self.capacity

    @property
    def capacity(self) -> float:
        """One second's worth of calls, and at least one (a limit under 1/s still lets a call through)."""
        return max(1.0, self.rate)

    def take(self, now: float) -> bool:
        """Spend a token at `now` (seconds, any clock that only moves forward); False if there is none."""
        self.tokens = min(self.capacity, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens < 1.0:
            return False
        self.tokens -= 1.0
        return True


@dataclass
class Neighbour:
    """Another integration of the same company, spending `rate` calls per second of the shared limit at a
    steady pace (a CRM sync, say), from when the sandbox starts until `stop_after` seconds (None: always).

    It takes from the same token bucket as the pipeline's calls, without HTTP; what it got is in `calls`."""

    rate: float
    stop_after: Optional[float] = None
    calls: list[tuple[float, bool]] = field(default_factory=list)
    """(monotonic time, accepted) of each of its calls: refused ones are the 429s it would have got."""
    stopped_at: Optional[float] = None

    def __post_init__(self) -> None:
        if self.rate <= 0:
            raise ValueError(f"a neighbour calls at a rate above 0, not {self.rate}")

    @property
    def refused(self) -> int:
        return sum(1 for _, accepted in self.calls if not accepted)


@dataclass
class SandboxStats:
    """What the sandbox saw: every /v2/logs request's parameters and the status it answered."""

    requests: list[dict[str, str]] = field(default_factory=list)
    log: list[Answer] = field(default_factory=list)
    """Every /v2/logs answer in order (quota and rate-limit 429s included)."""
    statuses: Counter[int] = field(default_factory=Counter)
    answers: list[tuple[float, int]] = field(default_factory=list)
    """(monotonic time, status) of every answer, in order."""

    def requests_for(self, log_type: str) -> list[dict[str, str]]:
        """The query parameters of every request made for one log type."""
        return [params for params in self.requests if params.get("logType") == log_type]


class GongSandbox:
    """A running Gong-compatible server; use as a context manager or call start()/stop()."""

    def __init__(
        self,
        logs: Optional[SyntheticLogs] = None,
        clock: Optional[SandboxClock] = None,
        access_key: str = "sandbox-access-key",
        access_key_secret: str = "sandbox-access-key-secret",
        access_token: Optional[str] = "sandbox-oauth-token",
        max_requests_per_second: Optional[float] = None,
        error_rate: float = 0.0,
        host: str = "127.0.0.1",
        port: int = 0,
        entry_cache_size: int = 100_000,
        daily_quota: Optional[int] = None,
        neighbour: Optional[Neighbour] = None,
        page_order: str = "time",
        retention: Optional[dict[str, timedelta]] = None,
    ) -> None:
        if page_order not in PAGE_ORDERS:
            raise ValueError(f"page_order must be one of {', '.join(PAGE_ORDERS)}, not {page_order!r}")
        self.page_order = page_order
        self.retention = retention or {}
        """Per log type, how long Gong keeps entries (AccessLog: about 14 days): older ones are no longer served."""
        """"time": entries in eventTime order, as Gong appears to serve them; "shuffled": a query's entries in
        an order of their own (fixed per query), since Gong documents no order and the job must not rely on one."""
        self.logs = logs or SyntheticLogs()
        self.clock = clock or SandboxClock()
        self.access_key = access_key
        self.access_key_secret = access_key_secret
        self.access_token = access_token
        self.max_requests_per_second = max_requests_per_second
        self.daily_quota = daily_quota
        """Calls answered per "day" before every further call gets a quota 429 (None: no quota)."""
        self.day = 0
        self._calls_today = 0
        self.error_rate = error_rate
        """Share of /v2/logs requests answered with a random 5xx (seeded, so runs repeat)."""
        self._chaos = random.Random(self.logs.seed)
        self.stats = SandboxStats()
        self._faults: list[Fault] = []
        self._bucket: Optional[TokenBucket] = None
        self.neighbour = neighbour
        self._neighbour_thread: Optional[threading.Thread] = None
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._cursor_key = hashlib.sha256(f"cursor-{self.logs.seed}".encode()).digest()
        self._request_number = 0
        self.entry_cache_size = entry_cache_size
        self._entry_cache: dict[tuple[str, int], bytes] = {}
        self._server = ThreadingHTTPServer((host, port), _handler_for(self))
        self._server.daemon_threads = True
        self._thread: Optional[threading.Thread] = None

    # -- lifecycle --------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The base URL to configure as `sources.gong.base_url`."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> GongSandbox:
        """Serve in a background thread."""
        self._thread = threading.Thread(target=self._server.serve_forever, name="gong-sandbox", daemon=True)
        self._thread.start()
        if self.neighbour is not None:
            self._neighbour_thread = threading.Thread(target=self._run_neighbour, name="gong-neighbour", daemon=True)
            self._neighbour_thread.start()
        return self

    def stop(self) -> None:
        """Stop serving (and the neighbour) and close the socket."""
        self._stopping.set()
        if self._neighbour_thread is not None:
            self._neighbour_thread.join(timeout=5)
        if self._thread is not None:
            self._server.shutdown()
        self._server.server_close()

    def _run_neighbour(self) -> None:
        """The neighbour's calls, on a fixed schedule (no drift), until it stops or the sandbox does."""
        neighbour = self.neighbour
        assert neighbour is not None
        started = time.monotonic()
        call = 0
        while not self._stopping.is_set():
            due = started + call / neighbour.rate
            if neighbour.stop_after is not None and due - started >= neighbour.stop_after:
                neighbour.stopped_at = due
                return
            if self._stopping.wait(max(0.0, due - time.monotonic())):
                return
            with self._lock:
                accepted = not self._over_rate_limit()
                neighbour.calls.append((time.monotonic(), accepted))
            call += 1

    def __enter__(self) -> GongSandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- test controls ----------------------------------------------------------------------------

    def add_fault(self, fault: Fault) -> None:
        """Queue a canned response for the next matching request(s)."""
        with self._lock:
            self._faults.append(fault)

    @property
    def pending_faults(self) -> int:
        """Queued fault responses not served yet."""
        with self._lock:
            return sum(fault.times for fault in self._faults)

    def next_day(self) -> None:
        """Start a new quota day: the daily quota is available again."""
        with self._lock:
            self.day += 1
            self._calls_today = 0

    def truth(self, log_type: str, start: datetime, end: datetime = FAR_FUTURE) -> list[dict[str, Any]]:
        """Every entry of `log_type` visible now with `start <= eventTime < end`, as served."""
        now = self.clock.now()
        return list(self.logs.entries(log_type, self._kept_from(log_type, start, now), end, now))

    def _kept_from(self, log_type: str, start: datetime, now: datetime) -> datetime:
        """`start`, or where Gong's retention of the type begins if that is later."""
        kept = self.retention.get(log_type)
        return start if kept is None else max(start, now - kept)

    # -- request handling -------------------------------------------------------------------------

    def handle(self, path: str, query: str, authorization: Optional[str]) -> Reply:
        """Answer one request."""
        params = {key: values[-1] for key, values in parse_qs(query, keep_blank_values=True).items()}
        with self._lock:
            self._request_number += 1
            request_id = f"sbx{self._request_number:012d}"
            if path.rstrip("/") == "/v2/logs":
                self.stats.requests.append(params)
            fault = self._take_fault(params)
            if fault is None and self.error_rate and self._chaos.random() < self.error_rate:
                fault = Fault(self._chaos.choice([500, 502, 503]), {"requestId": request_id, "errors": ["chaos"]})
            limited = fault is None and self._over_rate_limit()
            over_quota = self.daily_quota is not None and self._calls_today >= self.daily_quota
            if not limited and not over_quota:
                self._calls_today += 1
            day = self.day
        canned = fault if fault is not None and fault.action == "respond" else None
        status, headers, body = self._answer(path, params, authorization, request_id, canned, limited, over_quota)
        reply = Reply(status, headers, body)
        if fault is not None and fault.action == "reset":
            reply.cut_at = len(body) // 2
        elif fault is not None and fault.action == "truncate":
            reply.body = body[: len(body) // 2]
        elif fault is not None and fault.action == "delay":
            reply.delay = fault.delay
        elif fault is not None and fault.action == "gate" and fault.gate is not None:
            fault.gate.wait(timeout=60)
        with self._lock:
            self.stats.statuses[status] += 1
            self.stats.answers.append((time.monotonic(), status))
            if path.rstrip("/") == "/v2/logs":
                head = body.split(b'"logEntries"', 1)[0]
                last_page = status == 404 or (status == 200 and b'"cursor"' not in head)
                self.stats.log.append(Answer(params, status, day, last_page))
        return reply

    def _take_fault(self, params: dict[str, str]) -> Optional[Fault]:
        for fault in self._faults:
            if (
                fault.log_type in (None, params.get("logType"))
                and ("cursor" in params or not fault.follow_up_pages_only)
                and (fault.matches is None or fault.matches(params))
            ):
                fault.times -= 1
                if fault.times <= 0:
                    self._faults.remove(fault)
                return fault
        return None

    def _over_rate_limit(self) -> bool:
        """Whether the shared token bucket refuses this call (no limit: never)."""
        if not self.max_requests_per_second:
            return False
        if self._bucket is None or self._bucket.rate != self.max_requests_per_second:  # a test may set the limit
            self._bucket = TokenBucket(self.max_requests_per_second, at=time.monotonic())
        return not self._bucket.take(time.monotonic())

    def _answer(
        self,
        path: str,
        params: dict[str, str],
        authorization: Optional[str],
        request_id: str,
        fault: Optional[Fault],
        limited: bool,
        over_quota: bool = False,
    ) -> tuple[int, dict[str, str], bytes]:
        if fault is not None:
            body: Union[str, bytes] = fault.body if isinstance(fault.body, (str, bytes)) else json.dumps(fault.body)
            raw: bytes = body.encode() if isinstance(body, str) else body
            return fault.status, {"Content-Type": fault.content_type, **fault.headers}, raw
        if path.rstrip("/") != "/v2/logs":
            page = b"<html><body><h1>404 Not Found</h1></body></html>"
            return 404, {"Content-Type": "text/html"}, page
        if limited:
            return _error(429, request_id, "API request limit exceeded", {"Retry-After": "1"})
        if over_quota:
            return _error(429, request_id, "Daily API quota exceeded", {"Retry-After": QUOTA_RETRY_AFTER})
        if not self._authorized(authorization):
            return _error(401, request_id, "Access denied: invalid or missing credentials")
        try:
            log_type, start, end, position = self._parse(params)
        except ValueError as problem:
            return _error(400, request_id, str(problem))
        now = self.clock.now()
        indices = self.logs.index_range(log_type, self._kept_from(log_type, start, now), min(end, now))
        total = self.logs.count(indices) - self.logs.hidden_count(log_type, indices, now)
        if total == 0:
            return _error(404, request_id, NO_RECORDS_MESSAGE)
        page_number = position[2] if position else 0
        if self.page_order == "shuffled":
            entries, following = self._shuffled_page(log_type, params, indices, now, position)
        else:
            entries, following = self._page_in_time_order(log_type, indices, now, position)
        records: dict[str, Any] = {
            "totalRecords": total,
            "currentPageSize": len(entries),
            "currentPageNumber": page_number,
        }
        if following is not None:
            records["cursor"] = self._make_cursor(params, *following, page_number + 1)
        # The JSON of {"requestId", "records", "logEntries"}, assembled from the entries' cached JSON.
        head = json.dumps({"requestId": request_id, "records": records})[:-1].encode()
        return 200, {"Content-Type": "application/json"}, head + b', "logEntries": [' + b", ".join(entries) + b"]}"

    def _page_in_time_order(
        self, log_type: str, indices: range, now: datetime, position: Optional[tuple[int, int, int]]
    ) -> tuple[list[bytes], Optional[tuple[int, int]]]:
        """A page of entries in eventTime order, from the cursor's (index, copy) on, and where the next page
        starts (None: this is the last)."""
        index, copy, _ = position or (indices.start, 0, 0)
        entries: list[bytes] = []
        while index < indices.stop and len(entries) < PAGE_SIZE:
            if self.logs.is_hidden(log_type, index, now):
                index, copy = index + 1, 0
                continue
            entry = self._entry_json(log_type, index)
            copies = self.logs.copies(index)
            while copy < copies and len(entries) < PAGE_SIZE:
                entries.append(entry)
                copy += 1
            if copy >= copies:
                index, copy = index + 1, 0
        return entries, ((index, copy) if index < indices.stop else None)

    def _shuffled_page(
        self,
        log_type: str,
        params: dict[str, str],
        indices: range,
        now: datetime,
        position: Optional[tuple[int, int, int]],
    ) -> tuple[list[bytes], Optional[tuple[int, int]]]:
        """A page of the query's entries in an order of their own: the same for every page of the query, and
        unrelated to time. The cursor holds the offset in that order."""
        served = [
            index
            for index in indices
            if not self.logs.is_hidden(log_type, index, now)
            for _ in range(self.logs.copies(index))
        ]
        random.Random(self._binding(params)).shuffle(served)
        offset = position[0] if position else 0
        page = served[offset : offset + PAGE_SIZE]
        end = offset + len(page)
        return [self._entry_json(log_type, index) for index in page], ((end, 0) if end < len(served) else None)

    def _entry_json(self, log_type: str, index: int) -> bytes:
        """Entry `index` as JSON bytes, built once: entries are pure functions of (type, index)."""
        key = (log_type, index)
        cached = self._entry_cache.get(key)
        if cached is None:
            if len(self._entry_cache) >= self.entry_cache_size:
                self._entry_cache.clear()
            cached = self._entry_cache[key] = json.dumps(self.logs.entry(log_type, index)).encode()
        return cached

    def warm_up(self) -> None:
        """Build every entry's JSON ahead of time (benchmarks), so serving costs only the HTTP exchange."""
        for log_type in LOG_TYPES_BY_NAME:
            for index in self.logs.index_range(log_type, self.logs.epoch, self.clock.now()):
                self._entry_json(log_type, index)

    def _authorized(self, authorization: Optional[str]) -> bool:
        if not authorization:
            return False
        scheme, _, value = authorization.partition(" ")
        if scheme == "Basic":
            expected = base64.b64encode(f"{self.access_key}:{self.access_key_secret}".encode()).decode()
            return hmac.compare_digest(value, expected)
        if scheme == "Bearer" and self.access_token:
            return hmac.compare_digest(value, self.access_token)
        return False

    def _parse(self, params: dict[str, str]) -> tuple[str, datetime, datetime, Optional[tuple[int, int, int]]]:
        log_type = params.get("logType", "")
        if log_type not in LOG_TYPES_BY_NAME:
            raise ValueError(f"logType must be one of {', '.join(LOG_TYPES_BY_NAME)}")
        start = _parse_time(params.get("fromDateTime"), "fromDateTime")
        if start is None:
            raise ValueError("fromDateTime is required")
        end = _parse_time(params.get("toDateTime"), "toDateTime") or FAR_FUTURE
        if end <= start:
            raise ValueError("toDateTime must be after fromDateTime")
        cursor = params.get("cursor")
        return log_type, start, end, self._read_cursor(cursor, params) if cursor else None

    def _binding(self, params: dict[str, str]) -> bytes:
        """The other parameters a cursor is bound to: Gong requires them unchanged."""
        bound = {key: value for key, value in sorted(params.items()) if key != "cursor"}
        return json.dumps(bound).encode()

    def _make_cursor(self, params: dict[str, str], index: int, copy: int, page_number: int) -> str:
        payload = base64.urlsafe_b64encode(json.dumps([index, copy, page_number]).encode()).decode()
        signature = hmac.new(self._cursor_key, payload.encode() + self._binding(params), "sha256").hexdigest()[:24]
        return f"{payload}.{signature}"

    def _read_cursor(self, cursor: str, params: dict[str, str]) -> tuple[int, int, int]:
        payload, _, signature = cursor.partition(".")
        expected = hmac.new(self._cursor_key, payload.encode() + self._binding(params), "sha256").hexdigest()[:24]
        if not hmac.compare_digest(signature, expected):
            raise ValueError("cursor is invalid or does not match the other request parameters")
        index, copy, page_number = json.loads(base64.urlsafe_b64decode(payload))
        return int(index), int(copy), int(page_number)


def _parse_time(value: Optional[str], name: str) -> Optional[datetime]:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{name} '{value}' is not a valid ISO-8601 date-time") from None
    if parsed.tzinfo is None:
        raise ValueError(f"{name} '{value}' has no UTC offset")
    return parsed


def _error(
    status: int, request_id: str, message: str, headers: Optional[dict[str, str]] = None
) -> tuple[int, dict[str, str], bytes]:
    body = json.dumps({"requestId": request_id, "errors": [message]}).encode()
    return status, {"Content-Type": "application/json", **(headers or {})}, body


def _handler_for(sandbox: GongSandbox) -> Callable[..., BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body are two writes: with Nagle's algorithm on, the body waits for the client's
        # delayed ACK of the headers (tens of ms per response on loopback).
        disable_nagle_algorithm = True

        def handle(self) -> None:
            # A client that closed its idle keep-alive connection (a run that ended): nothing to answer.
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                super().handle()

        def do_GET(self) -> None:
            try:
                self._answer()
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True  # the client gave up (its timeout): nothing to answer to

        def _answer(self) -> None:
            parts = urlsplit(self.path)
            reply = sandbox.handle(parts.path, parts.query, self.headers.get("Authorization"))
            if reply.delay:
                time.sleep(reply.delay)  # a slow server, for client timeout tests
            self.send_response(reply.status)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            if reply.cut_at is None:
                self.wfile.write(reply.body)
                return
            self.wfile.write(reply.body[: reply.cut_at])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)  # the peer sees the connection reset mid-body

        def log_message(self, format: str, *args: Any) -> None:
            """Silent: the sandbox must not print requests (they carry no secret, but they are noise)."""

    return Handler
