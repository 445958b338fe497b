"""The file server: artifacts, models and dataset chunks, as plain files under one root directory.

Upload is the SDK's multipart ``POST /`` whose form field name is the object path; download is ``GET /<path>``
and removal ``DELETE /<path>``. Uploads stream to a temporary file and are renamed into place only when
complete, so a crash never leaves a half-written object. Paths are confined to the root, sizes are limited,
and stored bytes are only ever served back, never executed or unpickled.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from python_multipart import MultipartParser
from python_multipart.multipart import parse_options_header

from clearml_local.auth_tokens import Authenticator
from clearml_local.errors import ApiError
from clearml_local.http_base import ThreadedServer

log = logging.getLogger("clearml_local.files")
CHUNK = 1024 * 1024


class UnsafePath(ValueError):
    pass


def safe_path(root: Path, object_path: str) -> Path:
    """The absolute path of an object inside ``root``; rejects ``..``, absolute paths and symlinks."""
    cleaned = unquote(object_path).replace("\\", "/")
    parts = [p for p in cleaned.split("/") if p not in ("", ".")]
    if not parts:
        raise UnsafePath("empty object path")
    if any(p == ".." for p in parts) or any("\x00" in p for p in parts):
        raise UnsafePath(f"object path {object_path!r} leaves the file server root")
    candidate = root.joinpath(*parts)
    current = root
    for part in parts:
        current = current / part
        if current.is_symlink():
            raise UnsafePath(f"object path {object_path!r} goes through a symbolic link")
    resolved_root = root.resolve()
    if not candidate.resolve().is_relative_to(resolved_root):
        raise UnsafePath(f"object path {object_path!r} leaves the file server root")
    return candidate


class FileServer(ThreadedServer):
    def __init__(
        self, address: tuple[str, int], root: Path, authenticator: Authenticator, max_bytes: int
    ) -> None:
        super().__init__(address, FileRequestHandler)
        root.mkdir(parents=True, exist_ok=True)
        self.root = root.resolve()
        self.authenticator = authenticator
        self.max_bytes = max_bytes


class FileRequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes: with Nagle's algorithm on, every keep-alive reply waits
    # for the client's delayed ACK (~40 ms per call).
    disable_nagle_algorithm = True
    server: FileServer

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s - %s", self.address_string(), format % args)

    # --- verbs ------------------------------------------------------------------------------------------

    def do_GET(self) -> None:
        self._guarded(self._download, send_body=True)

    def do_HEAD(self) -> None:
        self._guarded(self._download, send_body=False)

    def do_POST(self) -> None:
        self._guarded(self._upload)

    def do_DELETE(self) -> None:
        self._guarded(self._delete)

    def _guarded(self, action: Any, **kwargs: Any) -> None:
        self._unread = int(self.headers.get("Content-Length") or 0)
        try:
            self._authenticate()
            action(**kwargs)
        except ApiError as err:
            self._drain()
            self._text(err.status, err.message)
        except UnsafePath as err:
            self._drain()
            self._text(403, f"Forbidden: {err}")
        except ConnectionError:
            # the client went away (e.g. it read only the start of a download): nobody to answer
            self.close_connection = True
            log.debug("client disconnected during %s %s", self.command, self.path)
        except Exception as exc:
            log.exception("file server error")
            self._drain()
            self._text(500, f"File server error: {exc}")

    def _authenticate(self) -> None:
        header = self.headers.get("Authorization", "")
        if not header.startswith("Bearer "):
            raise ApiError(401, 20, "Unauthorized: the file server needs the Bearer token from auth.login")
        self.server.authenticator.identity_from_token(header[len("Bearer ") :])

    def _download(self, send_body: bool) -> None:
        path = safe_path(self.server.root, urlsplit(self.path).path)
        if not path.is_file():
            raise ApiError(404, 0, f"Not found: {urlsplit(self.path).path}")
        size = path.stat().st_size
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(size))
        self.end_headers()
        if send_body:
            with path.open("rb") as handle:
                shutil.copyfileobj(handle, self.wfile, CHUNK)

    def _delete(self) -> None:
        path = safe_path(self.server.root, urlsplit(self.path).path)
        if not path.is_file():
            raise ApiError(404, 0, f"Not found: {urlsplit(self.path).path}")
        path.unlink()
        self._text(200, "deleted")

    def _upload(self) -> None:
        content_type, params = parse_options_header(self.headers.get("Content-Type", ""))
        if content_type != b"multipart/form-data" or b"boundary" not in params:
            raise ApiError(400, 0, "Upload must be multipart/form-data with a boundary")
        length = self.headers.get("Content-Length")
        if length is None:
            raise ApiError(411, 0, "Upload needs a Content-Length header")
        if int(length) > self.server.max_bytes:
            raise ApiError(
                413, 0, f"Upload of {length} bytes exceeds the limit of {self.server.max_bytes} bytes"
            )
        receiver = _UploadReceiver(self.server.root, urlsplit(self.path).path)
        parser = MultipartParser(params[b"boundary"], receiver.callbacks())
        try:
            while self._unread > 0:
                chunk = self.rfile.read(min(CHUNK, self._unread))
                if not chunk:
                    self.close_connection = True
                    raise ApiError(400, 0, "Upload ended before Content-Length bytes arrived")
                self._unread -= len(chunk)
                parser.write(chunk)
            parser.finalize()
            stored = receiver.commit()
        finally:
            receiver.discard()
        if not stored:
            raise ApiError(400, 0, "Upload contained no file field")
        self._text(200, "uploaded: " + ", ".join(stored))

    # --- helpers ------------------------------------------------------------------------------------------

    def _drain(self) -> None:
        """Consume what is left of a rejected request body so the connection stays usable."""
        if 0 < self._unread <= self.server.max_bytes and not self.close_connection:
            self.rfile.read(self._unread)
        elif self._unread:
            self.close_connection = True
        self._unread = 0

    def _text(self, status: int, message: str) -> None:
        payload = message.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


class _UploadReceiver:
    """Streams each multipart part into a temporary file beside its final path."""

    def __init__(self, root: Path, url_path: str) -> None:
        self.root = root
        self.prefix = unquote(url_path).strip("/")
        self._header_field = b""
        self._header_value = b""
        self._headers: dict[bytes, bytes] = {}
        self._current: tuple[Path, Any] | None = None
        self._done: list[tuple[Path, Path]] = []
        self._error: Exception | None = None

    def callbacks(self) -> dict[str, Any]:
        return {
            "on_part_begin": self._part_begin,
            "on_header_field": lambda data, start, end: self._add(data[start:end], field=True),
            "on_header_value": lambda data, start, end: self._add(data[start:end], field=False),
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
        }

    def _part_begin(self) -> None:
        self._headers = {}

    def _add(self, data: bytes, field: bool) -> None:
        if field:
            self._header_field += data
        else:
            self._header_value += data

    def _header_end(self) -> None:
        self._headers[self._header_field.lower()] = self._header_value
        self._header_field, self._header_value = b"", b""

    def _headers_finished(self) -> None:
        _, params = parse_options_header(self._headers.get(b"content-disposition", b""))
        name = params.get(b"name", b"").decode("utf-8", errors="strict")
        # The SDK sends "/project/task/artifacts/..." meaning "from the file server root".
        if len(name) > 1 and name[1] == ":":
            raise UnsafePath(f"absolute object path {name!r}")
        object_path = f"{self.prefix}/{name}" if self.prefix else name
        target = safe_path(self.root, object_path)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, temp_name = tempfile.mkstemp(prefix=".upload-", dir=target.parent)
        self._current = (target, os.fdopen(fd, "wb"))
        self._done.append((target, Path(temp_name)))

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._current is not None:
            self._current[1].write(data[start:end])

    def _part_end(self) -> None:
        if self._current is not None:
            handle = self._current[1]
            handle.flush()
            os.fsync(handle.fileno())
            handle.close()
            self._current = None

    def commit(self) -> list[str]:
        stored = []
        for target, temp in self._done:
            os.replace(temp, target)
            stored.append(str(target.relative_to(self.root)))
        self._done = []
        return stored

    def discard(self) -> None:
        if self._current is not None:
            self._current[1].close()
        for _, temp in self._done:
            temp.unlink(missing_ok=True)
