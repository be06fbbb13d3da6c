"""Multivariate drift per window: the MMD test on the window's sampled payload logs against the
reference's multivariate sample.

Per-feature drift (:mod:`.drift`) reads the stored sketches of every call, so it misses a change
in how features move together (a correlation that flips while each marginal stays put). The
kernel two-sample test of :mod:`infersight.stats.multivariate` sees that, but it needs rows, and
rows exist only for the calls whose payload was logged (``payload_sample_rate``, 1 % by
default). So, per window (and per version when the drift evaluator judges versions apart):

- the window's sampled inputs are read from the store (spread over the window: the window is
  cut into :data:`SLICES` parts and at most ``ROWS_READ / SLICES`` payload logs are read from
  each; a log cut at the SDK's ``max_payload_bytes`` gives the rows it holds whole) and turned into the reference's numeric columns by the SDK's column model
  (:func:`~infersight.stats.columns.to_columns`, :func:`~infersight.stats.columns.clean_column`:
  a non-number is missing, and a missing value stands at the reference mean, as in the
  reference sample);
- a reference column the payloads never carry (redacted, not logged, ignored in the config) is
  left out of the test when the reference keeps its sample in full rank (up to ten numeric
  features: the PCA rotation is undone), since a column stood at its mean would read as a
  shift; with a reduced sample it cannot be left out, and the finding says so (``warning``);
- with at least ``evaluation.multivariate_min_rows`` rows (default 100) the test runs at the
  drift policy's ``alpha`` with enough permutations to reach it (``2 / alpha``, at least 300):
  the permutation p-value is exact at any size, so the floor is about power, not false alarms.
  The permutations stop early (Besag and Clifford's rule, :data:`STOP_AFTER`) once enough of
  them reach the observed statistic that the full test could no longer reject: the verdict is
  the full test's, the p-value coarser (``h / L``), ``details["permutations_run"]`` the count.
  A null window breaches with probability at most ``alpha`` (the permutation test rejects only
  when the observed statistic beats every permutation at ``alpha = 0.001``), which keeps the
  subject ``__multivariate__`` one more cell in the alert engine's persistence arithmetic
  (docs/alert-fatigue.md).

One finding per view: kind ``drift``, subject ``__multivariate__``, method ``mmd``; ``breach``
when the test rejects, ``ok`` otherwise, ``warning`` when the window has too few sampled rows
(or a column cannot be left out), ``ok`` with the reason when the reference has no
multivariate sample (e.g. a past-window reference, profiled from sketches). The cause of a
breach follows what the per-feature verdicts of the same window say about the columns tested:
``missing_rate_jump`` when one's missing rate jumped (the NaNs stand at the mean: a pipeline
problem), ``distribution_shift`` when one drifted on its own, and ``joint_shift`` when none did
(only their joint distribution moved).

Example:
    >>> MultivariateEvaluator.name, SUBJECT
    ('multivariate', '__multivariate__')
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from infersight.processor.evaluate.drift import reference_of, views, window_of
from infersight.processor.evaluate.findings import EvaluationContext, Finding
from infersight.processor.evaluate.references import Env
from infersight.processor.evaluate.window import jsonable
from infersight.stats.columns import clean_column, to_columns
from infersight.stats.multivariate import MMD, SAMPLE_ROWS
from infersight.stats.windows import FeatureWindow

__all__ = ["MultivariateEvaluator", "SUBJECT", "permutations_for", "payload_rows", "complete_rows", "restrict"]

SUBJECT = "__multivariate__"
# Payload logs read per window (at most), spread over SLICES equal parts of the window.
ROWS_READ = 4000
SLICES = 8
# The most permutations a test runs (a policy alpha below 2 / (MAX_PERMUTATIONS + 1) is
# tested at that level instead: the permutation p-value cannot go lower).
MAX_PERMUTATIONS = 9999
# Besag-Clifford stopping (MMD's ``stop_after``): the permutations stop once this many (or the
# most the test's rejection allows, plus one) reach the observed statistic. The verdict is the
# full test's; a window that did not drift costs tens of permutations, not thousands.
STOP_AFTER = 10


def permutations_for(alpha: float) -> int:
    """Permutations that let a p-value fall below ``alpha`` with room: ``2 / alpha - 1``, at
    least 299, at most :data:`MAX_PERMUTATIONS`.

    >>> permutations_for(0.001), permutations_for(0.05), permutations_for(1e-6)
    (1999, 299, 9999)
    """
    return int(min(MAX_PERMUTATIONS, max(299, math.ceil(2.0 / alpha) - 1)))


def payload_rows(
    storage: Any, model: str, start: int, end: int, *, read: int = ROWS_READ, slices: int = SLICES
) -> list[tuple[str, Mapping[str, Any]]]:
    """``(version, input row)`` of the payload logs stored in ``[start, end)`` (seconds):
    a call's batch gives one entry per logged row. At most ``read`` logs, ``read / slices``
    from each of ``slices`` equal parts of the range, so a busy start does not crowd out the
    rest of the window."""
    per = max(1, read // slices)
    lo, hi = start * 10**9, end * 10**9
    step = max(1, (hi - lo) // slices)
    out: list[tuple[str, Mapping[str, Any]]] = []
    a = lo
    while a < hi:
        b = min(hi, a + step)
        for r in storage.joined(model, a, b, limit=per):
            inputs = r.get("inputs")
            if isinstance(inputs, str):  # cut at the SDK's max_payload_bytes: keep the whole rows
                inputs = complete_rows(inputs)
            rows = [inputs] if isinstance(inputs, Mapping) else inputs if isinstance(inputs, list) else []
            out.extend((str(r.get("version") or ""), row) for row in rows if isinstance(row, Mapping))
        a = b
    return out


_DECODER = json.JSONDecoder()


def complete_rows(text: str) -> list[Any]:
    """The whole records at the start of a JSON array cut short (a payload log over the SDK's
    ``max_payload_bytes`` ends mid-record); ``[]`` when ``text`` is not such an array.

    >>> complete_rows('[{"a": 1}, {"a": 2}, {"a"')
    [{'a': 1}, {'a': 2}]
    """
    i, n = 0, len(text)
    while i < n and text[i].isspace():
        i += 1
    if i >= n or text[i] != "[":
        return []
    out: list[Any] = []
    i += 1
    while i < n:
        while i < n and (text[i].isspace() or text[i] == ","):
            i += 1
        if i >= n or text[i] == "]":
            break
        try:
            value, i = _DECODER.raw_decode(text, i)
        except ValueError:
            break
        out.append(value)
    return out


def _median_distance(x: npt.NDArray[np.float64]) -> float:
    sq = (x * x).sum(1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2 * x @ x.T, 0.0)
    iu = np.triu_indices(x.shape[0], 1)
    med = float(np.sqrt(np.median(d2[iu]))) if iu[0].size else 1.0
    return med if med > 0 else 1.0


def restrict(part: Mapping[str, Any], keep: Sequence[str]) -> dict[str, Any] | None:
    """The reference's multivariate part on the columns ``keep`` only, or ``None`` when the
    sample is a reduced projection (more columns than components): the rotation is undone on
    the full-rank sample, the other columns dropped and the bandwidth found again.

    >>> import numpy as np
    >>> from infersight.stats.multivariate import reference_sample
    >>> rng = np.random.default_rng(0)
    >>> part = reference_sample({k: rng.normal(size=300) for k in "abc"}, rows=50)
    >>> sorted(restrict(part, ["a", "c"])["columns"]), len(restrict(part, ["a", "c"])["sample"][0])
    (['a', 'c'], 2)
    """
    columns = list(part["columns"])
    comp = np.asarray(part["components"], np.float64)
    if comp.shape[0] < len(columns):
        return None
    idx = [columns.index(c) for c in keep]
    z = (np.asarray(part["sample"], np.float64) @ comp)[:, idx]  # standardised reference rows
    return {
        "columns": [columns[i] for i in idx],
        "mean": [float(part["mean"][i]) for i in idx],
        "scale": [float(part["scale"][i]) for i in idx],
        "components": np.eye(len(idx)).tolist(),
        "sample": z.tolist(),
        "bandwidth": _median_distance(z),
    }


class MultivariateEvaluator:
    """Kind ``"drift"``, subject ``"__multivariate__"``: see the module docstring."""

    name = "multivariate"

    def __init__(self, env: Env) -> None:
        self.env = env
        self._parts: dict[tuple[str, tuple[str, ...]], dict[str, Any] | None] = {}

    def evaluate(self, ctx: EvaluationContext) -> list[Finding]:
        ev = self.env.evaluation
        if not ev.multivariate:
            return []
        window = window_of(ctx, self.env)
        resolved = reference_of(ctx, self.env)
        ref = resolved.reference
        if ref is None or window.empty:
            return []
        ms = ctx.settings or self.env.settings(ctx.model)
        common: dict[str, Any] = {
            "reference": resolved.source,
            "mode": ms.mode_for(ctx.size),
            "min_rows": ev.multivariate_min_rows,
            **({"runbook": ms.runbook} if ms.runbook else {}),
        }
        vs = views(window)
        part = ref.multivariate
        if not part:
            reason = (
                "the reference has no multivariate sample (it is profiled from stored sketches, or has fewer "
                "than two numeric features); push a profile made by `infersight profile` from a table to test "
                "the features jointly"
            )
            return [self._note(ctx, v, "ok", reason, common) for v in vs]
        lo = ctx.cache.get("data_start")
        rows = payload_rows(self.env.storage, ctx.model, ctx.start if lo is None else int(lo), ctx.start + ctx.size)
        scorer = self.env.scorer(ctx.model, ms)
        source = resolved.source if resolved.cacheable else None
        out: list[Finding] = []
        for version in vs:
            mine = [r for v, r in rows if not version or v == version]
            detail = dict(common, **({"versions": list(window.versions)} if not version else {}))
            out.append(
                self._view(ctx, version, mine, part, resolved.source, resolved.cacheable, detail, scorer, source)
            )
        return out

    def _view(
        self,
        ctx: EvaluationContext,
        version: str,
        rows: list[Mapping[str, Any]],
        part: Mapping[str, Any],
        ref_source: str,
        cacheable: bool,
        common: dict[str, Any],
        scorer: Any,
        source: str | None,
    ) -> Finding:
        ev = self.env.evaluation
        ms = ctx.settings or self.env.settings(ctx.model)
        names = list(part["columns"])
        n = len(rows)
        if n < ev.multivariate_min_rows:
            reason = (
                f"too few sampled rows: {n} payload row(s) in this window, the test needs "
                f"evaluation.multivariate_min_rows = {ev.multivariate_min_rows}; raise the SDK's "
                "payload_sample_rate or use a longer window"
            )
            return self._note(ctx, version, "warning", reason, common | {"rows": n}, n_current=n)
        table, _ = to_columns(rows)
        columns: dict[str, npt.NDArray[np.float64]] = {}
        absent: list[str] = []
        for name in names:
            col = clean_column(table[name], "numeric") if name in table else None
            if col is None or not np.isfinite(col).any():
                absent.append(name)
            else:
                columns[name] = col
        ignored = [c for c in names if ms.feature(c).ignore]
        keep = [c for c in names if c in columns and c not in ignored]
        dropped = {**{c: "absent" for c in absent}, **{c: "ignored" for c in ignored}}
        if len(keep) < 2:
            reason = (
                f"fewer than two of the reference's numeric features are usable in the payload logs "
                f"(absent: {absent}, ignored: {ignored}); the joint test needs two"
            )
            return self._note(
                ctx, version, "warning" if absent else "ok", reason, common | {"rows": n, "dropped": dropped}
            )
        if len(keep) < len(names):
            key = (ref_source, tuple(keep))
            sub = self._parts.get(key) if cacheable and key in self._parts else restrict(part, keep)
            if cacheable:
                if len(self._parts) > 64:
                    self._parts.clear()
                self._parts[key] = sub
            if sub is None:
                reason = (
                    f"the payload logs do not carry {absent or ignored} and the reference keeps a reduced sample "
                    f"({len(part['components'])} components of {len(names)} features) that cannot leave them out; "
                    "log them in payloads (check the SDK's redact list) or profile the reference without them"
                )
                return self._note(ctx, version, "warning", reason, common | {"rows": n, "dropped": dropped})
            part = sub
        alpha = max(ev.alpha, 2.0 / (MAX_PERMUTATIONS + 1))
        perms = permutations_for(alpha)
        mmd = MMD(alpha=alpha, permutations=perms, rows=SAMPLE_ROWS, stop_after=STOP_AFTER)
        res = mmd.fit(part).score({c: columns[c] for c in keep})
        run = int(res.details.get("permutations_run", perms))
        if not math.isfinite(res.statistic):
            return self._note(ctx, version, "warning", f"the test did not run ({res.cause})", common | {"rows": n})
        # the per-feature verdicts of this window on the columns tested, from the stored sketches
        feats = window_of(ctx, self.env).features(version)
        ref = reference_of(ctx, self.env).reference
        drifted, jumped = [], []
        for c in keep:
            prof = ref.features.get(c) if ref is not None else None
            if prof is None or c not in feats:
                continue
            r, jump, _ = scorer.score(prof, FeatureWindow.from_stats(feats[c], prof.kind), source)
            if r.drift:
                drifted.append(c)
            if jump:
                jumped.append(c)
        cause = None
        if res.drift:
            cause = "missing_rate_jump" if jumped else "distribution_shift" if drifted else "joint_shift"
        p = res.p_value
        verdict = "above" if res.drift else "within"
        reason = (
            f"MMD² {res.statistic:.4g} {verdict} the null (p={p:.3g}, alpha {alpha:g}, "
            f"{run if run == perms else f'{run} of {perms}'} permutations) "
            f"on {res.n_current} of {n} sampled rows x {len(keep)} features"
        )
        if cause == "joint_shift":
            reason += "; no feature drifted on its own: the features' joint distribution moved"
        details = common | {
            "reason": reason,
            "rows": n,
            "rows_tested": int(res.n_current),
            "features": keep,
            "dropped": dropped,
            "drifted_features": drifted,
            "missing_jump_features": jumped,
            "alpha": alpha,
            "permutations": perms,
            "permutations_run": run,
            "judged": True,
        }
        return ctx.finding(
            version,
            "drift",
            SUBJECT,
            status="breach" if res.drift else "ok",
            statistic=float(res.statistic),
            threshold=float(res.threshold),
            p_value=None if p is None or not math.isfinite(p) else float(p),
            cause=cause,
            method="mmd",
            n_reference=int(res.n_reference),
            n_current=int(res.n_current),
            details=jsonable(details),
        )

    @staticmethod
    def _note(
        ctx: EvaluationContext, version: str, status: str, reason: str, common: Mapping[str, Any], n_current: int = 0
    ) -> Finding:
        """A finding that says why the test did not run."""
        return ctx.finding(
            version,
            "drift",
            SUBJECT,
            status=status,
            method="mmd",
            n_current=n_current,
            details=jsonable({**common, "reason": reason, "judged": False}),
        )
