"""From Gong's JSON log entries to rows: `eventTime` parsed to UTC and a deterministic merge key."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from typing import Any, Optional

from gong_source.errors import GongEntryError
from gong_source.pii import PiiPolicy
from gong_source.settings import CURSOR_FIELD, ENTRY_KEY_COLUMN


def parse_event_time(value: Any) -> datetime:
    """Parse Gong's ISO-8601 `eventTime` (any offset) to an aware UTC datetime."""
    if not isinstance(value, str):
        raise ValueError(f"expected an ISO-8601 string, got {type(value).__name__}")
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise ValueError("it has no UTC offset")
    return parsed.astimezone(timezone.utc)


class EntryKeyer:
    """Derives each entry's merge key from its content and its occurrence number.

    Gong entries carry no id and two byte-identical entries are two events, so the key is
    `sha256(log type + canonical JSON)` plus the count of identical entries seen before it in
    this run. Identical entries share their `eventTime`, so every read of a time range sees all of
    them and numbers them the same way: re-reading a period yields the same keys.
    """

    def __init__(self, log_type: str) -> None:
        self._prefix = f"{log_type}\n".encode()
        self._occurrences: dict[bytes, int] = {}

    def key(self, entry: dict[str, Any]) -> str:
        """Return the key for `entry` (call before changing the entry)."""
        canonical = json.dumps(entry, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        digest = hashlib.sha256(self._prefix + canonical.encode()).digest()[:16]
        occurrence = self._occurrences.get(digest, 0)
        self._occurrences[digest] = occurrence + 1
        return f"{digest.hex()}-{occurrence}"


def prepare_entries(
    entries: list[Any],
    log_type: str,
    keyer: EntryKeyer,
    first_position: int,
    pii: Optional[PiiPolicy] = None,
    where: str = "",
) -> list[dict[str, Any]]:
    """Apply the PII mode, key each entry and replace its `eventTime` with a UTC datetime, in place.

    `first_position` is the index of the page's first entry in its window, and `where` names that
    window; both go into error messages.
    """
    for offset, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise GongEntryError(
                f"{log_type} entry #{first_position + offset}{where} is a {type(entry).__name__}, not a JSON object."
            )
        if pii is not None:
            # Before keying, so that the key cannot confirm a guessed email; entries that become
            # identical are still kept apart by their occurrence number.
            pii.apply(entry)
        entry[ENTRY_KEY_COLUMN] = keyer.key(entry)
        try:
            entry[CURSOR_FIELD] = parse_event_time(entry.get(CURSOR_FIELD))
        except ValueError as error:
            raise GongEntryError(
                f"{log_type} entry #{first_position + offset}{where} has an unusable eventTime "
                f"{entry.get(CURSOR_FIELD)!r}: {error}. The run stopped so that no entry is silently dropped."
            ) from None
    return entries
