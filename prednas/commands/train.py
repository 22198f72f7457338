"""``prednas train``: train one architecture on a task and print its record."""

from __future__ import annotations

import json

from prednas.commands._common import add_device, add_seed, add_task, load_task

NAME = "train"
HELP = "train one architecture (default: the space's hand-designed baseline) on a task"
ORDER = 20


def add_arguments(p) -> None:
    p.add_argument("--space", default="blocks1d", help="search space (default blocks1d)")
    p.add_argument("--arch", default=None, help="architecture string (default: space baseline)")
    add_task(p)
    p.add_argument("--epochs", type=int, default=None, help="epochs (default 20)")
    p.add_argument("--steps", type=int, default=None, help="optimiser steps instead of epochs")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=3e-3)
    add_seed(p)
    add_device(p)
    p.add_argument("--json", action="store_true", help="print the record as JSON")


def run(args) -> int:
    import spaces
    from prednas.errors import check_param
    from prednas.training import train

    check_param("prednas train", "--seed", args.seed, low=0)
    space = spaces.get(args.space)
    arch = space.parse(args.arch) if args.arch else space.default_arch()
    task = load_task(args)
    rec = train(space, arch, task, epochs=args.epochs, steps=args.steps, batch_size=args.batch_size,
                lr=args.lr, seed=args.seed, device=args.device, progress=True)
    if args.json:
        print(json.dumps(rec.to_dict(), indent=2))
    elif rec.ok:
        print(f"{rec.arch}: test {rec.test_acc:.2f}%  val {rec.val_acc:.2f}%  "
              f"params {rec.params:,}  FLOPs {rec.flops:,}  {rec.wall_time:.1f}s on {rec.device}")
    else:
        print(f"{rec.arch}: {rec.status}: {rec.reason}")
        return 1
    return 0
