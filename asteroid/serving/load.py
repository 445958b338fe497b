"""An HTTP load generator for the serving endpoint: keep-alive connections, a target rate (open loop: request
i is due at start + i / rate, and its latency counts from then, so a server that stalls is charged for the
requests that waited behind the stall, not only the one it held) or flat out, a duration or a count; latency
per request, status counts, answers per second.

Threads with `http.client` keep the client's own cost per request small (tens of microseconds), so on a
shared 2-core machine the figures are the server's, not the client's.
"""

from __future__ import annotations

import http.client
import itertools
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import numpy as np

CONNECTION_ERROR = "connection error"
REQUEST_TIMEOUT_S = 30.0


@dataclass
class LoadResult:
    """What a run measured. Latencies are from a request's due time (at a target rate; else from sending it)
    to reading its whole reply; `completed_s` holds when each 200 answer arrived, in seconds from the
    start."""

    requests: int
    rows_per_request: int
    seconds: float
    latencies_s: list[float]
    statuses: Counter = field(default_factory=Counter)
    first_error: str | None = None
    completed_s: list[float] = field(default_factory=list)

    @property
    def requests_per_second(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0

    @property
    def server_errors(self) -> int:
        return sum(count for status, count in self.statuses.items() if str(status).startswith("5"))

    @property
    def connection_errors(self) -> int:
        return self.statuses.get(CONNECTION_ERROR, 0)

    def percentile_ms(self, q: float) -> float | None:
        if not self.latencies_s:
            return None
        return round(float(np.percentile(np.asarray(self.latencies_s), q)) * 1000, 3)

    def answers_per_second(self) -> list[int]:
        """200 answers in each whole second of the run but the last: a request due in the last second may be
        answered after the run's window closes, so that second would always look short (a boundary, not the
        server)."""
        seconds = int(self.seconds) - 1
        if seconds < 1:
            return []
        counts = np.bincount(np.asarray(self.completed_s, dtype=np.int64), minlength=seconds)
        return counts[:seconds].tolist()

    def as_dict(self) -> dict[str, Any]:
        ok = self.statuses.get(200, 0)
        return {
            "requests": self.requests,
            "rows_per_request": self.rows_per_request,
            "seconds": round(self.seconds, 3),
            "requests_per_second": round(self.requests_per_second, 1),
            "rows_per_second": round(ok * self.rows_per_request / self.seconds, 1) if self.seconds else 0.0,
            "latency_ms": {f"p{q}": self.percentile_ms(q) for q in (50, 95, 99)}
            | {"max": self.percentile_ms(100)},
            "statuses": {str(status): count for status, count in sorted(self.statuses.items(), key=str)},
            "first_error": self.first_error,
        }


class _Schedule:
    """Hands out request numbers with the moment each is due (None: flat out) until count or time is up."""

    def __init__(self, count: int | None, duration: float | None, rate: float | None) -> None:
        self.count, self.rate = count, rate
        self.start = time.perf_counter()
        self.end = self.start + duration if duration else None
        self._numbers = itertools.count()
        self._lock = threading.Lock()

    def next(self) -> tuple[int, float | None] | None:
        with self._lock:
            number = next(self._numbers)
        if self.count is not None and number >= self.count:
            return None
        due = self.start + number / self.rate if self.rate else None
        if self.end is not None and (due or time.perf_counter()) >= self.end:
            return None
        return number, due


def run_load(
    url: str,
    bodies: list[bytes],
    *,
    rows_per_request: int = 1,
    rate: float | None = None,
    concurrency: int = 4,
    count: int | None = None,
    duration: float | None = None,
    progress: Callable[[LoadResult], None] | None = None,
    content_type: str = "application/json",
    accept: str | None = None,
    timeout: float = REQUEST_TIMEOUT_S,
) -> LoadResult:
    """POST the bodies (cycled) to `url`; stops after `count` requests or `duration` seconds; a request
    without an answer after `timeout` seconds counts as a connection error."""
    if count is None and duration is None:
        raise ValueError("give a count or a duration")
    if not bodies:
        raise ValueError("no request bodies")
    if concurrency < 1:
        raise ValueError(f"concurrency must be at least 1, got {concurrency}")
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError(f"expected an http:// URL, got {url!r}")
    schedule = _Schedule(count, duration, rate)
    latencies: list[float] = []
    completed: list[float] = []
    headers = {"Content-Type": content_type, **({"Accept": accept} if accept else {})}
    statuses: Counter = Counter()
    errors: list[str] = []
    lock = threading.Lock()

    def worker() -> None:
        connection: http.client.HTTPConnection | None = None
        while (item := schedule.next()) is not None:
            number, due = item
            if due is not None and (wait := due - time.perf_counter()) > 0:
                time.sleep(wait)
            connection = connection or http.client.HTTPConnection(
                parts.hostname, parts.port or 80, timeout=timeout
            )
            body = bodies[number % len(bodies)]
            status, latency, error = _post(connection, parts.path, body, headers, due)
            if error:
                connection.close()
                connection = None
            with lock:
                statuses[status] += 1
                if status == 200:
                    latencies.append(latency)
                    completed.append(time.perf_counter() - schedule.start)
                elif error or not errors:
                    errors.append(error or f"HTTP {status}")
        if connection:
            connection.close()

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    _wait_with_progress(
        threads, lambda: _snapshot(schedule, latencies, statuses, errors, lock, completed=completed), progress
    )
    return _snapshot(schedule, latencies, statuses, errors, lock, rows_per_request, completed)


def _post(
    connection: http.client.HTTPConnection,
    path: str,
    body: bytes,
    headers: dict[str, str],
    due: float | None,
) -> tuple[Any, float, str | None]:
    began = due if due is not None else time.perf_counter()
    try:
        connection.request("POST", path, body=body, headers=headers)
        reply = connection.getresponse()
        payload = reply.read()
    except (OSError, http.client.HTTPException) as exc:
        return CONNECTION_ERROR, time.perf_counter() - began, f"{type(exc).__name__}: {exc}"
    latency = time.perf_counter() - began
    if reply.status != 200:
        return reply.status, latency, None if reply.status < 500 else payload[:200].decode(errors="replace")
    return reply.status, latency, None


def _snapshot(
    schedule: _Schedule,
    latencies: list[float],
    statuses: Counter,
    errors: list[str],
    lock: threading.Lock,
    rows_per_request: int = 1,
    completed: list[float] | None = None,
) -> LoadResult:
    with lock:
        return LoadResult(
            requests=sum(statuses.values()),
            rows_per_request=rows_per_request,
            seconds=time.perf_counter() - schedule.start,
            latencies_s=list(latencies),
            statuses=Counter(statuses),
            first_error=errors[0] if errors else None,
            completed_s=list(completed or []),
        )


def _wait_with_progress(
    threads: list[threading.Thread],
    snapshot: Callable[[], LoadResult],
    progress: Callable[[LoadResult], None] | None,
) -> None:
    for thread in threads:
        while thread.is_alive():
            thread.join(timeout=1.0)
            if progress and thread.is_alive():
                progress(snapshot())


def print_progress(result: LoadResult) -> None:
    p50 = result.percentile_ms(50)
    errors = result.requests - result.statuses.get(200, 0)
    print(
        f"\r  {result.requests:>7} requests  {result.requests_per_second:>8.1f} req/s  "
        f"p50 {p50 if p50 is not None else '-':>7} ms  errors {errors}",
        end="",
        file=sys.stderr,
        flush=True,
    )
