"""prednas.Pipeline and ``prednas pipeline``; ``prednas search --model FILE:FUNCTION``.

A tiny pipeline trains 9 networks: the search's baseline and 2 candidates, 2 retrainings, 2
tuning trials, the winner with the tuned recipe and 1 replica. Trainings are counted through
``prednas.training.train`` (every stage trains through it), which also interrupts them.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import prednas
from prednas.cli import main
from prednas.errors import InvalidParameterError, RunDirectoryError
from prednas.search import NoFilter, RandomSampler

REPO = Path(__file__).resolve().parents[2]
TASK = ["--task", "synthetic", "--task-opt", "n=64"]
TINY_CLI = [*TASK, "--budget", "2", "--steps", "2", "--top-k", "2", "--trials", "2",
            "--replicas", "1", "--workers", "1", "--device", "cpu"]
TRAININGS = {"search": 3, "retrain": 2, "tune": 2, "ensemble": 2, "export": 0}


class _Interrupt(BaseException):
    """Stands for Ctrl-C or a crash in the middle of a training."""


class Trainings:
    """Counts finished trainings; raises :class:`_Interrupt` at chosen calls."""

    def __init__(self, monkeypatch, stop_at=(), exc=_Interrupt):
        import prednas.training as T

        self.real, self.calls, self.done, self.stop_at = T.train, 0, 0, set(stop_at)
        self.exc = exc
        monkeypatch.setattr(T, "train", self)

    def __call__(self, *args, **kwargs):
        self.calls += 1
        if self.calls in self.stop_at:
            raise self.exc(f"training {self.calls}")
        rec = self.real(*args, **kwargs)
        self.done += 1
        return rec


def tiny(run_dir, **kw):
    """A pipeline of seconds: small networks (a sub-space of blocks1d), tiny data, 2 steps."""
    import spaces

    settings = dict(task="synthetic", task_options={"n": 64}, budget=2, steps=2, top_k=2,
                    trials=2, replicas=1, device="cpu", mutator=RandomSampler(samples=2),
                    filter=NoFilter(), param_cap=None)
    settings.update(kw)
    space = spaces.get("blocks1d", ops=["conv3", "conv5"], widths=[16], max_blocks=2)
    return prednas.Pipeline(space, run_dir=run_dir, **settings)


def done_stages(run_dir) -> list[str]:
    lines = (Path(run_dir) / "stages.jsonl").read_text().splitlines()
    return [r["stage"] for r in map(json.loads, lines) if r["event"] == "done"]


def test_stages_in_two_calls_then_everything_is_skipped(tmp_path, monkeypatch):
    run = tmp_path / "run"
    counter = Trainings(monkeypatch)
    first = tiny(run, stages=["search", "retrain"]).run()
    assert list(first.stages) == ["search", "retrain"] and first.export_dir is None
    assert counter.done == 5 and "not yet: tune, ensemble, export" in first.report.read_text()
    with pytest.raises(RunDirectoryError, match="holds a pipeline"):
        tiny(run).run()  # a new pipeline in the same directory
    res = prednas.Pipeline.resume(run, stages=["tune", "ensemble", "export"]).run()
    assert counter.done == sum(TRAININGS.values())
    assert list(res.stages) == list(prednas.pipeline.STAGES)
    tune = res.stages["tune"]
    assert tune["trials"] == 2 and tune["default"]["number"] == 0 and tune["gain"] >= 0
    assert set(tune["recipe"]) == {"steps", "lr", "batch_size", "weight_decay", "dropout"}
    assert (run / "tune" / "journal.log").is_file()
    assert res.final["kind"] == "ensemble" and res.final["members"] == 2
    model = prednas.load_model(res.export_dir)
    x = torch.load(res.export_dir / "example_input.pt", weights_only=True)
    probs = model(x)
    assert probs.shape == (len(x), 4) and torch.allclose(probs.sum(1), torch.ones(len(x)))
    report = res.report.read_text()
    for heading in ("## Result", "## 1. search", "## 2. retrain", "## 3. tune", "## 4. ensemble",
                    "## 5. export", "## Time"):
        assert heading in report
    assert "gain:" in report and str(res.export_dir) in report
    again = prednas.Pipeline.resume(run).run()  # finished: nothing is trained again
    assert counter.done == sum(TRAININGS.values()) and again.stages.keys() == res.stages.keys()
    assert done_stages(run) == list(prednas.pipeline.STAGES)


def test_interrupted_in_every_stage_resumes_without_repeating_work(tmp_path, monkeypatch):
    run = tmp_path / "run"
    # calls (an interrupted one is made again): search 1 2x 3 4, retrain 5 6x 7, tune 8 9x 10,
    # ensemble 11 12x 13: stopped in the 2nd training of search, the 2nd retraining, the 2nd
    # tuning trial and the replica
    counter = Trainings(monkeypatch, stop_at={2, 6, 9, 12})
    import prednas.export as E

    real_export, exports = E.export, {"n": 0}

    def export(*args, **kwargs):
        exports["n"] += 1
        if exports["n"] == 1:
            raise _Interrupt("export")
        return real_export(*args, **kwargs)

    monkeypatch.setattr(E, "export", export)
    stopped = []
    with pytest.raises(_Interrupt):
        tiny(run).run()
    for _ in range(5):
        stopped.append(done_stages(run))
        try:
            res = prednas.Pipeline.resume(run).run()
            break
        except _Interrupt:
            continue
    # stopped once in each stage, in order; every finished training was kept
    assert stopped == [[], ["search"], ["search", "retrain"], ["search", "retrain", "tune"],
                       ["search", "retrain", "tune", "ensemble"]]
    assert counter.done == sum(TRAININGS.values()) and counter.calls == counter.done + 4
    assert done_stages(run) == list(prednas.pipeline.STAGES)
    tune = res.stages["tune"]
    assert tune["trials"] == 2 and tune["interrupted"] == 1
    assert prednas.load_model(res.export_dir) is not None


def test_a_stage_without_its_input_is_a_clear_error(tmp_path, capsys):
    with pytest.raises(InvalidParameterError, match="stage 'tune' needs the result of stage "
                                                    "'retrain'"):
        tiny(tmp_path / "a", stages=["search", "tune"]).run()
    assert not (tmp_path / "a").exists()
    with pytest.raises(prednas.UnknownNameError, match="did you mean 'tune'"):
        tiny(tmp_path / "b", stages=["tunes"])
    code = main(["pipeline", *TINY_CLI, "--stages", "export", "--out", str(tmp_path / "c")])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "'ensemble'" in err
    code = main(["pipeline", "--resume", str(tmp_path / "none")])
    assert code == 2 and "does not exist" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------
# --model FILE:FUNCTION
# ------------------------------------------------------------------------------------------------
NET = """
import torch
from torch import nn


class TinyNet(nn.Module):
    def __init__(self, width=8):
        super().__init__()
        self.conv = nn.Conv1d(1, width, 3, padding=1)
        self.head = nn.Linear(width * 40, 4)

    def forward(self, x):
        return self.head(torch.relu(self.conv(x)).flatten(1))


def make_model():
    return TinyNet(WIDTH)


def make_bad():
    raise ValueError("boom")


def make_list():
    return [1, 2]


def make_image_net():
    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.Flatten(), nn.LazyLinear(4))


def make_linear():
    return nn.Sequential(nn.Flatten(), nn.Linear(40, 4))


def make_pool():
    return nn.Sequential(nn.AdaptiveAvgPool1d(4), nn.Flatten())


def make_ten_classes():
    return nn.Sequential(nn.Conv1d(1, 4, 3, padding=1), nn.Flatten(), nn.Linear(160, 10))

WIDTH = 8
"""


@pytest.fixture
def net_file(tmp_path):
    path = tmp_path / "my_model.py"
    path.write_text(NET)
    return path


@pytest.mark.parametrize("model,message", [
    ("my_model.py", "must be FILE.py:FUNCTION"),
    ("missing.py:make_model", "'missing.py' does not exist"),
    ("my_model.py:make_modle", "has no function 'make_modle' (did you mean 'make_model'?); the "
                               "callables it defines: make_model, "),
    ("my_model.py:WIDTH", "has a non-callable 'WIDTH'"),
    ("my_model.py:make_bad", "make_bad() raised ValueError: boom"),
    ("my_model.py:make_list", "make_list() returned a builtins.list, not a torch.nn.Module"),
    ("my_model.py:make_image_net", "does not accept the inputs of task 'synthetic' (a batch of "
                                   "shape (2, 1, 40))"),
    ("my_model.py:make_ten_classes", "needs logits of shape (2, 4)"),
    ("my_model.py:make_pool", "Sequential has no layer from_model can replace"),
    ("my_model.py:make_linear", "Sequential has no layer with a choice left"),
    ("broken.py:make_model", "running broken.py failed: ZeroDivisionError"),
])
def test_model_errors_are_one_line(model, message, net_file, tmp_path, capsys, monkeypatch):
    (tmp_path / "broken.py").write_text("x = 1 / 0\n")
    monkeypatch.chdir(tmp_path)
    code = main(["search", "--model", model, *TASK, "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


def test_model_help_says_the_file_runs(capsys):
    with pytest.raises(SystemExit):
        main(["search", "--help"])
    assert "RUNS" in capsys.readouterr().out


def test_search_model_resumes_from_the_cli(net_file, tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    # the baseline, a candidate, then Ctrl-C (KeyboardInterrupt) in the second candidate
    counter = Trainings(monkeypatch, stop_at={3}, exc=KeyboardInterrupt)
    code = main(["search", "--model", f"{net_file}:make_model", *TASK, "--budget", "2",
                 "--steps", "2", "--replicas", "0", "--workers", "1", "--device", "cpu",
                 "--out", str(run)])
    out = capsys.readouterr().out
    assert code == 130 and f"prednas search --resume {run}" in out
    notes = prednas.Search.read_notes(run)["model"]
    assert notes["function"] == "make_model" and notes["file"] == str(net_file.resolve())
    assert counter.done == 2
    assert main(["search", "--resume", str(run)]) == 0
    assert counter.done == 3  # only the interrupted candidate was trained again
    state = json.loads((run / "state.json").read_text())
    assert state["config"]["space"] == notes["space"]
    assert main(["export", str(run), "--out", str(tmp_path / "exp")]) == 0  # space regenerated
    net_file.write_text(NET.replace("WIDTH = 8", "WIDTH = 6"))
    capsys.readouterr()
    assert main(["search", "--resume", str(run)]) == 2
    assert "changed since the run started" in capsys.readouterr().err
    net_file.unlink()
    assert main(["search", "--resume", str(run)]) == 2
    assert "is gone; restore it to resume" in capsys.readouterr().err


CHILD = """
import os, signal, sys
import prednas.training as T
real, calls = T.train, {"n": 0}
def train(*args, **kwargs):
    calls["n"] += 1
    if calls["n"] == int(sys.argv[1]):
        os.kill(os.getpid(), signal.SIGKILL)
    return real(*args, **kwargs)
T.train = train
from prednas.cli import main
sys.exit(main(sys.argv[2:]))
"""


def test_pipeline_of_a_model_killed_in_tuning_resumes_from_the_cli(net_file, tmp_path,
                                                                    monkeypatch, capsys):
    import optuna

    run = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    # SIGKILL in the 7th training: the second tuning trial
    proc = subprocess.run([sys.executable, "-c", CHILD, "7", "pipeline", "--model",
                           f"{net_file}:make_model", *TINY_CLI, "--out", str(run)],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert done_stages(run) == ["search", "retrain"]
    counter = Trainings(monkeypatch)
    assert main(["pipeline", "--resume", str(run), "--workers", "1"]) == 0
    assert "search: already finished" in capsys.readouterr().out
    assert counter.done == 1 + TRAININGS["ensemble"]  # the killed trial, then the ensemble
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(run / "tune" / "journal.log")))
    trials = optuna.load_study(study_name="prednas-tune", storage=storage).trials
    states = [t.state.name for t in trials]
    assert states == ["COMPLETE", "FAIL", "COMPLETE"]  # the journal from before the kill, reused
    assert trials[2].user_attrs["retry_of"] == 1 and trials[2].params == trials[1].params
    tune = [json.loads(x) for x in (run / "stages.jsonl").read_text().splitlines()][-5]
    assert tune["stage"] == "tune" and tune["summary"]["recipe"]["dropout"] is None  # no dropout=
    space = prednas.Pipeline.read_run(run)["config"]["space"]
    assert space.startswith("from_model:TinyNet:")
    assert prednas.load_model(run / "export") is not None
