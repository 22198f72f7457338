"""Ensemblers: turn the winner of a search into a weighted ensemble artifact."""

from __future__ import annotations

import logging

import numpy as np
import torch

from prednas.params import Interval
from prednas.search.base import Ensembler
from prednas.search.registries import REGISTRIES, register_ensembler

__all__ = ["ENSEMBLERS", "ReplicaEnsembler"]

log = logging.getLogger(__name__)

ENSEMBLERS = REGISTRIES["ensembler"]
_register = register_ensembler


@_register("replicas")
class ReplicaEnsembler(Ensembler):
    """Retrain the winner (or each of the ``top_k`` best distinct architectures) ``replicas`` times
    from scratch with other seeds and data order, and combine the replicas' probabilities with
    weights fitted on the validation split (:func:`prednas.ensemble.fit_weights`).

    The replicas are evaluations like any other: recorded in ``evaluations.jsonl`` (``kind`` =
    ``"replica"``) as they complete, so a resumed run does not retrain them. Trainings the race
    made of an architecture on other seeds (``"repeat"`` records, :mod:`prednas.search.racing`)
    are replicas already: they are reused, and only the missing ones are trained. The artifact is
    ``RUN_DIR/ensemble.pt`` (load it with :func:`prednas.ensemble.load`).

    Args:
        replicas: trainings per architecture.
        top_k: number of distinct architectures (best first).
        include_winner: the winner's own evaluation is a member too (its weights as evaluated),
            so ``replicas`` extra trainings give ``replicas + 1`` members.
    """

    _parameter_constraints = {"replicas": [Interval(int, 1, None)],
                              "top_k": [Interval(int, 1, None)],
                              "include_winner": ["boolean"]}

    def __init__(self, replicas: int = 2, top_k: int = 1, include_winner: bool = False):
        self.replicas = replicas
        self.top_k = top_k
        self.include_winner = include_winner

    def build(self, context, winner):
        from prednas.ensemble import Ensemble, fit_weights

        task = context.task
        if task is None:
            log.info("no task (oracle mode): nothing to ensemble")
            return None
        space = context.space
        # the winner (named by its noise-aware estimate), then the next best distinct ones
        others = [r.arch for r in context.history().top(self.top_k + 1) if r.arch != winner.arch]
        archs = [winner.arch, *others][:self.top_k]
        members, recs = [], []

        def add(rec):
            model = space.build(space.parse(rec.arch), task.num_classes, task.input_shape)
            model.load_state_dict(torch.load(rec.get("weights"), map_location="cpu",
                                             weights_only=True))
            members.append(model.eval())
            recs.append(rec)

        if self.include_winner and winner.ok and winner.get("weights"):
            add(winner)
        # the race's trainings of an architecture on other seeds are replicas already
        reused = {a: [r for r in context.get_records(kind="repeat")
                      if r.arch == a and r.ok and r.get("weights")][:self.replicas]
                  for a in archs}
        for a in archs:
            for rec in reused[a]:
                add(rec)
        # every other replica at once: the run's executor trains them in parallel
        jobs = [{"arch": arch, "kind": "replica", "slot": j * self.replicas + i,
                 "seed": context.seed + 1000 * (i + 1)}
                for j, arch in enumerate(archs) for i in range(len(reused[arch]), self.replicas)]
        for job, rec in zip(jobs, context.evaluate_many(jobs)):
            if not rec.ok or not rec.get("weights"):
                log.warning("replica (seed %d) of %s failed: %s", job["seed"], job["arch"],
                            rec.reason)
                continue
            add(rec)
        if not members:
            return {"status": "failed", "reason": "every replica failed"}

        def probs(x):
            with torch.no_grad():
                return np.stack([torch.softmax(m(x), 1).numpy() for m in members])

        if len(task.y_val) == 0:  # Search refuses such a task; a strategy may not assume it
            return {"status": "failed", "reason": f"task {task.name!r} has no validation "
                    "examples to fit the ensemble's weights on"}
        pv = probs(task.x_val)
        finite = [i for i in range(len(members)) if np.isfinite(pv[i]).all()]
        if len(finite) < len(members):  # a diverged member (NaN outputs) would poison the mix
            for i in sorted(set(range(len(members))) - set(finite)):
                log.warning("ensemble member %s (seed %s) has non-finite outputs on the "
                            "validation split; left out", recs[i].arch, recs[i].seed)
            members, recs, pv = [members[i] for i in finite], [recs[i] for i in finite], pv[finite]
        if not members:
            return {"status": "failed",
                    "reason": "every member has non-finite outputs on the validation split"}
        pt = probs(task.x_test)
        w = fit_weights(pv, task.y_val.numpy())
        ens = Ensemble(members, w, meta={
            "space": space.name, "space_config": space.config(), "archs": [r.arch for r in recs],
            "num_classes": task.num_classes, "input_shape": list(task.input_shape),
            "task": task.name, "seeds": [r.seed for r in recs]})
        path = context.run_dir / "ensemble.pt"
        ens.save(path)
        yt = task.y_test.numpy()
        mix_t = np.tensordot(w, pt, axes=1)
        mix_v = np.tensordot(w, pv, axes=1)
        val_acc = float(100 * (mix_v.argmax(1) == task.y_val.numpy()).mean())
        test_acc = float(100 * (mix_t.argmax(1) == yt).mean())
        single = float(winner.get("test_acc", np.nan))
        return {"path": str(path), "archs": [r.arch for r in recs],
                "weights": [float(x) for x in w], "val_acc": val_acc, "test_acc": test_acc,
                "member_test_accs": [float(r.get("test_acc", np.nan)) for r in recs],
                "single_test_acc": single, "gain": test_acc - single,
                "params": int(sum(r.get("params", 0) for r in recs))}
