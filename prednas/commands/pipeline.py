"""``prednas pipeline``: search, retrain the best, tune the winner's recipe, ensemble, export.

With no arguments: the ``blocks1d`` space on MNIST-1D (the search of ``prednas search``), the
3 best candidates retrained for twice the steps, 12 Optuna trials of the winner's recipe, an
ensemble of 3 trainings with the tuned recipe, and a TorchScript export; about 15 minutes on a
2-core CPU. Every stage resumes after Ctrl-C or ``kill -9``: ``prednas pipeline --resume RUN``.
"""

from __future__ import annotations

import logging
import os
import time

from prednas.commands import _model
from prednas.commands._common import add_device, add_seed, add_task

NAME = "pipeline"
HELP = ("search, retrain the best, tune the winner's training recipe (Optuna), ensemble and "
        "export it, each stage resumable (default: blocks1d on MNIST-1D, ~15 min)")
ORDER = 32

log = logging.getLogger(__name__)

_STAGES = ("search", "retrain", "tune", "ensemble", "export")


def add_arguments(p) -> None:
    what = p.add_argument_group("what to search")
    what.add_argument("--space", default=None, help="search space (default blocks1d)")
    what.add_argument("--model", default=None, metavar="FILE.py:FUNCTION", help=_model.HELP)
    add_task(what, default="mnist1d")
    st = p.add_argument_group("stages")
    st.add_argument("--stages", default=None, metavar="LIST",
                    help=f"comma-separated subset of {','.join(_STAGES)} (default: all); a stage "
                         "needs the one before it, run now or finished in the run directory")
    st.add_argument("--budget", type=int, default=24, help="search: candidates trained (24)")
    st.add_argument("--steps", type=int, default=300,
                    help="search: training steps per candidate (300)")
    st.add_argument("--param-cap", type=float, default=0.6,
                    help="search: parameter cap as a fraction of the baseline's (0.6; 0 = none)")
    st.add_argument("--max-minutes", type=float, default=10.0,
                    help="search: wall-time guard in minutes (10; the budget normally ends it "
                         "first)")
    st.add_argument("--top-k", type=int, default=3,
                    help="retrain: the K best distinct candidates (3)")
    st.add_argument("--retrain-factor", type=float, default=2.0,
                    help="retrain: steps as a multiple of --steps (2)")
    st.add_argument("--trials", type=int, default=12,
                    help="tune: Optuna trials of the winner's recipe, the default recipe first "
                         "(12)")
    st.add_argument("--replicas", type=int, default=2,
                    help="ensemble: extra trainings of the winner mixed with it (2; 0 = the "
                         "single tuned model)")
    st.add_argument("--format", default="torchscript",
                    help="export: torchscript (default), onnx (needs prednas[onnx]) or state_dict")
    run = p.add_argument_group("running")
    run.add_argument("--workers", type=int, default=None,
                     help="trainings at once in a process pool (default: one per CPU core)")
    run.add_argument("--threads", type=int, default=1,
                     help="torch CPU threads (default 1: fastest on a small, shared CPU)")
    add_seed(run)
    run.add_argument("--out", default=None, help="run directory (default runs/pipeline-<time>)")
    add_device(run)
    run.add_argument("--resume", default=None, metavar="RUN_DIR",
                     help="continue the pipeline in RUN_DIR where it stopped (only --stages, "
                          "--workers, --threads and --device apply)")


def _stages(args):
    """``--stages`` as a list: comma-separated names, none of them empty."""
    from prednas.errors import InvalidParameterError

    if args.stages is None:
        return None
    names = [s.strip() for s in args.stages.split(",")]
    if not all(names):
        raise InvalidParameterError(
            f"--stages {args.stages!r} has an empty name; give a comma-separated subset of "
            f"{','.join(_STAGES)}")
    return names


def _announce(stage: str, event: str, info) -> None:
    if event == "skip":
        print(f"{stage}: already finished")
    elif event == "start":
        print(f"{stage}: ...")
    else:
        print(f"{stage}: done in {info['seconds']:.0f} s{_what(stage, info)}")


def _what(stage: str, info: dict) -> str:
    def acc(x):
        return "n/a" if x is None else f"{x:.2f}%"

    if stage == "search":
        b = info["best"]
        return f"; best {b['arch']} (val {acc(b['val_acc'])}, {b['params']:,} params)"
    if stage == "retrain":
        w = info["winner"]
        return f"; winner {w['arch']} (val {acc(w['val_acc'])} at {info['steps']} steps)"
    if stage == "tune":
        gain = info.get("gain")
        return (f"; {info['trials']} trials, tuned val {acc(info['best']['val_acc'])}"
                + ("" if gain is None else f" ({gain:+.2f} over the default recipe)"))
    if stage == "ensemble":
        f = info["final"]
        return f"; final {f['kind']} test {acc(f['test_acc'])}, {f['params']:,} params"
    if stage == "export":
        return f"; {info['format']} in {info['dir']}/"
    return ""


def _resume(args, stages, workers):
    from prednas import Pipeline, tasks
    from prednas.search.base import decode_param

    stored = Pipeline.read_run(args.resume)
    space = None
    notes = stored.get("notes") or {}
    if notes.get("model"):
        cfg = stored["config"]
        task = tasks.get(cfg["task"], **(decode_param(cfg.get("task_options")) or {}))
        space = _model.space_from_notes(notes["model"], task, str(args.resume))
    return Pipeline.resume(args.resume, space=space, stages=stages, workers=workers,
                           device=args.device, progress=True, callback=_announce)


def _build(args, stages, workers):
    import spaces
    from prednas import Pipeline, tasks
    from prednas.commands._common import task_options
    from prednas.errors import InvalidParameterError

    if args.model and args.space:
        raise InvalidParameterError("give --model (variants of your network) or --space, not "
                                    "both")
    opts = task_options(args)
    task = tasks.get(args.task, **opts)
    notes = None
    if args.model:
        space = _model.space_from_spec(args.model, task)
        notes = {"model": _model.model_notes(args.model, space)}
        print(space.describe())
    else:
        space = spaces.get(args.space or "blocks1d")
    if args.max_minutes is not None and args.max_minutes <= 0:
        raise InvalidParameterError(
            f"The '--max-minutes' parameter of prednas pipeline must be a float in (0, inf). "
            f"Got {args.max_minutes!r} instead.")
    return Pipeline(
        space, task=task, run_dir=args.out or f"runs/pipeline-{time.strftime('%Y%m%d-%H%M%S')}",
        stages=stages, budget=args.budget, steps=args.steps,
        param_cap=args.param_cap or None, max_seconds=60.0 * args.max_minutes,
        top_k=args.top_k, retrain_factor=args.retrain_factor, trials=args.trials,
        replicas=args.replicas, export_format=args.format, workers=workers, seed=args.seed,
        device=args.device, progress=True, notes=notes, callback=_announce)


def run(args) -> int:
    import torch

    from prednas.errors import check_param

    check_param("prednas pipeline", "--threads", args.threads, low=0)  # 0: torch's own default
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    workers = args.workers if args.workers is not None else max(1, min(os.cpu_count() or 1, 8))
    stages = _stages(args)
    pipe = _resume(args, stages, workers) if args.resume else _build(args, stages, workers)
    print(f"run directory: {pipe.run_dir}")
    try:
        result = pipe.run()
    except KeyboardInterrupt:
        print(f"\ninterrupted; continue with: prednas pipeline --resume {pipe.run_dir}")
        return 130
    final = result.final
    if final is not None:
        print(f"final model ({final['kind']}): test {final['test_acc']:.2f}%, "
              f"{final['params']:,} parameters")
    if result.export_dir is not None:
        print(f"exported to {result.export_dir} (prednas.load_model loads it)")
    print(f"report: {result.report}")
    return 0
