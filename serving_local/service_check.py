"""Checks made before anything starts: the ClearML server answers, knows the configured credentials, and the
service id names a clearml-serving service on it (otherwise the stock app retries for a long time, dies deep
in its start, or the SDK prints a 30-line ``LoginError`` traceback).

The server and the credentials are read the way the clearml SDK reads them (``clearml.backend_api.session``):
``CLEARML_API_HOST`` / ``CLEARML_API_ACCESS_KEY`` / ``CLEARML_API_SECRET_KEY`` (or ``CLEARML_AUTH_TOKEN``)
first, then ``api.api_server`` and ``api.credentials`` of the configuration file (``CLEARML_CONFIG_FILE``,
else ``~/clearml.conf``), then the SDK's default server.
"""

from __future__ import annotations

import base64
import json
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from serving_local.errors import StackError

CONTROL_PLANE_TAG = "serving-control-plane"  # clearml-serving's system tag of a service task
CHECK_TIMEOUT_S = 5.0  # per request: a server that does not answer in this time counts as down
KEY_VARIABLES = "CLEARML_API_ACCESS_KEY / CLEARML_API_SECRET_KEY"
DEFAULT_CONFIG_LABEL = "~/clearml.conf"  # where the SDK looks when CLEARML_CONFIG_FILE is not set


class ServerCheckError(RuntimeError):
    """The configured ClearML server cannot be used: down, not a ClearML server, or wrong credentials."""


@dataclass(frozen=True)
class ServerSettings:
    """The ClearML server the SDK would use in this environment, and where each setting came from."""

    api_host: str
    source: str  # what set api_host, for people: "CLEARML_API_HOST", "CLEARML_CONFIG_FILE=...", ...
    config_label: str  # the configuration file the SDK reads, as named to people (~/clearml.conf if none)
    access_key: str
    secret_key: str
    auth_token: str
    keys_source: str  # where the key pair comes from, and so where to fix it

    def describe(self) -> str:
        return f"Using the ClearML server at {self.api_host} (from {self.source})"


def _env_name(entry: object) -> str:
    """The variable of an SDK ``EnvEntry`` that is set (its first name when none is)."""
    keys = list(getattr(entry, "keys", ()))
    return next((key for key in keys if os.environ.get(key)), keys[0] if keys else "?")


def config_file_label(path: str) -> str:
    from clearml.backend_config.defs import LOCAL_CONFIG_FILE_OVERRIDE_VAR

    if LOCAL_CONFIG_FILE_OVERRIDE_VAR.get():
        return f"{_env_name(LOCAL_CONFIG_FILE_OVERRIDE_VAR)}={path}"
    return path.replace(str(Path.home()), "~", 1)


def active_config_file() -> str | None:
    """The configuration file the SDK reads; ServerCheckError when ``CLEARML_CONFIG_FILE`` names none."""
    from clearml.backend_config.defs import LOCAL_CONFIG_FILE_OVERRIDE_VAR, get_active_config_file

    override = LOCAL_CONFIG_FILE_OVERRIDE_VAR.get()
    if override and not Path(override).expanduser().is_file():
        name = _env_name(LOCAL_CONFIG_FILE_OVERRIDE_VAR)
        raise ServerCheckError(f"{name}={override} is not a file: point it at a clearml.conf or unset it")
    found = get_active_config_file()
    return str(Path(found).expanduser()) if found else None


def server_is_configured() -> bool:
    """Whether the environment or a configuration file names a ClearML server (else the SDK's default)."""
    from clearml.backend_api.session.defs import ENV_HOST
    from clearml.backend_config.defs import LOCAL_CONFIG_FILE_OVERRIDE_VAR, get_active_config_file

    return bool(ENV_HOST.get() or LOCAL_CONFIG_FILE_OVERRIDE_VAR.get() or get_active_config_file())


def configured_server() -> ServerSettings:
    """The server and credentials the clearml SDK resolves from the environment and its configuration."""
    from clearml.backend_api.session.defs import ENV_ACCESS_KEY, ENV_AUTH_TOKEN, ENV_HOST, ENV_SECRET_KEY
    from clearml.backend_api.session.session import Session
    from clearml.config import config_obj

    config_file = active_config_file()
    label = config_file_label(config_file) if config_file else DEFAULT_CONFIG_LABEL
    if ENV_HOST.get():
        source = _env_name(ENV_HOST)
    elif config_file and (config_obj.get("api.api_server", None) or config_obj.get("api.host", None)):
        source = label
    else:
        source = "the SDK's default; no CLEARML_API_HOST, CLEARML_CONFIG_FILE or ~/clearml.conf names one"
    access_key = ENV_ACCESS_KEY.get() or config_obj.get("api.credentials.access_key", None) or ""
    secret_key = ENV_SECRET_KEY.get() or config_obj.get("api.credentials.secret_key", None) or ""
    return ServerSettings(
        api_host=str(Session.get_api_server_host()).rstrip("/"),
        source=source,
        config_label=label,
        access_key=str(access_key),
        secret_key=str(secret_key),
        auth_token=str(ENV_AUTH_TOKEN.get() or ""),
        keys_source=KEY_VARIABLES
        if ENV_ACCESS_KEY.get() or ENV_SECRET_KEY.get()
        else f"api.credentials in {label}",
    )


def check_api_server(api_host: str, timeout: float = CHECK_TIMEOUT_S) -> None:
    """ServerCheckError, in one line, unless the API server answers ``debug.ping`` within ``timeout``."""
    try:
        with urllib.request.urlopen(f"{api_host}/debug.ping", timeout=timeout):
            return
    except urllib.error.HTTPError as exc:
        if exc.code < 500:
            return  # it answers; debug.ping may need a token on some servers
        raise ServerCheckError(f"ClearML API server {api_host} answered HTTP {exc.code}") from None
    except (OSError, ValueError) as exc:
        raise ServerCheckError(
            f"ClearML API server {api_host} is not reachable ({_failure(exc)}); start it or point "
            "CLEARML_API_HOST / CLEARML_CONFIG_FILE at a running one"
        ) from None


def _failure(exc: BaseException) -> str:
    """A network failure's kind (``ConnectionRefusedError``, ``TimeoutError``, ...) rather than URLError."""
    reason = getattr(exc, "reason", None)
    return type(reason if isinstance(reason, BaseException) else exc).__name__


def _authorization(server: ServerSettings) -> str:
    if server.auth_token:
        return f"Bearer {server.auth_token}"
    if server.access_key and server.secret_key:
        pair = f"{server.access_key}:{server.secret_key}".encode()
        return f"Basic {base64.b64encode(pair).decode()}"
    raise ServerCheckError(
        f"no credentials for the ClearML server at {server.api_host}: set {KEY_VARIABLES}, or "
        f"api.credentials in {server.config_label}, to a key pair created in its web UI "
        "(Settings > Workspace > Create new credentials)"
    )


def _result_message(body: bytes) -> str:
    try:
        return str(json.loads(body)["meta"]["result_msg"])
    except (ValueError, KeyError, TypeError):
        return ""


def check_credentials(server: ServerSettings, timeout: float = CHECK_TIMEOUT_S) -> None:
    """Log in as the SDK does (``auth.login``, HTTP Basic with the key pair); ServerCheckError in one line
    when the keys are missing or the server does not know them."""
    request = urllib.request.Request(
        f"{server.api_host}/auth.login", headers={"Authorization": _authorization(server)}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as reply:
            body = reply.read()
    except urllib.error.HTTPError as exc:
        message = _result_message(exc.read()) or exc.reason
        if exc.code in (401, 403):
            raise ServerCheckError(
                f"the ClearML server at {server.api_host} rejected the access key "
                f"{server.access_key or '(token)'!r} (HTTP {exc.code}: {message}): fix {server.keys_source} "
                "with a key pair created in its web UI (Settings > Workspace > Create new credentials)"
            ) from None
        raise ServerCheckError(
            f"ClearML API server {server.api_host} answered auth.login with HTTP {exc.code}: {message}"
        ) from None
    except (OSError, ValueError) as exc:
        raise ServerCheckError(
            f"ClearML API server {server.api_host} is not reachable ({_failure(exc)})"
        ) from None
    if "token" not in body.decode(errors="replace"):
        raise ServerCheckError(f"{server.api_host} is not a ClearML API server (auth.login gave no token)")


def check_server(server: ServerSettings, timeout: float = CHECK_TIMEOUT_S) -> None:
    """The server answers and accepts the configured credentials, each checked within ``timeout``."""
    check_api_server(server.api_host, timeout)
    check_credentials(server, timeout)


def check_service(service_id: str, server: ServerSettings) -> str:
    """The service's name; StackError when the server cannot be used or the id is not a clearml-serving
    service on it."""
    check_server(server)
    from clearml import Task

    try:
        task = Task.get_task(task_id=service_id)
    except ValueError:
        task = None
    if task is None:
        raise StackError(f"no task {service_id!r} on the ClearML server; see `clearml-serving list`")
    if CONTROL_PLANE_TAG not in (task.get_system_tags() or []):
        raise StackError(f"task {service_id} ({task.name!r}) is not a clearml-serving service")
    return str(task.name)
