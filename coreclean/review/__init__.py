"""How does a reviewer go through a session's batch in the browser? A local page, served by the package.

:func:`make_app` builds the WSGI application for a :class:`coreclean.sessions.session.CleaningSession` (test it
in-process); :func:`make_server` binds it to a port on a threading stdlib HTTP server and
:func:`serve` runs it until interrupted. Plain HTML/CSS/JS from ``static/``, no build step, no CDN.

Security model: loopback only unless a host is given explicitly; a random per-server token on every
request; a Host check on loopback; images served by sample id only, after the real path is checked
against the dataset root and the bytes against the recorded sha256 (see
:mod:`coreclean.review.security`).
"""

from __future__ import annotations

import logging
import os
import threading
from socketserver import ThreadingMixIn
from typing import Any
from urllib.parse import quote
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

from coreclean.review.app import ReviewApp, make_app
from coreclean.review.security import allowed_host_names, is_loopback_host

__all__ = ["make_app", "make_server", "serve", "ReviewApp", "ReviewServer"]

logger = logging.getLogger(__name__)


class _QuietHandler(WSGIRequestHandler):
    """wsgiref's handler, logging through :mod:`logging` (debug) instead of printing every request."""

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        # The request line holds the token; log the path only.
        logger.debug("review %s %s", self.command, self.path.split("?", 1)[0])


class ReviewServer(ThreadingMixIn, WSGIServer):
    """A threading WSGI server for one :class:`ReviewApp`; ``url`` carries the token."""

    daemon_threads = True
    allow_reuse_address = True

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        if ":" in host:
            host = f"[{host}]"
        app = self.get_app()
        return f"http://{host}:{port}/?token={quote(app.token)}"

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A broken connection or garbage request must not stop the server; log it, keep serving.
        logger.debug("review server: error handling a request from %s", client_address, exc_info=True)

    def server_close(self) -> None:
        super().server_close()
        app = self.get_app()
        if isinstance(app, ReviewApp):
            app.close()


def make_server(
    session: Any,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    token: str | None = None,
    thumbnail_dir: str | os.PathLike | None = None,
) -> ReviewServer:
    """Bind the review app for ``session`` to ``host:port`` and return the (not yet serving) server.

    Parameters
    ----------
    session : CleaningSession, str or os.PathLike
        The session (or its path).
    host : str
        Interface to bind; loopback by default. Any other value exposes the page (still behind the
        token) to the network: a warning is logged.
    port : int
        TCP port; 0 picks a free one.
    token : str, optional
        The URL token; default: a fresh random one.
    thumbnail_dir : path, optional
        Disk cache for thumbnails; default: memory only.

    Returns
    -------
    ReviewServer
        Call ``serve_forever()`` (or :func:`serve`), then ``server_close()``; ``url`` is the page.
    """
    if not is_loopback_host(host):
        logger.warning(
            "review server listening on %s, not loopback: anyone who can reach this machine and learns the URL "
            "(its token) can change your session. Plain HTTP: the token crosses the network unencrypted.", host)
    server = ReviewServer((host, port), _QuietHandler, bind_and_activate=True)
    try:
        app = make_app(session, token=token, thumbnail_dir=thumbnail_dir,
                       allowed_hosts=allowed_host_names(host, server.server_address[1]))
    except BaseException:
        server.server_close()
        raise
    server.set_app(app)
    return server


def serve(
    session: Any,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    token: str | None = None,
    thumbnail_dir: str | os.PathLike | None = None,
    ready: threading.Event | None = None,
) -> None:
    """Serve the review page for ``session`` until interrupted (Ctrl-C), then close it.

    ``ready``, when given, is set once the server accepts connections. See :func:`make_server`
    for the other parameters; use it directly to learn the URL before serving.
    """
    server = make_server(session, host=host, port=port, token=token, thumbnail_dir=thumbnail_dir)
    try:
        logger.info("review page: %s", server.url)
        if ready is not None:
            ready.set()
        server.serve_forever()
    finally:
        server.server_close()
