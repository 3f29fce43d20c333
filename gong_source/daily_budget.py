"""A ceiling on the calls of a day, counted across runs: Gong's 10,000 calls a day belong to the whole company.

`max_requests_per_run` bounds one run; an hourly schedule catching up could still spend the company's whole
quota. `max_requests_per_day` bounds what all runs of the pipeline send in one quota day: the UTC day, unless
a quota 429's `Retry-After` has shown when Gong's day turns (kept in state as `quota_day_turns_at`).

Where the count is kept, so that every call is counted even when nothing is loaded:
- in dlt's source state (`requests_today`), committed with every load, so that a scheduler whose workers start
  empty (Airflow, GitHub Actions) restores it from the destination;
- in a small file beside the pipeline's working folder (`<pipeline>.requests_today.json`), rewritten as each
  request goes out (about 0.2 ms each): a run killed before its first load, or a `gong-logs verify` that loads
  nothing, is still counted on that machine.
A run starts from the larger of the two. When the day a count was kept for overlaps the current one (the time
Gong's day turns was learned or moved meanwhile), the count is carried over: better a ceiling reached a little
early than the company's quota spent twice.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Final, Mapping, Optional

DAY: Final = timedelta(days=1)
DAILY_STATE_KEY: Final = "requests_today"
"""Source state: `{"day_start": ISO, "requests": n}`: calls sent by every run in that quota day."""
DAY_TURN_STATE_KEY: Final = "quota_day_turns_at"
"""Source state: `"HH:MM"` (UTC) when Gong's quota day turns, from a quota 429's Retry-After."""
MIN_QUOTA_RETRY_AFTER_FOR_TURN: Final = timedelta(minutes=10)
"""A Retry-After at least this long is taken to say when Gong's quota day turns; a shorter long one (a minute
or two past `max_retry_after_seconds`) is more likely a burst limit than a day."""


def day_start(moment: datetime, turns_at: Optional[timedelta]) -> datetime:
    """The start of the quota day holding `moment`: UTC midnight, or the time of day Gong's quota turns."""
    offset = turns_at or timedelta(0)
    shifted = moment.astimezone(timezone.utc) - offset
    return shifted.replace(hour=0, minute=0, second=0, microsecond=0) + offset


def read_turn(source_state: Mapping[str, Any]) -> Optional[timedelta]:
    """When Gong's quota day turns, as learned from a quota 429 (None: not learned; the UTC day is used)."""
    saved = source_state.get(DAY_TURN_STATE_KEY)
    if not isinstance(saved, str):
        return None
    hours, _, minutes = saved.partition(":")
    try:
        turn = timedelta(hours=int(hours), minutes=int(minutes))
    except ValueError:
        return None
    return turn if timedelta(0) <= turn < DAY else None


def remember_turn(source_state: dict[str, Any], refused_at: datetime, retry_after: timedelta) -> None:
    """Keep the time of day at which a quota 429 said Gong's quota comes back."""
    if retry_after < MIN_QUOTA_RETRY_AFTER_FOR_TURN:
        return
    moment = (refused_at + retry_after).astimezone(timezone.utc) + timedelta(seconds=30)  # to the nearest minute
    source_state[DAY_TURN_STATE_KEY] = f"{moment.hour:02d}:{moment.minute:02d}"


def _count_for(saved: Any, day: datetime) -> int:
    if not isinstance(saved, dict) or not isinstance(saved.get("requests"), int):
        return 0
    try:
        saved_day = datetime.fromisoformat(str(saved.get("day_start")))
    except ValueError:
        return 0
    if saved_day.tzinfo is None:
        return 0
    # The same day, or one whose turn was learned or moved since: carried over if it still covers half of today.
    shared = min(saved_day, day) + DAY - max(saved_day, day)
    return max(0, saved["requests"]) if shared >= DAY / 2 else 0


@dataclass
class DailyLedger:
    """The calls of the current quota day: those of earlier runs, and this run's as they are sent."""

    limit: Optional[int]
    """`max_requests_per_day` (None: no ceiling)."""
    day_start: datetime
    before_run: int
    """Calls sent in this quota day by earlier runs (the larger of the state's and the local file's count)."""
    file: Optional[Path] = None
    _highest: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def open(
        cls, limit: Optional[int], now: datetime, source_state: Mapping[str, Any], file: Optional[Path]
    ) -> DailyLedger:
        """The ledger of the day holding `now`, from the state and the local file."""
        day = day_start(now, read_turn(source_state))
        from_file: Any = None
        if file is not None and file.exists():
            try:
                from_file = json.loads(file.read_text())
            except (OSError, ValueError):
                from_file = None  # a damaged file only loses a hint; the state still counts
        before = max(_count_for(source_state.get(DAILY_STATE_KEY), day), _count_for(from_file, day))
        return cls(limit or None, day, before, file)

    @property
    def next_day(self) -> datetime:
        return self.day_start + DAY

    @property
    def left(self) -> Optional[int]:
        """Calls this run may still send today (None: no ceiling)."""
        return None if self.limit is None else max(0, self.limit - self.before_run)

    def as_state(self, sent_this_run: int) -> dict[str, Any]:
        return {"day_start": self.day_start.isoformat(), "requests": self.before_run + sent_this_run}

    def save(self, source_state: dict[str, Any], sent_this_run: int) -> None:
        """Put the day's count in the source state (committed with the next load)."""
        source_state[DAILY_STATE_KEY] = self.as_state(sent_this_run)

    def write_file(self, sent_this_run: int) -> None:
        """Rewrite the local count, atomically (a reader never sees half a file)."""
        if self.file is None:
            return
        with self._lock:
            sent_this_run = self._highest = max(self._highest, sent_this_run)  # threads report out of order
            try:
                self.file.parent.mkdir(parents=True, exist_ok=True)
                temporary = self.file.with_name(self.file.name + ".tmp")
                temporary.write_text(json.dumps(self.as_state(sent_this_run)))
                temporary.replace(self.file)
            except OSError:
                pass  # a read-only folder: the state still counts every load's calls

    def spent_reason(self) -> str:
        """Why the run stops when the ceiling is reached."""
        return (
            f"the day's ceiling of {self.limit} requests (sources.gong.max_requests_per_day) is spent: "
            f"{self.before_run} were sent by earlier runs of the day that began {self.day_start.isoformat()}; "
            f"the next day begins {self.next_day.isoformat()}"
        )
