"""The quality evaluator: model quality from late labels, model age, and versions side by side.

For one closed window of one model (:class:`~infersight.processor.evaluate.findings.EvaluationContext`)
it reads every call's outcome whose *prediction time* falls in the window, joined with whatever
labels have arrived (labels arrive late: a later evaluation of the same window sees more of
them), and returns findings:

``kind="quality"``, one per metric (``subject`` = the metric name: ``accuracy``, ``f1``, ``mae``
...), per version and, when the model's config names ``slices``, per slice of the feedback's
attributes; plus ``subject="coverage"`` (the share of calls labelled, with the label-delay
percentiles in ``details``). A metric is a ``breach`` when it is past its configured ``min``
(``max`` for error metrics), or when it dropped significantly against the baseline (the
``baseline_windows`` windows before this one): accuracy by a one-sided two-proportion z-test,
MAE by a one-sided Welch t-test on absolute errors, each at ``alpha`` and only when the drop is
at least ``min_drop`` (absolute for accuracy, relative for MAE). With fewer than
``min_labelled`` pairs in the window (or the baseline, for a drop) a breach is reported as a
``warning``: too few labels to act on.

``kind="age"``, ``subject="model_age"``: seconds since the version first served (the earliest
of its stored outcomes, its stored windows, and what this evaluator recorded before, so the
age survives retention), a ``breach`` past ``max_age``.

``kind="version"`` when two or more versions served in the window: the newest (latest first
served) against the incumbent (the most calls among the others), ``subject`` one of
``latency`` (p95 and the distance between the stored latency histograms: a binned KS test,
conservative), ``predictions`` (chi-square for labels, KS for numbers), ``quality:<metric>``
(the drop tests above, between versions), and ``verdict``: ``breach`` ("the new version is
worse") when latency or quality is significantly worse *and* by more than the tolerance
(``latency_tolerance`` on p95, ``min_drop`` on quality), with enough data on both sides;
different predictions alone are a ``warning``, not a verdict.

Example:
    >>> QualityEvaluator().name
    'quality'
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from infersight.processor.evaluate.findings import EvaluationContext, Finding
from infersight.processor.quality.join import QualityResult, pairs_from_rows, score_pairs, slice_key
from infersight.processor.quality.metrics import HIGHER_IS_BETTER, sort_labels
from infersight.processor.quality.settings import ModelQuality, QualitySettings
from infersight.processor.storage.base import MODEL, Record
from infersight.stats.drift.categorical import chi2
from infersight.stats.drift.ks import ks_exact, ks_p

__all__ = ["QualityEvaluator", "Tally", "compare_proportions", "compare_errors", "FIRST_SEEN", "SUMMARY"]

FIRST_SEEN = "version_first_seen"  # records kind: when each version first served
SUMMARY = "quality_window"  # records kind: a Tally per (model, version, slice, window)


def compare_proportions(k_new: int, n_new: int, k_old: int, n_old: int) -> float:
    """One-sided p-value that the new proportion is lower (two-proportion z-test, pooled).

    >>> round(compare_proportions(80, 100, 90, 100), 4)
    0.0238
    """
    if n_new == 0 or n_old == 0:
        return math.nan
    p = (k_new + k_old) / (n_new + n_old)
    se = math.sqrt(p * (1 - p) * (1 / n_new + 1 / n_old))
    if se == 0:
        return 1.0
    z = (k_old / n_old - k_new / n_new) / se
    return 0.5 * math.erfc(z / math.sqrt(2))


def compare_errors(n_new: int, mean_new: float, var_new: float, n_old: int, mean_old: float, var_old: float) -> float:
    """One-sided Welch t-test p-value that the new mean error is larger, from each side's
    count, mean and sample variance (so a baseline can be kept as sums per window).

    >>> round(compare_errors(50, 1.3, 0.25, 50, 1.0, 0.25), 4)
    0.0017
    """
    if n_new < 2 or n_old < 2:
        return math.nan
    a, b = var_new / n_new, var_old / n_old
    if a + b == 0:
        return 1.0 if mean_new <= mean_old else 0.0
    t = (mean_new - mean_old) / math.sqrt(a + b)
    df = (a + b) ** 2 / (a * a / (n_new - 1) + b * b / (n_old - 1))
    from scipy.special import stdtr

    return float(stdtr(df, -t))


@dataclass
class Tally:
    """What the drop tests need of a window's labelled pairs, in sums that add across windows:
    stored per (model, version, slice, window) as a ``quality_window`` record, so a baseline of
    many windows is read as a few records, not re-joined from every call."""

    task: str
    labelled: int = 0
    correct: int = 0
    ae_n: int = 0
    ae_sum: float = 0.0
    ae_sumsq: float = 0.0
    windows: int = 1

    @classmethod
    def from_result(cls, res: QualityResult) -> Tally:
        ae = res.abs_errors if res.abs_errors is not None else np.zeros(0)
        return cls(
            res.task,
            res.labelled,
            int(res.correct or 0),
            int(ae.size),
            float(ae.sum()),
            float((ae * ae).sum()),
        )

    @classmethod
    def merge(cls, tallies: Sequence[Tally], task: str) -> Tally | None:
        same = [t for t in tallies if t.task == task and t.labelled]
        if not same:
            return None
        return cls(
            task,
            sum(t.labelled for t in same),
            sum(t.correct for t in same),
            sum(t.ae_n for t in same),
            sum(t.ae_sum for t in same),
            sum(t.ae_sumsq for t in same),
            sum(t.windows for t in same),
        )

    def value(self, metric: str) -> float:
        if metric == "accuracy" and self.task == "classification" and self.labelled:
            return self.correct / self.labelled
        if metric == "mae" and self.ae_n:
            return self.ae_sum / self.ae_n
        return math.nan

    def error_variance(self) -> float:
        if self.ae_n < 2:
            return math.nan
        m = self.ae_sum / self.ae_n
        return max(0.0, (self.ae_sumsq - self.ae_n * m * m) / (self.ae_n - 1))


class QualityEvaluator:
    """Implements the ``Evaluator`` protocol (``evaluate(ctx) -> list[Finding]``)."""

    name = "quality"
    # the evaluation loop runs it on each window again whenever that window's count of
    # labelled calls changes (labels arrive long after the window closed)
    uses_labels = True

    def __init__(self, settings: QualitySettings | None = None) -> None:
        self.settings = settings or QualitySettings()

    def label_wait(self, model: str) -> float:
        """Seconds after a window closes before its coverage is judged (labels still arriving)."""
        return float(self.settings.for_model(model).label_wait)

    # -- the protocol -----------------------------------------------------------------------

    def evaluate(self, ctx: EvaluationContext) -> list[Finding]:
        mq = self.settings.for_model(ctx.model)
        start_ns, end_ns = ctx.start * 10**9, (ctx.start + ctx.size) * 10**9
        rows = ctx.storage.outcomes(ctx.model, start_ns, end_ns)
        if not rows:
            return []
        by_version = _group(rows, "version")
        out: list[Finding] = []
        scopes = [(v, by_version[v]) for v in sorted(by_version)]
        if len(by_version) > 1:
            scopes.insert(0, ("", rows))
        results: dict[str, QualityResult] = {}
        baseline = _Baseline(ctx, mq)
        summaries: list[Record] = []
        for version, cur in scopes:
            res = score_pairs(pairs_from_rows(cur), mq)
            results[version] = res
            out.extend(self._quality_findings(ctx, mq, version, "", res, baseline, summaries))
            for key in _slice_keys(cur, mq.slices):
                sres = score_pairs(pairs_from_rows(cur, key, mq.slices), mq)
                out.extend(self._quality_findings(ctx, mq, version, key, sres, baseline, summaries))
        ctx.storage.put_records(summaries)
        out.extend(self._age_findings(ctx, mq, sorted(by_version)))
        if len(by_version) > 1:
            out.extend(self._version_findings(ctx, mq, by_version, results))
        return out

    # -- quality ------------------------------------------------------------------------------

    def _quality_findings(
        self,
        ctx: EvaluationContext,
        mq: ModelQuality,
        version: str,
        slice_: str,
        res: QualityResult,
        baseline: _Baseline,
        summaries: list[Record],
    ) -> list[Finding]:
        out: list[Finding] = []
        common: dict[str, Any] = {
            "calls": res.calls,
            "labelled_calls": res.labelled_calls,
            "coverage": None if not math.isfinite(res.coverage) else res.coverage,
            "label_delay_seconds": res.label_delay,
            "excluded": res.excluded,
            "task": res.task,
        }
        evidence = tuple(res.evidence[:5])
        cov_status = "ok"
        window_end = ctx.start + ctx.size
        if (
            mq.min_coverage is not None
            and math.isfinite(res.coverage)
            and res.coverage < mq.min_coverage
            and ctx.now >= window_end + mq.label_wait
        ):
            cov_status = "breach"
        out.append(
            ctx.finding(
                version,
                "quality",
                "coverage",
                status=cov_status,
                statistic=res.coverage,
                threshold=math.nan if mq.min_coverage is None else mq.min_coverage,
                slice=slice_,
                n_current=res.calls,
                details=common,
            )
        )
        if res.labelled == 0:
            return out
        cur = Tally.from_result(res)
        summaries.append(
            Record(SUMMARY, _summary_key(ctx, version, slice_, ctx.start), ctx.model, ctx.start, asdict(cur))
        )
        base = baseline.get(version, slice_, res.task)
        for metric, value in res.metrics.items():
            if not math.isfinite(value):
                continue
            higher = metric in HIGHER_IS_BETTER
            bound = mq.min.get(metric) if higher else mq.max.get(metric)
            past = bound is not None and (value < bound if higher else value > bound)
            p_value, dropped, base_value = self._drop(metric, cur, base, mq)
            details = dict(common)
            if base is not None:
                details["baseline"] = {
                    "value": None if base_value is None or not math.isfinite(base_value) else base_value,
                    "labelled": base.labelled,
                    "windows": base.windows,
                }
            reasons = [r for r, hit in (("past_bound", past), ("dropped", dropped)) if hit]
            details["reasons"] = reasons
            status = "ok"
            if reasons:
                enough = res.labelled >= mq.min_labelled and (
                    "dropped" not in reasons or past or (base is not None and base.labelled >= mq.min_labelled)
                )
                status = "breach" if enough else "warning"
            out.append(
                ctx.finding(
                    version,
                    "quality",
                    metric,
                    status=status,
                    statistic=value,
                    threshold=math.nan if bound is None else bound,
                    p_value=p_value,
                    method="z_test" if metric == "accuracy" else ("welch_t" if metric == "mae" else None),
                    slice=slice_,
                    n_reference=0 if base is None else base.labelled,
                    n_current=res.labelled,
                    details=details,
                    evidence=evidence if status != "ok" else (),
                )
            )
        return out

    @staticmethod
    def _drop(metric: str, cur: Tally, base: Tally | None, mq: ModelQuality) -> tuple[float | None, bool, float | None]:
        """(p-value, significant drop with effect, baseline value) of ``metric`` (accuracy and
        MAE are tested; other metrics are checked against their bounds only)."""
        if base is None or base.task != cur.task:
            return None, False, None
        bv, cv = base.value(metric), cur.value(metric)
        if not (math.isfinite(bv) and math.isfinite(cv)):
            return None, False, None
        if metric == "accuracy":
            p = compare_proportions(cur.correct, cur.labelled, base.correct, base.labelled)
            effect = bv - cv >= mq.min_drop
        else:
            p = compare_errors(cur.ae_n, cv, cur.error_variance(), base.ae_n, bv, base.error_variance())
            effect = cv - bv >= mq.min_drop * max(abs(bv), 1e-12)
        return p, bool(math.isfinite(p) and p < mq.alpha and effect), bv

    # -- age ----------------------------------------------------------------------------------

    def first_seen(self, storage: Any, model: str) -> dict[str, float]:
        """When each version of ``model`` first served (Unix seconds), remembered in records."""
        seen: dict[str, float] = {}
        for rec in storage.get_records(FIRST_SEEN, model=model):
            seen[str(rec.body.get("version", ""))] = float(rec.time)
        for v, info in storage.outcome_versions(model).items():
            t = info["first_ns"] / 1e9
            seen[v] = min(seen.get(v, t), t)
        for s in storage.series(model):
            if s.get("role") == MODEL and s.get("first") is not None:
                seen[s["version"]] = min(seen.get(s["version"], float(s["first"])), float(s["first"]))
        return seen

    def _age_findings(self, ctx: EvaluationContext, mq: ModelQuality, versions: Sequence[str]) -> list[Finding]:
        seen = self.first_seen(ctx.storage, ctx.model)
        ctx.storage.put_records(
            [
                Record(FIRST_SEEN, f"{ctx.model}|{v}", ctx.model, t, {"version": v})
                for v, t in seen.items()
                if v in versions
            ]
        )
        out = []
        for v in versions:
            if v not in seen:
                continue
            age = max(0.0, ctx.now - seen[v])
            breach = mq.max_age is not None and age > mq.max_age
            out.append(
                ctx.finding(
                    v,
                    "age",
                    "model_age",
                    status="breach" if breach else "ok",
                    statistic=age,
                    threshold=math.nan if mq.max_age is None else mq.max_age,
                    cause="age" if breach else None,
                    details={"first_served": seen[v]},
                )
            )
        return out

    # -- versions side by side ----------------------------------------------------------------

    def _version_findings(
        self,
        ctx: EvaluationContext,
        mq: ModelQuality,
        by_version: Mapping[str, list[dict[str, Any]]],
        results: Mapping[str, QualityResult],
    ) -> list[Finding]:
        seen = self.first_seen(ctx.storage, ctx.model)
        versions = sorted(by_version, key=lambda v: (seen.get(v, math.inf), v))
        new = versions[-1]
        old = max(versions[:-1], key=lambda v: len(by_version[v]))
        side = {"baseline_version": old, "calls": {new: len(by_version[new]), old: len(by_version[old])}}
        out: list[Finding] = []
        worse: list[str] = []

        lat = self._latency(ctx, new, old, mq)
        if lat is not None:
            extra = lat.pop("details_extra")
            f = ctx.finding(new, "version", "latency", **lat, details={**side, **extra})
            out.append(f)
            if f.status == "breach":
                worse.append("latency")

        pred = _prediction_difference(by_version[new], by_version[old], mq)
        if pred is not None:
            extra = pred.pop("extra")
            out.append(ctx.finding(new, "version", "predictions", **pred, details={**side, **extra}))

        rn, ro = results[new], results[old]
        for metric in ("accuracy", "mae"):
            vn, vo = rn.metrics.get(metric, math.nan), ro.metrics.get(metric, math.nan)
            if not (math.isfinite(vn) and math.isfinite(vo)) or rn.task != ro.task:
                continue
            p, dropped, _ = self._drop(metric, Tally.from_result(rn), Tally.from_result(ro), mq)
            enough = rn.labelled >= mq.min_labelled and ro.labelled >= mq.min_labelled
            status = "breach" if dropped and enough else ("warning" if dropped else "ok")
            if status == "breach":
                worse.append(f"quality:{metric}")
            out.append(
                ctx.finding(
                    new,
                    "version",
                    f"quality:{metric}",
                    status=status,
                    statistic=vn,
                    threshold=vo,
                    p_value=p,
                    method="z_test" if metric == "accuracy" else "welch_t",
                    n_reference=ro.labelled,
                    n_current=rn.labelled,
                    details={**side, "side_by_side": {new: rn.to_dict(), old: ro.to_dict()}},
                )
            )
        out.append(
            ctx.finding(
                new,
                "version",
                "verdict",
                status="breach" if worse else "ok",
                statistic=float(len(worse)),
                threshold=1.0,
                cause="version:worse" if worse else None,
                details={**side, "worse": worse, "newer": new, "older": old},
            )
        )
        return out

    def _latency(self, ctx: EvaluationContext, new: str, old: str, mq: ModelQuality) -> dict[str, Any] | None:
        got = {}
        for v in (new, old):
            ws, _ = ctx.storage.query(ctx.model, MODEL, "", ctx.start, ctx.start + ctx.size, version=v)
            points = _durations(ws)
            if points is None:
                return None
            got[v] = points
        (vn, cn), (vo, co) = got[new], got[old]
        d = _binned_ks(vn, cn, vo, co)
        m, n = int(co.sum()), int(cn.sum())
        p = ks_p(d, m, n) if m and n else math.nan
        p95n, p95o = _quantile(vn, cn, 0.95), _quantile(vo, co, 0.95)
        worse_effect = p95n > p95o * (1 + mq.latency_tolerance)
        significant = math.isfinite(p) and p < mq.alpha
        enough = min(m, n) >= mq.min_labelled
        status = "ok"
        if significant and worse_effect:
            status = "breach" if enough else "warning"
        return {
            "status": status,
            "statistic": p95n,
            "threshold": p95o * (1 + mq.latency_tolerance),
            "p_value": p,
            "method": "ks_binned",
            "n_reference": m,
            "n_current": n,
            "details_extra": {
                "p50": {new: _quantile(vn, cn, 0.5), old: _quantile(vo, co, 0.5)},
                "p95": {new: p95n, old: p95o},
                "ks_d": d,
            },
        }


def _summary_key(ctx: EvaluationContext, version: str, slice_: str, start: int) -> str:
    return f"{ctx.model}|{version}|{slice_}|{ctx.size}|{start}"


class _Baseline:
    """The ``baseline_windows`` windows before the evaluated one, per (version, slice): the sum
    of their stored tallies, or (when none of them was evaluated yet) their labelled calls
    read once and scored."""

    def __init__(self, ctx: EvaluationContext, mq: ModelQuality) -> None:
        self.ctx, self.mq = ctx, mq
        self.start = ctx.start - mq.baseline_windows * ctx.size
        self._rows: list[dict[str, Any]] | None = None

    def get(self, version: str, slice_: str, task: str) -> Tally | None:
        ctx = self.ctx
        prefix = f"{ctx.model}|{version}|{slice_}|{ctx.size}|"
        recs = ctx.storage.get_records(SUMMARY, model=ctx.model, key_prefix=prefix, start=self.start, end=ctx.start)
        if recs:
            return Tally.merge([Tally(**r.body) for r in recs], task)
        if self._rows is None:
            self._rows = ctx.storage.outcomes(ctx.model, self.start * 10**9, ctx.start * 10**9, labelled_only=True)
        rows = [r for r in self._rows if not version or r["version"] == version]
        pairs = pairs_from_rows(rows, slice_ or None, self.mq.slices)
        if not pairs.actual:
            return None
        t = Tally.from_result(score_pairs(pairs, self.mq))
        t.windows = len({r["time_ns"] // 10**9 // ctx.size for r in rows})
        return t if t.task == task else None


def _group(rows: Sequence[dict[str, Any]], key: str) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        out.setdefault(r[key], []).append(r)
    return out


def _slice_keys(rows: Sequence[dict[str, Any]], names: Sequence[str]) -> list[str]:
    if not names:
        return []
    keys = {slice_key(r.get("feedback_attributes") or {}, names) for r in rows if r.get("feedback_time_ns") is not None}
    return sorted(k for k in keys if k)


def _durations(ws: Any) -> tuple[np.ndarray, np.ndarray] | None:
    sk = ws.sketches.get("duration") or ws.sketches.get("span_duration")
    if sk is not None and sk.count:
        v, c = sk.to_points()
        return np.asarray(v, dtype=np.float64), np.asarray(c, dtype=np.float64)
    h = ws.histograms.get("duration")
    if h is not None and h.count:
        b = np.asarray(h.bounds, dtype=np.float64)
        mids = np.r_[b, b[-1] * 2 if b.size else 1.0]  # the upper bound stands for its bucket
        return mids, np.asarray(h.counts, dtype=np.float64)
    return None


def _binned_ks(va: np.ndarray, ca: np.ndarray, vb: np.ndarray, cb: np.ndarray) -> float:
    grid = np.union1d(va, vb)
    fa = np.cumsum(np.bincount(np.searchsorted(grid, va), weights=ca, minlength=grid.size)) / ca.sum()
    fb = np.cumsum(np.bincount(np.searchsorted(grid, vb), weights=cb, minlength=grid.size)) / cb.sum()
    return float(np.max(np.abs(fa - fb)))


def _quantile(v: np.ndarray, c: np.ndarray, q: float) -> float:
    cum = np.cumsum(c)
    return float(v[min(int(np.searchsorted(cum, q * cum[-1])), v.size - 1)])


def _row_values(rows: Sequence[dict[str, Any]]) -> list[Any]:
    """Each row's prediction as a label or number (a dict's label or value, a class-score
    vector's arg max), for comparing two versions' prediction distributions."""
    vals: list[Any] = []
    for r in rows:
        p = r.get("prediction")
        if isinstance(p, list) and (r.get("rows") or 1) == len(p):
            vals.extend(p)
        elif p is not None:
            vals.append(p)
    out = []
    for v in vals:
        if isinstance(v, dict):
            v = next((v[k] for k in ("label", "class", "prediction", "value", "score") if k in v), None)
        elif isinstance(v, list):
            v = int(np.argmax(v)) if v and all(isinstance(x, (int, float)) for x in v) else None
        if v is not None:
            out.append(v)
    return out


def _prediction_difference(
    new_rows: Sequence[dict[str, Any]], old_rows: Sequence[dict[str, Any]], mq: ModelQuality
) -> dict[str, Any] | None:
    a, b = _row_values(new_rows), _row_values(old_rows)
    if not a or not b:
        return None
    numeric = all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in a + b)
    labels_like = numeric and len(set(a + b)) <= 20 and all(float(x).is_integer() for x in a + b)
    if numeric and not labels_like:
        d, p = ks_exact(np.sort(np.asarray(b, dtype=np.float64)), np.sort(np.asarray(a, dtype=np.float64)))
        extra: dict[str, Any] = {"mean": {"new": float(np.mean(a)), "old": float(np.mean(b))}}
        effect, method = d, "ks"
    else:
        keys = sort_labels([_hashable(x) for x in a + b])
        idx = {k: i for i, k in enumerate(keys)}
        ca = np.bincount([idx[_hashable(x)] for x in a], minlength=len(keys)).astype(np.float64)
        cb = np.bincount([idx[_hashable(x)] for x in b], minlength=len(keys)).astype(np.float64)
        _, _, p = chi2(cb, ca)
        effect = 0.5 * float(np.abs(ca / ca.sum() - cb / cb.sum()).sum())
        method = "chi_square"
        extra = {
            "shares": {
                "new": {str(k): float(ca[i] / ca.sum()) for k, i in idx.items()},
                "old": {str(k): float(cb[i] / cb.sum()) for k, i in idx.items()},
            },
            "total_variation": effect,
        }
    different = p < mq.alpha and effect >= 0.1
    return {
        "status": "warning" if different else "ok",
        "statistic": effect,
        "threshold": 0.1,
        "p_value": p,
        "method": method,
        "n_reference": len(b),
        "n_current": len(a),
        "extra": extra,
    }


def _hashable(x: Any) -> Any:
    return x if isinstance(x, (str, int, float, bool)) else str(x)
