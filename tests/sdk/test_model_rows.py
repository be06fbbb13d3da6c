"""A list of pydantic models is read by the C extension through each model's own ``__dict__``
(``records_matrix(models, start, out, cls)``, :class:`infersight.payload.ModelRows`), without
a list of the dicts made first: it reads what the same rows as dicts give, and a list it cannot
read that way (a model of another class, extra fields, a class with computed fields) takes the
per-model path and still gives what its rows give."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pydantic
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from infersight import feature_stats, payload
from infersight.feature_stats import FeatureStats

from .test_big_batches import MODEL, _summary

REQUIRED = os.environ.get("INFERSIGHT_REQUIRE_SPEEDUPS", "").strip() == "1"
PURE = os.environ.get("INFERSIGHT_PURE_PYTHON", "").strip() == "1"


def _reader() -> Any:
    fn = feature_stats._records_matrix
    if fn is None or not payload._reads_models:
        if REQUIRED and not PURE:
            pytest.fail("infersight._speedups is not built and INFERSIGHT_REQUIRE_SPEEDUPS=1")
        pytest.skip("the C reader is not in use")
    return fn


class Row(pydantic.BaseModel):
    income: float
    tenure: int
    score: float | None = None
    plan: str | None = None
    vip: bool = False


class Other(pydantic.BaseModel):
    income: float
    tenure: int
    score: float | None = None
    plan: str | None = None
    vip: bool = False

    @pydantic.computed_field  # type: ignore[prop-decorator]
    @property
    def doubled(self) -> float:
        return 2 * self.income


class Scaled(pydantic.BaseModel):
    """The same fields as :class:`Row`, one of them written out by a serializer."""

    income: float
    tenure: int
    score: float | None = None
    plan: str | None = None
    vip: bool = False

    @pydantic.field_serializer("income")
    def _cents(self, v: float) -> float:
        return v * 100


class Loose(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="allow")
    income: float
    tenure: int


def _rows(n: int) -> list[dict[str, Any]]:
    return [
        {
            "income": 10.0 * i + 0.5,
            "tenure": i if i != 3 else 2**60 + 1,
            "score": None if i % 3 == 0 else i / 7,
            "plan": ["a", None, "b" * 70][i % 3],
            "vip": i % 5 == 0,
        }
        for i in range(n)
    ]


def _one_by_one(rows: list[dict[str, Any]]) -> dict[Any, Any]:
    acc = FeatureStats()
    for r in rows:
        acc.record_row(MODEL, r)
    return _summary(acc)


def _as_list(rows: list[Any]) -> dict[Any, Any]:
    acc = FeatureStats()
    acc.record_columns(MODEL, payload.normalize_inputs(rows))
    return _summary(acc)


@pytest.fixture(params=["big", "buffered"])
def size(request: Any, monkeypatch: pytest.MonkeyPatch) -> str:
    """A list sketched now in parts (``big``) or buffered as batches (as below 2^20 values)."""
    if request.param == "big":
        monkeypatch.setattr(feature_stats, "_HARD_VALUES", 40)
    return str(request.param)


def test_a_list_of_models_is_read_in_place_and_gives_what_its_rows_give(size: str) -> None:
    _reader()
    rows = _rows(31)
    models = [Row(**r) for r in rows]
    norm = payload.normalize_inputs(models)
    assert type(norm.records) is payload.ModelRows  # the models themselves, no list of dicts
    assert _as_list(models) == _one_by_one([m.model_dump() for m in models]) == _one_by_one(rows)


@pytest.mark.parametrize("odd", ["other class", "computed field", "extra field"])
def test_a_list_the_reader_cannot_take_whole_gives_what_its_rows_give(size: str, odd: str) -> None:
    rows = _rows(23)
    models: list[Any] = [Row(**r) for r in rows]
    if odd == "other class":
        models[11] = Scaled(**rows[11])  # a serializer: model_dump() differs from __dict__
    elif odd == "computed field":
        models = [Other(**r) for r in rows]
    else:
        models = [Loose(income=r["income"], tenure=r["tenure"], spare=i) for i, r in enumerate(rows)]
    assert type(payload.normalize_inputs(models).records) is not payload.ModelRows
    dumped = [m.model_dump() for m in models]
    assert _as_list(models) == _one_by_one(dumped)
    if odd == "other class":
        assert dumped[11]["income"] == 100 * rows[11]["income"]


def test_models_read_by_python_give_what_the_c_reader_gives(size: str, monkeypatch: pytest.MonkeyPatch) -> None:
    models = [Row(**r) for r in _rows(29)]
    expected = _as_list(models)
    monkeypatch.setattr(feature_stats, "_records_matrix", None)  # ModelRows read in Python
    assert _as_list(models) == expected
    monkeypatch.setattr(payload, "_reads_models", False)  # a list of the dicts, as before
    assert type(payload.normalize_inputs(models).records) is list
    assert _as_list(models) == expected


def test_model_rows_is_a_sequence_of_the_models_dicts() -> None:
    models = [Row(**r) for r in _rows(5)]
    rows = payload.ModelRows(models, Row)
    assert len(rows) == 5
    assert rows[2] is models[2].__dict__
    assert rows[1:3] == [models[1].__dict__, models[2].__dict__]
    assert list(rows) == [m.__dict__ for m in models]
    one = payload.normalize_inputs(models[:1])
    assert one.row == models[0].model_dump() and one.records is None
    assert payload.normalize_inputs(models).as_records(2) == [m.model_dump() for m in models[:2]]


_VALUES = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.booleans(),
    st.none(),
    st.text(max_size=3),
)


class Holder:
    """A plain class: the reader takes any objects of exactly ``cls`` with a dict."""


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(st.fixed_dictionaries({"a": _VALUES, "b": _VALUES, "c": st.floats()}), min_size=1, max_size=30),
    st.integers(min_value=0, max_value=29),
)
def test_reading_objects_dicts_in_c_equals_reading_the_dicts(rows: list[dict[str, Any]], start: int) -> None:
    fn = _reader()
    start = min(start, len(rows) - 1)
    objs = []
    for r in rows:
        h = Holder()
        h.__dict__.update(r)
        objs.append(h)
    m = len(rows) - start
    want, got = np.full(3 * m, -1.0), np.full(3 * m, -1.0)
    expected = fn(rows, start, want)
    assert fn(objs, start, got, Holder) == expected
    if expected is not None:
        assert np.array_equal(want, got, equal_nan=True)
    # an object of another type, a dict among the objects, or an object without its dict: None
    assert fn([*objs[:start], {"a": 1.0, "b": 1.0, "c": 1.0}, *objs[start + 1 :]], start, got, Holder) is None
    assert fn(objs, start, got, Row) is None
    assert fn([*objs[:start], object(), *objs[start + 1 :]], start, got, Holder) is None
    assert fn(rows, start, got, None) == expected
