"""Benchmark: backfills under small budgets and unknown daily quotas (run by hand, not in CI).

    .venv/bin/python -m tests.benchmarks.bench_scarce_quota [--budgets 10 25 100 400 2500] [--quotas 30 300 1000]

Each backfill is a month of every log type in the sandbox, `--times` (4) times the budget or
(3) the daily quota in requests at the minimum (one request per 100 entries), run as a scheduler
would until a run exits 0. Prints two tables:

- budget -> runs needed (and the bound ceil(M / 0.8 B) + 1), total requests / minimum, requests wasted
  (sent, but not in a window whose progress the same run committed);
- unknown daily quota -> days needed, and per day the share of its calls (429s included) that
  became committed progress.
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

from gong_source.settings import LOG_TYPES
from tests.scarce_runs import Backfill


def entries_for(requests: int) -> int:
    """Entries per log type for a backfill whose minimum is about `requests` requests in all."""
    return max(100, requests * 100 // len(LOG_TYPES) - 50)


def budget_table(budgets: list[int], times: float) -> None:
    """Budget -> runs, requests / minimum, wasted requests."""
    print(f"\nBudget (max_requests_per_run), backfill of about {times:g} x the budget")
    header = ("budget", "minimum M", "runs", "bound", "requests", "/ minimum", "wasted", "s")
    print(" ".join(f"{name:>{width}}" for name, width in zip(header, (7, 10, 5, 6, 9, 10, 7, 6), strict=True)))
    for budget in budgets:
        with tempfile.TemporaryDirectory(prefix="gong-budget-") as root:
            backfill = Backfill(Path(root), entries_for(int(times * budget)), budget=budget)
            try:
                started = time.monotonic()
                minimum = backfill.minimum_requests
                bound = math.ceil(minimum / (0.8 * budget)) + 1
                runs = backfill.run_to_the_end(max_runs=3 * bound)
                requests = sum(run.requests for run in runs)
                wasted = sum(run.requests - run.committed_requests for run in runs)
                ok = runs[-1].returncode == 0 and backfill.equals_truth()
                print(
                    f"{budget:>7} {minimum:>10} {len(runs):>5} {bound:>6} {requests:>9} "
                    f"{requests / minimum:>10.3f} {wasted:>7} {time.monotonic() - started:>6.0f}"
                    + ("" if ok else "  NOT EQUAL TO THE TRUTH")
                )
            finally:
                backfill.close()


def quota_table(quotas: list[int], times: float) -> None:
    """Unknown daily quota -> days, and each day's share of calls that became progress."""
    print(f"\nUnknown daily quota (429 Retry-After 3600 once spent), backfill of about {times:g} x the quota")
    header = ("quota/day", "minimum M", "days", "requests", "/ minimum")
    columns = " ".join(f"{name:>{width}}" for name, width in zip(header, (9, 10, 5, 9, 10), strict=True))
    print(columns, " share of each day's calls")
    for quota in quotas:
        with tempfile.TemporaryDirectory(prefix="gong-quota-") as root:
            backfill = Backfill(Path(root), entries_for(int(times * quota)), daily_quota=quota, requests_per_second=50)
            try:
                minimum = backfill.minimum_requests
                days = backfill.run_to_the_end(max_runs=4 * math.ceil(minimum / quota) + 2)
                requests = sum(day.requests for day in days)
                shares = " ".join(f"{day.committed_share:.2f}" for day in days)
                ok = days[-1].returncode == 0 and backfill.equals_truth()
                print(
                    f"{quota:>9} {minimum:>10} {len(days):>5} {requests:>9} {requests / minimum:>10.3f}  {shares}"
                    + ("" if ok else "  NOT EQUAL TO THE TRUTH")
                )
            finally:
                backfill.close()


def main() -> None:
    """Run both tables."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budgets", type=int, nargs="*", default=[10, 25, 100, 400, 2500])
    parser.add_argument("--quotas", type=int, nargs="*", default=[30, 300, 1000])
    parser.add_argument("--times", type=float, default=4.0, help="backfill size in budgets (default 4)")
    parser.add_argument("--quota-times", type=float, default=3.0, help="backfill size in daily quotas (default 3)")
    args = parser.parse_args()
    if args.budgets:
        budget_table(args.budgets, args.times)
    if args.quotas:
        quota_table(args.quotas, args.quota_times)


if __name__ == "__main__":
    main()
