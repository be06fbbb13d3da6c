"""Settings: explicit argument beats ``INFERSIGHT_*`` environment variable beats default.

The standard ``OTEL_*`` variables are honoured too (service name, resource attributes, OTLP
endpoint, protocol and headers, export intervals, batch processor limits), so a deployment that
already configures OpenTelemetry through its environment needs nothing new.

Example:
    >>> s = resolve_settings({"service_name": "fraud-api", "sample_ratio": 0.5}, env={})
    >>> s.service_name, s.sample_ratio, s.protocol
    ('fraud-api', 0.5, 'grpc')
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

__all__ = ["Settings", "resolve_settings", "ConfigError", "OPTIONS"]


class ConfigError(ValueError):
    """A configuration value is malformed; the message names the option, the value and the fix."""


@dataclass(frozen=True)
class Settings:
    """Resolved configuration. See the README's configuration table for each option."""

    service_name: str = "unknown_service"
    service_version: str | None = None
    environment: str | None = None
    model: str | None = None
    version: str | None = None
    endpoint: str | None = None
    protocol: str = "grpc"
    exporter: str = "otlp"
    headers: Mapping[str, str] = field(default_factory=dict)
    sample_ratio: float = 1.0
    log_payloads: bool = True
    payload_sample_rate: float = 0.01
    redact: tuple[str, ...] = (
        "password",
        "passwd",
        "secret",
        "token",
        "api_key",
        "apikey",
        "authorization",
        "ssn",
        "credit_card",
        "card_number",
    )
    max_payload_bytes: int = 8192
    record_outcomes: bool = True
    max_buffered_outcomes: int = 100_000
    release_memory: bool = False
    feature_stats: bool = True
    stats_sample_rate: float = 1.0
    max_categories: int = 100
    max_attribute_sets: int = 2000
    metric_export_interval: float = 60.0
    trained_at: _dt.datetime | None = None
    overhead_budget: float | None = None
    log_output: str = "stderr"
    system_metrics: bool = False
    flush_on_signal: bool = True


def _parse_bool(name: str, raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ConfigError(f"{name}={raw!r} is not a boolean: use true or false")


_T = TypeVar("_T")


def _convert(convert: Callable[[Any], _T], name: str, raw: Any, what: str) -> _T:
    """``convert(raw)``, or a ConfigError naming the option, the value and what to write."""
    try:
        return convert(raw)
    except (TypeError, ValueError):
        raise ConfigError(f"{name}={raw!r} is not {what}") from None


def _fraction(name: str, raw: Any) -> float:
    value = _convert(float, name, raw, "a number: use a value between 0 and 1")
    if not 0.0 <= value <= 1.0:
        raise ConfigError(f"{name}={raw!r} is outside [0, 1]: use e.g. 0.1 for 10%")
    return value


def _positive_int(name: str, raw: Any) -> int:
    value = _convert(int, name, raw, "a whole number: use e.g. 100")
    if value < 1:
        raise ConfigError(f"{name}={raw!r} must be at least 1")
    return value


def _seconds(name: str, raw: Any) -> float:
    value = _convert(float, name, raw, "a number of seconds: use e.g. 10")
    if value <= 0:
        raise ConfigError(f"{name}={raw!r} must be a positive number of seconds")
    return value


def _choice(*choices: str) -> Callable[[str, Any], str]:
    def parse(name: str, raw: Any) -> str:
        value = str(raw).strip().lower()
        if value not in choices:
            raise ConfigError(f"{name}={raw!r} is not one of {', '.join(choices)}")
        return value

    return parse


def _headers(name: str, raw: Any) -> dict[str, str]:
    if isinstance(raw, Mapping):
        return {str(k): str(v) for k, v in raw.items()}
    out: dict[str, str] = {}
    for part in str(raw).split(","):
        if not part.strip():
            continue
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{name}={raw!r}: each header must be key=value, comma separated")
        out[key.strip()] = value.strip()
    return out


def _patterns(name: str, raw: Any) -> tuple[str, ...]:
    if isinstance(raw, str):
        items = [p.strip() for p in raw.split(",")]
    else:
        try:
            items = [str(p).strip() for p in raw]
        except TypeError:
            raise ConfigError(f"{name}={raw!r}: give a list of field-name patterns") from None
    return tuple(p for p in items if p)


def _timestamp(name: str, raw: Any) -> _dt.datetime | None:
    if raw is None or raw == "":
        return None
    if isinstance(raw, _dt.datetime):
        value = raw
    elif isinstance(raw, _dt.date):
        value = _dt.datetime(raw.year, raw.month, raw.day)
    elif isinstance(raw, (int, float)):
        value = _dt.datetime.fromtimestamp(float(raw), tz=_dt.timezone.utc)
    else:
        try:
            value = _dt.datetime.fromisoformat(str(raw).replace("Z", "+00:00"))
        except ValueError:
            raise ConfigError(
                f"{name}={raw!r} is not a timestamp: use ISO 8601 (2026-01-31T12:00:00Z) or Unix seconds"
            ) from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=_dt.timezone.utc)
    return value


def _budget(name: str, raw: Any) -> float | None:
    if raw is None or raw == "" or str(raw).lower() == "none":
        return None
    value = _convert(float, name, raw, "a number: use e.g. 0.1 for 10% of predict time")
    if value <= 0:
        raise ConfigError(f"{name}={raw!r} must be positive (a share of the predict time, e.g. 0.1)")
    return value


def _text(name: str, raw: Any) -> str | None:
    return None if raw is None else str(raw)


# option → (parser, INFERSIGHT_* variable, OTEL_* fallback variable or None)
OPTIONS: dict[str, tuple[Callable[[str, Any], Any], str, str | None]] = {
    "service_name": (_text, "INFERSIGHT_SERVICE_NAME", "OTEL_SERVICE_NAME"),
    "service_version": (_text, "INFERSIGHT_SERVICE_VERSION", None),
    "environment": (_text, "INFERSIGHT_ENVIRONMENT", None),
    "model": (_text, "INFERSIGHT_MODEL", None),
    "version": (_text, "INFERSIGHT_VERSION", None),
    "endpoint": (_text, "INFERSIGHT_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"),
    "protocol": (_choice("grpc", "http/protobuf"), "INFERSIGHT_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"),
    "exporter": (_choice("otlp", "console", "none"), "INFERSIGHT_EXPORTER", None),
    "headers": (_headers, "INFERSIGHT_HEADERS", "OTEL_EXPORTER_OTLP_HEADERS"),
    "sample_ratio": (_fraction, "INFERSIGHT_SAMPLE_RATIO", None),
    "log_payloads": (_parse_bool, "INFERSIGHT_LOG_PAYLOADS", None),
    "payload_sample_rate": (_fraction, "INFERSIGHT_PAYLOAD_SAMPLE_RATE", None),
    "redact": (_patterns, "INFERSIGHT_REDACT", None),
    "max_payload_bytes": (_positive_int, "INFERSIGHT_MAX_PAYLOAD_BYTES", None),
    "record_outcomes": (_parse_bool, "INFERSIGHT_RECORD_OUTCOMES", None),
    "max_buffered_outcomes": (_positive_int, "INFERSIGHT_MAX_BUFFERED_OUTCOMES", None),
    "release_memory": (_parse_bool, "INFERSIGHT_RELEASE_MEMORY", None),
    "feature_stats": (_parse_bool, "INFERSIGHT_FEATURE_STATS", None),
    "stats_sample_rate": (_fraction, "INFERSIGHT_STATS_SAMPLE_RATE", None),
    "max_categories": (_positive_int, "INFERSIGHT_MAX_CATEGORIES", None),
    "max_attribute_sets": (_positive_int, "INFERSIGHT_MAX_ATTRIBUTE_SETS", None),
    "metric_export_interval": (_seconds, "INFERSIGHT_METRIC_EXPORT_INTERVAL", None),
    "trained_at": (_timestamp, "INFERSIGHT_TRAINED_AT", None),
    "overhead_budget": (_budget, "INFERSIGHT_OVERHEAD_BUDGET", None),
    "log_output": (_text, "INFERSIGHT_LOG_OUTPUT", None),
    "system_metrics": (_parse_bool, "INFERSIGHT_SYSTEM_METRICS", None),
    "flush_on_signal": (_parse_bool, "INFERSIGHT_FLUSH_ON_SIGNAL", None),
}


def resolve_settings(explicit: Mapping[str, Any], env: Mapping[str, str] | None = None) -> Settings:
    """Merge explicit keyword arguments, environment and defaults into :class:`Settings`.

    Unknown option names raise :class:`ConfigError` listing the valid ones.

    >>> resolve_settings({}, env={"INFERSIGHT_MAX_CATEGORIES": "20"}).max_categories
    20
    """
    env = os.environ if env is None else env
    unknown = sorted(set(explicit) - set(OPTIONS))
    if unknown:
        raise ConfigError(f"unknown option(s) {', '.join(unknown)}; valid options are {', '.join(OPTIONS)}")
    values: dict[str, Any] = {}
    for name, (parse, env_var, otel_var) in OPTIONS.items():
        if explicit.get(name) is not None:
            values[name] = parse(name, explicit[name])
        elif env.get(env_var) not in (None, ""):
            values[name] = parse(env_var, env[env_var])
        elif otel_var and env.get(otel_var) not in (None, ""):
            values[name] = parse(otel_var, env[otel_var])
    if "metric_export_interval" not in values and env.get("OTEL_METRIC_EXPORT_INTERVAL"):
        values["metric_export_interval"] = (
            _seconds("OTEL_METRIC_EXPORT_INTERVAL", env["OTEL_METRIC_EXPORT_INTERVAL"]) / 1000.0
        )
    if "sample_ratio" not in values and env.get("OTEL_TRACES_SAMPLER_ARG"):
        values["sample_ratio"] = _fraction("OTEL_TRACES_SAMPLER_ARG", env["OTEL_TRACES_SAMPLER_ARG"])
    if "service_name" not in values:
        # OTEL_RESOURCE_ATTRIBUTES may carry service.name too; the Resource merge reads it.
        for part in env.get("OTEL_RESOURCE_ATTRIBUTES", "").split(","):
            key, _, value = part.partition("=")
            if key.strip() == "service.name" and value.strip():
                values["service_name"] = value.strip()
    return dataclasses.replace(Settings(), **values)
