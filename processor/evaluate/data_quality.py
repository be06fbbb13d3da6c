"""Data quality per window: what a broken pipeline looks like, told apart from a changed world.

One finding of kind ``"data_quality"`` per feature and version view, its status the worst of
these checks (its ``cause`` that check's hint, every measure in ``details``):

========================  ===============================================  ===============
check                     breach when                                      cause
========================  ===============================================  ===============
feature stopped arriving  in the reference and the previous window, absent ``feature_missing``
                          now while the model still reports
missing values            the missing rate (null, NaN, absent) rose        ``missing_rate_jump``
                          significantly by at least ``min_missing_jump``
schema violations         ``ml.schema.violations`` over ``max_violations`` ``schema:<rule>``
                          of rows (any violation: ``warning``)
unseen categories         values the reference never saw in at least       ``unseen_categories``
                          ``max_unseen`` of rows
========================  ===============================================  ===============

Each judged slice (:func:`~infersight.processor.evaluate.drift.judged_slices`) gets the
missing-value and unseen-category checks too, against the slice's own past, its findings
carrying ``slice``.

And one model-level finding (subject ``__model__``, status ``no_data``, cause ``no_data``) for
a window in which a model that reported before sent nothing at all.

Example:
    >>> DataQualityEvaluator.name
    'data_quality'
"""

from __future__ import annotations

import math
from typing import Any

from infersight.processor.evaluate.drift import judged_slices, reference_of, slice_reference, views, window_of
from infersight.processor.evaluate.findings import EvaluationContext, Finding
from infersight.processor.evaluate.references import Env, missing_jump
from infersight.processor.evaluate.window import jsonable
from infersight.stats.reference import OTHER, FeatureProfile
from infersight.stats.windows import FeatureWindow, WindowStats

__all__ = ["DataQualityEvaluator", "MODEL_SUBJECT"]

MODEL_SUBJECT = "__model__"
_ORDER = {"ok": 0, "warning": 1, "breach": 2, "no_data": 3}


class DataQualityEvaluator:
    """Kind ``"data_quality"``; see the module docstring."""

    name = "data_quality"

    def __init__(self, env: Env) -> None:
        self.env = env

    def evaluate(self, ctx: EvaluationContext) -> list[Finding]:
        window = window_of(ctx, self.env)
        ms = ctx.settings or self.env.settings(ctx.model)
        runbook = {"runbook": ms.runbook} if ms.runbook else {}
        if window.empty:
            return [
                ctx.finding(
                    "",
                    "data_quality",
                    MODEL_SUBJECT,
                    status="no_data",
                    statistic=0.0,
                    threshold=1.0,
                    cause="no_data",
                    details={"reason": "the model sent nothing in this window; it reported before", **runbook},
                )
            ]
        ref = reference_of(ctx, self.env).reference
        previous: set[str] | None = ctx.cache.get("previous_present")
        ev = self.env.evaluation
        out: list[Finding] = []
        for version in views(window):
            feats = window.features(version)
            present = window.present(version)
            names = set(feats) | set(ref.features if ref is not None else ()) | (previous or set())
            for name in sorted(names):
                fs = ms.feature(name)
                prof = ref.features.get(name) if ref is not None else None
                if fs.ignore or (prof is not None and prof.kind == "timestamp"):
                    continue
                checks: list[tuple[str, str, float, float, float | None, dict[str, Any]]] = []
                if name not in present:
                    if previous is not None and name in previous and (ref is None or prof is not None):
                        reason = "the feature stopped arriving: it was in the previous window and is absent now"
                        checks.append(("breach", "feature_missing", 1.0, 1.0, None, {"reason": reason}))
                    if checks or name not in feats:
                        # all of it absent: the missing-rate test would say the same, less plainly
                        if checks:
                            out.append(self._finding(ctx, version, name, checks, runbook, fs.importance))
                        continue
                ws = feats[name]
                fw = window.feature_window(name, version, prof.kind if prof is not None else None)
                checks.extend(self._missing(fw, prof, ms, name))
                checks.extend(self._violations(ws, fw, ev.max_violations))
                if prof is not None and prof.categories is not None and fw.categories is not None:
                    checks.extend(self._unseen(fw, prof, ms.feature(name).max_unseen or ev.max_unseen))
                out.append(self._finding(ctx, version, name, checks, runbook, fs.importance))
        out.extend(self._slices(ctx, window, ms, runbook))
        return out

    def _slices(self, ctx: EvaluationContext, window: Any, ms: Any, runbook: dict[str, Any]) -> list[Finding]:
        """Each judged slice's missing rate and unseen categories against the slice's own past
        (schema violations are counted per model, not per slice)."""
        out: list[Finding] = []
        for slice_ in judged_slices(window, ms):
            ref = slice_reference(ctx, self.env, slice_).reference
            if ref is None:
                continue
            feats = window.features("", slice_)
            for name in sorted(feats):
                fs = ms.feature(name)
                prof = ref.features.get(name)
                if fs.ignore or prof is None or prof.kind == "timestamp":
                    continue
                fw = window.feature_window(name, "", prof.kind, slice_)
                checks = self._missing(fw, prof, ms, name)
                if prof.categories is not None and fw.categories is not None:
                    checks.extend(self._unseen(fw, prof, fs.max_unseen or self.env.evaluation.max_unseen))
                out.append(self._finding(ctx, "", name, checks, runbook, fs.importance, slice_))
        return out

    def _missing(
        self, fw: FeatureWindow, prof: FeatureProfile | None, ms: Any, name: str
    ) -> list[tuple[str, str, float, float, float | None, dict[str, Any]]]:
        ev = self.env.evaluation
        rows = max(fw.rows, 1)
        kinds = {k: v / rows for k, v in fw.missing.items() if v}
        cur = sum(v for k, v in fw.missing.items() if k != "inf")
        details: dict[str, Any] = {"missing_rate": cur / rows, "missing_by_kind": kinds, "rows": fw.rows}
        if prof is None:
            return [("ok", "", cur / rows, math.nan, None, details)]
        fs = ms.feature(name)
        ref_missing = sum(v for k, v in prof.missing.items() if k != "inf")
        ref_rate = ref_missing / max(prof.rows, 1)
        min_jump = fs.min_missing_jump if fs.min_missing_jump is not None else ev.min_missing_jump
        alpha = fs.alpha if fs.alpha is not None else ev.alpha
        jumped, p = missing_jump(ref_missing, prof.rows, cur, fw.rows, alpha, min_jump)
        details["reference_missing_rate"] = ref_rate
        if jumped:
            top = max(kinds, key=lambda k: kinds[k]) if kinds else "null"
            details["reason"] = f"missing rate rose from {ref_rate:.1%} to {cur / rows:.1%} (mostly {top})"
        status = "breach" if jumped else "ok"
        return [(status, "missing_rate_jump" if jumped else "", cur / rows, ref_rate + min_jump, p, details)]

    @staticmethod
    def _violations(
        ws: WindowStats, fw: FeatureWindow, limit: float
    ) -> list[tuple[str, str, float, float, float | None, dict[str, Any]]]:
        v = ws.counters.get("violations", {})
        n = sum(v.values())
        if not n:
            return []
        rate = n / max(fw.rows, 1)
        rule = max(v, key=lambda k: v[k])
        status = "breach" if rate >= limit else "warning"
        details = {"violations": dict(v), "violation_rate": rate, "reason": f"{int(n)} schema violations ({rule})"}
        return [(status, f"schema:{rule}", rate, limit, None, details)]

    @staticmethod
    def _unseen(
        fw: FeatureWindow, prof: FeatureProfile, limit: float
    ) -> list[tuple[str, str, float, float, float | None, dict[str, Any]]]:
        assert fw.categories is not None and prof.categories is not None
        known = set(prof.categories)
        seen = sum(fw.categories.values())
        unseen = {k: c for k, c in fw.categories.items() if k not in known and not (k == OTHER and OTHER in known)}
        if not seen or not unseen:
            return [("ok", "", 0.0, limit, None, {"unseen_share": 0.0})]
        share = sum(unseen.values()) / max(fw.rows, 1)
        top = sorted(unseen, key=lambda k: -unseen[k])[:5]
        details = {
            "unseen_share": share,
            "unseen": {k: unseen[k] for k in top},
            "reason": f"{share:.1%} of rows hold values the reference never saw ({', '.join(top)})",
        }
        return [("breach" if share >= limit else "warning", "unseen_categories", share, limit, None, details)]

    @staticmethod
    def _finding(
        ctx: EvaluationContext,
        version: str,
        name: str,
        checks: list[tuple[str, str, float, float, float | None, dict[str, Any]]],
        runbook: dict[str, Any],
        importance: float,
        slice_: str = "",
    ) -> Finding:
        worst = max(checks, key=lambda c: (_ORDER[c[0]], c[2] / c[3] if c[3] and math.isfinite(c[3]) else 0.0))
        details: dict[str, Any] = {}
        for c in checks:
            details.update(c[5])
        details.update(worst[5])
        details.update(runbook)
        details["importance"] = importance
        status = worst[0]
        return ctx.finding(
            version,
            "data_quality",
            name,
            slice=slice_,
            status=status,
            statistic=float(worst[2]),
            threshold=float(worst[3]),
            p_value=worst[4],
            cause=worst[1] or None if status != "ok" else None,
            method="checks",
            n_current=int(details.get("rows", 0)),
            details=jsonable(details),  # a new dict already
        )
