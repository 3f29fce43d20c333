"""Gong's limits, shared by every resource of a process: the calls-per-second pace and the request budget."""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from typing import Any, Callable, Optional

from requests import PreparedRequest, Response
from requests.adapters import HTTPAdapter
from requests.exceptions import ConnectionError as RequestsConnectionError
from requests.exceptions import Timeout

from gong_source.errors import GongConfigError, StoppedEarly
from gong_source.pace import AdaptivePace


class RequestGovernor:
    """Paces requests across threads at an adaptive pace (`AdaptivePace`: at most `max_per_second`, slower
    while Gong answers 429 because other integrations of the company share the limit), and stops the run
    once `max_requests` are sent. It also keeps what the run's summary says about the rate limit."""

    def __init__(self, max_per_second: float, max_requests: Optional[int]) -> None:
        if max_per_second <= 0:
            raise GongConfigError("sources.gong.max_requests_per_second must be above 0 (Gong allows 3).")
        if max_requests is not None and max_requests < 0:
            raise GongConfigError("sources.gong.max_requests_per_run must be >= 0 (0: unlimited).")
        self.max_per_second = max_per_second
        self.max_requests = max_requests
        self.pace = AdaptivePace(max_per_second)
        self._last_slot = float("-inf")
        self._last_pace: Optional[float] = None
        self._paused_until = 0.0
        self._lock = threading.Lock()
        self.sent: dict[str, int] = defaultdict(int)
        self.answered = 0
        """Responses other than 429 (a 429 is sent, but not a call Gong answered): what a quota lets through."""
        self.throttled = 0
        """429s with a short Retry-After (the per-second limit): the calls the company's other tools cost us."""
        self.lowest_pace = max_per_second
        """The pace right after its deepest cut (reported only if Gong answered 429)."""
        self.pace_wait_seconds = 0.0
        """Summed over requests: how long each waited for its slot of the pace."""
        self.retry_after_seconds = 0.0
        """Wall-clock seconds every request was held back for a 429's Retry-After."""
        self.quota_stopped = False
        self.quota_resets_in: Optional[float] = None
        """A quota 429's Retry-After, in seconds from `quota_refused_at` (monotonic): when Gong's day turns."""
        self.quota_refused_at: Optional[float] = None
        self.stop_reason: Optional[str] = None
        self.budget_spent_reason = (
            f"the run's request budget of {max_requests} (sources.gong.max_requests_per_run) is spent"
        )
        """What the stop says once `max_requests` are sent (`limit_to` may name another limit)."""
        self.on_sent: list[Callable[[int], None]] = []
        """Called with the run's total after each request is granted (the daily ledger's local file)."""

    @property
    def total_sent(self) -> int:
        """Requests sent so far by every resource."""
        with self._lock:
            return sum(self.sent.values())

    @property
    def remaining(self) -> Optional[int]:
        """Requests left in this run's budget (None: unlimited)."""
        return None if self.max_requests is None else max(0, self.max_requests - self.total_sent)

    def limit_to(self, max_requests: int, reason: str) -> bool:
        """Lower the run's hard budget (e.g. to what the day's ceiling leaves); `reason` is what the stop then
        says. Returns whether it lowered it."""
        with self._lock:
            if self.max_requests is not None and max_requests >= self.max_requests:
                return False
            self.max_requests = max(0, max_requests)
            self.budget_spent_reason = reason
            return True

    def quota_refused(self, retry_after: float) -> None:
        """Remember when a quota 429 said Gong's quota comes back."""
        with self._lock:
            self.quota_refused_at, self.quota_resets_in = time.monotonic(), retry_after

    def stop(self, reason: str, quota: bool = False) -> None:
        """Make every later request of every resource stop the run cleanly (`quota`: Gong's daily quota)."""
        with self._lock:
            self.stop_reason = self.stop_reason or reason
            self.quota_stopped = self.quota_stopped or quota

    def count_answer(self, status: int) -> None:
        """Count a response that is not a 429 as a call Gong answered."""
        if status != 429:
            with self._lock:
                self.answered += 1

    def throttled_for(self, seconds: float) -> None:
        """A 429 with a short Retry-After: hold every resource's next request back by `seconds` (Gong's limit
        is per company, so one resource's 429 is every resource's) and slow the pace down."""
        with self._lock:
            now = time.monotonic()
            self.throttled += 1
            if self.pace.throttled(now):
                self.lowest_pace = min(self.lowest_pace, self.pace.rate(now))  # a cut is a cycle's low point
            until = now + seconds
            self.retry_after_seconds += max(0.0, until - max(self._paused_until, now))
            self._paused_until = max(self._paused_until, until)

    def pace_summary(self) -> dict[str, Any]:
        """What the run's summary says about the rate limit (`--summary-json` `rate_limit`)."""
        with self._lock:
            settled, lowest = self._last_pace, self.lowest_pace if self.pace.cuts else None
            return {
                "limit_per_second": self.max_per_second,
                "http_429": self.throttled,
                "pace_cuts": self.pace.cuts,
                "pace_settled_per_second": None if settled is None else round(settled, 3),
                "pace_lowest_per_second": None if lowest is None else round(lowest, 3),
                "waited_for_pace_seconds": round(self.pace_wait_seconds, 1),
                "waited_for_retry_after_seconds": round(self.retry_after_seconds, 1),
            }

    def acquire(self, log_type: str) -> None:
        """Block until a request may be sent within the rate limit; raise `StoppedEarly` if none may."""
        with self._lock:
            spent = self.max_requests is not None and sum(self.sent.values()) >= self.max_requests
            if self.stop_reason is None and spent:
                self.stop_reason = self.budget_spent_reason
            if self.stop_reason is not None:
                raise StoppedEarly(self.stop_reason)
            self.sent[log_type] += 1
            send_at = self._schedule(time.monotonic())
        while True:
            now = time.monotonic()
            if send_at > now:
                time.sleep(send_at - now)
            with self._lock:
                if self.stop_reason is not None:  # a quota 429 came while this request waited for its slot
                    self.sent[log_type] -= 1
                    raise StoppedEarly(self.stop_reason)
                if self._paused_until <= send_at:
                    total = sum(self.sent.values())
                    break
                # A 429 came while this request waited: it waits out the Retry-After too, at the new pace.
                send_at = self._schedule(time.monotonic())
        for callback in self.on_sent:
            callback(total)

    def _schedule(self, now: float) -> float:
        """The moment the next request may go (call holding the lock)."""
        held = self._paused_until > now
        start = max(now, self._paused_until)
        slot, send_at = self.pace.next_slot(self._last_slot, start, held)
        self._last_slot = slot
        self._last_pace = self.pace.rate(start)
        self.pace_wait_seconds += max(0.0, send_at - start)
        return send_at


class GovernedAdapter(HTTPAdapter):
    """A transport adapter that asks the governor before every attempt, retries included.

    It sits below dlt's retrying `send`, so the rate limit and the budget also cover retries.
    """

    def __init__(self, governor: RequestGovernor, log_type: str, on_failure: Callable[[], None]) -> None:
        super().__init__()
        self._governor = governor
        self._log_type = log_type
        self._on_failure = on_failure

    def send(self, request: PreparedRequest, *args: Any, **kwargs: Any) -> Response:
        self._governor.acquire(self._log_type)
        try:
            return super().send(request, *args, **kwargs)
        except (RequestsConnectionError, Timeout):
            self._on_failure()  # dlt's retrying session will try again (or give up)
            raise
