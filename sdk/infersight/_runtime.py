"""OpenTelemetry set-up: providers, exporters, the metric reader that ships sketches, fork safety.

We *use* the OTel SDK's provider → processor → exporter chain rather than building a second one.
Two things are ours:

* ``ml.*`` statistics are aggregated by :class:`~infersight.feature_stats.FeatureStats` (numpy
  sketches, not one ``Histogram.record`` per value) and handed to the exporter at collection
  time by :class:`_StatsReader` (our providers) or :class:`_StatsInjectingExporter` (wrapping the
  exporters of providers the application installed itself, e.g. ``opentelemetry-instrument``).
* Exporters sit behind :class:`_Switch`, so ``configure()`` twice swaps them cleanly: the old
  one is flushed and shut down, no duplicate exporters, no restart of the providers (which the
  OTel API forbids once they are global).

This module builds and runs one :class:`Runtime`; it holds no globals. Which runtime the process
uses, and the exit, fork and signal hooks that call it, live in :mod:`infersight._state`.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any, cast

from opentelemetry import _logs as otel_logs
from opentelemetry import metrics as otel_metrics
from opentelemetry import trace
from opentelemetry._logs import LogRecord, SeverityNumber
from opentelemetry.sdk._logs import LoggerProvider, ReadableLogRecord
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.metrics import (
    Counter,
    Histogram,
    MeterProvider,
    ObservableCounter,
    ObservableGauge,
    ObservableUpDownCounter,
    UpDownCounter,
)
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    MetricExporter,
    MetricExportResult,
    MetricReader,
    MetricsData,
    ResourceMetrics,
    ScopeMetrics,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased, Sampler, SamplingResult, TraceIdRatioBased
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from infersight._histogram import DeltaHistogram
from infersight._outcomes import CHUNK_CALLS, OUTCOMES_EVENT, RECORDS_PER_EXPORT, OutcomeBuffer, encode_outcomes
from infersight._spans import FastTracer, LiteSpanProcessor
from infersight.config import Settings
from infersight.feature_stats import FeatureStats

__all__ = ["Runtime", "build_exporters"]

_log = logging.getLogger("infersight")
SCOPE = "infersight"
VERSION = "0.1.0"


class _Switch:
    """An exporter that forwards to whichever exporter is current (swapped by configure), and
    tells ``on_failure`` about batches the batch processors would drop without a word."""

    def __init__(self, inner: Any, on_failure: Any = None) -> None:
        self.inner = inner
        self.on_failure = on_failure

    def swap(self, inner: Any) -> None:
        old, self.inner = self.inner, inner
        if old is not None and old is not inner:
            _quietly(getattr(old, "shutdown", None))

    def export(self, batch: Any, *args: Any, **kwargs: Any) -> Any:
        inner = self.inner
        if inner is None:
            return MetricExportResult.SUCCESS  # no exporter configured: nothing to send, not a failure
        result = inner.export(batch, *args, **kwargs)
        if self.on_failure is not None and getattr(result, "name", None) == "FAILURE":
            self.on_failure()
        return result

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        f = getattr(self.inner, "force_flush", None)
        return bool(f(timeout_millis)) if f else True

    def shutdown(self, *args: Any, **kwargs: Any) -> None:
        self.swap(None)


def _quietly(fn: Any, *args: Any) -> None:
    if fn is None:
        return
    try:
        fn(*args)
    except Exception:  # noqa: BLE001 - shutting down an exporter must not fail configure()
        _log.debug("infersight: ignoring error while shutting down an exporter", exc_info=True)


class _RatioSampler(Sampler):
    """ParentBased(TraceIdRatioBased(ratio)) whose ratio configure() can change."""

    # Lets infersight's span path answer inline: follow a valid parent's sampled flag (and keep
    # its trace state), else sample a root when its trace ID's lower 64 bits are under
    # ``root_bound``, TraceIdRatioBased's own rule (2**64 for ALWAYS_ON: every root).
    parent_based = True

    def __init__(self, ratio: float) -> None:
        self.set_ratio(ratio)

    def set_ratio(self, ratio: float) -> None:
        self._delegate = ParentBased(ALWAYS_ON if ratio >= 1.0 else TraceIdRatioBased(ratio))
        self.root_bound = 1 << 64 if ratio >= 1.0 else TraceIdRatioBased.get_bound_for_rate(ratio)
        # Called for every span: answer with the delegate's bound method, no extra layer.
        self.should_sample = self._delegate.should_sample  # type: ignore[method-assign]

    def should_sample(self, *args: Any, **kwargs: Any) -> SamplingResult:
        return self._delegate.should_sample(*args, **kwargs)

    def get_description(self) -> str:
        return f"InferSight{{{self._delegate.get_description()}}}"


_DELTA: dict[type, AggregationTemporality] = {
    Counter: AggregationTemporality.DELTA,
    UpDownCounter: AggregationTemporality.CUMULATIVE,
    Histogram: AggregationTemporality.DELTA,
    ObservableCounter: AggregationTemporality.DELTA,
    ObservableUpDownCounter: AggregationTemporality.CUMULATIVE,
    ObservableGauge: AggregationTemporality.CUMULATIVE,
}


def _inject(
    data: MetricsData, scoped: list[tuple[InstrumentationScope, list[Any]]], resource: Resource | None
) -> MetricsData:
    """``data`` plus our drained metrics (``(scope, metrics)`` pairs: the ``ml.*`` statistics,
    the fast HTTP histogram), regrouped so each (resource, scope) appears once: OTLP encoders
    key by resource and by scope, so a second entry would clobber the first (e.g. data carried
    over a fork next to fresh data, or our scope next to the SDK's)."""
    rms = list(data.resource_metrics)
    scoped = [(scope, metrics) for scope, metrics in scoped if metrics]
    if scoped:
        if not rms:
            rms = [ResourceMetrics(resource or Resource.create({}), [], "")]
        first = rms[0]
        extra = [ScopeMetrics(scope, metrics, "") for scope, metrics in scoped]
        rms[0] = ResourceMetrics(first.resource, list(first.scope_metrics) + extra, first.schema_url)
    if len(rms) == 1 and len({sm.scope.name for sm in rms[0].scope_metrics}) == len(rms[0].scope_metrics):
        return MetricsData(rms)
    grouped: dict[Any, tuple[Any, str, dict[Any, tuple[Any, str, list[Any]]]]] = {}
    for rm in rms:
        key = tuple(sorted(rm.resource.attributes.items()))
        _, _, scopes = grouped.setdefault(key, (rm.resource, rm.schema_url, {}))
        for sm in rm.scope_metrics:
            skey = (sm.scope.name, sm.scope.version)
            scopes.setdefault(skey, (sm.scope, sm.schema_url, []))[2].extend(sm.metrics)
    return MetricsData(
        [
            ResourceMetrics(res, [ScopeMetrics(scope, ms, url) for scope, url, ms in scopes.values()], schema)
            for res, schema, scopes in grouped.values()
        ]
    )


class _StatsReader(MetricReader):
    """Periodic reader (its own thread; interval changeable by configure) that exports the
    provider's instruments plus our sketches through the current exporter."""

    def __init__(self, runtime: Runtime, exporter: _Switch, interval: float, temporality: dict[type, Any]) -> None:
        super().__init__(preferred_temporality=temporality)
        self.runtime = runtime
        self.exporter = exporter
        self.interval = interval
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._start_thread()
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=self._after_fork)

    def wake_for_compaction(self) -> None:
        """Ask the exporter thread to compact request-path buffers now (no export)."""
        self._compact.set()

    def _start_thread(self) -> None:
        self._stop = threading.Event()
        self._compact = threading.Event()
        self._thread = threading.Thread(target=self._tick, name="InferSightMetricReader", daemon=True)
        self._thread.start()

    def _after_fork(self) -> None:
        self._lock = threading.Lock()
        if not self._stop.is_set():
            self._start_thread()

    def _stop_thread(self) -> None:
        self._stop.set()
        self._compact.set()

    def _tick(self) -> None:
        deadline = time.monotonic() + self.interval
        while not self._stop.is_set():
            woke = self._compact.wait(max(0.0, deadline - time.monotonic()))
            if self._stop.is_set():
                break
            try:
                if woke:
                    self._compact.clear()
                    self.runtime.stats.compact()
                    outcomes = self.runtime.outcomes
                    if len(outcomes.items) >= outcomes.ship_at or outcomes.ready:
                        self.runtime.ship_outcomes()
                    if time.monotonic() < deadline:
                        continue
                self.collect()
            except Exception:  # noqa: BLE001 - the exporter thread must survive anything
                self.runtime.fault("metric_export")
            deadline = time.monotonic() + self.interval

    def _receive_metrics(self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any) -> None:
        # Every collection has data (the ``ml.telemetry.buffered`` gauge always reports), so
        # this runs each time; the lock serialises the ticker and flush().
        with self._lock:
            self._export(metrics_data, timeout_millis)

    def _export(self, metrics_data: MetricsData, timeout_millis: float) -> None:
        carried = self.runtime.take_carried_sdk_metrics()
        if carried:
            metrics_data = MetricsData(list(metrics_data.resource_metrics) + carried)
        data = _inject(metrics_data, self.runtime.drain_stats(), self.runtime.resource)
        if not data.resource_metrics:
            return
        try:
            result = self.exporter.export(data, timeout_millis=timeout_millis)
        except Exception:  # noqa: BLE001
            result = MetricExportResult.FAILURE
        if result is MetricExportResult.FAILURE:
            self.runtime.export_failed("metric_export_failed", self.exporter)
        if self.runtime.settings.release_memory:
            release_free_memory()

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        self.collect(timeout_millis=timeout_millis)
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        if self._stop.is_set():
            return
        self._stop_thread()
        try:
            self.collect(timeout_millis=timeout_millis)
        finally:
            self.exporter.shutdown()


class _StatsInjectingExporter(MetricExporter):
    """Wraps the exporter of an application-owned reader so our sketches ride along."""

    def __init__(self, inner: MetricExporter, runtime: Runtime) -> None:
        super().__init__(
            preferred_temporality=getattr(inner, "_preferred_temporality", None),
            preferred_aggregation=getattr(inner, "_preferred_aggregation", None),
        )
        self.inner = inner
        self.runtime = runtime

    def export(self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any) -> MetricExportResult:
        data = _inject(metrics_data, self.runtime.drain_stats(), self.runtime.resource)
        return self.inner.export(data, timeout_millis=timeout_millis, **kwargs)

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return self.inner.force_flush(timeout_millis)

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        self.inner.shutdown(timeout_millis=timeout_millis, **kwargs)


def _build_resource(s: Settings) -> Resource:
    attrs: dict[str, Any] = {
        "service.name": s.service_name,
        "host.name": socket.gethostname(),
        "process.pid": os.getpid(),
    }
    if s.service_version:
        attrs["service.version"] = s.service_version
    if s.environment:
        attrs["deployment.environment.name"] = s.environment
    return Resource.create(attrs)


def _otlp_endpoint(s: Settings, signal: str) -> dict[str, Any]:
    kwargs: dict[str, Any] = {}
    if s.headers:
        kwargs["headers"] = dict(s.headers)
    per_signal = os.environ.get(f"OTEL_EXPORTER_OTLP_{signal.upper()}_ENDPOINT")
    from_environment = s.endpoint in (
        os.environ.get("INFERSIGHT_ENDPOINT"),
        os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"),
    )
    if s.endpoint and not (per_signal and from_environment):
        # a general endpoint from the environment yields to the signal's own variable (the
        # OTel specification's order), which the exporter then reads itself; an endpoint
        # given to configure() wins over both
        if s.protocol == "grpc":
            kwargs["endpoint"] = s.endpoint
            if s.endpoint.startswith("http://"):
                kwargs["insecure"] = True
        else:
            base = s.endpoint.rstrip("/")
            kwargs["endpoint"] = base if base.endswith(f"/v1/{signal}") else f"{base}/v1/{signal}"
    return kwargs


def build_exporters(s: Settings) -> tuple[Any, Any, Any]:
    """Span, metric and log exporters for ``settings.exporter`` / ``protocol`` / ``endpoint``."""
    if s.exporter == "none":
        return None, None, None
    if s.exporter == "console":
        from opentelemetry.sdk._logs.export import ConsoleLogRecordExporter
        from opentelemetry.sdk.metrics.export import ConsoleMetricExporter
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter(), ConsoleMetricExporter(), ConsoleLogRecordExporter()
    from infersight._otlp_exporters import log_exporter, metric_exporter, span_exporter

    return (
        span_exporter(s.protocol, **_otlp_endpoint(s, "traces")),
        metric_exporter(s.protocol, **_otlp_endpoint(s, "metrics")),
        log_exporter(s.protocol, **_otlp_endpoint(s, "logs")),
    )


class Runtime:
    """The process-wide telemetry state: settings, providers, tracer, meter, OTel logger, stats."""

    def __init__(self, settings: Settings, replaces: Runtime | None = None) -> None:
        """``replaces``: a runtime that was shut down (``infersight.shutdown()``, then
        ``configure()`` again, as test fixtures do): the providers it owned are stopped for good,
        so this one builds its own instead of taking them for the application's."""
        self.settings = settings
        self._replaces = replaces
        self.stats = FeatureStats(settings.max_categories, settings.max_attribute_sets)
        # Every monitored call's prediction, appended on the request path, shipped by drain_stats.
        self.outcomes = OutcomeBuffer(settings.max_buffered_outcomes)
        self._ship_lock = threading.Lock()
        self._faults_logged: set[str] = set()
        self._last_drain_ns = time.time_ns()
        self._carry: list[tuple[InstrumentationScope, list[Any]]] = []  # drained before a fork, for the parent
        self._histograms: dict[tuple[str, str], DeltaHistogram] = {}
        self._carry_sdk: list[Any] = []  # the SDK instruments' points collected before a fork
        self.owns_tracing = self.owns_metrics = self.owns_logs = False
        self.exports_deltas = False
        # Spans and log records the SDK's batch processors export: a failed batch is counted
        # here (the metric reader and infersight's span processor count their own).
        self.span_switch: _Switch = _Switch(None, lambda: self.export_failed("span_export_failed", self.span_switch))
        self.metric_switch = _Switch(None)
        self.log_switch: _Switch = _Switch(None, lambda: self.export_failed("log_export_failed", self.log_switch))
        self.reader: _StatsReader | None = None
        self.sampler = _RatioSampler(settings.sample_ratio)
        self.pipeline: Any = None  # infersight.logs.LogPipeline, set by infersight._state.configure()
        self.resource = _build_resource(settings)
        self._install()
        self._model_ages: dict[tuple[str, str], float] = {}
        self._install_instruments()

    # -- set-up ---------------------------------------------------------------------------

    def _ours_before(self, provider: Any, kind: str) -> bool:
        """Whether ``provider`` is one the runtime this one replaces owned (and shut down)."""
        old = self._replaces
        owns = {"tracer": "owns_tracing", "meter": "owns_metrics", "logger": "owns_logs"}[kind]
        return old is not None and bool(getattr(old, owns)) and provider is getattr(old, kind + "_provider")

    @property
    def shut_down(self) -> bool:
        """Stopped, or being stopped (:meth:`retire`): it will not export again."""
        return bool(getattr(self, "_shut_down", False) or getattr(self, "_retired", False))

    def retire(self) -> None:
        """Mark the runtime as on its way out before its (bounded, maybe overrunning) stop:
        ``configure()`` then builds a new one instead of pointing this one somewhere else."""
        self._retired = True

    def _install(self) -> None:
        existing_tp: Any = trace.get_tracer_provider()
        if self._ours_before(existing_tp, "tracer"):
            existing_tp = None  # stopped for good; the global one cannot be replaced: ours, unset
        self.span_processor: LiteSpanProcessor | None = None
        if isinstance(existing_tp, TracerProvider):
            self.tracer_provider: Any = existing_tp  # the application's own (e.g. opentelemetry-instrument)
        else:
            self.tracer_provider = TracerProvider(resource=self.resource, sampler=self.sampler, shutdown_on_exit=False)
            # infersight's own spans first: on shutdown they are exported before the batch
            # processor shuts the exporter down.
            self.span_processor = LiteSpanProcessor(self.span_switch, self._span_dropped)
            self.tracer_provider.add_span_processor(self.span_processor)
            self.tracer_provider.add_span_processor(BatchSpanProcessor(cast(Any, self.span_switch)))
            self.owns_tracing = True
            if type(existing_tp).__name__ == "ProxyTracerProvider":
                trace.set_tracer_provider(self.tracer_provider)

        existing_mp: Any = otel_metrics.get_meter_provider()
        if self._ours_before(existing_mp, "meter"):
            existing_mp = None
        if isinstance(existing_mp, MeterProvider):
            self.meter_provider: Any = existing_mp
            if not self._wrap_foreign_readers(existing_mp):
                # No reader we can ride along with: ship our stats through a provider of our own.
                self._own_meter_provider(set_global=False)
        else:
            self._own_meter_provider(set_global=type(existing_mp).__name__ == "_ProxyMeterProvider")

        existing_lp: Any = otel_logs.get_logger_provider()
        if self._ours_before(existing_lp, "logger"):
            existing_lp = None
        if isinstance(existing_lp, LoggerProvider):
            self.logger_provider: Any = existing_lp
        else:
            self.logger_provider = LoggerProvider(resource=self.resource, shutdown_on_exit=False)
            self.logger_provider.add_log_record_processor(BatchLogRecordProcessor(cast(Any, self.log_switch)))
            self.owns_logs = True
            if type(existing_lp).__name__ == "ProxyLoggerProvider":
                otel_logs.set_logger_provider(self.logger_provider)
        self.tracer = self.tracer_provider.get_tracer(SCOPE, VERSION)
        # What the middlewares and @monitor start their spans with (see infersight._spans).
        self.span_tracer: Any = (
            FastTracer(self.tracer_provider, self.span_processor, SCOPE, VERSION, expected=2)
            if self.span_processor is not None
            else self.tracer
        )
        self.meter = self.meter_provider.get_meter(SCOPE, VERSION)
        self.otel_logger = self.logger_provider.get_logger(SCOPE, VERSION)

    def _own_meter_provider(self, set_global: bool) -> None:
        temporality = _DELTA
        if os.environ.get("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", "").lower() == "cumulative":
            temporality = {}
        self.exports_deltas = temporality is _DELTA
        self.reader = _StatsReader(self, self.metric_switch, self.settings.metric_export_interval, temporality)
        self.meter_provider = MeterProvider(
            resource=self.resource, metric_readers=[self.reader], shutdown_on_exit=False
        )
        self.stats.on_pressure = self.reader.wake_for_compaction
        self.outcomes.on_pressure = self.reader.wake_for_compaction  # the wake also ships outcomes
        self.outcomes.encoder = self._encode_outcomes
        self.owns_metrics = True
        if set_global:
            otel_metrics.set_meter_provider(self.meter_provider)

    def _wrap_foreign_readers(self, provider: MeterProvider) -> bool:
        wrapped = False
        # No public accessor exists; the attribute moved between SDK releases.
        readers = getattr(provider, "_metric_readers", None)  # noqa: SLF001
        if readers is None:
            readers = getattr(getattr(provider, "_sdk_config", None), "metric_readers", None)
        if not readers:
            return False
        for reader in readers:
            inner = getattr(reader, "_exporter", None)
            if inner is None:
                continue
            if not isinstance(inner, _StatsInjectingExporter):
                reader._exporter = _StatsInjectingExporter(inner, self)  # noqa: SLF001
            else:
                inner.runtime = self
            wrapped = True
        return wrapped

    def _install_instruments(self) -> None:
        def model_age(options: Any) -> Any:
            from opentelemetry.metrics import Observation

            now = time.time()
            return [
                Observation(now - ts, {"ml.model.name": m, "ml.model.version": v})
                for (m, v), ts in list(self._model_ages.items())
            ]

        self.meter.create_observable_gauge(
            "ml.model.age", callbacks=[model_age], unit="s", description="Seconds since the model was trained"
        )

        def buffered(options: Any) -> Any:
            from opentelemetry.metrics import Observation

            return [Observation(self.stats.buffered_rows())]

        # Always one point per collection, so a reader owned by the application (whose exporter
        # carries our sketches) never skips an export because the app itself recorded nothing.
        self.meter.create_observable_gauge(
            "ml.telemetry.buffered",
            callbacks=[buffered],
            unit="1",
            description="Rows waiting in infersight's buffers for the next export",
        )
        if self.settings.system_metrics:
            self._install_system_metrics()

    def _install_system_metrics(self) -> None:
        """Process CPU and memory through opentelemetry-instrumentation-system-metrics (extra
        ``system-metrics``), and GPU utilisation and memory through NVML where present."""
        try:
            from opentelemetry.instrumentation.system_metrics import SystemMetricsInstrumentor

            instrumentor = SystemMetricsInstrumentor(
                config={
                    "process.cpu.time": ["user", "system"],
                    "process.cpu.utilization": None,
                    "process.memory.usage": None,
                    "process.memory.virtual": None,
                    "process.thread.count": None,
                }
            )
            if not instrumentor.is_instrumented_by_opentelemetry:
                instrumentor.instrument(meter_provider=self.meter_provider)
        except Exception:  # noqa: BLE001 - optional extra
            self.fault("system_metrics_unavailable")
        try:
            import pynvml  # type: ignore[import-not-found]

            pynvml.nvmlInit()
            handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())]
        except Exception:  # noqa: BLE001 - no NVIDIA driver or no pynvml: no GPU metrics
            return
        from opentelemetry.metrics import Observation

        def utilization(options: Any) -> Any:
            return [
                Observation(pynvml.nvmlDeviceGetUtilizationRates(h).gpu / 100.0, {"gpu.index": i})
                for i, h in enumerate(handles)
            ]

        def memory(options: Any) -> Any:
            return [
                Observation(pynvml.nvmlDeviceGetMemoryInfo(h).used, {"gpu.index": i}) for i, h in enumerate(handles)
            ]

        self.meter.create_observable_gauge(
            "gpu.utilization", callbacks=[utilization], unit="1", description="GPU busy share (NVML)"
        )
        self.meter.create_observable_gauge(
            "gpu.memory.usage", callbacks=[memory], unit="By", description="GPU memory in use (NVML)"
        )

    def note_model(self, model: str, version: str, trained_at: float | None) -> None:
        if trained_at is not None:
            self._model_ages[(model, version)] = trained_at

    def apply(self, settings: Settings, exporters: tuple[Any, Any, Any]) -> None:
        """Point the pipeline at new settings and exporters (old exporters flushed, shut down)."""
        self.settings = settings
        self.sampler.set_ratio(settings.sample_ratio)
        self.stats.max_categories = settings.max_categories
        self.stats.max_attribute_sets = settings.max_attribute_sets
        self.outcomes.capacity = settings.max_buffered_outcomes
        span_exp, metric_exp, log_exp = exporters
        if self.owns_tracing:
            _quietly(self.tracer_provider.force_flush)
            self.span_switch.swap(span_exp)
        if self.reader is not None:
            self.reader.interval = settings.metric_export_interval
            self.metric_switch.swap(metric_exp)
        if self.owns_logs:
            _quietly(self.logger_provider.force_flush)
            self.log_switch.swap(log_exp)
        new_resource = _build_resource(settings)
        if new_resource.attributes != self.resource.attributes:
            self._set_resource(new_resource)

    def _set_resource(self, resource: Resource) -> None:
        """Point our own providers at ``resource`` (a new service name, or a forked child's
        process.pid), tracers and loggers already handed out included. Uses the SDK's own
        (private) updater, as its fork handler does; providers owned by the app are left alone."""
        self.resource = resource
        for provider, owned in (
            (self.tracer_provider, self.owns_tracing),
            (self.logger_provider, self.owns_logs),
            (self.meter_provider, self.owns_metrics),
        ):
            update = getattr(provider, "_update_resource", None)
            if owned and update is not None:
                try:
                    update(resource)
                except Exception:  # noqa: BLE001 - a resource refresh must not break configure()
                    self.fault("resource_update")

    def _span_dropped(self, reason: str) -> None:
        if reason == "span_queue_full":
            self.stats.count_dropped(reason)  # counted, never logged per span
        elif reason == "span_export_failed":
            self.export_failed(reason, self.span_switch)
        else:
            self.fault(reason, once_key=reason)

    def export_failed(self, reason: str, switch: _Switch) -> None:
        """Count a batch that could not be exported. Our OTLP exporters have already said, in
        one line per endpoint, that it is unreachable; any other exporter gets the fault line."""
        if getattr(switch.inner, "reports_health", False):
            self.stats.count_dropped(reason)
        else:
            self.fault(reason, once_key=reason)

    # -- faults ---------------------------------------------------------------------------

    def fault(self, reason: str, once_key: str | None = None, hint: str | None = None) -> None:
        """Count a telemetry fault in ``ml.telemetry.dropped`` and log it once per reason;
        ``hint`` tells the reader what to do about it, when the fault is the caller's to fix."""
        try:
            self.stats.count_dropped(reason)
            key = once_key or reason
            if key not in self._faults_logged:
                self._faults_logged.add(key)
                # The exception, when there is one: most faults are noticed, not caught (a failed
                # export's result, a full queue), and exc_info=True outside an ``except`` prints
                # a stray "NoneType: None" line.
                _log.warning(
                    "infersight: telemetry fault %r (counted in ml.telemetry.dropped; logged once)%s",
                    reason,
                    f": {hint}" if hint else "",
                    exc_info=sys.exc_info()[0] is not None,
                )
        except Exception:  # noqa: BLE001 - fault reporting itself must never raise
            pass

    # -- export ---------------------------------------------------------------------------

    def delta_histogram(
        self, scope: str, name: str, unit: str, description: str, bounds: Sequence[float]
    ) -> DeltaHistogram | None:
        """A fast in-process histogram exported with our statistics, when our own reader exports
        deltas (see :mod:`infersight._histogram`); ``None`` otherwise (an application-owned or
        cumulative reader: record through an SDK instrument then)."""
        if not (self.owns_metrics and self.exports_deltas):
            return None
        hist = self._histograms.get((scope, name))
        if hist is None:
            hist = self._histograms[(scope, name)] = DeltaHistogram(name, unit, description, bounds)
        return hist

    def _drain_all(self, start: int, now: int) -> list[tuple[InstrumentationScope, list[Any]]]:
        scoped = [(InstrumentationScope(SCOPE, VERSION), self.stats.drain(start, now))]
        for (scope, _), hist in list(self._histograms.items()):
            metric = hist.drain(start, now)
            if metric is not None:
                scoped.append((InstrumentationScope(scope, VERSION), [metric]))
        return scoped

    def ship_outcomes(self) -> int:
        """Drain the outcome buffer into ``ml.outcomes`` log records and export them (a few
        records per request; through the application's logger provider when it owns logs);
        return how many calls went. Runs on the export thread or a flush, never on the request
        path. Calls whose export failed are counted in ``ml.telemetry.dropped``
        (``outcome_export_failed``)."""
        with self._ship_lock:  # a flush returns only after a drain in progress has shipped
            return self._ship_outcomes()

    def _ship_outcomes(self) -> int:
        dropped = self.outcomes.take_dropped()
        if dropped:
            self.stats.count_dropped("outcome_buffer_full", dropped)
        shipped = 0
        # Encoded on the request path when the buffer ran past its hard mark: older than
        # anything still buffered, so shipped first.
        while True:
            try:
                shipped += self._export_outcomes(self.outcomes.ready.popleft())
            except IndexError:
                break
        # A slice at a time (as many calls as one export request carries at most), each
        # encoded, exported and let go before the next is taken: what a drain holds at once
        # stays one request's worth however far the buffer ran ahead (the allocator keeps
        # what a drain's peak took).
        while True:
            outcomes = self.outcomes.take(CHUNK_CALLS * RECORDS_PER_EXPORT)
            if not outcomes:
                return shipped
            shipped += self._ship_slice(outcomes)

    def _ship_slice(self, outcomes: list[Any]) -> int:
        return self._export_outcomes(self._encode_outcomes(outcomes))

    def _encode_outcomes(self, outcomes: list[Any]) -> tuple[list[LogRecord], list[int]]:
        """``ml.outcomes`` log records of some outcomes, and how many calls each carries: on
        the export thread, or on the request path when the buffer runs past its hard mark
        (:attr:`OutcomeBuffer.hard_at`)."""
        s = self.settings
        redactor = self.pipeline.redactor if self.pipeline is not None and self.pipeline.redactor.active else None
        bodies = list(
            encode_outcomes(
                outcomes, max_bytes=s.max_payload_bytes, max_rows=max(1, s.max_payload_bytes // 4), redactor=redactor
            )
        )
        counts = [len(body["request_id"]) for body in bodies]
        records = [
            LogRecord(
                timestamp=body["time_ns"][-1],
                body=json.dumps(body, separators=(",", ":"), allow_nan=False),
                severity_number=SeverityNumber.INFO,
                severity_text="INFO",
                attributes={
                    "event.name": OUTCOMES_EVENT,
                    "ml.model.name": body["model"],
                    "ml.model.version": body["version"],
                    "ml.outcomes.count": len(body["request_id"]),
                },
                event_name=OUTCOMES_EVENT,
            )
            for body in bodies
        ]
        return records, counts

    def _export_outcomes(self, encoded: tuple[list[LogRecord], list[int]]) -> int:
        records, counts = encoded
        if self.owns_logs:
            if self.log_switch.inner is None:
                return sum(counts)  # no log exporter configured: nothing to send
            scope = InstrumentationScope(SCOPE, VERSION)
            for i in range(0, len(records), RECORDS_PER_EXPORT):
                part = records[i : i + RECORDS_PER_EXPORT]
                try:
                    result = self.log_switch.export([ReadableLogRecord(r, self.resource, scope) for r in part])
                    failed = getattr(result, "name", None) == "FAILURE"  # the switch counted the batch
                except Exception:  # noqa: BLE001 - counted like any failed log batch
                    self.export_failed("log_export_failed", self.log_switch)
                    failed = True
                if failed:
                    self.stats.count_dropped("outcome_export_failed", sum(counts[i : i + RECORDS_PER_EXPORT]))
        else:
            for r in records:
                self.otel_logger.emit(r)
        return sum(counts)

    def drain_stats(self) -> list[tuple[InstrumentationScope, list[Any]]]:
        try:
            self.ship_outcomes()
        except Exception:  # noqa: BLE001 - outcomes must not stop the metric export
            self.fault("outcome_export")
        now = time.time_ns()
        start, self._last_drain_ns = self._last_drain_ns, now
        scoped = self._carry + self._drain_all(start, now)
        self._carry = []
        return scoped

    def take_carried_sdk_metrics(self) -> list[Any]:
        carried, self._carry_sdk = self._carry_sdk, []
        return carried

    def before_fork(self) -> None:
        """Empty every delta accumulator into the parent's carry-over, so the child starts
        with nothing to re-export and the parent loses nothing (no network I/O in the hook)."""
        try:
            self._carry = self._carry + self._drain_all(self._last_drain_ns, time.time_ns())
            self._last_drain_ns = time.time_ns()
            collect = getattr(self.reader, "_collect", None)
            if collect is not None:
                data = collect(self.reader, timeout_millis=1000)
                if data is not None:
                    self._carry_sdk = self._carry_sdk + list(data.resource_metrics)
        except Exception:  # noqa: BLE001
            pass

    def after_fork_in_child(self) -> None:
        self._set_resource(_build_resource(self.settings))  # the child's own process.pid
        self._carry = []
        self._carry_sdk = []
        self.outcomes.clear()  # the parent ships its own; the child starts empty
        self._ship_lock = threading.Lock()
        self.stats.reset()
        for hist in self._histograms.values():
            hist.reset()
        self._last_drain_ns = time.time_ns()

    def flush(self, timeout_millis: int = 30_000) -> bool:
        ok = True
        for provider in (self.tracer_provider, self.meter_provider, self.logger_provider):
            try:
                ok = bool(provider.force_flush(timeout_millis)) and ok
            except Exception:  # noqa: BLE001
                ok = False
        return ok

    def shutdown(self) -> None:
        if getattr(self, "_shut_down", False):
            return
        self._shut_down = True
        for provider, owned in (
            (self.tracer_provider, self.owns_tracing),
            (self.meter_provider, self.owns_metrics),
            (self.logger_provider, self.owns_logs),
        ):
            if owned:
                _quietly(provider.shutdown)
            else:
                _quietly(provider.force_flush)


_TRIM_EVERY = 1.0  # seconds between two releases at least (a flush after each call must not trim each time)
_trim_state: dict[str, Any] = {"fn": None, "loaded": False, "last": 0.0}


def release_free_memory() -> bool:
    """Hand the C allocator's free memory back to the system: glibc's ``malloc_trim(0)`` (returns
    the free pages inside every arena, not only the heap's top), at most once a second; nothing
    where the C library has no such call (musl, macOS, Windows). Called by the metric reader
    after each export, when the buffers emptied by the export are free. True when it trimmed.

    Measured here (``bench/overhead.py --only rss``): 0.3-0.8 ms a call on a 100 MB process;
    RSS over 1M monitored calls see BENCHMARKS.md (issue 12, section 6).

    >>> isinstance(release_free_memory(), bool)
    True
    """
    state = _trim_state
    if not state["loaded"]:
        state["loaded"] = True
        if sys.platform.startswith("linux"):
            try:
                import ctypes

                fn = ctypes.CDLL(None).malloc_trim
                fn.argtypes = [ctypes.c_size_t]
                fn.restype = ctypes.c_int
                state["fn"] = fn
            except (OSError, AttributeError):  # not glibc
                state["fn"] = None
    fn = state["fn"]
    now = time.monotonic()
    if fn is None or now - state["last"] < _TRIM_EVERY:
        return False
    state["last"] = now
    fn(0)
    return True
