"""query_date validation (no database needed)."""

from __future__ import annotations

import pytest

from asteroid import database


@pytest.mark.parametrize("value", ["2016-09-08", "1995-01-01", "2000-02-29", " 2010-10-10 "])
def test_valid_dates(value: str) -> None:
    assert database.validate_query_date(value) == value.strip()


@pytest.mark.parametrize(
    "value", ["2016-9-8", "2016/09/08", "20160908", "2001-02-29", "2016-09-31", "", "x", None, 20160908]
)
def test_invalid_dates_name_the_parameter(value: object) -> None:
    with pytest.raises(ValueError, match="query_date"):
        database.validate_query_date(value)  # type: ignore[arg-type]
