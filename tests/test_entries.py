"""From Gong entries to rows: eventTime parsing and deterministic keys."""

from __future__ import annotations

import copy
from datetime import datetime, timezone

import pytest

from gong_source.entries import EntryKeyer, parse_event_time, prepare_entries
from gong_source.errors import GongEntryError


def test_event_time_offsets_parse_to_the_same_utc_instant() -> None:
    instants = {
        parse_event_time(text)
        for text in (
            "2018-02-17T02:30:00-08:00",
            "2018-02-17T10:30:00Z",
            "2018-02-17T16:00:00+05:30",
            "2018-02-17T10:30:00.000+00:00",
        )
    }
    assert instants == {datetime(2018, 2, 17, 10, 30, tzinfo=timezone.utc)}


def entry(event_time: str, **record: object) -> dict[str, object]:
    return {"userId": "1", "eventTime": event_time, "logRecord": dict(record)}


def test_identical_entries_get_distinct_keys_that_repeat_on_re_read() -> None:
    page = [entry("2026-01-01T00:00:00Z", a=1), entry("2026-01-01T00:00:00Z", a=1), entry("2026-01-01T00:00:00Z", a=2)]

    first = prepare_entries(copy.deepcopy(page), "AccessLog", EntryKeyer("AccessLog"), 0)
    again = prepare_entries(copy.deepcopy(page), "AccessLog", EntryKeyer("AccessLog"), 0)

    keys = [row["_entry_key"] for row in first]
    assert len(set(keys)) == 3
    assert keys[0].endswith("-0") and keys[1].endswith("-1") and keys[0][:-2] == keys[1][:-2]
    assert keys == [row["_entry_key"] for row in again]
    assert first[0]["eventTime"] == datetime(2026, 1, 1, tzinfo=timezone.utc)


def test_key_depends_on_log_type_and_content_not_on_key_order() -> None:
    a = {"eventTime": "2026-01-01T00:00:00Z", "logRecord": {"x": 1, "y": 2}}
    b = {"logRecord": {"y": 2, "x": 1}, "eventTime": "2026-01-01T00:00:00Z"}
    assert EntryKeyer("AccessLog").key(a) == EntryKeyer("AccessLog").key(b)
    assert EntryKeyer("AccessLog").key(a) != EntryKeyer("UserCallPlay").key(a)


@pytest.mark.parametrize("bad", [None, "yesterday", "2026-01-01T00:00:00", 1767225600])
def test_an_unusable_event_time_fails_naming_type_and_position(bad: object) -> None:
    page = [entry("2026-01-01T00:00:00Z"), {"eventTime": bad, "logRecord": {}}]
    with pytest.raises(GongEntryError, match=r"UserCallPlay entry #101 has an unusable eventTime"):
        prepare_entries(page, "UserCallPlay", EntryKeyer("UserCallPlay"), first_position=100)


def test_an_entry_that_is_not_an_object_fails() -> None:
    with pytest.raises(GongEntryError, match="AccessLog entry #0 is a list"):
        prepare_entries([["not", "an", "object"]], "AccessLog", EntryKeyer("AccessLog"), 0)


def test_changed_values_of_any_type_are_loaded_as_text_and_keyed_as_before() -> None:
    changes = [
        {"columnName": "a", "oldValue": 5, "newValue": "6"},
        {"columnName": "b", "oldValue": True, "newValue": False},
        {"columnName": "c", "oldValue": None, "newValue": 2.5},
        {"columnName": "d", "oldValue": {"x": [1]}, "newValue": "plain"},
    ]
    rows = [{"primaryKeyColumns": [{"columnName": "id", "columnValue": 7}], "columnChanges": changes}]
    raw = entry("2026-01-01T00:00:00Z", tableChanges=[{"tableName": "t", "rowChanges": rows}])
    expected_key = EntryKeyer("UserActivityLog").key(copy.deepcopy(raw))

    (prepared,) = prepare_entries([raw], "UserActivityLog", EntryKeyer("UserActivityLog"), 0)

    row = prepared["logRecord"]["tableChanges"][0]["rowChanges"][0]  # type: ignore[index]
    assert [(c["oldValue"], c["newValue"]) for c in row["columnChanges"]] == [
        ("5", "6"),
        ("true", "false"),
        (None, "2.5"),
        ('{"x": [1]}', "plain"),
    ]
    assert row["primaryKeyColumns"] == [{"columnName": "id", "columnValue": "7"}]
    assert prepared["_entry_key"] == expected_key  # keys of entries loaded by earlier versions do not change
