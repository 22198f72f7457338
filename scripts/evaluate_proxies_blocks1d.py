"""Zero-cost proxies beyond image cells: every proxy against the ``blocks1d-mnist1d`` table.

Reads the proxy records of ``scripts/build_proxies_blocks1d.py``
(``proxies/data/blocks1d-mnist1d-records.jsonl``) and the benchmark table, and writes
``benchmarks/proxies-blocks1d.md``: each proxy's Spearman and Kendall against the mean test
accuracy, its NaN count, the same by op family (conv-only / with a recurrent block / with an
attention block), on the 200 full-space samples too, and a label-free combination fixed before
looking at labels (the mean rank of meco, zico, nwot and synflow, as on NB201; and of flops, nwot
and params, the proxies a 2026 speech-space study found best). Anchor from that study
(Speech Commands, TC-ResNet-style blocks, n = 200): FLOPs 0.88, NASWOT 0.86, params 0.75.
Works on partial tables and records (the counts are reported).

    python scripts/evaluate_proxies_blocks1d.py
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RECORDS = ROOT / "proxies" / "data" / "blocks1d-mnist1d-records.jsonl"
#: label-free combinations, fixed before any label was read
COMBINATIONS = {"mean rank of meco, zico, nwot, synflow (the NB201 choice)":
                ("meco", "zico", "nwot", "synflow"),
                "mean rank of flops, nwot, params (the speech-space study's best)":
                ("flops", "nwot", "params")}
ANCHOR = {"flops": 0.88, "nwot": 0.86, "params": 0.75}


def family(arch: str) -> str:
    ops = {b.split(":")[0] for b in arch.split("|")}
    if ops & {"gru", "lstm"}:
        return "recurrent"
    if "attn" in ops:
        return "attention"
    return "conv-only"


def rank01(v: np.ndarray) -> np.ndarray:
    from scipy.stats import rankdata

    out = np.full(len(v), np.nan)
    ok = np.isfinite(v)
    if ok.sum() > 1:
        out[ok] = (rankdata(v[ok]) - 1) / (ok.sum() - 1)
    return out


def correlations(x: np.ndarray, y: np.ndarray) -> tuple[float, float, int, int]:
    from scipy.stats import kendalltau, spearmanr

    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 3:
        return np.nan, np.nan, int(ok.sum()), int((~np.isfinite(x)).sum())
    return (float(spearmanr(x[ok], y[ok])[0]), float(kendalltau(x[ok], y[ok])[0]),
            int(ok.sum()), int((~np.isfinite(x)).sum()))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=Path, default=RECORDS)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "proxies-blocks1d.md"))
    args = ap.parse_args(argv)
    from prednas import benchmarks
    from prednas.benchmarks.build import machine_summary
    from prednas.utils import JsonlLog

    recs = JsonlLog(args.records).read()
    lines = ["# Zero-cost proxies on blocks1d-mnist1d", "",
             f"Command: `python scripts/evaluate_proxies_blocks1d.py` on {machine_summary()}. "
             f"Proxy records: {len(recs)} architectures (`{args.records.name}`), scored at "
             "initialisation on one MNIST-1D batch of 64 (seed 0). Spearman / Kendall against the "
             "table's mean test accuracy; NaN: architectures where the proxy is undefined.", ""]
    for part, name in (("sub", "blocks1d-mnist1d"), ("full", "full-space samples")):
        bench = benchmarks.load("blocks1d-mnist1d", part=part)
        have = {r["arch"]: r["scores"] for r in recs if r.get("part", "sub") == part}
        archs = [a for a in bench.arch_strings() if a in have]
        lines += [f"## {name}: {len(archs)} architectures with both a proxy record and a table "
                  f"entry (table: {len(bench)} built)", ""]
        if len(archs) < 10:
            lines += ["Too few so far.", ""]
            continue
        y = bench.values("test_acc", archs)
        names = sorted({k for a in archs for k in have[a]})
        X = {n: np.array([float(have[a].get(n, np.nan)) for a in archs]) for n in names}
        fams = np.array([family(a) for a in archs])
        fam_names = [f for f in ("conv-only", "recurrent", "attention") if (fams == f).sum() >= 10]
        lines += ["| proxy | Spearman | Kendall | NaN | " + " | ".join(
                  f"{f} (n={int((fams == f).sum())})" for f in fam_names) + " | anchor |",
                  "|---|---:|---:|---:|" + "---:|" * len(fam_names) + "---:|"]
        rows = []
        for n in names:
            rho, tau, _, nan = correlations(X[n], y)
            by = [correlations(X[n][fams == f], y[fams == f])[0] for f in fam_names]
            rows.append((rho, f"| {n} | {rho:.3f} | {tau:.3f} | {nan} | "
                         + " | ".join(f"{v:.3f}" for v in by)
                         + f" | {ANCHOR.get(n, float('nan')):.2f} |".replace("nan", "")))
        lines += [r for _, r in sorted(rows, key=lambda t: -np.nan_to_num(t[0], nan=-9))]
        lines += ["", "Label-free combinations (chosen before looking at labels):", ""]
        best = max(((float(np.nan_to_num(r, nan=-9)), f"`{n}`") for (r, _), n
                    in zip(rows, names, strict=True)), default=(np.nan, "none"))
        for label, members in COMBINATIONS.items():
            cols = [rank01(X[m]) for m in members if m in X]
            comb = np.nanmean(np.vstack(cols), axis=0) if cols else np.full(len(archs), np.nan)
            rho, tau, n_ok, _ = correlations(comb, y)
            lines.append(f"- {label}: Spearman **{rho:.3f}**, Kendall {tau:.3f} (n={n_ok})")
            best = max(best, (float(np.nan_to_num(rho, nan=-9)), label))
        lines += ["", f"Target (best label-free proxy or combination >= 0.80): {best[1]}, "
                  f"Spearman {best[0]:.3f}: **{'met' if best[0] >= 0.80 else 'missed'}**", ""]
    Path(args.out).write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
