"""`python -m asteroid.quality consume|count|prune`: the prediction log's consumer and its database.

    consume   store the predictions topic into the database until SIGTERM/SIGINT (retention enforced)
    count     how many predictions are stored
    prune     delete the predictions older than the retention now

The broker is `ASTEROID_QUALITY_BROKER`, else `CLEARML_DEFAULT_KAFKA_SERVE_URL`, else the running local
stack's (`--broker` overrides all); the database `NEO_DATABASE_URL`, else the project's SQLite file.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time

from asteroid.quality import consumer, store
from asteroid.quality.config import QualityConfig


def _config(args: argparse.Namespace) -> QualityConfig:
    config = QualityConfig.from_env()
    broker = args.broker or config.broker or _running_stack_broker()
    return dataclasses.replace(config, broker=broker)


def _running_stack_broker() -> str | None:
    from serving_local.api import running_stack

    state = running_stack()
    return state.broker if state else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m asteroid.quality", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    consume = commands.add_parser("consume", help="store the predictions topic into the database")
    consume.add_argument("--broker", help="host:port of the Kafka-protocol broker")
    for name, text in (("count", "stored predictions"), ("prune", "delete predictions past the retention")):
        commands.add_parser(name, help=text).set_defaults(broker=None)
    args = parser.parse_args(argv)
    try:
        config = _config(args)
        if args.command == "consume":
            return consumer.run_forever(config)
        if args.command == "count":
            print(store.count_predictions(config.database_url))
            return 0
        with store.engine(config.database_url).begin() as connection:
            print(f"deleted {store.prune(connection, time.time() - config.retention_seconds)} prediction(s)")
        return 0
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
