"""Scarce calls: every run under a small budget, or an unknown daily quota, commits progress for every log type."""

from __future__ import annotations

import math
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest

from tests.conftest import PIPELINE_SCRIPT
from tests.scarce_runs import Backfill


@pytest.fixture
def backfills(tmp_path: Path) -> Iterator[list[Backfill]]:
    """Backfills started by a test; their sandboxes are stopped afterwards."""
    started: list[Backfill] = []
    yield started
    for backfill in started:
        backfill.close()


@pytest.mark.parametrize(
    ("budget", "entries_per_type"),
    [(10, 1500), (25, 1500), (60, 6000)],  # backfills of 8x, 3.2x and 5.2x the budget
)
def test_every_budget_moves_every_type_and_finishes_in_bounded_runs(
    tmp_path: Path, backfills: list[Backfill], budget: int, entries_per_type: int
) -> None:
    backfill = Backfill(tmp_path, entries_per_type, budget=budget)
    backfills.append(backfill)
    minimum = backfill.minimum_requests
    assert 3 * budget <= minimum <= 8 * budget + 5 * 2, minimum
    allowed_runs = math.ceil(minimum / (0.8 * budget)) + 1

    runs = backfill.run_to_the_end(max_runs=allowed_runs + 2)

    assert runs[-1].returncode == 0, runs[-1].stderr[-3000:]
    assert len(runs) <= allowed_runs, [(run.requests, run.committed_requests) for run in runs]
    for number, run in enumerate(runs[:-1], start=1):
        assert run.returncode == 75, run.stderr[-3000:]
        assert run.requests <= budget
        left, moved = run.left_before(), run.moved()
        assert all(moved[name] for name in left if left[name]), (number, moved, run.stderr[-3000:])
        assert "progress moved" in run.stderr
    assert backfill.equals_truth()


@pytest.mark.parametrize(("daily_quota", "entries_per_type"), [(12, 500), (40, 1500), (300, 15000)])
def test_an_unknown_daily_quota_is_learned_and_each_later_day_commits_most_of_its_calls(
    tmp_path: Path, backfills: list[Backfill], daily_quota: int, entries_per_type: int
) -> None:
    # 50 calls/s: paced like Gong's limit (one request in flight at a time), faster than 3/s. At 20/s every
    # day answered and committed the same calls, in twice the time.
    backfill = Backfill(tmp_path, entries_per_type, daily_quota=daily_quota, requests_per_second=50)
    backfills.append(backfill)
    days_at_least = math.ceil(backfill.minimum_requests / daily_quota)
    assert days_at_least >= 2

    days = backfill.run_to_the_end(max_runs=2 * days_at_least + 2)

    assert days[-1].returncode == 0, days[-1].stderr[-3000:]
    quota_days = [day for day in days if day.summary["budget"]["quota_stopped"]]
    assert len(quota_days) >= 2, "the quota must stop at least two days for this test to mean anything"
    assert "daily quota" in days[0].stderr
    for number, day in enumerate(days[1:], start=2):
        left, moved = day.left_before(), day.moved()
        assert all(moved[name] for name in left if left[name]), (number, moved, day.stderr[-3000:])
        # The second day plans with what the first one learned: how many calls Gong answered.
        assert day.summary["budget"]["learned_quota"]["calls"] >= daily_quota - 5
    for day in quota_days[1:]:
        assert day.committed_share >= 0.7, (day.requests, day.committed_requests, day.stderr[-3000:])
        assert day.summary["budget"]["requests_committed"] == day.committed_requests
    assert backfill.equals_truth()


def test_a_budget_too_small_to_move_says_why_and_which_setting_helps(tmp_path: Path, backfills: list[Backfill]) -> None:
    backfill = Backfill(tmp_path, 1500, budget=5)
    backfills.append(backfill)

    run = backfill.run_once()

    assert run.returncode == 75
    assert not any(run.moved().values())
    assert run.stderr.count("progress did NOT move") == 5, run.stderr[-3000:]
    assert "raise sources.gong.max_requests_per_run (now 5) to at least 10" in run.stderr
    for entry in run.summary["log_types"]:
        assert entry["progress_before"] == entry["progress_after"] == "2026-01-01T00:00:00+00:00"
        assert entry["progress_moved"] is False

    # The first run measured every type's density: the next one sizes windows to fit and moves, even at 5.
    second = backfill.run_once()

    assert second.returncode == 75
    assert all(second.moved().values()), second.stderr[-3000:]
    assert second.committed_requests == 5


def test_a_day_on_which_gong_allows_more_is_used_and_learned(tmp_path: Path, backfills: list[Backfill]) -> None:
    # The job's own load interval: a load per exploration window would spend 30 of its 40 s in dlt's load steps.
    backfill = Backfill(tmp_path, 6000, daily_quota=20, requests_per_second=50, load_interval_seconds=None)
    backfills.append(backfill)
    first = backfill.run_once()
    assert first.returncode == 75 and first.summary["budget"]["quota_stopped"]
    backfill.sandbox.daily_quota = 200  # the company's other integrations leave more today

    second = backfill.run_once()

    assert second.returncode == 75
    # It planned with the 20 calls learned, then went on in small windows past them instead of stopping.
    assert second.summary["budget"]["planned"] == 20
    assert second.summary["budget"]["requests_answered"] == 200
    assert second.committed_share >= 0.7, (second.requests, second.committed_requests)
    third = backfill.run_once()
    assert third.summary["budget"]["learned_quota"]["calls"] == 200


def test_kill_9_during_a_budget_run_then_scheduled_runs_end_equal_to_the_truth(
    tmp_path: Path, backfills: list[Backfill]
) -> None:
    backfill = Backfill(tmp_path, 1500, budget=25, requests_per_second=30)
    backfills.append(backfill)
    assert backfill.run_once().returncode == 75  # densities and progress are in state now
    env = {
        **backfill.workspace.env,
        "SOURCES__GONG__NOW": backfill.sandbox.clock.now().isoformat(),
        "SOURCES__GONG__MAX_REQUESTS_PER_RUN": "25",
        "SOURCES__GONG__MAX_REQUESTS_PER_SECOND": "30",
    }
    sent_before = len(backfill.sandbox.stats.log)
    quiet = subprocess.DEVNULL
    command = [sys.executable, str(PIPELINE_SCRIPT)]
    process = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=quiet, stderr=quiet)
    deadline = time.monotonic() + 60
    while len(backfill.sandbox.stats.log) < sent_before + 12 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert process.poll() is None, "the run ended before it could be killed"
    process.send_signal(signal.SIGKILL)
    process.wait()

    runs = backfill.run_to_the_end(max_runs=10)

    assert runs[-1].returncode == 0, runs[-1].stderr[-3000:]
    assert backfill.equals_truth()
