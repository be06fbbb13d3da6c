"""The README's decorator quick start, run as written against a real loopback OTLP receiver:
the label sent with ``record_feedback`` must carry the request ID of the prediction it is for."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

from support.otlp_sink import OtlpSink, attrs

ROOT = Path(__file__).resolve().parents[1]


def _readme_snippet() -> str:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Quick start: the decorator", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "the README's quick start has no python block"
    return match.group(1)


def test_the_readme_snippet_sends_feedback_joined_to_its_prediction(tmp_path: Path) -> None:
    snippet = _readme_snippet()
    assert "record_feedback" in snippet
    # What a reader has beside the snippet: a trained model and a reference profile built from
    # training data with `infersight profile`.
    train = tmp_path / "train.csv"
    rows = ["tenure,plan,income"] + [f"{t},{p},{50_000 + 97 * t}.0" for t in range(1, 60) for p in ("free", "pro")]
    train.write_text("\n".join(rows) + "\n")
    prof = subprocess.run(
        [
            sys.executable,
            "-m",
            "infersight",
            "profile",
            str(train),
            "--model",
            "churn",
            "-o",
            str(tmp_path / "reference.json"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert prof.returncode == 0, prof.stderr
    with OtlpSink() as sink:
        program = (
            textwrap.dedent("""\
            class _Model:
                def predict_proba(self, X):
                    import numpy as np
                    return np.array([[0.3, 0.7] for _ in X])
            model = _Model()
            """)
            + snippet.replace("http://localhost:4317", sink.grpc_endpoint)
            + "\ninfersight.flush()\n"
        )
        env = {**os.environ, "INFERSIGHT_LOG_OUTPUT": "none"}
        run = subprocess.run(
            [sys.executable, "-c", program], capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env
        )
        assert run.returncode == 0, run.stderr[-3000:]
        assert "telemetry fault" not in run.stderr, run.stderr
        spans = [s for _, s in sink.spans() if s.name == "predict churn"]
        assert len(spans) == 1
        rid = attrs(spans[0].attributes)["ml.request.id"]
        feedback = [attrs(r.attributes) for _, r in sink.log_records() if r.event_name == "ml.feedback"]
        assert len(feedback) == 1, [attrs(r.attributes) for _, r in sink.log_records()]
        assert feedback[0]["ml.request.id"] == rid
        assert feedback[0]["ml.model.name"] == "churn" and feedback[0]["ml.model.version"] == "3"
        assert json.loads(feedback[0]["ml.feedback.actual"]) == 1  # payload attributes travel as JSON
