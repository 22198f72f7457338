"""The ST-NAS mutator in the search engine: registered, argmax first, state saved and reused."""

from __future__ import annotations

import pytest
import torch

import prednas
import spaces
from prednas import stnas
from prednas.errors import InvalidParameterError
from prednas.search import NoFilter, Search, STNASMutator, TrainingEvaluator, list_mutators
from prednas.search.stnas import STATE_DIR


@pytest.fixture(scope="module")
def bench():
    return prednas.benchmarks.load("nb201")


def _mutator(**kw):
    base = dict(samples=6, warmup_steps=2, search_steps=2, batch_size=8, fraction=0.5,
                task="synthetic", task_options={"n": 32, "image": True, "channels": 3},
                supernet={"C": 4, "N": 1})
    base.update(kw)
    return STNASMutator(**base)


def _search(bench, path, **kw):
    return Search("nb201", oracle=bench, mutator=_mutator(**kw), filter=NoFilter(), budget=4,
                  per_round=2, seed=0, run_dir=path)


def test_registered():
    assert "stnas" in list_mutators()


def test_evaluates_the_argmax_first_and_saves_its_state(bench, tmp_path):
    res = _search(bench, tmp_path / "r").run()
    space = spaces.get("nb201")
    dist = stnas.load(tmp_path / "r" / STATE_DIR)
    first = min(res.records, key=lambda r: (r.round, r.slot))
    assert space.canonical(space.parse(first.arch)) == space.canonical(dist.argmax())
    assert (tmp_path / "r" / STATE_DIR / stnas.STATE_FILE).is_file()
    assert len(res.records) == 4 and len({r.canonical for r in res.records}) == 4


def test_fair_warmup_on_pooled_images(bench, tmp_path):
    """The setting `prednas search --bench nb201 --strategy stnas` uses, scaled down."""
    res = _search(bench, tmp_path / "r", sampling="fair", paths_per_step=5, resolution=4).run()
    assert len(res.records) == 4
    state = torch.load(tmp_path / "r" / STATE_DIR / stnas.STATE_FILE, weights_only=True)
    settings = state["settings"]
    assert (settings["sampling"], settings["paths_per_step"], settings["resolution"]) == (
        "fair", 5, 4)
    with pytest.raises(InvalidParameterError, match="paths_per_step"):
        _search(bench, tmp_path / "bad", paths_per_step=0).run()


class _Interrupt(BaseException):
    pass


def test_a_resumed_search_loads_the_state_instead_of_training(bench, tmp_path, monkeypatch):
    from prednas.search import rundir

    ref = _search(bench, tmp_path / "ref").run()
    real = rundir.RunDir.append
    calls = {"n": 0}

    def append(self, record):
        calls["n"] += 1
        if calls["n"] == 3:
            raise _Interrupt()
        return real(self, record)

    monkeypatch.setattr(rundir.RunDir, "append", append)
    with pytest.raises(_Interrupt):
        _search(bench, tmp_path / "run").run()
    monkeypatch.setattr(rundir.RunDir, "append", real)

    def boom(*a, **k):
        raise AssertionError("the supernet was trained again")

    monkeypatch.setattr(stnas, "warmup", boom)
    monkeypatch.setattr(stnas, "_path_step", boom)
    res = Search.resume(tmp_path / "run").run()
    key = lambda r: (r.round, r.slot, r.arch, round(r.objective, 6))  # noqa: E731
    assert sorted(map(key, res.records)) == sorted(map(key, ref.records))


def test_needs_a_task_in_oracle_mode(bench, tmp_path):
    s = Search("nb201", oracle=bench, mutator=STNASMutator(), filter=NoFilter(), budget=2,
               run_dir=tmp_path / "r")
    with pytest.raises(InvalidParameterError, match="needs a task") as err:
        s.run()
    assert "\n" not in str(err.value) and not (tmp_path / "r").exists()


def test_training_mode_uses_the_searchs_task(synthetic_task, tmp_path):
    space = spaces.get("blocks1d", ops=("conv3", "mlp"), widths=(16,), max_blocks=2)
    mut = STNASMutator(samples=2, warmup_steps=2, search_steps=2, batch_size=8, fraction=0.5)
    res = Search(space, task=synthetic_task, mutator=mut, filter=NoFilter(),
                 evaluator=TrainingEvaluator(steps=2, device="cpu"), budget=2, per_round=2,
                 ensembler=False, seed=0, run_dir=tmp_path / "t").run()
    assert len(res.records) == 2
    assert stnas.load(tmp_path / "t" / STATE_DIR).space == space


def _skewed_nb201(tmp_path):
    """A distribution that strongly prefers 3x3 convolutions on every edge, saved as JSON."""
    space = spaces.get("nb201")
    dist = stnas.ArchDistribution(space)
    names = dist.choices.names
    conv = dist.choices.decisions[0].labels.index("nor_conv_3x3")
    logits = {n: [0.0] * len(dist.choices.decisions[0]) for n in names}
    for n in names:
        logits[n][conv] = 6.0
    dist = stnas.ArchDistribution(space, logits)
    dist.save(tmp_path / "distribution.json")
    return space, dist


def test_guided_mutation_draws_edits_from_the_distribution(tmp_path):
    import numpy as np

    space, dist = _skewed_nb201(tmp_path)
    rng = np.random.default_rng(0)
    parent = space.parse("|avg_pool_3x3~0|+|skip_connect~0|none~1|+|none~0|skip_connect~1|none~2|")
    neighbours = {str(a) for a in space.neighbours(parent)}
    guided = [dist.mutate(parent, rng) for _ in range(200)]
    plain = [space.mutate(parent, rng) for _ in range(200)]
    assert all(str(c) in neighbours for c in guided)  # the space's own edits, nothing else
    convs = [sum(op == "nor_conv_3x3" for op in c.ops) for c in guided]
    assert np.mean(convs) > 0.95 > np.mean([sum(op == "nor_conv_3x3" for op in c.ops)
                                            for c in plain])
    with pytest.raises(InvalidParameterError, match="temperature"):
        dist.mutate(parent, rng, temperature=0)


def test_mutation_mutator_guided_by_a_saved_distribution(bench, tmp_path):
    from prednas.errors import DataNotFoundError
    from prednas.search import MutationMutator

    _skewed_nb201(tmp_path)
    path = str(tmp_path / "distribution.json")

    def search(run, distribution):
        return Search("nb201", oracle=bench, filter=NoFilter(), budget=12, per_round=4, seed=3,
                      run_dir=tmp_path / run,
                      mutator=MutationMutator(parents=2, mutations=4, distribution=distribution))

    guided = search("g", path).run()
    plain = search("p", None).run()
    convs = lambda res: sum(str(r.arch).count("nor_conv_3x3")  # noqa: E731
                            for r in res.records if r.round > 0)
    assert convs(guided) > convs(plain)
    resumed = Search.resume(tmp_path / "g", budget=16).run()  # the path is part of the run
    assert len(resumed.records) == 16
    with pytest.raises(DataNotFoundError, match="not found"):
        search("m", str(tmp_path / "missing.json")).run()
    assert not (tmp_path / "m").exists()


def test_cli_guide(tmp_path, capsys):
    from prednas.cli import main

    _skewed_nb201(tmp_path)
    out = tmp_path / "r"
    assert main(["search", "--bench", "nb201", "--budget", "8", "--guide",
                 str(tmp_path / "distribution.json"), "--out", str(out)]) == 0
    assert "distribution.json" in (out / "state.json").read_text()  # part of the run
    assert main(["search", "--bench", "nb201", "--strategy", "rea", "--guide",
                 str(tmp_path / "distribution.json"), "--out", str(tmp_path / "x")]) == 2
    assert main(["search", "--bench", "nb201", "--guide", str(tmp_path / "nope.json"),
                 "--out", str(tmp_path / "y")]) == 2
    err = capsys.readouterr().err
    assert "--guide goes with --strategy prednas" in err and "nope.json" in err


def test_filter_learns_from_the_stnas_log_probability(bench, tmp_path, capsys):
    from prednas.cli import main
    from prednas.search import MutationMutator, PredictorFilter

    space, dist = _skewed_nb201(tmp_path)
    path = str(tmp_path / "distribution.json")
    flt = PredictorFilter(proxy_table=None, distribution=path, min_fit=4, survivors=8)
    res = Search("nb201", oracle=bench, filter=flt, budget=10, per_round=4, seed=0,
                 run_dir=tmp_path / "f", mutator=MutationMutator(parents=2, mutations=30)).run()
    assert len(res.records) == 10
    archs = [r.arch for r in res.records]
    X = flt._stage1(archs)
    assert X.shape[1] == len(flt.stage1_.feature_names) + 1  # one more column: log p
    assert X[:, -1] == pytest.approx([dist.log_prob(a) for a in archs])
    assert flt.signals()["stnas log-probability"] == path
    assert "stnas log-probability" in (tmp_path / "f" / "report.md").read_text()
    # from the command line; refused beside another strategy, one line
    assert main(["search", "--bench", "nb201", "--budget", "6", "--stnas-feature", path,
                 "--out", str(tmp_path / "c")]) == 0
    assert main(["search", "--bench", "nb201", "--strategy", "random", "--stnas-feature", path,
                 "--out", str(tmp_path / "d")]) == 2
    assert "--stnas-feature goes with --strategy prednas" in capsys.readouterr().err

