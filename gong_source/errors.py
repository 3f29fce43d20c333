"""Exceptions whose messages tell a user what went wrong and what to do. None carries a secret."""

from __future__ import annotations

from typing import Optional, Sequence

from requests import HTTPError, Response


class GongError(Exception):
    """Base class for every error the connector raises on purpose."""


class GongConfigError(GongError):
    """Configuration or command-line input is invalid; raised before any request is made."""


class StateLayoutError(GongConfigError):
    """The pipeline's saved state was written by a newer version of gong-logs."""


class GongApiError(GongError, HTTPError):
    """Gong (or whatever answers at `base_url`) returned something the connector cannot use.

    It is an `HTTPError` carrying the response, so dlt's retrying session retries it when the
    status is retryable (429, 5xx) and re-raises it once the attempts are spent.
    """

    def __init__(
        self,
        message: str,
        *,
        response: Optional[Response] = None,
        request_id: Optional[str] = None,
        errors: Sequence[str] = (),
    ) -> None:
        super().__init__(message, response=response)
        self.status_code = response.status_code if response is not None else None
        self.request_id = request_id
        self.errors = list(errors)


class GongAuthError(GongApiError):
    """Gong rejected the credentials (401/403)."""


class GongResponseError(GongApiError):
    """A response that is not Gong's documented shape; never treated as an empty result."""


class TruncatedBodyError(GongResponseError):
    """A body that is not valid JSON, typically cut off in transit; retried like a 5xx."""


class IncompleteWindowError(GongResponseError):
    """A window's pages held fewer entries than Gong's `totalRecords` (it may have written entries meanwhile)."""


class GongEntryError(GongError):
    """A single log entry cannot be loaded as-is, for example an unparseable `eventTime`."""


class StoppedEarly(GongError):
    """A deliberate, clean stop (request budget or Gong's daily quota spent); what was read is loaded."""

    kind = "run"
    """What stopped: the whole run here; a subclass names a stop of one log type."""


class BudgetShareSpent(StoppedEarly):
    """One log type used its share of the run's budget; the other types go on with theirs."""

    kind = "share"


class SecondTooDense(BudgetShareSpent):
    """One second of a type holds more pages than its share can read: more requests will not come this run."""

    kind = "dense_second"
