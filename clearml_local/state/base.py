"""What every collection of the state layer shares: loading by id (one error per kind), saving with the
change stamp, querying, and archiving."""

from __future__ import annotations

import copy
import datetime as dt
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

from clearml_local.errors import InvalidField, InvalidId
from clearml_local.query import Expand, get_path, run_scrolled_query
from clearml_local.storage import Document, Store

if TYPE_CHECKING:
    from clearml_local.state import State

ARCHIVED = "archived"
HIDDEN = "hidden"


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


def new_id() -> str:
    return uuid.uuid4().hex


def is_hidden(doc: Document) -> bool:
    return HIDDEN in (doc.get("system_tags") or [])


class Collection:
    """One stored collection; subclasses add the operations of their service."""

    collection = ""
    missing: type[InvalidId] = InvalidId
    # Fields holding the id of a document of another collection ("users": the caller), which the
    # ``get_all_ex`` form of the API returns as ``{"id": ...}`` with the fields asked of it.
    references: ClassVar[dict[str, str]] = {}

    def __init__(self, state: State) -> None:
        self.state = state
        self.store: Store = state.store

    # --- reading ----------------------------------------------------------------------------------------

    def view(self, doc_id: Any, field: str | None = None) -> Document:
        """The stored document, to read and reply with, not to change (no copy: polling stays cheap)."""
        if not isinstance(doc_id, str) or not doc_id:
            name = field or self.missing.kind
            raise InvalidField(f"Validation error: field '{name}' must be an id string", subcode=11)
        doc = self.store.peek(self.collection, doc_id)
        if doc is None:
            raise self.missing(doc_id)
        return doc

    def load(self, doc_id: Any, field: str | None = None) -> Document:
        """A copy of one document, to change and ``save`` (stored documents are never changed in place)."""
        return copy.deepcopy(self.view(doc_id, field))

    def exists(self, doc_id: str) -> bool:
        return self.store.peek(self.collection, doc_id) is not None

    def all(self) -> list[Document]:
        return self.store.all(self.collection)

    def get_all(
        self,
        body: dict[str, Any],
        key: str,
        default_order: str,
        respect_hidden: bool = True,
        among: list[Document] | None = None,
        expand: Expand | None = None,
    ) -> dict[str, Any]:
        """The reply of a ``*.get_all`` call over the collection (or the documents ``among`` it): the page
        of documents under ``key``, with the ``scroll_id`` to continue from when the request scrolls. Hidden
        documents only with ``search_hidden`` or when asked for by id."""
        extra = None if not respect_hidden or body.get("search_hidden") or body.get("id") else _not_hidden
        if among is None:
            among = self._by_ids(body.get("id")) if body.get("id") else self.all()
        only_fields = body.get("only_fields")
        if expand is not None and isinstance(only_fields, list):  # a joined reference keeps its id
            reached = [r for r in self.references if any(str(f).startswith(r + ".") for f in only_fields)]
            body = {**body, "only_fields": [*only_fields, *(f"{r}.id" for r in reached)]}
        docs, scroll_id = run_scrolled_query(
            among, body, extra=extra, default_order=default_order, expand=expand
        )
        return {key: docs, "scroll_id": scroll_id} if scroll_id else {key: docs}

    def joined(self, doc: Document, only_fields: list[str]) -> Document:
        """The document with each reference replaced by ``{"id": id}`` and the fields ``only_fields`` asks
        of it (``project.name``): what the real server's ``get_all_ex`` joins."""
        out = doc
        for path, collection in self.references.items():
            reference = get_path(doc, path)
            if not isinstance(reference, str):
                continue
            wanted = [
                f[len(path) + 1 :] for f in only_fields if f.startswith(path + ".") and f != path + ".id"
            ]
            named = self._referenced(collection, reference) if wanted else {}
            joined = {"id": reference, **{f: named[f] for f in wanted if f in named}}
            out = _with_path(out, path.split("."), joined)
        return out

    def _referenced(self, collection: str, doc_id: str) -> Document:
        if collection == "users":
            identity = self.state.identity
            return {"id": identity.user_id, "name": identity.user_name} if doc_id == identity.user_id else {}
        return self.store.peek(collection, doc_id) or {}

    def _by_ids(self, ids: Any) -> list[Document]:
        """The documents a query names by id, looked up rather than scanned for (status polls dominate)."""
        wanted = [ids] if isinstance(ids, str) else ids
        if not isinstance(wanted, list):
            return self.all()  # the query itself rejects the value
        found = (self.store.peek(self.collection, i) for i in dict.fromkeys(wanted) if isinstance(i, str))
        return [doc for doc in found if doc is not None]

    # --- writing ----------------------------------------------------------------------------------------

    def save(self, doc: Document) -> None:
        stamp = now_iso()
        doc["last_update"] = stamp
        doc["last_change"] = stamp
        doc["last_changed_by"] = self.state.identity.user_id
        self.store.put(self.collection, doc)

    def change(
        self, doc_id: Any, apply: Callable[[Document], dict[str, Any]], field: str | None = None
    ) -> dict[str, Any]:
        """Load, change and save one document atomically; ``apply`` returns the changed fields."""
        with self.store.transaction():
            doc = self.load(doc_id, field)
            fields = apply(doc)
            self.save(doc)
        return fields

    def update_tags(self, doc_ids: list[str], add: list[str], remove: list[str]) -> int:
        """Add and remove user tags on several documents at once (all must exist); how many changed."""
        with self.store.transaction():
            docs = [self.load(doc_id) for doc_id in doc_ids]
            updated = 0
            for doc in docs:
                tags = [t for t in doc.get("tags") or [] if t not in remove]
                tags += [t for t in dict.fromkeys(add) if t not in tags]
                if tags != (doc.get("tags") or []):
                    doc["tags"] = tags
                    self.save(doc)
                    updated += 1
        return updated

    def set_archived(self, doc_id: Any, archived: bool) -> dict[str, Any]:
        """The one archive: the ``archived`` system tag, added or removed."""

        def apply(doc: Document) -> dict[str, Any]:
            tags = [t for t in doc.get("system_tags") or [] if t != ARCHIVED]
            doc["system_tags"] = [*tags, ARCHIVED] if archived else tags
            return {"system_tags": doc["system_tags"]}

        return self.change(doc_id, apply)


def _with_path(doc: Document, parts: list[str], value: Any) -> Document:
    """A copy of ``doc`` with ``value`` at the path (the dicts along it copied, the stored one unchanged)."""
    head, rest = parts[0], parts[1:]
    if not rest:
        return {**doc, head: value}
    inner = doc.get(head)
    return {**doc, head: _with_path(inner if isinstance(inner, dict) else {}, rest, value)}


def _not_hidden(doc: Document) -> bool:
    return not is_hidden(doc)
