"""The ASGI app the stack runs: clearml-serving's stock inference app, wrapped in the request metrics and,
when configured, the feedback route (serving_local/feedback_route.py).

`uvicorn serving_local.inference_app:app`. Importing clearml-serving's `main` connects to the serving
service (`CLEARML_SERVING_TASK_ID`) and creates this instance's ClearML task, as in its own container.
"""

from clearml_serving.serving.main import app as stock_app

from serving_local.feedback_route import with_feedback_route
from serving_local.request_metrics import RequestMetrics

app = with_feedback_route(RequestMetrics(stock_app))
