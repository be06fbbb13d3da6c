"""The evaluation pass's shortcuts give what the plain paths give.

- A window's findings stored packed (:func:`pack_findings`: shared fields once, the rest as a
  table) read back as exactly the bodies :meth:`Finding.to_dict` wrote, whatever the findings
  hold (breaches with evidence and a start, several versions and slices, non-finite and
  integer numbers, nested details); a store written in the earlier shape (one dict per
  finding) is read the same, by the API and by the change-point history.
- The drift finding's details are what ``jsonable`` of the merged dicts gave.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from infersight.processor.evaluate import drift as drift_module
from infersight.processor.evaluate.findings import (
    KINDS,
    STATUSES,
    Finding,
    pack_findings,
    packed_columns,
    unpack_findings,
)
from infersight.processor.evaluate.loop import FINDINGS, EvaluationLoop, stored_findings
from infersight.processor.evaluate.settings import parse_evaluation, parse_models
from infersight.processor.evaluate.window import jsonable
from infersight.processor.storage import FEATURE, WindowKey, WriteBatch, open_storage
from infersight.processor.storage.base import Record
from infersight.stats.reference import Reference
from infersight.stats.result import DriftResult
from infersight.stats.windows import FeatureWindow

numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-(10**6), 10**6),
)
json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-1000, 1000),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=5),
)
json_value = st.recursive(
    json_leaf,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=4), inner, max_size=3)),
    max_leaves=8,
)
evidence = st.lists(
    st.fixed_dictionaries({"trace_id": st.text(max_size=4), "request_id": st.text(max_size=4)}), max_size=2
).map(tuple)


@st.composite
def findings_of_a_window(draw: Any) -> list[Finding]:
    """Findings as one window's pass makes them: one model and window; versions, slices,
    statuses, causes and numbers vary (and, sometimes, what a pass would share)."""
    n = draw(st.integers(0, 6))
    shared_now = draw(st.booleans())
    out = []
    for i in range(n):
        out.append(
            Finding(
                model="churn",
                version=draw(st.sampled_from(["", "1", "2"])),
                window_size=60,
                window_start=600 if shared_now or draw(st.booleans()) else 660,
                kind=draw(st.sampled_from(KINDS)),
                subject=f"f{i}",
                status=draw(st.sampled_from(STATUSES)),
                statistic=draw(numbers),
                threshold=draw(numbers),
                p_value=draw(st.one_of(st.none(), numbers)),
                cause=draw(st.sampled_from([None, "distribution_shift", "unit_change:x1000", "missing_rate_jump"])),
                method=draw(st.sampled_from([None, "ks+wasserstein", "checks"])),
                slice=draw(st.sampled_from(["", "region=eu"])),
                since=draw(st.one_of(st.none(), st.just(540))),
                n_reference=draw(st.integers(0, 5000)),
                n_current=draw(st.integers(0, 500)),
                details=draw(st.dictionaries(st.text(max_size=6), json_value, max_size=4)),
                evidence=draw(evidence),
                evaluated_at=1000.0 if shared_now else draw(st.sampled_from([1000.0, 1001.5])),
                revision=0 if shared_now else draw(st.integers(0, 2)),
            )
        )
    return out


def _same(a: Any, b: Any) -> bool:
    """Equal, NaN equal to NaN (a finding's NaN statistic is stored as None either way)."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, dict) and isinstance(b, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


@settings(max_examples=200, deadline=None)
@given(findings_of_a_window())
def test_packed_findings_read_back_as_to_dict_wrote_them(findings: list[Finding]) -> None:
    import json

    packed = pack_findings(findings)
    want = [f.to_dict() for f in findings]
    # through JSON, as the store keeps them (non-finite numbers were made None on both paths)
    got = unpack_findings(json.loads(json.dumps(packed, allow_nan=False)))
    assert _same(got, json.loads(json.dumps(want, allow_nan=False)))
    assert _same(unpack_findings(packed), want)
    names = ("window_start", "version", "slice", "kind", "subject", "status", "statistic", "threshold")
    columns = packed_columns(packed, names)
    assert columns is not None
    assert _same([list(t) for t in columns], [[w[k] for k in names] for w in want])


def test_earlier_shape_is_read_as_it_was() -> None:
    f = Finding("m", "", 60, 0, "drift", "x", "breach", 0.3, 0.1, 1e-9, cause="distribution_shift")
    body = {"findings": [f.to_dict()]}
    assert unpack_findings(body) == [f.to_dict()]
    assert packed_columns(body, ("status",)) is None


def test_details_not_keyed_by_strings_read_back_as_json_wrote_them() -> None:
    import json

    fs = [
        Finding("m", "", 60, 0, "drift", "x", "ok", details={1: "a", "b": 2.0}),
        Finding("m", "", 60, 0, "drift", "y", "ok", details={"b": 2.0, "c": [1, 2]}),
        Finding("m", "", 60, 0, "drift", "z", "ok", details={"c": [3], "b": 1.0}),  # same keys, other order
    ]
    stored = json.loads(json.dumps(pack_findings(fs)))
    assert unpack_findings(stored) == json.loads(json.dumps([f.to_dict() for f in fs]))
    assert [list(b["details"]) for b in unpack_findings(stored)] == [["1", "b"], ["b", "c"], ["c", "b"]]


def test_a_window_with_no_findings_packs_and_reads_back_empty() -> None:
    assert unpack_findings(pack_findings([])) == []
    assert packed_columns(pack_findings([]), ("status",)) == []


# -- drift details ---------------------------------------------------------------------------


def _details_before(res: DriftResult, **extra: Any) -> dict[str, Any]:
    """The drift finding's details as they were built before (the reference for the fast path)."""
    d = {k: v for k, v in res.details.items() if k != "histogram"}
    d.update(extra)
    out: dict[str, Any] = jsonable(d)
    return out


detail_values = st.one_of(
    json_leaf,
    st.floats(allow_nan=True, allow_infinity=True),
    st.lists(st.floats(allow_nan=True), max_size=3).map(np.array),
    st.floats(allow_nan=True).map(np.float64),
    st.integers(0, 10).map(np.int64),
    st.lists(st.tuples(st.text(max_size=3), st.floats(allow_nan=False)), max_size=2),
    st.dictionaries(st.text(max_size=3), st.floats(allow_nan=True), max_size=2),
)


@settings(max_examples=300, deadline=None)
@given(
    details=st.dictionaries(
        st.one_of(st.text(max_size=8), st.sampled_from(["ks", "histogram", "reason", "mode"])),
        detail_values,
        max_size=6,
    ),
    importance=st.floats(allow_nan=True, allow_infinity=True),
    versions=st.one_of(st.none(), st.lists(st.sampled_from(["1", "2"]), max_size=2)),
    runbook=st.one_of(st.none(), st.text(max_size=5)),
)
def test_drift_details_are_what_they_were(
    details: dict[str, Any], importance: float, versions: list[str] | None, runbook: str | None
) -> None:
    res = DriftResult("ks+wasserstein", 0.1, 0.1, 0.5, False, None, 10, 10, details)
    common: dict[str, Any] = {"reference": "pushed:1", "mode": "sliding"}
    if versions is not None:
        common["versions"] = versions
    if runbook:
        common["runbook"] = runbook
    extra = {"reason": "p 0.5 >= alpha 0.001", "importance": importance, "judged": True}
    want = _details_before(res, **extra, **common)
    got = drift_module._details(res, extra, jsonable(common))
    assert _same(got, want)
    if versions is not None:
        assert got["versions"] is not common["versions"]  # a list of its own per finding


# -- through the loop: stored packed, read by the API's reader and the history ----------------


def _store_with_a_drifting_feature(tmp_path: Any) -> tuple[Any, EvaluationLoop, int]:
    store = open_storage(f"sqlite:///{tmp_path}/e.db", (60,))
    rng = np.random.default_rng(3)
    ref = Reference.from_data({n: rng.normal(0, 1, 3000) for n in ("a", "b")}, model=None, multivariate=False)
    t0 = 1_700_006_400
    batch = WriteBatch()
    for minute in range(6):
        for n in ("a", "b"):
            x = rng.normal(3.0 if (n == "a" and minute >= 3) else 0.0, 1, 400)
            batch.windows[WindowKey("m", "1", FEATURE, n, 60, t0 + 60 * minute)] = FeatureWindow.from_column(
                x, "numeric"
            ).to_stats()
    store.write(batch)
    loop = EvaluationLoop(
        store,
        parse_models({"*": {"windows": ["1m"]}}, "models"),
        parse_evaluation({"lateness": "10s", "evidence": 0}, "evaluation"),
        on_findings=lambda found: None,
    )
    loop.references.push("m", ref.to_dict(), now=t0)
    return store, loop, t0


def test_stored_findings_and_history_read_packed_and_earlier_records_alike(tmp_path: Any) -> None:
    store, loop, t0 = _store_with_a_drifting_feature(tmp_path)
    made = loop.run_once(now=t0 + 6 * 60 + 10)
    a = [f for f in made if f.kind == "drift" and f.subject == "a"]
    assert [f.status for f in sorted(a, key=lambda f: f.window_start)][3:] == ["breach"] * 3
    # what the API reads: the bodies the findings would have written one by one
    bodies = [r.body for r in stored_findings(store, "m")]
    assert sorted(bodies, key=lambda b: (b["window_start"], b["kind"], b["subject"])) == sorted(
        (f.to_dict() for f in made), key=lambda b: (b["window_start"], b["kind"], b["subject"])
    )
    history = loop._history("m", 60, t0 + 6 * 60)
    # rewrite every window's record in the earlier shape: the same bodies, the same history
    for r in store.get_records(FINDINGS, model="m"):
        store.put_records([Record(FINDINGS, r.key, r.model, r.time, {"findings": unpack_findings(r.body)})])
    assert all("rows" not in r.body for r in store.get_records(FINDINGS, model="m"))
    assert [r.body for r in stored_findings(store, "m")] == bodies
    assert loop._history("m", 60, t0 + 6 * 60) == history
    key = ("", "", "drift", "a")
    assert [history[key][t0 + 60 * k][1] for k in range(6)] == [False] * 3 + [True] * 3
    store.close()


# -- the cyclic collector during a pass ------------------------------------------------------


def test_a_pass_holds_the_collector_off_and_restores_it_as_it_was(tmp_path: Any) -> None:
    import gc

    store, loop, t0 = _store_with_a_drifting_feature(tmp_path)
    seen: list[bool] = []
    loop.on_findings = lambda found: seen.append(gc.isenabled())
    assert gc.isenabled()
    made = loop.run_once(now=t0 + 3 * 60 + 10)
    assert made and seen and not any(seen)  # off while the windows were judged
    assert gc.isenabled()  # and on again after
    gc.disable()
    try:  # a caller that turned it off keeps it off
        loop.run_once(now=t0 + 6 * 60 + 10)
        assert len(seen) > 3 and not gc.isenabled()
    finally:
        gc.enable()

    from infersight.processor.evaluate.loop import _collector_deferred

    with pytest.raises(RuntimeError), _collector_deferred():  # an error inside restores it too
        assert not gc.isenabled()
        raise RuntimeError("boom")
    assert gc.isenabled()
    store.close()


# -- a window's total ---------------------------------------------------------------------------


def _total_before(ws: Any) -> float:
    n = float(sum(s.count for s in ws.sketches.values()))
    n += sum(h.count for h in ws.histograms.values())
    n += sum(sum(v.values()) for v in ws.counters.values())
    return n


@settings(max_examples=200, deadline=None)
@given(
    counters=st.dictionaries(
        st.sampled_from(["missing", "category", "violations", "class"]),
        st.dictionaries(
            st.text(max_size=3),
            st.one_of(st.integers(0, 10**9), st.floats(0, 1e12, allow_nan=False)),
            max_size=4,
        ),
        max_size=3,
    ),
    sizes=st.lists(st.integers(0, 50), max_size=2),
)
def test_window_total_is_the_sum_it_was(counters: dict[str, dict[str, float]], sizes: list[int]) -> None:
    from infersight.processor.evaluate.window import total
    from infersight.stats.sketch import ExpHistogram
    from infersight.stats.windows import WindowStats

    rng = np.random.default_rng(len(sizes))
    sketches = {f"s{i}": ExpHistogram.from_values(rng.normal(size=n)) for i, n in enumerate(sizes)}
    ws = WindowStats(sketches=sketches, counters=counters)
    got, want = total(ws), _total_before(ws)
    assert got == want and type(got) is type(want)
