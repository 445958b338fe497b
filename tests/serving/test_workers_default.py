"""The stack's default number of inference workers: one per CPU core the process may use, at most the cap."""

from __future__ import annotations

from pathlib import Path

import pytest

from serving_local import config
from serving_local.config import MAX_WORKERS, StackConfig, default_workers


def test_one_worker_per_usable_core(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SERVING_LOCAL_WORKERS", raising=False)
    monkeypatch.setattr(config.os, "sched_getaffinity", lambda pid: {0, 2, 5})
    assert default_workers() == 3
    assert StackConfig.from_env().workers == StackConfig(data_dir=Path("x")).workers == 3
    monkeypatch.setenv("SERVING_LOCAL_WORKERS", "1")
    assert StackConfig.from_env().workers == 1


def test_the_default_is_capped_and_falls_back_to_the_cpu_count(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(config.os, "sched_getaffinity", lambda pid: set(range(MAX_WORKERS + 8)))
    assert default_workers() == MAX_WORKERS

    def no_affinity(pid: int) -> set[int]:
        raise OSError("not supported")

    monkeypatch.setattr(config.os, "sched_getaffinity", no_affinity)
    monkeypatch.setattr(config.os, "cpu_count", lambda: 6)
    assert default_workers() == 6
    monkeypatch.setattr(config.os, "cpu_count", lambda: None)
    assert default_workers() == 1
