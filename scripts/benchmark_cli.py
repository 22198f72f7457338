"""Measure CLI start-up: median wall time of fresh interpreters running a few cheap commands.

    python scripts/benchmark_cli.py                      # this checkout
    python scripts/benchmark_cli.py --baseline 330f525   # and a git revision, side by side

Each command runs ``--runs`` times (default 5) in a fresh ``python`` process after one untimed
warm-up run (so the file cache is warm for every checkout alike); the table reports the median and
the range. Commands run from the checkout's root, so they import that checkout's code. The report
goes to ``benchmarks/cli-startup.md`` unless ``--out`` says otherwise.
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

#: (label, arguments after ``python``, expected exit codes); exit code 2: an argument error
COMMANDS: list[tuple[str, list[str], tuple[int, ...]]] = [
    ("prednas --help", ["-m", "prednas", "--help"], (0,)),
    ("prednas search --help", ["-m", "prednas", "search", "--help"], (0,)),
    ("prednas search --budget x", ["-m", "prednas", "search", "--budget", "x"], (2,)),
    ('python -c "import prednas"', ["-c", "import prednas"], (0,)),
]


def time_command(args: list[str], cwd: Path, expected: tuple[int, ...], runs: int) -> list[float]:
    """Wall seconds of ``runs`` fresh ``python ARGS`` processes (after one untimed warm-up)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    times = []
    for k in range(runs + 1):
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True,
                              text=True)
        elapsed = time.perf_counter() - t0
        if proc.returncode not in expected:
            raise SystemExit(f"python {shlex.join(args)} in {cwd} exited {proc.returncode}:\n"
                             f"{proc.stderr[-2000:]}")
        if k:  # the first run only warms the file cache
            times.append(elapsed)
    return times


def checkout(rev: str, into: Path) -> Path:
    """Extract ``git archive REV`` into ``into`` (no change to the repository's worktrees)."""
    archive = into / "rev.tar"
    with open(archive, "wb") as f:
        subprocess.run(["git", "-C", str(REPO), "archive", rev], stdout=f, check=True)
    with tarfile.open(archive) as tar:
        try:
            tar.extractall(into / "src", filter="data")
        except TypeError:  # Python without extraction filters; the archive is our own
            tar.extractall(into / "src")
    return into / "src"


def machine() -> str:
    from prednas.benchmarks.build import machine_summary

    return machine_summary(load=True)


def fmt(times: list[float]) -> str:
    return f"{statistics.median(times):.2f} s ({min(times):.2f}-{max(times):.2f})"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5, help="timed runs per command (default 5)")
    ap.add_argument("--baseline", default=None, metavar="REV",
                    help="also measure this git revision (e.g. the commit before the change)")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "cli-startup.md"))
    args = ap.parse_args(argv)
    if args.runs < 1:
        ap.error(f"--runs must be at least 1, got {args.runs}")

    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True).stdout.strip() or "working tree"
    dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--", "prednas",
                            "spaces", "proxies", "predictors"],
                           capture_output=True, text=True).stdout.strip()
    label = f"{head}{' + uncommitted changes' if dirty else ''}"
    rows: dict[str, dict[str, list[float]]] = {name: {} for name, _, _ in COMMANDS}
    info = machine()
    with tempfile.TemporaryDirectory(prefix="prednas-bench-cli-") as tmp:
        trees = [(label, REPO)]
        if args.baseline:
            trees.insert(0, (args.baseline, checkout(args.baseline, Path(tmp))))
        for tree_label, root in trees:
            for name, cmd, expected in COMMANDS:
                rows[name][tree_label] = time_command(cmd, root, expected, args.runs)
                print(f"{tree_label:>12s}  {name:45s} {fmt(rows[name][tree_label])}", flush=True)
    labels = [t for t, _ in trees]

    own = Path(__file__).resolve().relative_to(REPO)
    given = sys.argv[1:] if argv is None else argv
    lines = [
        "# CLI start-up time",
        "",
        "Wall time of a fresh `python` process running each command from the checkout's root "
        "(so it imports that checkout's code; `prednas` stands for `python -m prednas`): "
        f"median of {args.runs} runs after one untimed warm-up run, range in brackets.",
        "",
        f"- Command: `{shlex.join(['python', str(own), *given])}`",
        f"- Machine: {info}",
        f"- Date: {time.strftime('%Y-%m-%d')}",
        "",
        "| command | " + " | ".join(labels) + " |",
        "|---|" + "---|" * len(labels),
    ]
    for name, _cmd, codes in COMMANDS:
        lines.append(f"| `{name}`{' (bad argument)' if 2 in codes else ''} | "
                     + " | ".join(fmt(rows[name][t]) for t in labels) + " |")
    lines += ["", "Absolute figures move with the machine's load (see the load average above); "
              "compare the columns of one table.", ""]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
