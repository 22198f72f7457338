"""An honest winner: noise-aware estimates, and a race that spends a slice of the budget on them.

One training is one noisy draw, and the best single number of many candidates is partly luck
(the winner's curse). When candidates are trained (or simulated), the search names its winner by
:class:`~prednas.search.estimates.NoiseAwareEstimate`: each architecture's trainings combined
with the filter's prediction for it, weighted by the noise the run measures. With
``Search(race=share)``, the last ``share`` of the budget (evaluations, and wall or simulated time)
races the leaders: the leaders whose intervals overlap the best's are trained again, on new
seeds (``"repeat"`` records), until one is separated or the slice is spent. Lookups of a
noise-free table (oracle mode) keep the best value.

The race's next batch is written to ``state.json`` before it is trained, so a killed race
resumes with the same batch and counts nothing twice.
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING, Any

from prednas.search.estimates import race_targets

if TYPE_CHECKING:  # pragma: no cover
    from prednas.search.base import Record
    from prednas.search.engine import Search
    from prednas.search.rundir import RunDir

__all__ = ["REPEAT", "is_noisy", "estimates", "winner", "race"]

log = logging.getLogger(__name__)

#: the kind of a race's extra training of a candidate, on a new seed
REPEAT = "repeat"


def is_noisy(search: Search) -> bool:
    """Whether an evaluation is one noisy training (training or simulation, not a lookup)."""
    return search.simulated or not search.evaluator.is_oracle


def _trainings(search: Search) -> tuple[dict[str, list[float]], dict[str, float], dict,
                                        dict[str, list[float]]]:
    """Per architecture: its full trainings' objectives (the candidate's, then its repeats'),
    the filter's prediction, its candidate record, and its trainings' validation losses
    (NaN where the evaluator measured none)."""
    vals: dict[str, list[float]] = {}
    losses: dict[str, list[float]] = {}
    preds: dict[str, float] = {}
    first: dict[str, Record] = {}
    for r in search._records:
        if r.kind == "candidate" and r.ok and r.arch not in first:
            first[r.arch] = r
            vals.setdefault(r.arch, []).insert(0, r.objective)
            losses.setdefault(r.arch, []).insert(0, _loss(r))
            if r.predicted is not None and math.isfinite(r.predicted):
                preds[r.arch] = float(r.predicted)
        elif r.kind == REPEAT and r.ok:
            vals.setdefault(r.arch, []).append(r.objective)
            losses.setdefault(r.arch, []).append(_loss(r))
    return ({a: v for a, v in vals.items() if a in first}, preds, first,
            {a: v for a, v in losses.items() if a in first})


def _loss(record: Record) -> float:
    loss = record.get("val_loss")
    return math.nan if loss is None else float(loss)


def estimates(search: Search):
    """Every fully trained candidate's estimate, best first."""
    vals, preds, _, losses = _trainings(search)
    return search.estimator.estimates(vals, preds, losses)


def winner(search: Search) -> tuple[Record | None, dict[str, Any] | None]:
    """The candidate the search hands over and, when trainings are noisy, why: its estimate,
    its trainings (n, mean ± std) and the runner-up it was or was not separated from."""
    from prednas.search.base import History

    cands = [r for r in search._records if r.kind == "candidate"]
    if not is_noisy(search):
        top = History(search.space, cands).top(1)
        return (top[0] if top else None), None
    vals, preds, first, losses = _trainings(search)
    ests = search.estimator.estimates(vals, preds, losses)
    if not ests:
        return None, None
    best = ests[0]
    z = 1.645
    info: dict[str, Any] = {**best.to_json(), "noise_std": math.sqrt(
        search.estimator.noise_var(vals)), "candidates": len(ests)}
    if len(ests) > 1:
        second = ests[1]
        separated = best.value - z * best.std > second.value + z * second.std
        info["runner_up"] = second.to_json()
        info["separated"] = bool(separated)
        how = (f"its 90% interval is above the runner-up's ({second.arch}: "
               f"{second.value:.2f} ± {second.std:.2f})" if separated else
               f"not separated from the runner-up ({second.arch}: {second.value:.2f} ± "
               f"{second.std:.2f}); "
               + ("the race's budget ran out" if search.race else "no budget was kept to race"))
    else:
        how = "the only fully trained candidate"
    pred = "" if best.prediction is None else f", the prediction {best.prediction:.2f}"
    if best.loss_reading is not None:
        pred += f", the accuracy its validation loss reads {best.loss_reading:.2f}"
    spread = "" if best.n < 2 else f" ± {best.sample_std:.2f}"
    info["why"] = (f"highest estimate {best.value:.2f} ± {best.std:.2f}, from {best.n} "
                   f"training{'s' if best.n != 1 else ''} (mean {best.mean:.2f}{spread}){pred}; "
                   f"{how}")
    return first[best.arch], info


def spent(search: Search) -> float:
    """The budget used so far, the race's repeats included."""
    return search._spent() + sum(1 for r in search._records if r.kind == REPEAT)


def race(search: Search, rd: RunDir, state: dict, t_start: float) -> None:
    """Train the leaders again, a batch (one per worker) at a time, until the best is separated
    or the budget (evaluations or time) is spent."""
    if not search.race or not is_noisy(search):
        return
    workers = max(1, int(getattr(search.evaluator, "workers", 0) or
                         getattr(search.executor, "workers", 0) or 1))
    while True:
        plan = state.get("race_plan")
        if plan is None:
            left = search.budget - spent(search)
            if left < 1 or (search.max_seconds is not None
                            and search._elapsed(t_start) > search.max_seconds):
                log.info("the race's budget is spent")
                return
            targets = race_targets(estimates(search))
            if not targets:
                log.info("the race is over: the best is separated from the leaders")
                return
            n_rep = sum(1 for r in search._records if r.kind == REPEAT)
            plan = []
            for i, arch in enumerate(targets[:max(1, min(int(left), workers))]):
                k = sum(1 for r in search._records if r.kind == REPEAT and r.arch == arch)
                plan.append({"arch": arch, "kind": REPEAT, "slot": n_rep + i,
                             "seed": search.seed + 1 + k})
            state["race_plan"] = plan
            state["phase"] = "race"
            rd.write_state(state)
        search._evaluate_extras(plan)
        state["race_plan"] = None
        rd.write_state(state)
