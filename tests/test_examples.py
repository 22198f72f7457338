"""The examples in ``examples/`` run, at a tiny budget (``--tiny``).

``examples/search_my_model.py`` is run by ``tests/spaces/test_from_model.py``; the pipeline's
command-line example and the ResNet example on CIFAR-10 images are run here, in a subprocess, as a
user would.
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


def test_resnet_cifar_example_runs_tiny(cifar_subset_path, tmp_path):
    """The ResNet example on real CIFAR-10 images from a path (skips without ../shared)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, str(REPO / "examples" / "search_resnet_cifar.py"),
                           str(cifar_subset_path), "--tiny"],
                          capture_output=True, text=True, env=env, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "from_model:ResNet2d:" in proc.stdout and "ResNet2d (baseline):" in proc.stdout
    assert "best: " in proc.stdout and "report: " in proc.stdout
