"""The ST-NAS mutator in the search engine: registered, argmax first, state saved and reused."""

from __future__ import annotations

import pytest

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
