"""The table of hostile inputs: each row is a command line that must be refused with ONE line on
stderr naming the bad value, exit code 2, no traceback, and nothing created (no run directory, no
export directory, no change to an existing run).

New options join the table as they are added:

- ``test_every_option_has_a_hostile_row`` fails for a command-line option of ``search``,
  ``pipeline``, ``export`` or ``train`` that no row uses and ``NOT_HOSTILE`` does not excuse;
- every option of every registered task gets rows generated from the constraints it declares
  (``prednas.tasks.register_task(constraints=...)``): out of range on each side, of the wrong
  type. A new task or task option is in the table the moment it is registered.

The rows run the CLI in this process (``prednas.cli.main``); each takes well under a second once
the imports are done.
"""

from __future__ import annotations

import contextlib
import json
import math
import shutil
import signal
import textwrap
from pathlib import Path

import pytest

from prednas import tasks
from prednas.cli import build_parser, main
from prednas.params import Interval, _accepts

HERE = Path(__file__).resolve().parent

# (command, argv after the command, a fragment the one-line error must hold)
# {out}: where the command would create its run (must not exist afterwards); {run}: a finished
# training run (must not change); {frozen} / {branchy}: --model files of networks to refuse
SEARCH_ROWS = [
    # task options (issue 21: undefined objective, tracebacks, directory before the check)
    (["--task-opt", "val_fraction=0"], "'val_fraction'"),
    (["--task-opt", "val_fraction=1.5"], "'val_fraction'"),
    (["--task-opt", "num_samples=0"], "'num_samples'"),
    (["--task-opt", "num_samples=abc"], "'num_samples'"),
    (["--task-opt", "num_samples=1e12"], "'num_samples'"),
    (["--task-opt", "foo=1"], "'foo'"),
    (["--task-opt", "novalue"], "key=value"),
    (["--task", "nosuch"], "'nosuch'"),
    (["--task-path", "x.npz"], "--task-path"),
    (["--task", "cifar10", "--task-path", "{missing}"], "missing.npz"),
    # the user's network
    (["--model", "{frozen}"], "frozen"),
    (["--model", "{branchy}"], "'c1'"),
    (["--model", "{missing}:make_model"], "does not exist"),
    (["--model", "no_function_given.py"], "FILE.py:FUNCTION"),
    (["--model", "{frozen}", "--space", "blocks1d"], "--model"),
    # the search's own options
    (["--space", "nosuch"], "'nosuch'"),
    (["--bench", "nosuch"], "'nosuch'"),
    (["--bench", "nb201", "--metric", "nosuch"], "'nosuch'"),
    (["--strategy", "nosuch"], "'nosuch'"),
    (["--objectives", "val_acc,nosuch"], "'nosuch'"),
    (["--objectives", "test_acc,params"], "'val_acc'"),
    (["--max-latency-ms", "0"], "'--max-latency-ms'"),
    (["--max-latency-batch-ms", "-1"], "'--max-latency-batch-ms'"),
    (["--latency-batch", "0"], "'--latency-batch'"),
    (["--budget", "0"], "'--budget'"),
    (["--max-minutes", "0"], "'--max-minutes'"),
    (["--per-round", "0"], "'--per-round'"),
    (["--steps", "0"], "'--steps'"),
    (["--param-cap", "-1"], "'--param-cap'"),
    (["--replicas", "-1"], "'--replicas'"),
    (["--top-k", "0"], "'--top-k'"),
    (["--warmup-seconds", "-1"], "'--warmup-seconds'"),
    (["--prior", "{missing}"], "missing.npz"),
    (["--start", "warp:7"], "'warp'"),
    (["--guide", "{missing}"], "missing.npz"),
    (["--stnas-feature", "{missing}"], "missing.npz"),
    (["--guide", "{missing}", "--strategy", "rea"], "--guide"),
    (["--executor", "pool", "--workers", "0"], "'--workers'"),
    (["--executor", "pool", "--ray-address", "auto"], "--ray-address"),
    (["--executor", "pool", "--gpus-per-candidate", "1"], "--gpus-per-candidate"),
    (["--threads", "-1"], "'--threads'"),
    (["--seed", "-1"], "'seed'"),
    (["--device", "nosuch"], "'nosuch'"),
    (["--resume", "{missing}"], "missing.npz"),
    (["--simulate"], "--simulate"),
    (["--decision-seconds", "1"], "--decision-seconds"),
    (["--time-scale", "0.5"], "--time-scale"),
    (["--bench", "blocks1d-mnist1d-v2", "--simulate", "--time-scale", "0"], "'--time-scale'"),
    (["--bench", "blocks1d-mnist1d-v2", "--simulate", "--time-scale", "nan"], "'--time-scale'"),
    # partial trainings and the race
    (["--scheduler", "asha", "--rungs", "5,x"], "--rungs"),
    (["--scheduler", "asha", "--rungs", "100,50,300"], "'rungs'"),
    (["--scheduler", "asha", "--rungs", "50,100"], "'rungs'"),
    (["--scheduler", "asha", "--rungs", "0,300"], "'rungs'"),
    (["--scheduler", "asha", "--reduction-factor", "1"], "'reduction_factor'"),
    (["--rungs", "50,100,300"], "--scheduler asha"),
    (["--rank-by", "estimate"], "--scheduler asha"),
    (["--bench", "nb201", "--scheduler", "asha"], "--scheduler"),
    (["--race", "-0.1"], "'--race'"),
    (["--race", "1"], "'--race'"),
    (["--bench", "nb201", "--race", "0.2"], "--race"),
    (["--bench", "nb201", "--prior", "table"], "--prior table"),
    (["--time-weight", "-1"], "'--time-weight'"),
    (["--time-weight", "nan"], "'--time-weight'"),
    (["--strategy", "random", "--time-weight", "1"], "--time-weight"),
    (["--bench", "nb201", "--time-weight", "1"], "--time-weight"),
    (["--explore", "1.5"], "'--explore'"),
    (["--explore", "nan"], "'--explore'"),
    (["--strategy", "rea", "--explore", "0.3"], "--explore"),
]
PIPELINE_ROWS = [
    (["--stages", "search,,retrain"], "--stages"),
    (["--stages", "search,nosuch"], "'nosuch'"),
    (["--stages", ","], "--stages"),
    (["--task-opt", "val_fraction=0"], "'val_fraction'"),
    (["--task-opt", "num_samples=abc"], "'num_samples'"),
    (["--task", "nosuch"], "'nosuch'"),
    (["--task-path", "x.npz"], "--task-path"),
    (["--task", "cifar10", "--task-path", "{missing}"], "missing.npz"),
    (["--model", "{frozen}"], "frozen"),
    (["--model", "{branchy}"], "'c1'"),
    (["--space", "nosuch"], "'nosuch'"),
    (["--budget", "0"], "'budget'"),
    (["--steps", "0"], "'steps'"),
    (["--param-cap", "-1"], "'param_cap'"),
    (["--max-minutes", "0"], "'--max-minutes'"),
    (["--top-k", "0"], "'top_k'"),
    (["--retrain-factor", "0"], "'retrain_factor'"),
    (["--trials", "0"], "'trials'"),
    (["--replicas", "-1"], "'replicas'"),
    (["--format", "pickle"], "'pickle'"),
    (["--workers", "0"], "'workers'"),
    (["--threads", "-1"], "'--threads'"),
    (["--seed", "-1"], "'seed'"),
    (["--device", "nosuch"], "'nosuch'"),
    (["--resume", "{missing}"], "missing.npz"),
]
EXPORT_ROWS = [  # {run} is a finished training run; --out {out} must not appear
    (["{run}", "--out", "{run}", "--force"], "is a run directory"),
    (["{run}", "--pareto", "1", "--out", "{out}"], "pareto.jsonl"),
    (["{run}", "--pareto", "0", "--out", "{out}"], "pareto.jsonl"),
    (["{run}", "--arch", "warp:7", "--out", "{out}"], "'warp'"),
    (["{run}", "--ensemble", "--arch", "conv3:16", "--out", "{out}"], "at most one"),
    (["{run}", "--format", "pickle", "--out", "{out}"], "'pickle'"),
    (["{run}", "--example-batch", "0", "--out", "{out}"], "'example_batch'"),
    (["{run}", "--latency-batch", "0", "--out", "{out}"], "'latency_batch'"),
    (["{missing}", "--out", "{out}"], "missing.npz"),
]
TRAIN_ROWS = [
    (["--task-opt", "num_samples=abc"], "'num_samples'"),
    (["--task-opt", "val_fraction=0"], "'val_fraction'"),
    (["--task", "nosuch"], "'nosuch'"),
    (["--task-path", "x.npz"], "--task-path"),
    (["--space", "nosuch"], "'nosuch'"),
    (["--arch", "warp:7"], "'warp'"),
    (["--steps", "0"], "'steps'"),
    (["--epochs", "0"], "'epochs'"),
    (["--batch-size", "0"], "'batch_size'"),
    (["--lr", "0"], "'lr'"),
    (["--seed", "-1"], "'--seed'"),
    (["--device", "nosuch"], "'nosuch'"),
]
ROWS = {"search": SEARCH_ROWS, "pipeline": PIPELINE_ROWS, "export": EXPORT_ROWS,
        "train": TRAIN_ROWS}

#: options no hostile value exists for (flags, free text), each with the reason
NOT_HOSTILE = {
    "search": {"--no-start": "a flag", "--inherit": "a flag", "--out": "every row's --out",
               "--help": "argparse's own", "--ray-address": "any address (one row pairs it "
               "with a wrong executor)", "--executor": "argparse choices",
               "--scheduler": "argparse choices (rows pair it with bad rungs)",
               "--rank-by": "argparse choices (a row gives it without --scheduler)"},
    "pipeline": {"--out": "every row's --out", "--help": "argparse's own"},
    "export": {"--force": "a flag (one row pairs it with the run directory)",
               "--ensemble": "a flag (rows pair it)", "--help": "argparse's own",
               "run_dir": "every row's first argument", "--out": "every row's --out"},
    "train": {"--json": "a flag", "--help": "argparse's own"},
}

_FROZEN = """
    from torch import nn

    def make_model():
        net = nn.Sequential(nn.Conv1d(1, 8, 3, padding=1), nn.ReLU(), nn.Flatten(),
                            nn.Linear(320, 10))
        for p in net.parameters():
            p.requires_grad_(False)
        return net
"""
_BRANCHY = """
    import torch
    from torch import nn

    class Branchy(nn.Module):
        def __init__(self):
            super().__init__()
            self.c1 = nn.Conv1d(1, 8, 3, padding=1)
            self.c2 = nn.Conv1d(8, 8, 3, padding=1)
            self.head = nn.Linear(320, 10)

        def forward(self, x):
            h = torch.relu(self.c1(x))
            if h.mean() > 0.1:
                h = self.c2(h)
            return self.head(h.flatten(1))

    def make_model():
        return Branchy()
"""


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, str]:
    d = tmp_path_factory.mktemp("hostile")
    (d / "frozen.py").write_text(textwrap.dedent(_FROZEN))
    (d / "branchy.py").write_text(textwrap.dedent(_BRANCHY))
    return {"frozen": f"{d / 'frozen.py'}:make_model", "branchy": f"{d / 'branchy.py'}:make_model",
            "missing": str(d / "missing.npz")}


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    """A tiny finished training run (2 candidates of 4 steps, no ensemble)."""
    from prednas.search import NoFilter, Search, TrainingEvaluator

    path = tmp_path_factory.mktemp("hostile-run") / "run"
    Search("blocks1d", task="synthetic", task_options={"n": 64}, budget=2, per_round=2,
           evaluator=TrainingEvaluator(steps=4, device="cpu"), filter=NoFilter(),
           ensembler=False, device="cpu", run_dir=path).run()
    return path


def _snapshot(path: Path) -> dict:
    return {str(p.relative_to(path)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(path.rglob("*"))}


def _refused(argv: list[str], fragment: str, capsys) -> str:
    code = main(argv)
    cap = capsys.readouterr()
    err = cap.err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    assert code == 2, (code, err)
    assert err.startswith(f"prednas {argv[0]}: error:"), err
    assert fragment in err, err
    return err


#: the task of rows that are not about the task: small (the default one is generated, 25,000
#: examples, ~10-25 s), its inputs those of MNIST-1D (1 x 40) and its classes 10
SMALL_TASK = ["--task", "synthetic", "--task-opt", "n=64", "--task-opt", "num_classes=10"]


def command_line(command: str, argv: list[str], values: dict[str, str]) -> list[str]:
    """The full command line of a row: placeholders filled, ``--out`` and a small task added."""
    argv = [a.format(**values) for a in argv]
    if command in ("search", "pipeline") and "--out" not in argv:
        argv += ["--out", values["out"]]
    if command in ("search", "pipeline", "train") and not {
            "--task", "--task-opt", "--bench", "--resume", "--simulate"} & set(argv):
        argv += SMALL_TASK
    if command in ("search", "pipeline") and "--threads" not in argv:
        argv += ["--threads", "1"]
    return [command, *argv]


@contextlib.contextmanager
def _deadline(seconds: int):
    """A row that is not refused fails the test instead of running for minutes."""
    if not hasattr(signal, "SIGALRM"):
        yield
        return

    def stop(*_):
        raise TimeoutError(f"not refused within {seconds} s")

    old = signal.signal(signal.SIGALRM, stop)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def _rows():
    for command, rows in ROWS.items():
        for argv, fragment in rows:
            yield pytest.param(command, argv, fragment, id=f"{command} {' '.join(argv)}")


@pytest.mark.parametrize("command, argv, fragment", list(_rows()))
def test_hostile_input_is_one_line_exit_2_and_creates_nothing(
        command, argv, fragment, files, tmp_path, capsys, request):
    out = tmp_path / "a" / "b" / "out"
    run = request.getfixturevalue("finished_run") if "{run}" in " ".join(argv) else None
    before = _snapshot(run) if run is not None else None
    argv = command_line(command, argv, {**files, "out": str(out), "run": str(run)})
    with _deadline(120):  # a row that is not refused would run a whole search
        _refused(argv, fragment, capsys)
    assert not (tmp_path / "a").exists()
    if run is not None:
        assert _snapshot(run) == before


def test_every_option_has_a_hostile_row():
    """A new option joins the table (or says in NOT_HOSTILE why no value of it is hostile)."""
    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    for command, rows in ROWS.items():
        p = sub.choices[command]
        p.format_help()  # adds the deferred arguments
        options = {a.option_strings[-1] if a.option_strings else a.dest for a in p._actions}
        used = {a for argv, _ in rows for a in argv if a.startswith("--")}
        forgotten = sorted(options - used - set(NOT_HOSTILE.get(command, {})) - {"--help"})
        assert not forgotten, (f"options of 'prednas {command}' with no row in the hostile-input "
                               f"table: {forgotten}")


# -- task options: rows made from each task's declared constraints -------------------------------
def _hostile_values(allowed: list) -> list:
    """Values that meet none of ``allowed``: each bound crossed, a wrong type."""
    candidates: list = ["abc", "maybe", 1.5, -1, True]
    for c in allowed:
        if isinstance(c, Interval):
            if c.low is not None:
                candidates += [c.low - 1, c.low] if c.closed in ("right", "neither") \
                    else [c.low - 1]
            if c.high is not None:
                candidates += [c.high + 1, c.high] if c.closed in ("left", "neither") \
                    else [c.high + 1]
                if c.high >= 1e6:
                    candidates.append(c.high * 1000)
    hostile = []
    for v in candidates:
        if not any(_accepts(c, v) for c in allowed) and v not in hostile:
            hostile.append(v)
    return hostile


def _cli_text(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and v.is_integer() and not math.isinf(v):
        return f"{v:.1f}"
    return str(v)


def _task_rows():
    for task in tasks.list_tasks():
        for option, allowed in tasks.constraints(task).items():
            for v in _hostile_values(allowed):
                text = _cli_text(v)
                yield pytest.param(task, option, text, id=f"{task} {option}={text}")


def test_every_task_option_has_hostile_values():
    options = {(t, o) for t in tasks.list_tasks() for o in tasks.constraints(t)}
    covered = {(p.values[0], p.values[1]) for p in _task_rows()}
    # a path may be any text: a missing file is a row of its own (cifar10 --task-path)
    assert options - covered <= {("cifar10", "path")}, options - covered


@pytest.mark.parametrize("task, option, text", list(_task_rows()))
def test_hostile_task_option_is_refused_before_anything_is_made(task, option, text, tmp_path,
                                                                capsys, monkeypatch):
    import prednas.tasks as T

    loaded = []
    for name in T.list_tasks():  # no loader may run: the options are checked first
        loader = T._REGISTRY._items[name]
        monkeypatch.setitem(T._REGISTRY._items, name,
                            lambda *a, _f=loader, **k: loaded.append(1) or _f(*a, **k))
    out = tmp_path / "a" / "run"
    _refused(["search", "--task", task, "--task-opt", f"{option}={text}", "--threads", "1",
              "--out", str(out)], f"'{option}'", capsys)
    assert not (tmp_path / "a").exists()
    assert not loaded


def test_task_option_combinations_are_checked_too(capsys, tmp_path):
    """What one option alone cannot say: sizes that multiply, splits left empty."""
    out = tmp_path / "a" / "run"
    _refused(["search", "--task", "synthetic", "--task-opt", "n=1000000", "--task-opt",
              "length=100000", "--out", str(out)], "values", capsys)
    _refused(["search", "--task-opt", "num_samples=10", "--task-opt", "val_fraction=0.01",
              "--out", str(out)], "val_fraction=0.01", capsys)
    assert not (tmp_path / "a").exists()


def test_declared_defaults_are_valid():
    import inspect

    for task in tasks.list_tasks():
        loader = tasks._REGISTRY.get(task)
        defaults = {k: p.default for k, p in inspect.signature(loader).parameters.items()
                    if p.default is not inspect.Parameter.empty}
        tasks.check_options(task, defaults)


def test_a_task_must_declare_every_option():
    from prednas.errors import PredNASError

    with pytest.raises(PredNASError, match=r"undeclared: \['size'\]"):
        @tasks.register_task("hostile-test-undeclared", constraints={})
        def load(size: int = 3):  # pragma: no cover - never registered
            raise AssertionError


def test_resumed_run_with_a_now_invalid_task_option_is_one_line(tmp_path, capsys):
    """A run directory written before the checks (val_fraction=0 recorded) resumes to one line
    naming the option, and is left as it was."""
    from prednas.search import NoFilter, Search, TrainingEvaluator

    path = tmp_path / "run"
    Search("blocks1d", task="synthetic", task_options={"n": 64}, budget=1, per_round=1,
           evaluator=TrainingEvaluator(steps=2, device="cpu"), filter=NoFilter(),
           ensembler=False, device="cpu", run_dir=path).run()
    state = json.loads((path / "state.json").read_text())
    state["config"]["task_options"]["noise"] = -1.0
    state["done"] = False
    (path / "state.json").write_text(json.dumps(state))
    before = _snapshot(path)
    _refused(["search", "--resume", str(path)], "'noise'", capsys)
    assert _snapshot(path) == before
    shutil.rmtree(path)
