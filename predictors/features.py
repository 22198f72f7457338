"""One feature pipeline for every space: encodings, proxy scores, supernet scores."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

import numpy as np
import torch

from prednas.errors import DataNotFoundError, InvalidParameterError, PredNASError

__all__ = ["FeaturePipeline"]

log = logging.getLogger(__name__)

#: ``proxy_table`` value that loads the table shipped with :mod:`proxies`
SHIPPED = "shipped"


def _get_space(space):
    import spaces

    return spaces.get(space) if isinstance(space, str) else space


class FeaturePipeline:
    """Turn architectures of any space into predictor inputs.

    Features, in order: the space's vector ``encoding`` (``"onehot"``/``"path"``, or ``None``),
    one column per proxy in ``proxies``, and a ``supernet`` column when ``supernet`` is given.
    Proxy values come from ``proxy_table`` (a ``proxies.ProxyTable``, a CSV path, or
    ``"shipped"`` for ``proxies.load_table(space, dataset)``); where the table lacks an
    architecture or a proxy and a ``task`` is given, they are computed live with
    ``proxies.score_arch`` on one fixed batch of the task (and cached); otherwise they are NaN.

    Args:
        space: a ``spaces.Space`` or its name.
        encoding: vector encoding, or ``None`` for no encoding columns.
        proxies: proxy names.
        proxy_table: cached proxy scores (see above).
        task: a ``prednas.tasks.Task`` for live proxy scores.
        supernet: an object with ``.score(archs) -> array`` (e.g. ``prednas.warmup(...)``).
        dataset: dataset of the shipped table.
        proxy_batch_size: batch size of live proxy scoring.
        device: device of live proxy scoring.
        build_kwargs: passed to ``space.build`` when scoring live (e.g. ``C=``/``N=``).
    """

    def __init__(self, space, encoding: str | None = "onehot", proxies: Sequence[str] = (),
                 proxy_table=None, task=None, supernet=None, dataset: str = "cifar10",
                 proxy_batch_size: int = 64, device: str = "auto",
                 build_kwargs: dict | None = None):
        self.space = _get_space(space)
        if encoding is not None:
            self.space.check_encoding(encoding)
        if isinstance(proxies, str):
            proxies = (proxies,)
        self.proxies = tuple(proxies)
        if len(set(self.proxies)) != len(self.proxies):
            raise InvalidParameterError(f"duplicate proxy names in {list(self.proxies)}")
        self.encoding = encoding
        self.dataset = dataset
        self.task = task
        self.supernet = supernet
        self.proxy_batch_size = proxy_batch_size
        self.device = device
        self.build_kwargs = dict(build_kwargs or {})
        self.table_spec = proxy_table if isinstance(proxy_table, (str, os.PathLike)) else None
        self._table = proxy_table if self.table_spec is None else None
        self._live: dict[str, dict[str, float]] = {}
        self._supernet_cache: dict[str, float] = {}
        self._batch = None
        if self.proxies and self.proxy_table is None and task is None:
            log.warning("FeaturePipeline: proxies %s requested without a proxy table or a task; "
                        "their features will be NaN", list(self.proxies))
        if self.encoding is None and not self.proxies and supernet is None:
            raise InvalidParameterError(
                "FeaturePipeline has no features: give an encoding, proxies or a supernet")
        self._enc_dim = (len(self.space.to_vector(self.space.default_arch(), encoding))
                         if encoding is not None else 0)

    # -- properties ---------------------------------------------------------------------------
    @property
    def proxy_table(self):
        """The proxy table (loaded on first use when given by name or path)."""
        if self._table is None and self.table_spec is not None:
            import proxies as proxies_pkg

            spec = os.fspath(self.table_spec)
            if spec == SHIPPED:
                self._table = proxies_pkg.load_table(space=self.space.name, dataset=self.dataset)
            else:
                if not os.path.exists(spec):
                    raise DataNotFoundError(f"proxy table {spec!r} does not exist")
                self._table = proxies_pkg.ProxyTable.from_csv(spec)
        return self._table

    @property
    def global_names(self) -> list[str]:
        """Names of the per-architecture (non-encoding) features."""
        return [f"proxy:{p}" for p in self.proxies] + (["supernet"] if self.uses_supernet else [])

    @property
    def uses_supernet(self) -> bool:
        return self.supernet is not None

    @property
    def feature_names(self) -> list[str]:
        enc = [f"{self.encoding}:{i}" for i in range(self._enc_dim)]
        return enc + self.global_names

    def __repr__(self) -> str:
        return (f"FeaturePipeline(space={self.space.name!r}, encoding={self.encoding!r}, "
                f"proxies={list(self.proxies)}, supernet={self.uses_supernet})")

    # -- features -----------------------------------------------------------------------------
    def _coerce(self, archs) -> list:
        if isinstance(archs, (str, bytes)) or not hasattr(archs, "__iter__"):
            archs = [archs]
        return [self.space.coerce(a) for a in archs]

    def encode(self, archs) -> np.ndarray:
        archs = self._coerce(archs)
        if self.encoding is None:
            return np.zeros((len(archs), 0))
        if not archs:
            return np.zeros((0, self._enc_dim))
        return np.stack([self.space.to_vector(a, self.encoding) for a in archs]).astype(np.float64)

    def proxy_features(self, archs) -> np.ndarray:
        """``(n, len(proxies))`` proxy scores; NaN where neither table nor task provides them."""
        archs = self._coerce(archs)
        out = np.full((len(archs), len(self.proxies)), np.nan)
        if not self.proxies or not archs:
            return out
        table = self.proxy_table
        keys = [str(a) for a in archs]
        in_names = [j for j, p in enumerate(self.proxies) if table is not None and p in table.names]
        if in_names:
            out[:, in_names] = table.lookup(keys, [self.proxies[j] for j in in_names])
        if self.task is None:
            if in_names and table is not None:
                absent = sum(k not in table for k in keys)
                if absent:
                    log.warning("%d of %d architectures are not in the proxy table and no task "
                                "was given to score them live; their proxy features are NaN",
                                absent, len(keys))
            return out
        for i, (arch, key) in enumerate(zip(archs, keys)):
            have = table is not None and key in table
            missing = [j for j in range(len(self.proxies)) if not have or j not in in_names]
            if missing:
                scores = self._live_scores(arch, key, [self.proxies[j] for j in missing])
                for j in missing:
                    out[i, j] = scores.get(self.proxies[j], np.nan)
        return out

    def _live_scores(self, arch, key: str, names: list[str]) -> dict[str, float]:
        cached = self._live.setdefault(key, {})
        todo = [n for n in names if n not in cached]
        if todo:
            import proxies as proxies_pkg

            if self._batch is None:
                self._batch = self.task.batch(n=self.proxy_batch_size, split="train", seed=0)
            x, y = self._batch
            try:
                scores = proxies_pkg.score_arch(self.space, arch, x, y, names=todo,
                                                num_classes=self.task.num_classes, seed=0,
                                                device=self.device, **self.build_kwargs)
            except PredNASError:
                raise
            except (RuntimeError, ValueError) as exc:  # a network that cannot be scored
                log.warning("live proxy scoring of %s failed: %s", key, exc)
                scores = {}
            cached.update({n: float(scores.get(n, np.nan)) for n in todo})
        return cached

    def supernet_features(self, archs) -> np.ndarray:
        archs = self._coerce(archs)
        if self.supernet is None:
            return np.zeros((len(archs), 0))
        keys = [str(a) for a in archs]
        todo = [a for a, k in zip(archs, keys) if k not in self._supernet_cache]
        if todo:
            scores = np.asarray(self.supernet.score(todo), dtype=np.float64).reshape(-1)
            if len(scores) != len(todo):
                raise PredNASError(f"supernet.score returned {len(scores)} scores for "
                                   f"{len(todo)} architectures")
            self._supernet_cache.update({str(a): float(s) for a, s in zip(todo, scores)})
        return np.array([[self._supernet_cache[k]] for k in keys], dtype=np.float64)

    def global_features(self, archs) -> np.ndarray:
        archs = self._coerce(archs)
        return np.concatenate([self.proxy_features(archs), self.supernet_features(archs)], axis=1)

    def transform(self, archs) -> np.ndarray:
        """Flat features ``(n, len(feature_names))``; NaN marks a missing proxy value."""
        archs = self._coerce(archs)
        return np.concatenate([self.encode(archs), self.global_features(archs)], axis=1)

    def graphs(self, archs) -> list:
        """One ``Data`` graph per arch with ``u`` (global features, shape ``(1, g)``) and
        ``flat`` (the :meth:`transform` row, shape ``(1, d)``) attached."""
        archs = self._coerce(archs)
        flat = self.transform(archs)
        g0 = self._enc_dim
        out = []
        for arch, row in zip(archs, flat):
            data = self.space.to_graph(arch)
            data.u = torch.as_tensor(row[g0:], dtype=torch.float32).reshape(1, -1)
            data.flat = torch.as_tensor(row, dtype=torch.float32).reshape(1, -1)
            out.append(data)
        return out

    def inputs_for(self, predictor, archs):
        """What ``predictor.predict`` takes: graphs when it needs them, else flat features."""
        if getattr(predictor, "needs_graphs", False):
            return self.graphs(archs)
        return self.transform(archs)

    # -- persistence --------------------------------------------------------------------------
    def config(self) -> dict:
        """A JSON-able description (without task, supernet or the table's contents)."""
        return {"space": self.space.name, "encoding": self.encoding, "proxies": list(self.proxies),
                "proxy_table": (os.fspath(self.table_spec) if self.table_spec is not None else
                                (SHIPPED if self._table is not None else None)),
                "dataset": self.dataset, "supernet": self.uses_supernet,
                "proxy_batch_size": self.proxy_batch_size, "build_kwargs": self.build_kwargs,
                "feature_names": self.feature_names}

    @classmethod
    def from_config(cls, cfg: dict, *, task=None, supernet=None, proxy_table=None,
                    device: str = "auto") -> FeaturePipeline:
        table = proxy_table if proxy_table is not None else cfg.get("proxy_table")
        return cls(cfg["space"], encoding=cfg.get("encoding"), proxies=cfg.get("proxies", ()),
                   proxy_table=table, task=task, supernet=supernet,
                   dataset=cfg.get("dataset", "cifar10"),
                   proxy_batch_size=cfg.get("proxy_batch_size", 64), device=device,
                   build_kwargs=cfg.get("build_kwargs"))
