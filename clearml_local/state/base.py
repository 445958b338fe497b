"""What every collection of the state layer shares: loading by id (one error per kind), saving with the
change stamp, querying, and archiving."""

from __future__ import annotations

import copy
import datetime as dt
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from clearml_local.errors import InvalidField, InvalidId
from clearml_local.query import Expand, run_query, run_scrolled_query
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

    def query(
        self,
        body: dict[str, Any],
        default_order: str,
        respect_hidden: bool = True,
        among: list[Document] | None = None,
    ) -> list[Document]:
        """A get_all query over the collection (or the documents ``among`` it); hidden documents only with
        ``search_hidden`` or when asked for by id."""
        extra = None if not respect_hidden or body.get("search_hidden") or body.get("id") else _not_hidden
        if among is None:
            among = self._by_ids(body.get("id")) if body.get("id") else self.all()
        return run_query(among, body, extra=extra, default_order=default_order)

    def get_all(
        self,
        body: dict[str, Any],
        key: str,
        default_order: str,
        respect_hidden: bool = True,
        among: list[Document] | None = None,
        expand: Expand | None = None,
    ) -> dict[str, Any]:
        """The reply of a ``*.get_all`` call: the page of documents under ``key``, with the ``scroll_id``
        to continue from when the request scrolls."""
        extra = None if not respect_hidden or body.get("search_hidden") or body.get("id") else _not_hidden
        if among is None:
            among = self._by_ids(body.get("id")) if body.get("id") else self.all()
        docs, scroll_id = run_scrolled_query(
            among, body, extra=extra, default_order=default_order, expand=expand
        )
        return {key: docs, "scroll_id": scroll_id} if scroll_id else {key: docs}

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

    def set_archived(self, doc_id: Any, archived: bool) -> dict[str, Any]:
        """The one archive: the ``archived`` system tag, added or removed."""

        def apply(doc: Document) -> dict[str, Any]:
            tags = [t for t in doc.get("system_tags") or [] if t != ARCHIVED]
            doc["system_tags"] = [*tags, ARCHIVED] if archived else tags
            return {"system_tags": doc["system_tags"]}

        return self.change(doc_id, apply)


def _not_hidden(doc: Document) -> bool:
    return not is_hidden(doc)
