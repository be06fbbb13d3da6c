"""Drift of each feature and of each model output, per window, against the model's reference.

Per feature the stored window is read as the statistics engine reads any window
(:meth:`~infersight.stats.windows.FeatureWindow.from_stats`) and scored by the drift policy's
method for it (:class:`~infersight.processor.evaluate.references.Scorer`: the same methods and
settings as ``infersight drift``). The values are judged here; a jump in the missing rate is a
data-quality finding (:mod:`.data_quality`), not drift, so a NaN flood is never read as a
change of the world. Outputs are scored the same way (classes as categories, scores as
numbers), and with a reference that has a confusion matrix the label shift is estimated by
BBSE.

Verdicts are per version and for all versions together (``version=""``); when a window has
one version, only the all-versions verdict is made (its ``details["versions"]`` names it), so
one model version does not raise every finding twice.

Slices (``@monitor(slices=["region"])`` in the SDK; ``models.<name>.slices`` and ``slice_cap``
choose which are judged) are scored too, all versions together, each against its own past
(:func:`slice_reference`): a slice's findings carry ``slice="region=eu"``.

Example:
    >>> DriftEvaluator.name
    'drift'
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from infersight.processor.evaluate.findings import EvaluationContext, Finding
from infersight.processor.evaluate.references import Env, ResolvedReference
from infersight.processor.evaluate.window import ModelWindow, jsonable, load_window, output_window
from infersight.processor.storage.base import OUTPUT
from infersight.stats.drift import BBSE, DriftResult, explain
from infersight.stats.drift.combined import score_windows
from infersight.stats.reference import FeatureProfile, Reference
from infersight.stats.windows import FeatureWindow

__all__ = ["DriftEvaluator", "window_of", "reference_of", "views", "drift_report", "output_profile"]


def window_of(ctx: EvaluationContext, env: Env) -> ModelWindow:
    """The context's window data, read once per window and shared by evaluators."""
    w = ctx.cache.get("window")
    if w is None:
        w = load_window(env.storage, ctx.model, ctx.size, ctx.start, ctx.cache.get("data_start"))
        ctx.cache["window"] = w
    assert isinstance(w, ModelWindow)
    return w


def reference_of(ctx: EvaluationContext, env: Env) -> ResolvedReference:
    r = ctx.cache.get("reference")
    if r is None:
        r = env.references.resolve(ctx.model, ctx.size, ctx.start, ctx.cache.get("data_start"), ctx.settings)
        ctx.cache["reference"] = r
    assert isinstance(r, ResolvedReference)
    return r


def judged_slices(window: ModelWindow, settings: Any) -> list[str]:
    """The window's slices drift judges: those over the names in the model's ``slices``
    setting (every slice when it names none), at most ``slice_cap`` of them, the most rows
    first (ties by key)."""
    allowed = set(settings.slices)
    keys = [k for k in window.slices if not allowed or {part.partition("=")[0] for part in k.split(",")} <= allowed]
    if len(keys) > settings.slice_cap:
        keys = sorted(keys, key=lambda k: (-window.slice_rows(k), k))[: settings.slice_cap]
    return keys


def slice_reference(ctx: EvaluationContext, env: Env, slice_: str) -> ResolvedReference:
    """A slice's reference: the slice's own past (the model's ``reference: {past_window: ...}``,
    one day by default), since a profile of all traffic does not describe one region's rows."""
    key = "reference@" + slice_
    r = ctx.cache.get(key)
    if r is None:
        r = env.references.resolve_slice(
            ctx.model, slice_, ctx.size, ctx.start, ctx.cache.get("data_start"), ctx.settings
        )
        ctx.cache[key] = r
    assert isinstance(r, ResolvedReference)
    return r


def views(window: ModelWindow) -> list[str]:
    """``""`` (all versions), plus each version when more than one has data."""
    vs = window.versions
    return [""] + (list(vs) if len(vs) > 1 else [])


def output_profile(ref: Reference, name: str, outputs: Sequence[str]) -> FeatureProfile | None:
    """The reference's prediction profile for output ``name`` (by column name, or the only one)."""
    pred = ref.prediction
    if pred is None:
        return None
    if pred.name == name or len(outputs) == 1:
        return pred
    return None


def _details(res: DriftResult, **extra: Any) -> dict[str, Any]:
    d = {k: v for k, v in res.details.items() if k != "histogram"}
    d.update(extra)
    out: dict[str, Any] = jsonable(d)  # a new dict already
    return out


class DriftEvaluator:
    """Kind ``"drift"``: one finding per feature, output (``output:NAME``) and label-shift
    estimate (``label_shift:NAME``) per version view; status ``breach`` when the policy calls
    drift, ``ok`` otherwise (``details["reason"]`` says why, e.g. too few rows)."""

    name = "drift"

    def __init__(self, env: Env) -> None:
        self.env = env
        self._bbse: dict[str, BBSE] = {}

    def evaluate(self, ctx: EvaluationContext) -> list[Finding]:
        window = window_of(ctx, self.env)
        resolved = reference_of(ctx, self.env)
        if window.empty:
            return []
        ms = ctx.settings or self.env.settings(ctx.model)
        scorer = self.env.scorer(ctx.model, ms)
        mode = ms.mode_for(ctx.size)
        out: list[Finding] = []
        if resolved.reference is not None:
            for version in views(window):
                common = {
                    "reference": resolved.source,
                    "mode": mode,
                    **({"versions": list(window.versions)} if not version else {}),
                    **({"runbook": ms.runbook} if ms.runbook else {}),
                }
                out.extend(self._view(ctx, window, resolved, scorer, ms, version, "", common))
        for slice_ in judged_slices(window, ms):
            sref = slice_reference(ctx, self.env, slice_)
            if sref.reference is None:
                continue
            common = {
                "reference": sref.source,
                "mode": mode,
                **({"runbook": ms.runbook} if ms.runbook else {}),
            }
            out.extend(self._view(ctx, window, sref, scorer, ms, "", slice_, common))
        return out

    def _view(
        self,
        ctx: EvaluationContext,
        window: ModelWindow,
        resolved: ResolvedReference,
        scorer: Any,
        ms: Any,
        version: str,
        slice_: str,
        common: dict[str, Any],
    ) -> list[Finding]:
        """The findings of one version view or one slice: every feature, each output and its
        label shift."""
        ref = resolved.reference
        assert ref is not None
        source = resolved.source if resolved.cacheable else None
        out: list[Finding] = []
        feats = window.features(version, slice_)
        # every feature's verdict at once (the method's own, scored in batches: see
        # score_windows); the missing rate is data quality's, not scored here
        judged: list[tuple[str, Any]] = []
        methods: list[Any] = []
        fws: list[FeatureWindow] = []
        for name, prof in ref.features.items():
            fs = ms.feature(name)
            if fs.ignore or prof.kind == "timestamp" or name not in feats:
                continue
            judged.append((name, fs))
            methods.append(scorer.method(prof, source))
            fws.append(window.feature_window(name, version, prof.kind, slice_))
        for (name, fs), res in zip(judged, score_windows(methods, fws)):
            alpha = scorer.policy.overrides.get(name, {}).get("alpha", scorer.policy.alpha)
            out.append(
                self._finding(
                    ctx,
                    version,
                    name,
                    res,
                    explain(res, alpha, scorer.policy.min_rows),
                    fs.importance,
                    common,
                    slice_,
                )
            )
        outs = window.outputs(version, slice_)
        for name, ws in outs.items():
            oprof = output_profile(ref, name, list(outs))
            if oprof is None:
                continue
            fw = output_window(ws, oprof.kind)
            method = scorer.method(oprof, source, OUTPUT)
            res = method.score_window(fw)
            out.append(
                self._finding(
                    ctx,
                    version,
                    f"output:{name}",
                    res,
                    explain(res, scorer.policy.alpha),
                    1.0,
                    common | {"role": "output"},
                    slice_,
                )
            )
            if ref.confusion is not None and fw.categories is not None:
                bbse = self._label_shift(resolved)
                lres = bbse.score_counts(fw.categories)
                out.append(
                    self._finding(
                        ctx,
                        version,
                        f"label_shift:{name}",
                        lres,
                        explain(lres, bbse.alpha),
                        1.0,
                        common | {"role": "label_shift"},
                        slice_,
                    )
                )
        return out

    def _label_shift(self, resolved: ResolvedReference) -> BBSE:
        b = self._bbse.get(resolved.source) if resolved.cacheable else None
        if b is None:
            b = BBSE().fit(resolved.reference)
            if resolved.cacheable:
                self._bbse = {resolved.source: b}
        return b

    @staticmethod
    def _finding(
        ctx: EvaluationContext,
        version: str,
        subject: str,
        res: DriftResult,
        reason: str,
        importance: float,
        common: Mapping[str, Any],
        slice_: str = "",
    ) -> Finding:
        judged = math.isfinite(res.statistic)
        return ctx.finding(
            version,
            "drift",
            subject,
            slice=slice_,
            status="breach" if res.drift else "ok",
            statistic=float(res.statistic),
            threshold=float(res.threshold),
            p_value=None if res.p_value is None or not math.isfinite(res.p_value) else float(res.p_value),
            cause=res.cause if res.drift else None,
            method=res.method,
            n_reference=int(res.n_reference),
            n_current=int(res.n_current),
            details=_details(res, reason=reason, importance=importance, judged=judged, **common),
        )


def drift_report(
    env: Env,
    model: str,
    windows: Sequence[tuple[int, int]],
    *,
    version: str | None = None,
    iso: bool = True,
    slice_: str = "",
) -> dict[str, Any]:
    """``{"windows": [...], "summary": {...}}`` for ``model`` over each ``(start, end)`` range,
    in the shape ``infersight drift --format json`` prints (one entry per range; the missing
    rate folded into the verdict as the CLI does), plus ``reference`` (where it came from).
    With ``slice_``, that slice's rows against the slice's own past (all versions)."""
    from infersight.cli.drift import summarize

    ms = env.settings(model)
    scorer = env.scorer(model, ms)
    out: list[dict[str, Any]] = []
    missing_all: set[str] = set()
    sources: list[str] = []
    for start, end in windows:
        size = end - start
        w = load_window(env.storage, model, size, start)
        if slice_:
            version = None
            resolved = env.references.resolve_slice(model, slice_, size, start, settings=ms)
        else:
            resolved = env.references.resolve(model, size, start, settings=ms)
        ref = resolved.reference
        sources.append(resolved.source)
        entry: dict[str, Any] = {
            "start": _iso(start) if iso else start,
            "end": _iso(end) if iso else end,
            "rows": w.slice_rows(slice_) if slice_ else w.rows(version or ""),
            "features": {},
            "multivariate": {},
        }
        if ref is not None:
            feats = w.features(version or "", slice_)
            source = resolved.source if resolved.cacheable else None
            for name, prof in ref.features.items():
                if ms.feature(name).ignore or prof.kind == "timestamp":
                    continue
                if name not in feats:
                    missing_all.add(name)
                    r = DriftResult("presence", math.nan, math.nan, None, True, "feature_missing", prof.rows, 0)
                else:
                    r, _, _ = scorer.score(
                        prof, FeatureWindow.from_stats(feats[name], prof.kind), source, with_missing=True
                    )
                alpha = scorer.policy.overrides.get(name, {}).get("alpha", scorer.policy.alpha)
                entry["features"][name] = {**r.to_dict(), "reason": explain(r, alpha, scorer.policy.min_rows)}
            outs = w.outputs(version or "", slice_)
            for name, ws in outs.items():
                oprof = output_profile(ref, name, list(outs))
                if oprof is None:
                    continue
                fw = output_window(ws, oprof.kind)
                r = scorer.method(oprof, source, OUTPUT).score_window(fw)
                entry["prediction"] = {**r.to_dict(), "reason": explain(r, scorer.policy.alpha)}
                if ref.confusion is not None and fw.categories is not None:
                    b = BBSE().fit(ref)
                    lr = b.score_counts(fw.categories)
                    entry["label_shift"] = {**lr.to_dict(), "reason": explain(lr, b.alpha)}
                break
        out.append(entry)
    report = {"windows": out, "summary": summarize(out, sorted(missing_all))}
    report["reference"] = sorted(set(sources))
    return report


def _iso(seconds: int) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(seconds, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
