"""Serve the Gong sandbox until interrupted:
`python -m gong_source.sandbox --port 8765 [--rate-limit 3 [--neighbour 1.5]] [--shape gong|invented|renamed]
[--page-order time|shuffled] [--late-every 500 [--late-minutes 1-40]]`."""

from __future__ import annotations

import argparse
import threading
from datetime import timedelta

from gong_source.sandbox.data import SHAPES, SyntheticLogs
from gong_source.sandbox.server import PAGE_ORDERS, GongSandbox, Neighbour


def main() -> None:
    """Start the sandbox on loopback and print how to point the pipeline at it."""
    parser = argparse.ArgumentParser(description="A local Gong-compatible /v2/logs server with synthetic logs.")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--rate-limit", type=float, default=None, help="requests per second before 429 (Gong: 3)")
    parser.add_argument(
        "--neighbour", type=float, default=None, help="another integration's steady calls/s on the same limit"
    )
    parser.add_argument(
        "--shape",
        choices=SHAPES,
        default="gong",
        help="the tenant's logRecord shapes: gong (as real tenants send them, the default), invented (the "
        "sandbox's earlier shapes, read by the views' fallbacks) or renamed (other names: try the view mapping)",
    )
    parser.add_argument("--page-order", choices=PAGE_ORDERS, default="time", help="the order of a query's entries")
    parser.add_argument("--late-every", type=int, default=None, help="every n-th entry of a type is written late")
    parser.add_argument(
        "--late-minutes", default="1-40", help="each late entry's own delay after its eventTime, a range of minutes"
    )
    args = parser.parse_args()
    low, _, high = args.late_minutes.partition("-")
    logs = SyntheticLogs(
        shape=args.shape,
        late_every=args.late_every,
        late_delay=timedelta(minutes=float(low)),
        late_delay_max=timedelta(minutes=float(high or low)),
    )
    neighbour = Neighbour(args.neighbour) if args.neighbour else None
    if neighbour and not args.rate_limit:
        parser.error("--neighbour shares the rate limit: give --rate-limit too")
    sandbox = GongSandbox(
        port=args.port,
        max_requests_per_second=args.rate_limit,
        logs=logs,
        neighbour=neighbour,
        page_order=args.page_order,
    ).start()
    print(f"export SOURCES__GONG__BASE_URL={sandbox.url}")
    print(f"export SOURCES__GONG__CREDENTIALS__ACCESS_KEY={sandbox.access_key}")
    print(f"export SOURCES__GONG__CREDENTIALS__ACCESS_KEY_SECRET={sandbox.access_key_secret}")
    print("Serving synthetic Gong logs; Ctrl-C to stop.", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        sandbox.stop()


if __name__ == "__main__":
    main()
