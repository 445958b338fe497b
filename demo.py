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
7. live-quality drill: the served rows' catalogue labels arrive through POST /feedback/asteroid (no alert),
   then a simulated catalogue revision flips the labels of a documented set of asteroids until
   AsteroidModelRecallLow is delivered to the webhook, then correct labels resume until it is resolved;
   an Evidently data-drift report of each drift drill phase, attached to the serving service's monitoring
   task in ClearML (where the live quality figures arrive as scalars);
8. closed loop (asteroid/loop_drill.py): the retrain receiver, started before the stack with its Alertmanager
   route, got the drift drill's critical AsteroidFeatureDrift and launched the pipeline while the quality
   drill ran; its winner passes the gate (the quality drill's labels are its rows), steps 10 → 50 → 100 % to
   promotion under traffic; then a challenger with an injected serving fault is rolled back by the canary
   analysis and AsteroidRolloutRolledBack delivered;
9. saves the pictures and runs/latest/demo.json (its `loop` section: the decisions, the timings, the 5xx).
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import global_config

# Short monitoring windows for the demo (seconds, not the production hour); set before anything reads them.
DEMO_ENV = {
    "ASTEROID_MONITORING_PROFILE": "short",
    "SERVING_LOCAL_SCRAPE_SECONDS": "2",
    "SERVING_LOCAL_ALERT_GROUP_WAIT": "1s",
    "SERVING_LOCAL_ALERT_GROUP_INTERVAL": "2s",
    "ASTEROID_QUALITY_SCALARS_SECONDS": "5",  # live quality figures to ClearML every 5 s, not every minute
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
    quality = quality_drill(state, config, drill.phases)
    loop = loop_phase(state)
    step("9. pictures and summary")
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
    }  # fmt: skip
    summary["quality"] = quality
    summary["loop"] = loop
    summary["demo_seconds"] = round(time.time() - began, 1)
    path = report.write_summary(out / "demo.json", summary)
    print(f"drift score per feature over time: {scores}")
    print(f"live against training fractions of {feature}: {histogram}")
    if loop.get("picture"):
        print(f"traffic share per model version over the loop's rollouts: {loop['picture']}")
    if summary["quality"].get("picture"):
        print(f"live accuracy and recall over the quality drill: {summary['quality']['picture']}")
    print(f"summary (alert states, delivery latency, request latency, live quality, the loop): {path}")
    return 1 if "error" in loop else 0


def loop_phase(state: Any) -> dict[str, Any]:
    """Step 8: the closed loop after the drift drill's alert; its section of demo.json (with the error
    when a part of it failed)."""
    import serving_local.api
    from asteroid import loop_drill
    from asteroid.serving import traffic

    step("8. closed loop: drift alert -> retrain -> gate -> canary 10/50/100 % -> promoted; "
         "faulty challenger -> rolled back")  # fmt: skip
    rows = traffic.to_records(traffic.load_rows().head(500))
    endpoint = f"{state.serve_url}/{global_config.SERVING_ENDPOINT}"
    drill = loop_drill.LoopDrill(endpoint, rows, serving_local.api.alerts_file())
    try:
        section = loop_drill.report(drill.run(), global_config.RUNS_DIR / "latest")
    except (RuntimeError, TimeoutError) as exc:
        print(f"the loop did not close: {exc}", file=sys.stderr)
        return {"error": str(exc)}
    loop_drill.print_summary(section)
    return section


def quality_drill(state: Any, config: Any, drift_phases: dict[str, dict[str, float]]) -> dict[str, Any]:
    """Step 7: the live-quality drill with the stack's quality exporter, then an Evidently report of each
    drift drill phase; their section of demo.json."""
    import serving_local.api
    from asteroid.monitoring.prometheus_api import Prometheus
    from asteroid.quality import drill_report, report
    from asteroid.quality.drill import QualityDrill
    from asteroid.quality.rules import thresholds_of_model
    from asteroid.serving import traffic

    served = served_model(state)  # not the newest published winner: the loop's retrain may publish one now
    thresholds = thresholds_of_model(served, config)
    if thresholds is None:
        print("the served model has no test accuracy/recall recorded: no live quality alerts, no drill")
        return {"skipped": "no test metrics recorded with the model"}
    step(f"7. live quality drill: correct labels -> catalogue revision -> correct labels (window "
         f"{config.window}, for {config.for_})")  # fmt: skip
    endpoint = f"{state.serve_url}/{global_config.SERVING_ENDPOINT}"
    feedback = f"{state.serve_url.removesuffix('/serve')}/feedback/{global_config.SERVING_ENDPOINT}"
    with quality_exporter(state):
        drill = QualityDrill(
            endpoint, feedback, state.prometheus_url, serving_local.api.alerts_file(), config,
            traffic.load_rows(), thresholds,
        ).run()  # fmt: skip
    out = global_config.RUNS_DIR / "latest"
    picture = drill_report.plot_live_quality(
        Prometheus(state.prometheus_url), drill, out / "live_quality.png"
    )
    section = drill_report.summary(drill, picture)
    print("Evidently data-drift report of the rows each drift drill phase logged (PSI alerts rule):")
    reports = report.report_drill_phases(
        global_config.DATABASE_URL, served, drift_phases, out, state.service_id
    )
    for name, made in reports.items():
        drifted = ", ".join(made.drifted_features) or "none"
        print(f"  {name}: {made.live_rows} rows, drifted features: {drifted}; {made.path}")
    section["drift_reports"] = {name: made.as_dict() for name, made in reports.items()}
    return section


def served_model(state: Any) -> Any:
    """The model the endpoint serves now (a clearml Model)."""
    from clearml import Model

    from asteroid.rollout.serving_router import ServingRouter

    return Model(model_id=ServingRouter(state.service_id).champion().model_id)


@contextlib.contextmanager
def quality_exporter(state: Any) -> Iterator[None]:
    """Until the serving stack runs the prediction log's consumer itself: start it here with its exporter
    (scraped by the stack's Prometheus) when Prometheus scrapes none, and stop it afterwards."""
    from asteroid.monitoring.prometheus_api import Prometheus
    from asteroid.quality.consumer import SCRAPE_TARGET
    from process_supervisor import accepts_connections

    if Prometheus(state.prometheus_url).query(f'up{{exporter="{SCRAPE_TARGET}"}}'):
        yield
        return
    port = free_port()
    command = [sys.executable, "-m", "asteroid.quality", "consume", "--metrics-port", str(port)]
    consumer = subprocess.Popen(command, cwd=global_config.ROOT)
    try:
        deadline = time.monotonic() + 30
        while not accepts_connections("127.0.0.1", port):
            if consumer.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the prediction log's consumer did not serve its metrics on port {port}")
            time.sleep(0.2)
        yield
    finally:
        consumer.terminate()
        consumer.wait(timeout=30)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def main() -> int:
    # README: make demo  (the Makefile's demo target runs this file)
    began = time.time()
    for name, value in DEMO_ENV.items():
        os.environ.setdefault(name, value)
    import inference
    import pipeline
    import serve
    from asteroid import loop_drill

    step("1-3. pipeline: database -> datasets -> training x 3 seeds -> published winner")
    if (code := pipeline.main([])) != 0:
        return code
    step("4. deploy the winner with clearml-serving and start the local serving stack (the retrain receiver "
         "first, its Alertmanager route handed to the stack)")  # fmt: skip
    automation = loop_drill.automation_settings()
    os.environ["SERVING_LOCAL_EXTRA_RECEIVERS"] = loop_drill.prepare_automation(automation)
    try:
        return serve_and_drill(began, serve, inference)
    finally:
        loop_drill.stop_automation(automation)


def serve_and_drill(began: float, serve: Any, inference: Any) -> int:
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
