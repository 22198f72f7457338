"""Tiny models of every space, shared by the proxy tests."""

from __future__ import annotations

import pytest
import torch

import spaces
from prednas.utils import torch_seed

#: blocks1d architectures covering conv, LSTM, GRU and attention blocks
BLOCKS1D_ARCHS = ("conv5:16|conv3:16@0", "lstm:16|conv3:16", "gru:16|mlp:16", "attn:16|conv3:16@0")


def build(space_name: str, arch: str | None, **kw) -> torch.nn.Module:
    space = spaces.get(space_name)
    a = space.parse(arch) if arch else space.default_arch()
    shape = (3, 8, 8) if space_name == "nb201" else (1, 40)
    with torch_seed(0):
        return space.build(a, 4, shape, **kw)


@pytest.fixture(scope="session")
def image_batch(synthetic_image_task):
    return synthetic_image_task.x_train[:16], synthetic_image_task.y_train[:16]


@pytest.fixture(scope="session")
def seq_batch(synthetic_task):
    return synthetic_task.x_train[:16], synthetic_task.y_train[:16]


@pytest.fixture(scope="session", params=("nb201",) + BLOCKS1D_ARCHS)
def small_case(request, image_batch, seq_batch):
    """(label, model, x, y) for a small model of each space / block kind."""
    if request.param == "nb201":
        arch = ("|nor_conv_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|avg_pool_3x3~0|"
                "nor_conv_3x3~1|skip_connect~2|")
        return "nb201", build("nb201", arch, C=4, N=1), *image_batch
    return request.param, build("blocks1d", request.param), *seq_batch


@pytest.fixture(scope="session")
def small_scores(small_case):
    import proxies

    label, model, x, y = small_case
    return label, proxies.score(model, x, y)
