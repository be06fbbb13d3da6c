"""The core install is the design card's five packages, and a model server's monitored calls
never import what the extras bring (scipy, the processor and its servers, the frameworks)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from importlib.metadata import requires
from pathlib import Path

CORE = {"opentelemetry-sdk", "opentelemetry-exporter-otlp", "numpy", "wrapt", "structlog"}

# Importing any of these from a monitored call would pull an extra into every model server.
EXTRAS_ONLY = (
    "scipy",
    "starlette",
    "uvicorn",
    "fastapi",
    "flask",
    "werkzeug",
    "yaml",
    "psycopg",
    "pyarrow",
    "infersight.processor",
    "infersight.stats.drift",
)


def test_the_core_requirements_are_the_five_of_the_design_card() -> None:
    core = set()
    for req in requires("infersight") or []:
        if "extra ==" in req:
            continue
        core.add(re.split(r"[\s<>=!~;\[]", req, maxsplit=1)[0].lower())
    assert core == CORE


def test_monitored_calls_import_nothing_from_the_extras(tmp_path: Path) -> None:
    # A reference profile made beforehand (its schema is checked on every call).
    (tmp_path / "train.csv").write_text("x,plan\n" + "\n".join(f"{i % 7}.5,{'ab'[i % 2]}" for i in range(200)))
    made = subprocess.run(
        [
            sys.executable,
            "-m",
            "infersight",
            "profile",
            str(tmp_path / "train.csv"),
            "--model",
            "m",
            "-o",
            str(tmp_path / "reference.json"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert made.returncode == 0, made.stderr
    program = textwrap.dedent(f"""\
        import json, sys
        blocked, tried = {EXTRAS_ONLY!r}, []

        class Block:
            # Stands in for an install without the extras: these imports fail as they would there.
            def find_spec(self, name, path=None, target=None):
                if name.startswith(blocked):
                    tried.append(name)
                    raise ImportError(f"{{name}} is not installed (blocked by the test)")
                return None

        sys.meta_path.insert(0, Block())
        import numpy as np
        import infersight
        infersight.configure(exporter="none", log_output="none", payload_sample_rate=1.0)

        @infersight.monitor(model="m", reference="reference.json")
        def predict(rows):
            return np.zeros(len(rows)) if hasattr(rows, "__len__") and not isinstance(rows, dict) else 0.5

        @infersight.monitor(model="n", features=["a", "b"])
        def predict_matrix(x):
            return x.sum(axis=1)

        predict({{"x": 1.5, "plan": "a"}})
        predict([{{"x": 2.5, "plan": "b"}}, {{"x": 99.0, "plan": "z"}}])
        predict_matrix(np.ones((64, 2)))
        infersight.flush()
        print(json.dumps({{"tried": tried, "loaded": sorted(m for m in sys.modules if m.startswith(blocked))}}))
        """)
    run = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "telemetry fault" not in run.stderr, run.stderr
    assert json.loads(run.stdout.strip().splitlines()[-1]) == {"tried": [], "loaded": []}


def test_commands_that_need_an_extra_name_it_and_the_rest_work_without(tmp_path: Path) -> None:
    from support.cli import run_cli

    data = tmp_path / "data.csv"
    data.write_text("x,plan\n" + "\n".join(f"{i % 7}.5,{'ab'[i % 2]}" for i in range(200)))
    made = run_cli("profile", str(data), "--model", "m", "-o", str(tmp_path / "ref.json"), block=["scipy"])
    assert made.returncode == 0, made.stderr  # profiling needs only the core
    drift = run_cli("drift", str(tmp_path / "ref.json"), str(data), block=["scipy"])
    assert drift.returncode == 2 and "Traceback" not in drift.stderr
    assert "'scipy'" in drift.stderr and "pip install 'infersight[stats]'" in drift.stderr
