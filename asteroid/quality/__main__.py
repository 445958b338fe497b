"""`python -m asteroid.quality consume|import|count|prune|report`: the prediction log and its database.

    consume   store the predictions and feedback topics into the database until SIGTERM/SIGINT
              (retention enforced)
    import    label stored predictions from a CNEOS-style CSV file (by Neo Reference ID, optional date)
    count     stored predictions and labels: per endpoint and version, unmatched labels, revisions
    prune     delete the predictions older than the retention and the unmatched labels past their time
    report    an Evidently data-drift report (HTML) of the live features logged since `--since` (1h) against
              the served winner's training split, attached to the serving service's monitoring task

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
    report = commands.add_parser("report", help="Evidently data-drift report of the live features")
    report.add_argument("--since", default="1h", help="the range: this long ago until now (30m, 1h, 2d)")
    report.add_argument("--out", type=Path, help="folder of the HTML file (default runs/latest)")
    report.add_argument("--no-attach", action="store_true", help="do not attach it to the monitoring task")
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
        if args.command == "report":
            return drift_report(config.database_url, args.since, args.out, attach=not args.no_attach)
        with store.engine(config.database_url).begin() as connection:
            now = time.time()
            predictions = store.prune(connection, now - config.retention_seconds)
            labels_pruned = store.prune_unmatched(connection, now - config.unmatched_keep_seconds)
        print(f"deleted {predictions} prediction(s), {labels_pruned} unmatched label(s)")
        return 0
    except (ValueError, OSError, RuntimeError, sa.exc.SQLAlchemyError) as exc:  # no server or winner
        print(f"error: {exc}", file=sys.stderr)
        return 2


def drift_report(database_url: str, since: str, out: Path | None, attach: bool) -> int:
    """`report`: the live features answered in the last `since` against the published winner's training
    split; attached to the monitoring task of the running stack's (or CLEARML_SERVING_TASK_ID's) service."""
    import global_config
    from asteroid.clearml_server import ensure_server
    from asteroid.monitoring.config import seconds
    from asteroid.quality import report, scalars
    from asteroid.serving.deploy import published_winner

    start = time.time() - seconds(since)
    ensure_server()
    reference = report.training_features(published_winner())
    service = scalars.service_id() if attach else None
    task = scalars.monitoring_task(service) if service else None
    folder = out or global_config.RUNS_DIR / "latest"
    made = report.report_windows(database_url, reference, {f"last_{since}": (start, None)}, folder, task)
    for name, result in made.items():
        drifted = ", ".join(result.drifted_features) or "none"
        print(f"{name}: {result.live_rows} live rows against {result.reference_rows} training rows; "
              f"drifted features ({result.drift_share:.0%}): {drifted}")  # fmt: skip
        print(f"  {result.path}")
    if task is not None:
        print(f"attached to ClearML task {task.id} ({task.name!r}) as {report.REPORT_TITLE!r}")
    elif attach:
        print("no serving service (CLEARML_SERVING_TASK_ID or a running stack): not attached")
    return 0


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
