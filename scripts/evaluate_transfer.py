"""Is the table's prior worth anything on a task other than the table's? ``benchmarks/transfer-blocks1d.md``.

``PredictorFilter(prior="table")`` (``prednas search --prior table``) orders candidates with a
predictor learned from the shipped 1-D table (MNIST-1D accuracies) until the search's own
trainings outweigh it. On MNIST-1D itself that gain would be circular, so it is measured here on
another 1-D task: the ``synthetic`` task (each of 10 classes a sinusoid of its own frequency, with
noise), which the table never saw.

Ground truth: ``--n`` architectures sampled from the default search space (``blocks1d``), within
the default parameter cap (60% of the baseline's), each trained once with the default recipe
(300 steps) on the synthetic task; appended to ``benchmarks/transfer-blocks1d.jsonl`` as they
finish (the script resumes from it).

Then, over random splits, a search that has seen k of them (k = 0, 6, 12, 24) ranks the others:

- ``prior``: the table's prior alone;
- ``fitted``: the filter's default predictor fitted on the k seen (its encodings only);
- ``blend``: the two as the filter blends them (prior weight ``min_fit / max(min_fit, k)``,
  ``min_fit`` = 6, the prior rescaled to the seen results);
- ``params``: the parameter count alone (a naive baseline).

Scored by the Spearman correlation on the held-out architectures and by the mean accuracy of the
5 each ranks first (what a search would train next).

    python scripts/evaluate_transfer.py              # 60 trainings (~15 min on an idle core)
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "transfer-blocks1d.md"
LOG = ROOT / "benchmarks" / "transfer-blocks1d.jsonl"
TASK = {"n": 4000, "num_classes": 10, "noise": 1.5, "seed": 0}
SEEN = (0, 6, 12, 24)
SPLITS = 30
MIN_FIT = 6


def _rows() -> list[dict]:
    from prednas.utils import read_log

    return read_log(LOG)


def ground_truth(n: int) -> list[dict]:
    """``n`` capped architectures of the default space, trained once on the synthetic task."""
    import torch

    import spaces
    from prednas import tasks
    from prednas.search.defaults import PARAM_CAP, param_count
    from prednas.training import train
    from prednas.utils import append_log

    torch.set_num_threads(1)
    space, task = spaces.get("blocks1d"), tasks.get("synthetic", **TASK)
    cap = PARAM_CAP * param_count(space, space.default_arch(), task)
    rng = np.random.default_rng(0)
    archs: list[str] = []
    while len(archs) < n:
        a = space.sample(rng)
        if str(a) not in archs and param_count(space, a, task) <= cap:
            archs.append(str(a))
    done = {r["arch"] for r in _rows()}
    for arch in archs:
        if arch in done:
            continue
        t = time.perf_counter()
        rec = train(space, arch, task, steps=300, seed=0, device="cpu", keep_model=False)
        row = {"arch": arch, "status": rec.status, "val_acc": rec.val_acc,
               "test_acc": rec.test_acc, "params": rec.params,
               "seconds": time.perf_counter() - t}
        append_log(LOG, row)
        print(json.dumps(row), flush=True)
    got = {r["arch"]: r for r in _rows()}
    return [got[a] for a in archs if got[a]["status"] == "ok" and math.isfinite(got[a]["val_acc"])]


def _z(v: np.ndarray, like: np.ndarray) -> np.ndarray:
    return (v - v.mean()) / (v.std() + 1e-12) * (like.std() + 1e-12) + like.mean()


def evaluate(rows: list[dict]) -> dict:
    """Per k and ranker: mean Spearman and mean top-5 accuracy over the splits."""
    import spaces
    from predictors.pretrain import table_prior
    from prednas.search.filters import _predict, _seeded_clone, default_predictor

    space = spaces.get("blocks1d")
    archs = [space.coerce(r["arch"]) for r in rows]
    y = np.array([r["val_acc"] for r in rows], float)
    est, pipe = table_prior(space)
    prior = est.predict(pipe.transform(archs))
    X = pipe.transform(archs)  # the same encoding the filter's stage 1 starts from
    params = np.array([r["params"] for r in rows], float)
    out: dict = {}
    for k in (k for k in SEEN if k <= len(rows) - 10):  # at least 10 held out
        scores: dict[str, list] = {}
        for split in range(SPLITS):
            perm = np.random.default_rng([k, split]).permutation(len(rows))
            seen, held = perm[:k], perm[k:]
            ranks = {"prior": prior[held], "params": params[held]}
            if k >= MIN_FIT and np.ptp(y[seen]) > 0:
                model = _seeded_clone(default_predictor(), split)
                model.fit(X[seen], y[seen])
                fit = _predict(model, X[held])[0]
                w = MIN_FIT / max(MIN_FIT, k)
                ranks["fitted"] = fit
                ranks["blend"] = ((1 - w / (1 + w)) * fit
                                  + (w / (1 + w)) * _z(prior[held], y[seen]))
            for name, r in ranks.items():
                top = held[np.argsort(-r, kind="stable")[:5]]
                scores.setdefault(name, []).append((spearmanr(r, y[held])[0], y[top].mean()))
        out[k] = {n: (float(np.nanmean([s[0] for s in v])), float(np.mean([s[1] for s in v])))
                  for n, v in scores.items()}
    return out


def report(rows: list[dict], res: dict) -> str:
    from prednas.benchmarks.build import machine_summary

    y = np.array([r["val_acc"] for r in rows])
    names = ("prior", "fitted", "blend", "params")
    lines = ["# Transfer: the 1-D table's prior on another task (synthetic sinusoids)", "",
             f"Command: `python {Path(__file__).relative_to(ROOT)}`. Machine: "
             f"{machine_summary()}.", "",
             f"Ground truth: {len(rows)} architectures of the default `blocks1d` space within "
             f"the parameter cap, each trained once (300 steps) on `synthetic` {TASK}; "
             f"validation accuracy median {np.median(y):.2f}, best {y.max():.2f}. The prior "
             "is learned from the shipped table `blocks1d-mnist1d` (MNIST-1D test accuracy) in "
             f"the search space's encoding. {SPLITS} random splits per k; k = trainings the "
             "search has seen (the filter fits from 6).", "",
             "| k seen | " + " | ".join(f"{n}: Spearman / top-5 acc" for n in names) + " |",
             "|---:|" + "---:|" * len(names)]
    for k, by in res.items():
        cells = [f"{by[n][0]:.3f} / {by[n][1]:.2f}" if n in by else "—" for n in names]
        lines.append(f"| {k} | " + " | ".join(cells) + " |")
    lines += ["", f"Mean accuracy of the held-out architectures: {y.mean():.2f} (what a random "
              "pick of 5 gets on average).", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=60, help="architectures in the ground truth")
    args = ap.parse_args(argv)
    rows = ground_truth(args.n)
    text = report(rows, evaluate(rows))
    OUT.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
