"""Alert fatigue, counted: long null streams (every window drawn from the reference's own
distribution, numeric features scored from OTel sketches as the processor stores them,
categorical ones from counts) raise no more alarms than the arithmetic in
``stats.drift.fatigue`` allows, per cell and with persistence over consecutive windows."""

from __future__ import annotations

import numpy as np
import pytest

from infersight.stats.drift import DriftPolicy
from infersight.stats.drift._dist import binom_sf
from infersight.stats.drift.fatigue import (
    DEFAULT_PERSISTENCE,
    cell_rate,
    detection_probability,
    expected_false_alarms,
    persistence_for,
)
from infersight.stats.reference import Reference
from infersight.stats.sketch import ExpHistogram
from infersight.stats.windows import FeatureWindow, WindowStats

WINDOWS = 1500  # per feature: 5-minute windows for 5 days
ROWS = 500  # per window
REF_ROWS = 50_000
MISSING = 0.02  # reference missing rate of the features named *_gaps


def _numeric(name: str, size: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    base = name.split("_")[0]
    if base == "normal":
        return rng.normal(10.0, 2.0, size)
    if base == "lognormal":
        return rng.lognormal(1.0, 0.8, size)
    if base == "poisson":
        return rng.poisson(1.5, size).astype(float)
    if base == "price":
        return np.round(rng.lognormal(2.5, 0.6, size), 2)
    if base == "uniform":
        return rng.uniform(-1.0, 1.0, size)
    if base == "ints":
        return rng.integers(0, 6, size).astype(float)
    raise AssertionError(name)


NUMERIC = ["normal", "lognormal", "poisson", "price", "uniform", "ints", "normal_gaps", "poisson_gaps"]
LEVELS = {2: 10, 5: 3, 20: 2, 50: 1}  # categories -> how many such features
CATEGORICAL = [f"cat{k}_{i}" for k, many in LEVELS.items() for i in range(many)] + ["cat5_gaps", "cat20_gaps"]


def _levels(name: str) -> tuple[np.ndarray, np.ndarray]:
    k = int(name[3:].split("_")[0])
    p = 1.0 / np.arange(1, k + 1)
    return np.array([f"v{i}" for i in range(k)], dtype=object), p / p.sum()


def _reference(rng: np.random.Generator) -> Reference:
    data: dict[str, np.ndarray] = {}
    for name in NUMERIC:
        x = _numeric(name, (REF_ROWS,), rng)
        if name.endswith("_gaps"):
            x[rng.random(REF_ROWS) < MISSING] = np.nan
        data[name] = x
    for name in CATEGORICAL:
        levels, p = _levels(name)
        c = rng.choice(levels, REF_ROWS, p=p)
        if name.endswith("_gaps"):
            c[rng.random(REF_ROWS) < MISSING] = None
        data[name] = c
    return Reference.from_data(data, model="null", multivariate=False)


def _stream(name: str, rng: np.random.Generator) -> list[FeatureWindow]:
    """``WINDOWS`` stored windows of one feature, read back as the processor reads them."""
    gaps = rng.binomial(ROWS, MISSING, WINDOWS) if name.endswith("_gaps") else np.zeros(WINDOWS, int)
    out = []
    if name in NUMERIC:
        values = _numeric(name, (WINDOWS, ROWS), rng)
        for i in range(WINDOWS):
            stored = WindowStats(sketches={"value": ExpHistogram.from_values(values[i, gaps[i] :])})
            if gaps[i]:
                stored.counters["missing"] = {"nan": float(gaps[i])}
            out.append(FeatureWindow.from_stats(stored, "numeric"))
        return out
    levels, p = _levels(name)
    for i, counts in enumerate(rng.multinomial(ROWS - gaps, p)):
        stored = WindowStats(counters={"category": {str(levels[j]): float(c) for j, c in enumerate(counts) if c}})
        if gaps[i]:
            stored.counters["missing"] = {"null": float(gaps[i])}
        out.append(FeatureWindow.from_stats(stored, "categorical"))
    return out


def _runs(flags: np.ndarray, n: int) -> int:
    """Alarms of an alert that needs ``n`` consecutive flagged windows (one per run)."""
    padded = np.concatenate([[0], flags.astype(np.int8), [0]])
    edges = np.flatnonzero(np.diff(padded))
    lengths = edges[1::2] - edges[::2]
    return int(np.count_nonzero(lengths >= n))


def _bound(trials: int, rate: float, tail: float = 1e-6) -> int:
    """The count a Binomial(trials, rate) exceeds with probability below ``tail``."""
    k = 0
    while binom_sf(k, trials, rate) >= tail:
        k += 1
    return k


@pytest.fixture(scope="module")
def null_results() -> dict[str, list]:
    rng = np.random.default_rng(20261204)
    ref = _reference(rng)
    policy = DriftPolicy()
    out = {}
    for name in NUMERIC + CATEGORICAL:
        results = [policy.score_feature(ref.features[name], w) for w in _stream(name, rng)]
        assert all(r.n_current > 0 for r in results)
        out[name] = results
    return out


@pytest.fixture(scope="module")
def null_flags(null_results) -> dict[str, np.ndarray]:
    return {k: np.array([r.drift for r in rs]) for k, rs in null_results.items()}


def test_null_streams_raise_no_more_alarms_than_the_bound_per_cell(null_flags):
    cells = WINDOWS * len(null_flags)
    alarms = sum(int(f.sum()) for f in null_flags.values())
    p = cell_rate(DriftPolicy().alpha)
    assert alarms <= _bound(cells, p), (alarms, cells)
    # Each family alone is held to the same rate (a leaky categorical test would hide behind
    # quiet numeric features otherwise).
    for family in (NUMERIC, CATEGORICAL):
        cells_f = WINDOWS * len(family)
        assert sum(int(null_flags[k].sum()) for k in family) <= _bound(cells_f, p), family


def test_each_way_to_a_false_alarm_stays_at_alpha(null_results):
    """The union bound adds two paths at alpha each; each path alone is held to alpha (the
    distribution test on every cell, the missing-rate test on the features with gaps)."""
    alpha = DriftPolicy().alpha
    everything = [r for rs in null_results.values() for r in rs]
    shifts = sum(r.drift and r.cause != "missing_rate_jump" for r in everything)
    assert shifts <= _bound(len(everything), alpha), shifts
    gappy = [r for k, rs in null_results.items() if k.endswith("_gaps") for r in rs]
    jumps = sum(r.cause == "missing_rate_jump" for r in gappy)
    assert jumps <= _bound(len(gappy), alpha), jumps


@pytest.mark.parametrize("persistence", [2, DEFAULT_PERSISTENCE])
def test_persistence_cuts_null_alarms_as_the_arithmetic_says(null_flags, persistence):
    alarms = sum(_runs(f, persistence) for f in null_flags.values())
    cells = WINDOWS * len(null_flags)
    q = cell_rate(DriftPolicy().alpha) ** persistence  # per cell and window, (1 - p) p^N <= p^N
    assert alarms <= _bound(cells, q), (persistence, alarms)


def test_the_default_persistence_meets_the_budget_for_100_features_in_5_minute_windows():
    """The target of docs/alert-fatigue.md: < 1 false alarm per model per 30 days, at the
    bound 2 · alpha per cell, for F = 100 features and W = 288 windows a day; persistence 2
    does not reach it there, so the default is 3."""
    assert expected_false_alarms(100, 288) < 1
    assert expected_false_alarms(100, 288, persistence=2) > 1
    assert persistence_for(100, 288) == DEFAULT_PERSISTENCE
    assert persistence_for(100, 24) == 2 and persistence_for(100, 1) == 2
    # A shift flagged in every window is alerted at its third window; at 80% per window,
    # within an hour of 5-minute windows nearly always.
    assert detection_probability(1.0, windows=DEFAULT_PERSISTENCE) == 1.0
    assert detection_probability(0.8, windows=12) > 0.97


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="windows_per_day"):
        expected_false_alarms(10, 0)
    with pytest.raises(ValueError, match="persistence"):
        persistence_for(10, 24, longest=0)
    with pytest.raises(ValueError, match="alpha"):
        cell_rate(2.0)
    with pytest.raises(ValueError, match="power"):
        detection_probability(1.5)
