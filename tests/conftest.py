"""Shared fixtures. Tests must pass without ../shared: those that need it skip with a reason."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("PREDNAS_SHARED_DATA", REPO.parent / "shared" / "data"))

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


def load_script(name: str):
    """``scripts/<name>.py`` imported as a module (the scripts are not a package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="session")
def cifar_subset_path() -> Path:
    p = SHARED_DATA / "cifar10-subset.npz"
    if not p.exists():
        pytest.skip(f"real CIFAR-10 subset not found at {p} (../shared is absent on a fresh clone)")
    return p


@pytest.fixture(scope="session")
def synthetic_task():
    from prednas import tasks

    return tasks.get("synthetic", n=256, seed=0)


@pytest.fixture(scope="session")
def synthetic_image_task():
    from prednas import tasks

    return tasks.get("synthetic", n=128, image=True, channels=3, seed=0)
