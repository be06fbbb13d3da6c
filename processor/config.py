"""Processor configuration: one dataclass, filled from a YAML file and then from flags.

Why a hand-written validator instead of a schema library: the errors a user meets must name the
key, the value and the fix (``storage.window: '7x' is not a duration; write e.g. 1s, 60s, 5m,
1h``), and the file is small enough that a table of keys says it all.

Example:
    >>> cfg = load_config(None, {"window": "5s"})
    >>> cfg.window, cfg.otlp_http
    (5, '127.0.0.1:4318')
"""

from __future__ import annotations

import importlib
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

__all__ = [
    "ConfigError",
    "ProcessorConfig",
    "load_config",
    "parse_duration",
    "parse_size",
    "parse_address",
]


class ConfigError(ValueError):
    """A configuration value is wrong; the message names the key and the fix."""


_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)\s*$")
_SIZE_UNITS = {"": 1, "b": 1, "kb": 1000, "kib": 1024, "mb": 10**6, "mib": 2**20, "gb": 10**9, "gib": 2**30}
_SIZE = re.compile(r"^\s*(\d+)\s*([a-zA-Z]*)\s*$")


def parse_duration(value: Any, key: str = "duration") -> float:
    """Seconds in a duration written ``1s``, ``60s``, ``5m``, ``1h``, ``7d`` (or ``250ms``).

    A bare number is taken as seconds.

    >>> parse_duration("5m"), parse_duration(30), parse_duration("250ms")
    (300.0, 30.0, 0.25)
    """
    if isinstance(value, bool):
        raise ConfigError(f"{key}: {value!r} is not a duration; write e.g. 1s, 60s, 5m, 1h")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        m = _DURATION.match(str(value))
        if not m:
            raise ConfigError(f"{key}: {value!r} is not a duration; write e.g. 1s, 60s, 5m, 1h")
        seconds = float(m.group(1)) * _UNITS[m.group(2)]
    if seconds <= 0:
        raise ConfigError(f"{key}: {value!r} must be longer than zero")
    return seconds


def expect_mapping(value: Any, key: str, example: str = "") -> Mapping[str, Any]:
    """``value`` when it is a mapping, else a :class:`ConfigError` naming ``key`` and the value
    (with ``example`` of what to write). The section parsers share it.

    >>> try:
    ...     expect_mapping([1], "slo.alerts[0]", "{name: fast}")
    ... except ConfigError as exc:
    ...     print(exc)
    slo.alerts[0]: [1] must be a mapping, e.g. {name: fast}
    """
    if not isinstance(value, Mapping):
        raise ConfigError(f"{key}: {value!r} must be a mapping" + (f", e.g. {example}" if example else " of keys"))
    return value


def reject_unknown(body: Mapping[str, Any], known: Iterable[str], where: str) -> None:
    """A :class:`ConfigError` for the first key of ``body`` not in ``known``, naming them all."""
    known = tuple(known)
    for key in body:
        if key not in known:
            raise ConfigError(f"{where}.{key}: unknown key; known in {where}: {', '.join(known)}")


def parse_size(value: Any, key: str = "size") -> int:
    """Bytes in a size written ``1048576``, ``64MiB``, ``10MB``.

    >>> parse_size("2KiB")
    2048
    """
    if isinstance(value, int) and not isinstance(value, bool):
        n = value
    else:
        m = _SIZE.match(str(value))
        if not m or m.group(2).lower() not in _SIZE_UNITS:
            raise ConfigError(f"{key}: {value!r} is not a size; write e.g. 1048576, 64MiB, 10MB")
        n = int(m.group(1)) * _SIZE_UNITS[m.group(2).lower()]
    if n <= 0:
        raise ConfigError(f"{key}: {value!r} must be larger than zero")
    return n


def parse_address(value: Any, key: str = "address") -> str:
    """Check ``HOST:PORT`` (IPv6 as ``[::1]:4317``); port 0 asks the OS for a free one.

    >>> parse_address("127.0.0.1:0")
    '127.0.0.1:0'
    """
    text = str(value).strip()
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ConfigError(f"{key}: {value!r} is not HOST:PORT; write e.g. 127.0.0.1:4318 or [::1]:4318")
    return text


def split_address(address: str) -> tuple[str, int]:
    """``'[::1]:4318'`` → ``('::1', 4318)``."""
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


@dataclass(frozen=True)
class ProcessorConfig:
    """Everything the processor needs to run. Sizes in bytes, durations in seconds."""

    otlp_grpc: str = "127.0.0.1:4317"
    otlp_http: str = "127.0.0.1:4318"
    web: str = "127.0.0.1:8318"
    db: str = "sqlite:///./infersight.db"
    window: int = 60
    rollups: tuple[int, ...] = (3600, 86400)
    # window size (seconds) -> how long windows of that size are kept (seconds)
    retention: Mapping[int, float] = field(default_factory=dict)
    feedback_ttl: float = 7 * 86400
    prediction_retention: float = 30 * 86400
    dedup_ttl: float = 3600.0
    token: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    max_body_bytes: int = 32 * 2**20
    max_inflight_bytes: int = 64 * 2**20
    queue_points: int = 2_000_000
    commit_interval: float = 0.02
    commit_max_requests: int = 256
    ack_timeout: float = 30.0
    maintenance_interval: float = 60.0
    retry_after: int = 2
    # The evaluation-side sections (models, evaluation, alerts, quality; slo next), each parsed
    # by the module that owns it (see _EXTENSIONS): section name -> that module's settings object.
    sections: Mapping[str, Any] = field(default_factory=dict)

    @property
    def window_sizes(self) -> tuple[int, ...]:
        """Base window first, then the roll-up sizes (ascending)."""
        return (self.window, *self.rollups)

    def retention_for(self, size: int) -> float:
        """Seconds to keep windows of ``size``: as configured, else 7 days for windows under an
        hour, 90 days for windows under a day, two years for larger ones."""
        if size in self.retention:
            return float(self.retention[size])
        return 7 * 86400.0 if size < 3600 else 90 * 86400.0 if size < 86400 else 730 * 86400.0


# YAML layout: section -> key -> (field, parser). Flat keys (the flag names) are also accepted.
_Parser = Callable[[Any, str], Any]


def _str(value: Any, key: str) -> str:
    if not isinstance(value, (str, int)) or isinstance(value, bool):
        raise ConfigError(f"{key}: {value!r} must be a string")
    return str(value)


def _int_window(value: Any, key: str) -> int:
    seconds = parse_duration(value, key)
    if seconds < 1 or seconds != int(seconds):
        raise ConfigError(f"{key}: {value!r} must be a whole number of seconds, at least 1s")
    return int(seconds)


def _rollups(value: Any, key: str) -> tuple[int, ...]:
    if isinstance(value, (str, int)):
        value = [v for v in str(value).split(",") if v.strip()]
    if not isinstance(value, list):
        raise ConfigError(f"{key}: {value!r} must be a list of durations, e.g. [1h, 1d]")
    return tuple(sorted({_int_window(v, f"{key}[{i}]") for i, v in enumerate(value)}))


def _retention(value: Any, key: str) -> dict[int, float]:
    if not isinstance(value, dict):
        raise ConfigError(f"{key}: {value!r} must map window sizes to durations, e.g. {{60s: 7d, 1h: 90d}}")
    return {_int_window(k, f"{key} key"): parse_duration(v, f"{key}.{k}") for k, v in value.items()}


def _positive_int(value: Any, key: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ConfigError(f"{key}: {value!r} must be a whole number above zero")
    return value


def _path(value: Any, key: str) -> str:
    text = _str(value, key)
    if not Path(text).is_file():
        raise ConfigError(f"{key}: file {text!r} does not exist")
    return text


def _token(value: Any, key: str) -> str:
    # An empty token would switch authentication off without a word: `--token "$TOKEN"` with
    # $TOKEN unset must not start an open processor.
    text = _str(value, key)
    if not text.strip():
        raise ConfigError(
            f"{key}: the token is empty, which would leave the processor open to anyone "
            '(an unset shell variable, as in --token "$TOKEN", gives an empty one); '
            "give a non-empty token, or leave the token out to run without authentication"
        )
    return text


def _token_file(value: Any, key: str) -> str:
    path = _path(value, key)
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ConfigError(f"{key}: file {path!r} cannot be read: {exc.strerror}") from exc
    return _token(text.strip(), f"{key} (file {path!r})")


def _db(value: Any, key: str) -> str:
    from infersight.processor.storage import ENGINES  # the schemes the storage engines take

    text = _str(value, key)
    scheme, sep, _ = text.partition("://")
    if not sep or scheme not in ENGINES:
        raise ConfigError(
            f"{key}: {text!r} is not a storage URL; write sqlite:///path/to/file.db or "
            "postgresql://user@host:port/dbname"
        )
    return text


_SECTIONS: dict[str, dict[str, tuple[str, _Parser]]] = {
    "listen": {
        "otlp_grpc": ("otlp_grpc", parse_address),
        "otlp_http": ("otlp_http", parse_address),
        "web": ("web", parse_address),
    },
    "storage": {
        "url": ("db", _db),
        "window": ("window", _int_window),
        "rollups": ("rollups", _rollups),
        "retention": ("retention", _retention),
        "feedback_ttl": ("feedback_ttl", parse_duration),
        "prediction_retention": ("prediction_retention", parse_duration),
        "dedup_ttl": ("dedup_ttl", parse_duration),
        "maintenance_interval": ("maintenance_interval", parse_duration),
    },
    "ingest": {
        "max_body": ("max_body_bytes", parse_size),
        "max_inflight": ("max_inflight_bytes", parse_size),
        "queue_points": ("queue_points", _positive_int),
        "commit_interval": ("commit_interval", parse_duration),
        "commit_max_requests": ("commit_max_requests", _positive_int),
        "ack_timeout": ("ack_timeout", parse_duration),
        "retry_after": ("retry_after", _positive_int),
    },
    "security": {
        "token": ("token", _token),
        "token_file": ("token", _token_file),
        "tls_cert": ("tls_cert", _path),
        "tls_key": ("tls_key", _path),
    },
}
# Sections parsed by the module that uses them: name -> "module:function". The function takes
# the section's body (``{}`` when the file has none, so defaults come from one place) and the
# key prefix to name in errors, and returns that module's settings object (ConfigError if wrong).
_EXTENSIONS: dict[str, str] = {
    "models": "infersight.processor.evaluate.settings:parse_models",
    "evaluation": "infersight.processor.evaluate.settings:parse_evaluation",
    "alerts": "infersight.processor.alerts.settings:parse_alerts",
    "quality": "infersight.processor.quality.settings:parse_quality",
    "slo": "infersight.processor.slo.settings:parse_slo",
    "limits": "infersight.processor.ingest.limits:parse_limits",
    "dashboard": "infersight.processor.dashboard.settings:parse_dashboard",
}

# Checks that need the whole config (e.g. evaluation windows against the storage window):
# "module:function" taking the ProcessorConfig and raising ConfigError (prefixed with the file).
_CHECKS: list[str] = [
    "infersight.processor.evaluate.settings:check_config",
    "infersight.processor.slo.settings:check_config",
]

_FLAT: dict[str, tuple[str, _Parser]] = {k: v for sec in _SECTIONS.values() for k, v in sec.items()}
_FLAT["db"] = ("db", _db)


def _apply(values: dict[str, Any], key: str, raw: Any, spec: tuple[str, _Parser]) -> None:
    name, parser = spec
    values[name] = parser(raw, key)


def load_config(path: str | os.PathLike[str] | None, overrides: Mapping[str, Any] | None = None) -> ProcessorConfig:
    """Read the YAML file at ``path`` (if any), then apply ``overrides`` (flag values, flat keys
    such as ``window`` or ``db``; ``None`` values are skipped), and validate the result."""
    values: dict[str, Any] = {}
    bodies: dict[str, Any] = {}
    if path is not None:
        try:
            values.update(_read_yaml(Path(path), bodies))
            sections = _parse_sections(bodies)
        except ConfigError as exc:
            text = str(exc)
            raise ConfigError(text if text.startswith("config file") else f"{path}: {text}") from None
    else:
        sections = _parse_sections(bodies)
    values["sections"] = sections
    for key, raw in (overrides or {}).items():
        if raw is None:
            continue
        if key not in _FLAT:
            raise ConfigError(f"{key}: unknown setting; known: {', '.join(sorted(_FLAT))}")
        _apply(values, key, raw, _FLAT[key])
    if "token" not in values and "INFERSIGHT_PROCESSOR_TOKEN" in os.environ:
        values["token"] = _token(os.environ["INFERSIGHT_PROCESSOR_TOKEN"], "INFERSIGHT_PROCESSOR_TOKEN")
    cfg = _validate(ProcessorConfig(**values))
    for target in _CHECKS:
        module, _, func = target.partition(":")
        try:
            getattr(importlib.import_module(module), func)(cfg)
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}" if path is not None else str(exc)) from None
    return cfg


def _parse_sections(bodies: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, target in _EXTENSIONS.items():
        module, _, func = target.partition(":")
        out[name] = getattr(importlib.import_module(module), func)(bodies.get(name) or {}, name)
    return out


def _read_yaml(path: Path, bodies: dict[str, Any]) -> dict[str, Any]:
    import yaml

    try:
        doc = yaml.safe_load(path.read_text()) or {}
    except OSError as exc:
        raise ConfigError(f"config file {str(path)!r} cannot be read: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {str(path)!r} is not valid YAML: {exc}") from exc
    known = [*_SECTIONS, *_EXTENSIONS]
    if not isinstance(doc, dict):
        raise ConfigError(f"config file {str(path)!r} must be a mapping of sections ({', '.join(known)})")
    values: dict[str, Any] = {}
    for section, body in doc.items():
        if section in _EXTENSIONS:
            if body is not None and not isinstance(body, dict):
                raise ConfigError(f"{section}: {body!r} must be a mapping")
            bodies[section] = body
            continue
        if section not in _SECTIONS:
            raise ConfigError(f"{section}: unknown section; known: {', '.join(known)}")
        if not isinstance(body, dict):
            raise ConfigError(f"{section}: must be a mapping of keys ({', '.join(_SECTIONS[section])})")
        for key, raw in body.items():
            if key not in _SECTIONS[section]:
                raise ConfigError(f"{section}.{key}: unknown key; known in {section}: {', '.join(_SECTIONS[section])}")
            _apply(values, f"{section}.{key}", raw, _SECTIONS[section][key])
    return values


def _validate(cfg: ProcessorConfig) -> ProcessorConfig:
    for size in cfg.rollups:
        if size <= cfg.window or size % cfg.window:
            raise ConfigError(
                f"storage.rollups: {size}s must be a multiple of the base window {cfg.window}s and larger"
            )
    sizes = cfg.window_sizes
    for a, b in zip(sizes[1:], sizes[2:]):
        if b % a:
            raise ConfigError(
                f"storage.rollups: {b}s is not a multiple of {a}s; each roll-up must contain whole smaller windows"
            )
    for size in cfg.retention:
        if size not in sizes:
            raise ConfigError(
                f"storage.retention: {size}s is not a configured window size ({', '.join(f'{s}s' for s in sizes)})"
            )
    if bool(cfg.tls_cert) != bool(cfg.tls_key):
        raise ConfigError("security.tls_cert and security.tls_key must be given together")
    return replace(cfg)
