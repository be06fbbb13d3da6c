"""``@infersight.monitor``: one span, metrics, feature statistics and logs per prediction call.

The wrapped function's return value is returned as the same object and its exceptions propagate
unchanged. Everything infersight does around the call is guarded: a telemetry fault is counted in
``ml.telemetry.dropped`` and logged once, never raised into the caller.

Example:
    >>> import infersight
    >>> infersight.configure(exporter="none", log_output="none")
    >>> @infersight.monitor(model="churn", version="3")
    ... def predict(row):
    ...     return 0.5 * row["tenure"]
    >>> predict({"tenure": 4})
    2.0
"""

from __future__ import annotations

import inspect
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar, overload

import numpy as np
import wrapt
from opentelemetry.trace import Status, StatusCode

from infersight import request_context as rc
from infersight._runtime import Runtime
from infersight._state import get_runtime
from infersight.payload import NO_DEFAULT, Normalized, Outputs, normalize_inputs, normalize_outputs
from infersight.slices import Slicer, sliced_version, split_outputs
from infersight.stats.schema import SchemaViolation

_request_id_var = rc._request_id  # noqa: SLF001 - same package
_last_call_var = rc._last_call  # noqa: SLF001 - same package
_enter_span = rc.enter_span
_perf_counter = time.perf_counter
_random = random.random
_time_ns = time.time_ns

__all__ = ["monitor", "SchemaViolation"]

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class _Shedder:
    """Keeps infersight's own per-call cost under ``overhead_budget`` × predict time by
    shedding optional work in a fixed order: payload logs first, then statistics sampling."""

    level: int = 0
    ratio: float = 0.0  # moving average of (our cost / predict cost)
    calls: int = 0

    def observe(self, ours: float, predict: float, budget: float | None) -> None:
        if budget is None:
            self.level = 0
            return
        r = ours / max(predict, 1e-7)
        self.calls += 1
        self.ratio = r if self.calls == 1 else self.ratio * 0.95 + r * 0.05
        if self.calls % 64:
            return  # decide every 64 calls, on a smoothed ratio, so levels do not flap
        if self.ratio > budget and self.level < 8:
            self.level += 1
        elif self.ratio < budget * 0.5 and self.level > 0:
            self.level -= 1


@dataclass
class _Options:
    model: str | None
    version: str | None
    input_arg: int | str | None
    features: Sequence[str] | Callable[[Any], Any] | None
    classes: Sequence[Any] | None
    default_output: Any
    schema: Any
    on_violation: str
    trained_at: float | None
    slicer: Slicer | None = None
    position: int = 0
    shedder: _Shedder = field(default_factory=_Shedder)
    # (settings, model, version): the identity resolved against the settings it was resolved
    # with; resolved again when configure() replaces them.
    identity: tuple[Any, str, str] | None = None

    def resolve(self, settings: Any, fn: Any) -> tuple[Any, str, str]:
        ident = (
            settings,
            self.model or settings.model or getattr(fn, "__qualname__", "model"),
            self.version or settings.version or "unknown",
        )
        self.identity = ident
        return ident


def _resolve_schema(reference: Any, schema: Any) -> Any:
    if schema is not None:
        if isinstance(schema, str):
            from infersight.stats.schema import Schema

            return Schema.load(schema)
        return schema
    if reference is None:
        return None
    if isinstance(reference, str) or hasattr(reference, "__fspath__"):
        from infersight.stats.reference import Reference

        reference = Reference.load(reference)
    return getattr(reference, "schema", None)


@overload
def monitor(func: F) -> F: ...


@overload
def monitor(
    func: None = None,
    *,
    model: str | None = None,
    version: str | None = None,
    input_arg: int | str | None = None,
    features: Sequence[str] | Callable[[Any], Any] | None = None,
    classes: Sequence[Any] | None = None,
    default_output: Any = NO_DEFAULT,
    reference: Any = None,
    schema: Any = None,
    on_violation: str = "record",
    trained_at: Any = None,
    slices: Sequence[str] | Slicer | None = None,
) -> Callable[[F], F]: ...


def monitor(
    func: Any = None,
    *,
    model: str | None = None,
    version: str | None = None,
    input_arg: int | str | None = None,
    features: Sequence[str] | Callable[[Any], Any] | None = None,
    classes: Sequence[Any] | None = None,
    default_output: Any = NO_DEFAULT,
    reference: Any = None,
    schema: Any = None,
    on_violation: str = "record",
    trained_at: Any = None,
    slices: Sequence[str] | Slicer | None = None,
) -> Any:
    """Monitor a prediction function (sync, async, generator, async generator, method).

    Args:
        model, version: model identity on every signal (defaults: ``configure(model=, version=)``,
            else the function's qualified name and ``"unknown"``).
        input_arg: which argument holds the input: a position (after ``self``) or a name.
            Default: the first argument.
        features: column names for positional inputs (numpy, lists), or a callable deriving
            named features from a raw input (image brightness, text length, embedding norm).
        classes: class names for integer labels and probability-matrix columns.
        default_output: an answer that counts as "no real prediction" (``ml.prediction.null``).
        reference / schema: a reference profile (path or object) or schema to validate inputs
            against; violations are counted in ``ml.schema.violations`` and added as span events.
        on_violation: ``"record"`` (default) or ``"raise"`` (raise :class:`SchemaViolation`
            before the model runs).
        trained_at: when the model was trained (datetime, ISO text or Unix seconds), for
            ``ml.model.age``.
        slices: input names whose values split the traffic into slices (e.g. ``["region"]``):
            each slice's feature and prediction statistics are kept too, with ``ml.slice``
            (:mod:`infersight.slices`; at most 20 slices per model, or pass a
            :class:`infersight.Slicer` to choose).

    >>> @monitor
    ... def double(x):
    ...     return 2 * x
    >>> double(21)
    42
    """
    if on_violation not in ("record", "raise"):
        raise ValueError(f"on_violation={on_violation!r} is not valid: use 'record' or 'raise'")
    slicer = slices if isinstance(slices, Slicer) or slices is None else Slicer(slices)

    def decorate(fn: Any) -> Any:
        from infersight.config import _timestamp

        ts = _timestamp("trained_at", trained_at)
        opts = _Options(
            model=model,
            version=version,
            input_arg=input_arg,
            features=features,
            classes=classes,
            default_output=default_output,
            schema=_resolve_schema(reference, schema),
            on_violation=on_violation,
            trained_at=ts.timestamp() if ts else None,
            slicer=slicer,
        )
        opts.position = _input_position(fn, input_arg)
        target = fn.__func__ if isinstance(fn, (classmethod, staticmethod)) else fn
        if inspect.isasyncgenfunction(target):
            wrapper = _asyncgen_wrapper(opts)
        elif inspect.isgeneratorfunction(target):
            wrapper = _gen_wrapper(opts)
        elif inspect.iscoroutinefunction(target):
            wrapper = _async_wrapper(opts)
        else:
            wrapper = _sync_wrapper(opts)
        return wrapper(fn)

    if func is not None:
        return decorate(func)
    return decorate


def _input_position(fn: Any, input_arg: int | str | None) -> int:
    if isinstance(input_arg, int):
        return input_arg
    if input_arg is None:
        return 0
    target = fn.__func__ if isinstance(fn, (classmethod, staticmethod)) else fn
    try:
        params = list(inspect.signature(target).parameters)
    except (TypeError, ValueError):
        return -1
    if params and params[0] in ("self", "cls"):
        params = params[1:]
    return params.index(input_arg) if input_arg in params else -1


def _get_input(opts: _Options, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    if isinstance(opts.input_arg, str) and opts.input_arg in kwargs:
        return kwargs[opts.input_arg]
    if 0 <= opts.position < len(args):
        return args[opts.position]
    if opts.input_arg is None and kwargs:
        return next(iter(kwargs.values()))
    return None


class _Call:
    """State of one monitored call between its start and its end."""

    __slots__ = (
        "rt",
        "opts",
        "model",
        "version",
        "span",
        "ctx_token",
        "rid_token",
        "rid",
        "own",
        "norm",
        "violations",
        "do_stats",
    )

    def __init__(self, rt: Runtime, opts: _Options, fn: Any, norm: Normalized | None, do_stats: bool) -> None:
        self.rt = rt
        self.opts = opts
        s = rt.settings
        ident = opts.identity
        if ident is None or ident[0] is not s:
            ident = opts.resolve(s, fn)
        model = self.model = ident[1]
        version = self.version = ident[2]
        self.norm = norm
        self.do_stats = do_stats
        self.violations: Any = None
        rid = _request_id_var.get()
        self.rid_token = None
        if rid is None:
            rid = rc.new_request_id()
            self.rid_token = _request_id_var.set(rid)
        self.rid = rid
        span = self.span = rt.span_tracer.start_span(
            "predict " + model,
            attributes={
                "ml.model.name": model,
                "ml.model.version": version,
                "ml.request.id": rid,
                "ml.batch.size": norm.n_rows if norm is not None else 1,
            },
        )
        self.ctx_token: Any = _enter_span(span)
        self.own = 0.0

    def detach(self) -> None:
        rc.leave(self.ctx_token, self.rid_token)
        self.ctx_token = self.rid_token = None
        _last_call_var.set((self.rid, self.model, self.version))

    def validate(self) -> None:
        """Schema check before the model runs (only when a schema is configured)."""
        opts = self.opts
        if self.norm is None:
            return
        schema = opts.schema
        if self.norm.is_row and hasattr(schema, "validate_row"):
            report = schema.validate_row(self.norm.row, model_version=self.version)
        else:
            report = schema.validate(self.norm.as_columns(), self.norm.n_rows, model_version=self.version)
        violations = list(getattr(report, "violations", report) or [])
        if not violations:
            return
        self.violations = violations
        self.rt.stats.record_violations(
            (self.model, self.version),
            [(v.feature, v.rule, int(getattr(v, "count", 1))) for v in violations],
        )
        redactor = self.rt.pipeline.redactor
        for v in violations[:32]:
            self.span.add_event(
                "ml.schema.violation",
                {
                    "ml.feature.name": v.feature,
                    "ml.schema.rule": v.rule,
                    "ml.schema.count": int(getattr(v, "count", 1)),
                    "ml.schema.message": "[REDACTED]"
                    if redactor.matches(v.feature)
                    else str(getattr(v, "message", "")),
                },
            )
        if opts.on_violation == "raise":
            raise SchemaViolation(report)

    def finish(self, result: Any, exc: BaseException | None, elapsed: float, stream: bool = False) -> None:
        t_start = time.perf_counter()
        rt, opts, span = self.rt, self.opts, self.span
        call_recorded = simple = False
        s = rt.settings
        model_key = (self.model, self.version)
        error_type = type(exc).__qualname__ if exc is not None else None
        try:
            shed = opts.shedder.level if s.overhead_budget is not None else 0
            norm = self.norm
            extreme = False
            value: float | None = None
            if self.do_stats and norm is not None:
                redactor = rt.pipeline.redactor
                if redactor.active and norm.records is None and redactor.any_match(norm.feature_names()):
                    norm = _drop_redacted(norm, redactor)
                value = _one_number(result) if norm.is_row and exc is None and not stream else None
                outs = None
                if (
                    value is not None
                    and value - value == 0.0
                    and opts.default_output is NO_DEFAULT
                    and self.violations is None
                ):
                    # The common case (one row in, one finite number out, as a float or as the
                    # one-element array model.predict returns): one lock, three appends.
                    # (value is only a number when norm is one row: no second test here)
                    keys, values = norm.row_items()
                    rt.stats.record_simple_items(model_key, keys, values, value, elapsed)
                    call_recorded = simple = True
                else:
                    if exc is None and not stream:
                        outs = normalize_outputs(result, classes=opts.classes, default=opts.default_output)
                        extreme = bool(outs.nulls)
                    if self.violations is None and rt.stats.record_batch(
                        model_key, norm, outs, elapsed, error_type, redactor if redactor.active else None
                    ):
                        # a numeric batch and its float answers: inputs, outputs and the call
                        # under one lock
                        call_recorded = True
                    else:
                        # rows of a list are redacted as they are buffered (checked once per
                        # set of names)
                        rt.stats.record_columns(model_key, norm, redactor if redactor.active else None)
                        if outs is not None:
                            rt.stats.record_outputs(model_key, outs)
                if opts.slicer is not None:
                    if simple:  # the common case's one number, as record_simple kept it
                        outs = Outputs(1, values={"prediction": np.array([value])})
                    _record_slices(rt, opts, model_key, norm, outs)
            elif shed >= 2 and s.feature_stats:
                rt.stats.count_dropped("overhead_budget_stats")
            if not call_recorded:
                rt.stats.record_call(
                    model_key,
                    elapsed,
                    norm.n_rows if norm is not None else 1,
                    error_type,
                    invalid=self.violations is not None,
                )
            if exc is None and not stream and s.record_outcomes:
                # the trace and span IDs packed in one int (not the span's context, a tuple of
                # five that would outlive the span's export): 0 for an invalid context.
                # SpanContext is a tuple: trace_id, span_id, remote, flags, state, valid
                ctx = span.get_span_context()
                ids = ctx[0] << 64 | ctx[1] if ctx[5] else 0
                if value is not None and type(result) is np.ndarray and result.ndim and result.dtype in _F48:
                    # a one-row answer as the 1-tuple of its number: shipped as the array is
                    # ([value], 1 row), without holding the array until the drain
                    result = (value,)
                rt.outcomes.add((self.rid, _time_ns(), self.model, self.version, ids, result))
            if exc is not None:
                span.set_attribute("error.type", error_type or "")
                span.record_exception(exc)
                span.set_status(Status(StatusCode.ERROR, error_type))
            if s.log_payloads:
                keep = exc is not None or self.violations is not None or extreme
                if keep or random.random() < s.payload_sample_rate:
                    if shed >= 1 and not keep:
                        rt.stats.count_dropped("overhead_budget_payload_log")
                    else:
                        self._log_payload(result, exc, stream)
        except Exception:  # noqa: BLE001 - never raise into the caller
            rt.fault("monitor_finish")
        finally:
            try:
                span.end()
            except Exception:  # noqa: BLE001
                rt.fault("span_end")
            if s.overhead_budget is not None:
                opts.shedder.observe(self.own + (time.perf_counter() - t_start), elapsed, s.overhead_budget)

    def _log_payload(self, result: Any, exc: BaseException | None, stream: bool) -> None:
        rt = self.rt
        limit = max(1, rt.settings.max_payload_bytes // 16)
        fields: dict[str, Any] = {
            "ml.request.id": self.rid,
            "ml.model.name": self.model,
            "ml.model.version": self.version,
            "ml.inputs": self.norm.as_records(limit, rt.settings.max_payload_bytes) if self.norm is not None else None,
        }
        if exc is None and not stream:
            fields["ml.outputs"] = result
        if exc is not None:
            fields["error.type"] = type(exc).__qualname__
        if self.violations:
            fields["ml.schema.violations"] = [f"{v.feature}:{v.rule}" for v in self.violations[:32]]
        rt.pipeline.event("ml.prediction", fields, error=exc is not None)


def _record_slices(rt: Runtime, opts: _Options, model_key: tuple[str, str], norm: Normalized, outs: Any) -> None:
    """The call's rows and outputs (``None`` for a call that failed) again, each slice's
    under its own key (see :mod:`infersight.slices`)."""
    assert opts.slicer is not None
    redactor = rt.pipeline.redactor
    for key, part, idx in opts.slicer.partition(norm, model_key):
        sliced = (model_key[0], sliced_version(model_key[1], key))
        rt.stats.record_columns(sliced, part, redactor if redactor.active else None)
        if outs is not None:
            rt.stats.record_outputs(sliced, split_outputs(outs, idx, norm.n_rows))


_F48 = (np.dtype(np.float64), np.dtype(np.float32))


def _one_number(result: Any) -> float | None:
    """The prediction as a float when it is one number: a float, or a one-element float
    array (what ``model.predict`` returns for one row); else ``None``."""
    if type(result) is float:
        return result
    if type(result) is np.ndarray and result.size == 1 and result.ndim <= 2 and result.dtype.kind == "f":
        return float(result.item())
    return None


def _drop_redacted(norm: Normalized, redactor: Any) -> Normalized:
    """Redacted fields never become metric attributes (a category value could be a secret)."""
    if norm.is_row:
        return Normalized(norm.n_rows, row={k: v for k, v in (norm.row or {}).items() if not redactor.matches(k)})
    cols = norm.as_columns()
    return Normalized(norm.n_rows, columns={k: v for k, v in cols.items() if not redactor.matches(k)})


def _begin(opts: _Options, fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> _Call | None:
    """Open the call's span and request scope; ``None`` when telemetry itself failed (the
    model still runs)."""
    try:
        rt = get_runtime()
        t = _perf_counter()
        s = rt.settings
        rate = s.stats_sample_rate
        if s.overhead_budget is not None:
            shed = opts.shedder.level
            rate = rate / (2 ** max(shed - 1, 0))
        do_stats = s.feature_stats and (rate >= 1.0 or _random() < rate)
        norm = None
        if do_stats or s.log_payloads or opts.schema is not None:
            try:
                norm = normalize_inputs(_get_input(opts, args, kwargs), opts.features)
            except Exception:  # noqa: BLE001 - an odd input must not stop the span
                rt.fault("normalize_inputs")
        call = _Call(rt, opts, fn, norm, do_stats)
        if opts.trained_at is not None:
            rt.note_model(call.model, call.version, opts.trained_at)
    except Exception:  # noqa: BLE001
        _fault("monitor_start")
        return None
    if opts.schema is not None:
        try:
            call.validate()
        except SchemaViolation:
            call.finish(None, _SchemaRejected(), 0.0)
            call.detach()
            raise
        except Exception:  # noqa: BLE001
            rt.fault("schema_validate")
    call.own = time.perf_counter() - t
    return call


class _SchemaRejected(Exception):
    """Marks a call refused by on_violation='raise' (recorded as error.type=SchemaViolation)."""


_SchemaRejected.__qualname__ = "SchemaViolation"


def _fault(reason: str) -> None:
    try:
        get_runtime().fault(reason)
    except Exception:  # noqa: BLE001
        pass


def _end(call: _Call, result: Any, exc: BaseException | None, t0: float) -> None:
    """Record the finished call (never raises) and leave its context."""
    elapsed = time.perf_counter() - t0
    try:
        call.finish(result, exc, elapsed)
    finally:
        call.detach()


def _sync_wrapper(opts: _Options) -> Any:
    @wrapt.decorator
    def wrapper(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        call = _begin(opts, wrapped, args, kwargs)
        if call is None:
            return wrapped(*args, **kwargs)
        t0 = time.perf_counter()
        try:
            result = wrapped(*args, **kwargs)
        except BaseException as exc:
            _end(call, None, exc, t0)
            raise
        _end(call, result, None, t0)
        return result

    return wrapper


def _async_wrapper(opts: _Options) -> Any:
    @wrapt.decorator
    async def wrapper(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        call = _begin(opts, wrapped, args, kwargs)
        if call is None:
            return await wrapped(*args, **kwargs)
        t0 = time.perf_counter()
        try:
            result = await wrapped(*args, **kwargs)
        except BaseException as exc:
            _end(call, None, exc, t0)
            raise
        _end(call, result, None, t0)
        return result

    return wrapper


class _Resumed:
    """Re-enter a call's context (span + request ID) around one step of a stream, so the
    context never leaks into the consumer between items."""

    def __init__(self, call: _Call) -> None:
        self.call = call

    def __enter__(self) -> None:
        c = self.call
        c.ctx_token = _enter_span(c.span)
        c.rid_token = rc._request_id.set(c.rid)  # noqa: SLF001

    def __exit__(self, *exc: Any) -> None:
        self.call.detach()


def _gen_wrapper(opts: _Options) -> Any:
    @wrapt.decorator
    def wrapper(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        call = _begin(opts, wrapped, args, kwargs)
        if call is not None:
            call.detach()  # re-entered around each step below
        return _stream(call, wrapped, args, kwargs)

    return wrapper


def _stream(call: _Call | None, wrapped: Any, args: Any, kwargs: Any) -> Any:
    if call is None:
        return (yield from wrapped(*args, **kwargs))
    t0 = time.perf_counter()
    chunks = 0
    exc_seen: BaseException | None = None
    try:
        with _Resumed(call):
            gen = wrapped(*args, **kwargs)
        to_send: Any = None
        to_throw: BaseException | None = None
        while True:
            try:
                with _Resumed(call):
                    item = gen.throw(to_throw) if to_throw is not None else gen.send(to_send)
            except StopIteration as stop:
                return stop.value
            to_send, to_throw = None, None
            chunks += 1
            try:
                to_send = yield item
            except GeneratorExit:
                with _Resumed(call):
                    gen.close()
                raise
            except BaseException as e:  # noqa: BLE001 - forwarded into the wrapped generator
                to_throw = e
    except GeneratorExit:
        raise
    except BaseException as e:
        exc_seen = e
        raise
    finally:
        _end_stream(call, exc_seen, time.perf_counter() - t0, chunks)


def _end_stream(call: _Call, exc: BaseException | None, elapsed: float, chunks: int) -> None:
    try:
        call.span.set_attribute("ml.stream.chunks", chunks)
    except Exception:  # noqa: BLE001
        pass
    call.finish(None, exc, elapsed, stream=True)


def _asyncgen_wrapper(opts: _Options) -> Any:
    @wrapt.decorator
    def wrapper(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        call = _begin(opts, wrapped, args, kwargs)
        if call is not None:
            call.detach()
        return _astream(call, wrapped, args, kwargs)

    return wrapper


async def _astream(call: _Call | None, wrapped: Any, args: Any, kwargs: Any) -> Any:
    if call is None:
        async for item in wrapped(*args, **kwargs):
            yield item
        return
    t0 = time.perf_counter()
    chunks = 0
    exc_seen: BaseException | None = None
    try:
        with _Resumed(call):
            agen = wrapped(*args, **kwargs)
        to_send: Any = None
        to_throw: BaseException | None = None
        while True:
            try:
                with _Resumed(call):
                    item = await (agen.athrow(to_throw) if to_throw is not None else agen.asend(to_send))
            except StopAsyncIteration:
                return
            to_send, to_throw = None, None
            chunks += 1
            try:
                to_send = yield item
            except GeneratorExit:
                await agen.aclose()
                raise
            except BaseException as e:  # noqa: BLE001
                to_throw = e
    except GeneratorExit:
        raise
    except BaseException as e:
        exc_seen = e
        raise
    finally:
        _end_stream(call, exc_seen, time.perf_counter() - t0, chunks)
