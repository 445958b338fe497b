"""Wiring: one store, one authenticator, the API server and the file server, each on its own thread."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from clearml_local import process, records
from clearml_local.api import Context
from clearml_local.auth_tokens import Authenticator, Identity
from clearml_local.config import BackendConfig, load_or_create_credentials, write_clearml_conf
from clearml_local.fileserver import FileServer
from clearml_local.http_api import ApiServer, Observer
from clearml_local.state import State
from clearml_local.storage import Store


class EmbeddedBackend:
    """The API server and file server of one data directory. Ports of 0 pick free ports."""

    def __init__(self, config: BackendConfig, observer: Observer | None = None) -> None:
        self.config = config
        self.credentials = load_or_create_credentials(config)
        self.authenticator = Authenticator(self.credentials)
        self.store = Store(config.db_path, repair=records.repair)
        self.files = FileServer(
            (config.host, config.files_port), config.files_root, self.authenticator, config.max_upload_bytes
        )
        self.files_url = config.files_url(self.files.server_address[1])
        self.api = ApiServer(
            (config.host, config.api_port),
            self.store,
            self.authenticator,
            self._context,
            observer,
            web_auth=config.web_auth,
        )
        self.api.webview.serve_files(config.files_root, self.files_url)  # links that open in a browser
        self.api_url = config.api_url(self.api.server_address[1])
        self._threads: list[threading.Thread] = []

    def _context(self, identity: Identity, worker: str | None = None) -> Context:
        return Context(State(self.store, identity, worker), identity, self.authenticator)

    @property
    def clearml_conf(self) -> Path:
        return self.config.clearml_conf_path

    def client_env(self) -> dict[str, str]:
        """Environment that points the clearml SDK, CLI tools and agents at this backend."""
        return {
            "CLEARML_CONFIG_FILE": str(self.clearml_conf),
            "CLEARML_API_HOST": self.api_url,
            "CLEARML_WEB_HOST": self.api_url,
            "CLEARML_FILES_HOST": self.files_url,
            "CLEARML_API_ACCESS_KEY": self.credentials.access_key,
            "CLEARML_API_SECRET_KEY": self.credentials.secret_key,
        }

    def start(self) -> EmbeddedBackend:
        write_clearml_conf(self.config, self.api_url, self.files_url, self.credentials)
        for server, name in ((self.api, "clearml-local-api"), (self.files, "clearml-local-files")):
            thread = threading.Thread(target=server.serve_forever, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        process.write_state(self.config, self.api_url, self.files_url)
        return self

    def stop(self) -> None:
        for server in (self.api, self.files):
            server.shutdown()
            server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)
        self.store.close()
        process.clear_state(self.config)

    def __enter__(self) -> EmbeddedBackend:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
