"""``infersight report --processor``: a started processor on loopback holds six stored windows
(pushed as the ingest writer stores them) and a reference pushed over its API; the report's
table is what ``/api/models/{model}/drift`` answers for the range, the summary says since
when the shifted feature drifts, the plots read the range's sketches, and a token-protected
processor asks for the token by name."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from test_report import EVIL, Page, _table_rows

from infersight.cli import main
from infersight.processor.config import load_config
from infersight.processor.service import Processor
from infersight.processor.storage.base import FEATURE, WindowKey, WriteBatch
from infersight.stats.reference import Reference
from infersight.stats.windows import FeatureWindow

T0 = 1_700_006_400  # a multiple of a day
SIZE = 60
WINDOWS = 6
SHIFT_FROM = 3  # x moves from this window on
NEW_FROM = 4  # plan gets a category the reference never saw from this window on


def _start(tmp_path: Path, token: str | None = None) -> Processor:
    cfg_file = tmp_path / "processor.yaml"
    cfg_file.write_text(
        f"""
storage:
  window: {SIZE}s
models:
  "*":
    windows: [{SIZE}s]
evaluation:
  enabled: false
"""
    )
    values: dict[str, Any] = {
        "db": f"sqlite:///{tmp_path}/p.db",
        "otlp_grpc": "127.0.0.1:0",
        "otlp_http": "127.0.0.1:0",
        "web": "127.0.0.1:0",
    }
    if token:
        values["token"] = token
    p = Processor(load_config(cfg_file, values))
    p.start()
    return p


def _window(rng: np.random.Generator, i: int, n: int = 800) -> dict[str, np.ndarray]:
    plan = rng.choice(["basic", "pro", "team"], n, p=[0.5, 0.3, 0.2]).astype(object)
    if i >= NEW_FROM:
        plan[: n // 5] = "<b>enterprise</b>"
    return {
        "x": rng.normal(1.5 if i >= SHIFT_FROM else 0.0, 1, n),
        EVIL: rng.normal(5, 2, n),
        "plan": plan,
    }


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> Any:
    tmp = tmp_path_factory.mktemp("report-processor")
    rng = np.random.default_rng(16)
    p = _start(tmp)
    ref = Reference.from_data(
        {
            "x": rng.normal(0, 1, 5000),
            EVIL: rng.normal(5, 2, 5000),
            "plan": rng.choice(["basic", "pro", "team"], 5000, p=[0.5, 0.3, 0.2]).astype(object),
            "gone": rng.normal(size=5000),
        },
        model="churn",
    )
    web = f"http://127.0.0.1:{p.ports['web']}"
    r = httpx.post(f"{web}/api/models/churn/reference", json=ref.to_dict(), timeout=30)
    assert r.status_code == 201, r.text
    kinds = {"x": "numeric", EVIL: "numeric", "plan": "categorical"}
    for i in range(WINDOWS):
        batch = WriteBatch()
        for name, col in _window(rng, i).items():
            key = WindowKey("churn", "1", FEATURE, name, SIZE, T0 + i * SIZE)
            batch.windows[key] = FeatureWindow.from_column(col, kinds[name]).to_stats()
        p.storage.write(batch)
    ref_file = tmp / "reference.json"
    ref.save(ref_file)
    yield {"p": p, "web": web, "ref": str(ref_file), "tmp": tmp}
    p.stop()


def _range() -> list[str]:
    return ["--start", str(T0), "--end", str(T0 + WINDOWS * SIZE)]


def test_the_table_is_the_processors_drift_answer_for_the_range(stored, tmp_path, capsys):
    out = tmp_path / "churn.html"
    capsys.readouterr()
    code = main(["report", "--processor", stored["web"], "--model", "churn", *_range(), stored["ref"], "-o", str(out)])
    assert code == 0, capsys.readouterr().err
    assert capsys.readouterr().out == f"wrote {out}: 3 of 4 features drifted in the latest window\n"
    api = httpx.get(
        f"{stored['web']}/api/models/churn/drift", params={"start": T0, "end": T0 + WINDOWS * SIZE}, timeout=30
    ).json()
    assert len(api["windows"]) == WINDOWS
    page = Page(out.read_text(encoding="utf-8"))
    latest = _table_rows(page, 0)
    expected = {
        k: {f: v[f] for f in ("method", "statistic", "threshold", "p_value", "drift", "cause")}
        for k, v in api["windows"][-1]["features"].items()
    }
    assert {k: {f: v[f] for f in v if f != "text"} for k, v in latest.items()} == expected
    assert latest["x"]["drift"] and latest["plan"]["cause"] == "unseen_categories"
    assert latest["gone"]["cause"] == "feature_missing" and not latest[EVIL]["drift"]
    # earlier windows, each its own table, equal the API's too
    for back in range(1, WINDOWS):
        rows = _table_rows(page, back)
        want = api["windows"][-1 - back]["features"]
        assert {k: v["statistic"] for k, v in rows.items()} == {k: v["statistic"] for k, v in want.items()}


def test_the_summary_says_since_when_and_the_plots_have_both_sides(stored, tmp_path, capsys):
    out = tmp_path / "churn.html"
    main(["report", "--processor", stored["web"], "--model", "churn", *_range(), stored["ref"], "-o", str(out)])
    text = out.read_text(encoding="utf-8")
    page = Page(text)
    head = page.find("p", "headline")[0]["text"]
    # "gone" has been missing (drift, as the CLI counts it) since the range began; x since it moved
    assert head.startswith("3 of 4 features drifted in the latest window")
    assert head.endswith(f"since {np.datetime64(T0, 's')}Z")
    since = f"{np.datetime64(T0 + SHIFT_FROM * SIZE, 's')}Z"
    summary = page.find("section", "summary")[0]["text"]
    assert f"x (since {since})" in summary and f"plan (since {np.datetime64(T0 + NEW_FROM * SIZE, 's')}Z)" in summary
    cards = {e["attrs"]["data-feature"]: e for e in page.find("section", "feature")}
    assert set(cards) == {"x", "plan", EVIL, "gone"}
    for name in ("x", EVIL):
        mine = [e for e in page.find("rect", "ref") if any(p is cards[name] for p in e["parents"])]
        line = [e for e in page.find("polyline", "cur") if any(p is cards[name] for p in e["parents"])]
        assert mine and line, name
    assert "&lt;b&gt;enterprise&lt;/b&gt; (new)" in text and "<b>enterprise" not in text
    assert EVIL not in text
    assert len(page.find("table", "grid")) == 1


def test_without_the_reference_file_the_plots_show_the_range_only(stored, tmp_path, capsys):
    out = tmp_path / "churn.html"
    assert main(["report", "--processor", stored["web"], "--model", "churn", *_range(), "-o", str(out)]) == 0
    page = Page(out.read_text(encoding="utf-8"))
    assert "No reference profile was given" in page.find("section", "summary")[0]["text"]
    assert not page.find("rect", "ref") and page.find("polyline", "cur")


def test_an_unknown_model_lists_the_known_ones(stored, tmp_path, capsys):
    code = main(["report", "--processor", stored["web"], "--model", "nope", "-o", str(tmp_path / "r.html")])
    err = capsys.readouterr().err
    assert code == 2 and "no stored windows for model 'nope'; it has churn" in err


def test_a_token_protected_processor_asks_for_the_token(tmp_path, capsys, monkeypatch):
    p = _start(tmp_path, token="s3cret")
    try:
        web = f"http://127.0.0.1:{p.ports['web']}"
        monkeypatch.delenv("INFERSIGHT_PROCESSOR_TOKEN", raising=False)
        assert main(["report", "--processor", web, "--model", "churn", "-o", str(tmp_path / "r.html")]) == 2
        assert "wants a bearer token: pass --token TOKEN" in capsys.readouterr().err
        code = main(
            ["report", "--processor", web, "--model", "churn", "--token", "wrong", "-o", str(tmp_path / "r.html")]
        )
        assert code == 2 and "the --token given was refused" in capsys.readouterr().err
        # the right token gets through to the next question: this processor has no windows yet
        code = main(
            ["report", "--processor", web, "--model", "churn", "--token", "s3cret", "-o", str(tmp_path / "r.html")]
        )
        assert code == 2 and "no stored windows for model 'churn'; it has (none)" in capsys.readouterr().err
    finally:
        p.stop()
