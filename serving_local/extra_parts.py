"""Extra parts: processes an application runs as parts of the stack (e.g. a consumer of the broker that
serves metrics), started after the stack's own parts, restarted with the same backoff, shown by ``status`` and
stopped with the stack. The stack knows nothing of them but what ``ExtraPart`` says.

A part may listen on a port: a fixed one, or 0 for a free port the stack chooses at start. ``{host}`` and
``{port}`` in its command and environment are replaced by the stack's host and that port; its readiness is
``GET http://host:port<ready_path>`` answering 2xx (without a port or a path: running is ready). With
``scrape`` the stack's Prometheus scrapes ``http://host:port/metrics`` as job ``APPLICATION_JOB`` with label
``exporter=<name>``. The stack's state names each port's URL (``StackState.part_urls``), so other programs
find the part through ``serving_local.api`` rather than a fixed port.

Every part gets the environment clearml-serving's containers get (``CLEARML_DEFAULT_KAFKA_SERVE_URL``: the
broker, ...) under its own ``env``. The command line carries parts as ``--extra-part '<JSON>'`` (``to_json``),
which is how ``start`` hands them to the stack it runs in the background.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from process_supervisor import ExitPolicy, Part, http_ok, port_is_free
from serving_local.errors import StackError

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$")
RESERVED_NAMES = frozenset({"broker", "statistics", "inference", "webhook", "alertmanager", "prometheus"})
DEFAULT_READY_TIMEOUT_S = 60.0
FREE_PORT_ATTEMPTS = 50


@dataclass(frozen=True)
class ExtraPart:
    name: str
    command: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)
    port: int | None = None  # 0: a free port chosen when the stack starts
    ready_path: str | None = None  # e.g. "/metrics"
    scrape: bool = False  # the stack's Prometheus scrapes <url>/metrics
    ready_timeout: float = DEFAULT_READY_TIMEOUT_S

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not NAME_PATTERN.match(self.name):
            raise ValueError(f"extra part name: letters, digits, - and _ (at most 63), got {self.name!r}")
        if self.name in RESERVED_NAMES:
            raise ValueError(f"extra part name: {self.name!r} is one of the stack's own parts")
        if not self.command or not all(isinstance(word, str) for word in self.command):
            raise ValueError(f"extra part {self.name}: command must be a non-empty list of strings")
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in dict(self.env).items()):
            raise ValueError(f"extra part {self.name}: env must map strings to strings")
        if self.port is not None and (isinstance(self.port, bool) or not 0 <= self.port <= 65535):
            raise ValueError(f"extra part {self.name}: port must be 0 (free) or a port, got {self.port!r}")
        if self.ready_path is not None and (self.port is None or not str(self.ready_path).startswith("/")):
            raise ValueError(f"extra part {self.name}: ready_path needs a port and starts with /")
        if self.scrape and self.port is None:
            raise ValueError(f"extra part {self.name}: scrape needs a port")
        if not self.ready_timeout > 0:
            raise ValueError(f"extra part {self.name}: ready_timeout must be positive")

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "command": list(self.command), "env": dict(self.env)})

    @classmethod
    def from_json(cls, text: str) -> ExtraPart:
        """ValueError naming the field when the text is not a part."""
        try:
            record = json.loads(text)
        except ValueError as exc:
            raise ValueError(f"extra part: not JSON: {exc}") from None
        if not isinstance(record, dict):
            raise ValueError("extra part: expected a JSON object")
        unknown = set(record) - {known.name for known in fields(cls)}
        if unknown:
            raise ValueError(f"extra part: unknown field(s) {', '.join(sorted(unknown))}")
        command = record.get("command")
        env = record.get("env", {})
        if not isinstance(command, list) or not isinstance(env, dict):
            raise ValueError("extra part: command must be a list and env an object")
        return cls(
            name=record.get("name"), command=tuple(command), env=env, port=record.get("port"),
            ready_path=record.get("ready_path"), scrape=bool(record.get("scrape", False)),
            ready_timeout=float(record.get("ready_timeout", DEFAULT_READY_TIMEOUT_S)),
        )  # fmt: skip

    def url(self, host: str) -> str | None:
        return None if not self.port else f"http://{host}:{self.port}"

    def expanded(self, host: str, text: str) -> str:
        return text.replace("{host}", host).replace("{port}", str(self.port or ""))


def with_ports(parts: tuple[ExtraPart, ...], host: str, taken: set[int]) -> tuple[ExtraPart, ...]:
    """The parts, each port 0 replaced by a free port of ``host`` (none of ``taken``)."""
    chosen: list[ExtraPart] = []
    used = set(taken) | {part.port for part in parts if part.port}
    for part in parts:
        if part.port == 0:
            port = free_port(host, used)
            used.add(port)
            part = replace(part, port=port)
        chosen.append(part)
    return tuple(chosen)


def free_port(host: str, avoid: set[int]) -> int:
    import socket

    for _ in range(FREE_PORT_ATTEMPTS):
        with socket.socket() as probe:
            probe.bind((host, 0))
            port = int(probe.getsockname()[1])
        if port not in avoid and port_is_free(host, port):
            return port
    raise StackError(f"no free port on {host} for an extra part")


def supervised(
    parts: tuple[ExtraPart, ...],
    host: str,
    base_env: Mapping[str, str],
    log_path: Callable[[str], Any],
    policy: Callable[[], ExitPolicy],
    stop_grace: float,
) -> list[Part]:
    """The supervisor's parts for the extra parts (ports already chosen: ``with_ports``)."""
    return [_part(part, host, base_env, log_path(part.name), policy(), stop_grace) for part in parts]


def _part(
    part: ExtraPart, host: str, base_env: Mapping[str, str], log: Any, policy: ExitPolicy, grace: float
) -> Part:
    env = {**base_env, **{key: part.expanded(host, value) for key, value in part.env.items()}}
    command = [part.expanded(host, word) for word in part.command]
    url = part.url(host)
    ready = (lambda: True) if not (url and part.ready_path) else (lambda: http_ok(f"{url}{part.ready_path}"))
    return Part(
        part.name, command, log, env, ready, ready_timeout=part.ready_timeout, stop_grace=grace, policy=policy
    )


def urls(parts: tuple[ExtraPart, ...], host: str) -> dict[str, str]:
    """Name -> ``http://host:port`` of each part with a port."""
    return {part.name: url for part in parts if (url := part.url(host))}


def scrape_targets(parts: tuple[ExtraPart, ...], host: str) -> dict[str, str]:
    """Name -> ``host:port`` of each part the stack's Prometheus scrapes."""
    return {part.name: f"{host}:{part.port}" for part in parts if part.scrape}
