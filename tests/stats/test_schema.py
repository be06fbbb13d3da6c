"""Schema validation as the SDK calls it: columns in, violations out, never an exception."""

from __future__ import annotations

import enum
import typing

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from infersight.stats.schema import FeatureSchema, Relation, Schema, SchemaViolation

SCHEMA = Schema(
    {
        "age": FeatureSchema("age", "numeric", min=0, max=120, integer=True),
        "score": FeatureSchema("score", "numeric", nullable=True),
        "plan": FeatureSchema("plan", "categorical", allowed=["free", "pro"]),
        "zip": FeatureSchema("zip", "categorical", regex=r"\d{5}", required=False),
        "active": FeatureSchema("active", "boolean"),
        "emb": FeatureSchema("emb", "array", min_length=3, max_length=3, required=False),
    },
    [Relation("age", "<=", "score")],
    model="churn",
    model_version="3",
)


def rules(report):
    return sorted((v.feature, v.rule, v.count) for v in report.violations)


def test_each_rule_is_reported_with_count_example_and_message():
    cols = {
        "age": np.array([30.0, 130.0, np.nan, 2.5, np.inf]),
        "score": np.array([50.0, 200.0, 1.0, np.nan, 1.0]),
        "plan": np.array(["free", "gold", None, "pro", 7], dtype=object),
        "zip": np.array(["12345", "1234", "99999", "abcde", None], dtype=object),
        "active": np.array([True, False, True, True, False]),
    }
    report = SCHEMA.validate(cols, 5)
    assert rules(report) == [
        ("age", "finite", 1),
        ("age", "nullable", 1),
        ("age", "range", 1),
        ("age", "relation", 1),  # age 30 <= 50 holds, 130 <= 200 holds, 2.5 <= nan skipped, inf <= 1 fails
        ("age", "type", 1),
        ("plan", "allowed", 1),
        ("plan", "nullable", 1),
        ("plan", "type", 1),
        ("zip", "nullable", 1),
        ("zip", "regex", 2),
    ]
    rng = next(v for v in report.violations if v.rule == "range")
    assert rng.example == 130.0 and rng.first_row == 1
    assert "'age'" in rng.message and "'range'" in rng.message and "130.0" in rng.message and "Fix:" in rng.message


def test_required_feature_missing_counts_every_row():
    report = SCHEMA.validate({"age": np.array([1.0, 2.0])}, 2)
    assert ("plan", "required", 2) in rules(report)
    assert ("zip", "required", 2) not in rules(report)  # optional


def test_raise_names_feature_rule_and_value():
    report = SCHEMA.validate(
        {
            "age": np.array([500.0]),
            "score": np.array([600.0]),
            "plan": np.array(["pro"], dtype=object),
            "active": np.array([True]),
        },
        1,
    )
    with pytest.raises(SchemaViolation) as err:
        report.raise_for_violations()
    assert "'age'" in str(err.value) and "'range'" in str(err.value) and "500.0" in str(err.value)
    assert err.value.report is report


def test_weird_input_is_a_type_violation_not_an_exception():
    weird = {
        "age": np.array([object(), "12", [1], None], dtype=object),
        "score": np.array(["x", "y", "z", "w"]),
        "plan": np.array([1.5, 2.5, np.nan, 3.0]),
        "active": np.array(["yes", None, 2, True], dtype=object),
        "emb": np.array([[1, 2, 3], [1, 2], "abc", None], dtype=object),
    }
    report = SCHEMA.validate(weird, 4)
    got = rules(report)
    assert ("age", "type", 3) in got and ("age", "nullable", 1) in got
    assert ("score", "type", 4) in got
    assert ("plan", "type", 3) in got
    assert ("active", "type", 2) in got
    assert ("emb", "type", 1) in got and ("emb", "length", 1) in got


def test_version_mismatch_is_flagged_apart_from_data_violations():
    cols = {
        "age": np.array([500.0]),
        "score": np.array([600.0]),
        "plan": np.array(["pro"], dtype=object),
        "active": np.array([True]),
    }
    same = SCHEMA.validate(cols, 1, model_version="3")
    other = SCHEMA.validate(cols, 1, model_version="4")
    assert not same.version_mismatch and all(not v.version_mismatch for v in same.violations)
    assert other.version_mismatch
    assert other.violations[0].rule == "version_mismatch" and other.violations[0].feature == "*"
    assert all(v.version_mismatch for v in other.violations)


def test_edits_take_effect_immediately():
    s = Schema({"plan": FeatureSchema("plan", "categorical", allowed=["a"])})
    col = {"plan": np.array(["b", "b"], dtype=object)}
    assert rules(s.validate(col, 2)) == [("plan", "allowed", 2)]
    s.features["plan"].allowed.append("b")  # in-place edit of the allowed list
    s.features["plan"].allowed = list(s.features["plan"].allowed)
    assert s.validate(col, 2).ok


values = st.one_of(
    st.none(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-200, 200),
    st.booleans(),
    st.sampled_from(["free", "pro", "12345", "x", ""]),
    st.lists(st.integers(0, 3), max_size=4),
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(sorted(SCHEMA.features)), values))
def test_one_row_fast_path_agrees_with_vectorised_path(row):
    one = SCHEMA.validate_row(row)
    cols = {}
    for k, v in row.items():
        arr = np.empty(3, dtype=object)
        for i in range(3):
            arr[i] = v
        cols[k] = arr
    many = SCHEMA.validate(cols, 3)
    assert [(f, r, c * 3) for f, r, c in rules(one)] == rules(many)


def test_schema_roundtrips_through_json(tmp_path):
    SCHEMA.save(tmp_path / "s.json")
    back = Schema.load(tmp_path / "s.json")
    assert back == SCHEMA


class Plan(enum.Enum):
    FREE = "free"
    PRO = "pro"


def test_from_function_type_hints():
    def predict(age: typing.Annotated[int, _Ge(0)], plan: Plan, note: str | None = None, flag: bool = False) -> float:
        return 0.0

    s = Schema.from_function(predict, model="m")
    assert s.features["age"].integer and s.features["age"].min == 0
    assert s.features["plan"].allowed == ["free", "pro"]
    assert s.features["note"].nullable and not s.features["note"].required
    assert s.features["flag"].kind == "boolean"
    assert rules(s.validate_row({"age": -1, "plan": "gold"})) == [("age", "range", 1), ("plan", "allowed", 1)]


pydantic = pytest.importorskip("pydantic")


class Inputs(pydantic.BaseModel):
    age: int = pydantic.Field(ge=0, le=120)
    country: typing.Literal["DE", "FR"]
    name: str = pydantic.Field(min_length=1, max_length=5, default="x")
    income: float | None = None


def test_from_function_pydantic_model():
    def predict(batch: list[Inputs]) -> list[float]:
        return []

    s = Schema.from_function(predict)
    assert (s.features["age"].min, s.features["age"].max) == (0, 120)
    assert s.features["country"].allowed == ["DE", "FR"]
    assert s.features["name"].max_length == 5 and not s.features["name"].required
    assert s.features["income"].nullable
    report = s.validate({"age": np.array([10.0, 130.0]), "country": np.array(["DE", "US"], dtype=object)}, 2)
    assert rules(report) == [("age", "range", 1), ("country", "allowed", 1)]


def test_from_function_without_hints_says_what_to_do():
    with pytest.raises(TypeError, match="annotate"):
        Schema.from_function(lambda x: x)


def test_inferred_schema_ranges_sets_and_relations():
    rng = np.random.default_rng(1)
    lo = rng.uniform(0, 10, 500)
    cols = {"lo": lo, "hi": lo + 1, "c": rng.choice(np.array(["a", "b"], dtype=object), 500)}
    s = Schema.infer(cols, relations=True)
    assert s.features["lo"].min == 0.0  # never negative in training → not below 0
    assert s.features["c"].allowed == ["a", "b"]
    assert [r.describe() for r in s.relations] == ["lo <= hi"]
    assert rules(s.validate({"lo": np.array([5.0]), "hi": np.array([4.0]), "c": np.array(["a"], dtype=object)}, 1)) == [
        ("lo", "relation", 1)
    ]


class _Ge:
    def __init__(self, ge):
        self.ge = ge
