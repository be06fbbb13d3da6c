"""Wires the processor together: storage, the ingest writer, OTLP listeners, the web port,
periodic maintenance (compaction, retention), and a graceful stop on SIGTERM.

Stop order matters for "acknowledged means stored": listeners stop taking requests first, then
the writer commits everything already queued, then the store closes.

Example:
    >>> from infersight.processor.config import load_config
    >>> p = Processor(load_config(None, {"db": "sqlite:///:memory:", "otlp_grpc": "127.0.0.1:0",
    ...     "otlp_http": "127.0.0.1:0", "web": "127.0.0.1:0"}))
    >>> p.start(); sorted(p.ports); p.stop()
    ['otlp_grpc', 'otlp_http', 'web']
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import uvicorn

from infersight.processor.alerts.manager import AlertManager
from infersight.processor.alerts.routes import alert_routes
from infersight.processor.api import make_web_app
from infersight.processor.config import ProcessorConfig, load_config, split_address
from infersight.processor.dashboard.routes import dashboard_routes
from infersight.processor.dashboard.settings import DashboardSettings
from infersight.processor.evaluate.loop import EvaluationLoop
from infersight.processor.evaluate.ownership import Ownership, failpoint_from_env, replica_id
from infersight.processor.evaluate.settings import EvaluationSettings
from infersight.processor.ingest.receiver import Receiver, make_grpc_server, make_http_app
from infersight.processor.ingest.writer import Ingestor
from infersight.processor.quality.api import quality_routes
from infersight.processor.quality.evaluator import QualityEvaluator
from infersight.processor.selfmetrics import Registry
from infersight.processor.slo.api import slo_routes
from infersight.processor.slo.evaluator import SLOEvaluator
from infersight.processor.storage import Storage, open_storage

__all__ = ["Processor", "start_local"]

log = logging.getLogger("infersight.processor")


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: the processor owns SIGTERM for all listeners."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


# listener -> (what it serves, the flag that moves it); the config file key is listen.<listener>
_LISTENERS = {
    "otlp_grpc": ("OTLP/gRPC", "--otlp-grpc"),
    "otlp_http": ("OTLP/HTTP", "--otlp-http"),
    "web": ("the web API", "--web"),
}


def _listen_error(name: str, address: str, reason: str) -> OSError:
    what, flag = _LISTENERS[name]
    hint = "stop the program holding that port, or " if "in use" in reason else ""
    return OSError(
        f"cannot listen for {what} on {address}: {reason}; {hint}choose another address with "
        f"{flag} HOST:PORT (listen.{name} in the config file)"
    )


def _bind(name: str, address: str) -> socket.socket:
    host, port = split_address(address)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise _listen_error(name, address, exc.strerror or str(exc)) from exc
    sock.listen(1024)
    sock.setblocking(False)
    return sock


def _probe(name: str, address: str) -> None:
    """Fail with :func:`_listen_error` when ``address`` is taken, before gRPC tries it: gRPC's
    own failure is a C-core log line plus a RuntimeError that names neither flag nor fix."""
    if split_address(address)[1] != 0:
        _bind(name, address).close()


class Processor:
    """The companion service. :meth:`start` returns once every listener is up (ports in
    :attr:`ports`); :meth:`run` also waits for SIGTERM/SIGINT and stops gracefully."""

    def __init__(self, config: ProcessorConfig, storage: Storage | None = None) -> None:
        self.config = config
        self.registry = Registry()
        self.storage = storage or open_storage(config.db, config.window_sizes, feedback_ttl=config.feedback_ttl)
        self.ingestor = Ingestor(
            self.storage,
            window_sizes=config.window_sizes,
            registry=self.registry,
            queue_points=config.queue_points,
            commit_interval=config.commit_interval,
            commit_max_requests=config.commit_max_requests,
        )
        self.receiver = Receiver(
            self.ingestor,
            self.registry,
            config.token,
            config.ack_timeout,
            config.max_inflight_bytes,
            limits=config.sections["limits"],
        )
        # Evaluation: the loop thread over stored windows (models:/evaluation: sections); every
        # window's findings go to the alert engine (alerts: section).
        # Replicas on one store split the models between them by leases (evaluation.lease): a
        # model is evaluated, and its alerts sent, only by the replica holding its lease; a
        # replica taking a model over first reloads that model's alert state from the store.
        self.replica = replica_id()
        evaluation = config.sections.get("evaluation") or EvaluationSettings()
        self.alerts = AlertManager(config.sections["alerts"], self.storage, replica=self.replica)
        self.ownership = Ownership(
            self.storage,
            evaluation.lease_for(),
            replica=self.replica,
            on_acquire=[self.alerts.reload_model],
            registry=self.registry,
        )
        self.evaluation = EvaluationLoop(
            self.storage,
            config.sections.get("models"),
            evaluation,
            registry=self.registry,
            on_findings=self.alerts.observe,
            ownership=self.ownership,
        )
        # a test hook (INFERSIGHT_FAILPOINT_EVALUATE): block on one window so a test can kill
        # this replica in the middle of an evaluation
        failpoint = failpoint_from_env()
        if failpoint is not None:
            self.evaluation.evaluators.insert(0, failpoint)
        # model quality from late labels: judged again as each window's labels arrive
        self.evaluation.evaluators.append(QualityEvaluator(config.sections["quality"]))
        # SLOs: judged per model at every storage-window close, alerts through the same engine
        slo = config.sections.get("slo")
        if slo is not None and slo.objectives:
            models = config.sections.get("models")
            self.evaluation.slo = SLOEvaluator(
                slo,
                quality_size=lambda m: models.for_model(m).window_sizes(config.window)[0] if models else config.window,
            )
        # the dashboard: which spans and logs ingest keeps for the request view, the Jaeger link
        self.dashboard = _dashboard_settings(config)
        self.ingestor.keep_traces = self.dashboard.keep
        self.ports: dict[str, int] = {}
        self._servers: list[_Server] = []
        self._loop_thread: threading.Thread | None = None
        self._grpc: Any = None
        self._stop_maintenance = threading.Event()
        self._maintenance: threading.Thread | None = None
        self._stopped = False

    def start(self) -> None:
        cfg = self.config
        tls = None
        ssl: dict[str, Any] = {}
        if cfg.tls_cert and cfg.tls_key:
            tls = (Path(cfg.tls_key).read_bytes(), Path(cfg.tls_cert).read_bytes())
            ssl = {"ssl_certfile": cfg.tls_cert, "ssl_keyfile": cfg.tls_key}
        self.ingestor.start()
        _probe("otlp_grpc", cfg.otlp_grpc)
        try:
            self._grpc, self.ports["otlp_grpc"] = make_grpc_server(
                self.receiver, cfg.otlp_grpc, max_body_bytes=cfg.max_body_bytes, retry_after=cfg.retry_after, tls=tls
            )
        except RuntimeError as exc:  # taken between the probe and gRPC's bind
            raise _listen_error("otlp_grpc", cfg.otlp_grpc, "address already in use or not available") from exc
        self._grpc.start()
        apps = {
            "otlp_http": (
                cfg.otlp_http,
                make_http_app(self.receiver, max_body_bytes=cfg.max_body_bytes, retry_after=cfg.retry_after),
            ),
            "web": (
                cfg.web,
                make_web_app(
                    self.storage,
                    self.registry,
                    receiver=self.receiver if cfg.token else None,
                    ingestor=self.ingestor,
                    evaluation=self.evaluation,
                    mounts=[
                        lambda guard: alert_routes(self.alerts, guard=guard),
                        lambda guard: quality_routes(
                            self.storage, cfg.sections["quality"], guard=guard, base_window=cfg.window
                        ),
                        lambda guard: slo_routes(self.storage, cfg.sections["slo"], guard=guard),
                        lambda guard: dashboard_routes(
                            self.storage,
                            self.dashboard,
                            token=cfg.token,
                            guard=guard,
                            env=self.evaluation.env,
                            slo=cfg.sections.get("slo"),
                            alerts=self.alerts,
                            base_window=cfg.window,
                        ),
                    ],
                ),
            ),
        }
        socks = []
        for name, (address, app) in apps.items():
            sock = _bind(name, address)
            self.ports[name] = sock.getsockname()[1]
            server = _Server(
                uvicorn.Config(
                    app, log_level="warning", access_log=False, lifespan="off", timeout_graceful_shutdown=10, **ssl
                )
            )
            self._servers.append(server)
            socks.append(sock)
        started = threading.Event()

        async def serve() -> None:
            tasks = [asyncio.create_task(s.serve(sockets=[sock])) for s, sock in zip(self._servers, socks)]
            while not all(s.started for s in self._servers) and not any(t.done() for t in tasks):
                await asyncio.sleep(0.01)
            started.set()
            await asyncio.gather(*tasks)

        self._loop_thread = threading.Thread(target=lambda: asyncio.run(serve()), name="infersight-http", daemon=True)
        self._loop_thread.start()
        started.wait(30)
        self._maintenance = threading.Thread(target=self._maintain, name="infersight-maintenance", daemon=True)
        self._maintenance.start()
        # announce this replica before its first pass, so the replicas starting together
        # share the models from the first pass on
        with contextlib.suppress(Exception):
            self.ownership.claim([])
        self.evaluation.start()
        log.info("infersight processor listening: %s", self.ports)

    def maintain_once(self, now: float | None = None) -> dict[str, int]:
        """Fold the windows written since last time and drop what is past retention."""
        cfg = self.config
        folded = self.storage.compact(self.ingestor.take_dirty())
        self.registry.inc("infersight_processor_windows_compacted_total", folded)
        gone = self.storage.expire(
            time.time() if now is None else now,
            {size: cfg.retention_for(size) for size in cfg.window_sizes},
            cfg.prediction_retention,
            cfg.dedup_ttl,
        )
        # evaluation records: verdicts as long as the longest-kept windows they judge; the
        # quality tallies and label counts as long as the calls they count
        at = time.time() if now is None else now
        keep = max(cfg.retention_for(size) for size in cfg.window_sizes)
        for kind, horizon in (
            ("finding", keep),
            ("findings", keep),
            ("finding_history", keep),
            ("evaluation", keep),
            ("evaluation_labels", cfg.prediction_retention),
            ("quality_window", cfg.prediction_retention),
            ("slo_history", keep),
        ):
            gone[f"records:{kind}"] = self.storage.delete_records(kind, before=at - horizon)
        d = self.dashboard
        gone["trace_items"] = self.storage.expire_trace_items(at, d.recent, d.retention, d.max_items)
        for kind, n in gone.items():
            if n:
                self.registry.inc("infersight_processor_expired_total", n, kind=kind)
        return gone

    def _maintain(self) -> None:
        with contextlib.suppress(Exception):
            self.storage.compact(None)  # rows a previous run left unfolded
        while not self._stop_maintenance.wait(self.config.maintenance_interval):
            try:
                self.maintain_once()
            except Exception:
                log.exception("maintenance failed; will retry")

    def stop(self) -> None:
        """Stop listening, commit what is queued, close the store. Safe to call twice."""
        if self._stopped:
            return
        self._stopped = True
        for s in self._servers:
            s.should_exit = True
        if self._grpc is not None:
            self._grpc.stop(grace=5).wait(10)
        if self._loop_thread is not None:
            self._loop_thread.join(15)
        self.ingestor.stop()
        self.evaluation.stop()
        with contextlib.suppress(Exception):
            self.ownership.release_all()  # the other replicas take this one's models at once
        self.alerts.close()
        self._stop_maintenance.set()
        if self._maintenance is not None:
            self._maintenance.join(30)
        with contextlib.suppress(Exception):
            self.storage.compact(self.ingestor.take_dirty())
        self.storage.close()

    def run(self) -> int:
        """Start, print the bound ports, and block until SIGTERM or SIGINT."""
        done = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: done.set())
        self.start()
        print(
            "infersight processor ready: "
            + " ".join(f"{k}={v}" for k, v in self.ports.items())
            + f" db={_safe_url(self.config.db)}",
            flush=True,
        )
        while not done.wait(1.0):
            pass
        print("infersight processor stopping", flush=True)
        self.stop()
        print("infersight processor stopped", flush=True)
        return 0


def start_local(folder: Path, config_text: str, *, alert_log: bool = False) -> Processor:
    """A started processor for scripts and demos on one machine: the config ``config_text``
    (YAML) written to ``folder/processor.yaml``, SQLite in ``folder``, every port an ephemeral
    one on 127.0.0.1 (read them from :attr:`Processor.ports`). With ``alert_log=False`` the
    log channel's JSON lines are not printed (the caller reads ``/api/alerts`` instead).

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     p = start_local(Path(tmp), "storage: {window: 1s}")
    ...     sorted(p.ports)
    ...     p.stop()
    ['otlp_grpc', 'otlp_http', 'web']
    """
    path = Path(folder) / "processor.yaml"
    path.write_text(config_text)
    loopback = {"otlp_grpc": "127.0.0.1:0", "otlp_http": "127.0.0.1:0", "web": "127.0.0.1:0"}
    config = load_config(path, {"db": f"sqlite:///{folder}/infersight.db", **loopback})
    if not alert_log:
        quiet = logging.getLogger("infersight.alerts")
        quiet.addHandler(logging.NullHandler())
        quiet.propagate = False
    processor = Processor(config)
    processor.start()
    return processor


def _dashboard_settings(config: ProcessorConfig) -> DashboardSettings:
    """The ``dashboard:`` section, its Jaeger link falling back to ``alerts.trace_url``."""
    d: DashboardSettings = config.sections.get("dashboard") or DashboardSettings()
    trace_url = getattr(config.sections.get("alerts"), "trace_url", None)
    if d.trace_url is None and trace_url:
        d = dataclasses.replace(d, trace_url=trace_url)
    return d


def _safe_url(url: str) -> str:
    """The storage URL without its password, for logs."""
    from urllib.parse import urlparse

    p = urlparse(url)
    if p.password:
        return url.replace(f":{p.password}@", ":***@")
    return url
