"""``prednas pretrain``: fit a predictor on a tabular benchmark and save it."""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

NAME = "pretrain"
HELP = "fit an accuracy predictor on a benchmark table (nb201, blocks1d-mnist1d) and save it"
ORDER = 40


def add_arguments(p) -> None:
    p.add_argument("--bench", default="nb201", help="benchmark (default nb201)")
    p.add_argument("--target", default=None,
                   help="benchmark metric to predict (default: the benchmark's own, e.g. "
                        "cifar10_test_200ep for nb201, test_acc for blocks1d-mnist1d)")
    p.add_argument("--n-train", type=int, default=100, help="training architectures (default 100)")
    p.add_argument("--n-test", type=int, default=None,
                   help="held-out architectures (default: every other covered one)")
    p.add_argument("--predictor", default="xgb", help="xgb, gnn or ensemble (default xgb)")
    p.add_argument("--encoding", default="onehot", help="architecture encoding (onehot, path)")
    p.add_argument("--no-proxies", action="store_true", help="encodings only, no proxy features")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--out", default=None, help="where to save the predictor")
    p.add_argument("--json", action="store_true", help="print the report as JSON")


def run(args) -> int:
    from predictors.pretrain import pretrain

    # The fit is saved first in a fresh temp folder, then copied to --out: an unwritable --out
    # (or a full disk) loses the copy, never the finished fit.
    staged = None
    if args.out:
        staged = Path(tempfile.mkdtemp(prefix="prednas-pretrain-")) / (Path(args.out).name
                                                                      or "predictor")
    try:
        rep = pretrain(bench=args.bench, target=args.target, n_train=args.n_train,
                       predictor=args.predictor, seed=args.seed, out=staged, n_test=args.n_test,
                       encoding=args.encoding, use_proxies=not args.no_proxies)
    except BaseException:
        if staged is not None:
            shutil.rmtree(staged.parent, ignore_errors=True)
        raise
    failure = None
    if staged is not None:
        try:
            rep["out"] = str(_deliver(staged, args.out))
        except OSError as exc:
            rep["out"] = str(staged)
            failure = (f"prednas pretrain: error: cannot write --out {args.out!r} "
                       f"({exc.strerror or exc}); the fitted predictor was saved to "
                       f"{str(staged)!r}")
    _print_report(rep, as_json=args.json)
    if failure:
        print(failure, file=sys.stderr)
        return 2
    return 0


def _deliver(staged: Path, out: str) -> Path:
    """Copy ``staged`` to ``out`` atomically, then remove ``staged`` and its temp folder."""
    from prednas.utils import atomic_path

    with atomic_path(out) as tmp:
        shutil.copyfile(staged, tmp)
    shutil.rmtree(staged.parent, ignore_errors=True)
    return Path(out)


def _print_report(rep: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(rep, indent=2))
        return
    feats = f"{rep['encoding']} + {len(rep['proxies'])} proxies" if rep["proxies"] else \
        f"{rep['encoding']} only"
    print(f"{rep['predictor']} on {rep['bench']}:{rep['target']} ({feats}), "
          f"{rep['n_train']} train / {rep['n_test']} held-out, seed {rep['seed']}")
    print(f"  Spearman {rep['spearman']:.4f}  Kendall tau {rep['kendall']:.4f}  "
          f"top-5% precision {rep['top5_precision']:.3f}  fit {rep['fit_seconds']:.2f}s")
    if rep["out"]:
        print(f"  saved to {rep['out']}")
