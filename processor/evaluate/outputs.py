"""Findings as metrics: gauges on ``/metrics`` (Prometheus text) and pushed over OTLP/HTTP.

Generic by kind, so a new evaluator's findings reach both without code here:

==============  ===========================================================================
kind            metrics (gauges; the latest evaluated window of each series)
==============  ===========================================================================
``drift``       ``ml.drift.score`` (the statistic), ``ml.drift.threshold``,
                ``ml.drift.p_value`` (when the method has one), ``ml.drift.detected`` (0/1)
``data_quality````ml.data_quality.score``, ``ml.data_quality.threshold``,
                ``ml.data_quality.detected``
``quality``     ``ml.quality.<subject>`` (e.g. ``ml.quality.accuracy``), and
                ``ml.quality.<subject>.threshold`` when a threshold is set
``age``         ``ml.model.age`` (seconds)
``slo``         ``ml.slo.sli`` (share of good events over the period), ``ml.slo.objective``,
                ``ml.slo.error_budget.remaining`` (share of the period's budget left; below 0
                when overspent), ``ml.slo.burn_rate`` (one series per alert window,
                ``ml.slo.window`` = ``1h``, ``5m`` ...), ``ml.slo.time_to_exhaustion``
                (seconds, while burning), and ``ml.slo.alert.firing`` (0/1 per severity
                ``page``, ``ticket``, ``no_data``); attributes ``ml.slo.name``, ``ml.slo.kind``
other           ``ml.<kind>.score``, ``ml.<kind>.threshold``, ``ml.<kind>.detected``
==============  ===========================================================================

Attributes: ``ml.model.name``, ``ml.model.version`` (``""``: all versions), ``ml.window.size``
(seconds), ``ml.slice`` when sliced, and ``ml.feature.name`` (or ``ml.output.name``),
``ml.drift.method`` and ``ml.finding.cause`` where they apply. In Prometheus the dots become
underscores, and ``ml.model.age`` is ``ml_model_age_seconds`` (the unit in the name, as
Prometheus names go).

The OTLP push runs on a thread of its own after each pass, so a slow or failing endpoint never
holds evaluation up: points not yet delivered are kept (the newest per series) and sent with
the next pass; a failure is logged once until the endpoint answers again.

Example:
    >>> from infersight.processor.evaluate.findings import Finding
    >>> out = FindingOutputs()
    >>> out.update([Finding("churn", "", 300, 0, "drift", "age", "breach", 0.31, 0.1, 1e-9, method="ks")])
    >>> print(out.render_prometheus().splitlines()[2])
    ml_drift_detected{ml_drift_method="ks",ml_feature_name="age",ml_model_name="churn",ml_model_version="",ml_window_size="300"} 1
"""

from __future__ import annotations

import functools
import logging
import math
import re
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from typing import Any

from infersight.processor.evaluate.findings import Finding

__all__ = ["FindingOutputs", "metric_points", "prometheus_name"]

log = logging.getLogger("infersight.processor.evaluate")

# A metric point: (name, unit, attributes, value, time in Unix seconds)
Point = tuple[str, str, tuple[tuple[str, str], ...], float, float]

_HELP = {
    "ml.drift.score": "Drift statistic of a feature or output in its latest evaluated window.",
    "ml.drift.threshold": "The drift statistic's threshold: score above it (and significant) is drift.",
    "ml.drift.p_value": "p-value of the drift test, where the method has one.",
    "ml.drift.detected": "1 when the latest window drifted, else 0.",
    "ml.model.age": "Time since the model version was trained or first served.",
}


def prometheus_name(name: str, unit: str = "") -> str:
    """``ml.drift.score`` → ``ml_drift_score``; a unit of seconds adds ``_seconds``.

    >>> prometheus_name("ml.model.age", "s")
    'ml_model_age_seconds'
    """
    out = re.sub(r"[^a-zA-Z0-9_:]", "_", name)
    if unit == "s" and not out.endswith("_seconds"):
        out += "_seconds"
    return out


def metric_points(f: Finding) -> list[Point]:
    """The metric points one finding becomes (see the module docstring)."""
    t = float(f.window_start + f.window_size)
    if f.kind == "slo":  # its series follow its details (burn-rate windows), not its subject
        a = {"ml.model.name": f.model, "ml.model.version": f.version, "ml.window.size": str(f.window_size)}
        if f.slice:
            a["ml.slice"] = f.slice
        return _slo_points(f, a, t)
    attrs, series = _shape(f.kind, f.model, f.version, f.window_size, f.slice, f.subject, f.method, f.p_value is None)
    out: list[Point] = []
    for name, unit, field in series:
        # a field of the finding, or detected (~80,000 points a pass: no dict of values)
        v = getattr(f, field) if field != "detected" else 1.0 if f.status in ("breach", "no_data") else 0.0
        if v is not None and math.isfinite(v):
            out.append((name, unit, attrs, float(v), t))
    return out


@functools.lru_cache(maxsize=1 << 16)
def _shape(
    kind: str,
    model: str,
    version: str,
    window_size: int,
    slice_: str,
    subject: str,
    method: str | None,
    no_p: bool,
) -> tuple[tuple[tuple[str, str], ...], tuple[tuple[str, str, str], ...]]:
    """A finding's series: its sorted attributes and ``(name, unit, field)`` of each point,
    the same for a subject from window to window (so worked out once, not per finding)."""
    a = {"ml.model.name": model, "ml.model.version": version, "ml.window.size": str(window_size)}
    if slice_:
        a["ml.slice"] = slice_
    series: list[tuple[str, str, str]] = []
    if kind == "quality":
        name = f"ml.quality.{re.sub(r'[^a-zA-Z0-9_]', '_', subject)}"
        series += [(name, "", "statistic"), (name + ".threshold", "", "threshold")]
    elif kind == "age":
        series.append(("ml.model.age", "s", "statistic"))
    else:
        role, _, item = subject.partition(":")
        if kind in ("drift", "data_quality") and subject:
            if item and role in ("output", "label_shift"):
                a["ml.output.name"] = item
                if role == "label_shift":
                    a["ml.drift.target"] = "label_shift"
            else:
                a["ml.feature.name"] = subject
        if method:
            a["ml.drift.method" if kind == "drift" else "ml.check.method"] = method
        prefix = f"ml.{kind}"
        series += [(f"{prefix}.score", "", "statistic"), (f"{prefix}.threshold", "", "threshold")]
        if not no_p:
            series.append((f"{prefix}.p_value", "", "p_value"))
        series.append((f"{prefix}.detected", "", "detected"))
    return tuple(sorted(a.items())), tuple(series)


def _slo_points(f: Finding, a: dict[str, str], t: float) -> list[Point]:
    d = f.details
    name, _, severity = f.subject.partition("/")
    a = {**a, "ml.slo.name": name, "ml.slo.kind": str(d.get("sli_kind", ""))}
    out: list[tuple[str, str, dict[str, str], Any]] = []
    if severity:
        detected = 1.0 if f.status in ("breach", "no_data") else 0.0
        out.append(("ml.slo.alert.firing", "", {**a, "ml.slo.severity": severity}, detected))
    else:
        out.append(("ml.slo.sli", "", a, d.get("sli")))
        out.append(("ml.slo.objective", "", a, d.get("objective")))
        out.append(("ml.slo.error_budget.remaining", "", a, d.get("budget_remaining")))
        tte = d.get("time_to_exhaustion")
        # +Inf: not burning, the budget lasts (a stale finite value would mislead)
        out.append(("ml.slo.time_to_exhaustion", "s", a, math.inf if tte is None else tte))
        for window, rate in (d.get("burn_rates") or {}).items():
            out.append(("ml.slo.burn_rate", "", {**a, "ml.slo.window": str(window)}, rate))
    return [
        (n, u, tuple(sorted(attrs.items())), float(v), t)
        for n, u, attrs, v in out
        if isinstance(v, (int, float)) and (math.isfinite(v) or n == "ml.slo.time_to_exhaustion")
    ]


class FindingOutputs:
    """The latest value of every findings series, for ``/metrics`` and the OTLP push."""

    def __init__(
        self, export: str | None = None, *, timeout: float = 5.0, resource: dict[str, str] | None = None
    ) -> None:
        self.export = export
        self.timeout = timeout
        self.resource = resource or {"service.name": "infersight-processor"}
        self._lock = threading.Lock()
        self._latest: dict[tuple[str, tuple[tuple[str, str], ...]], Point] = {}
        self._pending: dict[tuple[str, tuple[tuple[str, str], ...]], Point] = {}
        self._wake = threading.Event()
        self._idle = threading.Event()
        self._idle.set()
        self._closed = False
        self._failing = False
        self._thread: threading.Thread | None = None
        self.pushed = 0  # points delivered (for /metrics and tests)
        self.failures = 0

    def update(self, findings: Iterable[Finding]) -> None:
        """Take the findings of a pass: each series keeps its newest window's value."""
        latest, pending, export = self._latest, self._pending, bool(self.export)
        with self._lock:
            for f in findings:
                for p in metric_points(f):
                    k = (p[0], p[2])
                    have = latest.get(k)
                    if have is None or have[4] <= p[4]:
                        latest[k] = p
                        if export:
                            pending[k] = p

    def render_prometheus(self) -> str:
        """Prometheus text exposition (gauges), one family per metric name."""
        with self._lock:
            items = sorted(self._latest.values())
        lines: list[str] = []
        family = None
        for name, unit, attrs, value, _ in items:
            pname = prometheus_name(name, unit)
            if pname != family:
                family = pname
                lines.append(f"# HELP {pname} {_HELP.get(name, 'infersight finding: ' + name)}")
                lines.append(f"# TYPE {pname} gauge")
            labels = ",".join(f'{prometheus_name(k)}="{_escape(v)}"' for k, v in attrs)
            lines.append(f"{pname}{{{labels}}} {_fmt(value)}")
        return "\n".join(lines) + ("\n" if lines else "")

    # -- OTLP push ----------------------------------------------------------------------------

    def push(self) -> None:
        """Send what changed since the last delivery, on the push thread (returns at once)."""
        if not self.export or self._closed:
            return
        with self._lock:
            if not self._pending:
                return
            self._idle.clear()
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="infersight-findings-export", daemon=True)
            self._thread.start()
        self._wake.set()

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until the push thread has tried what is pending (tests)."""
        return self._idle.wait(timeout)

    def close(self) -> None:
        self._closed = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(self.timeout + 1)

    def _run(self) -> None:
        while not self._closed:
            self._wake.wait()
            self._wake.clear()
            if self._closed:
                break
            with self._lock:
                batch = dict(self._pending)
                self._pending.clear()
            if batch:
                ok = self._send(list(batch.values()))
                with self._lock:
                    if not ok:  # keep them, unless a newer value came in meanwhile
                        for k, p in batch.items():
                            self._pending.setdefault(k, p)
            self._idle.set()

    def _send(self, points: list[Point]) -> bool:
        assert self.export is not None
        body = encode_otlp(points, self.resource)
        req = urllib.request.Request(
            self.export, data=body, method="POST", headers={"Content-Type": "application/x-protobuf"}
        )
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                resp.read()
        except (urllib.error.URLError, OSError, ValueError) as exc:
            self.failures += 1
            if not self._failing:
                log.warning(
                    "cannot push findings to %s (%s); keeping them and retrying after the next pass", self.export, exc
                )
            self._failing = True
            return False
        if self._failing:
            log.info("findings push to %s works again", self.export)
        self._failing = False
        self.pushed += len(points)
        return True


def encode_otlp(points: list[Point], resource: dict[str, str]) -> bytes:
    """An OTLP ``ExportMetricsServiceRequest`` (protobuf) with one gauge per metric name."""
    from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
    from opentelemetry.proto.common.v1 import common_pb2

    def kv(k: str, v: str) -> Any:
        return common_pb2.KeyValue(key=k, value=common_pb2.AnyValue(string_value=v))

    req = metrics_service_pb2.ExportMetricsServiceRequest()
    rm = req.resource_metrics.add()
    rm.resource.attributes.extend(kv(k, v) for k, v in resource.items())
    sm = rm.scope_metrics.add()
    sm.scope.name = "infersight.processor.evaluate"
    by_name: dict[str, Any] = {}
    now_ns = time.time_ns()
    for name, unit, attrs, value, t in points:
        m = by_name.get(name)
        if m is None:
            m = by_name[name] = sm.metrics.add(name=name, unit=unit, description=_HELP.get(name, ""))
        dp = m.gauge.data_points.add(as_double=float(value), time_unix_nano=int(t * 1e9) if t else now_ns)
        dp.attributes.extend(kv(k, v) for k, v in attrs)
    data: bytes = req.SerializeToString()
    return data


def _escape(v: str) -> str:
    return v.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _fmt(v: float) -> str:
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return repr(float(v)) if not float(v).is_integer() else str(int(v)) if abs(v) < 1e15 else repr(float(v))
