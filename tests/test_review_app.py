"""The review server over HTTP, in-process (WSGI): routes, token, Host check, file guard, bad bodies."""

from __future__ import annotations

import io
import json
import os
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pandas as pd
import pytest
from PIL import Image

from coreclean.review import make_app
from coreclean.review.security import FileGuard, FileRefused, allowed_host_names, new_token, token_matches
from coreclean.review.thumbnails import ThumbnailCache, ThumbnailError

sys.path.insert(0, str(Path(__file__).parent))
from conftest import make_image_folder  # noqa: E402


# ------------------------------------------------------------------ a tiny WSGI client
class Response:
    def __init__(self, status: str, headers: list[tuple[str, str]], body: bytes) -> None:
        self.status_code = int(status.split()[0])
        self.headers = dict(headers)
        self.body = body

    def json(self) -> Any:
        return json.loads(self.body)


class Client:
    """Call a WSGI app in-process, the way a browser would talk to it."""

    def __init__(self, app: Any, *, token: str | None = None, host: str = "127.0.0.1:8000") -> None:
        self.app, self.token, self.host = app, token, host

    def request(self, method: str, url: str, *, body: bytes | None = None, json_body: Any = None,
                content_type: str | None = None, token: str | None = "default", headers: dict | None = None,
                content_length: str | None = None) -> Response:
        parts = urlsplit(url)
        query = parts.query
        token = self.token if token == "default" else token
        if token is not None:
            query = f"{query}&token={token}" if query else f"token={token}"
        if json_body is not None:
            body = json.dumps(json_body).encode()
            content_type = content_type or "application/json"
        body = body or b""
        environ = {
            "REQUEST_METHOD": method, "PATH_INFO": parts.path, "QUERY_STRING": query,
            "CONTENT_TYPE": content_type or "", "CONTENT_LENGTH": content_length or str(len(body)),
            "HTTP_HOST": self.host, "wsgi.input": io.BytesIO(body), "wsgi.url_scheme": "http",
            "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8000",
        }
        for key, value in (headers or {}).items():
            environ["HTTP_" + key.upper().replace("-", "_")] = value
        captured: dict[str, Any] = {}

        def start_response(status: str, response_headers: list[tuple[str, str]]) -> None:
            captured["status"], captured["headers"] = status, response_headers

        chunks = self.app(environ, start_response)
        return Response(captured["status"], captured["headers"], b"".join(chunks))

    def get(self, url: str, **kwargs: Any) -> Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, payload: Any = None, **kwargs: Any) -> Response:
        return self.request("POST", url, json_body=payload if payload is not None else {}, **kwargs)


# ------------------------------------------------------------------ security and thumbnails, no session needed
def test_tokens_are_random_and_compared_exactly():
    first, second = new_token(), new_token()
    assert first != second and len(first) >= 32
    assert token_matches(first, first)
    assert not token_matches(second, first)
    assert not token_matches("", first) and not token_matches(None, first)
    assert not token_matches(first[:-1], first)
    assert not token_matches("ünï", first)


def test_allowed_hosts_on_loopback_only():
    names = allowed_host_names("127.0.0.1", 8123)
    assert {"127.0.0.1:8123", "localhost:8123"} <= names
    assert "evil.example:8123" not in names
    assert allowed_host_names("0.0.0.0", 8123) is None


def test_file_guard_refuses_unknown_ids_symlink_escapes_and_non_files(tmp_path):
    root = tmp_path / "data"
    make_image_folder(root, class_names=("a", "b"), per_class=2)
    outside = tmp_path / "secret.png"
    outside.write_bytes((root / "a" / "img_0.png").read_bytes())
    (root / "a" / "link.png").symlink_to(outside)
    (root / "a" / "folder.png").mkdir()
    paths = {"ok": root / "a" / "img_0.png", "escape": root / "a" / "link.png", "dir": root / "a" / "folder.png",
             "gone": root / "b" / "missing.png", "dots": root / "a" / ".." / ".." / "secret.png"}
    guard = FileGuard(paths, root=root)
    assert guard.resolve("ok") == (root / "a" / "img_0.png").resolve()
    for sample_id, status in [("nope", 404), ("../secret.png", 404), ("escape", 403), ("dir", 403),
                              ("gone", 404), ("dots", 403)]:
        with pytest.raises(FileRefused) as info:
            guard.resolve(sample_id)
        assert info.value.status == status, sample_id


def test_file_guard_root_defaults_to_the_deepest_common_folder(tmp_path):
    make_image_folder(tmp_path / "data", class_names=("a", "b"), per_class=1)
    guard = FileGuard({"x": tmp_path / "data" / "a" / "img_0.png", "y": tmp_path / "data" / "b" / "img_0.png"})
    assert guard.root == (tmp_path / "data").resolve()


def test_thumbnails_are_small_jpegs_checked_against_the_recorded_hash(tmp_path):
    from coreclean._internal.hashing import sha256_file

    image = tmp_path / "big.png"
    Image.new("RGB", (900, 300), (200, 30, 30)).save(image)
    sha256 = sha256_file(image)
    cache = ThumbnailCache(tmp_path / "thumbs")
    data = cache.get(image, sha256=sha256, size=200)
    with Image.open(io.BytesIO(data)) as thumb:
        assert thumb.format == "JPEG" and max(thumb.size) == 256  # snapped up to a standard size
    assert list((tmp_path / "thumbs").rglob("*.jpg"))  # cached on disk
    # A second cache (a restarted server) reads the disk copy without decoding the image again.
    image.write_bytes(b"not an image any more")
    assert ThumbnailCache(tmp_path / "thumbs").get(image, sha256=sha256, size=256) == data
    with pytest.raises(ThumbnailError) as info:
        ThumbnailCache().get(image, sha256="0" * 64, size=128)
    assert info.value.status == 409


def test_undecodable_file_with_matching_hash_is_422(tmp_path):
    from coreclean._internal.hashing import sha256_file

    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG garbage")
    with pytest.raises(ThumbnailError) as info:
        ThumbnailCache().get(bad, sha256=sha256_file(bad), size=64)
    assert info.value.status == 422
