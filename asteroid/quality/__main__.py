"""`python -m asteroid.quality consume|count|prune`: the prediction log's consumer and its database.

    consume   store the predictions and feedback topics into the database until SIGTERM/SIGINT
              (retention enforced)
    import    label stored predictions from a CNEOS-style CSV file (by Neo Reference ID, optional date)
    count     stored predictions and labels: per endpoint and version, unmatched labels, revisions
    prune     delete the predictions older than the retention and the unmatched labels past their time

The broker is `ASTEROID_QUALITY_BROKER`, else `CLEARML_DEFAULT_KAFKA_SERVE_URL`, else the running local
stack's (`--broker` overrides all); the database `NEO_DATABASE_URL`, else the project's SQLite file.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import sqlalchemy as sa

from asteroid.quality import consumer, labels_import, store
from asteroid.quality.config import QualityConfig


def _config(args: argparse.Namespace) -> QualityConfig:
    config = QualityConfig.from_env()
    if args.command != "consume":
        return config
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
    consume.add_argument("--metrics-port", type=int, help="serve the live quality metrics on this port")
    consume.add_argument("--metrics-host", default="127.0.0.1", help="address of the metrics (127.0.0.1)")
    consume.add_argument(
        "--scraped-by-stack",
        action="store_true",
        help="run as the serving stack's part: its Prometheus scrapes the metrics (register no target)",
    )
    labels = commands.add_parser("import", help="label stored predictions from a CNEOS-style CSV file")
    labels.add_argument("csv", type=Path)
    for name, text in (("count", "stored predictions and labels"), ("prune", "apply the retention now")):
        commands.add_parser(name, help=text)
    args = parser.parse_args(argv)
    try:
        config = _config(args)
        if args.command == "consume":
            register = not args.scraped_by_stack
            return consumer.run_forever(config, args.metrics_port, args.metrics_host, register)
        if args.command == "import":
            report = labels_import.import_labels(args.csv, config.database_url)
            print(
                f"{report.rows} row(s): {report.labelled_predictions} prediction(s) labelled, "
                f"{report.unmatched_rows} row(s) unmatched (kept {config.unmatched_keep_days:g} days)"
            )
            return 0
        if args.command == "count":
            print_counts(config.database_url)
            return 0
        with store.engine(config.database_url).begin() as connection:
            now = time.time()
            predictions = store.prune(connection, now - config.retention_seconds)
            labels_pruned = store.prune_unmatched(connection, now - config.unmatched_keep_seconds)
        print(f"deleted {predictions} prediction(s), {labels_pruned} unmatched label(s)")
        return 0
    except (ValueError, OSError, sa.exc.SQLAlchemyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def print_counts(database_url: str) -> None:
    with store.engine(database_url).connect() as connection:
        counts = store.quality_counts(connection)
        labels = store.label_counts(connection)
    for row in counts:
        print(
            f"{row.endpoint} version {row.model_version}: {row.predictions} prediction(s), "
            f"{row.labelled} labelled, {row.correct} correct "
            f"(TP {row.true_positives}, FP {row.false_positives}, TN {row.true_negatives}, "
            f"FN {row.false_negatives})"
        )
    print(
        f"unmatched labels: {labels.unmatched} by request id, {labels.catalogue_unmatched} catalogue row(s); "
        f"revisions: {labels.revisions}"
    )


if __name__ == "__main__":
    sys.exit(main())
