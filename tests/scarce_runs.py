"""Runs a backfill to the end under a small budget or an unknown daily quota, as a scheduler would,
and measures from the sandbox's side which requests became committed progress.

Shared by tests/test_scarce_quota.py and tests/benchmarks/bench_scarce_quota.py.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Optional

from gong_source.sandbox import GongSandbox, SandboxClock, SyntheticLogs
from gong_source.settings import LOG_TYPES
from tests.conftest import EPOCH, Workspace, truth_event_times

BACKFILL_DAYS = 30


@dataclass
class RunResult:
    """One scheduled run (or one quota day): its exit code, requests, and what became progress."""

    returncode: int
    requests: int
    committed_requests: int
    summary: dict[str, Any]
    stderr: str

    @property
    def committed_share(self) -> float:
        """Share of the run's requests (429s included) whose window's progress was committed."""
        return self.committed_requests / self.requests if self.requests else 1.0

    def moved(self) -> dict[str, bool]:
        """Per log type: whether the run moved its progress."""
        return {entry["log_type"]: entry["progress_moved"] for entry in self.summary["log_types"]}

    def left_before(self) -> dict[str, bool]:
        """Per log type: whether it had entries left when the run started (its progress was short of the end)."""
        left = {}
        for entry in self.summary["log_types"]:
            before, end = _parse(entry["progress_before"]), _parse(entry["window"][1])
            left[entry["log_type"]] = before is None or end is None or before < end
        return left


@dataclass
class Backfill:
    """A month of `entries_per_type` entries of each log type, in a sandbox with an optional daily quota."""

    root: Path
    entries_per_type: int
    daily_quota: Optional[int] = None
    budget: Optional[int] = None
    requests_per_second: float = 1000
    load_interval_seconds: Optional[int] = 0
    """0: a load per window (the tests' default, see conftest.Workspace); None: the job's own (60 s)."""
    runs: list[RunResult] = field(default_factory=list)

    def __post_init__(self) -> None:
        interval = BACKFILL_DAYS * 86_400 / self.entries_per_type
        logs = SyntheticLogs(epoch=EPOCH, intervals_seconds={log_type.name: interval for log_type in LOG_TYPES})
        clock = SandboxClock(EPOCH + timedelta(days=BACKFILL_DAYS))
        self.sandbox = GongSandbox(logs=logs, clock=clock, daily_quota=self.daily_quota).start()
        self.workspace = Workspace(self.root, self.sandbox)
        if self.load_interval_seconds is None:
            self.workspace.env.pop("SOURCES__GONG__LOAD_INTERVAL_SECONDS")
        else:
            self.workspace.env["SOURCES__GONG__LOAD_INTERVAL_SECONDS"] = str(self.load_interval_seconds)

    def close(self) -> None:
        """Stop the sandbox."""
        self.sandbox.stop()

    @property
    def minimum_requests(self) -> int:
        """One request per 100 entries of each type: what a perfect reader needs."""
        return sum(max(1, math.ceil(sum(truth_event_times(self.sandbox, t.name).values()) / 100)) for t in LOG_TYPES)

    def run_once(self) -> RunResult:
        """One scheduled run; with a daily quota, the sandbox then starts the next day."""
        summary_path = self.root / "summary.json"
        env = {"SOURCES__GONG__MAX_REQUESTS_PER_SECOND": str(self.requests_per_second)}
        if self.budget is not None:
            env["SOURCES__GONG__MAX_REQUESTS_PER_RUN"] = str(self.budget)
        first = len(self.sandbox.stats.log)
        result = self.workspace.run("--start-date", EPOCH.isoformat(), "--summary-json", str(summary_path), env=env)
        summary = json.loads(summary_path.read_text())
        answers = self.sandbox.stats.log[first:]
        progress = {entry["log_type"]: _parse(entry["progress_after"]) for entry in summary["log_types"]}
        # A request became progress if its window's last page was served in this run and the run's
        # committed progress reaches the window's end.
        read_whole = {a.window for a in answers if a.last_page and a.status in (200, 404)}
        committed = sum(
            1
            for a in answers
            if a.window in read_whole and progress.get(a.window[0]) and _parse(a.window[2]) <= progress[a.window[0]]
        )
        run = RunResult(
            returncode=result.returncode,
            requests=len(answers),
            committed_requests=committed,
            summary=summary,
            stderr=result.stderr,
        )
        self.runs.append(run)
        if self.daily_quota is not None:
            self.sandbox.next_day()
        return run

    def run_to_the_end(self, max_runs: int) -> list[RunResult]:
        """Run until a run exits 0 (or fails, or `max_runs` runs)."""
        for _ in range(max_runs):
            run = self.run_once()
            if run.returncode != 75:
                break
        return self.runs

    def equals_truth(self) -> bool:
        """Whether every table holds exactly the sandbox's entries."""
        return all(
            self.workspace.event_times(t.table_name) == truth_event_times(self.sandbox, t.name) for t in LOG_TYPES
        )


def _parse(value: Optional[str]) -> Optional[datetime]:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None
