from __future__ import annotations

import subprocess
import sys

import pytest

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


def test_version(capsys):
    import prednas

    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0 and prednas.__version__ in capsys.readouterr().out


def test_deferred_subcommand_arguments_still_parse(capsys):
    # 'proxies evaluate' adds its arguments only when used (they import torch)
    with pytest.raises(SystemExit):
        main(["proxies", "evaluate", "--help"])
    assert "--cache" in capsys.readouterr().out
    from prednas.cli import build_parser

    args = build_parser().parse_args(["proxies", "evaluate", "--n", "7", "--report", ""])
    assert args.n == 7 and args.proxies_command == "evaluate"
