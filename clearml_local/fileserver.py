"""The file server: artifacts, models and dataset chunks, as plain files under one root directory.

Upload is the SDK's multipart ``POST /`` whose form field name is the object path; download is ``GET /<path>``
and removal ``DELETE /<path>``. Uploads stream to a staging folder outside the served tree and are renamed
into place only when the whole multipart body has arrived, so neither a crash nor a truncated body ever
leaves a half-written object; the staging folder is emptied at start. Paths are confined to the root,
sizes are limited, and stored bytes are only ever served back, never executed or unpickled.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from python_multipart import MultipartParser
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import parse_options_header

from clearml_local.auth_tokens import Authenticator
from clearml_local.errors import ApiError
from clearml_local.http_base import EnvelopeHandler, ThreadedServer, is_disk_full, no_space_message

log = logging.getLogger("clearml_local.files")
CHUNK = 1024 * 1024


MAX_NAME_BYTES = 255
MAX_PATH_CHARS = 1024
# Leftovers of uploads that older versions staged beside their final path.
LEGACY_TEMP_PREFIX = ".upload-"


class UnsafePath(ValueError):
    pass


def safe_path(root: Path, object_path: str) -> Path:
    """The absolute path of an object inside ``root``; rejects ``..``, absolute paths, symlinks and names
    the file system cannot hold (400 rather than an OS error)."""
    cleaned = unquote(object_path).replace("\\", "/")
    parts = [p for p in cleaned.split("/") if p not in ("", ".")]
    if not parts:
        raise UnsafePath("empty object path")
    if any(p == ".." for p in parts) or any("\x00" in p for p in parts):
        raise UnsafePath("the object path leaves the file server root")
    if len(cleaned) > MAX_PATH_CHARS or any(len(p.encode(errors="replace")) > MAX_NAME_BYTES for p in parts):
        raise ApiError(
            status=400,
            subcode=0,
            message=f"Object path too long: at most {MAX_PATH_CHARS} chars, {MAX_NAME_BYTES} bytes a name",
        )
    if any(p.startswith(LEGACY_TEMP_PREFIX) for p in parts):
        raise UnsafePath("names starting with '.upload-' are reserved for uploads in progress")
    candidate = root.joinpath(*parts)
    current = root
    for part in parts:
        current = current / part
        if current.is_symlink():
            raise UnsafePath("the object path goes through a symbolic link")
    if not candidate.resolve().is_relative_to(root.resolve()):
        raise UnsafePath("the object path leaves the file server root")
    return candidate


def relative_name(root: Path, path: Path) -> str:
    return str(path.relative_to(root))


class FileServer(ThreadedServer):
    def __init__(
        self,
        address: tuple[str, int],
        root: Path,
        authenticator: Authenticator,
        max_bytes: int,
        staging: Path | None = None,
    ) -> None:
        super().__init__(address, FileRequestHandler)
        root.mkdir(parents=True, exist_ok=True)
        self.root = root.resolve()
        # Uploads are staged outside the served tree, so a half-written file can never be downloaded.
        self.staging = (staging or root.parent / f"{root.name}.staging").resolve()
        self.authenticator = authenticator
        self.max_bytes = max_bytes
        self._clean_leftovers()

    def _clean_leftovers(self) -> None:
        """Remove what uploads interrupted by a crash left behind."""
        shutil.rmtree(self.staging, ignore_errors=True)
        self.staging.mkdir(parents=True, exist_ok=True)
        for directory, _, files in os.walk(self.root):
            for name in files:
                if name.startswith(LEGACY_TEMP_PREFIX):
                    Path(directory, name).unlink(missing_ok=True)


class FileRequestHandler(EnvelopeHandler):
    server: FileServer

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s - %s", self.address_string(), format % args)

    # --- verbs ------------------------------------------------------------------------------------------

    def do_GET(self) -> None:
        self._guarded(self._download)

    def do_HEAD(self) -> None:
        self._guarded(self._download)

    def do_POST(self) -> None:
        self._guarded(self._upload)

    def do_DELETE(self) -> None:
        self._guarded(self._delete)

    def _guarded(self, action: Any) -> None:
        self.endpoint_name = f"files.{self.command.lower()}"
        self._unread = 0
        try:
            self._unread = self.content_length(self.server.max_bytes, required=self.command == "POST")
            self._authenticate()
            action()
        except ApiError as err:
            self._drain()
            self.send_error_envelope(err.status, err.subcode, err.message)
        except UnsafePath as err:
            self._drain()
            self.send_error_envelope(403, 0, f"Forbidden: {err}")
        except TimeoutError:
            self.close_connection = True
            self.send_error_envelope(408, 0, "Request timed out: the body did not arrive in time")
        except ConnectionError:
            # the client went away (e.g. it read only the start of a download): nobody to answer
            self.close_connection = True
            log.debug("client disconnected during %s", self.command)
        except Exception as exc:
            if is_disk_full(exc):
                self._discard_rest()
                log.error("no space left in %s: %s failed", self.server.root, self.command)
                self.send_error_envelope(507, 0, no_space_message(self.server.root, "the upload"))
                return
            incident = uuid.uuid4().hex[:12]
            log.exception("file server error %s", incident)
            self._drain()
            self.send_error_envelope(500, 0, f"File server error (incident {incident})")

    def _authenticate(self) -> None:
        header = self.headers.get("Authorization", "")
        if not header.startswith("Bearer "):
            raise ApiError(
                status=401,
                subcode=20,
                message="Unauthorized: the file server needs the Bearer token from auth.login",
            )
        self.server.authenticator.identity_from_token(header[len("Bearer ") :])

    def _object(self) -> Path:
        return safe_path(self.server.root, urlsplit(self.path).path)

    def _download(self) -> None:
        path = self._object()
        if not path.is_file():
            raise ApiError(status=404, subcode=0, message="Not found: no object at this path")
        size = path.stat().st_size
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(size))
        self.end_headers()
        if self.command != "HEAD":
            with path.open("rb") as handle:
                shutil.copyfileobj(handle, self.wfile, CHUNK)

    def _delete(self) -> None:
        path = self._object()
        if not path.is_file():
            raise ApiError(status=404, subcode=0, message="Not found: no object at this path")
        path.unlink()
        self._text(200, "deleted")

    def _upload(self) -> None:
        content_type, params = parse_options_header(self.headers.get("Content-Type", ""))
        if content_type != b"multipart/form-data" or not params.get(b"boundary"):
            raise ApiError(
                status=400, subcode=0, message="Upload must be multipart/form-data with a boundary"
            )
        receiver = _UploadReceiver(self.server.root, self.server.staging, urlsplit(self.path).path)
        parser = MultipartParser(params[b"boundary"], receiver.callbacks())
        try:
            while self._unread > 0:
                chunk = self.rfile.read(min(CHUNK, self._unread))
                if not chunk:
                    self.close_connection = True
                    raise ApiError(
                        status=400, subcode=0, message="Upload ended before Content-Length bytes arrived"
                    )
                self._unread -= len(chunk)
                parser.write(chunk)
            parser.finalize()
            receiver.check_complete()
            stored = receiver.commit()
        except MultipartParseError as exc:
            raise ApiError(
                status=400, subcode=0, message=f"Malformed multipart body: {str(exc)[:120]}"
            ) from None
        finally:
            receiver.discard()
        self._text(200, "uploaded: " + ", ".join(stored))

    # --- helpers ------------------------------------------------------------------------------------------

    def _drain(self) -> None:
        """Consume what is left of a rejected request body so the connection stays usable."""
        if 0 < self._unread <= CHUNK * 64 and not self.close_connection:
            self.rfile.read(self._unread)
        elif self._unread:
            self.close_connection = True
        self._unread = 0

    def _discard_rest(self) -> None:
        """Read what is left of the body (within the upload limit) so that the client, still sending,
        gets the reply rather than a reset connection."""
        while self._unread > 0 and (chunk := self.rfile.read(min(CHUNK, self._unread))):
            self._unread -= len(chunk)
        self.close_connection = self.close_connection or self._unread > 0
        self._unread = 0

    def _text(self, status: int, message: str) -> None:
        payload = message.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


class _UploadReceiver:
    """Streams each multipart part into a staging file; ``commit`` renames them into place only once the
    whole body, closing boundary included, has arrived."""

    def __init__(self, root: Path, staging: Path, url_path: str) -> None:
        self.root = root
        self.staging = staging
        self.prefix = unquote(url_path).strip("/")
        self._header_field = b""
        self._header_value = b""
        self._headers: dict[bytes, bytes] = {}
        self._current: tuple[Path, Any] | None = None
        self._done: list[tuple[Path, Path]] = []
        self._ended = False

    def callbacks(self) -> dict[str, Any]:
        return {
            "on_part_begin": self._part_begin,
            "on_header_field": lambda data, start, end: self._add(data[start:end], field=True),
            "on_header_value": lambda data, start, end: self._add(data[start:end], field=False),
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
            "on_end": self._end,
        }

    def _part_begin(self) -> None:
        self._headers = {}

    def _add(self, data: bytes, field: bool) -> None:
        if field:
            self._header_field += data
        else:
            self._header_value += data
        if len(self._header_field) + len(self._header_value) > 16 * 1024:
            raise ApiError(status=400, subcode=0, message="Multipart part header too long")

    def _header_end(self) -> None:
        self._headers[self._header_field.lower()] = self._header_value
        self._header_field, self._header_value = b"", b""

    def _headers_finished(self) -> None:
        _, params = parse_options_header(self._headers.get(b"content-disposition", b""))
        try:
            name = params.get(b"name", b"").decode("utf-8")
        except UnicodeDecodeError:
            raise ApiError(status=400, subcode=0, message="Multipart field name is not UTF-8") from None
        # The SDK sends "/project/task/artifacts/..." meaning "from the file server root".
        if len(name) > 1 and name[1] == ":":
            raise UnsafePath("absolute object path")
        object_path = f"{self.prefix}/{name}" if self.prefix else name
        target = safe_path(self.root, object_path)
        _check_no_conflict(self.root, target)
        fd, temp_name = tempfile.mkstemp(prefix="upload-", dir=self.staging)
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

    def _end(self) -> None:
        self._ended = True

    def check_complete(self) -> None:
        if not self._ended or self._current is not None:
            raise ApiError(
                status=400, subcode=0, message="Upload incomplete: the multipart body has no closing boundary"
            )
        if not self._done:
            raise ApiError(status=400, subcode=0, message="Upload contained no file field")

    def commit(self) -> list[str]:
        stored = []
        for target, temp in self._done:
            _check_no_conflict(self.root, target)
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(temp, target)
            except (FileExistsError, NotADirectoryError, IsADirectoryError):
                raise ApiError(
                    status=409, subcode=0, message=f"Path conflict at {relative_name(self.root, target)!r}"
                ) from None
            stored.append(relative_name(self.root, target))
        self._done = []
        return stored

    def discard(self) -> None:
        if self._current is not None:
            self._current[1].close()
        for _, temp in self._done:
            temp.unlink(missing_ok=True)


def _check_no_conflict(root: Path, target: Path) -> None:
    """409 when a folder of the path is a file, or the object itself is a folder."""
    for parent in reversed(target.parents):
        if parent.is_relative_to(root) and parent.exists() and not parent.is_dir():
            raise ApiError(
                status=409,
                subcode=0,
                message=f"Path conflict: {relative_name(root, parent)!r} is a file, not a folder",
            )
    if target.is_dir():
        raise ApiError(
            status=409, subcode=0, message=f"Path conflict: {relative_name(root, target)!r} is a folder"
        )
