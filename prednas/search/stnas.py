"""The ST-NAS mutator: candidates drawn from an architecture distribution learned on a supernet.

``Search(space, mutator=STNASMutator(...), filter=NoFilter(), ...)`` trains a supernet and its
architecture logits once (:func:`prednas.stnas.train`), then evaluates through the normal engine
the distribution's argmax first and then its most probable samples.
"""

from __future__ import annotations

import logging
from pathlib import Path

from prednas._choices import SAMPLINGS
from prednas.params import Interval, Options
from prednas.search.base import Mutator
from prednas.search.registries import register_mutator

__all__ = ["STNASMutator", "STATE_DIR"]

log = logging.getLogger(__name__)

#: sub-directory of the run directory holding the ST-NAS state
STATE_DIR = "stnas"


@register_mutator("stnas")
class STNASMutator(Mutator):
    """Proposes the argmax of an ST-NAS distribution, then its most probable samples.

    ``setup`` warms up the space's supernet on the task and learns the architecture distribution
    (straight-through NAS, :mod:`prednas.stnas`), once: the state is saved in
    ``<run_dir>/stnas`` (``stnas-state.pt``, ``distribution.json``) and a resumed search loads it
    instead of training again. Each round proposes, among the architectures not yet evaluated,
    the argmax (while it is new) and then ``samples`` draws from the distribution ordered by
    decreasing probability (``Candidate.scores["stnas_log_prob"]``); with :class:`NoFilter` the
    engine evaluates them in that order.

    The supernet trains on the search's task; in oracle mode (a benchmark answers the
    evaluations, so the search has no task) give the task here, by name, e.g.
    ``STNASMutator(task="cifar10", task_options={"path": ...})``.

    Args:
        samples: candidates proposed per round.
        warmup_steps: uniform single-path warm-up steps.
        search_steps: alternating architecture/weight steps of ST-NAS.
        fraction: share of the task's training split used.
        batch_size: examples per step.
        alpha_lr: Adam learning rate of the architecture logits.
        st_terms: ``"all"`` (the paper's estimator) or ``"sampled"`` (see
            :func:`prednas.stnas.st_mix`).
        task, task_options: the task (name and loader options) the supernet trains on; default:
            the search's task.
        supernet: keyword arguments of ``space.build_supernet`` (e.g. ``{"C": 8, "N": 2}``).
        sampling, paths_per_step: the warm-up's path sampling (``"fair"`` with 5 paths trains
            every nb201 op of every edge each step).
        resolution: pool image tasks to at most this side (0: keep them).
    """

    _parameter_constraints = {"samples": [Interval(int, 1, None)],
                              "warmup_steps": [Interval(int, 1, None)],
                              "search_steps": [Interval(int, 1, None)],
                              "fraction": [Interval(float, 0, 1, "right")],
                              "batch_size": [Interval(int, 1, None)],
                              "alpha_lr": [Interval(float, 0, None, "neither")],
                              "st_terms": [Options("all", "sampled")],
                              "task": [None, str],
                              "task_options": [None, "dict"],
                              "supernet": [None, "dict"],
                              "sampling": [Options(*SAMPLINGS)],
                              "paths_per_step": [Interval(int, 1, None)],
                              "resolution": [Interval(int, 0, None)]}

    def __init__(self, samples: int = 10, warmup_steps: int = 200, search_steps: int = 200,
                 fraction: float = 0.1, batch_size: int = 64, alpha_lr: float = 0.05,
                 st_terms: str = "all", task: str | None = None, task_options: dict | None = None,
                 supernet: dict | None = None, sampling: str = "uniform",
                 paths_per_step: int = 1, resolution: int = 0):
        self.samples = samples
        self.warmup_steps = warmup_steps
        self.search_steps = search_steps
        self.fraction = fraction
        self.batch_size = batch_size
        self.alpha_lr = alpha_lr
        self.st_terms = st_terms
        self.task = task
        self.task_options = task_options
        self.supernet = supernet
        self.sampling = sampling
        self.paths_per_step = paths_per_step
        self.resolution = resolution

    def pool_size(self) -> int:
        return self.samples

    def setup(self, context) -> None:
        from prednas import stnas, tasks
        from prednas.errors import InvalidParameterError
        from prednas.search.rundir import STATE

        if self.task is not None:
            task = tasks.get(self.task, **(self.task_options or {}))
        elif context.task is not None:
            task = context.task
        else:
            raise InvalidParameterError(
                "STNASMutator needs a task to train its supernet on: search with task=..., or "
                "in oracle mode give STNASMutator(task=<name>, task_options={...}) (on the "
                "command line: --task beside --bench)")
        run_dir = context.run_dir
        self.state_dir_ = Path(run_dir) / STATE_DIR if run_dir is not None else None
        # a new run's directory must stay empty until the engine creates it (after setup): train
        # in memory and save on the first proposal; a resumed run's directory is ours already
        resumed = run_dir is not None and (Path(run_dir) / STATE).is_file()
        self.result_ = stnas.train(
            context.space, task, warmup_steps=self.warmup_steps, search_steps=self.search_steps,
            fraction=self.fraction, batch_size=self.batch_size, seed=context.seed,
            device=context.device, alpha_lr=self.alpha_lr, st_terms=self.st_terms,
            sampling=self.sampling, paths_per_step=self.paths_per_step,
            resolution=self.resolution,
            run_dir=self.state_dir_ if resumed else None, progress=False,
            **(self.supernet or {}))
        self.saved_ = resumed
        self.distribution_ = self.result_.distribution
        log.info("ST-NAS: %s (warm-up %.1f s, search %.1f s)", self.distribution_,
                 self.result_.warmup_seconds, self.result_.search_seconds)

    def _save(self) -> None:
        if not self.saved_ and self.state_dir_ is not None and self.state_dir_.parent.is_dir():
            self.result_.save(self.state_dir_)
            self.saved_ = True

    def propose(self, space, history, rng, *, max_params=None, param_counter=None):
        from prednas.search.mutators import _Pool

        self._save()
        dist = self.distribution_
        pool = _Pool(space, history, max_params, param_counter)
        pool.add(dist.argmax())
        unseen: dict[str, object] = {}
        tries = 0
        while len(unseen) < 2 * self.samples and tries < 50 * self.samples:
            for arch in dist.sample(self.samples, rng):
                key = str(space.canonical(arch))
                if key not in history.seen and key not in unseen:
                    unseen[key] = arch
            tries += self.samples
        for arch in sorted(unseen.values(), key=lambda a: -dist.log_prob(a)):
            if len(pool.items) >= self.samples:
                break
            pool.add(arch)
        for c in pool.items:
            c.scores["stnas_log_prob"] = dist.log_prob(c.arch)
        return pool.items[:self.samples]

