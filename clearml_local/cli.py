"""``python -m clearml_local serve|start|stop|status``: run the embedded backend in the foreground, or
manage it in the background (see ``process.py``). Defaults come from the ``CLEARML_LOCAL_*`` variables."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
import time
from pathlib import Path

from clearml_local import process
from clearml_local.config import BackendConfig, ConfigError
from clearml_local.http_api import Observer
from clearml_local.http_base import is_disk_full
from process_supervisor import NoSpaceLeft, check_writable


def _config(args: argparse.Namespace) -> BackendConfig:
    return BackendConfig(
        data_dir=Path(args.data_dir).expanduser().resolve(),
        host=args.host,
        api_port=args.api_port,
        files_port=args.files_port,
        max_upload_bytes=args.max_upload_mb * 1024 * 1024,
    )


def _observer(check_contract: bool, trace_path: str | None) -> Observer | None:
    """Optional request observers: schema-contract warnings and a JSON-lines trace of every call."""
    observers: list[Observer] = []
    if check_contract:
        from clearml_local.contract import ContractChecker

        checker = ContractChecker()

        def check(endpoint: str, body: dict, data: dict | None, status: int) -> None:
            before = len(checker.violations)
            checker(endpoint, body, data, status)
            for violation in checker.violations[before:]:
                logging.getLogger("clearml_local.contract").warning("%s", violation)

        observers.append(check)
    if trace_path:
        trace = open(trace_path, "a", buffering=1)  # noqa: SIM115 (open for the server's lifetime)
        lock = threading.Lock()

        def record(endpoint: str, body: dict, data: dict | None, status: int) -> None:
            line = json.dumps(
                {"t": time.time(), "endpoint": endpoint, "status": status, "body": body, "data": data},
                default=str,
            )
            with lock:
                trace.write(line + "\n")

        observers.append(record)
    if not observers:
        return None
    return lambda *args: [observer(*args) for observer in observers] and None


def serve(config: BackendConfig, check_contract: bool = False, trace_path: str | None = None) -> int:
    from clearml_local.server import EmbeddedBackend

    check_writable(config.data_dir)
    try:
        backend = EmbeddedBackend(config, observer=_observer(check_contract, trace_path)).start()
    except Exception as exc:
        if is_disk_full(exc):
            raise NoSpaceLeft(config.data_dir) from None
        raise
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    print(f"ClearML embedded backend: API {backend.api_url}  files {backend.files_url}", flush=True)
    print(f"Web view: {backend.api_url}/projects", flush=True)
    print(f"Data directory: {config.data_dir}", flush=True)
    print(f"Point the clearml SDK at it:  export CLEARML_CONFIG_FILE={backend.clearml_conf}", flush=True)
    stop.wait()
    backend.stop()
    print("ClearML embedded backend stopped", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    try:
        defaults = BackendConfig.from_env()
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    parser = argparse.ArgumentParser(prog="python -m clearml_local", description=__doc__)
    parser.add_argument("command", choices=["serve", "start", "stop", "status"])
    parser.add_argument("--data-dir", default=str(defaults.data_dir))
    parser.add_argument("--host", default=defaults.host)
    parser.add_argument("--api-port", type=int, default=defaults.api_port)
    parser.add_argument("--files-port", type=int, default=defaults.files_port)
    parser.add_argument("--max-upload-mb", type=int, default=defaults.max_upload_bytes // (1024 * 1024))
    parser.add_argument("--check-contract", action="store_true", help="log replies that break the SDK schema")
    parser.add_argument(
        "--trace", metavar="FILE", help="append every API call and reply to FILE (JSON lines)"
    )
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(asctime)s %(name)s %(message)s"
    )
    config = _config(args)
    try:
        if args.command == "serve":
            return serve(config, args.check_contract, args.trace)
        if args.command == "start":
            check_writable(config.data_dir)
            process.start(config)
            return 0
        if args.command == "stop":
            process.stop(config)
            return 0
        return process.status(config)
    except (RuntimeError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
