"""The proxy engine: one model copy, shared passes, NaN on bad numerics, OOM retry.

:func:`score` copies the caller's model once and computes every requested proxy from a few shared
passes over the batch:

* **pass A** (train mode) runs the batch as two half-batches. Each half is one forward, an optional
  input-gradient backward of ``sum(logits)`` (``jacobian``: jacov, epe_nas) and one loss backward
  (``grads``: snip, grad_norm, plain, zico, and the activation-gradient hooks of ``fisher``).
  The two per-half gradients are what ZiCo needs; their sum is the batch gradient the others
  use. Forward hooks on the same pass collect binary activation codes (``codes``: nwot), the
  first example's feature maps (``features``: meco) and conv / linear FLOPs (``flops``).
  GraSP's Hessian-gradient product reuses the loss gradients, built with ``create_graph`` when
  ``grasp`` is requested, and costs one extra double backward.
* synflow and zen rewrite the weights and run their own small passes last, each after restoring
  the copy's initial state.

Global torch RNG state, grad mode and the cuDNN / determinism flags are restored on exit.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import time
from collections.abc import Callable, Iterable, Sequence

import numpy as np
import torch
from torch import nn

from prednas.errors import InvalidParameterError
from proxies._registry import REGISTRY, Proxy

__all__ = ["ProxyContext", "score", "score_arch", "score_separately", "forward_backward_seconds",
           "WEIGHT_LAYERS"]

log = logging.getLogger("proxies")

#: layers whose weight tensors proxies score (any parameter with >= 2 dims counts as a weight)
WEIGHT_LAYERS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear, nn.RNNBase)
_ACTIVATIONS = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.GELU, nn.SiLU, nn.ELU, nn.Hardswish, nn.Mish,
                nn.PReLU, nn.CELU, nn.SELU)
_NORMS = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm)
_POOLS = (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d, nn.AdaptiveMaxPool1d,
          nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d)


class ProxyNumericalError(ArithmeticError):
    """Raised inside a proxy when its value is undefined for this model (becomes NaN + warning)."""


def undefined(reason: str) -> float:
    """Signal from inside a proxy that its value is undefined for this model."""
    raise ProxyNumericalError(reason)


class ProxyContext:
    """Everything a proxy function may read; shared passes are computed once, on demand.

    Attributes:
        model: The working copy (never the caller's model).
        inputs: The batch on the model's device.
        targets: Its labels.
        loss_fn: ``loss_fn(logits, targets) -> scalar``.
        seed: Seed for the proxies that draw random numbers (zen).
    """

    def __init__(self, model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor,
                 loss_fn: Callable, seed: int, needs: Iterable[str],
                 source: nn.Module | None = None):
        self.model = model
        self.inputs = inputs
        self.targets = targets
        self.loss_fn = loss_fn
        self.seed = seed
        self.device = inputs.device
        self.needs = frozenset(needs)
        self.dtype = next((p.dtype for p in model.parameters()), torch.float32)
        self.weight_names = [n for n, p in model.named_parameters() if p.dim() >= 2]
        # the caller's model is never written to, so its tensors serve as the pristine state
        self._init_state = ({k: v.detach() for k, v in source.state_dict().items()}
                            if source is not None else
                            {k: v.detach().clone() for k, v in model.state_dict().items()})
        self.pass_seconds = 0.0
        self._shared: dict | None = None

    # -- state ------------------------------------------------------------------------------
    @property
    def weights(self) -> list[torch.Tensor]:
        """The weight tensors (parameters with >= 2 dims) of the working copy, in a fixed order."""
        params = dict(self.model.named_parameters())
        return [params[n] for n in self.weight_names]

    def init_weights(self) -> list[torch.Tensor]:
        """The weights as they were when the copy was made."""
        return [self._init_state[n] for n in self.weight_names]

    def restore(self) -> None:
        """Put the working copy back in its initial state (dtype, values, buffers, no grads)."""
        model = self.model
        if any(p.dtype != self.dtype for p in model.parameters()):
            model.to(self.dtype)
        live = model.state_dict()
        dst = [live[k] for k in self._init_state]
        src = list(self._init_state.values())
        with torch.no_grad():
            if dst and all(d.dtype == s.dtype and d.device == s.device for d, s in zip(dst, src)):
                torch._foreach_copy_(dst, src)
            else:
                model.load_state_dict(self._init_state)
        for p in model.parameters():
            p.grad = None

    # -- shared pass A ------------------------------------------------------------------------
    def shared(self) -> dict:
        """Results of the shared pass (run on first use)."""
        if self._shared is None:
            t0 = time.perf_counter()
            self._shared = self._run_shared_pass()
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            self.pass_seconds = time.perf_counter() - t0
        return self._shared

    def _run_shared_pass(self) -> dict:
        needs = self.needs
        model = self.model
        model.train()
        want_grads = bool(needs & {"grads", "fisher", "hvp"})
        want_hvp = "hvp" in needs
        exact_hvp = want_hvp  # a finite-difference H g was tried and disagreed (ReLU kinks)
        want_jac = "jacobian" in needs
        want_backward = want_grads or want_jac
        x, y = self.inputs, self.targets
        n = len(x)
        splits = [slice(0, n // 2), slice(n // 2, n)] if n >= 2 else [slice(0, n)]
        weights = self.weights
        out: dict = {"splits": len(splits)}
        st = _HookState()
        st.n_halves = len(splits)
        handles = self._install_hooks(st)
        half_grads: list[list[torch.Tensor]] = []
        graph_grads: list[tuple] = []
        jacs: list[torch.Tensor] = []
        ctx_flags = (_double_backward_flags(model, self.device) if exact_hvp
                     else contextlib.nullcontext())
        try:
            with ctx_flags, torch.set_grad_enabled(want_backward):
                for k, sl in enumerate(splits):
                    st.half = k
                    st.phase = "forward"
                    xs = x[sl].detach().clone().requires_grad_(want_jac)
                    logits = model(xs)
                    if want_jac:
                        st.phase = "jacobian"
                        (jx,) = torch.autograd.grad(logits.sum(), xs, retain_graph=want_grads)
                        jacs.append(jx.reshape(len(jx), -1))
                    if want_grads:
                        st.phase = "loss"
                        loss = self.loss_fn(logits, y[sl])
                        grads = torch.autograd.grad(loss, weights, create_graph=exact_hvp,
                                                    allow_unused=True)
                        grads = tuple(torch.zeros_like(w) if g is None else g
                                      for g, w in zip(grads, weights))
                        if exact_hvp:
                            graph_grads.append(grads)
                        half_grads.append([g.detach() for g in grads])
                    del logits
                if exact_hvp:
                    st.phase = "hvp"
                    total = [sum(g[i] for g in half_grads) for i in range(len(weights))]
                    z = sum((sum(g[i] for g in graph_grads) * total[i]).sum()
                            for i in range(len(weights)))
                    hg = torch.autograd.grad(z, weights, allow_unused=True)
                    out["hvp"] = [torch.zeros_like(w) if h is None else h.detach()
                                  for h, w in zip(hg, weights)]
                    del graph_grads, z
        finally:
            for h in handles:
                h.remove()
        if want_grads:
            out["half_grads"] = half_grads
            out["grads"] = [sum(g[i] for g in half_grads) for i in range(len(weights))]
        if want_jac:
            out["jacobian"] = torch.cat(jacs, 0)
        if "fisher" in needs:
            out["fisher"] = st.fisher_sum
        if "codes" in needs:
            out["codes_kernel"] = st.kernel()
            out["codes_error"] = st.code_error
        if "features" in needs:
            out["features"] = st.features
        if "flops" in needs:
            out["flops"] = st.flops
        return out

    def _install_hooks(self, st: _HookState) -> list:
        handles = []
        needs = self.needs
        for mod in self.model.modules():
            if "fisher" in needs and isinstance(mod, WEIGHT_LAYERS):
                handles.append(mod.register_forward_hook(st.fisher_hook(mod)))
            if "codes" in needs:
                if isinstance(mod, _ACTIVATIONS) or isinstance(mod, nn.RNNBase):
                    handles.append(mod.register_forward_hook(st.code_hook))
                elif isinstance(mod, (nn.TransformerEncoderLayer, nn.TransformerDecoderLayer)) \
                        and not isinstance(getattr(mod, "activation", None), nn.Module):
                    # the FFN's ReLU is functional: its code is the sign of linear1's output
                    handles.append(mod.linear1.register_forward_hook(st.code_hook))
            if "features" in needs:
                handles.append(mod.register_forward_hook(st.feature_hook))
            if "flops" in needs and isinstance(mod, (nn.modules.conv._ConvNd, nn.Linear)):
                handles.append(mod.register_forward_hook(st.flops_hook))
        return handles


class _HookState:
    """Mutable state the pass-A hooks write into."""

    def __init__(self):
        self.half = 0
        self.phase = "forward"
        self.fisher_sum: torch.Tensor | None = None
        self.n_halves = 1
        self._codes0: list[torch.Tensor | None] = []
        self._k: torch.Tensor | None = None
        self._idx = 0
        self._last_half = -1
        self.code_error: str | None = None
        self.features: list[torch.Tensor] = []
        self.flops = 0

    # fisher: per half-batch, sum_c fan_in * 0.5 * mean_n (sum_pos act * dL/dact)^2, summed over
    # the halves and the layers (see proxies/fisher.py)
    def fisher_hook(self, module: nn.Module):
        conv = isinstance(module, nn.modules.conv._ConvNd)
        channel_dim = 1 if conv else -1
        time_major = isinstance(module, nn.RNNBase) and not module.batch_first

        def hook(mod, inputs, output):
            if self.phase != "forward":
                return
            act = output[0] if isinstance(output, tuple) else output
            if not (isinstance(act, torch.Tensor) and act.requires_grad):
                return
            saved = act.detach()
            fan_in = fisher_fan_in(mod, saved.shape[channel_dim])

            def on_grad(grad):
                if self.phase != "loss":
                    return
                prod = saved * grad.detach()
                if time_major and prod.dim() == 3:  # (L, N, H) -> (N, L, H)
                    prod = prod.transpose(0, 1)
                if prod.dim() > 2:
                    cd = channel_dim % prod.dim()
                    dims = [d for d in range(1, prod.dim()) if d != cd]
                    prod = prod.sum(dims)
                # (n, channels): the reference's del_c = 0.5 * mean_n g_nc^2 of this half,
                # broadcast to the fan_in weights of each channel and summed
                val = prod.double().pow(2).sum() * (fan_in / (2.0 * prod.shape[0]))
                self.fisher_sum = val if self.fisher_sum is None else self.fisher_sum + val

            act.register_hook(on_grad)

        return hook

    # nwot: K = C C^T + (1 - C)(1 - C)^T = 2 C C^T - r 1^T - 1 r^T + D over every activation
    # unit, for the whole batch (r = active units per example, D = units)
    def code_hook(self, module, inputs, output):
        if self.phase != "forward":
            return
        if self._last_half != self.half:
            self._last_half, self._idx = self.half, 0
        act = output[0] if isinstance(output, tuple) else output
        c = act.detach().reshape(act.shape[0], -1) > 0
        idx, self._idx = self._idx, self._idx + 1
        if self.half == 0:
            self._codes0.append(c)
            if self.n_halves > 1:
                return
        else:
            if idx >= len(self._codes0) or self._codes0[idx].shape[1] != c.shape[1]:
                self.code_error = "the two half-batches ran different activation layers"
                return
            c = torch.cat([self._codes0[idx], c], 0)
            self._codes0[idx] = None
        c = c.float()
        r = c.sum(1)
        k = (2.0 * (c @ c.T) - r[:, None] - r[None, :] + c.shape[1]).double()
        self._k = k if self._k is None else self._k + k

    def kernel(self) -> torch.Tensor | None:
        return self._k

    # flops: 2 per multiply-accumulate of every conv / linear layer, per example
    def flops_hook(self, module, inputs, output):
        if self.phase != "forward" or self.half != 0:
            return
        if isinstance(module, nn.Linear):
            per_out = module.in_features
        else:
            per_out = (module.in_channels // module.groups) * math.prod(module.kernel_size)
        self.flops += 2 * per_out * (output.numel() // max(1, output.shape[0]))

    # meco: the first example's feature map of every module, as (channels, positions)
    def feature_hook(self, module, inputs, output):
        if self.phase != "forward" or self.half != 0:
            return
        act = output[0] if isinstance(output, tuple) else output
        if not isinstance(act, torch.Tensor) or act.dim() < 3:
            return
        f = act[0].detach().reshape(act.shape[1], -1)
        if f.shape[1] >= 2:
            self.features.append(f.float())


def fisher_fan_in(module: nn.Module, out_units: int) -> float:
    """Weights feeding one output unit of ``module`` (fisher's per-channel weighting).

    Conv: ``in_channels / groups * prod(kernel_size)`` (``weight.shape[1:]``); linear:
    ``in_features``. Recurrent: the weights of the last layer (every direction; input-hidden,
    hidden-hidden and LSTM projection matrices) divided by the ``out_units`` features of the
    output sequence, e.g. ``4 * (input_size + hidden_size)`` for an LSTM without projection.
    """
    if isinstance(module, nn.RNNBase):
        last = f"_l{module.num_layers - 1}"
        total = sum(p.numel() for name, p in module.named_parameters(recurse=False)
                    if p.dim() >= 2 and (name.endswith(last) or name.endswith(last + "_reverse")))
        return total / max(1, out_units)
    weight = getattr(module, "weight", None)
    if not isinstance(weight, torch.Tensor) or weight.dim() < 2:
        return 1.0
    return float(math.prod(weight.shape[1:]))


@contextlib.contextmanager
def _double_backward_flags(model: nn.Module, device: torch.device):
    """cuDNN RNNs and fused attention kernels have no double backward: use the plain kernels."""
    with contextlib.ExitStack() as stack:
        if device.type == "cuda" and any(isinstance(m, nn.RNNBase) for m in model.modules()):
            stack.enter_context(torch.backends.cudnn.flags(enabled=False))
        try:
            from torch.nn.attention import SDPBackend, sdpa_kernel

            stack.enter_context(sdpa_kernel([SDPBackend.MATH]))
        except ImportError:  # pragma: no cover - old torch
            pass
        yield


@contextlib.contextmanager
def _preserved_torch_state(device: torch.device):
    """Restore global RNG, grad mode and backend flags however the block exits.

    Inside, TensorFloat-32 is off on a GPU: proxies are full-precision float32 on every device,
    as their authors computed them (with TF32 on, epe_nas and zico on an H200 were 0.15% from
    their CPU values)."""
    flags = (torch.backends.cudnn.enabled, torch.backends.cudnn.benchmark,
             torch.backends.cudnn.deterministic, torch.are_deterministic_algorithms_enabled(),
             torch.is_deterministic_algorithms_warn_only_enabled())
    tf32 = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    grad = torch.is_grad_enabled()
    devices = [device] if device.type == "cuda" else []
    try:
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
        with torch.random.fork_rng(devices=devices):
            yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = tf32
        (torch.backends.cudnn.enabled, torch.backends.cudnn.benchmark,
         torch.backends.cudnn.deterministic) = flags[:3]
        if (torch.are_deterministic_algorithms_enabled(),
                torch.is_deterministic_algorithms_warn_only_enabled()) != flags[3:]:
            torch.use_deterministic_algorithms(flags[3], warn_only=flags[4])
        torch.set_grad_enabled(grad)


def _resolve_names(names: str | Sequence[str] | None) -> list[Proxy]:
    if names is None:
        names = REGISTRY.names()
    elif isinstance(names, str):
        names = [names]
    seen, out = set(), []
    for n in names:
        p = REGISTRY.get(n)
        if p.name not in seen:
            seen.add(p.name)
            out.append(p)
    return out


def _model_device(model: nn.Module) -> torch.device:
    for t in model.parameters():
        return t.device
    for t in model.buffers():
        return t.device
    return torch.device("cpu")


def _is_oom(exc: BaseException) -> bool:
    oom = getattr(torch, "OutOfMemoryError", None) or getattr(torch.cuda, "OutOfMemoryError", None)
    return (oom is not None and isinstance(exc, oom)) or "out of memory" in str(exc).lower()


def _as_float(value) -> float:
    if isinstance(value, torch.Tensor):
        value = value.detach().double().item()
    return float(value)


def _run(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, plist: list[Proxy],
         loss_fn: Callable, seed: int, timed: bool, source: nn.Module | None = None
         ) -> tuple[dict[str, float], dict[str, float]]:
    needs = frozenset().union(*(p.needs for p in plist)) if plist else frozenset()
    ctx = ProxyContext(model, inputs, targets, loss_fn, seed, needs, source=source)
    values: dict[str, float] = {}
    seconds: dict[str, float] = {}
    users = [p for p in plist if p.needs]
    if users:
        try:
            ctx.shared()
        except Exception as exc:  # noqa: BLE001 - numerically bad model -> NaN for its users
            if _is_oom(exc):
                raise
            _warn_nan(",".join(p.name for p in users), f"the shared pass failed: {exc}")
            for p in users:
                values[p.name], seconds[p.name] = math.nan, 0.0
        share = ctx.pass_seconds / len(users)
    for p in sorted(plist, key=lambda p: p.order):
        if p.name in values:
            continue
        t0 = time.perf_counter()
        try:
            v = _as_float(p(ctx))
            if not math.isfinite(v):
                _warn_nan(p.name, f"the score is {v}")
                v = math.nan
        except ProxyNumericalError as exc:
            _warn_nan(p.name, str(exc))
            v = math.nan
        except (RuntimeError, ValueError, ArithmeticError, np.linalg.LinAlgError) as exc:
            if _is_oom(exc):
                raise
            _warn_nan(p.name, f"{type(exc).__name__}: {exc}")
            v = math.nan
        if timed and inputs.device.type == "cuda":
            torch.cuda.synchronize(inputs.device)
        values[p.name] = v
        seconds[p.name] = time.perf_counter() - t0 + (share if p.needs else 0.0)
    return {p.name: values[p.name] for p in plist}, {p.name: seconds[p.name] for p in plist}


def _warn_nan(name: str, reason: str) -> None:
    log.warning("proxy %s is NaN for this model: %s", name, reason)


def score(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor,
          names: str | Sequence[str] | None = None, loss_fn: Callable | None = None, *,
          seed: int = 0, return_seconds: bool = False):
    """Compute zero-cost proxies of ``model`` on one batch, sharing passes between them.

    Args:
        model: The network; it is copied once and never modified (parameters, buffers, grads).
        inputs: A batch of inputs (moved to the model's device).
        targets: Integer class labels of the batch.
        names: Proxy names (default: every registered proxy).
        loss_fn: ``loss_fn(logits, targets)``; cross-entropy by default.
        seed: Seed of the random draws some proxies make (zen); global RNG is left untouched.
        return_seconds: Also return per-proxy seconds (shared passes split evenly among users).

    Returns:
        ``{name: score}`` with every score higher-is-better, NaN (and a logged warning) where a
        proxy is undefined or numerically bad for this model; with ``return_seconds`` a pair
        ``(scores, seconds)``.

    Raises:
        UnknownNameError: An unknown proxy name (the message lists the valid ones).
    """
    plist = _resolve_names(names)
    if not isinstance(inputs, torch.Tensor) or not isinstance(targets, torch.Tensor):
        raise InvalidParameterError("proxies.score needs torch tensors for inputs and targets")
    if len(inputs) != len(targets) or len(inputs) == 0:
        raise InvalidParameterError(
            f"inputs and targets must be non-empty and of equal length; got {len(inputs)} and "
            f"{len(targets)}")
    loss_fn = loss_fn or nn.functional.cross_entropy
    device = _model_device(model)
    x, y = inputs.to(device), targets.to(device)
    with _preserved_torch_state(device):
        torch.manual_seed(seed)
        work = copy.deepcopy(model)
        for p in work.parameters():
            p.grad = None
            p.requires_grad_(True)
        while True:
            try:
                values, seconds = _run(work, x, y, plist, loss_fn, seed, return_seconds,
                                       source=model)
                break
            except Exception as exc:  # noqa: BLE001
                if not _is_oom(exc):
                    raise
                if device.type == "cuda":
                    torch.cuda.empty_cache()
                if len(x) < 4:
                    log.warning("out of memory even with a batch of %d; every proxy is NaN", len(x))
                    values = {p.name: math.nan for p in plist}
                    seconds = {p.name: 0.0 for p in plist}
                    break
                log.warning("out of memory with a batch of %d; retrying with %d", len(x),
                            len(x) // 2)
                x, y = x[: len(x) // 2], y[: len(y) // 2]
                work = copy.deepcopy(model)
                for p in work.parameters():
                    p.grad = None
                    p.requires_grad_(True)
        del work
    return (values, seconds) if return_seconds else values


def score_separately(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor,
                     names: str | Sequence[str] | None = None, loss_fn: Callable | None = None, *,
                     seed: int = 0) -> dict[str, float]:
    """The reference way: every proxy on its own fresh copy with its own passes (for timing)."""
    out: dict[str, float] = {}
    for p in _resolve_names(names):
        out.update(score(model, inputs, targets, [p.name], loss_fn, seed=seed))
    return out


def forward_backward_seconds(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor,
                             loss_fn: Callable | None = None, repeats: int = 3) -> float:
    """Median wall time of one training-mode forward + loss backward of the batch (on a copy)."""
    loss_fn = loss_fn or nn.functional.cross_entropy
    device = _model_device(model)
    x, y = inputs.to(device), targets.to(device)
    times = []
    with _preserved_torch_state(device):
        work = copy.deepcopy(model)
        work.train()
        for _ in range(repeats):
            t0 = time.perf_counter()
            with torch.enable_grad():
                loss = loss_fn(work(x), y)
                loss.backward()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            times.append(time.perf_counter() - t0)
            work.zero_grad(set_to_none=True)
    return float(np.median(times))


def score_arch(space, arch, inputs: torch.Tensor, targets: torch.Tensor,
               names: str | Sequence[str] | None = None, num_classes: int = 10, seed: int = 0,
               device: str | torch.device = "auto", loss_fn: Callable | None = None,
               return_seconds: bool = False, **build_kwargs):
    """Build ``arch`` of ``space`` with a fixed init seed and :func:`score` it.

    Args:
        space: A space object or name (``"nb201"``, ``"blocks1d"``).
        arch: Architecture object or string.
        inputs: Batch of inputs; its per-example shape is the network's input shape.
        targets: Labels of the batch.
        names: Proxy names (default: all).
        num_classes: Classifier outputs.
        seed: Initialisation seed (the global RNG is restored afterwards).
        device: ``"auto"``, ``"cpu"``, ``"cuda"``...
        loss_fn: Loss for the gradient proxies (cross-entropy by default).
        return_seconds: As in :func:`score`.
        **build_kwargs: Passed to ``space.build`` (e.g. ``C=4, N=1`` for nb201).
    """
    import spaces
    from prednas.utils import resolve_device, torch_seed

    if isinstance(space, str):
        space = spaces.get(space)
    dev = resolve_device(device)
    with torch_seed(seed, dev):
        model = space.build(space.coerce(arch), num_classes, tuple(inputs.shape[1:]),
                            **build_kwargs)
    model.to(dev)
    return score(model, inputs, targets, names, loss_fn, seed=seed, return_seconds=return_seconds)
