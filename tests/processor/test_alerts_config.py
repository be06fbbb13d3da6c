"""The ``alerts:`` config section: defaults without config, every key read, bad values refused
with the key, the value and the fix named (and the file, through load_config)."""

from __future__ import annotations

from pathlib import Path

import pytest

from infersight.processor.alerts.settings import (
    DEFAULT_PERSISTENCE,
    AlertSettings,
    parse_alerts,
)
from infersight.processor.config import ConfigError, load_config


def test_no_config_gives_a_log_channel_two_default_policies_and_the_slo_ones() -> None:
    s = load_config(None).sections["alerts"]
    assert isinstance(s, AlertSettings)
    assert [(p.name, p.kinds, p.persistence, p.severity) for p in s.policies] == [
        ("inputs", ("drift", "data_quality"), DEFAULT_PERSISTENCE, "ticket"),
        ("quality", ("quality",), DEFAULT_PERSISTENCE, "ticket"),
        ("slo-page", ("slo",), 1, "page"),
        ("slo-ticket", ("slo",), 1, "ticket"),
        ("slo-no-data", ("slo",), 1, "page"),
    ]
    assert DEFAULT_PERSISTENCE == 0  # auto: from the subjects judged and the window size
    assert {n: c.type for n, c in s.channels.items()} == {"log": "log"}
    assert s.channels_for("anything", "page", ["drift"]) == ("log",)
    assert s.policies[0].dedup == ("model", "version", "slice", "policy")


def test_a_full_section_from_yaml(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(
        """
alerts:
  persistence: 3
  cooldown: 30m
  budget: {max: 7, period: 6h}
  runbooks: {"churn*": "https://wiki/churn"}
  trace_url: "http://jaeger:16686/trace/{trace_id}"
  policies:
    - name: pipeline
      kinds: [drift, data_quality]
      causes: [pipeline]
      severity: page
      persistence: 1
    - name: shift
      kinds: drift
      min_severity: 2
      runbook: "retrain checklist"
      dedup: [model, policy]
  channels:
    log: {type: log, logger: my.alerts}
    oncall: {type: webhook, url: "https://hooks.example/x", headers: {Authorization: "Bearer t"}, timeout: 2s,
             retries: 5, backoff: 250ms, max_backoff: 10s, queue: 50}
    otel: {type: otlp, endpoint: "http://127.0.0.1:4318"}
  routes:
    - {channels: [oncall], severities: [page], models: ["churn*"]}
    - {channels: [log, otel]}
"""
    )
    s = load_config(path).sections["alerts"]
    pipe, shift = s.policies[:2]  # then the SLO policies, added since none takes kind slo
    assert (pipe.persistence, pipe.causes, pipe.severity, pipe.cooldown) == (1, ("pipeline",), "page", 1800.0)
    assert (shift.persistence, shift.min_severity, shift.kinds, shift.dedup) == (
        3,
        2.0,
        ("drift",),
        ("model", "policy"),
    )
    hook = s.channels["oncall"]
    assert (hook.timeout, hook.retries, hook.backoff, hook.max_backoff, hook.queue) == (2.0, 5, 0.25, 10.0, 50)
    assert hook.headers == {"Authorization": "Bearer t"}
    assert s.channels["otel"].url == "http://127.0.0.1:4318/v1/logs"
    assert s.channels["log"].logger == "my.alerts"
    assert (s.budget.max, s.budget.period) == (7, 21600.0)
    assert s.channels_for("churn", "page", ["drift"]) == ("oncall", "log", "otel")
    assert s.channels_for("fraud", "page", ["drift"]) == ("log", "otel")
    assert s.runbook_for("churn-eu") == "https://wiki/churn" and s.runbook_for("fraud") is None


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"persistance": 2}, "alerts.persistance: unknown key; known in alerts: policies"),
        ({"persistence": 0}, "alerts.persistence: 0 must be a whole number >= 1, or auto"),
        ({"cooldown": "soon"}, "alerts.cooldown: 'soon' is not a duration; write e.g. 1s"),
        ({"policies": []}, "alerts.policies: [] must be a non-empty list"),
        ({"policies": [{"kinds": ["drift"]}]}, "alerts.policies[0].name: missing; give each policy a name"),
        ({"policies": [{"name": "a"}]}, "alerts.policies[0].kinds: missing; write e.g. kinds: [drift]"),
        ({"policies": [{"name": "a", "kinds": ["drfit"]}]}, "alerts.policies[0].kinds: 'drfit' is not one of drift"),
        (
            {"policies": [{"name": "a", "kinds": ["drift"], "statuses": ["ok"]}]},
            "alerts.policies[0].statuses: 'ok' is not one of warning, breach, no_data",
        ),
        (
            {"policies": [{"name": "a", "kinds": ["drift"], "causes": ["bug"]}]},
            "alerts.policies[0].causes: 'bug' is not one of pipeline, model_version",
        ),
        (
            {"policies": [{"name": "a", "kinds": ["drift"], "severity": "loud"}]},
            "alerts.policies[0].severity: 'loud' is not one of page, ticket, info",
        ),
        (
            {"policies": [{"name": "a", "kinds": ["drift"], "dedup": ["feature"]}]},
            "alerts.policies[0].dedup: 'feature' is not one of model, version, slice, policy, kind, subject",
        ),
        (
            {"policies": [{"name": "a", "kinds": ["drift"], "dedup": ["policy"]}]},
            "alerts.policies[0].dedup: ['policy'] must include model",
        ),
        (
            {"policies": [{"name": "a", "kinds": ["drift"]}, {"name": "a", "kinds": ["quality"]}]},
            "alerts.policies[1].name: 'a' is used twice",
        ),
        (
            {"policies": [{"name": "a", "kinds": ["drift"], "min_severity": -1}]},
            "alerts.policies[0].min_severity: -1 must be a number >= 0",
        ),
        ({"channels": {"x": {"type": "email"}}}, "alerts.channels.x.type: 'email' is not one of log, webhook, otlp"),
        ({"channels": {"x": {"type": "webhook"}}}, "alerts.channels.x.url: missing; write e.g. url: http://"),
        (
            {"channels": {"x": {"type": "webhook", "url": "hooks.example/x"}}},
            "alerts.channels.x.url: 'hooks.example/x' is not an http(s) URL; write e.g. http://127.0.0.1:9000/alerts",
        ),
        (
            {"channels": {"x": {"type": "webhook", "url": "http://a/b", "retries": -1}}},
            "alerts.channels.x.retries: -1 must be a whole number >= 0",
        ),
        (
            {"channels": {"x": {"type": "webhook", "url": "http://a/b", "timeout": "forever"}}},
            "alerts.channels.x.timeout: 'forever' is not a duration",
        ),
        (
            {"channels": {"x": {"type": "log", "url": "http://a/b"}}},
            "alerts.channels.x.url: unknown key; known in alerts.channels.x: type, logger",
        ),
        ({"channels": {"x": {"type": "otlp"}}}, "alerts.channels.x.endpoint: missing"),
        (
            {"routes": [{"channels": ["pager"]}]},
            "alerts.routes[0].channels: 'pager' is not a configured channel; known: log",
        ),
        ({"routes": [{"models": ["*"]}]}, "alerts.routes[0].channels: missing; write e.g. channels: [log]"),
        (
            {"routes": [{"channels": ["log"], "severities": ["urgent"]}]},
            "alerts.routes[0].severities: 'urgent' is not one of page, ticket, info",
        ),
        ({"budget": {"max": 0}}, "alerts.budget.max: 0 must be a whole number >= 1"),
        ({"budget": {"per": "1h"}}, "alerts.budget.per: unknown key; known in alerts.budget: max, period"),
        ({"trace_url": "http://jaeger/trace"}, "alerts.trace_url: 'http://jaeger/trace' has no {trace_id}"),
    ],
)
def test_bad_values_are_refused_naming_key_value_and_fix(body: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as exc:
        parse_alerts(body, "alerts")
    assert message in str(exc.value)


def test_errors_through_load_config_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("alerts:\n  channels:\n    hook: {type: webhook, url: 'ftp://x/y'}\n")
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    assert str(exc.value).startswith(f"{path}: alerts.channels.hook.url: 'ftp://x/y' is not an http(s) URL")


def test_configured_policies_keep_the_slo_policies_unless_one_takes_kind_slo() -> None:
    from infersight.processor.alerts.settings import parse_alerts

    mine = parse_alerts({"policies": [{"name": "drift", "kinds": ["drift"]}]}, "alerts")
    assert [p.name for p in mine.policies] == ["drift", "slo-page", "slo-ticket", "slo-no-data"]
    own = parse_alerts({"policies": [{"name": "all-slo", "kinds": ["slo"], "severity": "page"}]}, "alerts")
    assert [p.name for p in own.policies] == ["all-slo"]
