"""`prefetch.prefetched`: the items in order, the producer's error raised to the caller, the producer closed
when the caller stops early, and at most one item produced ahead."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from asteroid.prefetch import prefetched


def test_items_come_in_order_from_another_thread() -> None:
    threads: set[str] = set()

    def numbers() -> Iterator[int]:
        for number in range(5):
            threads.add(threading.current_thread().name)
            yield number

    assert list(prefetched(numbers(), "test-prefetch")) == [0, 1, 2, 3, 4]
    assert len(threads) == 1 and next(iter(threads)).startswith("test-prefetch")


def test_the_producers_error_is_raised_to_the_caller() -> None:
    def failing() -> Iterator[int]:
        yield 1
        raise OSError("disk gone")

    items = prefetched(failing(), "test-prefetch")
    assert next(items) == 1
    with pytest.raises(OSError, match="disk gone"):
        next(items)


def test_stopping_early_closes_the_producer_with_one_item_produced_ahead() -> None:
    produced: list[int] = []
    closed = threading.Event()

    def numbers() -> Iterator[int]:
        try:
            for number in range(100):
                produced.append(number)
                yield number
        finally:
            closed.set()

    items = prefetched(numbers(), "test-prefetch")
    assert next(items) == 0
    items.close()
    assert closed.is_set()
    assert produced == [0, 1]
