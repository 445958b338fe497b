"""Configuration of the automation service: every default defined here once, each overridable from the
environment (the variable is named beside it). The production defaults retrain at most every six hours and
ingest once a day; the drill profile (``ASTEROID_AUTOMATION_PROFILE=drill``) shortens the periods."""

from __future__ import annotations

import os
import shlex
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

import global_config

# The alerts that retrain, each with the labels it must also carry (the drift alert only when critical).
RETRAIN_ALERTS: dict[str, dict[str, str]] = {
    "AsteroidFeatureDrift": {"severity": "critical"},
    "AsteroidModelRecallLow": {},
    "AsteroidModelAccuracyLow": {},
}
RECEIVER_NAME = "retrain"  # the Alertmanager receiver's name
ALERTS_PATH = "/alerts"  # where Alertmanager posts
DATASETS_PATH = "/datasets"  # where the dataset trigger posts a new raw dataset version
QUERY_DATE_PLACEHOLDER = "{query_date}"
DEFAULT_COMMAND = f"{shlex.quote(sys.executable)} pipeline.py --query-date {QUERY_DATE_PLACEHOLDER}"
PROFILES = ("production", "drill")
SCHEDULES = ("ingest", "dataset")  # the ClearML schedulers the service runs (ASTEROID_AUTOMATION_SCHEDULES)


def _env(name: str, default: str) -> str:
    return os.environ.get(name) or default


def _env_number(name: str, default: float) -> float:
    value = os.environ.get(name, "")
    try:
        return float(value) if value else default
    except ValueError as exc:
        raise ValueError(f"environment variable {name} must be a number, got {value!r}") from exc


def _env_flag(name: str, default: bool) -> bool:
    value = os.environ.get(name, "").strip().lower()
    if not value:
        return default
    if value not in ("1", "true", "yes", "0", "false", "no"):
        raise ValueError(f"environment variable {name} must be 1/true/yes or 0/false/no, got {value!r}")
    return value in ("1", "true", "yes")


@dataclass(frozen=True)
class Profile:
    cooldown_seconds: float  # no second launch this soon after one, whatever asked for it
    ingest_every_minutes: int  # 0: once a day at ingest_hour:ingest_minute (UTC)
    trigger_poll_minutes: float  # how often the TriggerScheduler looks for new dataset versions
    ingest_at_start: bool  # also ingest once when the service starts


PROFILE_DEFAULTS = {
    "production": Profile(
        cooldown_seconds=6 * 3600, ingest_every_minutes=0, trigger_poll_minutes=3.0, ingest_at_start=False
    ),
    # TaskScheduler counts whole minutes (docs/notes/clearml-automation.md): one minute is its shortest period
    "drill": Profile(
        cooldown_seconds=60, ingest_every_minutes=1, trigger_poll_minutes=5 / 60, ingest_at_start=True
    ),
}


@dataclass(frozen=True)
class AutomationConfig:
    data_dir: Path  # state file, logs, launch logs
    database_url: str
    host: str = "127.0.0.1"
    port: int = 9095  # the retrain receiver
    token_file: Path | None = None  # bearer token Alertmanager sends; None: generated in data_dir
    profile: str = "production"
    cooldown_seconds: float = PROFILE_DEFAULTS["production"].cooldown_seconds
    ingest_every_minutes: int = PROFILE_DEFAULTS["production"].ingest_every_minutes
    ingest_hour: int = 2
    ingest_minute: int = 0
    trigger_poll_minutes: float = PROFILE_DEFAULTS["production"].trigger_poll_minutes
    ingest_at_start: bool = False
    schedules: tuple[str, ...] = SCHEDULES
    # the retrain launch, run in the project root; {query_date} is the day's date (UTC)
    command: tuple[str, ...] = field(default_factory=lambda: tuple(shlex.split(DEFAULT_COMMAND)))
    max_body_bytes: int = 1024 * 1024
    launch_poll_seconds: float = (
        5.0  # how often queued launches are retried (a new decision wakes it at once)
    )

    @classmethod
    def from_env(cls) -> AutomationConfig:
        profile = _env("ASTEROID_AUTOMATION_PROFILE", "production")
        if profile not in PROFILES:
            raise ValueError(f"ASTEROID_AUTOMATION_PROFILE must be one of {PROFILES}, got {profile!r}")
        defaults = PROFILE_DEFAULTS[profile]
        token = os.environ.get("ASTEROID_RETRAIN_TOKEN_FILE")
        schedules = _env("ASTEROID_AUTOMATION_SCHEDULES", ",".join(SCHEDULES))
        config = cls(
            data_dir=Path(
                _env("ASTEROID_AUTOMATION_DIR", str(global_config.DATA_DIR / "automation"))
            ).resolve(),
            database_url=global_config.DATABASE_URL,
            host=_env("ASTEROID_RETRAIN_HOST", cls.host),
            port=int(_env_number("ASTEROID_RETRAIN_PORT", cls.port)),
            token_file=Path(token).expanduser().resolve() if token else None,
            profile=profile,
            cooldown_seconds=_env_number("ASTEROID_RETRAIN_COOLDOWN_SECONDS", defaults.cooldown_seconds),
            ingest_every_minutes=int(
                _env_number("ASTEROID_INGEST_EVERY_MINUTES", defaults.ingest_every_minutes)
            ),
            ingest_hour=int(_env_number("ASTEROID_INGEST_HOUR", cls.ingest_hour)),
            ingest_minute=int(_env_number("ASTEROID_INGEST_MINUTE", cls.ingest_minute)),
            trigger_poll_minutes=_env_number("ASTEROID_TRIGGER_POLL_MINUTES", defaults.trigger_poll_minutes),
            ingest_at_start=_env_flag("ASTEROID_INGEST_AT_START", defaults.ingest_at_start),
            schedules=tuple(name for name in schedules.split(",") if name and name != "none"),
            command=tuple(shlex.split(_env("ASTEROID_RETRAIN_COMMAND", DEFAULT_COMMAND))),
        )
        config.validate()
        return config

    def with_overrides(self, **values: object) -> AutomationConfig:
        return replace(self, **{key: value for key, value in values.items() if value is not None})

    def validate(self) -> None:
        if not 1 <= self.port <= 65535:
            raise ValueError(f"ASTEROID_RETRAIN_PORT must be a TCP port (1-65535), got {self.port}")
        if self.cooldown_seconds < 0:
            raise ValueError(f"ASTEROID_RETRAIN_COOLDOWN_SECONDS must be >= 0, got {self.cooldown_seconds:g}")
        if self.ingest_every_minutes < 0:
            raise ValueError(f"ASTEROID_INGEST_EVERY_MINUTES must be >= 0, got {self.ingest_every_minutes}")
        if not (0 <= self.ingest_hour <= 23 and 0 <= self.ingest_minute <= 59):
            raise ValueError("ASTEROID_INGEST_HOUR must be 0-23 and ASTEROID_INGEST_MINUTE 0-59")
        if not self.trigger_poll_minutes > 0:
            raise ValueError("ASTEROID_TRIGGER_POLL_MINUTES must be positive")
        unknown = sorted(set(self.schedules) - set(SCHEDULES))
        if unknown:
            raise ValueError(f"ASTEROID_AUTOMATION_SCHEDULES: unknown {unknown}; known {list(SCHEDULES)}")
        if not self.command:
            raise ValueError("ASTEROID_RETRAIN_COMMAND is empty")

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}{ALERTS_PATH}"

    @property
    def state_path(self) -> Path:
        return self.data_dir / "automation.json"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "automation.log"

    @property
    def launches_dir(self) -> Path:
        return self.data_dir / "launches"

    @property
    def token_path(self) -> Path:
        return self.token_file or self.data_dir / "retrain_token"

    def alertmanager_receiver(
        self, url: str | None = None, token_file: str | None = None
    ) -> dict[str, object]:
        """This receiver as an entry of the serving stack's extra-receivers file (serving_local's
        ExtraReceiver): its address and token file, and a route per retraining alert."""
        return {
            "name": RECEIVER_NAME,
            "url": url or self.url,
            "token_file": token_file or str(self.token_path),
            "routes": retrain_routes(),
        }

    @property
    def extra_receivers_path(self) -> Path:
        """The serving stack's extra-receivers file for this receiver (SERVING_LOCAL_EXTRA_RECEIVERS)."""
        return self.data_dir / "alertmanager_receivers.json"


def retrain_routes() -> list[list[str]]:
    """Alertmanager matchers of each retraining alert."""
    return [
        [f'alertname="{name}"', *(f'{label}="{value}"' for label, value in labels.items())]
        for name, labels in RETRAIN_ALERTS.items()
    ]
