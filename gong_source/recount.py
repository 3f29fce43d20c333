"""Finding late entries by counting: compare Gong's count of a range with what was loaded, and re-read only the
parts that differ.

A range is a list of contiguous segments (the buckets of an hour, or of a day for `gong-logs verify`), each
with the entries loaded in it. One call counts the whole range (`records.totalRecords` of its first page).
Where Gong counts more than was loaded, the range is cut in two at the segment boundary that halves its
entries; one call counts the left half, and the right half's count is the difference. The search goes down
the halves that are short until reading a part costs no more than halving it again, then re-reads that part:
one late entry in an hour of 20,000 entries is found and loaded in at most 10 calls.

Nothing here depends on the order in which Gong returns a range's entries: a count is a count, and a re-read
reads its part completely (its pages hold at least `totalRecords` entries) before its counts replace the old.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import lru_cache
from itertools import chain
from typing import Any, Callable, Optional

from gong_source.client import GongLogsClient, LogPage
from gong_source.coverage import Segment, epoch_seconds
from gong_source.entries import EntryKeyer
from gong_source.errors import IncompleteWindowError
from gong_source.settings import CURSOR_FIELD, PAGE_SIZE

Pages = Generator[LogPage, None, None]
MakeRows = Callable[[list[Any], EntryKeyer, int, str], list[dict[str, Any]]]
"""(entries of a page, the range's keyer, position of the page's first entry, where) -> rows, keyed and parsed."""
Hold = Callable[[int], None]
"""Reserve this many more requests, or raise `BudgetShareSpent`: the search never starts what it cannot finish."""
Available = Callable[[], Optional[int]]
"""Requests the search could still get (None: no limit): a part too big to re-read within them is halved
further, so that a short budget still re-reads some parts each run instead of none."""


@lru_cache(maxsize=4096)
def cost_to_find(entries: int, segments: int, first_page_read: bool, missing: int = 1) -> int:
    """Calls the search needs at most to re-read the `missing` entries of a range of `entries` entries over
    `segments` segments: read it whole, or count one half and go on where entries are missing: one missing entry
    is in the worse half (the one counted by difference, no page of it read yet); several may be in both."""
    read = max(0, math.ceil(entries / PAGE_SIZE) - (1 if first_page_read else 0))
    if segments <= 1 or missing <= 0:
        return read
    half, half_segments = math.ceil(entries / 2), math.ceil(segments / 2)
    if missing == 1:
        return min(read, 1 + cost_to_find(half, half_segments, False, 1))
    left, right = missing // 2, missing - missing // 2
    split = 1 + cost_to_find(half, half_segments, True, left) + cost_to_find(half, half_segments, False, right)
    return min(read, split)


@dataclass
class CountSearch:
    """Compares Gong's counts with `segments` and re-reads what differs; iterate `run()` for the rows."""

    client: GongLogsClient
    log_type: str
    segments: list[Segment]
    make_rows: MakeRows
    hold: Hold
    available: Available = lambda: None
    gong_count: Optional[int] = None
    """Gong's count of the whole range, from the first call."""
    recounted: dict[int, int] = field(default_factory=dict)
    """Segment index -> entries loaded there now (only re-read segments, once their re-read is complete)."""
    short: bool = False
    """A re-read held fewer entries than Gong counted for it."""
    more: bool = False
    """Some part holds more loaded entries than Gong counts."""
    late_entries: int = 0
    """Entries the re-reads found beyond what was loaded in their segments."""
    count_calls: int = 0

    def run(self, known_count: Optional[int] = None) -> Iterator[list[dict[str, Any]]]:
        """Count the range (unless Gong's count is `known_count`); if Gong counts more than was loaded, find
        and re-read the parts that differ."""
        if known_count is None:
            pages, first = self._count(0, len(self.segments))
            self.gong_count = gong_total(first)
            yield from self._search(0, len(self.segments), self.gong_count, pages, first)
        else:
            self.gong_count = known_count
            yield from self._search(0, len(self.segments), known_count, None, None)

    def _loaded(self, low: int, high: int) -> int:
        return sum(segment.loaded for segment in self.segments[low:high])

    def _count(self, low: int, high: int) -> tuple[Pages, Optional[LogPage]]:
        """One call to count `segments[low:high]`: Gong's `totalRecords` on the part's first page."""
        self.count_calls += 1
        return self._open(low, high)

    def _open(self, low: int, high: int) -> tuple[Pages, Optional[LogPage]]:
        """The pages of `segments[low:high]`, with the first one read (one call)."""
        self.hold(1)
        pages = self.client.iter_pages(self.log_type, *self._bounds(low, high))
        return pages, next(pages, None)

    def _bounds(self, low: int, high: int) -> tuple[datetime, datetime]:
        start, end = self.segments[low].start, self.segments[high - 1].end
        return datetime.fromtimestamp(start, timezone.utc), datetime.fromtimestamp(end, timezone.utc)

    def _search(
        self, low: int, high: int, gong: int, pages: Optional[Pages], first: Optional[LogPage]
    ) -> Iterator[list[dict[str, Any]]]:
        loaded = self._loaded(low, high)
        if gong <= loaded:
            if pages is not None:
                pages.close()
            self.more = self.more or gong < loaded
            return
        opened = pages is not None
        read = max(0, math.ceil(gong / PAGE_SIZE) - (1 if opened else 0))
        left_to_spend = self.available()
        affordable = left_to_spend is None or read <= left_to_spend or high - low == 1
        if affordable and cost_to_find(gong, high - low, opened, gong - loaded) >= read:
            yield from self._reread(low, high, gong, pages, first)
            return
        if pages is not None:
            pages.close()  # its first page is read, but counting a half tells more than reading on
        middle = self._halving_point(low, high, gong - loaded)
        left_pages, left_first = self._count(low, middle)
        left = gong_total(left_first)
        yield from self._search(low, middle, left, left_pages, left_first)
        yield from self._search(middle, high, max(0, gong - left), None, None)

    def _halving_point(self, low: int, high: int, missing: int) -> int:
        """The segment boundary that best halves the part's entries (what is missing counted as evenly spread)."""
        spread = missing / (high - low)
        weights = [segment.loaded + spread for segment in self.segments[low:high]]
        half, running, best, best_gap = sum(weights) / 2, 0.0, low + 1, math.inf
        for offset, weight in enumerate(weights[:-1]):
            running += weight
            if abs(running - half) < best_gap:
                best, best_gap = low + offset + 1, abs(running - half)
        return best

    def _reread(
        self, low: int, high: int, gong: int, pages: Optional[Pages], first: Optional[LogPage]
    ) -> Iterator[list[dict[str, Any]]]:
        """Read `segments[low:high]` completely; its counts replace the loaded ones."""
        if pages is None:
            pages, first = self._open(low, high)
            gong = gong_total(first)
        self.hold(max(0, math.ceil(gong / PAGE_SIZE) - 1))
        start, end = self._bounds(low, high)
        where = f" of the re-read [{start.isoformat()}, {end.isoformat()})"
        # One keyer per re-read: identical entries share their eventTime, hence always a segment.
        keyer = EntryKeyer(self.log_type)
        starts = [segment.start for segment in self.segments[low:high]]
        found = [0] * (high - low)
        position = 0
        try:
            for page in chain([first] if first is not None else [], pages):
                rows = self.make_rows(page.entries, keyer, position, where)
                position += len(rows)
                for row in rows:
                    index = bisect.bisect_right(starts, epoch_seconds(row[CURSOR_FIELD])) - 1
                    if 0 <= index < len(found) and epoch_seconds(row[CURSOR_FIELD]) < self.segments[low + index].end:
                        found[index] += 1
                yield rows
        except IncompleteWindowError:
            self.short = True  # what the pages held is loaded; Gong counts more than it serves
        for offset, count in enumerate(found):
            loaded = self.segments[low + offset].loaded
            # Rows are merged, never deleted: what was loaded before stays, what the re-read adds is late.
            self.recounted[low + offset] = max(count, loaded)
            self.late_entries += max(0, count - loaded)
        if sum(found) < gong:
            self.short = True


def gong_total(first: Optional[LogPage]) -> int:
    """Gong's count from a first page (no page: Gong's 404, nothing in the range)."""
    if first is None:
        return 0
    return first.total_records if first.total_records is not None else len(first.entries)
