"""What may the review server hand out, and to whom? The token, the Host check and the file guard.

The review server is a local page, but any web page the user visits could try to talk to it, and
any process on the machine can connect to a loopback port. Three checks stand between them and the
session:

* a random per-server **token**, required on every request (query ``?token=`` or the
  ``X-Coreclean-Token`` header), compared in constant time;
* a **Host** check while the server is bound to loopback, so a DNS-rebinding page that somehow
  learnt the token still cannot reach it under a foreign name;
* a **file guard**: images are asked for by sample id, never by path. The guard looks the id up in
  the session's recorded samples, resolves the recorded path's real location (following every
  symlink) and serves it only when it is a regular file that lies under the dataset's real root or,
  reached through a symlink to elsewhere (``embed`` follows links: datasets are often built from
  them), holds exactly the bytes recorded at embedding time. A file swapped later for a link to
  anything else is refused.
  The thumbnailer then checks the bytes against the sha256 recorded at embedding time.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import secrets
from collections.abc import Iterable, Mapping
from pathlib import Path

__all__ = [
    "TOKEN_HEADER",
    "new_token",
    "token_matches",
    "is_loopback_host",
    "allowed_host_names",
    "FileGuard",
    "FileRefused",
]

TOKEN_HEADER = "X-Coreclean-Token"
"""Request header the page's script sends the token in (images and static files use ``?token=``)."""

_TOKEN_BYTES = 24


def new_token() -> str:
    """Return a fresh URL-safe random token (24 bytes of ``secrets`` entropy, 32 characters)."""
    return secrets.token_urlsafe(_TOKEN_BYTES)


def token_matches(given: str | None, expected: str) -> bool:
    """Return True when ``given`` equals ``expected``, in time independent of where they differ."""
    if not given:
        return False
    return hmac.compare_digest(given.encode("utf-8", "replace"), expected.encode("utf-8"))


def is_loopback_host(host: str) -> bool:
    """Return True for ``localhost`` and loopback addresses (``127.0.0.0/8``, ``::1``)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def allowed_host_names(host: str, port: int) -> frozenset[str] | None:
    """Return the ``Host`` header values a server bound to ``host:port`` accepts.

    ``None`` means any Host (the user chose a non-loopback ``--host`` and the token is the guard).
    """
    if not is_loopback_host(host):
        return None
    names = {"127.0.0.1", "localhost", "[::1]", host}
    return frozenset(f"{name}:{port}" for name in names) | frozenset(names if port == 80 else ())


class FileRefused(Exception):
    """A sample's file may not be served; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class FileGuard:
    """Map sample ids to files that may be served, refusing anything outside the dataset.

    Parameters
    ----------
    paths : mapping of str to path
        Sample id -> the absolute path recorded for it when the dataset was embedded.
    root : path or None
        The dataset's root. Default: the deepest folder holding every recorded path.
    hashes : mapping of str to str, optional
        Sample id -> sha256 recorded at embedding time: a file whose real location is outside the
        root is served only when its bytes still have this hash.

    Notes
    -----
    The root and the recorded files' folders are resolved once, here; each :meth:`resolve` resolves
    the sample's path again, so a file swapped for a symlink after the server started is still caught.
    """

    def __init__(self, paths: Mapping[str, str | os.PathLike], *, root: str | os.PathLike | None = None,
                 hashes: Mapping[str, str] | None = None) -> None:
        self._paths = {str(sample_id): os.path.abspath(os.fspath(path)) for sample_id, path in paths.items()}
        if root is None:
            root = _common_folder(self._paths.values())
        self.root = Path(os.path.realpath(os.fspath(root)))
        self._hashes = {str(sample_id): str(h) for sample_id, h in (hashes or {}).items()}

    def __contains__(self, sample_id: object) -> bool:
        return sample_id in self._paths

    def __len__(self) -> int:
        return len(self._paths)

    def resolve(self, sample_id: str) -> Path:
        """Return the real path of ``sample_id``'s file.

        Raises
        ------
        FileRefused
            404 if the id is unknown or the file is gone, 403 if its real location is outside the
            dataset root (a symlink escape) or it is not a regular file.
        """
        recorded = self._paths.get(sample_id)
        if recorded is None:
            raise FileRefused(404, "no such sample in this session")
        real = Path(os.path.realpath(recorded))
        try:
            is_file = real.is_file()
        except OSError:
            is_file = False
        if not is_file:
            raise FileRefused(404 if not real.exists() else 403, "the sample's file is missing or not a regular file")
        if not _is_within(real, self.root) and not self._holds_embedded_bytes(sample_id, real):
            raise FileRefused(403, "the sample's file resolves outside the dataset root to bytes that were not embedded")
        return real

    def _holds_embedded_bytes(self, sample_id: str, real: Path) -> bool:
        from coreclean._internal.hashing import sha256_file

        expected = self._hashes.get(sample_id)
        try:
            return bool(expected) and sha256_file(real) == expected
        except OSError:
            return False


def _common_folder(paths: Iterable[str]) -> str:
    folders = [os.path.dirname(path) for path in paths]
    if not folders:
        return os.getcwd()
    return os.path.commonpath(folders)


def _is_within(path: Path, root: Path) -> bool:
    return path == root or root in path.parents
