"""Does a cheaper training recipe rank ``blocks1d`` architectures as well as the old default?

Trains 32 architectures drawn from the ``blocks1d-mnist1d`` sub-space at 300 and 600 steps, seeds 0
and 1 (MNIST-1D, 10,000 samples, batch 128, lr 3e-3), appending each result to
``benchmarks/recipe-pilot-blocks1d.jsonl`` (resumes), and writes ``benchmarks/recipe-blocks1d.md``:
seed-to-seed Spearman at each budget, the Spearman between budgets, accuracy spread and seconds.

    python scripts/pilot_recipe_blocks1d.py [--workers 2]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RECORDS = ROOT / "benchmarks" / "recipe-pilot-blocks1d.jsonl"
REPORT = ROOT / "benchmarks" / "recipe-blocks1d.md"
SETTINGS = ((300, 0), (300, 1), (600, 0), (600, 1))


def _one(arch: str, steps: int, seed: int) -> dict:
    import torch

    from prednas import tasks
    from prednas.training import train

    torch.set_num_threads(1)
    r = train("blocks1d", arch, tasks.get("mnist1d"), steps=steps, seed=seed, device="cpu",
              keep_model=False)
    return {"arch": arch, "steps": steps, "seed": seed, "val": r.val_acc, "test": r.test_acc,
            "sec": r.wall_time}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--n", type=int, default=32)
    args = ap.parse_args(argv)
    from concurrent.futures import ProcessPoolExecutor, as_completed

    from scipy.stats import spearmanr

    import spaces
    from prednas.benchmarks.blocks1d_mnist1d import SUBSPACE
    from prednas.utils import JsonlLog

    sub = [str(a) for a in spaces.get("blocks1d", **SUBSPACE).enumerate()]
    archs = [sub[i] for i in np.random.default_rng(123).choice(len(sub), args.n, replace=False)]
    log = JsonlLog(RECORDS)
    recs = log.read()
    done = {(r["arch"], r["steps"], r["seed"]) for r in recs}
    todo = [(a, st, sd) for a in archs for st, sd in SETTINGS if (a, st, sd) not in done]
    with ProcessPoolExecutor(args.workers) as pool:
        for fut in as_completed([pool.submit(_one, *j) for j in todo]):
            rec = fut.result()
            log.append(rec)
            recs.append(rec)
    R: dict = {}
    for r in recs:
        R.setdefault(r["arch"], {})[(r["steps"], r["seed"])] = r
    full = [a for a in archs if len(R.get(a, {})) == 4]

    def col(k, key="test"):
        return np.array([R[a][k][key] for a in full])

    m3 = (col((300, 0)) + col((300, 1))) / 2
    m6 = (col((600, 0)) + col((600, 1))) / 2
    rho = lambda a, b: spearmanr(a, b)[0]  # noqa: E731
    lines = [
        "# Training recipe for blocks1d-mnist1d: 300 vs 600 steps", "",
        f"Command: `python scripts/pilot_recipe_blocks1d.py` ({len(full)} architectures drawn "
        "from the `blocks1d-mnist1d` sub-space, MNIST-1D 10,000 samples, batch 128, lr 3e-3, "
        "AdamW + one-cycle, one thread per training, 2 workers on a 2-core CPU shared with "
        "other jobs). Records: `benchmarks/recipe-pilot-blocks1d.jsonl`.", "",
        "| | 300 steps | 600 steps |", "|---|---|---|",
        f"| Spearman, seed 0 vs seed 1 (test acc) | {rho(col((300, 0)), col((300, 1))):.3f} | "
        f"{rho(col((600, 0)), col((600, 1))):.3f} |",
        f"| mean abs seed difference (points) | {np.mean(abs(col((300, 0)) - col((300, 1)))):.2f} "
        f"| {np.mean(abs(col((600, 0)) - col((600, 1)))):.2f} |",
        f"| test acc min / median / max (seed mean) | {m3.min():.1f} / {np.median(m3):.1f} / "
        f"{m3.max():.1f} | {m6.min():.1f} / {np.median(m6):.1f} / {m6.max():.1f} |",
        f"| mean seconds per training | {col((300, 0), 'sec').mean():.1f} | "
        f"{col((600, 0), 'sec').mean():.1f} |", "",
        f"Spearman between the 300-step and 600-step seed means: **{rho(m3, m6):.3f}**; "
        f"300-step seed 0 alone vs the 600-step mean: {rho(col((300, 0)), m6):.3f}.", "",
    ]
    REPORT.write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
