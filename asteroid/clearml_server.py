"""Choosing the ClearML server for a run: a configured one, or else the embedded default (`clearml_local`).

A server is "configured" when ``CLEARML_API_HOST`` or ``CLEARML_CONFIG_FILE`` is set or ``~/clearml.conf``
exists (what the clearml SDK itself reads); switching to a real ClearML server is configuration only, and the
embedded backend is then never started. Either way the server is checked before any work starts, each check
bounded by a few seconds: a host that is down (the SDK would retry for hours) and credentials the server does
not know, or none (the SDK would end in a long ``LoginError`` traceback), fail with one line naming the server
and what to fix. The checks themselves are the local serving stack's (``serving_local.api``), so
every tool of the project judges a server the same way.
"""

from __future__ import annotations

import os

import global_config
from clearml_local.config import BackendConfig, ConfigError
from clearml_local.process import is_answering, start
from serving_local.api import (
    ServerCheckError,
    check_server,
    configured_server,
    server_is_configured,
)

_ANNOUNCED: set[str] = set()  # API URLs this process has already named (one line each)


class ServerUnavailable(RuntimeError):
    """No usable ClearML server; the message is one line saying which server and what to fix."""


def configured_externally() -> bool:
    """Whether the environment or a clearml.conf names a ClearML server (then no embedded backend)."""
    try:
        return server_is_configured()
    except ServerCheckError as exc:
        raise ServerUnavailable(str(exc)) from None


def embedded_config() -> BackendConfig:
    """The backend's own ``CLEARML_LOCAL_*`` settings; its data lives in the project by default."""
    return BackendConfig.from_env(default_data_dir=global_config.ROOT / ".clearml_local")


def _announce(api_url: str, line: str, verbose: bool) -> None:
    if verbose and api_url not in _ANNOUNCED:
        print(line, flush=True)
        _ANNOUNCED.add(api_url)


def use_configured_server(verbose: bool = True) -> str:
    """Check the configured server (reachable, credentials known) and return its API URL."""
    try:
        server = configured_server()
        _announce(server.api_host, server.describe(), verbose)
        check_server(server)
    except ServerCheckError as exc:
        raise ServerUnavailable(str(exc)) from None
    return server.api_host


def start_embedded(verbose: bool = True) -> str:
    """Start (or reuse) the embedded backend and point this process and its children at it."""
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
    api_url = str(state["api_url"])
    line = f"Using the embedded ClearML backend at {api_url} (CLEARML_CONFIG_FILE={config.clearml_conf_path})"
    _announce(api_url, line, verbose)
    return api_url


def ensure_server(verbose: bool = True) -> str:
    """Make sure a usable ClearML server answers; start the embedded one when none is configured.

    Returns the API URL; prints once per process which server is used (unless not ``verbose``). Sets
    ``CLEARML_CONFIG_FILE`` for this process and its children when the embedded backend is used. Raises
    ServerUnavailable, with one line to show, when the server is down or refuses the credentials.
    """
    if configured_externally():
        return use_configured_server(verbose)
    return start_embedded(verbose)
