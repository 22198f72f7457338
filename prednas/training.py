"""Train one architecture on one task and return a record of what happened."""

from __future__ import annotations

import logging
import math
import os
import statistics
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

import spaces as _spaces
from prednas import tasks as _tasks
from prednas.errors import CandidateError, InvalidParameterError, check_param
from prednas.utils import DEFAULT_LATENCY_BATCH, resolve_device, torch_seed

__all__ = ["train", "TrainRecord", "evaluate", "count_flops", "inherit_weights",
           "measure_latency", "latency_stats", "DEFAULT_LATENCY_BATCH"]

log = logging.getLogger(__name__)


@dataclass
class TrainRecord:
    """What one training run produced. Accuracies are percentages; ``nan`` when it failed.

    ``status`` is ``"ok"``, ``"diverged"`` (non-finite loss) or ``"oom"``; ``reason`` says why.
    ``model`` (not serialised) holds the trained network when the run succeeded.

    ``curve`` (with ``curve_every``) is the learning curve: parallel lists ``step``, ``val_acc``
    and ``val_loss`` (on a fixed validation subset), ``train_loss`` (the mean training loss since
    the previous point: SoTL-E) and ``seconds`` (wall time since the start, the points' own
    evaluations included). ``curve_seconds`` is the time those evaluations took and
    ``eval_seconds`` the time of the final evaluation on the full splits (both in ``wall_time``).
    ``cpu_time`` is the process's CPU time over the same span as ``wall_time`` (with one torch
    thread, the time the run would take on an idle core: robust to other processes' load), and
    the curve's ``cpu`` list the same at each point.
    """

    arch: str
    space: str
    task: str
    seed: int
    val_acc: float = math.nan
    test_acc: float = math.nan
    val_loss: float = math.nan
    loss_curve: list[float] = field(default_factory=list)
    params: int = 0
    flops: int = 0
    wall_time: float = 0.0
    steps: int = 0
    status: str = "ok"
    reason: str = ""
    device: str = "cpu"
    inherited: int = 0
    curve: dict[str, list[float]] = field(default_factory=dict)
    curve_seconds: float = 0.0
    eval_seconds: float = 0.0
    cpu_time: float = 0.0
    paused: bool = False
    model: nn.Module | None = field(default=None, repr=False, compare=False)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self) if self.model is None else asdict(TrainRecord(**{
            **{k: getattr(self, k) for k in self.__dataclass_fields__ if k != "model"}}))
        d.pop("model", None)
        return d


def count_flops(model: nn.Module, input_shape, device: torch.device | str = "cpu") -> int:
    """Forward FLOPs for one example, counted by ``torch.utils.flop_counter`` (2 per MAC)."""
    from torch.utils.flop_counter import FlopCounterMode

    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(torch.zeros(1, *input_shape, device=device))
        return int(counter.get_total_flops())
    finally:
        model.train(was_training)


def latency_stats(model, x: torch.Tensor, *, warmup: int = 5, repeats: int = 30,
                  max_seconds: float | None = None, threads: int | None = None) -> dict[str, Any]:
    """Median wall time (ms) of ``model(x)``: eval mode, no gradients, after ``warmup`` passes.

    ``model`` is any callable on a tensor (a module, or an ONNX session wrapper); on CUDA the
    device is synchronised around each pass. ``max_seconds`` stops the timed passes early (after
    at least 5) on a slow model; ``threads`` sets torch's CPU threads for the measurement (one
    thread makes figures comparable across machines and less hostage to other processes).

    Returns ``{"ms", "batch", "repeats", "warmup"}``.
    """
    check_param("latency_stats", "repeats", repeats, low=1)
    check_param("latency_stats", "warmup", warmup, low=0)
    cuda = x.device.type == "cuda"
    if isinstance(model, nn.Module):
        model.eval()
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    times: list[float] = []
    try:
        with torch.no_grad():
            for _ in range(warmup):
                model(x)
            stop = None if max_seconds is None else time.perf_counter() + max_seconds
            for _ in range(repeats):
                if cuda:
                    torch.cuda.synchronize(x.device)
                t = time.perf_counter()
                model(x)
                if cuda:
                    torch.cuda.synchronize(x.device)
                times.append((time.perf_counter() - t) * 1000.0)
                if stop is not None and len(times) >= 5 and time.perf_counter() > stop:
                    break
    finally:
        torch.set_num_threads(before)
    return {"ms": float(statistics.median(times)), "batch": int(x.shape[0]),
            "repeats": len(times), "warmup": warmup}


def measure_latency(model: nn.Module, input_shape, repeats: int = 30, warmup: int = 5,
                    device: torch.device | str = "cpu", batch: int = 1) -> float:
    """Median wall time (ms) of one forward pass of ``batch`` zero inputs of ``input_shape`` on
    ``device`` (see :func:`latency_stats`)."""
    check_param("measure_latency", "batch", batch, low=1)
    model = model.to(device)
    x = torch.zeros(batch, *input_shape, device=device)
    return latency_stats(model, x, warmup=warmup, repeats=repeats)["ms"]


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1024,
             device: torch.device | str = "cpu") -> tuple[float, float]:
    """Accuracy (%) and mean cross-entropy of ``model`` on ``(x, y)`` in eval mode."""
    was_training = model.training
    model.eval()
    correct, loss_sum = 0, 0.0
    for i in range(0, len(y), batch_size):
        xb, yb = x[i:i + batch_size].to(device), y[i:i + batch_size].to(device)
        out = model(xb)
        loss_sum += float(nn.functional.cross_entropy(out, yb, reduction="sum"))
        correct += int((out.argmax(1) == yb).sum())
    model.train(was_training)
    n = max(1, len(y))
    return 100.0 * correct / n, loss_sum / n


def inherit_weights(model: nn.Module, parent_state: dict[str, torch.Tensor]) -> int:
    """Copy every parent tensor whose name and shape match (Model Search's weight transfer).

    Returns the number of tensors copied; the rest keep their fresh initialisation.
    """
    own = model.state_dict()
    copied = 0
    for name, tensor in parent_state.items():
        if name in own and own[name].shape == tensor.shape and own[name].dtype == tensor.dtype:
            own[name].copy_(tensor.to(own[name].device))
            copied += 1
    return copied


def train(space, arch, task, *, epochs: int | None = None, steps: int | None = None,
          batch_size: int = 128, lr: float = 3e-3, weight_decay: float = 1e-4,
          seed: int = 0, data_seed: int | None = None, device: str | torch.device = "auto",
          parent_state: dict[str, torch.Tensor] | None = None, max_seconds: float | None = None,
          label_smoothing: float = 0.0, build_kwargs: dict | None = None,
          keep_model: bool = True, progress: bool = False, curve_every: int | None = None,
          curve_size: int = 1000, stop_at: int | None = None,
          checkpoint: str | os.PathLike | None = None,
          resume: str | os.PathLike | None = None) -> TrainRecord:
    """Train ``arch`` of ``space`` on ``task`` with AdamW and a one-cycle schedule.

    Args:
        space: a :class:`spaces.Space` or its name.
        arch: an architecture of the space, or its string.
        task: a :class:`prednas.tasks.Task` or a task name.
        epochs: passes over the training split (default 20 when ``steps`` is not given).
        steps: optimiser steps instead of epochs.
        batch_size, lr, weight_decay, label_smoothing: the recipe.
        seed: initialisation seed; ``data_seed`` (default ``seed``) orders the batches.
        device: ``"auto"`` picks CUDA when present.
        parent_state: a parent's ``state_dict`` to inherit matching weights from.
        max_seconds: stop training early when the wall time passes this.
        build_kwargs: extra arguments for ``space.build``.
        keep_model: keep the trained model (on CPU) in ``record.model``.
        progress: show a progress bar.
        curve_every: record a learning-curve point every this many steps and at the last step
            (``record.curve``); ``None`` records none.
        curve_size: the curve's validation subset: the first ``curve_size`` examples of the
            validation split (final metrics always use the whole splits).
        stop_at: a partial training: stop after this many of the schedule's steps (the
            learning-rate schedule is still that of the whole training) and return a record
            with ``paused=True`` whose ``val_acc`` and ``val_loss`` are the curve's last point
            (no test accuracy); ``checkpoint`` saves what continuing needs.
        checkpoint: where a paused training saves its state (weights, optimiser, schedule,
            random streams, position in the data, curve so far; a ``torch.save`` file of
            tensors and numbers that loads with ``weights_only=True``).
        resume: a checkpoint to continue from (same architecture, task and recipe): the
            continued training is the one that was never paused. The record's times and curve
            include the part before the pause.

    Returns:
        A :class:`TrainRecord`. Divergence or out-of-memory gives ``status != "ok"`` rather than
        an exception, so a search can record the failure and go on.
    """
    space = _spaces.get(space)
    arch = space.coerce(arch)
    task = _tasks.get(task)
    space.check_input_shape(task.input_shape, task=task.name)
    check_param("train", "batch_size", batch_size, low=1)
    check_param("train", "lr", lr, kind=(float, int), low=0, low_open=True)
    check_param("train", "weight_decay", weight_decay, kind=(float, int), low=0)
    if steps is not None:
        check_param("train", "steps", steps, low=1)
    if epochs is not None:
        check_param("train", "epochs", epochs, low=1)
    if curve_every is not None:
        check_param("train", "curve_every", curve_every, low=1)
    check_param("train", "curve_size", curve_size, low=1)
    if stop_at is not None:
        check_param("train", "stop_at", stop_at, low=1)
    dev = resolve_device(device)
    n = len(task.y_train)
    if n == 0:
        raise InvalidParameterError(
            f"task {task.name!r} has an empty training split (0 examples); training needs at "
            "least one")
    per_epoch = math.ceil(n / batch_size)
    total = steps if steps is not None else (epochs or 20) * per_epoch
    rec = TrainRecord(str(arch), space.name, task.name, int(seed), device=str(dev))
    start, cpu_start = time.perf_counter(), time.process_time()
    with torch_seed(seed, dev):
        model = space.build(arch, task.num_classes, task.input_shape, **(build_kwargs or {}))
    rec.params = sum(p.numel() for p in model.parameters())
    if not any(p.requires_grad for p in model.parameters()):
        raise CandidateError(f"{arch} has no trainable parameter (none, or every one frozen with "
                             "requires_grad=False): there is nothing to train")
    try:
        rec.flops = count_flops(model, task.input_shape)
    except Exception as exc:  # FLOP counting is informative only
        log.warning("could not count FLOPs of %s: %s", arch, exc)
    if parent_state is not None:
        rec.inherited = inherit_weights(model, parent_state)
    try:
        model.to(dev)
        x_train, y_train = task.x_train.to(dev), task.y_train.to(dev)
    except torch.cuda.OutOfMemoryError as exc:  # as in training: recorded, not raised
        rec.status, rec.reason = "oom", f"CUDA out of memory: {str(exc).splitlines()[0]}"
        return rec
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=total,
                                                pct_start=0.15 if parent_state is None else 0.05)
    gen = torch.Generator().manual_seed(int(seed if data_seed is None else data_seed))
    saved = None
    if resume is not None:
        saved = _load_checkpoint(resume, rec, total)
        model.load_state_dict(saved["model"])
        opt.load_state_dict(saved["optimizer"])
        sched.load_state_dict(saved["scheduler"])
        gen.set_state(saved["data_rng"])
        rec.loss_curve = list(saved["loss_curve"])
        start -= float(saved["seconds"])
        cpu_start -= float(saved["cpu"])
        rec.curve_seconds = float(saved["curve_seconds"])
    if stop_at is not None and stop_at >= total:
        stop_at = None  # the whole training
    loss_fn = nn.CrossEntropyLoss(label_smoothing=label_smoothing)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, desc=f"train {arch}"[:60], leave=False)
    curve = None if curve_every is None else _Curve(rec, task, curve_size, dev, start, cpu_start)
    if curve is not None and saved is not None and saved.get("curve"):
        rec.curve = {k: list(v) for k, v in saved["curve"].items()}
    # stochastic layers (dropout) draw from a seeded stream too: a training is reproducible
    with torch_seed(int(seed) + 1, dev):
        model.train()
        step, pos = 0, 0
        if saved is not None:
            torch.set_rng_state(saved["torch_rng"])
            if dev.type == "cuda" and saved.get("cuda_rng") is not None:
                # the GPU's stream (dropout there) too; a checkpoint paused on another kind of
                # device continues from its CPU stream alone
                torch.cuda.set_rng_state(saved["cuda_rng"], dev)
            step, pos = int(saved["step"]), int(saved["pos"])
        try:
            while step < total:
                epoch_rng = gen.get_state()
                perm = torch.randperm(n, generator=gen).to(dev)
                loss_sum, count = torch.zeros((), device=dev), 0
                if pos:  # resumed mid-epoch: the epoch's own order and running loss
                    loss_sum += float(saved["epoch_loss"])
                    count = int(saved["epoch_count"])
                for i in range(pos, n, batch_size):
                    idx = perm[i:i + batch_size]
                    loss = loss_fn(model(x_train[idx]), y_train[idx])
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    nn.utils.clip_grad_norm_(model.parameters(), 5.0)
                    opt.step()
                    sched.step()
                    loss_sum += loss.detach()
                    count += 1
                    step += 1
                    if curve is not None:
                        curve.add_loss(loss.detach())
                    if bar is not None:
                        bar.update(1)
                    last = step >= total or bool(
                        max_seconds and time.perf_counter() - start > max_seconds)
                    pause = stop_at is not None and step >= stop_at and not last
                    if curve is not None and (step % curve_every == 0 or last or pause):
                        if not curve.point(model, step):
                            raise _Stop
                    if pause:
                        rec.paused = True
                        if checkpoint is not None:
                            _save_checkpoint(checkpoint, rec, model, opt, sched, epoch_rng,
                                             step, i + batch_size, loss_sum, count,
                                             time.perf_counter() - start,
                                             time.process_time() - cpu_start)
                        raise _Stop
                    if last:
                        total = step
                        break
                pos = 0
                mean_loss = float(loss_sum) / max(1, count)  # one host sync per epoch
                if not math.isfinite(mean_loss):
                    rec.status = "diverged"
                    rec.reason = f"non-finite training loss ({mean_loss}) by step {step}"
                    raise _Stop
                rec.loss_curve.append(mean_loss)
        except _Stop:
            pass
        except torch.cuda.OutOfMemoryError as exc:
            rec.status, rec.reason = "oom", f"CUDA out of memory: {str(exc).splitlines()[0]}"
        finally:
            if bar is not None:
                bar.close()
    rec.steps = step
    if rec.ok and rec.paused:  # a partial training answers with its curve's last point
        if rec.curve.get("val_acc"):
            rec.val_acc, rec.val_loss = rec.curve["val_acc"][-1], rec.curve["val_loss"][-1]
        else:
            rec.val_acc, rec.val_loss = evaluate(model, task.x_val[:curve_size],
                                                 task.y_val[:curve_size], device=dev)
        if keep_model:
            rec.model = model.cpu()
    elif rec.ok:
        t_eval = time.perf_counter()
        rec.val_acc, rec.val_loss = evaluate(model, task.x_val, task.y_val, device=dev)
        rec.test_acc, _ = evaluate(model, task.x_test, task.y_test, device=dev)
        rec.eval_seconds = time.perf_counter() - t_eval
        if keep_model:
            rec.model = model.cpu()
    rec.wall_time = time.perf_counter() - start
    rec.cpu_time = time.process_time() - cpu_start
    return rec


class _Stop(Exception):
    pass


#: the format of a paused training's checkpoint
CHECKPOINT_FORMAT = 1


def _save_checkpoint(path, rec: TrainRecord, model, opt, sched, epoch_rng, step: int, pos: int,
                     loss_sum, count: int, seconds: float, cpu: float) -> None:
    """Everything a paused training needs to continue as if never paused (atomically)."""
    from prednas.utils import atomic_path

    state = {"format": CHECKPOINT_FORMAT, "arch": rec.arch, "seed": rec.seed, "step": step,
             "pos": pos, "model": model.state_dict(), "optimizer": opt.state_dict(),
             "scheduler": sched.state_dict(), "data_rng": epoch_rng,
             "torch_rng": torch.get_rng_state(), "cuda_rng": _cuda_rng(model),
             "epoch_loss": float(loss_sum),
             "epoch_count": int(count), "loss_curve": list(rec.loss_curve),
             "curve": {k: list(v) for k, v in rec.curve.items()}, "seconds": float(seconds),
             "cpu": float(cpu), "curve_seconds": float(rec.curve_seconds)}
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def _cuda_rng(model) -> torch.Tensor | None:
    """The random stream of the GPU ``model`` trains on (``None`` on a CPU)."""
    p = next(model.parameters(), None)
    return None if p is None or p.device.type != "cuda" else torch.cuda.get_rng_state(p.device)


def _load_checkpoint(path, rec: TrainRecord, total: int) -> dict:
    """A paused training's state, checked against the training that continues it."""
    from prednas.errors import IncompatibleArtifactError

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - a damaged file fails in many ways; all mean one thing
        raise IncompatibleArtifactError(
            f"training checkpoint {str(path)!r} cannot be read ({type(exc).__name__}: "
            f"{str(exc)[:200]})") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise IncompatibleArtifactError(f"{str(path)!r} is not a prednas training checkpoint "
                                        f"(format {CHECKPOINT_FORMAT})")
    for key, mine in (("arch", rec.arch), ("seed", rec.seed)):
        if state.get(key) != mine:
            raise IncompatibleArtifactError(
                f"training checkpoint {str(path)!r} is of {key} {state.get(key)!r}, not {mine!r}")
    if not 0 < int(state["step"]) < total:
        raise IncompatibleArtifactError(
            f"training checkpoint {str(path)!r} paused at step {state['step']}, outside this "
            f"training's {total} steps")
    return state


class _Curve:
    """Collects the learning curve of one training into ``rec.curve`` (see :class:`TrainRecord`)."""

    def __init__(self, rec: TrainRecord, task, size: int, device: torch.device, start: float,
                 cpu_start: float):
        self.rec, self.device, self.start, self.cpu_start = rec, device, start, cpu_start
        self.x, self.y = task.x_val[:size], task.y_val[:size]
        self.loss_sum: torch.Tensor | float = 0.0
        self.count = 0
        rec.curve = {k: [] for k in ("step", "val_acc", "val_loss", "train_loss", "seconds", "cpu")}

    def add_loss(self, loss: torch.Tensor) -> None:
        self.loss_sum = self.loss_sum + loss
        self.count += 1

    def point(self, model: nn.Module, step: int) -> bool:
        """Record the point at ``step``; ``False`` (and the record marked diverged) when the
        training loss since the last point is not finite."""
        t = time.perf_counter()
        sotl = float(self.loss_sum) / max(1, self.count)
        self.loss_sum, self.count = 0.0, 0
        if not math.isfinite(sotl):
            self.rec.status = "diverged"
            self.rec.reason = f"non-finite training loss ({sotl}) by step {step}"
            return False
        acc, loss = (evaluate(model, self.x, self.y, device=self.device) if len(self.y)
                     else (math.nan, math.nan))
        c = self.rec.curve
        c["step"].append(step)
        c["val_acc"].append(round(acc, 4))
        c["val_loss"].append(round(loss, 5))
        c["train_loss"].append(round(sotl, 5))
        now = time.perf_counter()
        self.rec.curve_seconds += now - t
        c["seconds"].append(round(now - self.start, 4))
        c["cpu"].append(round(time.process_time() - self.cpu_start, 4))
        return True
