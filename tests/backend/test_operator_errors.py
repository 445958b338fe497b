"""Requests a browser or a confused client can send the embedded backend: a garbage request line gets the 400
HTTP asks for (with a status line), a badly percent-encoded web-view file path a 400, and a request addressed
to a foreign name (DNS rebinding) a 421."""

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


def test_a_foreign_host_name_is_refused_on_loopback(backend: BackendHarness) -> None:  # noqa: F811
    """DNS rebinding: a page whose name resolves to 127.0.0.1 sends its own name in Host."""
    port = urlsplit(backend.api_url).port
    files_port = urlsplit(backend.files_url).port
    for url, host in (
        (f"{backend.api_url}/projects", f"rebind.example:{port}"),
        (f"{backend.api_url}/v2.23/debug.ping", f"rebind.example:{port}"),
        (f"{backend.files_url}/p/model.bin", f"rebind.example:{files_port}"),
        (f"{backend.api_url}/projects", "127.0.0.1.rebind.example"),
    ):
        reply = requests.get(url, headers={"Host": host}, timeout=10)
        assert reply.status_code == 421, (url, host, reply.status_code)
        assert "loopback names only" in reply.json()["meta"]["result_msg"]
    for host in (f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}", "LOCALHOST"):
        reply = requests.get(f"{backend.api_url}/projects", headers={"Host": host}, timeout=10)
        assert reply.status_code == 200, host


def test_only_a_loopback_listener_checks_host() -> None:
    from clearml_local.http_base import host_allowed

    assert not host_allowed("rebind.example:8008", "127.0.0.1")
    assert not host_allowed("[bad", "127.0.0.1")
    assert host_allowed("", "127.0.0.1")  # HTTP/1.0 without Host: no page's request
    assert host_allowed("clearml.example:8008", "0.0.0.0")
    assert host_allowed("127.0.0.2:8008", "127.0.0.1")
