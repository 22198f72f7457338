"""``prednas pretrain``: fit a predictor on a tabular benchmark and save it."""

from __future__ import annotations

import json

NAME = "pretrain"
HELP = "fit an accuracy predictor on a benchmark table (NB201) and save it"
ORDER = 40


def add_arguments(p) -> None:
    p.add_argument("--bench", default="nb201", help="benchmark (default nb201)")
    p.add_argument("--target", default="cifar10_test_200ep",
                   help="benchmark metric to predict (default cifar10_test_200ep)")
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

    rep = pretrain(bench=args.bench, target=args.target, n_train=args.n_train,
                   predictor=args.predictor, seed=args.seed, out=args.out, n_test=args.n_test,
                   encoding=args.encoding, use_proxies=not args.no_proxies)
    if args.json:
        print(json.dumps(rep, indent=2))
        return 0
    feats = f"{rep['encoding']} + {len(rep['proxies'])} proxies" if rep["proxies"] else \
        f"{rep['encoding']} only"
    print(f"{rep['predictor']} on {rep['bench']}:{rep['target']} ({feats}), "
          f"{rep['n_train']} train / {rep['n_test']} held-out, seed {rep['seed']}")
    print(f"  Spearman {rep['spearman']:.4f}  Kendall tau {rep['kendall']:.4f}  "
          f"top-5% precision {rep['top5_precision']:.3f}  fit {rep['fit_seconds']:.2f}s")
    if rep["out"]:
        print(f"  saved to {rep['out']}")
    return 0
