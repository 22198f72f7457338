"""Weight-sharing supernets: sub-networks are views of the supernet's tensors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import spaces
from prednas.errors import InvalidArchitectureError

NB201_ARCH = "|nor_conv_3x3~0|+|nor_conv_1x1~0|avg_pool_3x3~1|+|skip_connect~0|none~1|nor_conv_3x3~2|"
B1D_ARCHS = ["conv5:16|attn:32@0|lstm:16|mlp:32@1", "attn:16|sepconv5:32|gru:32@1|dilconv3:16",
             "conv3:16|conv7:16@0"]


@pytest.fixture(scope="module")
def nb201_supernet():
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return spaces.get("nb201").build_supernet(4, (3, 8, 8), C=4, N=1)


@pytest.fixture(scope="module")
def blocks1d_supernet():
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return spaces.get("blocks1d").build_supernet(4, (1, 40))


def _owner_storage(tensor, supernet):
    ptr = tensor.untyped_storage().data_ptr()
    return [n for n, p in supernet.named_parameters() if p.untyped_storage().data_ptr() == ptr]


def test_nb201_subnet_uses_supernet_tensors(nb201_supernet):
    sn = nb201_supernet
    sub = sn.subnet(NB201_ARCH)
    own = {id(p) for p in sn.parameters()}
    assert all(id(p) in own for p in sub.parameters())
    ref = spaces.get("nb201").build(NB201_ARCH, 4, (3, 8, 8), C=4, N=1)
    assert set(sub.state_dict()) == set(ref.state_dict())
    x = torch.randn(8, 3, 8, 8)
    sn.eval()
    sub.eval()
    with torch.no_grad():
        assert torch.allclose(sn(x, NB201_ARCH), sub(x))
        w = sub.cells[0].edges["1_0"][1].weight
        before = sn.cells[0].edges["1_0"]["nor_conv_3x3"][1].weight.clone()
        w.add_(1.0)
        after = sn.cells[0].edges["1_0"]["nor_conv_3x3"][1].weight
        assert torch.allclose(after, before + 1.0)
        assert torch.allclose(sn(x, NB201_ARCH), sub(x))
        w.sub_(1.0)


def test_nb201_forward_trains_only_the_path(nb201_supernet):
    sn = nb201_supernet
    sn.train()
    sn.zero_grad(set_to_none=True)
    out = sn(torch.randn(4, 3, 8, 8), NB201_ARCH)
    assert out.shape == (4, 4)
    out.sum().backward()
    edges = sn.cells[0].edges
    assert edges["1_0"]["nor_conv_3x3"][1].weight.grad is not None
    assert edges["1_0"]["nor_conv_1x1"][1].weight.grad is None  # not on the path
    assert edges["3_1"]["nor_conv_3x3"][1].weight.grad is None  # a 'none' edge
    sn.zero_grad(set_to_none=True)


def test_nb201_rejects_bad_arch(nb201_supernet):
    with pytest.raises(InvalidArchitectureError):
        nb201_supernet(torch.randn(2, 3, 8, 8), "|conv~0|+|bad~0|none~1|")


@pytest.mark.parametrize("arch", B1D_ARCHS)
def test_blocks1d_subnet_matches_and_shares(blocks1d_supernet, arch):
    sn = blocks1d_supernet
    space = spaces.get("blocks1d")
    sub = sn.subnet(arch)
    ref = space.build(arch, 4, (1, 40))
    assert set(sub.state_dict()) == set(ref.state_dict())
    assert {k: v.shape for k, v in sub.state_dict().items()} == \
        {k: v.shape for k, v in ref.state_dict().items()}
    for name, p in sub.named_parameters():
        assert _owner_storage(p, sn), f"{name} is not a view of a supernet tensor"
    x = torch.randn(6, 1, 40)
    sn.eval()
    sub.eval()
    with torch.no_grad():
        assert torch.allclose(sn(x, arch), sub(x), atol=1e-5)
        p = sub.blocks[0][0].weight if hasattr(sub.blocks[0], "__getitem__") else sub.head.weight
        owner = dict(sn.named_parameters())[_owner_storage(p, sn)[0]]
        total = float(owner.sum())
        p.add_(0.5)
        assert float(owner.sum()) == pytest.approx(total + 0.5 * p.numel(), rel=1e-4, abs=1e-2)
        assert torch.allclose(sn(x, arch), sub(x), atol=1e-5)
        p.sub_(0.5)


def test_blocks1d_gradients_reach_shared_weights(blocks1d_supernet):
    sn = blocks1d_supernet
    sn.train()
    sn.zero_grad(set_to_none=True)
    sn(torch.randn(4, 1, 40), "conv5:16|mlp:32@0").sum().backward()
    g = sn.slots[0]["conv5"][0].weight.grad
    assert g is not None and g[:16, :1].abs().sum() > 0
    assert g[16:].abs().sum() == 0  # outside the slice: untouched
    assert sn.skips[1].grad is not None and sn.skips[1].grad[:32, :1].abs().sum() > 0
    assert sn.slots[0]["conv3"][0].weight.grad is None
    sn.zero_grad(set_to_none=True)


def test_blocks1d_recalibration_resets_stats(blocks1d_supernet):
    sn = blocks1d_supernet
    bn = sn.slots[0]["conv3"][1]
    with torch.no_grad(), sn.recalibrating():
        sn.train()
        assert bn.momentum is None
        assert torch.all(bn.running_mean == 0)
        sn(torch.randn(16, 1, 40) + 3.0, "conv3:16")
        sn(torch.randn(16, 1, 40) + 3.0, "conv3:16")
    assert bn.momentum == 0.1
    assert int(bn.num_batches_tracked) == 2
    assert bn.running_mean[:16].abs().sum() > 0 and torch.all(bn.running_mean[16:] == 0)


def test_blocks1d_random_archs_run(blocks1d_supernet):
    space = spaces.get("blocks1d")
    rng = np.random.default_rng(3)
    blocks1d_supernet.eval()
    with torch.no_grad():
        for _ in range(5):
            out = blocks1d_supernet(torch.randn(3, 1, 40), space.sample(rng))
            assert out.shape == (3, 4) and torch.isfinite(out).all()
