"""Gong's limits, shared by every resource of a process: the calls-per-second pace and the request budget."""

from __future__ import annotations

import threading
import time
from collections import defaultdict, deque
from typing import Any, Callable, Optional

from requests import PreparedRequest, Response
from requests.adapters import HTTPAdapter
from requests.exceptions import ConnectionError as RequestsConnectionError
from requests.exceptions import Timeout

from gong_source.errors import GongConfigError, StoppedEarly
from gong_source.settings import RATE_SAFETY_MARGIN


class RequestGovernor:
    """Paces requests to `max_per_second` across threads and stops the run once `max_requests` are sent.

    The pace is a sliding window: request k waits until `RATE_SAFETY_MARGIN` seconds after request
    k - 3 (at 3/s), so after a pause (a load, a slow response) up to three requests go at once
    instead of catching up one interval at a time.
    """

    def __init__(self, max_per_second: float, max_requests: Optional[int]) -> None:
        if max_per_second <= 0:
            raise GongConfigError("sources.gong.max_requests_per_second must be above 0 (Gong allows 3).")
        if max_requests is not None and max_requests < 0:
            raise GongConfigError("sources.gong.max_requests_per_run must be >= 0 (0: unlimited).")
        self.max_per_second = max_per_second
        self.max_requests = max_requests
        self._burst = max(1, int(max_per_second))
        self._period = RATE_SAFETY_MARGIN * self._burst / max_per_second
        self._recent_slots: deque[float] = deque(maxlen=self._burst)
        self._paused_until = 0.0
        self._lock = threading.Lock()
        self.sent: dict[str, int] = defaultdict(int)
        self.answered = 0
        """Responses other than 429 (a 429 is sent, but not a call Gong answered): what a quota lets through."""
        self.quota_stopped = False
        self.stop_reason: Optional[str] = None

    @property
    def total_sent(self) -> int:
        """Requests sent so far by every resource."""
        with self._lock:
            return sum(self.sent.values())

    @property
    def remaining(self) -> Optional[int]:
        """Requests left in this run's budget (None: unlimited)."""
        return None if self.max_requests is None else max(0, self.max_requests - self.total_sent)

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

    def pause(self, seconds: float) -> None:
        """Hold every resource's next request back by `seconds` (after a short 429 Retry-After)."""
        with self._lock:
            self._paused_until = max(self._paused_until, time.monotonic() + seconds)

    def acquire(self, log_type: str) -> None:
        """Block until a request may be sent within the rate limit; raise `StoppedEarly` if none may."""
        with self._lock:
            spent = self.max_requests is not None and sum(self.sent.values()) >= self.max_requests
            if self.stop_reason is None and spent:
                self.stop_reason = (
                    f"the run's request budget of {self.max_requests} (sources.gong.max_requests_per_run) is spent"
                )
            if self.stop_reason is not None:
                raise StoppedEarly(self.stop_reason)
            now = time.monotonic()
            slot = max(now, self._paused_until)
            if len(self._recent_slots) == self._burst:
                slot = max(slot, self._recent_slots[0] + self._period)
            self._recent_slots.append(slot)
            self.sent[log_type] += 1
        if slot > now:
            time.sleep(slot - now)
            with self._lock:
                if self.stop_reason is not None:  # a quota 429 came while this request waited for its slot
                    self.sent[log_type] -= 1
                    raise StoppedEarly(self.stop_reason)


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
