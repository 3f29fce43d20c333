"""The fields report (`gong-logs fields`): every column of every loaded table with its type, fill rate,
one example and the view columns it feeds, so that a user can map a tenant's field names in minutes.

It reads the destination through dlt's SQL client, so it works wherever the job loads tables.
Examples honour the pii mode and never show what looks like a secret.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, Final, Optional, Sequence

import dlt
from dlt.common.normalizers.naming.snake_case import NamingConvention
from dlt.common.schema import Schema
from dlt.pipeline.pipeline import Pipeline

from gong_source.demo import DEMO_PIPELINE_NAME, demo_database
from gong_source.destinations import destination_for, duckdb_database, is_file_destination
from gong_source.errors import GongError
from gong_source.pii import EMAIL_MARKER, IP_MARKER, TOP_LEVEL_FIELDS, is_record_pii, replace_addresses
from gong_source.run_summary import write_json
from gong_source.runner import PIPELINE_NAME
from gong_source.views import ViewColumns, ViewOutcome, column_uses, plan_audit_views, read_view_columns

SAMPLE_ROWS: Final = 100
"""Rows read per table to find examples; a column empty in them gets one query of its own..."""
SPARSE_ROWS: Final = 20
"""...which reads this many of its rows."""
SHORT_TEXT: Final = 64
"""A text at most this long that matches SECRET_NAME names a secret (a header name, a changed setting)."""
EXAMPLE_WIDTH: Final = 48
SECRET_NAME: Final = re.compile(
    r"secret|token|passw|authori[sz]|cookie|api[_-]?key|credential|signature|private[_-]?key|session[_-]?id",
    re.IGNORECASE,
)
"""Column names whose values are never shown (and short texts that name a secret, see `names_a_secret`)."""
SECRET_VALUE: Final = re.compile(
    r"\b(?:bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}|\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}|-----BEGIN ", re.IGNORECASE
)
"""Values that look like credentials (an Authorization header, a JWT, a PEM key) are never shown..."""
SECRET_ASSIGNMENT: Final = re.compile(
    r"(?:secret|token|passw|api[_-]?key|cookie|session|authori[sz]ation)[\w-]*[\"']?\s*[:=]", re.IGNORECASE
)
"""...nor values that assign one (`Cookie: ...`, `?access_token=...`, `{"apiKey": ...}`)."""
TOKEN: Final = re.compile(r"[0-9a-f]{64}")
"""What `pii = hash` writes in place of a person's data."""
PII_COLUMN_NAMES: Final = frozenset(NamingConvention().normalize_identifier(name) for name in TOP_LEVEL_FIELDS)
"""The top-level person fields as dlt names their columns (`userEmailAddress` -> `user_email_address`)."""


@dataclass
class ColumnProfile:
    """One column of a table, as the report shows it."""

    name: str
    data_type: str
    filled: int
    example: Optional[str]
    used_by: list[str] = field(default_factory=list)


@dataclass
class TableProfile:
    """One loaded table: its row count and columns (or why it could not be read)."""

    name: str
    rows: int = 0
    columns: list[ColumnProfile] = field(default_factory=list)
    error: Optional[str] = None


class ExampleRedactor:
    """Turns a stored value into a printable example that honours the pii mode and shows no secret."""

    def __init__(self, pii_mode: str, secrets: list[str]) -> None:
        self.pii_mode = pii_mode
        self._secrets = [secret for secret in secrets if len(secret) >= 6]

    def example(self, column: str, value: Any) -> str:
        """The example shown for `value` of `column`."""
        if SECRET_NAME.search(column):
            return "[withheld: the column name suggests a secret]"
        text = _as_text(value)
        if SECRET_VALUE.search(text) or SECRET_ASSIGNMENT.search(text) or any(s in text for s in self._secrets):
            return "[withheld: looks like a credential]"
        if self.pii_mode != "keep":
            if _is_pii_column(column) and not TOKEN.fullmatch(text):
                return f"[withheld: pii = {self.pii_mode}]"
            text = replace_addresses(text, lambda kind, _address: EMAIL_MARKER if kind == "email" else IP_MARKER)
        return text if len(text) <= EXAMPLE_WIDTH else text[: EXAMPLE_WIDTH - 1] + "…"

    @staticmethod
    def names_a_secret(row: Sequence[Any]) -> bool:
        """Whether a row holds a short text naming a secret (a header `X-Api-Key`, a changed setting
        `password`): then its other values may be that secret, and none of them is an example."""
        return any(isinstance(value, str) and len(value) <= SHORT_TEXT and SECRET_NAME.search(value) for value in row)


def _is_pii_column(column: str) -> bool:
    """Whether a loaded column holds a field that the pii rules cover (by its last name segment)."""
    leaf = column.rsplit("__", 1)[-1]
    return column in PII_COLUMN_NAMES or is_record_pii(leaf.replace("_", ""))


def _as_text(value: Any) -> str:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, (dict, list)):
        return json.dumps(value, default=str, ensure_ascii=False)
    if isinstance(value, (bytes, bytearray)):
        return f"<{len(value)} bytes>"
    return str(value)


def profile_tables(pipeline: Pipeline, redactor: ExampleRedactor, outcomes: list[ViewOutcome]) -> list[TableProfile]:
    """Profile every data table of the pipeline's schema in its destination."""
    schema = pipeline.default_schema
    uses = column_uses(outcomes)
    profiles = []
    with pipeline.sql_client() as client:
        for table in sorted(schema.data_table_names()):
            columns = [name for name, column in schema.tables[table]["columns"].items() if column.get("data_type")]
            profile = TableProfile(table)
            profiles.append(profile)
            if not columns:
                continue
            qualified = client.make_qualified_table_name(table)
            escaped = [client.escape_column_name(name) for name in columns]
            try:
                counted = ", ".join(f"count({name})" for name in escaped)
                counts = _one_row(client.execute_sql(f"SELECT count(*), {counted} FROM {qualified}"))
                select_all = f"SELECT {', '.join(escaped)} FROM {qualified}"
                sample = client.execute_sql(f"{select_all} LIMIT {SAMPLE_ROWS}") or []
                profile.rows = int(counts[0])
                for position, name in enumerate(columns):
                    filled = int(counts[position + 1])
                    rows = sample
                    if filled and all(row[position] is None for row in sample):  # sparse: read rows that have it
                        query = f"{select_all} WHERE {escaped[position]} IS NOT NULL LIMIT {SPARSE_ROWS}"
                        rows = client.execute_sql(query) or []
                    example = _example(redactor, name, position, rows) if filled else None
                    profile.columns.append(
                        ColumnProfile(
                            name, _data_type(schema, table, name), filled, example, uses.get((table, name), [])
                        )
                    )
            except Exception as error:  # one unreadable table (dropped by hand, say) must not hide the others
                profile.error = f"{type(error).__name__}: {str(error).splitlines()[0][:300]}"
    return profiles


def _example(redactor: ExampleRedactor, column: str, position: int, rows: Sequence[Sequence[Any]]) -> str:
    """The first value of the column in a row that names no secret, as the redactor shows it."""
    for row in rows:
        if row[position] is not None and not redactor.names_a_secret(row):
            return redactor.example(column, row[position])
    return "[withheld: the rows read name a secret]"


def _one_row(rows: Optional[Sequence[Sequence[Any]]]) -> Sequence[Any]:
    if not rows:
        raise ValueError("the query returned no row")
    return rows[0]


def _data_type(schema: Schema, table: str, column: str) -> str:
    return str(schema.tables[table]["columns"][column].get("data_type"))


def report_fields(
    destination: Optional[str] = None,
    dataset_name: Optional[str] = None,
    demo: bool = False,
    summary_json: Optional[Path] = None,
) -> None:
    """`gong-logs fields`: profile what the pipeline loaded, and say what each view reads or lacks."""
    if demo:
        chosen: Any = dlt.destinations.duckdb(str(demo_database()))
        pipeline_name, dataset, pii_mode, mapping = DEMO_PIPELINE_NAME, PIPELINE_NAME, "keep", {}
    else:
        chosen = destination_for(destination)
        pipeline_name, dataset = PIPELINE_NAME, dataset_name or PIPELINE_NAME
        pii_mode, mapping = str(dlt.config.get("sources.gong.pii") or "keep"), read_view_columns()
    pipeline = dlt.pipeline(pipeline_name=pipeline_name, destination=chosen, dataset_name=dataset)
    database = duckdb_database(pipeline)  # the DuckDB file, wherever it is configured; None elsewhere
    file_missing = database is not None and not database.exists()
    if not pipeline.default_schema_name and not file_missing:
        pipeline.sync_destination()  # a fresh machine (an ephemeral worker): the schema is in the destination
    if not pipeline.default_schema_name:
        where = f"{database.name} in {database.parent}" if database and file_missing else f"dataset {dataset}"
        raise GongError(
            f"Nothing loaded by pipeline {pipeline_name} was found ({where}). Run the job first, from this folder, "
            "or pass the --destination and --dataset-name it loads into."
        )
    redactor = ExampleRedactor(pii_mode, configured_secrets())
    profiles, outcomes = fields_report(pipeline, mapping, redactor, with_views=not is_file_destination(pipeline))
    print_fields_report(pipeline, profiles, outcomes, pii_mode)
    if summary_json:
        write_json(summary_json, fields_report_dict(profiles, outcomes, pii_mode))


def configured_secrets() -> list[str]:
    """The configured secret values: an example that contains one is withheld."""
    keys = ("credentials.access_key_secret", "credentials.access_token", "pii_salt")
    values: list[Any] = [dlt.secrets.get(f"sources.gong.{key}") for key in keys]
    return [str(value) for value in values if value]


def fields_report(
    pipeline: Pipeline, mapping: ViewColumns, redactor: ExampleRedactor, with_views: bool = True
) -> tuple[list[TableProfile], list[ViewOutcome]]:
    """The tables' profiles and each view's outcome against the loaded schema (no view is created);
    `with_views` False: the destination gets no views (it holds files)."""
    outcomes = plan_audit_views(pipeline.default_schema, mapping) if with_views else []
    return profile_tables(pipeline, redactor, outcomes), outcomes


def print_fields_report(
    pipeline: Pipeline, profiles: list[TableProfile], outcomes: list[ViewOutcome], pii_mode: str
) -> None:
    """The report for a person: one block per table, then what each view reads or lacks."""
    destination = pipeline.destination.destination_type.rsplit(".", 1)[-1] if pipeline.destination else "-"
    print(
        f"Fields of dataset {pipeline.dataset_name} (pipeline {pipeline.pipeline_name}, destination {destination}); "
        f"examples under pii = {pii_mode}."
    )
    for profile in profiles:
        print(f"\n{profile.name}: " + (f"NOT READ: {profile.error}" if profile.error else f"{profile.rows} rows"))
        if profile.columns:
            print(f"  {'column':<56} {'type':<10} {'filled':>7}  {'example':<{EXAMPLE_WIDTH}}  used by")
        for column in profile.columns:
            rate = f"{100 * column.filled / profile.rows:.1f}%" if profile.rows else "-"
            example = column.example if column.example is not None else "-"
            used_by = ", ".join(column.used_by) or "-"
            print(f"  {column.name:<56} {column.data_type:<10} {rate:>7}  {example:<{EXAMPLE_WIDTH}}  {used_by}")
    if not outcomes:
        print("\nViews: none on this destination (it holds files).")
        return
    print("\nViews (against the loaded schema; a run creates them):")
    for outcome in outcomes:
        print(f"  {outcome.summary()}")
    print(
        "\nTo feed a view column from another column, name it in .dlt/config.toml, e.g.\n"
        '  [sources.gong.view_columns.user_call_play]\n  call_id = "log_record__conversation_id"'
    )


def fields_report_dict(profiles: list[TableProfile], outcomes: list[ViewOutcome], pii_mode: str) -> dict[str, Any]:
    """The report as JSON-ready data (`gong-logs fields --summary-json PATH`)."""
    return {
        "pii": pii_mode,
        "tables": [
            {
                "table": profile.name,
                "rows": profile.rows,
                "error": profile.error,
                "columns": [
                    {
                        "column": column.name,
                        "data_type": column.data_type,
                        "filled": column.filled,
                        "fill_rate": round(column.filled / profile.rows, 4) if profile.rows else None,
                        "example": column.example,
                        "used_by": column.used_by,
                    }
                    for column in profile.columns
                ],
            }
            for profile in profiles
        ],
        "views": [outcome.as_dict() for outcome in outcomes],
    }
