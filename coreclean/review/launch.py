"""How is the page opened without leaking its token? Through a private file that redirects to it.

A browser started with the page's URL would carry the token on its command line, where every local
user can read it (``ps``). Instead :func:`open_in_browser` writes a small HTML file, readable by its
owner only (mode 0600), that redirects to the URL, and opens *that file*: the browser's command line
holds only the file's path. The file is deleted when the server stops.
"""

from __future__ import annotations

import html
import os
import tempfile
import threading
import webbrowser
from pathlib import Path

__all__ = ["open_in_browser", "write_redirect"]

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="refresh" content="0;url={url}">
<meta name="referrer" content="no-referrer">
<title>coreclean review</title></head>
<body><p>Opening the review page&hellip; <a href="{url}">click here</a> if nothing happens.</p></body></html>
"""


def write_redirect(url: str, folder: str | os.PathLike) -> Path:
    """Write a 0600 HTML file in ``folder`` (created if needed) that redirects to ``url``; return its path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix="open-review-", suffix=".html", dir=folder)  # mode 0600
    with os.fdopen(handle, "w", encoding="utf-8") as out:
        out.write(_PAGE.format(url=html.escape(url, quote=True)))
    return Path(name)


def open_in_browser(url: str, folder: str | os.PathLike) -> Path:
    """Open ``url`` in the default browser without putting it on any command line.

    Writes the redirect file (see :func:`write_redirect`) in ``folder`` and opens its ``file://``
    URL in a background thread (a browser that takes its time never holds up the server). Pick a
    folder in the user's home (a sandboxed browser may not read ``/tmp``).

    Returns
    -------
    pathlib.Path
        The redirect file; delete it when the server stops.
    """
    page = write_redirect(url, folder)
    threading.Thread(target=webbrowser.open, args=(page.resolve().as_uri(),), daemon=True,
                     name="coreclean-review-browser").start()
    return page
