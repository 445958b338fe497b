"""Readiness of a new version before it gets traffic: clearml-serving learns a new endpoint at its next sync
and downloads and loads the model on the version's first request (each worker process on its own). Measured
on this machine under load: the first request to a new version took 0.76 s, so a drill's first canary window
(48 requests) showed a p99 of 761 ms from that one request and rolled a healthy challenger back. The rollout
therefore begins only once the version answers: `WARM_UP_REQUESTS` answered requests straight to
`/serve/<endpoint>/<n>` (several, so that more than one worker has loaded it), polled with a deadline.

The inference address: `ASTEROID_SERVE_URL` (`…/serve`), else the running local stack's.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from typing import Any

import requests

SERVE_URL_ENV = "ASTEROID_SERVE_URL"
WARM_UP_REQUESTS = 8
TIMEOUT_S = 30.0


def serve_url() -> str | None:
    configured = os.environ.get(SERVE_URL_ENV)
    if configured:
        return configured.rstrip("/")
    import serving_local.api

    stack = serving_local.api.running_stack()
    return stack.serve_url.rstrip("/") if stack else None


def sample_row(database_url: str) -> dict[str, Any]:
    """One observation of the database as a client sends it (NASA's columns, JSON types)."""
    from asteroid import database

    frames = database.iter_observations(database_url, chunk_rows=1)
    try:
        first = next(frames)
    finally:
        frames.close()  # ends the query and releases the connection
    return json.loads(first.head(1).to_json(orient="records"))[0]


def wait_until_answering(
    url: str, body: dict[str, Any], deadline_s: float, interval_s: float = 0.5,
    post: Callable[..., Any] = requests.post, clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> int:  # fmt: skip
    """POST `body` to `url` until `WARM_UP_REQUESTS` answers were 200; the number of attempts. Raises
    TimeoutError naming the last answer after `deadline_s`."""
    deadline, answered, attempts, last = clock() + deadline_s, 0, 0, "no answer"
    while answered < WARM_UP_REQUESTS:
        attempts += 1
        try:
            reply = post(url, json=body, timeout=TIMEOUT_S)
            last = f"{reply.status_code} {reply.text[:200]}"
            if reply.status_code == 200:
                answered += 1
                continue
        except requests.RequestException as exc:
            last = str(exc)
        if clock() > deadline:
            raise TimeoutError(f"{url} did not answer within {deadline_s:.0f} s (last: {last})")
        sleep(interval_s)
    return attempts
