"""One request budget for every log type of a run, and the daily quota learned from Gong's 429s.

Gong's quota is shared by every integration of a company, so a run often gets fewer calls than it
would like. A window that cannot finish is read in vain (progress moves only with whole windows),
so the budget is planned together, before the types read:

- The run's budget is `max_requests_per_run`, lowered to the calls Gong allowed the last time a
  run was stopped by its daily quota (the *learned quota*, kept in dlt state).
- It is split max-min fairly between the log types by what each still needs: a type that needs
  little gets all it needs, the rest is split evenly. What a type turns out not to need goes to a
  common pool that the others draw from.
- Each type sizes its windows to the requests it holds, so the windows in flight together fit the
  budget. When the learned quota is planned out and `max_requests_per_run` allows more, the types
  go on in small windows, one at a time (one page at first, each one committed on its own; growing
  by a page per 10 requests per type that Gong answered beyond the learned quota), so that a quota
  429 there wastes little: Gong may allow more today than it did last time.
"""

from __future__ import annotations

import logging
import math
import sys
import threading
from dataclasses import dataclass
from typing import Any, Mapping, Optional, Sequence

from gong_source.limits import RequestGovernor

logger = logging.getLogger("gong_source")

QUOTA_STATE_KEY = "learned_quota"
"""Source-level dlt state: `{"calls": n, "learned_at": iso, "source": "quota_429" | "run", "run_id": ...}`."""

EXPLORATION_GROWTH = 10
"""Past a learned quota, windows grow by one page per this many answered requests per type: a quota 429
then wastes at most about a tenth of what was read past it."""

RUNS_EFFICIENCY = 0.8
"""Share of a constrained run's requests the plan counts as progress when it estimates the runs left
(the rest: probes of unknown density and partly filled last pages)."""


@dataclass
class LearnedQuota:
    """What the last runs learned about how many calls Gong allows this company's job in a day."""

    calls: int
    learned_at: str
    source: str
    run_id: str = ""

    @classmethod
    def from_state(cls, source_state: Mapping[str, Any]) -> Optional[LearnedQuota]:
        """Read it from the source state, ignoring anything malformed (it is only a hint)."""
        saved = source_state.get(QUOTA_STATE_KEY)
        if not isinstance(saved, dict) or not isinstance(saved.get("calls"), int) or saved["calls"] < 1:
            return None
        fields = (str(saved.get(name, "")) for name in ("learned_at", "source", "run_id"))
        return cls(saved["calls"], *fields)

    def save(self, source_state: dict[str, Any]) -> None:
        """Write it to the source state (committed with the run's data)."""
        source_state[QUOTA_STATE_KEY] = {
            "calls": self.calls,
            "learned_at": self.learned_at,
            "source": self.source,
            "run_id": self.run_id,
        }


def fair_shares(budget: int, needs: Mapping[str, Optional[int]]) -> dict[str, int]:
    """Max-min fair split of `budget` requests: ascending by need, each type takes what it needs or an
    even share of what is left, whichever is smaller; an unknown need (None) counts as unbounded."""
    shares: dict[str, int] = {}
    left = budget
    order = sorted(needs, key=lambda name: (math.inf if needs[name] is None else needs[name], name))
    for position, name in enumerate(order):
        even = left // (len(order) - position)
        need = needs[name]
        shares[name] = even if need is None else min(need, even)
        left -= shares[name]
    return shares  # what is left, when every type got all it needs, is the run's common pool


class BudgetPlanner:
    """Shares one run's budget between its log types; thread-safe, shared by all resources of a run."""

    def __init__(self, governor: RequestGovernor, max_requests: Optional[int], log_types: Sequence[str]) -> None:
        self._governor = governor
        self.max_requests = max_requests
        """`max_requests_per_run` (or what the day's ceiling leaves, if lower): the hard limit the governor
        enforces (None: unlimited)."""
        self.limit_source: Optional[str] = None
        """What set `max_requests` when it is not `max_requests_per_run` (the day's ceiling)."""
        self.log_types = list(log_types)
        self.learned: Optional[LearnedQuota] = None
        self.budget: Optional[int] = None
        """What this run plans with: `max_requests` or the learned quota, whichever is lower."""
        self.started = False
        self.needs: dict[str, Optional[int]] = {}
        self._allotted: dict[str, int] = {}
        self._pool = 0
        self._explorer: Optional[str] = None
        """The type whose window is past the learned quota, if any."""
        self._plan_logged = False
        self._lock = threading.Lock()

    # -- planning ---------------------------------------------------------------------------------

    def start(self, learned: Optional[LearnedQuota], needs: Mapping[str, Optional[int]]) -> None:
        """Fix the run's budget and split it; only the first call of a run counts."""
        with self._lock:
            if self.started:
                return
            self.started = True
            self.learned = learned
            limits = [limit for limit in (self.max_requests, learned.calls if learned else None) if limit is not None]
            self.budget = min(limits) if limits else None
            self.needs = {name: needs.get(name) for name in self.log_types}
            if self.budget is not None:
                self._allotted = fair_shares(self.budget, self.needs)
                self._pool = self.budget - sum(self._allotted.values())
            self._log_plan_if_known()

    @property
    def exploring_allowed(self) -> bool:
        """Whether the run may go past its planned budget: only past a learned quota, within max_requests."""
        return self.learned is not None and self.budget is not None and self.budget < (self.max_requests or math.inf)

    def balance(self, log_type: str) -> Optional[int]:
        """Requests the type still holds (None: unlimited)."""
        with self._lock:
            return self._balance(log_type)

    def _balance(self, log_type: str) -> Optional[int]:
        if self.budget is None:
            return None
        return max(0, self._allotted.get(log_type, 0) - self._governor.sent.get(log_type, 0))

    def cap(self, log_type: str) -> Optional[int]:
        """Reserve for the type's next window and return how many requests it holds: None unlimited, 0 none.

        A type that used its share draws from the pool (up to what it still needs), then, past a learned
        quota, a small exploration grant; what it draws is reserved for it, so that the windows in flight
        together never promise more than is left."""
        with self._lock:
            if self.budget is None:
                return None
            self._settle(log_type)
            if self._explorer == log_type:
                self._explorer = None  # its exploration window is done
            balance = self._balance(log_type) or 0
            if balance > 0:
                return balance
            need = self.needs.get(log_type)
            wanted = min(self._pool, need) if need else self._pool
            if wanted > 0:
                self._move_from_pool(log_type, wanted)
                return wanted
            granted = min(self._exploration_cap(), self._unreserved_hard_limit())
            if granted > 0 and self._explorer is None:
                # One exploration window at a time: a quota 429 then meets one request, not one per type.
                self._explorer = log_type
                self._allotted[log_type] = self._allotted.get(log_type, 0) + granted
                return granted
            return 0

    def claim(self, log_type: str, pages: int) -> bool:
        """Hold what a window of `pages` pages needs (its first page is sent already); False if it does not fit."""
        return self._reserve(log_type, pages - 1, pages)

    def available(self, log_type: str) -> Optional[int]:
        """Requests the type holds plus those it could draw from the pool now (None: unlimited)."""
        with self._lock:
            if self.budget is None:
                return None
            self._settle(log_type)
            return (self._balance(log_type) or 0) + self._pool

    def hold(self, log_type: str, requests: int) -> bool:
        """Hold `requests` more requests (a count check's calls, or a re-read's pages); False if they do not fit.
        Past a learned quota it counts as a window of that many pages."""
        return self._reserve(log_type, requests, requests)

    def _reserve(self, log_type: str, requests: int, window_pages: int) -> bool:
        with self._lock:
            if self.budget is None:
                return True
            self._settle(log_type)
            missing = requests - (self._balance(log_type) or 0)
            if missing <= 0:
                return True
            if self._pool >= missing:
                self._move_from_pool(log_type, missing)
                return True
            beyond = missing - self._pool
            exploring = self._explorer in (None, log_type)
            # What the type takes from the pool and beyond it must both fit what the hard limit leaves unreserved.
            fits = beyond <= self._unreserved_hard_limit() - self._pool
            if exploring and window_pages <= self._exploration_cap() and fits:
                self._explorer = log_type
                self._move_from_pool(log_type, self._pool)
                self._allotted[log_type] = self._allotted.get(log_type, 0) + beyond
                return True
            return False

    def can_grant(self) -> bool:
        """Whether a type that stopped for lack of requests could get some now (the pool, or exploration)."""
        with self._lock:
            if self.budget is None:
                return False
            exploration = min(self._exploration_cap(), self._unreserved_hard_limit())
            return self._pool > 0 or (exploration > 0 and self._explorer is None)

    def _settle(self, log_type: str) -> None:
        """Charge requests a type sent beyond what it held (retries) to the pool, so the sums stay true."""
        overspent = self._governor.sent.get(log_type, 0) - self._allotted.get(log_type, 0)
        if overspent > 0:
            self._pool = max(0, self._pool - overspent)
            self._allotted[log_type] = self._allotted.get(log_type, 0) + overspent

    def _move_from_pool(self, log_type: str, requests: int) -> None:
        self._pool -= requests
        self._allotted[log_type] = self._allotted.get(log_type, 0) + requests

    def _unreserved_hard_limit(self) -> int:
        """Requests `max_requests_per_run` still allows beyond what the types hold."""
        remaining = self._governor.remaining
        if remaining is None:
            return sys.maxsize
        return remaining - sum(self._balance(name) or 0 for name in self.log_types)

    def report_need(self, log_type: str, requests_left: int) -> None:
        """The type now knows what the rest of its range needs: give what it holds beyond that (and a
        quarter more, as density varies) to the pool."""
        with self._lock:
            self.needs[log_type] = requests_left
            balance = self._balance(log_type)
            keep = requests_left + max(1, requests_left // 4)
            if balance is not None and balance > keep:
                surplus = balance - keep
                self._allotted[log_type] -= surplus
                self._pool += surplus
            self._log_plan_if_known()

    def finish(self, log_type: str) -> None:
        """The type is done for this run: what it holds goes to the pool."""
        with self._lock:
            self.needs[log_type] = 0
            balance = self._balance(log_type)
            if balance:
                self._allotted[log_type] -= balance
                self._pool += balance
            if self._explorer == log_type:
                self._explorer = None

    def _exploration_cap(self) -> int:
        """Pages of a window past the learned quota: 1, plus one per 10 requests per type answered past it."""
        if not self.exploring_allowed or self.budget is None:
            return 0
        beyond = max(0, self._governor.answered - self.budget)
        return 1 + beyond // (EXPLORATION_GROWTH * len(self.log_types))

    # -- what to tell the user --------------------------------------------------------------------

    def runs_needed(self, need: int) -> Optional[int]:
        """How many runs of this budget the remaining `need` takes (None: unlimited budget)."""
        if self.budget is None or self.budget <= 0:
            return None
        return max(1, math.ceil(need / (RUNS_EFFICIENCY * self.budget)))

    def budget_source(self) -> str:
        """Which setting or learned value limits this run, for messages."""
        if self.learned is not None and (self.max_requests is None or self.learned.calls < self.max_requests):
            how = "answered before a quota 429" if self.learned.source == "quota_429" else "answered in a run"
            return f"Gong's daily quota as learned on {self.learned.learned_at[:16]} ({self.learned.calls} calls {how})"
        return self.limit_source or f"sources.gong.max_requests_per_run = {self.max_requests}"

    def _log_plan_if_known(self) -> None:
        if self._plan_logged or any(need is None for need in self.needs.values()):
            return
        self._plan_logged = True
        need = sum(need or 0 for need in self.needs.values())
        per_type = ", ".join(f"{name} {self.needs[name]}" for name in self.log_types)
        if self.budget is None:
            logger.info("plan: about %d requests in all (%s); no budget limit", need, per_type)
            return
        spent = self._governor.total_sent
        if need + spent <= self.budget:
            verdict = "the run fits"
        else:
            runs = self.runs_needed(need)
            verdict = (
                f"the run does NOT fit: it commits what its budget allows and the rest takes about {runs} "
                f"more run(s) at this budget"
            )
        logger.info(
            "plan: about %d more requests in all (%s); the run's budget is %d (%s), %d spent so far: %s",
            need,
            per_type,
            self.budget,
            self.budget_source(),
            spent,
            verdict,
        )
