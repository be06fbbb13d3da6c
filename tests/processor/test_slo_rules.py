"""``infersight slo-rules``: the generated Prometheus rules, checked and run by the real
``promtool`` (``promtool check rules``, ``promtool test rules``), and cross-checked against the
processor's own burn-rate arithmetic (``slo.burn.judge``) on the same series.

promtool comes from Debian's prometheus package (``scripts/install-prometheus.sh``, run by
``scripts/setup.sh --tests``); without it these tests FAIL, they never skip.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

from infersight.feature_stats import DURATION_BOUNDS
from infersight.processor.config import load_config
from infersight.processor.slo.burn import BUDGET_ALERT, judge
from infersight.processor.slo.rules import RulesError, render_rules
from infersight.processor.slo.settings import SLOSettings
from tests.support.cli import run_cli

COUNT = "ml_inference_duration_seconds_count"
BUCKET = "ml_inference_duration_seconds_bucket"
ALERTS = ("InfersightSLOBurnRate", "InfersightSLOBudgetExhausted", "InfersightSLONoData")

ALL_KINDS = """
slo:
  objectives:
    - {name: latency, model: churn, kind: latency, threshold: 2.5s, objective: 99%}
    - {name: fast, model: churn, kind: latency, threshold: 1s, objective: 90%}
    - {name: availability, model: "*", kind: availability, objective: 99.9%}
    - {name: valid-inputs, model: "churn-[ab]*", kind: data_quality, objective: 99.5%, period: 28d}
    - {name: accuracy, model: churn, kind: model_quality, objective: 90%}
"""

# windows shrunk so that promtool's series stay short: a page at 14.4x over 1h and 5m, a
# ticket at 3x over 6h and 30m, a two-day period
SMALL = """
slo:
  period: 2d
  min_events: 20
  no_data: 15m
  alerts:
    - {name: fast, severity: page, long: 1h, short: 5m, factor: 14.4}
    - {name: slow, severity: ticket, long: 6h, short: 30m, factor: 3}
  objectives:
    - {name: availability, model: churn, kind: availability, objective: 99%}
"""


@pytest.fixture(scope="module")
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail(
            "promtool is not installed: run scripts/install-prometheus.sh (setup.sh --tests does)", pytrace=False
        )
    return path


def _config(tmp_path: Path, text: str, name: str = "processor.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def _settings(path: Path) -> SLOSettings:
    s = load_config(path).sections["slo"]
    assert isinstance(s, SLOSettings)
    return s


def _run(promtool: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool, *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def _check_ok(proc: subprocess.CompletedProcess[str]) -> None:
    assert proc.returncode == 0, f"promtool failed:\n{proc.stdout}\n{proc.stderr}"


def _rules_file(tmp_path: Path, config: str) -> tuple[Path, dict[str, Any]]:
    cfg = _config(tmp_path, config)
    out = tmp_path / "slo.rules.yml"
    proc = run_cli("slo-rules", "--config", str(cfg), "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    return out, yaml.safe_load(out.read_text())


def _rendered(doc: dict[str, Any], alertname: str, slo_alert: str, labels: dict[str, str]) -> dict[str, str]:
    """The annotations of one alert rule with its ``$labels`` filled in, as Prometheus renders them."""
    for g in doc["groups"]:
        for r in g["rules"]:
            if r.get("alert") == alertname and r["labels"]["slo_alert"] == slo_alert:
                return {
                    k: re.sub(r"\{\{ \$labels\.(\w+) \}\}", lambda m: labels[m.group(1)], v)
                    for k, v in r["annotations"].items()
                }
    raise AssertionError(f"no rule {alertname} {slo_alert}")


def _expected(doc: dict[str, Any], model: str, firing: Sequence[tuple[str, str, str]]) -> list[dict[str, Any]]:
    """promtool ``alert_rule_test`` entries: for every alert name, the alerts expected firing
    (``(alertname, slo_alert, severity)``) with their full labels and annotations."""
    out = []
    for name in ALERTS:
        exp = []
        for alertname, slo_alert, severity in firing:
            if alertname != name:
                continue
            labels = {
                "ml_model_name": model,
                "slo": "availability",
                "slo_model": model,
                "slo_alert": slo_alert,
                "severity": severity,
            }
            exp.append({"exp_labels": labels, "exp_annotations": _rendered(doc, name, slo_alert, labels)})
        out.append({"alertname": name, "exp_alerts": exp})
    return out


def _promtool_test(
    promtool: str, tmp_path: Path, rules: Path, tests: list[dict[str, Any]]
) -> subprocess.CompletedProcess[str]:
    spec = {"rule_files": [rules.name], "evaluation_interval": "1m", "tests": tests}
    path = tmp_path / "slo.test.yml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return _run(promtool, "test", "rules", path.name, cwd=tmp_path)


def _series(model: str, total: str, errors: str | None = None) -> list[dict[str, str]]:
    out = [{"series": f'{COUNT}{{ml_model_name="{model}",ml_model_version="1"}}', "values": total}]
    if errors is not None:
        out.append(
            {
                "series": f'{COUNT}{{ml_model_name="{model}",ml_model_version="1",error_type="TimeoutError"}}',
                "values": errors,
            }
        )
    return out


# -- promtool check rules ---------------------------------------------------------------------


def test_rules_for_every_kind_pass_promtool_check(tmp_path: Path, promtool: str) -> None:
    out, doc = _rules_file(tmp_path, ALL_KINDS)
    _check_ok(_run(promtool, "check", "rules", out.name, cwd=tmp_path))
    text = out.read_text()
    # model quality has no Prometheus series: left out, and the file says why
    assert "# Skipped: accuracy (model churn, model_quality)" in text
    groups = {g["name"]: g["rules"] for g in doc["groups"]}
    assert sorted(groups) == [
        "infersight-slo-all-availability",
        "infersight-slo-churn-ab-valid-inputs",
        "infersight-slo-churn-fast",
        "infersight-slo-churn-latency",
    ]
    latency = {r.get("record"): r["expr"] for r in groups["infersight-slo-churn-latency"] if "record" in r}
    # every alert window (long and short) and the period has its error ratio
    assert sorted(k for k in latency if k and "error_ratio" in k) == sorted(
        f"infersight_slo:error_ratio:rate{w}" for w in ("5m", "30m", "1h", "2h", "6h", "1d", "3d", "30d")
    )
    assert 'le="2.5"' in latency["infersight_slo:error_ratio:rate1h"]
    fast = next(r["expr"] for r in groups["infersight-slo-churn-fast"] if r.get("record", "").endswith("rate5m"))
    assert 'le=~"1|1\\\\.0"' in fast  # both spellings of a whole-number bound
    dq = {r.get("record"): r["expr"] for r in groups["infersight-slo-churn-ab-valid-inputs"]}
    assert 'ml_model_name=~"churn\\\\-[ab].*"' in dq["infersight_slo:error_ratio:rate28d"]
    assert 'ml_schema_valid="false"' in dq["infersight_slo:error_ratio:rate28d"]
    avail = groups["infersight-slo-all-availability"]
    assert 'error_type!=""' in avail[0]["expr"] and "ml_model_name=" not in avail[0]["expr"]
    page = [r for r in avail if r.get("alert") == "InfersightSLOBurnRate" and r["labels"]["slo_alert"] == "fast"]
    assert page[0]["labels"]["severity"] == "page"
    assert "increase(ml_inference_duration_seconds_count[1h])) >= 20" in page[0]["expr"]


def test_threshold_off_the_bucket_bounds_is_refused(tmp_path: Path) -> None:
    assert 3.0 not in DURATION_BOUNDS
    below = max(b for b in DURATION_BOUNDS if b < 3.0)
    above = min(b for b in DURATION_BOUNDS if b > 3.0)
    cfg = _config(
        tmp_path, "slo:\n  objectives: [{name: lat, model: m, kind: latency, threshold: 3s, objective: 99%}]\n"
    )
    with pytest.raises(RulesError) as err:
        render_rules(_settings(cfg))
    text = str(err.value)
    assert "'lat'" in text and "3s is not a bucket bound" in text and f"nearest: {below:g}s, {above:g}s" in text
    assert ", ".join(f"{b:g}s" for b in DURATION_BOUNDS) in text
    proc = run_cli("slo-rules", "--config", str(cfg))
    assert proc.returncode == 2 and "infersight slo-rules:" in proc.stderr and "3s is not a bucket bound" in proc.stderr


def test_the_docs_list_the_sdk_bucket_bounds() -> None:
    docs = (Path(__file__).resolve().parents[2] / "docs" / "slo.md").read_text()
    section = docs[docs.index("## Prometheus rules") :]
    listed = re.search(r"duration bounds \(`DURATION_BOUNDS`[^)]*\): (.*?)\.\s+Any other", section, re.S)
    assert listed is not None
    seconds = []
    for item in " ".join(listed.group(1).split()).split(", "):
        value, unit = item.split(" ")
        seconds.append(float(value) / (1000 if unit == "ms" else 1))
    assert tuple(seconds) == tuple(DURATION_BOUNDS)


def test_cli_errors_name_the_fix(tmp_path: Path) -> None:
    empty = _config(tmp_path, "storage: {window: 60s}\n")
    proc = run_cli("slo-rules", "--config", str(empty))
    assert proc.returncode == 2 and "has no objectives; add slo.objectives" in proc.stderr
    proc = run_cli("slo-rules")
    assert proc.returncode == 2 and "--config" in proc.stderr
    cfg = _config(tmp_path, SMALL, "ok.yaml")
    proc = run_cli("slo-rules", "--config", str(cfg), block=["yaml"])
    assert proc.returncode == 2 and "processor" in proc.stderr  # names the extra to install
    proc = run_cli("slo-rules", "--config", str(cfg), "--namespace", "otel")
    assert proc.returncode == 0 and "otel_ml_inference_duration_seconds_count" in proc.stdout


# -- promtool test rules ----------------------------------------------------------------------


def test_promtool_runs_the_alerts_on_series_that_should_and_should_not_fire(tmp_path: Path, promtool: str) -> None:
    rules, doc = _rules_file(tmp_path, SMALL)
    page = ("InfersightSLOBurnRate", "fast", "page")
    ticket = ("InfersightSLOBurnRate", "slow", "ticket")
    spent = ("InfersightSLOBudgetExhausted", "budget", "ticket")
    no_data = ("InfersightSLONoData", "no_data", "page")
    tests: list[dict[str, Any]] = []
    # fast burn: 20% of calls fail (burn 20 against a 1% budget): page, ticket, budget spent
    fast = _expected(doc, "churn", [page, ticket, spent])
    assert fast[0]["exp_alerts"][0]["exp_annotations"]["summary"] == (
        "SLO availability of model churn: error budget burning at 14.4x or faster over 1h and 5m"
    )
    tests.append(
        {
            "interval": "1m",
            "input_series": _series("churn", "0+100x120", "0+20x120"),
            "alert_rule_test": [{"eval_time": "1h", **t} for t in fast],
        }
    )
    # slow burn: 5% fail (burn 5): a ticket and never a page
    tests.append(
        {
            "interval": "1m",
            "input_series": _series("churn", "0+100x480", "0+5x480"),
            "alert_rule_test": [
                {"eval_time": t, **e} for t in ("1h", "7h") for e in _expected(doc, "churn", [ticket, spent])
            ],
        }
    )
    # two failed of three calls (at 10, 25 and 40 minutes): burn 67, but too few events for any
    # burn-rate alert; 15 minutes after the last call the silence is an alert of its own
    tests.append(
        {
            "interval": "1m",
            "input_series": _series("churn", "0x10 1x15 2x15 3x20", "0x10 1x15 2x35"),
            "alert_rule_test": [{"eval_time": t, **e} for t in ("45m", "54m") for e in _expected(doc, "churn", [])]
            + [{"eval_time": "60m", **e} for e in _expected(doc, "churn", [no_data])],
        }
    )
    # the service stops reporting at 30m (its series end): quiet at 40m, no data at 50m
    stopped = _series("churn", "0+10x30")
    tests.append(
        {
            "interval": "1m",
            "input_series": stopped,
            "alert_rule_test": [{"eval_time": "40m", **e} for e in _expected(doc, "churn", [])]
            + [{"eval_time": "50m", **e} for e in _expected(doc, "churn", [no_data])],
        }
    )
    # the app is alive but serves no calls from 30m (its counter stays flat): no data as well
    tests.append(
        {
            "interval": "1m",
            "input_series": _series("churn", "0+10x30 300x60"),
            "alert_rule_test": [{"eval_time": "40m", **e} for e in _expected(doc, "churn", [])]
            + [{"eval_time": "50m", **e} for e in _expected(doc, "churn", [no_data])],
        }
    )
    # a new series: no alert while its first points show no increase yet
    tests.append(
        {
            "interval": "1m",
            "input_series": [
                {"series": f'{COUNT}{{ml_model_name="churn",ml_model_version="1"}}', "values": "_x60 500 500 500"}
            ],
            "alert_rule_test": [{"eval_time": "62m", **e} for e in _expected(doc, "churn", [])],
        }
    )
    # healthy traffic: 0.1% fail, nothing fires and 90% of the budget remains
    tests.append(
        {
            "interval": "1m",
            "input_series": _series("churn", "0+100x480", "0+0.1x480"),
            "alert_rule_test": [{"eval_time": t, **e} for t in ("1h", "7h") for e in _expected(doc, "churn", [])],
            "promql_expr_test": [
                {
                    "expr": 'round(1000 * infersight_slo:error_budget:remaining{slo="availability"})',
                    "eval_time": "7h",
                    "exp_samples": [
                        {"labels": '{ml_model_name="churn",slo="availability",slo_model="churn"}', "value": 900}
                    ],
                }
            ],
        }
    )
    _check_ok(_promtool_test(promtool, tmp_path, rules, tests))


def test_promtool_error_ratio_of_each_kind(tmp_path: Path, promtool: str) -> None:
    rules, _ = _rules_file(
        tmp_path,
        """
slo:
  objectives:
    - {name: lat, model: churn, kind: latency, threshold: 1s, objective: 99%}
    - {name: up, model: churn, kind: availability, objective: 99%}
    - {name: valid, model: churn, kind: data_quality, objective: 99%}
""",
    )
    base = 'ml_model_name="churn",ml_model_version="1"'
    # per minute: 100 calls, 80 of them within 1 s; 10 failed (5 of those fast); 4 with invalid inputs
    series = [
        {"series": f"{COUNT}{{{base}}}", "values": "0+86x120"},
        {"series": f'{COUNT}{{{base},error_type="ValueError"}}', "values": "0+10x120"},
        {"series": f'{COUNT}{{{base},ml_schema_valid="false"}}', "values": "0+4x120"},
        {"series": f'{BUCKET}{{{base},le="1"}}', "values": "0+71x120"},
        {"series": f'{BUCKET}{{{base},error_type="ValueError",le="1"}}', "values": "0+5x120"},
        {"series": f'{BUCKET}{{{base},ml_schema_valid="false",le="1"}}', "values": "0+4x120"},
    ]
    exp = [
        {
            "expr": f'round(1000 * infersight_slo:error_ratio:rate1h{{slo="{slo}"}})',
            "eval_time": "2h",
            "exp_samples": [{"labels": f'{{ml_model_name="churn",slo="{slo}",slo_model="churn"}}', "value": v}],
        }
        for slo, v in (("lat", 200), ("up", 100), ("valid", 40))
    ]
    _check_ok(
        _promtool_test(promtool, tmp_path, rules, [{"interval": "1m", "input_series": series, "promql_expr_test": exp}])
    )


# -- the processor's judge and the rules agree ------------------------------------------------


def _cumulative(per_minute: Sequence[tuple[float, float]]) -> tuple[list[float], list[float]]:
    """Counter values at each minute (the first at 0) from ``(calls, failed)`` per minute."""
    total, bad = [0.0], [0.0]
    for t, b in per_minute:
        total.append(total[-1] + t)
        bad.append(bad[-1] + b)
    return total, bad


def _counts(total: list[float], bad: list[float]) -> Callable[[float, float], tuple[float, float]]:
    def counts(start: float, end: float) -> tuple[float, float]:
        i, j = max(0, int(start // 60)), min(len(total) - 1, int(end // 60))
        t = total[j] - total[i]
        return t - (bad[j] - bad[i]), t

    return counts


def _values(xs: Sequence[float]) -> str:
    return " ".join(f"{x:g}" for x in xs)


SCENARIOS: dict[str, list[tuple[float, float]]] = {
    # two healthy hours, then 30 minutes with 40% failing: both alerts fire
    "burning": [(100, 0.5)] * 120 + [(100, 40)] * 30,
    # the same burst, ended 20 minutes ago: the 5 m window has reset the page, the ticket holds
    "recovered": [(100, 0.5)] * 120 + [(100, 40)] * 30 + [(100, 0.5)] * 20,
    # one call every five minutes, a fifth failing, for seven hours: the page's hour holds 12
    # calls (guarded), the ticket's six hours 72: a low-traffic service still gets its ticket
    "low traffic": [(0.2, 0.04)] * 420,
    # steady 2% failing: burn 2, under both factors; the period's budget is spent
    "steady": [(50, 1)] * 400,
    # steady 0.5%: nothing
    "healthy": [(50, 0.25)] * 400,
}


def test_judge_and_prometheus_agree_on_every_alert(tmp_path: Path, promtool: str) -> None:
    cfg = _config(tmp_path, SMALL)
    settings = _settings(cfg)
    objective = settings.objectives[0]
    rules, doc = _rules_file(tmp_path, SMALL)
    tests, verdicts = [], {}
    for name, per_minute in SCENARIOS.items():
        total, bad = _cumulative(per_minute)
        at = 60.0 * len(per_minute)
        st = judge(objective, settings, _counts(total, bad), at=at, last_event=at)
        firing = [
            ("InfersightSLOBudgetExhausted" if a.name == BUDGET_ALERT else "InfersightSLOBurnRate", a.name, a.severity)
            for a in st.alerts
            if a.firing
        ]
        verdicts[name] = sorted(a for _, a, _ in firing)
        tests.append(
            {
                "interval": "1m",
                "input_series": _series("churn", _values(total), _values(bad)),
                "alert_rule_test": [
                    {"eval_time": f"{len(per_minute)}m", **e}
                    for e in _expected(doc, "churn", firing)
                    if e["alertname"] != "InfersightSLONoData"
                ],
            }
        )
    # what the processor decided, by hand: the cross-check covers firing and quiet alerts alike
    assert verdicts == {
        "burning": ["budget", "fast", "slow"],
        "recovered": ["budget", "slow"],
        "low traffic": ["budget", "slow"],
        "steady": ["budget"],
        "healthy": [],
    }
    _check_ok(_promtool_test(promtool, tmp_path, rules, tests))
