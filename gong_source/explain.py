"""Any failure of a run, told in one actionable line: what happened, where, and what to do. Never a secret.

dlt wraps a failure several levels deep (`PipelineStepFailed` > `ResourceExtractionError` > the HTTP error), and
its outer message starts with generic advice; the line we print is built from the innermost cause we recognize.
"""

from __future__ import annotations

import difflib
import re
import socket
from pathlib import Path
from typing import Optional
from urllib.parse import urlsplit

import dlt
import requests
from dlt.common.configuration.exceptions import ConfigFieldMissingException
from dlt.common.destination.exceptions import UnknownDestinationModule
from dlt.extract.exceptions import ResourceExtractionError
from dlt.pipeline.exceptions import PipelineStepFailed

from gong_source.errors import GongError

NOTHING_LOST = "Nothing was lost: the next run continues exactly from the saved progress."
DUCKDB_LOCK = re.compile(
    r'Could not set lock on file "(?P<file>[^"]+)"'
    r"(?:: Conflicting lock is held in (?P<program>.+?) \(PID (?P<pid>\d+)\))?"
)
"""DuckDB's message when another process has the database file open (DuckDB 1.x and 2.x)."""
MAY_HOLD_A_SECRET = re.compile(r"[@=?;]|://|token|secret|passw|key|auth", re.IGNORECASE)
"""A word of another process's command line that is not shown (a connection string, `password=...`)."""
ENV_KEY_TRIED = re.compile(r"\(Environment Variables, ([A-Z0-9_]+)\)")
"""How dlt lists the variables it looked for in a missing-setting error."""
CONNECTION_FAILURE = re.compile(
    r"connection refused|could not connect|could not translate host name|name or service not known|"
    r"temporary failure in name resolution|timed out|timeout expired|no route to host|network is unreachable",
    re.IGNORECASE,
)
"""Words with which database drivers (psycopg2, snowflake, ...) say the server could not be reached."""


def explain(error: BaseException) -> str:
    """A one-line, secret-free explanation of a failure: our own messages first, then the causes we know."""
    causes = error_chain(error)
    for cause in causes:
        if isinstance(cause, GongError):
            return str(cause)
    for explainer in (_duckdb_locked, _unknown_destination, _gong_unreachable, _destination_unreachable):
        line = explainer(causes)
        if line:
            return line
    for cause in causes:
        if isinstance(cause, ConfigFieldMissingException):
            return missing_setting_message(cause)
    wrappers = (PipelineStepFailed, ResourceExtractionError)  # dlt's: they only say where the cause arose
    outermost = next((cause for cause in causes if not isinstance(cause, wrappers)), causes[-1])
    line, innermost = f"{type(outermost).__name__}: {_first_line(outermost)}", _first_line(causes[-1])
    return line if innermost in line else f"{line} ({innermost})"


def missing_setting_message(missing: ConfigFieldMissingException) -> str:
    """dlt's missing-setting error (a page long) in one line: what is missing and the variable that sets it."""
    lines = [line.strip().replace("`", "") for line in str(missing).splitlines() if line.strip()]
    what = "; ".join(line for line in lines[:2] if line.startswith(("Missing", "field"))) or lines[0]
    tried = [key for key in ENV_KEY_TRIED.findall(str(missing)) if key.startswith(("DESTINATION__", "SOURCES__"))]
    if not tried:
        return f"A required setting is missing: {what}. Set it in .dlt/secrets.toml or the environment."
    key = tried[0]
    whole = key.split("__CREDENTIALS__")[0] + "__CREDENTIALS" if "__CREDENTIALS__" in key else key
    parts = f" (or its parts, such as {key})" if whole != key else ""
    return f"A required setting is missing: {what}. Set {whole}{parts}, or put it in .dlt/secrets.toml."


def error_chain(error: BaseException) -> list[BaseException]:
    """The error and everything it wraps, outermost first (dlt keeps the cause in `exception` too)."""
    chain: list[BaseException] = []
    pending: list[Optional[BaseException]] = [error]
    while pending:
        current = pending.pop(0)
        if current is None or current in chain:
            continue
        chain.append(current)
        pending += [current.__cause__, current.__context__, getattr(current, "exception", None)]
    return chain


def duckdb_lock_holder(message: str) -> str:
    """Who holds the file, from DuckDB's message: "duckdb (PID 123): duckdb gong_audit.duckdb", as far as known."""
    found = DUCKDB_LOCK.search(message)
    if not found or not found["pid"]:
        return "a process DuckDB does not name"
    command = process_command_line(int(found["pid"]))
    return f"{Path(found['program']).name} (PID {found['pid']})" + (f": {command}" if command else "")


def process_command_line(pid: int) -> Optional[str]:
    """The command line of a process on this machine (Linux), at most 4 words; any word that could carry a
    secret (a URL with a password, key=value, a token) shows as `[hidden]`. None where it cannot be read."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    words = [part.decode(errors="replace") for part in raw.split(b"\0") if part]
    shown = ["[hidden]" if MAY_HOLD_A_SECRET.search(word) else word[:60] for word in words[:4]]
    return " ".join(shown + (["..."] if len(words) > 4 else [])) or None


def _duckdb_locked(causes: list[BaseException]) -> Optional[str]:
    for cause in causes:
        found = DUCKDB_LOCK.search(str(cause))
        if found:
            return duckdb_locked_message(found["file"], duckdb_lock_holder(str(cause)))
    return None


def duckdb_locked_message(database: str, holder: str, waited_seconds: float = 0) -> str:
    """What to do when another process holds the DuckDB file."""
    waited = f" (waited {waited_seconds:.0f} s)" if waited_seconds >= 1 else ""
    return (
        f"The DuckDB file {database} is open in another process{waited}: {holder}. Close it there (a DuckDB shell "
        "or notebook holds the file for as long as it is open, even read-only) and run again, or let the job wait "
        f"longer with sources.gong.duckdb_lock_wait_seconds. {NOTHING_LOST}"
    )


def _unknown_destination(causes: list[BaseException]) -> Optional[str]:
    for cause in causes:
        if isinstance(cause, UnknownDestinationModule):
            return unknown_destination_message(str(cause.ref))
    return None


def unknown_destination_message(name: str) -> str:
    """dlt does not know this destination: say so in one line, with the closest standard name."""
    known = sorted(set(dlt.destinations.__all__) - {"destination"})
    closest = difflib.get_close_matches(name.lower(), known, n=1, cutoff=0.6)
    suggestion = f" Did you mean {closest[0]}?" if closest else f" Known: {', '.join(known)}."
    return (
        f"dlt does not know the destination {name!r}.{suggestion} Install its extra too (e.g. pip install "
        "'dlt[postgres]'); a named destination needs destination.<name>.destination_type."
    )


def _gong_unreachable(causes: list[BaseException]) -> Optional[str]:
    """A request to Gong that never got an HTTP answer: DNS, refused, TLS, timeout or proxy."""
    if not any(isinstance(cause, ResourceExtractionError) for cause in causes):
        return None  # a connection error outside extraction is the destination's, not Gong's
    failure = next((cause for cause in causes if isinstance(cause, requests.ConnectionError | requests.Timeout)), None)
    if failure is None:
        return None
    url = failure.request.url if failure.request is not None and failure.request.url else ""
    parts = urlsplit(str(url))
    host = f"{parts.scheme}://{parts.netloc}" if parts.netloc else "the configured base URL"
    if isinstance(failure, requests.ReadTimeout):
        return (
            f"Gong at {host} accepted the connection but did not answer within runtime.request_timeout: Gong is "
            f"slow or a proxy holds the request; raise runtime.request_timeout if it persists. {NOTHING_LOST}"
        )
    return (
        f"Gong could not be reached at {host}: {_why_unreachable(failure, causes)}. Check sources.gong.base_url "
        f"(your API host, e.g. https://company-17.api.gong.io) and this machine's network. {NOTHING_LOST}"
    )


def _why_unreachable(failure: BaseException, causes: list[BaseException]) -> str:
    text = " ".join(str(cause) for cause in causes)
    if isinstance(failure, requests.exceptions.ProxyError):
        return "the proxy refused or failed the connection (check HTTPS_PROXY / HTTP_PROXY / NO_PROXY)"
    if isinstance(failure, requests.exceptions.SSLError):
        return "the TLS handshake failed (is the URL https on a host that speaks https, and is its certificate valid?)"
    if isinstance(failure, requests.Timeout):
        return "the connection timed out (a firewall drops it, or a wrong host; runtime.request_timeout sets the wait)"
    if any(isinstance(cause, socket.gaierror) for cause in causes) or "resolve" in text.lower():
        return "the host name does not resolve (DNS)"
    if any(isinstance(cause, ConnectionRefusedError) for cause in causes) or "refused" in text.lower():
        return "the connection was refused (nothing listens on that host and port)"
    return f"the connection failed ({_first_line(causes[-1])})"


def _destination_unreachable(causes: list[BaseException]) -> Optional[str]:
    """The destination's server cannot be reached (PostgreSQL down, a wrong host or port)."""
    step_failure = next((cause for cause in causes if isinstance(cause, PipelineStepFailed)), None)
    if step_failure is None or step_failure.step == "extract":
        return None
    for cause in reversed(causes):
        if CONNECTION_FAILURE.search(str(cause)):
            pipeline = step_failure.pipeline
            destination = pipeline.destination.destination_name if pipeline.destination else "the destination"
            return (
                f"The destination {destination} could not be reached: {_first_line(cause)}. Check that its server "
                f"is up and destination.{destination}.credentials (host, port). {NOTHING_LOST}"
            )
    return None


def _first_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__
