"""Deterministic synthetic Gong audit logs: every entry is a pure function of (log type, index).

Entry `i` of a type happens at `epoch + i * interval + jitter(i)` with `0 <= jitter < interval`,
so times strictly increase with `i` and any time range maps to an index range by arithmetic:
an endless timeline costs nothing until it is read.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Iterator, Optional, Union

from gong_source.sandbox import gong_shapes
from gong_source.settings import LOG_TYPES

DEFAULT_EPOCH = datetime(2026, 1, 1, tzinfo=timezone.utc)
DEFAULT_INTERVALS_SECONDS: dict[str, Optional[float]] = {
    "AccessLog": 120,
    "UserActivityLog": 420,
    "UserCallPlay": 180,
    "ExternallySharedCallAccess": 1800,
    "ExternallySharedCallPlay": 2700,
}
DUPLICATE_EVERY = 37
"""Entry indices `i % DUPLICATE_EVERY == DUPLICATE_PHASE` are served twice, byte for byte."""
DUPLICATE_PHASE = 3
OFFSETS = (timedelta(0), timedelta(hours=-8), timedelta(hours=5, minutes=30), timedelta(hours=-7), timedelta(hours=2))
"""UTC offsets cycled through by index; `timedelta(0)` renders as `Z`."""

USERS = [
    ("Ada", "Lovelace"),
    ("Alan", "Turing"),
    ("Grace", "Hopper"),
    ("Edsger", "Dijkstra"),
    ("Barbara", "Liskov"),
    ("Donald", "Knuth"),
    ("Frances", "Allen"),
    ("Ken", "Thompson"),
    ("Margaret", "Hamilton"),
    ("Dennis", "Ritchie"),
    ("Radia", "Perlman"),
    ("Leslie", "Lamport"),
]
ADMINS = [("Sam", "Admin"), ("Kim", "Support")]
EXTERNAL_VIEWERS = ["buyer@prospect-one.example", "cfo@prospect-two.example", "legal@partner.example"]
EXTERNAL_VIEWER_NAMES = {"buyer@prospect-one.example": "Pat Buyer", "legal@partner.example": "Lee Counsel"}
"""Gong sends an external viewer's full name only sometimes (here: for two of the three)."""
USER_AGENTS = [
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 Safari/605.1.15",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/131.0 Safari/537.36",
    "GongMobile/5.2 (iPhone; iOS 18.1)",
]
ACCESS_ACTIONS = ["LOGIN", "LOGIN", "LOGIN", "LOGOUT", "LOGIN_FAILED", "PASSWORD_RESET"]
SETTINGS_TABLES = ["user_settings", "workspace_permissions", "call_privacy_rules"]


def mix(*values: int) -> int:
    """A fast deterministic 64-bit hash (splitmix64) of a few integers."""
    state = 0x9E3779B97F4A7C15
    for value in values:
        state = (state ^ (value & 0xFFFFFFFFFFFFFFFF)) * 0xBF58476D1CE4E5B9 & 0xFFFFFFFFFFFFFFFF
        state = (state ^ (state >> 27)) * 0x94D049BB133111EB & 0xFFFFFFFFFFFFFFFF
        state ^= state >> 31
    return state


def render_time(moment: datetime, offset: timedelta, with_millis: bool) -> str:
    """ISO-8601 with the given UTC offset, as Gong writes `eventTime`."""
    local = moment.astimezone(timezone(offset))
    text = local.strftime("%Y-%m-%dT%H:%M:%S")
    if with_millis:
        text += f".{local.microsecond // 1000:03d}"
    if offset == timedelta(0):
        return text + "Z"
    sign = "-" if offset < timedelta(0) else "+"
    minutes = abs(int(offset.total_seconds())) // 60
    return f"{text}{sign}{minutes // 60:02d}:{minutes % 60:02d}"


@dataclass
class SyntheticLogs:
    """The sandbox's whole history of logs, per type, from `epoch` on (optionally capped per type).

    `new_fields_from`: entries at or after this time carry fields that earlier ones lack.
    `late_every`/`late_delay`: every `late_every`-th entry (per type, if a dict) is written late, becoming
    visible only `late_delay` after its eventTime (as Gong writes some entries minutes after the event); with
    `late_delay_max`, each late entry has its own delay between the two. `late_entries` names late entries
    one by one: `{"AccessLog": {index: delay}}`.
    """

    epoch: datetime = DEFAULT_EPOCH
    intervals_seconds: dict[str, Optional[float]] = field(default_factory=lambda: dict(DEFAULT_INTERVALS_SECONDS))
    max_entries_per_type: Optional[int] = None
    new_fields_from: Optional[datetime] = None
    late_every: Union[int, dict[str, int], None] = None
    late_delay: timedelta = timedelta(minutes=10)
    late_delay_max: Optional[timedelta] = None
    late_entries: dict[str, dict[int, timedelta]] = field(default_factory=dict)
    seed: int = 7
    adversarial: bool = False
    """Also hide addresses where only a pattern finds them: request headers (`X-Forwarded-For: v4, v6`),
    URLs with `?email=Mixed.Case+tag@...`, JSON kept as text, changed settings; plus lookalikes that
    must survive (`1.2.3.4.5`, `10.0`, times of day, MAC addresses)."""
    shape: str = "gong"
    """Which tenant's `logRecord` shapes to serve (`SHAPES`): `gong`, the shapes real tenants send
    (`gong_shapes.py`); `invented`, the shapes this sandbox served before real ones were known, which the
    views still read through their fallback spellings; `renamed`, the invented shapes under other names
    (`RENAMED_RECORD_KEYS`), call ids of shared calls nested (`call.id`), the external viewer's e-mail in
    the top-level `userEmailAddress` and a session token in AccessLog: a tenant the views need a mapping for."""

    def __post_init__(self) -> None:
        if self.shape not in SHAPES:
            raise ValueError(f"unknown sandbox shape {self.shape!r}; use one of {', '.join(SHAPES)}")
        self._epoch_ms = int(self.epoch.timestamp() * 1000)
        self._type_ids = {log_type.name: number for number, log_type in enumerate(LOG_TYPES)}
        self._new_fields_ms = (
            int(self.new_fields_from.timestamp() * 1000) if self.new_fields_from else self._epoch_ms + 7 * 86_400_000
        )

    # -- timeline ---------------------------------------------------------------------------------

    def _interval_ms(self, log_type: str) -> Optional[int]:
        seconds = self.intervals_seconds.get(log_type)
        return int(seconds * 1000) if seconds else None

    def time_ms(self, log_type: str, index: int) -> int:
        """UTC epoch milliseconds of entry `index`."""
        interval = self._interval_ms(log_type)
        assert interval is not None
        jitter = mix(self.seed, self._type_ids[log_type], index) % interval
        return self._epoch_ms + index * interval + jitter

    def index_range(self, log_type: str, start: datetime, end: datetime) -> range:
        """Indices of the entries with `start <= eventTime < end`."""
        interval = self._interval_ms(log_type)
        if interval is None:
            return range(0)
        start_ms, end_ms = int(start.timestamp() * 1000), int(end.timestamp() * 1000)
        low = max(0, (start_ms - self._epoch_ms) // interval)
        high = max(0, math.ceil((end_ms - self._epoch_ms) / interval))
        if self.max_entries_per_type is not None:
            high = min(high, self.max_entries_per_type)
        if low < high and self.time_ms(log_type, low) < start_ms:
            low += 1
        if low < high and self.time_ms(log_type, high - 1) >= end_ms:
            high -= 1
        return range(low, max(low, high))

    @staticmethod
    def copies(index: int) -> int:
        """How many byte-identical copies of entry `index` are served (1, or 2 for duplicates)."""
        return 2 if index % DUPLICATE_EVERY == DUPLICATE_PHASE else 1

    @staticmethod
    def count(indices: range) -> int:
        """Entries served for an index range, duplicates included."""
        if not indices:
            return 0

        def below(limit: int) -> int:
            return (limit - DUPLICATE_PHASE + DUPLICATE_EVERY - 1) // DUPLICATE_EVERY if limit > DUPLICATE_PHASE else 0

        return len(indices) + below(indices.stop) - below(indices.start)

    def _late_every(self, log_type: str) -> Optional[int]:
        if isinstance(self.late_every, dict):
            return self.late_every.get(log_type)
        return self.late_every

    @property
    def max_delay(self) -> timedelta:
        """The longest delay of any late entry: entries older than this are all written."""
        delays = [delay for late in self.late_entries.values() for delay in late.values()]
        if self.late_every:
            delays.append(max(self.late_delay, self.late_delay_max or self.late_delay))
        return max(delays, default=timedelta(0))

    def delay_of(self, log_type: str, index: int) -> Optional[timedelta]:
        """How long after its eventTime entry `index` is written, if it is a late one (None: on time)."""
        named = self.late_entries.get(log_type, {}).get(index)
        if named is not None:
            return named
        every = self._late_every(log_type)
        if not every or index % every != (DUPLICATE_PHASE - 1) % every:
            return None
        if self.late_delay_max is None or self.late_delay_max <= self.late_delay:
            return self.late_delay
        spread_ms = int((self.late_delay_max - self.late_delay).total_seconds() * 1000)
        own = mix(self.seed, self._type_ids[log_type], index, 5) % (spread_ms + 1)
        return self.late_delay + timedelta(milliseconds=own)

    def is_hidden(self, log_type: str, index: int, now: datetime) -> bool:
        """Whether entry `index` is a late one that Gong has not written yet at `now`."""
        delay = self.delay_of(log_type, index)
        if delay is None:
            return False
        visible_at_ms = self.time_ms(log_type, index) + int(delay.total_seconds() * 1000)
        return visible_at_ms > int(now.timestamp() * 1000)

    def hidden_count(self, log_type: str, indices: range, now: datetime) -> int:
        """Entries of `indices` not written yet at `now`; only the last `max_delay` can hold any."""
        if not indices or not (self._late_every(log_type) or self.late_entries.get(log_type)):
            return 0
        recent = self.index_range(log_type, now - self.max_delay, datetime.max.replace(tzinfo=timezone.utc))
        low, high = max(indices.start, recent.start), min(indices.stop, recent.stop)
        candidates: set[int] = {i for i in self.late_entries.get(log_type, {}) if low <= i < high}
        every = self._late_every(log_type)
        if every:
            phase = (DUPLICATE_PHASE - 1) % every
            first = low + (phase - low) % every
            candidates.update(range(first, high, every))
        return sum(self.copies(i) for i in candidates if self.is_hidden(log_type, i, now))

    def entries(self, log_type: str, start: datetime, end: datetime, now: datetime) -> Iterator[dict[str, Any]]:
        """Every entry visible at `now` with `start <= eventTime < end`, duplicates included, in time order."""
        for index in self.index_range(log_type, start, min(end, now)):
            if self.is_hidden(log_type, index, now):
                continue
            entry = self.entry(log_type, index)
            for _ in range(self.copies(index)):
                yield entry

    # -- content ----------------------------------------------------------------------------------

    def entry(self, log_type: str, index: int) -> dict[str, Any]:
        """Build entry `index` of `log_type` as Gong would serve it."""
        time_ms = self.time_ms(log_type, index)
        moment = datetime.fromtimestamp(time_ms / 1000, tz=timezone.utc)
        rand = mix(self.seed, self._type_ids[log_type], index, 1)
        late = time_ms >= self._new_fields_ms
        session = None
        if self.shape == "gong" and log_type.endswith("CallPlay"):
            # Every segment of a player session belongs to one person.
            session = gong_shapes.play_session(self._type_ids[log_type], index, self._seed_mix)
            person_rand = session[2]
        else:
            person_rand = rand
        entry: dict[str, Any] = {}
        if log_type.startswith("ExternallyShared"):
            if self.shape == "gong":  # the external viewer, by e-mail (and sometimes name), with no user id
                viewer = EXTERNAL_VIEWERS[person_rand % len(EXTERNAL_VIEWERS)]
                entry["userEmailAddress"] = viewer
                if viewer in EXTERNAL_VIEWER_NAMES:
                    entry["userFullName"] = EXTERNAL_VIEWER_NAMES[viewer]
        else:
            entry.update(_person("user", USERS[person_rand % len(USERS)], person_rand))
            if rand % 17 == 0:
                admin = ADMINS[(rand >> 8) % len(ADMINS)]
                entry.update(_person("impersonator", admin, rand >> 8))
                entry["impersonatorCompanyId"] = "5550000000000000001"
        entry["eventTime"] = render_time(moment, OFFSETS[index % len(OFFSETS)], with_millis=index % 3 == 0)
        if self.shape == "gong":
            entry["logRecord"] = self._gong_record(log_type, index, rand, entry, moment, late, session)
        else:
            builder = getattr(self, f"_record_{log_type}")
            entry["logRecord"] = builder(index, rand, late)
        if self.shape == "renamed":
            _rename_fields(log_type, entry, rand)
        return entry

    def _seed_mix(self, *values: int) -> int:
        return mix(self.seed, *values)

    def _gong_record(
        self,
        log_type: str,
        index: int,
        rand: int,
        entry: dict[str, Any],
        moment: datetime,
        late: bool,
        session: Optional[tuple[int, int, int]],
    ) -> dict[str, Any]:
        email = entry.get("userEmailAddress", "")
        if log_type == "AccessLog":
            record = gong_shapes.access_log(index, rand, email, moment, late)
            if self.adversarial:
                _hide_addresses_in_gong_access(record, index, rand)
            return record
        if log_type == "UserActivityLog":
            record = gong_shapes.user_activity_log(index, rand, email, moment, late)
            if self.adversarial:
                first, last = USERS[(rand >> 3) % len(USERS)]
                record["httpRequest"]["body"] = json.dumps(
                    {"inviteEmail": _email(first, last).upper(), "fromIp": _ipv6(rand)}
                )
            return record
        if log_type == "ExternallySharedCallAccess":
            return gong_shapes.externally_shared_call_access(rand, late)
        assert session is not None
        return gong_shapes.call_play(index, session, moment, late, shared=log_type.startswith("Externally"))

    @staticmethod
    def _client(rand: int) -> dict[str, Any]:
        return {
            "ipAddress": f"203.0.113.{rand % 250 + 1}",
            "userAgent": USER_AGENTS[(rand >> 4) % len(USER_AGENTS)],
        }

    def _record_AccessLog(self, index: int, rand: int, late: bool) -> dict[str, Any]:
        record: dict[str, Any] = {
            "action": ACCESS_ACTIONS[(rand >> 12) % len(ACCESS_ACTIONS)],
            **self._client(rand),
            "authenticationMethod": "SSO" if rand % 3 else "PASSWORD",
            "geo": {"country": ["US", "IL", "DE", "IN"][(rand >> 16) % 4], "city": "Springfield"},
            # sequence_num is usually an int but sometimes a string: a type-varying field.
            "sequence_num": str(index) if index % 11 == 0 else index,
        }
        if late:
            record["mfaMethod"] = ["TOTP", "WEBAUTHN", "SMS"][(rand >> 20) % 3]
        if self.adversarial:
            record.update(_hidden_addresses(index, rand))
        return record

    def _record_UserActivityLog(self, index: int, rand: int, late: bool) -> dict[str, Any]:
        table_changes: list[dict[str, Any]] = []
        for table_number in range(1 + rand % 2):
            rows = []
            for row_number in range(1 + (rand >> (4 + table_number)) % 2):
                columns = []
                for column_number in range(1 + (rand >> (8 + row_number)) % 3):
                    variant = (rand >> (12 + column_number)) % 3
                    old_value: Any = [index % 100, f"value-{index % 7}", bool(index % 2)][variant]
                    columns.append(
                        {"columnName": f"setting_{column_number}", "oldValue": old_value, "newValue": f"v{index}"}
                    )
                rows.append(
                    {"rowId": f"{index}-{table_number}-{row_number}", "changeType": "UPDATE", "columnChanges": columns}
                )
            table_changes.append(
                {"tableName": SETTINGS_TABLES[(rand + table_number) % len(SETTINGS_TABLES)], "rowChanges": rows}
            )
        record: dict[str, Any] = {
            "activityType": "SETTINGS_CHANGE",
            **self._client(rand),
            "requestBody": f'{{"settingId": {index % 50}, "enabled": {str(bool(rand % 2)).lower()}}}',
            "sequence_num": f"{index:08d}",
            "tableChanges": table_changes,
        }
        if late:
            record["approvalTicket"] = f"CHG-{index % 10_000:04d}"
        if self.adversarial:
            first, last = USERS[(rand >> 3) % len(USERS)]
            record["requestBody"] = json.dumps({"inviteEmail": _email(first, last).upper(), "fromIp": _ipv6(rand)})
            first_row: dict[str, Any] = table_changes[0]["rowChanges"][0]
            first_row["columnChanges"].append(
                {"columnName": "notify", "oldValue": f"{first}.{last}@acme-corp.example", "newValue": _ipv4(rand)}
            )
        return record

    def _record_UserCallPlay(self, index: int, rand: int, late: bool) -> dict[str, Any]:
        duration = 30 + rand % 3000
        record: dict[str, Any] = {
            "callId": f"{7_000_000_000_000_000 + (rand >> 20) % 400}",
            "callTitle": f"Discovery call #{(rand >> 20) % 400}",
            **self._client(rand),
            "playDurationSeconds": duration,
            "playedSegments": [{"fromSecond": part * 60, "toSecond": part * 60 + 45} for part in range(1 + rand % 3)],
        }
        if late:
            record["playbackSpeed"] = [1, 1.25, 1.5, 2][(rand >> 24) % 4]
        return record

    def _record_ExternallySharedCallAccess(self, index: int, rand: int, late: bool) -> dict[str, Any]:
        first, last = USERS[(rand >> 6) % len(USERS)]
        record: dict[str, Any] = {
            "callId": f"{7_000_000_000_000_000 + (rand >> 20) % 400}",
            "viewerEmailAddress": EXTERNAL_VIEWERS[rand % len(EXTERNAL_VIEWERS)],
            **self._client(rand),
            "sharedBy": {"userId": _user_id(first), "emailAddress": _email(first, last)},
            "accessType": "OPEN_LINK",
        }
        if late:
            record["linkExpiresAt"] = "2027-01-01T00:00:00Z"
        return record

    def _record_ExternallySharedCallPlay(self, index: int, rand: int, late: bool) -> dict[str, Any]:
        record: dict[str, Any] = {
            "callId": f"{7_000_000_000_000_000 + (rand >> 20) % 400}",
            "viewerEmailAddress": EXTERNAL_VIEWERS[rand % len(EXTERNAL_VIEWERS)],
            **self._client(rand),
            "playDurationSeconds": 10 + rand % 900,
            "playedSegments": [{"fromSecond": 0, "toSecond": 10 + rand % 900}],
        }
        if late:
            record["viewerCountry"] = ["US", "GB", "FR"][(rand >> 24) % 3]
        return record


SHAPES: tuple[str, ...] = ("gong", "invented", "renamed")

RENAMED_RECORD_KEYS: dict[str, dict[str, str]] = {
    "AccessLog": {"action": "eventName", "ipAddress": "remoteAddress"},
    "UserCallPlay": {"callId": "conversationId", "playDurationSeconds": "watchedSeconds"},
    "ExternallySharedCallAccess": {"ipAddress": "clientIp"},
    "ExternallySharedCallPlay": {"ipAddress": "clientIp"},
}
"""`logRecord` keys of the renamed tenant: old name -> its name there."""


def _rename_fields(log_type: str, entry: dict[str, Any], rand: int) -> None:
    """Turn an invented-shape entry into the renamed tenant's (`SyntheticLogs.shape`), in place."""
    renames = RENAMED_RECORD_KEYS.get(log_type, {})
    record = {renames.get(key, key): value for key, value in entry["logRecord"].items()}
    if log_type.startswith("ExternallyShared"):
        record["call"] = {"id": record.pop("callId")}
        entry["userEmailAddress"] = record.pop("viewerEmailAddress")
    if log_type == "AccessLog":
        record["sessionToken"] = f"gst_{mix(rand, 99):016x}"
    entry["logRecord"] = record


LOOKALIKES: tuple[str, ...] = (
    "client 1.2.3.4.5",
    "api 10.0",
    "at 12:30:45",
    "mac 00:1A:2B:3C:4D:5E",
    "std::vector",
    "build 2026.11.04",
    "ratio 255.255.255.256",
)
"""Strings that look like addresses but are not: an adversarial sandbox serves them, and they must survive."""


def _ipv4(rand: int) -> str:
    return f"198.51.100.{rand % 200 + 1}"


def _ipv6(rand: int) -> str:
    return f"2001:db8::{rand % 4000 + 1:x}"


def _hidden_addresses(index: int, rand: int) -> dict[str, Any]:
    first, last = USERS[(rand >> 5) % len(USERS)]
    mixed = f"{first}.{last}+audit@Acme-Corp.example"
    viewer = EXTERNAL_VIEWERS[(rand >> 7) % len(EXTERNAL_VIEWERS)]
    full = "2001:0db8:0000:0000:0000:0000:0000:0042"
    v6 = [_ipv6(rand), f"[{_ipv6(rand >> 3)}]:443", f"::ffff:{_ipv4(rand >> 5)}", full]
    return {
        "requestHeaders": [
            {"name": "X-Forwarded-For", "value": f"{_ipv4(rand)}, {v6[index % len(v6)]}"},
            {"name": "Referer", "value": f"https://app.gong.example/share?email={mixed}&ref={viewer}"},
            {"name": "X-Meta", "value": json.dumps({"viewer": viewer.upper(), "hop": f"{_ipv4(rand >> 9)}:8080"})},
        ],
        "lookalikes": LOOKALIKES[index % len(LOOKALIKES)],
    }


def _hide_addresses_in_gong_access(record: dict[str, Any], index: int, rand: int) -> None:
    """The adversarial forms of `_hidden_addresses`, in the fields real AccessLog entries have."""
    hidden = _hidden_addresses(index, rand)
    forwarded, referer, meta = (header["value"] for header in hidden["requestHeaders"])
    first, second = forwarded.split(", ")
    record["request_headers"]["x-forwarded-for"] = f"{second}, {first}"  # an IPv6 client in any notation
    record["request_headers"]["referer"] = referer
    record["message"] = meta
    record["lookalikes"] = hidden["lookalikes"]


def _user_id(first: str) -> str:
    return f"{4_200_000_000_000_000_000 + mix(len(first), ord(first[0])) % 1_000_000:d}"


def _email(first: str, last: str) -> str:
    return f"{first.lower()}.{last.lower()}@acme-corp.example"


def _person(role: str, name: tuple[str, str], rand: int) -> dict[str, str]:
    first, last = name
    return {
        f"{role}Id" if role == "user" else f"{role}UserId": _user_id(first),
        f"{role}EmailAddress": _email(first, last),
        f"{role}FullName": f"{first} {last}",
    }
