"""The wire contract: the request/response schema classes shipped inside the pinned clearml SDK.

``ContractChecker`` validates what the backend receives and answers against
``clearml.backend_api.services.v2_23``; the tests run every SDK flow through it, and
``python -m clearml_local serve --check-contract`` does the same on a live server.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import pkgutil
import threading
from dataclasses import dataclass, field
from typing import Any

import jsonschema

SERVICES_PACKAGE = "clearml.backend_api.services.v2_23"
# Keys the SDK adds to requests outside the schema, and the query-language keys of get_all calls.
REQUEST_EXTRAS = {"_allow_extra_fields_", "method"}


@dataclass
class Violation:
    endpoint: str
    direction: str
    message: str

    def __str__(self) -> str:
        return f"{self.endpoint} {self.direction}: {self.message}"


@functools.cache
def schema_classes() -> dict[str, dict[str, Any]]:
    """Request and response JSON schemas by ``service.action``, read from the SDK's schema classes."""
    package = importlib.import_module(SERVICES_PACKAGE)
    found: dict[str, dict[str, Any]] = {}
    for module_info in pkgutil.iter_modules(package.__path__):
        module = importlib.import_module(f"{SERVICES_PACKAGE}.{module_info.name}")
        for _, cls in inspect.getmembers(module, inspect.isclass):
            service, action = getattr(cls, "_service", None), getattr(cls, "_action", None)
            schema = getattr(cls, "_schema", None)
            if not (service and action and isinstance(schema, dict)):
                continue
            kind = "response" if cls.__name__.endswith("Response") else "request"
            if kind == "request" and not cls.__name__.endswith("Request"):
                continue
            found.setdefault(f"{service}.{action}", {})[kind] = schema
    return found


def strip_nulls(value: Any) -> Any:
    """The SDK drops None values before checking types, so a null reads as 'absent'."""
    if isinstance(value, dict):
        return {k: strip_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [strip_nulls(v) for v in value]
    return value


@dataclass
class ContractChecker:
    schemas: dict[str, dict[str, Any]] = field(default_factory=schema_classes)
    violations: list[Violation] = field(default_factory=list)
    checked: dict[str, int] = field(default_factory=dict)
    unknown: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def knows(self, endpoint: str) -> bool:
        return endpoint in self.schemas

    def __call__(self, endpoint: str, body: dict[str, Any], data: dict[str, Any] | None, status: int) -> None:
        if endpoint not in self.schemas:
            with self._lock:
                self.unknown.add(endpoint)
            return
        problems = []
        request_schema = self.schemas[endpoint].get("request")
        if request_schema and endpoint != "events.add_batch":
            request = {k: v for k, v in body.items() if k not in REQUEST_EXTRAS}
            problems += [("request", msg) for msg in self._errors(request_schema, strip_nulls(request))]
        response_schema = self.schemas[endpoint].get("response")
        if response_schema and status == 200 and data is not None:
            problems += [("response", msg) for msg in self._errors(response_schema, strip_nulls(data))]
        with self._lock:
            self.checked[endpoint] = self.checked.get(endpoint, 0) + 1
            self.violations += [Violation(endpoint, direction, msg) for direction, msg in problems]

    @staticmethod
    def _errors(schema: dict[str, Any], instance: Any) -> list[str]:
        if _dangling_refs(schema, schema.get("definitions") or {}):
            return []  # the SDK's schema refers to a definition it lacks (events.plots): nothing to check
        validator = jsonschema.Draft7Validator(schema)
        return [
            f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
            for e in validator.iter_errors(instance)
        ]


def _dangling_refs(node: Any, definitions: dict[str, Any]) -> bool:
    """Whether a schema refers (``#/definitions/x``) to a definition it does not hold."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if (
            isinstance(ref, str)
            and ref.startswith("#/definitions/")
            and ref.split("/")[-1] not in definitions
        ):
            return True
        return any(_dangling_refs(value, definitions) for value in node.values())
    if isinstance(node, list):
        return any(_dangling_refs(value, definitions) for value in node)
    return False
