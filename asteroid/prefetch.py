"""Iterate over items while the next one is produced on a thread.

Worth it for producers that let go of the GIL while they work (Arrow's CSV parse, the ADBC driver's fetch
from SQLite): the consumer's work on one item and the producing of the next then share two cores.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

Item = TypeVar("Item")
_DONE = object()


def prefetched(items: Iterable[Item], thread_name: str) -> Iterator[Item]:
    """The items in order, at most one produced ahead of the one the caller holds; what producing raises is
    raised here. When the caller stops early the item in production is finished and `items` is closed."""
    iterator = iter(items)
    try:
        with ThreadPoolExecutor(1, thread_name_prefix=thread_name) as producer:
            ahead = producer.submit(next, iterator, _DONE)
            while (item := ahead.result()) is not _DONE:
                ahead = producer.submit(next, iterator, _DONE)
                yield item
    finally:
        close = getattr(iterator, "close", None)
        if close is not None:
            close()
