"""`make demo`: the whole job end to end on the embedded ClearML backend (or the configured server).

1. starts the embedded ClearML backend when no ClearML server is configured;
2. loads the asteroid table into the SQL database (NASA's table if present, else generated sample data);
3. runs the ClearML pipeline: get data → preprocessing → XGBoost × 3 seeds → best model published;
4. deploys the winner with clearml-serving and starts the local serving stack (broker, statistics
   controller, inference app);
5. sends real rows through `inference.py`, one per request and in batches, and prints the latency figures.
"""

from __future__ import annotations

import sys

import inference
import pipeline
import serve


def step(title: str) -> None:
    print(f"\n=== {title} " + "=" * max(0, 100 - len(title)), flush=True)


def main() -> int:
    step("1-3. pipeline: database -> datasets -> training x 3 seeds -> published winner")
    if (code := pipeline.main([])) != 0:
        return code
    step("4. deploy the winner with clearml-serving and start the local serving stack")
    if (code := serve.main([])) != 0:
        return code
    step("5. real rows through the endpoint: 300 single-row requests, then 20 batches of 100 rows")
    for arguments in (["--count", "300", "--concurrency", "2"], ["--count", "20", "--batch", "100"]):
        if (code := inference.main(arguments)) != 0:
            return code
    endpoint = inference.default_url()
    print(f'\nThe endpoint keeps serving at {endpoint} (POST one row object, or {{"rows": [...]}}).')
    from clearml.backend_api import Session  # imported once the pipeline has settled the SDK's configuration

    print(f"Web view: {Session.get_app_server_host()}/pipelines/*/experiments/latest and /serving")
    print("`make serve-status` shows where the request metrics and the statistics controller answer.")
    print("Stop it with `make serve-stop`; the embedded ClearML backend with `make backend-stop`.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
