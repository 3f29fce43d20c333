"""Benchmark: a full backfill against the sandbox enforcing Gong's 3 calls/s (run by hand, not in CI).

    .venv/bin/python -m tests.benchmarks.bench_rate_limits [--hours 12]

Reports requests against the minimum (one per 100 entries), wall time against requests / 3 s,
and the 429s the sandbox answered.
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from gong_source.sandbox import GongSandbox, SandboxClock, SyntheticLogs
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
    args = parser.parse_args()
    clock = EPOCH + timedelta(hours=args.hours)
    logs = SyntheticLogs(epoch=EPOCH, intervals_seconds=dict(INTERVALS))
    with GongSandbox(
        logs=logs, clock=SandboxClock(clock), max_requests_per_second=GONG_MAX_REQUESTS_PER_SECOND
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
        wall = time.monotonic() - started
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
        print(f"HTTP 429 answered by the sandbox: {sandbox.stats.statuses[429]}")


if __name__ == "__main__":
    main()
