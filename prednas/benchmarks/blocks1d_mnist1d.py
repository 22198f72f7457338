"""``blocks1d-mnist1d``: every architecture of a sub-space of ``blocks1d``, trained on MNIST-1D.

Built by ``scripts/build_bench_blocks1d.py`` (see :mod:`prednas.benchmarks.build`): one fixed
recipe (:data:`RECIPE`, the per-candidate recipe of ``prednas search``), seed 0 for every
architecture of :data:`SUBSPACE`, seeds 0-2 for the first 100 of a fixed shuffled order (the
seed-to-seed noise), and seed 0 for 200 samples of the full ``blocks1d`` space (``part="full"``).
The records ship as package data (``data/blocks1d-mnist1d/records.jsonl`` with ``meta.json``);
this module aggregates them into a :class:`~prednas.benchmarks.base.Benchmark`.

Metrics: ``test_acc`` and ``val_acc`` (means over the seeds trained; percent), ``test_acc_std``
(over seeds, NaN with one seed), ``n_seeds``, ``params``, ``flops`` (forward, one example),
``latency_ms`` (median CPU forward time at batch 1, one thread; machine in ``meta.json``) and
``train_seconds``. An architecture whose every training failed has NaN accuracies and its reason in
:meth:`Blocks1DBenchmark.status`.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from importlib import resources
from pathlib import Path

import numpy as np

from prednas.benchmarks.base import Benchmark
from prednas.errors import DataNotFoundError, InvalidParameterError

__all__ = ["SUBSPACE", "RECIPE", "NAME", "load_blocks1d_mnist1d", "Blocks1DBenchmark",
           "build_spec", "METRICS"]

NAME = "blocks1d-mnist1d"
#: the enumerated sub-space: 6 ops x 2 widths per block, 1-3 blocks, no skips (1,884 stacks)
SUBSPACE = {"ops": ["conv3", "conv7", "dilconv3", "mlp", "gru", "attn"], "widths": [16, 32],
            "max_blocks": 3, "min_blocks": 1, "skips": False}
#: the recipe of every table entry (``prednas.train(space, arch, task, seed=s, **RECIPE["train"])``)
RECIPE = {"task": "mnist1d", "task_options": {"num_samples": 10000, "seed": 42,
                                              "val_fraction": 0.125},
          "train": {"steps": 300, "batch_size": 128, "lr": 3e-3, "weight_decay": 1e-4,
                    "device": "cpu"}}
NOISE_ARCHS = 100
NOISE_SEEDS = (0, 1, 2)
FULL_SAMPLES = 200
#: version 2: the same architectures, larger evaluation splits (validation 5,000, test 20,000;
#: the training split unchanged), seeds 0-1 for every architecture and seeds 0-4 for the best
#: :data:`TOP_ARCHS` (and at least the best :data:`TOP_SURE`), and a learning curve per run
RECIPE_V2 = {"task": "mnist1d",
             "task_options": {"num_samples": 10000, "seed": 42, "val_fraction": 0.125,
                              "val_size": 5000, "test_size": 20000},
             "train": {**RECIPE["train"], "curve_every": 25, "curve_size": 1000}}
RECIPES = {1: RECIPE, 2: RECIPE_V2}
#: the directory of each version's records in the package data
DIRS = {1: NAME, 2: f"{NAME}-v2"}
BASE_SEEDS_V2 = (0, 1)
TOP_SEEDS_V2 = (0, 1, 2, 3, 4)
TOP_ARCHS = 100
TOP_SURE = 50
#: and the best 50 of those a training-mode search may pick (within its default parameter cap,
#: 60% of the baseline's: the search of ``prednas search``, which the simulator replays), so that
#: racing its leaders draws fresh seeds there too
TOP_CAPPED = 50
#: the sub-space's baseline (``space.default_arch()``), whose parameters set that cap
BASELINE = "conv3:32|conv3:32|conv3:32"
METRICS = ("test_acc", "val_acc", "test_acc_std", "n_seeds", "params", "flops", "latency_ms",
           "train_seconds")
_NUMERIC = ("val_acc", "test_acc", "params", "flops", "latency_ms", "train_seconds")
_CACHE: dict[tuple, Blocks1DBenchmark] = {}


class Blocks1DBenchmark(Benchmark):
    """A :class:`Benchmark` built by training, with its recipe and per-seed records.

    Attributes:
        recipe: ``{"task", "task_options", "train"}`` that reproduces an entry (seed 0).
        meta: the build's ``meta.json`` (recipe, space configuration, machines, command).
        expected: how many architectures the complete table has (``len(space)`` for the
            enumerated sub-space); ``complete`` tells whether every one is recorded.
        pending: training runs the complete table still lacks beyond a first record of each
            architecture (version 2: the second seed of each, and the extra seeds of the best;
            ``complete`` needs none).
    """

    default_metric = "test_acc"

    def __init__(self, *args, recipe: dict, meta: dict, records: dict, expected: int | None,
                 pending: int = 0, **kwargs):
        super().__init__(*args, **kwargs)
        self.recipe = recipe
        self.meta = meta
        self._records = records
        self.expected = expected
        self.pending = pending

    @property
    def complete(self) -> bool:
        return (self.expected is None or len(self) >= self.expected) and not self.pending

    def require_complete(self) -> None:
        """Raise :class:`DataNotFoundError` (naming how far the build is) unless every
        architecture is recorded with all its seeds: for measurements that need the whole
        table."""
        if not self.complete:
            lack = (f"{len(self)} of {self.expected} architectures" if len(self) < (
                self.expected or 0) else f"{self.pending} more seeds to train")
            raise DataNotFoundError(
                f"{self.name} is not complete ({lack}): finish it with "
                "scripts/build_bench_blocks1d.py first")

    @property
    def version(self) -> int:
        return int(self.meta.get("version", 1))

    @property
    def has_curves(self) -> bool:
        """Whether the runs carry learning curves (version 2), as simulation mode needs."""
        return any("curve" in r for recs in self._records.values() for r in recs)

    def seeds(self, arch) -> list[dict]:
        """The per-seed training records of ``arch``."""
        return list(self._records[self._strings[self.row(arch)]])

    def status(self, arch) -> str:
        """``"ok"`` when at least one seed trained, else the failure kind and reason."""
        recs = self.seeds(arch)
        if any(r.get("status") == "ok" for r in recs):
            return "ok"
        return "; ".join(f"{r.get('status')}: {r.get('reason', '')}" for r in recs)

    def _missing(self, key: str) -> str:
        if not self.complete:
            return (f"{key!r} is in the space of benchmark {self.name!r} but not yet built "
                    f"({len(self)} of {self.expected} architectures recorded; run "
                    f"scripts/build_bench_blocks1d.py to continue the build)")
        return super()._missing(key)


def _data_dir(path: str | Path | None, name: str = NAME) -> Path:
    if path is not None:
        p = Path(path)
        if not (p / "records.jsonl").is_file():
            raise DataNotFoundError(f"no benchmark build at {str(p)!r} (no records.jsonl)")
        return p
    return Path(str(resources.files("prednas.benchmarks").joinpath("data", name)))


def aggregate(records: list[dict]) -> tuple[list[str], dict[str, np.ndarray], dict]:
    """Per-architecture means over seeds (failed seeds excluded) from the per-seed records."""
    by_arch: dict[str, list[dict]] = defaultdict(list)
    for r in records:
        by_arch[r["arch"]].append(r)
    strings = sorted(by_arch)
    table: dict[str, list[float]] = {m: [] for m in METRICS}
    for s in strings:
        recs = by_arch[s]
        ok = [r for r in recs if r.get("status") == "ok"]
        for m in _NUMERIC:
            vals = [float(r[m]) for r in (ok or recs) if isinstance(r.get(m), (int, float))
                    and math.isfinite(float(r[m]))]
            if m in ("val_acc", "test_acc") and not ok:
                vals = []
            if m == "latency_ms" and vals:
                table[m].append(float(np.median(vals)))
            else:
                table[m].append(float(np.mean(vals)) if vals else math.nan)
        tests = [float(r["test_acc"]) for r in ok]
        table["test_acc_std"].append(float(np.std(tests, ddof=1)) if len(tests) > 1 else math.nan)
        table["n_seeds"].append(float(len(ok)))
    return strings, {k: np.asarray(v, float) for k, v in table.items()}, dict(by_arch)


def load_blocks1d_mnist1d(path: str | Path | None = None, part: str = "sub",
                         version: int = 1) -> Blocks1DBenchmark:
    """The ``blocks1d-mnist1d`` table (package data, or a build directory at ``path``).

    Args:
        path: a directory written by :func:`prednas.benchmarks.build.build`.
        part: ``"sub"`` (every architecture of :data:`SUBSPACE`, the benchmark proper) or
            ``"full"`` (architectures sampled from the full ``blocks1d`` space, same recipe).
        version: which shipped table (without ``path``): 1, the first (one seed for most
            architectures, validation 1,000 and test 2,000 examples; every figure published
            with it stays reproducible from it), or 2 (``benchmarks.load("blocks1d-mnist1d-v2")``:
            two to five seeds, validation 5,000 and test 20,000 examples, a learning curve per
            run; what simulation mode needs).
    """
    import spaces

    if part not in ("sub", "full"):
        raise InvalidParameterError(
            f"The 'part' parameter of load_blocks1d_mnist1d must be 'sub' or 'full'. Got "
            f"{part!r} instead.")
    if version not in DIRS:
        raise InvalidParameterError(
            f"The 'version' parameter of load_blocks1d_mnist1d must be one of {sorted(DIRS)}. Got "
            f"{version!r} instead.")
    key = (str(path), part, version)
    if key in _CACHE:
        return _CACHE[key]
    d = _data_dir(path, DIRS[version])
    from prednas.utils import JsonlLog

    try:
        meta = json.loads((d / "meta.json").read_text())
        records = JsonlLog(d / "records.jsonl").read()
    except (OSError, ValueError) as exc:
        raise DataNotFoundError(f"benchmark {NAME!r} at {str(d)!r} cannot be read: {exc}") from None
    records = [r for r in records if r.get("part", "sub") == part]
    if part == "sub":
        space = spaces.get("blocks1d", **meta.get("space_config", SUBSPACE))
        expected = len(space)
    else:
        space = spaces.get("blocks1d")
        expected = None
    strings, table, by_arch = aggregate(records)
    pending = 0
    if path is None and part == "sub" and version >= 2:  # the shipped build's every seed
        pending = sum(max(0, len(BASE_SEEDS_V2) - len(by_arch.get(a, ()))) for a in strings)
        pending += len(top_seed_jobs(records)) if not pending else 0
    name = meta.get("name") or NAME
    bench = Blocks1DBenchmark(name if part == "sub" else f"{name}-full", space, strings, table,
                              citation="prednas blocks1d-mnist1d (this package); MNIST-1D: "
                                       "Greydanus, 2020",
                              recipe=meta.get("recipe", RECIPE), meta=meta, records=by_arch,
                              expected=expected, pending=pending)
    _CACHE[key] = bench
    return bench


def _architectures() -> tuple[list[str], list[str]]:
    """The sub-space in the build's fixed shuffled order, and the 200 full-space samples."""
    import spaces

    sub = spaces.get("blocks1d", **SUBSPACE)
    full = spaces.get("blocks1d")
    order = [str(a) for a in sub.enumerate()]
    perm = np.random.default_rng(0).permutation(len(order))
    order = [order[i] for i in perm]
    rng = np.random.default_rng(1)
    in_sub = set(order)
    full_archs: list[str] = []
    while len(full_archs) < FULL_SAMPLES:
        a = str(full.sample(rng))
        if a not in in_sub and a not in full_archs:
            full_archs.append(a)
    return order, full_archs


def top_seed_jobs(records: list[dict], top: int = TOP_ARCHS, sure: int = TOP_SURE,
                  seeds: tuple[int, ...] = TOP_SEEDS_V2,
                  capped: int = TOP_CAPPED) -> list[tuple[str, int, str]]:
    """Version 2's second phase: the jobs that give ``seeds`` to the ``top`` sub-space
    architectures by mean test accuracy, and to every one of the best ``sure`` that still lacks
    them, and to the best ``capped`` within the training-mode parameter cap (60% of
    :data:`BASELINE`'s parameters; more seeds move the means, so a build calls this until it
    returns no new job)."""
    from prednas.search.defaults import PARAM_CAP

    recs = [r for r in records if r.get("part", "sub") == "sub"]
    strings, table, by_arch = aggregate(recs)
    acc = np.where(np.isfinite(table["test_acc"]), table["test_acc"], -np.inf)
    order = np.argsort(-acc, kind="stable")
    ranked = [strings[i] for i in order]
    chosen = ranked[:top]
    have = {(r["arch"], int(r["seed"])) for r in recs}
    best = list(ranked[:sure])  # the best `sure` by the current means: all must have every seed
    if capped and BASELINE in strings:
        cap = PARAM_CAP * table["params"][strings.index(BASELINE)]
        best += [strings[i] for i in order if table["params"][i] <= cap][:capped]
    for a in best:
        if a not in chosen:
            chosen.append(a)
    return [(a, s, "sub") for a in chosen for s in seeds if (a, s) not in have]


def build_spec(command: str = "", version: int = 1, records: list[dict] | None = None):
    """The :class:`~prednas.benchmarks.build.BuildSpec` of the shipped table (job order fixed).

    Version 1: seed 0 for every architecture, seeds 0-2 for the first 100 of the shuffled order,
    seed 0 for the 200 full-space samples. Version 2: seeds 0-1 for every architecture (both
    seeds of one architecture together, so a partial build is a usable table); once ``records``
    hold those, :func:`top_seed_jobs` until it gives no more; then seeds 0-1 of the 200
    full-space samples.
    """
    import spaces
    from prednas.benchmarks.build import BuildSpec

    if version not in RECIPES:
        raise InvalidParameterError(
            f"The 'version' parameter of build_spec must be one of {sorted(RECIPES)}. Got "
            f"{version!r} instead.")
    order, full_archs = _architectures()
    if version == 1:
        jobs = [(a, s, "sub") for a in order[:NOISE_ARCHS] for s in NOISE_SEEDS]
        jobs += [(a, 0, "sub") for a in order[NOISE_ARCHS:]]
        jobs += [(a, 0, "full") for a in full_archs]
    else:  # the sub-space's seeds first (what simulation needs), then the full-space samples
        jobs = [(a, s, "sub") for a in order for s in BASE_SEEDS_V2]
        full_jobs = [(a, s, "full") for a in full_archs for s in BASE_SEEDS_V2]
        extra: list = []
        if records is not None:
            done = {(r["arch"], int(r["seed"]), r.get("part", "sub")) for r in records}
            if all(j in done for j in jobs):
                extra = top_seed_jobs(records)
        # while the best architectures' seeds move the ranking, a build asks again after each
        # batch of them; the full-space samples follow once it has settled
        jobs += extra or full_jobs
    return BuildSpec(space=spaces.get("blocks1d", **SUBSPACE), recipe=RECIPES[version], jobs=jobs,
                     spaces_by_part={"full": spaces.get("blocks1d")},
                     name=NAME if version == 1 else f"{NAME}-v{version}", command=command,
                     version=version)
