"""Import hygiene: cheap ``import prednas``, no load-time cycles, a CLI that parses without torch.

Each check runs in a fresh interpreter: this test process has already imported everything.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "sklearn", "xgboost", "torch_geometric", "prednas.search", "prednas.training",
         "ray")


def loaded_after(code: str) -> dict[str, bool]:
    """Run ``code`` in a fresh interpreter; which of HEAVY did it import?"""
    probe = f"import json, sys\n{code}\nprint(json.dumps({{m: m in sys.modules for m in {HEAVY!r}}}))"
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_import_prednas_is_lazy():
    loaded = loaded_after("import prednas")
    assert not any(loaded.values()), loaded


def test_import_spaces_does_not_import_the_engine():
    loaded = loaded_after("import spaces")
    assert not loaded["prednas.search"] and not loaded["prednas.training"], loaded


@pytest.mark.parametrize("argv", [["--help"], ["search", "--help"], ["pipeline", "--help"],
                                  ["rank", "--help"],
                                  ["proxies", "--help"], ["--version"], ["search", "--bogus"],
                                  ["train", "--steps", "many"]])
def test_cli_parsing_imports_no_heavy_module(argv):
    code = ("import contextlib, io\nfrom prednas.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):\n"
            f"    try:\n        main({argv!r})\n    except SystemExit:\n        pass")
    loaded = loaded_after(code)
    assert not any(loaded.values()), loaded


@pytest.mark.parametrize("first", ["spaces", "prednas.training", "prednas.search", "predictors"])
def test_each_package_imports_first_on_its_own(first):
    loaded_after(f"import {first}")  # a load-time cycle would fail here for some order


def test_every_public_name_is_reachable():
    import prednas

    for name in prednas.__all__:
        assert getattr(prednas, name) is not None, name
    assert set(prednas.__all__) <= set(dir(prednas))
    from prednas import Search, TrainRecord, rank, train, warmup  # noqa: F401

    assert callable(train) and isinstance(prednas.PredNASError, type)
    with pytest.raises(AttributeError):
        prednas.no_such_name  # noqa: B018
