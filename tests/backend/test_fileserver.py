"""The file server: multipart upload (field name = object path), download, delete, auth, path confinement,
size limit, and atomic uploads."""

from __future__ import annotations

import http.client
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, urlsplit

import pytest
import requests

from tests.backend.backend_harness import BackendHarness, wait_for

SMALL_LIMIT = 1024
POLL_DEADLINE_S = 15.0


def auth(backend: BackendHarness) -> dict[str, str]:
    return {"Authorization": f"Bearer {backend.token}"}


def upload(backend: BackendHarness, name: str, content: bytes, url_path: str = "/") -> requests.Response:
    files = {name: ("upload.bin", content, "application/octet-stream")}
    return requests.post(backend.files_url + url_path, files=files, headers=auth(backend), timeout=30)


def object_url(backend: BackendHarness, path: str) -> str:
    return f"{backend.files_url}/{quote(path)}"


def raw_request(backend: BackendHarness, method: str, raw_path: str, token: bool = True) -> tuple[int, bytes]:
    """A request whose path is sent exactly as given (no client-side normalisation of ``..``)."""
    address = urlsplit(backend.files_url)
    connection = http.client.HTTPConnection(address.hostname or "", address.port, timeout=30)
    try:
        connection.request(method, raw_path, headers=auth(backend) if token else {})
        reply = connection.getresponse()
        return reply.status, reply.read()
    finally:
        connection.close()


def files_outside(backend: BackendHarness) -> set[Path]:
    """Everything in the data directory that is not under the file server root or the database."""
    root = backend.files_root
    return {
        p
        for p in backend.root.rglob("*")
        if p.is_file()
        and root not in p.parents
        and not p.name.startswith("backend.")
        and "work" not in p.parts
    }


# --- upload, download, delete -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["plain.bin", "dir a/sub dir/file with spaces.csv", "ünïcödé/模型 v1.pkl", "/leading/slash.txt"],
)
def test_upload_then_download_same_bytes(backend: BackendHarness, name: str) -> None:
    content = os.urandom(100_000) + name.encode()
    reply = upload(backend, name, content)
    assert reply.status_code == 200, reply.text
    stored = backend.files_root / name.lstrip("/")
    assert stored.read_bytes() == content
    download = requests.get(object_url(backend, name.lstrip("/")), headers=auth(backend), timeout=30)
    assert download.status_code == 200
    assert download.content == content
    head = requests.head(object_url(backend, name.lstrip("/")), headers=auth(backend), timeout=30)
    assert (head.status_code, int(head.headers["Content-Length"])) == (200, len(content))


def test_upload_path_prefix_from_the_url(backend: BackendHarness) -> None:
    assert upload(backend, "inner.txt", b"prefixed", url_path="/outer/").status_code == 200
    assert (backend.files_root / "outer" / "inner.txt").read_bytes() == b"prefixed"


def test_upload_replaces_an_existing_object(backend: BackendHarness) -> None:
    for content in (b"first version", b"second"):
        assert upload(backend, "replaced/object.txt", content).status_code == 200
    assert (backend.files_root / "replaced" / "object.txt").read_bytes() == b"second"


def test_delete_removes_the_object(backend: BackendHarness) -> None:
    assert upload(backend, "deleted/object.bin", b"bytes").status_code == 200
    url = object_url(backend, "deleted/object.bin")
    assert requests.delete(url, headers=auth(backend), timeout=30).status_code == 200
    assert not (backend.files_root / "deleted" / "object.bin").exists()
    assert requests.get(url, headers=auth(backend), timeout=30).status_code == 404
    assert requests.delete(url, headers=auth(backend), timeout=30).status_code == 404


def test_missing_object_is_404(backend: BackendHarness) -> None:
    assert (
        requests.get(object_url(backend, "no/such/file"), headers=auth(backend), timeout=30).status_code
        == 404
    )


# --- authentication -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["GET", "HEAD", "DELETE", "POST"])
@pytest.mark.parametrize("authorization", [None, "Bearer forged"], ids=["missing", "invalid"])
def test_requests_without_a_valid_token_are_401(
    backend: BackendHarness, method: str, authorization: str | None
) -> None:
    assert upload(backend, "guarded.txt", b"secret").status_code == 200
    headers = {"Authorization": authorization} if authorization else {}
    files = {"intruder.txt": ("f", b"x")} if method == "POST" else None
    url = object_url(backend, "" if method == "POST" else "guarded.txt")
    reply = requests.request(method, url, headers=headers, files=files, timeout=30)
    assert reply.status_code == 401
    assert (backend.files_root / "guarded.txt").read_bytes() == b"secret"
    assert not (backend.files_root / "intruder.txt").exists()


# --- path confinement ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "../escape.txt",
        "a/../../escape.txt",
        "..\\escape.txt",
        "C:/escape.txt",
        "nul\x00byte.txt",
        "%2e%2e/escape.txt",
    ],
)
def test_upload_outside_the_root_is_refused(backend: BackendHarness, name: str) -> None:
    before = files_outside(backend)
    reply = upload(backend, name, b"should not be written")
    assert reply.status_code == 403, reply.text
    assert files_outside(backend) == before
    assert not list(backend.files_root.rglob("*escape.txt")) and not list(
        backend.files_root.rglob("*byte.txt")
    )


@pytest.mark.parametrize(
    "raw_path", ["/../backend.sqlite", "/%2e%2e/backend.sqlite", "/a/%2E%2E/%2e%2e/credentials.json"]
)
@pytest.mark.parametrize("method", ["GET", "DELETE"])
def test_traversal_in_the_url_is_refused(backend: BackendHarness, raw_path: str, method: str) -> None:
    status, body = raw_request(backend, method, raw_path)
    assert status == 403, body
    assert (backend.backend.config.credentials_path).is_file()


def test_null_byte_in_the_url_is_refused(backend: BackendHarness) -> None:
    status, _ = raw_request(backend, "GET", "/plain%00.bin")
    assert status == 403


@pytest.fixture
def escape_link(backend: BackendHarness) -> Iterator[tuple[Path, Path]]:
    """A symlink inside the file server root that points at a directory outside it."""
    outside = backend.root / "outside"
    outside.mkdir(exist_ok=True)
    (outside / "secret.txt").write_bytes(b"outside secret")
    link = backend.files_root / "link"
    link.symlink_to(outside, target_is_directory=True)
    try:
        yield link, outside
    finally:
        link.unlink()


def test_symlink_escape_is_refused(backend: BackendHarness, escape_link: tuple[Path, Path]) -> None:
    _, outside = escape_link
    assert upload(backend, "link/evil.txt", b"evil").status_code == 403
    assert not (outside / "evil.txt").exists()
    for method in ("GET", "DELETE"):
        assert (
            requests.request(
                method, object_url(backend, "link/secret.txt"), headers=auth(backend), timeout=30
            ).status_code
            == 403
        )
    assert (outside / "secret.txt").read_bytes() == b"outside secret"


def test_symlinked_file_is_not_served(backend: BackendHarness, escape_link: tuple[Path, Path]) -> None:
    _, outside = escape_link
    file_link = backend.files_root / "file-link.txt"
    file_link.symlink_to(outside / "secret.txt")
    try:
        reply = requests.get(object_url(backend, "file-link.txt"), headers=auth(backend), timeout=30)
        assert reply.status_code == 403
        assert b"outside secret" not in reply.content
    finally:
        file_link.unlink()


# --- size limit and aborted uploads -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BackendHarness]:
    harness = BackendHarness(tmp_path_factory.mktemp("small"), max_upload_bytes=SMALL_LIMIT).start()
    try:
        yield harness
    finally:
        harness.stop()


def test_upload_over_the_size_limit_is_413(small_backend: BackendHarness) -> None:
    reply = upload(small_backend, "big/object.bin", os.urandom(SMALL_LIMIT * 4))
    assert reply.status_code == 413
    assert str(SMALL_LIMIT) in reply.text
    assert not (small_backend.files_root / "big").exists()
    assert upload(small_backend, "small/object.bin", b"fits").status_code == 200


def test_aborted_upload_leaves_no_partial_file(backend: BackendHarness) -> None:
    target = backend.files_root / "aborted" / "big.bin"
    boundary = "test-boundary-0123456789"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="aborted/big.bin"; filename="big.bin"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    declared = len(head) + 8 * 1024 * 1024
    request = (
        f"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {backend.token}\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {declared}\r\n\r\n"
    ).encode()
    address = urlsplit(backend.files_url)
    staging = backend.backend.files.staging
    with socket.create_connection((address.hostname, address.port), timeout=30) as client:
        client.sendall(request + head + os.urandom(3 * 1024 * 1024))
        # the server is streaming the part into a staging file outside the served tree
        wait_for(lambda: any(staging.iterdir()), "the upload to start", POLL_DEADLINE_S)
        assert not target.exists()
    wait_for(lambda: not any(staging.iterdir()), "the partial upload to be discarded", POLL_DEADLINE_S)
    assert not target.exists()
    assert not target.parent.exists()


# --- incomplete bodies, conflicts, names, leftovers ---------------------------------------------------------


def multipart(
    name: str, content: bytes, boundary: str = "b0undary", closed: bool = True
) -> tuple[bytes, str]:
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="f.bin"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode() + content
    if closed:
        body += f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def post_multipart(backend: BackendHarness, body: bytes, content_type: str) -> requests.Response:
    headers = {**auth(backend), "Content-Type": content_type}
    return requests.post(backend.files_url + "/", data=body, headers=headers, timeout=30)


def assert_no_server_path(backend: BackendHarness, reply: requests.Response) -> None:
    assert str(backend.root) not in reply.text
    assert "Traceback" not in reply.text


def test_upload_without_its_closing_boundary_is_not_stored(backend: BackendHarness) -> None:
    body, content_type = multipart("truncated/object.bin", b"x" * 5000, closed=False)
    reply = post_multipart(backend, body, content_type)
    assert reply.status_code == 400
    assert "closing boundary" in reply.json()["meta"]["result_msg"]
    assert not (backend.files_root / "truncated").exists()
    assert (
        requests.get(
            object_url(backend, "truncated/object.bin"), headers=auth(backend), timeout=30
        ).status_code
        == 404
    )
    complete, content_type = multipart("truncated/object.bin", b"x" * 5000)
    assert post_multipart(backend, complete, content_type).status_code == 200


def test_upload_under_a_file_is_409_without_server_paths(backend: BackendHarness) -> None:
    assert upload(backend, "conflict/file.txt", b"a file").status_code == 200
    reply = upload(backend, "conflict/file.txt/child.txt", b"under a file")
    assert reply.status_code == 409
    assert "conflict/file.txt" in reply.json()["meta"]["result_msg"]
    assert_no_server_path(backend, reply)
    onto_folder = upload(backend, "conflict", b"onto a folder")
    assert onto_folder.status_code == 409
    assert (backend.files_root / "conflict" / "file.txt").read_bytes() == b"a file"


@pytest.mark.parametrize(
    "name", ["n" * 300 + ".bin", "/".join(["deep"] * 300) + "/x.bin"], ids=["long-name", "long-path"]
)
def test_over_long_names_are_400(backend: BackendHarness, name: str) -> None:
    reply = upload(backend, name, b"x")
    assert reply.status_code == 400
    assert "too long" in reply.json()["meta"]["result_msg"]
    assert_no_server_path(backend, reply)
    got = requests.get(object_url(backend, name), headers=auth(backend), timeout=30)
    assert got.status_code == 400
    assert_no_server_path(backend, got)


def test_leftovers_of_interrupted_uploads_are_removed_at_start_and_never_served(tmp_path: Path) -> None:
    first = BackendHarness(tmp_path).start()
    staging = first.backend.files.staging
    first.stop()
    (staging / "upload-crashed").write_bytes(b"half an upload")
    legacy = first.files_root / "models" / ".upload-abc123"
    legacy.parent.mkdir(parents=True)
    legacy.write_bytes(b"half an upload")

    second = BackendHarness(tmp_path).start()
    try:
        assert list(staging.iterdir()) == []
        assert not legacy.exists()
        reply = requests.get(object_url(second, "models/.upload-abc123"), headers=auth(second), timeout=30)
        assert reply.status_code in (403, 404)
        assert b"half an upload" not in reply.content
    finally:
        second.stop()
