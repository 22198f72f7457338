"""The supernet warm-up and its scorer on tiny tasks (CPU)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import prednas
import spaces
from prednas.errors import InvalidParameterError, UnknownNameError
from prednas.supernet import FEATURES, SupernetScorer, SupernetScores, WarmupDiverged


def _rng_states():
    return torch.random.get_rng_state().clone(), np.random.get_state()[1].copy()


def _nb201(task, seed=0, **kw):
    kw = {"steps": 6, **kw}
    return prednas.warmup("nb201", task, fraction=0.5, batch_size=16, seed=seed, device="cpu",
                          C=4, N=1, calib_size=32, val_size=64, progress=False, **kw)


def test_nb201_warmup_scores(synthetic_image_task, tmp_path):
    torch_before, np_before = _rng_states()
    scorer = _nb201(synthetic_image_task)
    torch_after, np_after = _rng_states()
    assert torch.equal(torch_before, torch_after) and np.array_equal(np_before, np_after)
    assert isinstance(scorer, SupernetScorer) and scorer.seconds > 0
    space = spaces.get("nb201")
    archs = [space.sample(np.random.default_rng(i)) for i in range(6)] + [space.default_arch()]
    acc = scorer.score(archs)
    neg = scorer.score_loss([str(a) for a in archs])
    assert acc.shape == neg.shape == (7,)
    assert np.isfinite(acc).all() and np.isfinite(neg).all()
    assert ((acc >= 0) & (acc <= 100)).all() and (neg <= 0).all()
    assert scorer.scored == 7  # the second call used the cache
    assert scorer.features(archs, ["inherited_acc", "inherited_neg_loss"]).shape == (7, 2)
    assert scorer.scored == 7  # aliases, and the cache again
    archs = archs[:4]
    feats = scorer.features(archs)  # adds the SiGeo group
    assert scorer.feature_names == FEATURES and feats.shape == (4, len(FEATURES))
    assert np.isfinite(feats).all()
    f = dict(zip(FEATURES, feats.T))
    np.testing.assert_allclose(f["sigeo"], f["sigeo_zico"] + 50 * f["sigeo_fr"]
                               + f["sigeo_neg_loss"])
    assert (f["sigeo_neg_loss"] < 0).all()
    assert scorer.seconds_per_arch > 0
    saved = tmp_path / "scores.csv"
    scorer.to_csv(archs[:4], saved)
    loaded = SupernetScores.from_csv(saved, space="nb201")
    assert loaded.feature_names == FEATURES
    np.testing.assert_allclose(loaded.features(archs[:4]), scorer.features(archs[:4]), rtol=1e-5)
    assert np.isnan(loaded.score([archs[-1]])).all() or archs[-1] in archs[:4]
    again = _nb201(synthetic_image_task)
    np.testing.assert_allclose(again.features(archs), feats)
    assert torch.equal(torch_before, torch.random.get_rng_state())


def test_two_column_scores_file_still_reads(tmp_path):
    arch = str(spaces.get("nb201").default_arch())
    path = tmp_path / "old.csv"
    path.write_text(f"arch,supernet_acc,supernet_neg_loss\n{arch},51.5,-1.25\n")
    old = SupernetScores.from_csv(path)
    assert old.feature_names == ("supernet_acc", "supernet_neg_loss")
    assert old.score([arch]).tolist() == [51.5]
    with pytest.raises(UnknownNameError, match="sigeo"):
        old.features([arch], ["sigeo"])


def test_fair_sampling_several_paths_and_path_dropout(synthetic_image_task):
    kw = dict(sampling="fair", paths_per_step=5, path_dropout=0.2, steps=2)
    a, b = _nb201(synthetic_image_task, **kw), _nb201(synthetic_image_task, **kw)
    arch = [spaces.get("nb201").default_arch()]
    names = ["supernet_neg_loss"]
    np.testing.assert_allclose(a.features(arch, names), b.features(arch, names))  # seeded
    assert a.info["sampling"] == "fair" and a.info["paths_per_step"] == 5
    plain = _nb201(synthetic_image_task, steps=2)
    assert not np.allclose(plain.features(arch, ["supernet_neg_loss"]),
                           a.features(arch, ["supernet_neg_loss"]))
    # the drop-path hooks are gone after the warm-up
    assert not any(m._forward_hooks for m in a.supernet.modules())


def test_diverging_warmup_raises(synthetic_image_task):
    with pytest.raises(WarmupDiverged, match="diverged: .* non-finite losses"):
        prednas.warmup("nb201", synthetic_image_task, steps=20, batch_size=16, lr=1e30,
                       device="cpu", C=4, N=1, progress=False, calib_size=16, val_size=16)


def test_blocks1d_warmup_scores(synthetic_task):
    scorer = prednas.warmup("blocks1d", synthetic_task, fraction=0.5, steps=4, batch_size=16,
                            seed=1, device="cpu", calib_size=32, val_size=64, progress=False)
    archs = ["conv5:16|mlp:32@0", "gru:16", "attn:32|conv3:16", "sepconv5:64|dilconv3:16@0"]
    feats = scorer.features(archs)
    assert feats.shape == (4, len(FEATURES)) and np.isfinite(feats).all()
    assert len(scorer.loss_curve) >= 1


def test_warmup_is_callable_after_importing_its_module(synthetic_image_task):
    import prednas.supernet  # noqa: F401  (must not shadow the prednas.warmup function)

    scorer = prednas.warmup(spaces.get("nb201"), synthetic_image_task, steps=1, C=4, N=1,
                            device="cpu", progress=False, calib_size=16, val_size=16)
    assert np.isfinite(scorer.score([spaces.get("nb201").default_arch()])).all()


@pytest.mark.parametrize("kw", [{"fraction": 0.0}, {"fraction": 1.5}, {"steps": -1},
                                {"steps": 0}, {"batch_size": 0}, {"lr": 0.0},
                                {"sampling": "fiar"}, {"paths_per_step": 0},
                                {"path_dropout": 1.0}, {"path_dropout": -0.1}])
def test_warmup_rejects_bad_parameters(synthetic_image_task, kw):
    with pytest.raises(InvalidParameterError) as err:
        prednas.warmup("nb201", synthetic_image_task, device="cpu", progress=False, C=4, N=1, **kw)
    assert "\n" not in str(err.value)


def test_warmup_rejects_an_unknown_space_and_path_dropout_off_nb201(synthetic_task):
    with pytest.raises(UnknownNameError, match="nb201") as err:
        prednas.warmup("nb210", synthetic_task, device="cpu", progress=False)
    assert "\n" not in str(err.value)
    with pytest.raises(InvalidParameterError, match="path_dropout"):
        prednas.warmup("blocks1d", synthetic_task, device="cpu", progress=False,
                       path_dropout=0.1)


def test_a_saved_warmup_is_loaded_not_trained_again(synthetic_image_task, tmp_path, monkeypatch):
    from prednas.errors import IncompatibleArtifactError

    first = _nb201(synthetic_image_task, state_dir=tmp_path / "w")
    assert (tmp_path / "w" / prednas.supernet.WARMUP_FILE).is_file()
    space = spaces.get("nb201")
    archs = [space.sample(np.random.default_rng(i)) for i in range(4)]

    def no_training(*args, **kwargs):
        raise AssertionError("a saved warm-up must not train again")

    monkeypatch.setattr(prednas.supernet, "_path_step", no_training)
    again = _nb201(synthetic_image_task, state_dir=tmp_path / "w")
    assert again.seconds == pytest.approx(first.seconds)
    np.testing.assert_allclose(again.features(archs), first.features(archs), rtol=1e-5)
    with pytest.raises(IncompatibleArtifactError, match="steps: 7 given, 6 stored"):
        _nb201(synthetic_image_task, state_dir=tmp_path / "w", steps=7)
    (tmp_path / "w" / prednas.supernet.WARMUP_FILE).write_bytes(b"not a torch file")
    with pytest.raises(IncompatibleArtifactError, match="not a readable warm-up state"):
        _nb201(synthetic_image_task, state_dir=tmp_path / "w")


def test_a_resumed_search_does_not_repeat_its_warmup(tmp_path, monkeypatch):
    from prednas.search import PredictorFilter, Search, TrainingEvaluator

    def search(budget):
        return Search("blocks1d", task="synthetic", task_options={"n": 64, "seed": 0},
                      budget=budget, per_round=2, ensembler=False, run_dir=tmp_path / "run",
                      device="cpu", seed=0, evaluator=TrainingEvaluator(steps=2, device="cpu"),
                      filter=PredictorFilter(proxy_table=None, supernet="auto",
                                             warmup_kwargs={"steps": 3, "progress": False}))

    search(2).run()
    saved = tmp_path / "run" / "supernet" / prednas.supernet.WARMUP_FILE
    assert saved.is_file()
    before = saved.read_bytes()

    def no_training(*args, **kwargs):
        raise AssertionError("a resumed search must not warm up again")

    monkeypatch.setattr(prednas.supernet, "_path_step", no_training)
    res = Search.resume(tmp_path / "run", budget=4).run()
    assert len(res.records) == 4 and saved.read_bytes() == before


def test_filter_reads_supernet_scores_from_a_file(tmp_path):
    """An oracle search whose filter looks supernet scores up in a CSV (no task, no warm-up)."""
    from prednas.search import MutationMutator, PredictorFilter, Search

    bench = prednas.benchmarks.load("nb201")
    space = spaces.get("nb201")
    archs = bench.arch_strings()
    truth = bench.values("cifar10_test_200ep", archs=archs)
    noise = np.random.default_rng(0).normal(size=len(archs))
    path = tmp_path / "scores.csv"  # a score that ranks perfectly, and one that is noise
    SupernetScores(space, archs, np.column_stack([truth, noise]),
                   names=["supernet_acc", "supernet_neg_loss"]).to_csv(path)

    def first_round(feature):
        flt = PredictorFilter(proxy_table=None, supernet=str(path), supernet_features=[feature],
                              survivors=20, min_fit=50)  # not fitted: the scores alone order
        res = Search(space, oracle=bench, filter=flt, budget=5, per_round=5, seed=0,
                     run_dir=tmp_path / feature,
                     mutator=MutationMutator(parents=2, mutations=60)).run()
        assert flt.stage2_.feature_names == [f"supernet:{feature}"]
        assert "scores of" in flt.signals()["supernet"]
        return [r.objective for r in res.records]

    perfect, random_ = first_round("supernet_acc"), first_round("supernet_neg_loss")
    assert np.mean(perfect) > np.mean(random_)
    with pytest.raises(prednas.errors.DataNotFoundError, match="not found"):
        Search(space, oracle=bench, filter=PredictorFilter(supernet=str(tmp_path / "no.csv")),
               budget=2, run_dir=tmp_path / "r2").run()


def test_warmup_defaults_are_the_measured_setting(synthetic_image_task):
    from prednas.supernet import WARMUP_DEFAULTS, warmup_defaults

    assert warmup_defaults("nb201") == WARMUP_DEFAULTS["nb201"]
    assert warmup_defaults(spaces.get("blocks1d"))["steps"] == 24000
    # options left out take the space's setting: fair sampling, 5 paths, a small supernet on
    # at most 16x16 images
    scorer = prednas.warmup("nb201", synthetic_image_task, steps=2, batch_size=16,
                            device="cpu", progress=False, calib_size=16, val_size=16)
    info = scorer.info
    assert (info["sampling"], info["paths_per_step"], info["fraction"]) == ("fair", 5, 1.0)
    assert info["supernet_kwargs"] == {"C": 8, "N": 2}
    assert tuple(info["input_shape"]) == tuple(synthetic_image_task.input_shape)  # 8x8: kept
    assert np.isfinite(scorer.score([spaces.get("nb201").default_arch()])).all()
    with pytest.raises(InvalidParameterError, match="max_seconds"):
        prednas.warmup("nb201", synthetic_image_task, max_seconds=0, progress=False)


def test_a_time_capped_warmup_stops_and_anneals(synthetic_task):
    import time

    from prednas.supernet import _Cosine

    # 24,000 default steps, capped at a second: it stops, and its schedule follows the clock
    t = time.perf_counter()
    scorer = prednas.warmup("blocks1d", synthetic_task, batch_size=16, device="cpu",
                            max_seconds=1.0, progress=False, calib_size=16, val_size=16)
    assert time.perf_counter() - t < 30 and scorer.info["steps"] == 24000
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    late = _Cosine(opt, 1.0, steps=1000, max_seconds=10.0, start=time.perf_counter() - 9.5)
    late.step(1)  # 0.1% of the steps, 95% of the time: the time decides
    assert opt.param_groups[0]["lr"] < 0.01
    _Cosine(opt, 1.0, steps=10, max_seconds=None, start=time.perf_counter()).step(5)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.5)


def test_task_downsample(synthetic_image_task, synthetic_task):
    small = synthetic_image_task.downsample(4)  # 8x8 images
    assert small.input_shape == (3, 4, 4) and small.x_val.shape[1:] == (3, 4, 4)
    assert torch.equal(small.y_train, synthetic_image_task.y_train)
    assert synthetic_image_task.downsample(64) is synthetic_image_task
    with pytest.raises(InvalidParameterError, match="input shape"):
        synthetic_task.downsample(8)
