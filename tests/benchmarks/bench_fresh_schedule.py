"""Benchmark: what a frequent schedule costs in calls, against the floor (run by hand, not in CI).

    .venv/bin/python -m tests.benchmarks.bench_fresh_schedule [--cases schedule one-late idle verify]

The busy tenant: AccessLog 2,000 entries an hour, each other type 200, and a few entries per type per day
written 1 to 40 minutes after their eventTime (each its own delay, seeded: a rerun meets the same ones). The
sandbox's clock moves between runs; the job runs with its own settle lag (5 min) and lookback (1 h).

- schedule: a one-day backfill, then hourly runs for 6 hours, then a run every 5 minutes for 2 hours. The floor
  of a run: per log type, one request per 100 entries that became visible since the previous run, at least one.
  After every run the tables must equal what the runs could have seen (their own new range, and every final
  hour whole); at the end the clock moves two hours on and one more run must make them equal the truth.
- one-late: one late entry in an hour of 20,000 AccessLog entries: the calls that find and load it.
- idle: runs every 5 minutes for 2 hours on a tenant with nothing new: calls per run, and count checks per
  log type per 30 minutes.
- verify: `gong-logs verify` over 30 days of the sandbox's default tenant with nothing missing.
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from gong_source.coverage import floor_hour
from gong_source.sandbox import GongSandbox, SandboxClock, SyntheticLogs
from gong_source.settings import LOG_TYPES
from tests.conftest import EPOCH, Workspace, truth_event_times

SETTLE_LAG = timedelta(minutes=5)
LOOKBACK = timedelta(hours=1)
BUSY_INTERVALS: dict[str, float | None] = {
    "AccessLog": 1.8,
    "UserActivityLog": 18,
    "UserCallPlay": 18,
    "ExternallySharedCallAccess": 18,
    "ExternallySharedCallPlay": 18,
}
BUSY_LATE_EVERY = {"AccessLog": 4_801, **{name: 601 for name in list(BUSY_INTERVALS)[1:]}}
"""About 10 AccessLog entries and 8 of each other type per day are written late."""


def busy_tenant() -> SyntheticLogs:
    return SyntheticLogs(
        epoch=EPOCH,
        intervals_seconds=dict(BUSY_INTERVALS),
        late_every=dict(BUSY_LATE_EVERY),
        late_delay=timedelta(minutes=1),
        late_delay_max=timedelta(minutes=40),
    )


def job_env(workspace: Workspace) -> dict[str, str]:
    """The job's own settle lag and load interval (the tests' Workspace turns both off), a fast pace."""
    workspace.env.pop("SOURCES__GONG__LOAD_INTERVAL_SECONDS", None)
    return {"SOURCES__GONG__SETTLE_LAG_SECONDS": str(int(SETTLE_LAG.total_seconds()))}


@dataclass
class Phase:
    """Runs of one schedule: requests, floor, and what they were spent on."""

    name: str
    runs: int = 0
    requests: int = 0
    floor: int = 0
    purposes: Counter[str] = field(default_factory=Counter)
    late_found: int = 0
    exact_after_every_run: bool = True

    def row(self) -> str:
        ratio = self.requests / self.floor if self.floor else math.nan
        purposes = ", ".join(f"{name} {count}" for name, count in sorted(self.purposes.items()))
        return (
            f"{self.name:<34} {self.runs:>4} {self.requests:>8} {self.floor:>7} {ratio:>7.3f}  "
            f"{self.late_found:>4}  {'yes' if self.exact_after_every_run else 'NO':<5} {purposes}"
        )


class Schedule:
    """A workspace on a sandbox whose clock the schedule moves; each run is measured from the sandbox's side."""

    def __init__(self, root: Path, logs: SyntheticLogs, start: datetime, now: datetime) -> None:
        self.sandbox = GongSandbox(logs=logs, clock=SandboxClock(now)).start()
        self.workspace = Workspace(root, self.sandbox)
        self.env = job_env(self.workspace)
        self.start = start
        self.cut_off = start
        self.visible: dict[str, int] = {t.name: 0 for t in LOG_TYPES}
        self.seen: dict[str, Counter[datetime]] = {t.name: Counter() for t in LOG_TYPES}
        self.summary = root / "summary.json"

    def close(self) -> None:
        self.sandbox.stop()

    def run(self, phase: Phase, first: bool = False) -> dict[str, Any]:
        """One scheduled run: its requests against its floor; then the tables against what it could see."""
        now = self.sandbox.clock.now()
        cut_off = now - SETTLE_LAG
        floor = 0
        for log_type in LOG_TYPES:
            visible = truth_event_times(self.sandbox, log_type.name, self.start, cut_off.isoformat())
            total = sum(visible.values())
            floor += max(1, math.ceil((total - self.visible[log_type.name]) / 100))
            self.visible[log_type.name] = total
            self.seen[log_type.name] |= truth_event_times(
                self.sandbox, log_type.name, self.cut_off, cut_off.isoformat()
            )
        before = len(self.sandbox.stats.requests)
        args = ("--start-date", self.start.isoformat()) if first else ()
        result = self.workspace.run(*args, "--summary-json", str(self.summary), env=self.env)
        if result.returncode != 0:
            raise SystemExit(f"run at {now} exited {result.returncode}:\n{result.output[-3000:]}")
        summary: dict[str, Any] = json.loads(self.summary.read_text())
        phase.runs += 1
        phase.requests += len(self.sandbox.stats.requests) - before
        phase.floor += floor
        for entry in summary["log_types"]:
            phase.purposes.update(entry["requests_by_purpose"])
            phase.late_found += entry["late_entries_found"]
        self.cut_off = cut_off
        final_before = floor_hour(cut_off - LOOKBACK)
        for log_type in LOG_TYPES:
            final = truth_event_times(self.sandbox, log_type.name, self.start, final_before.isoformat())
            if self.loaded(log_type.table_name) != self.seen[log_type.name] | final:
                phase.exact_after_every_run = False
        return summary

    def loaded(self, table: str) -> Counter[datetime]:
        """The table's event times (none if it was never created: a type with no entries at all)."""
        return self.workspace.event_times(table) if table in self.workspace.tables() else Counter()

    def equals_truth(self) -> bool:
        return all(
            self.loaded(t.table_name) == truth_event_times(self.sandbox, t.name, self.start, self.cut_off.isoformat())
            for t in LOG_TYPES
        )


HEADER = (
    f"{'case':<34} {'runs':>4} {'requests':>8} {'floor':>7} {'ratio':>7}  {'late':>4}  {'exact':<5} requests by purpose"
)


def schedule_case() -> None:
    """The busy tenant: backfill, hourly for 6 hours, every 5 minutes for 2 hours."""
    print("\nBusy tenant (AccessLog 2,000/h, others 200/h, a few late entries per type per day)")
    print(HEADER)
    start = EPOCH + timedelta(days=3)
    with tempfile.TemporaryDirectory(prefix="gong-fresh-") as root:
        schedule = Schedule(Path(root), busy_tenant(), start, start + timedelta(days=1))
        try:
            backfill = Phase("backfill of a day")
            schedule.run(backfill, first=True)
            print(backfill.row())
            hourly = Phase("hourly runs, 6 hours")
            for _ in range(6):
                schedule.sandbox.clock.advance(timedelta(hours=1))
                schedule.run(hourly)
            print(hourly.row())
            every_5 = Phase("runs every 5 minutes, 2 hours")
            for _ in range(24):
                schedule.sandbox.clock.advance(timedelta(minutes=5))
                schedule.run(every_5)
            print(every_5.row())
            schedule.sandbox.clock.advance(timedelta(hours=2))
            last = Phase("one run 2 hours later")
            schedule.run(last)
            print(last.row())
            print(f"tables equal to the truth after the last run (every late entry loaded): {schedule.equals_truth()}")
            per_day = every_5.requests / every_5.runs * 288
            print(f"a day of 5-minute runs at this rate: about {per_day:,.0f} calls")
        finally:
            schedule.close()


def one_late_case() -> None:
    """One late entry in an hour of 20,000 AccessLog entries."""
    logs = SyntheticLogs(
        epoch=EPOCH,
        intervals_seconds={"AccessLog": 0.18},
        max_entries_per_type=20_000,
        late_entries={"AccessLog": {12_345: timedelta(minutes=30)}},
    )
    with tempfile.TemporaryDirectory(prefix="gong-one-late-") as root:
        schedule = Schedule(Path(root), logs, EPOCH, EPOCH + timedelta(hours=1) + SETTLE_LAG)
        try:
            first = Phase("one late entry: the hour's first run")
            schedule.run(first, first=True)
            schedule.sandbox.clock.advance(timedelta(hours=1, minutes=1))
            before = len(schedule.sandbox.stats.requests)
            check = Phase("one late entry in an hour of 20,000")
            schedule.run(check)
            in_the_hour = [
                p
                for p in schedule.sandbox.stats.requests[before:]
                if p["logType"] == "AccessLog" and p["toDateTime"] <= "2026-01-01T01:00:00Z"
            ]
            print(
                f"\nOne late entry in an hour of 20,000: {len(in_the_hour)} calls in that hour "
                f"(the count, the halving counts and the re-read), {check.late_found} late entry loaded; "
                f"tables equal the truth: {schedule.equals_truth()}"
            )
        finally:
            schedule.close()


def idle_case() -> None:
    """Runs every 5 minutes with nothing new."""
    logs = SyntheticLogs(epoch=EPOCH, intervals_seconds=dict(BUSY_INTERVALS), max_entries_per_type=2_000)
    start = EPOCH + timedelta(hours=1)  # every type's entries end before 2026-01-01T11:00
    with tempfile.TemporaryDirectory(prefix="gong-idle-") as root:
        schedule = Schedule(Path(root), logs, start, EPOCH + timedelta(days=1))
        try:
            schedule.run(Phase("backfill"), first=True)
            idle = Phase("runs every 5 min, nothing new")
            checks_per_half_hour: Counter[tuple[str, int]] = Counter()
            for run in range(24):
                schedule.sandbox.clock.advance(timedelta(minutes=5))
                summary = schedule.run(idle)
                for entry in summary["log_types"]:
                    checks_per_half_hour[(entry["log_type"], run // 6)] += entry["requests_by_purpose"]["count_checks"]
            print(
                f"\nNothing new, every 5 minutes for 2 hours: {idle.requests / idle.runs:.2f} calls per run "
                f"({len(LOG_TYPES)} log types); count checks per log type per 30 minutes: at most "
                f"{max(checks_per_half_hour.values(), default=0)}; {dict(idle.purposes)}"
            )
        finally:
            schedule.close()


def verify_case() -> None:
    """`gong-logs verify` over 30 days with nothing missing."""
    with tempfile.TemporaryDirectory(prefix="gong-verify-") as root:
        schedule = Schedule(Path(root), SyntheticLogs(epoch=EPOCH), EPOCH, EPOCH + timedelta(days=31))
        try:
            schedule.run(Phase("backfill"), first=True)
            before = len(schedule.sandbox.stats.requests)
            report = Path(root) / "verify.json"
            started = time.monotonic()
            result = schedule.workspace.run(
                "verify",
                "--start-date",
                EPOCH.isoformat(),
                "--end-date",
                (EPOCH + timedelta(days=30)).isoformat(),
                "--summary-json",
                str(report),
                env=schedule.env,
            )
            calls = len(schedule.sandbox.stats.requests) - before
            counts = json.loads(report.read_text())["counts"]
            print(
                f"\nverify over 30 days with nothing missing: exit {result.returncode}, {calls} calls for "
                f"{len(LOG_TYPES)} log types x 30 days ({calls / (30 * len(LOG_TYPES)):.2f} per type and day), "
                f"{counts}, {time.monotonic() - started:.1f} s"
            )
        finally:
            schedule.close()


CASES = {"schedule": schedule_case, "one-late": one_late_case, "idle": idle_case, "verify": verify_case}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", nargs="+", choices=list(CASES), default=list(CASES))
    for case in parser.parse_args().cases:
        CASES[case]()


if __name__ == "__main__":
    main()
