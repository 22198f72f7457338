"""``prednas export``: write a model a search trained, with exactly its evaluated weights."""

from __future__ import annotations

import json

NAME = "export"
HELP = ("export a search run's best model (or a given architecture, Pareto member or its "
        "ensemble) with the exact weights it was evaluated with")
ORDER = 35


def add_arguments(p) -> None:
    p.add_argument("run_dir", metavar="RUN_DIR", help="a training-mode search run directory")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--arch", default=None,
                       help="an architecture evaluated in the run (default: the best candidate)")
    which.add_argument("--pareto", type=int, default=None, metavar="K",
                       help="the K-th member (1 = first) of the run's pareto.jsonl")
    p.add_argument("--ensemble", action="store_true",
                   help="export the run's ensemble.pt as one module (mixed probabilities)")
    p.add_argument("--format", default="torchscript",
                   help="torchscript (default), state_dict, or onnx (needs prednas[onnx])")
    p.add_argument("--out", required=True, metavar="DIR", help="export directory (new or empty)")
    p.add_argument("--force", action="store_true", help="write into a non-empty --out")
    p.add_argument("--example-batch", type=int, default=8,
                   help="test inputs saved as example_input.pt (default 8)")
    p.add_argument("--latency-batch", type=int, default=None, metavar="N",
                   help="the model card's second latency figure is at batch N (default: the "
                        "batch the search measured, else 64)")


def run(args) -> int:
    from prednas.commands._model import space_of_run
    from prednas.export import export

    out = export(args.run_dir, args.out, arch=args.arch, pareto=args.pareto,
                 ensemble=args.ensemble, format=args.format, example_batch=args.example_batch,
                 latency_batch=args.latency_batch,
                 force=args.force, space=space_of_run(args.run_dir))
    meta = json.loads((out / "export.json").read_text())
    what = meta.get("arch") or f"ensemble of {len(meta['archs'])}"
    print(f"exported {what} as {meta['format']} ({meta['method']}) to {out}: {meta['file']}, "
          f"example_input.pt, model_card.md; max abs difference {meta['max_abs_diff']:.2g}")
    return 0
