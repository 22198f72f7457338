"""ST-NAS: a distribution over architectures learned on a weight-sharing supernet.

>>> import prednas
>>> result = prednas.stnas("nb201", task, warmup_steps=200, search_steps=200)  # = stnas.train
>>> result.distribution.argmax()                    # the most probable architecture (or .argmax())
>>> result.distribution.sample(10, rng=0)           # architectures drawn from it
>>> result.scorer.features(archs)                   # supernet scores, with stnas_log_prob

Straight-through NAS (Zheng, Ou et al., "Efficient neural architecture search for end-to-end speech
recognition via straight-through gradients", SLT 2021, arXiv 2011.05649) keeps one logit vector
``alpha_d`` per decision ``d`` of the space (``nb201``: the op of each cell edge, shared by every
cell; ``blocks1d``: the depth and, per block slot, its op, width and skip source, which the
supernet shares across architectures). The supernet is first warmed up with uniform single-path
sampling (:func:`prednas.warmup`); then the search alternates

- an **architecture step** on a validation batch: draw ``a_d ~ softmax(alpha_d)`` for every
  decision, run the supernet along that path only, and update ``alpha`` (Adam) with the
  straight-through gradient of the validation loss (:func:`st_mix`);
- a **weight step** on a training batch along a path drawn from ``softmax(alpha)`` (AdamW, cosine
  schedule, clipping at 5).

The learned distribution (:class:`ArchDistribution`) gives the argmax architecture, samples, and
``log p(arch)``, a feature of the returned scorer (``stnas_log_prob``). With ``run_dir`` the
search writes a resumable checkpoint (``stnas-state.pt``, read back with ``weights_only=True``)
every ``checkpoint_every`` steps and the distribution as JSON (``distribution.json``).
"""

from __future__ import annotations

import copy
import json
import logging
import math
import sys
import time
import types
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

import spaces as _spaces
from prednas import tasks as _tasks
from prednas._choices import Choices, choices_for
from prednas.errors import IncompatibleArtifactError, InvalidParameterError, check_param, choices_message
from prednas.supernet import (
    SupernetScorer,
    WarmupDiverged,
    _Batches,
    _Guard,
    _path_step,
    _resize,
    build_supernet,
    make_scorer,
    warmup,
    warmup_defaults,
)
from prednas.utils import (
    atomic_path,
    atomic_write_json,
    load_checked_state,
    make_rng,
    resolve_device,
)

__all__ = ["ArchDistribution", "STNASResult", "train", "load", "st_mix", "st_forward",
           "ST_TERMS", "FORMAT_VERSION", "STATE_FILE", "DISTRIBUTION_FILE", "WarmupDiverged"]

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
KIND = "prednas-stnas-distribution"
STATE_KIND = "prednas-stnas-state"
STATE_FILE = "stnas-state.pt"
DISTRIBUTION_FILE = "distribution.json"
#: ``"all"``: every other choice's output enters the straight-through estimator (the paper);
#: ``"sampled"``: only the sampled path's (no extra forward passes)
ST_TERMS = ("all", "sampled")


# ------------------------------------------------------------------------------------------------
# the distribution
# ------------------------------------------------------------------------------------------------
def _log_softmax(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)
    m = v.max()
    return v - m - math.log(np.exp(v - m).sum())


class ArchDistribution:
    """A factorised categorical distribution over the architectures of a space.

    ``p(arch) = prod_d softmax(alpha_d)[a_d]`` over the decisions ``d`` that are active for
    ``arch`` (for ``blocks1d``, the slots beyond its depth do not count).

    Args:
        space: ``nb201`` or ``blocks1d`` (a space or its name).
        logits: decision name -> logits; missing decisions start at zero (uniform).
    """

    def __init__(self, space, logits: Mapping[str, Sequence[float]] | None = None):
        self.space = _spaces.get(space)
        self.choices: Choices = choices_for(self.space)
        self._logits = [np.zeros(len(d)) for d in self.choices.decisions]
        self._edits: dict[tuple[str, float], tuple[list, np.ndarray]] = {}
        if logits:
            names = self.choices.names
            for name, v in logits.items():
                if name not in names:
                    raise IncompatibleArtifactError(choices_message(
                        f"decision {name!r} is not one of the {self.space.name} space's", name,
                        names))
                k = names.index(name)
                v = np.asarray(v, dtype=np.float64).reshape(-1)
                if len(v) != len(self.choices.decisions[k]) or not np.isfinite(v).all():
                    raise IncompatibleArtifactError(
                        f"decision {name!r} needs {len(self.choices.decisions[k])} finite logits; "
                        f"got {v.tolist()}")
                self._logits[k] = v.copy()

    def __repr__(self) -> str:
        return (f"ArchDistribution(space={self.space.name!r}, argmax={str(self.argmax())!r}, "
                f"entropy={self.entropy():.3f})")

    @property
    def logits(self) -> dict[str, np.ndarray]:
        """Decision name -> its logits (copies)."""
        return {d.name: v.copy() for d, v in zip(self.choices.decisions, self._logits)}

    @property
    def probs(self) -> dict[str, np.ndarray]:
        """Decision name -> ``softmax`` of its logits."""
        return {d.name: np.exp(_log_softmax(v))
                for d, v in zip(self.choices.decisions, self._logits)}

    def log_prob(self, arch) -> float:
        """``log p(arch)`` (natural log); higher is more probable."""
        idx = self.choices.encode(arch)
        return float(sum(_log_softmax(v)[i] for v, i in zip(self._logits, idx) if i is not None))

    def argmax(self):
        """The architecture taking every decision's most probable choice (ST-NAS's derived
        architecture; for nb201 the most probable one; for blocks1d, whose shallower stacks have
        fewer factors, :meth:`top` gives the most probable)."""
        return self.choices.build(lambda k: int(np.argmax(self._logits[k])))[0]

    def sample(self, n: int, rng=None) -> list:
        """``n`` architectures drawn independently (``rng``: a seed or ``np.random.Generator``)."""
        check_param("ArchDistribution.sample", "n", n, low=0)
        rng = make_rng(rng)
        probs = [np.exp(_log_softmax(v)) for v in self._logits]
        pick = lambda k: int(rng.choice(len(probs[k]), p=probs[k]))  # noqa: E731
        return [self.choices.build(pick)[0] for _ in range(n)]

    def mutate(self, arch, rng=None, temperature: float = 1.0):
        """One of the space's own edits of ``arch`` (``space.neighbours``: for blocks1d Model
        Search's add / remove / reset a block parameter), drawn with probability proportional to
        ``p(child) ** (1 / temperature)`` instead of uniformly: mutations guided by the learned
        distribution (``temperature`` -> infinity: uniform over the edits)."""
        check_param("ArchDistribution.mutate", "temperature", temperature, kind=(float, int),
                    low=0.0, low_open=True)
        rng = make_rng(rng)
        key = (str(arch), float(temperature))
        cached = self._edits.get(key)
        if cached is None:  # a parent is mutated many times per round: its edits are cached
            children = self.space.neighbours(arch)
            if not children:
                return self.space.mutate(arch, rng)
            logp = np.array([self.log_prob(c) for c in children]) / float(temperature)
            w = np.exp(logp - logp.max())
            if len(self._edits) >= 4096:
                self._edits.clear()
            cached = self._edits[key] = (children, w / w.sum())
        children, probs = cached
        return children[int(rng.choice(len(children), p=probs))]

    def entropy(self) -> float:
        """Sum of the decisions' entropies (nats; for ``blocks1d`` an upper bound, since inactive
        slots count)."""
        out = 0.0
        for v in self._logits:
            lp = _log_softmax(v)
            out -= float((np.exp(lp) * lp).sum())
        return out

    def top(self, k: int, rng=None, pool: int = 4096) -> list:
        """The ``k`` most probable distinct architectures: exact for a space of at most 100,000
        architectures (enumerated), else the best of ``pool`` samples (by ``space.canonical``)."""
        check_param("ArchDistribution.top", "k", k, low=0)
        finite = getattr(self.space, "is_finite", False)
        if finite and len(self.space) <= 100_000:
            cands = list(self.space.enumerate())
        else:
            cands = [self.argmax()] + self.sample(pool, rng)
        seen, out = set(), []
        for a in sorted(cands, key=lambda a: -self.log_prob(a)):
            key = str(self.space.canonical(a))
            if key not in seen:
                seen.add(key)
                out.append(a)
                if len(out) == k:
                    break
        return out

    # -- storage --------------------------------------------------------------------------------
    def to_json(self) -> dict:
        return {"kind": KIND, "format": FORMAT_VERSION, "space": self.space.name,
                "space_config": self.space.config(),
                "decisions": [{"name": d.name, "labels": list(d.labels), "logits": v.tolist()}
                              for d, v in zip(self.choices.decisions, self._logits)]}

    @classmethod
    def from_json(cls, data: Mapping, space=None) -> ArchDistribution:
        """The distribution :meth:`to_json` wrote; ``space`` defaults to the one it names."""
        if not isinstance(data, Mapping) or data.get("kind") != KIND:
            kind = data.get("kind") if isinstance(data, Mapping) else data
            raise IncompatibleArtifactError(
                f"not an ST-NAS architecture distribution (its 'kind' is {kind!r})")
        if data.get("format") != FORMAT_VERSION:
            raise IncompatibleArtifactError(f"ST-NAS distribution format {data.get('format')!r}; "
                                            f"this version reads {FORMAT_VERSION}")
        if space is None:
            space = _spaces.get(data["space"], **(data.get("space_config") or {}))
        space = _spaces.get(space)
        if space.name != data.get("space") or space.config() != (data.get("space_config") or {}):
            raise IncompatibleArtifactError(
                f"the distribution is over space {data.get('space')!r} "
                f"{data.get('space_config') or ''}, not {space.name!r} {space.config() or ''}")
        dist = cls(space)
        for d, k in zip(data.get("decisions") or [], range(len(dist.choices.decisions))):
            want = dist.choices.decisions[k]
            if d.get("name") != want.name or list(d.get("labels", [])) != list(want.labels):
                raise IncompatibleArtifactError(
                    f"decision {k} is {d.get('name')!r} {d.get('labels')}; the space has "
                    f"{want.name!r} {list(want.labels)}")
        if len(data.get("decisions") or []) != len(dist.choices.decisions):
            raise IncompatibleArtifactError(
                f"the distribution has {len(data.get('decisions') or [])} decisions; the space "
                f"has {len(dist.choices.decisions)}")
        return cls(space, {d["name"]: d["logits"] for d in data["decisions"]})

    def save(self, path) -> None:
        """Write :meth:`to_json` to ``path`` (atomically)."""
        atomic_write_json(path, self.to_json())

    @classmethod
    def load(cls, path, space=None) -> ArchDistribution:
        from prednas.errors import DataNotFoundError

        try:
            data = json.loads(Path(path).read_text())
        except FileNotFoundError:
            raise DataNotFoundError(f"ST-NAS distribution {str(path)!r} not found") from None
        except ValueError as exc:
            raise IncompatibleArtifactError(f"{str(path)!r} is not JSON ({exc})") from None
        return cls.from_json(data, space)


# ------------------------------------------------------------------------------------------------
# the straight-through estimator
# ------------------------------------------------------------------------------------------------
def st_mix(chosen: torch.Tensor | None, probs: torch.Tensor, a: int,
           others: Mapping[int, torch.Tensor] | None = None) -> torch.Tensor | None:
    """ST-NAS's straight-through output of one decision whose choice ``a`` was sampled.

    ``y = (1 - sg(p_a) + p_a) * o_a + sum_{k != a} (p_k - sg(p_k)) * sg(o_k)``, where ``sg`` stops
    gradients, ``p = probs`` (the decision's softmax) and ``o_k`` the output of choice ``k``
    (``chosen = o_a``; ``None`` for a choice that outputs nothing, like nb201's ``none``;
    ``others``: ``k -> o_k``, computed without gradient). Its value is ``o_a`` (up to rounding),
    the weights receive the gradient of ``o_a`` alone, and for the loss ``L``

    ``dL/dp_k = <dL/dy, o_k>`` for ``a`` and every ``k`` in ``others``, so
    ``dL/dalpha_j = sum_k <dL/dy, o_k> p_k (delta_kj - p_j)``.

    With ``others=None`` (``st_terms="sampled"``) only ``k = a`` contributes:
    ``dL/dalpha_j = <dL/dy, o_a> p_a (delta_aj - p_j)``. Returns ``None`` when ``y`` is zero
    with no gradient (``chosen`` is ``None`` and there are no others).
    """
    out = None
    if chosen is not None:
        out = chosen * (1.0 - probs[a].detach() + probs[a])
    for k, o in (others or {}).items():
        if k == a or o is None:
            continue
        term = (probs[k] - probs[k].detach()) * o.detach()
        out = term if out is None else out + term
    return out


def _nb201_forward(net, x, idx, probs, terms: str) -> torch.Tensor:
    from spaces._supernet_nb201 import MixedCell
    from spaces.nb201 import NUM_NODES, OPS

    def cell(c, h):
        nodes, k = [h], 0
        for j in range(1, NUM_NODES):
            acc = None
            for i in range(j):
                edge, a, p = c.edges[f"{j}_{i}"], idx[k], probs[k]
                k += 1
                op = OPS[a]
                chosen = None if op == "none" else edge[op](nodes[i])
                others = None
                if terms == "all":
                    with torch.no_grad():
                        others = {OPS.index(o): edge[o](nodes[i]) for o in edge if o != op}
                y = st_mix(chosen, p, a, others)
                if y is not None:
                    acc = y if acc is None else acc + y
            nodes.append(acc if acc is not None else h.mul(0.0))
        return nodes[-1]

    h = net.stem(x)
    for layer in net.cells:
        h = cell(layer, h) if isinstance(layer, MixedCell) else layer(h)
    h = net.lastact(h)
    return net.classifier(torch.flatten(net.pool(h), 1))


def _blocks1d_forward(net, x, arch, idx, probs, choices, terms: str) -> torch.Tensor:
    ops = tuple(net.space.ops)
    if x.dim() == 2:
        x = x.unsqueeze(1)
    nodes, widths = [x], [net.in_channels]
    for s, b in enumerate(arch.blocks):
        where = choices.slot_index[s]
        out = net._run_block(s, b.op, widths[-1], b.width, nodes[-1])
        kw, ko = where["width"], where["op"]
        out = st_mix(out, probs[kw], idx[kw])
        others = None
        if terms == "all":  # other ops of the same width; other widths have other shapes
            with torch.no_grad():
                others = {j: net._run_block(s, o, widths[-1], b.width, nodes[-1])
                          for j, o in enumerate(ops) if o != b.op}
        out = st_mix(out, probs[ko], idx[ko], others)
        if b.skip is not None:
            src, sk = widths[b.skip], nodes[b.skip]
            if src != b.width:
                sk = F.conv1d(sk, net.skips[s][:b.width, :src])
            if "skip" in where:
                sk = st_mix(sk, probs[where["skip"]], idx[where["skip"]])
            out = out + sk
        nodes.append(out)
        widths.append(b.width)
    flat = st_mix(torch.flatten(nodes[-1], 1), probs[0], idx[0])  # the depth decision
    return F.linear(flat, net.head.weight[:, :flat.shape[1]], net.head.bias)


def st_forward(supernet, x: torch.Tensor, arch, idx: Sequence[int | None],
               probs: Sequence[torch.Tensor], choices: Choices, terms: str = "all"
               ) -> torch.Tensor:
    """The supernet's output along ``arch`` (choice indices ``idx``) whose every decision goes
    through :func:`st_mix`, so the loss has straight-through gradients for ``probs``."""
    name = choices.space.name
    if name == "nb201":
        return _nb201_forward(supernet, x, idx, probs, terms)
    return _blocks1d_forward(supernet, x, arch, idx, probs, choices, terms)


# ------------------------------------------------------------------------------------------------
# training
# ------------------------------------------------------------------------------------------------
@dataclass
class STNASResult:
    """What :func:`train` returns.

    Attributes:
        distribution: the learned :class:`ArchDistribution`.
        scorer: a :class:`~prednas.supernet.SupernetScorer` over the trained supernet whose
            features include ``stnas_log_prob``.
        warmup_seconds: wall time of the uniform warm-up; ``search_seconds``: of the alternating
            search (both summed over resumed sessions).
        history: per block of 20 search steps: ``step``, ``weight_loss``, ``alpha_loss``,
            ``entropy``.
        steps: search steps done.
    """

    distribution: ArchDistribution
    scorer: SupernetScorer
    warmup_seconds: float
    search_seconds: float
    history: list[dict] = field(default_factory=list)
    steps: int = 0
    settings: dict = field(default_factory=dict)

    @property
    def supernet(self) -> nn.Module:
        return self.scorer.supernet

    def __getattr__(self, name: str):
        # the learned distribution's own methods (argmax, sample, top, log_prob, entropy, ...) on
        # the result (its own save() keeps the whole state), so that
        # ``prednas.stnas(space, task).argmax()`` reads as the API does
        if name.startswith("_") or name == "distribution":
            raise AttributeError(name)
        try:
            return getattr(self.distribution, name)
        except AttributeError:
            raise AttributeError(f"'STNASResult' object has no attribute {name!r}") from None

    @property
    def seconds(self) -> float:
        return self.warmup_seconds + self.search_seconds

    def save(self, run_dir) -> None:
        """Write the finished state to ``run_dir`` (``stnas-state.pt`` and ``distribution.json``),
        so that :func:`train` with the same settings and this ``run_dir`` loads it instead of
        training. Optimiser states are not kept: it holds a finished search."""
        run_dir = Path(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        alphas = [torch.as_tensor(v, dtype=torch.float32)
                  for v in self.distribution.logits.values()]
        payload = {"kind": STATE_KIND, "format": FORMAT_VERSION, "settings": self.settings,
                   "step": self.steps, "alphas": alphas, "supernet": _cpu_state(self.supernet),
                   "rng": "", "history": self.history, "warmup_seconds": self.warmup_seconds,
                   "search_seconds": self.search_seconds}
        with atomic_path(run_dir / STATE_FILE) as tmp:
            torch.save(payload, tmp)
        self.distribution.save(run_dir / DISTRIBUTION_FILE)


def _cpu_state(module: nn.Module) -> dict:
    return {k: v.detach().cpu() for k, v in module.state_dict().items()}


def _load_state(run_dir: Path, settings: dict) -> dict | None:
    path = run_dir / STATE_FILE
    if not path.is_file():
        return None
    return load_checked_state(path, kind=STATE_KIND, format_version=FORMAT_VERSION,
                              what="ST-NAS state", settings=settings,
                              hint="use another run directory or the same settings")


def _rng_state(rng: np.random.Generator) -> str:
    return json.dumps(rng.bit_generator.state)


def _set_rng_state(rng: np.random.Generator, text: str) -> None:
    rng.bit_generator.state = json.loads(text)


def train(space, task, *, warmup_steps: int = 200, search_steps: int = 200,
          fraction: float = 0.1, batch_size: int = 64, seed: int = 0,
          device: str | torch.device = "auto", lr: float = 3e-3, weight_decay: float = 1e-4,
          alpha_lr: float = 0.05, st_terms: str = "all", sampling: str = "uniform",
          paths_per_step: int = 1, resolution: int = 0, calib_size: int = 256,
          val_size: int = 512, run_dir=None, checkpoint_every: int = 50,
          max_seconds: float | None = None, warmed_up: SupernetScorer | None = None,
          progress: bool = True, **supernet_kwargs) -> STNASResult:
    """Warm up the supernet of ``space`` on ``task``, then learn an architecture distribution.

    Args:
        space: ``nb201`` or ``blocks1d`` (a space or its name).
        task: a task or its name; weight steps use ``task.subset(fraction, seed)``, architecture
            steps batches of its validation split.
        warmup_steps: steps of the uniform single-path warm-up (:func:`prednas.warmup`).
        search_steps: alternating (architecture step, weight step) pairs.
        fraction, batch_size, seed, device, lr, weight_decay, sampling, paths_per_step,
        resolution, calib_size, val_size:
            as for :func:`prednas.warmup` (``lr``/``weight_decay`` also for the weight steps of the
            search, on a fresh cosine schedule).
        alpha_lr: Adam learning rate of the logits (betas 0.5, 0.999, as DARTS).
        st_terms: ``"all"``: the estimator includes every other choice's output (computed without
            gradient; the paper's ST-NAS; for blocks1d widths, skips and depth, whose outputs
            differ in shape, only the sampled term); ``"sampled"``: the sampled path only.
        run_dir: directory for the resumable state; a run found there with the same settings is
            continued (or, when finished, loaded without training).
        checkpoint_every: search steps between checkpoints (with ``run_dir``).
        max_seconds: stop the search (not the warm-up) when its wall time passes this; the
            checkpoint then continues it.
        warmed_up: start from this scorer's supernet (copied) instead of a warm-up of our own.
        progress: show progress bars.
        **supernet_kwargs: passed to ``space.build_supernet`` (default for nb201: ``C=8, N=2``,
            as :func:`prednas.warmup`).

    Raises:
        WarmupDiverged: the warm-up or the search diverged.
        IncompatibleArtifactError: ``run_dir`` holds a state made with other settings.
    """
    space = _spaces.get(space)
    task = _tasks.get(task)
    supernet_kwargs = {**warmup_defaults(space).get("supernet", {}), **supernet_kwargs}
    task = _resize(task, resolution)  # the images pooled (0: as they are), for every step
    choices = choices_for(space)
    if warmed_up is None:
        check_param("stnas.train", "warmup_steps", warmup_steps, low=1)
    check_param("stnas.train", "search_steps", search_steps, low=1)
    check_param("stnas.train", "fraction", fraction, kind=(float, int), low=0.0, high=1.0,
                low_open=True)
    check_param("stnas.train", "batch_size", batch_size, low=1)
    check_param("stnas.train", "lr", lr, kind=(float, int), low=0.0, low_open=True)
    check_param("stnas.train", "alpha_lr", alpha_lr, kind=(float, int), low=0.0, low_open=True)
    check_param("stnas.train", "checkpoint_every", checkpoint_every, low=1)
    if st_terms not in ST_TERMS:
        raise InvalidParameterError(choices_message(
            f"Unknown st_terms {st_terms!r} for stnas.train", st_terms, ST_TERMS))
    dev = resolve_device(device)
    run_dir = Path(run_dir) if run_dir is not None else None
    settings = {"space": space.name, "space_config": space.config(), "task": task.name,
                "task_size": [len(task.y_train), len(task.y_val)],
                "warmup_steps": None if warmed_up is not None else warmup_steps,
                "search_steps": search_steps, "fraction": float(fraction),
                "batch_size": batch_size, "seed": seed, "lr": float(lr),
                "weight_decay": float(weight_decay), "alpha_lr": float(alpha_lr),
                "st_terms": st_terms, "sampling": sampling, "supernet": dict(supernet_kwargs)}
    # (keys of their own only when set: states saved before them stay readable)
    if paths_per_step != 1:
        settings["paths_per_step"] = paths_per_step
    if resolution:
        settings["resolution"] = resolution
    state = _load_state(run_dir, settings) if run_dir is not None else None
    sub = task.subset(fraction, seed=seed)
    n = len(sub.y_train)
    if state is not None:
        supernet = build_supernet(space, task, seed, dev, **supernet_kwargs)
        supernet.load_state_dict(state["supernet"])
        warm_seconds = float(state["warmup_seconds"])
        log.info("ST-NAS: resumed %s at search step %d", run_dir, state["step"])
    elif warmed_up is not None:
        supernet = copy.deepcopy(warmed_up.supernet)
        warm_seconds = float(warmed_up.seconds)
    else:
        scorer0 = warmup(space, task, fraction, warmup_steps, batch_size, seed, dev, lr=lr,
                         weight_decay=weight_decay, sampling=sampling,
                         paths_per_step=paths_per_step,
                         resolution=0, max_seconds=None, calib_size=calib_size,
                         val_size=val_size, progress=progress, **supernet_kwargs)
        supernet, warm_seconds = scorer0.supernet, scorer0.seconds
    alphas = [torch.zeros(len(d), device=dev, requires_grad=True) for d in choices.decisions]
    opt_a = torch.optim.Adam(alphas, lr=alpha_lr, betas=(0.5, 0.999))
    params = [p for p in supernet.parameters() if p.requires_grad]
    opt_w = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt_w, T_max=search_steps)
    rng = np.random.default_rng([int(seed), 1])
    train_batches = _Batches(n, batch_size, torch.Generator().manual_seed(int(seed) + 2))
    val_batches = _Batches(len(task.y_val), batch_size,
                           torch.Generator().manual_seed(int(seed) + 3))
    step0, history, search_seconds = 0, [], 0.0
    if state is not None:
        with torch.no_grad():
            for a, v in zip(alphas, state["alphas"]):
                a.copy_(v.to(dev))
        step0 = int(state["step"])
        history = [dict(h) for h in state["history"]]
        search_seconds = float(state["search_seconds"])
        if step0 < search_steps and "opt_a" not in state:
            raise IncompatibleArtifactError(
                f"{run_dir / STATE_FILE} holds a finished search of {step0} steps; it cannot be "
                f"continued to {search_steps}")
        if step0 < search_steps:
            opt_a.load_state_dict(state["opt_a"])
            opt_w.load_state_dict(state["opt_w"])
            sched.load_state_dict(state["sched"])
            train_batches.load_state(state["train_batches"])
            val_batches.load_state(state["val_batches"])
            _set_rng_state(rng, state["rng"])

    def checkpoint(step: int) -> None:
        if run_dir is None:
            return
        run_dir.mkdir(parents=True, exist_ok=True)
        payload = {"kind": STATE_KIND, "format": FORMAT_VERSION, "settings": settings,
                   "step": step, "alphas": [a.detach().cpu().clone() for a in alphas],
                   "supernet": _cpu_state(supernet),
                   "opt_a": opt_a.state_dict(), "opt_w": opt_w.state_dict(),
                   "sched": sched.state_dict(), "train_batches": train_batches.state(),
                   "val_batches": val_batches.state(), "rng": _rng_state(rng),
                   "history": history, "warmup_seconds": warm_seconds,
                   "search_seconds": search_seconds + (time.perf_counter() - t0)}
        with atomic_path(run_dir / STATE_FILE) as tmp:
            torch.save(payload, tmp)
        _distribution(space, choices, alphas).save(run_dir / DISTRIBUTION_FILE)

    t0 = time.perf_counter()
    if state is None:
        checkpoint(0)  # the warm-up is never redone
    x_tr, y_tr = sub.x_train.to(dev), sub.y_train.to(dev)
    x_va, y_va = task.x_val.to(dev), task.y_val.to(dev)
    loss_fn = nn.CrossEntropyLoss()
    guard = _Guard(search_steps, "the ST-NAS search")
    bar = None
    if progress and step0 < search_steps:
        from tqdm.auto import tqdm

        bar = tqdm(total=search_steps, initial=step0, desc=f"ST-NAS {space.name}", leave=False)
    supernet.train()
    block: list[tuple[float, float]] = []
    step = step0
    try:
        while step < search_steps:
            # architecture step: a path from softmax(alpha), straight-through gradient
            probs = [torch.softmax(a, 0) for a in alphas]
            arch, idx = _draw(choices, probs, rng)
            vb = val_batches.next().to(dev)
            out = st_forward(supernet, x_va[vb], arch, idx, probs, choices, st_terms)
            loss_a = loss_fn(out, y_va[vb])
            if torch.isfinite(loss_a):
                grads = torch.autograd.grad(loss_a, alphas, allow_unused=True)
                for a, g in zip(alphas, grads):
                    a.grad = g  # None for decisions not on the path: Adam leaves them alone
                opt_a.step()
                opt_a.zero_grad(set_to_none=True)
            else:
                guard.bad(step, float(loss_a.detach()))
            # weight step along a path from softmax(alpha)
            with torch.no_grad():
                probs = [torch.softmax(a, 0) for a in alphas]
            arch_w, _ = _draw(choices, probs, rng)
            tb = train_batches.next().to(dev)
            loss_w = _path_step(supernet, [arch_w], x_tr[tb], y_tr[tb], opt_w, params, loss_fn)
            sched.step()
            if not math.isfinite(loss_w):
                guard.bad(step, loss_w)
            else:
                block.append((loss_w, float(loss_a.detach())))
            step += 1
            if len(block) == 20 or (step == search_steps and block):
                w, a_ = np.mean(block, axis=0)
                history.append({"step": step, "weight_loss": float(w), "alpha_loss": float(a_),
                                "entropy": _distribution(space, choices, alphas).entropy()})
                block = []
                if bar is not None:
                    bar.set_postfix(loss=f"{w:.3f}", H=f"{history[-1]['entropy']:.2f}")
            if bar is not None:
                bar.update(1)
            stop = max_seconds is not None and time.perf_counter() - t0 > max_seconds
            if step % checkpoint_every == 0 or step == search_steps or stop:
                checkpoint(step)
            if stop:
                log.info("ST-NAS stopped after %d search steps (max_seconds=%s)", step,
                         max_seconds)
                break
    finally:
        if bar is not None:
            bar.close()
    search_seconds += time.perf_counter() - t0
    dist = _distribution(space, choices, alphas)
    scorer = make_scorer(supernet, space, task, sub, seed=seed, device=dev, batch_size=batch_size,
                         calib_size=calib_size, val_size=val_size,
                         seconds=warm_seconds + search_seconds, distribution=dist,
                         loss_curve=[h["weight_loss"] for h in history],
                         info={**settings, "steps_done": step})
    log.info("ST-NAS on %s: %d search steps in %.1f s (+%.1f s warm-up); argmax %s", space.name,
             step, search_seconds, warm_seconds, dist.argmax())
    return STNASResult(dist, scorer, warm_seconds, search_seconds, history, step, settings)


def _draw(choices: Choices, probs: Sequence[torch.Tensor], rng: np.random.Generator):
    ps = [p.detach().double().cpu().numpy() for p in probs]
    pick = lambda k: int(rng.choice(len(ps[k]), p=ps[k] / ps[k].sum()))  # noqa: E731
    return choices.build(pick)


def _distribution(space, choices: Choices, alphas) -> ArchDistribution:
    return ArchDistribution(space, {d.name: a.detach().cpu().double().numpy()
                                    for d, a in zip(choices.decisions, alphas)})


def load(run_dir, space=None) -> ArchDistribution:
    """The distribution an ST-NAS run saved in ``run_dir`` (``distribution.json``)."""
    return ArchDistribution.load(Path(run_dir) / DISTRIBUTION_FILE, space)


class _CallableModule(types.ModuleType):
    """``prednas.stnas(space, task, ...)`` is :func:`train` (the module stays a module)."""

    def __call__(self, space, task, **kwargs) -> STNASResult:
        return train(space, task, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
