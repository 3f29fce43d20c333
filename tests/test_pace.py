"""The adaptive pace, on a simulated clock: the sandbox's token bucket shared with a steady neighbour.

Deterministic (seeded, no sleeps): each case replays five minutes of calls in milliseconds and checks the
targets the benchmark table in docs/limits-and-budget.md holds the real job to (which
`tests/benchmarks/bench_rate_limits.py` measures against the sandbox, by hand).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Optional

import pytest

from gong_source.pace import (
    PACE_CEILING,
    PACE_DECREASE,
    PACE_DITHER,
    PACE_FLOOR_PER_SECOND,
    PACE_START_FRACTION,
    AdaptivePace,
)
from gong_source.sandbox.server import TokenBucket

LIMIT = 3.0
ROUND_TRIP = 0.05
RETRY_AFTER = 1.0


@dataclass
class Outcome:
    ours: int = 0
    ours_refused: int = 0
    theirs: int = 0
    theirs_refused: int = 0
    back_at_limit_after: Optional[float] = None
    rates: list[float] = field(default_factory=list)

    @property
    def our_share(self) -> float:
        return self.ours_refused / self.ours

    @property
    def their_share(self) -> float:
        return self.theirs_refused / max(1, self.theirs)


def simulate(
    neighbour_rate: float, seed: int, seconds: float = 300.0, neighbour_stops: Optional[float] = None
) -> Outcome:
    """Our calls paced by `AdaptivePace` (as `RequestGovernor` does: slots, a random moment in each, a pause
    for Retry-After) against a neighbour calling at a fixed rate from a random phase."""
    rng = random.Random(seed)
    pace = AdaptivePace(LIMIT, rng=random.Random(seed + 1))
    limit = TokenBucket(LIMIT)  # the sandbox's own limiter, on the simulated clock
    outcome = Outcome()
    their_next = rng.random()
    slot, send_at, paused_until = float("-inf"), 0.0, 0.0
    while min(send_at, their_next) < seconds:
        neighbour_active = neighbour_rate and (neighbour_stops is None or their_next < neighbour_stops)
        if neighbour_active and their_next <= send_at:
            accepted = limit.take(their_next + rng.uniform(0, 0.004))
            outcome.theirs += 1
            outcome.theirs_refused += not accepted
            their_next += 1 / neighbour_rate
            continue
        if not neighbour_active:
            their_next = float("inf")
        arrives = send_at + ROUND_TRIP / 2 + rng.uniform(0, 0.01)
        accepted = limit.take(arrives)
        outcome.ours += 1
        outcome.ours_refused += not accepted
        answered = arrives + ROUND_TRIP / 2
        if not accepted:
            pace.throttled(answered)
            paused_until = answered + RETRY_AFTER
        # The next call is asked for as soon as this one is sent (a resource is always waiting for a slot).
        asked = max(send_at, paused_until)
        rate = pace.rate(asked)
        outcome.rates.append(rate)
        if neighbour_stops and asked > neighbour_stops and outcome.back_at_limit_after is None and rate >= 2.7:
            outcome.back_at_limit_after = asked - neighbour_stops
        slot, send_at = pace.next_slot(slot, asked, held=paused_until > send_at)
        send_at = max(send_at, asked)
    return outcome


@pytest.mark.parametrize("seed", range(3))
def test_alone_it_runs_at_the_limit_and_is_never_refused(seed: int) -> None:
    alone = simulate(0.0, seed)

    assert alone.ours_refused == 0
    assert alone.ours >= 0.99 * 300 * LIMIT * PACE_CEILING  # 2% under the limit, on purpose (see PACE_CEILING)


@pytest.mark.parametrize("seed", range(3))
def test_beside_a_steady_neighbour_both_sides_are_rarely_refused_and_it_keeps_its_share(seed: int) -> None:
    shared = simulate(1.5, seed)

    assert shared.our_share <= 0.10
    assert shared.their_share <= 0.15  # the neighbour keeps its share: we do not leave it the refusals
    accepted_per_second = (shared.ours - shared.ours_refused) / 300
    assert accepted_per_second >= 1.5 / 1.3  # and we use what it leaves
    assert max(shared.rates) <= LIMIT


@pytest.mark.parametrize("seed", range(3))
def test_once_the_neighbour_stops_the_pace_is_back_near_the_limit_within_30_s(seed: int) -> None:
    halfway = simulate(1.5, seed, neighbour_stops=150.0)

    assert halfway.back_at_limit_after is not None and halfway.back_at_limit_after <= 30.0


@pytest.mark.parametrize("seed", range(3))
def test_beside_a_heavy_neighbour_it_still_progresses_without_starving_either(seed: int) -> None:
    crowded = simulate(2.5, seed)

    assert (crowded.ours - crowded.ours_refused) / 300 >= 0.3
    assert crowded.our_share <= 0.15
    assert crowded.their_share <= 0.15


def test_a_burst_of_429s_cuts_once_and_the_pace_never_leaves_its_bounds() -> None:
    pace = AdaptivePace(LIMIT, rng=random.Random(0))
    ceiling = LIMIT * PACE_CEILING
    assert pace.rate(0.0) == pytest.approx(ceiling * PACE_START_FRACTION)  # a run starts low...
    assert pace.rate(5.0) == ceiling  # ...and is at the limit within seconds

    assert pace.throttled(10.0) is True
    assert pace.throttled(10.2) is False  # the same overload, answered to calls already in flight
    assert pace.rate(10.0) == pytest.approx(ceiling * PACE_DECREASE)
    for moment in range(11, 400):
        assert PACE_FLOOR_PER_SECOND <= pace.rate(float(moment)) <= ceiling
    assert pace.rate(400.0) == ceiling
    for moment in range(20, 200, 2):  # refused again and again: down to the floor, never to zero
        pace.throttled(float(moment))
    assert pace.rate(200.0) == pytest.approx(PACE_FLOOR_PER_SECOND)


def test_slots_keep_the_mean_rate_and_are_never_banked() -> None:
    pace = AdaptivePace(LIMIT, rng=random.Random(0))
    interval = 1 / (LIMIT * PACE_CEILING)
    pace.rate(-100.0)  # started long ago: at the limit now
    slot, moments = float("-inf"), []
    for _ in range(300):
        slot, send_at = pace.next_slot(slot, 0.0)
        assert slot <= send_at <= slot + PACE_DITHER * interval
        moments.append(send_at)
    assert moments[-1] - moments[0] == pytest.approx(299 * interval, abs=interval)
    later, send_at = pace.next_slot(slot, 1000.0)  # after an idle spell: no backlog of slots to catch up with
    assert later == send_at == 1000.0  # and a call asked for late is not held back further


def test_after_a_neighbour_that_took_the_whole_limit_leaves_the_pace_is_back_within_a_minute() -> None:
    pace = AdaptivePace(LIMIT, rng=random.Random(0))
    pace.rate(0.0)
    for moment in range(10, 40, 2):  # refused again and again: cut down to the floor
        pace.throttled(float(moment))
    assert pace.rate(39.0) == pytest.approx(PACE_FLOOR_PER_SECOND, abs=0.05)

    back = next(second for second in range(38, 400) if pace.rate(float(second)) >= 2.7)

    assert back - 38 <= 50


def test_the_pace_never_exceeds_a_limit_below_the_floor() -> None:
    pace = AdaptivePace(0.01, rng=random.Random(0))
    assert all(pace.rate(float(moment)) <= 0.01 for moment in range(0, 100, 5))
    pace.throttled(50.0)
    assert all(pace.rate(float(moment)) <= 0.01 for moment in range(50, 200, 5))


def test_a_429_right_after_the_run_starts_still_cuts_the_pace() -> None:
    pace = AdaptivePace(LIMIT, rng=random.Random(0))
    pace.rate(0.0)  # the run's first call

    assert pace.throttled(0.2) is True
    assert pace.cuts == 1 and pace.rate(0.2) < LIMIT * PACE_CEILING * PACE_START_FRACTION
