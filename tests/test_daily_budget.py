"""The day's ceiling: which quota day a moment is in, and how a day's count carries across runs."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

from gong_source.daily_budget import DAILY_STATE_KEY, DAY_TURN_STATE_KEY, DailyLedger, day_start, remember_turn

NOON = datetime(2026, 3, 10, 12, 0, tzinfo=timezone.utc)


def test_the_quota_day_is_the_utc_day_until_a_quota_429_shows_when_gongs_day_turns() -> None:
    assert day_start(NOON, None) == datetime(2026, 3, 10, tzinfo=timezone.utc)
    state: dict[str, object] = {}
    remember_turn(state, NOON, timedelta(hours=19, minutes=10))  # back at 07:10 tomorrow
    assert state[DAY_TURN_STATE_KEY] == "07:10"
    assert day_start(NOON, timedelta(hours=7, minutes=10)) == datetime(2026, 3, 10, 7, 10, tzinfo=timezone.utc)
    early = datetime(2026, 3, 10, 3, 0, tzinfo=timezone.utc)
    assert day_start(early, timedelta(hours=7, minutes=10)) == datetime(2026, 3, 9, 7, 10, tzinfo=timezone.utc)
    # A Retry-After of a few minutes past max_retry_after_seconds says nothing about a day.
    unchanged = dict(state)
    remember_turn(state, NOON, timedelta(minutes=3))
    assert state == unchanged


def test_the_count_is_the_larger_of_the_state_and_the_local_file_and_carries_over_a_moved_day(
    tmp_path: Path,
) -> None:
    file = tmp_path / "gong_logs.requests_today.json"
    file.write_text(json.dumps({"day_start": "2026-03-10T00:00:00+00:00", "requests": 40}))
    state = {DAILY_STATE_KEY: {"day_start": "2026-03-10T00:00:00+00:00", "requests": 25}}

    ledger = DailyLedger.open(100, NOON, state, file)
    assert (ledger.before_run, ledger.left) == (40, 60)

    ledger.write_file(7)
    ledger.save(state, 7)
    assert json.loads(file.read_text())["requests"] == state[DAILY_STATE_KEY]["requests"] == 47
    # The turn is learned as 02:10: the new day began yesterday at 02:10 and overlaps the counted one.
    moved = {**state, DAY_TURN_STATE_KEY: "02:10"}
    assert DailyLedger.open(100, datetime(2026, 3, 11, 1, 0, tzinfo=timezone.utc), moved, file).before_run == 47
    # A day later there is nothing to carry, nor when the turn moves a minute earlier and a new day begins.
    assert DailyLedger.open(100, NOON + timedelta(days=1), state, file).before_run == 0
    just_before = {**state, DAY_TURN_STATE_KEY: "23:59"}
    assert DailyLedger.open(100, datetime(2026, 3, 10, 23, 59, 30, tzinfo=timezone.utc), just_before, file).left == 100
    assert DailyLedger.open(None, NOON, state, file).left is None
