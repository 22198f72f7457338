"""What each signal is worth, by budget, for predicting full-training accuracy (OMNI-style):
``benchmarks/predictors-fidelity-blocks1d.md``.

On ``blocks1d-mnist1d-v2`` (partial builds too: the report says how much it covers), an XGBoost
predictor learns each architecture's final mean test accuracy from n training architectures with
feature sets that grow like a search's knowledge (White et al., "How powerful are performance
predictors in NAS?", NeurIPS 2021: encodings + zero-cost proxies + partial-training signals):

- ``enc``: the one-hot encoding;
- ``enc+zc``: plus the 15 zero-cost proxies of the shipped proxy table;
- ``enc+zc+curve@b``: plus one training's learning curve up to step ``b`` (validation accuracy at
  each checkpoint, SoTL-E);
- ``curve@b alone``: the raw partial validation accuracy at step ``b`` (no learning), the signal a
  successive-halving scheduler ranks by.

Scored by Spearman correlation with the final mean on the other architectures, and within their
top 10%, over 10 random splits.

    python scripts/evaluate_fidelity_predictor.py
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "predictors-fidelity-blocks1d.md"
BUDGETS = (25, 50, 100, 150)
TRAIN_SIZES = (20, 50)
SPLITS = 10


def _rho(a, b) -> float:
    return float(spearmanr(a, b)[0]) if len(a) > 2 else math.nan


def main() -> int:
    import proxies as proxies_pkg
    from predictors.xgb import XGBPredictor
    from prednas import benchmarks
    from prednas.benchmarks.build import machine_summary

    bench = benchmarks.load("blocks1d-mnist1d-v2")
    archs = bench.arch_strings()
    final = bench.values("test_acc")
    ok = np.isfinite(final)
    archs, final = [a for a, k in zip(archs, ok) if k], final[ok]
    space = bench.space
    enc = np.stack([space.to_vector(space.coerce(a), "onehot") for a in archs])
    table = proxies_pkg.load_table(space="blocks1d", dataset="mnist1d")
    names = [n for n in table.names if n not in ("params", "flops")]
    zc = np.asarray(table.lookup(archs, names), float)

    def curve(b):  # seed 0's curve (the first training a search would see) up to step b
        rows = []
        for a in archs:
            run = min(bench.seeds(a), key=lambda r: int(r["seed"]))
            c = run["curve"]
            idx = [i for i, s in enumerate(c["step"]) if s <= b]
            rows.append([c["val_acc"][i] for i in idx] + [-c["train_loss"][i] for i in idx])
        return np.array(rows, float)

    results: dict[tuple, list] = {}
    for n in TRAIN_SIZES:
        if n + 10 > len(archs):
            continue
        for split in range(SPLITS):
            perm = np.random.default_rng(split).permutation(len(archs))
            tr, te = perm[:n], perm[n:]
            top = te[final[te] >= np.quantile(final[te], 0.9)]

            def score(name, X, tr=tr, te=te, top=top, split=split, n=n):
                model = XGBPredictor(n_estimators=300, random_state=split).fit(X[tr], final[tr])
                pred = model.predict(X)
                results.setdefault((n, name), []).append(
                    (_rho(pred[te], final[te]), _rho(pred[top], final[top])))

            score("enc", enc)
            score("enc+zc", np.hstack([enc, zc]))
            for b in BUDGETS:
                cb = curve(b)
                score(f"enc+zc+curve@{b}", np.hstack([enc, zc, cb]))
                raw = cb[:, cb.shape[1] // 2 - 1]
                results.setdefault((n, f"curve@{b} alone"), []).append(
                    (_rho(raw[te], final[te]), _rho(raw[top], final[top])))
    lines = ["# Predicting full-training accuracy from encodings, zero-cost proxies and partial "
             "training (blocks1d-mnist1d-v2)", "",
             f"Command: `python scripts/evaluate_fidelity_predictor.py`. Machine: "
             f"{machine_summary()}.", "",
             f"Table: {len(archs)} of {bench.expected} sub-space architectures recorded"
             + (" (complete)." if bench.complete else " (PARTIAL: the build is running; figures "
                                                      "change as it completes)."), "",
             "Target: each architecture's mean test accuracy over its seeds; curve signals from "
             "its seed-0 training (validation accuracy on the curve's 1,000-example subset and "
             f"SoTL-E at each checkpoint up to step b); {SPLITS} random splits; Spearman on the "
             "held-out architectures / within their top 10%.", "",
             "| features | " + " | ".join(f"n={n}" for n in TRAIN_SIZES) + " |",
             "|---|" + "---:|" * len(TRAIN_SIZES)]
    keys = list(dict.fromkeys(k for _, k in results))
    for k in keys:
        cells = []
        for n in TRAIN_SIZES:
            r = np.array(results.get((n, k), [(math.nan, math.nan)]))
            cells.append(f"{np.nanmean(r[:, 0]):.3f} / {np.nanmean(r[:, 1]):.3f}")
        lines.append(f"| {k} | " + " | ".join(cells) + " |")
    OUT.write_text("\n".join(lines) + "\n")
    print(OUT.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
