"""What the API server and the file server share: a threaded HTTP server that outlives its clients."""

from __future__ import annotations

import logging
import sys
from http.server import ThreadingHTTPServer
from typing import Any

log = logging.getLogger("clearml_local.http")


class ThreadedServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):  # the client went away mid-request
            log.debug("client %s disconnected mid-request", client_address)
            return
        super().handle_error(request, client_address)
