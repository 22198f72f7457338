"""``report.md`` and its PNG plots for a finished search."""

from __future__ import annotations

import logging
import math

import numpy as np

from prednas.utils import fmt_number as _fmt

__all__ = ["write_report", "pareto_front"]

log = logging.getLogger(__name__)


def pareto_front(params: np.ndarray, acc: np.ndarray) -> np.ndarray:
    """Indices of the points no other point beats on both fewer parameters and higher accuracy,
    sorted by parameters."""
    order = np.lexsort((-acc, params))
    front, best = [], -np.inf
    for i in order:
        if acc[i] > best:
            front.append(i)
            best = acc[i]
    return np.asarray(front, int)


def _figure(figsize):
    from prednas.utils import new_figure

    return new_figure(figsize)


def write_report(search, result) -> None:
    """Write ``report.md`` (and its plots) for ``result`` into the run directory: the user's own
    settings and results, without targets (those belong to the benchmark files)."""
    rd = result.run_dir
    recs = sorted(result.records, key=lambda r: r.query)
    ok = [r for r in recs if r.ok]
    simulated = bool(getattr(search, "simulated", False))
    oracle = search.evaluator.is_oracle and not simulated
    ylabel = f"{search.metric} (%)" if oracle else "objective (val acc %, penalised over the cap)"
    lines = ["# prednas search report", ""]
    cfg = search.config()
    lines += [f"- space: `{cfg['space']}`"
              + (f" ({search.space.describe()})" if cfg.get("space_config") else "") + "; "
              + (f"benchmark `{cfg['bench']}` ({cfg['metric']}), one query per evaluation"
                 if oracle else _simulation_line(search, cfg) if simulated
                 else f"task `{cfg['task']}`"
                 + (f" with {cfg['task_options']}" if cfg.get("task_options") else "")),
              f"- seed {search.seed}, budget {search.budget} evaluations, {search.per_round} per "
              "round" + (f", time cap {search.max_seconds:.0f} s" if search.max_seconds else "")
              + (f", parameter cap {search.max_params:,}" if search.max_params else ""),
              "- strategies: " + ", ".join(f"{k} `{v['name']}`"
                                          for k, v in cfg["strategies"].items() if v is not None),
              f"- evaluations: {len(recs)} ({len(recs) - len(ok)} failed)"]
    if getattr(search, "scheduler", None) is not None:
        lines += [_fidelity_line(search)]
    signals = search.filter.signals()
    if signals:
        lines += ["- the filter ranked candidates with: "
                  + "; ".join(f"{k}: {v}" for k, v in signals.items())]
    if signals.get("prior"):
        lines += [f"- transfer: the filter used the pretrained predictor `{signals['prior']}` as "
                  "a prior (its ranking orders candidates before this run has data, then fades "
                  "out)"]
    lines += [""]
    failed = [r for r in recs if not r.ok]
    if failed:
        lines += ["## Failed candidates", ""] + [f"- `{r.arch}`: {r.status} — {r.reason}"
                                                 for r in failed] + [""]
    best = result.best
    if best is not None:
        lines += ["## Best architecture", "", f"`{best.arch}`", ""]
        if oracle:
            lines += [f"- {search.metric}: {_fmt(best.objective, 4)} (query {best.query + 1})",
                      ""]
        else:
            lines += [f"- validation accuracy {_fmt(best.get('val_acc'))}%, test accuracy "
                      f"{_fmt(best.get('test_acc'))}%, {best.get('params', 0):,} parameters", ""]
            est = result.estimate
            if est:
                lines[-1:-1] = [f"- why it won: {est['why']} (seed noise {est['noise_std']:.2f} "
                                "points, measured on the run's repeats and a prior)"]
    base = result.baseline
    if base is not None and best is not None and base.ok:
        ratio = best.get("params", 0) / max(1, base.get("params", 1))
        gain = best.get("test_acc", math.nan) - base.get("test_acc", math.nan)
        lines += ["## Against the baseline (same recipe, same run)", "",
                  "| model | params | val acc | test acc |", "|---|---:|---:|---:|",
                  f"| baseline `{base.arch}` | {base.get('params', 0):,} | "
                  f"{_fmt(base.get('val_acc'))} | {_fmt(base.get('test_acc'))} |",
                  f"| best found `{best.arch}` | {best.get('params', 0):,} | "
                  f"{_fmt(best.get('val_acc'))} | {_fmt(best.get('test_acc'))} |", "",
                  f"The best found uses {100 * ratio:.1f}% of the baseline's parameters; test "
                  f"accuracy difference {gain:+.2f} points.", ""]
    ens = result.ensemble
    if ens and ens.get("path"):
        lines += ["## Ensemble", "",
                  f"{len(ens['archs'])} replicas retrained from scratch with other seeds and data "
                  "order, weights fitted on validation NLL: "
                  + ", ".join(f"{w:.3f}" for w in ens["weights"]) + ".", "",
                  "- replicas' test accuracy: " + ", ".join(_fmt(a) for a in ens["member_test_accs"]),
                  f"- ensemble test accuracy {_fmt(ens['test_acc'])}% vs single best model "
                  f"{_fmt(ens['single_test_acc'])}%: {ens['gain']:+.2f} points",
                  f"- artifact: `{ens['path']}` (`prednas.ensemble.load(path).predict(x)`)", ""]
    if result.overhead:
        secs = [o["seconds"] for o in result.overhead]
        pools = [o["pool"] for o in result.overhead]
        lines += ["## Overhead", "",
                  f"Time outside evaluation (mutation, filtering, refitting) per round: mean "
                  f"{np.mean(secs):.3f}s, max {np.max(secs):.3f}s over {len(secs)} rounds, "
                  f"pools of up to {max(pools)} mutations.", ""]
    if len(getattr(search, "objectives", ())) > 1 and ok:
        lines += _pareto_section(search, result, ok)
    figs = _plots(search, result, recs, ok, ylabel, lines) if ok else []
    for title, name in figs:
        lines += [f"## {title}", "", f"![{title}]({name})", ""]
    from prednas.utils import atomic_write_text

    atomic_write_text(rd / "report.md", "\n".join(lines))


def _simulation_line(search, cfg) -> str:
    """What a simulated run replayed, and how its clock ran."""
    ev = search.evaluator
    clock = getattr(search, "_clock", None)
    cost = ("the strategy's measured time" if ev.decision_seconds == "measured"
            else f"a modelled {float(ev.decision_seconds):g} s per decision")
    return (f"**simulated** training: each evaluation replays one recorded run of benchmark "
            f"`{cfg['bench']}` ({ev.steps_ if hasattr(ev, 'steps_') else ev.steps} steps), its "
            f"recorded {ev.seconds} seconds charged to a simulated clock of {ev.workers} "
            f"worker(s), plus {cost}"
            + (f"; simulated time {clock.now / 60:.1f} min" if clock is not None else ""))


def _pareto_section(search, result, ok) -> list[str]:
    """The front's members, the hypervolume after each round, and one plot per cost."""
    import json

    from prednas.search.pareto import feasible, objective_matrix, pareto_front

    costs = list(search.objectives[1:])
    first = search.objectives[0]
    cands = feasible(ok, search.constraints)
    lines = ["## Pareto front", "",
             f"Objectives: maximise `{first}`, minimise " + ", ".join(f"`{c}`" for c in costs)
             + (("; constraints: " + ", ".join(f"{k} <= {v:g}" for k, v in
                                               search.constraints.items()))
                if search.constraints else "") + ".", ""]
    if not cands:
        return lines + ["No evaluated candidate meets the constraints: the front is empty.", ""]
    F = objective_matrix(cands, costs)
    front = sorted((cands[i] for i in pareto_front(F)), key=lambda r: [r.get(c) for c in costs])
    lines += ["| architecture | " + first + " | " + " | ".join(costs) + " |",
              "|---|---:|" + "---:|" * len(costs)]
    lines += [f"| `{r.arch}` | {_fmt(r.objective)} | "
              + " | ".join(f"{float(r.get(c)):,.4g}" for c in costs) + " |" for r in front]
    try:
        state = json.loads((result.run_dir / "state.json").read_text())
    except (OSError, ValueError):
        state = {}
    hv = state.get("hypervolume") or []
    if hv:
        lines += ["", f"Hypervolume (reference point {state.get('hv_reference')}) after each "
                  "round: " + ", ".join(f"{h['evaluations']}: {h['hypervolume']:.4g}"
                                        for h in hv) + "."]
    lines += ["", "The front is in `pareto.jsonl` (one JSON object per member).", ""]
    base = result.baseline
    for c in costs:
        fig, ax = _figure((5, 3.5))
        ax.scatter([float(r.get(c)) for r in cands], [r.objective for r in cands], s=12,
                   label="candidates")
        ax.plot([float(r.get(c)) for r in front], [r.objective for r in front], "r-o", ms=4,
                label="Pareto front")
        if base is not None and base.ok and base.get(c) is not None:
            ax.scatter([float(base.get(c))], [base.objective], marker="*", s=120, c="k",
                       label="baseline")
        ax.set_xlabel(c)
        ax.set_ylabel(first)
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        name = f"pareto_{c}.png"
        fig.savefig(result.run_dir / name, dpi=110)
        lines += [f"![{first} vs {c}]({name})", ""]
    return lines


def _plots(search, result, recs, ok, ylabel, lines) -> list[tuple[str, str]]:
    rd, base, figs = result.run_dir, result.baseline, []
    fig, ax = _figure((5, 3.5))
    ax.plot(np.arange(1, len(recs) + 1), result.best_so_far(), drawstyle="steps-post")
    ax.set_xlabel("evaluations")
    ax.set_ylabel(f"best so far: {ylabel}"[:60])
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(rd / "best_so_far.png", dpi=110)
    figs.append(("Best so far vs. evaluations", "best_so_far.png"))
    pred = [(r.predicted, r.objective) for r in ok
            if r.predicted is not None and math.isfinite(r.predicted)]
    fig, ax = _figure((4.5, 4))
    if pred:
        p, t = np.asarray(pred).T
        ax.scatter(p, t, s=12)
        lo, hi = min(p.min(), t.min()), max(p.max(), t.max())
        ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
        if len(p) > 2:
            from prednas.metrics import rank_correlations

            rho, tau, _ = rank_correlations(p, t)
            ax.set_title(f"Kendall tau {tau:.2f}, Spearman {rho:.2f}", fontsize=9)
            lines += [f"Filter's predicted vs. true objective on the {len(p)} evaluated "
                      f"candidates it chose: Kendall tau {tau:.2f}, Spearman {rho:.2f}.", ""]
    else:
        ax.text(0.5, 0.5, "no predictor in this run", ha="center", transform=ax.transAxes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    fig.tight_layout()
    fig.savefig(rd / "predicted_vs_true.png", dpi=110)
    figs.append(("Predicted vs. true (filter)", "predicted_vs_true.png"))
    pts = [(r.get("params"), r.get("test_acc", r.objective)) for r in ok if r.get("params")]
    if pts:
        params, acc = np.asarray(pts, float).T
        fig, ax = _figure((5, 3.5))
        ax.scatter(params, acc, s=12, label="candidates")
        fr = pareto_front(params, acc)
        ax.plot(params[fr], acc[fr], "r-o", ms=4, label="Pareto front")
        if base is not None and base.get("params"):
            ax.scatter([base.get("params")], [base.get("test_acc")], marker="*", s=120, c="k",
                       label="baseline")
        if search.max_params:
            ax.axvline(search.max_params, ls="--", c="gray", lw=0.8, label="parameter cap")
        ax.set_xscale("log")
        ax.set_xlabel("parameters")
        ax.set_ylabel("test accuracy (%)")
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(rd / "pareto.png", dpi=110)
        figs.append(("Accuracy vs. parameters (Pareto front)", "pareto.png"))
    return figs


def _fidelity_line(search) -> str:
    """How far the scheduler let candidates train (partial trainings)."""
    from prednas.search.fidelity import PARTIAL

    rungs = list(search.scheduler.rungs_)
    allrecs = [r for r in search._records if r.kind in (PARTIAL, "candidate")]
    started = len({r.arch for r in allrecs})
    reached = [sum(1 for r in allrecs if r.get("rung") == k) for k in range(len(rungs))]
    restarted = sum(1 for r in allrecs if r.get("restarted"))
    return (f"- partial trainings ({search.scheduler.describe()['name']}, rungs "
            f"{'/'.join(map(str, rungs))} steps): {started} candidates started; reached each "
            f"rung: {', '.join(map(str, reached))}; {search._spent():.1f} of {search.budget} "
            f"full trainings' worth of steps used"
            + (f"; {restarted} restarted from scratch (checkpoint missing or damaged)"
               if restarted else ""))
