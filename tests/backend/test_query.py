"""The get_all query language on documents (no HTTP): plain-name patterns are compared instead of searched,
with the same result RE2 gives."""

from __future__ import annotations

import re

import pytest
import re2

from clearml_local.query import literal_of, run_query

NAMES = ["Asteroid Hazard", "asteroid hazard/.pipelines", "a.b", "axb", "my queue-1 (x)", "step #2", "", "ß"]


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("^Asteroid Hazard$", ("Asteroid Hazard", True)),
        (re.escape("my queue-1 (x)"), ("my queue-1 (x)", False)),
        ("^a\\.b$", ("a.b", True)),
        ("^a.b$", None),
        ("^pipe(| #\\d+)$", None),
        ("\\w+", None),
        ("^$", ("", True)),
    ],
)
def test_plain_names_are_recognised(pattern: str, expected: tuple[str, bool] | None) -> None:
    assert literal_of(pattern) == expected


@pytest.mark.parametrize(
    "pattern",
    [
        "^asteroid hazard$",
        "hazard",
        re.escape("my queue-1 (x)"),
        "^a\\.b$",
        "^a.b$",
        "^$",
        "^step #\\d$",
        "^SS$",
    ],
)
def test_name_filter_matches_what_re2_matches(pattern: str) -> None:
    docs = [{"id": str(i), "name": name} for i, name in enumerate(NAMES)]
    options = re2.Options()
    options.case_sensitive = False
    regex = re2.compile(pattern, options)
    expected = {doc["id"] for doc in docs if regex.search(doc["name"])}
    assert {doc["id"] for doc in run_query(docs, {"name": pattern})} == expected
