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
