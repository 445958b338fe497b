"""The ``*.get_all`` query language of the ClearML API, evaluated over cached documents.

Covers what the SDK sends: ids, ``name`` as a regular expression, list filters on any (dotted) field,
``tags``/``system_tags`` with the server's operators (``__$all``, ``__$any``, ``__$not``, ``-tag``),
``_any_``/``_all_`` text search, ``order_by``, ``page``/``page_size`` and ``only_fields`` projections.
"""

from __future__ import annotations

import datetime as dt
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any

import re2

from clearml_local.errors import InvalidScrollId, bad_request, wrong_type
from clearml_local.storage import Document

MAX_PATTERN_CHARS = 4096
_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.case_sensitive = False
_RE2_OPTIONS.log_errors = False

# Keys that steer the query instead of naming a field.
CONTROL_KEYS = {
    "page",
    "page_size",
    "size",
    "start",
    "scroll_id",
    "refresh_scroll",
    "order_by",
    "only_fields",
    "projection",
    "max_task_entries",
    "search_text",
    "_any_",
    "_all_",
    "search_hidden",
    "include_subprojects",
    "allow_public",
    "_allow_extra_fields_",
    "batch_size",
    "meta_only",
    "shallow_search",
    "check_own_contents",
    "stats_for_state",
    "include_stats",
    "include_stats_filter",
    "stats_with_children",
    "children_type",
    "children_tags",
    "children_tags_filter",
    "active_users",
    "non_public",
    "filters",
    "_or_",
    "_and_",
    "return_full_data",
}
PATTERN_FIELDS = {"name", "comment", "basename"}
TAG_FIELDS = {"tags", "system_tags"}
_MISSING = object()
# Replaces the references of a document by the documents they name, as the fields asked for need.
Expand = Callable[[Document, list[str]], Document]


def get_path(doc: Document, path: str) -> Any:
    return getter(path)(doc)


def getter(path: str) -> Callable[[Document], Any]:
    """A function reading a (dotted) field, ``_MISSING`` when absent (built once per query)."""
    if "." not in path:
        return lambda doc: doc.get(path, _MISSING)
    parts = path.split(".")

    def read(doc: Document) -> Any:
        value: Any = doc
        for part in parts:
            if not isinstance(value, dict) or part not in value:
                return _MISSING
            value = value[part]
        return value

    return read


def _strings(value: Any) -> list[str]:
    """The strings of a stored list field; anything else (a record written before validation) is empty."""
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    return []


def match_tags(doc_tags: Iterable[str] | None, spec: list[str]) -> bool:
    """Server semantics: terms are OR-ed unless ``__$all``; ``-tag`` and ``__$not tag`` exclude."""
    present = set(_strings(doc_tags))
    operator, negate_next = "any", False
    any_terms: list[tuple[bool, str]] = []
    all_terms: list[tuple[bool, str]] = []
    for item in spec:
        if item in ("__$all", "__$and"):
            operator = "all"
            continue
        if item in ("__$any", "__$or"):
            operator = "any"
            continue
        if item == "__$not":
            negate_next = True
            continue
        if item == "__$nop":
            continue
        negated, negate_next = negate_next, False
        if item.startswith("-"):
            negated, item = True, item[1:]
        (all_terms if operator == "all" else any_terms).append((negated, item))
    include_any = [tag for negated, tag in any_terms if not negated]
    if include_any and not present.intersection(include_any):
        return False
    if any(tag in present for negated, tag in any_terms if negated):
        return False
    include_all = [tag for negated, tag in all_terms if not negated]
    if not all(tag in present for tag in include_all):
        return False
    exclude_all = [tag for negated, tag in all_terms if negated]
    return not (exclude_all and all(tag in present for tag in exclude_all))


def _compile(pattern: str, field: str) -> Any:
    """A case-insensitive RE2 pattern: matching takes time linear in the text, whatever the pattern.

    RE2 takes the syntax clients send (``^name$``, ``re.escape``'d names, classes, groups, alternation);
    what it cannot run in linear time (backreferences, lookarounds) is a 400."""
    if len(pattern) > MAX_PATTERN_CHARS:
        raise bad_request(f"Invalid regular expression in field '{field}': longer than {MAX_PATTERN_CHARS}")
    try:
        return re2.compile(pattern, _RE2_OPTIONS)
    except re2.error as exc:
        reason = exc.args[0].decode(errors="replace") if exc.args and isinstance(exc.args[0], bytes) else exc
        raise bad_request(
            f"Invalid regular expression in field '{field}' (it must run in linear time): {reason}"
        ) from None


def pattern_search(pattern: Any, field: str) -> Callable[[str], bool]:
    """Whether a text holds ``pattern`` (case-insensitive); 400 for a non-string or a pattern RE2 cannot
    run."""
    if not isinstance(pattern, str):
        raise wrong_type(field, "a regular expression string", pattern)
    regex = _compile(pattern, field)
    return lambda text: regex.search(text) is not None


_REGEX_SYNTAX = set(".^$*+?{}[]|()\\")


def literal_of(pattern: str) -> tuple[str, bool] | None:
    """(text, anchored) when ``pattern`` is a plain name — ``^name$`` as the SDK sends it, or
    ``re.escape(name)`` as clearml-agent does — else None. Plain names are compared, not searched."""
    anchored = (
        len(pattern) >= 2
        and pattern.startswith("^")
        and pattern.endswith("$")
        and not pattern.endswith("\\$")
    )
    body = pattern[1:-1] if anchored else pattern
    text, escaped = [], False
    for char in body:
        if escaped:
            if char.isalnum():
                return None  # \d, \w, \b ...: a class, not a character
            text.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char in _REGEX_SYNTAX:
            return None
        else:
            text.append(char)
    return None if escaped else ("".join(text), anchored)


def _pattern_predicate(field: str, pattern: str) -> Callable[[Document], bool]:
    regex = _compile(pattern, field)
    literal = literal_of(pattern)
    if literal is not None:
        wanted, anchored = literal[0].lower(), literal[1]
        if anchored:
            return lambda doc: isinstance(doc.get(field), str) and doc[field].lower() == wanted
        return lambda doc: isinstance(doc.get(field), str) and wanted in doc[field].lower()
    return lambda doc: isinstance(doc.get(field), str) and regex.search(doc[field]) is not None


def _field_predicate(field: str, value: Any) -> Callable[[Document], bool]:
    if field in TAG_FIELDS or field == "id":
        spec = [value] if isinstance(value, str) else value
        if not isinstance(spec, list) or not all(isinstance(v, str) for v in spec):
            raise wrong_type(field, "a string or a list of strings", value)
    if field in TAG_FIELDS:
        return lambda doc: match_tags(doc.get(field), spec)
    if field in PATTERN_FIELDS and isinstance(value, str):
        return _pattern_predicate(field, value)
    if _is_range_field(field) and (
        _is_condition(value)
        or (isinstance(value, list) and (len(value) == 2 or any(map(_is_condition, value))))
    ):
        return _range_predicate(field, value)
    if field == "id":
        ids = set(spec)
        return lambda doc: doc.get("id") in ids
    wanted = value if isinstance(value, list) else [value]
    # "__$not" and "-x" also work on plain list fields (e.g. status: ["-completed"]).
    if wanted and all(isinstance(w, str) for w in wanted) and any(w.startswith(("-", "__$")) for w in wanted):
        read = getter(field)
        return lambda doc: _match_scalar_list(read(doc), wanted)
    read = getter(field)
    hashable = {w for w in wanted if isinstance(w, str | int | float | bool)}
    if len(hashable) == len(wanted):
        wanted = hashable  # set membership for the common case of ids, names and statuses

    def predicate(doc: Document) -> bool:
        actual = read(doc)
        if actual is _MISSING:
            return None in wanted
        if isinstance(actual, list):
            return any(_member(item, wanted) for item in actual)
        return _member(actual, wanted)

    return predicate


def _member(value: Any, wanted: Any) -> bool:
    try:
        return value in wanted
    except TypeError:  # an unhashable stored value against a set of wanted scalars
        return False


def _match_scalar_list(actual: Any, spec: list[str]) -> bool:
    values = (
        actual if isinstance(actual, list) else ([] if actual is _MISSING or actual is None else [actual])
    )
    return match_tags([str(v) for v in values], spec)


def _multi_field_predicate(spec: Any, mode: str) -> Callable[[Document], bool]:
    """``_any_``/``_or_`` and ``_all_``/``_and_``: one ``pattern`` or one ``datetime`` condition over several
    fields, any or all of which must meet it."""
    if not isinstance(spec, dict) or not isinstance(spec.get("fields", []), list):
        raise wrong_type(mode, "an object with 'fields' and 'pattern' or 'datetime'", spec)
    pattern, when = spec.get("pattern"), spec.get("datetime")
    if pattern is not None and when is not None:
        raise bad_request(f"Validation error: field '{mode}' takes 'pattern' or 'datetime', not both", 12)
    fields = [f for f in spec.get("fields") or [] if isinstance(f, str)]
    combine = all if mode in ("_all_", "_and_") else any
    if when is not None:
        checks = [_range_predicate(f, when) for f in fields if _is_range_field(f)]
        if not checks:
            return lambda doc: True
        return lambda doc: combine(check(doc) for check in checks)
    if pattern is None:
        return lambda doc: True
    regex = _compile(str(pattern), f"{mode}.pattern")

    def matches(doc: Document, field: str) -> bool:
        value = get_path(doc, field)
        if isinstance(value, list):
            return any(regex.search(str(v)) for v in value)
        return value is not _MISSING and value is not None and regex.search(str(value)) is not None

    return lambda doc: combine(matches(doc, f) for f in fields)


# --- ranges and date-time conditions -------------------------------------------------------------------

# Fields compared by range (``[min, max]``) or by condition (``">=2024-01-01T00:00:00"``).
RANGE_FIELDS = frozenset(
    {"created", "started", "completed", "active_duration", "last_iteration", "last_update", "last_change"}
    | {"status_changed", "last_activity_time", "register_time"}
)
RANGE_PREFIXES = ("last_metrics.",)
_CONDITION = re.compile(r"^(?P<operator>>=|>|<=|<)?(?P<value>.*)$", re.DOTALL)
_OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    ">=": lambda a, b: a >= b,
    ">": lambda a, b: a > b,
    "<=": lambda a, b: a <= b,
    "<": lambda a, b: a < b,
    "": lambda a, b: a == b,
}


def _is_range_field(field: str) -> bool:
    return field in RANGE_FIELDS or field.startswith(RANGE_PREFIXES)


def _is_condition(value: Any) -> bool:
    return isinstance(value, str) and value.startswith((">", "<"))


def _as_time(value: str) -> dt.datetime | None:
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    # times are kept to the millisecond (as MongoDB keeps them): bounds are compared at that precision
    parsed = parsed.replace(microsecond=parsed.microsecond // 1000 * 1000)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _compare(stored: Any, bound: Any, operator: Callable[[Any, Any], bool]) -> bool:
    """Compare a stored value with a bound as numbers, else as times, else not at all."""
    if stored is _MISSING or stored is None or bound is None:
        return False
    if isinstance(stored, int | float) and not isinstance(stored, bool):
        try:
            return operator(stored, float(bound))
        except (TypeError, ValueError):
            return False
    if isinstance(stored, str) and isinstance(bound, str):
        left, right = _as_time(stored), _as_time(bound)
        return left is not None and right is not None and operator(left, right)
    return False


def _check_bound(field: str, bound: Any) -> None:
    """A bound is a number, a time or (for a missing end) null; anything else names the field in a 400."""
    if bound is None or (isinstance(bound, int | float) and not isinstance(bound, bool)):
        return
    if isinstance(bound, str):
        try:
            float(bound)
            return
        except ValueError:
            if _as_time(bound) is not None:
                return
    raise bad_request(
        f"Validation error: field '{field}' takes numbers or ISO times as bounds, got {bound!r}", 12
    )


def _range_predicate(field: str, data: Any) -> Callable[[Document], bool]:
    """``[min, max]`` (both included; a missing min also admits empty values) or conditions such as
    ``[">=a", "<b"]``, all of which must hold."""
    items = data if isinstance(data, list) else [data]
    read = getter(field)
    if len(items) == 2 and not any(_is_condition(item) for item in items):
        low, high = items
        if low is None and high is None:
            raise bad_request(f"Validation error: field '{field}' needs a min or a max value", 12)
        for bound in (low, high):
            _check_bound(field, bound)

        def in_range(doc: Document) -> bool:
            stored = read(doc)
            if low is None and (stored is _MISSING or stored is None):
                return True
            return (low is None or _compare(stored, low, _OPERATORS[">="])) and (
                high is None or _compare(stored, high, _OPERATORS["<="])
            )

        return in_range
    conditions = []
    for item in items:
        if not isinstance(item, str):
            raise wrong_type(field, "a condition string such as '>=2024-01-01T00:00:00' or [min, max]", item)
        found = _CONDITION.match(item)
        assert found is not None  # the pattern matches every string
        _check_bound(field, found["value"])
        conditions.append((_OPERATORS[found["operator"] or ""], found["value"]))
    return lambda doc: all(_compare(read(doc), bound, operator) for operator, bound in conditions)


# --- list filters ----------------------------------------------------------------------------------------


def _list_filter_predicate(field: str, spec: Any) -> Callable[[Document], bool]:
    """``filters: {field: {any: {include, exclude}, all: {include, exclude}, op}}``: ``any`` ORs its parts,
    ``all`` ANDs them; ``None`` stands for the empty list; ``op`` joins ``any`` and ``all`` (default and)."""
    if not isinstance(spec, dict) or set(spec) - {"any", "all", "op"}:
        raise bad_request(f"Validation error: invalid filter for field '{field}': expected any, all, op", 12)
    joiner = spec.get("op", "and")
    if joiner not in ("and", "or"):
        raise bad_request(f"Validation error: filter op for field '{field}' must be 'and' or 'or'", 12)
    read = getter(field)
    parts: list[Callable[[set[Any]], bool]] = []
    for condition in ("any", "all"):
        terms = spec.get(condition)
        if terms is None:
            continue
        if not isinstance(terms, dict) or set(terms) - {"include", "exclude"}:
            raise bad_request(f"Validation error: filter '{field}.{condition}' takes include and exclude", 12)
        checks = [
            _list_check(condition, include, values)
            for include, values in ((True, terms.get("include")), (False, terms.get("exclude")))
            if values
        ]
        if checks:
            joined = any if condition == "any" else all
            parts.append(lambda present, checks=checks, joined=joined: joined(c(present) for c in checks))
    if not parts:
        return lambda doc: True
    combine = all if joiner == "and" else any

    def predicate(doc: Document) -> bool:
        value = read(doc)
        present = set(_strings(value)) if isinstance(value, list) else ({value} if value else set())
        return combine(part(present) for part in parts)

    return predicate


def _list_check(condition: str, include: bool, values: list[Any]) -> Callable[[set[Any]], bool]:
    """One include or exclude list of a filter, as the real server's MongoDB operators read it."""
    if not isinstance(values, list) or not all(v is None or isinstance(v, str) for v in values):
        raise wrong_type(f"filters.{condition}", "a list of strings (null for 'empty')", values)
    wanted = {v for v in values if v is not None}
    empty = None in values
    checks: list[Callable[[set[Any]], bool]] = []
    if empty:
        checks.append((lambda p: not p) if include else (lambda p: bool(p)))
    if wanted:
        if condition == "any":
            checks.append((lambda p: bool(p & wanted)) if include else (lambda p: not wanted <= p))
        else:
            checks.append((lambda p: wanted <= p) if include else (lambda p: not p & wanted))
    joined = any if condition == "any" else all
    return lambda present: joined(check(present) for check in checks)


def build_filter(body: dict[str, Any]) -> Callable[[Document], bool]:
    """One predicate for all field filters in a get_all body."""
    skipped = CONTROL_KEYS
    predicates: list[Callable[[Document], bool]] = []
    for key, value in body.items():
        if key in skipped or value is None:
            continue
        if isinstance(value, list) and not value:
            continue
        predicates.append(_field_predicate(key, value))
    for mode in ("_any_", "_all_", "_or_", "_and_"):
        if body.get(mode):
            predicates.append(_multi_field_predicate(body[mode], mode))
    filters = body.get("filters") or {}
    if not isinstance(filters, dict):
        raise wrong_type("filters", "an object of list filters by field", filters)
    predicates.extend(_list_filter_predicate(field, spec) for field, spec in filters.items())
    if body.get("search_text"):
        regex = _compile(re.escape(str(body["search_text"])), "search_text")
        predicates.append(
            lambda doc: any(regex.search(str(doc.get(f) or "")) for f in ("name", "comment", "id"))
        )
    if len(predicates) == 1:
        return predicates[0]

    return lambda doc: all(predicate(doc) for predicate in predicates)


# Fields whose string values order as numbers where they are numbers (the real server's numeric collation).
NUMERIC_ORDER_PREFIXES = ("execution.parameters.", "hyperparams.", "last_metrics.", "metadata.")
# The most documents one get_all answers (the real server's max_page_size): clients page beyond it.
MAX_PAGE_SIZE = 500
_DIGITS = re.compile(r"(\d+)")


def _is_empty(value: Any) -> bool:
    return value is _MISSING or value is None or (isinstance(value, str | list | dict) and not value)


def natural_key(text: str) -> tuple[Any, ...]:
    """'run 10' after 'run 9': digit runs compare as numbers."""
    return tuple(
        (0, int(part), "") if part.isdigit() else (1, 0, part) for part in _DIGITS.split(text) if part
    )


def _sort_key(value: Any, numeric: bool) -> tuple[Any, ...]:
    """MongoDB's order of types: nothing, numbers, strings, objects, lists, booleans."""
    if value is _MISSING or value is None:
        return (0, 0)
    if isinstance(value, bool):
        return (5, value)
    if isinstance(value, int | float):
        return (1, value)
    if isinstance(value, str):
        return (2, natural_key(value)) if numeric else (2, value)
    if isinstance(value, dict):  # field by field, as MongoDB compares embedded documents
        return (3, tuple((str(k), _sort_key(v, numeric)) for k, v in value.items()))
    if isinstance(value, list):
        return (4, tuple(_sort_key(v, numeric) for v in value))
    return (2, str(value))


def order(docs: list[Document], order_by: Any) -> list[Document]:
    """Sort as the real server does: by each key in turn, then by id; empty values of the first key
    last whichever the direction."""
    if not order_by:
        return docs
    keys = [order_by] if isinstance(order_by, str) else order_by
    if not isinstance(keys, list):
        raise wrong_type("order_by", "a list of field names", order_by)
    for key in keys:
        if not isinstance(key, str) or not key.strip("-+"):
            raise bad_request(f"Invalid order_by entry: {key!r}")
    if not {"id", "-id"} & set(keys):
        keys = [*keys, "id"]
    result = list(docs)
    for key in reversed(keys):
        field = key.lstrip("-+")
        read, numeric = getter(field), field.startswith(NUMERIC_ORDER_PREFIXES)
        result.sort(key=lambda doc, read=read: _sort_key(read(doc), numeric), reverse=key.startswith("-"))
    first = getter(keys[0].lstrip("-+"))
    return [d for d in result if not _is_empty(first(d))] + [d for d in result if _is_empty(first(d))]


def _int_field(body: dict[str, Any], name: str, minimum: int) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise bad_request(f"Validation error: field '{name}' must be an integer >= {minimum}", subcode=12)
    return value


def paginate(docs: list[Document], body: dict[str, Any]) -> list[Document]:
    """``page``/``page_size`` (at most ``MAX_PAGE_SIZE``), or ``size`` from ``start``."""
    page, page_size = _int_field(body, "page", 0), _int_field(body, "page_size", 1)
    start, size = _int_field(body, "start", 0), _int_field(body, "size", 1)
    if start is not None or size is not None:
        begin = start or 0
        return docs[begin : begin + min(size or MAX_PAGE_SIZE, MAX_PAGE_SIZE)]
    if page is not None and page_size is None:
        raise bad_request("Validation error: 'page_size' is required when 'page' is given", subcode=12)
    page_size = min(page_size or MAX_PAGE_SIZE, MAX_PAGE_SIZE)
    return docs[(page or 0) * page_size : ((page or 0) + 1) * page_size]


class Scrolls:
    """Where each scroll is: opaque ids mapped to a value (a position, or a richer state), forgotten after
    ``ttl_s`` of disuse. ``position`` refuses an id that was never given or is forgotten (get_all calls are
    never silently restarted); ``get`` lets a caller decide."""

    def __init__(
        self, ttl_s: float = 600.0, limit: int = 10_000, clock: Callable[[], float] = time.monotonic
    ):
        self._ttl_s, self._limit, self._clock = ttl_s, limit, clock
        self._values: dict[str, tuple[Any, float]] = {}
        self._lock = threading.Lock()

    def position(self, scroll_id: Any) -> tuple[str, int]:
        """(id, position): a new scroll for an empty id, else the known one's; 400 when unknown."""
        if scroll_id in (None, ""):
            return uuid.uuid4().hex, 0
        found = self.get(scroll_id)
        if found is None:
            raise InvalidScrollId(scroll_id)
        return scroll_id, int(found)

    def advance(self, scroll_id: str, position: int) -> None:
        self.put(scroll_id, position)

    def get(self, scroll_id: Any) -> Any | None:
        """The value kept for ``scroll_id``; None when it is unknown or forgotten."""
        with self._lock:
            self._expire()
            found = self._values.get(scroll_id) if isinstance(scroll_id, str) else None
        return None if found is None else found[0]

    def put(self, scroll_id: str, value: Any) -> None:
        with self._lock:
            self._expire()
            if len(self._values) >= self._limit and scroll_id not in self._values:
                oldest = min(self._values, key=lambda k: self._values[k][1])
                del self._values[oldest]
            self._values[scroll_id] = (value, self._clock())

    def _expire(self) -> None:
        now = self._clock()
        for key in [k for k, (_, used) in self._values.items() if now - used > self._ttl_s]:
            del self._values[key]


SCROLLS = Scrolls()


def project(doc: Document, only_fields: list[str] | None) -> Document:
    """A MongoDB-like projection: dotted paths keep nested keys (``a.*`` is all of ``a``, ``*`` all of the
    document), ``-path`` leaves a path out; ``id`` is always returned."""
    if not only_fields:
        return doc  # cached documents are replaced, never changed in place: no copy needed to reply
    includes = [f.removesuffix(".*") for f in only_fields if isinstance(f, str) and not f.startswith("-")]
    excludes = [f[1:].removesuffix(".*") for f in only_fields if isinstance(f, str) and f.startswith("-")]
    if not includes or "*" in includes:
        out = dict(doc)
    else:
        out = {"id": doc.get("id")}
        for path in includes:
            _copy_path(doc, out, path.split("."))
    for path in excludes:
        _drop_path(out, path.split("."))
    return out


def _copy_path(source: Any, target: Document, parts: list[str]) -> None:
    for i, part in enumerate(parts):
        if not isinstance(source, dict) or part not in source:
            return
        source = source[part]
        if i == len(parts) - 1:
            target[part] = source
        elif not isinstance(source, dict):
            return
        else:
            target = target.setdefault(part, {})


def _drop_path(doc: Document, parts: list[str]) -> None:
    """Remove a path from a projected document, copying the dicts along it (stored ones stay as they are)."""
    target = doc
    for part in parts[:-1]:
        if not isinstance(target.get(part), dict):
            return
        target[part] = dict(target[part])
        target = target[part]
    target.pop(parts[-1], None)


def select(
    docs: Iterable[Document],
    body: dict[str, Any],
    *,
    extra: Callable[[Document], bool] | None = None,
    default_order: str | None = None,
) -> list[Document]:
    """The documents a get_all request filters for, in its order (not paged, not projected)."""
    predicate = build_filter(body)
    selected = [doc for doc in docs if predicate(doc) and (extra is None or extra(doc))]
    return order(selected, body.get("order_by") or default_order)


def projected(docs: list[Document], body: dict[str, Any], expand: Expand | None = None) -> list[Document]:
    """The requested fields of each document (after ``expand`` replaced references by what they name)."""
    only_fields = body.get("only_fields", body.get("projection"))
    if only_fields is not None and (
        not isinstance(only_fields, list) or not all(isinstance(f, str) for f in only_fields)
    ):
        raise wrong_type("only_fields", "a list of strings", only_fields)
    if expand is not None:
        docs = [expand(doc, only_fields or []) for doc in docs]
    return [project(doc, only_fields) for doc in docs]


def run_query(
    docs: Iterable[Document],
    body: dict[str, Any],
    *,
    extra: Callable[[Document], bool] | None = None,
    default_order: str | None = None,
    expand: Expand | None = None,
) -> list[Document]:
    """Filter, order, page and project documents as a get_all request asks."""
    selected = select(docs, body, extra=extra, default_order=default_order)
    return projected(paginate(selected, body), body, expand)


def run_scrolled_query(
    docs: Iterable[Document],
    body: dict[str, Any],
    *,
    extra: Callable[[Document], bool] | None = None,
    default_order: str | None = None,
    expand: Expand | None = None,
    scrolls: Scrolls = SCROLLS,
) -> tuple[list[Document], str | None]:
    """``run_query``, continued where the request's ``scroll_id`` left off (``size`` at a time;
    ``refresh_scroll`` answers again from the start up to where it is). (page, scroll id or None)."""
    if "scroll_id" not in body:
        return run_query(docs, body, extra=extra, default_order=default_order, expand=expand), None
    size = _int_field(body, "size", 1)
    if size is None:
        raise bad_request("Validation error: field 'size' (an integer >= 1) is required with scroll_id", 12)
    scroll_id, position = scrolls.position(body.get("scroll_id"))
    start = 0 if body.get("refresh_scroll") else position
    size = max(position, size) if body.get("refresh_scroll") else size
    selected = select(docs, body, extra=extra, default_order=default_order)
    page = selected[start : start + min(size, MAX_PAGE_SIZE)]
    scrolls.advance(scroll_id, start + len(page))
    return projected(page, body, expand), scroll_id
