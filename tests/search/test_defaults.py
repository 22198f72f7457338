"""The defaults live in the library, once: ``prednas search`` and ``prednas.Search`` run the
same search."""

from __future__ import annotations

import pytest

import prednas
from prednas.cli import build_parser
from prednas.commands.search import _build
from prednas.errors import InvalidParameterError
from prednas.search import defaults


def _config(search) -> dict:
    cfg = search.config()
    return {k: v for k, v in cfg.items() if k != "device"}


def test_the_command_line_and_the_library_run_the_same_training_search(tmp_path):
    argv = ["search", "--task", "synthetic", "--task-opt", "n=64", "--workers", "1",
            "--out", str(tmp_path / "cli")]
    cli = _build(build_parser().parse_args(argv))
    lib = prednas.Search("blocks1d", task="synthetic", task_options={"n": 64}, baseline=True,
                         param_cap=defaults.PARAM_CAP, run_dir=tmp_path / "lib")
    assert _config(lib) == _config(cli)
    # a search of SEARCH_MINUTES, not of a count of candidates
    assert cli.max_seconds == 60 * defaults.SEARCH_MINUTES
    assert cli.budget == defaults.TRAINING_BUDGET
    assert lib.mutator.start == cli.mutator.start and lib.mutator.start  # the shrunk baseline


def test_the_command_line_and_the_library_run_the_same_simulated_search(sim_table, tmp_path,
                                                                         monkeypatch):
    from prednas import benchmarks

    monkeypatch.setattr(benchmarks, "load", lambda name, **kw: sim_table)
    argv = ["search", "--bench", "simtiny", "--simulate", "--workers", "2",
            "--decision-seconds", "0.01", "--budget", "10", "--out", str(tmp_path / "cli")]
    cli = _build(build_parser().parse_args(argv))
    lib = prednas.Search(sim_table.space, oracle=sim_table, simulate=True, baseline=True,
                         budget=10,
                         param_cap=defaults.PARAM_CAP, max_seconds=60 * defaults.MAX_MINUTES,
                         evaluator=prednas.search.SimulatedEvaluator(
                             workers=2, decision_seconds=0.01,
                             max_params=cli.max_params),
                         run_dir=tmp_path / "lib")
    assert _config(lib) == _config(cli)


def test_time_scale_reaches_the_simulated_evaluator_from_the_command_line(sim_table, tmp_path,
                                                                          monkeypatch):
    from prednas import benchmarks

    monkeypatch.setattr(benchmarks, "load", lambda name, **kw: sim_table)
    argv = ["search", "--bench", "simtiny", "--simulate", "--time-scale", "0.5", "--budget", "10",
            "--out", str(tmp_path / "cli")]
    assert _build(build_parser().parse_args(argv)).evaluator.time_scale == 0.5


def test_param_cap_needs_a_baseline_and_no_max_params(tmp_path):
    with pytest.raises(InvalidParameterError, match="param_cap"):
        prednas.Search("blocks1d", task="synthetic", param_cap=0.6, run_dir=tmp_path / "a")
    with pytest.raises(InvalidParameterError, match="param_cap"):
        prednas.Search("blocks1d", task="synthetic", baseline=True, param_cap=0.6,
                       max_params=1000, run_dir=tmp_path / "b")
    with pytest.raises(InvalidParameterError, match="'param_cap'"):
        prednas.Search("blocks1d", task="synthetic", baseline=True, param_cap=-1.0)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_mnist1d_by_name_gets_the_ground_truth_tables_splits_in_both(tmp_path):
    from prednas.tasks.mnist1d import SEARCH_SPLITS

    cli = _build(build_parser().parse_args(["search", "--workers", "1", "--out",
                                            str(tmp_path / "c")]))
    lib = prednas.Search("blocks1d", task="mnist1d", baseline=True, param_cap=0.6,
                         run_dir=tmp_path / "l")
    assert lib.task_options == cli.task_options == SEARCH_SPLITS
    assert _config(lib) == _config(cli)


def test_time_weight_reaches_the_filter_from_both(tmp_path):
    argv = ["search", "--task", "synthetic", "--task-opt", "n=64", "--workers", "1",
            "--time-weight", "1", "--out", str(tmp_path / "cli")]
    cli = _build(build_parser().parse_args(argv))
    assert cli.filter.time_weight == 1.0
    assert defaults.default_filter(cli.space, time_weight=1).get_params() == (
        cli.filter.get_params())
    assert defaults.default_filter(cli.space).time_weight == 0.0  # off until measured


def test_prior_table_reaches_the_filter_from_the_command_line(tmp_path):
    argv = ["search", "--task", "synthetic", "--task-opt", "n=64", "--workers", "1",
            "--prior", "table", "--out", str(tmp_path / "cli")]
    cli = _build(build_parser().parse_args(argv))
    assert cli.filter.prior == "table"
    assert not (tmp_path / "cli").exists()  # nothing is written before the run


def test_explore_reaches_the_mutator_from_both(tmp_path):
    def cli(*flags):
        argv = ["search", "--task", "synthetic", "--task-opt", "n=64", "--workers", "1",
                *flags, "--out", str(tmp_path / "cli")]
        return _build(build_parser().parse_args(argv))

    got = cli("--explore", "0.5")
    assert got.mutator.explore == 0.5
    assert got.mutator.get_params() == defaults.default_mutator(
        got.space, got.baseline, got.max_params, got.task, explore=0.5).get_params()
    assert cli().mutator.explore == defaults.EXPLORE == defaults.default_mutator(
        got.space).explore  # on by default, measured
    assert cli("--explore", "0").mutator.explore == 0.0
    import spaces

    assert defaults.default_mutator(spaces.get("nb201")).explore == 0.0  # not measured there


def test_the_tables_prior_is_the_default_in_a_blocks1d_space_only(tmp_path):
    import spaces

    def cli(*flags):
        argv = ["search", "--task", "synthetic", "--task-opt", "n=64", "--workers", "1",
                *flags, "--out", str(tmp_path / "cli")]
        return _build(build_parser().parse_args(argv)).filter.prior

    assert cli() == defaults.PRIOR == "table"
    assert cli("--prior", "none") is None
    assert defaults.default_filter(spaces.get("blocks1d")).prior == "table"
    assert defaults.default_filter(spaces.get("blocks1d"), prior=None).prior is None
    assert defaults.default_filter(spaces.get("nb201")).prior is None
    # a blocks1d space holding too few of the table's architectures to learn it from
    assert defaults.default_prior(spaces.get("blocks1d", ops=["lstm", "mlp"])) is None


def test_a_training_search_searches_for_a_time_unless_given_a_budget(tmp_path):
    assert defaults.training_limits(None, None) == (defaults.TRAINING_BUDGET,
                                                    60 * defaults.SEARCH_MINUTES)
    assert defaults.training_limits(10, None) == (10, 60 * defaults.MAX_MINUTES)  # a guard
    assert defaults.training_limits(None, 2) == (defaults.TRAINING_BUDGET, 120.0)
    assert defaults.training_limits(10, 2.5) == (10, 150.0)
    timed = prednas.Search("blocks1d", task="synthetic", run_dir=tmp_path / "a")
    assert (timed.budget, timed.max_seconds) == (defaults.TRAINING_BUDGET,
                                                 60 * defaults.SEARCH_MINUTES)
    counted = prednas.Search("blocks1d", task="synthetic", budget=5, run_dir=tmp_path / "b")
    assert (counted.budget, counted.max_seconds) == (5, None)  # reproducible from its seed
    assert prednas.Search("nb201", oracle="nb201", run_dir=tmp_path / "c").budget == 50


def test_a_time_limited_simulation_of_a_small_table_trains_the_table_at_most(sim_table, tmp_path,
                                                                            monkeypatch):
    from prednas import benchmarks

    lib = prednas.Search(sim_table.space, oracle=sim_table, simulate=True,
                         run_dir=tmp_path / "lib")
    assert lib.budget == len(sim_table) and lib.max_seconds == 60 * defaults.SEARCH_MINUTES
    monkeypatch.setattr(benchmarks, "load", lambda name, **kw: sim_table)
    argv = ["search", "--bench", "simtiny", "--simulate", "--out", str(tmp_path / "cli")]
    assert _build(build_parser().parse_args(argv)).budget == len(sim_table)
