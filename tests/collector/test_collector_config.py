"""collector-config/ checked without Docker, Jaeger or the collector (none can run here): every
file parses, every pipeline names only components its file defines, and the ports and service
names agree across compose.yaml, the collector configs, Jaeger's config, the Prometheus config,
Grafana's provisioning and the processor's command line; the Grafana dashboard's PromQL names
only metrics the SDK or the processor export (derived from their code, see known_metrics)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import yaml
from collector.known_metrics import processor_metric_names, sdk_metric_names

ROOT = Path(__file__).resolve().parents[2]
CC = ROOT / "collector-config"
COLLECTOR_CONFIGS = ("sidecar.yaml", "gateway.yaml", "jaeger.yaml")
# collector-contrib (and Jaeger v2) component types these files may use
KNOWN_TYPES = {
    "receivers": {"otlp"},
    "processors": {"memory_limiter", "batch", "filter", "deltatocumulative"},
    "exporters": {"otlp", "prometheus", "loadbalancing", "jaeger_storage_exporter"},
    "extensions": {"jaeger_storage", "jaeger_query"},
}


def load(name: str) -> Any:
    return yaml.safe_load((CC / name).read_text())


def compose() -> dict[str, Any]:
    doc: dict[str, Any] = load("compose.yaml")
    return doc


def port_of(address: str) -> int:
    return int(address.rsplit(":", 1)[1])


def expand(text: str, env: dict[str, str]) -> str:
    """``${env:NAME:-default}`` (collector) and ``${NAME:-default}`` (compose), from ``env``."""
    return re.sub(r"\$\{(?:env:)?(\w+)(?::-([^}]*))?\}", lambda m: env.get(m.group(1)) or m.group(2) or "", text)


def flag(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def processor_ports(service: dict[str, Any]) -> dict[str, int]:
    argv = service["command"]
    return {k: port_of(flag(argv, f"--{k}")) for k in ("otlp-grpc", "otlp-http", "web")}


def receiver_ports(config: dict[str, Any]) -> set[int]:
    ports = set()
    for body in config["receivers"].values():
        for proto in (body or {}).get("protocols", {}).values():
            ports.add(port_of(proto["endpoint"]))
    return ports


def listening_ports(name: str, service: dict[str, Any]) -> set[int]:
    """The ports a compose service listens on, from its own config or command line."""
    if name in ("processor", "processor-2"):
        return set(processor_ports(service).values())
    if name in ("collector", "gateway"):
        cfg = load(mounted(service, "/etc/otelcol-contrib/config.yaml"))
        return receiver_ports(cfg) | {port_of(e["endpoint"]) for k, e in cfg["exporters"].items() if k == "prometheus"}
    if name == "jaeger":
        cfg = load("jaeger.yaml")
        return receiver_ports(cfg) | {
            port_of(cfg["extensions"]["jaeger_query"][p]["endpoint"]) for p in ("http", "grpc")
        }
    if name == "prometheus":
        return {port_of(next(a for a in service["command"] if a.startswith("--web.listen-address")).split("=")[1])}
    if name == "model-server":
        return {int(flag(service["command"], "--port"))}
    if name == "postgres":
        return {5432}  # the image's port
    if name == "grafana":
        return {3000}  # the image's port
    raise AssertionError(f"no port rule for compose service {name!r}")


def mounted(service: dict[str, Any], target: str) -> str:
    for v in service.get("volumes", []):
        src, dst = v.split(":")[:2]
        if dst == target:
            return src.removeprefix("./")
    raise AssertionError(f"nothing mounted at {target}")


def assert_reaches(address: str, services: dict[str, Any], what: str) -> None:
    host, port = address.rsplit(":", 1)
    assert host in services, f"{what}: {host!r} is not a compose service ({', '.join(services)})"
    assert int(port) in listening_ports(host, services[host]), f"{what}: {host} does not listen on {port}"


# -- every file parses ---------------------------------------------------------------------------


def test_every_yaml_and_json_file_parses() -> None:
    files = sorted(CC.rglob("*.y*ml")) + sorted(CC.rglob("*.json"))
    assert len(files) >= 8, files
    for path in files:
        text = path.read_text()
        doc = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
        assert isinstance(doc, dict) and doc, f"{path.relative_to(ROOT)} is empty or not a mapping"


# -- pipelines -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", COLLECTOR_CONFIGS)
def test_pipelines_name_only_components_defined_in_the_same_file(name: str) -> None:
    cfg = load(name)
    used: dict[str, set[str]] = {"receivers": set(), "processors": set(), "exporters": set()}
    for pipeline, body in cfg["service"]["pipelines"].items():
        assert pipeline.split("/")[0] in ("traces", "metrics", "logs"), f"{name}: pipeline {pipeline!r}"
        assert body["receivers"] and body["exporters"], f"{name}: {pipeline} needs receivers and exporters"
        for section in used:
            for component in body.get(section, []):
                assert component in (cfg.get(section) or {}), (
                    f"{name}: {pipeline} names undefined {section[:-1]} {component!r}"
                )
                used[section].add(component)
    for section, names in used.items():
        defined = set(cfg.get(section) or {})
        assert defined == names, f"{name}: {section} defined but never used: {sorted(defined - names)}"
        for component in defined:
            assert component.split("/")[0] in KNOWN_TYPES[section], f"{name}: unknown {section[:-1]} type {component!r}"
    for ext in cfg["service"].get("extensions", []):
        assert ext in cfg["extensions"] and ext.split("/")[0] in KNOWN_TYPES["extensions"], f"{name}: extension {ext}"


@pytest.mark.parametrize("name", ["sidecar.yaml", "gateway.yaml"])
def test_every_pipeline_starts_with_the_memory_limiter_and_batches(name: str) -> None:
    for pipeline, body in load(name)["service"]["pipelines"].items():
        assert body["processors"][0] == "memory_limiter", f"{name}: {pipeline} must start with memory_limiter"
        assert "batch" in body["processors"], f"{name}: {pipeline} has no batch processor"


def test_the_sidecar_routes_each_signal_where_the_design_says() -> None:
    cfg = load("sidecar.yaml")
    p = cfg["service"]["pipelines"]
    exp = cfg["exporters"]
    assert {"otlp/jaeger", "otlp/infersight"} <= set(p["traces"]["exporters"])
    assert p["metrics"]["exporters"] == ["otlp/infersight"] and p["logs"]["exporters"] == ["otlp/infersight"]
    # the processor gets the SDK's deltas untouched; only the Prometheus copy is made cumulative
    assert "deltatocumulative" not in p["metrics"]["processors"]
    assert "deltatocumulative" in p["metrics/prometheus"]["processors"] and p["metrics/prometheus"]["exporters"] == [
        "prometheus"
    ]
    assert p["metrics/results"] == {**p["metrics/results"], "receivers": ["otlp/results"], "exporters": ["prometheus"]}
    # results never go back to the processor, and the SDK's receiver is not the results one
    for pipeline, body in p.items():
        if "otlp/results" in body["receivers"]:
            assert "otlp/infersight" not in body["exporters"], pipeline
    assert receiver_ports({"receivers": {"a": cfg["receivers"]["otlp"]}}).isdisjoint(
        receiver_ports({"receivers": {"b": cfg["receivers"]["otlp/results"]}})
    )
    assert "prometheusremotewrite" not in exp  # Prometheus scrapes the exporter: no remote-write receiver needed


def test_the_gateway_balances_over_replicas_by_service() -> None:
    lb = load("gateway.yaml")["exporters"]["loadbalancing/processors"]
    assert lb["routing_key"] == "service"
    assert "endpoint" not in lb["protocol"]["otlp"]  # the resolver fills it in
    hosts = lb["resolver"]["static"]["hostnames"]
    assert len(hosts) >= 2
    services = compose()["services"]
    for h in hosts:
        assert_reaches(h, services, "gateway.yaml loadbalancing")
    dbs = {flag(services[h.split(":")[0]]["command"], "--db") for h in hosts}
    assert len(dbs) == 1 and next(iter(dbs)).startswith("postgresql://"), dbs  # one PostgreSQL


# -- ports and names agree -----------------------------------------------------------------------


def test_published_ports_are_on_loopback_and_never_clash() -> None:
    seen: dict[int, str] = {}
    for name, svc in compose()["services"].items():
        for spec in svc.get("ports", []):
            host_ip, host_port, container_port = str(spec).split(":")
            assert host_ip == "127.0.0.1", f"{name} publishes {spec} beyond loopback"
            assert int(host_port) not in seen, f"{name} and {seen.get(int(host_port))} both publish {host_port}"
            seen[int(host_port)] = name
            assert int(container_port) in listening_ports(name, svc), (
                f"{name} publishes {container_port}, which nothing listens on"
            )
    assert seen == {
        4317: "collector",
        4318: "collector",
        16686: "jaeger",
        8318: "processor",
        8000: "model-server",
        9090: "prometheus",
        3000: "grafana",
    }, seen
    readme = (CC / "README.md").read_text()
    for port, name in seen.items():
        assert re.search(rf"\|\s*`?{port}`?\s*\|", readme), (
            f"port {port} ({name}) is not in collector-config/README.md's table"
        )


def test_every_address_in_the_stack_reaches_a_service_listening_there() -> None:
    services = compose()["services"]
    env = {k: str(v) for k, v in services["collector"]["environment"].items()}
    env = {k: expand(v, {}) for k, v in env.items()}  # compose defaults, as `docker compose up` with no env
    sidecar = load("sidecar.yaml")
    for name in ("otlp/jaeger", "otlp/infersight"):
        assert_reaches(expand(sidecar["exporters"][name]["endpoint"], env), services, f"sidecar.yaml {name}")
    # the processor pushes its findings to the sidecar's otlp/results receiver
    export = urlparse(load("processor.yaml")["evaluation"]["export"])
    assert export.hostname == "collector" and export.port == port_of(
        sidecar["receivers"]["otlp/results"]["protocols"]["http"]["endpoint"]
    )
    # the model server's SDK talks to the collector's OTLP/gRPC receiver
    sdk = urlparse(services["model-server"]["environment"]["INFERSIGHT_ENDPOINT"])
    assert services["model-server"]["environment"]["INFERSIGHT_PROTOCOL"] == "grpc"
    assert sdk.port == port_of(sidecar["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"])
    assert_reaches(f"{sdk.hostname}:{sdk.port}", services, "model-server INFERSIGHT_ENDPOINT")
    # Prometheus scrapes the collector's exporter and the processor's web port
    for job in load("prometheus/prometheus.yml")["scrape_configs"]:
        for target in job["static_configs"][0]["targets"]:
            assert_reaches(target, services, f"prometheus job {job['job_name']}")
    # Grafana's datasource is Prometheus
    (ds,) = load("grafana/provisioning/datasources/prometheus.yaml")["datasources"]
    url = urlparse(ds["url"])
    assert_reaches(f"{url.hostname}:{url.port}", services, "grafana datasource")
    # the loadgen's targets
    lg = services["loadgen"]["command"]
    for opt in ("--target", "--processor"):
        u = urlparse(flag(lg, opt))
        assert_reaches(f"{u.hostname}:{u.port}", services, f"loadgen {opt}")
    # the processors' database
    for name in ("processor", "processor-2"):
        db = urlparse(flag(services[name]["command"], "--db"))
        pg = services["postgres"]["environment"]
        assert (db.username, db.password, db.path.strip("/")) == (
            pg["POSTGRES_USER"],
            pg["POSTGRES_PASSWORD"],
            pg["POSTGRES_DB"],
        )
        assert_reaches(f"{db.hostname}:{db.port}", services, f"{name} --db")


def test_mounted_files_exist_and_services_depend_on_what_they_reach() -> None:
    services = compose()["services"]
    for name, svc in services.items():
        for v in svc.get("volumes", []):
            src = v.split(":")[0]
            if src.startswith("."):
                assert (CC / src).exists(), f"{name} mounts {src}, which does not exist"
    assert {"jaeger", "processor"} <= set(services["collector"]["depends_on"])
    assert services["processor"]["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_the_processor_command_line_is_one_the_processor_accepts(tmp_path: Path) -> None:
    from infersight.cli import build_parser
    from infersight.processor.config import load_config

    services = compose()["services"]
    for name in ("processor", "processor-2"):
        argv = [
            a.replace("/etc/infersight/processor.yaml", str(CC / "processor.yaml")) for a in services[name]["command"]
        ]
        args = build_parser().parse_args(argv)
        cfg = load_config(
            args.config, {"otlp_grpc": args.otlp_grpc, "otlp_http": args.otlp_http, "web": args.web, "db": args.db}
        )
        assert port_of(cfg.otlp_grpc) == 14317 and port_of(cfg.otlp_http) == 14318 and port_of(cfg.web) == 8318
        assert cfg.sections["evaluation"].export == "http://collector:4319/v1/metrics"
    dockerfile = (CC / "Dockerfile").read_text()
    exposed = {int(p) for p in re.search(r"^EXPOSE (.+)$", dockerfile, re.M).group(1).split()}  # type: ignore[union-attr]
    assert exposed == set(processor_ports(services["processor"]).values())
    assert 'pip install --no-cache-dir ".[${EXTRAS}]"' in dockerfile and "ARG EXTRAS=processor" in dockerfile


def test_the_image_install_carries_every_processor_package() -> None:
    """The Dockerfile installs the project as a wheel (not editable): a package folder missing
    from pyproject's list would be missing from the image, and the processor would not start."""
    tomllib = pytest.importorskip("tomllib", reason="tomllib is in the standard library from Python 3.11")
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    for init in (ROOT / "processor").rglob("__init__.py"):
        rel = init.parent.relative_to(ROOT / "processor").parts
        assert ".".join(("infersight", "processor", *rel)) in listed, (
            f"pyproject.toml packages lacks processor/{'/'.join(rel)}"
        )


@pytest.mark.skipif(
    shutil.which("promtool") is None, reason="promtool is not installed (scripts/install-prometheus.sh)"
)
def test_promtool_accepts_the_prometheus_config_and_rules(tmp_path: Path) -> None:
    # The config names its rules by their path inside the container; check it with them in place.
    cfg = (
        (CC / "prometheus" / "prometheus.yml")
        .read_text()
        .replace("/etc/prometheus/rules", str(CC / "prometheus" / "rules"))
    )
    (tmp_path / "prometheus.yml").write_text(cfg)
    run = subprocess.run(
        ["promtool", "check", "config", str(tmp_path / "prometheus.yml")], capture_output=True, text=True
    )
    assert run.returncode == 0, run.stdout + run.stderr


# -- the dashboard's queries ---------------------------------------------------------------------

_FUNCTIONS = {
    "sum", "max", "min", "avg", "count", "rate", "irate", "increase", "histogram_quantile", "vector", "by",
    "without", "on", "ignoring", "group_left", "group_right", "or", "and", "unless", "label_values", "bool",
    "clamp_min", "clamp_max", "abs", "topk", "bottomk", "delta", "deriv", "time", "scalar", "offset",
}  # fmt: skip


def promql_metric_names(expr: str) -> tuple[set[str], list[str]]:
    """Metric names in a PromQL expression, and the ``__name__`` regexes it matches on."""
    regexes = re.findall(r'__name__\s*=~\s*"([^"]*)"', expr)
    text = re.sub(r"\$\{?\w+\}?", "X", expr)
    text = re.sub(r"\{[^}]*\}", "{}", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # ranges
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    text = re.sub(r",\s*\w+\s*\)", ")", text)  # label_values(metric, label)
    words = set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", text)) - _FUNCTIONS - {"X"}
    return words, regexes


def dashboard_queries() -> list[str]:
    dash = json.loads((CC / "grafana" / "dashboards" / "infersight.json").read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
    exprs += [v["query"]["query"] for v in dash["templating"]["list"] if v["type"] == "query"]
    return exprs


def test_the_dashboard_queries_name_only_metrics_the_sdk_or_processor_export() -> None:
    known = sdk_metric_names() | processor_metric_names()
    exprs = dashboard_queries()
    assert len(exprs) >= 15
    used: set[str] = set()
    for expr in exprs:
        names, regexes = promql_metric_names(expr)
        unknown = names - known
        assert not unknown, f"{expr!r} names {sorted(unknown)}, which nothing exports"
        for rx in regexes:
            matched = {n for n in known if re.fullmatch(rx, n)}
            assert matched, f"{expr!r}: __name__=~{rx!r} matches nothing exported"
            used |= matched
        used |= names
    # the panels the stack promises
    for family in ("ml_inference_duration_seconds_bucket", "ml_drift_score", "ml_drift_detected", "ml_slo_burn_rate",
                   "ml_slo_error_budget_remaining", "ml_slo_sli", "ml_quality_accuracy"):  # fmt: skip
        assert family in used, f"no panel shows {family}"


def test_the_sketches_the_prometheus_copy_drops_are_ones_the_sdk_sends() -> None:
    rules = load("sidecar.yaml")["processors"]["filter/sketches"]["metrics"]["metric"]
    dropped = {re.fullmatch(r'name == "([^"]+)"', r).group(1) for r in rules}  # type: ignore[union-attr]
    sdk = sdk_metric_names()
    for name in dropped:
        prom = name.replace(".", "_")
        assert prom in sdk or prom + "_total" in sdk, f"filter/sketches drops {name}, which the SDK does not send"
    used = {n for e in dashboard_queries() for n in promql_metric_names(e)[0]}
    assert not {n for n in used if n.removesuffix("_total") in {d.replace(".", "_") for d in dropped}}


@pytest.mark.skipif(
    shutil.which("promtool") is None, reason="promtool is not installed (scripts/install-prometheus.sh)"
)
def test_the_shipped_slo_rules_are_what_slo_rules_writes_today_and_promtool_accepts_them(tmp_path: Path) -> None:
    shipped = CC / "prometheus" / "rules" / "slo-rules.yaml"
    fresh = tmp_path / "slo-rules.yaml"
    run = subprocess.run(
        ["infersight", "slo-rules", "--config", "collector-config/processor.yaml", "-o", str(fresh)],
        capture_output=True,
        text=True,
        cwd=CC.parent,
    )
    assert run.returncode == 0, run.stderr
    # regenerate with the command in collector-config/prometheus/rules/README.md when this fails
    assert fresh.read_text() == shipped.read_text()
    check = subprocess.run(["promtool", "check", "rules", str(shipped)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "SUCCESS: 45 rules found" in check.stdout + check.stderr
