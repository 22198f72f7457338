#!/usr/bin/env python
"""Score architectures with a warmed-up supernet and measure how well the scores rank them.

For each warm-up length in ``--steps`` a fresh supernet is warmed up (``prednas.warmup``) and the
same ``--n`` architectures get every supernet-derived score: the inherited accuracy and loss, each
SiGeo term and the SiGeo score (``scorer.features``), and, with ``--stnas-steps``, the
log-probability under an ST-NAS distribution learned from the longest warm-up's supernet
(``prednas.stnas.train(warmed_up=...)``). Next to them: the same SiGeo terms on the supernet at
initialisation (``--init-control``, no warm-up), and the zero-cost proxies of the shipped proxy
table (random initialisation, full-size networks). Spearman and Kendall tau against the NB201
200-epoch test accuracies (CIFAR-10, CIFAR-100, ImageNet16-120), or with ``--space blocks1d``
against the ``blocks1d-mnist1d`` table (its sub-space, MNIST-1D), the warm-up cost and the
per-architecture scoring cost go to ``--report`` (markdown; with ``--section`` as one section of an
existing file, replacing a section of the same title). ``--out`` gets the longest warm-up's scores
as ``arch,<feature names>``. The architectures are a seeded sample of the shipped proxy table when
it exists (so the scores join with the proxy features), else of the whole benchmark table.

    nice -n 10 python scripts/supernet_scores.py --task cifar10 \\
        --task-path /work/shared/data/cifar10-subset.npz --n 400 --seed 0 --steps 600 \\
        --stnas-steps 300 --out benchmarks/supernet-nb201-scores.csv \\
        --report benchmarks/supernet-nb201.md
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import re
import shlex
import sys
import time

import numpy as np
import torch

import prednas
import spaces
from prednas.errors import PredNASError
from prednas.metrics import rank_correlations
from prednas.supernet import SupernetScores
from prednas.utils import atomic_write_text, make_rng

log = logging.getLogger("supernet_scores")
#: per space: the benchmark holding the ground truth, its metrics (first: the main one) and their
#: column titles, the proxy table's task, and what the truth is, for the report
SETTINGS = {
    "nb201": {"bench": "nb201", "task": "cifar10", "table_task": "cifar10",
              "metrics": ("cifar10_test_200ep", "cifar100_test_200ep", "imagenet16_test_200ep"),
              "titles": ("CIFAR-10", "CIFAR-100", "ImageNet16-120"),
              "truth": "NB201 200-epoch test accuracy (mean over seeds)"},
    "blocks1d": {"bench": "blocks1d-mnist1d", "task": "mnist1d", "table_task": "mnist1d",
                 "metrics": ("test_acc", "val_acc"), "titles": ("test acc", "val acc"),
                 "truth": "blocks1d-mnist1d accuracy after the benchmark's recipe (mean over "
                          "seeds)"},
}
METRICS = SETTINGS["nb201"]["metrics"]
_EVAL = ["supernet_acc", "supernet_neg_loss"]
_SIGEO = ["sigeo_zico", "sigeo_fr", "sigeo_neg_loss", "sigeo"]


def choose_archs(n: int, seed: int, bench, space_name: str = "nb201",
                 table_task: str = "cifar10") -> tuple[list[str], str, object]:
    """``n`` arch strings from the shipped proxy table if there is one, else the benchmark's
    table; and the proxy table (``None`` without one)."""
    pool, source, table = None, f"the {bench.name} table (no shipped proxy table found)", None
    try:
        import proxies

        table = proxies.load_table(space_name, table_task)
        known = set(bench.arch_strings())
        pool = [a for a in table.arch_strings if a in known] or None
        if pool:
            source = f"the shipped proxy table ({len(table.arch_strings)} archs)"
    except (ImportError, AttributeError, PredNASError, OSError) as exc:
        log.info("no shipped proxy table (%s); sampling from the benchmark's table", exc)
        table = None
    if pool is None:
        pool = list(bench.arch_strings())
    rng = make_rng(seed)
    idx = rng.choice(len(pool), size=min(n, len(pool)), replace=False)
    return [pool[i] for i in sorted(idx)], source, table


def correlations(scores, truth) -> dict[str, tuple[float, float]]:
    out = {}
    for m, t in truth.items():
        rho, tau, _ = rank_correlations(np.asarray(scores, float), t, min_pairs=2)
        out[m] = (rho, tau)
    return out


def timed_features(scorer, archs, names) -> tuple[np.ndarray, float]:
    """``scorer.features(archs, names)`` and its wall time per architecture."""
    t = time.perf_counter()
    feats = scorer.features(archs, names, progress=True)
    return feats, (time.perf_counter() - t) / max(1, len(archs))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--space", default="nb201", choices=list(SETTINGS),
                    help="nb201 (truth: the NB201 table) or blocks1d (the blocks1d-mnist1d "
                         "sub-space and its table)")
    ap.add_argument("--task", default=None, help="default: cifar10 for nb201; for blocks1d the "
                                                 "benchmark's own MNIST-1D recipe")
    ap.add_argument("--task-path", default=None)
    ap.add_argument("--n", type=int, default=300, help="architectures to score")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int, nargs="+", default=[200],
                    help="warm-up lengths (a fresh supernet each); --out gets the longest")
    ap.add_argument("--fraction", type=float, default=1.0, help="share of the training split")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--sampling", default="uniform", choices=list(prednas.supernet.SAMPLINGS))
    ap.add_argument("--paths-per-step", type=int, default=1)
    ap.add_argument("--path-dropout", type=float, default=0.0)
    ap.add_argument("--C", type=int, default=8, help="supernet channels (benchmark nets: 16)")
    ap.add_argument("--N", type=int, default=2, help="cells per stage (benchmark nets: 5)")
    ap.add_argument("--resolution", type=int, default=16,
                    help="average-pool the images down to this side for the supernet (0: keep)")
    ap.add_argument("--calib-size", type=int, default=128)
    ap.add_argument("--val-size", type=int, default=256)
    ap.add_argument("--sigeo-batches", type=int, default=4)
    ap.add_argument("--no-sigeo", action="store_true", help="skip the SiGeo terms")
    ap.add_argument("--init-control", action=argparse.BooleanOptionalAction, default=True,
                    help="also score the SiGeo terms on the supernet at initialisation")
    ap.add_argument("--table", action=argparse.BooleanOptionalAction, default=True,
                    help="also report the shipped table's zero-cost proxies")
    ap.add_argument("--stnas-steps", type=int, default=0,
                    help="ST-NAS search steps from the longest warm-up (0: off)")
    ap.add_argument("--alpha-lr", type=float, default=0.05)
    ap.add_argument("--st-terms", default="all", choices=["all", "sampled"])
    ap.add_argument("--proxies", nargs="+", default=None, metavar="PROXY",
                    help="also these zero-cost proxies of each architecture's network on the "
                         "supernet's weights, at init and after each warm-up")
    ap.add_argument("--proxy-batch", type=int, default=64, help="examples the proxies see")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", required=True, help="CSV of the longest warm-up's scores")
    ap.add_argument("--report", default=None,
                    help="markdown report (e.g. benchmarks/supernet-nb201.md)")
    ap.add_argument("--section", default=None,
                    help="write the report as the section with this title of --report, keeping "
                         "the rest of the file")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)
    t_all = time.perf_counter()
    global METRICS
    cfg = SETTINGS[args.space]
    METRICS = cfg["metrics"]
    bench = prednas.benchmarks.load(cfg["bench"])
    space = bench.space if args.space == "blocks1d" else spaces.get(args.space)
    args.task = args.task or cfg["task"]
    kw = {"path": args.task_path} if args.task_path else {}
    if args.space == "blocks1d" and args.task == bench.recipe["task"] and not kw:
        kw = dict(bench.recipe.get("task_options", {}))
    task = prednas.tasks.get(args.task, **kw)
    if args.space == "nb201" and args.resolution:  # warm-up and scores on the pooled images
        task = task.downsample(args.resolution)
    net_kw = {"C": args.C, "N": args.N} if args.space == "nb201" else {}
    archs, source, table = choose_archs(args.n, args.seed, bench, args.space, cfg["table_task"])
    truth = {m: np.asarray(bench.values(m, archs=archs), dtype=float) for m in METRICS}
    log.info("scoring %d archs from %s on %s", len(archs), source, task)
    names = _EVAL + ([] if args.no_sigeo else _SIGEO)
    rows: list[dict] = []  # one per score: name, source, cost, correlations
    runs: list[dict] = []

    def write_report():
        if args.report:
            text = report(args, rows, runs, source, len(archs), task,
                          time.perf_counter() - t_all)
            if args.section:
                text = replace_section(args.report, args.section, text)
            atomic_write_text(args.report, text)

    # the zero-cost proxies of the shipped table (random init, full-size networks): free
    if table is not None and args.table:
        for p in table.names:
            vals = table.lookup(archs, [p])[:, 0]
            where = "C=16 N=5 32x32" if args.space == "nb201" else "the benchmark's networks"
            rows.append({"score": p, "source": f"zero-cost proxy at random init (shipped table, "
                         f"{where})", "cost": "", "corr": correlations(vals, truth)})
    # the same SiGeo terms on the supernet at initialisation (no warm-up)
    if args.init_control and not args.no_sigeo:
        dev = prednas.utils.resolve_device(args.device)
        sub = task.subset(args.fraction, seed=args.seed)
        net = prednas.supernet.build_supernet(space, task, args.seed, dev, **net_kw)
        init = prednas.supernet.make_scorer(net, space, task, sub, seed=args.seed, device=dev,
                                            batch_size=args.batch_size,
                                            calib_size=args.calib_size, val_size=args.val_size,
                                            sigeo_batches=args.sigeo_batches)
        feats, per = timed_features(init, archs, _EVAL + _SIGEO)
        f = dict(zip(_EVAL + _SIGEO, feats.T))
        f["sigeo (zero-shot lambdas 1, 0)"] = f["sigeo_zico"] + f["sigeo_fr"]
        for k, v in f.items():
            rows.append({"score": k, "source": "supernet at init (no warm-up)",
                         "cost": f"{per:.3f} s/arch", "corr": correlations(v, truth)})
        rows += proxy_rows(net, archs, task, args, truth, "supernet at init (no warm-up)")
        write_report()
    longest = None
    for steps in args.steps:
        scorer = prednas.warmup(space, task, fraction=args.fraction, steps=steps,
                                batch_size=args.batch_size, seed=args.seed, device=args.device,
                                lr=args.lr, sampling=args.sampling,
                                paths_per_step=args.paths_per_step,
                                path_dropout=args.path_dropout, resolution=0,
                                calib_size=args.calib_size,
                                val_size=args.val_size, sigeo_batches=args.sigeo_batches,
                                **net_kw)
        ev, per_ev = timed_features(scorer, archs, _EVAL)
        cols = [ev]
        if not args.no_sigeo:
            sg, per_sg = timed_features(scorer, archs, _SIGEO)
            cols.append(sg)
        feats = np.concatenate(cols, axis=1)
        runs.append({"steps": steps, "warmup_s": scorer.seconds,
                     "final_loss": scorer.loss_curve[-1] if scorer.loss_curve else float("nan")})
        src = f"warm-up {steps} steps ({scorer.seconds:.0f} s)"
        for j, name in enumerate(names):
            cost = per_ev if name in _EVAL else per_sg
            rows.append({"score": name, "source": src, "cost": f"{cost:.3f} s/arch",
                         "corr": correlations(feats[:, j], truth)})
        rows += proxy_rows(scorer.supernet, archs, task, args, truth, src)
        log.info("steps=%d warm-up %.1f s, %.3f s/arch (+%s SiGeo), spearman(acc, c10)=%.3f",
                 steps, scorer.seconds, per_ev, "-" if args.no_sigeo else f"{per_sg:.3f}",
                 rows[-len(names)]["corr"][METRICS[0]][0])
        if longest is None or steps >= longest[0]:
            longest = (steps, scorer, feats)
        write_report()
    steps, scorer, feats = longest
    out_names, out_vals = list(names), feats
    if args.stnas_steps:
        from prednas import stnas

        res = stnas.train(space, task, warmed_up=scorer, search_steps=args.stnas_steps,
                          fraction=args.fraction, batch_size=args.batch_size, seed=args.seed,
                          device=args.device, lr=args.lr, alpha_lr=args.alpha_lr,
                          st_terms=args.st_terms, calib_size=args.calib_size,
                          val_size=args.val_size, **net_kw)
        logp = np.array([res.distribution.log_prob(a) for a in archs])
        rows.append({"score": "stnas_log_prob",
                     "source": f"ST-NAS {args.stnas_steps} steps ({args.st_terms} terms) after "
                               f"the {steps}-step warm-up ({res.search_seconds:.0f} s)",
                     "cost": "lookup", "corr": correlations(logp, truth)})
        runs.append({"stnas_steps": args.stnas_steps, "stnas_s": res.search_seconds,
                     "argmax": str(res.distribution.argmax()),
                     "argmax_acc": float(bench.values(METRICS[0], archs=[
                         str(res.distribution.argmax())])[0]),
                     "entropy": res.distribution.entropy(),
                     "uniform": _uniform_entropy(space)})
        out_names.append("stnas_log_prob")
        out_vals = np.concatenate([feats, logp[:, None]], axis=1)
    SupernetScores(space, archs, out_vals, names=out_names).to_csv(args.out)
    write_report()
    for r in rows:
        print(f"{r['score']:>32} [{r['source'][:40]}]: " + ", ".join(
            f"{m.split('_')[0]} rho={r['corr'][m][0]:.3f}" for m in METRICS))
    print(f"total {time.perf_counter() - t_all:.0f} s; scores -> {args.out}")
    return 0


def proxy_rows(supernet, archs, task, args, truth, source: str) -> list[dict]:
    """``--proxies``: zero-cost proxies (``proxies.score``) of each architecture's stand-alone
    network built on the supernet's weights (``supernet.subnet``), on one training batch."""
    if not args.proxies:
        return []
    from tqdm.auto import tqdm

    import proxies

    x, y = task.batch(args.proxy_batch, split="train", seed=args.seed)
    t = time.perf_counter()
    vals = [proxies.score(supernet.subnet(a), x, y, args.proxies, seed=args.seed)
            for a in tqdm(archs, desc="proxies on inherited weights", leave=False)]
    per = (time.perf_counter() - t) / max(1, len(archs))
    return [{"score": f"proxy:{p}", "source": f"{source}, its network's weights",
             "cost": f"{per:.3f} s/arch (all proxies)",
             "corr": correlations(np.array([v[p] for v in vals], float), truth)}
            for p in args.proxies]


def _uniform_entropy(space) -> float:
    """The entropy bound of a uniform distribution over the decisions (what ``entropy()`` of an
    untrained ST-NAS distribution gives)."""
    from prednas._choices import choices_for

    return float(sum(np.log(len(d)) for d in choices_for(space).decisions))


def replace_section(path: str, title: str, section: str) -> str:
    """The text of ``path`` with its ``## title`` section replaced by ``section`` (appended when
    absent; the file's other sections are kept)."""
    try:
        text = open(path).read()
    except FileNotFoundError:
        return section
    pattern = re.compile(rf"^## {re.escape(title)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        return pattern.sub(lambda _: section.rstrip("\n") + "\n\n", text).rstrip("\n") + "\n"
    return text.rstrip("\n") + "\n\n" + section


def report(args, rows, runs, source, n, task, total) -> str:
    cfg = SETTINGS[args.space]
    cmd = "python scripts/supernet_scores.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    niceness = os.nice(0) if hasattr(os, "nice") else 0
    nice = f"nice -n {niceness} " if niceness else ""
    load = os.getloadavg() if hasattr(os, "getloadavg") else ("?",)
    what = "NB201" if args.space == "nb201" else "the 1-D benchmark (blocks1d-mnist1d)"
    head = f"## {args.section}" if args.section else \
        f"# Warm-up supernet on {what}: how well do its scores rank architectures?"
    sub = "###" if args.section else "##"
    if args.space == "nb201":
        net = (f"NB201 skeleton with **C={args.C}, N={args.N}** (the benchmark networks use C=16, "
               "N=5), every edge holding all 4 live ops")
        data = (f"training fraction {args.fraction:g} of its {len(task.y_train)} training "
                f"images, images average-pooled to {task.input_shape[1]}x{task.input_shape[2]}"
                + (" (to fit this CPU)" if args.resolution else ""))
        ex = "images"
    else:
        net = ("the blocks1d-mnist1d sub-space's supernet (every slot holding every op at the "
               "widest width; narrower widths share its first channels)")
        data = (f"training fraction {args.fraction:g} of its {len(task.y_train)} training "
                f"signals ({task.input_shape})")
        ex = "signals"
    lines = [
        head,
        "",
        f"Produced by `{nice}{cmd}`",
        f"(whole run {total:.0f} s, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}).",
        "",
        f"{sub} Setting",
        f"- Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores "
        f"shared with other jobs (load average at the end "
        f"{', '.join(f'{x:.1f}' for x in load)}), torch {torch.__version__}, "
        f"{torch.get_num_threads()} thread(s), device `{args.device}`.",
        f"- Supernet: {net}; {args.sampling} path sampling, {args.paths_per_step} path(s) per "
        f"step, path dropout {args.path_dropout:g}, AdamW lr {args.lr} with a cosine schedule, "
        f"batch {args.batch_size}.",
        f"- Data: `{args.task}` ({task.info.get('source', args.task_path or '')}), {data}.",
        f"- Scoring: BN statistics recalibrated per architecture on {args.calib_size} training "
        f"{ex}, then accuracy (`supernet_acc`) and negative cross-entropy "
        f"(`supernet_neg_loss`) on {args.val_size} held-out validation {ex}. SiGeo terms "
        f"(`prednas.supernet.SupernetScorer.sigeo_terms`) from the gradients on the "
        f"{args.calib_size} calibration {ex} in {args.sigeo_batches} batches: "
        f"`sigeo = sigeo_zico + 50 sigeo_fr + 1 sigeo_neg_loss` (SiGeo's warmed-up lambdas).",
        f"- Architectures: {n}, a seeded (seed {args.seed}) sample from {source}. Ground truth: "
        f"{cfg['truth']}.",
    ]
    for r in runs:
        if "steps" in r:
            lines.append(f"- Warm-up of {r['steps']} steps: {r['warmup_s']:.1f} s, final "
                         f"training loss {r['final_loss']:.3f}.")
        else:
            lines.append(f"- ST-NAS: {r['stnas_steps']} search steps in {r['stnas_s']:.1f} s; "
                         f"argmax `{r['argmax']}` ({cfg['titles'][0]} {r['argmax_acc']:.2f}%), "
                         f"entropy {r['entropy']:.2f} nats (uniform: {r['uniform']:.2f}).")
    lines += [
        "",
        f"{sub} Rank correlation with {cfg['truth']} (Spearman rho / Kendall tau)",
        "",
        "| score | from | cost | " + " | ".join(cfg["titles"]) + " |",
        "|---|---|---:|" + "---|" * len(cfg["titles"]),
    ]
    for r in rows:
        cells = " | ".join(f"{r['corr'][m][0]:.3f} / {r['corr'][m][1]:.3f}" for m in METRICS)
        lines.append(f"| `{r['score']}` | {r['source']} | {r['cost']} | {cells} |")
    lines += [
        "",
        "Every score is higher-is-better (a negative correlation ranks backwards). One seed; "
        "with a few hundred validation examples `supernet_acc` has ties. Costs are wall time on "
        "this shared CPU; the proxy table's were paid once, offline.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except PredNASError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
