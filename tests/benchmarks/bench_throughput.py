"""Benchmark: throughput and memory of our pipeline against raw paging and dlt's zero-code `rest_api` source.

    .venv/bin/python -m tests.benchmarks.bench_throughput [--entries-per-type 20000 200000]

Run by hand, not in CI (the full run takes about 10 minutes on 2 cores). For each size it serves the same
synthetic logs from a sandbox with no rate limit and runs three contenders, each as its own process,
measured from outside (wall clock, CPU seconds and peak RSS of the process and its children):

1. raw: requests plus JSON decoding of every page, 5 log types in parallel threads. The ceiling.
2. baseline: dlt's `rest_api_source` configured as its docs suggest (cursor paginator on `records.cursor`,
   `logEntries`, 404 ignored, incremental on `eventTime`), loaded into DuckDB in parquet, its fastest format.
3. ours: `pipelines/gong_logs_pipeline.py` exactly as users run it (rate limit and budget configured off).
4. ours-hash (on request): the same with `sources.gong.pii = hash`. Compare the PII cost with
   `--contenders ours ours-hash --adversarial` (addresses hidden in headers, URLs and JSON text).

Loaded row counts are checked against the sandbox truth (entries, and rows of child tables); a run
that loads the wrong rows is reported as WRONG.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Optional

from gong_source.sandbox import GongSandbox, SandboxClock, SyntheticLogs
from gong_source.settings import LOG_TYPES

PROJECT_ROOT = Path(__file__).resolve().parents[2]
INTERVAL_SECONDS = 10
RSS_SAMPLE_SECONDS = 0.05
BASELINE_START = "2000-01-01T00:00:00Z"


@dataclass
class Measurement:
    """What one contender did, seen from outside its process."""

    name: str
    wall_seconds: float
    cpu_seconds: float
    peak_rss_mb: float
    entries: int
    rows: int
    correct: bool
    exit_code: int

    @property
    def entries_per_second(self) -> float:
        """Entries loaded (or paged, for raw) per wall-clock second."""
        return self.entries / self.wall_seconds

    @property
    def rows_per_second(self) -> float:
        """Rows of every table, child tables included, per wall-clock second."""
        return self.rows / self.wall_seconds


# -- the sandbox data and its truth --------------------------------------------------------------


def make_logs(entries_per_type: int, now: datetime, adversarial: bool = False) -> SyntheticLogs:
    """Synthetic logs of `entries_per_type` entries per type, all older than the pipeline's settle lag
    (`adversarial`: with addresses hidden in free text, see SyntheticLogs)."""
    epoch = (now - timedelta(seconds=INTERVAL_SECONDS * entries_per_type) - timedelta(hours=2)).replace(microsecond=0)
    intervals: dict[str, Optional[float]] = {log_type.name: INTERVAL_SECONDS for log_type in LOG_TYPES}
    return SyntheticLogs(
        epoch=epoch, intervals_seconds=intervals, max_entries_per_type=entries_per_type, adversarial=adversarial
    )


def count_rows(value: Any) -> int:
    """Child-table rows that dlt's normalizer makes of one value: one per list item, recursively."""
    if isinstance(value, dict):
        return sum(count_rows(item) for item in value.values())
    if isinstance(value, list):
        return sum(1 + count_rows(item) for item in value)
    return 0


def truth(sandbox: GongSandbox, start: datetime) -> dict[str, tuple[int, int]]:
    """Per log type: (entries, rows of its table and child tables) the sandbox serves from `start`."""
    counts = {}
    for log_type in LOG_TYPES:
        entries = rows = 0
        far = datetime.max.replace(tzinfo=timezone.utc)
        for entry in sandbox.logs.entries(log_type.name, start, far, sandbox.clock.now()):
            entries += 1
            rows += 1 + count_rows(entry)
        counts[log_type.name] = (entries, rows)
    return counts


# -- measuring a child process from outside ------------------------------------------------------


def _tree_rss_kb(root: int) -> int:
    """Resident set size of `root` and all its descendants, from /proc; at least the peak (VmHWM) of `root`."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    hwm: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/status") as status:
                fields = dict(line.split(":", 1) for line in status if ":" in line)
        except OSError:
            continue
        pid = int(entry.name)
        children.setdefault(int(fields["PPid"]), []).append(pid)
        rss[pid] = int(fields.get("VmRSS", "0 kB").split()[0])
        hwm[pid] = int(fields.get("VmHWM", "0 kB").split()[0])
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        total += rss.get(pid, 0)
        stack.extend(children.get(pid, []))
    return max(total, hwm.get(root, 0))


def _has_exec(pid: int, command: list[str]) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            return cmdline.read().split(b"\0")[-2:-1] == [command[-1].encode()]
    except OSError:
        return False


def measure(
    name: str, command: list[str], env: dict[str, str], cwd: Path, log_dir: Path
) -> tuple[float, float, float, int, str]:
    """Run `command`; return wall seconds, CPU seconds, peak RSS in MB, exit code and the tail of stderr.

    Peak RSS is sampled from /proc: the process's own high-water mark (VmHWM, which starts at its exec)
    or the sum over its process tree, whichever is larger. Not `ru_maxrss`: it counts the moment between
    fork and exec, when the child is a copy of this process and its sandbox (about 1 GB at 1M entries).
    """
    stderr_path = log_dir / f"{name}.log"
    with open(stderr_path, "w") as stderr:
        started = time.monotonic()
        process = subprocess.Popen(command, env=env, cwd=cwd, stdout=stderr, stderr=subprocess.STDOUT)
        peak_tree_kb = 0
        finished = threading.Event()

        def sample() -> None:
            nonlocal peak_tree_kb
            while not finished.wait(RSS_SAMPLE_SECONDS):
                if _has_exec(process.pid, command):  # before exec, the child is still a copy of this process
                    peak_tree_kb = max(peak_tree_kb, _tree_rss_kb(process.pid))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.monotonic() - started
        finished.set()
        sampler.join()
        process.returncode = os.waitstatus_to_exitcode(status)
    cpu = usage.ru_utime + usage.ru_stime
    peak_mb = peak_tree_kb / 1024
    return wall, cpu, peak_mb, process.returncode, stderr_path.read_text()[-3000:]


# -- the contenders, each run in its own process ---------------------------------------------------


def run_raw(url: str, access_key: str, secret: str, start: str, end: str) -> None:
    """Page every log type with requests and decode the JSON; print the entries seen."""
    import requests

    def page_type(log_type: str) -> int:
        seen = 0
        with requests.Session() as session:
            session.auth = (access_key, secret)
            params = {"logType": log_type, "fromDateTime": start, "toDateTime": end}
            while True:
                response = session.get(f"{url}/v2/logs", params=params, timeout=60)
                if response.status_code == 404:
                    return seen
                response.raise_for_status()
                body = response.json()
                seen += len(body["logEntries"])
                cursor = body["records"].get("cursor")
                if not cursor:
                    return seen
                params = {**params, "cursor": cursor}

    with ThreadPoolExecutor(len(LOG_TYPES)) as pool:
        counts = list(pool.map(page_type, [log_type.name for log_type in LOG_TYPES]))
    print(json.dumps({"entries": sum(counts)}))


def run_baseline(url: str, access_key: str, secret: str, start: str, end: str, database: str) -> None:
    """dlt's rest_api_source as its docs suggest for a cursor-paginated API, loaded in parquet."""
    import dlt
    from dlt.sources.rest_api import rest_api_source

    resources: list[Any] = [
        {
            "name": log_type.table_name,
            "endpoint": {
                "path": "v2/logs",
                "params": {
                    "logType": log_type.name,
                    "toDateTime": end,
                    # Before the data: its cursor compares eventTime as strings, and a nearer initial value
                    # would drop every entry whose local time (-08:00, -07:00) sorts before it.
                    "fromDateTime": {
                        "type": "incremental",
                        "cursor_path": "eventTime",
                        "initial_value": BASELINE_START,
                    },
                },
                "data_selector": "logEntries",
                "paginator": {"type": "cursor", "cursor_path": "records.cursor", "cursor_param": "cursor"},
                "response_actions": [{"status_code": 404, "action": "ignore"}],
            },
        }
        for log_type in LOG_TYPES
    ]
    source = rest_api_source(
        {
            "client": {"base_url": url, "auth": {"type": "http_basic", "username": access_key, "password": secret}},
            "resources": resources,
        }
    )
    destination = dlt.destinations.duckdb(database)
    pipeline = dlt.pipeline("gong_rest_api_baseline", destination=destination, dataset_name="gong")
    pipeline.run(source, loader_file_format="parquet")


def loaded_counts(database: Path, dataset: str) -> dict[str, tuple[int, int]]:
    """Per log type table: (rows of the table, rows of it and its child tables) in a DuckDB file."""
    import duckdb

    counts = {}
    with duckdb.connect(str(database), read_only=True) as connection:
        tables = [
            name
            for (name,) in connection.execute(
                "select table_name from information_schema.tables where table_schema = ? and table_type = 'BASE TABLE'",
                [dataset],
            ).fetchall()
        ]
        for log_type in LOG_TYPES:
            family = [t for t in tables if t == log_type.table_name or t.startswith(log_type.table_name + "__")]
            sizes = {t: connection.execute(f'select count(*) from "{dataset}"."{t}"').fetchone()[0] for t in family}
            counts[log_type.name] = (sizes.get(log_type.table_name, 0), sum(sizes.values()))
    return counts


# -- the orchestration -----------------------------------------------------------------------------


def bench_size(entries_per_type: int, contenders: list[str], adversarial: bool = False) -> list[Measurement]:
    """Serve `entries_per_type` entries per type and measure each contender on them."""
    now = datetime.now(timezone.utc)
    logs = make_logs(entries_per_type, now, adversarial)
    results = []
    cache_size = len(LOG_TYPES) * entries_per_type * 2
    with GongSandbox(logs=logs, clock=SandboxClock(), entry_cache_size=cache_size) as sandbox:
        sandbox.warm_up()  # serve pre-built JSON, so that the sandbox is not what is measured
        start = logs.epoch.isoformat()
        end = (now - timedelta(hours=1)).replace(microsecond=0).isoformat()
        expected = truth(sandbox, logs.epoch)
        expected_entries = sum(entries for entries, _ in expected.values())
        expected_rows = sum(rows for _, rows in expected.values())
        print(f"\n== {entries_per_type:,} entries per type: {expected_entries:,} entries, {expected_rows:,} rows")
        workdir = Path(tempfile.mkdtemp(prefix="gong-throughput-"))
        base_env = {
            **os.environ,
            "DLT_DATA_DIR": str(workdir / "dlt"),
            "RUNTIME__DLTHUB_TELEMETRY": "false",
            "RUNTIME__LOG_LEVEL": "WARNING",
            "PYTHONPATH": str(PROJECT_ROOT),
        }
        for name in contenders:
            command, env = _command(name, sandbox, start, end, workdir, base_env)
            # Ours runs from the project directory, as users run it, so that .dlt/config.toml applies.
            cwd = PROJECT_ROOT if name.startswith("ours") else workdir
            wall, cpu, peak, exit_code, output = measure(name, command, env, cwd, workdir)
            if exit_code:
                print(f"{name}: exit {exit_code}\n{output}")
            if name == "raw":
                seen = json.loads(output.strip().splitlines()[-1])["entries"] if not exit_code else 0
                measurement = Measurement(name, wall, cpu, peak, seen, seen, seen == expected_entries, exit_code)
            else:
                database, dataset = _loaded_database(name, workdir)
                counts = loaded_counts(database, dataset) if database.exists() else {}
                entries = sum(c[0] for c in counts.values())
                rows = sum(c[1] for c in counts.values())
                measurement = Measurement(name, wall, cpu, peak, entries, rows, counts == expected, exit_code)
                if counts != expected:
                    print(f"{name}: loaded {counts}\n  expected {expected}")
            results.append(measurement)
            print(_format(measurement), flush=True)
    return results


def _command(
    name: str, sandbox: GongSandbox, start: str, end: str, workdir: Path, env: dict[str, str]
) -> tuple[list[str], dict[str, str]]:
    me = [sys.executable, "-m", "tests.benchmarks.bench_throughput"]
    endpoint = ["--url", sandbox.url, "--start", start, "--end", end]
    env = {**env, "BENCH_ACCESS_KEY": sandbox.access_key, "BENCH_ACCESS_KEY_SECRET": sandbox.access_key_secret}
    if name == "raw":
        return [*me, "--child", "raw", *endpoint], env
    if name == "baseline":
        return [*me, "--child", "baseline", *endpoint, "--database", str(workdir / "baseline.duckdb")], env
    ours_env = {
        **env,
        "SOURCES__GONG__BASE_URL": sandbox.url,
        "SOURCES__GONG__CREDENTIALS__ACCESS_KEY": sandbox.access_key,
        "SOURCES__GONG__CREDENTIALS__ACCESS_KEY_SECRET": sandbox.access_key_secret,
        "SOURCES__GONG__MAX_REQUESTS_PER_SECOND": "1000000",
        "SOURCES__GONG__MAX_REQUESTS_PER_RUN": "0",
        "DESTINATION__DUCKDB__CREDENTIALS": str(workdir / f"{name}.duckdb"),
    }
    if name == "ours-hash":
        # The same job with sources.gong.pii = hash (key rules and addresses inside every string); own state.
        ours_env.update(
            {
                "SOURCES__GONG__PII": "hash",
                "SOURCES__GONG__PII_SALT": "benchmark-salt-0123456789",
                "DLT_DATA_DIR": str(workdir / "dlt-hash"),
            }
        )
    script = str(PROJECT_ROOT / "pipelines" / "gong_logs_pipeline.py")
    return [sys.executable, script, "--start-date", start], ours_env


def _loaded_database(name: str, workdir: Path) -> tuple[Path, str]:
    return (workdir / "baseline.duckdb", "gong") if name == "baseline" else (workdir / f"{name}.duckdb", "gong_logs")


def _format(m: Measurement) -> str:
    verdict = "correct" if m.correct else "WRONG"
    return (
        f"{m.name:9} {m.entries:>9,} entries {m.rows:>10,} rows  {m.wall_seconds:7.1f} s  "
        f"{m.entries_per_second:>8,.0f} entries/s {m.rows_per_second:>8,.0f} rows/s  "
        f"CPU {m.cpu_seconds:7.1f} s  peak RSS {m.peak_rss_mb:7.0f} MB  {verdict}"
    )


def print_table(results: dict[int, list[Measurement]]) -> None:
    """The summary table with the ratios of ours to raw and to the baseline."""
    print("\n| entries/type | contender | entries/s | rows/s | CPU s | peak RSS MB | wall s | correct |")
    print("|---|---|---|---|---|---|---|---|")
    for size, measurements in results.items():
        for m in measurements:
            print(
                f"| {size:,} | {m.name} | {m.entries_per_second:,.0f} | {m.rows_per_second:,.0f} | "
                f"{m.cpu_seconds:.1f} | {m.peak_rss_mb:,.0f} | {m.wall_seconds:.1f} | {m.correct} |"
            )
    for size, measurements in results.items():
        by_name = {m.name: m for m in measurements}
        ours = by_name.get("ours")
        if ours is None:
            continue
        if "ours-hash" in by_name:
            share = by_name["ours-hash"].entries_per_second / max(ours.entries_per_second, 1e-9)
            print(f"{size:,}/type: pii hash / keep: {share:.2f}x entries/s")
        for other in ("raw", "baseline"):
            if other in by_name:
                ratio = ours.entries_per_second / max(by_name[other].entries_per_second, 1e-9)
                memory = ours.peak_rss_mb / max(by_name[other].peak_rss_mb, 1e-9)
                print(f"{size:,}/type: ours / {other}: {ratio:.2f}x entries/s, {memory:.2f}x peak RSS")
    ours_peaks = [m.peak_rss_mb for ms in results.values() for m in ms if m.name == "ours"]
    if len(ours_peaks) > 1:
        print(f"ours: peak RSS at the largest size / at the smallest: {ours_peaks[-1] / ours_peaks[0]:.2f}x")


def main() -> None:
    """Run the benchmark, or one contender when called with --child."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entries-per-type", type=int, nargs="+", default=[20_000, 200_000])
    parser.add_argument(
        "--contenders", nargs="+", default=["raw", "baseline", "ours"], help="raw, baseline, ours, ours-hash"
    )
    parser.add_argument("--adversarial", action="store_true", help="serve addresses hidden in free text too")
    parser.add_argument("--child", choices=["raw", "baseline"], help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--start", help=argparse.SUPPRESS)
    parser.add_argument("--end", help=argparse.SUPPRESS)
    parser.add_argument("--database", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        key, secret = os.environ["BENCH_ACCESS_KEY"], os.environ["BENCH_ACCESS_KEY_SECRET"]
        if args.child == "raw":
            run_raw(args.url, key, secret, args.start, args.end)
        else:
            run_baseline(args.url, key, secret, args.start, args.end, args.database)
        return
    results = {size: bench_size(size, args.contenders, args.adversarial) for size in args.entries_per_type}
    print_table(results)


if __name__ == "__main__":
    main()
