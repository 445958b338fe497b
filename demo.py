"""`make demo`: the whole job end to end on the embedded ClearML backend (or the configured server).

1. starts the embedded ClearML backend when no ClearML server is configured;
2. loads the asteroid table into the SQL database (NASA's table if present, else generated sample data);
3. runs the ClearML pipeline: get data → preprocessing → XGBoost × 3 seeds → best model published;
4. deploys the winner with clearml-serving (its drift rules generated from its training data) and starts the
   local serving stack (broker, statistics controller, inference app, and Prometheus, Alertmanager and the
   alert webhook receiver when they are installed);
5. sends real rows through `inference.py`, one per request and in batches, and prints the latency figures;
6. drift drill (short windows): normal traffic, drifted traffic until AsteroidFeatureDrift is delivered to
   the webhook, normal traffic until it is resolved;
7. saves the pictures and runs/latest/demo.json.
"""

from __future__ import annotations

import os
import sys
import time

import global_config

# Short monitoring windows for the demo (seconds, not the production hour); set before anything reads them.
DEMO_ENV = {
    "ASTEROID_MONITORING_PROFILE": "short",
    "SERVING_LOCAL_SCRAPE_SECONDS": "2",
    "SERVING_LOCAL_ALERT_GROUP_WAIT": "1s",
    "SERVING_LOCAL_ALERT_GROUP_INTERVAL": "2s",
}


def step(title: str) -> None:
    print(f"\n=== {title} " + "=" * max(0, 100 - len(title)), flush=True)


def drift_drill(began: float) -> int:
    import serving_local.api
    from asteroid.monitoring import config as monitoring_config
    from asteroid.monitoring import report
    from asteroid.monitoring.drill import Drill
    from asteroid.monitoring.prometheus_api import Prometheus

    state = serving_local.api.running_stack()
    if state is None or not state.monitoring:
        print("Prometheus and Alertmanager are not installed: no drift drill "
              "(sudo apt-get install prometheus prometheus-alertmanager)")  # fmt: skip
        return 0
    config = monitoring_config.load()
    step(f"6. drift drill: normal -> drifted -> normal traffic (window {config.window}, for {config.for_})")
    drill = Drill(state.prometheus_url, serving_local.api.alerts_file(), config).run()
    step("7. pictures and summary")
    prometheus = Prometheus(state.prometheus_url)
    out = global_config.RUNS_DIR / "latest"
    out.mkdir(parents=True, exist_ok=True)
    scores = report.plot_scores(prometheus, drill, config, out / "drift_scores.png")
    histogram, feature = report.plot_histogram(prometheus, drill, out / "drift_histogram.png")
    summary = {
        "monitoring": {"window": config.window, "for": config.for_,
                       "min_observations": config.min_observations,
                       "psi_warning": config.psi_warning, "psi_critical": config.psi_critical},
        "phases": drill.phases,
        "fired_features": sorted(drill.fired_features),
        "alert_delivery_seconds": drill.delivery_seconds(),
        "alerts": report.alert_timeline(drill),
        "normal_phase": {"drift_alerts": len(drill.normal_drift_alerts), "max_psi": drill.normal_max_psi},
        "drift_phase_max_psi": drill.drift_max_psi,
        "request_latency_server_side": report.request_latency(prometheus, drill),
        "most_drifted_feature": feature,
        "pictures": [str(scores), str(histogram)],
        "demo_seconds": round(time.time() - began, 1),
    }  # fmt: skip
    path = report.write_summary(out / "demo.json", summary)
    print(f"drift score per feature over time: {scores}")
    print(f"live against training fractions of {feature}: {histogram}")
    print(f"summary (alert states, delivery latency, request latency): {path}")
    return 0


def main() -> int:
    # README: make demo  (the Makefile's demo target runs this file)
    began = time.time()
    for name, value in DEMO_ENV.items():
        os.environ.setdefault(name, value)
    import inference
    import pipeline
    import serve

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
    if (code := drift_drill(began)) != 0:
        return code
    print(f"\ndemo finished in {time.time() - began:.0f} s")
    endpoint = inference.default_url()
    print(f'The endpoint keeps serving at {endpoint} (POST one row object, or {{"rows": [...]}}).')
    from clearml.backend_api import Session  # imported once the pipeline has settled the SDK's configuration

    print(f"Web view: {Session.get_app_server_host()}/pipelines/*/experiments/latest and /serving")
    print("`make serve-status` shows where the request metrics, the statistics and Prometheus answer.")
    print("Stop it with `make serve-stop`; the embedded ClearML backend with `make backend-stop`.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
