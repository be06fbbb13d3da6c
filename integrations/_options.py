"""The middleware options, resolved once when a middleware is built: the request-ID header,
the excluded URLs, opt-in body capture and its size cap. Keyword argument beats environment beats
default, and a bad value is a :class:`~infersight.config.ConfigError` that names it.

Example:
    >>> opts = resolve_options("asgi", excluded_urls="/healthz,/metrics", env={})
    >>> opts.is_excluded("/healthz"), opts.is_excluded("/predict")
    (True, False)
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from infersight.config import ConfigError

__all__ = ["DEFAULT_REQUEST_ID_HEADER", "DEFAULT_MAX_BODY_BYTES", "MiddlewareOptions", "resolve_options"]

DEFAULT_REQUEST_ID_HEADER = "X-Request-ID"
DEFAULT_MAX_BODY_BYTES = 64 * 1024
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")  # RFC 9110 header field name
_FALSE = ("0", "false", "no", "off", "")


@dataclass(frozen=True)
class MiddlewareOptions:
    """Resolved middleware options (see :func:`resolve_options`)."""

    request_id_header: str
    excluded: re.Pattern[str] | None
    capture_bodies: bool
    max_body_bytes: int

    @property
    def asgi_header(self) -> bytes:
        """The request-ID header as ASGI spells it: lower-case latin-1 bytes."""
        return self.request_id_header.lower().encode("latin-1")

    @property
    def wsgi_key(self) -> str:
        """The request-ID header as a WSGI environ key (``HTTP_X_REQUEST_ID``)."""
        return "HTTP_" + self.request_id_header.upper().replace("-", "_")

    def is_excluded(self, path: str) -> bool:
        """Whether ``path`` matches one of the excluded-URL patterns (``re.search``)."""
        return self.excluded is not None and self.excluded.search(path) is not None


def _env_first(env: Mapping[str, str], *names: str) -> tuple[str, str] | None:
    for name in names:
        value = env.get(name)
        if value not in (None, ""):
            return name, value  # type: ignore[return-value]
    return None


def _compile_excluded(name: str, raw: str | Iterable[str] | None) -> re.Pattern[str] | None:
    if raw is None:
        return None
    parts = raw.split(",") if isinstance(raw, str) else list(raw)
    patterns = [p.strip() for p in parts if p and p.strip()]
    if not patterns:
        return None
    for p in patterns:
        try:
            re.compile(p)
        except re.error as e:
            raise ConfigError(
                f"{name}: {p!r} is not a valid regular expression ({e}); "
                "give comma-separated patterns such as '/healthz,/metrics$'"
            ) from None
    return re.compile("|".join(f"(?:{p})" for p in patterns))


def resolve_options(
    framework: str,
    *,
    request_id_header: str | None = None,
    excluded_urls: str | Iterable[str] | None = None,
    capture_bodies: bool | None = None,
    max_body_bytes: int | None = None,
    env: Mapping[str, str] | None = None,
) -> MiddlewareOptions:
    """Keyword argument beats environment beats default, for each middleware option.

    * ``request_id_header``: ``INFERSIGHT_REQUEST_ID_HEADER``, default ``X-Request-ID``.
    * ``excluded_urls``: comma-separated regular expressions searched in the request path;
      ``INFERSIGHT_EXCLUDED_URLS``, then ``OTEL_PYTHON_<FRAMEWORK>_EXCLUDED_URLS`` (framework
      ``fastapi`` or ``flask``), then ``OTEL_PYTHON_EXCLUDED_URLS``.
    * ``capture_bodies``: ``INFERSIGHT_CAPTURE_BODIES``, default off.
    * ``max_body_bytes``: ``INFERSIGHT_MAX_BODY_BYTES``, default 65536.

    >>> resolve_options("flask", env={"OTEL_PYTHON_EXCLUDED_URLS": "health"}).is_excluded("/health")
    True
    """
    env = os.environ if env is None else env
    header = request_id_header
    header_name = "request_id_header"
    if header is None:
        found = _env_first(env, "INFERSIGHT_REQUEST_ID_HEADER")
        header_name, header = found if found else (header_name, DEFAULT_REQUEST_ID_HEADER)
    if not isinstance(header, str) or not _TOKEN.match(header):
        raise ConfigError(f"{header_name}={header!r} is not an HTTP header name: use e.g. 'X-Request-ID'")

    excluded_name = "excluded_urls"
    if excluded_urls is None:
        found = _env_first(
            env,
            "INFERSIGHT_EXCLUDED_URLS",
            f"OTEL_PYTHON_{framework.upper()}_EXCLUDED_URLS",
            "OTEL_PYTHON_EXCLUDED_URLS",
        )
        if found:
            excluded_name, excluded_urls = found
    excluded = _compile_excluded(excluded_name, excluded_urls)

    if capture_bodies is None:
        raw = env.get("INFERSIGHT_CAPTURE_BODIES", "")
        capture_bodies = raw.strip().lower() not in _FALSE
    if max_body_bytes is None:
        raw_max = env.get("INFERSIGHT_MAX_BODY_BYTES") or str(DEFAULT_MAX_BODY_BYTES)
        try:
            max_body_bytes = int(raw_max)
        except ValueError:
            raise ConfigError(f"INFERSIGHT_MAX_BODY_BYTES={raw_max!r} is not a whole number: use e.g. 65536") from None
    if max_body_bytes < 1:
        raise ConfigError(f"max_body_bytes={max_body_bytes!r} must be at least 1")
    return MiddlewareOptions(header, excluded, bool(capture_bodies), int(max_body_bytes))
