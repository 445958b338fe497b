"""Requests a browser or a confused client can send the embedded backend: a garbage request line gets the 400
HTTP asks for (with a status line), a badly percent-encoded web-view file path a 400."""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

import requests

from tests.backend.backend_harness import BackendHarness
from tests.backend.conftest import backend  # noqa: F401


def raw_reply(url: str, request: bytes) -> bytes:
    address = urlsplit(url)
    with socket.create_connection((address.hostname, address.port), timeout=10) as connection:
        connection.sendall(request)
        chunks = []
        while chunk := connection.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_a_garbage_request_line_is_answered_400(backend: BackendHarness) -> None:  # noqa: F811
    for url in (backend.api_url, backend.files_url):
        reply = raw_reply(url, b"GARBAGE\r\n\r\n")
        assert reply.split(b"\r\n", 1)[0].split(b" ")[1] == b"400", reply[:200]


def test_a_bad_percent_escape_in_a_web_view_path_is_400(backend: BackendHarness) -> None:  # noqa: F811
    # sent raw: requests would re-quote the bad escape as %25ZZ
    request = b"GET /webview/files/a%ZZ HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    reply = raw_reply(backend.api_url, request)
    assert reply.startswith(b"HTTP/1.1 400 "), reply[:300]
    assert requests.get(f"{backend.api_url}/webview/files/a%20b", timeout=10).status_code == 404
