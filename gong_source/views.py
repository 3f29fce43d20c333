"""Ready SQL views for common audit questions, built from the columns a tenant really has.

Gong does not document the field names inside `logRecord`, so every view column is a *concept*
(`call_id`, `played_seconds`, ...) with a short list of candidate spellings, top-level and inside
`logRecord`. Each concept is resolved per table against the loaded schema, and never across tables
(a wrong column is worse than a missing view): the only column taken is the one candidate, or the
column the user names in `[sources.gong.view_columns.<table>]`. A view is created when its required
concepts resolve in at least one of its tables; optional ones are NULL when absent. Each outcome says
what was missing and which setting maps it.
"""

from __future__ import annotations

import difflib
import json
import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Final, Mapping, Optional

import dlt
from dlt.common.schema import Schema
from dlt.pipeline.pipeline import Pipeline

from gong_source.errors import GongConfigError
from gong_source.settings import LOG_TYPES

logger = logging.getLogger("gong_source")

VIEW_COLUMNS_SETTING: Final = "sources.gong.view_columns"
NUMBER_TYPES: Final = frozenset({"bigint", "double", "decimal", "wei"})
VALUE_TYPES: Final = frozenset({"text", "bigint", "double", "decimal", "wei"})
"""What an id, a name or an address can be stored as (not JSON, not a time, not a boolean)."""

ViewColumns = dict[str, dict[str, str]]
"""The user's mapping: table -> concept -> source column."""


@dataclass(frozen=True)
class Concept:
    """One thing a view needs, with the spellings it may have in a tenant's tables (most likely first)."""

    name: str
    candidates: tuple[str, ...]
    data_types: frozenset[str] = VALUE_TYPES
    view_type: Optional[str] = "text"
    """dlt type every source is cast to in the views, so that a union of tables (and a NULL placeholder)
    has one type on every destination; None: used as stored."""


EVENT_TIME = Concept("event_time", ("event_time",), frozenset({"timestamp"}), view_type=None)
CALL_ID = Concept("call_id", ("log_record__call_id", "call_id", "log_record__call__id"))
USER_ID = Concept("user_id", ("user_id", "log_record__user_id"))
USER_EMAIL = Concept("user_email", ("user_email_address", "log_record__user_email_address"))
IMPERSONATOR_EMAIL = Concept(
    "impersonator_email", ("impersonator_email_address", "log_record__impersonator_email_address")
)
PLAYED_SECONDS = Concept(
    "played_seconds",
    (
        "log_record__play_duration_seconds",
        "log_record__played_seconds",
        "log_record__duration_seconds",
        "log_record__play_duration",
    ),
    NUMBER_TYPES,
    view_type="double",
)
VIEWER_EMAIL = Concept(
    "viewer_email",
    ("log_record__viewer_email_address", "log_record__viewer_email", "log_record__viewer__email_address"),
)
IP_ADDRESS = Concept("ip", ("log_record__ip_address", "log_record__client_ip", "log_record__ip", "ip_address"))
ACCESS_ACTION = Concept("action", ("log_record__action", "log_record__access_type", "log_record__event_type"))


@dataclass(frozen=True)
class ViewColumn:
    """A column of a view: the concept it shows, its name in the view, and whether the view needs it."""

    concept: Concept
    alias: str
    required: bool


def _required(concept: Concept, alias: Optional[str] = None) -> ViewColumn:
    return ViewColumn(concept, alias or concept.name, required=True)


def _optional(concept: Concept, alias: Optional[str] = None) -> ViewColumn:
    return ViewColumn(concept, alias or concept.name, required=False)


@dataclass(frozen=True)
class AuditView:
    """One view: the question it answers, the tables it reads (each with a label), its columns, and the
    SQL around the union of its per-table SELECTs."""

    name: str
    question: str
    tables: tuple[tuple[str, str], ...]
    columns: tuple[ViewColumn, ...]
    label_alias: Optional[str] = None
    """Column holding each row's table label (e.g. the log type); None: no such column."""
    where_not_null: Optional[str] = None
    """Alias of a column whose NULL rows are left out (e.g. only impersonated actions)."""
    wrap: Callable[[str], str] = lambda union: union


ALL_TABLES: Final = tuple((log_type.table_name, log_type.name) for log_type in LOG_TYPES)

AUDIT_VIEWS: Final[tuple[AuditView, ...]] = (
    AuditView(
        "v_call_plays",
        "Who played which calls, and for how long?",
        (("user_call_play", "UserCallPlay"),),
        (
            _required(EVENT_TIME),
            _required(CALL_ID),
            _optional(USER_ID),
            _optional(USER_EMAIL, "user_email_address"),
            _optional(PLAYED_SECONDS),
        ),
    ),
    AuditView(
        "v_external_call_views",
        "Which externally shared calls were opened or played, by whom, from where?",
        (("externally_shared_call_access", "opened"), ("externally_shared_call_play", "played")),
        (_required(EVENT_TIME), _required(CALL_ID), _optional(VIEWER_EMAIL), _optional(IP_ADDRESS, "viewer_ip")),
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
        "Access per IP address and action (e.g. failed logins), with first and last time seen.",
        (("access_log", "AccessLog"),),
        (_required(EVENT_TIME), _required(IP_ADDRESS), _optional(ACCESS_ACTION)),
        wrap=lambda union: (
            "SELECT ip, action, count(*) AS events, min(event_time) AS first_seen, max(event_time) AS last_seen "
            f"FROM ({union}) AS access GROUP BY ip, action"
        ),
    ),
    AuditView(
        "v_daily_activity",
        "Daily activity per user across all log types.",
        ALL_TABLES,
        (_required(EVENT_TIME), _required(USER_EMAIL, "user_email_address")),
        label_alias="log_type",
        wrap=lambda union: (
            "SELECT CAST(event_time AS DATE) AS day, user_email_address, log_type, count(*) AS events "
            f"FROM ({union}) AS activity GROUP BY CAST(event_time AS DATE), user_email_address, log_type"
        ),
    ),
)


def concepts_of_table(table: str) -> dict[str, Concept]:
    """The concepts that some view reads from `table` (what `view_columns.<table>` may map)."""
    return {
        column.concept.name: column.concept
        for view in AUDIT_VIEWS
        if table in dict(view.tables)
        for column in view.columns
    }


def setting_for(table: str, concept: str) -> str:
    """The config key that maps a concept of a table to a column."""
    return f"{VIEW_COLUMNS_SETTING}.{table}.{concept}"


# -- the user's mapping ------------------------------------------------------------------------------


def read_view_columns(configured: Any = None) -> ViewColumns:
    """The validated `[sources.gong.view_columns]` mapping (from dlt config when not given).

    Checks its shape, tables and concepts; whether the columns exist is `checked_view_columns`'s job."""
    raw = dlt.config.get(VIEW_COLUMNS_SETTING) if configured is None else configured
    if raw is None or raw == "":
        return {}
    if isinstance(raw, str):  # from an environment variable: JSON
        try:
            raw = json.loads(raw)
        except ValueError:
            raise GongConfigError(
                f"{VIEW_COLUMNS_SETTING} (env SOURCES__GONG__VIEW_COLUMNS) is not valid JSON; give e.g. "
                '{"user_call_play": {"call_id": "log_record__conversation_id"}}.'
            ) from None
    if not isinstance(raw, Mapping):
        raise GongConfigError(
            f"{VIEW_COLUMNS_SETTING} must be a table of tables, e.g. [{VIEW_COLUMNS_SETTING}.access_log]."
        )
    mapping: ViewColumns = {}
    for table, columns in raw.items():
        concepts = concepts_of_table(str(table))
        if not concepts:
            raise GongConfigError(
                f"{VIEW_COLUMNS_SETTING}.{table}: no view reads a table {table!r}. Tables: "
                f"{', '.join(name for name, _ in ALL_TABLES)}."
            )
        if not isinstance(columns, Mapping):
            raise GongConfigError(
                f"{VIEW_COLUMNS_SETTING}.{table} must map view columns to column names, e.g. "
                f'[{VIEW_COLUMNS_SETTING}.{table}] {next(iter(concepts))} = "<column>".'
            )
        for concept, column in columns.items():
            if concept not in concepts:
                raise GongConfigError(
                    f"{setting_for(str(table), str(concept))}: no view reads a column {concept!r} from {table}. "
                    f"It can map: {', '.join(concepts)}."
                )
            if not isinstance(column, str) or not column.strip():
                raise GongConfigError(
                    f"{setting_for(str(table), str(concept))} must be a column name of {table}, as "
                    "`gong-logs fields` lists them."
                )
        mapping[str(table)] = {str(concept): str(column).strip() for concept, column in columns.items()}
    return mapping


def _mapped_column_problem(schema: Schema, table: str, concept: Concept, column: str) -> Optional[str]:
    table_columns = schema.tables[table]["columns"]
    if column not in table_columns:
        close = difflib.get_close_matches(column, list(table_columns), n=3, cutoff=0.8)
        hint = f" Did you mean {' or '.join(close)}?" if close else ""
        return f"table {table} has no such column.{hint} `gong-logs fields` lists every column of every table."
    data_type = table_columns[column].get("data_type")
    if data_type not in concept.data_types:
        return f"it holds {data_type}; {concept.name} needs {' or '.join(sorted(concept.data_types))}."
    return None


def checked_view_columns(pipeline: Pipeline, restore_schema: bool = True) -> ViewColumns:
    """The configured mapping, refused before any request if a loaded table lacks a mapped column.

    On a machine without the pipeline's local state (an ephemeral worker) the schema is first restored
    from the destination (`restore_schema`; this reads the warehouse, never Gong). Tables not loaded yet
    are checked when their views are built, after their first load."""
    mapping = read_view_columns()
    if mapping and restore_schema and not pipeline.default_schema_name:
        pipeline.sync_destination()
    if not pipeline.default_schema_name:
        return mapping
    schema = pipeline.schemas[pipeline.default_schema_name]
    for table, columns in mapping.items():
        if table not in schema.tables:
            continue
        concepts = concepts_of_table(table)
        for concept, column in columns.items():
            problem = _mapped_column_problem(schema, table, concepts[concept], column)
            if problem:
                raise GongConfigError(f"{setting_for(table, concept)} = {column!r}: {problem}")
    return mapping


# -- resolution ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MissingColumn:
    """A concept that did not resolve in a table, and why (`problem`: a sentence naming the cause)."""

    table: str
    concept: str
    problem: str
    kind: str
    """absent (no candidate there), ambiguous, wrong_type, or mapping (the mapped column is unusable)."""

    @property
    def setting(self) -> str:
        return setting_for(self.table, self.concept)

    def describe(self) -> str:
        return f"{self.problem}; map it with {self.setting}"

    def as_dict(self) -> dict[str, str]:
        return {
            "table": self.table,
            "concept": self.concept,
            "kind": self.kind,
            "problem": self.problem,
            "setting": self.setting,
        }


@dataclass
class TablePart:
    """One table's contribution to a view: the source column of each view column (None: NULL)."""

    table: str
    label: str
    sources: dict[str, Optional[str]] = field(default_factory=dict)
    missing: list[MissingColumn] = field(default_factory=list)
    """Required concepts that did not resolve: the table is left out of the view."""
    nulls: list[MissingColumn] = field(default_factory=list)
    """Optional concepts that did not resolve: NULL in the view."""


@dataclass
class ViewOutcome:
    """What became of one view: created (from which tables) or skipped (and why)."""

    view: AuditView
    parts: list[TablePart]
    """Tables the view reads (their required columns resolved)."""
    left_out: list[TablePart]
    """Loaded tables the view cannot read, for a missing required column."""
    not_loaded: list[str]
    created: bool = False
    error: Optional[str] = None

    @property
    def name(self) -> str:
        return self.view.name

    @property
    def buildable(self) -> bool:
        return bool(self.parts)

    @property
    def status(self) -> str:
        """created; failed (the destination refused it); skipped (cannot be built); buildable (planned only)."""
        if self.created:
            return "created"
        if self.error:
            return "failed"
        return "buildable" if self.buildable else "skipped"

    def reason(self) -> str:
        """Why the view is skipped, or what it lacks, in one line (empty when it reads every column it names)."""
        if self.error:
            return f"the destination refused it: {self.error}"
        if not self.parts:
            problems = [missing.describe() for part in self.left_out for missing in part.missing]
            return "; ".join(problems) or f"no table it reads is loaded yet ({', '.join(self.not_loaded)})"
        notes = []
        absent = [part for part in self.left_out if all(m.kind == "absent" for m in part.missing)]
        if absent:  # a log type may simply not have it (no impersonation there, no user on shared calls)
            concepts = sorted({m.concept for part in absent for m in part.missing})
            notes.append(f"not from {', '.join(p.table for p in absent)} (no {' or '.join(concepts)} column)")
        notes += [f"left out: {m.describe()}" for part in self.left_out if part not in absent for m in part.missing]
        notes += [f"{m.concept} is NULL: {m.describe()}" for part in self.parts for m in part.nulls]
        return "; ".join(notes)

    def summary(self) -> str:
        """`name: status` and, where it applies, the tables read and what is missing, in one line."""
        state = {"created": "created", "buildable": "buildable", "skipped": "SKIPPED", "failed": "FAILED"}[self.status]
        if self.parts and len(self.view.tables) > 1:
            state += f" from {', '.join(part.table for part in self.parts)}"
        reason = self.reason()
        return f"{self.name}: {state}" + (f" - {reason}" if reason else "")

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready outcome, for `--summary-json`."""
        return {
            "view": self.name,
            "status": self.status,
            "question": self.view.question,
            "tables": [part.table for part in self.parts],
            "columns": {part.table: part.sources for part in self.parts},
            "missing_required": [m.as_dict() for part in self.left_out for m in part.missing],
            "null_columns": [m.as_dict() for part in self.parts for m in part.nulls],
            "not_loaded": self.not_loaded,
            "error": self.error,
        }


def resolve_concept(
    schema: Schema, table: str, concept: Concept, mapped: Optional[str]
) -> tuple[Optional[str], Optional[MissingColumn]]:
    """The column of `table` that holds `concept`, or None and why: the mapped column, else the one
    candidate present with a usable type. Two candidates present is ambiguous: no guess."""
    name = concept.name
    if mapped:
        problem = _mapped_column_problem(schema, table, concept, mapped)
        if problem:
            return None, MissingColumn(
                table, name, f"the mapping of {table}.{name} to {mapped!r}: {problem}", "mapping"
            )
        return mapped, None
    columns = schema.tables[table]["columns"]
    present = [column for column in concept.candidates if column in columns]
    usable = [column for column in present if columns[column].get("data_type") in concept.data_types]
    if len(usable) == 1:
        return usable[0], None
    if len(usable) > 1:
        return None, MissingColumn(
            table, name, f"{name} is ambiguous in {table}: {' and '.join(usable)} both exist", "ambiguous"
        )
    if present:
        kinds = ", ".join(f"{column} holds {columns[column].get('data_type')}" for column in present)
        needs = " or ".join(sorted(concept.data_types))
        return None, MissingColumn(table, name, f"{table} has no usable {name} ({kinds}; needs {needs})", "wrong_type")
    tried = ", ".join(concept.candidates)
    return None, MissingColumn(table, name, f"{table} has no {name} column (none of {tried})", "absent")


def plan_audit_views(schema: Schema, mapping: Optional[ViewColumns] = None) -> list[ViewOutcome]:
    """Resolve every view against the schema (nothing is created)."""
    mapping = mapping or {}
    outcomes = []
    for view in AUDIT_VIEWS:
        parts: list[TablePart] = []
        left_out: list[TablePart] = []
        not_loaded: list[str] = []
        for table, label in view.tables:
            if table not in schema.tables or not schema.tables[table].get("columns"):
                not_loaded.append(table)
                continue
            part = TablePart(table, label)
            for column in view.columns:
                source, missing = resolve_concept(
                    schema, table, column.concept, mapping.get(table, {}).get(column.concept.name)
                )
                part.sources[column.alias] = source
                if missing:
                    (part.missing if column.required else part.nulls).append(missing)
            (left_out if part.missing else parts).append(part)
        outcomes.append(ViewOutcome(view, parts, left_out, not_loaded))
    return outcomes


def column_uses(outcomes: list[ViewOutcome]) -> dict[tuple[str, str], list[str]]:
    """(table, column) -> the view columns it feeds, e.g. `v_call_plays.call_id`."""
    uses: dict[tuple[str, str], list[str]] = {}
    for outcome in outcomes:
        for part in outcome.parts:
            for alias, source in part.sources.items():
                if source:
                    uses.setdefault((part.table, source), []).append(f"{outcome.name}.{alias}")
    return uses


def view_sql(
    outcome: ViewOutcome,
    qualify: Callable[[str], str],
    escape: Callable[[str], str],
    type_name: Callable[[str], str],
) -> str:
    """The SELECT of a buildable view, with explicit columns (new fields from Gong never break it), each
    cast to its concept's type (`type_name`: a dlt type in the destination's SQL)."""
    view = outcome.view
    concepts = {column.alias: column.concept for column in view.columns}
    selects = []
    for part in outcome.parts:
        columns = []
        for alias, source in part.sources.items():
            expression = escape(source) if source else "NULL"
            view_type = concepts[alias].view_type
            if view_type:
                expression = f"CAST({expression} AS {type_name(view_type)})"
            columns.append(f"{expression} AS {alias}")
        if view.label_alias:
            columns.append(f"'{part.label}' AS {view.label_alias}")
        where = ""
        if view.where_not_null:  # a required column, so it resolved in every part
            where = f" WHERE {escape(str(part.sources[view.where_not_null]))} IS NOT NULL"
        selects.append(f"SELECT {', '.join(columns)} FROM {qualify(part.table)}{where}")
    return view.wrap(" UNION ALL ".join(selects))


def create_audit_views(pipeline: Pipeline, mapping: Optional[ViewColumns] = None) -> list[ViewOutcome]:
    """Create or replace every view that can be built, drop the ones that no longer can (an earlier
    version would answer from a column no longer trusted); return every view's outcome."""
    outcomes = plan_audit_views(pipeline.default_schema, mapping)
    with pipeline.sql_client() as client:
        type_mapper = client.capabilities.get_type_mapper()

        def type_name(data_type: str) -> str:
            return type_mapper.to_destination_type({"name": "view_column", "data_type": data_type}, {"name": "view"})  # type: ignore[typeddict-item]

        for outcome in outcomes:
            name = client.make_qualified_table_name(outcome.name)
            try:
                if not outcome.buildable:
                    logger.info("view %s skipped: %s", outcome.name, outcome.reason())
                    client.execute_sql(f"DROP VIEW IF EXISTS {name}")
                    continue
                body = view_sql(outcome, client.make_qualified_table_name, client.escape_column_name, type_name)
                try:
                    client.execute_sql(f"CREATE OR REPLACE VIEW {name} AS {body}")
                except Exception:  # PostgreSQL cannot replace a view whose columns changed: drop it first
                    client.execute_sql(f"DROP VIEW IF EXISTS {name}")
                    client.execute_sql(f"CREATE VIEW {name} AS {body}")
                outcome.created = True
            except Exception as error:  # one refused view must not cost the others
                outcome.error = f"{type(error).__name__}: {str(error).splitlines()[0][:300]}"
    return outcomes


def view_warnings(outcomes: list[ViewOutcome]) -> list[str]:
    """What needs a person: a view the destination refused, or a mapped column that cannot be used."""
    warnings = [f"view {outcome.summary()}" for outcome in outcomes if outcome.error]
    for outcome in outcomes:
        parts = outcome.left_out + outcome.parts
        warnings += [
            f"view {outcome.name}: {missing.describe()}"
            for part in parts
            for missing in part.missing + part.nulls
            if missing.kind == "mapping"
        ]
    return warnings
