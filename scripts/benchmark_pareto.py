"""Multi-objective search on a tabular benchmark: prednas vs. NSGA-II vs. random search.

Accuracy against a cost (``--cost params`` on NB201 CIFAR-10, ``--cost latency_ms`` on
``blocks1d-mnist1d``), ``--seeds`` seeds, every method in the same loop with the same budget and
seeds; the hypervolume of each run's front after 50, 100 and 200 queries, with one fixed reference
point per benchmark (the metric's 0 and the cost's worst value in the table, or of the whole space
for computed costs), reported normalised by the reference box. Writes ``benchmarks/pareto-<bench>.md``
and ``.png``.

    python scripts/benchmark_pareto.py --bench nb201 --cost params --seeds 20
    python scripts/benchmark_pareto.py --bench blocks1d-mnist1d --cost latency_ms --seeds 20
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
METHODS = ("prednas", "nsga2", "random")


def worst_cost(bench, cost: str) -> float:
    if cost in bench.metrics:
        return float(np.nanmax(bench.values(cost)))
    from prednas.search.evaluators import model_cost

    return max(model_cost(bench.space, a, cost) for a in bench.archs())


def run(method, seed, bench, args, ref, tmp) -> list[float]:
    from prednas.search import MutationMutator, PredictorFilter, Search, nsga2, random_search
    from prednas.search.pareto import hypervolume

    common = dict(oracle=bench, objectives=[bench.default_metric, args.cost], budget=max(args.budgets),
                  seed=seed, run_dir=tmp / f"{method}-{seed}", hv_reference=ref)
    if method == "prednas":
        s = Search(bench.space, mutator=MutationMutator(parents=args.parents, mutations=args.mutations),
                   filter=PredictorFilter(proxy_table=None, survivors=args.per_round),
                   per_round=args.per_round, **common)
    elif method == "nsga2":
        s = nsga2(bench.space, population=args.population, per_round=args.per_round, **common)
    else:
        s = random_search(bench.space, **common)
    res = s.run()
    recs = sorted(res.records, key=lambda r: r.query)
    F = np.array([[-r.objective, float(r.get(args.cost))] for r in recs])
    box = ref[0] * ref[1]
    return [hypervolume(F[:b], [-ref[0] * 0, ref[1]]) / box for b in args.budgets]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bench", default="nb201")
    ap.add_argument("--cost", default="params")
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--budgets", type=int, nargs="+", default=[50, 100, 200])
    ap.add_argument("--methods", nargs="+", default=list(METHODS))
    ap.add_argument("--per-round", type=int, default=5)
    ap.add_argument("--mutations", type=int, default=500)
    ap.add_argument("--parents", type=int, default=10)
    ap.add_argument("--population", type=int, default=20)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    import torch

    import prednas
    from prednas.benchmarks.build import machine_name
    from prednas.utils import new_figure

    torch.set_num_threads(1)
    out = Path(args.out or ROOT / "benchmarks" / f"pareto-{args.bench}.md")
    bench = prednas.benchmarks.load(args.bench)
    ref = [100.0, worst_cost(bench, args.cost)]
    t0 = time.time()
    hv = {m: [] for m in args.methods}
    # one record per (method, seed), appended as it finishes: a re-run resumes
    from prednas.utils import JsonlLog

    log = JsonlLog(out.with_suffix(".jsonl"))
    setting = {"cost": args.cost, "budgets": args.budgets, "per_round": args.per_round,
               "mutations": args.mutations, "parents": args.parents,
               "population": args.population}
    done = {(r["method"], r["seed"]): r["hv"] for r in log.read() if r.get("setting") == setting}
    computed = 0
    with tempfile.TemporaryDirectory() as d:
        for seed in range(args.seeds):
            for m in args.methods:
                if (m, seed) not in done:
                    computed += 1
                    done[m, seed] = run(m, seed, bench, args, ref, Path(d))
                    log.append({"method": m, "seed": seed, "hv": done[m, seed],
                                "setting": setting})
                hv[m].append(done[m, seed])
            print(f"seed {seed}: " + ", ".join(f"{m} {hv[m][-1][-1]:.4f}" for m in args.methods),
                  flush=True)
    H = {m: np.array(v) for m, v in hv.items()}
    cmd = " ".join(["python scripts/benchmark_pareto.py"] + (argv or sys.argv[1:]))
    lines = [f"# Multi-objective search on {args.bench}: {bench.default_metric} vs. {args.cost}", "",
             f"Command: `{cmd}` on {machine_name()} ({time.strftime('%Y-%m-%d')}), "
             f"{args.seeds} seeds ({computed} runs computed now in {(time.time() - t0) / 60:.1f} min, "
             f"the rest read back from `{out.with_suffix('.jsonl').name}`). Hypervolume of the front of "
             f"each run's first B queries, normalised by the reference box ({bench.default_metric} "
             f"from 0 to 100, {args.cost} from 0 to {ref[1]:,.4g}, the worst in the space); mean ± std "
             "over seeds. prednas: mutations of NSGA-II-ordered parents; the filter ranks them by "
             "the hypervolume their point (the predictor's upper confidence bound on accuracy, "
             "exact parameter/FLOP counts, predicted other costs) adds to the observed front; "
             "NSGA-II: "
             f"population {args.population}, binary tournaments, the space's mutation; random: "
             "uniform samples. Same loop, same seeds.", "",
             "| method | " + " | ".join(f"{b} queries" for b in args.budgets) + " |",
             "|---|" + "---:|" * len(args.budgets)]
    for m in args.methods:
        lines.append(f"| {m} | " + " | ".join(f"{H[m][:, i].mean():.4f} ± {H[m][:, i].std():.4f}"
                                                for i in range(len(args.budgets))) + " |")
    if "prednas" in H:
        others = [m for m in args.methods if m != "prednas"]
        ok = all(H["prednas"][:, i].mean() >= H[o][:, i].mean()
                 for i in range(len(args.budgets)) for o in others)
        lines += ["", f"Target: prednas at or above {' and '.join(others)} at every budget: "
                      f"**{'met' if ok else 'missed'}**."]
    fig, ax = new_figure((5, 3.5))
    for m in args.methods:
        ax.errorbar(args.budgets, H[m].mean(0), yerr=H[m].std(0), label=m, capsize=3, marker="o")
    ax.set_xlabel("queries")
    ax.set_ylabel("normalised hypervolume")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out.with_suffix(".png"), dpi=120)
    lines += ["", f"![hypervolume]({out.with_suffix('.png').name})", ""]
    out.write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
