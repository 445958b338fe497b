"""A guard in front of a web service that checks neither ``Host`` nor ``Origin`` (Prometheus, Alertmanager):

    python -m serving_local.loopback_guard --listen 127.0.0.1:9090 --web-config FILE -- COMMAND ARGS...

It listens on the service's public address and runs COMMAND as its child, with ``{upstream}`` in its
arguments replaced by a private loopback address and ``{web_config}`` by FILE: a web configuration in the
format Prometheus and Alertmanager read with ``--web.config.file``, asking for HTTP basic auth with a password
generated at each start that only this guard knows. What it forwards, with that password, is what a web page
cannot forge:

- a request whose ``Host`` is not a loopback name with the listening port, when it listens on loopback, gets
  421 (DNS rebinding: a page whose name resolves to 127.0.0.1 sends its own name);
- a write (any method but GET, HEAD, OPTIONS) or a preflight whose ``Origin`` is not the guard's own gets 403
  (a page may post a silence or an alert without a preflight; a same-origin UI and clients that send no
  ``Origin`` — Prometheus, Grafana, scripts — pass);
- ``Access-Control-*`` headers of the service are dropped, so that no other origin can read its answers.

The child gets SIGHUP (Prometheus reloads its files), SIGTERM and SIGINT from the guard, dies with it (Linux),
and the guard exits with the child's code: a supervisor restarts the pair as one part.
"""

from __future__ import annotations

import argparse
import base64
import errno
import http.client
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import bcrypt

from process_supervisor import die_with_parent
from serving_local.host_check import host_allowed

USER = "loopback-guard"
MAX_BODY_BYTES = 8 * 1024 * 1024  # Alertmanager's alert batches and silences are a few KB
UPSTREAM_TIMEOUT_S = 150.0  # Prometheus' own query timeout is 2 minutes
CLIENT_TIMEOUT_S = 60.0
CHUNK = 64 * 1024
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
# Headers of one connection, not of the message (RFC 9110 7.6.1), and the ones the guard sets itself.
HOP_BY_HOP = frozenset(
    ("connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "proxy-connection", "te",
     "trailer", "transfer-encoding", "upgrade", "expect", "authorization", "content-length")
)  # fmt: skip
NOT_RELAYED = HOP_BY_HOP | {"date", "server"}  # of an answer: the guard sends its own Date and Server
# bcrypt's cost guards a password people choose; this one is 256 random bits, checked on every request.
BCRYPT_ROUNDS = 4


class Upstream:
    """Where the guarded service listens, and the basic-auth header it asks for."""

    def __init__(self, host: str, port: int, password: str) -> None:
        self.host = host
        self.port = port
        self.authorization = "Basic " + base64.b64encode(f"{USER}:{password}".encode()).decode()

    def connection(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(self.host, self.port, timeout=UPSTREAM_TIMEOUT_S)


def write_web_config(path: Path, password: str) -> None:
    """The service's ``--web.config.file``: basic auth with the bcrypt hash of ``password``; readable by its
    owner only, written whole (a reader never sees half of it)."""
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(BCRYPT_ROUNDS)).decode()
    text = (
        "# Generated at each start by serving_local/loopback_guard.py: only the guard in front knows the"
        " password.\n"
        f"basic_auth_users:\n  {USER}: '{hashed}'\n"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.unlink(missing_ok=True)
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as out:
        out.write(text)
    os.replace(temporary, path)


def is_same_origin(origin: str, host_header: str) -> bool:
    return origin.lower() in (f"http://{host_header}".lower(), f"https://{host_header}".lower())


def make_server(host: str, port: int, upstream: Upstream) -> ThreadingHTTPServer:
    """The guard on (host, port), forwarding to ``upstream``; OSError when the port is taken."""

    class GuardHandler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        timeout = CLIENT_TIMEOUT_S
        # Headers and body go out in separate writes: with Nagle's algorithm on, each keep-alive answer
        # waits for the client's delayed ACK (measured: 46 ms a query through the guard, 1.1 ms without).
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: object) -> None:
            """Quiet: the service logs what matters."""

        def do_GET(self) -> None:
            self._forward()

        do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_GET

        def _refusal(self) -> tuple[HTTPStatus, str] | None:
            host_header = self.headers.get("Host", "")
            if not host_allowed(host_header, host, port):
                return HTTPStatus.MISDIRECTED_REQUEST, "unknown Host: this server answers its loopback names"
            origin = self.headers.get("Origin")
            writes = self.command not in ("GET", "HEAD")
            if writes and origin is not None and not is_same_origin(origin, host_header):
                return HTTPStatus.FORBIDDEN, f"cross-origin {self.command} refused (Origin {origin[:100]})"
            if self.headers.get("Transfer-Encoding"):
                return HTTPStatus.LENGTH_REQUIRED, "send a Content-Length, not a chunked body"
            length = self.headers.get("Content-Length", "0").strip()
            if not length.isdigit():
                return HTTPStatus.BAD_REQUEST, "Content-Length must be a byte count"
            if int(length) > MAX_BODY_BYTES:
                return HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"bodies are limited to {MAX_BODY_BYTES} bytes"
            return None

        def _forward(self) -> None:
            refusal = self._refusal()
            if refusal is not None:
                self.close_connection = True
                self._send_text(*refusal)
                return
            body = self.rfile.read(int(self.headers.get("Content-Length", "0").strip()))
            connection = upstream.connection()
            try:
                connection.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
                for name, value in self._forwarded_headers(len(body)):
                    connection.putheader(name, value)
                connection.endheaders(body or None)
                reply = connection.getresponse()
            except TimeoutError:
                self._send_text(HTTPStatus.GATEWAY_TIMEOUT, "the service behind this address did not answer")
                connection.close()
                return
            except (OSError, http.client.HTTPException):  # not listening yet, or gone mid-request
                self._send_text(HTTPStatus.BAD_GATEWAY, "the service behind this address is not answering")
                connection.close()
                return
            try:
                self._relay(reply)
            finally:
                connection.close()

        def _forwarded_headers(self, length: int) -> Iterable[tuple[str, str]]:
            for name, value in self.headers.items():
                if name.lower() not in HOP_BY_HOP:
                    yield name, value
            yield "Authorization", upstream.authorization
            if length or self.command not in SAFE_METHODS:
                yield "Content-Length", str(length)

        def _relay(self, reply: http.client.HTTPResponse) -> None:
            self.send_response(reply.status, reply.reason)
            length = reply.getheader("Content-Length")
            bodiless = self.command == "HEAD" or reply.status in (204, 304) or 100 <= reply.status < 200
            for name, value in reply.getheaders():
                lowered = name.lower()
                if lowered not in NOT_RELAYED and not lowered.startswith("access-control-"):
                    self.send_header(name, value)
            if length is not None:
                self.send_header("Content-Length", length)
            elif not bodiless:
                self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            if bodiless:
                return
            while piece := reply.read1(CHUNK):
                self.wfile.write(piece if length is not None else b"%x\r\n%s\r\n" % (len(piece), piece))
            if length is None:
                self.wfile.write(b"0\r\n\r\n")

        def _send_text(self, status: HTTPStatus, message: str) -> None:
            payload = (message + "\n").encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)

    class GuardServer(ThreadingHTTPServer):
        daemon_threads = True
        allow_reuse_address = True

        def handle_error(self, request: object, client_address: object) -> None:
            if not isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):  # else: the client left
                super().handle_error(request, client_address)

    return GuardServer((host, port), GuardHandler)


def private_port() -> int:
    """A loopback port nothing listens on now (the OS picks it), for the guarded service."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def child_command(command: list[str], upstream: Upstream, web_config: Path) -> list[str]:
    address = f"{upstream.host}:{upstream.port}"
    return [arg.replace("{upstream}", address).replace("{web_config}", str(web_config)) for arg in command]


def run(host: str, port: int, web_config: Path, command: list[str]) -> int:
    """Guard ``command`` until it exits; its exit code (128 + the signal when a signal ended it)."""
    password = secrets.token_urlsafe(32)
    upstream = Upstream("127.0.0.1", private_port(), password)
    try:
        server = make_server(host, port, upstream)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            print(f"error: port {host}:{port} is taken", file=sys.stderr, flush=True)
            return 1
        raise
    write_web_config(web_config, password)
    child = subprocess.Popen(child_command(command, upstream, web_config), preexec_fn=die_with_parent)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda number, _frame: child.send_signal(number))
    threading.Thread(target=server.serve_forever, name="loopback-guard", daemon=True).start()
    print(f"guarding http://{host}:{port} -> {upstream.host}:{upstream.port} ({command[0]})", flush=True)
    code = child.wait()
    server.shutdown()
    server.server_close()
    return code if code >= 0 else 128 - code


def main(argv: list[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else argv
    if "--" not in arguments:
        print("usage: python -m serving_local.loopback_guard --listen HOST:PORT --web-config FILE -- COMMAND",
              file=sys.stderr)  # fmt: skip
        return 2
    split = arguments.index("--")
    parser = argparse.ArgumentParser(
        prog="python -m serving_local.loopback_guard",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--listen", required=True, help="HOST:PORT of the public address")
    parser.add_argument("--web-config", type=Path, required=True, help="where the service's web config goes")
    args = parser.parse_args(arguments[:split])
    command = arguments[split + 1 :]
    host, _, port = args.listen.rpartition(":")
    if not command or not host or not port.isdigit():
        parser.error("need --listen HOST:PORT and a command after --")
    return run(host, int(port), args.web_config, command)


if __name__ == "__main__":
    raise SystemExit(main())
