"""Receive-time screening: which points windows cannot place, and the series each belongs to.

A point is placed in a window series (model, version, role, name) by the table below: which
``ml.*`` metric names infersight knows, which attribute names the series, and where in the
window the point goes. :func:`screen` runs on the receiving thread, before a request is queued,
so the request that carried an unplaceable point is told (OTLP partial success); folding
(:mod:`~infersight.processor.ingest.fold`) uses the same table.

Example:
    >>> from infersight.processor.ingest.points import Decoded, LogPoint
    >>> d = screen("logs", Decoded([LogPoint("ml.prediction", {}, {}, 0, "", "")]))
    >>> d.rejected, d.error_message
    (1, 'ml.prediction log record needs ml.model.name and ml.request.id attributes')
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from infersight.processor.ingest.columns import SketchColumns
from infersight.processor.ingest.limits import UNKNOWN_SERVICE, Refusal, SeriesLimiter
from infersight.processor.ingest.outcomes import OUTCOMES_EVENT, outcome_problem
from infersight.processor.ingest.points import Decoded, LogPoint, MetricPoint
from infersight.processor.storage.base import FEATURE, MODEL, OUTPUT, sliced_role

__all__ = [
    "screen",
    "limit",
    "KNOWN",
    "identity",
    "metric_problem",
    "log_problem",
    "columns_series",
    "column_series",
    "series_role",
]

# metric name -> (role, attribute naming the series, how the point is stored)
KNOWN: dict[str, tuple[str, str | None, str, str | None]] = {
    # name: (role, series attribute, stored as (sketch|hist|counter group), counter label attribute)
    "ml.feature.value": (FEATURE, "ml.feature.name", "value", None),
    "ml.feature.category": (FEATURE, "ml.feature.name", "category", "ml.category.value"),
    "ml.feature.missing": (FEATURE, "ml.feature.name", "missing", "ml.missing.kind"),
    "ml.schema.violations": (FEATURE, "ml.feature.name", "violations", "ml.schema.rule"),
    "ml.prediction.value": (OUTPUT, "ml.output.name", "value", None),
    "ml.prediction.class": (OUTPUT, "ml.output.name", "class", "ml.prediction.label"),
    "ml.prediction.null": (OUTPUT, "ml.output.name", "null", "ml.null.kind"),
    "ml.inference.duration": (MODEL, None, "duration", None),
    "ml.inference.batch_size": (MODEL, None, "batch_size", None),
    "ml.telemetry.dropped": (MODEL, None, "dropped", "ml.telemetry.reason"),
}


def screen(signal: str, decoded: Decoded, limiter: SeriesLimiter | None = None) -> Decoded:
    """Move the points windows cannot place (an ``ml.*`` point without its model or series
    attribute, a prediction log without a request id) from ``points`` to ``rejected``, so the
    request that carried them is told (OTLP partial success). Unknown names pass: they are
    ignored and counted later, not rejected. With a ``limiter``, points of models and series
    beyond the cardinality limits are rejected too (:func:`limit`).
    """
    checks: dict[str, Callable[[Any], str | None]] = {
        "metrics": metric_problem,
        "traces": _no_problem,
        "logs": log_problem,
    }
    check = checks[signal]
    keep = []
    for p in decoded.points:
        why = check(p)
        if why is None:
            keep.append(p)
        else:
            decoded.reject(why)
    decoded.points = keep
    for i, c in enumerate(decoded.columns):
        series, bad = column_series(c)
        c.series = series  # kept for aggregate(), which needs them again
        if any(bad):
            ok = np.array([why is None for why in bad])
            for j, why in enumerate(bad):
                if why is not None:
                    decoded.reject(why, int((c.attr_index == j).sum()))
            decoded.columns[i] = c.take(ok[c.attr_index])
    decoded.columns = [c for c in decoded.columns if len(c)]
    if limiter is not None:
        limit(signal, decoded, limiter)
    return decoded


def limit(signal: str, decoded: Decoded, limiter: SeriesLimiter) -> Decoded:
    """Move the points of models and series the ``limiter`` refuses from ``decoded`` to its
    rejected count (each refusal's message names the limit), on screened points. One check per
    distinct (service, series) of the request, not per point.

    Example:
        >>> from infersight.processor.ingest.limits import LimitSettings
        >>> lim = SeriesLimiter(LimitSettings(max_models=1, max_models_per_service=1))
        >>> logs = [LogPoint("ml.prediction", {"service.name": "s"}, {"ml.model.name": m,
        ...     "ml.request.id": "r"}, 0, "", "") for m in ("a", "b", "a")]
        >>> d = limit("logs", Decoded(logs), lim)
        >>> len(d.points), d.rejected, d.errors[0][:46]
        (2, 1, "model 'b' from service 's' not stored: the pro")
    """
    verdicts: dict[tuple[Any, ...], Refusal | None] = {}
    refused: dict[Refusal, int] = {}

    def check(service: Any, model: str, series: tuple[str, str, str] | None) -> Refusal | None:
        key = (service, model, series)
        try:
            return verdicts[key]
        except KeyError:
            svc = UNKNOWN_SERVICE if service is None or service == "" else str(service)
            found = verdicts[key] = limiter.admit(svc, model, series)
            return found

    keep = []
    for p in decoded.points:
        why = _point_refusal(signal, p, check)
        if why is None:
            keep.append(p)
        else:
            refused[why] = refused.get(why, 0) + 1
    decoded.points = keep
    admitted = limiter.admitted  # series seen admitted before: one set lookup each, no call
    for i, c in enumerate(decoded.columns):
        service = c.resource.get("service.name")
        series = c.series or []
        bad: dict[int, Refusal] = {}
        for j, s in enumerate(series):
            if s is None or s in admitted:
                continue
            why = check(service, s[0], (s[1], s[2], s[3]))
            if why is None:
                admitted.add(s)
            else:
                bad[j] = why
        if bad:
            per_entry = np.bincount(c.attr_index, minlength=len(series))
            for j, why in bad.items():
                refused[why] = refused.get(why, 0) + int(per_entry[j])
            ok = np.ones(len(series), bool)
            ok[list(bad)] = False
            kept = c.take(ok[c.attr_index])
            kept.series = [None if j in bad else s for j, s in enumerate(series)]
            decoded.columns[i] = kept
    decoded.columns = [c for c in decoded.columns if len(c)]
    for why, n in refused.items():
        if n:
            decoded.reject(why.message, n)
            limiter.refused(why, n, signal)
    return decoded


def series_role(role: str, attrs: dict[str, Any]) -> str:
    """The stored role of a point: its metric's role, in the point's slice (``ml.slice``,
    written by ``@monitor(slices=...)``) for features and outputs.

    >>> series_role(FEATURE, {"ml.slice": "region=eu"}), series_role(MODEL, {"ml.slice": "region=eu"})
    ('feature@region=eu', 'model')
    """
    key = attrs.get("ml.slice")
    if not key or role == MODEL:
        return role
    return sliced_role(role, str(key))


def _point_refusal(
    signal: str, p: Any, check: Callable[[Any, str, tuple[str, str, str] | None], Refusal | None]
) -> Refusal | None:
    if signal == "metrics":
        spec = KNOWN.get(p.name)
        ident = identity(p.attributes, p.resource) if spec is not None else None
        if spec is None or ident is None:
            return None  # unknown metrics are not stored
        name = "" if spec[1] is None else str(p.attributes[spec[1]])
        return check(p.resource.get("service.name"), ident[0], (ident[1], series_role(spec[0], p.attributes), name))
    if signal == "traces":
        ident = identity(p.attributes, p.resource)
        if ident is None:
            return None  # spans without a model are not stored
        return check(p.resource.get("service.name"), ident[0], (ident[1], MODEL, ""))
    if p.event_name == OUTCOMES_EVENT:
        return check(p.resource.get("service.name"), str(p.body["model"]), None)
    if p.event_name in ("ml.prediction", "ml.feedback"):
        ident = identity(p.attributes, p.resource)
        return None if ident is None else check(p.resource.get("service.name"), ident[0], None)
    return None


def _no_problem(p: Any) -> str | None:
    return None


def metric_problem(p: MetricPoint) -> str | None:
    spec = KNOWN.get(p.name)
    if spec is None:
        return None
    if identity(p.attributes, p.resource) is None:
        return f"{p.name}: point has no ml.model.name attribute"
    series_attr, label_attr = spec[1], spec[3]
    if series_attr is not None and p.attributes.get(series_attr) in (None, ""):
        return f"{p.name}: point has no {series_attr} attribute"
    if p.kind == "sum" and label_attr is not None and p.attributes.get(label_attr) is None:
        return f"{p.name}: point has no {label_attr} attribute"
    return None


# (metric name, attributes, resource's model) -> (problem, series); bounded like the decoder's cache.
_SERIES: dict[tuple[Any, ...], tuple[str | None, tuple[Any, ...] | None]] = {}


def columns_series(c: SketchColumns, attrs: dict[str, Any], key: Any) -> tuple[str | None, tuple[Any, ...] | None]:
    """Why the points of ``c`` with these attributes cannot be placed (or ``None``), and the
    series they belong to: (model, version, role, name, slot, error.type for durations)."""
    ck = (c.name, key, c.resource.get("ml.model.name"), c.resource.get("ml.model.version"))
    hit = _SERIES.get(ck)
    if hit is None:
        if len(_SERIES) > 200_000:
            _SERIES.clear()
        why = metric_problem(MetricPoint(c.name, "exponential_histogram", c.resource, attrs, 0, 0))
        ident = identity(attrs, c.resource)
        spec = KNOWN.get(c.name)
        found = None
        if why is None and ident is not None and spec is not None:
            role, series_attr, slot, _ = spec
            name = "" if series_attr is None else str(attrs[series_attr])
            # Calls are counted per error.type, so that attribute separates groups of durations.
            etype = attrs.get("error.type") if role == MODEL and slot == "duration" else None
            found = (ident[0], ident[1], series_role(role, attrs), name, slot, etype)
        hit = _SERIES[ck] = (why, found)
    return hit


# (metric name, resource's model and version, every entry's attribute bytes) -> (series, problems)
# of a whole column: an exporter sends the same attribute sets in the same order request after
# request. Bounded by the entries it holds, like the per-entry cache.
_COLUMNS: dict[tuple[Any, ...], tuple[list[Any], list[str | None]]] = {}
_COLUMNS_HELD = [0]
_COLUMNS_MAX = 200_000


def column_series(c: SketchColumns) -> tuple[list[Any], list[str | None]]:
    """:func:`columns_series` of every entry of ``c.attrs``: the series each feeds (``None``
    where it cannot be placed) and why not (``None`` where it can), one lookup per column for
    attribute sets seen together before. The lists are the caller's own.

    Example:
        >>> z = np.zeros(1, np.int64)
        >>> c = SketchColumns("ml.feature.value", {"ml.model.name": "m"}, [{"ml.feature.name": "age"}],
        ...     [(b"age",)], z, z, z, z, z + 1, z, z + 1.0, z + 1.0, z + 1.0, z, z, z, z, z)
        >>> column_series(c)
        ([('m', '', 'feature', 'age', 'value', None)], [None])
    """
    key = (c.name, c.resource.get("ml.model.name"), c.resource.get("ml.model.version"), tuple(c.attr_keys))
    hit = _COLUMNS.get(key)
    if hit is None:
        looked = [columns_series(c, attrs, k) for attrs, k in zip(c.attrs, c.attr_keys)]
        hit = ([found for _, found in looked], [why for why, _ in looked])
        if _COLUMNS_HELD[0] + len(looked) > _COLUMNS_MAX:
            _COLUMNS.clear()
            _COLUMNS_HELD[0] = 0
        _COLUMNS[key] = hit
        _COLUMNS_HELD[0] += len(looked)
    return list(hit[0]), list(hit[1])


def log_problem(rec: LogPoint) -> str | None:
    if rec.event_name == OUTCOMES_EVENT:
        return outcome_problem(rec)
    if rec.event_name not in ("ml.prediction", "ml.feedback"):
        return None
    if identity(rec.attributes, rec.resource) is None or not rec.attributes.get("ml.request.id"):
        return f"{rec.event_name} log record needs ml.model.name and ml.request.id attributes"
    if rec.event_name == "ml.feedback" and rec.attributes.get("ml.feedback.actual") is None:
        return "ml.feedback log record has no ml.feedback.actual attribute"
    return None


def identity(attrs: dict[str, Any], resource: dict[str, Any]) -> tuple[str, str] | None:
    model = attrs.get("ml.model.name", resource.get("ml.model.name"))
    if model is None or model == "":
        return None
    version = attrs.get("ml.model.version", resource.get("ml.model.version", ""))
    return str(model), str(version)
