"""Bad input: every problem is a ValueError (clearml-serving answers 422) naming the row and the field."""

from __future__ import annotations

import math
from typing import Any

import pytest

from asteroid import feature_rows, schema
from tests.serving.conftest import serve


def with_changes(row: dict[str, Any], **changes: Any) -> dict[str, Any]:
    changed = dict(row)
    for key, value in changes.items():
        name = key.replace("__", " ")
        if value is KeyError:
            changed.pop(name)
        else:
            changed[name] = value
    return changed


def cases(row: dict[str, Any]) -> list[tuple[str, Any, str]]:
    """(case, body, text the error must contain)."""
    big = [row] * (feature_rows.MAX_BATCH_ROWS + 1)
    return [
        ("missing field", with_changes(row, Eccentricity=KeyError), "row 0: field 'Eccentricity' is missing"),
        ("unknown field", {**row, "Eccentricty": 0.3}, "row 0: unknown field 'Eccentricty'"),
        (
            "string",
            with_changes(row, Inclination="12.5"),
            "row 0: field 'Inclination' must be a number, got string",
        ),
        ("null", with_changes(row, Inclination=None), "field 'Inclination' must be a number, got null"),
        ("boolean", with_changes(row, Inclination=True), "field 'Inclination' must be a number, got boolean"),
        (
            "nan",
            with_changes(row, Inclination=math.nan),
            "field 'Inclination' must be a finite number, got nan",
        ),
        (
            "inf",
            with_changes(row, Inclination=math.inf),
            "field 'Inclination' must be a finite number, got inf",
        ),
        ("huge integer", with_changes(row, Inclination=10**400), "field 'Inclination' is too large a number"),
        (
            "negative diameter",
            with_changes(row, **{"Est Dia in KM(min)": -1.0}),
            "field 'Est Dia in KM(min)' must be in [0, 1000], got -1",
        ),
        (
            "hyperbolic orbit",
            with_changes(row, Eccentricity=1.2),
            "field 'Eccentricity' must be in [0, 1), got 1.2",
        ),
        (
            "negative velocity",
            with_changes(row, **{"Relative Velocity km per sec": -3.0}),
            "must be in [0, 100]",
        ),
        (
            "fractional code",
            with_changes(row, **{"Orbit Uncertainity": 2.5}),
            "must be a whole number, got 2.5",
        ),
        (
            "min diameter above max",
            with_changes(row, **{"Est Dia in KM(min)": 2.0, "Est Dia in KM(max)": 1.0}),
            "field 'Est Dia in KM(min)' must not be larger than 'Est Dia in KM(max)', got 2 > 1",
        ),
        ("field twice", {**row, "eccentricity": 0.2}, "field 'eccentricity' is given twice"),
        (
            "computed field that disagrees",
            {**row, "Minimum Orbit Intersection": 0.3, schema.CNEOS_CELL: 1.0},
            f"row 0: field '{schema.CNEOS_CELL}' is 1, but the row's other fields give 0",
        ),
        ("empty body", None, "the request body is empty"),
        ("empty bytes", b"  ", "the request body is empty"),
        ("not JSON", b"{not json", "the request body is not valid JSON"),
        ("not UTF-8", b'{"a": "\xff"}', "the request body is not UTF-8"),
        ("JSON NaN constant", b'{"Eccentricity": NaN}', "holds NaN"),
        ("JSON scalar", b"5", "must be a JSON object or array, got int"),
        (
            "array of non-objects",
            {"rows": [1, "x"]},
            "row 0: must be a JSON object of the asteroid's fields, got int",
        ),
        ("rows not an array", {"rows": {"a": 1}}, "field 'rows' must be an array"),
        ("batch with extra keys", {"rows": [row], "model": "x"}, "unexpected field(s) ['model']"),
        ("empty batch", {"rows": []}, "the batch is empty"),
        ("huge batch", {"rows": big}, f"at most {feature_rows.MAX_BATCH_ROWS} are allowed"),
        (
            "second row bad",
            {"rows": [row, with_changes(row, Eccentricity=-0.1)]},
            "row 1: field 'Eccentricity' must be in [0, 1)",
        ),
    ]


@pytest.mark.parametrize("index", range(27))
def test_bad_input_is_a_value_error_naming_the_problem(
    engine: Any, sample_records: list[dict], index: int
) -> None:
    all_cases = cases(sample_records[0])
    assert len(all_cases) == 27
    name, body, expected = all_cases[index]
    with pytest.raises(ValueError) as raised:
        serve(engine, body)
    assert type(raised.value) is ValueError, name
    assert expected in str(raised.value), f"{name}: {raised.value}"


def test_many_problems_are_listed_up_to_a_limit(engine: Any, sample_records: list[dict]) -> None:
    rows = [with_changes(row, Eccentricity=5.0) for row in sample_records[:50]]
    with pytest.raises(ValueError, match=r"row 0: .*row 9: .*; and 40 more problem\(s\)"):
        serve(engine, {"rows": rows})


def test_every_problem_of_a_row_is_named(engine: Any, sample_records: list[dict]) -> None:
    row = with_changes(sample_records[0], Inclination="high", Eccentricity=1.5, Mean__Anomaly=KeyError)
    row["absolute_magnitude_h"] = 20.0
    with pytest.raises(ValueError) as raised:
        serve(engine, row)
    for expected in (
        "unknown field 'absolute_magnitude_h'",
        "field 'Mean Anomaly' is missing (or 'mean_anomaly')",
        "field 'Inclination' must be a number, got string 'high'",
        "field 'Eccentricity' must be in [0, 1), got 1.5",
    ):
        assert expected in str(raised.value)


def test_snake_case_rows_are_named_in_snake_case(engine: Any) -> None:
    row = dict.fromkeys(schema.INPUT_FEATURES, 1.0) | {"eccentricity": 2.0}
    with pytest.raises(ValueError, match=r"row 0: field 'eccentricity' must be in \[0, 1\), got 2"):
        serve(engine, row)


def test_the_hook_keeps_serving_after_bad_input(engine: Any, sample_records: list[dict]) -> None:
    with pytest.raises(ValueError):
        serve(engine, {"rows": [{"bad": 1}]})
    reply, _ = serve(engine, sample_records[1])
    assert 0.0 <= reply["probability"] <= 1.0
