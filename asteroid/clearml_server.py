"""Choosing the ClearML server for a run: a configured one, or else the embedded default (`clearml_local`).

A server is "configured" when ``CLEARML_API_HOST`` or ``CLEARML_CONFIG_FILE`` is set or ``~/clearml.conf``
exists; switching to a real ClearML server is configuration only. Either way the server is checked before any
work starts: the SDK pointed at a host that is down retries for hours.
"""

from __future__ import annotations

import os
from pathlib import Path

import requests

import global_config
from clearml_local.config import BackendConfig, ConfigError
from clearml_local.process import is_answering, start


class ServerUnavailable(RuntimeError):
    pass


def configured_externally() -> bool:
    return bool(
        os.environ.get("CLEARML_API_HOST")
        or os.environ.get("CLEARML_CONFIG_FILE")
        or (Path.home() / "clearml.conf").exists()
    )


def embedded_config() -> BackendConfig:
    """The backend's own ``CLEARML_LOCAL_*`` settings; its data lives in the project by default."""
    return BackendConfig.from_env(default_data_dir=global_config.ROOT / ".clearml_local")


def configured_api_host() -> str:
    # Imported here: reading the SDK's configuration must happen after the environment is settled.
    from clearml.backend_api.session.session import Session

    return str(Session.get_api_server_host()).rstrip("/")


def check_server(api_host: str, timeout: float = 5.0) -> None:
    """Fail fast, with a message a person can act on, when the API server does not answer."""
    try:
        reply = requests.get(f"{api_host}/debug.ping", timeout=timeout)
    except requests.RequestException as exc:
        raise ServerUnavailable(
            f"ClearML API server {api_host} is not reachable ({exc.__class__.__name__}). Start it, fix "
            "CLEARML_API_HOST / clearml.conf, or unset them to use the embedded backend."
        ) from exc
    if reply.status_code >= 500:
        raise ServerUnavailable(f"ClearML API server {api_host} answered HTTP {reply.status_code}")


def ensure_server(verbose: bool = True) -> str:
    """Make sure a ClearML server answers; start the embedded one when none is configured.

    Returns the API URL. Sets ``CLEARML_CONFIG_FILE`` for this process and its children when the embedded
    backend is used.
    """
    if configured_externally():
        api_host = configured_api_host()
        check_server(api_host)
        return api_host
    try:
        config = embedded_config()
        state = start(config, quiet=not verbose)
    except ConfigError as exc:
        raise ServerUnavailable(f"the embedded ClearML backend is misconfigured: {exc}") from exc
    except RuntimeError as exc:
        hint = "If the ports are taken, choose others with CLEARML_LOCAL_API_PORT / CLEARML_LOCAL_FILES_PORT."
        raise ServerUnavailable(f"{exc}. {hint}") from exc
    os.environ["CLEARML_CONFIG_FILE"] = str(config.clearml_conf_path)
    if not is_answering(state["api_url"]):
        raise ServerUnavailable(f"the embedded ClearML backend at {state['api_url']} does not answer")
    if verbose:
        print(
            f"Using the embedded ClearML backend at {state['api_url']} "
            f"(CLEARML_CONFIG_FILE={config.clearml_conf_path})"
        )
    return str(state["api_url"])
