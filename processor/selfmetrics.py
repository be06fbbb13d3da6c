"""The processor's own counters and gauges, rendered as Prometheus text on ``/metrics``.

Why not prometheus_client: a dozen series, one process, and no other use for the dependency.

Example:
    >>> r = Registry()
    >>> r.inc("infersight_processor_requests_total", 2, signal="metrics", transport="http")
    >>> "infersight_processor_requests_total" in r.render()
    True
"""

from __future__ import annotations

import threading
from collections.abc import Callable

__all__ = ["Registry"]

_HELP = {
    "infersight_processor_requests_total": (
        "counter",
        "OTLP export requests received, by signal, transport and outcome.",
    ),
    "infersight_processor_points_total": (
        "counter",
        "Items (data points, spans, log records) accepted and stored, by signal.",
    ),
    "infersight_processor_rejected_total": (
        "counter",
        "Items rejected as invalid (reported back as OTLP partial success), by signal.",
    ),
    "infersight_processor_limited_total": (
        "counter",
        "Items rejected by a series-cardinality limit (limits: section; also counted in "
        "infersight_processor_rejected_total), by limit and signal.",
    ),
    "infersight_processor_limit_models": ("gauge", "Models admitted by the cardinality limits (stored or new)."),
    "infersight_processor_limit_series": (
        "gauge",
        "Series admitted by the cardinality limits (of models seen since start, stored or new).",
    ),
    "infersight_processor_ignored_total": (
        "counter",
        "Items accepted but not used (unknown metrics, spans or events), by kind.",
    ),
    "infersight_processor_duplicates_total": (
        "counter",
        "Retried requests already stored, acknowledged without storing twice.",
    ),
    "infersight_processor_commits_total": ("counter", "Storage transactions committed."),
    "infersight_processor_commit_errors_total": (
        "counter",
        "Storage transactions that failed (requests answered as retryable).",
    ),
    "infersight_processor_queue_full_total": (
        "counter",
        "Requests turned away because the ingest queue was full (429 / RESOURCE_EXHAUSTED).",
    ),
    "infersight_processor_expired_total": (
        "counter",
        "Rows removed by retention, by kind (windows, unlabelled predictions, ...).",
    ),
    "infersight_processor_queue_points": ("gauge", "Items waiting in the ingest queue."),
    "infersight_processor_queue_requests": ("gauge", "Requests waiting in the ingest queue."),
    "infersight_processor_windows_compacted_total": ("counter", "Windows whose rows were folded into one."),
    "infersight_processor_leases_acquired_total": (
        "counter",
        "Model evaluation leases this replica took (at start, from a dead or departing replica).",
    ),
    "infersight_processor_leases_released_total": (
        "counter",
        "Model evaluation leases this replica handed over to a replica that ranks first for the model.",
    ),
    "infersight_processor_leases_lost_total": (
        "counter",
        "Model evaluation leases found taken by another replica mid-pass (that pass's writes rolled back).",
    ),
}


def _escape(v: str) -> str:
    return v.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class Registry:
    """Thread-safe labelled counters plus gauges read at render time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        self._gauges: dict[str, Callable[[], float]] = {}

    def inc(self, name: str, value: float = 1, **labels: str) -> None:
        key = (name, tuple(sorted(labels.items())))
        with self._lock:
            self._values[key] = self._values.get(key, 0) + value

    def gauge(self, name: str, read: Callable[[], float]) -> None:
        self._gauges[name] = read

    def value(self, name: str, **labels: str) -> float:
        """Sum of ``name`` over series whose labels include ``labels``."""
        want = set(labels.items())
        with self._lock:
            return sum(v for (n, ls), v in self._values.items() if n == name and want <= set(ls))

    def render(self) -> str:
        with self._lock:
            items = sorted(self._values.items())
        lines: list[str] = []
        names = sorted({n for (n, _), _ in items} | set(self._gauges))
        for name in names:
            kind, help_ = _HELP.get(name, ("untyped", name))
            lines.append(f"# HELP {name} {help_}")
            lines.append(f"# TYPE {name} {kind}")
            if name in self._gauges:
                lines.append(f"{name} {float(self._gauges[name]())}")
                continue
            for (n, labels), v in items:
                if n != name:
                    continue
                lab = ",".join(f'{k}="{_escape(str(val))}"' for k, val in labels)
                lines.append(f"{name}{{{lab}}} {v}" if lab else f"{name} {v}")
        return "\n".join(lines) + "\n"
