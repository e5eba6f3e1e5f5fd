"""What does the review page ask the server, and what does it answer? The WSGI app and its routes.

:func:`make_app` wraps a :class:`coreclean.sessions.session.CleaningSession` in a WSGI application
(stdlib only: it is served by :mod:`wsgiref` on a threading HTTP server, and tested in-process by
calling it with a WSGI environ). Every request must carry the server's token. The session is
owned by one worker thread (its SQLite connection never crosses threads); request threads hand
it work and wait, so decisions are applied one at a time, each in the session's own committed
transaction, exactly as ``coreclean session apply`` applies them.

Routes (``?token=`` or the ``X-Coreclean-Token`` header on every one)::

    GET  /                     the page (static/review.html)
    GET  /static/<file>        review.js, cards.js, round.js, review.css
    GET  /api/state            session status, class names, current batch with its decisions, rounds
    POST /api/decide           {"id", "action", "new_label"?}  -> state
    POST /api/undo             {"scope": "decision" | "round"} -> state
    POST /api/round            {}  close the round: re-score, AUROC, hit rate, plateau -> result + state
    GET  /api/typical?class=C  a few of class C's most typical sample ids
    GET  /api/image?id=ID&size=N  JPEG thumbnail of sample ID (by id only, never by path)
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from coreclean.review.payloads import batch_records, jsonable, round_result, sample_files
from coreclean.review.protocol import (
    MAX_BODY_BYTES,
    SECURITY_HEADERS,
    Answer,
    HTTPError,
    StartResponse,
    allow,
    expect_object,
    first,
    int_param,
    is_number,
    json_response,
    read_json,
    status_line,
)
from coreclean.review.security import (
    TOKEN_HEADER,
    FileGuard,
    FileRefused,
    new_token,
    token_matches,
)
from coreclean.review.thumbnails import ThumbnailCache, ThumbnailError

__all__ = ["ReviewApp", "make_app", "ACTIONS", "MAX_BODY_BYTES", "round_result"]

logger = logging.getLogger(__name__)

ACTIONS = ("keep", "relabel", "drop", "downweight", "skip")
"""Decisions the page can send; the session validates them again."""

N_TYPICAL = 4
"""Reference images shown per class."""

REVIEWER = "review-page"
"""The ``reviewer`` recorded with decisions made on the page."""

_STATIC_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                 ".css": "text/css; charset=utf-8"}
_STATIC_FILES = ("review.js", "cards.js", "round.js", "review.css")


def make_app(
    session: Any,
    *,
    token: str | None = None,
    thumbnail_dir: str | os.PathLike | None = None,
    allowed_hosts: Iterable[str] | None = None,
) -> ReviewApp:
    """Return the review page's WSGI application for a cleaning session.

    Parameters
    ----------
    session : CleaningSession, str or os.PathLike
        An open session, or the path to open one from. The app opens its own handle on the
        session's database in its worker thread (SQLite connections stay in one thread).
    token : str, optional
        The secret every request must carry; default: a fresh random one (``app.token``).
    thumbnail_dir : path, optional
        Where thumbnails are cached on disk; default: memory only.
    allowed_hosts : iterable of str, optional
        ``Host`` header values accepted (``"127.0.0.1:8765"``, ...); default: any. :func:`serve`
        sets this to the loopback names when bound to loopback.

    Returns
    -------
    ReviewApp
        A WSGI callable; call ``close()`` when done with it.

    Examples
    --------
    >>> app = make_app("runs/cifar-session")            # doctest: +SKIP
    >>> url = f"/?token={app.token}"                      # doctest: +SKIP
    """
    return ReviewApp(session, token=token or new_token(), thumbnail_dir=thumbnail_dir, allowed_hosts=allowed_hosts)


class ReviewApp:
    """The review page's WSGI application; build it with :func:`make_app`."""

    def __init__(
        self,
        session: Any,
        *,
        token: str,
        thumbnail_dir: str | os.PathLike | None = None,
        allowed_hosts: Iterable[str] | None = None,
    ) -> None:
        self.token = token
        self.allowed_hosts = None if allowed_hosts is None else frozenset(h.lower() for h in allowed_hosts)
        self.thumbnails = ThumbnailCache(thumbnail_dir)
        self._static_dir = resources.files("coreclean.review") / "static"
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="coreclean-review-session")
        self._session: Any = None  # touched only in the worker thread
        self._owns_session = False
        self._typical_cache: dict[tuple[int, str], list[str]] = {}
        self._closed = False
        self._lock = threading.Lock()
        self._call(self._open_session, session)
        paths, self._sha256 = self._call(lambda: sample_files(self._session))
        self.guard = FileGuard(paths, hashes=self._sha256)

    # -- session thread -------------------------------------------------------------------------

    def _open_session(self, session: Any) -> None:
        if isinstance(session, (str, os.PathLike)):
            from coreclean.sessions.session import CleaningSession

            self._session = CleaningSession.open(session)
            self._owns_session = True
        else:
            # Its store's connection allows other threads; from now on only this worker uses it.
            self._session = session

    def _call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run ``fn(*args)`` in the session's thread (``fn`` may use ``self._session``) and return its result."""
        return self._worker.submit(fn, *args).result()

    def close(self) -> None:
        """Stop the worker thread, closing the session if the app opened it (not one it was handed)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True

        def _close() -> None:
            if self._owns_session and self._session is not None:
                self._session.close()

        try:
            self._worker.submit(_close).result()
        finally:
            self._worker.shutdown(wait=True)

    # -- WSGI -----------------------------------------------------------------------------------

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        try:
            status, headers, body = self._dispatch(environ)
        except HTTPError as err:
            status, headers, body = json_response(err.status, {"error": err.message})
        except Exception:  # the server must survive anything a request can trigger
            logger.exception("review server: unexpected error on %s %s",
                             environ.get("REQUEST_METHOD"), environ.get("PATH_INFO"))
            status, headers, body = json_response(500, {"error": "internal error; see the server's log"})
        start_response(status_line(status), headers + SECURITY_HEADERS + [("Content-Length", str(len(body)))])
        return [body]

    def _dispatch(self, environ: dict[str, Any]) -> Answer:
        method = environ.get("REQUEST_METHOD", "GET").upper()
        path = environ.get("PATH_INFO", "") or "/"
        query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
        self._check_host(environ)
        given = environ.get("HTTP_" + TOKEN_HEADER.upper().replace("-", "_")) or first(query, "token")
        if not token_matches(given, self.token):
            raise HTTPError(403, "missing or wrong token: open the URL `coreclean review` printed")

        if path == "/":
            allow(method, "GET")
            return self._static("review.html")
        if path.startswith("/static/"):
            allow(method, "GET")
            name = path[len("/static/"):]
            if name not in _STATIC_FILES:
                raise HTTPError(404, "no such file")
            return self._static(name)
        if path == "/api/image":
            allow(method, "GET")
            return self._image(first(query, "id") or "", query)
        route = _ROUTES.get(path)
        if route is None:
            raise HTTPError(404, "no such route")
        route_method, handler = route
        allow(method, route_method)
        body = read_json(environ) if method == "POST" else None
        return json_response(200, handler(self, query, body))

    def _check_host(self, environ: dict[str, Any]) -> None:
        if self.allowed_hosts is None:
            return
        host = (environ.get("HTTP_HOST") or "").lower()
        if host not in self.allowed_hosts:
            raise HTTPError(421, "unexpected Host header; open the page with the URL `coreclean review` printed")

    def _static(self, name: str) -> Answer:
        body = (self._static_dir / name).read_bytes()
        if name == "review.html":
            body = body.replace(b"{{token}}", self.token.encode("ascii"))
        content_type = _STATIC_TYPES[Path(name).suffix]
        return 200, [("Content-Type", content_type), ("Cache-Control", "no-store")], body

    def _image(self, sample_id: str, query: dict[str, list[str]]) -> Answer:
        size = int_param(query, "size", default=256, low=16, high=2048)
        try:
            real = self.guard.resolve(sample_id)
        except FileRefused as err:
            raise HTTPError(err.status, err.reason) from err
        try:
            data = self.thumbnails.get(real, sha256=self._sha256.get(sample_id, ""), size=size)
        except ThumbnailError as err:
            raise HTTPError(err.status, err.reason) from err
        return 200, [("Content-Type", "image/jpeg"), ("Cache-Control", "private, max-age=3600")], data

    # -- API handlers (run their session work in the worker thread) -----------------------------

    def api_state(self, query: dict[str, list[str]], body: Any) -> dict[str, Any]:
        return self._call(self._state)

    def api_decide(self, query: dict[str, list[str]], body: Any) -> dict[str, Any]:
        body = expect_object(body, required=("id", "action"), optional=("new_label", "weight"))
        sample_id, action = body["id"], body["action"]
        if not isinstance(sample_id, str) or not sample_id:
            raise HTTPError(400, "`id` must be a non-empty string")
        if action not in ACTIONS:
            raise HTTPError(400, f"`action` must be one of {', '.join(ACTIONS)}; got {action!r}")
        new_label = body.get("new_label")
        if action == "relabel":
            if not isinstance(new_label, str) or not new_label:
                raise HTTPError(400, "relabel needs `new_label`, a class name")
        elif new_label is not None:
            raise HTTPError(400, f"`new_label` goes only with relabel, not {action}")
        weight = body.get("weight")
        if weight is not None and (action != "downweight" or not is_number(weight)):
            raise HTTPError(400, "`weight` must be a number and goes only with downweight")
        return self._call(self._decide, sample_id, action, new_label, weight)

    def api_undo(self, query: dict[str, list[str]], body: Any) -> dict[str, Any]:
        body = expect_object(body, required=(), optional=("scope",))
        scope = body.get("scope", "decision")
        if scope not in ("decision", "round"):
            raise HTTPError(400, f"`scope` must be decision or round; got {scope!r}")
        return self._call(self._undo, scope)

    def api_round(self, query: dict[str, list[str]], body: Any) -> dict[str, Any]:
        expect_object(body, required=(), optional=())
        return self._call(self._close_round)

    def api_typical(self, query: dict[str, list[str]], body: Any) -> dict[str, Any]:
        class_name = first(query, "class")
        if not class_name:
            raise HTTPError(400, "give ?class=NAME")
        return self._call(self._typical, class_name)

    # -- session work (worker thread only) ------------------------------------------------------

    def _state(self) -> dict[str, Any]:
        session = self._session
        batch = batch_records(session)
        round_number = int(session.round)
        shown = sorted({row["label"] for row in batch} | {row["suggested_label"] for row in batch})
        return {
            "status": jsonable(session.status()),
            "class_names": [str(name) for name in session.class_names],
            "round": round_number,
            "batch": batch,
            "n_batch": len(batch),
            "n_decided": sum(row["decision"] is not None for row in batch),
            "typical": {name: self._typical_ids(name, round_number) for name in shown},
            "rounds": jsonable(session.rounds()),
        }

    def _typical_ids(self, class_name: str, round_number: int) -> list[str]:
        # Typical samples change only when a round closes (the ranker is refitted then).
        key = (round_number, class_name)
        ids = self._typical_cache.get(key)
        if ids is None:
            if len(self._typical_cache) > 4096:
                self._typical_cache.clear()
            ids = [str(sample_id) for sample_id in self._session.typical(class_name, n=N_TYPICAL)["id"]]
            self._typical_cache[key] = ids
        return ids

    def _decide(self, sample_id: str, action: str, new_label: str | None, weight: float | None) -> dict[str, Any]:
        session = self._session
        if sample_id not in {str(sid) for sid in session.next_batch()["id"]}:
            raise HTTPError(404, f"sample {sample_id!r} is not in the current batch")
        if new_label is not None and new_label not in session.class_names:
            raise HTTPError(400, f"unknown label {new_label!r}")
        _session_call(session.decide, sample_id, action, new_label=new_label,
                      weight=None if weight is None else float(weight), reviewer=REVIEWER)
        return self._state()

    def _undo(self, scope: str) -> dict[str, Any]:
        _session_call(self._session.undo, scope, reviewer=REVIEWER)
        return self._state()

    def _close_round(self) -> dict[str, Any]:
        batch = batch_records(self._session)
        if not batch:
            raise HTTPError(409, "no batch to close: nothing is left to review")
        undecided = sum(row["decision"] is None for row in batch)
        if undecided:
            raise HTTPError(409, f"{undecided} image(s) of the batch are not decided yet")
        result = _session_call(self._session.close_round)
        return {"result": round_result(result), "state": self._state()}

    def _typical(self, class_name: str) -> dict[str, Any]:
        if class_name not in self._session.class_names:
            raise HTTPError(404, f"unknown class {class_name!r}")
        return {"class": class_name, "ids": self._typical_ids(class_name, int(self._session.round))}


_ROUTES: dict[str, tuple[str, Callable[[ReviewApp, dict[str, list[str]], Any], dict[str, Any]]]] = {
    "/api/state": ("GET", ReviewApp.api_state),
    "/api/decide": ("POST", ReviewApp.api_decide),
    "/api/undo": ("POST", ReviewApp.api_undo),
    "/api/round": ("POST", ReviewApp.api_round),
    "/api/typical": ("GET", ReviewApp.api_typical),
}




def _session_call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call the session; its refusals (invalid decision, nothing to undo, ...) become 4xx answers."""
    from coreclean.exceptions import CorecleanError, DecisionError

    try:
        return fn(*args, **kwargs)
    except DecisionError as err:
        raise HTTPError(400, str(err)) from err
    except CorecleanError as err:
        raise HTTPError(409, str(err)) from err
