"""An adaptive pace for Gong's per-company rate limit, which every integration of the company shares.

Gong allows 3 calls per second per company, not per integration: a CRM sync or a revenue tool of the same
company spends the same calls. Alone, the job runs at the limit; when Gong answers 429 with a short
`Retry-After`, some other client is using part of it, and the job slows down, then probes back up.

The scheme is CUBIC's (RFC 9438, the congestion control Linux uses for TCP), with the rate of calls in
the role of the congestion window:
- a 429 cuts the pace to `PACE_DECREASE` of what it was (a multiplicative decrease), once per episode;
- then the pace climbs back along a cubic curve: fast at first, flat near the rate that was refused (so
  that is where the job lingers), which it reaches after `PACE_PROBE_CALLS` calls' worth of time; past
  it the pace grows `PACE_GROWTH_PER_SECOND` a second, so a neighbour that stopped is noticed within
  seconds;
- each call is sent at a random moment within its slot, and the pace tops out 2% under the limit
  (`PACE_CEILING`): a pace in lockstep with the bucket's refills would leave a steady neighbour every 429
  and itself never a signal to slow down.

Why not additive increase (AIMD): in the simulation of `tests/test_pace.py` (a token bucket of 3/s shared
with a steady neighbour at 1.5/s, 20 seeds, worst case), AIMD with the same dither kept the neighbour's
refused calls under 15% only with a step of 0.02 calls/s per second, and then took 81 s to climb back
once the neighbour stopped (0.05: 15.3% and 33 s; 0.1: 24.3% and 17 s). CUBIC with these constants, over
40 seeds: the neighbour's refused calls 10.7% in the median run (90% of runs under 14.7%, the worst
17.8%), the job's at most 4.7% while it takes at least 1.23 of the 1.5 calls/s left; back at 2.7/s 11 s
after the neighbour stopped in the median run (90% within 20 s, the worst 27 s); beside a neighbour at
2.5/s, at least 0.54 calls/s with at most 10.7% refused.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Final, Optional

PACE_DECREASE: Final = 0.4
"""A 429 cuts the pace to this fraction of what it was."""
PACE_PROBE_CALLS: Final = 35.0
"""After a cut, the pace is back at the rate that was refused after this many calls' worth of time (at
least `PACE_MIN_PROBE_SECONDS`): slow probing near a neighbour's share keeps refusals rare for both."""
PACE_MIN_PROBE_SECONDS: Final = 4.0
PACE_MAX_PROBE_SECONDS: Final = 30.0
"""...and at most this long: a pace cut to the floor by a neighbour that took the whole limit is back at
the limit within about 45 s of it leaving (30 s, then 40% a second from 0.05/s)."""
PACE_GROWTH_PER_SECOND: Final = 1.4
"""Past the refused rate the pace grows 40% a second: from 1.5 to 2.7 calls/s in under 2 s."""
PACE_FLOOR_PER_SECOND: Final = 0.05
"""The slowest pace: one call in 20 s, however many 429s came."""
PACE_DITHER: Final = 0.95
"""Each call is sent at a random moment within the first 95% of its slot. Random, so that the job does
not lock in phase with a steady neighbour; not the whole slot, so that three calls never land within
one interval: alone, a token bucket of one second keeps some of a call (about 20 ms of network jitter
at 3/s) in hand."""
PACE_CEILING: Final = 0.98
"""The pace at most, as a share of the limit. Not a safety margin: at exactly the limit the job's slots
and the refills of the company's token bucket can lock in phase, with the job's calls always first after
a refill, so that a steady neighbour gets every 429 and the job never a signal to slow down; 2% slower,
the two drift through every phase within about 15 s."""
PACE_START_FRACTION: Final = 0.6
"""A run starts at 60% of the limit and grows from there as after a cut (`PACE_GROWTH_PER_SECOND`), at the
limit within about 1.5 s: a run that starts while another integration is busy costs it fewer 429s before
the run's own first 429 tells it to slow down, and a run alone loses under a second."""
PACE_CUT_INTERVAL_SECONDS: Final = 1.0
"""At most one cut per this long: the 429s of calls already in flight answer the same overload."""


@dataclass
class AdaptivePace:
    """The calls-per-second pace of one process, never above `limit`; thread safety is the caller's."""

    limit: float
    rng: random.Random = field(default_factory=random.Random)
    _refused_rate: Optional[float] = None
    _low: float = 0.0
    _cut_at: float = float("-inf")
    """Where the current curve started: the last cut, or the run's first call."""
    _last_cut: float = float("-inf")
    _probe_seconds: float = 0.0
    cuts: int = 0

    def rate(self, now: float) -> float:
        """The pace at `now`, in calls per second."""
        ceiling = self.limit * PACE_CEILING
        if self._refused_rate is None:  # the first call: start low and grow (PACE_START_FRACTION)
            self._refused_rate = self._low = ceiling * PACE_START_FRACTION
            self._cut_at, self._probe_seconds = now, 0.0
        since = now - self._cut_at
        if since < self._probe_seconds:  # concave: quickly up from the cut, flat near the refused rate
            left = (self._probe_seconds - since) / self._probe_seconds
            rate = self._refused_rate - (self._refused_rate - self._low) * left**3
        else:  # convex: the refused rate is no longer refused, so grow
            rate = self._refused_rate * PACE_GROWTH_PER_SECOND ** min(since - self._probe_seconds, 600.0)
        return min(ceiling, max(PACE_FLOOR_PER_SECOND, rate))

    def throttled(self, now: float) -> bool:
        """Gong answered 429 with a short `Retry-After`: cut the pace (once per episode); True if it was cut."""
        if now - self._last_cut < PACE_CUT_INTERVAL_SECONDS:
            return False
        current = self.rate(now)
        refused = current
        if self._refused_rate is not None and current < self._refused_rate:
            refused = current * (1 + PACE_DECREASE) / 2  # refused again below the last level: give way sooner
        self._low = max(PACE_FLOOR_PER_SECOND, current * PACE_DECREASE)
        self._refused_rate = refused = max(refused, self._low)  # the curve climbs from the cut, never below it
        self._cut_at = self._last_cut = now
        self._probe_seconds = min(PACE_MAX_PROBE_SECONDS, max(PACE_MIN_PROBE_SECONDS, PACE_PROBE_CALLS / refused))
        self.cuts += 1
        return True

    def next_slot(self, previous_slot: float, now: float, held: bool = False) -> tuple[float, float]:
        """(the next slot, the moment to send in it). Slots are `1 / rate` apart, and the moment is random
        within the slot while calls queue for slots, or were `held` back (a Retry-After ending at `now`):
        then the pace, not the caller, decides when calls go (see `PACE_DITHER`). A call asked for after
        its slot passed goes now, and the next slots count from it: unused slots are never banked for a
        burst, nor is a caller that was simply late held back further."""
        interval = 1.0 / self.rate(now)
        slot = max(previous_slot + interval, now)
        if slot == now and not held:
            return now, now
        return slot, slot + self.rng.uniform(0.0, PACE_DITHER * interval)
