"""Since when: the window where a sustained change began, located on a series of per-window values.

An alert that says "drifted now" leaves the reader to scroll back through charts; one that says
"since the 14:05 window" points at the deploy, the upstream job or the campaign that did it. The
series is whatever an evaluator computed per window, oldest first: a drift statistic, a missing
rate, a p-value on a log scale, an accuracy.

Method: a single change point, tested on ranks and placed on values.

- *Is there a change?* For each split ``t`` the Mann–Whitney statistic of the windows before
  against those after, ``U_t = 2 Σ_{i<=t} r_i - t (n + 1)`` (the scan of Pettitt 1979, "A
  non-parametric approach to the change-point problem"), divided by its standard deviation
  when nothing changes, ``sqrt(t (n - t) (n + 1) / 3)``. Its maximum is compared with its
  distribution under exchangeable ranks: 1,999 permutations with a fixed seed (reproducible)
  up to 1,000 judged windows, Pettitt's conservative closed form
  ``p ≈ 2 exp(-6 K² / (n³ + n²))`` (``K = max |U_t|``) beyond.
- *Where?* The split that minimises the absolute deviations of each side from its own median
  (least absolute deviations with one break). Ranks are blind to the size of a gap: a step
  whose last "before" windows are merely high-normal is placed two or three windows early by
  any rank scan, while the median fit sees that they sit with the old level; absolute (not
  squared) deviations keep one outlying window from moving the break.

Why ranks, and not a Gaussian
CUSUM or binary segmentation with a BIC penalty:

- per-window drift statistics are bounded below, skewed and heavy-tailed (an effect size is
  near zero until it is not; one noisy small window can be ten times its neighbours). A
  likelihood ratio that assumes normal noise calls such outliers change points; ranks do not
  care about the scale or the tails, so one rule holds for every statistic an evaluator hands
  in, with a false-change rate of ``alpha`` whatever the statistic's distribution;
- a single change point answers the alert's question (when did the current state begin), and
  needs no penalty to tune. Callers pass the series since the last resolved incident (or a
  bounded look-back), so an earlier, already-reported change does not compete with the
  current one.

Robustness: NaN (and ±Inf) windows are windows that were not judged (too few rows, no data);
they are skipped and the index returned is still the position in the series given. Fewer
than ``2 * min_size`` judged windows, or a constant series, give ``None``. Ties get mid-ranks.

Example:
    >>> locate([0.1, 0.12, 0.09, 0.11, 0.1, 0.13, 0.8, 0.9, 0.85, 0.82, 0.88, 0.9])
    6
    >>> locate([0.1, 0.12, 0.09, 0.11, 0.1, 0.1]) is None
    True
    >>> locate_windows([(300 * i, 0.1 + 0.6 * (i >= 6) + 0.01 * (i % 3)) for i in range(12)])
    1800
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Literal, TypeVar

import numpy as np
import numpy.typing as npt

__all__ = ["locate", "locate_windows", "change_point", "ChangePoint"]

T = TypeVar("T")

Direction = Literal["both", "up", "down"]


class ChangePoint:
    """What :func:`change_point` found: ``index`` (first window of the new regime, a position
    in the series given), ``p_value``, ``statistic`` (the standardised rank imbalance), ``before`` and
    ``after`` (medians of the judged windows on each side), ``judged`` (non-NaN windows)."""

    __slots__ = ("index", "p_value", "statistic", "before", "after", "judged")

    def __init__(self, index: int, p_value: float, statistic: float, before: float, after: float, judged: int) -> None:
        self.index = index
        self.p_value = p_value
        self.statistic = statistic
        self.before = before
        self.after = after
        self.judged = judged

    def __repr__(self) -> str:
        return (
            f"ChangePoint(index={self.index}, p_value={self.p_value:.3g}, statistic={self.statistic:g}, "
            f"before={self.before:g}, after={self.after:g}, judged={self.judged})"
        )


def _ranks(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Mid-ranks (1-based), ties averaged, as ``scipy.stats.rankdata``."""
    order = np.argsort(x, kind="stable")
    xs = x[order]
    # Boundaries of runs of equal values; each run gets the mean of the ranks it spans.
    new = np.concatenate(([True], xs[1:] != xs[:-1]))
    run_id = np.cumsum(new) - 1
    starts = np.flatnonzero(new)
    ends = np.append(starts[1:], xs.size)
    mid = (starts + ends + 1) / 2.0
    out = np.empty(x.size, np.float64)
    out[order] = mid[run_id]
    return out


_PERMUTE_UP_TO = 1000
_PERMUTATIONS = 1999


def _scan(r: npt.NDArray[np.float64], min_size: int, direction: Direction) -> npt.NDArray[np.float64]:
    """Standardised Mann–Whitney imbalance at each allowed split (last axis), signed so that
    larger means "the chosen direction of change"; ``r`` is one series of ranks or a stack."""
    n = r.shape[-1]
    t = np.arange(min_size, n - min_size + 1, dtype=np.float64)
    u = 2.0 * np.cumsum(r, axis=-1)[..., min_size - 1 : n - min_size] - t * (n + 1)
    z = u / np.sqrt(t * (n - t) * (n + 1) / 3.0)
    # U_t > 0 when the early windows rank high, i.e. the series fell.
    if direction == "up":
        return -z
    if direction == "down":
        return z
    return np.abs(z)


def _median_split(y: npt.NDArray[np.float64], min_size: int, direction: Direction) -> int | None:
    """The split with the least total absolute deviation from each side's median (``None``
    when no split moves the median the asked way)."""
    n = y.size
    best: tuple[float, int] | None = None
    for t in range(min_size, n - min_size + 1):
        a, b = y[:t], y[t:]
        ma, mb = float(np.median(a)), float(np.median(b))
        if (direction == "up" and mb <= ma) or (direction == "down" and mb >= ma) or mb == ma:
            continue
        cost = float(np.abs(a - ma).sum() + np.abs(b - mb).sum())
        if best is None or cost < best[0]:
            best = (cost, t)
    return None if best is None else best[1]


def change_point(
    series: Sequence[float] | npt.ArrayLike, *, min_size: int = 2, direction: Direction = "both"
) -> ChangePoint | None:
    """The most likely single change point of ``series`` (NaN/Inf skipped), significant or not.

    ``None`` when there is nothing to split: fewer than ``2 * min_size`` judged windows, or all
    equal. ``direction="up"`` looks only for a rise (what a drift statistic does when drift
    starts), ``"down"`` only for a fall, ``"both"`` for either.

    >>> cp = change_point([1.0, 1.1, 0.9, 1.0, 0.95, 1.05, 3.0, 3.2, 2.9, 3.1])
    >>> cp.index, cp.p_value < 0.05, cp.after > cp.before
    (6, True, True)
    """
    if min_size < 1:
        raise ValueError(f"min_size={min_size!r} must be at least 1 window on each side of the change, e.g. 2")
    if direction not in ("both", "up", "down"):
        raise ValueError(f"direction={direction!r} is not one of 'both', 'up', 'down'")
    x = np.asarray(series, dtype=np.float64).ravel()
    where = np.flatnonzero(np.isfinite(x))
    y = x[where]
    n = y.size
    if n < 2 * min_size or np.all(y == y[0]):
        return None
    r = _ranks(y)
    z = _scan(r, min_size, direction)
    stat = float(np.max(z))
    split = _median_split(y, min_size, direction)  # windows [0, split) before, [split, n) after
    if stat <= 0 or split is None:
        return None
    if n <= _PERMUTE_UP_TO:
        perms = np.random.default_rng(n).permuted(np.broadcast_to(r, (_PERMUTATIONS, n)), axis=1)
        reached = np.count_nonzero(_scan(perms, min_size, direction).max(axis=1) >= stat - 1e-9)
        p = float((1 + reached) / (_PERMUTATIONS + 1))
    else:
        t = np.arange(1, n)
        big_k = float(np.max(np.abs(2.0 * np.cumsum(r)[:-1] - t * (n + 1))))
        p = min(1.0, (1.0 if direction == "both" else 0.5) * 2.0 * math.exp(-6.0 * big_k**2 / (n**3 + n**2)))
    return ChangePoint(int(where[split]), p, stat, float(np.median(y[:split])), float(np.median(y[split:])), int(n))


def locate(
    series: Sequence[float] | npt.ArrayLike,
    *,
    min_size: int = 2,
    alpha: float = 0.01,
    direction: Direction = "both",
) -> int | None:
    """The index in ``series`` (per-window values, oldest first) where a sustained change began,
    or ``None`` when no change is significant at ``alpha``.

    ``min_size`` is the fewest judged windows on each side of the change (2: one odd window at
    either end is not a regime). NaN windows (not judged) are skipped; the index is a position
    in ``series`` as given. A gradual drift gives the window where the ramp crossed halfway
    between the two levels (the split that best separates low from high ranks), not its start.
    Significant at ``alpha`` means: on a series with no change, a change point is reported in
    at most a share ``alpha`` of calls.

    >>> locate([0.02, 0.03, 0.02, float("nan"), 0.03, 0.01, 0.02, 0.4, 0.5, 0.45, 0.6, 0.41])
    7
    >>> locate([0.3, 0.31, 0.29, 0.3, 0.32, 0.02, 0.01, 0.02, 0.03, 0.01], direction="up") is None
    True
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha={alpha!r} must be between 0 and 1, e.g. 0.01")
    cp = change_point(series, min_size=min_size, direction=direction)
    if cp is None or cp.p_value >= alpha:
        return None
    return cp.index


def locate_windows(
    points: Iterable[tuple[T, float]],
    *,
    min_size: int = 2,
    alpha: float = 0.01,
    direction: Direction = "both",
) -> T | None:
    """:func:`locate` on ``(window_start, value)`` pairs (sorted here by start); returns the
    start of the window where the change began, or ``None``.

    >>> locate_windows([(60, 0.0), (0, 0.0), (120, 0.0), (180, 1.0), (240, 1.0), (300, 1.0)], alpha=0.2)
    180
    """
    pairs = sorted(points, key=lambda p: p[0])  # type: ignore[arg-type,return-value]
    if not pairs:
        return None
    i = locate([float(v) for _, v in pairs], min_size=min_size, alpha=alpha, direction=direction)
    return None if i is None else pairs[i][0]
