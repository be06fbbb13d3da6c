"""The cause follows what drives the statistic: each fault alone, and all of them at once in
one window, get their own cause per column, raw and from sketches (what the processor sees)."""

from __future__ import annotations

import numpy as np
import pytest

from infersight.stats.drift import CategoricalPolicy, DriftPolicy
from infersight.stats.reference import Reference
from infersight.stats.windows import WindowSummary

LEVELS = np.array([f"v{i}" for i in range(20)], dtype=object)
ZIPF = 1.0 / np.arange(1, 21)
ZIPF /= ZIPF.sum()
N = 5000


def _clean(name: str, n: int, rng: np.random.Generator) -> np.ndarray:
    if name.startswith("cat"):
        return rng.choice(LEVELS, n, p=ZIPF)
    return rng.normal(50.0, 5.0, n)


def _new_value(c, rng, share=0.01):
    return np.where(rng.random(c.size) < share, "brand_new", c).astype(object)


def _nan_jump(x, rng):
    return np.where(rng.random(x.size) < 0.1, np.nan, x)


def _none_jump(c, rng):
    return np.where(rng.random(c.size) < 0.1, None, c).astype(object)


def _mean_shift(x, rng):
    return x + 0.5 * 5.0


def _top_share_up(c, rng):
    """The top category's share +40% (relative), taken evenly from the others."""
    p = ZIPF.copy()
    p[0] *= 1.4
    p[1:] *= (1 - p[0]) / p[1:].sum()
    return rng.choice(LEVELS, c.size, p=p)


def _shift_and_a_typo(c, rng):
    out = _top_share_up(c, rng)
    out[:2] = "typo"
    return out


def _nan_and_shift(x, rng):
    return _nan_jump(_mean_shift(x, rng), rng)


# column -> (fault, expected cause, expected cause of the values alone when the missing rate
# jumped too). Every column in REF; every fault in one window in the mixture test.
FAULTS = {
    "cat_new": (_new_value, "unseen_categories", None),
    "cat_new_half": (lambda c, rng: _new_value(c, rng, 0.005), "unseen_categories", None),
    "cat_new_many": (lambda c, rng: _new_value(c, rng, 0.05), "unseen_categories", None),
    "cat_shift": (_top_share_up, "distribution_shift", None),
    "cat_shift_typo": (_shift_and_a_typo, "distribution_shift", None),
    # a real shift and 3% never-seen values in one column: the schema problem is named first
    "cat_shift_new": (lambda c, rng: _new_value(_top_share_up(c, rng), rng, 0.03), "unseen_categories", None),
    "cat_none": (_none_jump, "missing_rate_jump", None),
    "num_nan": (_nan_jump, "missing_rate_jump", None),
    "num_shift": (_mean_shift, "distribution_shift", None),
    "num_unit": (lambda x, rng: x * 1000, "unit_change:x1000", None),
    "num_nan_shift": (_nan_and_shift, "missing_rate_jump", "distribution_shift"),
    "num_ok": (None, None, None),
    "cat_ok": (None, None, None),
}


def _reference() -> Reference:
    rng = np.random.default_rng(0)
    return Reference.from_data({k: _clean(k, 50_000, rng) for k in FAULTS}, model="m", multivariate=False)


REF = _reference()
KINDS = {k: f.kind for k, f in REF.features.items()}


def _window(seed: int, faulty: tuple[str, ...]) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    cur = {k: _clean(k, N, rng) for k in FAULTS}
    for k in faulty:
        fault = FAULTS[k][0]
        assert fault is not None
        cur[k] = fault(cur[k], rng)
    return cur


def _judge(cur: dict[str, np.ndarray], sketched: bool):
    current = WindowSummary.from_columns(cur, kinds=KINDS) if sketched else cur
    return DriftPolicy().evaluate(REF, current)


FAULTY = [k for k, (f, _, _) in FAULTS.items() if f is not None]


@pytest.mark.parametrize("sketched", [False, True], ids=["raw", "sketch"])
@pytest.mark.parametrize("column", FAULTY)
def test_each_fault_alone_gets_its_cause_and_the_other_columns_stay_quiet(column, sketched):
    for seed in range(3):
        res = _judge(_window(seed, (column,)), sketched)
        assert res[column].drift and res[column].cause == FAULTS[column][1], (column, res[column])
        quiet = {k: r.cause for k, r in res.items() if k != column and r.drift}
        assert not quiet, quiet


@pytest.mark.parametrize("sketched", [False, True], ids=["raw", "sketch"])
def test_all_faults_in_one_window_each_column_its_own_cause(sketched):
    """A new category, a missing-value jump (numeric and categorical), a unit mistake and real
    shifts in other columns, all in one window: a table of column -> cause."""
    for seed in range(5):
        res = _judge(_window(100 + seed, tuple(FAULTY)), sketched)
        got = {k: (r.cause if r.drift else None) for k, r in res.items()}
        assert got == {k: cause for k, (_, cause, _) in FAULTS.items()}, seed
        for k, (_, _, value_cause) in FAULTS.items():
            if value_cause is not None:
                assert res[k].details["value_cause"] == value_cause
                assert res[k].details["missing_rate"] > 0.05 > res[k].details["reference_missing_rate"]


@pytest.mark.parametrize("share", [0.002, 0.005, 0.009, 0.011, 0.03, 0.2])
def test_a_never_seen_value_is_unseen_categories_whatever_its_share(share):
    """Seen on real data: a value never seen in training at ~1% of rows was
    ``distribution_shift`` under the ``max_unseen`` threshold (0.01) and ``unseen_categories``
    above it. Now the unseen column's share of the chi-square decides, on both sides."""
    rng = np.random.default_rng(int(share * 1e4))
    for _ in range(5):
        cur = _new_value(_clean("cat", N, rng), rng, share)
        r = CategoricalPolicy().fit(REF.features["cat_ok"]).score(cur)
        assert r.drift and r.cause == "unseen_categories", r
        assert r.details["unseen_contribution"] > 0.5 and r.details["unseen"] == ["brand_new"]
        assert r.details["top_categories"][0][0] == "__unseen__"


def test_known_categories_drive_a_shift_even_with_a_few_unseen_values():
    rng = np.random.default_rng(9)
    prof = REF.features["cat_ok"]
    for typos in (1, 3, 10):
        cur = _top_share_up(_clean("cat", N, rng), rng)
        cur[:typos] = "typo"
        r = CategoricalPolicy().fit(prof).score(cur)
        assert r.drift and r.cause == "distribution_shift", (typos, r.details)
        assert r.details["unseen_contribution"] < 0.5 and r.details["top_categories"][0][0] == "v0"


def test_unseen_values_too_few_to_matter_against_a_small_reference_are_not_drift():
    """The contribution of u unseen rows is u · m / n: against a 200-row reference one new
    value in 5000 rows is noise (the reference could not have seen it), not a schema change."""
    rng = np.random.default_rng(3)
    small = Reference.from_data({"c": rng.choice(LEVELS[:5], 200)}, model="m", multivariate=False)
    cur = rng.choice(LEVELS[:5], N).astype(object)
    cur[0] = "rare_one"
    r = CategoricalPolicy().fit(small.features["c"]).score(cur)
    assert not r.drift and r.details["unseen_contribution"] < 0.5
