"""How does a reviewer go through a session's batch in the browser? A local page, served by the package.

:func:`make_app` builds the WSGI application for a :class:`coreclean.sessions.session.CleaningSession` (test it
in-process); :func:`make_server` binds it to a port on a stdlib HTTP server with bounded threads and
timeouts, and :func:`serve` runs it until interrupted; :func:`open_in_browser` opens the page without
putting its token on a command line. Plain HTML/CSS/JS from ``static/``, no build step, no CDN.

Modules: :mod:`~coreclean.review.app` (routes and API handlers), :mod:`~coreclean.review.protocol`
(reading requests, writing answers), :mod:`~coreclean.review.payloads` (session answers as JSON),
:mod:`~coreclean.review.server` (sockets and threads), :mod:`~coreclean.review.security` (token,
Host check, file guard), :mod:`~coreclean.review.thumbnails`, :mod:`~coreclean.review.launch`.

Security model: loopback only unless a host is given explicitly; a random per-server token on every
request; a Host check on loopback; images served by sample id only, after the real path is checked
against the dataset root and the bytes against the recorded sha256 (see
:mod:`coreclean.review.security`).
"""

from __future__ import annotations

from coreclean.review.app import ReviewApp, make_app
from coreclean.review.launch import open_in_browser
from coreclean.review.server import ReviewServer, make_server, serve

__all__ = ["ReviewApp", "ReviewServer", "make_app", "make_server", "open_in_browser", "serve"]
