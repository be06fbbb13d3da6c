"""The web port: health, Prometheus text, and the JSON API over stored windows.

Routes (all ``GET``; JSON unless noted):

- ``/healthz``: ``{"status": "ok", "storage": true, "queue_points": 0}`` (503 when the store
  does not answer). Never needs the token, so probes work.
- ``/metrics``: Prometheus text exposition of the processor's own counters.
- ``/api/models``: every model with its versions and time range.
- ``/api/models/{model}``: versions, features, outputs, window counts, time range, predictions.
- ``/api/models/{model}/features/{feature}?start=&end=&version=``: the merged distribution
  of one feature over ``[start, end)``; ``start``/``end`` are Unix seconds or ISO 8601.
- ``/api/models/{model}/outputs/{output}?...``: the same for a model output.
- ``/api/models/{model}/calls?...``: calls, errors, latency and batch-size histograms, spans.
- ``/api/models/{model}/predictions?start=&end=&labelled=&limit=``: logged predictions joined
  with their ground truth.
- ``/api/models/{model}/drift?start=&end=&version=&window=&merge=1&slice=``: drift against the
  model's reference, in the JSON shape of ``infersight drift --format json``: one entry in
  ``windows`` per evaluation window in the range (``window``: its size, default the model's
  smallest evaluation window), or with ``merge=1`` one for the whole range merged from stored
  windows; ``slice=region=eu``: that slice against its own past.
- ``/api/models/{model}/findings?start=&end=&kind=&status=&version=&slice=``: the stored verdicts of
  the evaluation loop (windows starting in the range), each with its earlier ``revisions``.
- ``POST /api/models/{model}/reference``: a reference profile (the JSON ``infersight profile``
  writes) that replaces the configured one from the next evaluation on (201; 400 naming what is
  wrong with the body). Needs the token when the processor has one, as every route but
  ``/healthz`` does (a ``GET`` also takes it as the dashboard's ``infersight_token`` cookie).
- The dashboard (``/``, ``/models/{model}``, ``/requests/{id}``) and its JSON are mounted from
  :mod:`infersight.processor.dashboard.routes`.

Example:
    $ curl '127.0.0.1:8318/api/models/churn/features/age?start=2024-05-01T00:00:00Z&end=1714608000'
"""

from __future__ import annotations

import inspect
import math
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from infersight.processor.config import ConfigError, parse_duration
from infersight.processor.evaluate.findings import Finding
from infersight.processor.ingest.receiver import Receiver, Unauthorized
from infersight.processor.ingest.writer import Ingestor
from infersight.processor.selfmetrics import Registry
from infersight.processor.storage.base import FEATURE, MODEL, OUTPUT, Storage, sliced_role, split_role
from infersight.stats.sketch import ExpHistogram
from infersight.stats.windows import WindowStats

__all__ = ["make_web_app", "parse_time", "describe_series", "BadRequest"]


class BadRequest(ValueError):
    pass


class NotFound(LookupError):
    pass


def _models_default() -> Any:
    from infersight.processor.evaluate.settings import ModelsSettings

    return ModelsSettings()


def _evaluation_default() -> Any:
    from infersight.processor.evaluate.settings import EvaluationSettings

    return EvaluationSettings()


def parse_time(value: str | None, name: str, default: float) -> float:
    """Unix seconds (``1714608000``, ``1714608000.5``) or ISO 8601 (``2024-05-02T00:00:00Z``;
    no offset means UTC).

    >>> parse_time("1970-01-01T00:01:00Z", "start", 0)
    60.0
    """
    if value is None or value == "":
        return default
    try:
        return float(value) if _is_number(value) else _iso(value)
    except ValueError:
        raise BadRequest(
            f"{name}={value!r} is neither Unix seconds nor ISO 8601; write e.g. {name}=1714608000 or "
            f"{name}=2024-05-02T00:00:00Z"
        ) from None


def _is_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def _iso(text: str) -> float:
    dt = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.timestamp()


def _finite(x: float) -> float | None:
    return float(x) if x is not None and math.isfinite(x) else None


def _sketch_summary(s: ExpHistogram | None) -> dict[str, Any]:
    if s is None or s.count == 0:
        return {"min": None, "max": None, "sum": 0.0, "mean": None, "quantiles": None, "sketch": None}
    qs = s.quantile([0.05, 0.25, 0.5, 0.75, 0.95, 0.99])
    return {
        "min": _finite(s.min),
        "max": _finite(s.max),
        "sum": s.sum,
        "mean": _finite(s.mean),
        "quantiles": {k: _finite(float(v)) for k, v in zip(("p05", "p25", "p50", "p75", "p95", "p99"), qs)},
        "sketch": s.to_dict(),
    }


def describe_series(ws: WindowStats, role: str) -> dict[str, Any]:
    """The JSON body for a merged feature or output (see the module docstring)."""
    sketch = ws.sketches.get("value")
    c = ws.counters
    labels = c.get("category" if role == FEATURE else "class", {})
    numeric = sketch.count if sketch else 0
    out: dict[str, Any] = {
        "count": int(numeric + sum(labels.values())),
        "numeric_count": int(numeric),
    }
    out.update(_sketch_summary(sketch))
    if role == FEATURE:
        missing = c.get("missing", {})
        out["missing"] = missing
        out["missing_total"] = sum(missing.values())
        out["categories"] = labels
        out["violations"] = c.get("violations", {})
    else:
        out["classes"] = labels
        out["nulls"] = c.get("null", {})
        out["nulls_total"] = sum(out["nulls"].values())
    return out


def describe_calls(ws: WindowStats) -> dict[str, Any]:
    c = ws.counters
    calls = c.get("calls", {})
    spans = c.get("spans", {})
    span_sketch = ws.sketches.get("span_duration")
    return {
        "calls": int(calls.get("total", 0)),
        "errors": int(calls.get("error", 0)),
        "errors_by_type": c.get("errors", {}),
        "duration": {k: h.to_dict() for k, h in ws.histograms.items() if k.startswith("duration")}
        | ({"sketch": ws.sketches["duration"].to_dict()} if "duration" in ws.sketches else {}),
        "batch_size": {k: h.to_dict() for k, h in ws.histograms.items() if k.startswith("batch_size")}
        | ({"sketch": ws.sketches["batch_size"].to_dict()} if "batch_size" in ws.sketches else {}),
        "spans": {
            "total": int(spans.get("total", 0)),
            "errors": int(spans.get("error", 0)),
            "errors_by_type": c.get("span_errors", {}),
            "duration_seconds": _sketch_summary(span_sketch),
        },
        "telemetry_dropped": c.get("dropped", {}),
    }


def make_web_app(
    storage: Storage,
    registry: Registry,
    *,
    receiver: Receiver | None = None,
    ingestor: Ingestor | None = None,
    evaluation: Any = None,
    mounts: Sequence[Callable[[Callable[[Any], Any]], list[Route]]] = (),
) -> Starlette:
    """The web application. ``receiver`` carries the token check (``None``: no token);
    ``evaluation`` is the processor's :class:`~infersight.processor.evaluate.loop.EvaluationLoop`
    (``None``: drift is computed with the default settings and findings are not served);
    each of ``mounts`` gets the token-checking wrapper and returns more routes (alerts, quality)."""
    from infersight.processor.evaluate.references import Env

    window = storage.window_sizes[0]
    env: Env = evaluation.env if evaluation is not None else Env(storage, _models_default(), _evaluation_default())

    def guarded(handler: Any) -> Any:
        """The endpoint for ``handler``: the token check, then the handler (a plain function
        runs in the thread pool, a coroutine function on the loop), with BadRequest as 400 and
        NotFound as 404."""
        is_async = inspect.iscoroutinefunction(handler)

        async def endpoint(request: Request) -> Response:
            if receiver is not None:
                header = request.headers.get("authorization")
                if header is None and request.method in ("GET", "HEAD") and "infersight_token" in request.cookies:
                    # the dashboard's cookie (see processor/dashboard/routes.py); reads only
                    header = f"Bearer {request.cookies['infersight_token']}"
                try:
                    receiver.authorize(header)
                except Unauthorized as exc:
                    return JSONResponse({"error": str(exc)}, status_code=401, headers={"WWW-Authenticate": "Bearer"})
            try:
                response: Response = await handler(request) if is_async else await run_in_threadpool(handler, request)
                return response
            except BadRequest as exc:
                return JSONResponse({"error": str(exc)}, status_code=400)
            except NotFound as exc:
                return JSONResponse({"error": str(exc)}, status_code=404)

        return endpoint

    def time_range(request: Request) -> tuple[int, int]:
        now = time.time()
        start = parse_time(request.query_params.get("start"), "start", 0)
        end = parse_time(request.query_params.get("end"), "end", now - now % window + window)
        if end <= start:
            raise BadRequest(f"end ({end}) must be after start ({start}); the range is [start, end)")
        return math.floor(start), math.ceil(end)

    def models(request: Request) -> Response:
        return JSONResponse({"models": storage.models(), "window_seconds": window})

    def model(request: Request) -> Response:
        name = request.path_params["model"]
        series = storage.series(name)
        counts = storage.prediction_counts(name)
        if not series and not counts["logged"] and not counts["feedback_waiting"]:
            return JSONResponse({"error": f"no data for model {name!r}; see /api/models"}, status_code=404)

        def group(role: str) -> list[dict[str, Any]]:
            by: dict[str, dict[str, Any]] = {}
            for s in series:
                if s["role"] != role:
                    continue
                g = by.setdefault(
                    s["name"], {"name": s["name"], "versions": [], "windows": 0, "first": s["first"], "last": s["last"]}
                )
                g["versions"].append(s["version"])
                g["windows"] = max(g["windows"], s["windows"])
                g["first"], g["last"] = min(g["first"], s["first"]), max(g["last"], s["last"])
            return [by[k] for k in sorted(by)]

        firsts = [s["first"] for s in series]
        lasts = [s["last"] for s in series]
        return JSONResponse(
            {
                "model": name,
                "versions": sorted({s["version"] for s in series}),
                "window_seconds": window,
                "window_sizes": list(storage.window_sizes),
                "windows": max((s["windows"] for s in series), default=0),
                "time_range": {"start": min(firsts, default=None), "end": max(lasts, default=None)},
                "features": group(FEATURE),
                "outputs": group(OUTPUT),
                "has_calls": any(s["role"] == MODEL for s in series),
                "slices": sorted({k for k in (split_role(s["role"])[1] for s in series) if k}),
                "predictions": counts,
            }
        )

    def series_endpoint(role: str, param: str) -> Any:
        def handler(request: Request) -> Response:
            name, item = request.path_params["model"], request.path_params[param]
            start, end = time_range(request)
            version = request.query_params.get("version")
            slice_ = request.query_params.get("slice") or ""
            ws, n = storage.query(name, sliced_role(role, slice_), item, start, end, version)
            body = {"model": name, param: item, "version": version, "start": start, "end": end, "windows": n}
            if slice_:
                body["slice"] = slice_
            body.update(describe_series(ws, role))
            return JSONResponse(body)

        return handler

    def calls(request: Request) -> Response:
        name = request.path_params["model"]
        start, end = time_range(request)
        version = request.query_params.get("version")
        ws, n = storage.query(name, MODEL, "", start, end, version)
        body = {"model": name, "version": version, "start": start, "end": end, "windows": n}
        body.update(describe_calls(ws))
        return JSONResponse(body)

    def predictions(request: Request) -> Response:
        name = request.path_params["model"]
        start, end = time_range(request)
        try:
            limit = int(request.query_params.get("limit", "1000"))
        except ValueError:
            raise BadRequest("limit must be a whole number") from None
        labelled = request.query_params.get("labelled", "").lower() in ("1", "true", "yes")
        rows = storage.joined(name, start * 10**9, end * 10**9, labelled_only=labelled, limit=max(1, min(limit, 10000)))
        return JSONResponse({"model": name, "start": start, "end": end, "predictions": rows})

    async def healthz(request: Request) -> Response:
        ok = await run_in_threadpool(storage.ping)
        body = {
            "status": "ok" if ok else "storage unavailable",
            "storage": ok,
            "queue_points": ingestor.depth if ingestor else 0,
        }
        return JSONResponse(body, status_code=200 if ok else 503)

    def metrics(request: Request) -> Response:
        text = registry.render()
        if evaluation is not None:
            text += evaluation.outputs.render_prometheus()
        return PlainTextResponse(text, media_type="text/plain; version=0.0.4")

    def known_model(name: str) -> dict[str, Any]:
        for m in storage.models():
            if m["model"] == name and m["first"] is not None:
                return m
        raise NotFound(f"no stored windows for model {name!r}; see /api/models")

    def drift(request: Request) -> Response:
        from infersight.processor.evaluate.drift import drift_report

        name = request.path_params["model"]
        m = known_model(name)
        q = request.query_params
        now = time.time()
        start = math.floor(parse_time(q.get("start"), "start", m["first"]))
        end = math.ceil(parse_time(q.get("end"), "end", max(m["last"], now - now % window)))
        if end <= start:
            raise BadRequest(f"end ({end}) must be after start ({start}); the range is [start, end)")
        version = q.get("version") or None
        merge = q.get("merge", "").lower() in ("1", "true", "yes")
        if merge:
            lo, hi = -(-start // window) * window, -(-end // window) * window
            if hi <= lo:
                raise BadRequest(f"[{start}, {end}) holds no whole {window}s storage window; widen the range")
            ranges = [(lo, hi)]
        else:
            size = env.settings(name).window_sizes(window)[0]
            if q.get("window"):
                try:
                    size = int(parse_duration(q["window"], "window"))
                except ConfigError as exc:
                    raise BadRequest(str(exc)) from None
                if size % window:
                    raise BadRequest(
                        f"window={q['window']!r} is not a multiple of the storage window {window}s; "
                        f"use e.g. window={max(size // window, 1) * window}"
                    )
            first = -(-start // size) * size
            ranges = [(s, s + size) for s in range(first, end, size)]
            if len(ranges) > 2000:
                raise BadRequest(
                    f"{len(ranges)} windows of {size}s in the range; ask for at most 2000 "
                    "(a larger window=, a shorter range, or merge=1)"
                )
        slice_ = q.get("slice") or ""
        report = drift_report(env, name, ranges, version=version, slice_=slice_)
        report.update({"model": name, "version": version, "start": start, "end": end})
        if slice_:
            report["slice"] = slice_
        return JSONResponse(report)

    async def push_reference(request: Request) -> Response:
        name = request.path_params["model"]
        try:
            body = await request.json()
        except ValueError:
            raise BadRequest(
                "the body is not JSON; send the profile written by "
                f"`infersight profile DATA --model {name} -o reference.json` with Content-Type: application/json"
            ) from None
        try:
            ref = await run_in_threadpool(env.references.push, name, body)
        except ValueError as exc:
            raise BadRequest(f"not a usable reference profile for {name!r}: {exc}") from None
        return JSONResponse(
            {"model": name, "features": sorted(ref.features), "rows": ref.n_rows, "status": "stored"}, status_code=201
        )

    def findings(request: Request) -> Response:
        from infersight.processor.evaluate.loop import HISTORY, stored_findings

        name = request.path_params["model"]
        q = request.query_params
        start = parse_time(q.get("start"), "start", 0)
        end = parse_time(q.get("end"), "end", time.time() + 86400)
        kind, status, version, slice_ = q.get("kind"), q.get("status"), q.get("version"), q.get("slice")

        def wanted(b: dict[str, Any]) -> bool:
            return (
                (not kind or b.get("kind") == kind)
                and (not status or b.get("status") == status)
                and (version is None or b.get("version") == version)
                and (slice_ is None or b.get("slice", "") == slice_)
            )

        current = [r.body for r in stored_findings(storage, name, start, end) if wanted(r.body)]
        older: dict[str, list[dict[str, Any]]] = {}
        for r in storage.get_records(HISTORY, model=name, start=start, end=end):
            if wanted(r.body):
                older.setdefault(Finding.from_dict(r.body).key, []).append(r.body)
        out = []
        for b in current:
            k = Finding.from_dict(b).key
            out.append({**b, "revisions": sorted(older.get(k, []), key=lambda x: x.get("revision", 0))})
        return JSONResponse({"model": name, "start": start, "end": end, "findings": out})

    return Starlette(
        routes=[
            Route("/healthz", healthz),
            Route("/metrics", guarded(metrics)),
            Route("/api/models", guarded(models)),
            Route("/api/models/{model}", guarded(model)),
            Route("/api/models/{model}/features/{feature:path}", guarded(series_endpoint(FEATURE, "feature"))),
            Route("/api/models/{model}/outputs/{output:path}", guarded(series_endpoint(OUTPUT, "output"))),
            Route("/api/models/{model}/calls", guarded(calls)),
            Route("/api/models/{model}/predictions", guarded(predictions)),
            Route("/api/models/{model}/drift", guarded(drift)),
            Route("/api/models/{model}/findings", guarded(findings)),
            Route("/api/models/{model}/reference", guarded(push_reference), methods=["POST"]),
            *(route for mount in mounts for route in mount(guarded)),
        ]
    )
