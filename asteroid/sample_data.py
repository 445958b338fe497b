"""Realistic, physically consistent sample data in exactly the schema and formats of NASA's nasa.csv."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

import global_config
from asteroid import schema

FIRST_APPROACH = "1995-01-01"
LAST_APPROACH = "2016-09-08"
# NASA's feed stamps each close-approach date with local midnight in Pasadena (JPL).
EPOCH_TIMEZONE = "America/Los_Angeles"

AU_KM = 149_597_870.7
LUNAR_PER_AU = 389.0  # the table's factor (the true mean lunar distance is 389.17 per au)
MILES_PER_KM = 0.621371
FEET_PER_M = 3.28084
MPH_PER_KM_S = 2236.9  # the table's factor (exact: 2236.936)
JUPITER_A_AU = 5.2026
EARTH_SPEED_KM_S = 29.78
# Diameter from H and geometric albedo p: D_km = 1329 / sqrt(p) * 10^(-H/5); NASA's min/max use p = 0.25/0.05.
ALBEDO_FOR_MIN_DIAMETER = 0.25
ALBEDO_FOR_MAX_DIAMETER = 0.05

# What differs between two close approaches of the same asteroid; everything else describes the asteroid.
PER_APPROACH_COLUMNS = (
    "Close Approach Date",
    "Epoch Date Close Approach",
    "Relative Velocity km per sec",
    "Relative Velocity km per hr",
    "Miles per hour",
    "Miss Dist.(Astronomical)",
    "Miss Dist.(lunar)",
    "Miss Dist.(kilometers)",
    "Miss Dist.(miles)",
)
REPEATED_FRACTION = 0.2
MAX_APPROACHES = 7
# Spread of the "true" H around the tabulated, rounded one: it moves labels only within ~0.2 mag of 22.
LABEL_H_NOISE = 0.08
LABEL_MOID_NOISE = 0.01  # relative

# Columns NASA writes without a leading zero (".4255") and columns written without ".0" when integral.
_LEADING_DOT_COLUMNS = (
    "Minimum Orbit Intersection",
    "Eccentricity",
    "Semi Major Axis",
    "Inclination",
    "Asc Node Longitude",
    "Perihelion Distance",
    "Perihelion Arg",
    "Aphelion Dist",
    "Mean Anomaly",
    "Mean Motion",
)
_INTEGRAL_FLOAT_COLUMNS = ("Miss Dist.(kilometers)", "Miss Dist.(miles)")


def diameter_km(absolute_magnitude: np.ndarray, albedo: float) -> np.ndarray:
    """Diameter (km) of an asteroid of absolute magnitude H and geometric albedo p."""
    return 1329.0 / np.sqrt(albedo) * 10.0 ** (-np.asarray(absolute_magnitude, dtype=float) / 5.0)


def orbital_period_days(semi_major_axis: np.ndarray) -> np.ndarray:
    """Kepler's third law with a in au."""
    return 365.25 * np.asarray(semi_major_axis, dtype=float) ** 1.5


def tisserand(a: np.ndarray, e: np.ndarray, inclination_deg: np.ndarray, planet_a: float) -> np.ndarray:
    """Tisserand parameter with respect to a planet on a circular orbit of radius planet_a (au)."""
    a = np.asarray(a, dtype=float)
    return planet_a / a + 2.0 * np.cos(np.radians(inclination_deg)) * np.sqrt(a / planet_a * (1.0 - e**2))


@lru_cache(maxsize=4)
def _calendar(first: str, last: str) -> tuple[np.ndarray, np.ndarray]:
    days = pd.date_range(first, last, freq="D", tz=EPOCH_TIMEZONE)
    epoch_ms = (days - pd.Timestamp("1970-01-01", tz="UTC")) // pd.Timedelta(milliseconds=1)
    return np.asarray(days.strftime(schema.DATE_FORMAT), dtype=object), np.asarray(epoch_ms, dtype=np.int64)


def _round_significant(values: np.ndarray, digits: int) -> np.ndarray:
    values = np.asarray(values, dtype=float)
    magnitude = np.floor(np.log10(np.abs(np.where(values == 0, 1.0, values))))
    scale = 10.0 ** (digits - 1 - magnitude)
    return np.round(values * scale) / scale


def _approach_counts(rng: np.random.Generator, n_rows: int) -> np.ndarray:
    """Close approaches per asteroid: most once, ~20% two to seven times; sums to n_rows."""
    repeated = rng.random(n_rows) < REPEATED_FRACTION
    counts = np.where(repeated, np.minimum(1 + rng.geometric(0.68, n_rows), MAX_APPROACHES), 1)
    n_asteroids = int(np.searchsorted(np.cumsum(counts), n_rows) + 1)
    counts = counts[:n_asteroids].copy()
    counts[-1] -= counts.sum() - n_rows
    return counts


def _orbits(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """Semi-major axis and eccentricity of near-Earth orbits (q <= 1.3 au, reaching inside 0.8 au)."""
    a = np.empty(0)
    e = np.empty(0)
    while a.size < n:
        size = 2 * (n - a.size) + 16
        a_try = np.clip(rng.lognormal(np.log(1.45), 0.36, size), 0.6, 5.1)
        e_try = rng.beta(2.2, 3.6, size) * 0.97
        ok = (a_try * (1 - e_try) <= 1.3) & (a_try * (1 + e_try) >= 0.8)
        a = np.concatenate([a, a_try[ok]])
        e = np.concatenate([e, e_try[ok]])
    return {"a": a[:n], "e": e[:n]}


def _asteroids(rng: np.random.Generator, n: int) -> pd.DataFrame:
    """One row per asteroid: everything that does not change between its close approaches."""
    ids = rng.choice(np.arange(2_000_433, 3_781_898), size=n, replace=False)
    faint = rng.random(n) < 0.45
    h_true = np.where(faint, rng.normal(24.9, 1.9, n), rng.normal(20.3, 1.7, n))
    h_true = np.clip(h_true, 11.0, 33.0)
    h = np.round(h_true, 1)

    orbit = _orbits(rng, n)
    a, e = orbit["a"], orbit["e"]
    inclination = np.minimum(rng.gamma(1.45, 9.2, n), 89.0)
    q, aphelion = a * (1 - e), a * (1 + e)
    period = orbital_period_days(a)
    mean_motion = 360.0 / period
    mean_anomaly = rng.uniform(0, 360, n)

    # MOID can't be below the radial gap to Earth's orbit; faint objects are only found when they pass
    # close, so their MOIDs are smaller.
    floor = np.maximum.reduce([np.zeros(n), q - 1.0167, 0.9833 - aphelion])
    scale = 0.022 + 0.085 / (1 + np.exp((h_true - 22.0) / 0.8))
    moid = np.minimum(floor + rng.exponential(scale), 0.48)
    moid = np.maximum(_round_significant(moid, 6), 1e-6)

    epoch = np.select(
        [rng.random(n) < 0.86, rng.random(n) < 0.5],
        [2458000.5, 2457600.5],
        np.floor(rng.uniform(2450164, 2458020, n)) + 0.5,
    )
    # Nearest perihelion passage to the osculation epoch.
    perihelion_time = np.where(
        mean_anomaly < 180, epoch - mean_anomaly / mean_motion, epoch + (360 - mean_anomaly) / mean_motion
    )

    uncertainty = np.clip(np.round(0.7 * (h_true - 19.0) + rng.normal(0, 2.2, n)), 0, 9).astype(np.int64)
    orbit_id = np.clip(np.round(rng.lognormal(np.log(28) - 0.2 * uncertainty, 0.8)), 1, 611).astype(np.int64)
    recent = rng.random(n) < 0.97
    seconds = np.where(
        recent,
        rng.integers(8 * 3600, 10 * 3600, n),
        rng.integers(-(3 * 365 - 70) * 86400, 175 * 86400, n),
    )
    determined = pd.Timestamp("2017-04-06") + pd.to_timedelta(seconds, unit="s")

    moid_true = moid * (1 + rng.normal(0, LABEL_MOID_NOISE, n))
    h_label = h + rng.normal(0, LABEL_H_NOISE, n)
    # Half a rounding step of slack: a tabulated 22.0 is hazardous unless its true H is above 22.05.
    hazardous = (moid_true <= schema.CNEOS_MOID_MAX_AU) & (h_label <= schema.CNEOS_H_MAX + 0.05)

    earth_tisserand = tisserand(a, e, inclination, 1.0)
    encounter_speed = EARTH_SPEED_KM_S * np.sqrt(np.clip(3.0 - earth_tisserand, 0.0, None))

    return pd.DataFrame(
        {
            "id": ids,
            "h": h,
            "a": a,
            "e": e,
            "i": inclination,
            "node": rng.uniform(0, 360, n),
            "peri_arg": rng.uniform(0, 360, n),
            "mean_anomaly": mean_anomaly,
            "q": q,
            "aphelion": aphelion,
            "period": period,
            "mean_motion": mean_motion,
            "moid": moid,
            "tisserand_j": np.round(tisserand(a, e, inclination, JUPITER_A_AU), 3),
            "epoch": epoch,
            "perihelion_time": perihelion_time,
            "uncertainty": uncertainty,
            "orbit_id": orbit_id,
            "determined": determined.strftime(schema.DATETIME_FORMAT),
            "hazardous": hazardous,
            "encounter_speed": encounter_speed,
        }
    )


def _approach_days(rng: np.random.Generator, asteroid: np.ndarray, n_days: int) -> np.ndarray:
    """A day index per row, distinct within each asteroid."""
    days = rng.integers(0, n_days, asteroid.size)
    while True:
        clash = pd.DataFrame({"a": asteroid, "d": days}).duplicated().to_numpy()
        if not clash.any():
            return days
        days[clash] = rng.integers(0, n_days, int(clash.sum()))


def generate_sample(
    n_rows: int = global_config.SAMPLE_ROWS, seed: int = global_config.SAMPLE_SEED
) -> pd.DataFrame:
    """`n_rows` close approaches in nasa.csv's 40 columns, dtypes and rounding; deterministic per seed."""
    if n_rows < 1:
        raise ValueError(f"n_rows must be >= 1, got {n_rows}")
    rng = np.random.default_rng(seed)
    counts = _approach_counts(rng, n_rows)
    asteroids = _asteroids(rng, counts.size)
    which = np.repeat(np.arange(counts.size), counts)
    rows = asteroids.iloc[which].reset_index(drop=True)

    dates, epoch_ms = _calendar(FIRST_APPROACH, LAST_APPROACH)
    day = _approach_days(rng, which, dates.size)

    speed = np.sqrt(rows["encounter_speed"].to_numpy() ** 2 + 4.0**2) * rng.lognormal(0, 0.18, n_rows)
    speed = np.clip(speed, 0.3, 45.0)
    moid = rows["moid"].to_numpy()
    # The feed lists approaches within 0.5 au; a few miss distances fall below the (later) orbit's MOID.
    miss_au = np.where(
        rng.random(n_rows) < 0.975, rng.uniform(moid, 0.5), moid * rng.uniform(0.3, 1.0, n_rows)
    )
    miss_km = miss_au * AU_KM

    h = rows["h"].to_numpy()
    dia_min = diameter_km(h, ALBEDO_FOR_MIN_DIAMETER)
    dia_max = diameter_km(h, ALBEDO_FOR_MAX_DIAMETER)

    def r10(values: np.ndarray) -> np.ndarray:
        return np.round(values, 10)

    def f32(values: np.ndarray) -> np.ndarray:
        return np.asarray(values, dtype=np.float32).astype(np.float64)

    columns = {
        "Neo Reference ID": rows["id"],
        "Name": rows["id"],
        "Absolute Magnitude": h,
        "Est Dia in KM(min)": r10(dia_min),
        "Est Dia in KM(max)": r10(dia_max),
        "Est Dia in M(min)": r10(dia_min * 1000),
        "Est Dia in M(max)": r10(dia_max * 1000),
        "Est Dia in Miles(min)": r10(dia_min * MILES_PER_KM),
        "Est Dia in Miles(max)": r10(dia_max * MILES_PER_KM),
        "Est Dia in Feet(min)": r10(dia_min * 1000 * FEET_PER_M),
        "Est Dia in Feet(max)": r10(dia_max * 1000 * FEET_PER_M),
        "Close Approach Date": dates[day],
        "Epoch Date Close Approach": epoch_ms[day],
        "Relative Velocity km per sec": r10(speed),
        "Relative Velocity km per hr": r10(speed * 3600),
        "Miles per hour": r10(speed * MPH_PER_KM_S),
        "Miss Dist.(Astronomical)": r10(miss_au),
        "Miss Dist.(lunar)": f32(miss_au * LUNAR_PER_AU),
        "Miss Dist.(kilometers)": f32(miss_km),
        "Miss Dist.(miles)": f32(miss_km * MILES_PER_KM),
        "Orbiting Body": "Earth",
        "Orbit ID": rows["orbit_id"],
        "Orbit Determination Date": rows["determined"],
        "Orbit Uncertainity": rows["uncertainty"],
        "Minimum Orbit Intersection": moid,
        "Jupiter Tisserand Invariant": rows["tisserand_j"],
        "Epoch Osculation": rows["epoch"],
        "Eccentricity": rows["e"],
        "Semi Major Axis": rows["a"],
        "Inclination": rows["i"],
        "Asc Node Longitude": rows["node"],
        "Orbital Period": rows["period"],
        "Perihelion Distance": rows["q"],
        "Perihelion Arg": rows["peri_arg"],
        "Aphelion Dist": rows["aphelion"],
        "Perihelion Time": rows["perihelion_time"],
        "Mean Anomaly": rows["mean_anomaly"],
        "Mean Motion": rows["mean_motion"],
        "Equinox": "J2000",
        "Hazardous": rows["hazardous"],
    }
    return pd.DataFrame(columns)[list(schema.COLUMN_NAMES)].astype(schema.dtypes())


def _format_floats(values: pd.Series, leading_dot: bool, drop_integral_zero: bool) -> list[str]:
    texts = []
    for value in values.tolist():
        text = repr(value)
        if "e" in text:
            text = np.format_float_positional(value, trim="0")
        if leading_dot and text.startswith("0."):
            text = text[1:]
        elif drop_integral_zero and text.endswith(".0"):
            text = text[:-2]
        texts.append(text)
    return texts


def to_nasa_csv(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write a frame in nasa.csv's text formats (e.g. `.0252819`, `62753692`, `True`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = frame.copy()
    for column in schema.COLUMNS:
        if column.kind != "float" or column.name not in text:
            continue
        values = text[column.name]
        leading_dot = column.name in _LEADING_DOT_COLUMNS
        # An all-integral column written without ".0" would read back as int64.
        drop_zero = column.name in _INTEGRAL_FLOAT_COLUMNS and bool((values % 1 != 0).any())
        tiny = bool(((values != 0) & (values.abs() < 1e-4)).any())  # repr would use an exponent
        if leading_dot or drop_zero or tiny:
            text[column.name] = _format_floats(values, leading_dot, drop_zero)
    text.to_csv(path, index=False)
    return path


def write_sample_csv(
    path: str | Path,
    n_rows: int = global_config.SAMPLE_ROWS,
    seed: int = global_config.SAMPLE_SEED,
) -> Path:
    """Generate a sample and write it as a NASA-formatted CSV; returns the path."""
    return to_nasa_csv(generate_sample(n_rows, seed), path)
