"""Which in-run signal names the best architecture? A design study of the winner's estimate.

For each given training run (``prednas search`` on the default task, search seeds never used by the
benchmark), the leaders under each ranking rule are retrained on the final protocol's fresh seeds;
the truth of an architecture is the mean *validation* accuracy of those fresh trainings (the test
split is left to the benchmark, so that the design never looks at it). Rules:

- ``estimate``: the run's own winner order (trainings combined with the filter's prediction);
- ``mean``: the mean validation accuracy of the run's trainings alone;
- ``loss``: the mean validation loss of the run's trainings (lower first);
- ``blend``: the mean of ``mean`` and ``loss`` mapped to accuracy by the run's own least-squares
  line of accuracy on loss;
- ``estimate_loss``: the estimate with the loss's reading (``NoiseAwareEstimate`` given losses);
- ``mean_loss``: the same without the filter's prediction.

Rows go to ``benchmarks/estimate-design.jsonl`` (append-only; a rerun resumes), the summary to
``benchmarks/estimate-design.md``.

    python scripts/design_estimate.py runs/design/prednas-s10 runs/design/prednas-s11
"""

from __future__ import annotations

import argparse
import math
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
LOG = ROOT / "benchmarks" / "estimate-design.jsonl"
OUT = ROOT / "benchmarks" / "estimate-design.md"
TOP = 6


def in_run(run: Path) -> dict[str, dict]:
    """Per fully trained architecture of ``run``: its trainings' accuracies and losses, and its
    place in the run's own winner order."""
    from prednas.search.estimates import NoiseAwareEstimate
    from prednas.utils import read_log

    per: dict[str, dict] = {}
    for r in read_log(run / "evaluations.jsonl"):
        if r["kind"] in ("candidate", "repeat") and r["status"] == "ok" and not r.get("paused"):
            d = per.setdefault(r["arch"], {"acc": [], "loss": []})
            d["acc"].append(float(r["val_acc"]))
            d["loss"].append(float(r["val_loss"]))
    vals = {a: d["acc"] for a, d in per.items()}
    preds = {r["arch"]: float(r["predicted"]) for r in read_log(run / "evaluations.jsonl")
             if r["kind"] == "candidate" and r.get("predicted") is not None}
    losses = {a: d["loss"] for a, d in per.items()}
    reading = NoiseAwareEstimate(loss_reading=True)
    for name, est, args in (("estimate", NoiseAwareEstimate(), (vals, preds)),
                            ("estimate_loss", reading, (vals, preds, losses)),
                            ("mean_loss", reading, (vals, None, losses))):
        for i, e in enumerate(est.estimates(*args)):
            per[e.arch][f"{name}_rank"] = i
    return per


def rules(per: dict[str, dict]) -> dict[str, list[str]]:
    """Each rule's order of the run's architectures, best first."""
    from prednas.search.estimates import NoiseAwareEstimate

    archs = sorted(per)
    acc = np.array([np.mean(per[a]["acc"]) for a in archs])
    loss = np.array([np.mean(per[a]["loss"]) for a in archs])
    reads = NoiseAwareEstimate().loss_readings({a: per[a]["acc"] for a in archs},
                                               {a: per[a]["loss"] for a in archs})
    blend = 0.5 * acc + 0.5 * np.array([reads[a] for a in archs])
    big = len(archs)
    return {**{n: sorted(archs, key=lambda a: per[a].get(f"{n}_rank", big))
               for n in ("estimate", "estimate_loss", "mean_loss")},
            "mean": [archs[i] for i in np.argsort(-acc, kind="stable")],
            "loss": [archs[i] for i in np.argsort(loss, kind="stable")],
            "blend": [archs[i] for i in np.argsort(-blend, kind="stable")]}


def _retrain(run: str, arch: str, seed: int) -> dict:
    import torch

    from prednas.search.protocol import _recipe_of
    from prednas.training import train

    torch.set_num_threads(1)
    space, task, p = _recipe_of(run)
    rec = train(space, arch, task, steps=p.get("steps"), epochs=p.get("epochs"),
                batch_size=p["batch_size"], lr=p["lr"], weight_decay=p["weight_decay"],
                seed=seed, device="cpu", keep_model=False)
    return {"run": Path(run).name, "arch": arch, "seed": seed, "status": rec.status,
            "val_acc": rec.val_acc, "val_loss": rec.val_loss, "test_acc": rec.test_acc}


def main(argv=None) -> int:
    from prednas.search.protocol import FRESH_SEEDS
    from prednas.utils import append_log, read_log

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path)
    args = ap.parse_args(argv)
    studies = {}
    for run in args.runs:
        per = in_run(run)
        order = rules(per)
        leaders = list(dict.fromkeys(a for o in order.values() for a in o[:TOP]))
        studies[run.name] = (per, order, leaders)
    done = {(r["run"], r["arch"], r["seed"]) for r in read_log(LOG)}
    jobs = [(str(run), a, s) for run in args.runs for a in studies[run.name][2]
            for s in FRESH_SEEDS if (run.name, a, s) not in done]
    with ProcessPoolExecutor(2) as pool:
        for row in pool.map(_retrain, *zip(*jobs)) if jobs else ():
            append_log(LOG, row)
    truth: dict[tuple[str, str], float] = {}
    for r in read_log(LOG):
        truth.setdefault((r["run"], r["arch"]), []).append(r["val_acc"])
    truth = {k: float(np.mean(v)) for k, v in truth.items() if len(v) == len(FRESH_SEEDS)}
    OUT.write_text(summary(studies, truth), encoding="utf-8")
    print(OUT.read_text(encoding="utf-8"))
    return 0


def summary(studies: dict, truth: dict) -> str:
    from scipy.stats import spearmanr

    from prednas.benchmarks.build import machine_name

    names = ("estimate", "mean", "loss", "blend", "estimate_loss", "mean_loss")
    lines = ["# Which in-run signal names the best architecture (design study)", "",
             "Truth: mean validation accuracy of 5 fresh-seed retrainings (the test split is not "
             "looked at). Per run: the truth of each rule's first pick, and its Spearman "
             f"correlation with the truth over the union of every rule's top {TOP} "
             f"(`scripts/design_estimate.py`, {machine_name()}).", "",
             "| run | archs | " + " | ".join(f"{n}: pick | {n}: ρ" for n in names) + " |",
             "|---|---:|" + "---:|---:|" * len(names)]
    for run, (_per, order, leaders) in studies.items():
        have = [a for a in leaders if (run, a) in truth]
        cells = []
        for n in names:
            pick = truth.get((run, order[n][0]), math.nan)
            rank = {a: i for i, a in enumerate(order[n])}
            rho = (spearmanr([-rank[a] for a in have], [truth[(run, a)] for a in have])[0]
                   if len(have) > 2 else math.nan)
            cells += [f"{pick:.2f}", f"{rho:+.2f}"]
        lines.append(f"| {run} | {len(have)} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
