"""What the ready audit views are: the concepts they show, where each concept may be found, and their SQL shape.

Gong documents nothing inside `logRecord`. Each view column is a *concept* with candidate spellings:
first the names real tenants send (the evidence is in `gong_source/sandbox/gong_shapes.py`), then the
fallbacks earlier versions of this connector guessed, which some tenants may still match. `views.py`
resolves them against the loaded schema.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Final, Optional, Union

from gong_source.settings import LOG_TYPES

if TYPE_CHECKING:
    from gong_source.views import SqlDialect  # the views write the SQL; the catalog only names what it reads

NUMBER_TYPES: Final = frozenset({"bigint", "double", "decimal", "wei"})
VALUE_TYPES: Final = frozenset({"text", "bigint", "double", "decimal", "wei"})
"""What an id, a name or an address can be stored as (not JSON, not a time, not a boolean)."""
SCALAR_TYPES: Final = VALUE_TYPES | {"bool", "timestamp", "date", "time"}
"""What a changed value can be stored as: Gong's `oldValue` has no fixed type, so dlt keeps the first type
it saw and puts the others in variant columns (`old_value__v_text`, ...), which the views read too."""


@dataclass(frozen=True)
class Difference:
    """A candidate computed from two numeric columns of one entry: `minuend - subtrahend`."""

    minuend: str
    subtrahend: str


@dataclass(frozen=True)
class Pair:
    """A candidate that shows two text columns of one row as `first=second` (a key column and its value)."""

    first: str
    second: str


Candidate = Union[str, Difference, Pair]


def candidate_columns(candidate: Candidate) -> tuple[str, ...]:
    """The columns a candidate reads."""
    if isinstance(candidate, Difference):
        return (candidate.minuend, candidate.subtrahend)
    if isinstance(candidate, Pair):
        return (candidate.first, candidate.second)
    return (candidate,)


def describe_candidate(candidate: Candidate) -> str:
    """A candidate as people read it: `a`, `a - b` or `a=b`."""
    if isinstance(candidate, Difference):
        return f"{candidate.minuend} - {candidate.subtrahend}"
    if isinstance(candidate, Pair):
        return f"{candidate.first} || '=' || {candidate.second}"
    return candidate


@dataclass(frozen=True)
class Concept:
    """One thing a view needs, with the spellings it may have in a tenant's tables (most likely first)."""

    name: str
    candidates: tuple[Candidate, ...]
    data_types: frozenset[str] = VALUE_TYPES
    view_type: Optional[str] = "text"
    """dlt type every source is cast to in the views, so that a union of tables (and a NULL placeholder)
    has one type on every destination; None: used as stored."""
    loaded_as: Optional[str] = None
    """The type the connector loads this column as; a column of another type was created by an earlier
    version, and values may have been coerced into it (a run warns)."""
    internal: bool = False
    """Read by a view's SQL but not shown, nor mappable (the entry key that groups plays without a session)."""
    first_hop: bool = False
    """The value may be a chain `client, proxy, ...` (`x-forwarded-for`): the view shows its first entry,
    trimmed, which is the client. A single address is its own first hop."""


EVENT_TIME = Concept("event_time", ("event_time",), frozenset({"timestamp"}), view_type=None)
ENTRY_KEY = Concept("entry_key", ("_entry_key",), internal=True)
CALL_ID = Concept("call_id", ("log_record__call_id", "call_id", "log_record__call__id"))
USER_ID = Concept("user_id", ("user_id", "log_record__user_id"))
USER_EMAIL = Concept("user_email", ("user_email_address", "log_record__user_email_address"))
IMPERSONATOR_EMAIL = Concept(
    "impersonator_email", ("impersonator_email_address", "log_record__impersonator_email_address")
)
PLAYED_SECONDS = Concept(
    "played_seconds",
    (
        Difference("log_record__end_time", "log_record__start_time"),  # one playback segment's positions
        "log_record__play_duration_seconds",
        "log_record__played_seconds",
        "log_record__duration_seconds",
        "log_record__play_duration",
    ),
    NUMBER_TYPES,
    view_type="double",
)
PLAYER_SESSION = Concept("player_session_id", ("log_record__video_player_instance_id",))
PLAY_SPEED = Concept("play_speed", ("log_record__play_speed", "log_record__playback_speed"), NUMBER_TYPES, "double")
DEVICE = Concept("device", ("log_record__device",))
VIEWER_EMAIL = Concept(
    "viewer_email",
    (
        "user_email_address",  # the shared-call types write the external viewer in the top-level user fields
        "log_record__viewer_email_address",
        "log_record__viewer_email",
        "log_record__viewer__email_address",
    ),
)
VIEWER_NAME = Concept("viewer_name", ("user_full_name", "log_record__viewer_full_name"))
SHARING_ID = Concept("sharing_id", ("log_record__time_based_secure_sharing_id",))
IP_ADDRESS = Concept(
    "ip",
    (
        "log_record__request_headers__x_forwarded_for",  # AccessLog
        "log_record__page_viewer_ip",  # ExternallySharedCallAccess
        "log_record__http_request__client_ip",  # UserActivityLog
        "log_record__ip_address",
        "log_record__client_ip",
        "log_record__ip",
        "ip_address",
    ),
    first_hop=True,
)
ACCESS_ACTION = Concept("action", ("log_record__action", "log_record__access_type", "log_record__event_type"))
HTTP_METHOD = Concept("method", ("log_record__method", "log_record__http_request__verb"))
REQUEST_PATH = Concept("path", ("log_record__requested_uri", "log_record__http_request__endpoint_uri"))
HTTP_STATUS = Concept("status", ("log_record__status", "log_record__status_code"), NUMBER_TYPES, "bigint")
CHANGED_TABLE = Concept("table_name", ("table_name",))
PRIMARY_KEY = Concept("primary_key", (Pair("column_name", "column_value"),))
CHANGED_COLUMN = Concept("column_name", ("column_name",))
OPERATION = Concept("operation", ("operation", "change_type"))
OLD_VALUE = Concept("old_value", ("old_value",), SCALAR_TYPES, loaded_as="text")
NEW_VALUE = Concept("new_value", ("new_value",), SCALAR_TYPES, loaded_as="text")


@dataclass(frozen=True)
class ChildTable:
    """A child table a view joins (dlt writes a list inside `logRecord` as a table of its own, its rows
    pointing at their parent row by `_dlt_parent_id = parent._dlt_id`)."""

    alias: str
    path: tuple[str, ...]
    """The list's path below the log type's table, in dlt's naming: ("log_record", "table_changes")."""
    parent: str = "r"
    required: bool = False
    """Inner join (rows without one are not in the view) or left join (NULL columns)."""
    aggregate: bool = False
    """One row per parent row: the values of its rows joined with ', ' in list order (a composite key)."""


@dataclass(frozen=True)
class ViewColumn:
    """A column of a view: the concept it shows, its name in the view, whether the view needs it, and the
    table it comes from (`r`, the log type's table, or a child table's alias)."""

    concept: Concept
    alias: str
    required: bool
    table: str = "r"
    only_from: tuple[str, ...] = ()
    """Tables where the column is expected; elsewhere it is NULL without a note (opened calls have no
    played seconds). Empty: every table the view reads."""
    note_if_absent: bool = True
    """False where real tenants lack it and only some other tenant has it: NULL without a note."""


def _required(concept: Concept, alias: Optional[str] = None, table: str = "r") -> ViewColumn:
    return ViewColumn(concept, alias or concept.name, required=True, table=table)


def _optional(
    concept: Concept,
    alias: Optional[str] = None,
    table: str = "r",
    only_from: tuple[str, ...] = (),
    note_if_absent: bool = True,
) -> ViewColumn:
    return ViewColumn(concept, alias or concept.name, False, table, only_from, note_if_absent)


@dataclass(frozen=True)
class AuditView:
    """One view: the question it answers, the tables it reads (each with a label), its columns, the child
    tables it joins, and the SQL around the union of its per-table SELECTs."""

    name: str
    question: str
    tables: tuple[tuple[str, str], ...]
    columns: tuple[ViewColumn, ...]
    label_alias: Optional[str] = None
    """Column holding each row's table label (e.g. the log type); None: no such column."""
    where_not_null: Optional[str] = None
    """Alias of a column whose NULL rows are left out (e.g. only impersonated actions)."""
    children: tuple[ChildTable, ...] = ()
    wrap: Callable[[str, SqlDialect], str] = lambda union, sql: union
    """The view's SQL around the union of its tables' SELECTs (a grouping), in the destination's dialect."""


ALL_TABLES: Final = tuple((log_type.table_name, log_type.name) for log_type in LOG_TYPES)
CHANGES_PATH: Final = ("log_record", "table_changes")
ROWS_PATH: Final = (*CHANGES_PATH, "row_changes")


def _per_player_session(union: str, sql: SqlDialect) -> str:
    # A segment without a player session (a tenant without one) is a play of its own: grouped by its entry key.
    return (
        "SELECT min(event_time) AS event_time, call_id, user_id, user_email_address, "
        f"{sql.to_milliseconds('sum(played_seconds)')} AS played_seconds, player_session_id, count(*) AS segments, "
        "max(play_speed) AS play_speed, max(device) AS device, max(event_time) AS last_event_time "
        f"FROM ({union}) AS plays "
        "GROUP BY COALESCE(player_session_id, entry_key), call_id, user_id, user_email_address, player_session_id"
    )


AUDIT_VIEWS: Final[tuple[AuditView, ...]] = (
    AuditView(
        "v_call_plays",
        "Who played which calls, and for how long? One row per player session (its segments summed).",
        (("user_call_play", "UserCallPlay"),),
        (
            _required(EVENT_TIME),
            _required(CALL_ID),
            _optional(USER_ID),
            _optional(USER_EMAIL, "user_email_address"),
            _optional(PLAYED_SECONDS),
            _optional(PLAYER_SESSION),
            _optional(PLAY_SPEED),
            _optional(DEVICE),
            _required(ENTRY_KEY),
        ),
        wrap=_per_player_session,
    ),
    AuditView(
        "v_external_call_views",
        "Which externally shared calls were opened or played, by whom, from where?",
        (("externally_shared_call_access", "opened"), ("externally_shared_call_play", "played")),
        (
            _required(EVENT_TIME),
            _required(CALL_ID),
            _optional(VIEWER_EMAIL),
            _optional(IP_ADDRESS, "viewer_ip", only_from=("externally_shared_call_access",)),
            _optional(SHARING_ID),
            _optional(VIEWER_NAME),
            _optional(PLAYED_SECONDS, only_from=("externally_shared_call_play",)),
            _optional(PLAYER_SESSION, only_from=("externally_shared_call_play",)),
        ),
        label_alias="action",
    ),
    AuditView(
        "v_impersonated_actions",
        "What was done while impersonating, by whom and for whom?",
        ALL_TABLES,
        (_required(EVENT_TIME), _required(IMPERSONATOR_EMAIL), _optional(USER_EMAIL, "on_behalf_of_email")),
        label_alias="log_type",
        where_not_null="impersonator_email",
    ),
    AuditView(
        "v_access_by_ip",
        "Requests per client IP, action, method, path and status (e.g. failed logins), first and last seen.",
        (("access_log", "AccessLog"),),
        (
            _required(EVENT_TIME),
            _required(IP_ADDRESS),
            _optional(ACCESS_ACTION, note_if_absent=False),  # real AccessLog entries have none
            _optional(HTTP_METHOD),
            _optional(REQUEST_PATH),
            _optional(HTTP_STATUS),
        ),
        wrap=lambda union, sql: (
            "SELECT ip, action, count(*) AS events, min(event_time) AS first_seen, max(event_time) AS last_seen, "
            f"method, path, status FROM ({union}) AS access GROUP BY ip, action, method, path, status"
        ),
    ),
    AuditView(
        "v_daily_activity",
        "Daily activity per user across all log types.",
        ALL_TABLES,
        (_required(EVENT_TIME), _required(USER_EMAIL, "user_email_address")),
        label_alias="log_type",
        wrap=lambda union, sql: (
            "SELECT CAST(event_time AS DATE) AS day, user_email_address, log_type, count(*) AS events "
            f"FROM ({union}) AS activity GROUP BY CAST(event_time AS DATE), user_email_address, log_type"
        ),
    ),
    AuditView(
        "v_user_activity_changes",
        "Who changed what: one row per changed column (or changed row or table, where Gong lists no column).",
        (("user_activity_log", "UserActivityLog"),),
        (
            _required(EVENT_TIME),
            _optional(USER_ID),
            _optional(USER_EMAIL, "user_email_address"),
            _optional(IMPERSONATOR_EMAIL),
            _optional(IP_ADDRESS, "client_ip"),
            _optional(HTTP_METHOD),
            _optional(REQUEST_PATH, "endpoint"),
            _required(CHANGED_TABLE, table="t"),
            _optional(PRIMARY_KEY, table="k"),
            _optional(CHANGED_COLUMN, table="c"),
            _optional(OPERATION, table="c"),
            _optional(OLD_VALUE, table="c"),
            _optional(NEW_VALUE, table="c"),
        ),
        children=(
            ChildTable("t", CHANGES_PATH, required=True),
            ChildTable("w", ROWS_PATH, parent="t"),
            ChildTable("k", (*ROWS_PATH, "primary_key_columns"), parent="w", aggregate=True),
            ChildTable("c", (*ROWS_PATH, "column_changes"), parent="w"),
        ),
    ),
)
