"""``coreclean review``: review a session's batch in the browser, on a local page."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from coreclean.exceptions import CorecleanError

__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add the ``review`` sub-command to ``subparsers``."""
    parser = subparsers.add_parser(
        "review",
        help="review a session's batch in the browser (local page, keyboard first)",
        description=(
            "Serve a local web page for SESSION's current batch and open it in the browser. The first line "
            "printed is the page's URL, with its secret token. Every decision is saved in the session file as "
            "it is made; stop the server with Ctrl-C and run this again to go on where you left off."
        ),
    )
    parser.add_argument("session", metavar="SESSION", help="the session file (from `coreclean session start`)")
    parser.add_argument("--host", default=None,
                        help="interface to listen on, IPv4 or IPv6 (default: 127.0.0.1 only; ::1 for IPv6 loopback). "
                             "Anything not loopback exposes the page "
                             "to the network behind its token, over plain HTTP: you are warned.")
    parser.add_argument("--port", type=_port, default=0, help="TCP port (default: a free one)")
    parser.add_argument("--no-browser", action="store_true", help="print the URL but do not open a browser")
    parser.add_argument("--thumbnail-cache", metavar="DIR", default=None,
                        help="keep thumbnails on disk in DIR (default: SESSION's name + '.thumbnails')")
    parser.set_defaults(handler=_run)


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be 0..65535, got {value}")
    return value


def _run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from coreclean.review import make_server, open_in_browser

    session_path = Path(args.session).expanduser()
    if not session_path.is_file():
        raise CorecleanError(f"no session file {session_path}; start one with `coreclean session start`.")
    host = "127.0.0.1" if args.host is None else args.host  # make_server warns when it is not loopback
    thumbnails = args.thumbnail_cache or session_path.with_name(session_path.name + ".thumbnails")
    try:
        server = make_server(session_path, host=host, port=args.port, thumbnail_dir=thumbnails)
    except OSError as err:
        raise CorecleanError(f"cannot listen on {host}:{args.port}: {err.strerror or err}; pick another "
                             "--host (127.0.0.1, ::1) or --port (0 picks a free one).") from err
    redirect = None
    try:
        print(server.url, flush=True)
        print("Ctrl-C stops the server; every decision is already saved.", file=sys.stderr, flush=True)
        if not args.no_browser:
            # The browser opens a private file that redirects to the URL: the token stays off its command line.
            redirect = open_in_browser(server.url, thumbnails)
        server.serve_forever()
    except KeyboardInterrupt:
        print("coreclean review: stopped; every decision is saved.", file=sys.stderr)
    finally:
        server.server_close()
        if redirect is not None:
            redirect.unlink(missing_ok=True)
    return 0
