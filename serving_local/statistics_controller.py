"""Runs clearml-serving's stock statistics controller with its Prometheus endpoint on the stack's host.

The stock controller calls `prometheus_client.start_http_server(port)`, which listens on every interface.
Before handing over to `clearml_serving.statistics.main`, this installs
`third_party_patches.bind_statistics_endpoint_to(host)` (`SERVING_LOCAL_HOST`, default 127.0.0.1), which
rebinds that function to serving_local/metrics_server.py's (the same endpoint, answering only its own
loopback ``Host`` names) on the host only, or, if clearml-serving or prometheus_client no longer
match what it relies on, changes nothing and says so on stderr (the endpoint then listens on every
interface).

The stock controller's threads never look at SIGTERM; here SIGTERM ends the process at once (its state is
the broker's and the scraped counters', nothing to flush), so the supervisor stops it without SIGKILL.
"""

from __future__ import annotations

import os
import signal

import third_party_patches
from serving_local.metrics_server import start_metrics_server


def _exit_on_sigterm(signum: int, frame: object) -> None:
    os._exit(128 + signum)


def main() -> None:
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    host = os.environ.get("SERVING_LOCAL_HOST") or "127.0.0.1"
    third_party_patches.bind_statistics_endpoint_to(host, start_metrics_server)
    from clearml_serving.statistics.main import main as stock_main

    stock_main()


if __name__ == "__main__":
    main()
