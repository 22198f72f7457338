"""Warm-up of a weight-sharing supernet, then cheap scores for any sub-architecture.

>>> import prednas
>>> scorer = prednas.warmup("nb201", task, fraction=0.1, steps=200, C=8, N=2)
>>> scorer.score(["|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|...|"])   # val accuracy, %

The warm-up trains the supernet of ``space`` (``space.build_supernet``) for a few hundred steps on a
random ``fraction`` of the task's training split, sampling one architecture uniformly at random per
step (single-path one-shot training, SPOS: Guo et al., ECCV 2020). A sub-architecture is then scored
with the weights it inherits: its batch-norm statistics are recalibrated on a fixed set of training
examples, and it is evaluated on a fixed held-out validation batch. These scores serve as predictor
features and, where no benchmark exists, as cheap labels (the sub-one-shot idea of SiGeo).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable, Sequence

import numpy as np
import torch
from torch import nn

import spaces as _spaces
from prednas import tasks as _tasks
from prednas.errors import PredNASError, check_param
from prednas.utils import make_rng, resolve_device, torch_seed

__all__ = ["warmup", "SupernetScorer", "SupernetScores", "WarmupDiverged"]

log = logging.getLogger(__name__)


class WarmupDiverged(PredNASError):
    """The supernet warm-up produced non-finite losses (which step, which loss in the message)."""


class SupernetScorer:
    """Scores sub-architectures of a warmed-up supernet by their inherited weights.

    Every architecture is scored once (results are cached by its string): BN running statistics
    are reset and re-estimated on ``calib`` (training examples, run in train mode without
    gradients), then the sub-network is evaluated in eval mode on ``val``.

    Attributes:
        supernet: the trained supernet (``forward(x, arch)``, ``subnet(arch)``).
        space: the search space.
        seconds: wall time of the warm-up (building and training the supernet).
        scoring_seconds: wall time spent scoring so far; ``scored`` archs were scored.
        loss_curve: training loss of the warm-up, averaged over blocks of steps.
        info: the warm-up's settings.
    """

    feature_names: tuple[str, ...] = ("supernet_acc", "supernet_neg_loss")

    def __init__(self, supernet: nn.Module, space, calib: tuple[torch.Tensor, torch.Tensor],
                 val: tuple[torch.Tensor, torch.Tensor], *, device: str | torch.device = "cpu",
                 seconds: float = 0.0, batch_size: int = 256, loss_curve: Sequence[float] = (),
                 info: dict | None = None):
        self.supernet = supernet
        self.space = _spaces.get(space)
        self.device = torch.device(device)
        self.calib = (calib[0].to(self.device), calib[1].to(self.device))
        self.val = (val[0].to(self.device), val[1].to(self.device))
        self.seconds = float(seconds)
        self.batch_size = int(batch_size)
        self.loss_curve = list(loss_curve)
        self.info = dict(info or {})
        self.scoring_seconds = 0.0
        self.scored = 0
        self._cache: dict[str, tuple[float, float]] = {}

    def __repr__(self) -> str:
        return (f"SupernetScorer(space={self.space.name!r}, seconds={self.seconds:.1f}, "
                f"calib={len(self.calib[1])}, val={len(self.val[1])}, cached={len(self._cache)})")

    @property
    def seconds_per_arch(self) -> float:
        """Mean scoring cost per architecture so far (``nan`` before any scoring)."""
        return self.scoring_seconds / self.scored if self.scored else math.nan

    @torch.no_grad()
    def _evaluate_one(self, arch) -> tuple[float, float]:
        net = self.supernet
        bs = self.batch_size
        xc, _ = self.calib
        with net.recalibrating():
            net.train()
            for i in range(0, len(xc), bs):
                net(xc[i:i + bs], arch)
        net.eval()
        xv, yv = self.val
        correct, loss_sum = 0, 0.0
        for i in range(0, len(yv), bs):
            out = net(xv[i:i + bs], arch)
            loss_sum += float(nn.functional.cross_entropy(out, yv[i:i + bs], reduction="sum"))
            correct += int((out.argmax(1) == yv[i:i + bs]).sum())
        n = max(1, len(yv))
        loss = loss_sum / n
        if not math.isfinite(loss):
            log.warning("supernet loss of %s is not finite", arch)
            return math.nan, math.nan
        return 100.0 * correct / n, -loss

    def features(self, archs: Iterable, progress: bool = False) -> np.ndarray:
        """``(n, 2)`` array: validation accuracy (%) and negative validation loss per arch."""
        archs = [self.space.coerce(a) for a in archs]
        keys = [str(a) for a in archs]
        todo = [(k, a) for k, a in dict(zip(keys, archs)).items() if k not in self._cache]
        if todo:
            bar = None
            if progress:
                from tqdm.auto import tqdm

                bar = tqdm(total=len(todo), desc="supernet scores", leave=False)
            start = time.perf_counter()
            was_training = self.supernet.training
            try:
                for k, a in todo:
                    self._cache[k] = self._evaluate_one(a)
                    if bar is not None:
                        bar.update(1)
            finally:
                self.supernet.train(was_training)
                if bar is not None:
                    bar.close()
            self.scoring_seconds += time.perf_counter() - start
            self.scored += len(todo)
        return np.array([self._cache[k] for k in keys], dtype=np.float64).reshape(len(keys), 2)

    def score(self, archs: Iterable, progress: bool = False) -> np.ndarray:
        """Validation accuracy (%) of each arch's inherited weights; higher is better."""
        return self.features(archs, progress)[:, 0]

    def score_loss(self, archs: Iterable, progress: bool = False) -> np.ndarray:
        """Negative validation cross-entropy of each arch's inherited weights; higher is better."""
        return self.features(archs, progress)[:, 1]

    __call__ = score

    def to_csv(self, archs: Iterable, path) -> None:
        """Score ``archs``; write ``arch,supernet_acc,supernet_neg_loss`` to ``path`` (atomic)."""
        archs = [self.space.coerce(a) for a in archs]
        SupernetScores(self.space, [str(a) for a in archs], self.features(archs)).to_csv(path)


class SupernetScores:
    """Supernet scores read back from a CSV (``arch,supernet_acc,supernet_neg_loss``).

    Offers the scorer's ``score`` / ``score_loss`` / ``features`` as lookups, so saved scores can
    stand in for a :class:`SupernetScorer` (e.g. as ``FeaturePipeline(supernet=...)``); an
    architecture that is not in the file scores ``nan``.
    """

    feature_names = SupernetScorer.feature_names

    def __init__(self, space, arch_strings: Sequence[str], values: np.ndarray):
        self.space = _spaces.get(space)
        self.arch_strings = [str(self.space.coerce(a)) for a in arch_strings]
        self.values = np.asarray(values, dtype=np.float64).reshape(len(self.arch_strings), 2)
        self._index = {a: i for i, a in enumerate(self.arch_strings)}

    def __len__(self) -> int:
        return len(self.arch_strings)

    def __contains__(self, arch) -> bool:
        return str(self.space.coerce(arch)) in self._index

    @classmethod
    def from_csv(cls, path, space="nb201") -> SupernetScores:
        import csv

        from prednas.errors import DataNotFoundError

        try:
            with open(path, newline="") as f:
                rows = list(csv.DictReader(f))
        except FileNotFoundError:
            raise DataNotFoundError(f"supernet scores file {str(path)!r} not found") from None
        need = ("arch",) + cls.feature_names
        if rows and not all(k in rows[0] for k in need):
            raise DataNotFoundError(f"{str(path)!r} lacks columns {list(need)}; "
                                    f"has {list(rows[0])}")
        values = np.array([[float(r[k]) for k in cls.feature_names] for r in rows])
        return cls(space, [r["arch"] for r in rows], values.reshape(-1, 2))

    def to_csv(self, path) -> None:
        from prednas.utils import atomic_write_text

        lines = [",".join(("arch",) + self.feature_names)]
        lines += [f"{a},{v[0]:.6g},{v[1]:.6g}" for a, v in zip(self.arch_strings, self.values)]
        atomic_write_text(path, "\n".join(lines) + "\n")

    def features(self, archs: Iterable, progress: bool = False) -> np.ndarray:
        keys = [str(self.space.coerce(a)) for a in archs]
        out = np.full((len(keys), 2), np.nan)
        for r, k in enumerate(keys):
            i = self._index.get(k)
            if i is not None:
                out[r] = self.values[i]
        return out

    def score(self, archs: Iterable, progress: bool = False) -> np.ndarray:
        return self.features(archs)[:, 0]

    def score_loss(self, archs: Iterable, progress: bool = False) -> np.ndarray:
        return self.features(archs)[:, 1]


def warmup(space, task, fraction: float = 0.1, steps: int = 200, batch_size: int = 64,
           seed: int = 0, device: str | torch.device = "auto", *, lr: float = 3e-3,
           weight_decay: float = 1e-4, calib_size: int = 256, val_size: int = 512,
           max_seconds: float | None = None, progress: bool = True,
           **supernet_kwargs) -> SupernetScorer:
    """Warm up the supernet of ``space`` on a fraction of ``task`` and return a scorer.

    Args:
        space: a space or its name (``"nb201"``, ``"blocks1d"``).
        task: a :class:`prednas.tasks.Task` or a task name.
        fraction: share of the training split used (``task.subset(fraction, seed)``), in (0, 1].
        steps: optimiser steps, one uniformly sampled architecture and one batch each.
        batch_size: examples per step.
        seed: seeds the supernet's initialisation, the subset, the batches and the architecture
            sampling; the global torch and NumPy RNGs are left as they were.
        device: ``"auto"`` picks CUDA when present.
        lr, weight_decay: AdamW with a cosine schedule and gradient clipping at 5.
        calib_size: training examples (from the subset) for BN recalibration before scoring.
        val_size: held-out validation examples the scores are measured on.
        max_seconds: stop the warm-up early when its wall time passes this.
        progress: show a progress bar.
        **supernet_kwargs: passed to ``space.build_supernet`` (e.g. ``C=8, N=2`` for nb201).

    Returns:
        A :class:`SupernetScorer`; ``.seconds`` is the warm-up's cost.
    """
    space = _spaces.get(space)
    task = _tasks.get(task)
    check_param("warmup", "fraction", fraction, kind=(float, int), low=0.0, high=1.0, low_open=True)
    check_param("warmup", "steps", steps, kind=int, low=0)
    check_param("warmup", "batch_size", batch_size, kind=int, low=1)
    check_param("warmup", "calib_size", calib_size, kind=int, low=1)
    check_param("warmup", "val_size", val_size, kind=int, low=1)
    check_param("warmup", "lr", lr, kind=(float, int), low=0.0, low_open=True)
    dev = resolve_device(device)
    start = time.perf_counter()
    sub = task.subset(fraction, seed=seed)
    rng = make_rng(seed)
    gen = torch.Generator().manual_seed(int(seed))
    n = len(sub.y_train)
    losses: list[float] = []
    with torch_seed(seed, dev):
        supernet = space.build_supernet(task.num_classes, task.input_shape, **supernet_kwargs)
    supernet.to(dev)
    x_train, y_train = sub.x_train.to(dev), sub.y_train.to(dev)
    params = [p for p in supernet.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, steps))
    loss_fn = nn.CrossEntropyLoss()
    bar = None
    if progress and steps:
        from tqdm.auto import tqdm

        bar = tqdm(total=steps, desc=f"warm-up {space.name} supernet", leave=False)
    supernet.train()
    perm, pos, skipped = torch.randperm(n, generator=gen), 0, 0
    block: list[torch.Tensor] = []
    first_bad: tuple[int, float] | None = None
    try:
        for step in range(steps):
            if pos + batch_size > n and pos > 0:
                perm, pos = torch.randperm(n, generator=gen), 0
            idx = perm[pos:pos + batch_size].to(dev)
            pos += batch_size
            arch = space.sample(rng)
            loss = loss_fn(supernet(x_train[idx], arch), y_train[idx])
            opt.zero_grad(set_to_none=True)
            if not torch.isfinite(loss):
                skipped += 1
                if first_bad is None:
                    first_bad = (step, float(loss))
                if skipped > max(10, steps // 4):
                    raise WarmupDiverged(
                        f"the supernet warm-up diverged: {skipped} non-finite losses by step "
                        f"{step} (the first at step {first_bad[0]}: loss {first_bad[1]})")
                sched.step()
                continue
            loss.backward()
            nn.utils.clip_grad_norm_(params, 5.0)
            opt.step()
            sched.step()
            block.append(loss.detach())
            if len(block) == 20 or step == steps - 1:
                losses.append(float(torch.stack(block).mean()))
                block = []
                if bar is not None:
                    bar.set_postfix(loss=f"{losses[-1]:.3f}")
            if bar is not None:
                bar.update(1)
            if max_seconds is not None and time.perf_counter() - start > max_seconds:
                log.info("warm-up stopped after %d steps (max_seconds=%s)", step + 1, max_seconds)
                break
    finally:
        if bar is not None:
            bar.close()
    if block:
        losses.append(float(torch.stack(block).mean()))
    if skipped:
        log.warning("warm-up skipped %d of %d steps with a non-finite loss", skipped, steps)
    seconds = time.perf_counter() - start
    log.info("warmed up the %s supernet for %d steps on %d examples in %.1f s (last loss %.3f)",
             space.name, steps, n, seconds, losses[-1] if losses else math.nan)
    calib = sub.batch(min(calib_size, n), split="train", seed=seed)
    val = task.batch(min(val_size, len(task.y_val)), split="val", seed=seed)
    info = {"space": space.name, "task": task.name, "fraction": fraction, "steps": steps,
            "batch_size": batch_size, "seed": seed, "lr": lr, "weight_decay": weight_decay,
            "train_examples": n, "supernet_kwargs": dict(supernet_kwargs)}
    return SupernetScorer(supernet, space, calib, val, device=dev, seconds=seconds,
                          batch_size=max(batch_size, 256), loss_curve=losses, info=info)
