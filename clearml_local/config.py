"""Layout of the backend's data directory, its credentials, and the ``clearml.conf`` it writes for clients."""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from clearml_local.auth_tokens import Credentials


@dataclass(frozen=True)
class BackendConfig:
    data_dir: Path
    host: str = "127.0.0.1"
    api_port: int = 8008
    files_port: int = 8081
    max_upload_bytes: int = 512 * 1024 * 1024

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
    def pid_path(self) -> Path:
        return self.data_dir / "backend.pid"

    @property
    def state_path(self) -> Path:
        """Where a running server records the ports it actually bound (port 0 means any free port)."""
        return self.data_dir / "backend.json"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "backend.log"

    def api_url(self, port: int | None = None) -> str:
        return f"http://{_url_host(self.host)}:{port or self.api_port}"

    def files_url(self, port: int | None = None) -> str:
        return f"http://{_url_host(self.host)}:{port or self.files_port}"


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
