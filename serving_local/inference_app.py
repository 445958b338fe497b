"""The ASGI app the stack runs (answering only loopback ``Host`` names when it listens on loopback):
clearml-serving's stock inference app behind the request limits
(serving_local/request_limits.py) and the content negotiation that tells a hook the request's Content-Type
and Accept (serving_local/content_negotiation.py), wrapped in the request metrics and, when configured, the
feedback route (serving_local/feedback_route.py); each canary draw is told to the request metrics.

`uvicorn serving_local.inference_app:app`. Importing clearml-serving's `main` connects to the serving
service (`CLEARML_SERVING_TASK_ID`) and creates this instance's ClearML task, as in its own container.

Before the app starts up (its startup launches the processor and the statistics sender thread), this
installs `third_party_patches.send_statistics_in_small_chunks()`: the stock statistics sender stalls the
worker for about a second every 10 s under load; the replacement sends the same records in the same wire
format in small messages, often. `SERVING_LOCAL_STOCK_STATISTICS_SENDER=1` keeps the stock sender (to
measure the difference).
"""

import os

from clearml_serving.serving import main as stock

import third_party_patches
from serving_local.config import STOCK_STATISTICS_SENDER_ENV
from serving_local.content_negotiation import ContentNegotiation
from serving_local.feedback_route import with_feedback_route
from serving_local.host_check import LoopbackHostOnly
from serving_local.request_limits import RequestLimits
from serving_local.request_metrics import RequestMetrics, note_served_url


def use_stock_statistics_sender() -> bool:
    return os.environ.get(STOCK_STATISTICS_SENDER_ENV, "") not in ("", "0")


def served_endpoints() -> set[str]:
    """The endpoint URLs the stock app serves now (it loads and re-syncs them in the background)."""
    processor = stock.processor
    if processor is None:
        return set()
    return {*processor.get_endpoints(), *processor.get_canary_endpoints(), *processor.get_model_monitoring()}


if not use_stock_statistics_sender():
    third_party_patches.send_statistics_in_small_chunks()

third_party_patches.report_canary_draws(note_served_url)  # per-version request metrics behind a canary route
app = LoopbackHostOnly(
    with_feedback_route(
        RequestMetrics(RequestLimits(ContentNegotiation(stock.app)), known_endpoints=served_endpoints)
    )
)
