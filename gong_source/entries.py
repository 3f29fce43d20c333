"""From Gong's JSON log entries to rows: `eventTime` parsed to UTC and a deterministic merge key."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from typing import Any, Optional

from gong_source.errors import GongEntryError
from gong_source.pii import PiiPolicy
from gong_source.settings import CURSOR_FIELD, ENTRY_KEY_COLUMN

CHANGED_VALUE_FIELDS = frozenset({"oldValue", "newValue", "columnValue"})
"""UserActivityLog's values of changed table columns (`tableChanges[].rowChanges[].columnChanges[]`, and the
rows' `primaryKeyColumns[]`) take the type of the column Gong changed: a string, a number, a boolean or null
in one and the same field. dlt keeps the first type it sees and coerces later values into it where it can,
which loses data (a number coerced into a boolean column becomes `true`), so these values are loaded as text:
strings as they are, anything else as its JSON text (`true`, `5`, `2.5`, `{"a": 1}`); null stays null."""
CHANGED_VALUE_COLUMNS = ("old_value", "new_value", "column_value")
"""Their columns, declared text in the schema (dlt's preferred types): else a first value that looks like a
timestamp would make a timestamp column, into which `"5"` is coerced as 1970-01-01 00:00:05."""


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


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def values_as_text(record: Any) -> None:
    """Turn the changed values of a UserActivityLog `logRecord` into text, in place (`CHANGED_VALUE_FIELDS`)."""
    if not isinstance(record, dict):
        return
    for table_change in _dicts(record.get("tableChanges")):
        for row in _dicts(table_change.get("rowChanges")):
            for change in _dicts(row.get("columnChanges")) + _dicts(row.get("primaryKeyColumns")):
                for name in CHANGED_VALUE_FIELDS.intersection(change):
                    value = change[name]
                    if value is not None and not isinstance(value, str):
                        change[name] = json.dumps(value, ensure_ascii=False)


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
        values_as_text(entry.get("logRecord"))  # after keying: keys stay those of earlier versions
        try:
            entry[CURSOR_FIELD] = parse_event_time(entry.get(CURSOR_FIELD))
        except ValueError as error:
            raise GongEntryError(
                f"{log_type} entry #{first_position + offset}{where} has an unusable eventTime "
                f"{entry.get(CURSOR_FIELD)!r}: {error}. The run stopped so that no entry is silently dropped."
            ) from None
    return entries
