"""The ``dashboard:`` section of the processor's config: the Jaeger link, the refresh period,
and which spans and log records are kept for the request view.

Every key has a default, so an absent section gives a working dashboard::

    dashboard:
      jaeger_url: http://127.0.0.1:16686   # "open in Jaeger" links: {jaeger_url}/trace/{trace_id}
      refresh: 30s                         # how often the pages reload their data (off: never)
      traces:
        keep: all          # all | flagged | off (see infersight.processor.ingest.keep)
        recent: 15m        # every kept span and log record, this long
        retention: 7d      # flagged traces (errors, violations, logged payloads), this long
        max_items: 200000  # at most this many rows; the oldest go first, unflagged before flagged

Without ``jaeger_url`` the link follows ``alerts.trace_url`` when that is set, else no link
is shown.

Example:
    >>> s = parse_dashboard({"jaeger_url": "http://jaeger:16686/", "traces": {"keep": "flagged"}}, "dashboard")
    >>> s.trace_link("ab" * 16), s.keep, s.refresh
    ('http://jaeger:16686/trace/abababababababababababababababab', 'flagged', 30.0)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from infersight.processor.config import ConfigError, expect_mapping, parse_duration, reject_unknown
from infersight.processor.ingest.keep import KEEP_MODES

__all__ = ["DashboardSettings", "parse_dashboard"]

_TOP = ("jaeger_url", "refresh", "traces")
_TRACES = ("keep", "recent", "retention", "max_items")


@dataclass(frozen=True)
class DashboardSettings:
    """The parsed section (see the module docstring). ``trace_url`` is a template with
    ``{trace_id}`` (from ``jaeger_url`` or ``alerts.trace_url``)."""

    trace_url: str | None = None
    refresh: float = 30.0
    keep: str = "all"
    recent: float = 15 * 60.0
    retention: float = 7 * 86400.0
    max_items: int = 200_000

    def trace_link(self, trace_id: str) -> str | None:
        """The Jaeger (or other viewer) URL of a trace, ``None`` when none is configured."""
        return self.trace_url.replace("{trace_id}", trace_id) if self.trace_url else None


def parse_dashboard(body: Mapping[str, Any], where: str) -> DashboardSettings:
    """Parse the ``dashboard:`` section (``{}`` when absent: the defaults)."""
    b = expect_mapping(body or {}, where, "{traces: {keep: flagged}}")
    reject_unknown(b, _TOP, where)
    kw: dict[str, Any] = {}
    if b.get("jaeger_url"):
        url = str(b["jaeger_url"])
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError(
                f"{where}.jaeger_url: {url!r} is not an http(s) URL; write Jaeger's UI address, "
                "e.g. http://127.0.0.1:16686"
            )
        kw["trace_url"] = url.rstrip("/") + "/trace/{trace_id}"
    if "refresh" in b:
        off = b["refresh"] in (0, "0", "0s", "off", False)
        kw["refresh"] = 0.0 if off else parse_duration(b["refresh"], f"{where}.refresh")
    t = expect_mapping(b.get("traces") or {}, f"{where}.traces", "{keep: flagged, retention: 7d}")
    reject_unknown(t, _TRACES, f"{where}.traces")
    if "keep" in t:
        keep = "off" if t["keep"] is False else str(t["keep"])
        if keep not in KEEP_MODES:
            raise ConfigError(f"{where}.traces.keep: {t['keep']!r} is not one of {', '.join(KEEP_MODES)}")
        kw["keep"] = keep
    for key in ("recent", "retention"):
        if key in t:
            kw[key] = parse_duration(t[key], f"{where}.traces.{key}")
            if kw[key] <= 0:
                raise ConfigError(f"{where}.traces.{key}: {t[key]!r} must be longer than 0, e.g. 15m")
    if "max_items" in t:
        n = t["max_items"]
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ConfigError(f"{where}.traces.max_items: {n!r} must be a whole number of at least 1, e.g. 200000")
        kw["max_items"] = n
    s = DashboardSettings(**kw)
    if s.retention < s.recent:
        raise ConfigError(
            f"{where}.traces.retention ({s.retention:g}s) is shorter than recent ({s.recent:g}s); "
            "flagged traces should be kept at least as long as the rest"
        )
    return s
