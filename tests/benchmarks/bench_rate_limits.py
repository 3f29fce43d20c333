"""Benchmark: a full backfill against the sandbox enforcing Gong's 3 calls/s (run by hand, not in CI).

    .venv/bin/python -m tests.benchmarks.bench_rate_limits [--hours 12] [--neighbour 1.5 [--neighbour-stops-after 60]]

Reports requests against the minimum (one per 100 entries), wall time against requests / 3 s,
and the 429s the sandbox answered. With `--neighbour RATE`, another integration of the same company
spends RATE calls/s of the limit (steady, or until `--neighbour-stops-after` seconds): the figures are
then counted from the sandbox's own log for both sides (our 429 share, the neighbour's), with our wall
time against our accepted calls / (3 - RATE), how fast our pace came back once the neighbour stopped,
and whether every table equals the truth.
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

import duckdb

from gong_source.entries import parse_event_time
from gong_source.sandbox import GongSandbox, Neighbour, SandboxClock, SyntheticLogs
from gong_source.settings import GONG_MAX_REQUESTS_PER_SECOND, LOG_TYPES

PROJECT_ROOT = Path(__file__).resolve().parents[2]
EPOCH = datetime(2026, 1, 1, tzinfo=timezone.utc)
INTERVALS = {
    "AccessLog": 12,
    "UserActivityLog": 24,
    "UserCallPlay": 15,
    "ExternallySharedCallAccess": 30,
    "ExternallySharedCallPlay": 45,
}


def main() -> None:
    """Run the backfill once and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hours", type=float, default=12, help="history to backfill (12 h: about 9,000 entries)")
    parser.add_argument("--neighbour", type=float, help="another integration's steady calls/s on the same limit")
    parser.add_argument("--neighbour-stops-after", type=float, help="seconds after which the neighbour stops")
    args = parser.parse_args()
    clock = EPOCH + timedelta(hours=args.hours)
    logs = SyntheticLogs(epoch=EPOCH, intervals_seconds=dict(INTERVALS))
    neighbour = Neighbour(args.neighbour, args.neighbour_stops_after) if args.neighbour else None
    with GongSandbox(
        logs=logs,
        clock=SandboxClock(clock),
        max_requests_per_second=GONG_MAX_REQUESTS_PER_SECOND,
        neighbour=neighbour,
    ) as sandbox:
        workdir = Path(tempfile.mkdtemp(prefix="gong-bench-"))
        env = {
            **os.environ,
            "DLT_DATA_DIR": str(workdir / "dlt"),
            "RUNTIME__DLTHUB_TELEMETRY": "false",
            "SOURCES__GONG__BASE_URL": sandbox.url,
            "SOURCES__GONG__CREDENTIALS__ACCESS_KEY": sandbox.access_key,
            "SOURCES__GONG__CREDENTIALS__ACCESS_KEY_SECRET": sandbox.access_key_secret,
            "SOURCES__GONG__NOW": clock.isoformat(),
            "SOURCES__GONG__SETTLE_LAG_SECONDS": "0",
        }
        started = time.monotonic()
        done = subprocess.run(
            [
                sys.executable,
                str(PROJECT_ROOT / "pipelines" / "gong_logs_pipeline.py"),
                "--start-date",
                EPOCH.isoformat(),
            ],
            cwd=workdir,
            env=env,
            capture_output=True,
            text=True,
        )
        finished = time.monotonic()
        wall = finished - started
        if done.returncode != 0:
            sys.exit(f"pipeline failed with {done.returncode}:\n{done.stderr}")
        print(f"{'log type':<28} {'entries':>8} {'requests':>9} {'minimum':>8} {'ratio':>6}")
        total_requests = total_minimum = 0
        for log_type in LOG_TYPES:
            entries = len(sandbox.truth(log_type.name, EPOCH))
            minimum = max(1, math.ceil(entries / 100))
            used = len(sandbox.stats.requests_for(log_type.name))
            total_requests += used
            total_minimum += minimum
            print(f"{log_type.name:<28} {entries:>8} {used:>9} {minimum:>8} {used / minimum:>6.3f}")
        ideal = total_requests / GONG_MAX_REQUESTS_PER_SECOND
        print(f"{'all':<28} {'':>8} {total_requests:>9} {total_minimum:>8} {total_requests / total_minimum:>6.3f}")
        print(
            f"wall time {wall:.1f} s (whole process: start-up, extract, normalize, load); "
            f"requests / 3 = {ideal:.1f} s; "
            f"ratio {wall / ideal:.3f}; beyond 1.1 x requests / 3: {max(0.0, wall - 1.1 * ideal):.1f} s"
        )
        ours = [(moment, status) for moment, status in sandbox.stats.answers if moment >= started]
        moments = [moment for moment, _ in ours]
        gaps = [later - earlier for earlier, later in itertools.pairwise(moments) if later - earlier > 1.0]
        print(
            f"first call {moments[0] - started:.1f} s after the start, last {finished - moments[-1]:.1f} s before "
            f"the end; {len(gaps)} pauses over 1 s between calls ({sum(gaps):.1f} s: loads, Retry-After); "
            f"calls / s in between: {len(moments) / (moments[-1] - moments[0]):.3f}"
        )
        refused = sum(1 for _, status in ours if status == 429)
        print(f"HTTP 429 answered by the sandbox: {refused} of our {len(ours)} calls ({refused / len(ours):.1%})")
        if neighbour is not None:
            report_neighbour(neighbour, ours, started, finished)
        print(f"tables equal the truth: {tables_equal_truth(sandbox, workdir / 'gong_audit.duckdb')}")


def report_neighbour(
    neighbour: Neighbour, ours: list[tuple[float, int]], started: float, finished: float
) -> None:
    """Both sides of the shared limit, from the sandbox's log."""
    theirs = [(moment, accepted) for moment, accepted in neighbour.calls if started <= moment <= finished]
    their_refused = sum(1 for _, accepted in theirs if not accepted)
    print(
        f"neighbour at {neighbour.rate}/s: {their_refused} of its {len(theirs)} calls refused "
        f"({their_refused / max(1, len(theirs)):.1%}) while we ran"
    )
    accepted = sum(1 for _, status in ours if status != 429)
    if neighbour.stopped_at is None:
        share = GONG_MAX_REQUESTS_PER_SECOND - neighbour.rate
        ideal = accepted / share
        print(
            f"our accepted calls {accepted} at {accepted / (finished - started):.2f}/s; wall / (accepted / "
            f"{share:g} s^-1) = {(finished - started) / ideal:.3f}"
        )
        return
    stop = neighbour.stopped_at
    times = [moment for moment, _ in ours if moment >= stop]
    back = next(
        (moment - stop for moment in times if sum(1 for t in times if moment <= t < moment + 5.0) >= 5 * 2.7),
        None,
    )
    before = [moment for moment, _ in ours if stop - 30 <= moment < stop]
    print(
        f"neighbour stopped {stop - started:.0f} s into the run; our pace over the 30 s before: "
        f"{len(before) / 30:.2f}/s; back at >= 2.7/s (5-s window) {back:.1f} s after it stopped"
        if back is not None
        else f"neighbour stopped {stop - started:.0f} s into the run; our pace never reached 2.7/s after it"
    )


def tables_equal_truth(sandbox: GongSandbox, database: Path) -> bool:
    """Whether every table holds exactly the entries the sandbox serves (event times, duplicates included)."""
    with duckdb.connect(str(database), read_only=True) as connection:
        for log_type in LOG_TYPES:
            rows = connection.execute(f"SELECT event_time FROM gong_logs.{log_type.table_name}").fetchall()
            loaded = Counter(moment.astimezone(timezone.utc) for (moment,) in rows)
            truth = Counter(parse_event_time(entry["eventTime"]) for entry in sandbox.truth(log_type.name, EPOCH))
            if loaded != truth:
                return False
    return True


if __name__ == "__main__":
    main()
