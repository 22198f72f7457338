"""The prednas views of a run's Optuna study: its note (Markdown) and figures (Plotly).

optuna-dashboard shows a study's note and the Plotly figures saved with it beside its own generic
plots; these are what it lacks for a search: the best objective so far against time, the filter's
predictions against the measured objective, the filter's ranking quality per round, and the
Pareto front with the baseline. :func:`render` builds them from the run's records (the trials'
completion times come from the study); :mod:`prednas.search.study` saves them.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from prednas.search.base import Record
from prednas.utils import fmt_number as _fmt

__all__ = ["render", "FIGURES"]

#: graph object ids of the figures (saved under the same id each time, so each is replaced)
FIGURES = ("best-so-far", "predicted-vs-measured", "filter-signals", "pareto-front")
_MAX_ROWS = 12


def render(records: Sequence[Record], ends: Sequence[float], config: Mapping[str, Any],
           state: Mapping[str, Any], signals: Mapping[str, Any] | None,
           figures: bool = True) -> tuple[str, dict[str, Any]]:
    """``(note, {figure id: plotly Figure})`` of a run.

    Args:
        records: every record of the run, in ``evaluations.jsonl`` order (trial ``i`` is record
            ``i``).
        ends: per record, its completion in seconds since the run's first trial started.
        config: the run's ``state["config"]``.
        state: the run's state (rounds, overhead, hypervolume, whether it is done).
        signals: what the filter ranked candidates with (``Filter.signals()``), when known.
        figures: build the figures too (needs plotly; without it only the note is made).
    """
    v = _Run(records, ends, config, state, signals)
    note = v.note()
    figs: dict[str, Any] = {}
    if figures:
        try:
            import plotly.graph_objects  # noqa: F401
        except ImportError:
            figures = False
    if figures and v.cands:
        figs = {"best-so-far": v.best_so_far_figure(),
                "predicted-vs-measured": v.predicted_figure(),
                "filter-signals": v.signals_figure()}
        pareto = v.pareto_figure()
        if pareto is not None:
            figs["pareto-front"] = pareto
    return note, figs


class _Run:
    def __init__(self, records, ends, config, state, signals):
        self.records = list(records)
        self.index = {id(r): i for i, r in enumerate(self.records)}
        self.ends = [float(e) for e in ends]
        self.cfg, self.state, self.signals = config, state, dict(signals or {})
        self.cands = [r for r in self.records if r.kind == "candidate"]
        self.ok = [r for r in self.cands if r.ok]
        self.baseline = next((r for r in self.records if r.kind == "baseline"), None)
        self.objectives = list(config.get("objectives") or [config.get("metric") or "val_acc"])
        self.metric = self.objectives[0]
        self.costs = self.objectives[1:]
        self.constraints = dict(config.get("constraints") or {})
        self.simulated = bool(self.cands) and all(r.get("sim_end") is not None for r in self.cands)

    def n(self, r: Record) -> int:
        return self.index[id(r)]

    def t(self, r: Record) -> float:
        """When a record completed: simulated seconds in a simulated run, else wall seconds."""
        return float(r.get("sim_end")) if self.simulated else self.ends[self.n(r)]

    # -- the winner ------------------------------------------------------------------------------
    def best(self) -> Record | None:
        """The engine's choice: highest objective, then fewer parameters, then earlier."""
        from prednas.search.base import History

        top = History(None, self.cands).top(1)
        return top[0] if top else None

    # -- note -----------------------------------------------------------------------------------
    def note(self) -> str:
        cfg, st = self.cfg, self.state
        mode = cfg.get("mode")
        where = (f"benchmark `{cfg.get('bench')}`" if mode in ("oracle", "simulate")
                 else f"task `{cfg.get('task')}`")
        if mode == "simulate":
            where += " (simulated training)"
        n = len(self.cands)
        status = (f"finished: {n} evaluations" if st.get("done") else
                  f"running: round {st.get('round', 0)}, {n} of {cfg.get('budget')} evaluations")
        lines = [f"## prednas search: `{cfg.get('space')}` on {where}", "",
                 f"{status} ({len(self.cands) - len(self.ok)} failed); updated "
                 f"{time.strftime('%Y-%m-%d %H:%M:%S')}. Trial numbers are lines of "
                 "`evaluations.jsonl` (the run's records, from which this study is written).", ""]
        obj = f"maximise `{self.metric}`" + "".join(f", minimise `{c}`" for c in self.costs)
        if self.constraints:
            obj += "; constraints " + ", ".join(f"{k} <= {v:g}" for k, v in self.constraints.items())
        lines += [f"- objectives: {obj}",
                  f"- seed {st.get('seed')}, {cfg.get('per_round')} evaluations per round"]
        strat = cfg.get("strategies") or {}
        if strat:
            lines.append("- strategies: " + ", ".join(f"{k} `{s.get('name')}`"
                                                       for k, s in strat.items() if s))
        lines += self._winner_lines() + self._best_lines() + self._filter_lines()
        lines += self._pareto_lines() + self._failed_lines()
        return "\n".join(lines) + "\n"

    def _winner_lines(self) -> list[str]:
        best, base = self.best(), self.baseline
        out = ["", "### Winner" if self.state.get("done") else "### Best so far", ""]
        if best is None:
            return out + ["No successful evaluation yet.", ""]
        out.append(f"Trial {self.n(best)}: `{best.arch}`: {self.metric} {_fmt(best.objective, 4)}"
                   + "".join(f", {c} {_num(best.get(c))}" for c in self.costs
                             if best.get(c) is not None)
                   + (f", test accuracy {_fmt(best.get('test_acc'))}"
                      if best.get("test_acc") is not None else "")
                   + (f", {int(best.get('params')):,} parameters"
                      if best.get("params") is not None and "params" not in self.costs else "")
                   + ".")
        if base is not None:
            if base.ok:
                out.append(f"Baseline (trial {self.n(base)}): `{base.arch}`: {self.metric} "
                           f"{_fmt(base.objective, 4)}; the winner is "
                           f"{best.objective - base.objective:+.2f} points from it"
                           + (f" with {100 * best.get('params') / base.get('params'):.0f}% of its "
                              "parameters" if best.get("params") and base.get("params") else "")
                           + ".")
            else:
                out.append(f"Baseline (trial {self.n(base)}): `{base.arch}` failed: {base.reason}")
        return out + [""]

    def _best_lines(self) -> list[str]:
        """The improvements of the best objective: when, after how many evaluations."""
        rows, best = [], -math.inf
        for k, r in enumerate(self.cands, 1):
            if r.ok and r.objective > best:
                best = r.objective
                rows.append((k, self.t(r), r))
        if not rows:
            return []
        if len(rows) > _MAX_ROWS:  # the first and the latest improvements
            rows = rows[:3] + rows[-(_MAX_ROWS - 3):]
        unit = "simulated s" if self.simulated else "s"
        return (["### Best so far against time", "",
                 f"| evaluations | {unit} | {self.metric} | trial | architecture |",
                 "|---:|---:|---:|---:|---|"]
                + [f"| {k} | {t:.1f} | {_fmt(r.objective, 4)} | {self.n(r)} | `{r.arch}` |"
                   for k, t, r in rows] + [""])

    def _pairs(self, recs) -> tuple[np.ndarray, np.ndarray]:
        pts = [(r.predicted, r.objective) for r in recs
               if r.ok and r.predicted is not None and math.isfinite(r.predicted)]
        if not pts:
            return np.zeros(0), np.zeros(0)
        p, t = np.asarray(pts, float).T
        return p, t

    def _filter_lines(self) -> list[str]:
        from prednas.metrics import rank_correlations

        out = ["### The filter", ""]
        strat = (self.cfg.get("strategies") or {}).get("filter") or {}
        if strat:
            out.append(f"- filter `{strat.get('name')}`")
        if self.signals:
            out.append("- signals it ranked candidates with: "
                       + "; ".join(f"{k}: {v}" for k, v in self.signals.items()))
        p, t = self._pairs(self.cands)
        if len(p) > 2:
            rho, tau, _ = rank_correlations(p, t)
            out.append(f"- predicted against measured {self.metric} on the {len(p)} candidates it "
                       f"chose: Kendall tau {_fmt(tau)}, Spearman {_fmt(rho)}; mean absolute "
                       f"error {np.mean(np.abs(p - t)):.3g}")
        elif not len(p):
            out.append("- no predictions (the filter made none in this run)")
        pools = [o.get("pool", 0) for o in self.state.get("overhead") or []]
        secs = [o.get("seconds", 0.0) for o in self.state.get("overhead") or []]
        if pools:
            out.append(f"- rounds: {len(pools)}, pools of up to {max(pools)} proposals, "
                       f"{np.mean(secs):.3f} s per round outside evaluation (mutation, "
                       "filtering, refitting)")
        return out + [""]

    def _front(self) -> tuple[list[Record], list[Record]]:
        """(feasible successful candidates, the Pareto front among them, by first cost)."""
        from prednas.search.pareto import feasible, objective_matrix, pareto_front

        ok = feasible(self.cands, self.constraints)
        F = objective_matrix(ok, self.costs)
        placed = np.isfinite(F).all(axis=1)
        ok, F = [r for r, keep in zip(ok, placed) if keep], F[placed]
        front = [ok[i] for i in pareto_front(F)] if len(F) else []
        front.sort(key=lambda r: [float(r.get(c)) for c in self.costs])
        return ok, front

    def _pareto_lines(self) -> list[str]:
        if not self.costs:
            return []
        _, front = self._front()
        out = ["### Pareto front", "",
               f"| trial | {self.metric} | " + " | ".join(self.costs) + " | architecture |",
               "|---:|---:|" + "---:|" * len(self.costs) + "---|"]
        out += [f"| {self.n(r)} | {_fmt(r.objective, 4)} | "
                + " | ".join(_num(r.get(c)) for c in self.costs) + f" | `{r.arch}` |"
                for r in front[:3 * _MAX_ROWS]]
        base = self.baseline
        if base is not None and base.ok:
            out += [f"| baseline {self.n(base)} | {_fmt(base.objective, 4)} | "
                    + " | ".join(_num(base.get(c)) for c in self.costs) + f" | `{base.arch}` |"]
        hv = self.state.get("hypervolume") or []
        if hv:
            out += ["", f"Hypervolume after round {hv[-1]['round']}: {hv[-1]['hypervolume']:.4g} "
                    f"(reference point {self.state.get('hv_reference')})."]
        return out + [""]

    def _failed_lines(self) -> list[str]:
        failed = [r for r in self.records if not r.ok]
        if not failed:
            return []
        out = [f"### Failed ({len(failed)})", ""]
        out += [f"- trial {self.n(r)} `{r.arch}`: {r.status}: {r.reason}"[:300]
                for r in failed[:_MAX_ROWS]]
        if len(failed) > _MAX_ROWS:
            out.append(f"- and {len(failed) - _MAX_ROWS} more (filter the trials by state FAIL)")
        return out + [""]

    # -- figures --------------------------------------------------------------------------------
    def best_so_far_figure(self):
        import plotly.graph_objects as go

        xs, ys, hx, hy, best, labels = [], [], [], [], -math.inf, []
        for r in self.cands:
            if not r.ok:
                continue
            x = round(self.t(r), 3)
            xs.append(x)
            ys.append(_r(r.objective))
            labels.append(f"trial {self.n(r)}")
            if r.objective > best:
                best = r.objective
            hx.append(x)
            hy.append(_r(best))
        fig = go.Figure()
        fig.add_scatter(x=xs, y=ys, mode="markers", name="candidates", text=labels,
                        marker={"size": 5, "color": "rgba(120,120,120,0.5)"})
        fig.add_scatter(x=hx, y=hy, mode="lines", line_shape="hv", name="best so far")
        base = self.baseline
        if base is not None and base.ok:
            fig.add_hline(y=_r(base.objective), line_dash="dash", annotation_text="baseline")
        unit = "simulated seconds" if self.simulated else "seconds since the first evaluation"
        fig.update_layout(title="Best so far against time", xaxis_title=unit,
                          yaxis_title=self.metric)
        return fig

    def predicted_figure(self):
        import plotly.graph_objects as go

        from prednas.metrics import rank_correlations

        recs = [r for r in self.cands if r.ok and r.predicted is not None
                and math.isfinite(r.predicted)]
        fig = go.Figure()
        title = "Predicted against measured (the filter's choices)"
        if recs:
            p = [_r(r.predicted) for r in recs]
            t = [_r(r.objective) for r in recs]
            std = [_r(r.predicted_std) if r.predicted_std is not None
                   and math.isfinite(r.predicted_std) else 0.0 for r in recs]
            fig.add_scatter(x=p, y=t, mode="markers", name="candidates",
                            text=[f"trial {self.n(r)}, round {r.round}" for r in recs],
                            error_x={"type": "data", "array": std, "visible": True,
                                     "thickness": 0.8})
            ends = [float(r.predicted) for r in recs] + [r.objective for r in recs]
            lo, hi = _r(min(ends)), _r(max(ends))
            fig.add_scatter(x=[lo, hi], y=[lo, hi], mode="lines", name="predicted = measured",
                            line={"dash": "dash", "color": "black", "width": 1})
            if len(recs) > 2:
                rho, tau, _ = rank_correlations(p, t)
                title += f": Kendall tau {_fmt(tau)}, Spearman {_fmt(rho)}"
        else:
            fig.add_annotation(text="no predictions in this run", showarrow=False)
        fig.update_layout(title=title, xaxis_title=f"predicted {self.metric}",
                          yaxis_title=f"measured {self.metric}")
        return fig

    def signals_figure(self):
        """Per round: Kendall tau of the filter's predictions on that round's candidates and on all
        candidates so far, and the size of the pool it filtered."""
        import plotly.graph_objects as go

        from prednas.metrics import rank_correlations

        rounds = sorted({r.round for r in self.cands if r.round >= 0})
        per, cum = [], []
        for k in rounds:
            p, t = self._pairs([r for r in self.cands if r.round == k])
            per.append(_r(rank_correlations(p, t)[1]) if len(p) > 2 else None)
            p, t = self._pairs([r for r in self.cands if 0 <= r.round <= k])
            cum.append(_r(rank_correlations(p, t)[1]) if len(p) > 2 else None)
        pools = {o.get("round"): o.get("pool", 0) for o in self.state.get("overhead") or []}
        fig = go.Figure()
        fig.add_bar(x=rounds, y=[pools.get(k) for k in rounds], name="pool filtered",
                    yaxis="y2", marker={"color": "rgba(150,150,200,0.35)"})
        fig.add_scatter(x=rounds, y=per, mode="markers", name="Kendall tau, this round")
        fig.add_scatter(x=rounds, y=cum, mode="lines", name="Kendall tau, all so far")
        signals = "; ".join(f"{k}: {v}" for k, v in self.signals.items())
        fig.update_layout(
            title="The filter's ranking, round by round" + (f"<br><sub>{signals[:150]}</sub>"
                                                             if signals else ""),
            xaxis_title="round", yaxis={"title": "Kendall tau (predicted vs measured)",
                                        "range": [-1, 1]},
            yaxis2={"title": "proposals filtered", "overlaying": "y", "side": "right"})
        return fig

    def pareto_figure(self):
        import plotly.graph_objects as go

        if self.costs:
            cost = self.costs[0]
            pts, front = self._front()
        else:  # one objective: accuracy against parameters, when the records have them
            cost = "params"
            pts = [r for r in self.ok if r.get("params")]
            if not pts:
                return None
            from prednas.search.pareto import objective_matrix, pareto_front

            F = objective_matrix(pts, [cost])
            front = sorted((pts[i] for i in pareto_front(F)), key=lambda r: float(r.get(cost)))
        fig = go.Figure()
        infeasible = [r for r in self.ok if r not in pts and r.get(cost) is not None]
        if infeasible:
            fig.add_scatter(x=[_r(r.get(cost)) for r in infeasible],
                            y=[_r(r.objective) for r in infeasible], mode="markers",
                            name="over a constraint", marker={"color": "lightgray", "size": 5})
        fig.add_scatter(x=[_r(r.get(cost)) for r in pts], y=[_r(r.objective) for r in pts],
                        mode="markers", name="candidates", marker={"size": 5},
                        text=[f"trial {self.n(r)}" for r in pts])
        fig.add_scatter(x=[_r(r.get(cost)) for r in front], y=[_r(r.objective) for r in front],
                        mode="lines+markers", name="Pareto front", line_shape="hv",
                        text=[f"trial {self.n(r)}: {r.arch}" for r in front])
        base = self.baseline
        if base is not None and base.ok and base.get(cost) is not None:
            fig.add_scatter(x=[_r(base.get(cost))], y=[_r(base.objective)], mode="markers",
                            name="baseline", text=[f"trial {self.n(base)}: {base.arch}"],
                            marker={"symbol": "star", "size": 14, "color": "black"})
        log_x = cost in ("params", "flops") and len(pts) > 1
        fig.update_layout(title=f"Pareto front: {self.metric} against {cost}",
                          xaxis={"title": cost, "type": "log" if log_x else "linear"},
                          yaxis_title=self.metric)
        return fig


def _r(x) -> float | None:
    """A number rounded for a compact figure (None when missing or not finite)."""
    if x is None:
        return None
    x = float(x)
    if not math.isfinite(x):
        return None
    return float(f"{x:.5g}")


def _num(x) -> str:
    if x is None:
        return "-"
    try:
        return f"{float(x):,.4g}"
    except (TypeError, ValueError):
        return str(x)
