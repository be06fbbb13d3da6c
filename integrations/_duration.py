"""The stable ``http.server.request.duration`` histogram: which recorder a runtime uses for it
(infersight's fast delta histogram, or an SDK instrument of the application's meter provider),
and its attributes, one shared dict per (method, scheme, status, route, error type).

It lives in its own instrumentation scope, ``infersight.integrations``: the HTTP layer is a
separate instrumentation from ``@monitor``.

Example:
    >>> metric_attributes(("GET", "http", 200, "/items/{id}", None))["http.route"]
    '/items/{id}'
"""

from __future__ import annotations

from typing import Any

from infersight.integrations._request import CACHE_LIMIT

__all__ = ["DURATION_BUCKETS", "SCOPE", "duration_histogram", "metric_attributes"]

# Semantic-conventions advisory boundaries for http.server.request.duration (seconds).
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
SCOPE = "infersight.integrations"
_histograms: dict[int, tuple[Any, Any, Any]] = {}
_metric_attrs: dict[tuple[Any, ...], dict[str, Any]] = {}


class _SdkRecorder:
    """An SDK histogram behind the fast histogram's ``record`` signature."""

    __slots__ = ("hist",)

    def __init__(self, hist: Any) -> None:
        self.hist = hist

    def record(self, value: float, key: Any, attributes: dict[str, Any], span_context: Any) -> None:
        self.hist.record(value, attributes)


def duration_histogram(rt: Any) -> Any:
    """The stable ``http.server.request.duration`` histogram of runtime ``rt``: infersight's
    fast in-process histogram when its own reader exports deltas, else an instrument of the
    meter provider in use (a reconfigured runtime with another provider gets its own). Either way it is recorded as
    ``record(seconds, key, attributes, span_context)``."""
    hit = _histograms.get(id(rt))
    if hit is not None and hit[0] is rt and hit[1] is rt.meter_provider:
        return hit[2]
    recorder = rt.delta_histogram(
        SCOPE, "http.server.request.duration", "s", "Duration of HTTP server requests.", DURATION_BUCKETS
    )
    if recorder is None:
        meter = rt.meter_provider.get_meter(SCOPE, "0.1.0")
        recorder = _SdkRecorder(
            meter.create_histogram(
                "http.server.request.duration",
                unit="s",
                description="Duration of HTTP server requests.",
                explicit_bucket_boundaries_advisory=list(DURATION_BUCKETS),
            )
        )
    _histograms[id(rt)] = (rt, rt.meter_provider, recorder)
    return recorder


def metric_attributes(key: tuple[Any, ...]) -> dict[str, Any]:
    """The duration metric's attributes for ``key`` = (method, scheme, status, route,
    error type), one shared dict per combination (routes are templates and status codes few, so
    there are few; bounded all the same). The recorders copy the dict when they keep it, so
    sharing it is safe; never mutate the result.

    >>> metric_attributes(("GET", "http", 200, "/items/{id}", None))["http.route"]
    '/items/{id}'
    """
    attrs = _metric_attrs.get(key)
    if attrs is None:
        method, scheme, status, route, error_type = key
        attrs = {"http.request.method": method, "url.scheme": scheme}
        if status is not None:
            attrs["http.response.status_code"] = status
        if route:
            attrs["http.route"] = route
        if error_type is not None:
            attrs["error.type"] = error_type
        if len(_metric_attrs) < CACHE_LIMIT:
            _metric_attrs[key] = attrs
    return attrs
