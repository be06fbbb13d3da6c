"""``infersight report`` from files: the page's drift table is ``infersight drift --format
json`` on the same inputs, every feature gets a plot, what came from the data is text (never
markup), and the command's errors are as clear as ``drift``'s."""

from __future__ import annotations

import csv
import json
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from infersight.cli import main
from infersight.report.plots import categories_svg, histogram_svg
from infersight.stats.reference import NumericSummary
from support.cli import run_cli

EVIL = "<img src=x onerror=alert(1)>"
EVIL_CATEGORY = "<script>alert(2)</script>"


class Page(HTMLParser):
    """Every element with its attributes and the classes of its ancestors; the text of each."""

    VOID = {"meta", "br", "img", "input", "link", "hr", "line", "rect", "polyline", "path", "circle"}

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[dict[str, Any]] = []
        self.stack: list[dict[str, Any]] = []
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        el = {"tag": tag, "attrs": dict(attrs), "parents": [p for p in self.stack], "text": ""}
        self.elements.append(el)
        if tag not in self.VOID:
            self.stack.append(el)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append({"tag": tag, "attrs": dict(attrs), "parents": list(self.stack), "text": ""})

    def handle_endtag(self, tag: str) -> None:
        for i in range(len(self.stack) - 1, -1, -1):
            if self.stack[i]["tag"] == tag:
                del self.stack[i:]
                break

    def handle_data(self, data: str) -> None:
        for el in self.stack:
            el["text"] += data

    def find(self, tag: str, cls: str | None = None) -> list[dict[str, Any]]:
        return [
            e
            for e in self.elements
            if e["tag"] == tag and (cls is None or cls in (e["attrs"].get("class") or "").split())
        ]

    @staticmethod
    def inside(el: dict[str, Any], tag: str, cls: str) -> bool:
        return any(p["tag"] == tag and cls in (p["attrs"].get("class") or "").split() for p in el["parents"])


def _write(path: Path, header: list[str], rows: list[list[Any]]) -> Path:
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A reference of five features and data where: ``amount`` is rescaled ×1000, ``plan`` gains
    a never-seen category (markup), ``age`` shifts and loses 10% to NaN, ``gone`` is not sent,
    the feature named like an <img> tag is unchanged, and ``extra`` is new."""
    tmp = tmp_path_factory.mktemp("report")
    rng = np.random.default_rng(16)
    n, m = 4000, 3000
    train = _write(
        tmp / "train.csv",
        ["age", "amount", "plan", EVIL, "gone"],
        [
            [rng.normal(40, 10), rng.lognormal(3, 1), rng.choice(["basic", "pro", "team"], p=[0.5, 0.3, 0.2]), x, y]
            for x, y in zip(rng.normal(size=n), rng.normal(size=n))
        ],
    )
    data = _write(
        tmp / "data.csv",
        ["age", "amount", "plan", EVIL, "extra"],
        [
            [
                "nan" if rng.random() < 0.1 else rng.normal(45, 10),
                rng.lognormal(3, 1) * 1000,
                rng.choice(["basic", "pro", "team", EVIL_CATEGORY], p=[0.4, 0.3, 0.2, 0.1]),
                x,
                1,
            ]
            for x in rng.normal(size=m)
        ],
    )
    ref = tmp / "reference.json"
    assert main(["profile", str(train), "--model", "churn", "-o", str(ref)]) == 0
    return {"dir": str(tmp), "reference": str(ref), "data": str(data), "train": str(train)}


def _drift_json(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    capsys.readouterr()
    assert main(["drift", *args, "--format", "json"]) == 0
    doc: dict[str, Any] = json.loads(capsys.readouterr().out)
    return doc


def _report(capsys: pytest.CaptureFixture[str], out: Path, *args: str) -> Page:
    capsys.readouterr()
    assert main(["report", *args, "-o", str(out)]) == 0
    said = capsys.readouterr().out
    assert said.startswith(f"wrote {out}: ")
    return Page(out.read_text(encoding="utf-8"))


def _table_rows(page: Page, table_index: int = 0) -> dict[str, dict[str, Any]]:
    """``data-feature`` → the row's numbers, from the ``table_index``-th drift table."""
    tables = page.find("table", "drift-table")
    table = tables[table_index]
    rows = [e for e in page.find("tr") if any(p is table for p in e["parents"]) and "data-feature" in e["attrs"]]
    out = {}
    for r in rows:
        a = r["attrs"]
        out[a["data-feature"]] = {
            "method": a["data-method"],
            "statistic": json.loads(a["data-statistic"]),
            "threshold": json.loads(a["data-threshold"]),
            "p_value": json.loads(a["data-p-value"]),
            "drift": json.loads(a["data-drift"]),
            "cause": a["data-cause"] or None,
            "text": r["text"],
        }
    return out


def _expected(window: dict[str, Any]) -> dict[str, dict[str, Any]]:
    rows = {k: dict(v) for k, v in window["features"].items()}
    for k in ("multivariate", "prediction", "label_shift"):
        if window.get(k):
            rows[f"[{k}]"] = dict(window[k])
    return {
        k: {f: v[f] for f in ("method", "statistic", "threshold", "p_value", "drift", "cause")} for k, v in rows.items()
    }


def test_the_table_is_the_drift_json_on_the_same_inputs(files, tmp_path, capsys):
    drift = _drift_json(capsys, files["reference"], files["data"])
    page = _report(capsys, tmp_path / "r.html", files["reference"], files["data"])
    rows = _table_rows(page)
    assert {k: {f: v[f] for f in v if f != "text"} for k, v in rows.items()} == _expected(drift["windows"][0])
    # the embedded copy is the whole JSON, untouched
    island = [e for e in page.find("script") if e["attrs"].get("id") == "infersight-drift"]
    assert len(island) == 1 and island[0]["attrs"]["type"] == "application/json"
    assert json.loads(island[0]["text"]) == drift
    # what was injected is what the table says, in words
    assert rows["amount"]["cause"] == "unit_change:x1000" and "multiplied by 1000" in rows["amount"]["text"]
    assert rows["plan"]["cause"] == "unseen_categories" and "never saw" in rows["plan"]["text"]
    assert rows["age"]["drift"] and rows["gone"]["cause"] == "feature_missing"
    assert not rows[EVIL]["drift"]
    # the visible numbers are the JSON's, to three significant figures
    assert f"{drift['windows'][0]['features']['age']['statistic']:.3g}" in rows["age"]["text"]


def test_the_summary_says_how_many_drifted_and_what_is_missing_or_extra(files, tmp_path, capsys):
    page = _report(capsys, tmp_path / "r.html", files["reference"], files["data"])
    summary = page.find("section", "summary")[0]
    assert "summary drifted" == summary["attrs"]["class"]
    head = [e for e in page.find("p", "headline")][0]["text"]
    assert head == "4 of 5 features drifted"  # amount, plan, age, gone (missing counts, as in drift)
    assert "Missing from the data: gone" in summary["text"]
    assert "not in the reference (not judged): extra" in summary["text"]


def test_every_feature_gets_a_plot_and_new_categories_are_marked(files, tmp_path, capsys):
    page = _report(capsys, tmp_path / "r.html", files["reference"], files["data"])
    cards = {e["attrs"]["data-feature"]: e for e in page.find("section", "feature")}
    assert set(cards) == {"age", "amount", "plan", EVIL, "gone"}
    svgs = page.find("svg", "plot")
    for name, card in cards.items():
        mine = [s for s in svgs if any(p is card for p in s["parents"])]
        assert mine, f"no plot for {name}"
        kinds = {c for s in mine for c in s["attrs"]["class"].split()} - {"plot"}
        assert kinds == ({"categories"} if name == "plan" else {"histogram", "ecdf"})
    plan_bars = [e for e in page.find("rect", "new") if any(p is cards["plan"] for p in e["parents"])]
    assert len(plan_bars) == 1  # the one category the reference never saw
    assert f"{EVIL_CATEGORY[:19]}… (new)" in cards["plan"]["text"]
    assert "Not in the data" in cards["gone"]["text"]
    # numbers: the reference drawn as filled bars, the data as an outline
    assert [e for e in page.find("rect", "ref") if any(p is cards["age"] for p in e["parents"])]
    assert [e for e in page.find("polyline", "cur") if any(p is cards["age"] for p in e["parents"])]


def test_what_came_from_the_data_is_text_never_markup(files, tmp_path, capsys):
    out = tmp_path / "r.html"
    page = _report(capsys, out, files["reference"], files["data"])
    text = out.read_text(encoding="utf-8")
    assert EVIL not in text and EVIL_CATEGORY not in text
    assert "&lt;img src=x onerror=alert(1)&gt;" in text
    assert not page.find("img")
    assert [e["attrs"].get("type") for e in page.find("script")] == ["application/json"]
    assert not [e for e in page.elements if any(k.startswith("on") for k in e["attrs"])]
    # the name reads as itself wherever it is shown
    assert any(e["text"] == EVIL for e in page.find("a"))
    assert any(e["attrs"].get("data-feature") == EVIL for e in page.find("section", "feature"))


def test_data_quality_shows_missing_rates_by_kind_and_schema_violations(files, tmp_path, capsys):
    page = _report(capsys, tmp_path / "r.html", files["reference"], files["data"])
    table = page.find("table", "quality")[0]
    rows = {
        e["attrs"]["data-feature"]: e
        for e in page.find("tr")
        if any(p is table for p in e["parents"])
        if "data-feature" in e["attrs"]
    }
    assert set(rows) == {"age", "amount", "plan", EVIL, "gone"}
    cells = [e for e in page.find("td") if any(p is rows["age"] for p in e["parents"])]
    nan_cell = cells[7]  # feature, kind, rows ref, rows, missing, absent, null, nan
    assert nan_cell["text"].endswith("%") and 8.0 < float(nan_cell["text"][:-1]) < 12.0
    assert "high" in nan_cell["attrs"]["class"]
    assert "range:" in rows["amount"]["text"] and "allowed:" in rows["plan"]["text"]
    assert "not in the data" in rows["gone"]["text"]


def test_windows_fold_below_the_latest_and_a_grid_shows_them_all(files, tmp_path, capsys):
    drift = _drift_json(capsys, files["reference"], files["data"], "--chunk-size", "1000", "--no-multivariate")
    page = _report(
        capsys, tmp_path / "r.html", files["reference"], files["data"], "--chunk-size", "1000", "--no-multivariate"
    )
    windows = drift["windows"]
    assert len(windows) == 3
    tables = page.find("table", "drift-table")
    assert len(tables) == 3 and len(page.find("details")) == 2
    latest = _table_rows(page, 0)
    assert {k: {f: v[f] for f in v if f != "text"} for k, v in latest.items()} == _expected(windows[-1])
    grid = page.find("table", "grid")[0]
    cells = [e for e in page.find("td") if any(p is grid for p in e["parents"]) and "name" not in e["attrs"]["class"]]
    assert len(cells) == len(windows) * len(windows[0]["features"])
    assert "in the latest window" in page.find("p", "headline")[0]["text"]


def test_a_plain_column_judged_with_a_chosen_method_matches_drift_too(files, tmp_path, capsys):
    args = (files["reference"], files["data"], "--method", "psi", "--columns", "age", "amount", "--alpha", "0.01")
    drift = _drift_json(capsys, *args)
    page = _report(capsys, tmp_path / "r.html", *args)
    rows = _table_rows(page)
    assert {k: {f: v[f] for f in v if f != "text"} for k, v in rows.items()} == _expected(drift["windows"][0])
    assert any("population stability index" in e["text"].lower() for e in page.find("dd"))


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["nope.json", "{data}"], "nope.json"),
        (["{reference}", "nope.csv"], "nope.csv"),
        (["{reference}", "{train_other}"], "has none of the features of reference"),
        (["{reference}"], "give REFERENCE and DATA"),
        (["{reference}", "{data}", "--model", "churn"], "--model only apply with --processor"),
        (["{reference}", "{data}", "--columns", "nope"], "not in the reference"),
        (["--processor", "http://127.0.0.1:9", "--model", "m", "{reference}", "{data}"], "drop DATA"),
        (["--processor", "http://127.0.0.1:9"], "--processor needs --model"),
        (["--processor", "ftp://x", "--model", "m"], "is not an http(s) URL"),
        (["--processor", "http://127.0.0.1:9", "--model", "m", "--chunk-size", "5"], "--chunk-size only apply"),
        (["--processor", "http://127.0.0.1:9", "--model", "m"], "cannot reach the processor at http://127.0.0.1:9"),
    ],
)
def test_errors_name_the_thing_and_the_fix(files, tmp_path, capsys, args, says):
    other = _write(tmp_path / "other.csv", ["q", "r"], [[1, 2], [3, 4]])
    filled = [a.format(**files, train_other=str(other)) for a in args]
    capsys.readouterr()
    assert main(["report", *filled, "-o", str(tmp_path / "r.html")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("infersight report: ") and says in err and "Traceback" not in err
    assert not (tmp_path / "r.html").exists()


def test_a_missing_output_folder_is_named_before_any_work(files, tmp_path, capsys):
    out = tmp_path / "no" / "such" / "r.html"
    assert main(["report", files["reference"], files["data"], "-o", str(out)]) == 2
    assert f"the folder {str(out.parent)!r} does not exist" in capsys.readouterr().err


def test_without_scipy_the_command_names_the_extra(files, tmp_path):
    ran = run_cli("report", files["reference"], files["data"], "-o", str(tmp_path / "r.html"), block=["scipy"])
    assert ran.returncode == 2 and "Traceback" not in ran.stderr
    assert "pip install 'infersight[stats]'" in ran.stderr


def test_category_plots_pool_the_tail_and_mark_only_unseen_categories():
    ref = {f"c{i}": 100 - i for i in range(20)}
    cur = {**ref, "fresh": 50}
    svg = categories_svg(ref, cur)
    page = Page(svg)
    assert len(page.find("rect", "new")) == 1 and "fresh (new)" in svg
    assert "(9 more)" in svg  # 21 categories: the 11 largest and the new one drawn, 9 pooled
    assert "(new)" not in categories_svg(ref, ref)


def test_identical_samples_draw_the_same_bars():
    rng = np.random.default_rng(3)
    s = NumericSummary.from_values(rng.normal(size=2000))
    page = Page(histogram_svg(s, s))
    heights = [float(e["attrs"]["height"]) for e in page.find("rect", "ref")]
    line = page.find("polyline", "cur")[0]["attrs"]["points"].split()
    tops = [float(p.split(",")[1]) for p in line[1:-1:2]]
    bottom = 190 - 34
    drawn = [round(bottom - t, 1) for t in tops if bottom - t > 0.05]
    assert heights and np.allclose(sorted(heights), sorted(drawn), atol=0.11)
