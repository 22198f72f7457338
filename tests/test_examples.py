"""The examples in ``examples/`` run, at a tiny budget (``--tiny``).

``examples/search_my_model.py`` is run by ``tests/spaces/test_from_model.py``; the pipeline's
command-line example is run here, in a subprocess, as a user would.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_pipeline_cli_example_runs_tiny(tmp_path):
    out = tmp_path / "run"
    env = {**os.environ, "PYTHON": sys.executable, "OUT": str(out),
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(["bash", str(REPO / "examples" / "pipeline_cli.sh"), "--tiny"],
                          capture_output=True, text=True, env=env, timeout=900)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "predicted classes:" in proc.stdout and "search: already finished" in proc.stdout
    report = (out / "report.md").read_text()
    assert "## 5. export" in report and "from_model:SmallCNN1d:" in report
    assert (out / "export" / "model.pt").is_file()
