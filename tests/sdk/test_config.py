from __future__ import annotations

import datetime as dt

import pytest

from infersight.config import ConfigError, resolve_settings


def test_explicit_beats_env_beats_default():
    env = {"INFERSIGHT_SAMPLE_RATIO": "0.25", "INFERSIGHT_MAX_CATEGORIES": "7"}
    s = resolve_settings({"sample_ratio": 0.5}, env=env)
    assert s.sample_ratio == 0.5  # explicit
    assert s.max_categories == 7  # env
    assert s.max_payload_bytes == 8192  # default


def test_standard_otel_variables_are_honoured():
    env = {
        "OTEL_SERVICE_NAME": "scoring",
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_EXPORTER_OTLP_HEADERS": "authorization=Bearer abc,x-tenant=t1",
        "OTEL_METRIC_EXPORT_INTERVAL": "15000",
        "OTEL_TRACES_SAMPLER_ARG": "0.1",
    }
    s = resolve_settings({}, env=env)
    assert (s.service_name, s.endpoint, s.protocol) == ("scoring", "http://collector:4318", "http/protobuf")
    assert s.headers == {"authorization": "Bearer abc", "x-tenant": "t1"}
    assert s.metric_export_interval == 15.0
    assert s.sample_ratio == 0.1
    # INFERSIGHT_* beats OTEL_* for the same option
    assert resolve_settings({}, env={**env, "INFERSIGHT_SERVICE_NAME": "mine"}).service_name == "mine"


def test_service_name_from_resource_attributes():
    s = resolve_settings({}, env={"OTEL_RESOURCE_ATTRIBUTES": "team=ml, service.name=ranker"})
    assert s.service_name == "ranker"


@pytest.mark.parametrize(
    "options, env, message",
    [
        ({"sample_ratio": 2}, {}, r"sample_ratio=2 is outside \[0, 1\]"),
        ({}, {"INFERSIGHT_PAYLOAD_SAMPLE_RATE": "lots"}, "INFERSIGHT_PAYLOAD_SAMPLE_RATE='lots' is not a number"),
        ({"protocol": "udp"}, {}, "protocol='udp' is not one of grpc, http/protobuf"),
        ({"max_categories": 0}, {}, "max_categories=0 must be at least 1"),
        ({"headers": "novalue"}, {}, "each header must be key=value"),
        ({"trained_at": "last tuesday"}, {}, "trained_at='last tuesday' is not a timestamp"),
        ({"log_payloads": "maybe"}, {}, "log_payloads='maybe' is not a boolean"),
        ({"sampel_ratio": 0.5}, {}, "unknown option.*sampel_ratio.*valid options are"),
    ],
)
def test_bad_values_name_the_option_the_value_and_the_fix(options, env, message):
    with pytest.raises(ConfigError, match=message):
        resolve_settings(options, env=env)


def test_trained_at_forms():
    want = dt.datetime(2026, 1, 31, 12, tzinfo=dt.timezone.utc)
    assert resolve_settings({"trained_at": "2026-01-31T12:00:00Z"}, env={}).trained_at == want
    assert resolve_settings({"trained_at": want.timestamp()}, env={}).trained_at == want
    assert resolve_settings({}, env={"INFERSIGHT_TRAINED_AT": "2026-01-31T12:00:00"}).trained_at == want


def test_flush_on_signal_is_on_unless_switched_off():
    assert resolve_settings({}, env={}).flush_on_signal is True
    assert resolve_settings({}, env={"INFERSIGHT_FLUSH_ON_SIGNAL": "false"}).flush_on_signal is False
    assert resolve_settings({"flush_on_signal": True}, env={"INFERSIGHT_FLUSH_ON_SIGNAL": "0"}).flush_on_signal is True
