"""A one-row input read from an array, a DataFrame or a dict of one-element columns is kept as
its names and values; every view of it (``row``, ``row_items``, ``feature_names``, payload
records, columns) is what the dict ``dict(zip(names, values))`` gave, repeated names included."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from infersight import payload
from infersight.feature_stats import FeatureStats
from infersight.payload import Normalized, normalize_inputs


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return list(a) == list(b) and all(type(a[k]) is type(b[k]) and (a[k] == b[k] or a[k] != a[k]) for k in a)


def _views(norm: Normalized) -> dict[str, Any]:
    row = norm.row
    assert row is not None and norm.is_row
    keys, values = norm.row_items()
    assert keys == tuple(row) and len(values) == len(row)
    assert list(norm.feature_names()) == list(row)
    assert norm.as_records(10) == row
    assert list(norm.as_columns()) == list(row)
    return dict(zip(keys, values))


@settings(max_examples=100, deadline=None)
@given(
    values=st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=1, max_size=8),
    names=st.lists(st.sampled_from(["a", "b", "c", "d", "e", "f", "g", "h"]), min_size=8, max_size=8),
    kind=st.sampled_from(["f8", "i8", "bool"]),
)
def test_one_row_arrays_give_the_dict_of_their_names_and_values(
    values: list[float], names: list[str], kind: str
) -> None:
    with np.errstate(all="ignore"):
        arr = np.nan_to_num(np.array(values)).astype(kind) if kind != "f8" else np.array(values)
    cols = names[: arr.shape[0]]
    want = dict(zip(cols, arr.tolist()))  # a repeated name keeps its last value
    for x in (arr, arr.reshape(1, -1)):
        got = normalize_inputs(x, features=cols)
        assert _same(got.row or {}, want) and _same(_views(got), want)
    if len(set(cols)) == len(cols):
        frame = normalize_inputs(pd.DataFrame(arr.reshape(1, -1), columns=cols))
        assert _same(frame.row or {}, want) and _same(_views(frame), want)
        by_column = normalize_inputs({c: arr[i : i + 1] for i, c in enumerate(cols)})
        assert _same(by_column.row or {}, want) and _same(_views(by_column), want)


def test_a_features_list_changed_between_calls_is_read_again() -> None:
    features = ["a", "b"]
    assert normalize_inputs(np.array([1.0, 2.0]), features=features).row_items() == (("a", "b"), (1.0, 2.0))
    features[1] = "z"
    assert normalize_inputs(np.array([1.0, 2.0]), features=features).row_items() == (("a", "z"), (1.0, 2.0))
    features[0] = "z"  # now repeated: the dict's answer, the last value
    assert normalize_inputs(np.array([1.0, 2.0]), features=features).row == {"z": 2.0}


def test_a_row_set_as_a_dict_replaces_the_names_and_values() -> None:
    norm = Normalized(1, row_names=("a",), row_values=(1.0,))
    assert repr(norm) == "Normalized(n_rows=1, row={'a': 1.0})"
    norm.row = {"b": 2}
    assert norm.row_items() == (("b",), (2,)) and list(norm.feature_names()) == ["b"]
    assert not Normalized(3, columns={}).is_row and Normalized(3, columns={}).row_items() == ((), ())


@pytest.mark.parametrize("x", [np.arange(5.0), pd.DataFrame([np.arange(5.0)], columns=list("abcde"))])
def test_record_simple_items_buffers_what_record_simple_does(x: Any) -> None:
    norm = normalize_inputs(x, features=list("abcde") if isinstance(x, np.ndarray) else None)
    by_items, by_dict = FeatureStats(), FeatureStats()
    keys, values = norm.row_items()
    by_items.record_simple_items(("m", "1"), keys, values, 0.5, 0.001)
    by_dict.record_simple(("m", "1"), dict(norm.row or {}), 0.5, 0.001)
    assert by_items._state.rows == by_dict._state.rows and by_items._state.preds == by_dict._state.preds
    assert payload._distinct_names(list("abcde")) == tuple("abcde")
