"""The dashboard in a real headless Chromium (Debian's chromium and chromedriver, driven by
selenium pointed at /usr/bin/chromedriver so nothing is downloaded).

One processor on loopback is fed by an app monitored with ``@infersight.monitor`` over real
OTLP: three 2-second windows, the last with ``x`` shifted, one call that fails, a feature named
``<img src=x onerror=alert(1)>``; one evaluation pass makes the findings the pages show.
Every page must load with no console error; a screenshot of each is written to
``build/screenshots/`` (or ``$INFERSIGHT_SCREENSHOTS``).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

import infersight
from infersight.processor.config import load_config
from infersight.processor.service import Processor
from infersight.stats.reference import Reference

CHROMIUM, DRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
HOSTILE = "<img src=x onerror=alert(1)>"
BASE = 2
SHOTS = Path(os.environ.get("INFERSIGHT_SCREENSHOTS", Path(__file__).resolve().parents[2] / "build" / "screenshots"))

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (os.access(CHROMIUM, os.X_OK) and os.access(DRIVER, os.X_OK)),
        reason=f"no {CHROMIUM} / {DRIVER}: run scripts/install-chromium.sh (Debian's chromium, chromium-driver)",
    ),
]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("dashboard")
    cfg_path = tmp / "p.yaml"
    cfg_path.write_text(
        f"""
storage:
  window: {BASE}s
models:
  "*":
    windows: [{BASE}s]
    reference: {{past_window: {BASE}s}}   # slices: the same slice one window earlier (the model's own: pushed)
evaluation:
  enabled: false
  lateness: 1s
dashboard:
  jaeger_url: http://127.0.0.1:16686
  refresh: 0s
alerts:
  persistence: 1
slo:
  period: 60s
  min_events: 10
  alerts:
    - {{name: fast, severity: page, long: 6s, short: 2s, budget: 10%}}
  objectives:
    - {{name: under-50ms, model: dash, kind: latency, threshold: 50ms, objective: 90%}}
"""
    )
    cfg = load_config(
        cfg_path,
        {"db": f"sqlite:///{tmp}/p.db", "otlp_grpc": "127.0.0.1:0", "otlp_http": "127.0.0.1:0", "web": "127.0.0.1:0"},
    )
    p = Processor(cfg)
    p.start()
    try:
        rng = np.random.default_rng(16)
        n = 4000
        ref = Reference.from_data(
            {
                "x": rng.normal(0, 1, n),
                "y": rng.normal(5, 1, n),
                HOSTILE: rng.normal(0, 1, n),
                "plan": rng.choice(["basic", "pro"], n).astype(object),
            },
            model="dash",
        )
        p.evaluation.references.push("dash", ref.to_dict())
        infersight.configure(
            endpoint=f"http://127.0.0.1:{p.ports['otlp_grpc']}",
            protocol="grpc",
            service_name="dash-api",
            log_output="none",
            payload_sample_rate=1.0,
            metric_export_interval=3600,
        )

        @infersight.monitor(model="dash", version="1", slices=["plan"])
        def predict(row: dict[str, Any]) -> float:
            if row.get("fail"):
                raise ValueError("the model refused this row")
            return float(row["x"]) * 0.5

        for w in range(3):
            time.sleep(BASE + 0.05 - time.time() % BASE)  # one window per batch
            shift = 3.0 if w == 2 else 0.0
            for _ in range(120):
                predict(
                    {
                        "x": float(rng.normal(shift, 1)),
                        "y": float(rng.normal(5, 1)),
                        HOSTILE: float(rng.normal(0, 1)),
                        "plan": str(rng.choice(["basic", "pro"])),
                    }
                )
            if w == 2:
                with pytest.raises(ValueError):
                    predict({"x": 1.0, "y": 5.0, HOSTILE: 0.0, "plan": "pro", "fail": True})
            assert infersight.flush()
        infersight.configure(exporter="none", log_output="none")
        last = max(k.start for k, _ in p.storage.iter_windows(BASE) if k.model == "dash")
        p.evaluation.run_once(now=last + BASE + 1.5)
        yield {"p": p, "web": f"http://127.0.0.1:{p.ports['web']}"}
    finally:
        p.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    profile = Path(os.environ.get("TMPDIR", "/tmp")) / f"infersight-chromium-{os.getpid()}"
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1280,1600",
        f"--user-data-dir={profile}",
    ):
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=opts, service=Service(executable_path=DRIVER))
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def _open(driver: Any, url: str, shot: str) -> list[dict[str, Any]]:
    """Load ``url``, wait for the page's data, save a screenshot; the console entries logged."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get_log("browser")  # drop what earlier pages logged
    driver.get(url)
    WebDriverWait(driver, 30).until(lambda d: d.find_element(By.ID, "status").text != "")
    status = driver.find_element(By.ID, "status").text
    SHOTS.mkdir(parents=True, exist_ok=True)
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1280, min(max(int(height), 800), 6000))
    driver.save_screenshot(str(SHOTS / f"{shot}.png"))
    driver.set_window_size(1280, 1600)
    logs: list[dict[str, Any]] = driver.get_log("browser")
    assert status.startswith("updated"), (status, logs)
    return logs


def _errors(logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in logs if e.get("level") == "SEVERE"]


def _a_request(web: str) -> dict[str, Any]:
    rows = httpx.get(f"{web}/api/models/dash/predictions", params={"start": 0}, timeout=30).json()["predictions"]
    ok = [r for r in rows if r["outputs"] is not None]
    assert ok, "no payload was logged"
    return ok[-1]


def test_every_page_loads_with_no_console_errors(stack: dict[str, Any], browser: Any) -> None:
    web = stack["web"]
    req = _a_request(web)
    for path, shot in (("/", "overview"), ("/models/dash", "model"), (f"/requests/{req['request_id']}", "request")):
        logs = _open(browser, web + path, shot)
        assert _errors(logs) == [], (path, logs)
        assert (SHOTS / f"{shot}.png").stat().st_size > 10_000
    body = browser.find_element("tag name", "body").text
    assert "Request " + req["request_id"] in body


def test_overview_shows_health_and_links_to_the_model(stack: dict[str, Any], browser: Any) -> None:
    from selenium.webdriver.common.by import By

    _open(browser, stack["web"] + "/", "overview")
    link = browser.find_element(By.LINK_TEXT, "dash")
    assert link.get_attribute("href").endswith("/models/dash")
    badges = [b.text for b in browser.find_elements(By.CSS_SELECTOR, "td .badge")]
    assert "breach" in badges  # x drifted in the last window


def test_an_alerts_evidence_link_opens_the_request_it_names(stack: dict[str, Any], browser: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    web = stack["web"]
    incidents = httpx.get(f"{web}/api/alerts", params={"state": "open"}, timeout=30).json()["incidents"]
    evidence = [e for i in incidents for e in i.get("evidence") or ()]
    assert evidence, incidents
    _open(browser, web + "/", "overview")
    assert browser.find_elements(By.CSS_SELECTOR, "li.alert")
    slo_cells = [td.text for td in browser.find_elements(By.CSS_SELECTOR, "section td")]
    assert "under-50ms" in slo_cells
    link = browser.find_elements(By.CSS_SELECTOR, "li.alert .evidence a.req")[0]
    target = link.get_attribute("href")
    assert target.startswith(web + "/requests/")
    link.click()
    browser.get_log("browser")
    WebDriverWait(browser, 30).until(lambda d: d.find_element(By.ID, "status").text.startswith("updated"))
    assert browser.current_url == target
    assert browser.find_elements(By.CSS_SELECTOR, "svg.waterfall rect.bar")  # its spans were kept
    assert _errors(browser.get_log("browser")) == []


def test_heat_map_has_one_cell_per_feature_and_window(stack: dict[str, Any], browser: Any) -> None:
    from selenium.webdriver.common.by import By

    web = stack["web"]
    heat = httpx.get(f"{web}/api/models/dash/heatmap", params={"start": 0}, timeout=30).json()
    assert {"x", "y", HOSTILE} <= set(heat["features"]) and len(heat["windows"]) >= 1
    _open(browser, web + "/models/dash", "model")
    cells = browser.find_elements(By.CSS_SELECTOR, "svg.heatmap rect.cell")
    assert len(cells) == len(heat["features"]) * len(heat["windows"])
    pairs = {(c.get_attribute("data-feature"), c.get_attribute("data-window")) for c in cells}
    assert pairs == {(f, str(w)) for f in heat["features"] for w in heat["windows"]}
    # the shifted feature's newest cell is the one farthest past its threshold, and coloured so
    col = str(heat["windows"][-1])
    fill = {
        c.get_attribute("data-feature"): c.get_attribute("fill") for c in cells if c.get_attribute("data-window") == col
    }
    sev = {
        f: heat["cells"][i][-1]["severity"]
        for i, f in enumerate(heat["features"])
        if heat["cells"][i][-1] and heat["cells"][i][-1]["severity"] is not None and not f.startswith("__")
    }  # (the joint test's statistic, __multivariate__, is on its own scale)
    assert sev["x"] > 1 and sev["x"] == max(sev.values()) and fill["x"] != fill["y"]


def test_a_hostile_feature_name_shows_as_text_and_runs_nothing(stack: dict[str, Any], browser: Any) -> None:
    from selenium.common.exceptions import NoAlertPresentException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    logs = _open(browser, stack["web"] + "/models/dash", "model")
    assert _errors(logs) == []
    labels = [t.get_attribute("textContent") for t in browser.find_elements(By.CSS_SELECTOR, "svg.heatmap text.flabel")]
    assert any(HOSTILE[:20] in t for t in labels), labels
    select = Select(browser.find_element(By.ID, "feature"))
    assert HOSTILE in [o.get_attribute("textContent") for o in select.options]
    select.select_by_value(HOSTILE)  # its distribution is drawn with its name as a heading
    WebDriverWait(browser, 20).until(
        lambda d: d.find_element(By.CSS_SELECTOR, "#distribution h3").get_attribute("textContent") == HOSTILE
    )
    assert browser.execute_script("return document.images.length") == 0  # no <img> was made
    with pytest.raises(NoAlertPresentException):
        browser.switch_to.alert.text  # noqa: B018 - reading it is what raises
    assert _errors(browser.get_log("browser")) == []


def test_request_view_shows_spans_payload_and_jaeger_link(stack: dict[str, Any], browser: Any) -> None:
    from selenium.webdriver.common.by import By

    web = stack["web"]
    req = _a_request(web)
    api = httpx.get(f"{web}/api/requests/{req['request_id']}", timeout=30).json()
    assert api["spans"] and api["prediction"]["inputs"] == req["inputs"]
    logs = _open(browser, f"{web}/requests/{req['request_id']}", "request")
    assert _errors(logs) == []
    bars = browser.find_elements(By.CSS_SELECTOR, "svg.waterfall rect.bar")
    assert len(bars) == len(api["spans"]) >= 1
    names = [
        t.get_attribute("textContent") for t in browser.find_elements(By.CSS_SELECTOR, "svg.waterfall text.span-name")
    ]
    assert "predict dash" in names
    payload = browser.find_elements(By.CSS_SELECTOR, "pre.json")[0].get_attribute("textContent")
    assert json.loads(payload) == req["inputs"] and HOSTILE in payload
    link = browser.find_element(By.LINK_TEXT, "open in Jaeger")
    assert link.get_attribute("href") == f"http://127.0.0.1:16686/trace/{req['trace_id']}"
    # the same request by its trace ID
    _open(browser, f"{web}/requests/{req['trace_id']}", "request-by-trace")
    assert len(browser.find_elements(By.CSS_SELECTOR, "svg.waterfall rect.bar")) == len(bars)


def test_the_failed_call_is_kept_and_reached_from_its_trace(stack: dict[str, Any], browser: Any) -> None:
    from selenium.webdriver.common.by import By

    web = stack["web"]
    rows = httpx.get(f"{web}/api/models/dash/predictions", params={"start": 0}, timeout=30).json()["predictions"]
    failed = [r for r in rows if r["outputs"] is None and r["inputs"] and r["inputs"].get("fail")]
    assert failed, "the failing call's payload was not logged"
    kept = stack["p"].storage.trace_items(trace_id=failed[0]["trace_id"])
    assert kept and all(i.flagged for i in kept)  # an error keeps its trace past `recent`
    _open(browser, f"{web}/requests/{failed[0]['request_id']}", "request-error")
    assert browser.find_elements(By.CSS_SELECTOR, "svg.waterfall rect.bar.error")


def test_the_model_page_lists_each_slice_with_what_moved_in_it(stack: dict[str, Any], browser: Any) -> None:
    """``@monitor(slices=["plan"])``: each plan is judged against its own previous window; x
    moved in the last window in both, and the Slices section says so, one row per slice."""
    from selenium.webdriver.common.by import By

    web = stack["web"]
    info = httpx.get(f"{web}/api/models/dash", timeout=30).json()
    assert info["slices"] == ["plan=basic", "plan=pro"]
    found = httpx.get(f"{web}/api/models/dash/findings", params={"kind": "drift", "start": 0}, timeout=30).json()
    moved = {(f["slice"], f["subject"]) for f in found["findings"] if f["slice"] and f["status"] == "breach"}
    assert {("plan=basic", "x"), ("plan=pro", "x")} <= moved
    _open(browser, web + "/models/dash", "model")
    heading = browser.find_element(By.XPATH, "//section[h2[text()='Slices']]")
    rows = heading.find_elements(By.CSS_SELECTOR, "tbody tr")
    got = {
        r.find_elements(By.TAG_NAME, "td")[0].text: [c.text for c in r.find_elements(By.TAG_NAME, "td")] for r in rows
    }
    assert sorted(got) == ["plan=basic", "plan=pro"]
    for cells in got.values():
        assert int(cells[1]) >= 1 and "x" in cells[4].split(", ")
