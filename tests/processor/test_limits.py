"""Series-cardinality limits: a real processor on loopback, real OTLP on the wire (HTTP and
gRPC), a client flooding it with model names or series, and a restart on the same store."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import numpy as np
import pytest
import yaml
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from infersight.processor.config import ConfigError, load_config
from infersight.processor.ingest.limits import RECORD_KIND, LimitSettings, SeriesLimiter, parse_limits
from infersight.processor.service import Processor
from infersight.stats.sketch import ExpHistogram

PROTOBUF = {"content-type": "application/x-protobuf"}


@pytest.fixture
def processor(tmp_path: Path) -> Iterator[Callable[..., Processor]]:
    """``processor(db=..., **limits)`` → a started processor read from a YAML config file with
    a ``limits:`` section (none when no limits are given)."""
    started: list[Processor] = []

    def start(db: str | None = None, **limits: int) -> Processor:
        doc: dict[str, Any] = {
            "listen": {"otlp_grpc": "127.0.0.1:0", "otlp_http": "127.0.0.1:0", "web": "127.0.0.1:0"},
            "storage": {"url": db or f"sqlite:///{tmp_path}/store.db"},
        }
        if limits:
            doc["limits"] = limits
        path = tmp_path / f"processor{len(started)}.yaml"
        path.write_text(yaml.safe_dump(doc))
        p = Processor(load_config(path))
        p.start()
        started.append(p)
        return p

    yield start
    for p in started:
        p.stop()


def _attrs(target: Any, values: dict[str, str]) -> None:
    for k, v in values.items():
        target.add(key=k).value.string_value = v


def missing_counts(service: str, points: list[dict[str, str]]) -> bytes:
    """One ``ml.feature.missing`` delta sum point (value 1) per attribute set."""
    req = ExportMetricsServiceRequest()
    rm = req.resource_metrics.add()
    _attrs(rm.resource.attributes, {"service.name": service})
    metric = rm.scope_metrics.add().metrics.add(name="ml.feature.missing")
    metric.sum.aggregation_temporality = 1
    metric.sum.is_monotonic = True
    now = time.time_ns()
    for attrs in points:
        dp = metric.sum.data_points.add(as_int=1, start_time_unix_nano=now - 10**9, time_unix_nano=now)
        _attrs(dp.attributes, {"ml.missing.kind": "nan", **attrs})
    return req.SerializeToString()


def feature_sketches(service: str, model: str, features: list[str], sketch: ExpHistogram) -> bytes:
    """One delta exponential-histogram ``ml.feature.value`` point per feature (the columnar path)."""
    req = ExportMetricsServiceRequest()
    rm = req.resource_metrics.add()
    _attrs(rm.resource.attributes, {"service.name": service})
    eh = rm.scope_metrics.add().metrics.add(name="ml.feature.value").exponential_histogram
    eh.aggregation_temporality = 1
    now = time.time_ns()
    for f in features:
        dp = eh.data_points.add(
            start_time_unix_nano=now - 10**9,
            time_unix_nano=now,
            count=sketch.count,
            sum=sketch.sum,
            scale=sketch.scale,
            zero_count=sketch.zero_count,
            min=sketch.min,
            max=sketch.max,
        )
        dp.positive.offset = sketch.positive.offset
        dp.positive.bucket_counts.extend(sketch.positive.counts.tolist())
        _attrs(dp.attributes, {"ml.model.name": model, "ml.model.version": "1", "ml.feature.name": f})
    return req.SerializeToString()


def prediction_logs(service: str, models: list[str]) -> bytes:
    req = ExportLogsServiceRequest()
    rl = req.resource_logs.add()
    _attrs(rl.resource.attributes, {"service.name": service})
    sl = rl.scope_logs.add()
    for i, m in enumerate(models):
        rec = sl.log_records.add(time_unix_nano=time.time_ns(), event_name="ml.prediction")
        _attrs(rec.attributes, {"ml.model.name": m, "ml.request.id": f"r{i}"})
    return req.SerializeToString()


def model_spans(service: str, models: list[str]) -> bytes:
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    _attrs(rs.resource.attributes, {"service.name": service})
    ss = rs.scope_spans.add()
    now = time.time_ns()
    for i, m in enumerate(models):
        span = ss.spans.add(
            name="predict",
            trace_id=bytes([1] * 15 + [i % 250 + 1]),
            span_id=bytes([2] * 7 + [i % 250 + 1]),
            start_time_unix_nano=now - 10**7,
            end_time_unix_nano=now,
        )
        _attrs(span.attributes, {"ml.model.name": m})
    return req.SerializeToString()


def post(p: Processor, signal: str, body: bytes) -> Any:
    r = httpx.post(f"http://127.0.0.1:{p.ports['otlp_http']}/v1/{signal}", content=body, headers=PROTOBUF, timeout=60)
    assert r.status_code == 200, r.text
    cls = {
        "metrics": ExportMetricsServiceResponse,
        "logs": ExportLogsServiceResponse,
        "traces": ExportTraceServiceResponse,
    }[signal]
    return cls.FromString(r.content).partial_success


def grpc_metrics(p: Processor, body: bytes) -> Any:
    with grpc.insecure_channel(f"127.0.0.1:{p.ports['otlp_grpc']}") as channel:
        call = channel.unary_unary("/opentelemetry.proto.collector.metrics.v1.MetricsService/Export")
        return ExportMetricsServiceResponse.FromString(call(body, timeout=60)).partial_success


def web(p: Processor, path: str) -> httpx.Response:
    r = httpx.get(f"http://127.0.0.1:{p.ports['web']}{path}", timeout=30)
    assert r.status_code == 200, r.text
    return r


def metric_value(p: Processor, name: str, **labels: str) -> float:
    """One series' value on ``/metrics`` (0 when absent)."""
    lab = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    pattern = re.escape(f"{name}{{{lab}}}" if lab else name) + r" (\S+)"
    m = re.search(f"^{pattern}$", web(p, "/metrics").text, re.M)
    return float(m.group(1)) if m else 0.0


def stored_models(p: Processor) -> set[str]:
    return {m["model"] for m in web(p, "/api/models").json()["models"]}


def feature_names(p: Processor, model: str) -> set[str]:
    return {f["name"] for f in web(p, f"/api/models/{model}").json()["features"]}


def missing_of(p: Processor, model: str, feature: str) -> dict[str, int]:
    return dict(web(p, f"/api/models/{model}/features/{feature}").json()["missing"])


# -- one client, 20,000 model names ---------------------------------------------------------


def test_twenty_thousand_model_names_from_one_client_store_only_the_per_service_bound(processor, tmp_path):
    p = processor()  # the defaults: 500 models per service, 5000 in all
    default = LimitSettings().max_models_per_service
    # A well-behaved service is there first.
    assert post(p, "metrics", missing_counts("shop", [{"ml.model.name": "churn", "ml.feature.name": "age"}])) == (
        ExportMetricsServiceResponse().partial_success
    )

    names = [f"req-{i:05d}" for i in range(20_000)]  # a request ID sent as the model name
    answers = [
        post(p, "metrics", missing_counts("flood", [{"ml.model.name": n, "ml.feature.name": "x"} for n in chunk]))
        for chunk in (names[i : i + 5000] for i in range(0, 20_000, 5000))
    ]
    assert [a.rejected_data_points for a in answers] == [5000 - default, 5000, 5000, 5000]
    for a in answers:
        assert "limits.max_models_per_service" in a.error_message
        assert "service 'flood' already sent 500 models" in a.error_message
    assert "model 'req-00500' not stored" in answers[0].error_message  # the first one refused, by name
    assert stored_models(p) == {"churn", *names[:default]}

    # Admitted series keep flowing, from the flooding service too; other services are not blocked.
    assert post(p, "metrics", missing_counts("flood", [{"ml.model.name": names[0], "ml.feature.name": "x"}])) == (
        ExportMetricsServiceResponse().partial_success
    )
    again = post(
        p,
        "metrics",
        missing_counts(
            "shop",
            [{"ml.model.name": "churn", "ml.feature.name": "age"}, {"ml.model.name": "fraud", "ml.feature.name": "y"}],
        ),
    )
    assert again.rejected_data_points == 0
    assert missing_of(p, "churn", "age") == {"nan": 2}
    assert missing_of(p, names[0], "x") == {"nan": 2}

    # Log records and spans of a refused model are refused too (the name would leak through them).
    logs = post(p, "logs", prediction_logs("flood", [names[0], "req-new-1", "req-new-2"]))
    assert logs.rejected_log_records == 2 and "limits.max_models_per_service" in logs.error_message
    spans = post(p, "traces", model_spans("flood", ["req-new-3", names[1]]))
    assert spans.rejected_spans == 1 and "'req-new-3'" in spans.error_message
    assert stored_models(p) == {"churn", "fraud", *names[:default]}

    refused = 3 * 5000 + 5000 - default
    assert metric_value(p, "infersight_processor_limited_total", limit="max_models_per_service", signal="metrics") == (
        refused
    )
    assert metric_value(p, "infersight_processor_limited_total", limit="max_models_per_service", signal="logs") == 2
    assert metric_value(p, "infersight_processor_limited_total", limit="max_models_per_service", signal="traces") == 1
    assert metric_value(p, "infersight_processor_rejected_total", signal="metrics") == refused
    assert metric_value(p, "infersight_processor_limit_models") == default + 2
    assert metric_value(p, "infersight_processor_limit_series") == default + 3  # + churn/age, fraud/y, model spans

    # A restart on the same store keeps the bound: the service's models are read back.
    p.stop()
    q = processor(db=f"sqlite:///{tmp_path}/store.db")
    assert metric_value(q, "infersight_processor_limit_models") == default + 2
    more = post(
        q,
        "metrics",
        missing_counts("flood", [{"ml.model.name": f"after-{i}"} | {"ml.feature.name": "x"} for i in range(1000)]),
    )
    assert more.rejected_data_points == 1000 and "limits.max_models_per_service" in more.error_message
    kept = post(q, "metrics", missing_counts("flood", [{"ml.model.name": names[7], "ml.feature.name": "x"}]))
    assert kept.rejected_data_points == 0
    assert missing_of(q, names[7], "x") == {"nan": 2}
    assert stored_models(q) == {"churn", "fraud", *names[:default]}
    assert metric_value(q, "infersight_processor_limited_total", limit="max_models_per_service", signal="metrics") == (
        1000
    )


def test_the_total_model_bound_holds_across_services(processor):
    p = processor(max_models=30, max_models_per_service=20)
    first = post(
        p, "metrics", missing_counts("a", [{"ml.model.name": f"a{i}", "ml.feature.name": "x"} for i in range(25)])
    )
    assert first.rejected_data_points == 5 and "limits.max_models_per_service" in first.error_message
    second = post(
        p, "metrics", missing_counts("b", [{"ml.model.name": f"b{i}", "ml.feature.name": "x"} for i in range(25)])
    )
    assert second.rejected_data_points == 15
    assert "the processor already holds 30 models (limits.max_models;" in second.error_message
    # A model another service brought in adds nothing: accepted from anyone.
    shared = post(p, "metrics", missing_counts("b", [{"ml.model.name": "a3", "ml.feature.name": "x"}]))
    assert shared.rejected_data_points == 0
    assert len(stored_models(p)) == 30
    assert metric_value(p, "infersight_processor_limited_total", limit="max_models", signal="metrics") == 15
    assert metric_value(p, "infersight_processor_limited_total", limit="max_models_per_service", signal="metrics") == 5


# -- one model, too many series ---------------------------------------------------------------


@pytest.mark.parametrize("transport", ["grpc", "http"])
def test_one_model_with_too_many_series_stores_only_the_bound(processor, tmp_path, transport):
    p = processor(max_series_per_model=100)
    send = (lambda body: grpc_metrics(p, body)) if transport == "grpc" else (lambda body: post(p, "metrics", body))
    sketch = ExpHistogram.from_values(np.random.default_rng(3).lognormal(2, 1, 300))
    assert send(feature_sketches("app", "churn", ["age", "income"], sketch)).rejected_data_points == 0

    users = [f"user-{i}" for i in range(1000)]  # a user ID sent as the feature name
    flood = send(feature_sketches("app", "churn", users, sketch))
    assert flood.rejected_data_points == 1000 - 98
    assert "limits.max_series_per_model" in flood.error_message
    assert "feature 'user-98' (version '1') of model 'churn' not stored: the model already has 100 series" in (
        flood.error_message
    )
    assert feature_names(p, "churn") == {"age", "income", *users[:98]}

    # Existing series keep being accepted, in the same request as refused ones.
    mixed = send(feature_sketches("app", "churn", ["age", "user-5", "user-999"], sketch))
    assert mixed.rejected_data_points == 1 and "'user-999'" in mixed.error_message
    age = web(p, "/api/models/churn/features/age").json()
    assert age["count"] == 2 * sketch.count
    assert metric_value(p, "infersight_processor_limited_total", limit="max_series_per_model", signal="metrics") == 903
    assert metric_value(p, "infersight_processor_limit_series") == 100

    # After a restart, the model's stored series are read back the first time it is seen.
    p.stop()
    q = processor(db=f"sqlite:///{tmp_path}/store.db", max_series_per_model=100)
    send = (lambda body: grpc_metrics(q, body)) if transport == "grpc" else (lambda body: post(q, "metrics", body))
    later = send(feature_sketches("app", "churn", ["new-feature", "income", "user-50"], sketch))
    assert later.rejected_data_points == 1 and "'new-feature'" in later.error_message
    assert feature_names(q, "churn") == {"age", "income", *users[:98]}
    assert web(q, "/api/models/churn/features/income").json()["count"] == 2 * sketch.count


def test_a_restart_keeps_the_bounds_and_raising_them_admits_more(processor, store_url):
    p = processor(db=store_url, max_series_per_model=3, max_models_per_service=2)
    points = [{"ml.model.name": "m", "ml.feature.name": f"f{i}"} for i in range(5)]
    assert post(p, "metrics", missing_counts("s", points)).rejected_data_points == 2
    logs = post(p, "logs", prediction_logs("s", ["m", "n", "o"]))
    assert logs.rejected_log_records == 1 and "model 'o' not stored" in logs.error_message
    p.stop()
    same = processor(db=store_url, max_series_per_model=3, max_models_per_service=2)
    again = post(same, "metrics", missing_counts("s", points + [{"ml.model.name": "o", "ml.feature.name": "f0"}]))
    assert again.rejected_data_points == 3  # f3, f4 of m, and model o: both bounds read back
    same.stop()
    raised = processor(db=store_url, max_series_per_model=5, max_models_per_service=3)
    assert post(raised, "metrics", missing_counts("s", points)).rejected_data_points == 0
    assert feature_names(raised, "m") == {f"f{i}" for i in range(5)}
    assert post(raised, "logs", prediction_logs("s", ["o"])).rejected_log_records == 0


# -- the limiter and its settings ---------------------------------------------------------------


def test_limits_section_in_the_config_file(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("limits:\n  max_models: 900\n  max_models_per_service: 90\n  max_series_per_model: 4000\n")
    assert load_config(path).sections["limits"] == LimitSettings(900, 90, 4000)
    assert load_config(None).sections["limits"] == LimitSettings()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("max_models: 0", "limits.max_models: 0 must be a whole number above zero, e.g. 5000"),
        ("max_series_per_model: many", "limits.max_series_per_model: 'many' must be a whole number above zero"),
        ("max_series_per_model: 2.5", "limits.max_series_per_model: 2.5 must be a whole number above zero"),
        ("max_models_per_service: true", "limits.max_models_per_service: True must be a whole number above zero"),
        ("max_model: 10", "limits.max_model: unknown key; known in limits: max_models, max_models_per_service"),
        (
            "max_models: 10\n  max_models_per_service: 20",
            "limits.max_models_per_service: 20 is larger than limits.max_models (10)",
        ),
    ],
)
def test_invalid_limits_are_refused_naming_file_key_and_value(tmp_path, body, message):
    path = tmp_path / "bad.yaml"
    path.write_text(f"limits:\n  {body}\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(err.value).startswith(f"{path}: ")
    assert message in str(err.value)


def test_limits_section_must_be_a_mapping(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("limits: 5\n")
    with pytest.raises(ConfigError, match="limits: 5 must be a mapping"):
        load_config(path)


def test_parse_limits_names_the_section_it_was_given():
    with pytest.raises(ConfigError, match=r"^custom\.max_models: -1 must be"):
        parse_limits({"max_models": -1}, "custom")


def test_limiter_seeds_from_storage_and_records_who_brought_each_model(store_url):
    from infersight.processor.storage import open_storage
    from infersight.processor.storage.base import MODEL, WindowKey, WriteBatch
    from infersight.stats.windows import WindowStats

    store = open_storage(store_url, (60,))
    try:
        ws = WindowStats()
        ws.add_count("calls", "total", 1)
        store.write(WriteBatch({WindowKey("old", "1", MODEL, "", 60, 0): ws}))
        first = SeriesLimiter(LimitSettings(max_models=3, max_models_per_service=2), store)
        assert first.models == 1 and first.service_models("svc") == 0
        assert first.admit("svc", "old", ("1", MODEL, "")) is None  # stored: no quota taken
        assert first.admit("svc", "new1") is None and first.admit("svc", "new2") is None
        assert first.admit("svc", "new3") is not None
        first.flush()
        assert {r.key: r.body for r in store.get_records(RECORD_KIND)} == {
            "new1": {"service": "svc"},
            "new2": {"service": "svc"},
        }
        # Only models that are in the store count after a restart: new1 and new2 never got windows.
        second = SeriesLimiter(LimitSettings(max_models=3, max_models_per_service=2), store)
        assert second.models == 1 and second.service_models("svc") == 0
        for m in ("new1", "new2"):
            store.write(WriteBatch({WindowKey(m, "1", MODEL, "", 60, 0): ws}))
        third = SeriesLimiter(LimitSettings(max_models=3, max_models_per_service=2), store)
        assert third.models == 3 and third.service_models("svc") == 2
        refusal = third.admit("other", "new4")
        assert refusal is not None and refusal.limit == "max_models"
        assert third.admit("other", "new1", ("2", MODEL, "")) is None  # another version: a new series
    finally:
        store.close()
