"""CLI faults: each bad input is one line on stderr naming the bad value, exit code 2, no traceback."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from prednas import cli
from prednas.cli import main

REPO = Path(__file__).resolve().parents[2]
ARCH = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    return err


@pytest.fixture(scope="module")
def predictor_file(tmp_path_factory) -> Path:
    import numpy as np

    import predictors
    import spaces

    space = spaces.get("nb201")
    rng = np.random.default_rng(0)
    archs = [space.sample(rng) for _ in range(40)]
    y = np.array([sum(op == "nor_conv_3x3" for op in a.ops) for a in archs], float)
    pipe = predictors.FeaturePipeline(space, "onehot")
    model = predictors.RidgePredictor().fit(pipe.transform(archs), y)
    return predictors.save(model, tmp_path_factory.mktemp("pred") / "p.pred", pipeline=pipe)


@pytest.fixture
def archs_file(tmp_path) -> Path:
    p = tmp_path / "archs.txt"
    p.write_text(f"{ARCH}\n|none~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|\n")
    return p


@pytest.mark.parametrize("command", [["train", "--task", "synthetic", "--device", "cpu"],
                                     ["search", "--task", "synthetic", "--threads", "0"]])
def test_unknown_task_option_names_it_and_the_valid_ones(command, tmp_path, capsys):
    code = main([*command, "--task-opt", "foo=1", "--task-opt", "n=64",
                 *(["--out", str(tmp_path / "run")] if command[0] == "search" else [])])
    err = one_line_error(capsys)
    assert code == 2
    assert "'foo'" in err and "num_classes" in err and "seed" in err
    assert not (tmp_path / "run").exists()


def test_task_path_on_a_task_that_reads_no_file(capsys):
    assert main(["train", "--task", "synthetic", "--task-path", "x.npz"]) == 2
    err = one_line_error(capsys)
    assert "--task-path" in err and "num_classes" in err


@pytest.mark.parametrize("top", ["-1", "0"])
def test_rank_top_below_one_is_an_error(top, predictor_file, archs_file, capsys):
    code = main(["rank", "--predictor", str(predictor_file), "--top", top, str(archs_file)])
    err = one_line_error(capsys)
    assert code == 2 and "--top" in err and top in err
    assert capsys.readouterr().out == ""


def test_rank_empty_candidates_file(predictor_file, tmp_path, capsys):
    empty = tmp_path / "empty.txt"
    empty.write_text("# only a comment\n\n")
    assert main(["rank", "--predictor", str(predictor_file), str(empty)]) == 2
    err = one_line_error(capsys)
    assert "empty.txt" in err and "no architectures" in err


def test_rank_predictor_directory(archs_file, tmp_path, capsys):
    assert main(["rank", "--predictor", str(tmp_path), str(archs_file)]) == 2
    err = one_line_error(capsys)
    assert str(tmp_path) in err and "directory" in err


def test_pretrain_unwritable_out_keeps_the_fit(tmp_path, monkeypatch, capsys):
    import predictors

    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    out = blocker / "sub" / "c10.pred"  # under a regular file: unwritable even for root
    code = main(["pretrain", "--n-train", "20", "--n-test", "20", "--predictor", "xgb",
                 "--out", str(out)])
    err = one_line_error(capsys)
    assert code == 2 and str(out) in err
    saved = [p for p in (tmp_path / "tmp").rglob("c10.pred")]
    assert len(saved) == 1 and str(saved[0]) in err
    model, pipe = predictors.load(saved[0])
    assert pipe is not None and getattr(model, "is_fitted_", False)


def test_pretrain_writes_out_and_leaves_no_temp_files(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    out = tmp_path / "new" / "c10.pred"
    assert main(["pretrain", "--n-train", "20", "--n-test", "20", "--out", str(out)]) == 0
    assert out.is_file() and str(out) in capsys.readouterr().out
    assert list((tmp_path / "tmp").iterdir()) == []


def test_ctrl_c_while_building_the_parser(monkeypatch, capsys):
    def interrupted():
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "build_parser", interrupted)
    try:
        code = main(["train"])
    except KeyboardInterrupt:  # escaping would also stop pytest itself
        pytest.fail("KeyboardInterrupt escaped prednas.cli.main")
    assert code == 130
    assert one_line_error(capsys).endswith("interrupted")


def test_ctrl_c_while_importing_is_one_line_exit_130(tmp_path):
    # A Ctrl-C that lands while torch is being imported (the slow part of start-up).
    script = (
        "import sys, runpy\n"
        "class Interrupt:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'torch':\n"
        "            raise KeyboardInterrupt\n"
        "sys.meta_path.insert(0, Interrupt())\n"
        "sys.argv = ['prednas', 'train', '--task', 'synthetic']\n"
        "runpy.run_module('prednas', run_name='__main__', alter_sys=True)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          cwd=REPO, timeout=120)
    assert proc.returncode == 130, proc.stderr
    assert proc.stderr.strip().splitlines() == ["prednas train: interrupted"]
