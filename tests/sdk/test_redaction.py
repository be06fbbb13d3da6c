"""The redactor's walk: names already known clean take a faster path that must give exactly
what the full walk gives, whatever the nesting and whichever names came first."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from infersight.redaction import REDACTED, Redactor

names = st.sampled_from(["age", "plan", "password", "card_no", "user_token", "x", "Password", "tokens", "note"])
scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=4))
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.tuples(inner, inner),
        st.dictionaries(names, inner, max_size=4),
    ),
    max_leaves=12,
)
records = st.lists(st.dictionaries(names, values, max_size=6), min_size=1, max_size=6)


def _walk(r: Redactor, obj: Any) -> Any:
    """The full walk, by definition: every name matched, every container entered."""
    if isinstance(obj, dict):
        return {k: (REDACTED if r.matches(k) else _walk(r, v)) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_walk(r, v) for v in obj]
    return obj


@given(records)
@settings(max_examples=300, deadline=None)
def test_rows_redacted_again_with_names_known_clean_equal_the_full_walk(rows: list[dict[str, Any]]) -> None:
    r = Redactor(["password", "card_*", "*_token"])
    first = [r.redact(row) for row in rows]  # the names learnt as they are met
    again = [r.redact(row) for row in rows]  # now mostly by the known-clean path
    want = [_walk(Redactor(["password", "card_*", "*_token"]), row) for row in rows]
    assert first == want and again == want
    assert all(type(a) is dict for a in again)


def test_a_name_that_must_be_redacted_is_never_learnt_as_clean() -> None:
    r = Redactor(["password"])
    for _ in range(3):
        assert r.redact({"user": "ann", "password": "x", "items": [{"Password": "y", "n": 1}]}) == {
            "user": "ann",
            "password": REDACTED,
            "items": [{"Password": REDACTED, "n": 1}],
        }


rows_with_odd_values = st.lists(
    st.dictionaries(
        names,
        st.one_of(values, st.floats(allow_nan=True, allow_infinity=True), st.text(alphabet='é€😀"\\ab', max_size=6)),
        max_size=6,
    ),
    max_size=120,
)


@given(rows=rows_with_odd_values, cap=st.sampled_from([1, 7, 40, 300, 2000, 8192]), patterns=st.booleans())
@settings(max_examples=300, deadline=None)
def test_a_long_payload_cut_after_its_first_rows_is_the_whole_text_cut(
    rows: list[dict[str, Any]], cap: int, patterns: bool
) -> None:
    """``capped_json`` writes only the rows the cut text can hold: the result is what the whole
    list's text gives when cut, byte for byte (NaN rows, several-byte characters at the cut)."""
    from infersight.logs import TRUNCATED_MARKER, LogPipeline, to_json

    pipe = LogPipeline(redact=["password", "*_token"] if patterns else (), max_payload_bytes=cap, output="none")
    raw = to_json(pipe.redactor.redact(rows)).encode("utf-8")
    want = (raw[:cap].decode("utf-8", "ignore") + TRUNCATED_MARKER, True) if len(raw) > cap else (raw.decode(), False)
    assert pipe.capped_json(rows) == want


@given(
    n=st.integers(0, 3000),
    cols=st.sampled_from([0, 1, 3]),
    cap=st.sampled_from([1, 50, 8192]),
    nan=st.booleans(),
)
@settings(max_examples=60, deadline=None)
def test_an_array_answer_cut_after_its_first_rows_is_the_whole_text_cut(n: int, cols: int, cap: int, nan: bool) -> None:
    import numpy as np

    from infersight.logs import TRUNCATED_MARKER, LogPipeline, to_json

    arr = np.random.default_rng(n).normal(size=(n, cols) if cols else n)
    if nan and n:
        arr.flat[-1] = np.nan
    pipe = LogPipeline(max_payload_bytes=cap, output="none")
    raw = to_json(arr).encode("utf-8")
    want = (raw[:cap].decode("utf-8", "ignore") + TRUNCATED_MARKER, True) if len(raw) > cap else (raw.decode(), False)
    assert pipe.capped_json(arr) == want


@given(rows=rows_with_odd_values.filter(lambda r: len(r) > 2), patterns=st.booleans())
@settings(max_examples=100, deadline=None)
def test_a_payload_cut_at_every_cap_around_its_length_is_the_whole_text_cut(
    rows: list[dict[str, Any]], patterns: bool
) -> None:
    """The caps where cutting after a row and cutting the whole text could part: the text's
    own length and the few bytes below and above it."""
    from infersight.logs import TRUNCATED_MARKER, LogPipeline, to_json

    redact = ["password", "*_token"] if patterns else ()
    raw = to_json(Redactor(redact).redact(rows)).encode("utf-8")
    for cap in range(max(1, len(raw) - 4), len(raw) + 2):
        want = (
            (raw[:cap].decode("utf-8", "ignore") + TRUNCATED_MARKER, True) if len(raw) > cap else (raw.decode(), False)
        )
        assert LogPipeline(redact=redact, max_payload_bytes=cap, output="none").capped_json(rows) == want
