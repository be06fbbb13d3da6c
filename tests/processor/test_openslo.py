"""OpenSLO v1 documents read as objectives (``slo.openslo:``): real multi-document files written
to the spec, the mapping onto objectives and burn-rate alerts, and the refusals, each naming the
file, the document, the key, the value and the fix."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from infersight.processor.config import ConfigError, load_config
from infersight.processor.slo.openslo import load_openslo, read_openslo
from infersight.processor.slo.settings import BurnAlert, Objective, SLOSettings
from tests.support.cli import run_cli

# Every kind of OpenSLO v1 object, the way a team would write them: a data source, SLIs by
# reference and inline, both metric forms, alert policies by reference and inline.
FULL = """\
apiVersion: openslo/v1
kind: Service
metadata: {name: churn-api, displayName: Churn scoring API}
spec: {description: Scores customers for churn risk}
---
apiVersion: openslo/v1
kind: DataSource
metadata: {name: infersight-processor}
spec:
  type: infersight
  connectionDetails: {url: "http://127.0.0.1:8318"}
---
apiVersion: openslo/v1
kind: SLI
metadata: {name: churn-answered-fast}
spec:
  description: calls answered within the bound
  ratioMetric:
    counter: true
    good:
      metricSource: {type: infersight, spec: {kind: latency, threshold: 2.5s}}
    total:
      metricSource: {type: infersight, spec: {kind: latency}}
---
apiVersion: openslo/v1
kind: SLO
metadata:
  name: churn-latency
  displayName: Churn latency
  labels: {model: churn, team: [ml-platform]}
  annotations: {infersight/min-events: "50", infersight/per-version: "false"}
spec:
  description: Most calls are fast, nearly all are not slow
  service: churn-api
  indicatorRef: churn-answered-fast
  timeWindow:
    - duration: 4w
      isRolling: true
  budgetingMethod: Occurrences
  objectives:
    - displayName: Under a second
      op: lte
      value: 1
      target: 0.9
    - displayName: Under 2.5 s
      targetPercent: 99
  alertPolicies:
    - alertPolicyRef: burn-fast
    - kind: AlertPolicy
      metadata: {name: burn-slow}
      spec:
        alertWhenBreaching: true
        alertWhenNoData: true
        conditions:
          - kind: AlertCondition
            metadata: {name: slow}
            spec:
              severity: ticket
              condition: {kind: burnrate, threshold: 1, lookbackWindow: 3d, alertAfter: 6h}
        notificationTargets:
          - targetRef: ml-oncall
---
apiVersion: openslo/v1
kind: AlertPolicy
metadata: {name: burn-fast}
spec:
  description: The SRE workbook's page
  alertWhenBreaching: true
  alertWhenResolved: true
  conditions:
    - conditionRef: fast
  notificationTargets:
    - targetRef: ml-oncall
---
apiVersion: openslo/v1
kind: AlertCondition
metadata: {name: fast}
spec:
  severity: page
  condition: {kind: burnrate, threshold: 14.4, lookbackWindow: 1h, alertAfter: 5m}
---
apiVersion: openslo/v1
kind: AlertNotificationTarget
metadata: {name: ml-oncall}
spec: {target: pagerduty, description: the ML on-call rota}
---
apiVersion: openslo/v1
kind: SLO
metadata: {name: churn-availability}
spec:
  service: churn
  indicator:
    metadata: {name: churn-errors}
    spec:
      ratioMetric:
        counter: true
        bad:
          metricSource: {type: infersight, spec: {kind: availability}}
        total:
          metricSource: {type: infersight, spec: {}}
  budgetingMethod: Occurrences
  objectives:
    - target: 0.999
---
apiVersion: openslo/v1
kind: SLO
metadata:
  name: valid-inputs
  labels: {model: "churn-*"}
spec:
  service: churn-api
  indicator:
    metadata: {name: schema-valid}
    spec:
      ratioMetric:
        counter: true
        good:
          metricSource:
            metricSourceRef: infersight-processor
            spec: {kind: data_quality}
        total:
          metricSource: {metricSourceRef: infersight-processor}
  timeWindow: [{duration: 30d, isRolling: true}]
  budgetingMethod: Occurrences
  objectives:
    - target: 0.995
---
apiVersion: openslo/v1
kind: SLO
metadata:
  name: churn-accuracy
  annotations: {infersight/no-data: 2h}
spec:
  service: churn
  indicator:
    metadata: {name: right-answers}
    spec:
      ratioMetric:
        counter: true
        good: {metricSource: {type: infersight, spec: {kind: model_quality}}}
        total: {metricSource: {type: infersight, spec: {kind: model_quality}}}
  timeWindow: [{duration: 28d, isRolling: true}]
  budgetingMethod: Occurrences
  objectives: [{target: 0.9}]
---
apiVersion: openslo/v1
kind: SLO
metadata: {name: ranker-p99}
spec:
  service: ranker
  indicator:
    metadata: {name: ranker-latency}
    spec:
      thresholdMetric:
        metricSource: {type: Infersight, spec: {kind: latency}}
  timeWindow: [{duration: 7d, isRolling: true}]
  budgetingMethod: Occurrences
  objectives:
    - {op: lt, value: 500ms, target: 0.99}
"""

DAY = 86400.0


def _write(tmp_path: Path, text: str, name: str = "slos.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_every_kind_maps_onto_objectives_and_alerts(tmp_path: Path) -> None:
    path = _write(tmp_path, FULL)
    got = load_openslo(path, "slo.openslo")
    desc = "Most calls are fast, nearly all are not slow"
    assert list(got.objectives) == [
        Objective("churn-latency-under-a-second", "churn", "latency", 0.9, 1.0, False, 28 * DAY, 50, None, desc),
        Objective("churn-latency-under-2-5-s", "churn", "latency", 0.99, 2.5, False, 28 * DAY, 50, None, desc),
        Objective("churn-availability", "churn", "availability", 0.999),
        Objective("valid-inputs", "churn-*", "data_quality", 0.995, period=30 * DAY),
        Objective("churn-accuracy", "churn", "model_quality", 0.9, period=28 * DAY, no_data=2 * 3600.0),
        Objective("ranker-p99", "ranker", "latency", 0.99, 0.5, period=7 * DAY),
    ]
    fast = BurnAlert("fast", "page", 3600.0, 300.0, factor=14.4)
    slow = BurnAlert("slow", "ticket", 3 * DAY, 6 * 3600.0, factor=1.0)
    assert dict(got.alerts) == {
        "churn-latency-under-a-second": (fast, slow),
        "churn-latency-under-2-5-s": (fast, slow),
    }


def test_the_config_reads_openslo_files(tmp_path: Path) -> None:
    slos = _write(tmp_path, FULL)
    cfg = _write(
        tmp_path,
        f"slo:\n  openslo: {slos}\n  objectives:\n    - {{name: up, model: scorer, kind: availability, objective: 99%}}\n",
        "processor.yaml",
    )
    s = load_config(cfg).sections["slo"]
    assert isinstance(s, SLOSettings)
    assert [(o.model, o.name) for o in s.objectives] == [
        ("scorer", "up"),
        ("churn", "churn-latency-under-a-second"),
        ("churn", "churn-latency-under-2-5-s"),
        ("churn", "churn-availability"),
        ("churn-*", "valid-inputs"),
        ("churn", "churn-accuracy"),
        ("ranker", "ranker-p99"),
    ]
    assert s.sources == (str(slos),)
    # an SLO's alert policies become its own alerts; the others keep the section's windows
    by_name = {o.name: o for o in s.objectives}
    got = load_openslo(slos, "k")
    for name in ("churn-latency-under-2-5-s", "churn-latency-under-a-second"):
        assert by_name[name].alerts == got.alerts[name] != ()
        assert s.alerts_of(by_name[name]) == got.alerts[name]
    assert by_name["up"].alerts == () and s.alerts_of(by_name["up"]) == s.alerts
    assert [o.name for o in read_openslo(slos, "k")] == [o.name for o in got.objectives]


def test_openslo_objectives_become_prometheus_rules(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is not installed: run scripts/install-prometheus.sh", pytrace=False)
    slos = _write(tmp_path, FULL.replace("value: 500ms", "value: 0.5"))
    cfg = _write(tmp_path, f"slo:\n  openslo: {slos}\n", "processor.yaml")
    out = tmp_path / "rules.yml"
    proc = run_cli("slo-rules", "--config", str(cfg), "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "skipped, no Prometheus series: churn-accuracy" in proc.stderr
    text = out.read_text()
    assert "name: infersight-slo-churn-churn-latency-under-a-second" in text and 'le="0.5"' in text
    check = subprocess.run([promtool, "check", "rules", str(out)], capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr


SLO_HEAD = """\
apiVersion: openslo/v1
kind: SLO
metadata: {name: churn-up}
spec:
  service: churn
  indicator:
    metadata: {name: errors}
    spec:
      ratioMetric:
        counter: true
        good: {metricSource: {type: infersight, spec: {kind: availability}}}
        total: {metricSource: {type: infersight, spec: {}}}
  timeWindow: [{duration: 30d, isRolling: true}]
  budgetingMethod: Occurrences
  objectives: [{target: 0.999}]
"""

REFUSED = [
    # (what to replace, its replacement, words the message must hold)
    (
        "timeWindow: [{duration: 30d, isRolling: true}]",
        "timeWindow: [{duration: 1M, calendar: {startTime: '2024-01-01 00:00:00', timeZone: UTC}}]",
        ["spec.timeWindow[0]", "calendar", "rolling periods only", "{duration: 30d, isRolling: true}"],
    ),
    (
        "budgetingMethod: Occurrences",
        "budgetingMethod: Timeslices",
        ["spec.budgetingMethod", "'Timeslices'", "not supported", "budgetingMethod: Occurrences"],
    ),
    (
        "budgetingMethod: Occurrences",
        "budgetingMethod: RatioTimeslices",
        ["spec.budgetingMethod", "'RatioTimeslices'", "budgetingMethod: Occurrences"],
    ),
    (
        "duration: 30d",
        "duration: 1M",
        ["spec.timeWindow[0].duration", "'1M'", "no fixed length", "30d or 28d"],
    ),
    (
        "good: {metricSource: {type: infersight, spec: {kind: availability}}}",
        "good: {metricSource: {type: Prometheus, spec: {query: 'sum(rate(x[5m]))'}}}",
        ["ratioMetric.good.metricSource.type", "'Prometheus'", "type: infersight"],
    ),
    (
        "spec: {kind: availability}",
        "spec: {kind: uptime}",
        ["ratioMetric.good.metricSource.spec.kind", "'uptime'", "latency, availability, data_quality, model_quality"],
    ),
    (
        "good: {metricSource: {type: infersight, spec: {kind: availability}}}\n"
        "        total: {metricSource: {type: infersight, spec: {}}}",
        "rawType: success\n        raw: {metricSource: {type: infersight, spec: {kind: availability}}}",
        ["ratioMetric.raw", "precomputed ratios", "good (or bad) and total"],
    ),
    (
        "objectives: [{target: 0.999}]",
        "objectives: [{target: 1.5}]",
        ["spec.objectives[0].target", "1.5", "strictly between 0 and 1"],
    ),
    (
        "objectives: [{target: 0.999}]",
        "objectives: [{op: lte, value: 2, target: 0.99}]",
        ["spec.objectives[0]", "this SLI is availability, which has none", "remove op and value"],
    ),
    (
        "objectives: [{target: 0.999}]",
        "objectives: [{target: 0.99, timeSliceTarget: 0.9, timeSliceWindow: 1m}]",
        ["spec.objectives[0].timeSliceTarget", "Timeslices"],
    ),
    (
        "apiVersion: openslo/v1",
        "apiVersion: openslo/v2alpha",
        ["apiVersion", "'openslo/v2alpha'", "apiVersion: openslo/v1"],
    ),
    (
        "  indicator:\n    metadata: {name: errors}\n",
        "  indicatorRef: errors\n  unused:\n    metadata: {name: errors}\n",
        ["spec.indicatorRef", "'errors'", "names no SLI document", "SLIs here: none"],
    ),
    (
        "  service: churn\n",
        "",
        ["spec.service", "None", "metadata.labels.model"],
    ),
]


@pytest.mark.parametrize(("old", "new", "words"), REFUSED, ids=[r[2][0] + " " + r[2][1] for r in REFUSED])
def test_refusals_name_file_document_key_value_and_fix(tmp_path: Path, old: str, new: str, words: list[str]) -> None:
    service = "apiVersion: openslo/v1\nkind: Service\nmetadata: {name: churn}\nspec: {}\n---\n"
    text = service + SLO_HEAD.replace(old, new)
    assert text != service + SLO_HEAD
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        read_openslo(path, "slo.openslo")
    msg = str(err.value)
    assert msg.startswith(f"slo.openslo: {path} document 2"), msg  # the Service is document 1
    for w in words:
        assert w in msg, msg


ALERTING = (
    SLO_HEAD
    + """\
  alertPolicies:
    - kind: AlertPolicy
      metadata: {name: pager}
      spec:
        alertWhenBreaching: true
        conditions:
          - kind: AlertCondition
            metadata: {name: fast}
            spec:
              severity: page
              condition: {kind: burnrate, threshold: 14.4, lookbackWindow: 1h, alertAfter: 5m}
"""
)


@pytest.mark.parametrize(
    ("old", "new", "words"),
    [
        ("severity: page", "severity: critical", ["conditions[0].spec.severity", "'critical'", "page and ticket"]),
        ("kind: burnrate", "kind: errorrate", ["condition.kind", "'errorrate'", "kind: burnrate"]),
        ("alertAfter: 5m", "alertAfter: 2h", ["condition.alertAfter", "'2h'", "shorter than lookbackWindow"]),
        ("threshold: 14.4", "threshold: -1", ["condition.threshold", "-1", "positive burn rate"]),
    ],
)
def test_alert_conditions_that_do_not_map_are_refused(tmp_path: Path, old: str, new: str, words: list[str]) -> None:
    path = _write(tmp_path, ALERTING.replace(old, new))
    with pytest.raises(ConfigError) as err:
        load_openslo(path, "slo.openslo")
    msg = str(err.value)
    assert msg.startswith(f"slo.openslo: {path} document 1 (SLO 'churn-up'): spec.alertPolicies[0].spec"), msg
    for w in words:
        assert w in msg, msg


def test_alert_after_zero_reads_as_a_twelfth_of_the_window(tmp_path: Path) -> None:
    path = _write(tmp_path, ALERTING.replace("alertAfter: 5m", "alertAfter: 0m").replace("1h", "6h"))
    assert dict(load_openslo(path, "k").alerts) == {
        "churn-up": (BurnAlert("fast", "page", 6 * 3600.0, 1800.0, factor=14.4),)
    }


def test_files_without_slos_and_unreadable_files(tmp_path: Path) -> None:
    only_sli = SLO_HEAD.replace("kind: SLO", "kind: SLI")
    path = _write(tmp_path, "apiVersion: openslo/v1\nkind: Service\nmetadata: {name: churn}\nspec: {}\n")
    with pytest.raises(ConfigError, match=r"holds no document of kind SLO \(1 document\(s\) read\)"):
        read_openslo(path, "slo.openslo")
    with pytest.raises(ConfigError, match=r"slo.openslo: '/nonexistent/slos.yaml' cannot be read"):
        read_openslo("/nonexistent/slos.yaml", "slo.openslo")
    with pytest.raises(ConfigError, match="is not valid YAML"):
        read_openslo(_write(tmp_path, "kind: [SLO", "bad.yaml"), "slo.openslo")
    dup = _write(tmp_path, SLO_HEAD + "---\n" + SLO_HEAD, "dup.yaml")
    with pytest.raises(
        ConfigError, match=r"document 2 \(SLO 'churn-up'\): metadata.name: 'churn-up' is also the name of document 1"
    ):
        read_openslo(dup, "slo.openslo")
    # an SLI alone is not an objective either
    with pytest.raises(ConfigError, match="holds no document of kind SLO"):
        read_openslo(_write(tmp_path, only_sli, "sli.yaml"), "slo.openslo")
