"""Runs clearml-serving's stock statistics controller with its Prometheus endpoint on the stack's host.

The stock controller calls `prometheus_client.start_http_server(port)`, which listens on every interface;
this launcher only fills in the address (`SERVING_LOCAL_HOST`, default 127.0.0.1) before handing over to
`clearml_serving.statistics.main`, whose code runs unchanged.
"""

from __future__ import annotations

import functools
import os

import prometheus_client


def main() -> None:
    host = os.environ.get("SERVING_LOCAL_HOST") or "127.0.0.1"
    prometheus_client.start_http_server = functools.partial(prometheus_client.start_http_server, addr=host)
    from clearml_serving.statistics.main import main as stock_main

    stock_main()


if __name__ == "__main__":
    main()
