"""How does the review app read a request and write its answer? WSGI plumbing, free of session logic.

Everything here works on a WSGI ``environ`` and plain values: the error that becomes a JSON answer
(:class:`HTTPError`), the security headers every answer carries, the JSON body reader (type, size,
nesting and truncation checked before a handler sees it) and the small query-string helpers.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

__all__ = [
    "HTTPError",
    "MAX_BODY_BYTES",
    "SECURITY_HEADERS",
    "StartResponse",
    "Answer",
    "status_line",
    "json_response",
    "allow",
    "first",
    "int_param",
    "read_json",
    "expect_object",
    "is_number",
]

MAX_BODY_BYTES = 16 * 1024
"""Largest request body accepted; a decision is a few dozen bytes."""

SECURITY_HEADERS = [
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("X-Frame-Options", "DENY"),
    ("Cross-Origin-Resource-Policy", "same-origin"),
    ("Content-Security-Policy",
     "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
     "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"),
]
"""Headers on every answer: no sniffing, no referrer, no framing, nothing loaded from elsewhere."""

StartResponse = Callable[..., Any]
Answer = tuple[int, list[tuple[str, str]], bytes]
"""What a route returns: status, headers (without the security ones and Content-Length), body."""


class HTTPError(Exception):
    """Answer the request with ``status`` and a JSON ``{"error": message}``; nothing was written."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def status_line(status: int) -> str:
    """Return the WSGI status line for ``status`` (``"404 Not Found"``; ``"499 Error"`` when unnamed)."""
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return f"{status} Error"


def json_response(status: int, payload: Any) -> Answer:
    """Return ``payload`` as a JSON answer that no cache keeps."""
    body = json.dumps(payload, ensure_ascii=False, allow_nan=False).encode("utf-8")
    return status, [("Content-Type", "application/json; charset=utf-8"), ("Cache-Control", "no-store")], body


def allow(method: str, expected: str) -> None:
    """Raise a 405 :class:`HTTPError` unless ``method`` is ``expected``."""
    if method != expected:
        raise HTTPError(405, f"use {expected}")


def first(query: dict[str, list[str]], name: str) -> str | None:
    """Return the first value of query parameter ``name``, or None when it is absent."""
    values = query.get(name)
    return values[0] if values else None


def int_param(query: dict[str, list[str]], name: str, *, default: int, low: int, high: int) -> int:
    """Return integer query parameter ``name`` clamped to ``[low, high]``; 400 when it is not an integer."""
    text = first(query, name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError as err:
        raise HTTPError(400, f"`{name}` must be an integer") from err
    return min(max(value, low), high)


def read_json(environ: dict[str, Any]) -> Any:
    """Return the request's JSON body (``{}`` when empty).

    Raises
    ------
    HTTPError
        415 unless the body is ``application/json``; 413 over :data:`MAX_BODY_BYTES`; 408 when the
        client stops sending before the end; 400 for a bad ``Content-Length``, a short body, invalid
        UTF-8 or JSON, or JSON nested too deeply to parse (the API takes flat objects only).
    """
    content_type = (environ.get("CONTENT_TYPE") or "").split(";")[0].strip().lower()
    if content_type != "application/json":
        raise HTTPError(415, "send the body as application/json")
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError as err:
        raise HTTPError(400, "bad Content-Length") from err
    if length < 0:
        raise HTTPError(400, "bad Content-Length")
    if length > MAX_BODY_BYTES:
        raise HTTPError(413, f"body larger than {MAX_BODY_BYTES} bytes")
    try:
        raw = environ["wsgi.input"].read(length) if length else b""
    except OSError as err:  # the connection's timeout ran out mid-body
        raise HTTPError(408, "the request body did not arrive in time; send it again") from err
    if len(raw) != length:
        raise HTTPError(400, "body shorter than its Content-Length")
    if not raw.strip():
        return {}
    try:
        return json.loads(raw.decode("utf-8"))
    except RecursionError as err:
        raise HTTPError(400, "body is nested too deeply: send a flat JSON object, e.g. "
                             '{"id": "...", "action": "keep"}') from err
    except (UnicodeDecodeError, ValueError) as err:
        raise HTTPError(400, f"body is not valid JSON: {err}") from err


def expect_object(body: Any, *, required: tuple[str, ...], optional: tuple[str, ...]) -> dict[str, Any]:
    """Return ``body`` if it is a JSON object with every ``required`` key and no key outside ``optional``."""
    if not isinstance(body, dict):
        raise HTTPError(400, "body must be a JSON object")
    missing = [key for key in required if key not in body]
    if missing:
        raise HTTPError(400, f"missing field(s): {', '.join(missing)}")
    unknown = sorted(set(body) - set(required) - set(optional))
    if unknown:
        raise HTTPError(400, f"unknown field(s): {', '.join(unknown)}")
    return body


def is_number(value: Any) -> bool:
    """Return True for a finite int or float (not a bool)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
