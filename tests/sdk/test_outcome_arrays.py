"""Float arrays answered by ``model.predict`` travel packed (8 bytes a value) and are read
back as the general path writes the same values (:func:`compact_prediction`: a list, NaN and
infinities as ``None``), whether they are arrays, 1 × n columns, float32, or a one-row answer
the request path kept as the 1-tuple of its number; past ``max_bytes // 8`` values they are cut
(``null``, ``truncated``), and the body survives JSON as the export writes it."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import infersight
from infersight._outcomes import call_predictions, compact_prediction, encode_outcomes
from infersight.testing import InMemoryTelemetry


def _reference(pred: Any, max_bytes: int, max_rows: int) -> tuple[Any, int, bool]:
    """What the general path makes of one float answer, cut at ``max_bytes // 8`` values."""
    value, rows = compact_prediction(pred, max_rows)
    kept = len(value) if isinstance(value, list) else 1
    return (None, rows, True) if kept * 8 > max_bytes else (value, rows, False)


def _shipped(pred: Any, max_bytes: int, max_rows: int) -> tuple[Any, int, bool]:
    (body,) = encode_outcomes([("r", 1, "m", "1", 0, pred)], max_bytes=max_bytes, max_rows=max_rows)
    body = json.loads(json.dumps(body, separators=(",", ":"), allow_nan=False))  # as exported
    return call_predictions(body)[0], body["rows"][0], body["truncated"][0]


_FLOAT = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 1.0, 5e-324, 1e16, 1e-5, 0.1, 123456.789]),
)


@settings(max_examples=300, deadline=None)
@given(
    values=st.lists(_FLOAT, max_size=60),
    repeat=st.sampled_from([1, 1, 2, 40]),
    dtype=st.sampled_from(["float64", "float32"]),
    column=st.booleans(),
    max_bytes=st.sampled_from([4, 5, 12, 64, 200, 8192]),
    max_rows=st.sampled_from([1, 3, 50, 2048]),
)
def test_a_float_array_is_read_back_as_the_general_path_writes_it(
    values: list[float], repeat: int, dtype: str, column: bool, max_bytes: int, max_rows: int
) -> None:
    with np.errstate(over="ignore"):
        arr = np.array(values * repeat, dtype=dtype)
    if column:
        arr = arr.reshape(-1, 1)
    assert _shipped(arr, max_bytes, max_rows) == _reference(arr, max_bytes, max_rows)


@settings(max_examples=100, deadline=None)
@given(
    preds=st.lists(
        st.one_of(
            st.builds(lambda v: np.array(v), st.lists(_FLOAT, max_size=12)),
            st.builds(lambda v: (v,), _FLOAT),
            st.sampled_from(["yes", 3, None, 0.25, {"label": "x"}, [1, 2]]),
        ),
        min_size=1,
        max_size=40,
    )
)
def test_a_body_mixing_packed_and_plain_answers_reads_back_call_by_call(preds: list[Any]) -> None:
    calls = [(f"r{i}", i, "m", "1", 0, p) for i, p in enumerate(preds)]
    (body,) = encode_outcomes(calls, max_bytes=8192, max_rows=2048)
    body = json.loads(json.dumps(body, separators=(",", ":"), allow_nan=False))
    one_by_one = [call_predictions(b)[0] for c in calls for b in encode_outcomes([c], max_bytes=8192, max_rows=2048)]
    assert call_predictions(body) == one_by_one
    assert body["format"] == (2 if any(isinstance(p, np.ndarray) for p in preds) else 1)


def test_a_body_whose_packed_columns_disagree_is_refused_by_name() -> None:
    (body,) = encode_outcomes([("a", 1, "m", "1", 0, np.array([0.5, 0.25]))])
    for change, says in [
        ({"packed": [3]}, "packed says 3 numbers"),
        ({"packed": []}, "not as long as prediction"),
        ({"packed": [-1]}, "non-negative whole number"),
        ({"values": "%%%"}, "not base64"),
        ({"values": None}, "base64 text"),
    ]:
        try:
            call_predictions({**body, **change})
        except ValueError as exc:
            assert says in str(exc)
        else:
            raise AssertionError(f"{change} was read")


@given(value=_FLOAT, max_bytes=st.sampled_from([1, 3, 4, 5, 8192]))
def test_a_one_tuple_of_a_float_is_shipped_as_its_one_element_array(value: float, max_bytes: int) -> None:
    want = _reference(np.array([value]), max_bytes, 100)
    assert _shipped((value,), max_bytes, 100) == want == _reference((value,), max_bytes, 100)


def test_a_one_row_answer_ships_as_the_array_it_was(model_name: str) -> None:
    """The request path keeps a one-element float answer as its number: what arrives is what
    the array itself gave before (``[value]``, one row), NaN as null, for 1-D and 1 × 1 arrays
    and for float32; other one-element answers (a 0-d array, an int array) are kept as they are."""
    t = InMemoryTelemetry.install(log_output="none", service_name="tests")
    answers: list[Any] = [
        np.array([0.25]),
        np.array([[0.75]]),
        np.array([np.nan]),
        np.array([0.1], dtype=np.float32),
        np.array(0.5),
        np.array([3]),
    ]

    @infersight.monitor(model=model_name, version="1")
    def predict(row: dict[str, float]) -> Any:
        return answers[int(row["i"])]

    for i in range(len(answers)):
        predict({"i": float(i), "x": 1.0})
    t.flush()
    got = [(o["prediction"], o["rows"], o["truncated"]) for o in t.outcomes() if o["model"] == model_name]
    assert got == [_reference(a, 8192, 2048) for a in answers]
    assert got[2] == ([None], 1, False) and got[4] == (0.5, 1, False) and got[5] == ([3], 1, False)
