"""The false-alarm budget of a drift policy over many features and windows, in numbers.

A model with ``F`` features judged every window, ``W`` windows a day, raises false alarms at
``F · W · days · q`` where ``q`` is the chance that one feature's stream *starts* an alarm at a
given window. Without persistence ``q`` is the per-cell false-alarm rate ``p``; an alert that
needs ``N`` consecutive drifting windows starts when a run of ``N`` begins, ``q = (1 - p) pᴺ``
(windows independent given the reference, which holds for data drawn from one distribution;
counted once per run, as the alert engine deduplicates an incident).

The default policy calls a cell drift only when a test is significant at ``alpha`` (and the
effect is large enough), or when the missing rate rose significantly at ``alpha``: two ways
to a false alarm, so ``p <= 2 · alpha`` (:func:`cell_rate`; measured on null streams it is
about ``alpha``: docs/alert-fatigue.md). At ``alpha = 0.001`` that bound is 1,725 false alarms
a month for 100 features in 5-minute windows without persistence (864 at the measured rate),
3.5 with ``N = 2`` and 0.007 with ``N = 3``: hence
:data:`DEFAULT_PERSISTENCE` = 3, the smallest ``N`` that keeps every model with up to 100
features and windows of 5 minutes or longer under one false alarm per 30 days at the bound.
:func:`persistence_for` gives the smallest ``N`` for a given model (2 for hourly or daily
windows), which shortens the detection delay where the budget allows it.

Example:
    >>> round(expected_false_alarms(100, 288, persistence=1), 1)
    1724.5
    >>> round(expected_false_alarms(100, 288), 4)
    0.0069
    >>> persistence_for(100, 288), persistence_for(100, 24), persistence_for(100, 1), persistence_for(10, 1)
    (3, 2, 2, 1)
    >>> round(detection_probability(0.8, persistence=3, windows=12), 3)
    0.979
"""

from __future__ import annotations

__all__ = [
    "DEFAULT_PERSISTENCE",
    "FALSE_ALARM_BUDGET",
    "BUDGET_DAYS",
    "NULL_PATHS",
    "cell_rate",
    "expected_false_alarms",
    "persistence_for",
    "detection_probability",
]

# Consecutive drifting windows an alert needs by default (see the module docstring).
DEFAULT_PERSISTENCE = 3
# The target: fewer than this many false alarms per model ...
FALSE_ALARM_BUDGET = 1.0
# ... over this many days.
BUDGET_DAYS = 30
# Independent ways a null cell can be called drift by the default policy, each at ``alpha``:
# the distribution test (KS or chi-square with its effect floor) and the missing-rate test.
NULL_PATHS = 2


def cell_rate(alpha: float = 0.001, paths: int = NULL_PATHS) -> float:
    """The bound on one cell's false-alarm probability: ``paths · alpha`` (a union bound).

    >>> cell_rate(0.001)
    0.002
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha={alpha!r} must be between 0 and 1, e.g. 0.001")
    return min(1.0, paths * alpha)


def _check(features: float, windows_per_day: float, persistence: int) -> None:
    if features <= 0 or windows_per_day <= 0:
        raise ValueError(
            f"features={features!r} and windows_per_day={windows_per_day!r} must be positive "
            "(windows_per_day = 86400 / window seconds, e.g. 288 for 5-minute windows)"
        )
    if persistence < 1:
        raise ValueError(f"persistence={persistence!r} must be at least 1 window")


def expected_false_alarms(
    features: float,
    windows_per_day: float,
    *,
    persistence: int = DEFAULT_PERSISTENCE,
    alpha: float = 0.001,
    days: float = BUDGET_DAYS,
    rate: float | None = None,
) -> float:
    """Expected false alarms of one model over ``days`` on data with no change.

    ``rate`` is the per-cell false-alarm probability (default: the bound :func:`cell_rate`
    of ``alpha``); an alarm needs ``persistence`` consecutive drifting windows of a feature.

    >>> round(expected_false_alarms(10, 24, persistence=2, rate=0.001), 4)
    0.0072
    """
    _check(features, windows_per_day, persistence)
    p = cell_rate(alpha) if rate is None else rate
    if not 0 <= p <= 1:
        raise ValueError(f"rate={rate!r} is a probability per cell, between 0 and 1")
    return float(features * windows_per_day * days * (1.0 - p) * p**persistence)


def persistence_for(
    features: float,
    windows_per_day: float,
    *,
    alpha: float = 0.001,
    budget: float = FALSE_ALARM_BUDGET,
    days: float = BUDGET_DAYS,
    rate: float | None = None,
    longest: int = 12,
) -> int:
    """The fewest consecutive windows an alert must need to stay under ``budget`` false
    alarms per ``days`` (``ValueError`` when even ``longest`` does not: raise ``alpha``'s
    strictness or the window size).

    >>> persistence_for(100, 1440)  # 1-minute windows
    3
    """
    for n in range(1, longest + 1):
        if expected_false_alarms(features, windows_per_day, persistence=n, alpha=alpha, days=days, rate=rate) < budget:
            return n
    raise ValueError(
        f"no persistence up to {longest} windows keeps {features} features × {windows_per_day} windows a day "
        f"under {budget} false alarms per {days} days at alpha={alpha}; use a smaller alpha or longer windows"
    )


def detection_probability(power: float, *, persistence: int = DEFAULT_PERSISTENCE, windows: int = 12) -> float:
    """The chance that a sustained shift, flagged in each window with probability ``power``
    (independently), raises an alert within its first ``windows`` windows (a run of
    ``persistence`` flagged windows).

    >>> detection_probability(1.0, persistence=3, windows=3), detection_probability(0.5, persistence=1, windows=2)
    (1.0, 0.75)
    """
    if not 0 <= power <= 1:
        raise ValueError(f"power={power!r} is a probability, between 0 and 1")
    if persistence < 1:
        raise ValueError(f"persistence={persistence!r} must be at least 1 window")
    # state[k]: probability that the current run is k windows long and no alert yet.
    state = [1.0] + [0.0] * (persistence - 1)
    fired = 0.0
    for _ in range(windows):
        nxt = [0.0] * persistence
        nxt[0] = sum(state) * (1.0 - power)
        for k in range(persistence - 1):
            nxt[k + 1] = state[k] * power
        fired += state[persistence - 1] * power
        state = nxt
    return fired
