"""The review server over HTTP, in-process (WSGI): routes, token, Host check, file guard, bad bodies."""

from __future__ import annotations

import io
import json
import shutil
import socket
import sqlite3
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import pytest
from PIL import Image

from coreclean.review import make_app, make_server
from coreclean.review.security import FileGuard, FileRefused, allowed_host_names, new_token, token_matches
from coreclean.review.thumbnails import ThumbnailCache, ThumbnailError

sys.path.insert(0, str(Path(__file__).parent))
from conftest import CLASS_NAMES, REVIEW_CLEANED as CLEANED, build_review_session as build_session  # noqa: E402
from conftest import make_image_folder  # noqa: E402

"""Classes the test session cleans ("chat noir", "dog"); the third ("ünï cødé") is only a label."""


def count_decisions(session_path: Path) -> int:
    """Decision rows committed to the file, read through a connection of our own."""
    with sqlite3.connect(session_path) as conn:
        return conn.execute("SELECT COUNT(*) FROM decisions").fetchone()[0]


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One started session per module (building it costs ~1 s); tests that write copy it."""
    return build_session(tmp_path_factory.mktemp("review"))


def copy_session(template: Path, directory: Path) -> Path:
    target = directory / template.name
    shutil.copyfile(template, target)  # closed, so the WAL is checkpointed into the main file
    return target


@pytest.fixture
def client(template: Path, tmp_path: Path):
    """A client for a fresh app on a private copy of the session."""
    app = make_app(copy_session(template, tmp_path))
    yield Client(app, token=app.token)
    app.close()


@pytest.fixture(scope="module")
def shared(template: Path, tmp_path_factory: pytest.TempPathFactory):
    """One app for the tests that only read or are refused (they must write nothing)."""
    path = copy_session(template, tmp_path_factory.mktemp("shared"))
    app = make_app(path)
    yield Client(app, token=app.token), path
    app.close()


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
    outside.write_bytes(b"not the embedded image")
    (root / "a" / "link.png").symlink_to(outside)
    (root / "a" / "folder.png").mkdir()
    linked = tmp_path / "elsewhere" / "photo.png"  # a dataset built from links: embed follows them
    linked.parent.mkdir()
    linked.write_bytes((root / "b" / "img_0.png").read_bytes())
    (root / "b" / "linked.png").symlink_to(linked)
    paths = {"ok": root / "a" / "img_0.png", "escape": root / "a" / "link.png", "dir": root / "a" / "folder.png",
             "gone": root / "b" / "missing.png", "dots": root / "a" / ".." / ".." / "secret.png",
             "linked": root / "b" / "linked.png"}
    from coreclean._internal.hashing import sha256_file

    embedded = {"escape": sha256_file(root / "a" / "img_0.png"), "dots": sha256_file(root / "a" / "img_0.png"),
                "linked": sha256_file(linked)}
    guard = FileGuard(paths, root=root, hashes=embedded)
    assert guard.resolve("ok") == (root / "a" / "img_0.png").resolve()
    assert guard.resolve("linked") == linked.resolve()  # agrees with embed: a link to the embedded bytes is served
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


# ------------------------------------------------------------------ the app over a real session
def test_state_shows_the_batch_with_labels_suggestions_scores_and_typical_images(shared):
    client, _ = shared
    response = client.get("/api/state")
    assert response.status_code == 200, response.body
    assert response.headers["Cache-Control"] == "no-store"
    state = response.json()
    assert state["round"] == 1 and state["n_batch"] == 3 * len(CLEANED) and state["n_decided"] == 0
    assert state["class_names"] == sorted(CLASS_NAMES)
    row = state["batch"][0]
    assert set(row) >= {"id", "label", "suggested_label", "suggested_prob", "score", "class", "decision"}
    assert "path" not in row  # the page never learns file paths
    assert row["label"] in CLEANED and 0 <= row["suggested_prob"] <= 1
    for name in {r["label"] for r in state["batch"]} | {r["suggested_label"] for r in state["batch"]}:
        assert 1 <= len(state["typical"][name]) <= 4
    assert state["rounds"][0]["round"] == 0  # the baseline
    typical = client.get("/api/typical?class=" + quote(CLASS_NAMES[2])).json()
    assert typical["class"] == CLASS_NAMES[2] and typical["ids"]


def test_images_are_served_by_id_as_jpeg_thumbnails(shared):
    client, _ = shared
    sample_id = client.get("/api/state").json()["batch"][0]["id"]
    response = client.get(f"/api/image?id={quote(sample_id)}&size=64")
    assert response.status_code == 200, response.body
    assert response.headers["Content-Type"] == "image/jpeg"
    with Image.open(io.BytesIO(response.body)) as image:
        assert image.format == "JPEG"
    assert client.get(f"/api/image?id={quote(sample_id)}&size=big").status_code == 400


def test_every_request_needs_the_token(shared):
    client, path = shared
    before = count_decisions(path)
    sample_id = client.get("/api/state").json()["batch"][0]["id"]
    requests = [("GET", "/"), ("GET", "/static/review.js"), ("GET", "/api/state"),
                ("GET", f"/api/image?id={quote(sample_id)}"), ("GET", "/api/typical?class=dog"),
                ("POST", "/api/decide"), ("POST", "/api/undo"), ("POST", "/api/round"), ("GET", "/nope")]
    for bad in (None, "", "wrong", client.token[:-1], client.token.upper()):
        for method, url in requests:
            response = client.request(method, url, token=bad, json_body={"id": sample_id, "action": "keep"}
                                      if method == "POST" else None)
            assert response.status_code == 403, (bad, method, url)
            assert "token" in response.json()["error"]
    assert count_decisions(path) == before
    # The header works as well as the query parameter.
    assert client.get("/api/state", token=None, headers={"X-Coreclean-Token": client.token}).status_code == 200


def test_page_and_static_files_and_their_security_headers(shared):
    client, _ = shared
    page = client.get("/")
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert f'content="{client.token}"'.encode() in page.body and b"{{token}}" not in page.body
    assert "default-src 'none'" in page.headers["Content-Security-Policy"]
    assert page.headers["Referrer-Policy"] == "no-referrer"
    assert page.headers["X-Frame-Options"] == "DENY"
    assert client.get("/static/review.js").headers["Content-Type"].startswith("text/javascript")
    assert client.get("/static/review.css").headers["Content-Type"].startswith("text/css")
    for url in ("/static/../app.py", "/static/%2e%2e/app.py", "/static/..%2fapp.py", "/static/review.html",
                "/static/", "/static//etc/passwd", "/../../etc/passwd", "/api/image/../../etc/passwd",
                "/api", "/api/state/", "/index.html"):
        assert client.get(url).status_code == 404, url
    assert client.request("POST", "/").status_code == 405
    assert client.request("DELETE", "/api/state").status_code == 405
    assert client.get("/api/decide").status_code == 405


def test_images_cannot_leave_the_dataset(shared, template):
    client, _ = shared
    data = template.parent / "data"
    outside = template.parent / "outside.png"
    Image.new("RGB", (8, 8), (1, 2, 3)).save(outside)
    for sample_id in ("../outside.png", str(outside), "/etc/passwd", "../../../../etc/passwd",
                      "dog/../../outside.png", "", "dog", "nope.png", "%2e%2e/outside.png", "dog/img_0.png\x00"):
        response = client.get(f"/api/image?id={quote(sample_id)}")
        assert response.status_code == 404, sample_id
    # A dataset file swapped for a symlink out of the dataset root is refused, cached or not.
    victim = data / "dog" / "img_0.png"
    assert client.get(f"/api/image?id={quote('dog/img_0.png')}").status_code == 200
    saved = victim.read_bytes()
    victim.unlink()
    victim.symlink_to(outside)
    try:
        response = client.get(f"/api/image?id={quote('dog/img_0.png')}")
        assert response.status_code == 403 and "outside the dataset root" in response.json()["error"]
    finally:
        victim.unlink()
        victim.write_bytes(saved)


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        (b"{not json", "application/json", 400),
        (b"\xff\xfe", "application/json", 400),
        (b"[]", "application/json", 400),
        (b'"keep"', "application/json", 400),
        (b"null", "application/json", 400),
        (b'{"id": "x", "action": "keep"}', "text/plain", 415),
        (b'{"id": "x", "action": "keep"}', "application/x-www-form-urlencoded", 415),
        (b'{"id": "x", "action": "keep"}', "", 415),
        (b'{"action": "keep"}', "application/json", 400),
        (b'{"id": "ID", "action": "keep", "extra": 1}', "application/json", 400),
        (b'{"id": "ID", "action": "approve"}', "application/json", 400),
        (b'{"id": "ID", "action": ["keep"]}', "application/json", 400),
        (b'{"id": 7, "action": "keep"}', "application/json", 400),
        (b'{"id": "no/such.png", "action": "keep"}', "application/json", 404),
        (b'{"id": "ID", "action": "relabel"}', "application/json", 400),
        (b'{"id": "ID", "action": "relabel", "new_label": "wolf"}', "application/json", 400),
        (b'{"id": "ID", "action": "relabel", "new_label": 1}', "application/json", 400),
        (b'{"id": "ID", "action": "keep", "new_label": "dog"}', "application/json", 400),
        (b'{"id": "ID", "action": "keep", "weight": 0.5}', "application/json", 400),
        (b'{"id": "ID", "action": "downweight", "weight": true}', "application/json", 400),
        (b'{"id": "ID", "action": "downweight", "weight": 7}', "application/json", 400),
        (b'{"id": "ID", "action": "downweight", "weight": "half"}', "application/json", 400),
        (b'{"id": "ID", "action": "keep"}' + b" " * 20000, "application/json", 413),
    ],
)
def test_malformed_decisions_are_refused_and_write_nothing(shared, body, content_type, status):
    client, path = shared
    batch = client.get("/api/state").json()["batch"]
    body = body.replace(b"ID", batch[0]["id"].encode())
    before = count_decisions(path)
    response = client.request("POST", "/api/decide", body=body, content_type=content_type)
    assert response.status_code == status, response.body
    assert response.json()["error"]
    assert count_decisions(path) == before
    assert client.get("/api/state").json()["n_decided"] == 0


def test_deeply_nested_json_is_refused_with_a_clear_400(shared):
    # Was a 500 (RecursionError inside json.loads) for 8,000 nested arrays, well under the size limit.
    client, path = shared
    sample_id = client.get("/api/state").json()["batch"][0]["id"]
    body = b'{"id": "' + sample_id.encode() + b'", "action": "keep", "weight": ' + b"[" * 8000 + b"]" * 8000 + b"}"
    response = client.request("POST", "/api/decide", body=body, content_type="application/json")
    assert response.status_code == 400, response.body
    assert "nested too deeply" in response.json()["error"]
    assert count_decisions(path) == 0


def test_relabel_to_the_current_label_is_refused_by_the_session(shared):
    client, path = shared
    row = client.get("/api/state").json()["batch"][0]
    response = client.post("/api/decide", {"id": row["id"], "action": "relabel", "new_label": row["label"]})
    assert response.status_code == 400 and "use keep" in response.json()["error"]
    assert count_decisions(path) == 0


@pytest.mark.parametrize("length", ["-1", "abc", "99"])
def test_bad_content_length_is_refused(shared, length):
    client, path = shared
    response = client.request("POST", "/api/undo", body=b"{}", content_type="application/json",
                              content_length=length)
    assert response.status_code == 400
    assert count_decisions(path) == 0


def test_undo_and_round_refuse_what_cannot_be_done(shared):
    client, path = shared
    assert client.post("/api/undo", {"scope": "everything"}).status_code == 400
    nothing = client.post("/api/undo", {"scope": "decision"})
    assert nothing.status_code == 409 and "no decision to undo" in nothing.json()["error"]
    early = client.post("/api/round", {})
    assert early.status_code == 409 and "not decided yet" in early.json()["error"]
    assert client.post("/api/round", {"force": True}).status_code == 400
    assert client.get("/api/typical").status_code == 400
    assert client.get("/api/typical?class=wolf").status_code == 404
    assert count_decisions(path) == 0


def test_host_header_is_checked_when_given(template, tmp_path):
    app = make_app(copy_session(template, tmp_path), allowed_hosts=allowed_host_names("127.0.0.1", 8000))
    try:
        client = Client(app, token=app.token)
        assert client.get("/api/state").status_code == 200
        for host in ("evil.example:8000", "127.0.0.1:9999", "", "127.0.0.1.evil.example:8000"):
            client.host = host
            assert client.get("/api/state").status_code == 421, host
    finally:
        app.close()


def test_decisions_land_in_the_database_as_made_and_survive_a_restart(client, template, tmp_path):
    path = tmp_path / template.name
    batch = client.get("/api/state").json()["batch"]
    first, second, third = batch[0], batch[1], batch[2]
    other = next(name for name in CLASS_NAMES if name != first["label"])
    steps = [
        ({"id": first["id"], "action": "relabel", "new_label": other}, 1),
        ({"id": second["id"], "action": "drop"}, 2),
        ({"id": third["id"], "action": "downweight", "weight": 0.25}, 3),
        ({"id": batch[3]["id"], "action": "skip"}, 4),
    ]
    for body, n_rows in steps:
        response = client.post("/api/decide", body)
        assert response.status_code == 200, response.body
        assert count_decisions(path) == n_rows  # committed before the answer
    state = response.json()
    assert state["n_decided"] == 4
    decisions = {row["id"]: row["decision"] for row in state["batch"]}
    assert decisions[first["id"]] == {"action": "relabel", "new_label": other, "weight": None, "order": 1}
    assert decisions[third["id"]]["weight"] == 0.25
    # "order" is the decision's id in the file: an undo takes back the highest.
    assert [decisions[row["id"]]["order"] for row in batch[:4]] == [1, 2, 3, 4]
    # Changing one's mind is a new decision that supersedes the old one.
    assert client.post("/api/decide", {"id": second["id"], "action": "keep"}).json()["n_decided"] == 4
    undone = client.post("/api/undo", {"scope": "decision"}).json()
    assert {row["id"]: row["decision"] for row in undone["batch"]}[second["id"]]["action"] == "drop"
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT action, reviewer FROM decisions ORDER BY id").fetchall()
    assert [action for action, _ in rows] == ["relabel", "drop", "downweight", "skip", "keep", "undo"]
    assert {reviewer for _, reviewer in rows} == {"review-page"}
    # "Kill the server": a new app on the same file shows the batch where it was left.
    client.app.close()
    reopened = make_app(path)
    try:
        again = Client(reopened, token=reopened.token).get("/api/state").json()
        assert [row["id"] for row in again["batch"]] == [row["id"] for row in batch]
        assert again["n_decided"] == 4
        assert {row["id"]: row["decision"] for row in again["batch"]} == \
            {row["id"]: row["decision"] for row in undone["batch"]}
    finally:
        reopened.close()


def test_closing_the_round_rescores_and_offers_the_next_batch(client):
    state = client.get("/api/state").json()
    for row in state["batch"]:
        body = {"id": row["id"], "action": "keep"}
        if row["suggested_label"] != row["label"]:
            body = {"id": row["id"], "action": "relabel", "new_label": row["suggested_label"]}
        assert client.post("/api/decide", body).status_code == 200
    response = client.post("/api/round", {})
    assert response.status_code == 200, response.body
    result, after = response.json()["result"], response.json()["state"]
    assert result["round"] == 1 and result["n_reviewed"] == len(state["batch"])
    assert 0 <= result["hit_rate"] <= 1 and 0 <= result["auroc"] <= 1
    assert isinstance(result["verdict"], str) and isinstance(result["plateau"], bool)
    assert after["round"] == 2 and [r["round"] for r in after["rounds"]] == [0, 1]
    assert not {r["id"] for r in after["batch"]} & {r["id"] for r in state["batch"]}
    # Undoing the round brings the old batch back, decisions revoked.
    reopened = client.post("/api/undo", {"scope": "round"}).json()
    assert reopened["round"] == 1 and reopened["n_decided"] == 0
    assert [r["id"] for r in reopened["batch"]] == [r["id"] for r in state["batch"]]


def test_a_crashing_handler_answers_500_and_the_app_keeps_serving(client, monkeypatch):
    def broken() -> dict:
        raise RuntimeError("boom")

    session = client.app._call(lambda: client.app._session)
    monkeypatch.setattr(session, "status", broken)
    response = client.get("/api/state")
    assert response.status_code == 500 and "boom" not in response.json()["error"]
    monkeypatch.undo()
    assert client.get("/api/state").status_code == 200


def test_threaded_server_answers_concurrent_requests_and_survives_garbage(template, tmp_path):
    server = make_server(copy_session(template, tmp_path), port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        host, port = server.server_address[:2]
        assert server.url.startswith(f"http://127.0.0.1:{port}/?token=")
        with socket.create_connection((host, port), timeout=5) as raw:  # not HTTP at all
            raw.sendall(b"\x16\x03\x01 garbage\r\n\r\n")
            raw.recv(1024)
        with socket.create_connection((host, port), timeout=5) as raw:  # a client that hangs up mid-request
            raw.sendall(b"POST /api/decide HTTP/1.1\r\nContent-Length: 100\r\n\r\n{")
        base = f"http://127.0.0.1:{port}"
        results: list[int] = []

        def fetch(url: str) -> None:
            with urllib.request.urlopen(url, timeout=10) as response:
                results.append(response.status)

        token = quote(server.get_app().token)
        threads = [threading.Thread(target=fetch, args=(f"{base}/api/state?token={token}",)) for _ in range(6)]
        for worker in threads:
            worker.start()
        for worker in threads:
            worker.join()
        assert results == [200] * 6
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(f"{base}/api/state", timeout=10)
        assert info.value.code == 403
        request = urllib.request.Request(f"{base}/api/state?token={token}", headers={"Host": "attacker.example"})
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(request, timeout=10)
        assert info.value.code == 421
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_cli_prints_the_url_first(template, tmp_path, monkeypatch, capsys):
    from coreclean.cli import main
    from coreclean.review import ReviewServer

    monkeypatch.setattr(ReviewServer, "serve_forever", lambda self, poll_interval=0.5: None)
    opened: list[str] = []
    monkeypatch.setattr("webbrowser.open", opened.append)
    path = copy_session(template, tmp_path)
    assert main(["review", str(path), "--no-browser"]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith("http://127.0.0.1:") and "/?token=" in first
    assert opened == []


def test_cli_says_which_host_or_port_to_pick_when_it_cannot_listen(template, tmp_path, capsys):
    from coreclean.cli import main

    path = copy_session(template, tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        assert main(["review", str(path), "--no-browser", "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert f"cannot listen on 127.0.0.1:{port}" in err and "--port" in err and "Traceback" not in err
    assert main(["review", str(path), "--no-browser", "--host", "no-such-host.invalid"]) == 2
    assert "cannot listen on no-such-host.invalid" in capsys.readouterr().err


def test_cli_refuses_a_missing_session(tmp_path, capsys):
    from coreclean.cli import main

    assert main(["review", str(tmp_path / "missing.session"), "--no-browser"]) == 2
    assert "no session file" in capsys.readouterr().err


def _serve_in_thread(server):
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    return thread


def _stop(server, thread) -> None:
    server.shutdown()
    server.server_close()
    thread.join(5)


def test_half_open_connections_hold_no_threads_and_are_closed_after_the_timeout(template, tmp_path):
    # Was: one thread per connection, never timed out (400 half-open sockets held 405 threads).
    server = make_server(copy_session(template, tmp_path), port=0, request_timeout=0.5, max_threads=3)
    thread = _serve_in_thread(server)
    idle: list[socket.socket] = []
    try:
        host, port = server.server_address[:2]
        before = threading.active_count()
        for _ in range(150):  # bounded: 150 silent clients, plus 3 that stall mid-request
            idle.append(socket.create_connection((host, port), timeout=5))
        for _ in range(3):
            stalled = socket.create_connection((host, port), timeout=5)
            stalled.sendall(b"POST /api/decide HTTP/1.0\r\nContent-Type: application/json\r\n"
                            b"Content-Length: 50\r\n\r\n{")
            idle.append(stalled)
        time.sleep(0.1)
        assert threading.active_count() <= before + 3  # the pool's threads, no more
        # A real request is answered at once, though every thread but none is free.
        token = quote(server.get_app().token)
        started = time.monotonic()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/state?token={token}", timeout=10) as response:
            assert response.status == 200
        assert time.monotonic() - started < 2.0
        assert threading.active_count() <= before + 3
        # Soon after the timeout the server has closed every one of them: each reads to end-of-stream
        # (a socket.timeout here means the server still holds it).
        deadline = time.monotonic() + 5
        for client in idle:
            client.settimeout(max(deadline - time.monotonic(), 0.01))
            while client.recv(65536):
                pass
    finally:
        for client in idle:
            client.close()
        _stop(server, thread)


def test_ipv6_loopback_binds_and_answers(template, tmp_path):
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
    except OSError as err:
        pytest.skip(f"this machine has no IPv6 loopback (::1): {err}")
    # Was: "Address family for hostname not supported" on --host ::1.
    server = make_server(copy_session(template, tmp_path), host="::1", port=0)
    thread = _serve_in_thread(server)
    try:
        port = server.server_address[1]
        assert server.url.startswith(f"http://[::1]:{port}/?token=")
        token = quote(server.get_app().token)
        with urllib.request.urlopen(f"http://[::1]:{port}/api/state?token={token}", timeout=10) as response:
            assert response.status == 200 and json.loads(response.read())["n_batch"] > 0
    finally:
        _stop(server, thread)


def test_cli_opens_the_browser_without_the_token_on_its_command_line(template, tmp_path, monkeypatch, capsys):
    from coreclean.cli import main
    from coreclean.review import ReviewServer

    opened: list[str] = []
    seen: dict[str, Any] = {}

    def fake_serve(self, poll_interval=0.5):
        # While the server runs: the browser was given a file URL, not the page's URL.
        for _ in range(100):
            if opened:
                break
            time.sleep(0.01)
        page = Path(urlsplit(opened[0]).path)
        seen["page"], seen["mode"], seen["text"] = page, page.stat().st_mode & 0o777, page.read_text()

    monkeypatch.setattr(ReviewServer, "serve_forever", fake_serve)
    monkeypatch.setattr("webbrowser.open", opened.append)
    path = copy_session(template, tmp_path)
    assert main(["review", str(path)]) == 0
    url = capsys.readouterr().out.splitlines()[0]
    token = url.split("token=", 1)[1]
    assert opened and opened[0].startswith("file://") and token not in opened[0]
    assert seen["mode"] == 0o600 and url.replace("&", "&amp;") in seen["text"]
    assert not seen["page"].exists()  # removed when the server stopped
