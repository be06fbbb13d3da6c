"""Fixtures for the processor tests: a real PostgreSQL server (started here on a loopback port
in a temp dir, as an unprivileged user when the tests run as root), per-test stores for both
engines, started processors on ephemeral ports, and real OTel SDK exporters pointed at them.

If PostgreSQL cannot be started the postgres-backed tests FAIL (never skip): run
``scripts/install-postgres.sh`` to get the server binaries.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from infersight.processor.config import load_config
from infersight.processor.service import Processor

PG_USER_CANDIDATES = ("postgres", "infersight-pg")


def _pg_bindir() -> str | None:
    for d in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if all(os.access(os.path.join(d, b), os.X_OK) for b in ("initdb", "pg_ctl", "postgres")):
            return d
    initdb = shutil.which("initdb")
    if initdb and shutil.which("pg_ctl"):
        return str(Path(os.path.realpath(initdb)).parent)
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _unprivileged_user() -> str:
    for name in PG_USER_CANDIDATES:
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/bin/sh", "infersight-pg"], check=True)
    return "infersight-pg"


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """URL of a PostgreSQL server for this test session (database ``postgres``)."""
    bindir = _pg_bindir()
    if bindir is None:
        pytest.fail(
            "PostgreSQL server binaries (initdb, pg_ctl, postgres) were not found; "
            "run scripts/install-postgres.sh (apt-get install postgresql) and retry",
            pytrace=False,
        )
    root = tempfile.mkdtemp(prefix="infersight-pg-")
    os.chmod(root, 0o755)
    data, sockdir, logfile = f"{root}/data", f"{root}/sock", f"{root}/server.log"
    os.mkdir(sockdir)
    prefix: list[str] = []
    if os.geteuid() == 0:
        user = _unprivileged_user()
        pw = pwd.getpwnam(user)
        os.chown(root, pw.pw_uid, pw.pw_gid)
        os.chown(sockdir, pw.pw_uid, pw.pw_gid)
        prefix = ["runuser", "-u", user, "--"] if shutil.which("runuser") else ["su", user, "-s", "/bin/sh", "-c"]
    port = _free_port()

    def run(cmd: list[str]) -> subprocess.CompletedProcess[str]:
        full = prefix + cmd if not prefix or prefix[0] == "runuser" else prefix + [" ".join(cmd)]
        return subprocess.run(full, capture_output=True, text=True, timeout=120)

    init = run([f"{bindir}/initdb", "-D", data, "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"])
    if init.returncode != 0:
        pytest.fail(f"initdb failed (as {prefix or 'current user'}):\n{init.stdout}\n{init.stderr}", pytrace=False)
    opts = f"-p {port} -k {sockdir} -c listen_addresses=127.0.0.1 -c max_connections=200"
    start = run([f"{bindir}/pg_ctl", "-D", data, "-l", logfile, "-w", "-t", "60", "-o", opts, "start"])
    if start.returncode != 0:
        log = Path(logfile).read_text() if Path(logfile).exists() else ""
        pytest.fail(f"PostgreSQL did not start:\n{start.stdout}\n{start.stderr}\n{log}", pytrace=False)
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        run([f"{bindir}/pg_ctl", "-D", data, "-m", "immediate", "-w", "stop"])
        shutil.rmtree(root, ignore_errors=True)


def new_pg_database(server_url: str) -> str:
    import psycopg

    name = "t_" + uuid.uuid4().hex[:12]
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return server_url.rsplit("/", 1)[0] + "/" + name


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty store URL; every test using it runs once per engine."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/store.db"
    return new_pg_database(request.getfixturevalue("pg_server"))


@pytest.fixture
def start_processor(tmp_path: Path) -> Iterator[Callable[..., Processor]]:
    """``start_processor(config=YAML, **config_overrides)`` → a started processor on ephemeral
    loopback ports (``config``: the text of a config file, written to the test's folder)."""
    started: list[Processor] = []

    def start(storage: Any = None, config: str | None = None, **overrides: Any) -> Processor:
        values: dict[str, Any] = {
            "db": f"sqlite:///{tmp_path}/p{len(started)}.db",
            "otlp_grpc": "127.0.0.1:0",
            "otlp_http": "127.0.0.1:0",
            "web": "127.0.0.1:0",
        }
        extra = {k: overrides.pop(k) for k in list(overrides) if k not in values and k not in ("window", "token")}
        values.update(overrides)
        path = None
        if config is not None:
            path = tmp_path / f"p{len(started)}.yaml"
            path.write_text(config)
        cfg = load_config(path, values)
        if extra:
            from dataclasses import replace

            cfg = replace(cfg, **extra)
        p = Processor(cfg, storage=storage)
        p.start()
        started.append(p)
        return p

    yield start
    for p in started:
        p.stop()


class Otel:
    """Real OTel SDK pipelines (providers + OTLP exporters) pointed at a started processor.

    Metrics use a periodic reader with a very long interval: ``provider.force_flush()`` is the
    export, so a test decides exactly which points each export carries.
    """

    def __init__(self) -> None:
        self._providers: list[Any] = []

    def _exporter(
        self, signal: str, processor: Processor, transport: str, token: str | None, compression: Any = None, **kw: Any
    ) -> Any:
        headers = {"authorization": f"Bearer {token}"} if token else None
        if transport == "grpc":
            from opentelemetry.exporter.otlp.proto.grpc import _log_exporter, metric_exporter, trace_exporter

            cls = {
                "metrics": metric_exporter.OTLPMetricExporter,
                "traces": trace_exporter.OTLPSpanExporter,
                "logs": _log_exporter.OTLPLogExporter,
            }[signal]
            return cls(
                endpoint=f"127.0.0.1:{processor.ports['otlp_grpc']}",
                insecure=True,
                headers=headers,
                compression=compression,
                timeout=10,
                **kw,
            )
        from opentelemetry.exporter.otlp.proto.http import _log_exporter, metric_exporter, trace_exporter

        cls = {
            "metrics": metric_exporter.OTLPMetricExporter,
            "traces": trace_exporter.OTLPSpanExporter,
            "logs": _log_exporter.OTLPLogExporter,
        }[signal]
        return cls(
            endpoint=f"http://127.0.0.1:{processor.ports['otlp_http']}/v1/{signal}",
            headers=headers,
            compression=compression,
            timeout=10,
            **kw,
        )

    def metrics(
        self,
        processor: Processor,
        transport: str = "http",
        *,
        temporality: str = "delta",
        service: str = "svc",
        token: str | None = None,
        compression: Any = None,
    ) -> Any:
        from opentelemetry.sdk.metrics import Counter, Histogram, MeterProvider, UpDownCounter
        from opentelemetry.sdk.metrics.export import AggregationTemporality, PeriodicExportingMetricReader
        from opentelemetry.sdk.metrics.view import ExponentialBucketHistogramAggregation, View
        from opentelemetry.sdk.resources import Resource

        temp = AggregationTemporality.DELTA if temporality == "delta" else AggregationTemporality.CUMULATIVE
        exporter = self._exporter(
            "metrics",
            processor,
            transport,
            token,
            compression,
            preferred_temporality={Counter: temp, Histogram: temp, UpDownCounter: temp},
        )
        reader = PeriodicExportingMetricReader(exporter, export_interval_millis=10**9)
        views = [
            View(instrument_name=n, aggregation=ExponentialBucketHistogramAggregation())
            for n in ("ml.feature.value", "ml.prediction.value")
        ]
        mp = MeterProvider(metric_readers=[reader], views=views, resource=Resource.create({"service.name": service}))
        self._providers.append(mp)
        return mp

    def tracer(self, processor: Processor, transport: str = "http", *, token: str | None = None) -> Any:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor

        tp = TracerProvider(resource=Resource.create({"service.name": "svc"}))
        tp.add_span_processor(SimpleSpanProcessor(self._exporter("traces", processor, transport, token)))
        self._providers.append(tp)
        return tp

    def logger(self, processor: Processor, transport: str = "http", *, token: str | None = None) -> Any:
        from opentelemetry.sdk._logs import LoggerProvider
        from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
        from opentelemetry.sdk.resources import Resource

        lp = LoggerProvider(resource=Resource.create({"service.name": "svc"}))
        lp.add_log_record_processor(SimpleLogRecordProcessor(self._exporter("logs", processor, transport, token)))
        self._providers.append(lp)
        return lp

    def close(self) -> None:
        for p in self._providers:
            try:
                p.shutdown()
            except Exception:
                pass


@pytest.fixture
def otel() -> Iterator[Otel]:
    o = Otel()
    yield o
    o.close()


def model_attrs(feature: str | None = None, model: str = "churn", version: str = "1", **extra: Any) -> dict[str, Any]:
    attrs: dict[str, Any] = {"ml.model.name": model, "ml.model.version": version}
    if feature is not None:
        attrs["ml.feature.name"] = feature
    attrs.update(extra)
    return attrs


@pytest.fixture
def attrs() -> Callable[..., dict[str, Any]]:
    """``attrs("age", model="churn", **more)`` → the attributes the SDK puts on ml.* points."""
    return model_attrs


@pytest.fixture
def pg_database(pg_server: str) -> Callable[[], str]:
    """``pg_database()`` → the URL of a new, empty database on the session's server."""
    return lambda: new_pg_database(pg_server)
