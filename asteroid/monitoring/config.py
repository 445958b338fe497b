"""Windows and thresholds of the drift and serving alerts: a production profile and a short one for the demo
and the tests, chosen with ``ASTEROID_MONITORING_PROFILE``; single values overridable from the environment."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, fields, replace

_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


@dataclass(frozen=True)
class MonitoringConfig:
    """Everything the generated rules depend on besides the training reference."""

    window: str = "1h"  # range of increase()/rate(): the live traffic a score is computed over
    for_: str = "15m"  # how long a condition must hold before its alert fires
    interval: str = "1m"  # rule evaluation period
    # Fewer observations than this in the window and no drift alert fires: PSI over ~10 buckets is noisy on
    # small samples (its expected value on a sample of the training distribution is about buckets / n;
    # Evidently treats up to 1,000 rows as a small sample).
    min_observations: int = 1000
    psi_warning: float = 0.1  # the usual PSI bands: < 0.1 stable, 0.1-0.25 moderate, >= 0.25 major shift
    psi_critical: float = 0.25
    epsilon: float = 1e-4  # floor of a bucket fraction, live or training, so empty buckets give finite PSI
    # Predicted-hazardous fraction: alert when it is this far (absolute) from the training base rate.
    prediction_tolerance: float = 0.1
    error_ratio: float = 0.05  # 4xx + 5xx answers over all answers
    # Live quality (asteroid/quality/rules.py): an alert fires when the live accuracy / recall over the labels
    # of the window falls below the winner's own test accuracy / recall minus this margin. 0.05: the test
    # split holds a few hundred hazardous objects, whose recall moves by a few points between seeds.
    quality_margin: float = 0.05
    min_labelled: int = 200  # labels in the window before the accuracy alert may fire
    min_labelled_hazardous: int = 30  # labels of hazardous objects in the window before the recall alert
    latency_p99_seconds: float = 0.5
    # Process and host resources (AsteroidServingCPUHigh / AsteroidServingMemoryHigh, rules.resource_rules):
    # a process of the stack (each inference worker on its own) busy on more than `process_cpu_cores` of a
    # core, or holding more than `process_memory_bytes` resident, or the host's CPU busy / memory used above
    # its ratio, on average over `resource_window`, for `resource_for`. 0.9 core: one worker saturating a
    # core queues requests; 2 GB: about six times what the largest healthy part holds (an inference worker
    # with its model, 347 MB measured, docs/notes/monitoring.md), so a leak rather than a load.
    resource_window: str = "5m"
    resource_for: str = "10m"
    process_cpu_cores: float = 0.9
    process_memory_bytes: float = 2e9
    host_cpu_ratio: float = 0.9
    host_memory_ratio: float = 0.9

    def with_env(self) -> MonitoringConfig:
        """This profile with ``ASTEROID_MONITORING_<FIELD>`` overrides (ASTEROID_MONITORING_WINDOW=5m)."""
        values: dict[str, object] = {}
        for spec in fields(self):
            raw = os.environ.get(f"ASTEROID_MONITORING_{spec.name.rstrip('_').upper()}")
            if raw:
                kind = type(getattr(self, spec.name))
                try:
                    values[spec.name] = kind(raw)
                except ValueError as exc:
                    raise ValueError(f"ASTEROID_MONITORING_{spec.name.upper()}: {exc}") from exc
        return replace(self, **values)


def seconds(duration: str) -> float:
    """A Prometheus duration of one or more units (`40s`, `1h30m`, `500ms`) in seconds."""
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)", duration)
    if not parts or "".join(number + unit for number, unit in parts) != duration:
        raise ValueError(f"not a duration: {duration!r} (e.g. 40s, 15m, 1h)")
    return sum(float(number) * _DURATION_UNITS[unit] for number, unit in parts)


PROFILES: dict[str, MonitoringConfig] = {
    "production": MonitoringConfig(),
    # Seconds instead of hours, for the demo and the end-to-end test: statistics arrive every ~10 s, so a
    # 40 s window holds about four bursts; at the demo's request rate it holds thousands of rows.
    "short": MonitoringConfig(
        window="40s",
        for_="10s",
        interval="2s",
        min_observations=300,
        min_labelled=50,
        min_labelled_hazardous=10,
        resource_window="20s",
        resource_for="10s",
    ),
}


def load(profile: str | None = None) -> MonitoringConfig:
    """The named profile (default: ASTEROID_MONITORING_PROFILE, else production), with overrides."""
    name = profile or os.environ.get("ASTEROID_MONITORING_PROFILE") or "production"
    if name not in PROFILES:
        raise ValueError(f"unknown monitoring profile {name!r}; choose from {sorted(PROFILES)}")
    return PROFILES[name].with_env()
