"""ST-NAS: the straight-through estimator, the architecture distribution, training and resuming."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import spaces
from prednas import stnas
from prednas._choices import FairPicker, choices_for
from prednas.errors import IncompatibleArtifactError, InvalidParameterError
from prednas.supernet import WarmupDiverged
from prednas.tasks.base import Task


# -- the estimator ------------------------------------------------------------------------------
@pytest.mark.parametrize("terms", ["all", "sampled"])
@pytest.mark.parametrize("a", [0, 1])
def test_straight_through_gradient_matches_the_analytic_value_on_two_ops(terms, a):
    g = torch.Generator().manual_seed(3)
    x = torch.randn(5, 4, generator=g)
    w = [torch.randn(4, 3, generator=g, requires_grad=True) for _ in range(2)]
    t = torch.randn(5, 3, generator=g)
    alpha = torch.tensor([0.3, -0.7], requires_grad=True)
    p = torch.softmax(alpha, 0)
    outs = [x @ wk for wk in w]
    others = {1 - a: outs[1 - a]} if terms == "all" else None
    y = stnas.st_mix(outs[a], p, a, others)
    torch.testing.assert_close(y, outs[a])  # the forward value is the sampled op's output
    loss = (t * y).sum()
    ga, *gw = torch.autograd.grad(loss, [alpha, *w], allow_unused=True)
    # dL/dp_k = <dL/dy, o_k> = <t, o_k>, for k = a and (all terms) the other op
    q = p.detach().tolist()
    dl_dp = [float((t * o.detach()).sum()) if (k == a or terms == "all") else 0.0
             for k, o in enumerate(outs)]
    expected = [sum(dl_dp[k] * q[k] * (float(k == j) - q[j]) for k in range(2)) for j in range(2)]
    torch.testing.assert_close(ga, torch.tensor(expected, dtype=ga.dtype))
    # the weights: the sampled op gets its plain gradient, the other none
    torch.testing.assert_close(gw[a], x.T @ t)
    assert gw[1 - a] is None


def test_none_choice_without_others_gives_nothing():
    p = torch.softmax(torch.zeros(3, requires_grad=True), 0)
    assert stnas.st_mix(None, p, 0) is None


# -- choices and the distribution ---------------------------------------------------------------
@pytest.mark.parametrize("name", ["nb201", "blocks1d"])
def test_choices_round_trip(name):
    space = spaces.get(name)
    ch = choices_for(space)
    rng = np.random.default_rng(0)
    for _ in range(20):
        arch = space.sample(rng)
        assert ch.decode(ch.encode(arch)) == arch


def test_fair_picker_takes_every_op_once_per_cycle():
    space = spaces.get("nb201")
    pick = FairPicker(choices_for(space), np.random.default_rng(0))
    archs = [pick.sample() for _ in range(5)]
    for e in range(6):
        assert sorted(a.ops[e] for a in archs) == sorted(spaces.nb201.OPS)


@pytest.mark.parametrize("space", [spaces.get("nb201"),
                                   spaces.get("blocks1d", ops=("conv3", "gru"), widths=(16, 32),
                                              max_blocks=2)])
def test_distribution_sums_to_one_and_samples_follow_it(space):
    dist = stnas.ArchDistribution(space)
    rng = np.random.default_rng(1)
    logits = {k: rng.normal(size=len(v)) for k, v in dist.logits.items()}
    dist = stnas.ArchDistribution(space, logits)
    total = sum(math.exp(dist.log_prob(a)) for a in space.enumerate())
    assert total == pytest.approx(1.0, abs=1e-9)
    best = max(space.enumerate(), key=dist.log_prob)
    assert dist.log_prob(dist.top(1)[0]) == pytest.approx(dist.log_prob(best))
    idx = dist.choices.encode(dist.argmax())  # every decision's own most probable choice
    assert all(i is None or i == int(np.argmax(v)) for i, v in zip(idx, dist.logits.values()))
    if space.name == "nb201":  # every decision is active: the modes make the most probable arch
        assert dist.argmax() == best
    draws = dist.sample(400, rng=0)
    assert draws == dist.sample(400, rng=0)  # a seed gives the same draws
    freq = sum(a == best for a in draws) / len(draws)
    assert abs(freq - math.exp(dist.log_prob(best))) < 0.1


def test_uniform_nb201_log_prob():
    dist = stnas.ArchDistribution("nb201")
    assert dist.log_prob(spaces.get("nb201").default_arch()) == pytest.approx(-6 * math.log(5))


def test_distribution_json_round_trip_and_mismatch(tmp_path):
    space = spaces.get("blocks1d", ops=("conv3", "mlp"), widths=(16,), max_blocks=2)
    dist = stnas.ArchDistribution(space, {"op 1": [2.0, -1.0], "depth": [0.5, 0.0]})
    dist.save(tmp_path / "d.json")
    back = stnas.ArchDistribution.load(tmp_path / "d.json")
    assert back.space == space and back.argmax() == dist.argmax()
    for k, v in dist.logits.items():
        np.testing.assert_array_equal(back.logits[k], v)
    with pytest.raises(IncompatibleArtifactError, match="not 'blocks1d'|space"):
        stnas.ArchDistribution.load(tmp_path / "d.json", space="blocks1d")
    with pytest.raises(IncompatibleArtifactError, match="decision 'bogus'"):
        stnas.ArchDistribution(space, {"bogus": [0.0]})


# -- training -----------------------------------------------------------------------------------
def _train(task, **kw):
    base = dict(warmup_steps=3, search_steps=4, batch_size=16, fraction=0.5, seed=0,
                device="cpu", calib_size=16, val_size=32, progress=False, C=4, N=1)
    base.update(kw)
    return stnas.train("nb201", task, **base)


def test_train_nb201_features_and_determinism(synthetic_image_task):
    res = _train(synthetic_image_task)
    assert res.steps == 4 and res.seconds > 0 and res.history
    scorer = res.scorer
    assert scorer.feature_names[-1] == "stnas_log_prob"
    space = spaces.get("nb201")
    archs = [space.sample(np.random.default_rng(i)) for i in range(3)]
    F = scorer.features(archs)
    assert F.shape == (3, len(scorer.feature_names)) and np.isfinite(F).all()
    np.testing.assert_allclose(F[:, -1], [res.distribution.log_prob(a) for a in archs])
    again = _train(synthetic_image_task)
    for k, v in res.distribution.logits.items():
        np.testing.assert_array_equal(again.distribution.logits[k], v)
    np.testing.assert_allclose(again.scorer.features(archs), F)


def test_prednas_stnas_is_callable_and_its_result_reads_as_the_distribution(
        synthetic_image_task):
    import prednas

    res = prednas.stnas("nb201", synthetic_image_task, warmup_steps=2, search_steps=2,
                        batch_size=16, seed=0, device="cpu", calib_size=16, val_size=16,
                        progress=False, C=4, N=1)
    assert str(res.argmax()) == str(res.distribution.argmax())
    arch = res.argmax()
    assert res.log_prob(arch) == res.distribution.log_prob(arch) <= 0
    assert len(res.sample(3, rng=0)) == 3
    assert prednas.stnas.train is stnas.train  # still the module
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = res.nope


def test_save_load_round_trip_does_not_train_again(synthetic_image_task, tmp_path, monkeypatch):
    res = _train(synthetic_image_task, run_dir=tmp_path / "st")
    assert (tmp_path / "st" / stnas.STATE_FILE).is_file()
    on_disk = stnas.load(tmp_path / "st")
    assert on_disk.argmax() == res.distribution.argmax()

    def boom(*a, **k):
        raise AssertionError("trained again")

    monkeypatch.setattr(stnas, "warmup", boom)
    monkeypatch.setattr(stnas, "_path_step", boom)
    back = _train(synthetic_image_task, run_dir=tmp_path / "st")
    for k, v in res.distribution.logits.items():
        np.testing.assert_allclose(back.distribution.logits[k], v)
    arch = spaces.get("nb201").default_arch()
    np.testing.assert_allclose(back.scorer.features([arch]), res.scorer.features([arch]))
    res.save(tmp_path / "saved")  # a finished result written by hand loads the same way
    again = _train(synthetic_image_task, run_dir=tmp_path / "saved")
    np.testing.assert_allclose(again.scorer.features([arch]), res.scorer.features([arch]))
    with pytest.raises(IncompatibleArtifactError, match="alpha_lr"):
        _train(synthetic_image_task, run_dir=tmp_path / "st", alpha_lr=0.5)


def test_interrupted_search_resumes_where_it_stopped(synthetic_image_task, tmp_path,
                                                     monkeypatch):
    ref = _train(synthetic_image_task, search_steps=6)
    real, calls = stnas._path_step, {"n": 0}

    def flaky(*a, **k):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(stnas, "_path_step", flaky)
    with pytest.raises(KeyboardInterrupt):
        _train(synthetic_image_task, search_steps=6, run_dir=tmp_path / "r", checkpoint_every=2)
    monkeypatch.setattr(stnas, "_path_step", real)
    res = _train(synthetic_image_task, search_steps=6, run_dir=tmp_path / "r",
                 checkpoint_every=2)
    assert res.steps == 6
    for k, v in ref.distribution.logits.items():
        np.testing.assert_allclose(res.distribution.logits[k], v, rtol=1e-5, atol=1e-6)


def _ar1_task(n: int = 384, length: int = 16) -> Task:
    """Label 0: AR(1) noise with lag-1 correlation +0.9; label 1: -0.9. Both have N(0, 1)
    marginals, so a pointwise block ("mlp") with a linear head is at chance; a conv sees pairs."""
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 2, (n,), generator=g)
    rho = torch.where(y == 0, 0.9, -0.9)
    x = torch.zeros(n, length)
    x[:, 0] = torch.randn(n, generator=g)
    for t in range(1, length):
        x[:, t] = rho * x[:, t - 1] + math.sqrt(1 - 0.81) * torch.randn(n, generator=g)
    x = x.unsqueeze(1)
    return Task("ar1", x[:256], y[:256], x[256:320], y[256:320], x[320:], y[320:], (1, length),
                2, {})


@pytest.mark.parametrize("terms", ["all", "sampled"])
def test_alpha_moves_toward_the_op_that_solves_the_task(terms):
    space = spaces.get("blocks1d", ops=("conv3", "mlp"), widths=(16,), max_blocks=1, skips=False)
    res = stnas.train(space, _ar1_task(), warmup_steps=20, search_steps=40, batch_size=32,
                      fraction=1.0, seed=0, device="cpu", st_terms=terms, calib_size=32,
                      val_size=64, progress=False)
    p = res.distribution.probs["op 1"]
    assert p[0] > 0.7, p  # conv3
    assert str(res.distribution.argmax()) == "conv3:16"


def test_blocks1d_search_runs_with_every_decision():
    space = spaces.get("blocks1d", ops=("conv3", "gru"), widths=(16, 32), max_blocks=3)
    task = _ar1_task(192)
    res = stnas.train(space, task, warmup_steps=2, search_steps=3, batch_size=16, fraction=0.5,
                      device="cpu", calib_size=16, val_size=32, progress=False)
    assert set(res.distribution.logits) >= {"depth", "op 1", "width 3", "skip 3"}
    assert np.isfinite(res.scorer.features(["conv3:16|gru:32@0"])).all()


@pytest.mark.parametrize("kw", [{"search_steps": 0}, {"warmup_steps": 0}, {"alpha_lr": 0.0},
                                {"st_terms": "bogus"}, {"fraction": 1.5},
                                {"checkpoint_every": 0}])
def test_bad_parameters_are_one_line_errors(synthetic_image_task, kw):
    with pytest.raises(InvalidParameterError) as err:
        _train(synthetic_image_task, **kw)
    assert "\n" not in str(err.value)


def test_diverging_search_raises(synthetic_image_task):
    with pytest.raises(WarmupDiverged, match="diverged"):
        _train(synthetic_image_task, warmup_steps=20, lr=1e30)
