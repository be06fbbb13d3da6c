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
import random as _random
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.context.contextvars_context import ContextVarsRuntimeContext
from opentelemetry.trace.propagation import _SPAN_KEY

__all__ = [
    "current_request_id",
    "last_request_id",
    "new_request_id",
    "request_scope",
    "is_valid_request_id",
    "MAX_REQUEST_ID_LENGTH",
]

MAX_REQUEST_ID_LENGTH = 128
# Safe in headers, log lines, URLs and SQL: no spaces, quotes, CR/LF or control characters.
_VALID = re.compile(rf"[A-Za-z0-9._:\-]{{1,{MAX_REQUEST_ID_LENGTH}}}\Z")

_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("infersight_request_id", default=None)
# (request ID, model, version) of the monitored call that last returned in this context, so
# that code which called ``predict(...)`` outside any request can still send its label later.
_last_call: contextvars.ContextVar[tuple[str, str, str] | None] = contextvars.ContextVar(
    "infersight_last_call", default=None
)

# OTel's current context lives in one ContextVar when its runtime context is the default
# contextvars one (always, unless OTEL_PYTHON_CONTEXT names another). The request path then
# reads and sets that variable directly: the API's attach/get_current_span/set_span_in_context
# are the same operations behind three or four Python calls each.
_runtime = otel_context._RUNTIME_CONTEXT  # noqa: SLF001 - see above
_otel_var: contextvars.ContextVar[Context] | None = (
    _runtime._current_context if type(_runtime) is ContextVarsRuntimeContext else None  # noqa: SLF001
)
_Span = trace.Span
_INVALID_SPAN = trace.INVALID_SPAN


def current_span() -> trace.Span:
    """``trace.get_current_span()``, without the detour."""
    if _otel_var is None:
        return trace.get_current_span()
    span = _otel_var.get().get(_SPAN_KEY)
    return span if isinstance(span, _Span) else _INVALID_SPAN


def span_context(span: trace.Span, base: Context | None = None) -> Context:
    """``trace.set_span_in_context(span, base)``: ``base`` (default: the current context) with
    ``span`` as its current span."""
    if base is None:
        base = _otel_var.get() if _otel_var is not None else otel_context.get_current()
    values = dict(base)
    values[_SPAN_KEY] = span
    return Context(values)


def attach(ctx: Context) -> contextvars.Token[Any]:
    """``opentelemetry.context.attach(ctx)``; undo with :func:`leave`."""
    if _otel_var is not None:
        return _otel_var.set(ctx)
    return otel_context.attach(ctx)


def enter_span(span: trace.Span) -> contextvars.Token[Any]:
    """Make ``span`` current in a copy of the current context; undo with :func:`leave`."""
    return attach(span_context(span))


def current_request_id() -> str | None:
    """The request ID of the prediction or HTTP request being handled, or ``None`` outside one.

    >>> current_request_id() is None
    True
    """
    return _request_id.get()


def last_request_id() -> str | None:
    """The request ID of the monitored call that last returned (or raised) in this context, or
    ``None`` before any. Use it to send ground truth for a call made outside a request, where
    :func:`current_request_id` is ``None`` again once the call is over.

    Like the current request ID it lives in a context variable: concurrent requests, threads
    and asyncio tasks each see their own last call, never another's.

    >>> import infersight
    >>> infersight.configure(exporter="none", log_output="none")
    >>> @infersight.monitor(model="churn")
    ... def predict(row):
    ...     return 0.5
    >>> _ = predict({"tenure": 12})
    >>> rid = infersight.last_request_id()
    >>> len(rid), infersight.current_request_id() is None
    (32, True)
    """
    last = _last_call.get()
    return None if last is None else last[0]


def last_call_identity(request_id: str) -> tuple[str, str] | None:
    """(model, version) of the last monitored call in this context when its request ID is
    ``request_id``; ``None`` otherwise. Lets feedback for that call name its model by itself."""
    last = _last_call.get()
    return (last[1], last[2]) if last is not None and last[0] == request_id else None


def is_valid_request_id(value: object) -> bool:
    """Whether ``value`` may be used (and echoed) as a request ID: 1-128 characters from
    ``A-Z a-z 0-9 . _ : -``. Anything else is replaced by a generated ID, never echoed.

    >>> is_valid_request_id("abc-123"), is_valid_request_id("a b"), is_valid_request_id("x" * 500)
    (True, False, False)
    """
    return isinstance(value, str) and _VALID.match(value) is not None


def new_request_id() -> str:
    """A new time-ordered, URL-safe ID: 32 hex characters, 48 bits of Unix milliseconds then
    80 random bits, so IDs sort by arrival in logs and tables.

    >>> a = new_request_id()
    >>> len(a), is_valid_request_id(a)
    (32, True)
    """
    # random (reseeded in forked children by the stdlib) is far cheaper than os.urandom; the
    # ID must be unique, not secret.
    return "%032x" % (time.time_ns() // 1_000_000 << 80 | _random.getrandbits(80))


def leave(otel_token: contextvars.Token[Any] | None, request_id_token: contextvars.Token[str | None] | None) -> None:
    """Undo what a request or call made current: an OTel context attached with ``otel_token``
    and a request ID set with ``request_id_token`` (either may be ``None``: nothing to undo)."""
    if otel_token is not None:
        if _otel_var is None:
            otel_context.detach(otel_token)
        else:
            try:
                _otel_var.reset(otel_token)
            except Exception:  # noqa: BLE001 - a token from another context: OTel logs it
                otel_context.detach(otel_token)
    if request_id_token is not None:
        _request_id.reset(request_id_token)


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
