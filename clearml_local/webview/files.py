"""The file server's objects through the web view. The file server wants the Bearer token of ``auth.login``,
which a browser does not have; so links to objects on this backend's file server (artifacts, models, debug
samples) point at ``/webview/files/<object path>`` on the view's own origin and its own access rule. Files are
sent inert: images, video and audio as themselves, everything else as a download, all under a sandboxing
Content-Security-Policy.

HTML media (``Logger.report_media`` of a report page) is also shown in a frame of the task's page, from
``/webview/frames/<object path>``: a sandbox of its own origin (scripts may draw the report; no same-origin
access, no top navigation, no popups or forms) that loads nothing from anywhere, framed by the view only."""

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
FRAME_PREFIX = "/webview/frames/"
FRAME_SUFFIXES = (".html", ".htm")
# The iframe's own sandbox attribute (the page's side of the same rule as FRAME_HEADERS' policy).
FRAME_SANDBOX = "allow-scripts"
FRAME_HEADERS = {
    "Content-Security-Policy": (
        f"sandbox {FRAME_SANDBOX}; default-src 'none'; script-src 'unsafe-inline'; "
        "style-src 'unsafe-inline'; img-src data:; font-src data:; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'self'"
    ),
    "Cache-Control": "no-store",
}


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

    def frame_path(self, view_path: str | None) -> str | None:
        """Where the view frames an HTML object it serves (its ``view_path``), else None."""
        if not isinstance(view_path, str) or not view_path.startswith(PREFIX):
            return None
        if not view_path.split("?", 1)[0].lower().endswith(FRAME_SUFFIXES):
            return None
        return FRAME_PREFIX + view_path[len(PREFIX) :]

    def lookup_frame(self, segments: tuple[str, ...]) -> FileObject:
        """The HTML object at the decoded path segments after ``/webview/frames/``, to show in a frame."""
        if not segments or not segments[-1].lower().endswith(FRAME_SUFFIXES):
            raise FileNotServed("No framed page at this address")
        found = self.lookup(segments)
        return FileObject(found.path, "text/html; charset=utf-8", dict(FRAME_HEADERS))

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
