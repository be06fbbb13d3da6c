"""`infersight processor` run for real: what a user reads when a port is taken, a flag is
wrong, the token is empty or the processor extra is not installed. One line, no traceback,
naming the thing, the value and the fix."""

from __future__ import annotations

import socket

import pytest

from infersight.processor.config import ConfigError, load_config
from tests.support.cli import run_cli

FREE = {"otlp_grpc": "127.0.0.1:0", "otlp_http": "127.0.0.1:0", "web": "127.0.0.1:0"}


def _args(addresses, db):
    return [f"--{k.replace('_', '-')}={v}" for k, v in addresses.items()] + ["--db", f"sqlite:///{db}"]


@pytest.mark.parametrize(
    "listener, what, flag",
    [
        ("otlp_grpc", "OTLP/gRPC", "--otlp-grpc"),
        ("otlp_http", "OTLP/HTTP", "--otlp-http"),
        ("web", "the web API", "--web"),
    ],
)
def test_a_busy_port_is_one_line_naming_the_address_and_the_flag(listener, what, flag, tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        address = f"127.0.0.1:{busy.getsockname()[1]}"
        r = run_cli("processor", *_args({**FREE, listener: address}, tmp_path / "p.db"), timeout=60)
    assert r.returncode == 1
    assert r.stderr == (
        f"infersight processor: cannot listen for {what} on {address}: Address already in use; "
        f"stop the program holding that port, or choose another address with {flag} HOST:PORT "
        f"(listen.{listener} in the config file)\n"
    )


def test_an_unknown_log_level_lists_the_valid_ones(tmp_path):
    # In a subprocess: were the level accepted, the processor would start (and this would time out).
    r = run_cli("processor", *_args(FREE, tmp_path / "p.db"), "--log-level", "LOUD", timeout=60)
    assert r.returncode == 2 and r.stderr.startswith("usage: infersight processor")
    assert r.stderr.endswith(
        "infersight processor: error: argument --log-level: invalid choice: 'LOUD' "
        "(choose from 'DEBUG', 'INFO', 'WARNING', 'ERROR', 'CRITICAL')\n"
    )


def test_an_empty_token_is_refused_from_the_flag_the_env_and_the_file(tmp_path, monkeypatch):
    # `--token "$TOKEN"` with $TOKEN unset: the processor must not start open to anyone.
    r = run_cli("processor", *_args(FREE, tmp_path / "p.db"), "--token", "", timeout=60)
    assert r.returncode == 2, r.stdout
    assert r.stderr.startswith("infersight processor: configuration error: token: the token is empty")
    assert "leave the token out to run without authentication" in r.stderr and "ready" not in r.stdout
    monkeypatch.setenv("INFERSIGHT_PROCESSOR_TOKEN", "")
    with pytest.raises(ConfigError, match="^INFERSIGHT_PROCESSOR_TOKEN: the token is empty"):
        load_config(None)
    monkeypatch.delenv("INFERSIGHT_PROCESSOR_TOKEN")
    token_file = tmp_path / "token"
    token_file.write_text("\n")
    config = tmp_path / "p.yaml"
    config.write_text(f"security:\n  token_file: {token_file}\n")
    with pytest.raises(ConfigError, match=r"^.*p\.yaml: security\.token_file \(file '.*token'\): the token is empty"):
        load_config(config)
    token_file.write_text("s3cret\n")
    assert load_config(config).token == "s3cret"


def test_without_the_processor_extra_the_command_names_it(tmp_path):
    r = run_cli("processor", *_args(FREE, tmp_path / "p.db"), block=["uvicorn"], timeout=60)
    assert r.returncode == 2
    assert r.stderr == (
        "infersight processor: the processor needs the Python package 'uvicorn', which is not installed; "
        "install it with: pip install 'infersight[processor]'\n"
    )
