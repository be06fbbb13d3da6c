"""Where notifications go: a structured log line, a webhook (JSON POST), OTLP log records.

A :class:`Channel` takes a notification payload (a JSON-able dict, see
:meth:`infersight.processor.alerts.manager.Notification.to_dict`) and must never block the
caller for long: evaluation calls it. The log channel writes at once; the network channels put
the payload on a bounded queue that one sender thread drains, retrying with exponential
backoff and full jitter. When the queue is full the oldest payload is dropped and counted: a
hanging endpoint costs a bounded amount of memory and nothing else.

Example:
    >>> from infersight.processor.alerts.settings import ChannelSettings
    >>> ch = make_channel(ChannelSettings(name="log", type="log"))
    >>> ch.send({"event": "open", "title": "drift on churn", "severity": "ticket"})
    >>> ch.stats()["sent"]
    1
"""

from __future__ import annotations

import abc
import collections
import json
import logging
import random
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any

from infersight.processor.alerts.settings import ChannelSettings

__all__ = ["Channel", "LogChannel", "QueuedChannel", "WebhookChannel", "OtlpChannel", "make_channel", "DeliveryError"]

_log = logging.getLogger(__name__)


class DeliveryError(RuntimeError):
    """One delivery attempt failed; ``retry`` says whether another attempt may succeed."""

    def __init__(self, message: str, *, retry: bool) -> None:
        super().__init__(message)
        self.retry = retry


class Channel(abc.ABC):
    """Carries notification payloads somewhere. ``send`` returns quickly and never raises for a
    failing destination (failures are counted in :meth:`stats`)."""

    def __init__(self, settings: ChannelSettings) -> None:
        self.settings = settings
        self.name = settings.name
        self._lock = threading.Lock()
        self._counts = {"sent": 0, "failed": 0, "retried": 0, "dropped": 0, "abandoned": 0}

    def _count(self, what: str, n: int = 1) -> None:
        with self._lock:
            self._counts[what] += n

    @abc.abstractmethod
    def send(self, payload: Mapping[str, Any]) -> None:
        """Hand over one payload (non-blocking)."""

    def close(self, timeout: float = 5.0) -> None:  # noqa: B027 - optional hook
        """Deliver what is pending within ``timeout`` seconds, then stop."""

    def stats(self) -> dict[str, Any]:
        """``sent``, ``failed`` (gave up), ``retried``, ``dropped`` (queue full), ``abandoned``
        (pending at close), ``queued``."""
        with self._lock:
            return {**self._counts, "queued": 0, "type": self.settings.type}


class LogChannel(Channel):
    """One JSON line per notification through Python logging (logger ``infersight.alerts``
    unless configured), at WARNING for pages and tickets and INFO otherwise."""

    def __init__(self, settings: ChannelSettings) -> None:
        super().__init__(settings)
        self.logger = logging.getLogger(settings.logger)

    def send(self, payload: Mapping[str, Any]) -> None:
        level = logging.WARNING if payload.get("severity") in ("page", "ticket") else logging.INFO
        if payload.get("event") == "resolve":
            level = logging.INFO
        self.logger.log(level, "%s", json.dumps(payload, sort_keys=True, default=str))
        self._count("sent")


class QueuedChannel(Channel):
    """A bounded queue and one sender thread; subclasses implement :meth:`deliver`."""

    def __init__(self, settings: ChannelSettings, *, rng: random.Random | None = None) -> None:
        super().__init__(settings)
        self._queue: collections.deque[Mapping[str, Any]] = collections.deque()
        self._cond = threading.Condition(self._lock)
        self._closing = False
        self._deadline = float("inf")
        self._busy = False
        self._rng = rng or random.Random()
        self._thread = threading.Thread(target=self._run, name=f"infersight-alerts-{self.name}", daemon=True)
        self._thread.start()

    @abc.abstractmethod
    def deliver(self, payload: Mapping[str, Any]) -> None:
        """One attempt; raise :class:`DeliveryError` on failure."""

    def send(self, payload: Mapping[str, Any]) -> None:
        with self._cond:
            if self._closing:
                self._counts["abandoned"] += 1
                return
            if len(self._queue) >= self.settings.queue:
                self._queue.popleft()
                self._counts["dropped"] += 1
            self._queue.append(payload)
            self._cond.notify_all()

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {**self._counts, "queued": len(self._queue) + int(self._busy), "type": self.settings.type}

    def wait_idle(self, timeout: float) -> bool:
        """Block until nothing is queued or being sent (for tests and close); ``False`` on timeout."""
        end = time.monotonic() + timeout
        with self._cond:
            while self._queue or self._busy:
                left = end - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def close(self, timeout: float = 5.0) -> None:
        with self._cond:
            self._closing = True
            self._deadline = time.monotonic() + timeout
            self._cond.notify_all()
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closing:
                    self._cond.wait()
                if not self._queue or time.monotonic() >= self._deadline:
                    self._counts["abandoned"] += len(self._queue)
                    self._queue.clear()
                    self._cond.notify_all()
                    return
                payload = self._queue.popleft()
                self._busy = True
            try:
                self._attempt(payload)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _attempt(self, payload: Mapping[str, Any]) -> None:
        s = self.settings
        for attempt in range(s.retries + 1):
            try:
                self.deliver(payload)
            except DeliveryError as exc:
                if not exc.retry or attempt == s.retries:
                    _log.warning("alert channel %s: giving up after %d attempt(s): %s", self.name, attempt + 1, exc)
                    self._count("failed")
                    return
                self._count("retried")
                # full jitter: a uniform wait up to the exponential bound, so many processors
                # retrying one endpoint do not march in step
                end = time.monotonic() + self._rng.uniform(0, min(s.max_backoff, s.backoff * 2**attempt))
                with self._cond:
                    while True:  # close() may set a deadline while we wait
                        now = time.monotonic()
                        if now >= self._deadline:
                            self._counts["abandoned"] += 1
                            return
                        if now >= end:
                            break
                        self._cond.wait(min(end, self._deadline) - now)
            else:
                self._count("sent")
                return

    def _post(self, body: bytes, content_type: str) -> None:
        s = self.settings
        req = urllib.request.Request(
            s.url, data=body, method="POST", headers={"Content-Type": content_type, **s.headers}
        )
        try:
            with urllib.request.urlopen(req, timeout=s.timeout) as resp:
                resp.read()
        except urllib.error.HTTPError as exc:
            # 408, 429 and 5xx may pass on a later try; other 4xx will not
            retry = exc.code in (408, 429) or exc.code >= 500
            raise DeliveryError(f"{s.url} answered {exc.code} {exc.reason}", retry=retry) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise DeliveryError(f"{s.url}: {reason}", retry=True) from None


class WebhookChannel(QueuedChannel):
    """POST the notification payload as JSON to ``url`` with the configured headers."""

    def deliver(self, payload: Mapping[str, Any]) -> None:
        self._post(json.dumps(payload, default=str).encode(), "application/json")


# OTel log severity numbers (opentelemetry-proto SeverityNumber): INFO 9, WARN 13, ERROR 17.
OTEL_SEVERITY = {"page": (17, "ERROR"), "ticket": (13, "WARN"), "info": (9, "INFO")}


class OtlpChannel(QueuedChannel):
    """Each notification as one OTLP log record (protobuf over OTLP/HTTP) to ``endpoint``.

    The record's body is the notification's text, its attributes the incident's identity
    (``alert.id``, ``alert.event``, ``alert.policy``, ``alert.severity``, ``ml.model.name``,
    ``ml.model.version``, ``alert.cause_class``) and the whole payload as JSON in
    ``alert.payload``; its trace ID is the first evidence trace, so a log backend links the
    alert to the request. Resolves are sent at INFO."""

    def deliver(self, payload: Mapping[str, Any]) -> None:
        self._post(encode_log_request(payload, self.settings.service_name), "application/x-protobuf")


def encode_log_request(payload: Mapping[str, Any], service_name: str) -> bytes:
    """The OTLP ``ExportLogsServiceRequest`` bytes for one notification payload."""
    from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
    from opentelemetry.proto.common.v1 import common_pb2
    from opentelemetry.proto.logs.v1 import logs_pb2

    def kv(key: str, value: Any) -> common_pb2.KeyValue:
        if isinstance(value, bool):
            return common_pb2.KeyValue(key=key, value=common_pb2.AnyValue(bool_value=value))
        if isinstance(value, int):
            return common_pb2.KeyValue(key=key, value=common_pb2.AnyValue(int_value=value))
        if isinstance(value, float):
            return common_pb2.KeyValue(key=key, value=common_pb2.AnyValue(double_value=value))
        return common_pb2.KeyValue(key=key, value=common_pb2.AnyValue(string_value=str(value)))

    incident = payload.get("incident") or {}
    severity = str(payload.get("severity", "info"))
    number, text = OTEL_SEVERITY.get(severity, (9, "INFO"))
    if payload.get("event") == "resolve":
        number, text = 9, "INFO"
    now_ns = int(float(payload.get("sent_at") or time.time()) * 1e9)
    attributes = [
        kv("alert.event", payload.get("event", "")),
        kv("alert.severity", severity),
        kv("alert.payload", json.dumps(payload, default=str, sort_keys=True)),
    ]
    for key, name in (
        ("id", "alert.id"),
        ("policy", "alert.policy"),
        ("model", "ml.model.name"),
        ("version", "ml.model.version"),
        ("cause_class", "alert.cause_class"),
        ("since", "alert.since"),
    ):
        if incident.get(key) is not None:
            attributes.append(kv(name, incident[key]))
    trace_id = b""
    for ev in incident.get("evidence") or ():
        tid = str(ev.get("trace_id") or "")
        if len(tid) == 32:
            try:
                trace_id = bytes.fromhex(tid)
                break
            except ValueError:
                continue
    record = logs_pb2.LogRecord(
        time_unix_nano=now_ns,
        observed_time_unix_nano=now_ns,
        severity_number=number,  # type: ignore[arg-type]
        severity_text=text,
        body=common_pb2.AnyValue(string_value=str(payload.get("text") or payload.get("title") or "")),
        attributes=attributes,
        trace_id=trace_id,
    )
    from opentelemetry.proto.resource.v1 import resource_pb2

    request = logs_service_pb2.ExportLogsServiceRequest(
        resource_logs=[
            logs_pb2.ResourceLogs(
                resource=resource_pb2.Resource(attributes=[kv("service.name", service_name)]),
                scope_logs=[
                    logs_pb2.ScopeLogs(
                        scope=common_pb2.InstrumentationScope(name="infersight.alerts"), log_records=[record]
                    )
                ],
            )
        ]
    )
    return bytes(request.SerializeToString())


def make_channel(settings: ChannelSettings) -> Channel:
    """The channel for ``settings.type`` (``log``, ``webhook`` or ``otlp``)."""
    if settings.type == "log":
        return LogChannel(settings)
    if settings.type == "webhook":
        return WebhookChannel(settings)
    if settings.type == "otlp":
        return OtlpChannel(settings)
    raise ValueError(f"channel {settings.name!r}: type {settings.type!r} is not one of log, webhook, otlp")
