"""Bad data gives one precise PredNASError line naming the bad value, never a traceback or a hang."""

from __future__ import annotations

import contextlib
import pickle
import signal

import numpy as np
import pytest
import torch

import predictors
import prednas
from prednas import ensemble, tasks
from prednas.errors import DataNotFoundError, IncompatibleArtifactError, InvalidParameterError, PredNASError
from prednas.tasks import Task

N = 20


def _arrays(**overrides):
    rng = np.random.default_rng(0)
    d = {"x_train": rng.integers(0, 255, (N, 3, 32, 32), dtype=np.uint8),
         "y_train": rng.integers(0, 10, N),
         "x_test": rng.integers(0, 255, (5, 3, 32, 32), dtype=np.uint8),
         "y_test": rng.integers(0, 10, 5)}
    d.update(overrides)
    return d


def _load_npz(tmp_path, **overrides):
    path = tmp_path / "c.npz"
    np.savez(path, **_arrays(**overrides))
    return tasks.get("cifar10", path=path)


def _one_line(info) -> str:
    msg = str(info.value)
    assert "\n" not in msg
    return msg


@pytest.mark.parametrize("damage", ["truncated", "corrupt"])
def test_truncated_or_corrupt_npz(tmp_path, damage):
    path = tmp_path / "c.npz"
    np.savez(path, **_arrays())
    data = bytearray(path.read_bytes())
    if damage == "truncated":
        data = data[: len(data) // 2]
    else:  # flip bytes inside the first member's data: the zip CRC no longer matches
        for i in range(200, 260):
            data[i] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(DataNotFoundError, match="c.npz") as info:
        tasks.get("cifar10", path=path)
    _one_line(info)


def test_string_images(tmp_path):
    with pytest.raises(DataNotFoundError, match=r"x_train.*<U") as info:
        _load_npz(tmp_path, x_train=np.full((N, 3, 32, 32), "pixel"))
    _one_line(info)


def test_empty_arrays(tmp_path):
    with pytest.raises(DataNotFoundError, match="x_train.*empty") as info:
        _load_npz(tmp_path, x_train=np.zeros((0, 3, 32, 32), np.uint8), y_train=np.zeros(0, int))
    _one_line(info)


def test_more_images_than_labels(tmp_path):
    rng = np.random.default_rng(0)
    with pytest.raises(DataNotFoundError, match="200 images.*150 labels") as info:
        _load_npz(tmp_path, x_train=rng.integers(0, 255, (200, 3, 32, 32), dtype=np.uint8),
                  y_train=rng.integers(0, 10, 150))
    _one_line(info)


def test_labels_outside_the_classes(tmp_path):
    with pytest.raises(DataNotFoundError, match=r"y_train.*\[0, 10\).*90.*99") as info:
        _load_npz(tmp_path, y_train=np.arange(90, 90 + N) % 10 + 90)
    _one_line(info)


def test_float_labels(tmp_path):
    with pytest.raises(DataNotFoundError, match="y_train.*float64") as info:
        _load_npz(tmp_path, y_train=np.linspace(0, 9, N))
    _one_line(info)


def test_wrong_image_shape(tmp_path):
    with pytest.raises(DataNotFoundError, match=r"x_train.*\(20, 3, 28, 28\).*32") as info:
        _load_npz(tmp_path, x_train=np.zeros((N, 3, 28, 28), np.uint8))
    _one_line(info)


def test_directory_where_a_file_is_expected(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    (folder / "data_batch_1").mkdir(parents=True)
    with pytest.raises(DataNotFoundError, match="data_batch_1.*directory") as info:
        tasks.get("cifar10", path=folder)
    _one_line(info)
    with pytest.raises(IncompatibleArtifactError, match="directory") as info:
        predictors.load(folder)
    _one_line(info)
    with pytest.raises(IncompatibleArtifactError, match="directory") as info:
        ensemble.load(folder)
    _one_line(info)


def test_missing_keys_lists_the_expected_keys(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        with open(folder / name, "wb") as f:
            pickle.dump({"data": np.zeros((2, 3072), np.uint8)}, f)
    with pytest.raises(DataNotFoundError, match="labels.*data, labels") as info:
        tasks.get("cifar10", path=folder)
    _one_line(info)
    path = tmp_path / "c.npz"
    np.savez(path, x_train=np.zeros((2, 3, 32, 32), np.uint8))
    with pytest.raises(DataNotFoundError, match="x_train, y_train, x_test, y_test"):
        tasks.get("cifar10", path=path)


# -- training -----------------------------------------------------------------------------------
@contextlib.contextmanager
def _deadline(seconds: int):
    """Turn a hang into a test failure (the old code looped forever here)."""
    if not hasattr(signal, "SIGALRM"):
        yield
        return

    def fail(*_):
        raise TimeoutError(f"still running after {seconds}s")

    old = signal.signal(signal.SIGALRM, fail)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


@pytest.mark.parametrize("budget", [dict(steps=3), dict(epochs=1)])
def test_empty_training_split(budget):
    x, y = torch.zeros(4, 1, 12), torch.zeros(4, dtype=torch.long)
    task = Task("tiny", x[:0], y[:0], x, y, x, y, (1, 12), 2)
    with _deadline(20), pytest.raises(InvalidParameterError, match="'tiny'.*empty.*0") as info:
        prednas.train("blocks1d", "mlp:16", task, device="cpu", **budget)
    _one_line(info)


def test_space_and_task_input_shapes_differ():
    one_d = tasks.get("synthetic", n=16, length=12, seed=0)
    with pytest.raises(InvalidParameterError,
                       match=r"'nb201'.*'synthetic'.*\(1, 12\).*\(channels, height, width\)") as info:
        prednas.train("nb201", "|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|", one_d,
                      steps=1, device="cpu", build_kwargs=dict(C=4, N=1))
    _one_line(info)
    images = tasks.get("synthetic", n=16, image=True, channels=3, seed=0)
    with pytest.raises(InvalidParameterError,
                       match=r"'blocks1d'.*'synthetic'.*\(3, 8, 8\).*\(channels, length\)") as info:
        prednas.train("blocks1d", "mlp:16", images, steps=1, device="cpu")
    _one_line(info)
    # building directly (as proxies and the search do) hits the same check
    import spaces

    with pytest.raises(PredNASError, match=r"'blocks1d'.*\(3, 8, 8\)"):
        spaces.get("blocks1d").build("mlp:16", 10, (3, 8, 8))
