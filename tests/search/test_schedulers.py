"""Schedulers: successive halving's promotions, failures, and parameter checks."""

from __future__ import annotations

import math

import numpy as np
import pytest

from prednas.errors import InvalidParameterError
from prednas.search.schedulers import ASHAScheduler, Decision, FullScheduler


def test_asha_starts_new_candidates_until_a_rung_has_a_top_third():
    s = ASHAScheduler(rungs=(10, 30, 90), reduction_factor=3)
    assert s.suggest() == Decision("new", 10, 0)
    s.on_result("a", 0, 50.0)
    s.on_result("b", 0, 70.0)
    assert s.suggest().action == "new"  # 2 results: the top third is empty
    s.on_result("c", 0, 60.0)
    assert s.suggest() == Decision("promote", 30, 1, "b")  # the best of three
    assert s.suggest().action == "new"  # b is promoted once only


def test_asha_promotes_from_the_highest_rung_first():
    s = ASHAScheduler(rungs=(10, 30, 90), reduction_factor=3)
    for i, v in enumerate([5, 9, 7, 1, 2, 3]):
        s.on_result(f"t{i}", 0, float(v))
    s.promoted_[0].update({"t1", "t2"})
    for t, v in (("t1", 80.0), ("t2", 60.0), ("t9", 70.0)):
        s.on_result(t, 1, v)
    assert s.suggest() == Decision("promote", 90, 2, "t1")


def test_a_failed_candidate_is_never_promoted():
    s = ASHAScheduler(rungs=(10, 30), reduction_factor=2)
    s.on_result("bad", 0, math.nan)
    s.on_result("ok", 0, 1.0)
    assert s.suggest() == Decision("promote", 30, 1, "ok")
    s2 = ASHAScheduler(rungs=(10, 30), reduction_factor=2)
    s2.on_result("bad", 0, math.nan)
    s2.on_result("worse", 0, -math.inf)
    assert s2.suggest().action == "new"


def test_asha_promotes_like_successive_halving_with_every_result_in():
    """With every rung-0 result in before the first promotion, rung 0 promotes exactly its top
    third; asynchronous promotions from rung 1 are made from partial results, so they are at
    least its top third and always include its best."""
    rng = np.random.default_rng(0)
    s = ASHAScheduler(rungs=(1, 3, 9), reduction_factor=3)
    values = {f"t{i}": float(rng.random()) for i in range(27)}
    for t, v in values.items():
        s.on_result(t, 0, v)
    promoted = {0: [], 1: []}
    while (d := s.suggest()).action == "promote":
        promoted[d.rung - 1].append(d.trial)
        s.on_result(d.trial, d.rung, values[d.trial])
    best9 = sorted(values, key=values.get, reverse=True)[:9]
    assert sorted(promoted[0]) == sorted(best9)
    assert len(promoted[1]) >= 3 and best9[0] in promoted[1]
    assert set(promoted[1]) <= set(best9)


@pytest.mark.parametrize("kw, match", [({"rungs": (30, 10)}, "strictly increasing"),
                                       ({"rungs": (10,)}, "rungs"),
                                       ({"reduction_factor": 1}, "reduction_factor")])
def test_bad_parameters_are_one_line_errors(kw, match):
    with pytest.raises(InvalidParameterError, match=match):
        ASHAScheduler(**kw)


def test_full_scheduler_trains_everything_fully():
    assert FullScheduler(300).suggest() == Decision("new", 300)
