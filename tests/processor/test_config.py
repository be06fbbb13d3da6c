"""Configuration: YAML + flags, durations, errors that name the key."""

from __future__ import annotations

import subprocess
import sys

import pytest

from infersight.processor.config import ConfigError, load_config, parse_duration


@pytest.mark.parametrize(
    "text,seconds", [("1s", 1), ("60s", 60), ("5m", 300), ("1h", 3600), ("7d", 604800), ("250ms", 0.25)]
)
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


def test_flags_override_the_file_and_defaults_listen_on_loopback(tmp_path):
    cfg_file = tmp_path / "p.yaml"
    cfg_file.write_text(
        "listen:\n  web: 127.0.0.1:9000\nstorage:\n  window: 5m\n  rollups: [1h]\n"
        "  retention: {1h: 30d}\ningest:\n  max_body: 8MiB\n"
    )
    cfg = load_config(cfg_file, {"window": "1m", "web": None})
    assert cfg.window == 60 and cfg.web == "127.0.0.1:9000" and cfg.rollups == (3600,)
    assert cfg.max_body_bytes == 8 * 2**20 and cfg.retention_for(3600) == 30 * 86400
    default = load_config(None)
    assert all(a.startswith("127.0.0.1:") for a in (default.otlp_grpc, default.otlp_http, default.web))
    assert default.db == "sqlite:///./infersight.db" and default.window == 60


@pytest.mark.parametrize(
    "yaml_text,names",
    [
        ("storage:\n  window: 7x\n", "storage.window: '7x' is not a duration"),
        ("storage:\n  windw: 5s\n", "storage.windw: unknown key"),
        ("listen:\n  web: localhost\n", "listen.web: 'localhost' is not HOST:PORT"),
        ("storage:\n  url: mysql://x\n", "storage.url: 'mysql://x' is not a storage URL"),
        ("storage:\n  window: 60s\n  rollups: [90s]\n", "storage.rollups: 90s must be a multiple"),
        ("ingest:\n  queue_points: -3\n", "ingest.queue_points: -3 must be a whole number above zero"),
        ("security:\n  tls_cert: /nonexistent.pem\n", "security.tls_cert: file '/nonexistent.pem' does not exist"),
        ("nonsense: 1\n", "nonsense: unknown section"),
        ("storage: [\n", "not valid YAML"),
    ],
)
def test_errors_name_the_key(tmp_path, yaml_text, names):
    f = tmp_path / "bad.yaml"
    f.write_text(yaml_text)
    with pytest.raises(ConfigError, match=names.replace("[", r"\[").replace("(", r"\(")):
        load_config(f)


def test_cli_reports_config_errors_with_exit_code_2(tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "infersight.processor", "--window", "0s", "--db", f"sqlite:///{tmp_path}/x.db"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2 and "window: '0s' must be longer than zero" in r.stderr
