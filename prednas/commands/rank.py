"""``prednas rank``: rank architectures listed in a file with a saved predictor."""

from __future__ import annotations

import json
import os
import sys

from prednas.commands._common import add_device, add_task

NAME = "rank"
HELP = "rank architecture strings (one per line) with a saved predictor, best first"
ORDER = 45


def add_arguments(p) -> None:
    p.add_argument("archs", help="file with one architecture string per line ('-' for stdin)")
    p.add_argument("--space", default="nb201", help="search space (default nb201)")
    p.add_argument("--predictor", required=True, help="predictor file from 'prednas pretrain'")
    p.add_argument("--top", type=int, default=None, help="print only the best K")
    add_task(p, default=None)
    add_device(p)
    p.add_argument("--json", action="store_true", help="print JSON lines")


def _read_archs(path: str) -> list[str]:
    from prednas.errors import DataNotFoundError

    if path == "-":
        text = sys.stdin.read()
    else:
        try:
            with open(path) as f:
                text = f.read()
        except (OSError, UnicodeDecodeError) as exc:
            raise DataNotFoundError(f"cannot read architectures file {path!r}: {exc}") from None
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    if not lines:
        where = "stdin" if path == "-" else f"architectures file {path!r}"
        raise DataNotFoundError(f"{where} holds no architectures (expected one architecture "
                                "string per line)")
    return lines


def run(args) -> int:
    from prednas.errors import DataNotFoundError, check_param

    if args.top is not None:
        check_param("prednas rank", "--top", args.top, low=1)
    if os.path.isdir(args.predictor):
        raise DataNotFoundError(f"--predictor {args.predictor!r} is a directory; give the file "
                                "written by 'prednas pretrain ... --out FILE'")
    lines = _read_archs(args.archs)

    import spaces
    from prednas.commands._common import load_task
    from prednas.errors import InvalidArchitectureError
    from prednas.ranking import rank

    space = spaces.get(args.space)
    archs = []
    for k, line in enumerate(lines, start=1):
        try:
            archs.append(space.parse(line))
        except InvalidArchitectureError as exc:
            raise InvalidArchitectureError(f"{args.archs} line {k}: {exc}") from None
    task = load_task(args) if args.task else None
    ranked = rank(archs, space, args.predictor, task=task, device=args.device)
    if args.top is not None:
        ranked = ranked[:args.top]
    for pos, (arch, score) in enumerate(ranked, start=1):
        if args.json:
            print(json.dumps({"rank": pos, "arch": str(arch), "score": score}))
        else:
            print(f"{pos}\t{score:.4f}\t{arch}")
    return 0
