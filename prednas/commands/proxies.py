"""``prednas proxies``: list the zero-cost proxies, score one architecture, or validate on NB201."""

from __future__ import annotations

import json

from prednas.commands._common import add_device, add_seed, add_task, defer_arguments, load_task

NAME = "proxies"
HELP = "zero-cost proxies: list them, score an architecture, validate against NB201"
ORDER = 30


def add_arguments(p) -> None:
    sub = p.add_subparsers(dest="proxies_command", metavar="ACTION", required=True)
    sub.add_parser("list", help="list the registered proxies with their one-line description")

    s = sub.add_parser("score", help="score one architecture on one batch of a task")
    s.add_argument("--space", default="blocks1d", help="search space (default blocks1d)")
    s.add_argument("--arch", default=None, help="architecture string (default: space baseline)")
    s.add_argument("--proxies", default=None, help="comma-separated names (default: all)")
    s.add_argument("--batch-size", type=int, default=64)
    add_task(s)
    add_seed(s)
    add_device(s)
    s.add_argument("--json", action="store_true", help="print the scores as JSON")

    e = sub.add_parser("evaluate", help="sample archs, score them, correlate with a benchmark "
                                        "and write a markdown report (resumable cache)")
    defer_arguments(e, _add_evaluate_arguments)


def _add_evaluate_arguments(p) -> None:
    from proxies._evaluate import add_arguments  # imports torch: only when 'evaluate' is parsed

    add_arguments(p)


def run(args) -> int:
    import proxies

    if args.proxies_command == "list":
        for name in proxies.list_proxies():
            p = proxies.get(name)
            first = p.doc.splitlines()[0] if p.doc else ""
            tags = ",".join(t for t, on in (("cheap", p.cheap), ("log", p.log_space)) if on)
            print(f"{name:10s} {tags:10s} {first}")
        return 0
    if args.proxies_command == "score":
        import spaces

        space = spaces.get(args.space)
        arch = space.parse(args.arch) if args.arch else space.default_arch()
        task = load_task(args)
        x, y = task.batch(n=args.batch_size, split="train", seed=args.seed)
        names = args.proxies.split(",") if args.proxies else None
        vals = proxies.score_arch(space, arch, x, y, names=names, num_classes=task.num_classes,
                                  seed=args.seed, device=args.device)
        if args.json:
            print(json.dumps(vals, indent=2))
        else:
            for k, v in vals.items():
                print(f"{k:10s} {v:.6g}")
        return 0
    from proxies._evaluate import run as run_eval

    return run_eval(args, None)
