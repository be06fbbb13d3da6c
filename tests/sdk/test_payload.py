from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pydantic
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from infersight.payload import ABSENT, normalize_inputs, normalize_outputs


def test_single_row_dict_stays_a_row():
    n = normalize_inputs({"age": 41, "plan": "pro"})
    assert n.n_rows == 1 and n.row == {"age": 41, "plan": "pro"} and n.columns is None


def test_list_of_dicts_marks_absent_features():
    n = normalize_inputs([{"a": 1.0, "b": "x"}, {"a": 2.0}])
    assert n.n_rows == 2
    assert n.as_columns()["a"].tolist() == [1.0, 2.0]
    assert n.as_columns()["b"][1] is ABSENT


def test_dict_of_columns():
    n = normalize_inputs({"a": [1, 2, 3], "b": np.array(["x", "y", "z"])})
    assert n.n_rows == 3
    assert n.columns["a"].dtype == np.int64  # integers stay integers (payload logs show 2, not 2.0)
    assert n.columns["b"].tolist() == ["x", "y", "z"]


def test_numpy_1d_is_one_row_and_2d_is_a_batch():
    assert normalize_inputs(np.array([1.0, 2.0])).row == {"f0": 1.0, "f1": 2.0}
    n = normalize_inputs(np.arange(6.0).reshape(3, 2), features=["x", "y"])
    assert n.n_rows == 3 and n.as_columns()["y"].tolist() == [1.0, 3.0, 5.0]
    with pytest.raises(ValueError, match="features= names 3 columns but the input has 2"):
        normalize_inputs(np.zeros((2, 2)), features=["a", "b", "c"])


def test_pandas_frame_and_series():
    df = pd.DataFrame({"a": [1.0, None], "c": ["u", None]})
    n = normalize_inputs(df)
    assert n.n_rows == 2 and math.isnan(n.columns["a"][1]) and n.columns["c"][1] is None
    assert normalize_inputs(df.iloc[0]).row["c"] == "u"


def test_pydantic_models_and_scalars():
    class Applicant(pydantic.BaseModel):
        income: float
        region: str

    assert normalize_inputs(Applicant(income=3.0, region="eu")).row == {"income": 3.0, "region": "eu"}
    assert normalize_inputs([Applicant(income=1, region="a"), Applicant(income=2, region="b")]).n_rows == 2
    assert normalize_inputs("free text").row == {"input": "free text"}
    assert normalize_inputs(7).row == {"input": 7}


def test_feature_callable_for_non_tabular_inputs():
    image = np.full((8, 8), 0.25)
    n = normalize_inputs(image, features=lambda img: {"brightness": float(img.mean()), "pixels": img.size})
    assert n.row == {"brightness": 0.25, "pixels": 64}


def test_ragged_and_empty_inputs_do_not_fail():
    assert normalize_inputs([[1, 2], [3]]).columns["input"].tolist() == [2.0, 1.0]
    assert normalize_inputs([]).n_rows == 0
    assert normalize_inputs(np.zeros((0, 3))).n_rows == 0


def test_outputs_scalars_labels_and_probability_matrix():
    assert normalize_outputs(0.3).values["prediction"].tolist() == [0.3]
    assert normalize_outputs("spam").labels["prediction"] == ["spam"]
    assert normalize_outputs(np.array([1, 0, 1]), classes=["no", "yes"]).labels["prediction"] == ["yes", "no", "yes"]
    o = normalize_outputs(np.array([[0.2, 0.8], [0.6, 0.4]]))
    assert o.labels["prediction"] == ["1", "0"] and o.values["score"].tolist() == [0.8, 0.6]
    d = normalize_outputs({"label": "cat", "score": 0.9})
    assert d.labels["label"] == ["cat"] and d.values["score"].tolist() == [0.9]


def test_null_and_default_outputs_are_counted():
    assert normalize_outputs(None).nulls == {("prediction", "none"): 1}
    assert normalize_outputs(float("nan")).nulls == {("prediction", "nan"): 1}
    o = normalize_outputs(np.array([0.5, np.nan, 0.0, 0.0]), default=0.0)
    assert o.nulls == {("prediction", "nan"): 1, ("prediction", "default"): 2}
    assert normalize_outputs(["ok", None, "fallback"], default="fallback").nulls == {
        ("prediction", "none"): 1,
        ("prediction", "default"): 1,
    }


@settings(max_examples=200, deadline=None)
@given(
    values=st.lists(
        st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([1e308, -1e308, 0.0])),
        max_size=40,
    ),
    dtype=st.sampled_from(["float64", "float32", "float16"]),
    column=st.booleans(),
)
def test_a_float_answer_read_by_the_quick_path_is_read_as_the_full_reading_reads_it(
    values: list[float], dtype: str, column: bool
) -> None:
    """One number a row (1-D or n × 1): the copy-and-sum path gives exactly what the full
    reading gives, NaN, infinities and sums that overflow included."""
    from infersight.payload import NO_DEFAULT, Outputs, _collect_array, normalize_outputs

    with np.errstate(over="ignore"):
        arr = np.array(values, dtype=dtype)
    if column:
        arr = arr.reshape(-1, 1)
    want = Outputs(n_rows=1)
    _collect_array(arr, "prediction", want, None, NO_DEFAULT)
    got = normalize_outputs(arr)
    assert (got.n_rows, got.labels, got.nulls) == (want.n_rows, want.labels, want.nulls)
    assert got.values.keys() == want.values.keys()
    for k, v in want.values.items():
        assert got.values[k].dtype == v.dtype and got.values[k].tobytes() == v.tobytes()
        assert not np.shares_memory(got.values[k], arr)
