from __future__ import annotations

import subprocess
import sys

from prednas.cli import main


def test_help_lists_subcommands(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    assert "train" in out


def test_bad_input_is_one_line_exit_2(capsys):
    code = main(["train", "--space", "nb201", "--arch", "|bogus~0|"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    code = main(["train", "--task", "mnist1dd"])
    err = capsys.readouterr().err
    assert code == 2 and "did you mean 'mnist1d'" in err


def test_train_end_to_end_on_synthetic(capsys):
    code = main(["train", "--task", "synthetic", "--task-opt", "n=64", "--arch", "conv3:16",
                 "--steps", "2", "--device", "cpu"])
    assert code == 0 and "test" in capsys.readouterr().out


def test_console_entry_point_runs():
    out = subprocess.run([sys.executable, "-m", "prednas", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "COMMAND" in out.stdout
