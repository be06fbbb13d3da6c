"""The package-level functions: configure, flush, shutdown, record_feedback.

They hold no state of their own: the configured runtime and its log pipeline live in
:mod:`infersight._state`, which these functions call down into.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from infersight import _state
from infersight.request_context import last_call_identity

__all__ = ["configure", "flush", "shutdown", "record_feedback"]


def configure(
    *,
    span_exporter: Any = None,
    metric_exporter: Any = None,
    log_exporter: Any = None,
    **options: Any,
) -> None:
    """Configure infersight. Every option also reads ``INFERSIGHT_<OPTION>`` from the
    environment (explicit argument beats environment beats default); the standard ``OTEL_*``
    variables are honoured. Calling it again reconfigures cleanly.

    ``span_exporter`` / ``metric_exporter`` / ``log_exporter`` take exporter objects directly
    (tests, custom back ends); given any of them, the others default to none.

    >>> configure(service_name="fraud-api", model="fraud", version="7", exporter="none")
    """
    exporters = None
    if span_exporter is not None or metric_exporter is not None or log_exporter is not None:
        exporters = (span_exporter, metric_exporter, log_exporter)
    _state.configure(options, exporters)


def flush(timeout_millis: int = 30_000) -> bool:
    """Export everything pending now (batch jobs, serverless handlers, tests).

    >>> flush()
    True
    """
    rt = _state.current_runtime()
    return True if rt is None else rt.flush(timeout_millis)


def shutdown(timeout_seconds: float = 5.0) -> bool:
    """Flush and stop exporting, waiting at most ``timeout_seconds`` (an unreachable collector
    must not hold the caller for the exporters' own timeouts and retries, about 14 s); True
    when everything went out in time. Also runs at interpreter exit. A later ``configure()``
    starts exporting again.

    >>> shutdown()
    True
    """
    from infersight._stop import run_within

    rt = _state.current_runtime()
    if rt is None:
        return True
    rt.retire()  # from now on configure() builds a new runtime, even while this one still flushes

    def stop() -> None:
        rt.flush(int(timeout_seconds * 1000))
        rt.shutdown()

    return run_within(stop, timeout_seconds, "InferSightShutdown")


def record_feedback(
    request_id: str,
    actual: Any,
    *,
    model: str | None = None,
    version: str | None = None,
    **attributes: Any,
) -> None:
    """Report the ground truth for an earlier prediction, joined later by ``request_id``.

    For a batch call, ``actual`` may be a sequence aligned with the batch's rows. Without
    ``model``/``version``, feedback for the call just made in this context (its ID from
    :func:`infersight.last_request_id`) names that call's model, else the configured default.
    Never raises: a malformed call is counted in ``ml.telemetry.dropped`` and logged once.

    >>> record_feedback("01J9Z3V4N8Q2", 1, model="churn")
    """
    try:
        rt = _state.get_runtime()
        pipeline = _state.log_pipeline()
        if not isinstance(request_id, str) or not request_id:
            rt.fault(
                "feedback_without_request_id",
                hint=(
                    f"record_feedback got request_id={request_id!r}; pass the ID of the prediction: "
                    "infersight.last_request_id() right after the call, or "
                    "infersight.current_request_id() inside it or inside a request"
                ),
            )
            return
        s = rt.settings
        if model is None and version is None:
            # Feedback for the call just made in this context names that call's model.
            model, version = last_call_identity(request_id) or (None, None)
        fields: dict[str, Any] = {
            "ml.request.id": request_id,
            "ml.model.name": model or s.model or "unknown",
            "ml.model.version": version or s.version or "unknown",
            "ml.feedback.actual": _as_plain(actual),
        }
        for k, v in attributes.items():
            fields[k if k.startswith("ml.") else f"ml.feedback.{k}"] = v
        pipeline.event("ml.feedback", fields)
    except Exception:  # noqa: BLE001 - feedback must never break the caller's job
        try:
            _state.get_runtime().fault("feedback")
        except Exception:  # noqa: BLE001
            pass


def _as_plain(actual: Any) -> Any:
    if hasattr(actual, "tolist"):
        return actual.tolist()
    if isinstance(actual, (tuple, set)):
        return list(actual)
    return actual


def _names() -> Sequence[str]:
    return __all__
