"""The docs stay true: links and anchors resolve, and the config keys, env variables and flags they name exist.

Covers README.md and every docs/*.md. No network; the only subprocesses are the `--help` of our command,
of the sandbox and of the benchmarks, run in parallel.
"""

from __future__ import annotations

import difflib
import inspect
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from pathlib import Path
from typing import Any, Iterator, Optional

import dlt
import pytest
from dlt.common.configuration.specs import BaseConfiguration, RuntimeConfiguration
from dlt.load.configuration import LoaderConfiguration
from dlt.normalize.configuration import NormalizeConfiguration

from gong_source.config import GongCredentials
from gong_source.source import gong_source
from gong_source.views import concepts_of_table

PROJECT_ROOT = Path(__file__).resolve().parent.parent
README = PROJECT_ROOT / "README.md"
DOCS = [README, *sorted((PROJECT_ROOT / "docs").glob("*.md"))]
CODE_FILES = sorted((PROJECT_ROOT / "gong_source").rglob("*.py"))

# dlt's own settings that the docs name (not read by our code, documented by dlt); checked against dlt's
# configspecs by test_dlt_settings_are_dlts.
DLT_SETTINGS = frozenset(
    {
        "runtime.request_max_attempts",
        "runtime.request_backoff_factor",
        "runtime.request_timeout",
        "runtime.request_max_retry_delay",
        "destination.duckdb.credentials",
        "destination.postgres.credentials",
        "destination.filesystem.bucket_url",
        "load.raise_on_failed_jobs",
        "load.auto_abort_on_terminal_error",
        "load.workers",
        "normalize.workers",
    }
)
# Keys of the source's dlt state that the docs show under `sources.gong.` (hints the job keeps, not settings).
STATE_KEYS = frozenset({"learned_quota", "resources.<table>.density"})

OURS = "gong-logs"
FENCE = re.compile(r"^\s*(```|~~~)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
LINK = re.compile(r"!?\[([^\]]*)\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
CODE_SPAN = re.compile(r"`[^`]*`")
SOURCE_KEY = re.compile(r"(?<![\w.])sources\.gong\.([A-Za-z0-9_<>.]+)")
SOURCE_ENV = re.compile(r"\bSOURCES__GONG__([A-Z0-9_]+)")
DLT_KEY = re.compile(r"(?<![\w.])((?:runtime|destination|load|normalize|data_writer)(?:\.[a-z_][a-z0-9_]*)+)")
DLT_ENV = re.compile(r"\b((?:RUNTIME|DESTINATION|LOAD|NORMALIZE|DATA_WRITER)(?:__[A-Z0-9]+(?:_[A-Z0-9]+)*)+)")
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9]*(?:-[a-z0-9]+)*")
LIST_ITEM = re.compile(r"^\s*(?:[-*]|\d+\.)\s")
# Who a flag belongs to: the nearest command named before it in its paragraph, list item, table row or code line.
MENTIONS: list[tuple[re.Pattern[str], Optional[str]]] = [
    (re.compile(r"(?<![^\s`(/])gong-logs(?![^\s`)])|gong_logs_pipeline\.py"), OURS),
    (re.compile(r"gong_source\.sandbox\b|\bGongSandbox\b"), "sandbox"),
    (re.compile(r"\b(bench_[a-z_]+)"), None),  # the benchmark named by the match
    # Other tools' commands: their flags are not checked.
    (re.compile(r"\bpip\b|\bpytest\b|\bmarimo\b|\bdlt pipeline\b|\bairflow (?:db|dags)\b|\bdagster dev\b"), ""),
]


def blank_code_blocks(text: str) -> list[str]:
    """The lines of `text`, with fenced code blocks (fences included) blanked out."""
    lines, inside = text.split("\n"), False
    for number, line in enumerate(lines):
        fence = bool(FENCE.match(line))
        if fence or inside:
            lines[number] = ""
        if fence:
            inside = not inside
    return lines


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: link text kept, lowercase, punctuation but `-` and `_` dropped."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def at(path: Path, number: int) -> str:
    """`file:line` for a problem's message."""
    return f"{path.relative_to(PROJECT_ROOT)}:{number}"


def heading_anchors(text: str) -> frozenset[str]:
    """Every heading anchor of a markdown text, with GitHub's `-1`, `-2` for repeated headings."""
    counts: dict[str, int] = {}
    found: set[str] = set()
    for line in blank_code_blocks(text):
        match = HEADING.match(line)
        if match:
            base = slug(match.group(2))
            found.add(f"{base}-{counts[base]}" if base in counts else base)
            counts[base] = counts.get(base, 0) + 1
    return frozenset(found)


@cache
def anchors(path: Path) -> frozenset[str]:
    """The heading anchors of a file; none for a file that is not markdown."""
    return heading_anchors(path.read_text()) if path.suffix == ".md" else frozenset()


def check_links(path: Path, text: str) -> list[str]:
    """Relative links of `text` (as if it were the file `path`) whose file or anchor does not exist."""
    prose = "\n".join(blank_code_blocks(text))
    prose = CODE_SPAN.sub(lambda span: re.sub(r"[\[\]()]", " ", span.group(0)), prose)
    problems = []
    for number, line in enumerate(prose.split("\n"), start=1):
        for match in LINK.finditer(line):
            target = match.group(2)
            if re.match(r"(https?|mailto):", target):
                continue
            file_part, _, anchor = target.partition("#")
            linked = (path.parent / file_part).resolve()
            where = f"{at(path, number)}: link {target!r}"
            if file_part and not linked.exists():
                problems.append(f"{where}: {file_part} does not exist")
                continue
            known = anchors(linked) if file_part else heading_anchors(text)
            if anchor and anchor not in known:
                close = difflib.get_close_matches(anchor, sorted(known), 1, 0.0) or ["none"]
                problems.append(f"{where}: no heading #{anchor} in {file_part or path.name} (closest: #{close[0]})")
    return problems


@cache
def code_text() -> str:
    """All of gong_source's Python, to check that a name is one the code reads."""
    return "\n".join(path.read_text() for path in CODE_FILES)


@cache
def source_keys() -> frozenset[str]:
    """Every key under `sources.gong.` that the code reads, `<...>` standing for any name."""
    parameters = set(inspect.signature(gong_source).parameters) - {"credentials", "session"}
    credentials = {f"credentials.{field}" for field in GongCredentials.get_resolvable_fields()}
    assert {"base_url", "max_requests_per_run", "pii"} <= parameters, parameters
    mapping = {"view_columns.<table>.<column>"} if '"sources.gong.view_columns"' in code_text() else set()
    read_by_runner = set(
        re.findall(r'"sources\.gong\.([a-z_]+)"', code_text())
    )  # dlt.config.get(...) outside the source
    return frozenset(parameters | credentials | {"credentials"} | mapping | read_by_runner | STATE_KEYS)


def known_source_key(key: str) -> bool:
    """Whether `key` (after `sources.gong.`) is read by the code: a parameter, a credential, a mapping, state."""
    known = source_keys()
    if key in known:
        return True
    parts = key.split(".")
    if parts[0] == "view_columns" and len(parts) <= 3:
        # A named table and view column must be ones the views read (what read_view_columns accepts).
        table = parts[1] if len(parts) > 1 else "<table>"
        column = parts[2] if len(parts) > 2 else "<column>"
        concepts = concepts_of_table(table) if not table.startswith("<") else None
        if concepts is not None and (not concepts or not (column.startswith("<") or column in concepts)):
            return False
        return "view_columns.<table>.<column>" in known
    return parts[0] == "resources" and len(parts) == 3 and f"resources.<table>.{parts[2]}" in known


def check_keys(path: Path, text: str) -> list[str]:
    """Config keys and env variables named in `text` that neither our code nor dlt reads."""
    problems = []
    for number, line in enumerate(text.split("\n"), start=1):
        named = [(f"sources.gong.{key.rstrip('.')}", key.rstrip(".")) for key in SOURCE_KEY.findall(line)]
        named += [(f"SOURCES__GONG__{env}", env.lower().replace("__", ".")) for env in SOURCE_ENV.findall(line)]
        for shown, key in named:
            if not known_source_key(key):
                candidates = sorted(f"sources.gong.{known}" for known in source_keys())
                close = difflib.get_close_matches(f"sources.gong.{key}", candidates, 1, 0.0)
                problems.append(f"{at(path, number)}: {shown} is not read by gong_source (closest: {close[0]})")
        dlt_named = DLT_KEY.findall(line) + [env.lower().replace("__", ".") for env in DLT_ENV.findall(line)]
        for key in dlt_named:
            if key not in DLT_SETTINGS and f'"{key}"' not in code_text():
                close = difflib.get_close_matches(key, sorted(DLT_SETTINGS), 1, 0.0)
                message = f"{key} is neither dlt's (DLT_SETTINGS) nor read by gong_source (closest: {close[0]})"
                problems.append(f"{at(path, number)}: {message}")
    return problems


def help_of(command: str) -> str:
    """The `--help` text of one of our commands (an empty text for a benchmark without argparse)."""
    if command == OURS:
        args = ["pipelines/gong_logs_pipeline.py"]
    elif command == "sandbox":
        args = ["-m", "gong_source.sandbox"]
    else:
        script = PROJECT_ROOT / "tests" / "benchmarks" / f"{command}.py"
        if not script.exists() or "argparse" not in script.read_text():
            return ""  # never start a benchmark that would run instead of printing its help
        args = ["-m", f"tests.benchmarks.{command}"]
    run = subprocess.run(
        [sys.executable, *args, "--help"], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert run.returncode == 0, f"{command} --help failed: {run.stderr[-2000:]}"
    return run.stdout


@cache
def command_flags() -> dict[str, frozenset[str]]:
    """The flags (and sub-commands) each of our commands accepts, from their `--help`."""
    benchmarks = [path.stem for path in sorted((PROJECT_ROOT / "tests" / "benchmarks").glob("bench_*.py"))]
    commands = [OURS, "sandbox", *benchmarks]
    with ThreadPoolExecutor(len(commands)) as pool:
        helps = dict(zip(commands, pool.map(help_of, commands), strict=True))
    flags = {}
    for command, text in helps.items():
        choices = {word for group in re.findall(r"\{([\w,-]+)\}", text) for word in group.split(",")}
        flags[command] = frozenset(FLAG.findall(text)) | choices
    assert {"--start-date", "--summary-json", "fields"} <= flags[OURS], helps[OURS]
    return flags


def blocks(text: str) -> Iterator[tuple[int, str, Optional[str]]]:
    """(line, text, default command) of each paragraph, list item, table row and code line.

    The default command is ours for the body rows of a table whose first header cell is `flag`."""
    current: list[str] = []
    start, inside, flag_table, previous_row = 0, False, False, False
    for number, line in enumerate(text.split("\n"), start=1):
        fence = bool(FENCE.match(line))
        row = not inside and not fence and line.lstrip().startswith("|")
        if current and (fence or inside or row or not line.strip() or LIST_ITEM.match(line)):
            yield start, "\n".join(current), None
            current = []
        if fence:
            inside = not inside
        elif inside:
            yield number, line, None
        elif row:
            first_cell = line.strip().strip("|").split("|")[0].strip()
            if not previous_row:
                flag_table = first_cell == "flag"
            body = previous_row and not re.fullmatch(r":?-+:?", first_cell)
            yield number, line, OURS if flag_table and body else None
        elif line.strip():
            start = start if current else number
            current.append(line)
        previous_row = row
    if current:
        yield start, "\n".join(current), None


def owner(block: str, position: int, default: Optional[str]) -> Optional[str]:
    """The command a flag at `position` belongs to: "" for another tool's, None when no command is named.

    In a table row only the flag's own cell is searched."""
    begin = block.rfind("|", 0, position) + 1 if block.lstrip().startswith("|") else 0
    nearest, who = -1, default
    for pattern, command in MENTIONS:
        for match in pattern.finditer(block, begin, position):
            if match.start() > nearest:
                nearest, who = match.start(), command if command is not None else match.group(1)
    return who


def check_flags(path: Path, text: str) -> list[str]:
    """Flags in `text` that the command they are given to does not accept."""
    flags = command_flags()
    anyone = frozenset().union(*flags.values())
    problems = []
    for number, block, default in blocks(text):
        for match in FLAG.finditer(block):
            flag, command = match.group(0), owner(block, match.start(), default)
            if command == "":
                continue
            accepted = flags.get(command, frozenset()) if command else anyone
            if flag not in accepted:
                close = difflib.get_close_matches(flag, sorted(accepted), 1, 0.0) or ["none"]
                name = command or "any of our commands"
                problems.append(f"{at(path, number)}: {flag} is not a flag of {name} (closest: {close[0]})")
        if default == OURS:
            first_cell = block.strip().strip("|").split("|")[0].strip().strip("`").split(" ")[0]
            if first_cell not in flags[OURS]:
                problems.append(f"{at(path, number)}: {first_cell!r} of the flags table is not in gong-logs --help")
    return problems


@pytest.mark.parametrize("doc", DOCS, ids=lambda path: path.name)
def test_links_resolve(doc: Path) -> None:
    """Every relative link points at an existing file, and every anchor at one of its headings."""
    problems = check_links(doc, doc.read_text())
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("doc", DOCS, ids=lambda path: path.name)
def test_config_keys_are_read(doc: Path) -> None:
    """Every `sources.gong.*` key and `SOURCES__GONG__*` variable is one the code reads; dlt's keys are dlt's."""
    problems = check_keys(doc, doc.read_text())
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("doc", DOCS, ids=lambda path: path.name)
def test_flags_exist(doc: Path) -> None:
    """Every flag given to gong-logs, the sandbox or a benchmark is in that command's `--help`."""
    problems = check_flags(doc, doc.read_text())
    assert not problems, "\n".join(problems)


def test_checkers_catch_bad_snippets() -> None:
    """Each checker reports a broken link, an unknown key or variable, and an unknown flag."""
    page = PROJECT_ROOT / "docs" / "example.md"
    text = "# Title\n\n[a](tables.md) [b](nope.md) [c](tables.md#no-such-heading) [d](#title) [e](#nope)"
    links = check_links(page, text)
    assert [problem.split(": ", 2)[1] for problem in links] == [
        "link 'nope.md'",
        "link 'tables.md#no-such-heading'",
        "link '#nope'",
    ]
    assert "nope.md does not exist" in links[0]

    bad = "`sources.gong.max_request_per_run`, `SOURCES__GONG__PII_SALTT`, `runtime.request_timeoutt`"
    keys = check_keys(page, bad)
    assert len(keys) == 3, keys
    assert "closest: sources.gong.max_requests_per_run" in keys[0]
    assert "SOURCES__GONG__PII_SALTT" in keys[1] and "closest: sources.gong.pii_salt" in keys[1]
    assert "closest: runtime.request_timeout" in keys[2]
    misnamed = "`sources.gong.view_columns.user_call_plays.call_id`, `sources.gong.view_columns.access_log.call_idd`"
    assert len(check_keys(page, misnamed)) == 2  # a table no view reads; a view column that table has not
    good = "`sources.gong.view_columns.user_call_play.call_id`, `SOURCES__GONG__CREDENTIALS__ACCESS_TOKEN`"
    assert check_keys(page, good + ", `DESTINATION__DUCKDB__CREDENTIALS`") == []

    snippet = "\n\n".join(
        [
            "Run `.venv/bin/gong-logs --start-dat 2026-01-01`.",
            "`python -m gong_source.sandbox --shape renamed` and `pip install --quiet .`",
            "Then `--bogus-flag` alone.",
            "| flag | meaning |\n|---|---|\n| `--demo` | ok |\n| `--nope` | not ours |",
        ]
    )
    flags = check_flags(page, snippet)
    assert len(flags) == 4, flags
    assert "--start-dat is not a flag of gong-logs (closest: --start-date)" in flags[0]
    assert "--bogus-flag is not a flag of any of our commands" in flags[1]
    assert "--nope is not a flag of gong-logs" in flags[2] and "'--nope' of the flags table" in flags[3]
    typo = check_flags(page, "| flag | meaning |\n|---|---|\n| `feilds` | typo |")
    assert len(typo) == 1 and typo[0].endswith("'feilds' of the flags table is not in gong-logs --help"), typo


def test_dlt_settings_are_dlts() -> None:
    """The allowlist of dlt's own settings names real fields of dlt's configuration."""
    specs: dict[str, type[BaseConfiguration]] = {
        "runtime": RuntimeConfiguration,
        "load": LoaderConfiguration,
        "normalize": NormalizeConfiguration,
    }
    for key in sorted(DLT_SETTINGS):
        section, *rest = key.split(".")
        if section == "destination":
            destination, field = rest
            factory: Any = getattr(dlt.destinations, destination)
            fields = factory().spec.get_resolvable_fields()
        else:
            (field,) = rest
            fields = specs[section].get_resolvable_fields()
        assert field in fields, f"{key} is not a dlt setting"


def test_state_keys_are_the_codes() -> None:
    """The state keys the docs show are the names the code stores."""
    for key in sorted(STATE_KEYS):
        assert f'"{key.rsplit(".", 1)[-1]}"' in code_text(), key


def test_pages_and_front_page() -> None:
    """Each docs page has a title, a line on what it covers and a link back; the README stays a front page."""
    for page in DOCS[1:]:
        lines = page.read_text().split("\n")
        assert lines[0].startswith("# ") and lines[1] == "" and lines[2], page.name
        assert "](../README.md" in page.read_text(), page.name
    readme = README.read_text()
    assert len(readme.split("\n")) <= 300
    venv = "python3 -m venv .venv && .venv/bin/pip install -e "
    for command in (
        f"{venv}. && .venv/bin/python pipelines/gong_logs_pipeline.py --demo",
        f'{venv}".[test]" && .venv/bin/pytest',
    ):
        assert f"\n{command}\n" in readme, command
    assert "\n.venv/bin/pytest\n" in (PROJECT_ROOT / ".ci" / "run").read_text()
    for page in DOCS[1:]:
        assert f"](docs/{page.name})" in readme, f"README's More does not link {page.name}"
