"""Real training on MNIST-1D, the final protocol: prednas against its peers.

Every method searches the default task (``prednas search``'s MNIST-1D splits) with the same recipe
(300 steps per candidate, parameter cap 60% of the baseline's, 2 workers) for ``--minutes`` of
wall clock, for ``--seeds`` seeds; runs are interleaved seed by seed, method by method, so that a
busy machine slows every method alike. Methods:

- through ``prednas search`` (a run directory each, resumed if unfinished): ``prednas`` (the
  default), ``prednas-asha`` (``--scheduler asha``), ``prednas-norace`` (``--race 0``: no race,
  the default before it was measured), ``prednas-cost`` (``--time-weight 1``: cost-aware
  proposals), ``prednas-prior`` (``--prior table``: the prior learned from the 1-D table,
  whose task is this one: its gain here is partly circular; ``benchmarks/transfer-blocks1d.md``
  measures it on another task), ``prednas-explore`` (``--explore 0.3``: 30% of each round's
  pool uniform samples for the filter to choose among) and ``prednas-prior-explore`` (both),
  ``random``, ``asha`` (random search under the engine's ASHA), ``modelsearch``, ``rea``;
- through :func:`prednas.search.peers.train_method` (the same evaluation function on a pool of
  the same size): ``tpe`` (Optuna's TPE) and ``tpe-hyperband`` (with its HyperbandPruner,
  reports at 25, 75 and 225 steps);
- read back, not run: ``prednas-loss`` and ``prednas-prior-loss``, the default and
  ``--prior table`` when the estimate read the trainings' validation losses (:data:`REFERENCE`);
  ``--repick`` names the engine peers' winners with that estimate too, for a comparison on equal
  terms (:func:`repick_peers`).

**Final protocol:** each method's pick, and the baseline, are retrained on 5 fresh seeds (1000 to
1004, never seen by a search) with the search's recipe; a pick's score is their mean test
accuracy. Reported: each method's mean score over search seeds, and its paired difference to
prednas per search seed with a 90% bootstrap interval. Everything is appended to
``benchmarks/search-mnist1d.jsonl`` as it finishes (the script resumes from it); the report is
``benchmarks/search-mnist1d.md``.

**Time until the pick matches the baseline** (``--match-methods``): each run's incumbents (the
best full training so far, each time it changed, within the parameter cap) are retrained on the
same fresh seeds in time order until one's score reaches the baseline's; the run's time to match
is when that incumbent finished (never: the run did not match). Median over search seeds.

    python scripts/benchmark_search_mnist1d.py --seeds 5 --minutes 6

Two machines can share the seeds: ``--only-seeds 4 --log OTHER.jsonl`` on the other one
(``scripts/device_search_mnist1d.sh`` runs one seed's methods at once on a many-core machine, each
on two cores of its own), then ``--merge OTHER.jsonl`` here. Each search row names its machine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from prednas.search.protocol import FRESH_SEEDS, paired_interval
from prednas.utils import append_log, read_log

ROOT = Path(__file__).resolve().parents[1]
LOG = ROOT / "benchmarks" / "search-mnist1d.jsonl"
OUT = ROOT / "benchmarks" / "search-mnist1d.md"
#: the configurations are pinned by their flags, so that a name means one search whatever the
#: defaults: ``prednas`` is the default before explore and the prior (the records' first rows),
#: ``prednas-prior-explore`` the default since (:data:`DEFAULT`)
EARLIER = ["--explore", "0", "--prior", "none"]
CLI = {"prednas": EARLIER,
       "prednas-asha": ["--scheduler", "asha", *EARLIER],
       "prednas-asha-estimate": ["--scheduler", "asha", "--rank-by", "estimate", *EARLIER],
       "prednas-norace": ["--race", "0", *EARLIER],
       "prednas-cost": ["--time-weight", "1", *EARLIER],
       "prednas-prior": ["--prior", "table", "--explore", "0"],
       "prednas-explore": ["--explore", "0.3", "--prior", "none"],
       "prednas-prior-explore": ["--prior", "table", "--explore", "0.3"],
       "random": ["--strategy", "random"],
       "asha": ["--strategy", "random", "--scheduler", "asha"],
       "modelsearch": ["--strategy", "modelsearch"], "rea": ["--strategy", "rea"]}
PEERS = ("tpe", "tpe-hyperband")
#: methods whose rows are read back, not run: made at commit 9ac1e36, when the estimate that names
#: the winner (and the race's leaders) read the trainings' validation losses by default
#: (``NoiseAwareEstimate(loss_reading=True)``): the default then, and the default with
#: ``--prior table``. Measured, the loss reading is off by default again.
REFERENCE = ("prednas-loss", "prednas-prior-loss")
METHODS = (*CLI, *PEERS, *REFERENCE)
#: the configuration ``prednas search`` runs by default, to which differences are reported
DEFAULT = "prednas-prior-explore"
#: the search seeds on which :data:`DEFAULT` was chosen among the prednas variants: the report's
#: confirmation table holds only the seeds beyond them
CHOSEN_ON = range(5)
STEPS = 300


def _log(row: dict) -> None:
    LOG.parent.mkdir(parents=True, exist_ok=True)
    append_log(LOG, row)


def _rows() -> list[dict]:
    return read_log(LOG)


def _merge(paths: list[Path]) -> None:
    """Append to ``LOG`` the rows of ``paths`` it lacks (searches by method, seed and minutes;
    retrainings by architecture and seed; matches by method, seed and minutes)."""
    def key(r):
        if r["type"] == "final":
            return ("final", r["arch"], r["seed"])
        if r["type"] == "baseline":
            return ("baseline",)
        return (r["type"], r["method"], r["seed"], r["minutes"])

    have = {key(r) for r in _rows()}
    for path in paths:
        for r in read_log(path):
            if key(r) not in have:
                _log(r)
                have.add(key(r))


def _task():
    from prednas import tasks
    from prednas.tasks.mnist1d import SEARCH_SPLITS

    return tasks.get("mnist1d", **SEARCH_SPLITS)


def run_cli(method: str, seed: int, minutes: float, runs: Path) -> dict:
    run = runs / f"{method}-s{seed}"
    cmd = [sys.executable, "-m", "prednas", "search", "--seed", str(seed), "--replicas", "0",
           "--budget", "1000", "--max-minutes", str(minutes), "--workers", "2",
           "--device", "cpu"]
    cmd += ["--resume", str(run)] if (run / "state.json").exists() else [
        *CLI[method], "--out", str(run)]
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    from prednas.search.peers import incumbents

    best = json.loads((run / "best.json").read_text())
    recs = read_log(run / "evaluations.jsonl")
    done = [(r["elapsed"], r["objective"], r["arch"]) for r in recs if r["kind"] == "candidate"
            and r["status"] == "ok" and r.get("elapsed") is not None]
    return {"pick": best["arch"], "pick_val": best.get("val_acc"),
            "evaluations": sum(1 for r in recs if r["kind"] == "candidate"),
            "trainings": len(recs), "incumbents": incumbents(done)}


def run_peer(method: str, seed: int, minutes: float, runs: Path) -> dict:
    import spaces
    from prednas.search.defaults import PARAM_CAP, param_count
    from prednas.search.peers import TPEMethod, train_method, trial_incumbents

    task = _task()
    space = spaces.get("blocks1d")
    cap = int(PARAM_CAP * param_count(space, space.default_arch(), task))
    m = TPEMethod(hyperband=method == "tpe-hyperband", min_resource=25)
    out = train_method(m, space, task, run_dir=runs / f"{method}-s{seed}", seed=seed,
                       workers=2, max_seconds=60.0 * minutes, max_params=cap, steps=STEPS,
                       points=(25, 75, 225) if m.hyperband else ())
    return {"pick": out["pick"], "pick_val": out["pick_val"], "evaluations": out["evaluations"],
            "trainings": out["jobs"], "incumbents": trial_incumbents(out["trials"])}


#: the peers that search through ``prednas search`` and so name their winner by the engine's
#: estimate, as prednas does (none of them races: with one training each, the estimate orders
#: them by their accuracies, and with the loss reading by their validation losses too)
ENGINE_PEERS = ("random", "asha", "modelsearch", "rea")


def repick(run: Path) -> str | None:
    """The winner the estimate with the loss reading (``prednas-loss``'s) names from the
    trainings a finished run recorded: what the run would hand over with it (its trajectory does
    not depend on how the winner is named, for a method that does not race)."""
    from types import SimpleNamespace

    from prednas.search.base import Record
    from prednas.search.estimates import NoiseAwareEstimate
    from prednas.search.racing import winner

    recs = [Record.from_json(r) for r in read_log(run / "evaluations.jsonl")]
    fake = SimpleNamespace(_records=recs, estimator=NoiseAwareEstimate(loss_reading=True), race=0.0,
                           simulated=False, evaluator=SimpleNamespace(is_oracle=False))
    best, _ = winner(fake)
    return None if best is None else best.arch


def repick_peers(methods, minutes: float, runs: Path, done: set) -> None:
    """For each engine peer's run without a ``repick`` row: its winner under the estimate with
    the loss reading (:func:`repick`), logged and retrained on the fresh seeds."""
    have = {(r["method"], r["seed"]) for r in _rows()
            if r["type"] == "repick" and r["minutes"] == minutes}
    for r in [r for r in _rows() if r["type"] == "search" and r["minutes"] == minutes
              and r["method"] in methods and r["method"] in ENGINE_PEERS]:
        run = runs / f"{r['method']}-s{r['seed']}"
        if (r["method"], r["seed"]) in have or not (run / "evaluations.jsonl").exists():
            continue
        pick = repick(run)
        _log({"type": "repick", "method": r["method"], "seed": r["seed"], "minutes": minutes,
              "pick": pick, "was": r["pick"]})
        if pick:
            final_protocol([pick], done)


def _retrain(arch: str, seed: int) -> dict:
    import torch

    from prednas.training import train

    torch.set_num_threads(1)
    rec = train("blocks1d", arch, _task(), steps=STEPS, seed=seed, device="cpu",
                keep_model=False)
    return {"arch": arch, "seed": seed, "status": rec.status, "test_acc": rec.test_acc,
            "val_acc": rec.val_acc, "params": rec.params}


def final_protocol(archs: list[str], done: set) -> None:
    """Retrain each of ``archs`` on the fresh seeds not yet recorded, two at a time."""
    from concurrent.futures import ProcessPoolExecutor

    jobs = [(a, s) for a in dict.fromkeys(archs) for s in FRESH_SEEDS if (a, s) not in done]
    if not jobs:
        return
    with ProcessPoolExecutor(2) as pool:
        for row in pool.map(_retrain, *zip(*jobs)):
            _log({"type": "final", **row})
            done.add((row["arch"], row["seed"]))


def _scores(rows: list[dict]) -> dict[str, float]:
    """Final-protocol score of every architecture retrained on all the fresh seeds."""
    finals: dict[str, list[float]] = {}
    for r in rows:
        if r["type"] == "final" and r["status"] == "ok":
            finals.setdefault(r["arch"], []).append(float(r["test_acc"]))
    return {a: float(np.mean(v)) for a, v in finals.items() if len(v) == len(FRESH_SEEDS)}


def time_to_match(methods, minutes: float, done: set) -> None:
    """For each run of ``methods`` without a ``match`` row: its incumbents within the parameter
    cap, retrained in time order until one's score reaches the baseline's (logged)."""
    import spaces
    from prednas.search.defaults import PARAM_CAP, param_count

    task, space = _task(), spaces.get("blocks1d")
    cap = PARAM_CAP * param_count(space, space.default_arch(), task)
    rows = _rows()
    base = next(r["arch"] for r in rows if r["type"] == "baseline")
    matched = {(r["method"], r["seed"]) for r in rows
               if r["type"] == "match" and r["minutes"] == minutes}
    for run in [r for r in rows if r["type"] == "search" and r["minutes"] == minutes
                and r["method"] in methods and "incumbents" in r]:
        if (run["method"], run["seed"]) in matched:
            continue
        hit = None
        for end, arch in run["incumbents"]:
            if param_count(space, arch, task) > cap:
                continue
            final_protocol([arch], done)
            score = _scores(_rows())
            if score.get(arch, -np.inf) >= score[base]:
                hit = (end, arch)
                break
        _log({"type": "match", "method": run["method"], "seed": run["seed"],
              "minutes": minutes, "arch": hit and hit[1],
              "minutes_to_match": None if hit is None else hit[0] / 60.0})


def _match_lines(rows: list[dict], minutes: float, methods) -> list[str]:
    got = [r for r in rows if r["type"] == "match" and r["minutes"] == minutes]
    if not got:
        return []
    lines = ["", "## Time until the pick matches the baseline", "",
             "Wall minutes of the search until its incumbent (the best full training so far, "
             "within the parameter cap) scores at least the baseline on the final protocol; "
             "median over search seeds (inf: more than half never matched); the fresh seeds are "
             f"those beyond {_span(CHOSEN_ON)}, on which the default was not chosen.", "",
             "| method | seeds | median minutes | matched | fresh seeds: median minutes | "
             "matched |", "|---|---:|---:|---:|---:|---:|"]

    def cells(rs):
        ts = np.array([np.inf if r["minutes_to_match"] is None else r["minutes_to_match"]
                       for r in rs], float)
        if not len(ts):
            return "— | —"
        return f"{np.median(ts):.2f} | {int(np.isfinite(ts).sum())}/{len(ts)}"

    for m in methods:
        rs = [r for r in got if r["method"] == m]
        if rs:
            lines.append(f"| {m} | {len(rs)} | {cells(rs)} | "
                         f"{cells([r for r in rs if r['seed'] not in CHOSEN_ON])} |")
    return lines


def _paired(ref: dict, got: dict) -> str:
    """The paired difference ``ref - got`` over the search seeds both scored, with its 90%
    bootstrap interval, as a table cell (empty where none)."""
    d = np.array([ref[s] - got[s] for s in got
                  if got[s] is not None and ref.get(s) is not None], float)
    if not len(d):
        return ""
    lo, hi = paired_interval(d)
    return f"{d.mean():+.2f} [{lo:+.2f}, {hi:+.2f}] (n={len(d)})"


def _repick_lines(rows, minutes: float, score: dict, ref: dict, methods,
                  ref_name: str = DEFAULT) -> list[str]:
    """The engine peers' winners as the estimate with the loss reading names them."""
    got = {(r["method"], r["seed"]): r for r in rows
           if r["type"] == "repick" and r["minutes"] == minutes and r["method"] in methods}
    if not got:
        return []
    lines = ["", "## Engine peers, their winners named by the estimate with the loss reading", "",
             "Random search, ASHA, Model Search and REA search through `prednas search` and name "
             "their winner by the engine's estimate, as prednas does. `prednas-loss` and "
             "`prednas-prior-loss` named theirs by the estimate that also reads validation "
             "losses; to compare them on equal terms, each peer run's winner is named again from "
             "the trainings it recorded by that estimate (what the run would hand over with it: "
             "none of these methods races, so its trajectory does not depend on the winner), "
             f"and retrained on the same fresh seeds. Differences here are still to `{ref_name}`.",
             "",
             "| method | seeds | picks changed | final protocol (mean ± std over seeds) | "
             f"{ref_name} − method (paired, 90% CI) |", "|---|---:|---:|---:|---:|"]
    for m in ENGINE_PEERS:
        rs = {s: r for (mm, s), r in got.items() if mm == m}
        vals = {s: score.get(r["pick"]) for s, r in rs.items()}
        v = np.array([x for x in vals.values() if x is not None], float)
        if not len(v):
            continue
        changed = sum(1 for r in rs.values() if r["pick"] != r["was"])
        lines.append(f"| {m} | {len(v)} | {changed}/{len(rs)} | {v.mean():.2f} ± {v.std():.2f} | "
                     f"{_paired(ref, vals)} |")
    return lines


def _seed_lines(runs: dict, score: dict, methods) -> list[str]:
    """Each search seed's final-protocol scores, and the machines its searches ran on."""
    seeds = sorted({s for _, s in runs})
    if not seeds:
        return []
    lines = ["", "## By search seed", "",
             "Final-protocol score of each method's pick (·: search or retraining not done yet).",
             "", "| seed | " + " | ".join(methods) + " | machine |",
             "|---:|" + "---:|" * len(methods) + "---|"]
    for s in seeds:
        cells = [score.get(runs[(m, s)]["pick"]) if (m, s) in runs else None for m in methods]
        machines = sorted({r.get("machine", "not recorded") for (m, ss), r in runs.items()
                           if ss == s})
        lines.append(f"| {s} | " + " | ".join("·" if c is None else f"{c:.2f}" for c in cells)
                     + f" | {'; '.join(machines)} |")
    return lines


def _span(seeds) -> str:
    return f"{min(seeds)} to {max(seeds)}"


def _method_lines(runs: dict, score: dict, methods, ref_name: str) -> list[str]:
    """Each method's final-protocol score over the search seeds of ``runs``, and its paired
    difference to ``ref_name``, as table lines (methods without a run there are left out)."""
    lines = ["| method | seeds | candidates fully trained (mean) | final protocol (mean ± std "
             f"over seeds) | {ref_name} − method (paired, 90% CI) |", "|---|---:|---:|---:|---:|"]
    ref = {s: score.get(r["pick"]) for (m, s), r in runs.items() if m == ref_name}
    present = {m for m, _ in runs}
    for m in (m for m in methods if m in present):
        got = {s: score.get(r["pick"]) for (mm, s), r in runs.items() if mm == m}
        vals = np.array([v for v in got.values() if v is not None], float)
        n_eval = np.mean([r["evaluations"] for (mm, _), r in runs.items() if mm == m] or [0])
        diff = "" if m == ref_name or not len(vals) else _paired(ref, got)
        lines.append(f"| {m} | {len(vals)} | {n_eval:.1f} | "
                     + (f"{vals.mean():.2f} ± {vals.std():.2f}" if len(vals) else "—")
                     + f" | {diff} |")
    return lines


def report(rows: list[dict], minutes: float, seeds: int, methods, note: str,
           ref_name: str = DEFAULT) -> str:
    from prednas.benchmarks.build import machine_name

    score = _scores(rows)
    runs = {(r["method"], r["seed"]): r for r in rows
            if r["type"] == "search" and r["minutes"] == minutes}
    base = next((r["arch"] for r in rows if r["type"] == "baseline"), None)
    lines = ["# Search with real training on MNIST-1D, final protocol: prednas against its peers",
             "", f"Command: `python scripts/benchmark_search_mnist1d.py --seeds {seeds} "
             f"--minutes {minutes:g}` on {machine_name()}. {note}", "",
             f"Each pick (and the baseline `{base}`) is retrained on the fresh seeds "
             f"{', '.join(map(str, FRESH_SEEDS))}; its score is their mean test accuracy. "
             f"Differences are paired by search seed (`{ref_name}`'s score minus the method's), "
             "with 90% bootstrap intervals. `prednas search` runs "
             f"`{DEFAULT}` by default (`--explore 0.3`, `--prior table` in a blocks1d space); "
             "`prednas` is the default before them (`--explore 0 --prior none`).", ""]
    ref = {s: score.get(r["pick"]) for (m, s), r in runs.items() if m == ref_name}
    lines += _method_lines(runs, score, methods, ref_name)
    if base in score:
        lines += ["", f"Baseline `{base}` on the same protocol: {score[base]:.2f}."]
    fresh = {k: r for k, r in runs.items() if k[1] not in CHOSEN_ON}
    if fresh and len(fresh) < len(runs):
        lines += ["", "## Confirmation on fresh search seeds", "",
                  f"`{DEFAULT}` became the default after it was measured, among several prednas "
                  f"variants, on search seeds {_span(CHOSEN_ON)}: there it was chosen, so its lead "
                  "is biased upwards. The search seeds beyond those were not seen when it was "
                  "chosen, and every method ran on them interleaved, seed by seed; this table "
                  "holds only them.", ""]
        lines += _method_lines(fresh, score, methods, ref_name)
    lines += _repick_lines(rows, minutes, score, ref, methods, ref_name)
    lines += _seed_lines(runs, score, methods)
    lines += _match_lines(rows, minutes, methods)
    return "\n".join(lines) + "\n"


def _seed_list(ap, text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        ap.error(f"--only-seeds {text!r}: give comma-separated integers, e.g. 3,4")
        raise


def main(argv=None) -> int:
    global LOG
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--only-seeds", default="",
                    help="comma-separated search seeds to run now (default: 0 .. --seeds - 1); "
                         "lets two machines share the seeds, each with its own --log")
    ap.add_argument("--log", default=str(LOG),
                    help="the append-only record to write and resume from (merge several with "
                         "--merge)")
    ap.add_argument("--merge", nargs="*", default=[],
                    help="first append to --log the rows of these records that it lacks "
                         "(another machine's --log)")
    ap.add_argument("--minutes", type=float, default=6.0, help="wall clock of each search")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--runs", default=str(ROOT / "runs" / "bench-mnist1d"))
    ap.add_argument("--report-only", action="store_true")
    ap.add_argument("--beside", default="nothing else",
                    help="what else ran on the machine during the searches, for the report")
    ap.add_argument("--match-methods", default="prednas,random,asha,tpe-hyperband",
                    help="methods whose time until the pick matches the baseline is measured "
                         "(their incumbents are retrained); empty: none")
    ap.add_argument("--repick", action="store_true",
                    help="name each engine peer's winner again from its run's trainings with the "
                         "estimate that reads validation losses (prednas-loss's), and retrain it")
    args = ap.parse_args(argv)
    LOG = Path(args.log)
    seeds = _seed_list(ap, args.only_seeds) if args.only_seeds else range(args.seeds)
    if args.merge:
        _merge([Path(x) for x in args.merge])
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    bad = [m for m in methods if m not in METHODS]
    if bad:
        ap.error(f"unknown methods {bad}; choose from {', '.join(METHODS)}")
    runs = Path(args.runs) / f"{args.minutes:g}min"
    runs.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    load = os.getloadavg()[0]
    if not args.report_only:
        import spaces
        from prednas.benchmarks.build import machine_name

        rows = _rows()
        done = {(r["arch"], r["seed"]) for r in rows if r["type"] == "final"}
        base = str(spaces.get("blocks1d").default_arch())
        if not any(r["type"] == "baseline" for r in rows):
            _log({"type": "baseline", "arch": base})
        final_protocol([base], done)
        for seed in seeds:
            for m in methods:
                if m in REFERENCE:
                    continue
                if any(r["type"] == "search" and r["method"] == m and r["seed"] == seed
                       and r["minutes"] == args.minutes for r in _rows()):
                    continue
                out = (run_peer if m in PEERS else run_cli)(m, seed, args.minutes, runs)
                _log({"type": "search", "method": m, "seed": seed, "minutes": args.minutes,
                      "machine": machine_name(), **out})
            picks = [r["pick"] for r in _rows() if r["type"] == "search" and r["seed"] == seed
                     and r["minutes"] == args.minutes and r["pick"]]
            final_protocol(picks, done)
            time_to_match([m for m in args.match_methods.split(",") if m in methods],
                          args.minutes, done)
        if args.repick:
            repick_peers(methods, args.minutes, runs, done)
    note = (f"Beside the searches ran: {args.beside}. "
            f"This invocation took {(time.time() - t0) / 60:.0f} min (rows already in "
            f"{LOG.name} are read back); load average {load:.1f} when it started.")
    text = report(_rows(), args.minutes, args.seeds, methods, note)
    OUT.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
