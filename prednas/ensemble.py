"""Ensembles of trained networks: weights fitted on validation data, saved as one artifact.

>>> ens = prednas.ensemble.load("run/ensemble.pt")
>>> labels = ens.predict(x)            # class labels
>>> probs = ens.predict_proba(x)       # weighted average of the members' softmax outputs

The weights are non-negative and sum to one; :func:`fit_weights` chooses them to minimise the
validation negative log-likelihood of the averaged probabilities (a convex problem over the
simplex, solved by the EM fixed point ``w_i <- mean_n w_i p_i(y_n|x_n) / sum_j w_j p_j(y_n|x_n)``,
which stays on the simplex and never increases the NLL).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from prednas.errors import DataNotFoundError, IncompatibleArtifactError, InvalidParameterError
from prednas.utils import atomic_path, check_header

__all__ = ["Ensemble", "fit_weights", "load", "FORMAT_VERSION"]

FORMAT_VERSION = 1
_KIND = "prednas-ensemble"


def fit_weights(probs: np.ndarray, y: np.ndarray, iters: int = 500, tol: float = 1e-10) -> np.ndarray:
    """Simplex weights minimising the NLL of ``sum_i w_i probs[i]`` on labels ``y``.

    Args:
        probs: ``(members, n, classes)`` predicted probabilities of each member.
        y: ``(n,)`` integer labels.

    Returns:
        ``(members,)`` weights, each >= 0, summing to 1.
    """
    probs = np.asarray(probs, float)
    if probs.ndim != 3 or probs.shape[0] < 1:
        raise InvalidParameterError(
            f"probs must have shape (members, n, classes); got {probs.shape}")
    y = np.asarray(y, int)
    m = probs.shape[0]
    lik = np.clip(probs[:, np.arange(len(y)), y], 1e-12, None)  # (m, n)
    w = np.full(m, 1.0 / m)
    prev = np.inf
    for _ in range(iters):
        mix = w @ lik
        nll = -np.mean(np.log(mix))
        w = w * np.mean(lik / mix, axis=1)
        w = np.clip(w, 0.0, None)
        w /= w.sum()
        if prev - nll < tol:
            break
        prev = nll
    return w


class Ensemble(nn.Module):
    """A weighted average of member networks' probabilities.

    Args:
        members: trained networks mapping ``(B, *input_shape)`` to logits.
        weights: non-negative weights summing to one (default: uniform).
        meta: description saved with the artifact (space, architectures, input shape...).
    """

    def __init__(self, members: Sequence[nn.Module], weights: Sequence[float] | None = None,
                 meta: dict[str, Any] | None = None):
        super().__init__()
        if not members:
            raise InvalidParameterError("an Ensemble needs at least one member")
        self.members = nn.ModuleList(members)
        w = np.full(len(members), 1.0 / len(members)) if weights is None else np.asarray(
            weights, float)
        if w.shape != (len(members),) or (w < 0).any() or not np.isclose(w.sum(), 1.0):
            raise InvalidParameterError(
                f"ensemble weights must be {len(members)} non-negative numbers summing to 1; "
                f"got {w.tolist()}")
        self.register_buffer("weights", torch.as_tensor(w, dtype=torch.float32))
        self.meta = dict(meta or {})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Log of the weighted average probability (usable as logits)."""
        probs = sum(w * torch.softmax(m(x), dim=1) for w, m in zip(self.weights, self.members))
        return torch.log(probs.clamp_min(1e-12))

    @torch.no_grad()
    def predict_proba(self, x, batch_size: int = 1024) -> np.ndarray:
        was = self.training
        self.eval()
        x = torch.as_tensor(x, dtype=torch.float32)
        out = [torch.exp(self(x[i:i + batch_size])).cpu().numpy()
               for i in range(0, len(x), batch_size)]
        self.train(was)
        return np.concatenate(out) if out else np.zeros((0, 0))

    def predict(self, x, batch_size: int = 1024) -> np.ndarray:
        """Predicted class labels for ``x`` (array or tensor of shape ``(n, *input_shape)``)."""
        return self.predict_proba(x, batch_size).argmax(1)

    def save(self, path: str | os.PathLike) -> None:
        """Save as a PyTorch artifact that :func:`load` rebuilds (needs ``meta`` space/archs).

        The file holds tensors, numbers, strings, lists and dicts only, so :func:`load` reads it
        with ``torch.load(..., weights_only=True)``; ``meta`` must therefore be plain JSON values.
        """
        for key in ("space", "archs", "num_classes", "input_shape"):
            if key not in self.meta:
                raise InvalidParameterError(f"Ensemble.meta needs {key!r} to be saved")
        meta = _plain(self.meta, "Ensemble.meta")
        payload = {"kind": _KIND, "format": FORMAT_VERSION, "meta": meta,
                   "weights": self.weights.tolist(),
                   "states": [m.state_dict() for m in self.members]}
        with atomic_path(path) as tmp:
            torch.save(payload, tmp)


def _plain(value, where: str):
    """``value`` as plain JSON values (tuples become lists); anything else raises, naming it."""
    if value is None or type(value) in (bool, int, float, str):  # not numpy scalars
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        bad = [k for k in value if not isinstance(k, str)]
        if bad:
            raise InvalidParameterError(f"{where} has a non-string key {bad[0]!r}; metadata keys "
                                        "must be strings")
        return {k: _plain(v, f"{where}[{k!r}]") for k, v in value.items()}
    raise InvalidParameterError(
        f"{where} is a {type(value).__module__}.{type(value).__qualname__} ({value!r:.40}); "
        "metadata must be plain JSON values (str, int, float, bool, None, lists, dicts), "
        "e.g. int(x) for a numpy integer")


def load(path: str | os.PathLike, device: str = "cpu", space=None) -> Ensemble:
    """Load an ensemble saved by :meth:`Ensemble.save`; nothing in the file is executed.

    ``space`` is needed for a space not registered by name (made by :func:`spaces.from_model`):
    the space object the ensemble was trained in.

    The file is read with ``torch.load(..., weights_only=True)`` (tensors and plain values only)
    and its metadata is checked before any network is built; a foreign, corrupted or
    mismatched file raises :class:`IncompatibleArtifactError` naming what is wrong.
    """
    import spaces

    where = repr(str(path))
    if not os.path.exists(path):
        raise DataNotFoundError(f"ensemble artifact {where} does not exist")
    if os.path.isdir(path):
        raise IncompatibleArtifactError(f"{where} is a directory, not an ensemble artifact")
    try:
        payload = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - anything unreadable is not our artifact
        why = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        raise IncompatibleArtifactError(
            f"{where} is not a readable ensemble artifact ({why})") from None
    check_header(payload, kind=_KIND, version=FORMAT_VERSION, error=IncompatibleArtifactError,
                 where=where, what="prednas ensemble artifact")
    meta, weights, states = _check_payload(payload, where)
    space = spaces.restore(meta["space"], meta.get("space_config"), space,
                           error=IncompatibleArtifactError, where=where,
                           how="load(path, space=space)")
    members = []
    for i, (arch, state) in enumerate(zip(meta["archs"], states)):
        model = space.build(space.parse(arch), meta["num_classes"], tuple(meta["input_shape"]),
                            **(meta.get("build_kwargs") or {}))
        try:
            model.load_state_dict(state)
        except RuntimeError as exc:
            why = (str(exc).strip().splitlines() or [""])[0][:200]
            raise IncompatibleArtifactError(
                f"{where}: weights of member {i} do not fit architecture {arch!r} ({why})"
            ) from None
        members.append(model.to(device).eval())
    return Ensemble(members, weights, meta)


def _check_payload(payload: dict, where: str) -> tuple[dict, list, list]:
    """The metadata, weights and state dicts of a loaded payload, each checked for its type."""
    meta = payload.get("meta")
    if not isinstance(meta, dict):
        raise IncompatibleArtifactError(f"{where} is corrupted: its metadata is not a dict")

    def need(key: str, ok, what: str):
        if key not in meta:
            raise IncompatibleArtifactError(f"{where} is corrupted: metadata lacks {key!r}")
        if not ok(meta[key]):
            raise IncompatibleArtifactError(
                f"{where} is corrupted: metadata {key!r} must be {what}, got {meta[key]!r:.60}")

    def is_int(v) -> bool:
        return isinstance(v, int) and not isinstance(v, bool)

    need("space", lambda v: isinstance(v, str), "a space name")
    need("archs", lambda v: isinstance(v, list) and v and all(isinstance(a, str) for a in v),
         "a non-empty list of architecture strings")
    need("num_classes", lambda v: is_int(v) and v >= 1, "a positive int")
    need("input_shape", lambda v: isinstance(v, list) and v and all(is_int(d) and d >= 1
                                                                     for d in v),
         "a list of positive ints")
    if meta.get("build_kwargs") is not None:
        need("build_kwargs", lambda v: isinstance(v, dict), "a dict")
    if meta.get("space_config") is not None:
        need("space_config", lambda v: isinstance(v, dict), "a dict")
    n = len(meta["archs"])
    weights, states = payload.get("weights"), payload.get("states")
    if not (isinstance(weights, list) and len(weights) == n
            and all(isinstance(w, (int, float)) for w in weights)):
        raise IncompatibleArtifactError(
            f"{where} is corrupted: expected {n} member weights, got {str(weights)[:60]}")
    if not (isinstance(states, list) and len(states) == n
            and all(isinstance(s, dict) for s in states)):
        got = len(states) if isinstance(states, list) else type(states).__name__
        raise IncompatibleArtifactError(
            f"{where} is corrupted: expected {n} member state dicts, got {got}")
    return meta, weights, states
