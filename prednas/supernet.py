"""Warm-up of a weight-sharing supernet, then cheap scores for any sub-architecture.

>>> import prednas
>>> scorer = prednas.warmup("nb201", task)      # the measured CPU setting: about a minute
>>> scorer.score(["|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|...|"])   # val accuracy, %
>>> scorer.features(archs)          # every score below, one column each (scorer.feature_names)

The warm-up trains the supernet of ``space`` (``space.build_supernet``) for a few hundred steps on a
random ``fraction`` of the task's training split, sampling one architecture per step (single-path
one-shot training, SPOS: Guo et al., ECCV 2020; ``sampling="fair"`` and ``paths_per_step`` give
FairNAS-style strict fairness, Chu et al., ICCV 2021). A sub-architecture is then scored with the
weights it inherits: its batch-norm statistics are recalibrated on a fixed set of training
examples, and

- ``supernet_acc`` / ``supernet_neg_loss``: its accuracy (%) and negative cross-entropy on a fixed
  held-out validation batch (the inherited accuracy and loss);
- ``sigeo_zico``, ``sigeo_fr``, ``sigeo_neg_loss`` and ``sigeo``: the terms of SiGeo and their
  combination (sub-one-shot NAS: Zheng et al., "SiGeo: Sub-One-Shot NAS via Information Theory and
  Geometry of Loss Landscape", arXiv 2311.13169), see :meth:`SupernetScorer.sigeo_terms`;
- ``stnas_log_prob``: the log-probability of the architecture under the architecture distribution
  learned by ST-NAS (:mod:`prednas.stnas`), when the supernet was trained that way.

Every score is higher-is-better. They serve as predictor features (``FeaturePipeline(...,
supernet=scorer, supernet_features=(...))``) and, where no benchmark exists, as cheap labels.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

import spaces as _spaces
from prednas import tasks as _tasks
from prednas._choices import SAMPLINGS
from prednas.errors import (
    InvalidParameterError,
    PredNASError,
    UnknownNameError,
    check_param,
)
from prednas.utils import (
    atomic_path,
    load_checked_state,
    make_rng,
    resolve_device,
    torch_seed,
)

__all__ = ["warmup", "warmup_defaults", "WARMUP_DEFAULTS", "SupernetScorer", "SupernetScores",
           "WarmupDiverged", "FEATURES", "SIGEO_LAMBDAS", "SAMPLINGS", "resolve_feature_names"]

log = logging.getLogger(__name__)

#: the scores every scorer gives, in column order (``stnas_log_prob`` follows after ST-NAS)
FEATURES: tuple[str, ...] = ("supernet_acc", "supernet_neg_loss", "sigeo_zico", "sigeo_fr",
                             "sigeo_neg_loss", "sigeo")
STNAS_FEATURE = "stnas_log_prob"
#: other names accepted for a feature
ALIASES = {"inherited_acc": "supernet_acc", "inherited_neg_loss": "supernet_neg_loss",
           "acc": "supernet_acc", "neg_loss": "supernet_neg_loss", "zico": "sigeo_zico",
           "fisher_rao": "sigeo_fr", "fr": "sigeo_fr", "stnas": STNAS_FEATURE,
           "log_prob": STNAS_FEATURE}
_EVAL = ("supernet_acc", "supernet_neg_loss")
_SIGEO = ("sigeo_zico", "sigeo_fr", "sigeo_neg_loss", "sigeo")
#: SiGeo's weights (lambda2 on the Fisher-Rao term, lambda3 on the training loss; lambda1 = 1 on
#: ZiCo) for a warmed-up supernet, the sub-one-shot setting of the paper and of its code (its
#: zero-shot setting, without warm-up, is (1, 0))
SIGEO_LAMBDAS: tuple[float, float] = (50.0, 1.0)
#: the file a finished warm-up is saved to (``SupernetScorer.save``) and resumed from
WARMUP_FILE = "warmup.pt"
_WARMUP_KIND, _WARMUP_FORMAT = "prednas-supernet-warmup", 1


class WarmupDiverged(PredNASError):
    """The supernet warm-up produced non-finite losses (which step, which loss in the message)."""


def resolve_feature_names(names: Iterable[str] | str | None,
                          available: Sequence[str]) -> list[str]:
    """Canonical feature names for ``names`` (aliases such as ``inherited_acc`` resolved); an
    unknown name raises :class:`UnknownNameError` listing ``available``."""
    if names is None:
        return list(available)
    if isinstance(names, str):
        names = [names]
    out = []
    for n in names:
        canon = ALIASES.get(n, n)
        if canon not in available:
            raise UnknownNameError("supernet feature", n, list(available))
        out.append(canon)
    return out


class SupernetScorer:
    """Scores sub-architectures of a warmed-up supernet by their inherited weights.

    Every architecture is scored once per group of features (results are cached by its string):
    BN running statistics are reset and re-estimated on ``calib`` (training examples, run in train
    mode without gradients), then the sub-network is evaluated in eval mode on ``val`` (inherited
    accuracy and loss) and, when SiGeo features are asked for, its gradients are taken on ``calib``
    (:meth:`sigeo_terms`).

    Attributes:
        supernet: the trained supernet (``forward(x, arch)``, ``subnet(arch)``).
        space: the search space.
        seconds: wall time of the warm-up (building and training the supernet).
        scoring_seconds: wall time spent scoring so far; ``scored`` (arch, group) pairs were scored.
        loss_curve: training loss of the warm-up, averaged over blocks of steps.
        info: the warm-up's settings.
        distribution: the architecture distribution learned by ST-NAS, or ``None``.
        sigeo_batches: batches ``calib`` is split into for the SiGeo gradient statistics.
        sigeo_lambdas: ``(lambda2, lambda3)`` of the SiGeo score.
    """

    def __init__(self, supernet: nn.Module, space, calib: tuple[torch.Tensor, torch.Tensor],
                 val: tuple[torch.Tensor, torch.Tensor], *, device: str | torch.device = "cpu",
                 seconds: float = 0.0, batch_size: int = 256, loss_curve: Sequence[float] = (),
                 info: dict | None = None, sigeo_batches: int = 4,
                 sigeo_lambdas: Sequence[float] = SIGEO_LAMBDAS, distribution=None):
        check_param("SupernetScorer", "sigeo_batches", sigeo_batches, low=2)
        if len(tuple(sigeo_lambdas)) != 2:
            raise InvalidParameterError(
                "The 'sigeo_lambdas' parameter of SupernetScorer must be a pair (lambda2, "
                f"lambda3). Got {sigeo_lambdas!r} instead.")
        self.supernet = supernet
        self.space = _spaces.get(space)
        self.device = torch.device(device)
        self.calib = (calib[0].to(self.device), calib[1].to(self.device))
        self.val = (val[0].to(self.device), val[1].to(self.device))
        self.seconds = float(seconds)
        self.batch_size = int(batch_size)
        self.loss_curve = list(loss_curve)
        self.info = dict(info or {})
        self.sigeo_batches = int(sigeo_batches)
        self.sigeo_lambdas = tuple(float(v) for v in sigeo_lambdas)
        self.distribution = distribution
        self.scoring_seconds = 0.0
        self.scored = 0
        self._cache: dict[str, dict[str, float]] = {}

    def __repr__(self) -> str:
        return (f"SupernetScorer(space={self.space.name!r}, seconds={self.seconds:.1f}, "
                f"calib={len(self.calib[1])}, val={len(self.val[1])}, cached={len(self._cache)}, "
                f"stnas={self.distribution is not None})")

    def save(self, state_dir) -> Path:
        """Write the warmed-up supernet and its settings to ``state_dir/warmup.pt`` (atomically),
        so that :func:`warmup` with the same settings and ``state_dir`` loads it instead of
        training again. Tensors and plain values only: it loads with ``weights_only=True``."""
        state_dir = Path(state_dir)
        state_dir.mkdir(parents=True, exist_ok=True)
        payload = {"kind": _WARMUP_KIND, "format": _WARMUP_FORMAT,
                   "settings": self.info.get("settings", {}),
                   "supernet": {k: v.detach().cpu() for k, v in self.supernet.state_dict().items()},
                   "seconds": self.seconds, "loss_curve": list(self.loss_curve)}
        path = state_dir / WARMUP_FILE
        with atomic_path(path) as tmp:
            torch.save(payload, tmp)
        return path

    @property
    def feature_names(self) -> tuple[str, ...]:
        """Names of the columns of :meth:`features` (``stnas_log_prob`` only after ST-NAS)."""
        return FEATURES + ((STNAS_FEATURE,) if self.distribution is not None else ())

    @property
    def seconds_per_arch(self) -> float:
        """Mean scoring cost per scored (architecture, feature group) so far (``nan`` before)."""
        return self.scoring_seconds / self.scored if self.scored else math.nan

    # -- one architecture -----------------------------------------------------------------------
    @torch.no_grad()
    def _recalibrate(self, arch) -> None:
        net, bs = self.supernet, self.batch_size
        xc, _ = self.calib
        with net.recalibrating():
            net.train()
            for i in range(0, len(xc), bs):
                net(xc[i:i + bs], arch)

    @torch.no_grad()
    def _evaluate(self, arch) -> dict[str, float]:
        net, bs = self.supernet, self.batch_size
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
            return dict.fromkeys(_EVAL, math.nan)
        return {"supernet_acc": 100.0 * correct / n, "supernet_neg_loss": -loss}

    def sigeo_terms(self, arch) -> dict[str, float]:
        """SiGeo's terms for ``arch`` with the weights it inherits (BN statistics as they are).

        The calibration examples are split into ``sigeo_batches`` batches; on each, the sub-network
        (train mode, as SiGeo's code) gives the loss ``L_b`` and the gradient ``g_b`` of every
        weight matrix / conv kernel on its path (each 2-D-or-more parameter is a "layer" ``l``;
        batch-norm and bias vectors are left out, as SiGeo and ZiCo take conv/linear weights):

        - ``sigeo_zico = sum_l log( sum_{w in l, std_b g_w > 0} mean_b |g_w| / std_b g_w )``
          (ZiCo, Li et al., ICLR 2023; population std over the batches; layers whose sum is 0
          are skipped);
        - ``sigeo_fr = 2 log( sum_l |theta_l . mean_b g_l| )``: the log of the squared
          Fisher-Rao-norm estimate ``(theta^T grad L)^2``, taken layer by layer as in SiGeo's code;
        - ``sigeo_neg_loss = -mean_b L_b``: the (negative) training loss;
        - ``sigeo = sigeo_zico + lambda2 * sigeo_fr + lambda3 * sigeo_neg_loss``, i.e. SiGeo's
          ``ZiCo + lambda2 FR - lambda3 loss`` with lambda1 = 1 and ``(lambda2, lambda3) =
          sigeo_lambdas`` (default (50, 1), the paper's warmed-up setting).

        Variant: SiGeo's vision code fine-tunes each candidate alone on a data fraction (with SGD
        steps of learning rate 1 between the gradient batches) before taking these statistics; its
        recommender code warms up a real shared supernet. This is the shared-supernet variant: the
        candidate's weights are inherited from the warmed-up supernet, and gradients are taken at
        those weights without any update in between. Higher is better for every term. NaN when a
        loss is not finite or no layer has a varying gradient.
        """
        net = self.supernet
        arch = self.space.coerce(arch)
        xs, ys = self.calib
        chunks = [c for c in np.array_split(np.arange(len(ys)), self.sigeo_batches) if len(c)]
        nan = dict.fromkeys(_SIGEO, math.nan)
        if len(chunks) < 2:
            return nan
        params = [p for p in net.parameters() if p.requires_grad and p.dim() >= 2]
        grads: list[list[torch.Tensor]] = [[] for _ in params]
        losses = []
        was_training = net.training
        net.train()
        try:
            for c in chunks:
                idx = torch.as_tensor(c, device=xs.device)
                loss = nn.functional.cross_entropy(net(xs[idx], arch), ys[idx])
                if not torch.isfinite(loss):
                    log.warning("SiGeo: the training loss of %s is not finite", arch)
                    return nan
                gs = torch.autograd.grad(loss, params, allow_unused=True)
                for i, g in enumerate(gs):
                    if g is not None:
                        grads[i].append(g.detach().reshape(-1))
                losses.append(float(loss.detach()))
        finally:
            net.train(was_training)
        zico, fr_sum = 0.0, 0.0
        for p, gl in zip(params, grads):
            if len(gl) != len(chunks):
                continue
            G = torch.stack(gl).double()
            std = G.std(0, unbiased=False)
            mask = std > 0
            if bool(mask.any()):
                s = float((G.abs().mean(0)[mask] / std[mask]).sum())
                if s > 0 and math.isfinite(s):
                    zico += math.log(s)
            fr_sum += abs(float(p.detach().reshape(-1).double() @ G.mean(0)))
        if fr_sum <= 0 or not math.isfinite(fr_sum) or zico == 0.0:
            return nan
        fr = 2.0 * math.log(fr_sum)
        neg_loss = -float(np.mean(losses))
        lam2, lam3 = self.sigeo_lambdas
        return {"sigeo_zico": zico, "sigeo_fr": fr, "sigeo_neg_loss": neg_loss,
                "sigeo": zico + lam2 * fr + lam3 * neg_loss}

    def _score_one(self, arch, groups: set[str]) -> dict[str, float]:
        out: dict[str, float] = {}
        if "eval" in groups:  # SiGeo's passes run in train mode: they need no recalibration
            self._recalibrate(arch)
            out.update(self._evaluate(arch))
        if "sigeo" in groups:
            out.update(self.sigeo_terms(arch))
        return out

    # -- many architectures ---------------------------------------------------------------------
    def features(self, archs: Iterable, names: Iterable[str] | str | None = None,
                 progress: bool = False) -> np.ndarray:
        """``(n, k)`` scores: one column per name of ``names`` (default: :attr:`feature_names`).

        The inherited accuracy and loss cost one BN recalibration and one validation pass per
        architecture; the SiGeo columns add ``sigeo_batches`` forward-backward passes (computed
        only when asked for); ``stnas_log_prob`` is a lookup.
        """
        cols = resolve_feature_names(names, self.feature_names)
        archs = [self.space.coerce(a) for a in archs]
        keys = [str(a) for a in archs]
        groups = set()
        if any(c in _EVAL for c in cols):
            groups.add("eval")
        if any(c in _SIGEO for c in cols):
            groups.add("sigeo")
        need = {"eval": _EVAL, "sigeo": _SIGEO}
        todo = []
        for k, a in dict(zip(keys, archs)).items():
            have = self._cache.get(k, {})
            missing = {g for g in groups if not all(n in have for n in need[g])}
            if missing:
                todo.append((k, a, missing))
        if todo:
            bar = None
            if progress:
                from tqdm.auto import tqdm

                bar = tqdm(total=len(todo), desc="supernet scores", leave=False)
            start = time.perf_counter()
            was_training = self.supernet.training
            try:
                for k, a, missing in todo:
                    self._cache.setdefault(k, {}).update(self._score_one(a, missing))
                    if bar is not None:
                        bar.update(1)
            finally:
                self.supernet.train(was_training)
                if bar is not None:
                    bar.close()
            self.scoring_seconds += time.perf_counter() - start
            self.scored += len(todo)
        out = np.empty((len(keys), len(cols)), dtype=np.float64)
        for j, c in enumerate(cols):
            if c == STNAS_FEATURE:
                out[:, j] = [self.distribution.log_prob(a) for a in archs]
            else:
                out[:, j] = [self._cache[k][c] for k in keys]
        return out

    def score(self, archs: Iterable, progress: bool = False) -> np.ndarray:
        """Validation accuracy (%) of each arch's inherited weights; higher is better."""
        return self.features(archs, ["supernet_acc"], progress)[:, 0]

    def score_loss(self, archs: Iterable, progress: bool = False) -> np.ndarray:
        """Negative validation cross-entropy of each arch's inherited weights; higher is better."""
        return self.features(archs, ["supernet_neg_loss"], progress)[:, 0]

    __call__ = score

    def to_csv(self, archs: Iterable, path, names: Iterable[str] | None = None,
               progress: bool = False) -> None:
        """Score ``archs``; write ``arch,<feature names>`` to ``path`` (atomic)."""
        archs = [self.space.coerce(a) for a in archs]
        cols = resolve_feature_names(names, self.feature_names)
        SupernetScores(self.space, [str(a) for a in archs], self.features(archs, cols, progress),
                       names=cols).to_csv(path)


class SupernetScores:
    """Supernet scores read back from a CSV (``arch,<feature names>``).

    Offers the scorer's ``score`` / ``score_loss`` / ``features`` as lookups, so saved scores can
    stand in for a :class:`SupernetScorer` (e.g. as ``FeaturePipeline(supernet=...)``); an
    architecture that is not in the file scores ``nan``. Files with only the two original columns
    (``supernet_acc,supernet_neg_loss``) read as before.
    """

    def __init__(self, space, arch_strings: Sequence[str], values: np.ndarray,
                 names: Sequence[str] = _EVAL):
        self.space = _spaces.get(space)
        self.feature_names = tuple(resolve_feature_names(names, FEATURES + (STNAS_FEATURE,)))
        self.arch_strings = [str(self.space.coerce(a)) for a in arch_strings]
        self.values = np.asarray(values, dtype=np.float64).reshape(len(self.arch_strings),
                                                                   len(self.feature_names))
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
                reader = csv.DictReader(f)
                rows = list(reader)
                header = list(reader.fieldnames or [])
        except FileNotFoundError:
            raise DataNotFoundError(f"supernet scores file {str(path)!r} not found") from None
        known = FEATURES + (STNAS_FEATURE,)
        names = [h for h in header if h in known]
        if "arch" not in header or not all(n in names for n in _EVAL):
            raise DataNotFoundError(f"{str(path)!r} lacks columns {['arch', *_EVAL]}; "
                                    f"has {header}")
        values = np.array([[float(r[k]) for k in names] for r in rows]).reshape(-1, len(names))
        return cls(space, [r["arch"] for r in rows], values, names=names)

    def to_csv(self, path) -> None:
        from prednas.utils import atomic_write_text

        lines = [",".join(("arch",) + self.feature_names)]
        lines += [",".join([a] + [f"{x:.6g}" for x in v])
                  for a, v in zip(self.arch_strings, self.values)]
        atomic_write_text(path, "\n".join(lines) + "\n")

    def features(self, archs: Iterable, names: Iterable[str] | str | None = None,
                 progress: bool = False) -> np.ndarray:
        cols = resolve_feature_names(names, self.feature_names)
        js = [self.feature_names.index(c) for c in cols]
        keys = [str(self.space.coerce(a)) for a in archs]
        out = np.full((len(keys), len(cols)), np.nan)
        for r, k in enumerate(keys):
            i = self._index.get(k)
            if i is not None:
                out[r] = self.values[i, js]
        return out

    def score(self, archs: Iterable, progress: bool = False) -> np.ndarray:
        return self.features(archs, ["supernet_acc"])[:, 0]

    def score_loss(self, archs: Iterable, progress: bool = False) -> np.ndarray:
        return self.features(archs, ["supernet_neg_loss"])[:, 0]


# ------------------------------------------------------------------------------------------------
# training pieces shared with prednas.stnas
# ------------------------------------------------------------------------------------------------
class _Batches:
    """Shuffled mini-batches of ``n`` examples drawn with a private torch generator; ``state()``
    and ``load_state()`` let a checkpoint resume the same sequence."""

    def __init__(self, n: int, batch_size: int, gen: torch.Generator):
        self.n, self.batch_size, self.gen = n, batch_size, gen
        self.perm = torch.randperm(n, generator=gen)
        self.pos = 0

    def next(self) -> torch.Tensor:
        if self.pos + self.batch_size > self.n and self.pos > 0:
            self.perm, self.pos = torch.randperm(self.n, generator=self.gen), 0
        idx = self.perm[self.pos:self.pos + self.batch_size]
        self.pos += self.batch_size
        return idx

    def state(self) -> dict:
        return {"perm": self.perm.clone(), "pos": self.pos, "gen": self.gen.get_state()}

    def load_state(self, st: dict) -> None:
        self.perm, self.pos = st["perm"].clone(), int(st["pos"])
        self.gen.set_state(st["gen"])


class _Guard:
    """Counts non-finite losses; too many (more than ``max(10, steps // 4)``) is a divergence."""

    def __init__(self, steps: int, what: str = "the supernet warm-up"):
        self.limit, self.what = max(10, steps // 4), what
        self.skipped, self.first = 0, None

    def bad(self, step: int, loss: float) -> None:
        self.skipped += 1
        if self.first is None:
            self.first = (step, loss)
        if self.skipped > self.limit:
            raise WarmupDiverged(
                f"{self.what} diverged: {self.skipped} non-finite losses by step {step} (the "
                f"first at step {self.first[0]}: loss {self.first[1]})")


def _path_step(supernet, archs: Sequence, x, y, opt, params, loss_fn, clip: float = 5.0
               ) -> float:
    """One optimiser step on the mean loss of ``archs`` (gradients accumulated path by path);
    returns that loss, or the first non-finite loss (and takes no step)."""
    opt.zero_grad(set_to_none=True)
    total = 0.0
    for arch in archs:
        loss = loss_fn(supernet(x, arch), y)
        if not torch.isfinite(loss):
            opt.zero_grad(set_to_none=True)
            return float(loss.detach())
        (loss / len(archs)).backward()
        total += float(loss.detach())
    nn.utils.clip_grad_norm_(params, clip)
    opt.step()
    return total / len(archs)


@contextlib.contextmanager
def _path_dropout(supernet, p: float, gen: torch.Generator) -> Iterator[None]:
    """Drop-path on the parametric and pooling ops of an nb201 supernet's cells while training:
    each example's output of such an op is zeroed with probability ``p`` and the rest scaled by
    ``1 / (1 - p)`` (DARTS/ENAS drop-path; identity edges are never dropped)."""
    if p <= 0:
        yield
        return
    from spaces._supernet_nb201 import MixedCell

    def hook(module, inputs, out):
        if not module.training:
            return out
        keep = torch.rand((out.shape[0],) + (1,) * (out.dim() - 1), generator=gen) >= p
        return out * keep.to(out.device, out.dtype) / (1.0 - p)

    handles = []
    for m in supernet.modules():
        if isinstance(m, MixedCell):
            for edge in m.edges.values():
                for op in edge.values():
                    if not isinstance(op, nn.Identity):
                        handles.append(op.register_forward_hook(hook))
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def _check_warmup_params(space, *, fraction, steps, batch_size, calib_size, val_size, lr,
                         sampling, paths_per_step, path_dropout) -> None:
    check_param("warmup", "fraction", fraction, kind=(float, int), low=0.0, high=1.0, low_open=True)
    check_param("warmup", "steps", steps, kind=int, low=1)
    check_param("warmup", "batch_size", batch_size, kind=int, low=1)
    check_param("warmup", "calib_size", calib_size, kind=int, low=2)
    check_param("warmup", "val_size", val_size, kind=int, low=1)
    check_param("warmup", "lr", lr, kind=(float, int), low=0.0, low_open=True)
    check_param("warmup", "paths_per_step", paths_per_step, kind=int, low=1)
    if sampling not in SAMPLINGS:
        from prednas.errors import choices_message

        raise InvalidParameterError(choices_message(
            f"Unknown sampling {sampling!r} for warmup", sampling, SAMPLINGS))
    from prednas.params import Interval, validate_params

    validate_params("warmup", {"path_dropout": [Interval(float, 0.0, 1.0, "left")]},
                    {"path_dropout": path_dropout})
    if path_dropout and space.name != "nb201":
        raise InvalidParameterError(
            f"The 'path_dropout' parameter of warmup applies to nb201 cell edges only; the "
            f"{space.name} supernet has none. Got {path_dropout!r} instead of 0.")


def _sampler(space, sampling: str, rng: np.random.Generator):
    if sampling == "fair":
        from prednas._choices import FairPicker, choices_for

        return FairPicker(choices_for(space), rng).sample
    return lambda: space.sample(rng)


def build_supernet(space, task, seed: int, device, **supernet_kwargs) -> nn.Module:
    """``space.build_supernet`` for ``task``, initialised from ``seed`` (global RNGs untouched)."""
    with torch_seed(seed, device):
        supernet = space.build_supernet(task.num_classes, task.input_shape, **supernet_kwargs)
    return supernet.to(device)


#: the wall-time cap of a warm-up with its defaults (seconds): within 10 minutes on 2 cores
DEFAULT_MAX_SECONDS = 540.0
#: the measured CPU setting of each space's warm-up, what :func:`warmup` does with its defaults
#: (``benchmarks/supernet-nb201.md``, ``benchmarks/supernet-blocks1d.md``), and the scores that
#: ranked there, which ``PredictorFilter(supernet="auto")`` uses as features; other spaces take
#: ``"*"``
WARMUP_DEFAULTS: dict[str, dict] = {
    # fair sampling, 5 paths a step (every op of every edge trained each step), a small supernet
    # on 16x16 images: SiGeo's ZiCo term at its best in about a minute
    "nb201": {"steps": 300, "fraction": 1.0, "sampling": "fair", "paths_per_step": 5,
              "resolution": 16, "supernet": {"C": 8, "N": 2},
              "features": ("supernet_acc", "supernet_neg_loss", "sigeo_zico", "sigeo_fr",
                           "sigeo_neg_loss", "sigeo")},
    # inherited accuracy / loss keep improving with the steps: 24,000 took 330 s on the
    # benchmark's sub-space (a larger space stops at max_seconds, its schedule annealed)
    # (SiGeo's ZiCo and Fisher-Rao terms rank backwards here, and its loss term repeats the
    # inherited loss at the cost of a backward pass: the cheap inherited scores are the features)
    "blocks1d": {"steps": 24000, "fraction": 1.0, "sampling": "uniform", "paths_per_step": 1,
                 "features": ("supernet_acc", "supernet_neg_loss")},
    "*": {"steps": 6000, "fraction": 1.0, "sampling": "uniform", "paths_per_step": 1,
          "features": ("supernet_acc", "supernet_neg_loss")},
}


def warmup_defaults(space) -> dict:
    """The default warm-up options of ``space`` (a copy of its :data:`WARMUP_DEFAULTS` entry)."""
    name = _spaces.get(space).name
    return copy.deepcopy(WARMUP_DEFAULTS.get(name, WARMUP_DEFAULTS["*"]))


def _resize(task, resolution: int | None):
    """``task`` with its images pooled to ``resolution`` (``None``/0, or not images: as it is)."""
    if not resolution:
        return task
    check_param("warmup", "resolution", resolution, kind=int, low=1)
    if len(task.input_shape) != 3:
        return task
    return task.downsample(resolution)


class _Cosine:
    """Cosine learning-rate decay over whichever budget runs out first: ``steps`` optimiser steps
    or ``max_seconds`` of wall time since ``start``."""

    def __init__(self, opt, lr: float, steps: int, max_seconds: float | None, start: float):
        self.opt, self.lr, self.steps = opt, lr, max(1, steps)
        self.max_seconds, self.start = max_seconds, start

    def _elapsed(self) -> float:
        return time.perf_counter() - self.start

    def out_of_time(self) -> bool:
        return self.max_seconds is not None and self._elapsed() > self.max_seconds

    def step(self, done: int) -> None:
        progress = done / self.steps
        if self.max_seconds is not None:
            progress = max(progress, self._elapsed() / self.max_seconds)
        lr = 0.5 * self.lr * (1.0 + math.cos(math.pi * min(1.0, progress)))
        for group in self.opt.param_groups:
            group["lr"] = lr


def make_scorer(supernet, space, task, sub, *, seed: int, device, batch_size: int,
                calib_size: int, val_size: int, **kwargs) -> SupernetScorer:
    """The scorer over ``supernet``: BN calibration examples from ``sub`` (the training subset),
    validation examples from ``task`` (its validation split), both drawn with ``seed``."""
    n = len(sub.y_train)
    calib = sub.batch(min(calib_size, n), split="train", seed=seed)
    val = task.batch(min(val_size, len(task.y_val)), split="val", seed=seed)
    return SupernetScorer(supernet, space, calib, val, device=device,
                          batch_size=max(batch_size, 256), **kwargs)


def warmup(space, task, fraction: float | None = None, steps: int | None = None,
           batch_size: int = 64, seed: int = 0, device: str | torch.device = "auto", *,
           lr: float = 3e-3, weight_decay: float = 1e-4, sampling: str | None = None,
           paths_per_step: int | None = None, path_dropout: float = 0.0,
           resolution: int | None = None, calib_size: int = 256, val_size: int = 512,
           sigeo_batches: int = 4, sigeo_lambdas: Sequence[float] = SIGEO_LAMBDAS,
           max_seconds: float | None = DEFAULT_MAX_SECONDS, progress: bool = True,
           state_dir=None, **supernet_kwargs) -> SupernetScorer:
    """Warm up the supernet of ``space`` on a fraction of ``task`` and return a scorer.

    Options left as ``None`` take the space's measured CPU setting (:data:`WARMUP_DEFAULTS`,
    from ``benchmarks/supernet-nb201.md`` and ``benchmarks/supernet-blocks1d.md``): with its
    defaults, ``warmup(space, task)`` takes at most ``max_seconds`` (9 minutes) on a 2-core CPU.

    Args:
        space: a space or its name (``"nb201"``, ``"blocks1d"``).
        task: a :class:`prednas.tasks.Task` or a task name.
        fraction: share of the training split used (``task.subset(fraction, seed)``), in (0, 1].
        steps: optimiser steps (at least 1), each on one batch.
        batch_size: examples per step.
        seed: seeds the supernet's initialisation, the subset, the batches and the architecture
            sampling; the global torch and NumPy RNGs are left as they were.
        device: ``"auto"`` picks CUDA when present.
        lr, weight_decay: AdamW with a cosine schedule and gradient clipping at 5; the schedule
            follows whichever runs out first, the steps or ``max_seconds``, so a warm-up cut
            short by its time cap still ends at a small learning rate.
        sampling: ``"uniform"`` (``space.sample``: SPOS) or ``"fair"`` (each edge's / slot's
            choices in turn from a shuffled cycle, so each is trained equally often: FairNAS).
        paths_per_step: architectures per step; their gradients on the same batch are averaged
            before the step (with ``sampling="fair"`` and 5 paths on nb201, every op of every
            edge is trained once per step: FairNAS's strict fairness).
        path_dropout: drop-path probability on the non-identity ops of nb201 cells (0: off).
        resolution: average-pool image tasks to at most this side for the supernet, its warm-up
            and its scores (:meth:`prednas.tasks.Task.downsample`; nb201's default 16 fits a
            CPU); ``0`` keeps the images as they are.
        calib_size: training examples (from the subset) for BN recalibration and for SiGeo's
            gradient statistics.
        val_size: held-out validation examples the inherited accuracy and loss are measured on.
        sigeo_batches, sigeo_lambdas: see :meth:`SupernetScorer.sigeo_terms`.
        max_seconds: stop the warm-up when its wall time passes this (``None``: no cap).
        progress: show a progress bar.
        state_dir: a directory holding a warm-up saved by :meth:`SupernetScorer.save` with the
            same settings: it is loaded instead of trained (a resumed search does not repeat its
            warm-up; the scorer's ``seconds`` is the original warm-up's). Saved with other
            settings, it is refused (:class:`~prednas.errors.IncompatibleArtifactError`).
        **supernet_kwargs: passed to ``space.build_supernet`` (for nb201 the supernet's width
            and depth; default ``C=8, N=2``).

    Returns:
        A :class:`SupernetScorer`; ``.seconds`` is the warm-up's cost.

    Raises:
        WarmupDiverged: more than ``max(10, steps // 4)`` steps had a non-finite loss.
    """
    space = _spaces.get(space)
    task = _tasks.get(task)
    defaults = warmup_defaults(space)
    fraction = defaults["fraction"] if fraction is None else fraction
    steps = defaults["steps"] if steps is None else steps
    sampling = defaults["sampling"] if sampling is None else sampling
    paths_per_step = defaults["paths_per_step"] if paths_per_step is None else paths_per_step
    supernet_kwargs = {**defaults.get("supernet", {}), **supernet_kwargs}
    if max_seconds is not None:
        check_param("warmup", "max_seconds", max_seconds, kind=(float, int), low=0.0,
                    low_open=True)
    task = _resize(task, defaults.get("resolution") if resolution is None else resolution)
    _check_warmup_params(space, fraction=fraction, steps=steps, batch_size=batch_size,
                         calib_size=calib_size, val_size=val_size, lr=lr, sampling=sampling,
                         paths_per_step=paths_per_step, path_dropout=path_dropout)
    dev = resolve_device(device)
    settings = {"space": space.name, "space_config": space.config(), "task": task.name,
                "task_examples": len(task.y_train), "fraction": fraction, "steps": steps,
                "batch_size": batch_size, "seed": seed, "lr": lr, "weight_decay": weight_decay,
                "sampling": sampling, "paths_per_step": paths_per_step,
                "path_dropout": path_dropout, "max_seconds": max_seconds,
                "input_shape": list(task.input_shape), "supernet_kwargs": dict(supernet_kwargs)}
    scorer_kw = dict(calib_size=calib_size, val_size=val_size, sigeo_batches=sigeo_batches,
                     sigeo_lambdas=sigeo_lambdas)
    if state_dir is not None and (Path(state_dir) / WARMUP_FILE).is_file():
        return _load_warmup(Path(state_dir), settings, space, task, dev, scorer_kw)
    start = time.perf_counter()
    sub = task.subset(fraction, seed=seed)
    rng = make_rng(seed)
    gen = torch.Generator().manual_seed(int(seed))
    drop_gen = torch.Generator().manual_seed(int(seed) + 1)
    n = len(sub.y_train)
    losses: list[float] = []
    supernet = build_supernet(space, task, seed, dev, **supernet_kwargs)
    x_train, y_train = sub.x_train.to(dev), sub.y_train.to(dev)
    params = [p for p in supernet.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    schedule = _Cosine(opt, lr, steps, max_seconds, start)
    loss_fn = nn.CrossEntropyLoss()
    sample = _sampler(space, sampling, rng)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=steps, desc=f"warm-up {space.name} supernet", leave=False)
    supernet.train()
    batches = _Batches(n, batch_size, gen)
    guard = _Guard(steps)
    block: list[float] = []
    try:
        with _path_dropout(supernet, path_dropout, drop_gen):
            for step in range(steps):
                idx = batches.next().to(dev)
                archs = [sample() for _ in range(paths_per_step)]
                loss = _path_step(supernet, archs, x_train[idx], y_train[idx], opt, params,
                                  loss_fn)
                schedule.step(step + 1)
                if not math.isfinite(loss):
                    guard.bad(step, loss)
                    continue
                block.append(loss)
                if len(block) == 20:
                    losses.append(float(np.mean(block)))
                    block = []
                    if bar is not None:
                        bar.set_postfix(loss=f"{losses[-1]:.3f}")
                if bar is not None:
                    bar.update(1)
                if schedule.out_of_time():
                    log.info("warm-up stopped after %d of %d steps (max_seconds=%s)", step + 1,
                             steps, max_seconds)
                    break
    finally:
        if bar is not None:
            bar.close()
    if block:
        losses.append(float(np.mean(block)))
    if guard.skipped:
        log.warning("warm-up skipped %d of %d steps with a non-finite loss", guard.skipped, steps)
    seconds = time.perf_counter() - start
    log.info("warmed up the %s supernet for %d steps on %d examples in %.1f s (last loss %.3f)",
             space.name, steps, n, seconds, losses[-1] if losses else math.nan)
    info = {"space": space.name, "task": task.name, "fraction": fraction, "steps": steps,
            "batch_size": batch_size, "seed": seed, "lr": lr, "weight_decay": weight_decay,
            "sampling": sampling, "paths_per_step": paths_per_step, "path_dropout": path_dropout,
            "train_examples": n, "input_shape": tuple(task.input_shape),
            "supernet_kwargs": dict(supernet_kwargs), "settings": settings}
    scorer = make_scorer(supernet, space, task, sub, seed=seed, device=dev,
                         batch_size=batch_size, seconds=seconds, loss_curve=losses, info=info,
                         **scorer_kw)
    if state_dir is not None:
        scorer.save(state_dir)
    return scorer


def _load_warmup(state_dir: Path, settings: dict, space, task, dev, scorer_kw) -> SupernetScorer:
    """The scorer of a warm-up saved in ``state_dir`` with ``settings`` (refused otherwise)."""
    path = state_dir / WARMUP_FILE
    state = load_checked_state(path, kind=_WARMUP_KIND, format_version=_WARMUP_FORMAT,
                               what="warm-up state", settings=settings,
                               hint="use another directory or the same settings")
    supernet = build_supernet(space, task, settings["seed"], dev, **settings["supernet_kwargs"])
    supernet.load_state_dict(state["supernet"])
    sub = task.subset(settings["fraction"], seed=settings["seed"])
    info = {**{k: settings[k] for k in ("fraction", "steps", "batch_size", "seed", "lr",
                                       "weight_decay", "sampling", "paths_per_step",
                                       "path_dropout", "supernet_kwargs")},
            "space": space.name, "task": task.name, "train_examples": len(sub.y_train),
            "input_shape": tuple(task.input_shape), "settings": settings,
            "loaded_from": str(path)}
    log.info("loaded the warmed-up %s supernet from %s (its warm-up took %.1f s)", space.name,
             path, state.get("seconds", math.nan))
    return make_scorer(supernet, space, task, sub, seed=settings["seed"], device=dev,
                       batch_size=settings["batch_size"], seconds=float(state.get("seconds", 0)),
                       loss_curve=state.get("loss_curve", []), info=info, **scorer_kw)

