"""Properties every registered proxy must have, on a small model of each space."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest
import torch
from torch import nn

import proxies
from tests.proxies.conftest import build

#: proxies undefined when the output does not depend on the input or the weights
UNDEFINED_FOR_CONSTANT = ("jacov", "epe_nas", "synflow", "zen", "zico")


def test_every_proxy_finite_on_every_space(small_scores):
    label, scores = small_scores
    assert set(scores) == set(proxies.list_proxies())
    for name, v in scores.items():
        assert isinstance(v, float), (label, name)
        assert math.isfinite(v), f"{name} is {v} on {label}"


def test_same_seed_same_score(small_case, small_scores):
    label, model, x, y = small_case
    again = proxies.score(model, x, y)
    for name, v in small_scores[1].items():
        assert again[name] == pytest.approx(v, rel=1e-5, abs=1e-8), (label, name)


def test_shared_passes_match_one_proxy_at_a_time(image_batch):
    model = build("nb201", None, C=4, N=1)
    x, y = image_batch
    names = ["snip", "grad_norm", "fisher", "grasp", "zico", "jacov", "epe_nas", "nwot", "meco"]
    shared = proxies.score(model, x, y, names)
    alone = proxies.score_separately(model, x, y, names)
    for name in shared:
        assert shared[name] == pytest.approx(alone[name], rel=1e-4, abs=1e-8), name


def test_input_model_untouched(image_batch):
    model = build("nb201", None, C=4, N=1)
    x, y = image_batch
    model.eval()
    for p in model.parameters():
        p.grad = torch.full_like(p, 0.5)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    grads = [p.grad.clone() for p in model.parameters()]
    proxies.score(model, x, y)
    assert not model.training
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    for p, g in zip(model.parameters(), grads):
        assert torch.equal(p.grad, g)


def test_global_state_restored(image_batch):
    model = build("nb201", None, C=4, N=1)
    x, y = image_batch
    torch.manual_seed(123)
    state = torch.get_rng_state()
    np_state = np.random.get_state()[1].copy()
    flags = (torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic,
             torch.are_deterministic_algorithms_enabled())
    with torch.no_grad():
        proxies.score(model, x, y, names=["synflow", "zen", "snip"])
        assert not torch.is_grad_enabled()
    assert torch.equal(torch.get_rng_state(), state)
    assert np.array_equal(np.random.get_state()[1], np_state)
    assert flags == (torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic,
                     torch.are_deterministic_algorithms_enabled())


class _ConstantOutput(nn.Module):
    """Convolution and ReLU whose result is multiplied by zero: logits are the bias alone."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.act = nn.ReLU()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        h = self.act(self.conv(x)).mean((2, 3))
        return self.fc(h * 0.0)


def test_constant_output_gives_nan_not_exception(image_batch, caplog):
    x, y = image_batch
    with caplog.at_level(logging.WARNING, logger="proxies"):
        scores = proxies.score(_ConstantOutput(), x, y)
    assert set(scores) == set(proxies.list_proxies())
    for name in UNDEFINED_FOR_CONSTANT:
        assert math.isnan(scores[name]), name
    assert all(isinstance(v, float) for v in scores.values())
    assert "NaN" in caplog.text


@pytest.mark.parametrize("name", ["params", "synflow", "flops", "l2_norm"])
def test_sign_grows_with_width(image_batch, name):
    x, y = image_batch
    narrow = proxies.score(build("nb201", None, C=4, N=1), x, y, [name])[name]
    wide = proxies.score(build("nb201", None, C=8, N=1), x, y, [name])[name]
    assert wide > narrow


def test_nwot_prefers_separating_model(image_batch):
    """A network whose ReLU codes distinguish inputs beats one that maps all inputs alike."""
    x, y = image_batch
    torch.manual_seed(0)
    good = nn.Sequential(nn.Flatten(), nn.Linear(192, 64), nn.ReLU(), nn.Linear(64, 4))
    bad = nn.Sequential(nn.Flatten(), nn.Linear(192, 64), nn.ReLU(), nn.Linear(64, 4))
    with torch.no_grad():
        bad[1].weight.mul_(1e-3)
        bad[1].bias.fill_(1.0)  # every unit always on: identical codes
    s_good = proxies.score(good, x, y, ["nwot"])["nwot"]
    s_bad = proxies.score(bad, x, y, ["nwot"])["nwot"]
    assert math.isnan(s_bad) or s_good > s_bad


class _OOMAbove(nn.Module):
    """Raises torch's out-of-memory error for batches larger than ``limit``."""

    def __init__(self, limit: int):
        super().__init__()
        self.limit = limit
        self.fc = nn.Sequential(nn.Flatten(), nn.Linear(192, 16), nn.ReLU(), nn.Linear(16, 4))

    def forward(self, x):
        if x.shape[0] > self.limit:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return self.fc(x)


def test_out_of_memory_retries_with_half_batch(image_batch, caplog):
    x, y = image_batch  # 16 examples: halves of 8 fail above 4, so two halvings are needed
    with caplog.at_level(logging.WARNING, logger="proxies"):
        scores = proxies.score(_OOMAbove(limit=4), x, y, ["snip", "nwot", "zico"])
    assert all(math.isfinite(v) for v in scores.values())
    assert "retrying" in caplog.text


def test_score_arch_builds_with_fixed_seed(image_batch):
    x, y = image_batch
    a = proxies.score_arch("nb201", None or "|nor_conv_3x3~0|+|none~0|skip_connect~1|+|"
                           "nor_conv_1x1~0|none~1|skip_connect~2|", x, y, names=["snip", "params"],
                           num_classes=4, device="cpu", C=4, N=1)
    b = proxies.score_arch("nb201", "|nor_conv_3x3~0|+|none~0|skip_connect~1|+|"
                           "nor_conv_1x1~0|none~1|skip_connect~2|", x, y, names=["snip", "params"],
                           num_classes=4, device="cpu", C=4, N=1)
    assert a == b


def test_seconds_reported(image_batch):
    x, y = image_batch
    vals, secs = proxies.score(build("nb201", None, C=4, N=1), x, y, ["snip", "params"],
                               return_seconds=True)
    assert set(secs) == set(vals) and all(s >= 0 for s in secs.values())
