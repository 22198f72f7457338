"""Accuracy predictors on the 1-D benchmark ``blocks1d-mnist1d``, against its noise ceiling.

For ``--splits`` random splits of the table's architectures, predictors are fitted on 20 / 100 /
500 architectures (nested) and scored by Spearman on the rest (held-out mean test accuracy):
XGBoost on the encodings, and on encodings + every proxy of the shipped proxy table (when
``proxies.load_table("blocks1d", "mnist1d")`` exists) or a subset of them (the default search's
live proxies; the best correlated ones), the GNN and the ensemble of XGBoost, ranking XGBoost and
the GNN, each with and without the proxies.

The noise ceiling: on the architectures trained with three seeds, the Spearman between one seed's
test accuracy and another's (what a perfect predictor of one training run could reach), and the
per-architecture standard deviation of test accuracy. Works on a partial table (reported).

Beyond the sub-space (``--full``; ``--full-only`` runs just this and replaces that section of
``--out``): on the 200 architectures sampled from the full ``blocks1d`` space (deeper, with
skips), encoded in the full space, (a) predictors fitted on 20 / 100 of them and scored on the
other 100 (``--splits`` splits), (b) predictors fitted on 100 / 500 / all sub-space architectures
and scored on all 200 (does what is learnt on the benchmark transfer to the space users search?).

With ``--supernet-scores CSV`` (written by ``scripts/supernet_scores.py --space blocks1d``), only
the section on the warm-up supernet's features: on the architectures the CSV scores, predictors
fitted on 20 / 100 of them with and without every supernet score of the file as extra features,
scored on the rest, paired over ``--splits`` splits (the difference per split, its mean and spread).

    python scripts/evaluate_predictors_blocks1d.py [--splits 10] [--sizes 20 100 500] [--full]
    python scripts/evaluate_predictors_blocks1d.py --supernet-scores benchmarks/supernet-blocks1d-scores.csv
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
#: proxy subsets tried as features beside the whole table: the live proxies of the default
#: ``prednas search`` filter, and the three best correlated on this table (chosen after looking)
SUBSETS = {"live (params, synflow, snip)": ("params", "synflow", "snip"),
           "nwot, meco, jacov (post hoc)": ("nwot", "meco", "jacov")}


def noise_ceiling(bench) -> dict:
    from scipy.stats import spearmanr

    multi = [a for a in bench.arch_strings() if bench.query(a, "n_seeds") >= 3]
    if len(multi) < 5:
        return {"n": len(multi)}
    per = {a: {r["seed"]: r["test_acc"] for r in bench.seeds(a) if r["status"] == "ok"}
           for a in multi}
    rhos = [spearmanr([per[a][i] for a in multi], [per[a][j] for a in multi])[0]
            for i, j in itertools.combinations(sorted(next(iter(per.values()))), 2)]
    stds = bench.values("test_acc_std", multi)
    return {"n": len(multi), "seed_spearman": float(np.mean(rhos)),
            "std_median": float(np.nanmedian(stds)), "std_mean": float(np.nanmean(stds))}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--splits", type=int, default=10)
    ap.add_argument("--sizes", type=int, nargs="+", default=[20, 100, 500])
    ap.add_argument("--gnn-steps", type=int, default=300)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "predictors-blocks1d.md"))
    ap.add_argument("--full", action="store_true",
                    help="also the section on the full-space samples")
    ap.add_argument("--full-only", action="store_true",
                    help="only the full-space section (replacing it in --out)")
    ap.add_argument("--supernet-scores", default=None, metavar="CSV",
                    help="only the section with and without these supernet scores as features")
    args = ap.parse_args(argv)
    if args.supernet_scores:
        return supernet_section(args)
    if args.full_only:
        return full_space_section(args)
    import torch
    from scipy.stats import spearmanr

    import predictors
    from predictors import EnsemblePredictor, FeaturePipeline, GNNPredictor, XGBPredictor
    from predictors.features import shipped_table_exists
    from prednas import benchmarks
    from prednas.benchmarks.build import machine_summary

    torch.set_num_threads(1)
    t0 = time.time()
    bench = benchmarks.load("blocks1d-mnist1d")
    archs, y = bench.archs(), bench.values("test_acc")
    keep = np.flatnonzero(np.isfinite(y))
    has_table = shipped_table_exists("blocks1d", "mnist1d")
    pipes = {"enc": FeaturePipeline(bench.space, encoding=("onehot", "path"))}
    if has_table:
        table = predictors.features.load_proxy_table("shipped", "blocks1d", "mnist1d")
        pipes["enc+proxies"] = FeaturePipeline(bench.space, encoding=("onehot", "path"),
                                               proxies=list(table.names), proxy_table=table,
                                               dataset="mnist1d")
        for label, names in SUBSETS.items():
            pipes[f"enc+{label}"] = FeaturePipeline(bench.space, encoding=("onehot", "path"),
                                                    proxies=list(names), proxy_table=table,
                                                    dataset="mnist1d")
    methods = {"XGB enc": ("enc", lambda s: XGBPredictor(random_state=s))}
    if has_table:
        methods["XGB enc+proxies"] = ("enc+proxies", lambda s: XGBPredictor(random_state=s))
        for label in SUBSETS:
            methods[f"XGB enc+{label}"] = (f"enc+{label}", lambda s: XGBPredictor(random_state=s))

    def gnn(s):
        return GNNPredictor(n_steps=args.gnn_steps, random_state=s)

    def ensemble(s):
        return EnsemblePredictor(members=[XGBPredictor(), XGBPredictor(objective="rank"),
                                          GNNPredictor(n_steps=args.gnn_steps)], random_state=s)

    for feat in ["enc"] + (["enc+proxies"] if has_table else []):
        methods[f"GNN {feat}"] = (feat, gnn)
        methods[f"Ensemble {feat}"] = (feat, ensemble)
    sizes = [n for n in args.sizes if n < len(keep) - 20]
    res = {(m, n): [] for m in methods for n in sizes}
    for split in range(args.splits):
        perm = np.random.default_rng(split).permutation(keep)
        test = perm[max(sizes):] if sizes else perm
        for n in sizes:
            tr = perm[:n]
            for m, (pname, make) in methods.items():
                pipe = pipes[pname]
                est = make(split)
                est.fit(pipe.inputs_for(est, [archs[i] for i in tr]), y[tr])
                pred = est.predict(pipe.inputs_for(est, [archs[i] for i in test]))
                res[m, n].append(spearmanr(pred, y[test])[0])
        print(f"split {split}: " + ", ".join(f"{m}@{n} {res[m, n][-1]:.3f}" for m in methods
                                            for n in sizes), flush=True)
    ceil = noise_ceiling(bench)
    lines = ["# Predictors on blocks1d-mnist1d", "",
             f"Command: `python scripts/evaluate_predictors_blocks1d.py --splits {args.splits}` on "
             f"{machine_summary()}; {(time.time() - t0) / 60:.1f} min. Table: {len(bench)} of "
             f"{bench.expected} architectures built"
             + ("" if bench.complete else " (a partial table: the build continues)") + "; "
             + ("proxy features from the shipped table" if has_table else
                "no shipped proxy table yet: encodings (onehot + path) only") + ".", "",
             "Spearman between predicted and mean test accuracy on the held-out architectures, "
             f"mean ± std over {args.splits} splits (the same splits for every method). `enc`: "
             "onehot + path encodings; `proxies`: every proxy of the shipped proxy table "
             "(computed at initialisation on one MNIST-1D batch); `live`: the proxies the default "
             "`prednas search` filter computes on its survivors.", "",
             "| method | " + " | ".join(f"{n} train" for n in sizes) + " |",
             "|---|" + "---:|" * len(sizes)]
    for m in methods:
        lines.append(f"| {m} | " + " | ".join(f"{np.mean(res[m, n]):.3f} ± {np.std(res[m, n]):.3f}"
                                                for n in sizes) + " |")
    lines += ["", "## Noise ceiling", ""]
    if "seed_spearman" in ceil:
        lines += [f"On the {ceil['n']} architectures trained with three seeds: Spearman between "
                  f"two seeds' test accuracies {ceil['seed_spearman']:.3f} (mean over seed pairs); "
                  f"per-architecture std of test accuracy: median {ceil['std_median']:.2f}, "
                  f"mean {ceil['std_mean']:.2f} points."]
    else:
        lines += [f"Only {ceil['n']} architectures with three seeds so far."]
    if 100 in sizes:
        best = max(methods, key=lambda m: np.mean(res[m, 100]))
        rho = float(np.mean(res[best, 100]))
        goal = min(0.85, 0.9 * ceil["seed_spearman"]) if "seed_spearman" in ceil else 0.85
        lines += ["", "## Target", "",
                  f"- Best at 100 training architectures: {best}, Spearman {rho:.3f}; target >= "
                  f"{goal:.3f} (0.85, or 90% of the noise ceiling if lower): "
                  f"**{'met' if rho >= goal else 'missed'}**"]
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return full_space_section(args) if args.full else 0


FULL_TITLE = "## Beyond the sub-space: the 200 full-space samples"
SUPERNET_TITLE = "## With the warm-up supernet's scores as features"


def _write_section(path, title: str, section: str) -> None:
    """Put ``section`` (headed ``title``) into ``path`` in place of the old one, or at the end,
    keeping the file's other sections (``supernet_scores.replace_section``)."""
    sys.path.insert(0, str(ROOT / "scripts"))
    from supernet_scores import replace_section

    Path(path).write_text(replace_section(str(path), title.removeprefix("## "), section))


def supernet_section(args) -> int:
    """Paired: the same predictors, splits and seeds with and without the supernet's scores."""
    import torch
    from scipy.stats import spearmanr

    from predictors import EnsemblePredictor, FeaturePipeline, GNNPredictor, XGBPredictor
    from prednas import benchmarks
    from prednas.supernet import SupernetScores

    torch.set_num_threads(1)
    t0 = time.time()
    bench = benchmarks.load("blocks1d-mnist1d")
    scores = SupernetScores.from_csv(args.supernet_scores, space=bench.space)
    archs = [a for a in scores.arch_strings]
    y = bench.values("test_acc", archs)
    keep = [i for i in range(len(archs)) if np.isfinite(y[i])]
    archs, y = [archs[i] for i in keep], y[keep]
    names = list(scores.feature_names)
    pipes = {"enc": FeaturePipeline(bench.space, encoding=("onehot", "path")),
             "enc+supernet": FeaturePipeline(bench.space, encoding=("onehot", "path"),
                                             supernet=scores, supernet_features=names)}
    makers = {"XGB": lambda s: XGBPredictor(random_state=s),
              "GNN": lambda s: GNNPredictor(n_steps=args.gnn_steps, random_state=s),
              "Ensemble": lambda s: EnsemblePredictor(
                  members=[XGBPredictor(), XGBPredictor(objective="rank"),
                           GNNPredictor(n_steps=args.gnn_steps)], random_state=s)}
    sizes = [n for n in (20, 100) if n <= len(archs) - 50]
    res = {(m, f, n): [] for m in makers for f in pipes for n in sizes}
    for split in range(args.splits):
        perm = np.random.default_rng(split).permutation(len(archs))
        test = perm[max(sizes):]
        for n in sizes:
            for m, make in makers.items():
                for f, pipe in pipes.items():
                    est = make(split)
                    est.fit(pipe.inputs_for(est, [archs[i] for i in perm[:n]]), y[perm[:n]])
                    pred = est.predict(pipe.inputs_for(est, [archs[i] for i in test]))
                    res[m, f, n].append(float(spearmanr(pred, y[test])[0]))
        print(f"supernet split {split}: " + ", ".join(
            f"{m}@{n} {res[m, 'enc', n][-1]:.3f}->{res[m, 'enc+supernet', n][-1]:.3f}"
            for m in makers for n in sizes), flush=True)
    alone = {nm: float(spearmanr(scores.features(archs, [nm])[:, 0], y, nan_policy="omit")[0])
             for nm in names}
    title = f"{SUPERNET_TITLE} (`{Path(args.supernet_scores).name}`)"
    lines = [title, "",
             f"Command: `python scripts/evaluate_predictors_blocks1d.py --supernet-scores "
             f"{args.supernet_scores} --splits {args.splits}`; {(time.time() - t0) / 60:.1f} "
             f"min. The {len(archs)} sub-space architectures that file scores; features "
             f"`enc` (onehot + path) against `enc` + every supernet score of the file "
             f"({', '.join(f'`{n}`' for n in names)}). Spearman on the architectures not used "
             f"for fitting (at least {len(archs) - max(sizes)}), the same splits and seeds for "
             "both; the difference is taken per split.", "",
             "| method | train archs | enc | enc + supernet | paired difference (mean ± std) "
             "| splits better |", "|---|---:|---:|---:|---:|---:|"]
    for m in makers:
        for n in sizes:
            a, b = np.array(res[m, "enc", n]), np.array(res[m, "enc+supernet", n])
            d = b - a
            lines.append(f"| {m} | {n} | {a.mean():.3f} | {b.mean():.3f} | {d.mean():+.3f} ± "
                         f"{d.std():.3f} | {int((d > 0).sum())} of {len(d)} |")
    lines += ["", "Each supernet score alone on these architectures (Spearman with the mean test "
                  "accuracy): " + ", ".join(f"`{k}` {v:.3f}" for k, v in alone.items()) + "."]
    if 20 in sizes:
        best = max(makers, key=lambda m: np.mean(np.array(res[m, "enc+supernet", 20])
                                                 - np.array(res[m, "enc", 20])))
        gain = float(np.mean(np.array(res[best, "enc+supernet", 20])
                             - np.array(res[best, "enc", 20])))
        lines += ["", f"Target (supernet features add >= +0.02 at 20 training architectures): "
                      f"best paired gain {gain:+.3f} ({best}): "
                      f"**{'met' if gain >= 0.02 else 'missed'}**."]
    section = "\n".join(lines) + "\n"
    _write_section(args.out, title, section)
    print(section)
    return 0


def full_space_section(args) -> int:
    """Within the full-space samples, and from the sub-space to them (encodings only: the
    proxies did not help on the sub-space, and the full-space samples have no proxy table)."""
    import torch
    from scipy.stats import spearmanr

    import spaces
    from predictors import EnsemblePredictor, FeaturePipeline, GNNPredictor, XGBPredictor
    from prednas import benchmarks

    torch.set_num_threads(1)
    t0 = time.time()
    sub = benchmarks.load("blocks1d-mnist1d")
    full = benchmarks.blocks1d_mnist1d.load_blocks1d_mnist1d(part="full")
    pipe = FeaturePipeline(spaces.get("blocks1d"), encoding=("onehot", "path"))
    fa, fy = full.archs(), full.values("test_acc")
    fkeep = np.flatnonzero(np.isfinite(fy))
    sa, sy = sub.archs(), sub.values("test_acc")
    skeep = np.flatnonzero(np.isfinite(sy))
    makers = {"XGB enc": lambda s: XGBPredictor(random_state=s),
              "GNN enc": lambda s: GNNPredictor(n_steps=args.gnn_steps, random_state=s),
              "Ensemble enc": lambda s: EnsemblePredictor(
                  members=[XGBPredictor(), XGBPredictor(objective="rank"),
                           GNNPredictor(n_steps=args.gnn_steps)], random_state=s)}

    def fit_score(make, seed, tr_archs, tr_y, te_archs, te_y) -> float:
        est = make(seed)
        est.fit(pipe.inputs_for(est, tr_archs), tr_y)
        return float(spearmanr(est.predict(pipe.inputs_for(est, te_archs)), te_y)[0])

    within_sizes = [n for n in (20, 100) if n <= len(fkeep) - 50]
    within = {(m, n): [] for m in makers for n in within_sizes}
    transfer_sizes = [n for n in (100, 500) if n < len(skeep)] + [len(skeep)]
    transfer = {(m, n): [] for m in makers for n in transfer_sizes}
    for split in range(args.splits):
        perm = np.random.default_rng(split).permutation(fkeep)
        test = perm[max(within_sizes):]
        for n in within_sizes:
            for m, make in makers.items():
                within[m, n].append(fit_score(make, split, [fa[i] for i in perm[:n]],
                                              fy[perm[:n]], [fa[i] for i in test], fy[test]))
        sperm = np.random.default_rng(1000 + split).permutation(skeep)
        for n in transfer_sizes:
            if n == len(skeep) and split >= 3:  # one fit on everything varies only by seed
                continue
            for m, make in makers.items():
                transfer[m, n].append(fit_score(make, split, [sa[i] for i in sperm[:n]],
                                                sy[sperm[:n]], [fa[i] for i in fkeep], fy[fkeep]))
        print(f"full-space split {split} done ({time.time() - t0:.0f} s)", flush=True)

    def cell(v) -> str:
        return f"{np.mean(v):.3f} ± {np.std(v):.3f}"

    lines = [FULL_TITLE, "",
             f"Command: `python scripts/evaluate_predictors_blocks1d.py --full-only --splits "
             f"{args.splits}`; {(time.time() - t0) / 60:.1f} min. {len(fkeep)} full-space "
             "samples (the full `blocks1d` space: up to its maximum depth, every op and width, "
             "skips), one seed each; every architecture encoded in the full space (onehot + "
             "path).", "",
             f"(a) Fitted on some full-space samples, Spearman on the other "
             f"{len(fkeep) - max(within_sizes)} ({args.splits} splits):", "",
             "| method | " + " | ".join(f"{n} train" for n in within_sizes) + " |",
             "|---|" + "---:|" * len(within_sizes)]
    lines += [f"| {m} | " + " | ".join(cell(within[m, n]) for n in within_sizes) + " |"
              for m in makers]
    lines += ["", f"(b) Fitted on sub-space architectures (random subsets; all {len(skeep)}: "
                  "3 seeds), Spearman on all the full-space samples:", "",
              "| method | " + " | ".join(f"{n} sub-space train" for n in transfer_sizes) + " |",
              "|---|" + "---:|" * len(transfer_sizes)]
    lines += [f"| {m} | " + " | ".join(cell(transfer[m, n]) for n in transfer_sizes) + " |"
              for m in makers]
    best = max(makers, key=lambda m: np.mean(within[m, 100])) if 100 in within_sizes else None
    if best is not None:
        lines += ["", f"Best at 100 full-space training architectures: {best}, Spearman "
                      f"{np.mean(within[best, 100]):.3f} (sub-space: see the table above)."]
    section = "\n".join(lines) + "\n"
    _write_section(args.out, FULL_TITLE, section)
    print(section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
