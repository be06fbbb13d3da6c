"""A list of pydantic models gives what its rows give, whether its models' ``__dict__``s are read
as they are (one plain class throughout) or each model goes through ``model_dump()`` (a model
of another class with a serializer, a class with a computed field, extra fields allowed): in a
big list sketched in parts and in a list buffered as batches."""

from __future__ import annotations

from typing import Any

import pydantic
import pytest

from infersight import feature_stats, payload

from .test_big_batches import _as_list, _one_by_one


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


@pytest.fixture(params=["big", "buffered"])
def size(request: Any, monkeypatch: pytest.MonkeyPatch) -> str:
    """A list sketched now in parts (``big``) or buffered as batches (as below 2^20 values)."""
    if request.param == "big":
        monkeypatch.setattr(feature_stats, "_HARD_VALUES", 40)
    return str(request.param)


def test_a_list_of_models_is_read_in_place_and_gives_what_its_rows_give(size: str) -> None:
    rows = _rows(31)
    models = [Row(**r) for r in rows]
    norm = payload.normalize_inputs(models)
    assert type(norm.records) is list and norm.records[0] is models[0].__dict__  # not copied
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
    records = payload.normalize_inputs(models).records
    assert records is not None and records[0] is not models[0].__dict__  # model_dump()'s rows
    dumped = [m.model_dump() for m in models]
    assert _as_list(models) == _one_by_one(dumped)
    if odd == "other class":
        assert dumped[11]["income"] == 100 * rows[11]["income"]
