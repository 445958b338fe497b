"""Every request is checked before it touches state: against the request classes shipped in the pinned SDK
(``clearml.backend_api.services.v2_23``) and against bounds on what the schema leaves open.

A request that fails gets a 400 whose message names the field and the problem; nothing of it is stored.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Iterator
from typing import Any

import jsonschema

from clearml_local.contract import REQUEST_EXTRAS, schema_classes, strip_nulls
from clearml_local.errors import ApiError

# Bounds on the shape of any request body (the schema leaves runtime, metadata, dataviews, ... open).
MAX_DEPTH = 32
MAX_NODES = 2_000_000
MAX_INT = 2**63 - 1
# Values the schema leaves open, bounded tighter: hyperparams, configuration and execution are shallow maps.
OPEN_FIELD_DEPTH = {
    "hyperparams": 4,
    "new_task_hyperparams": 4,
    "configuration": 3,
    "new_task_configuration": 3,
    "execution": 8,
    "execution_overrides": 8,
    "runtime": 8,
    "container": 2,
}
MAX_OPEN_FIELD_ENTRIES = 100_000

# Where the real, unmodified clients send what the SDK's schema classes are stricter about:
# clearml-agent 3.0.3 reports machine statistics as floats where the schema says integer.
_INTEGER_AS_NUMBER = {"workers.status_report": ("definitions", "machine_stats", "properties")}
# List fields that stay lists: a projection given as one string is refused (a bad-input guarantee).
_LIST_ONLY = frozenset({"only_fields"})
# Where the real server takes a list of ids as well as the one id the schema names (its list filters).
_STRING_OR_LIST = {"tasks.get_all": ("parent",)}
# Where the real server takes an object keyed by item key as well as the list of items the schema names.
_OBJECT_OR_LIST = {"models.create": "metadata", "models.edit": "metadata", "models.update": "metadata"}


class RequestValidator:
    """Validates request bodies of every endpoint the SDK's schema knows; bounds the shape of all bodies."""

    def __init__(self) -> None:
        self._validators = {
            endpoint: jsonschema.Draft7Validator(_relaxed(endpoint, kinds["request"]))
            for endpoint, kinds in schema_classes().items()
            if "request" in kinds
        }

    def knows(self, endpoint: str) -> bool:
        return self._validator(endpoint) is not None

    def _validator(self, endpoint: str) -> jsonschema.Draft7Validator | None:
        """The endpoint's request validator; ``x.get_all_ex`` takes the schema of ``x.get_all``."""
        found = self._validators.get(endpoint)
        if found is None and endpoint.endswith("_ex"):
            found = self._validators.get(endpoint.removesuffix("_ex"))
        return found

    def property_types(self, endpoint: str) -> dict[str, set[str]]:
        """The JSON types each top-level request field may have (to read query-string values)."""
        validator = self._validator(endpoint)
        if validator is None:
            return {}
        return {name: _types(spec) for name, spec in validator.schema.get("properties", {}).items()}

    def validate(self, endpoint: str, body: dict[str, Any]) -> dict[str, Any]:
        """The body with nulls dropped (a null reads as 'absent', as the SDK means it); 400 when invalid."""
        check_shape(body)
        for field, depth in OPEN_FIELD_DEPTH.items():
            if field in body:
                check_shape(body[field], field, depth)
        cleaned: dict[str, Any] = strip_nulls(body)
        if "scroll_id" in body and body["scroll_id"] is None:
            cleaned["scroll_id"] = ""  # a null scroll id asks for a new scroll (the key itself matters)
        validator = self._validator(endpoint)
        if validator is not None:
            cleaned = _lists_from_strings(validator.schema, cleaned)
            schema_body = {k: v for k, v in cleaned.items() if k not in REQUEST_EXTRAS}
            error = jsonschema.exceptions.best_match(validator.iter_errors(schema_body))
            if error is not None:
                raise ApiError(status=400, subcode=12, message=describe(error))
        return cleaned


def _lists_from_strings(schema: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    """A single string where the schema says list of strings becomes a one-item list (the real server
    accepts both, and clients send ``id="..."`` or ``project="..."`` to get_all)."""
    properties = schema.get("properties", {})
    for name, value in body.items():
        if not isinstance(value, str) or name in _LIST_ONLY:
            continue
        spec = properties.get(name) or {}
        kinds = _types(spec)
        item_kinds = _types(spec.get("items") or {})
        if "array" in kinds and "string" not in kinds and item_kinds <= {"string"}:
            body[name] = [value]
    return body


def check_shape(value: Any, field: str = "", max_depth: int = MAX_DEPTH) -> None:
    """400 when ``value`` nests deeper than ``max_depth``, is too large, or holds an integer beyond int64."""
    for nodes, (path, item, depth) in enumerate(_walk(value), start=1):
        if depth > max_depth:
            raise ApiError(
                status=400,
                subcode=12,
                message=f"Validation error: field '{_join(field, path)}' nests deeper than {max_depth}",
            )
        if nodes > MAX_NODES:
            raise ApiError(
                status=400,
                subcode=12,
                message=f"Validation error: field '{field or '<body>'}' has too many values",
            )
        if isinstance(item, int) and not isinstance(item, bool) and abs(item) > MAX_INT:
            raise ApiError(
                status=400,
                subcode=12,
                message=f"Validation error: field '{_join(field, path)}' is beyond int64",
            )
        if field and isinstance(item, dict | list) and len(item) > MAX_OPEN_FIELD_ENTRIES:
            raise ApiError(
                status=400, subcode=12, message=f"Validation error: field '{_join(field, path)}' is too long"
            )


def _walk(value: Any) -> Iterator[tuple[tuple[Any, ...], Any, int]]:
    """(path, value, depth) of every value, iteratively: a deep body cannot exhaust the stack."""
    stack: list[tuple[tuple[Any, ...], Any, int]] = [((), value, 0)]
    while stack:
        path, item, depth = stack.pop()
        yield path, item, depth
        if depth > MAX_DEPTH:
            continue
        if isinstance(item, dict):
            stack.extend(((*path, k), v, depth + 1) for k, v in item.items())
        elif isinstance(item, list):
            stack.extend(((*path, i), v, depth + 1) for i, v in enumerate(item))


def _join(field: str, path: tuple[Any, ...]) -> str:
    parts = [field, *map(str, path[:6])] if field else [*map(str, path[:6])]
    return ".".join(p for p in parts if p) or "<body>"


def describe(error: jsonschema.ValidationError) -> str:
    """'Validation error: field 'x.y' must be ...', short enough to read (values are not echoed in full)."""
    path = ".".join(map(str, error.absolute_path))
    if error.validator == "required":
        missing = str(error.message).split("'")[1] if "'" in error.message else "?"
        return f"Validation error: field '{_join(path, (missing,))}' is required"
    if error.validator == "dependencies":
        return f"Validation error: {error.message[:200]}"
    field = path or "<body>"
    if error.validator == "type":
        expected = error.validator_value
        expected = " or ".join(expected) if isinstance(expected, list) else expected
        return f"Validation error: field '{field}' must be {expected}, got {_json_type(error.instance)}"
    if error.validator == "enum":
        allowed = error.validator_value
        return f"Validation error: field '{field}' must be one of {allowed}, got {_short(error.instance)}"
    if error.validator in ("minimum", "maximum", "minLength", "maxLength", "minItems", "maxItems"):
        return f"Validation error: field '{field}' breaks {error.validator} {error.validator_value}"
    return f"Validation error: field '{field}': {error.message[:200]}"


def _json_type(value: Any) -> str:
    names = {bool: "boolean", int: "integer", float: "number", str: "string", list: "array", dict: "object"}
    return names.get(type(value), type(value).__name__)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _types(spec: dict[str, Any]) -> set[str]:
    kinds = spec.get("type")
    if kinds is None:
        return set()
    return set(kinds) if isinstance(kinds, list) else {kinds}


def _relaxed(endpoint: str, schema: dict[str, Any]) -> dict[str, Any]:
    either = _OBJECT_OR_LIST.get(endpoint)
    if either is not None and either in schema.get("properties", {}):
        schema = copy.deepcopy(schema)
        listed = schema["properties"][either]
        keyed = {"type": "object", "additionalProperties": listed["items"]}
        schema["properties"][either] = {
            "anyOf": [listed, keyed],
            "description": listed.get("description", ""),
        }
    for name in _STRING_OR_LIST.get(endpoint, ()):
        schema = copy.deepcopy(schema)
        single = schema["properties"][name]
        schema["properties"][name] = {"anyOf": [single, {"type": "array", "items": {"type": "string"}}]}
    where = _INTEGER_AS_NUMBER.get(endpoint)
    if where is None:
        return schema
    schema = copy.deepcopy(schema)
    node: Any = schema
    for key in where:
        node = node[key]
    for spec in node.values():
        _integer_to_number(spec)
    return schema


def _integer_to_number(spec: dict[str, Any]) -> None:
    kinds = spec.get("type")
    if kinds == "integer":
        spec["type"] = "number"
    elif isinstance(kinds, list):
        spec["type"] = ["number" if k == "integer" else k for k in kinds]
    if isinstance(spec.get("items"), dict):
        _integer_to_number(spec["items"])


@functools.cache
def default_validator() -> RequestValidator:
    return RequestValidator()
