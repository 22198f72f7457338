"""The mutation mutator's pool: mutations of the leaders, and its explore share."""

from __future__ import annotations

import pytest

import prednas
import spaces
from prednas.search import NoFilter, Search


@pytest.fixture(scope="module")
def bench():
    return prednas.benchmarks.load("nb201")


def test_mutation_mutator_explores_its_share_of_the_pool(bench, tmp_path):
    import numpy as np

    from prednas.search import MutationMutator
    from prednas.search.base import History

    res = Search("nb201", oracle=bench, filter=NoFilter(), budget=6, per_round=3, seed=0,
                 run_dir=tmp_path / "r", mutator=MutationMutator(parents=2, mutations=3)).run()
    space = spaces.get("nb201")
    history = History(space, res.records)
    parents = {str(history.arch(r)) for r in history.top(2)}
    for share, uniform in ((0.0, 0), (0.4, 8), (1.0, 20)):
        pool = MutationMutator(parents=2, mutations=20, explore=share).propose(
            space, history, np.random.default_rng(1))
        assert len(pool) == 20
        assert sum(c.parent is None for c in pool) == uniform  # uniform samples: no parent
        assert all(c.parent in parents for c in pool if c.parent is not None)
