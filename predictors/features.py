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
#: ``proxy_table`` value: the shipped table when one exists for the space and dataset, else none
AUTO = "auto"


def shipped_table_exists(space_name: str, dataset: str) -> bool:
    """Whether :mod:`proxies` ships a proxy table for ``space_name`` and ``dataset``."""
    from importlib import resources

    return (resources.files("proxies") / "data" / f"{space_name}-{dataset}.csv.gz").is_file()


def load_proxy_table(spec, space_name: str, dataset: str = "cifar10"):
    """A ``proxies.ProxyTable`` from ``spec``: a table (returned as is), ``"shipped"`` (the table
    :mod:`proxies` ships for the space and dataset; it must exist), ``"auto"`` (that table when it
    exists, else ``None``), a CSV path, or ``None``."""
    import proxies as proxies_pkg

    if spec is None or not isinstance(spec, (str, os.PathLike)):
        return spec
    spec = os.fspath(spec)
    if spec == AUTO:
        spec = SHIPPED if shipped_table_exists(space_name, dataset) else None
        if spec is None:
            return None
    if spec == SHIPPED:
        return proxies_pkg.load_table(space=space_name, dataset=dataset)
    if not os.path.isfile(spec):
        raise DataNotFoundError(f"proxy table {spec!r} does not exist or is not a file")
    return proxies_pkg.ProxyTable.from_csv(spec)


def attach_features(space, archs, flat: np.ndarray, enc_dim: int) -> list:
    """One ``space.to_graph`` graph per arch, with its feature row attached: ``u`` (the global
    features after the first ``enc_dim`` encoding columns, shape ``(1, g)``) and ``flat`` (the whole
    row, shape ``(1, d)``), as graph predictors and ensembles with graph members take them."""
    out = []
    for arch, row in zip(archs, flat, strict=True):
        data = space.to_graph(arch)
        data.u = torch.as_tensor(row[enc_dim:], dtype=torch.float32).reshape(1, -1)
        data.flat = torch.as_tensor(row, dtype=torch.float32).reshape(1, -1)
        out.append(data)
    return out


def _get_space(space):
    import spaces

    return spaces.get(space) if isinstance(space, str) else space


class FeaturePipeline:
    """Turn architectures of any space into predictor inputs.

    Features, in order: the space's vector ``encoding`` (``"onehot"``/``"path"``, several of them,
    or ``None``), one column per proxy in ``proxies``, and, when ``supernet`` is given, either one
    ``supernet`` column (``supernet.score``: the inherited accuracy) or, with
    ``supernet_features``, one ``supernet:<name>`` column per named supernet score
    (``supernet.features(archs, names)``: ``supernet_acc``, ``supernet_neg_loss``, the SiGeo
    terms ``sigeo_zico``/``sigeo_fr``/``sigeo_neg_loss``, ``sigeo``, and ``stnas_log_prob`` after
    ST-NAS; see :mod:`prednas.supernet`). Proxy values come from ``proxy_table`` (a
    ``proxies.ProxyTable``, a CSV path,
    ``"shipped"`` for ``proxies.load_table(space, dataset)``, or ``"auto"``: the shipped table when
    one exists); where the table lacks an architecture or a proxy and a ``task`` is given, they are
    computed live with ``proxies.score_arch`` on one fixed batch of the task (drawn and scored with
    ``proxy_seed``, the same in pretraining, ranking and search) and cached; otherwise they are NaN.
    Every path that makes predictor inputs (``prednas pretrain``, ``prednas rank``, the search's
    filter) goes through this class, so a predictor always sees the features it was trained on.

    Args:
        space: a ``spaces.Space`` or its name.
        encoding: vector encoding(s), or ``None`` for no encoding columns.
        proxies: proxy names.
        proxy_table: cached proxy scores (see above).
        task: a ``prednas.tasks.Task`` for live proxy scores.
        supernet: an object with ``.score(archs) -> array`` (e.g. ``prednas.warmup(...)``).
        supernet_features: names of supernet scores, one column each (aliases such as
            ``inherited_acc`` are resolved); ``None`` keeps the single ``supernet`` column.
        dataset: dataset of the shipped table.
        proxy_batch_size: batch size of live proxy scoring.
        device: device of live proxy scoring.
        build_kwargs: passed to ``space.build`` when scoring live (e.g. ``C=``/``N=``).
        proxy_seed: seed of the live-scoring batch and of the scored networks' initialisation.
        warn_missing: log a warning when architectures lack table values and no task can score
            them (off where NaN features are expected, as in the search's first stage).
    """

    def __init__(self, space, encoding: str | Sequence[str] | None = "onehot",
                 proxies: Sequence[str] = (), proxy_table=None, task=None, supernet=None,
                 dataset: str = "cifar10", proxy_batch_size: int = 64, device: str = "auto",
                 build_kwargs: dict | None = None, proxy_seed: int = 0, warn_missing: bool = True,
                 supernet_features: Sequence[str] | None = None):
        self.space = _get_space(space)
        encodings = ((encoding,) if isinstance(encoding, str) else
                     tuple(encoding) if encoding is not None else ())
        for e in encodings:
            self.space.check_encoding(e)
        self.encodings = encodings
        if proxy_table == AUTO:
            proxy_table = SHIPPED if shipped_table_exists(self.space.name, dataset) else None
        if isinstance(proxies, str):
            proxies = (proxies,)
        self.proxies = tuple(proxies)
        if len(set(self.proxies)) != len(self.proxies):
            raise InvalidParameterError(f"duplicate proxy names in {list(self.proxies)}")
        self.encoding = encoding if isinstance(encoding, str) or encoding is None else encodings
        self.dataset = dataset
        self.proxy_seed = int(proxy_seed)
        self.warn_missing = warn_missing
        self.task = task
        self.supernet = supernet
        self.supernet_features = self._resolve_supernet_features(supernet, supernet_features)
        self.proxy_batch_size = proxy_batch_size
        self.device = device
        self.build_kwargs = dict(build_kwargs or {})
        self.table_spec = proxy_table if isinstance(proxy_table, (str, os.PathLike)) else None
        self._table = proxy_table if self.table_spec is None else None
        self._live: dict[str, dict[str, float]] = {}
        self._supernet_cache: dict[str, np.ndarray] = {}
        self._batch = None
        self._rows: dict[str, np.ndarray] = {}
        if self.proxies and self.proxy_table is None and task is None:
            log.warning("FeaturePipeline: proxies %s requested without a proxy table or a task; "
                        "their features will be NaN", list(self.proxies))
        if not self.encodings and not self.proxies and supernet is None:
            raise InvalidParameterError(
                "FeaturePipeline has no features: give an encoding, proxies or a supernet")
        arch0 = self.space.default_arch()
        self._enc_dims = [len(self.space.to_vector(arch0, e)) for e in self.encodings]
        self._enc_dim = sum(self._enc_dims)

    @staticmethod
    def _resolve_supernet_features(supernet, names) -> tuple[str, ...] | None:
        if names is None:
            return None
        if isinstance(names, str):
            names = (names,)
        if supernet is None:
            raise InvalidParameterError(
                f"FeaturePipeline got supernet_features={list(names)} but no supernet; pass "
                "supernet=prednas.warmup(...) (or a SupernetScores file)")
        from prednas.supernet import resolve_feature_names

        available = getattr(supernet, "feature_names", None)
        if available is None or not callable(getattr(supernet, "features", None)):
            raise InvalidParameterError(
                f"FeaturePipeline got supernet_features={list(names)}, but the supernet "
                f"{type(supernet).__name__} has no features()/feature_names")
        out = tuple(resolve_feature_names(names, tuple(available)))
        if len(set(out)) != len(out):
            raise InvalidParameterError(f"duplicate supernet feature names in {list(names)}")
        return out

    # -- properties ---------------------------------------------------------------------------
    @property
    def proxy_table(self):
        """The proxy table (loaded on first use when given by name or path)."""
        if self._table is None and self.table_spec is not None:
            self._table = load_proxy_table(self.table_spec, self.space.name, self.dataset)
        return self._table

    @property
    def global_names(self) -> list[str]:
        """Names of the per-architecture (non-encoding) features."""
        if not self.uses_supernet:
            sn = []
        elif self.supernet_features is None:
            sn = ["supernet"]
        else:
            sn = [f"supernet:{n}" for n in self.supernet_features]
        return [f"proxy:{p}" for p in self.proxies] + sn

    @property
    def uses_supernet(self) -> bool:
        return self.supernet is not None

    @property
    def feature_names(self) -> list[str]:
        enc = [f"{e}:{i}" for e, d in zip(self.encodings, self._enc_dims) for i in range(d)]
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
        if not self.encodings or not archs:
            return np.zeros((len(archs), self._enc_dim))
        return np.concatenate([self.space.to_vectors(archs, e) for e in self.encodings],
                              axis=1).astype(np.float64)

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
                if absent and self.warn_missing:
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
                self._batch = self.task.batch(n=self.proxy_batch_size, split="train",
                                              seed=self.proxy_seed)
            x, y = self._batch
            # proxies.score_arch returns NaN (with a warning) for a proxy that is undefined on a
            # network; anything it raises is a real error and propagates
            scores = proxies_pkg.score_arch(self.space, arch, x, y, names=todo,
                                            num_classes=self.task.num_classes,
                                            seed=self.proxy_seed, device=self.device,
                                            **self.build_kwargs)
            cached.update({n: float(scores.get(n, np.nan)) for n in todo})
        return cached

    def supernet_columns(self, archs) -> np.ndarray:
        """``(n, s)`` supernet scores: the ``supernet`` column, or one per ``supernet_features``."""
        archs = self._coerce(archs)
        if self.supernet is None:
            return np.zeros((len(archs), 0))
        width = 1 if self.supernet_features is None else len(self.supernet_features)
        keys = [str(a) for a in archs]
        todo = list({k: a for a, k in zip(archs, keys) if k not in self._supernet_cache}.values())
        if todo:
            if self.supernet_features is None:
                scores = np.asarray(self.supernet.score(todo), dtype=np.float64)
            else:
                scores = np.asarray(self.supernet.features(todo, list(self.supernet_features)),
                                    dtype=np.float64)
            if scores.size != len(todo) * width:
                raise PredNASError(f"the supernet returned {scores.size} scores for "
                                   f"{len(todo)} architectures x {width} features")
            scores = scores.reshape(len(todo), width)
            self._supernet_cache.update({str(a): s for a, s in zip(todo, scores)})
        return np.array([self._supernet_cache[k] for k in keys],
                        dtype=np.float64).reshape(len(keys), width)

    def global_features(self, archs) -> np.ndarray:
        archs = self._coerce(archs)
        return np.concatenate([self.proxy_features(archs), self.supernet_columns(archs)], axis=1)

    def transform(self, archs) -> np.ndarray:
        """Flat features ``(n, len(feature_names))``; NaN marks a missing proxy value. Rows are
        cached per architecture (every feature is deterministic)."""
        archs = self._coerce(archs)
        keys = [str(a) for a in archs]
        todo = [i for i, k in enumerate(keys) if k not in self._rows]
        if todo:
            sub = [archs[i] for i in todo]
            rows = np.concatenate([self.encode(sub), self.global_features(sub)], axis=1)
            for i, row in zip(todo, rows):
                self._rows[keys[i]] = row
        if not keys:
            return np.zeros((0, len(self.feature_names)))
        return np.stack([self._rows[k] for k in keys])

    def graphs(self, archs) -> list:
        """One ``Data`` graph per arch with ``u`` (global features, shape ``(1, g)``) and
        ``flat`` (the :meth:`transform` row, shape ``(1, d)``) attached."""
        archs = self._coerce(archs)
        return attach_features(self.space, archs, self.transform(archs), self.encoding_dim)

    @property
    def encoding_dim(self) -> int:
        """How many of a feature row's leading columns are the architecture encodings."""
        return self._enc_dim

    def inputs_for(self, predictor, archs):
        """What ``predictor.predict`` takes: graphs when it needs them, else flat features."""
        if getattr(predictor, "needs_graphs", False):
            return self.graphs(archs)
        return self.transform(archs)

    # -- persistence --------------------------------------------------------------------------
    def config(self) -> dict:
        """A JSON-able description (without task, supernet or the table's contents)."""
        enc = self.encoding if isinstance(self.encoding, str) or self.encoding is None else list(
            self.encodings)
        return {"space": self.space.name, "space_config": self.space.config(), "encoding": enc,
                "proxies": list(self.proxies), "proxy_seed": self.proxy_seed,
                "proxy_table": (os.fspath(self.table_spec) if self.table_spec is not None else
                                (SHIPPED if self._table is not None else None)),
                "dataset": self.dataset, "supernet": self.uses_supernet,
                "supernet_features": (None if self.supernet_features is None
                                      else list(self.supernet_features)),
                "proxy_batch_size": self.proxy_batch_size, "build_kwargs": self.build_kwargs,
                "feature_names": self.feature_names}

    @classmethod
    def from_config(cls, cfg: dict, *, task=None, supernet=None, proxy_table=None,
                    device: str = "auto") -> FeaturePipeline:
        import spaces

        table = proxy_table if proxy_table is not None else cfg.get("proxy_table")
        space = spaces.get(cfg["space"], **(cfg.get("space_config") or {}))
        return cls(space, encoding=cfg.get("encoding"), proxies=cfg.get("proxies", ()),
                   proxy_table=table, task=task, supernet=supernet,
                   dataset=cfg.get("dataset", "cifar10"),
                   proxy_batch_size=cfg.get("proxy_batch_size", 64), device=device,
                   build_kwargs=cfg.get("build_kwargs"), proxy_seed=cfg.get("proxy_seed", 0),
                   supernet_features=(cfg.get("supernet_features") if supernet is not None
                                      else None))
