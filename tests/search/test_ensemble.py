"""Ensemble weights on the simplex, the artifact round trip."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import spaces
from prednas import ensemble
from prednas.errors import IncompatibleArtifactError, InvalidParameterError


def _probs(rng, m=3, n=200, c=4):
    logits = rng.normal(size=(m, n, c))
    p = np.exp(logits)
    return p / p.sum(-1, keepdims=True)


@pytest.mark.parametrize("seed", range(5))
def test_weights_on_simplex(seed):
    rng = np.random.default_rng(seed)
    probs = _probs(rng, m=int(rng.integers(1, 6)))
    y = rng.integers(0, 4, size=probs.shape[1])
    w = ensemble.fit_weights(probs, y)
    assert w.shape == (probs.shape[0],)
    assert (w >= 0).all()
    assert w.sum() == pytest.approx(1.0)


def test_weights_prefer_the_better_member():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, size=300)
    good = np.full((300, 4), 0.1)
    good[np.arange(300), y] = 0.7
    bad = _probs(rng, m=1, n=300)[0]
    w = ensemble.fit_weights(np.stack([bad, good]), y)
    assert w[1] > 0.8

    def nll(w):
        mix = np.tensordot(w, np.stack([bad, good]), axes=1)
        return -np.log(mix[np.arange(300), y]).mean()

    assert nll(w) <= nll(np.array([0.5, 0.5])) + 1e-9


def test_bad_probs_shape():
    with pytest.raises(InvalidParameterError):
        ensemble.fit_weights(np.zeros((4, 3)), np.zeros(4, int))


def test_artifact_round_trip(tmp_path):
    space = spaces.get("blocks1d")
    arch = space.parse("conv3:16|mlp:16")
    torch.manual_seed(0)
    members = [space.build(arch, 4, (1, 40)) for _ in range(2)]
    ens = ensemble.Ensemble(members, [0.25, 0.75], meta={
        "space": "blocks1d", "archs": [str(arch)] * 2, "num_classes": 4, "input_shape": [1, 40]})
    x = torch.randn(9, 1, 40)
    path = tmp_path / "ens.pt"
    ens.save(path)
    back = ensemble.load(path)
    np.testing.assert_allclose(back.predict_proba(x), ens.predict_proba(x), rtol=1e-5, atol=1e-6)
    assert back.predict(x).shape == (9,)
    assert np.allclose(back.predict_proba(x).sum(1), 1.0, atol=1e-5)


def test_invalid_weights_and_foreign_artifact(tmp_path):
    space = spaces.get("blocks1d")
    m = space.build(space.parse("conv3:16"), 4, (1, 40))
    with pytest.raises(InvalidParameterError):
        ensemble.Ensemble([m, m], [0.7, 0.7])
    with pytest.raises(InvalidParameterError):
        ensemble.Ensemble([m, m], [-0.5, 1.5])
    p = tmp_path / "x.pt"
    torch.save({"kind": "other"}, p)
    with pytest.raises(IncompatibleArtifactError):
        ensemble.load(p)
