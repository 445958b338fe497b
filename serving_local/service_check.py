"""Checks made before anything starts: the ClearML server answers and the service id names a
clearml-serving service on it (otherwise the stock app retries for a long time, or dies deep in its start)."""

from __future__ import annotations

import urllib.error
import urllib.request

from serving_local.processes import StackError

CONTROL_PLANE_TAG = "serving-control-plane"  # clearml-serving's system tag of a service task


def api_server() -> str:
    """The API server the clearml SDK is configured for (CLEARML_API_HOST, CLEARML_CONFIG_FILE, ...)."""
    from clearml.backend_api.session.session import Session

    return str(Session.get_api_server_host()).rstrip("/")


def check_api_server(api_host: str, timeout: float = 5.0) -> None:
    try:
        with urllib.request.urlopen(f"{api_host}/debug.ping", timeout=timeout):
            return
    except urllib.error.HTTPError as exc:
        if exc.code < 500:
            return  # it answers; debug.ping may need a token on some servers
        raise StackError(f"ClearML API server {api_host} answered HTTP {exc.code}") from None
    except (OSError, ValueError) as exc:
        raise StackError(
            f"ClearML API server {api_host} is not reachable ({type(exc).__name__}); start it or point "
            "CLEARML_API_HOST / CLEARML_CONFIG_FILE at a running one"
        ) from None


def check_service(service_id: str) -> str:
    """The service's name; StackError when the id is not a clearml-serving service on the server."""
    check_api_server(api_server())
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
