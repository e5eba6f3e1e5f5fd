"""How is the review app served? A stdlib WSGI server with bounded threads, timeouts and IPv6.

:class:`ReviewServer` is :mod:`wsgiref`'s server with three limits a local page still needs, since
any local process can connect to a loopback port:

* accepted connections wait in a *waiting room* (one selector thread, no thread per connection)
  until their request starts to arrive; one that sends nothing within ``request_timeout`` seconds
  is closed, and beyond ``max_waiting`` idle ones the oldest is closed;
* requests are then handled by a pool of at most ``max_threads`` threads;
* every socket read and write times out after ``request_timeout`` seconds, so a client that stalls
  mid-request frees its thread.

The address family follows the host: ``--host ::1`` binds IPv6, names with an IPv4 address IPv4.
"""

from __future__ import annotations

import logging
import os
import selectors
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import quote
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

from coreclean.review.app import ReviewApp, make_app
from coreclean.review.security import allowed_host_names, is_loopback_host

__all__ = ["ReviewServer", "make_server", "serve", "REQUEST_TIMEOUT", "MAX_THREADS", "MAX_WAITING"]

logger = logging.getLogger(__name__)

REQUEST_TIMEOUT = 10.0
"""Seconds a connection may stay silent: before its request starts, and on each read or write after."""

MAX_THREADS = 16
"""Requests handled at once; more wait for a free thread (a page needs a handful: images, state)."""

MAX_WAITING = 256
"""Connections kept open while they have sent nothing yet; beyond this the oldest is closed."""


class _QuietHandler(WSGIRequestHandler):
    """wsgiref's handler with the server's socket timeout, logging through :mod:`logging` (debug)."""

    def setup(self) -> None:
        self.timeout = self.server.request_timeout  # StreamRequestHandler applies it to the socket
        super().setup()

    def log_message(self, format: str, *args: Any) -> None:  # stdlib signature
        # The request line holds the token; log the path only.
        logger.debug("review %s %s", getattr(self, "command", "?"), getattr(self, "path", "").split("?", 1)[0])


class _WaitingRoom:
    """Hold accepted connections, without a thread each, until their request starts to arrive.

    ``dispatch(connection, address)`` is called (in this room's thread) once a connection is
    readable; ``drop(connection)`` closes one that stayed silent ``timeout`` seconds, or the oldest
    when more than ``capacity`` wait.
    """

    def __init__(self, dispatch: Callable[[socket.socket, Any], None], drop: Callable[[socket.socket], None],
                 *, timeout: float, capacity: int) -> None:
        self._dispatch, self._drop = dispatch, drop
        self._timeout, self._capacity = timeout, capacity
        self._selector = selectors.DefaultSelector()
        self._wake_read, self._wake_write = socket.socketpair()
        self._wake_read.setblocking(False)
        self._wake_write.setblocking(False)
        self._selector.register(self._wake_read, selectors.EVENT_READ)
        self._arrivals: deque[tuple[socket.socket, Any]] = deque()
        self._waiting: dict[socket.socket, tuple[Any, float]] = {}  # oldest first, so deadlines ascend
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="coreclean-review-waiting-room", daemon=True)
        self._thread.start()

    def add(self, connection: socket.socket, address: Any) -> None:
        """Let ``connection`` wait for its request (thread-safe)."""
        self._arrivals.append((connection, address))
        self._wake()

    def close(self) -> None:
        """Stop the room's thread and close every connection still waiting."""
        self._stopping = True
        self._wake()
        self._thread.join(5)
        for connection, _ in list(self._arrivals):
            self._drop(connection)
        for connection in list(self._waiting):
            self._drop(connection)
        self._waiting.clear()
        self._selector.close()
        self._wake_read.close()
        self._wake_write.close()

    def _wake(self) -> None:
        try:
            self._wake_write.send(b"\0")
        except OSError:  # full (already awake) or closed
            pass

    def _run(self) -> None:
        while not self._stopping:
            self._admit()
            now = time.monotonic()
            wait = next(iter(self._waiting.values()))[1] - now if self._waiting else None
            for key, _ in self._selector.select(None if wait is None else max(wait, 0.0)):
                connection = key.fileobj
                if connection is self._wake_read:
                    self._drain_wake()
                    continue
                address, _ = self._waiting.pop(connection)
                self._selector.unregister(connection)
                self._dispatch(connection, address)
            self._expire(time.monotonic())

    def _admit(self) -> None:
        while self._arrivals:
            connection, address = self._arrivals.popleft()
            if len(self._waiting) >= self._capacity:
                self._forget(next(iter(self._waiting)))
            self._waiting[connection] = (address, time.monotonic() + self._timeout)
            self._selector.register(connection, selectors.EVENT_READ)

    def _expire(self, now: float) -> None:
        for connection, (_, deadline) in list(self._waiting.items()):
            if deadline > now:
                break
            self._forget(connection)

    def _forget(self, connection: socket.socket) -> None:
        self._waiting.pop(connection, None)
        try:
            self._selector.unregister(connection)
        except (KeyError, ValueError):
            pass
        self._drop(connection)

    def _drain_wake(self) -> None:
        try:
            while self._wake_read.recv(4096):
                pass
        except OSError:  # nothing left to read
            pass


class ReviewServer(WSGIServer):
    """A WSGI server for one :class:`ReviewApp`: bounded threads, timeouts, IPv4 or IPv6; ``url`` carries the token.

    Parameters
    ----------
    address : (host, port)
        Where to listen; the address family follows ``host``.
    request_timeout : float
        Seconds a connection may stay silent (see :data:`REQUEST_TIMEOUT`).
    max_threads : int
        Requests handled at once (see :data:`MAX_THREADS`).
    max_waiting : int
        Idle connections kept (see :data:`MAX_WAITING`).
    """

    allow_reuse_address = True
    request_queue_size = 128  # listen backlog: a page opens a burst of image connections at once

    def __init__(self, address: tuple[str, int], *, request_timeout: float = REQUEST_TIMEOUT,
                 max_threads: int = MAX_THREADS, max_waiting: int = MAX_WAITING) -> None:
        if request_timeout <= 0 or max_threads < 1 or max_waiting < 1:
            raise ValueError("request_timeout must be > 0, max_threads and max_waiting >= 1")
        self.address_family = _address_family(address[0])
        self.request_timeout = float(request_timeout)
        self.max_threads = int(max_threads)
        self._pool: ThreadPoolExecutor | None = None
        self._room: _WaitingRoom | None = None
        super().__init__(address, _QuietHandler, bind_and_activate=True)  # a failed bind calls server_close
        self._pool = ThreadPoolExecutor(max_workers=self.max_threads, thread_name_prefix="coreclean-review-http")
        self._room = _WaitingRoom(self._dispatch, self.shutdown_request, timeout=self.request_timeout,
                                  capacity=max_waiting)

    @property
    def url(self) -> str:
        """The page's URL, with its token: give it only to the reviewer."""
        host, port = self.server_address[:2]
        if ":" in host:
            host = f"[{host}]"
        app = self.get_app()
        return f"http://{host}:{port}/?token={quote(app.token)}"

    def process_request(self, request: Any, client_address: Any) -> None:
        """Send a freshly accepted connection to the waiting room (never blocks the accept loop)."""
        self._room.add(request, client_address)

    def _dispatch(self, request: socket.socket, client_address: Any) -> None:
        try:
            self._pool.submit(self._handle, request, client_address)
        except RuntimeError:  # the pool is shut down: the server is closing
            self.shutdown_request(request)

    def _handle(self, request: socket.socket, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Log (debug) what a broken connection or garbage request raised, and keep serving."""
        logger.debug("review server: error handling a request from %s", client_address, exc_info=True)

    def server_close(self) -> None:
        """Close the listening socket, the waiting connections, the threads and the app."""
        super().server_close()
        if self._room is not None:
            self._room.close()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
        app = self.get_app()
        if isinstance(app, ReviewApp):
            app.close()


def _address_family(host: str) -> socket.AddressFamily:
    """IPv4 when ``host`` has an IPv4 address (``localhost`` too, as before), else IPv6 (``::1``, ``::``)."""
    try:
        infos = socket.getaddrinfo(host.strip("[]") or None, None, type=socket.SOCK_STREAM,
                                   flags=socket.AI_PASSIVE)
    except socket.gaierror:
        return socket.AF_INET  # bind() then reports the name's problem
    families = [info[0] for info in infos]
    return socket.AF_INET if socket.AF_INET in families or not families else socket.AF_INET6


def make_server(
    session: Any,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    token: str | None = None,
    thumbnail_dir: str | os.PathLike | None = None,
    request_timeout: float = REQUEST_TIMEOUT,
    max_threads: int = MAX_THREADS,
) -> ReviewServer:
    """Bind the review app for ``session`` to ``host:port`` and return the (not yet serving) server.

    Parameters
    ----------
    session : CleaningSession, str or os.PathLike
        The session (or its path).
    host : str
        Interface to bind, IPv4 or IPv6 (``"::1"``); loopback by default. Any other value exposes
        the page (still behind the token) to the network: a warning is logged.
    port : int
        TCP port; 0 picks a free one.
    token : str, optional
        The URL token; default: a fresh random one.
    thumbnail_dir : path, optional
        Disk cache for thumbnails; default: memory only.
    request_timeout, max_threads :
        See :class:`ReviewServer`.

    Returns
    -------
    ReviewServer
        Call ``serve_forever()`` (or :func:`serve`), then ``server_close()``; ``url`` is the page.
    """
    if not is_loopback_host(host):
        logger.warning(
            "review server listening on %s, not loopback: anyone who can reach this machine and learns the URL "
            "(its token) can change your session. Plain HTTP: the token crosses the network unencrypted.", host)
    server = ReviewServer((host.strip("[]"), port), request_timeout=request_timeout, max_threads=max_threads)
    try:
        app = make_app(session, token=token, thumbnail_dir=thumbnail_dir,
                       allowed_hosts=allowed_host_names(host.strip("[]"), server.server_address[1]))
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
