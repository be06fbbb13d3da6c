"""The dashboard's routes: three pages, their two static assets, and the JSON they read.

Pages (HTML shells with no data in them: the script fetches the JSON and builds the DOM with
``textContent``, so nothing that came from telemetry is ever parsed as HTML):

- ``/``: models overview (health per model and version, SLOs and error budget, open alerts)
- ``/models/{model}``: one model (latency, burn rates, drift heat map, distributions, data
  quality, quality from late labels, versions, alerts)
- ``/requests/{id}``: one request by request ID or trace ID (spans, payload, violations,
  feedback, the Jaeger link)
- ``/static/dashboard.js``, ``/static/dashboard.css``, ``/static/favicon.svg``: the assets (no
  CDN, works offline)

JSON (under ``/api/``, token-checked like the rest of the API):

- ``/api/dashboard/overview``: per model and version the worst status of its latest findings,
  SLO statuses, open alerts, and the refresh period
- ``/api/models/{model}/heatmap?start=&end=&version=&window=``: drift findings as a grid,
  features x windows, each cell ``statistic / threshold``
- ``/api/models/{model}/latency?start=&end=&version=&step=``: call-latency percentiles, call and
  error counts per step from the stored duration sketches/histograms
- ``/api/models/{model}/distribution/{feature}?start=&end=&version=``: reference and current
  distribution of one feature (or output) on common bins
- ``/api/requests/{id}``: the kept spans and log records of a request (or trace), its payload,
  schema violations, outcome and feedback

Token: when the processor has one, a browser cannot send a bearer header on navigation, so a
page opened as ``/?token=T`` sets an HttpOnly, SameSite=Strict cookie ``infersight_token`` and
redirects to the same URL without the token; the cookie then authorises pages and ``GET`` API
calls (never ``POST``: a cookie is sent by the browser on its own, a header is not).

Example:
    >>> from infersight.processor.storage import open_storage
    >>> from infersight.processor.dashboard.settings import DashboardSettings
    >>> rs = dashboard_routes(open_storage("sqlite:///:memory:", (60,)), DashboardSettings())
    >>> sorted(r.path for r in rs)[:3]
    ['/', '/api/dashboard/overview', '/api/models/{model}/distribution/{feature:path}']
"""

from __future__ import annotations

import hmac
import math
import re
import time
from collections.abc import Callable
from importlib import resources
from typing import Any
from urllib.parse import urlencode

import numpy as np
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from infersight.processor.dashboard.settings import DashboardSettings
from infersight.processor.storage.base import FEATURE, MODEL, OUTPUT, Storage
from infersight.stats.sketch import ExpHistogram
from infersight.stats.windows import ExplicitHistogram, WindowStats

__all__ = ["dashboard_routes", "COOKIE", "latency_percentiles", "request_body", "heatmap_body"]

COOKIE = "infersight_token"
_TRACE_ID = re.compile(r"^[0-9a-f]{32}$")
_MAX_STEPS = 240
_MAX_HEAT_WINDOWS = 200
_QUANTILES = (0.5, 0.9, 0.99)


def _finite(x: Any) -> float | None:
    return float(x) if x is not None and math.isfinite(float(x)) else None


# -- JSON bodies (plain functions over the store, usable from Python) -------------------------


def _explicit_quantile(h: ExplicitHistogram, q: float) -> float | None:
    """Linear interpolation within the bucket holding the q-th value (the usual Prometheus
    ``histogram_quantile`` reading): good to a bucket's width."""
    total = int(h.counts.sum())
    if not total:
        return None
    target = q * total
    cum = np.cumsum(h.counts)
    i = int(np.searchsorted(cum, target))
    bounds = h.bounds
    if i >= len(bounds):  # the overflow bucket: the largest value seen is the best we know
        return _finite(h.max) if h.max == h.max else _finite(bounds[-1])
    lo = bounds[i - 1] if i > 0 else (min(0.0, bounds[0]) if not math.isfinite(h.min) else min(h.min, bounds[0]))
    hi = bounds[i]
    before = float(cum[i - 1]) if i > 0 else 0.0
    inside = float(h.counts[i]) or 1.0
    return float(lo + (hi - lo) * (target - before) / inside)


def latency_percentiles(ws: WindowStats) -> dict[str, float | None]:
    """p50/p90/p99 call latency (seconds) of a merged window: from the exponential sketch when
    the SDK sent one (relative error under 0.1%), else from the explicit-bucket histogram.

    >>> ws = WindowStats(); ws.sketches["duration"] = ExpHistogram.from_values(np.array([0.01] * 99 + [1.0]))
    >>> {k: round(v, 3) for k, v in latency_percentiles(ws).items()}
    {'p50': 0.01, 'p90': 0.01, 'p99': 0.01}
    """
    sk = ws.sketches.get("duration")
    if sk is not None and sk.count:
        qs = sk.quantile(list(_QUANTILES))
        return {f"p{round(q * 100)}": _finite(v) for q, v in zip(_QUANTILES, qs)}
    hists = [h for k, h in ws.histograms.items() if k.startswith("duration")]
    if hists:
        h = hists[0]
        for other in hists[1:]:
            if other.bounds == h.bounds:
                h = h.merge(other)
        return {f"p{round(q * 100)}": _explicit_quantile(h, q) for q in _QUANTILES}
    return {"p50": None, "p90": None, "p99": None}


def latency_body(storage: Storage, model: str, start: int, end: int, step: int, version: str | None) -> dict[str, Any]:
    points = []
    for s in range(start, end, step):
        ws, n = storage.query(model, MODEL, "", s, s + step, version)
        calls = ws.counters.get("calls", {})
        points.append(
            {
                "start": s,
                "calls": int(calls.get("total", 0)),
                "errors": int(calls.get("error", 0)),
                **(latency_percentiles(ws) if n else {"p50": None, "p90": None, "p99": None}),
            }
        )
    return {"model": model, "version": version, "start": start, "end": end, "step": step, "points": points}


def heatmap_body(
    storage: Storage, model: str, start: float, end: float, version: str, window: int | None
) -> dict[str, Any]:
    """Drift findings of ``model`` as a features x windows grid (``None`` where a window has no
    finding for a feature): ``{"features", "windows", "window_size", "cells"}``, each cell
    ``{"severity", "status", "statistic", "threshold", "method", "p_value", "cause"}``."""
    from infersight.processor.evaluate.loop import stored_findings

    recs = [
        r.body
        for r in stored_findings(storage, model, start, end)
        if r.body.get("kind") == "drift" and r.body.get("version", "") == version and not r.body.get("slice")
    ]
    sizes = sorted({int(b["window_size"]) for b in recs})
    size = window if window in sizes else (sizes[0] if sizes else window)
    recs = [b for b in recs if int(b["window_size"]) == size]
    windows = sorted({int(b["window_start"]) for b in recs})[-_MAX_HEAT_WINDOWS:]
    features = sorted({str(b["subject"]) for b in recs})
    col = {w: i for i, w in enumerate(windows)}
    row = {f: i for i, f in enumerate(features)}
    cells: list[list[dict[str, Any] | None]] = [[None] * len(windows) for _ in features]
    for b in recs:
        w = int(b["window_start"])
        if w not in col:
            continue
        stat, thr = b.get("statistic"), b.get("threshold")
        sev = stat / thr if stat is not None and thr else None
        cells[row[str(b["subject"])]][col[w]] = {
            "severity": _finite(sev),
            "status": b.get("status"),
            "statistic": stat,
            "threshold": thr,
            "method": b.get("method"),
            "p_value": b.get("p_value"),
            "cause": b.get("cause"),
        }
    return {
        "model": model,
        "version": version,
        "window_size": size,
        "windows": windows,
        "features": features,
        "cells": cells,
        "window_sizes": sizes,
    }


def _sketch_hist(sk: ExpHistogram | None, edges: np.ndarray) -> list[float]:
    if sk is None or not sk.count:
        return [0.0] * (len(edges) - 1)
    v, c = sk.to_points()
    h, _ = np.histogram(np.clip(v, edges[0], edges[-1]), bins=edges, weights=c.astype(np.float64))
    total = h.sum()
    return [float(x) for x in (h / total if total else h)]


def distribution_body(
    storage: Storage, env: Any, model: str, name: str, start: int, end: int, version: str | None
) -> dict[str, Any]:
    """Reference and current distribution of feature (or output) ``name`` over ``[start, end)``
    on common bins: numeric as shares per bin, categorical as shares per category."""
    role = FEATURE
    ws, n = storage.query(model, FEATURE, name, start, end, version)
    if not n:
        ws, n = storage.query(model, OUTPUT, name, start, end, version)
        role = OUTPUT if n else FEATURE
    ref = env.references.resolve(model, max(end - start, 1), start).reference if env is not None else None
    prof = None
    if ref is not None:
        prof = (ref.features or {}).get(name)
        if prof is None and role == OUTPUT and ref.prediction is not None:
            prof = ref.prediction
    body: dict[str, Any] = {"model": model, "name": name, "role": role, "start": start, "end": end, "windows": n}
    body["reference_source"] = None if ref is None else "reference"
    current = ws.sketches.get("value")
    ref_sketch = prof.numeric.sketch if prof is not None and prof.numeric is not None else None
    if (current is not None and current.count) or ref_sketch is not None:
        lows = [s.min for s in (current, ref_sketch) if s is not None and s.count]
        highs = [s.max for s in (current, ref_sketch) if s is not None and s.count]
        lo, hi = min(lows), max(highs)
        if not hi > lo:
            lo, hi = lo - 0.5, hi + 0.5
        edges = np.linspace(lo, hi, 31)
        body.update(
            kind="numeric",
            edges=[float(e) for e in edges],
            reference=_sketch_hist(ref_sketch, edges) if ref_sketch is not None else None,
            current=_sketch_hist(current, edges),
            reference_count=int(ref_sketch.count) if ref_sketch is not None else 0,
            current_count=int(current.count) if current is not None else 0,
        )
        return body
    cur_cats = ws.counters.get("category" if role == FEATURE else "class", {})
    ref_cats = dict(prof.categories or {}) if prof is not None else {}
    names = sorted(set(cur_cats) | set(ref_cats), key=lambda k: -(cur_cats.get(k, 0) + ref_cats.get(k, 0)))[:30]
    ct, rt = sum(cur_cats.values()) or 1, sum(ref_cats.values()) or 1
    body.update(
        kind="categorical",
        categories=names,
        reference=[ref_cats.get(k, 0) / rt for k in names] if ref_cats else None,
        current=[cur_cats.get(k, 0) / ct for k in names],
        reference_count=int(sum(ref_cats.values())),
        current_count=int(sum(cur_cats.values())),
    )
    return body


def request_body(storage: Storage, ident: str, settings: DashboardSettings) -> dict[str, Any] | None:
    """Everything kept about one request, by trace ID (32 hex digits, when its spans are
    kept) or request ID; ``None`` when nothing is."""
    # the SDK's request IDs are 32 hex digits too: a trace ID is only what the trace store knows
    items = storage.trace_items(trace_id=ident) if _TRACE_ID.match(ident) else []
    by_trace = bool(items)
    if not by_trace:
        items = storage.trace_items(request_id=ident)
    request_ids = [i.request_id for i in items if i.request_id]
    request_id = ident if not by_trace else (request_ids[0] if request_ids else None)
    models = [i.model for i in items if i.model and i.request_id == request_id]
    rows = (
        storage.request_rows(request_id, models[0] if models else None)
        if request_id
        else {"prediction": None, "outcome": None, "feedback": None}
    )
    if not items and request_id and (rows["prediction"] or rows["outcome"]):
        row: dict[str, Any] = rows["prediction"] or rows["outcome"] or {}
        tid = row.get("trace_id")
        if tid:
            items = storage.trace_items(trace_id=tid)
    if not items and not any(rows.values()):
        return None
    trace_ids = sorted({i.trace_id for i in items}) or sorted(
        {r["trace_id"] for r in (rows["prediction"], rows["outcome"]) if r and r.get("trace_id")}
    )
    spans = [{"trace_id": i.trace_id, "span_id": i.item_id, **i.body} for i in items if i.kind == "span"]
    logs = [{"trace_id": i.trace_id, "time_ns": i.time_ns, **i.body} for i in items if i.kind == "log"]
    violations = []
    for s in spans:
        for e in s.get("events") or ():
            if e.get("name") == "ml.schema.violation":
                a = e.get("attributes") or {}
                violations.append(
                    {
                        "feature": a.get("ml.feature.name"),
                        "rule": a.get("ml.schema.rule"),
                        "count": a.get("ml.schema.count"),
                        "message": a.get("ml.schema.message"),
                        "span_id": s["span_id"],
                    }
                )
    if not violations:
        for lg in logs:
            for v in (lg.get("attributes") or {}).get("ml.schema.violations") or ():
                feature, _, rule = str(v).partition(":")
                violations.append({"feature": feature, "rule": rule, "count": None, "message": None, "span_id": None})
    return {
        "id": ident,
        "request_id": request_id,
        "trace_ids": trace_ids,
        "trace_links": {t: settings.trace_link(t) for t in trace_ids},
        "spans": spans,
        "logs": logs,
        "violations": violations,
        **rows,
    }


def overview_body(storage: Storage, settings: DashboardSettings, slo: Any, alerts: Any) -> dict[str, Any]:
    """Per model and version: the worst status among its latest findings (per kind and
    subject, the newest window; ``none`` without findings), SLO statuses and open alerts."""
    from infersight.processor.evaluate.loop import stored_findings

    rank = {"none": -1, "ok": 0, "no_data": 1, "warning": 2, "breach": 3}
    models = []
    for m in storage.models():
        name = m["model"]
        latest: dict[tuple[str, str, str], dict[str, Any]] = {}
        for r in stored_findings(storage, name, newest_first=True, limit=5000):
            b = r.body
            if b.get("slice"):
                continue
            k = (str(b.get("version", "")), str(b.get("kind")), str(b.get("subject")))
            if k not in latest:
                latest[k] = b
        versions: dict[str, dict[str, Any]] = {}
        for v in [""] + list(m["versions"]):
            versions[v] = {"version": v, "status": "none", "breaches": [], "warnings": 0, "findings": 0}
        for (v, kind, subject), b in latest.items():
            e = versions.setdefault(v, {"version": v, "status": "none", "breaches": [], "warnings": 0, "findings": 0})
            e["findings"] += 1
            st = str(b.get("status"))
            if rank.get(st, 0) > rank.get(e["status"], 0):
                e["status"] = st
            if st == "breach":
                e["breaches"].append({"kind": kind, "subject": subject, "cause": b.get("cause")})
            elif st == "warning":
                e["warnings"] += 1
        models.append({"model": name, "first": m["first"], "last": m["last"], "versions": list(versions.values())})
    body: dict[str, Any] = {"models": models, "refresh": settings.refresh, "now": time.time()}
    if slo is not None:
        from infersight.processor.slo.api import slo_body

        body["slo"] = slo_body(storage, slo)
    else:
        body["slo"] = {"slos": [], "pending": []}
    body["alerts"] = alerts.incidents("open") if alerts is not None else []
    return body


# -- pages, assets, token ---------------------------------------------------------------------

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>infersight</title>
<link rel="stylesheet" href="/static/dashboard.css">
<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">
</head><body data-page="{page}" data-refresh="{refresh}">
<header><a class="brand" href="/">infersight</a><nav id="crumbs"></nav><span id="status"></span></header>
<main id="main"><p class="muted">Loading...</p></main>
<script src="/static/dashboard.js"></script>
</body></html>
"""

_LOGIN = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>infersight: token needed</title>
<link rel="stylesheet" href="/static/dashboard.css"></head><body><main>
<h1>This processor needs its token</h1>
<p>Open the dashboard once as <code>/?token=YOUR_TOKEN</code> (the processor's <code>--token</code>):
it is kept in an HttpOnly cookie for this browser and removed from the address bar.</p>
</main></body></html>
"""


def _asset(name: str) -> str:
    return (
        resources.files("infersight.processor.dashboard").joinpath("static").joinpath(name).read_text(encoding="utf-8")
    )


def dashboard_routes(
    storage: Storage,
    settings: DashboardSettings,
    *,
    token: str | None = None,
    guard: Callable[[Any], Any] | None = None,
    env: Any = None,
    slo: Any = None,
    alerts: Any = None,
    base_window: int | None = None,
) -> list[Route]:
    """The dashboard's routes. ``guard`` is the web app's token-checking wrapper for the JSON
    routes (``None``: unguarded); ``token`` is the processor's token, checked by the pages
    themselves (header, cookie, or ``?token=`` turned into the cookie)."""
    from infersight.processor.api import BadRequest, NotFound, parse_time

    window = base_window or storage.window_sizes[0]
    assets = {"dashboard.js": ("application/javascript", _asset("dashboard.js"))}
    assets["dashboard.css"] = ("text/css", _asset("dashboard.css"))
    assets["favicon.svg"] = ("image/svg+xml", _asset("favicon.svg"))

    def authorised(request: Request) -> bool:
        if token is None:
            return True
        expected = token.encode()
        header = request.headers.get("authorization", "")
        if header.startswith("Bearer ") and hmac.compare_digest(header[7:].strip().encode(), expected):
            return True
        cookie = request.cookies.get(COOKIE)
        return cookie is not None and hmac.compare_digest(cookie.encode(), expected)

    def page(name: str) -> Any:
        async def endpoint(request: Request) -> Response:
            given = request.query_params.get("token")
            if token is not None and given is not None:
                if not hmac.compare_digest(given.encode(), token.encode()):
                    return HTMLResponse(_LOGIN, status_code=401)
                rest = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
                target = request.url.path + ("?" + urlencode(rest) if rest else "")
                resp = RedirectResponse(target, status_code=303)
                resp.set_cookie(
                    COOKIE, token, httponly=True, samesite="strict", path="/", secure=request.url.scheme == "https"
                )
                return resp
            if not authorised(request):
                return HTMLResponse(_LOGIN, status_code=401)
            html = _PAGE.replace("{page}", name).replace("{refresh}", f"{settings.refresh:g}")
            return HTMLResponse(html, headers=_SECURITY_HEADERS)

        return endpoint

    def asset(request: Request) -> Response:
        kind, text = assets[request.path_params["name"]]
        return Response(text, media_type=kind, headers={"Cache-Control": "no-cache"})

    async def asset_endpoint(request: Request) -> Response:
        if request.path_params["name"] not in assets:
            return Response("not found", status_code=404, media_type="text/plain")
        return asset(request)

    def rng(request: Request, default_span: float) -> tuple[int, int]:
        now = time.time()
        end = parse_time(request.query_params.get("end"), "end", now - now % window + window)
        start = parse_time(request.query_params.get("start"), "start", end - default_span)
        if end <= start:
            raise BadRequest(f"end ({end}) must be after start ({start}); the range is [start, end)")
        return math.floor(start), math.ceil(end)

    def overview(request: Request) -> Response:
        return JSONResponse(overview_body(storage, settings, slo, alerts))

    def heatmap(request: Request) -> Response:
        start, end = rng(request, 86400)
        q = request.query_params
        w = q.get("window")
        try:
            size = int(w) if w else None
        except ValueError:
            raise BadRequest(f"window={w!r} is not a whole number of seconds; write e.g. window=3600") from None
        body = heatmap_body(storage, request.path_params["model"], start, end, q.get("version", ""), size)
        return JSONResponse(body)

    def latency(request: Request) -> Response:
        start, end = rng(request, 3600)
        q = request.query_params
        step = window
        if q.get("step"):
            try:
                step = int(q["step"])
            except ValueError:
                raise BadRequest(f"step={q['step']!r} is not a whole number of seconds; write e.g. step=60") from None
            if step <= 0 or step % window:
                raise BadRequest(f"step={step} must be a positive multiple of the storage window {window}s")
        start -= start % step
        if (end - start) / step > _MAX_STEPS:  # widen the step rather than refuse a long range
            step = math.ceil((end - start) / step / _MAX_STEPS) * step
            start -= start % step
        return JSONResponse(latency_body(storage, request.path_params["model"], start, end, step, q.get("version")))

    def distribution(request: Request) -> Response:
        start, end = rng(request, 3600)
        p = request.path_params
        return JSONResponse(
            distribution_body(storage, env, p["model"], p["feature"], start, end, request.query_params.get("version"))
        )

    def request_json(request: Request) -> Response:
        body = request_body(storage, request.path_params["id"], settings)
        if body is None:
            raise NotFound(
                f"nothing is kept for request or trace {request.path_params['id']!r}: spans are kept "
                f"{settings.recent:g}s unless flagged (dashboard.traces), payloads as sampled by the SDK"
            )
        return JSONResponse(body)

    def g(handler: Any) -> Any:
        if guard is not None:
            return guard(handler)

        async def endpoint(request: Request) -> Response:
            try:
                return await run_in_threadpool(handler, request)  # type: ignore[no-any-return]
            except BadRequest as exc:
                return JSONResponse({"error": str(exc)}, status_code=400)
            except NotFound as exc:
                return JSONResponse({"error": str(exc)}, status_code=404)

        return endpoint

    return [
        Route("/", page("overview")),
        Route("/models/{model:path}", page("model")),
        Route("/requests/{id:path}", page("request")),
        Route("/static/{name}", asset_endpoint),
        Route("/api/dashboard/overview", g(overview)),
        Route("/api/models/{model}/heatmap", g(heatmap)),
        Route("/api/models/{model}/latency", g(latency)),
        Route("/api/models/{model}/distribution/{feature:path}", g(distribution)),
        Route("/api/requests/{id:path}", g(request_json)),
    ]


# The pages load only their own script and style, and no frames: a payload that slipped past
# escaping still could not load or run anything.
_SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
