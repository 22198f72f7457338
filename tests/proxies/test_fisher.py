"""fisher: the reference's per-weight Fisher sum (channel saliency broadcast to its fan-in)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import proxies
from proxies._engine import fisher_fan_in


class _ConvOnly(nn.Module):
    """One conv layer; its channels averaged over pixels are the logits."""

    def __init__(self, groups: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(4, 6, 3, padding=1, groups=groups)

    def forward(self, x):
        return self.conv(x).mean((2, 3))


class _ConvLinear(nn.Module):
    """A grouped conv, a ReLU and a linear head."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(4, 6, (3, 2), padding=1, groups=2)
        self.head = nn.Linear(6, 3)

    def forward(self, x):
        return self.head(torch.relu(self.conv(x)).mean((2, 3)))


def _by_hand(model: nn.Module, x: torch.Tensor, y: torch.Tensor, broadcast: bool = True) -> float:
    """The reference's definition with ``split_data=2``, computed directly with autograd.

    Per half: keep each layer's output, backprop the half's mean loss, take the per-channel
    saliency ``1/2 * mean_n (sum_pos a * dL/da)^2``, broadcast it to the layer's weight shape
    (one value per weight of that output channel) and sum over every weight; add the halves.
    ``broadcast=False``: each channel's saliency counted once (prednas before the fix).
    """
    layers = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    total = 0.0
    n = len(x)
    acts: dict = {}
    for sl in (slice(0, n // 2), slice(n // 2, n)):
        acts.clear()
        handles = [m.register_forward_hook(lambda m, i, o: acts.__setitem__(m, o))
                   for m in layers]
        logits = model(x[sl])
        for h in handles:
            h.remove()
        for a in acts.values():
            a.retain_grad()
        model.zero_grad()
        nn.functional.cross_entropy(logits, y[sl]).backward()
        for m in layers:
            a, grad = acts[m].detach(), acts[m].grad
            g = (a * grad).sum(tuple(range(2, a.dim()))) if a.dim() > 2 else a * grad
            saliency = 0.5 * g.pow(2).mean(0)  # one value per output channel
            if broadcast:
                shape = (-1,) + (1,) * (m.weight.dim() - 1)
                saliency = saliency.reshape(shape).expand(m.weight.shape)
            total += float(saliency.sum())
    return total


@pytest.mark.parametrize("model_cls,n", [(_ConvOnly, 8), (_ConvLinear, 8), (_ConvLinear, 7)])
def test_fisher_is_the_reference_per_weight_sum(model_cls, n):
    torch.manual_seed(0)
    model = model_cls().double()
    x = torch.randn(n, 4, 5, 5, dtype=torch.float64)
    y = torch.randint(0, 3, (n,))
    got = proxies.score(model, x, y, "fisher")["fisher"]
    want = _by_hand(model, x, y)
    assert want > 0
    assert got == pytest.approx(want, rel=1e-9)


def test_fan_in_weights_each_channel_by_its_weights_per_channel():
    torch.manual_seed(0)
    model = _ConvOnly().double()
    x = torch.randn(8, 4, 5, 5, dtype=torch.float64)
    y = torch.randint(0, 6, (8,))
    # the single conv has 4 * 3 * 3 = 36 weights per output channel (18 with groups=2)
    assert fisher_fan_in(model.conv, 6) == 36
    assert fisher_fan_in(_ConvOnly(groups=2).conv, 6) == 18
    assert fisher_fan_in(nn.Linear(7, 3), 3) == 7
    unweighted = _by_hand(model, x, y, broadcast=False)
    got = proxies.score(model, x, y, "fisher")["fisher"]
    assert got == pytest.approx(36 * unweighted, rel=1e-9)


@pytest.mark.parametrize("cls,gates", [(nn.RNN, 1), (nn.GRU, 3), (nn.LSTM, 4)])
def test_recurrent_fan_in_counts_the_last_layers_weights_per_unit(cls, gates):
    rnn = cls(5, 4, num_layers=2, bidirectional=True)
    # the last layer reads the 2 * 4 features of the layer below plus its own 4 hidden units
    assert fisher_fan_in(rnn, 8) == pytest.approx(gates * (8 + 4))
    assert fisher_fan_in(cls(5, 4), 4) == pytest.approx(gates * (5 + 4))
    if cls is nn.LSTM:
        proj = nn.LSTM(5, 4, proj_size=2)
        assert fisher_fan_in(proj, 2) == pytest.approx((4 * 4 * (5 + 2) + 2 * 4) / 2)


class _Seq(nn.Module):
    def __init__(self, batch_first: bool):
        super().__init__()
        self.batch_first = batch_first
        self.rnn = nn.LSTM(3, 4, batch_first=batch_first)
        self.head = nn.Linear(4, 2)

    def forward(self, x):  # (N, L, 3)
        out, _ = self.rnn(x if self.batch_first else x.transpose(0, 1))
        out = out if self.batch_first else out.transpose(0, 1)
        return self.head(out.mean(1))


def test_recurrent_fisher_does_not_depend_on_the_time_layout():
    torch.manual_seed(0)
    a = _Seq(batch_first=True).double()
    b = _Seq(batch_first=False).double()
    b.load_state_dict(a.state_dict())
    x = torch.randn(6, 5, 3, dtype=torch.float64)
    y = torch.randint(0, 2, (6,))
    va = proxies.score(a, x, y, "fisher")["fisher"]
    vb = proxies.score(b, x, y, "fisher")["fisher"]
    assert va > 0
    assert va == pytest.approx(vb, rel=1e-9)
