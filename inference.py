"""Send asteroid rows to the serving endpoint and report throughput, latency and errors.

    python inference.py                           # 200 real rows from the database, one per request
    python inference.py --batch 100 --count 50    # 50 requests of 100 rows each
    python inference.py --drift --duration 60     # drifted rows (H - 1.5 mag, velocity x 1.4) for a minute
    python inference.py --rate 500 --duration 10 --json
    python inference.py --format arrow --batch 10000 --count 20   # Arrow IPC stream batches, Arrow answers

Exits 1 when any request got a 5xx or a connection error (4xx answers are counted and shown, not fatal).
"""

from __future__ import annotations

import argparse
import json
import sys

import global_config
import serving_local.api
from asteroid.serving import contract, traffic
from asteroid.serving.load import print_progress, run_load

FORMATS = ("json", "arrow")
# Distinct bodies drawn (and cycled): fewer of large batches, each of which is megabytes.
MAX_BODIES, MAX_LARGE_BODIES, LARGE_BATCH = 5000, 20, 1000


def default_url() -> str:
    """The endpoint on the running local serving stack, else where the stack would serve it (by default
    clearml-serving's port 8080)."""
    return f"{serving_local.api.serve_url()}/{global_config.SERVING_ENDPOINT}"


def describe(summary: dict) -> str:
    latency = summary["latency_ms"]
    return (
        f"{summary['requests']} requests in {summary['seconds']} s: {summary['requests_per_second']} req/s, "
        f"{summary['rows_per_second']} rows/s; latency p50 {latency['p50']} ms, p95 {latency['p95']} ms, "
        f"p99 {latency['p99']} ms; statuses {summary['statuses']}"
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--url", default=None, help="endpoint URL (default: the local stack's /serve/asteroid)"
    )
    parser.add_argument("--source-csv", help="rows from this CSV (NASA's columns) instead of the database")
    parser.add_argument(
        "--drift", action="store_true", help="send drifted rows (see asteroid/serving/traffic.py)"
    )
    parser.add_argument(
        "--drift-features",
        default=",".join(traffic.DEFAULT_DRIFT),
        help=f"comma-separated shifts for --drift, from {sorted(traffic.DRIFTS)}",
    )
    parser.add_argument("--batch", type=int, default=1, help="rows per request (1: a single row object)")
    parser.add_argument(
        "--format",
        choices=FORMATS,
        default="json",
        help=f"request body: JSON, or an Arrow IPC stream ({contract.ARROW_STREAM}) answered in Arrow",
    )
    parser.add_argument(
        "--rate", type=float, default=None, help="target requests per second (default: flat out)"
    )
    parser.add_argument("--concurrency", type=int, default=4, help="parallel connections")
    parser.add_argument("--count", type=int, default=None, help="number of requests (default 200)")
    parser.add_argument(
        "--duration", type=float, default=None, help="seconds to send for (instead of --count)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the row sampling")
    parser.add_argument("--json", action="store_true", help="print the result as JSON only")
    args = parser.parse_args(argv)
    if args.count is None and args.duration is None:
        args.count = 200
    for name in ("batch", "concurrency", "count"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name} must be at least 1, got {value}")
    if args.rate is not None and args.rate <= 0:
        parser.error(f"--rate must be positive, got {args.rate}")
    if args.duration is not None and args.duration <= 0:
        parser.error(f"--duration must be positive, got {args.duration}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    url = args.url or default_url()
    try:
        frame = traffic.load_rows(args.source_csv)
        if args.drift:
            frame = traffic.drifted(frame, tuple(filter(None, args.drift_features.split(","))))
        records = traffic.to_records(frame)
        make_bodies = traffic.arrow_request_bodies if args.format == "arrow" else traffic.request_bodies
        distinct = min(args.count or MAX_BODIES, MAX_BODIES if args.batch < LARGE_BATCH else MAX_LARGE_BODIES)
        bodies = make_bodies(records, args.batch, distinct, args.seed)
    except (LookupError, ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if not args.json:
        what = f"{'drifted' if args.drift else 'real'} rows, {args.batch} per request as {args.format}"
        limit = f"{args.count} requests" if args.count else f"{args.duration:g} s"
        print(f"POST {url}: {what}, {limit}, {args.rate or 'flat out'} req/s, {args.concurrency} connections")
    result = run_load(
        url,
        bodies,
        rows_per_request=args.batch,
        rate=args.rate,
        concurrency=args.concurrency,
        count=args.count,
        duration=args.duration,
        progress=None if args.json else print_progress,
        content_type=contract.ARROW_STREAM if args.format == "arrow" else "application/json",
        accept=contract.ARROW_STREAM if args.format == "arrow" else None,
    )
    summary = {"url": url, "drift": args.drift, "format": args.format, **result.as_dict()}
    if args.json:
        print(json.dumps(summary))
    else:
        print(file=sys.stderr)
        print(describe(summary))
        if result.first_error:
            print(f"first error: {result.first_error}")
    return 1 if result.server_errors or result.connection_errors else 0


if __name__ == "__main__":
    sys.exit(main())
