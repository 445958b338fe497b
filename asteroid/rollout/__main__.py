"""`python -m asteroid.rollout gate|start|resume|status|rollback`: the champion/challenger gate and the
progressive canary rollout of a published winner on the clearml-serving service.

    gate      judge a model against the one served now and record the verdict (nothing served)
    start     gate, then serve the model as the next version at weight 0 and step it through the stages
              (the newest published pipeline winner unless --model); runs until promoted or rolled back
    resume    run the recorded rollout on (after the controller stopped or was killed)
    status    the recorded rollout: phase, weight, analyses, and whether a controller runs it
    rollback  send the endpoint back to the champion now (the running controller does it at its next tick)

Prometheus: `ASTEROID_PROMETHEUS_URL`, else the running local stack's. Alertmanager: see alerts.py. The
profile (`--profile drill`, `ASTEROID_ROLLOUT_PROFILE`): asteroid/rollout/config.py.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

from asteroid.rollout import config as rollout_config
from asteroid.rollout import state as states
from asteroid.rollout.controller import MANUAL, Controller, new_rollout
from asteroid.rollout.state import RolloutBusy, RolloutState, StateStore
from asteroid.serving.deploy import DeployError

PROMETHEUS_ENV = "ASTEROID_PROMETHEUS_URL"
ROLLBACK_WAIT_S = 120.0


def prometheus_url() -> str:
    import serving_local.api

    configured = os.environ.get(PROMETHEUS_ENV)
    stack = None if configured else serving_local.api.running_stack()
    url = configured or (stack.prometheus_url if stack else None)
    if not url:
        raise SystemExit(f"no Prometheus to analyse the canary with: set {PROMETHEUS_ENV} or start the stack")
    return url


def controller_for(rollout: RolloutState, store: StateStore) -> Controller:
    from clearml import Model

    from asteroid.monitoring.prometheus_api import Prometheus
    from asteroid.rollout.alerts import AlertmanagerAlerts, alertmanager_url
    from asteroid.rollout.prometheus_metrics import PrometheusMetrics
    from asteroid.rollout.registry import ClearMLRegistry
    from asteroid.rollout.serving_router import ServingRouter
    from asteroid.serving import contract

    thresholds = {
        version.url: contract.of_model(Model(model_id=version.model_id)).threshold
        for version in (rollout.champion, rollout.challenger)
    }
    metrics = PrometheusMetrics(Prometheus(prometheus_url()), thresholds)
    router = ServingRouter(rollout.service_id, rollout.endpoint)
    alerts = AlertmanagerAlerts(alertmanager_url())
    registry = ClearMLRegistry(rollout.endpoint)
    return Controller(store, router, metrics, registry, alerts, rollout_config.profile(rollout.profile))


def database_url() -> str:
    from asteroid.quality.config import QualityConfig

    return QualityConfig.from_env().database_url


def gate(args: argparse.Namespace) -> Any:
    from clearml import Model

    from asteroid.rollout.challenger import run_gate
    from asteroid.rollout.serving_router import ServingRouter
    from asteroid.serving.deploy import find_service, published_winner

    challenger = Model(model_id=args.model) if args.model else published_winner()
    service_id = find_service()
    champion = ServingRouter(service_id).champion() if service_id else None
    champion_model = Model(model_id=champion.model_id) if champion else None
    return (
        run_gate(challenger, champion_model, database_url(), args.after_date),
        challenger,
        champion,
        service_id,
    )


def start(args: argparse.Namespace, store: StateStore) -> int:
    current = store.load()
    if current is not None and current.active:
        raise RolloutBusy(states.busy_message(current))
    verdict, model, champion, service_id = gate(args)
    if not verdict.passed:
        print(f"model {model.id} stays published, tagged {verdict.tag}, and is not served")
        return 1
    if champion is None:
        raise SystemExit(
            "nothing is served yet: `make serve` serves the first model (no champion to compare)"
        )
    from asteroid.rollout.serving_router import ServingRouter

    config = rollout_config.profile(args.profile)
    challenger, commands = ServingRouter(service_id).add_challenger(model, champion)
    for command in commands:
        print(f"$ {command}")
    warm_up(challenger.url, config.ready_timeout_s)
    profile = args.profile or os.environ.get(rollout_config.PROFILE_ENV) or "production"
    rollout = new_rollout(service_id, champion.url.rsplit("/", 1)[0], champion, challenger, profile, config,
                          time.time())  # fmt: skip
    store.begin(rollout)
    print(
        f"rollout of {challenger.url} against {champion.url} begun ({profile}: stages {list(config.stages)})"
    )
    return run(store)


def warm_up(version_url: str, deadline_s: float) -> None:
    """Wait until the new version answers (loaded) before any traffic is routed to it."""
    from asteroid.rollout.warm_up import SERVE_URL_ENV, sample_row, serve_url, wait_until_answering

    base = serve_url()
    if base is None:
        print(f"no inference address ({SERVE_URL_ENV}): the challenger is not warmed up before its traffic")
        return
    began = time.monotonic()
    attempts = wait_until_answering(f"{base}/{version_url}", sample_row(database_url()), deadline_s)
    print(f"/serve/{version_url} answers ({attempts} requests, {time.monotonic() - began:.1f} s): loaded")


def run(store: StateStore) -> int:
    rollout = store.load()
    if rollout is None:
        raise SystemExit("no rollout recorded")
    final = controller_for(rollout, store).run()
    return 0 if final.phase == states.COMPLETED else 2


def status(store: StateStore) -> int:
    rollout = store.load()
    if rollout is None:
        print("no rollout recorded")
        return 0
    running = "a controller runs it" if store.controller_running() else "no controller"
    print(f"rollout of {rollout.challenger.url} (model {rollout.challenger.model_id}) against "
          f"{rollout.champion.url}: {rollout.phase}, challenger at {rollout.weight} %")  # fmt: skip
    print(f"controller: {running}")
    if rollout.failed_check:
        print(f"failed check: {rollout.failed_check} ({rollout.reason})")
    for event in rollout.events[-10:]:
        at = time.strftime("%H:%M:%S", time.gmtime(event["time"]))
        detail = {k: v for k, v in event.items() if k not in ("time", "kind", "checks")}
        print(f"  {at} {event['kind']} {detail}")
    return 0


def rollback(store: StateStore) -> int:
    rollout = store.load()
    if rollout is None or not rollout.active:
        print("no active rollout to roll back")
        return 1
    if store.controller_running():
        store.rollback_request_path.write_text("requested\n")
        deadline = time.monotonic() + ROLLBACK_WAIT_S
        while time.monotonic() < deadline:
            current = store.load()
            if current is not None and current.phase == states.ROLLED_BACK:
                print(f"rolled back by the running controller: {current.champion.url} serves again")
                return 0
            time.sleep(0.5)
        print(f"the running controller did not roll back within {ROLLBACK_WAIT_S:.0f} s", file=sys.stderr)
        return 1
    controller = controller_for(rollout, store)
    with store.controller_lock():
        controller.roll_back(rollout, MANUAL, "rollback requested by hand")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m asteroid.rollout", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for name in ("gate", "start"):
        command = commands.add_parser(name)
        command.add_argument(
            "--model", help="the challenger's model id (default: the newest published winner)"
        )
        command.add_argument("--after-date", help="gate rows: observations after this date (default: the "
                             "challenger's training query_date)")  # fmt: skip
        if name == "start":
            command.add_argument("--profile", choices=sorted(rollout_config.PROFILES))
    for name in ("resume", "status", "rollback"):
        commands.add_parser(name)
    args = parser.parse_args(argv)
    store = StateStore()
    try:
        if args.command == "gate":
            return 0 if gate(args)[0].passed else 1
        if args.command == "start":
            return start(args, store)
        if args.command == "resume":
            return run(store)
        return status(store) if args.command == "status" else rollback(store)
    except RolloutBusy as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return 3
    except (
        DeployError,
        TimeoutError,
    ) as exc:  # nothing served to compare with, a version that never answered
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
