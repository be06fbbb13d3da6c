"""The package root loads its public names on first use: the statistics core and the offline
commands (``infersight profile``, ``infersight drift``) never import the OpenTelemetry SDK or
structlog, while ``import infersight; infersight.monitor(...)`` works as the API documents.

Each check runs in a fresh interpreter: in this one, other tests have imported everything."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np

# What the request path needs and the offline path must not pay for.
REQUEST_PATH_ONLY = ("opentelemetry", "structlog", "wrapt", "infersight._monitor", "infersight._runtime")


def _run(program: str, cwd: Path) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(program)], capture_output=True, text=True, timeout=120, cwd=cwd
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_the_stats_core_and_the_offline_commands_import_no_request_path(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    rows = ["x,y,plan"] + [f"{a:.4f},{b:.4f},{'ab'[i % 2]}" for i, (a, b) in enumerate(rng.normal(size=(400, 2)))]
    (tmp_path / "train.csv").write_text("\n".join(rows) + "\n")
    program = f"""\
        import json, runpy, sys
        watched = {REQUEST_PATH_ONLY!r}

        def loaded():
            return sorted(m for m in sys.modules if m.startswith(watched))

        import infersight.stats
        import infersight.stats.reference, infersight.stats.io, infersight.stats.schema
        after_stats = loaded()

        def command(*argv):
            # What `python -m infersight ...` and the `infersight` script run.
            sys.argv = ["infersight", *argv]
            try:
                runpy.run_module("infersight", run_name="__main__", alter_sys=True)
            except SystemExit as exc:
                assert not exc.code, exc.code

        command("profile", "train.csv", "--model", "m", "-o", "reference.json", "--no-progress")
        after_profile = loaded()
        command("drift", "reference.json", "train.csv", "--chunk-size", "200", "--format", "json")
        print(json.dumps({{"stats": after_stats, "profile": after_profile, "drift": loaded()}}))
    """
    got = _run(program, tmp_path)
    assert got == {"stats": [], "profile": [], "drift": []}
    assert json.loads((tmp_path / "reference.json").read_text())["features"].keys() == {"x", "y", "plan"}


def test_the_public_names_resolve_on_first_use_and_monitor_is_the_decorator(tmp_path: Path) -> None:
    program = """\
        import json, sys, types
        import infersight
        bare = sorted(m for m in sys.modules if m.startswith(("opentelemetry", "structlog")))

        resolved = {name: type(getattr(infersight, name)).__name__ for name in infersight.__all__}
        infersight.configure(service_name="lazy", exporter="none", log_output="none")

        @infersight.monitor(model="churn", version="3")
        def predict(row):
            return 0.25 * row["tenure"]

        answer = predict({"tenure": 4})
        rid = infersight.last_request_id()

        # Importing the decorator's module by name does not replace the decorator.
        import infersight._monitor
        from infersight import monitor, request_context
        star = {}
        exec("from infersight import *", star)
        try:
            infersight.no_such_name
            missing = "resolved"
        except AttributeError as exc:
            missing = str(exc)
        print(json.dumps({
            "bare": bare,
            "resolved": resolved,
            "answer": answer,
            "request_id": isinstance(rid, str) and len(rid) > 0,
            "monitor_is_function": isinstance(infersight.monitor, types.FunctionType) and monitor is infersight.monitor,
            "submodule": isinstance(request_context, types.ModuleType),
            "star": sorted(n for n in star if not n.startswith("__")) == sorted(n for n in infersight.__all__ if not n.startswith("__")),
            "in_dir": set(infersight.__all__) <= set(dir(infersight)),
            "missing": missing,
            "flushed": infersight.flush(),
        }))
        infersight.shutdown()
    """
    got = _run(program, tmp_path)
    assert got["bare"] == []
    assert got["resolved"] == {
        "configure": "function",
        "monitor": "function",
        "current_request_id": "function",
        "last_request_id": "function",
        "record_feedback": "function",
        "flush": "function",
        "shutdown": "function",
        "SchemaViolation": "type",
        "ConfigError": "type",
        "Settings": "type",
        "ExpHistogram": "type",
        "Slicer": "type",
        "__version__": "str",
    }
    assert got["answer"] == 1.0
    assert got["request_id"] and got["monitor_is_function"] and got["submodule"] and got["star"] and got["in_dir"]
    assert got["missing"] == "module 'infersight' has no attribute 'no_such_name'"
    assert got["flushed"] is True
