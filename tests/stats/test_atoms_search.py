"""The atoms of a sorted column, found by binary search, are the ones a full pass over the
values finds (the pass is kept here as the reference)."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from infersight.stats.reference import ATOM_MIN_SHARE, MAX_ATOMS, _sorted_atoms


def _atoms_by_pass(xs: np.ndarray) -> tuple[np.ndarray, bool]:
    if xs.size == 0:
        return xs, True
    change = xs[1:] != xs[:-1]
    starts = np.concatenate([[0], np.flatnonzero(change) + 1])
    if starts.size <= MAX_ATOMS:
        return xs[starts], True
    need = max(2, math.ceil(ATOM_MIN_SHARE * xs.size))
    counts = np.diff(np.append(starts, xs.size))
    heavy = np.flatnonzero(counts >= need)
    if heavy.size > MAX_ATOMS:
        heavy = heavy[np.argsort(-counts[heavy], kind="stable")[:MAX_ATOMS]]
    return np.sort(xs[starts[heavy]]), False


def _check(xs: np.ndarray) -> None:
    xs = np.sort(xs)
    got, every = _sorted_atoms(xs)
    want, want_every = _atoms_by_pass(xs)
    assert every == want_every
    assert got.tolist() == want.tolist()


@settings(max_examples=150, deadline=None)
@given(
    st.integers(min_value=0, max_value=5000),
    st.integers(min_value=1, max_value=2000),
    st.floats(min_value=0.0, max_value=1.0),
    st.integers(min_value=0, max_value=2**32 - 1),
)
def test_atoms_by_search_equal_atoms_by_pass(n: int, levels: int, heavy_share: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    xs = rng.integers(0, levels, n).astype(np.float64)  # ties: 1 to 2,000 levels
    k = int(heavy_share * n)
    xs[:k] = rng.choice([0.5, -3.0, 7.25], size=k)  # a few heavy values
    _check(xs)
    _check(rng.normal(size=n))  # continuous: no atoms past MAX_ATOMS values


def test_edges_of_the_rules() -> None:
    for distinct in (MAX_ATOMS - 1, MAX_ATOMS, MAX_ATOMS + 1):
        _check(np.repeat(np.arange(float(distinct)), 3))
    n = 100_000
    need = math.ceil(ATOM_MIN_SHARE * n)
    for run in (need - 1, need, need + 1):  # a value held just under, at and over the share
        xs = np.arange(float(n))
        xs[500 : 500 + run] = 42.5
        _check(xs)
    many = np.repeat(np.arange(400.0), 2_000)  # 400 heavy values: the heaviest 256, ties by value
    many[:7_000] = 1.0
    _check(many)
    _check(np.zeros(0))
    _check(np.ones(1))
