"""Ready SQL views for common audit questions, built from the columns a tenant really has.

`view_catalog.py` says what the views are: each view column is a *concept* (`call_id`, `ip`, ...) with a
few candidate spellings. This module resolves them per table against the loaded dlt schema, and never
across tables (a wrong column is worse than a missing view): the only column taken is the one usable
candidate, or the column the user names in `[sources.gong.view_columns.<table>]`, read together with
its dlt variant columns. A view is created when its required concepts resolve in at least one of its
tables; optional ones are NULL when absent. Each outcome says what was missing and which setting maps
it. Then it writes each view's SQL for the destination's dialect and creates it.
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

from gong_source.coverage import COVERAGE_TABLE
from gong_source.errors import GongConfigError
from gong_source.view_catalog import (
    ALL_TABLES,
    AUDIT_VIEWS,
    AuditView,
    Candidate,
    Concept,
    Difference,
    Pair,
    candidate_columns,
    describe_candidate,
)

logger = logging.getLogger("gong_source")

VIEW_COLUMNS_SETTING: Final = "sources.gong.view_columns"
ROOT_ALIAS: Final = "r"
PARENT_ID, ROW_ID, LIST_INDEX = "_dlt_parent_id", "_dlt_id", "_dlt_list_idx"
"""How dlt links a child row to its parent row, and keeps its place in the list."""

ViewColumns = dict[str, dict[str, str]]
"""The user's mapping: table -> concept -> source column."""


def concepts_of_table(table: str) -> dict[str, Concept]:
    """The concepts that some view reads from `table` itself (what `view_columns.<table>` may map); columns
    of child tables are found by their candidates only."""
    return {
        column.concept.name: column.concept
        for view in AUDIT_VIEWS
        if table in dict(view.tables)
        for column in view.columns
        if column.table == ROOT_ALIAS and not column.concept.internal
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


def _closest(name: str, names: list[str]) -> list[str]:
    """The names most like `name` (a typo's intended column); long shared prefixes such as
    `log_record__request_headers__` make many names look close, so only those near the best are kept."""
    scored = sorted(((difflib.SequenceMatcher(None, name, other).ratio(), other) for other in names), reverse=True)
    if not scored or scored[0][0] < 0.8:
        return []
    return [other for ratio, other in scored[:3] if ratio >= max(0.8, scored[0][0] - 0.05)]


def _mapped_column_problem(schema: Schema, table: str, concept: Concept, column: str) -> Optional[str]:
    table_columns = schema.tables[table]["columns"]
    if column not in table_columns:
        close = _closest(column, list(table_columns))
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
    mappable: bool = True
    """False for columns of child tables, which only their candidates find."""

    @property
    def setting(self) -> Optional[str]:
        return setting_for(self.table, self.concept) if self.mappable else None

    def describe(self) -> str:
        if self.setting is None:
            return f"{self.problem} (a child table's column: `gong-logs fields` shows what is loaded)"
        return f"{self.problem}; map it with {self.setting}"

    def as_dict(self) -> dict[str, Optional[str]]:
        return {
            "table": self.table,
            "concept": self.concept,
            "kind": self.kind,
            "problem": self.problem,
            "setting": self.setting,
        }


@dataclass(frozen=True)
class ResolvedColumn:
    """Where a view column's values come from: a candidate in one table, and for each column it reads,
    that column and its variant columns (dlt's `__v_<type>` columns for values of another type)."""

    table: str
    alias: str
    """The table's alias in the view's SQL (`r` or a child table's)."""
    candidate: Candidate
    columns: dict[str, tuple[str, ...]]
    data_types: dict[str, Optional[str]] = field(default_factory=dict)
    """The dlt type of each column read (its variants aside)."""

    def describe(self, root_table: str) -> str:
        """The candidate as the summary shows it (a plain column name where that is all it is)."""
        text = describe_candidate(self.candidate)
        return text if self.table == root_table else f"{self.table}.{text}"


@dataclass
class TablePart:
    """One table's contribution to a view: the source of each view column (None: NULL)."""

    table: str
    label: str
    resolved: dict[str, Optional[ResolvedColumn]] = field(default_factory=dict)
    children: dict[str, str] = field(default_factory=dict)
    """Alias -> loaded child table, for the child tables the view joins that exist."""
    missing: list[MissingColumn] = field(default_factory=list)
    """Required concepts that did not resolve: the table is left out of the view."""
    nulls: list[MissingColumn] = field(default_factory=list)
    """Optional concepts that did not resolve: NULL in the view."""

    @property
    def sources(self) -> dict[str, Optional[str]]:
        """View column -> what it reads, as the summary shows it."""
        return {alias: found.describe(self.table) if found else None for alias, found in self.resolved.items()}


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


def _variants(schema: Schema, table: str, column: str, concept: Concept) -> tuple[str, ...]:
    """`column` and its variant columns whose type the concept can use, in the table's column order."""
    columns = schema.tables[table]["columns"]
    variant_names = {schema.naming.shorten_fragments(column, f"v_{data_type}") for data_type in concept.data_types}
    variants = [
        name
        for name, hints in columns.items()
        if name in variant_names and hints.get("variant") and hints.get("data_type") in concept.data_types
    ]
    return (column, *variants)


def _types_of(schema: Schema, table: str, columns: Mapping[str, Any]) -> dict[str, Optional[str]]:
    return {column: schema.tables[table]["columns"][column].get("data_type") for column in columns}


def resolve_concept(
    schema: Schema, table: str, concept: Concept, mapped: Optional[str], alias: str = ROOT_ALIAS
) -> tuple[Optional[ResolvedColumn], Optional[MissingColumn]]:
    """Where `table` holds `concept`, or None and why: the mapped column, else the one candidate whose
    columns are all present with a usable type. Two usable candidates is ambiguous: no guess."""
    name = concept.name
    mappable = alias == ROOT_ALIAS
    if mapped:
        problem = _mapped_column_problem(schema, table, concept, mapped)
        if problem:
            return None, MissingColumn(
                table, name, f"the mapping of {table}.{name} to {mapped!r}: {problem}", "mapping"
            )
        variants = {mapped: _variants(schema, table, mapped, concept)}
        return ResolvedColumn(table, alias, mapped, variants, _types_of(schema, table, variants)), None
    columns = schema.tables[table]["columns"]
    present = [c for c in concept.candidates if all(column in columns for column in candidate_columns(c))]
    usable = [
        c
        for c in present
        if all(columns[column].get("data_type") in concept.data_types for column in candidate_columns(c))
    ]
    if len(usable) == 1:
        (found,) = usable
        variants = {column: _variants(schema, table, column, concept) for column in candidate_columns(found)}
        return ResolvedColumn(table, alias, found, variants, _types_of(schema, table, variants)), None
    if len(usable) > 1:
        both = " and ".join(describe_candidate(c) for c in usable)
        problem = f"{name} is ambiguous in {table}: {both} both exist"
        return None, MissingColumn(table, name, problem, "ambiguous", mappable)
    if present:
        kinds = ", ".join(
            f"{column} holds {columns[column].get('data_type')}" for c in present for column in candidate_columns(c)
        )
        needs = " or ".join(sorted(concept.data_types))
        return None, MissingColumn(
            table, name, f"{table} has no usable {name} ({kinds}; needs {needs})", "wrong_type", mappable
        )
    tried = ", ".join(describe_candidate(c) for c in concept.candidates)
    return None, MissingColumn(table, name, f"{table} has no {name} column (none of {tried})", "absent", mappable)


def child_table_names(schema: Schema, table: str, view: AuditView) -> dict[str, Optional[str]]:
    """Alias -> the loaded child table behind it (None: not loaded), named as dlt's normalizer names it
    (shortened where the destination limits the length of names, e.g. PostgreSQL's 63 characters)."""
    names: dict[str, Optional[str]] = {}
    for child in view.children:
        name = schema.naming.shorten_fragments(table, *child.path)
        parent_loaded = child.parent == ROOT_ALIAS or names.get(child.parent) is not None
        names[child.alias] = name if parent_loaded and schema.tables.get(name, {}).get("columns") else None
    return names


def _resolve_part(view: AuditView, schema: Schema, table: str, label: str, mapped: dict[str, str]) -> TablePart:
    part = TablePart(table, label)
    children = child_table_names(schema, table, view)
    part.children = {alias: name for alias, name in children.items() if name}
    required_children = {child.alias for child in view.children if child.required}
    for alias in required_children - set(part.children):
        child = next(c for c in view.children if c.alias == alias)
        path = schema.naming.shorten_fragments(table, *child.path)
        concept = next(column.concept.name for column in view.columns if column.table == alias)
        part.missing.append(MissingColumn(table, concept, f"{table} has no child table {path}", "absent", False))
    for column in view.columns:
        source_table = table if column.table == ROOT_ALIAS else children.get(column.table)
        found: Optional[ResolvedColumn] = None
        missing: Optional[MissingColumn] = None
        if source_table is None:
            if column.table not in required_children:  # a missing required child is reported once, above
                child_path = next(c.path for c in view.children if c.alias == column.table)
                name = schema.naming.shorten_fragments(table, *child_path)
                missing = MissingColumn(
                    table, column.concept.name, f"{table} has no child table {name}", "absent", False
                )
        else:
            mapped_column = mapped.get(column.concept.name) if column.table == ROOT_ALIAS else None
            found, missing = resolve_concept(schema, source_table, column.concept, mapped_column, column.table)
        part.resolved[column.alias] = found
        expected = not column.only_from or table in column.only_from
        if missing and (column.required or (expected and (column.note_if_absent or missing.kind != "absent"))):
            (part.missing if column.required else part.nulls).append(missing)
    return part


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
            part = _resolve_part(view, schema, table, label, mapping.get(table, {}))
            (left_out if part.missing else parts).append(part)
        outcomes.append(ViewOutcome(view, parts, left_out, not_loaded))
    return outcomes


def column_uses(outcomes: list[ViewOutcome]) -> dict[tuple[str, str], list[str]]:
    """(table, column) -> the view columns it feeds, e.g. `v_call_plays.call_id`."""
    uses: dict[tuple[str, str], list[str]] = {}
    for outcome in outcomes:
        internal = {column.alias for column in outcome.view.columns if column.concept.internal}
        for part in outcome.parts:
            for alias, found in part.resolved.items():
                if found is None or alias in internal:
                    continue
                for columns in found.columns.values():
                    for column in columns:
                        uses.setdefault((found.table, column), []).append(f"{outcome.name}.{alias}")
    return uses


# -- SQL ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SqlDialect:
    """How to write a view's SQL for one destination: names, types, and the two functions SQL dialects
    spell differently (dlt's capabilities name the dialect as sqlglot does)."""

    qualify: Callable[[str], str]
    escape: Callable[[str], str]
    type_name: Callable[[str], str]
    name: str = "duckdb"

    def first_hop(self, expression: str) -> str:
        """The first entry of a comma-separated chain, trimmed."""
        if self.name == "bigquery":
            return f"TRIM(SPLIT({expression}, ',')[SAFE_OFFSET(0)])"
        if self.name == "clickhouse":
            return f"trimBoth(splitByChar(',', {expression})[1])"
        if self.name == "mysql":
            return f"TRIM(SUBSTRING_INDEX({expression}, ',', 1))"
        if self.name == "sqlite":
            return f"TRIM(SUBSTR({expression}, 1, INSTR({expression} || ',', ',') - 1))"
        return f"TRIM(SPLIT_PART({expression}, ',', 1))"

    def to_milliseconds(self, seconds: str) -> str:
        """A number of seconds rounded to the millisecond, still a double: `end - start` of two floats, or their
        sum, would otherwise show float noise such as 514.5999999999999 (DECIMAL rounds in every dialect)."""
        return f"CAST(CAST({seconds} AS DECIMAL(18, 3)) AS {self.type_name('double')})"

    def joined(self, expression: str, order_by: str) -> str:
        """The values of a group joined with ', ', in `order_by` order."""
        if self.name == "tsql":
            return f"STRING_AGG({expression}, ', ') WITHIN GROUP (ORDER BY {order_by})"
        if self.name in {"snowflake", "redshift", "databricks", "athena", "trino", "presto", "oracle"}:
            return f"LISTAGG({expression}, ', ') WITHIN GROUP (ORDER BY {order_by})"
        if self.name == "clickhouse":
            return f"arrayStringConcat(arrayMap(x -> x.2, arraySort(groupArray(({order_by}, {expression})))), ', ')"
        if self.name == "mysql":
            return f"GROUP_CONCAT({expression} ORDER BY {order_by} SEPARATOR ', ')"
        if self.name == "sqlite":  # SQLite keeps no order in group_concat; the keys come in load order
            return f"GROUP_CONCAT({expression}, ', ')"
        return f"STRING_AGG({expression}, ', ' ORDER BY {order_by})"


def _value_sql(found: ResolvedColumn, concept: Concept, sql: SqlDialect, qualified: bool = True) -> str:
    """The SQL of a resolved column: each column read with its variants (COALESCE), cast to the view's type."""
    cast_to = concept.view_type or ""
    if isinstance(found.candidate, Pair):
        cast_to = "text"
    elif isinstance(found.candidate, Difference):
        cast_to = cast_to or "double"

    def read(column: str) -> str:
        names = found.columns[column]
        terms = [f"{found.alias}.{sql.escape(name)}" if qualified else sql.escape(name) for name in names]
        if cast_to:
            terms = [f"CAST({term} AS {sql.type_name(cast_to)})" for term in terms]
        return terms[0] if len(terms) == 1 else f"COALESCE({', '.join(terms)})"

    candidate = found.candidate
    if isinstance(candidate, Difference):
        return sql.to_milliseconds(f"{read(candidate.minuend)} - {read(candidate.subtrahend)}")
    if isinstance(candidate, Pair):
        return f"{read(candidate.first)} || '=' || COALESCE({read(candidate.second)}, '')"
    expression = read(candidate)
    return sql.first_hop(expression) if concept.first_hop else expression


def _from_sql(view: AuditView, part: TablePart, sql: SqlDialect) -> str:
    """`FROM table AS r` and the joins of the view's child tables that are loaded."""
    clauses = [f"FROM {sql.qualify(part.table)} AS {ROOT_ALIAS}"]
    columns_of = {column.alias: column for column in view.columns}
    for child in view.children:
        name = part.children.get(child.alias)
        if name is None:
            continue
        on = f"{child.alias}.{sql.escape(PARENT_ID)} = {child.parent}.{sql.escape(ROW_ID)}"
        if child.aggregate:  # one row per parent: each column's values joined in list order
            values = [
                f"{sql.joined(_value_sql(found, columns_of[alias].concept, sql, False), sql.escape(LIST_INDEX))}"
                f" AS {sql.escape(alias)}"
                for alias, found in part.resolved.items()
                if found is not None and found.alias == child.alias
            ]
            if not values:
                continue
            grouped = (
                f"SELECT {sql.escape(PARENT_ID)}, {', '.join(values)} FROM {sql.qualify(name)} "
                f"GROUP BY {sql.escape(PARENT_ID)}"
            )
            clauses.append(f"LEFT JOIN ({grouped}) AS {child.alias} ON {on}")
        else:
            clauses.append(f"{'JOIN' if child.required else 'LEFT JOIN'} {sql.qualify(name)} AS {child.alias} ON {on}")
    return " ".join(clauses)


def view_sql(outcome: ViewOutcome, sql: SqlDialect) -> str:
    """The SELECT of a buildable view, with explicit columns (new fields from Gong never break it), each
    cast to its concept's type in the destination's own type names."""
    view = outcome.view
    columns_of = {column.alias: column for column in view.columns}
    selects = []
    for part in outcome.parts:
        columns = []
        for alias, found in part.resolved.items():
            concept = columns_of[alias].concept
            if found is None:
                expression = f"CAST(NULL AS {sql.type_name(concept.view_type)})" if concept.view_type else "NULL"
            elif columns_of[alias].table != ROOT_ALIAS and any(
                child.aggregate and child.alias == found.alias for child in view.children
            ):
                expression = f"{found.alias}.{sql.escape(alias)}"
            else:
                expression = _value_sql(found, concept, sql)
            columns.append(f"{expression} AS {alias}")
        if view.label_alias:
            columns.append(f"'{part.label}' AS {view.label_alias}")
        where = ""
        if view.where_not_null:  # a required column, so it resolved in every part
            found = part.resolved[view.where_not_null]
            assert found is not None
            where = f" WHERE {_value_sql(found, columns_of[view.where_not_null].concept, sql)} IS NOT NULL"
        selects.append(f"SELECT {', '.join(columns)} {_from_sql(view, part, sql)}{where}")
    return view.wrap(" UNION ALL ".join(selects), sql)


def create_audit_views(pipeline: Pipeline, mapping: Optional[ViewColumns] = None) -> list[ViewOutcome]:
    """Create or replace every view that can be built, drop the ones that no longer can (an earlier
    version would answer from a column no longer trusted); return every view's outcome."""
    outcomes = plan_audit_views(pipeline.default_schema, mapping)
    with pipeline.sql_client() as client:
        type_mapper = client.capabilities.get_type_mapper()

        def type_name(data_type: str) -> str:
            return type_mapper.to_destination_type({"name": "view_column", "data_type": data_type}, {"name": "view"})  # type: ignore[typeddict-item]

        dialect = SqlDialect(
            client.make_qualified_table_name,
            client.escape_column_name,
            type_name,
            str(client.capabilities.sqlglot_dialect or "duckdb"),
        )
        for outcome in outcomes:
            name = client.make_qualified_table_name(outcome.name)
            try:
                if not outcome.buildable:
                    logger.info("view %s skipped: %s", outcome.name, outcome.reason())
                    client.execute_sql(f"DROP VIEW IF EXISTS {name}")
                    continue
                body = view_sql(outcome, dialect)
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
    """What needs a person: a view the destination refused, a mapped column that cannot be used, two
    spellings of one concept (no guess is made), or a column an earlier version loaded with another type."""
    warnings = [f"view {outcome.summary()}" for outcome in outcomes if outcome.error]
    mistyped: set[tuple[str, str]] = set()
    for outcome in outcomes:
        parts = outcome.left_out + outcome.parts
        warnings += [
            f"view {outcome.name}: {missing.describe()}"
            for part in parts
            for missing in part.missing + part.nulls
            if missing.kind in ("mapping", "ambiguous")
        ]
        concepts = {column.alias: column.concept for column in outcome.view.columns}
        for part in parts:
            for alias, found in part.resolved.items():
                loaded_as = concepts[alias].loaded_as
                if found is None or loaded_as is None:
                    continue
                for column, data_type in found.data_types.items():
                    if data_type != loaded_as and (found.table, column) not in mistyped:
                        mistyped.add((found.table, column))
                        warnings.append(
                            f"{found.table}.{column} is {data_type}, made so by an earlier version of this "
                            f"connector: values of another type may have been coerced into it (a number into "
                            f"a boolean, a date into a timestamp). This version loads it as {loaded_as}: drop "
                            f"that table, or reload the dataset, to have every value as Gong sent it."
                        )
    return warnings


COVERAGE_VIEW: Final = "v_coverage"
COVERAGE_QUESTION: Final = (
    "Per log type and day: Gong's count of its final hours, the rows loaded, and whether they agree"
)


def coverage_view_sql(sql: SqlDialect) -> str:
    """`v_coverage`: the coverage record (`log_coverage`, one row per log type and final hour) per day.

    status: short (an hour where Gong serves fewer entries than it counts), more (an hour with more rows
    than Gong counts), partial (fewer than 24 hours recorded yet, or the first run began mid-hour), repaired
    (late entries were found and loaded), complete."""

    def hours(outcome: str) -> str:
        return f"SUM(CASE WHEN {sql.escape('outcome')} = '{outcome}' THEN 1 ELSE 0 END)"

    column = sql.escape
    partial = f"SUM(CASE WHEN {column('range_start')} > {column('hour_start')} THEN 1 ELSE 0 END)"
    return (
        f"SELECT {column('log_type')} AS log_type, {column('day')} AS day, COUNT(*) AS hours_recorded, "
        f"SUM({column('gong_count')}) AS gong_count, SUM({column('rows_loaded')}) AS rows_loaded, "
        f"SUM({column('late_entries')}) AS late_entries, "
        f"CASE WHEN {hours('short')} > 0 THEN 'short' WHEN {hours('more')} > 0 THEN 'more' "
        f"WHEN COUNT(*) < 24 OR {partial} > 0 THEN 'partial' WHEN {hours('repaired')} > 0 THEN 'repaired' "
        f"ELSE 'complete' END AS status, MAX({column('checked_at')}) AS last_checked_at "
        f"FROM {sql.qualify(COVERAGE_TABLE)} GROUP BY {column('log_type')}, {column('day')}"
    )


def create_coverage_view(pipeline: Pipeline) -> dict[str, Any]:
    """Create or replace `v_coverage` once the coverage record exists; its outcome as `--summary-json` has it."""
    outcome: dict[str, Any] = {"view": COVERAGE_VIEW, "status": "skipped", "question": COVERAGE_QUESTION}
    if COVERAGE_TABLE not in pipeline.default_schema.tables:
        outcome["error"] = f"no final hour recorded yet ({COVERAGE_TABLE} is not loaded)"
        return outcome
    with pipeline.sql_client() as client:
        dialect = SqlDialect(
            client.make_qualified_table_name,
            client.escape_column_name,
            lambda data_type: data_type,
            str(client.capabilities.sqlglot_dialect or "duckdb"),
        )
        name = client.make_qualified_table_name(COVERAGE_VIEW)
        body = coverage_view_sql(dialect)
        try:
            try:
                client.execute_sql(f"CREATE OR REPLACE VIEW {name} AS {body}")
            except Exception:  # PostgreSQL cannot replace a view whose columns changed: drop it first
                client.execute_sql(f"DROP VIEW IF EXISTS {name}")
                client.execute_sql(f"CREATE VIEW {name} AS {body}")
            outcome["status"] = "created"
        except Exception as error:
            outcome["status"] = "failed"
            outcome["error"] = f"{type(error).__name__}: {str(error).splitlines()[0][:300]}"
    return outcome
