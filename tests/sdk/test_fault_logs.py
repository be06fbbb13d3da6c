"""What infersight writes to the application's log when telemetry goes wrong: one line per
fault, no stray ``NoneType: None``, and with no collector one line about the endpoint (plus one
when it comes back) instead of the OTel exporters' retry warnings for every batch."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from infersight import _state
from support.otlp_sink import OtlpSink

REPO = Path(__file__).resolve().parents[2]

# A model server in miniature: monitored calls every 20 ms, exports every 100-500 ms, for
# argv[3] seconds at most, or until the file argv[4] exists.
SCRIPT = textwrap.dedent("""
    import os, sys, time
    import infersight

    infersight.configure(service_name="fault-logs", endpoint=sys.argv[1], protocol=sys.argv[2],
                         log_output="none", payload_sample_rate=1.0)

    @infersight.monitor(model="fault-logs")
    def predict(row):
        return row["x"] * 2.0

    deadline = time.monotonic() + float(sys.argv[3])
    while time.monotonic() < deadline and not os.path.exists(sys.argv[4]):
        predict({"x": 1.0})
        time.sleep(0.02)
""")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _formatted(records: list[logging.LogRecord]) -> str:
    fmt = logging.Formatter("%(message)s")
    return "\n".join(fmt.format(r) for r in records)


def test_a_fault_noticed_outside_an_exception_logs_one_line(caplog: pytest.LogCaptureFixture) -> None:
    """A fault found by looking (a failed export's result), not by catching, logs its one line
    and nothing after it; one caught in an ``except`` still carries its traceback."""
    rt = _state.get_runtime()
    with caplog.at_level(logging.WARNING, logger="infersight"):
        rt.fault("fault_logs_noticed")
        try:
            raise KeyError("odd dtype")
        except KeyError:
            rt.fault("fault_logs_caught")
    noticed, caught = _formatted([caplog.records[0]]), _formatted([caplog.records[1]])
    assert noticed == "infersight: telemetry fault 'fault_logs_noticed' (counted in ml.telemetry.dropped; logged once)"
    assert "NoneType: None" not in noticed
    assert "Traceback" in caught and "KeyError: 'odd dtype'" in caught


def _run(endpoint: str, protocol: str, seconds: float, err: Any, stop_file: Path) -> subprocess.Popen[str]:
    env = dict(
        os.environ,
        OTEL_BSP_SCHEDULE_DELAY="100",
        OTEL_BLRP_SCHEDULE_DELAY="100",
        INFERSIGHT_METRIC_EXPORT_INTERVAL="0.5",
        OTEL_EXPORTER_OTLP_TIMEOUT="1",
        INFERSIGHT_FLUSH_ON_SIGNAL="false",
    )
    return subprocess.Popen(
        [sys.executable, "-c", SCRIPT, endpoint, protocol, str(seconds), str(stop_file)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=err,
        text=True,
    )


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_an_unreachable_endpoint_is_one_line_not_a_retry_log_per_batch(protocol: str, tmp_path: Path) -> None:
    """Nobody listens on the port: for 2.5 s every export fails (spans, logs and metrics, each
    retried); stderr gets exactly one line, naming the endpoint and ml.telemetry.dropped."""
    port = _free_port()
    proc = _run(f"http://127.0.0.1:{port}", protocol, 2.5, subprocess.PIPE, tmp_path / "never")
    _, err = proc.communicate(timeout=30)
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert f"127.0.0.1:{port} is unreachable" in lines[0] and "ml.telemetry.dropped" in lines[0]
    assert "Traceback" not in err and "NoneType" not in err


def test_an_endpoint_coming_back_is_one_more_line(tmp_path: Path) -> None:
    """The collector starts on the port while the process runs: one line when it was
    unreachable, one when exports go through again, and the telemetry arrives."""
    port = _free_port()
    with tempfile.TemporaryFile(mode="w+") as err:
        proc = _run(f"http://127.0.0.1:{port}", "http/protobuf", 15, err, tmp_path / "stop")
        try:

            def stderr() -> str:
                err.seek(0)
                return err.read()

            deadline = time.monotonic() + 10
            while "unreachable" not in stderr() and time.monotonic() < deadline:
                time.sleep(0.05)
            with OtlpSink(http_port=port) as sink:
                deadline = time.monotonic() + 10
                while "reachable again" not in stderr() and time.monotonic() < deadline:
                    time.sleep(0.05)
                assert sink.wait_for(lambda s: len(s.spans()) > 0, timeout=5)
                (tmp_path / "stop").touch()
                proc.wait(timeout=15)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        lines = [line for line in stderr().splitlines() if line.strip()]
    assert len(lines) == 2, lines
    assert f"http://127.0.0.1:{port} is unreachable" in lines[0]
    assert lines[1] == f"infersight: OTLP endpoint http://127.0.0.1:{port} is reachable again; exporting resumed"
