"""The drift evaluator scores a window's features in batches; its findings are the ones the
per-feature path makes (same verdicts, causes and reasons; numbers to 1e-12), over windows
that are healthy, shifted, rescaled, constant, NaN only, tiny and mixed in sign, with two
model versions (so the per-version views are batched too)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

import infersight.processor.evaluate.drift as drift_module
from infersight.processor.evaluate.findings import Finding
from infersight.processor.evaluate.loop import EvaluationLoop
from infersight.processor.evaluate.settings import parse_evaluation, parse_models
from infersight.processor.storage import FEATURE, WindowKey, WriteBatch, open_storage
from infersight.stats.reference import Reference
from infersight.stats.windows import FeatureWindow

T0 = 1_700_006_400
SIZE = 60
REL = 1e-12


def _column(rng: np.random.Generator, j: int, minute: int) -> np.ndarray:
    n = 300
    kind = (j + minute) % 8
    if kind == 0:
        return rng.normal(0, 1, n)
    if kind == 1:
        return rng.normal(0.8, 1, n)  # shifted: drift, explained one window at a time
    if kind == 2:
        return rng.normal(0, 1, n) * 1000  # unit change
    if kind == 3:
        return np.full(n, 0.5)  # constant
    if kind == 4:
        return np.full(n, np.nan)  # nothing to judge
    if kind == 5:
        return rng.normal(0, 1, 5)  # too few rows
    if kind == 6:
        return -np.abs(rng.normal(0, 1, n))  # negatives and a zero or two
    x = rng.normal(0, 1, n)
    x[: n // 5] = 0.0
    return x


def _run(tmp_path: Any, name: str) -> list[Finding]:
    rng = np.random.default_rng(11)
    store = open_storage(f"sqlite:///{tmp_path}/{name}.db", (SIZE, 3600))
    feats = [f"f{j:02d}" for j in range(24)]
    ref = Reference.from_data({f: rng.normal(0, 1, 3000) for f in feats}, model=None, multivariate=False).to_dict()
    for minute in range(3):
        b = WriteBatch()
        for version in ("1", "2"):
            for j, f in enumerate(feats):
                x = _column(rng, j + (version == "2"), minute)
                b.windows[WindowKey("m", version, FEATURE, f, SIZE, T0 + minute * SIZE)] = FeatureWindow.from_column(
                    x, "numeric"
                ).to_stats()
        store.write(b)
    loop = EvaluationLoop(
        store,
        parse_models({"*": {"windows": ["1m"]}}, "models"),
        parse_evaluation({"lateness": "10s", "evidence": 0}, "evaluation"),
        on_findings=lambda f: None,
    )
    loop.references.push("m", ref, now=T0)
    made = loop.run_once(now=T0 + 3 * SIZE + 10)
    store.close()
    return sorted(made, key=lambda f: f.key)


def _same(a: Any, b: Any, where: str) -> None:
    if isinstance(a, float) and isinstance(b, float):
        assert (math.isnan(a) and math.isnan(b)) or a == b or abs(a - b) <= REL * max(abs(a), abs(b)), (where, a, b)
    elif isinstance(a, dict):
        assert set(a) == set(b), where
        for k in a:
            _same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _same(x, y, f"{where}[{i}]")
    else:
        assert a == b, (where, a, b)


def test_batched_drift_findings_equal_per_feature_ones(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import infersight.stats.drift.combined as combined

    sets: list[int] = []
    real = combined.distances_batch
    monkeypatch.setattr(combined, "distances_batch", lambda a, b: sets.append(len(a)) or real(a, b))
    batched = _run(tmp_path, "batched")
    assert sum(sets) >= 60  # the healthy and negative windows of every view went in batches
    monkeypatch.undo()
    monkeypatch.setattr(
        drift_module, "score_windows", lambda methods, windows: [m.score_window(w) for m, w in zip(methods, windows)]
    )
    single = _run(tmp_path, "single")
    assert [f.key for f in batched] == [f.key for f in single]
    drifts = [f for f in batched if f.kind == "drift" and f.subject != "__multivariate__"]
    assert len(drifts) == 3 * 3 * 24  # three windows, views "", "1" and "2", every feature
    causes = {f.cause for f in drifts if f.status == "breach"}
    assert {"distribution_shift", "unit_change:x1000", "constant_column"} <= causes
    assert any(f.details.get("reason") == "no values in this window" or f.n_current == 0 for f in drifts)
    for a, b in zip(batched, single):
        _same(a.to_dict() | {"evaluated_at": 0}, b.to_dict() | {"evaluated_at": 0}, a.key)
