"""What the methods compare: a numeric reference or window in the forms it can come in (a raw
sample, a profile, an OTel sketch), reduced to one shape; categories reduced to counts.

A raw sample keeps its sorted values (so tests equal scipy exactly); a profile or a sketch
keeps the CDF knots it proves (:mod:`infersight.stats.cdf`).

Example:
    >>> num_ref([3.0, 1.0, 2.0]).n, counts(["a", "b", "a", None])
    (3, {'a': 2, 'b': 1})
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from infersight.stats.cdf import Knots, bin_probs
from infersight.stats.reference import (
    N_BINS,
    PSI_LEVELS,
    FeatureProfile,
    NumericSummary,
    category_counts,
    sorted_quantile,
)
from infersight.stats.sketch import ExpHistogram

__all__ = ["NumRef", "NumCur", "num_ref", "num_cur", "counts", "probs_in_bins", "HINT_Q"]

HINT_Q = np.array([0.05, 0.25, 0.5, 0.75, 0.95])


@dataclass
class NumRef:
    sorted: npt.NDArray[np.float64] | None  # raw path
    knots: Knots
    psi_edges: npt.NDArray[np.float64]
    std: float
    n: int
    quantiles: npt.NDArray[np.float64]  # p05, p25, p50, p75, p95


def num_ref(reference: Any) -> NumRef:
    """A numeric reference from a 1-D sample, a ``FeatureProfile``/``NumericSummary`` or a sketch."""
    if isinstance(reference, FeatureProfile):
        if reference.numeric is None:
            raise ValueError(f"feature {reference.name!r} is {reference.kind}, not numeric; use a categorical method")
        reference = reference.numeric
    if isinstance(reference, ExpHistogram):
        reference = NumericSummary.from_sketch(reference)
    if isinstance(reference, NumericSummary):
        q = reference.quantiles
        qs = np.array(
            [
                q.get("p05", np.nan),
                q.get("p25", np.nan),
                q.get("p50", np.nan),
                q.get("p75", np.nan),
                q.get("p95", np.nan),
            ]
        )
        return NumRef(None, reference.knots(), reference.psi_edges, reference.std, reference.count, qs)
    x = np.asarray(reference, dtype=np.float64).ravel()
    xs = np.sort(x[np.isfinite(x)])
    if xs.size == 0:
        raise ValueError("the reference sample has no finite values; profile data with at least one number")
    edges = np.union1d(
        np.unique(sorted_quantile(xs, np.linspace(0, 1, N_BINS + 1))), np.unique(sorted_quantile(xs, PSI_LEVELS))
    )
    return NumRef(
        xs,
        Knots.from_sorted(xs, edges),
        np.unique(sorted_quantile(xs, PSI_LEVELS)),
        float(xs.std(ddof=1)) if xs.size > 1 else 0.0,
        int(xs.size),
        sorted_quantile(xs, HINT_Q),
    )


@dataclass
class NumCur:
    sorted: npt.NDArray[np.float64] | None
    sketch: ExpHistogram | None
    n: int
    _knots: tuple[int, Knots] | None = None

    def knots(self, ref: NumRef) -> Knots:
        """Exact knots: the sketch's bucket boundaries, or (raw) the ECDF at the reference's
        knots and the sample's own quantiles (and just below each, so jumps are seen)."""
        if self._knots is not None and self._knots[0] == id(ref):
            return self._knots[1]
        if self.sketch is not None:
            k = Knots.from_sketch(self.sketch)
        else:
            assert self.sorted is not None
            own = np.unique(sorted_quantile(self.sorted, np.linspace(0, 1, N_BINS + 1)))
            k = Knots.from_sorted(self.sorted, np.union1d(ref.knots.x, own))
        self._knots = (id(ref), k)
        return k

    def quantiles(self) -> npt.NDArray[np.float64]:
        if self.sketch is not None:
            return np.asarray(self.sketch.quantile(HINT_Q))
        assert self.sorted is not None
        return sorted_quantile(self.sorted, HINT_Q)


def num_cur(current: Any) -> NumCur:
    """A numeric window from a raw sample (NaN/Inf dropped) or an ``ExpHistogram``."""
    if isinstance(current, ExpHistogram):
        return NumCur(None, current, current.count)
    x = np.asarray(current, dtype=np.float64).ravel()
    xs = np.sort(x[np.isfinite(x)])
    return NumCur(xs, None, int(xs.size))


def probs_in_bins(ref: NumRef, cur: NumCur) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Reference and window shares in the reference's decile bins (PSI, Jensen–Shannon)."""
    edges = ref.psi_edges
    p = bin_probs(ref.knots, edges)
    if cur.sorted is not None:
        c = np.diff(np.concatenate([[0], np.searchsorted(cur.sorted, edges, "right"), [cur.n]])) / max(cur.n, 1)
    else:
        # A decile edge inside a sketch bucket (e.g. an integer atom): the smallest difference
        # the bucket allows, not a guess that spreads the atom over the bucket.
        c = bin_probs(cur.knots(ref), edges, toward=ref.knots.at(edges))
    return p, c


def counts(obj: Any) -> dict[str, int]:
    """Counts by category from counts, a categorical ``FeatureProfile`` or raw values (``None``
    and NaN are missing, not a category)."""
    if isinstance(obj, FeatureProfile):
        if obj.categories is None:
            raise ValueError(f"feature {obj.name!r} is {obj.kind}, not categorical; use a numeric method")
        return dict(obj.categories)
    if isinstance(obj, Mapping):
        return {str(k): int(v) for k, v in obj.items()}
    arr = np.asarray(obj)
    if arr.dtype.kind == "b":
        return category_counts(arr, "boolean")
    arr = np.asarray(obj, dtype=object).ravel()
    present = (
        arr[np.array([v is not None and not (isinstance(v, float) and math.isnan(v)) for v in arr], bool)]
        if arr.size
        else arr
    )
    return category_counts(present)
