"""The file server's objects through the web view. The file server wants the Bearer token of ``auth.login``,
which a browser does not have; so links to objects on this backend's file server (artifacts, models, debug
samples) point at ``/webview/files/<object path>`` on the view's own origin and its own access rule. Files are
sent inert: images, video and audio as themselves, everything else as a download, all under a sandboxing
Content-Security-Policy."""

from __future__ import annotations

import mimetypes
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from clearml_local.errors import ApiError
from clearml_local.fileserver import UnsafePath, safe_path

PREFIX = "/webview/files/"
# Types a browser shows without running anything (SVG is left out: it can carry script).
INLINE_TYPES = frozenset(
    {
        "image/png",
        "image/jpeg",
        "image/gif",
        "image/webp",
        "image/bmp",
        "video/mp4",
        "video/webm",
        "video/ogg",
        "audio/mpeg",
        "audio/wav",
        "audio/x-wav",
        "audio/ogg",
        "audio/flac",
    }
)
FILE_HEADERS = {"Content-Security-Policy": "sandbox; default-src 'none'", "Cache-Control": "no-store"}


class FileNotServed(Exception):
    """No object at this path, or a path that leaves the file server's root."""


@dataclass(frozen=True)
class FileObject:
    path: Path
    content_type: str
    headers: dict[str, str]


@dataclass(frozen=True)
class FileLinks:
    """Where the file server keeps its objects and the address its URIs start with."""

    root: Path
    url: str

    def view_path(self, uri: str) -> str | None:
        """The view's path of an object URI of this file server (kept percent-encoded), else None."""
        base = self.url.rstrip("/") + "/"
        if not uri.startswith(base):
            return None
        rest = uri[len(base) :].split("?", 1)[0].split("#", 1)[0]
        return PREFIX + rest if rest else None

    def lookup(self, segments: tuple[str, ...]) -> FileObject:
        """The object at the decoded path segments after ``/webview/files/``."""
        try:
            path = safe_path(self.root, "/".join(quote(part, safe="") for part in segments))
        except (UnsafePath, ApiError):
            raise FileNotServed("No file at this address") from None
        if not path.is_file():
            raise FileNotServed("No file at this address")
        return FileObject(path, *served_type(path.name))


def served_type(name: str) -> tuple[str, dict[str, str]]:
    """The Content-Type an object is sent with and its extra headers: media inline, the rest as attachment."""
    guessed = mimetypes.guess_type(name)[0] or ""
    if guessed in INLINE_TYPES:
        return guessed, dict(FILE_HEADERS)
    disposition = "attachment; filename*=UTF-8''" + quote(name, safe="")
    return "application/octet-stream", {**FILE_HEADERS, "Content-Disposition": disposition}
