"""The final protocol: a run's architectures retrained on fresh seeds with the run's own recipe.

A search picks its winner from noisy trainings, so the winner's own numbers are biased upward (the
luckier a training, the likelier it wins). What a search hands a user is judged instead by
retraining its pick on seeds the search never saw, with the same recipe, task and splits, and
taking the mean test accuracy (:func:`retrain`, :func:`score`). The benchmark scripts compare
methods, and a pick with its baseline, this way.

>>> rows = retrain("runs/search-1", ["conv3:32|gru:16"])          # seeds 1000-1004
>>> score(rows["conv3:32|gru:16"])
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from prednas.errors import InvalidParameterError, RunDirectoryError

__all__ = ["FRESH_SEEDS", "retrain", "score", "paired_interval"]

#: the seeds of the final protocol: never used by a search (whose seeds start at 0)
FRESH_SEEDS = (1000, 1001, 1002, 1003, 1004)


def _recipe_of(run_dir) -> tuple[Any, Any, dict]:
    """``(space, task, evaluator params)`` of a training run."""
    import spaces
    from prednas import tasks
    from prednas.commands import _model
    from prednas.search.base import decode_param
    from prednas.search.rundir import RunDir

    cfg = RunDir.open(run_dir, lock=False)[1]["config"]
    if cfg.get("mode") != "train":
        raise InvalidParameterError(
            f"the final protocol retrains a training run's architectures; {os.fspath(run_dir)} "
            f"is a {cfg.get('mode')!r} run (its evaluations were looked up or simulated)")
    space = _model.space_of_run(run_dir)  # a --model run's space, regenerated
    if space is None:
        space = spaces.restore(cfg["space"], cfg.get("space_config"), None,
                               error=RunDirectoryError, where=f"retrain({os.fspath(run_dir)})",
                               how="a run of a registered space")
    task = tasks.get(cfg["task"], **(decode_param(cfg.get("task_options")) or {}))
    return space, task, dict(cfg["strategies"]["evaluator"]["params"])


def retrain(run_dir, archs: Iterable[str], seeds: Sequence[int] = FRESH_SEEDS, *,
            done: Iterable[dict] = (), on_result: Callable[[dict], None] | None = None,
            device: str = "cpu") -> dict[str, list[dict]]:
    """Train each of ``archs`` of the run in ``run_dir`` once per seed of ``seeds`` with the
    run's recipe (its evaluator's steps or epochs, batch size, learning rate, weight decay and
    dropout; its task and splits).

    Args:
        done: rows already computed (``{"arch", "seed", ...}``, e.g. read back from a log): not
            trained again.
        on_result: called with each new row as it finishes (append it to a log: an interrupted
            protocol resumes from ``done``).
        device: where to train (``"cpu"`` by default: one thread's time is what the recipes were
            measured with).

    Returns:
        ``{arch: [row per seed]}``, each row ``{"arch", "seed", "status", "test_acc",
        "val_acc", "params", "steps", "seconds"}``.
    """
    from prednas.training import train

    have = {(r["arch"], int(r["seed"])): r for r in done}
    out: dict[str, list[dict]] = {}
    recipe = None
    for arch in dict.fromkeys(str(a) for a in archs):
        for s in seeds:
            row = have.get((arch, int(s)))
            if row is None:
                if recipe is None:
                    recipe = _recipe_of(run_dir)
                space, task, p = recipe
                rec = train(space, arch, task, steps=p.get("steps"), epochs=p.get("epochs"),
                            batch_size=p["batch_size"], lr=p["lr"],
                            weight_decay=p["weight_decay"], seed=int(s), device=device,
                            build_kwargs=(None if p.get("dropout") is None
                                          else {"dropout": p["dropout"]}),
                            keep_model=False)
                row = {"arch": arch, "seed": int(s), "status": rec.status,
                       "test_acc": rec.test_acc, "val_acc": rec.val_acc, "params": rec.params,
                       "steps": rec.steps, "seconds": rec.wall_time}
                if on_result is not None:
                    on_result(row)
            out.setdefault(arch, []).append(row)
    return out


def score(rows: Sequence[dict]) -> float:
    """The final protocol's score: the mean test accuracy of the trainings (NaN if one failed)."""
    vals = [float(r["test_acc"]) if r.get("status") == "ok" else np.nan for r in rows]
    return float(np.mean(vals)) if vals else float("nan")


def paired_interval(diffs: Sequence[float], *, resamples: int = 10000,
                    level: float = 0.9) -> tuple[float, float]:
    """The bootstrap interval (``level``, percentile) of the mean of paired differences between
    two methods' scores, one per search seed (resampled with a fixed generator, so that a report
    is reproducible); NaN for fewer than two differences, whose resamples could only repeat them."""
    d = np.asarray(diffs, float)
    if len(d) < 2:
        return float("nan"), float("nan")
    means = np.random.default_rng(0).choice(d, size=(resamples, len(d)), replace=True).mean(axis=1)
    tail = (1.0 - level) / 2.0
    return float(np.quantile(means, tail)), float(np.quantile(means, 1.0 - tail))
