"""The request ID that ties a prediction's span, logs, metrics and later feedback together.

It lives in a :mod:`contextvars` variable, so it follows a request across ``await`` points and
into threads started with ``contextvars.copy_context()``, and never leaks between concurrent
requests. Middleware opens a scope with the incoming ``X-Request-ID`` (when it is well formed);
``@monitor`` opens one with a generated ID when no scope is active.

Example:
    >>> with request_scope("req-42"):
    ...     current_request_id()
    'req-42'
    >>> current_request_id() is None
    True
"""

from __future__ import annotations

import contextvars
import os
import re
import threading
import time
from contextlib import contextmanager
from typing import Iterator

__all__ = [
    "current_request_id",
    "new_request_id",
    "request_scope",
    "is_valid_request_id",
    "MAX_REQUEST_ID_LENGTH",
]

MAX_REQUEST_ID_LENGTH = 128
# Safe in headers, log lines, URLs and SQL: no spaces, quotes, CR/LF or control characters.
_VALID = re.compile(r"[A-Za-z0-9._:\-]{1,%d}\Z" % MAX_REQUEST_ID_LENGTH)

_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "infersight_request_id", default=None
)

# Crockford base32: URL-safe, case-insensitive friendly, sorts like the bytes it encodes.
_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_lock = threading.Lock()
_last_ms = 0
_last_rand = 0


def current_request_id() -> str | None:
    """The request ID of the prediction or HTTP request being handled, or ``None`` outside one.

    >>> current_request_id() is None
    True
    """
    return _request_id.get()


def is_valid_request_id(value: object) -> bool:
    """Whether ``value`` may be used (and echoed) as a request ID: 1-128 characters from
    ``A-Z a-z 0-9 . _ : -``. Anything else is replaced by a generated ID, never echoed.

    >>> is_valid_request_id("abc-123"), is_valid_request_id("a b"), is_valid_request_id("x" * 500)
    (True, False, False)
    """
    return isinstance(value, str) and _VALID.match(value) is not None


def new_request_id() -> str:
    """A new time-ordered, URL-safe ID (26 characters, ULID layout: 48-bit milliseconds then
    80 random bits, monotonic within a millisecond), so IDs sort by arrival in logs and tables.

    >>> a, b = new_request_id(), new_request_id()
    >>> len(a), a < b
    (26, True)
    """
    global _last_ms, _last_rand
    ms = time.time_ns() // 1_000_000
    with _lock:
        if ms <= _last_ms:
            ms = _last_ms
            rand = (_last_rand + 1) & ((1 << 80) - 1)
        else:
            rand = int.from_bytes(os.urandom(10), "big")
        _last_ms, _last_rand = ms, rand
    value = (ms << 80) | rand
    chars = []
    for _ in range(26):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))


@contextmanager
def request_scope(request_id: str | None = None) -> Iterator[str]:
    """Make ``request_id`` (validated; generated when missing or malformed) the current one.

    >>> with request_scope() as rid:
    ...     rid == current_request_id()
    True
    """
    rid = request_id if is_valid_request_id(request_id) else new_request_id()
    assert rid is not None
    token = _request_id.set(rid)
    try:
        yield rid
    finally:
        _request_id.reset(token)


def _reset_after_fork() -> None:
    global _lock, _last_ms, _last_rand
    _lock = threading.Lock()
    _last_ms, _last_rand = 0, 0


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)
