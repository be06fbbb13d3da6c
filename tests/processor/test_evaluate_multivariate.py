"""Multivariate drift from sampled payloads (issue 14): the MMD test in the evaluation loop.

Payload logs (the ``predictions`` table) and the sketches of every call are written straight
into the store, as the ingest path writes them; the reference is profiled from a table with
its multivariate sample. A correlation flip with unchanged marginals is found by the joint
test alone (cause ``joint_shift``); null windows from the reference's distribution do not
breach more often than the test's alpha allows; windows with too few sampled rows, references
without a sample and columns the payloads do not carry are reported, never raised. The last
test runs an instrumented app against a real processor on loopback.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from infersight.processor.config import ConfigError
from infersight.processor.evaluate.findings import Finding
from infersight.processor.evaluate.loop import EvaluationLoop
from infersight.processor.evaluate.multivariate import SUBJECT, complete_rows, permutations_for, restrict
from infersight.processor.evaluate.settings import parse_evaluation, parse_models
from infersight.processor.storage import FEATURE, WindowKey, WriteBatch, open_storage
from infersight.processor.storage.base import Prediction
from infersight.stats.multivariate import reference_sample
from infersight.stats.reference import Reference
from infersight.stats.windows import FeatureWindow

T0 = 1_700_006_400  # a multiple of a day
SIZE = 60
CORR = 0.8


def _draw(rng: np.random.Generator, n: int, corr: float = CORR) -> dict[str, np.ndarray]:
    """x, y standard normal with correlation ``corr``; z independent of both."""
    x = rng.normal(size=n)
    y = corr * x + math.sqrt(1 - corr**2) * rng.normal(size=n)
    return {"x": x, "y": y, "z": rng.normal(5, 2, n)}


def _reference(rng: np.random.Generator, multivariate: bool = True) -> Reference:
    cols: dict[str, Any] = dict(_draw(rng, 20_000))
    cols["plan"] = rng.choice(["basic", "pro"], 20_000).astype(object)
    return Reference.from_data(cols, model="m", multivariate=multivariate)


def _write(
    store: Any,
    start: int,
    cols: dict[str, np.ndarray],
    *,
    sampled: int,
    version: str = "1",
    per_call: int = 5,
    drop: tuple[str, ...] = (),
) -> None:
    """One window: the sketches of every row, and payload logs of the first ``sampled`` rows,
    ``per_call`` rows to a logged call (a batch), without the columns in ``drop``."""
    n = len(next(iter(cols.values())))
    b = WriteBatch()
    for name, x in cols.items():
        b.windows[WindowKey("m", version, FEATURE, name, SIZE, start)] = FeatureWindow.from_column(
            x, "numeric"
        ).to_stats()
    plan = np.array(["basic", "pro"], dtype=object)[np.arange(n) % 2]
    b.windows[WindowKey("m", version, FEATURE, "plan", SIZE, start)] = FeatureWindow.from_column(
        plan, "categorical"
    ).to_stats()
    for k in range(0, sampled, per_call):
        rows = [
            {**{c: float(v[i]) for c, v in cols.items() if c not in drop}, "plan": str(plan[i])}
            for i in range(k, min(sampled, k + per_call))
        ]
        b.predictions.append(
            Prediction(
                "m",
                version,
                f"{version}-{start}-{k}",
                (start * 10**9) + k * 10**6,
                f"{k:032x}",
                f"{k:016x}",
                json.dumps(rows if per_call > 1 else rows[0]),
                None,
                False,
            )
        )
    store.write(b)


@pytest.fixture
def store(tmp_path):
    st = open_storage(f"sqlite:///{tmp_path}/s.db", (SIZE, 3600))
    yield st
    st.close()


def _loop(store: Any, ref: Reference, **evaluation: Any) -> EvaluationLoop:
    loop = EvaluationLoop(
        store,
        parse_models({"*": {"windows": ["1m"]}}, "models"),
        parse_evaluation({"lateness": 0, "backfill": "30d", **evaluation}, "evaluation"),
    )
    loop.references.push("m", ref.to_dict(), now=T0)
    return loop


def _mv(made: list[Finding], version: str = "") -> dict[int, Finding]:
    return {f.window_start: f for f in made if f.subject == SUBJECT and f.version == version}


def test_a_correlation_flip_is_a_joint_shift_while_every_feature_stays_ok(store):
    """x and y keep their N(0, 1) marginals; their correlation goes from +0.8 to -0.8. Sketches
    of 3,000 calls a window, payloads of 300 of them (10 %)."""
    rng = np.random.default_rng(1)
    ref = _reference(rng)
    assert ref.multivariate is not None
    _write(store, T0, _draw(rng, 3000), sampled=300)
    _write(store, T0 + SIZE, _draw(rng, 3000, corr=-CORR), sampled=300)
    made = _loop(store, ref).run_once(now=T0 + 2 * SIZE)
    mv = _mv(made)
    assert set(mv) == {T0, T0 + SIZE}
    before, after = mv[T0], mv[T0 + SIZE]
    assert before.status == "ok" and before.cause is None and before.p_value is not None and before.p_value > 0.001
    assert after.status == "breach" and after.cause == "joint_shift" and after.cause_class == "world"
    assert after.method == "mmd" and after.kind == "drift"
    assert after.p_value is not None and after.p_value < 0.001 and after.statistic > after.threshold
    assert after.details["rows"] == 300 and after.details["rows_tested"] == 300
    assert after.details["features"] == ["x", "y", "z"] and after.details["drifted_features"] == []
    assert "joint distribution moved" in after.details["reason"]
    # the per-feature verdicts on the same window: nothing moved on its own
    per_feature = {f.subject: f.status for f in made if f.kind == "drift" and f.window_start == T0 + SIZE}
    assert per_feature == {"x": "ok", "y": "ok", "z": "ok", "plan": "ok", SUBJECT: "breach"}
    # the breach carries evidence: payload logs of the window
    assert after.evidence and all(e["request_id"].startswith("1-") for e in after.evidence)


def test_a_marginal_shift_is_named_a_distribution_shift(store):
    rng = np.random.default_rng(2)
    ref = _reference(rng)
    cols = _draw(rng, 3000)
    cols["z"] = cols["z"] + 3.0
    _write(store, T0, cols, sampled=300)
    made = _loop(store, ref).run_once(now=T0 + SIZE)
    f = _mv(made)[T0]
    assert f.status == "breach" and f.cause == "distribution_shift" and f.details["drifted_features"] == ["z"]


def test_null_windows_breach_no_more_often_than_alpha_allows(store):
    """100 windows from the reference's distribution, 150 sampled rows each (single-row logs).
    At alpha = 0.001 the count of breaches is Binomial(100, <= 0.001): P(3 or more) < 2e-4."""
    rng = np.random.default_rng(3)
    ref = _reference(rng)
    windows = 100
    for w in range(windows):
        _write(store, T0 + w * SIZE, _draw(rng, 600), sampled=150, per_call=1)
    made = _loop(store, ref).run_once(now=T0 + windows * SIZE)
    mv = _mv(made)
    assert len(mv) == windows and all(f.details["judged"] for f in mv.values())
    breaches = sum(f.status == "breach" for f in mv.values())
    assert breaches <= 2, breaches
    # and the p-values of null windows are spread out, not piled up at the bottom
    ps = np.array([f.p_value for f in mv.values()], dtype=float)
    assert np.mean(ps < 0.1) < 0.25 and np.median(ps) > 0.2


def test_too_few_sampled_rows_is_a_warning_that_says_why(store):
    rng = np.random.default_rng(4)
    ref = _reference(rng)
    _write(store, T0, _draw(rng, 3000, corr=-CORR), sampled=40)
    made = _loop(store, ref).run_once(now=T0 + SIZE)
    f = _mv(made)[T0]
    assert f.status == "warning" and f.cause is None and f.details["judged"] is False
    assert f.details["rows"] == 40 and "multivariate_min_rows = 100" in f.details["reason"]
    assert "payload_sample_rate" in f.details["reason"]
    # the floor is a setting: at 30 the same window is tested, and the flip is found
    store2 = open_storage("sqlite:///:memory:", (SIZE,))
    _write(store2, T0, _draw(np.random.default_rng(4), 3000, corr=-CORR), sampled=40)
    g = _mv(_loop(store2, ref, multivariate_min_rows=30).run_once(now=T0 + SIZE))[T0]
    assert g.details["judged"] is True and g.details["rows"] == 40


def test_a_reference_without_a_sample_gives_an_ok_finding_with_the_reason(store):
    rng = np.random.default_rng(5)
    _write(store, T0, _draw(rng, 3000, corr=-CORR), sampled=300)
    f = _mv(_loop(store, _reference(rng, multivariate=False)).run_once(now=T0 + SIZE))[T0]
    assert f.status == "ok" and "no multivariate sample" in f.details["reason"]


def test_a_column_the_payloads_do_not_carry_is_left_out_not_read_as_a_shift(store):
    """z is redacted from the payload logs (its sketches still arrive): the test runs on x and
    y alone (the reference's sample is full rank, so z can be taken out of it), and a null
    window stays ok instead of reading z at its mean as a collapse of its variance."""
    rng = np.random.default_rng(6)
    ref = _reference(rng)
    _write(store, T0, _draw(rng, 3000), sampled=300, drop=("z",))
    _write(store, T0 + SIZE, _draw(rng, 3000, corr=-CORR), sampled=300, drop=("z",))
    mv = _mv(_loop(store, ref).run_once(now=T0 + 2 * SIZE))
    assert mv[T0].status == "ok" and mv[T0].details["features"] == ["x", "y"]
    assert mv[T0].details["dropped"] == {"z": "absent"}
    assert mv[T0 + SIZE].status == "breach" and mv[T0 + SIZE].cause == "joint_shift"


def test_versions_are_judged_apart_when_the_drift_evaluator_does(store):
    rng = np.random.default_rng(7)
    ref = _reference(rng)
    _write(store, T0, _draw(rng, 3000), sampled=300, version="1")
    _write(store, T0, _draw(rng, 3000, corr=-CORR), sampled=300, version="2")
    made = _loop(store, ref).run_once(now=T0 + SIZE)
    assert _mv(made, "1")[T0].status == "ok"
    assert _mv(made, "2")[T0].status == "breach" and _mv(made, "2")[T0].cause == "joint_shift"
    assert _mv(made, "")[T0].details["rows"] == 600 and _mv(made, "")[T0].details["versions"] == ["1", "2"]


def test_multivariate_false_turns_the_test_off(store):
    rng = np.random.default_rng(8)
    _write(store, T0, _draw(rng, 3000, corr=-CORR), sampled=300)
    made = _loop(store, _reference(rng), multivariate=False).run_once(now=T0 + SIZE)
    assert made and not _mv(made)


@pytest.mark.parametrize(
    "body, names",
    [
        ({"multivariate": "yes"}, ["evaluation.multivariate", "'yes'", "true or false"]),
        ({"multivariate_min_rows": 5}, ["evaluation.multivariate_min_rows", "5", "at least 10"]),
        ({"multivariate_min_rows": 50.5}, ["evaluation.multivariate_min_rows", "50.5", "whole number"]),
        ({"multivariate_min_rows": True}, ["evaluation.multivariate_min_rows", "True"]),
    ],
)
def test_config_errors_name_the_key_and_the_value(body, names):
    with pytest.raises(ConfigError) as e:
        parse_evaluation(body, "evaluation")
    for n in names:
        assert n in str(e.value)


def test_settings_defaults_and_values():
    s = parse_evaluation({}, "evaluation")
    assert s.multivariate is True and s.multivariate_min_rows == 100
    s = parse_evaluation({"multivariate": False, "multivariate_min_rows": 250}, "evaluation")
    assert s.multivariate is False and s.multivariate_min_rows == 250


def test_permutations_reach_the_policy_alpha():
    for alpha in (0.05, 0.01, 0.001, 2e-4):
        p = permutations_for(alpha)
        assert 1 / (p + 1) < alpha  # the smallest permutation p-value is below alpha


def test_truncated_payloads_give_their_whole_rows():
    rows = [{"a": i, "b": "x" * i} for i in range(20)]
    text = json.dumps(rows)
    for cut in (1, 10, len(text) // 2, len(text) - 1):
        got = complete_rows(text[:cut] + "…")
        assert got == rows[: len(got)] and len(got) <= 20
    assert complete_rows(text) == rows
    assert complete_rows('{"a": 1') == [] and complete_rows("") == []


def test_restrict_undoes_the_rotation_of_a_full_rank_sample():
    rng = np.random.default_rng(9)
    cols = {k: rng.normal(i, i + 1, 2000) for i, k in enumerate("abcd")}
    part = reference_sample(cols, rows=200)
    sub = restrict(part, ["b", "d"])
    assert sub is not None and sub["columns"] == ["b", "d"]
    z = np.asarray(sub["sample"])
    # standardised values: about mean 0 and sd 1 per column
    assert np.allclose(z.mean(0), 0, atol=0.2) and np.allclose(z.std(0), 1, atol=0.2)
    wide = reference_sample({f"c{i}": rng.normal(size=500) for i in range(12)}, rows=100)
    assert restrict(wide, ["c0", "c1"]) is None  # 10 components of 12 columns: cannot be undone


# -- end to end: an instrumented app, real OTLP, a processor on loopback ----------------------

BASE = 2


def test_end_to_end_a_correlation_flip_sent_by_an_instrumented_app(tmp_path: Path):
    """Every call's payload is logged (payload_sample_rate=1.0, payloads up to 64 KB); three
    windows of 40 calls of 5 rows, the correlation of x and y flipped in the last."""
    import infersight
    from infersight.processor.config import load_config
    from infersight.processor.service import Processor

    cfg_path = tmp_path / "p.yaml"
    cfg_path.write_text(
        f"""
storage:
  window: {BASE}s
  rollups: [60s]
models:
  "*":
    windows: [{BASE}s]
evaluation:
  enabled: false
  lateness: 1s
  reopen: 1h
"""
    )
    cfg = load_config(
        cfg_path,
        {
            "db": f"sqlite:///{tmp_path}/p.db",
            "otlp_grpc": "127.0.0.1:0",
            "otlp_http": "127.0.0.1:0",
            "web": "127.0.0.1:0",
        },
    )
    p = Processor(cfg)
    p.start()
    try:
        rng = np.random.default_rng(10)
        p.evaluation.references.push("m", _reference(rng).to_dict())
        infersight.configure(
            endpoint=f"http://127.0.0.1:{p.ports['otlp_http']}",
            protocol="http/protobuf",
            service_name="mv-test",
            log_output="none",
            payload_sample_rate=1.0,
            max_payload_bytes=65536,
            metric_export_interval=3600,
        )

        @infersight.monitor(model="m", version="1")
        def predict(rows: list[dict[str, Any]]) -> list[int]:
            return [int(r["x"] > 0) for r in rows]

        for i in range(3):
            time.sleep(BASE + 0.05 - time.time() % BASE)
            cols = _draw(rng, 200, corr=-CORR if i == 2 else CORR)
            for k in range(0, 200, 5):
                predict(
                    [
                        {"x": float(cols["x"][j]), "y": float(cols["y"][j]), "z": float(cols["z"][j])}
                        for j in range(k, k + 5)
                    ]
                )
            assert infersight.flush()
        infersight.configure(exporter="none", log_output="none")
        stored = sorted({k.start for k, _ in p.storage.iter_windows(BASE) if k.model == "m" and k.role == FEATURE})
        made = p.evaluation.run_once(now=stored[-1] + BASE + 1.0)
    finally:
        p.stop()
    mv = _mv(made)
    judged = [mv[s] for s in stored if s in mv and mv[s].details.get("judged")]
    # each batch landed in a window of its own (export right after it), 200 rows each
    assert [f.details["rows"] for f in judged] == [200, 200, 200], [(f.status, f.details) for f in mv.values()]
    assert [f.status for f in judged] == ["ok", "ok", "breach"]
    assert judged[-1].cause == "joint_shift"
    flipped = [f for f in made if f.kind == "drift" and f.window_start == judged[-1].window_start and not f.version]
    assert {f.subject: f.status for f in flipped} == {"x": "ok", "y": "ok", "z": "ok", SUBJECT: "breach"}
