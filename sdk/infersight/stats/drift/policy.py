"""The drift policy: which registered method judges each feature, with what settings, and
what else is drift on its own (a missing-rate jump); plus :func:`explain` and :func:`rank`.

Methods are chosen by name from :mod:`.registry`: by feature kind (``methods``, defaults
``ks+wasserstein`` for numbers, ``chi2+cohen_w`` for categories) and per feature
(``overrides={"price": {"method": "psi", "threshold": 0.25}}``). The same policy object is
what ``infersight drift`` and the processor evaluate windows with.

Example:
    >>> import numpy as np
    >>> from infersight.stats.reference import Reference
    >>> rng = np.random.default_rng(0)
    >>> ref = Reference.from_data({"x": rng.normal(size=5000)}, model="m")
    >>> DriftPolicy().evaluate(ref, {"x": rng.normal(size=5000) * 1000})["x"].cause
    'unit_change:x1000'
    >>> DriftPolicy(overrides={"x": {"method": "psi"}}).evaluate(ref, {"x": rng.normal(size=5000)})["x"].method
    'psi'
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from infersight.stats.drift import registry
from infersight.stats.drift._dist import binom_sf
from infersight.stats.drift.base import MethodSettings
from infersight.stats.drift.fatigue import DEFAULT_PERSISTENCE
from infersight.stats.reference import FeatureProfile, Reference
from infersight.stats.result import DriftResult

__all__ = ["DriftPolicy", "DEFAULT_METHODS", "DEFAULT_PERSISTENCE", "explain", "rank"]

# The method each feature kind gets unless the policy says otherwise.
DEFAULT_METHODS = {
    **dict.fromkeys(registry.NUMERIC_KINDS, "ks+wasserstein"),
    **dict.fromkeys(registry.CATEGORICAL_KINDS, "chi2+cohen_w"),
}
# Per-feature override keys the policy reads itself; any other key reaches the method as
# MethodSettings.extra.
_SETTINGS = ("method", "alpha", "threshold", "min_effect", "min_rows", "max_unseen", "min_missing_jump")


def _missing_jump(
    ref_missing: int, ref_rows: int, cur_missing: int, cur_rows: int, alpha: float, min_jump: float
) -> bool:
    """A significant rise of the missing rate by at least ``min_jump``.

    The test is the exact binomial tail of the window's missing count at the pooled rate (the
    conditional test given both totals is hypergeometric, whose tail this bounds from above):
    the normal approximation it replaces called a reference rate of 2% seen as 4% in a
    500-row window significant at 0.001 when it happens in 0.4% of such windows.
    """
    if cur_rows == 0 or ref_rows == 0:
        return False
    p0, p1 = ref_missing / ref_rows, cur_missing / cur_rows
    if p1 - p0 < min_jump:
        return False
    pooled = (ref_missing + cur_missing) / (ref_rows + cur_rows)
    return bool(binom_sf(cur_missing - 1, int(cur_rows), pooled) < alpha)


@dataclass
class DriftPolicy:
    """Which method per column and when to call it drift; overrides per feature.

    ``methods`` maps a feature kind to a registered method name (over :data:`DEFAULT_METHODS`);
    ``overrides`` maps a feature name to settings: ``method``, ``alpha``, ``threshold``,
    ``min_effect``, ``min_rows``, ``max_unseen``, ``min_missing_jump`` (others reach the method
    as ``MethodSettings.extra``).

    >>> policy = DriftPolicy(alpha=0.001, overrides={"price": {"min_effect": 0.3}})
    >>> policy.method_for(FeatureProfile("price", "numeric", 10)).min_effect
    0.3
    >>> type(DriftPolicy(methods={"numeric": "psi"}).method_for(FeatureProfile("price", "numeric", 10))).__name__
    'PSI'
    """

    alpha: float = 0.001
    min_effect: float = 0.1
    min_effect_categorical: float = 0.05
    min_rows: int = 30
    min_missing_jump: float = 0.02
    max_unseen: float = 0.01
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    methods: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # A misspelt method name fails when the policy is made (config load), not at the
        # first window an hour later.
        for kind, name in self.methods.items():
            self._check(registry.get(name), kind, f"methods[{kind!r}]")
        for o in self.overrides.values():
            if "method" in o:
                registry.get(str(o["method"]))

    @staticmethod
    def _check(spec: registry.MethodSpec, kind: str, where: str) -> None:
        if not spec.applies_to(kind):
            raise ValueError(
                f"{where}: drift method {spec.name!r} applies to {', '.join(sorted(spec.kinds)) or 'no feature'} "
                f"features, not {kind}; for {kind} features choose one of {', '.join(registry.names(kind))}"
            )

    def method_name(self, profile: FeatureProfile) -> str:
        """The registered name of the method that judges ``profile``'s feature."""
        o = self.overrides.get(profile.name, {})
        if "method" in o:
            return str(o["method"])
        return self.methods.get(profile.kind) or DEFAULT_METHODS.get(profile.kind, "ks+wasserstein")

    def method_for(self, profile: FeatureProfile) -> Any:
        """The fitted-to-be method for a feature profile (numeric / text / array → numeric)."""
        o = self.overrides.get(profile.name, {})
        name = self.method_name(profile)
        spec = registry.get(name)
        if "method" in o or profile.kind in self.methods:
            self._check(spec, profile.kind, f"feature {profile.name!r}")
        categorical = profile.kind in registry.CATEGORICAL_KINDS
        settings = MethodSettings(
            alpha=o.get("alpha", self.alpha),
            threshold=o.get("threshold"),
            min_effect=o.get("min_effect", self.min_effect_categorical if categorical else self.min_effect),
            min_rows=int(o.get("min_rows", self.min_rows)),
            max_unseen=o.get("max_unseen", self.max_unseen),
            extra={k: v for k, v in o.items() if k not in _SETTINGS},
        )
        return spec.create(settings)

    def evaluate(
        self,
        reference: Reference,
        current: Any,
        *,
        columns: Sequence[str] | None = None,
        multivariate: bool = False,
    ) -> dict[str, DriftResult]:
        """Drift per feature of ``current`` (columns, a table, or a ``WindowSummary``).

        Columns in the reference but absent from ``current`` are skipped. With
        ``multivariate=True`` and raw columns, an ``"__multivariate__"`` MMD result is added.
        """
        from infersight.stats.windows import WindowSummary

        kinds = {k: f.kind for k, f in reference.features.items()}
        summary = (
            current
            if isinstance(current, WindowSummary)
            else WindowSummary.from_columns(current, kinds=kinds, keep_values=True)
        )
        names = [c for c in (columns or reference.features) if c in reference.features and c in summary.features]
        out: dict[str, DriftResult] = {}
        for name in names:
            prof = reference.features[name]
            if prof.kind == "timestamp":
                continue
            out[name] = self.score_feature(prof, summary.features[name])
        if multivariate and reference.multivariate and summary.values:
            from infersight.stats.multivariate import MMD

            out["__multivariate__"] = MMD(alpha=max(self.alpha, 0.01)).fit(reference).score(summary.values)
        return out

    def score_feature(self, profile: FeatureProfile, window: Any) -> DriftResult:
        """One feature: ``window`` is a ``windows.FeatureWindow`` (sketch or counts + missing).

        This is the processor's entry point: any registered method scores the window through
        its ``score_window``. Fitting on a profile costs ~3 µs once the profile has built its
        CDF knots (it keeps them; ~90 µs the first time), against ~60 µs (categories) to
        ~200 µs (a numeric sketch) for scoring, so fitted methods are not cached.

        A significant rise of the missing rate is drift on its own (``missing_rate_jump``, a
        pipeline problem), named before a shift of the values because it is what a reader
        must check first; ``details`` keep ``missing_rate``, ``reference_missing_rate`` and,
        when the values drifted too, ``value_cause`` (what the values alone were called).
        """
        method = self.method_for(profile).fit(profile)
        o = self.overrides.get(profile.name, {})
        res: DriftResult = method.score_window(window)
        ref_missing = sum(v for k, v in profile.missing.items() if k != "inf")
        cur_missing = sum(v for k, v in window.missing.items() if k != "inf")
        if res.cause not in ("constant_column", "unseen_categories") and _missing_jump(
            ref_missing,
            profile.rows,
            cur_missing,
            window.rows,
            o.get("alpha", self.alpha),
            o.get("min_missing_jump", self.min_missing_jump),
        ):
            res = replace(
                res,
                drift=True,
                cause="missing_rate_jump",
                details={
                    **res.details,
                    "missing_rate": cur_missing / max(window.rows, 1),
                    "reference_missing_rate": ref_missing / max(profile.rows, 1),
                    "value_cause": res.cause if res.drift else None,
                },
            )
        return res


def _rule(method: str) -> str | None:
    """How a registered method decides (``None`` for results of no registered method)."""
    try:
        return registry.get(method).rule
    except KeyError:
        return None


def explain(result: DriftResult, alpha: float | None = None, min_rows: int | None = None) -> str:
    """Why ``result`` is drift or not, in the quantities that decided it.

    The policy calls drift only when the test is significant *and* the effect is big enough;
    a table showing ``statistic 0.07 > threshold 0.05 ... ok`` leaves the reader guessing that
    the p-value was the reason. For an ``ok`` this names the condition(s) that failed, for a
    drift the ones that held (or the finding that is drift on its own). ``alpha`` is the
    significance level the method used; ``min_rows`` the policy's floor for judging at all.

    >>> explain(DriftResult("ks+wasserstein", 0.03, 0.1, 1e-6, False), alpha=0.001)
    'effect 0.03 < min 0.1'
    >>> explain(DriftResult("chi2+cohen_w", 0.07, 0.05, 0.02, False), alpha=0.001)
    'p 0.02 >= alpha 0.001'
    """
    d, n = result.details, result.n_current
    if result.drift and result.cause == "missing_rate_jump":
        rate = d.get("missing_rate")
        return "missing rate rose significantly" + (f" to {rate:.1%}" if rate is not None else "")
    if result.drift and result.cause == "unseen_categories":
        share = d.get("unseen_share")
        return "values the reference never saw" + (f" in {share:.1%} of rows" if share is not None else "")
    if result.drift and result.cause == "constant_column":
        return "every row holds the same value, which the reference rarely has"
    if result.cause == "feature_missing":
        return "the column is not in the data"
    if not math.isfinite(result.statistic):
        if n == 0:
            return "not judged: no values"
        return f"not judged: {n} rows" + (f" < min {min_rows}" if min_rows and n < min_rows else ", too few")
    p, stat, thr = result.p_value, result.statistic, result.threshold
    checks: list[tuple[bool, str]] = []
    if p is not None and alpha is not None:
        sig = p < alpha
        checks.append((sig, f"p {p:.2g} {'<' if sig else '>='} alpha {alpha:g}"))
    if _rule(result.method) == "both":
        big = stat >= thr
        checks.append((big, f"effect {stat:.3g} {'>=' if big else '<'} min {thr:g}"))
    elif not checks:  # methods without a test decide on the statistic alone
        past = stat >= thr
        checks.append((past, f"statistic {stat:.3g} {'>=' if past else '<'} threshold {thr:.3g}"))
    shown = [text for held, text in checks if held == result.drift] or [text for _, text in checks]
    return ", ".join(shown)


def rank(results: Mapping[str, DriftResult], importance: Mapping[str, float] | None = None) -> list[tuple[str, float]]:
    """Features by drift severity (statistic / threshold, × importance), drifted ones first.

    >>> rank({"a": DriftResult("psi", 0.1, 0.2, None, False), "b": DriftResult("psi", 0.5, 0.2, None, True)})
    [('b', 2.5), ('a', 0.5)]
    """
    imp = importance or {}
    scored = [(k, r.severity * float(imp.get(k, 1.0)), r.drift) for k, r in results.items()]
    scored.sort(key=lambda t: (not t[2], -t[1], t[0]))
    return [(k, s) for k, s, _ in scored]
