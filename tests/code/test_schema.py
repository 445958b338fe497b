"""Column specs, snake_case names and the feature list."""

from __future__ import annotations

import re

import pytest

from asteroid import schema

PROMETHEUS_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Miss Dist.(kilometers)", "miss_dist_kilometers"),
        ("Est Dia in KM(min)", "est_dia_in_km_min"),
        ("Relative Velocity km per sec", "relative_velocity_km_per_sec"),
        ("Miss Dist.(Astronomical)", "miss_dist_astronomical"),
        ("Neo Reference ID", "neo_reference_id"),
        ("  Odd--name__ ", "odd_name"),
        ("3 body", "_3_body"),
    ],
)
def test_snake_case(name: str, expected: str) -> None:
    assert schema.snake_case(name) == expected


def test_snake_case_rejects_names_without_letters_or_digits() -> None:
    with pytest.raises(ValueError, match="snake_case"):
        schema.snake_case("().")


def test_forty_unique_columns_with_label_and_group() -> None:
    assert len(schema.COLUMNS) == 40
    assert len(set(schema.COLUMN_NAMES)) == 40
    assert len({column.snake for column in schema.COLUMNS}) == 40
    assert schema.COLUMNS_BY_NAME[schema.LABEL].kind == "bool"
    assert schema.COLUMNS_BY_NAME[schema.GROUP].kind == "int"
    assert schema.COLUMNS_BY_NAME[schema.DATE_COLUMN].kind == "date"
    assert schema.dtypes()["Close Approach Date"] == "str"


def test_features_are_known_unique_prometheus_names() -> None:
    features = schema.FEATURES
    assert len(set(features)) == len(features)
    snake_sources = {column.snake for column in schema.COLUMNS}
    for feature in features:
        assert PROMETHEUS_NAME.fullmatch(feature), feature
        assert feature in snake_sources or feature in {*schema.DERIVED_FEATURES, *schema.COMPUTED_FEATURES}, (
            feature
        )
    assert "absolute_magnitude" in features and "minimum_orbit_intersection" in features


@pytest.mark.parametrize(
    "excluded",
    ["neo_reference_id", "name", "close_approach_date", "epoch_date_close_approach", "orbiting_body",
     "equinox", "hazardous", "miss_dist_kilometers", "est_dia_in_m_min", "relative_velocity_km_per_hr",
     "orbit_id", "epoch_osculation", "perihelion_time"],
)  # fmt: skip
def test_features_exclude_ids_dates_constants_and_unit_copies(excluded: str) -> None:
    assert excluded not in schema.FEATURES


def test_range_text_marks_open_bounds() -> None:
    assert schema.COLUMNS_BY_NAME["Eccentricity"].range_text() == "[0, 1)"
    assert schema.COLUMNS_BY_NAME["Semi Major Axis"].range_text() == "(0, 1000]"
    assert schema.COLUMNS_BY_NAME["Orbiting Body"].range_text() == "(-inf, inf)"


def test_source_column_lookup() -> None:
    assert schema.source_column("miss_dist_astronomical") == "Miss Dist.(Astronomical)"
    with pytest.raises(KeyError):
        schema.source_column("est_dia_km_avg")


def test_cneos_rule_boundaries() -> None:
    moid = [0.05, 0.0500001, 0.01, 0.01]
    h = [22.0, 20.0, 22.0, 22.05]
    assert schema.cneos_rule(moid, h).tolist() == [True, False, True, False]
