"""The backend's settings (from ``CLEARML_LOCAL_*`` variables), the layout of its data directory, its
credentials, and the ``clearml.conf`` it writes for clients."""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from clearml_local.auth_tokens import Credentials

DEFAULT_HOST = "127.0.0.1"
DEFAULT_API_PORT = 8008
DEFAULT_FILES_PORT = 8081
DEFAULT_MAX_UPLOAD_MB = 512
DATA_DIR_NAME = ".clearml_local"


class ConfigError(ValueError):
    """A ``CLEARML_LOCAL_*`` variable that cannot be used (the message names it)."""


@dataclass(frozen=True)
class BackendConfig:
    data_dir: Path
    host: str = DEFAULT_HOST
    api_port: int = DEFAULT_API_PORT
    files_port: int = DEFAULT_FILES_PORT
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_MB * 1024 * 1024
    # The web view asks for the keys (HTTP Basic): None means only when bound to a non-loopback interface.
    web_auth: bool | None = None

    @classmethod
    def from_env(
        cls, default_data_dir: Path | None = None, environ: Mapping[str, str] | None = None
    ) -> BackendConfig:
        """Settings from ``CLEARML_LOCAL_DATA_DIR`` (default ``default_data_dir``, else
        ``<cwd>/.clearml_local``), ``CLEARML_LOCAL_HOST``, ``CLEARML_LOCAL_API_PORT``,
        ``CLEARML_LOCAL_FILES_PORT`` and ``CLEARML_LOCAL_MAX_UPLOAD_MB``."""
        env = os.environ if environ is None else environ
        data_dir = env.get("CLEARML_LOCAL_DATA_DIR") or default_data_dir or Path.cwd() / DATA_DIR_NAME
        return cls(
            data_dir=Path(data_dir).expanduser().resolve(),
            host=env.get("CLEARML_LOCAL_HOST") or DEFAULT_HOST,
            api_port=_port(env, "CLEARML_LOCAL_API_PORT", DEFAULT_API_PORT),
            files_port=_port(env, "CLEARML_LOCAL_FILES_PORT", DEFAULT_FILES_PORT),
            max_upload_bytes=_positive(env, "CLEARML_LOCAL_MAX_UPLOAD_MB", DEFAULT_MAX_UPLOAD_MB)
            * 1024
            * 1024,
        )

    @property
    def db_path(self) -> Path:
        return self.data_dir / "backend.sqlite"

    @property
    def files_root(self) -> Path:
        return self.data_dir / "files"

    @property
    def credentials_path(self) -> Path:
        return self.data_dir / "credentials.json"

    @property
    def clearml_conf_path(self) -> Path:
        return self.data_dir / "clearml.conf"

    @property
    def state_path(self) -> Path:
        """Where a running server records its pid and the ports it actually bound (0 means any free port)."""
        return self.data_dir / "backend.json"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "backend.log"

    def api_url(self, port: int | None = None) -> str:
        return f"http://{_url_host(self.host)}:{port or self.api_port}"

    def files_url(self, port: int | None = None) -> str:
        return f"http://{_url_host(self.host)}:{port or self.files_port}"


def _integer(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not an integer") from None


def _port(env: Mapping[str, str], name: str, default: int) -> int:
    port = _integer(env, name, default)
    if not 0 <= port <= 65535:
        raise ConfigError(f"{name}={port} is not a TCP port (0 picks a free one)")
    return port


def _positive(env: Mapping[str, str], name: str, default: int) -> int:
    value = _integer(env, name, default)
    if value < 1:
        raise ConfigError(f"{name}={value} must be at least 1")
    return value


def _url_host(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "") else host


def load_or_create_credentials(config: BackendConfig) -> Credentials:
    """Keys are generated on first start and kept (owner-readable only) in the data directory."""
    config.data_dir.mkdir(parents=True, exist_ok=True)
    path = config.credentials_path
    if path.exists():
        data = json.loads(path.read_text())
        return Credentials(data["access_key"], data["secret_key"], data["token_secret"])
    creds = Credentials(
        access_key=secrets.token_hex(10).upper(),
        secret_key=secrets.token_urlsafe(32),
        token_secret=secrets.token_urlsafe(48),
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(
            {
                "access_key": creds.access_key,
                "secret_key": creds.secret_key,
                "token_secret": creds.token_secret,
            },
            handle,
        )
    return creds


def render_clearml_conf(api_url: str, files_url: str, creds: Credentials) -> str:
    """A client configuration with the SDK settings that keep runs fast and failures quick."""
    return f"""# Written by the embedded ClearML backend (clearml_local). Point the SDK at it with
#   export CLEARML_CONFIG_FILE={{this file}}
api {{
    api_server: {api_url}
    web_server: {api_url}
    files_server: {files_url}
    credentials {{
        access_key: "{creds.access_key}"
        secret_key: "{creds.secret_key}"
    }}
    http {{
        # fail fast instead of retrying for hours when the server is down
        retries {{
            total: 3
            connect: 3
            read: 3
            redirect: 3
            status: 3
            backoff_factor: 0.5
            backoff_max: 5.0
        }}
        wait_on_maintenance_forever: false
    }}
}}
sdk {{
    development {{
        # models and artifacts go to the file server, so agents and serving can fetch them
        default_output_uri: "{files_url}"
        # the forked reporter can stall task.close() for minutes
        report_use_subprocess: false
        vcs_repo_detect_async: false
        suppress_update_message: true
        worker {{
            report_period_sec: 1
            ping_period_sec: 30
        }}
    }}
    storage {{
        cache {{
            default_base_dir: "{os.fspath(Path.home() / ".clearml" / "cache")}"
        }}
    }}
}}
agent {{
    # clearml-agent on the same machine reuses the current Python environment (see README)
    disable_agent_update_check: true
    package_manager {{
        type: pip
    }}
    venvs_dir: "{os.fspath(Path.home() / ".clearml" / "venvs-builds")}"
}}
"""


def write_clearml_conf(config: BackendConfig, api_url: str, files_url: str, creds: Credentials) -> Path:
    path = config.clearml_conf_path
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(render_clearml_conf(api_url, files_url, creds))
    return path
