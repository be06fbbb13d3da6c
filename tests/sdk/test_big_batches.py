"""A list of rows big enough to be sketched on the caller's thread (in parts converted by the C
extension into one reused work buffer) gives the statistics the same rows give one call at a
time: per-feature kinds, sketches, category counts and every kind of missing value. And the C
reader of one-element numpy columns gives what ``item()`` gives.

Each test runs through the C converters and through the Python code they follow, with the size
that makes a list "big" lowered so that small lists take the big path in several parts."""

from __future__ import annotations

import cmath
import math
import os
from typing import Any

import numpy as np
import pydantic
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from infersight import feature_stats, payload
from infersight.feature_stats import FeatureStats
from infersight.stats import sketch

REQUIRED = os.environ.get("INFERSIGHT_REQUIRE_SPEEDUPS", "").strip() == "1"
PURE = os.environ.get("INFERSIGHT_PURE_PYTHON", "").strip() == "1"
CONVERTERS = [
    (payload, "_row_dict"),
    (payload, "_row_of_items"),
    (payload, "_items_row"),
    (payload, "_columns_matrix"),
    (feature_stats, "_records_matrix"),
    (sketch, "_c_sketch_rows"),
]
MODEL = ("big", "1")


@pytest.fixture(params=["C", "Python"])
def path(request: Any, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "C":
        if any(getattr(mod, name) is None for mod, name in CONVERTERS):
            if REQUIRED and not PURE:
                pytest.fail("infersight._speedups is not built and INFERSIGHT_REQUIRE_SPEEDUPS=1")
            pytest.skip("the C converters are not in use")
    else:
        for mod, name in CONVERTERS:
            monkeypatch.setattr(mod, name, None)
    return str(request.param)


@pytest.fixture
def small_big(monkeypatch: pytest.MonkeyPatch) -> int:
    """A list of 40 values or more is "big" here (1,048,576 in use)."""
    monkeypatch.setattr(feature_stats, "_HARD_VALUES", 40)
    return 40


def _summary(acc: FeatureStats) -> dict[Any, Any]:
    """What a drain hands to the exporter, keyed by metric and attributes: each sketch in full
    (its sum apart, see :func:`_same`), each count."""
    out: dict[Any, Any] = {}
    for metric in acc.drain(0, 1):
        for p in metric.data.data_points:
            key = (metric.name, tuple(sorted((k, str(v)) for k, v in p.attributes.items())))
            assert key not in out
            if metric.name in ("ml.feature.value", "ml.prediction.value"):
                out[key] = (
                    p.count,
                    _Sum(p.sum),
                    p.scale,
                    p.zero_count,
                    p.min,
                    p.max,
                    p.positive.offset,
                    tuple(p.positive.bucket_counts),
                    p.negative.offset,
                    tuple(p.negative.bucket_counts),
                )
            elif hasattr(p, "value"):
                out[key] = p.value
    return out


class _Sum(float):
    """A sketch's sum: equal to another within 1e-12 (relative), as the same values may be
    added in another order when a list is sketched as a batch rather than as rows."""

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, float):
            return NotImplemented
        if math.isnan(self) or math.isnan(other):
            return math.isnan(self) and math.isnan(other)
        return math.isclose(self, other, rel_tol=1e-12, abs_tol=1e-9)

    def __hash__(self) -> int:
        return 0


def _one_by_one(rows: list[dict[str, Any]]) -> dict[Any, Any]:
    acc = FeatureStats()
    for r in rows:
        acc.record_row(MODEL, r)
    return _summary(acc)


def _as_list(rows: list[Any]) -> dict[Any, Any]:
    acc = FeatureStats()
    acc.record_columns(MODEL, payload.normalize_inputs(rows))
    return _summary(acc)


def _mixed_rows(n: int, seed: int) -> list[dict[str, Any]]:
    """Floats with NaN, ±Inf, zeros and None, ints (one past a float's exact range), bools,
    short and long strings, and a column mixing all of them."""
    rng = np.random.default_rng(seed)
    odd: list[Any] = [None, float("nan"), 3, 2.5, True, "a", "x" * 70, float("inf"), -0.0]
    rows = []
    for i in range(n):
        rows.append(
            {
                "income": float(rng.lognormal(3, 1)),
                "score": [float("nan"), float("inf"), float("-inf"), 0.0, None][i % 5]
                if i % 4 == 0
                else float(rng.normal()),
                "tenure": int(rng.integers(0, 40)) if i != 7 else 2**60 + 1,
                "vip": bool(i % 2),
                "plan": ["free", "pro", None][i % 3],
                "note": "y" * (50 + i),
                "mixed": odd[i % len(odd)],
            }
        )
    return rows


@pytest.mark.usefixtures("small_big")
@pytest.mark.parametrize("n", [7, 16, 33])
def test_a_big_list_of_mixed_dicts_gives_what_its_rows_give(path: str, n: int) -> None:
    rows = _mixed_rows(n, n)
    expected = _one_by_one(rows)
    got = _as_list([dict(r) for r in rows])
    assert any(k[0] == "ml.feature.missing" for k in expected)
    assert any(k[0] == "ml.feature.category" for k in expected)
    assert got == expected


@pytest.mark.usefixtures("small_big")
def test_a_big_list_of_numbers_only_gives_what_its_rows_give(path: str) -> None:
    rng = np.random.default_rng(5)
    X = rng.normal(size=(50, 6)) * 1000
    X[rng.random(X.shape) < 0.05] = np.nan
    rows = [{f"f{j}": v for j, v in enumerate(r)} for r in X.tolist()]
    rows[3]["f2"] = 12  # an int among the floats
    expected = _one_by_one(rows)
    parts: list[int] = []
    sketch_now = FeatureStats._sketch_block

    def counted(self: FeatureStats, model: Any, names: Any, data: Any, n: int) -> None:
        parts.append(n)
        sketch_now(self, model, names, data, n)

    with pytest.MonkeyPatch.context() as m:
        m.setattr(FeatureStats, "_sketch_block", counted)
        assert _as_list(rows) == expected
    if path == "C":  # 300 values sketched in equal parts of about 40, the last part too
        assert len(parts) >= 6 and max(parts) * 6 <= 40 + 6 and sum(parts) >= 44


@pytest.mark.usefixtures("small_big")
@pytest.mark.parametrize("n", [14, 20, 21, 50, 101])
def test_every_part_of_a_big_list_is_sketched_at_once(path: str, n: int) -> None:
    """A big list is cut in equal parts, each under the "big" size: its last part too is
    sketched at once, not buffered in small parts to be stacked again at compaction."""
    if path != "C":
        pytest.skip("the Python path buffers rows one by one")
    rows = [{"a": float(i), "b": -2.0 * i, "c": i % 3} for i in range(n)]
    expected = _one_by_one(rows)
    acc = FeatureStats()
    acc.record_columns(MODEL, payload.normalize_inputs([dict(r) for r in rows]))
    held = [(names, data, m) for names, data, m in acc._state.blocks.get(MODEL, [])]
    assert all(data is None for _, data, _ in held) and sum(m for _, _, m in held) == n
    assert _summary(acc) == expected


@pytest.mark.usefixtures("small_big")
def test_a_big_list_whose_rows_change_names_midway_gives_what_its_rows_give(path: str) -> None:
    rows = _mixed_rows(30, 3)
    del rows[20]["vip"]  # the converter stops there: the rest is buffered row by row
    rows[25] = dict(reversed(list(rows[25].items())))
    expected = _one_by_one(rows)
    assert (
        "ml.feature.missing",
        (
            ("ml.feature.name", "vip"),
            ("ml.missing.kind", "absent"),
            ("ml.model.name", "big"),
            ("ml.model.version", "1"),
        ),
    ) in expected
    assert _as_list(rows) == expected


class _Row(pydantic.BaseModel):
    income: float
    tenure: int
    score: float | None = None
    plan: str | None = None
    vip: bool = False


@pytest.mark.usefixtures("small_big")
def test_a_big_list_of_pydantic_models_gives_what_its_rows_give(path: str) -> None:
    rows = [
        {
            "income": 10.0 * i,
            "tenure": i,
            "score": None if i % 3 == 0 else i / 7,
            "plan": ["a", None][i % 2],
            "vip": i % 5 == 0,
        }
        for i in range(25)
    ]
    expected = _one_by_one(rows)
    assert _as_list([_Row(**r) for r in rows]) == expected


_VALUES = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.booleans(),
    st.none(),
    st.text(max_size=3),
    st.text(min_size=64, max_size=70),
    st.sampled_from([0.0, -0.0, 2.0**-1074, 2.0**1023, 1.0, 0.5, float("nan")]),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(
        st.fixed_dictionaries({"a": _VALUES, "b": _VALUES, "c": st.floats(allow_nan=True)}), min_size=2, max_size=40
    ),
    st.sets(st.integers(min_value=0, max_value=39), max_size=3),
)
def test_any_big_list_gives_what_its_rows_give(
    small_big: int, monkeypatch: pytest.MonkeyPatch, rows: list[dict[str, Any]], absent: set[int]
) -> None:
    rows = [dict(r) for r in rows]
    for i in absent:
        if i < len(rows):
            del rows[i]["b"]  # absent keys: the rows after it are buffered one by one
    expected = _one_by_one(rows)
    got = _as_list(rows)
    assert got == expected
    with monkeypatch.context() as m:  # the Python path gives the same
        for mod, name in CONVERTERS:
            m.setattr(mod, name, None)
        assert _as_list(rows) == expected


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    n=st.integers(min_value=2, max_value=40),
    where=st.integers(min_value=0, max_value=39),
    stays=st.booleans(),
    before=st.integers(min_value=0, max_value=3),
    pure=st.booleans(),
)
def test_a_name_first_seen_midway_is_absent_for_every_row_before_it(
    small_big: int, monkeypatch: pytest.MonkeyPatch, n: int, where: int, stays: bool, before: int, pure: bool
) -> None:
    """A big list is sketched in parts; a name that first appears in a later part (or in rows
    buffered one by one after the converter stopped) is still counted absent for the rows of
    the earlier parts and for rows buffered before the list, as when every row is sent alone
    (session 8 found 10 against 22: 23 rows, a fourth name at row 22)."""
    where = where % n
    rows = [{"a": float(i), "b": 2.0 * i - 7, "c": float(-i)} for i in range(n)]
    for i in range(where, n if stays else where + 1):
        rows[i]["late"] = 0.5 * i
    earlier = [{"a": 1.0, "b": 2.0, "c": 3.0} for _ in range(before)]
    with monkeypatch.context() as m:
        if pure:
            for mod, name in CONVERTERS:
                m.setattr(mod, name, None)
        expected = _one_by_one(earlier + rows)
        acc = FeatureStats()
        for r in earlier:
            acc.record_row(MODEL, r)
        acc.record_columns(MODEL, payload.normalize_inputs([dict(r) for r in rows]))
        got = _summary(acc)
    absent = [v for k, v in expected.items() if k[0] == "ml.feature.missing" and ("ml.feature.name", "late") in k[1]]
    assert absent == [before + n - (n - where if stays else 1)] or (absent == [] and where == 0 and stays)
    assert got == expected


@pytest.mark.usefixtures("small_big")
def test_a_big_batch_after_buffered_rows_counts_their_names_absent(path: str) -> None:
    """A 2-D array big enough to be sketched at once, after rows with a name it lacks: its rows
    count that name absent, as the same rows sent one by one do."""
    X = np.arange(60.0).reshape(20, 3) - 17.5
    earlier = [{"f0": 1.0, "f1": 2.0, "f2": 3.0, "extra": "x"} for _ in range(3)]
    expected = _one_by_one(earlier + [dict(zip(("f0", "f1", "f2"), r)) for r in X.tolist()])
    assert (
        expected[
            (
                "ml.feature.missing",
                (
                    ("ml.feature.name", "extra"),
                    ("ml.missing.kind", "absent"),
                    ("ml.model.name", "big"),
                    ("ml.model.version", "1"),
                ),
            )
        ]
        == 20
    )
    acc = FeatureStats()
    for r in earlier:
        acc.record_row(MODEL, r)
    acc.record_columns(MODEL, payload.normalize_inputs(X, features=["f0", "f1", "f2"]))
    assert _summary(acc) == expected


def _row_of_items_reference(columns: dict[str, np.ndarray]) -> dict[str, Any]:
    return {k: v.item() for k, v in columns.items()}


_DTYPES = ["<f8", ">f8", "<i8", ">i8", "bool", "<f4", "<i4", "<u8", "<f2", "<c16", "<M8[s]"]


@pytest.mark.skipif(payload._row_of_items is None, reason="the C reader of one-element columns is not in use")
@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(_DTYPES),
            st.one_of(st.floats(allow_nan=True), st.integers(min_value=-(2**63), max_value=2**63 - 1), st.booleans()),
            st.booleans(),
        ),
        min_size=1,
        max_size=8,
    )
)
def test_the_c_reader_of_one_element_columns_gives_what_item_gives(specs: list[tuple[str, Any, bool]]) -> None:
    columns: dict[str, np.ndarray] = {}
    for i, (dtype, value, strided) in enumerate(specs):
        try:
            with np.errstate(all="ignore"):
                one = np.array([value]).astype(dtype)
        except (OverflowError, ValueError, TypeError):
            continue
        if strided:  # a view into a bigger array, not its first element
            big = np.repeat(one, 3)
            one = big[1:2]
        columns[f"c{i}"] = one
    if not columns:
        return
    want = _row_of_items_reference(columns)
    got = payload._row_of_items(columns, np.ndarray)
    assert got is not None
    if payload._items_row is not None:  # the same values as (names, values) tuples
        items = payload._items_row(columns, np.ndarray)
        assert items is not None and items[0] == tuple(got)
        assert [type(v) for v in items[1]] == [type(v) for v in got.values()]
        assert all(a is b or a == b or (a != a and b != b) for a, b in zip(items[1], got.values()))
    assert list(got) == list(want)
    for k, v in want.items():
        assert type(got[k]) is type(v), (k, columns[k].dtype)
        # NaN equals nothing: a NaN (a complex one too, as hypothesis found) must read as NaN
        nan = isinstance(v, (float, complex)) and cmath.isnan(v) and cmath.isnan(got[k])
        assert got[k] == v or nan, (k, columns[k].dtype)
        if isinstance(v, float):
            assert math.copysign(1.0, got[k]) == math.copysign(1.0, v)


def test_the_c_reader_is_turned_off_when_it_reads_something_else() -> None:
    def wrong(columns: Any, array_type: type) -> dict[str, Any]:
        return {k: 0.0 for k in columns}

    assert payload._checked_row_of_items(wrong) is None
    assert payload._checked_row_of_items(None) is None

    def wrong_items(columns: Any, array_type: type) -> tuple[tuple[str, ...], tuple[Any, ...]]:
        return tuple(columns), tuple(0.0 for _ in columns)

    assert payload._checked_items_row(wrong_items) is None
    assert payload._checked_items_row(lambda c, t: None) is None
    if payload._items_row is not None:
        assert payload._checked_items_row(payload._items_row) is payload._items_row
    if payload._row_of_items is not None:
        assert payload._checked_row_of_items(payload._row_of_items) is payload._row_of_items
