"""Deploy the pipeline winner with clearml-serving and run it on the local serving stack.

    python serve.py                 # create or reuse the service, roll out the winner, start the stack
    python serve.py --deploy-only   # only configure the service (serving containers elsewhere pick it up)

Every change is printed as the equivalent `clearml-serving` command. Running it again changes nothing
unless a new winner was published. The stack keeps running in the background: `make serve-stop` stops it.
"""

from __future__ import annotations

import argparse
import os
import sys

import global_config
from asteroid.clearml_server import ServerUnavailable, ensure_server
from asteroid.quality import consumer
from asteroid.serving.deploy import DeployError, ensure_service, published_winner
from asteroid.serving.release import release
from serving_local.api import default_workers


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--deploy-only", action="store_true", help="configure the service; start no stack")
    parser.add_argument("--port", type=int, help="inference port of the local stack (default 8080)")
    parser.add_argument("--metrics-port", type=int, help="statistics controller port (default 9999)")
    parser.add_argument("--broker-port", type=int, help="Kafka-protocol broker port (default 9092)")
    parser.add_argument(
        "--workers",
        type=int,
        help=f"inference worker processes (default: one per CPU core, here {default_workers()})",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        ensure_server()
        service_id, created = ensure_service()
        print(f"{'created' if created else 'using'} clearml-serving service {service_id} "
              f"({global_config.SERVING_SERVICE_NAME!r})")  # fmt: skip
        release(service_id, published_winner())
        if args.deploy_only:
            return 0
        from serving_local.api import FEEDBACK_HANDLER_ENV, StackConfig, StackError, start_stack

        # POST /feedback/asteroid beside /serve/asteroid: labels to the feedback topic (asteroid/quality/)
        os.environ.setdefault(FEEDBACK_HANDLER_ENV, "asteroid.quality.feedback:handle")

        config = StackConfig.from_env().with_overrides(
            service_id=service_id,
            port=args.port,
            metrics_port=args.metrics_port,
            broker_port=args.broker_port,
            workers=args.workers,
            # the prediction log's consumer and the live quality exporter, supervised with the stack
            extra_parts=(consumer.stack_part(),),
        )
        try:
            state = start_stack(config)
        except StackError as exc:
            raise DeployError(str(exc)) from exc
    except (ServerUnavailable, DeployError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    endpoint = f"{state.serve_url}/{global_config.SERVING_ENDPOINT}"
    print(f"\nendpoint: POST {endpoint}   (service id {service_id})")
    print(f"  curl -s -X POST {endpoint} -H 'Content-Type: application/json' \\")
    print("       -d '{\"rows\": [ ...rows of data/nasa.csv as JSON objects... ]}'")
    print("  python inference.py --count 200       # send real rows and report latency")
    feedback = f"{state.serve_url.removesuffix('/serve')}/feedback/{global_config.SERVING_ENDPOINT}"
    label = '{"request_id": "<request_id of an answer>", "hazardous": true}'
    print(f"\nlabels: POST {feedback}  {label}")
    quality = state.part_urls.get(consumer.SCRAPE_TARGET)
    if quality:
        print(f"  stored by the stack's consumer; live quality figures: {quality}/metrics")
    if state.monitoring:
        print(f"\nmonitoring: Prometheus {state.prometheus_url}/alerts,")
        print(f"  Alertmanager {state.alertmanager_url},")
        print(f"  notifications in {state.alerts_file} (python -m serving_local alerts --follow)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
