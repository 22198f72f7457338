"""From a search space (or your own network) to an exported model: :class:`Pipeline`.

>>> import prednas
>>> result = prednas.Pipeline("blocks1d", task="mnist1d", run_dir="runs/p1").run()
>>> result.export_dir                      # prednas.load_model(result.export_dir)
>>> prednas.Pipeline.resume("runs/p1").run()   # after Ctrl-C or kill -9: where it stopped

Five stages, each in its own sub-directory of the run, each resumable, in this order:

``search``
    A normal search run (``RUN/search/``): the space's default architecture (your network, for a
    space made by :func:`spaces.from_model`) is the baseline, and candidates are capped at
    ``param_cap`` times its parameters.
``retrain``
    The ``top_k`` best distinct candidates trained again with ``retrain_factor`` times the steps,
    on a fresh seed (``RUN/retrain/``: a search run whose :class:`~prednas.search.GivenMutator`
    proposes exactly those architectures, so each training is a recorded evaluation). The best
    by validation accuracy is the **winner**.
``tune``
    The winner's training recipe tuned with Optuna's TPE sampler (``RUN/tune/journal.log``, an
    Optuna journal file): learning rate and weight decay (log-uniform), batch size and steps
    (categorical), dropout where the space's ``build`` takes ``dropout=``. The objective is
    validation accuracy; the first trial is the retrain recipe itself (the default), so the gain
    is measured on the same seed and data order.
``ensemble``
    The winner trained with the tuned recipe on a fresh seed, and ``replicas`` more times on other
    seeds; the ``replicas + 1`` networks' probabilities are mixed with weights fitted on
    validation data (:class:`~prednas.search.ReplicaEnsembler`; ``RUN/ensemble/ensemble.pt``).
``export``
    The final model (the ensemble; the single tuned model when ``replicas=0``) exported with
    :func:`prednas.export.export` into ``RUN/export/``; ``prednas.load_model(RUN / "export")``.

``RUN/report.md`` says what each stage did: the tuned recipe's validation accuracy against the
default's, the final model's test accuracy and parameters, and where the export is.

Resuming: the run's settings are in ``pipeline.json``; each stage is marked finished in the
append-only ``stages.jsonl`` only once its results are on disk, and a stage that was stopped
continues from its own records (a search run directory, or the tuning journal: finished trials
count toward ``trials``, the interrupted one is tried again), so no finished training is repeated.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import logging
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prednas.errors import InvalidParameterError, PredNASError, RunDirectoryError
from prednas.params import DEVICE, Interval, Options, SequenceOf, validate_params
from prednas.utils import fmt_number as _num
from prednas.utils import quiet_optuna

__all__ = ["Pipeline", "PipelineResult", "STAGES"]

log = logging.getLogger(__name__)

#: the stages, in the order they run
STAGES: tuple[str, ...] = ("search", "retrain", "tune", "ensemble", "export")
#: the stage whose result each stage needs
NEEDS: dict[str, str] = {"retrain": "search", "tune": "retrain", "ensemble": "tune",
                         "export": "ensemble"}
FORMAT_VERSION = 1
_KIND = "prednas-pipeline"
CONFIG = "pipeline.json"
EVENTS = "stages.jsonl"
REPORT = "report.md"
LOCK = ".lock"
STUDY = "prednas-tune"
JOURNAL = "journal.log"
#: settings a resumed pipeline may change; the others define the run
RESUMABLE = ("stages", "workers", "device", "progress", "callback")
#: the defaults of :func:`prednas.train` that the search and the retraining use
_DEFAULT_RECIPE = {"lr": 3e-3, "batch_size": 128, "weight_decay": 1e-4}
#: seed offsets: each stage trains on its own seeds (no stage re-measures another's luck)
_SEED = {"search": 0, "retrain": 1, "tune": 2, "ensemble": 3}


@dataclass
class PipelineResult:
    """What a pipeline run has produced so far.

    Attributes:
        run_dir: the pipeline's directory.
        stages: per finished stage, its summary (what ``report.md`` shows).
        report: the path of ``report.md``.
    """

    run_dir: Path
    stages: dict[str, dict] = field(default_factory=dict)
    report: Path | None = None

    @property
    def export_dir(self) -> Path | None:
        """Where the final model was exported (``None`` until the export stage has run)."""
        exp = self.stages.get("export")
        return None if exp is None else self.run_dir / exp["dir"]

    @property
    def final(self) -> dict | None:
        """The final model: kind (ensemble or single), validation and test accuracy, parameters."""
        ens = self.stages.get("ensemble")
        return None if ens is None else ens.get("final")


class Pipeline:
    """search -> retrain -> tune -> ensemble -> export, each stage resumable (see the module).

    Args:
        space: a space name, or a space object (e.g. ``spaces.from_model(net, x)``, which must be
            passed again to :meth:`resume`).
        task: a task name (``task_options`` go to its loader), or a task made by
            :func:`prednas.tasks.get`.
        task_options: options of the task when given by name.
        run_dir: the pipeline's directory (new or empty; default ``runs/pipeline-<time>``).
        stages: the stages to run (default all); a stage whose input stage neither runs now nor
            has finished in ``run_dir`` is an error naming that stage.
        budget: candidates the search evaluates.
        steps: training steps per search candidate.
        param_cap: parameter cap of the search, as a fraction of the baseline's (``None``: none).
        max_seconds: wall-time guard of the search.
        per_round: search evaluations per round (default: ``max(2, workers)``).
        mutator, filter: search strategies (default: mutations of the best 5, 100 per round,
            ranked by a predictor fitted as results come in and three live proxies).
        top_k: architectures retrained.
        retrain_factor: retraining steps as a multiple of ``steps``.
        trials: Optuna trials of the tuning stage (the default recipe is the first).
        replicas: extra trainings of the winner (other seeds) mixed with it into the final
            ensemble (0: the single tuned model is the final model).
        export_format: ``"torchscript"``, ``"onnx"`` or ``"state_dict"``.
        workers: trainings at once (a process pool when more than one).
        seed: seed of the run; each stage trains on seeds of its own derived from it.
        device: ``"auto"`` (CUDA when present), ``"cpu"``, ``"cuda"``...
        progress: progress bars.
        notes: JSON-able facts stored with the run (and its searches), e.g. where a network came
            from.
        callback: ``callback(stage, event, info)`` on each stage's ``"start"``, ``"skip"`` and
            ``"done"`` (``info``: the stage's summary when done), for a command line to print.
    """

    _parameter_constraints = {
        "budget": [Interval(int, 1, None)],
        "steps": [Interval(int, 1, None)],
        "param_cap": [None, Interval(float, 0, None, "neither")],
        "max_seconds": [None, Interval(float, 0, None, "neither")],
        "per_round": [None, Interval(int, 1, None)],
        "top_k": [Interval(int, 1, None)],
        "retrain_factor": [Interval(float, 0, None, "neither")],
        "trials": [Interval(int, 1, None)],
        "replicas": [Interval(int, 0, None)],
        "export_format": [Options("torchscript", "onnx", "state_dict")],
        "workers": [Interval(int, 1, None)],
        "seed": [Interval(int, 0, None)],
        "device": [DEVICE],  # a typo is an error now, not when the first candidate trains
        "progress": ["boolean"],
        "stages": [None, SequenceOf(str)],
        "notes": [None, "dict"],
    }

    def __init__(self, space: Any = "blocks1d", *, task: Any = "mnist1d",
                 task_options: dict | None = None, run_dir: str | os.PathLike | None = None,
                 stages: Sequence[str] | None = None, budget: int = 24, steps: int = 300,
                 param_cap: float | None = 0.6, max_seconds: float | None = None,
                 per_round: int | None = None, mutator=None, filter=None,  # noqa: A002
                 top_k: int = 3, retrain_factor: float = 2.0, trials: int = 12,
                 replicas: int = 2, export_format: str = "torchscript", workers: int = 1,
                 seed: int = 0, device: str = "auto", progress: bool = False,
                 notes: dict | None = None,
                 callback: Callable[[str, str, dict | None], None] | None = None):
        import spaces
        from prednas import tasks as _tasks

        validate_params("Pipeline", self._parameter_constraints, {
            "budget": budget, "steps": steps, "param_cap": param_cap,
            "max_seconds": max_seconds, "per_round": per_round, "top_k": top_k,
            "retrain_factor": retrain_factor, "trials": trials, "replicas": replicas,
            "export_format": export_format, "workers": workers, "seed": seed, "device": device,
            "progress": progress, "stages": stages, "notes": notes})
        self.space = spaces.get(space) if isinstance(space, str) else space
        if isinstance(task, _tasks.Task):
            if task_options:
                raise InvalidParameterError("task_options go with a task name, not a Task object")
            if task.options is None:
                raise InvalidParameterError(
                    "The 'task' parameter of Pipeline must be a task name (or a task made by "
                    "prednas.tasks.get), so that a resumed pipeline can load it again. Got a "
                    "Task made by hand instead.")
            self.task_name, self.task_options = task.name, dict(task.options)
            self._task = task
        elif isinstance(task, str):
            self.task_name, self.task_options = task, dict(task_options or {})
            self._task = _tasks.get(task, **self.task_options)
        else:
            raise InvalidParameterError(
                f"The 'task' parameter of Pipeline must be a task name. Got {task!r} instead.")
        self.space.check_input_shape(self._task.input_shape, task=self.task_name)
        self.stages = self._check_stage_names(stages)
        if export_format == "onnx" and "export" in self.stages:
            from prednas.export import _import_onnx

            _import_onnx(export=True)  # a missing extra is an error now, not after the training
        self.budget, self.steps, self.param_cap = budget, steps, param_cap
        self.max_seconds, self.per_round = max_seconds, per_round
        self.mutator, self.filter = mutator, filter
        self.top_k, self.retrain_factor, self.trials = top_k, retrain_factor, trials
        self.replicas, self.export_format = replicas, export_format
        self.workers, self.seed, self.device, self.progress = workers, seed, device, progress
        self.notes = notes
        self.callback = callback
        self.run_dir = Path(run_dir) if run_dir is not None else Path(
            f"runs/pipeline-{time.strftime('%Y%m%d-%H%M%S')}")
        self._config = self.config()  # refuses a strategy that could not be stored
        self._resumed = False

    # -- settings -------------------------------------------------------------------------------
    @staticmethod
    def _check_stage_names(stages: Sequence[str] | None) -> tuple[str, ...]:
        from prednas.errors import UnknownNameError

        if stages is None:
            return STAGES
        for s in stages:
            if s not in STAGES:
                raise UnknownNameError("pipeline stage", s, STAGES)
        if not stages:
            raise InvalidParameterError(f"stages is empty; choose from {', '.join(STAGES)}")
        return tuple(s for s in STAGES if s in stages)

    def config(self) -> dict[str, Any]:
        """The settings that define the run, as stored in ``pipeline.json``."""
        from prednas.search.base import encode_param

        return {
            "space": self.space.name, "space_config": self.space.config(),
            "task": self.task_name, "task_options": encode_param(self.task_options),
            "budget": self.budget, "steps": self.steps, "param_cap": self.param_cap,
            "max_seconds": self.max_seconds, "per_round": self.per_round,
            "mutator": None if self.mutator is None else self.mutator.describe(),
            "filter": None if self.filter is None else self.filter.describe(),
            "top_k": self.top_k, "retrain_factor": self.retrain_factor, "trials": self.trials,
            "replicas": self.replicas, "export_format": self.export_format, "seed": self.seed,
        }

    @classmethod
    def resume(cls, run_dir: str | os.PathLike, *, space: Any = None, **overrides) -> Pipeline:
        """Rebuild the pipeline saved in ``run_dir``; :meth:`run` then continues where it stopped.

        Args:
            run_dir: the pipeline's directory.
            space: the space object, for a space not registered by name (made by
                :func:`spaces.from_model`): the run's own, or :class:`RunDirectoryError`.
            overrides: ``stages``, ``workers``, ``device``, ``progress`` and ``callback`` may
                change; any other setting must equal the run's.
        """
        import spaces
        from prednas.search.base import decode_param
        from prednas.search.registries import rebuild_strategy

        run_dir = Path(run_dir)
        stored = _read_config(run_dir)
        cfg = stored["config"]
        try:
            space = spaces.restore(cfg["space"], cfg["space_config"], space,
                                   error=RunDirectoryError, where=f"Pipeline.resume({run_dir})",
                                   how="Pipeline.resume(run_dir, space=...)")
            kw: dict[str, Any] = {k: cfg[k] for k in (
                "budget", "steps", "param_cap", "max_seconds", "per_round", "top_k",
                "retrain_factor", "trials", "replicas", "export_format", "seed")}
            kw["task"], kw["task_options"] = cfg["task"], decode_param(cfg["task_options"])
            kw["mutator"] = (None if cfg["mutator"] is None
                             else rebuild_strategy("mutator", cfg["mutator"]))
            kw["filter"] = (None if cfg["filter"] is None
                            else rebuild_strategy("filter", cfg["filter"]))
        except (KeyError, TypeError) as exc:
            raise RunDirectoryError(f"{run_dir / CONFIG} is corrupted ({exc!r})") from None
        for key, value in overrides.items():
            if key in RESUMABLE:
                continue
            if key not in kw and key != "notes":
                raise InvalidParameterError(
                    f"Pipeline.resume got an unexpected setting {key!r}; it may change "
                    f"{', '.join(RESUMABLE)}")
            recorded = stored.get("notes") if key == "notes" else cfg.get(key)
            given = value.describe() if hasattr(value, "describe") and key in (
                "mutator", "filter") else value
            if key == "task_options":
                given = dict(value or {})
                recorded = decode_param(recorded)
            if given != recorded:
                raise RunDirectoryError(
                    f"Pipeline.resume: {key} differs from the run's ({str(given)[:80]} given, "
                    f"{str(recorded)[:80]} recorded); a resumed pipeline may change only "
                    f"{', '.join(RESUMABLE)}")
        kw.update({k: v for k, v in overrides.items() if k in RESUMABLE})
        kw["notes"] = stored.get("notes")
        try:
            pipe = cls(space, run_dir=run_dir, **kw)
        except InvalidParameterError as exc:
            raise RunDirectoryError(f"{run_dir / CONFIG} holds a setting that is not valid "
                                    f"({exc})") from None
        pipe._resumed = True
        return pipe

    @staticmethod
    def read_run(run_dir: str | os.PathLike) -> dict[str, Any]:
        """What ``pipeline.json`` holds: ``config`` (the settings, as :meth:`config` gives them)
        and ``notes``; read without locking. Raises :class:`RunDirectoryError` for a directory
        that is not a pipeline run."""
        stored = _read_config(Path(run_dir))
        notes = stored.get("notes")
        return {"config": stored["config"], "notes": notes if isinstance(notes, dict) else None}

    # -- the run --------------------------------------------------------------------------------
    def run(self) -> PipelineResult:
        """Run the chosen stages (finished ones are skipped), writing ``report.md`` after each.

        Raises:
            RunDirectoryError: a new pipeline's directory is not empty, or another process owns
                the run.
            InvalidParameterError: a chosen stage needs the result of a stage that neither runs
                now nor has finished in the run.
        """
        new = not (self.run_dir / CONFIG).exists()
        if new and self._resumed:
            raise RunDirectoryError(f"{self.run_dir} is not a pipeline run (no {CONFIG})")
        if new and self.run_dir.exists() and any(
                p.name != LOCK for p in self.run_dir.iterdir()):
            raise RunDirectoryError(
                f"Run directory {self.run_dir} is not empty; choose a new run directory")
        if not new and not self._resumed:
            raise RunDirectoryError(
                f"Run directory {self.run_dir} holds a pipeline; continue it with "
                f"Pipeline.resume (prednas pipeline --resume {self.run_dir})")
        done = {} if new else self._finished()
        self._check_inputs(done)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with self._lock():
            if new:
                from prednas.utils import atomic_write_json

                atomic_write_json(self.run_dir / CONFIG, {
                    "kind": _KIND, "format": FORMAT_VERSION, "config": self._config,
                    "notes": self.notes, "created": time.strftime("%Y-%m-%dT%H:%M:%S")})
            for stage in self.stages:
                if stage in done:
                    log.info("stage %s: already finished", stage)
                    self._announce(stage, "skip", done[stage])
                    continue
                self._announce(stage, "start", None)
                self._event({"stage": stage, "event": "start"})
                t0 = time.perf_counter()
                summary = getattr(self, f"_run_{stage}")(done)
                summary["seconds"] = time.perf_counter() - t0
                self._event({"stage": stage, "event": "done", "summary": summary})
                done[stage] = summary
                self._write_report(done)
                self._announce(stage, "done", summary)
            report = self._write_report(done)
        return PipelineResult(self.run_dir, done, report)

    def _announce(self, stage: str, event: str, info: dict | None) -> None:
        if self.callback is not None:
            self.callback(stage, event, info)

    def _check_inputs(self, done: Mapping[str, dict]) -> None:
        for stage in self.stages:
            need = NEEDS.get(stage)
            if stage in done or need is None or need in self.stages or need in done:
                continue
            raise InvalidParameterError(
                f"stage {stage!r} needs the result of stage {need!r}, which has not finished in "
                f"{self.run_dir}; run it too (stages {need},{stage})")

    @contextlib.contextmanager
    def _lock(self):
        from filelock import FileLock, Timeout

        lock = FileLock(str(self.run_dir / LOCK), timeout=0)
        try:
            lock.acquire()
        except Timeout:
            raise RunDirectoryError(
                f"Pipeline {self.run_dir} is in use by another prednas process; wait for it to "
                "finish or stop it first") from None
        try:
            yield
        finally:
            lock.release()

    def _events(self):
        from prednas.utils import JsonlLog

        return JsonlLog(self.run_dir / EVENTS)

    def _event(self, record: dict) -> None:
        self._events().append({**record, "time": time.strftime("%Y-%m-%dT%H:%M:%S")})

    def _finished(self) -> dict[str, dict]:
        """Stage -> summary of every stage marked finished in ``stages.jsonl``."""
        def corrupt(line: int, msg: str):
            raise RunDirectoryError(f"{self.run_dir / EVENTS} is corrupted at line {line}: {msg}")

        done = {}
        for rec in self._events().read(on_corrupt=corrupt):
            if rec.get("event") == "done" and rec.get("stage") in STAGES:
                if not isinstance(rec.get("summary"), dict):
                    corrupt(0, f"stage {rec.get('stage')!r} has no summary")
                done[rec["stage"]] = rec["summary"]
        return done

    # -- helpers shared by the stages -----------------------------------------------------------
    def _sub(self, stage: str) -> Path:
        return self.run_dir / stage

    def _executor(self):
        if self.workers <= 1:
            return None
        import spaces
        from prednas.search import PoolExecutor

        if self.space.name in spaces.list_spaces():
            return PoolExecutor(workers=self.workers)
        # a generated space holds the user's classes: forked workers see them, spawned ones not
        from prednas.commands._model import fork_ok

        if fork_ok():
            return PoolExecutor(workers=self.workers, start_method="fork")
        log.warning("no fork start method here: training one model at a time")
        return None

    def _search_run(self, stage: str, make: Callable[[], Any]):
        """Resume the stage's search run directory if it exists, else start it with ``make``."""
        from prednas.search import Search

        d = self._sub(stage)
        if (d / "state.json").exists():
            kw: dict[str, Any] = {"space": self.space, "device": self.device,
                                  "progress": self.progress}
            executor = self._executor()
            if executor is not None:
                kw["executor"] = executor
            return Search.resume(d, **kw)
        return make()

    def _search_notes(self) -> dict | None:
        return None if self.notes is None else dict(self.notes)

    def _baseline_params(self) -> int:
        task = self._task
        model = self.space.build(self.space.default_arch(), task.num_classes, task.input_shape)
        return sum(p.numel() for p in model.parameters())

    # -- stages ---------------------------------------------------------------------------------
    def _run_search(self, done) -> dict:
        from prednas.search import Search, TrainingEvaluator

        cap = (None if self.param_cap is None
               else max(1, int(self.param_cap * self._baseline_params())))

        def make():
            mutator, flt = self.mutator, self.filter
            if mutator is None or flt is None:
                default_mutator, default_filter = _default_search_strategies()
                mutator = mutator if mutator is not None else default_mutator
                flt = flt if flt is not None else default_filter
            return Search(
                self.space, task=self.task_name, task_options=self.task_options,
                evaluator=TrainingEvaluator(steps=self.steps, max_params=cap, device=self.device),
                mutator=mutator, filter=flt, budget=self.budget, max_seconds=self.max_seconds,
                per_round=self.per_round or max(2, self.workers), executor=self._executor(),
                ensembler=False, baseline=True, max_params=cap, seed=self.seed + _SEED["search"],
                run_dir=self._sub("search"), device=self.device, progress=self.progress,
                notes=self._search_notes())

        result = self._search_run("search", make).run()
        from prednas.search import History

        ranking = History(self.space, result.records).top(self.top_k)
        if not ranking:
            n = len(result.records)
            why = (f"{n} evaluated, none successfully" if n else
                   "none proposed" + (f" under the parameter cap of {cap:,}" if cap else ""))
            raise PredNASError(f"the search in {self._sub('search')} has no candidate to "
                               f"retrain ({why}); see its report.md")
        return {"dir": "search", "evaluated": len(result.records),
                "ok": sum(r.ok for r in result.records), "max_params": cap,
                "steps": self.steps, "best": _brief(result.best),
                "baseline": _brief(result.baseline), "top": [_brief(r) for r in ranking]}

    def _run_retrain(self, done) -> dict:
        from prednas.search import GivenMutator, NoFilter, Search, TrainingEvaluator

        archs = [r["arch"] for r in done["search"]["top"]]
        steps = max(1, int(round(self.steps * self.retrain_factor)))

        def make():
            return Search(
                self.space, task=self.task_name, task_options=self.task_options,
                evaluator=TrainingEvaluator(steps=steps, device=self.device),
                mutator=GivenMutator(archs, then=None), filter=NoFilter(), budget=len(archs),
                per_round=len(archs), executor=self._executor(), ensembler=False,
                seed=self.seed + _SEED["retrain"], run_dir=self._sub("retrain"),
                device=self.device, progress=self.progress, notes=self._search_notes())

        result = self._search_run("retrain", make).run()
        ok = [r for r in result.records if r.ok]
        if not ok:
            raise PredNASError(f"no retraining in {self._sub('retrain')} succeeded; see its "
                               "evaluations.jsonl")
        winner = max(ok, key=lambda r: (r.objective, -archs.index(r.arch)))
        search_val = {r["arch"]: r["val_acc"] for r in done["search"]["top"]}
        results = [{**_brief(r), "search_val_acc": search_val.get(r.arch)}
                   for r in sorted(result.records, key=lambda r: archs.index(r.arch))]
        return {"dir": "retrain", "steps": steps, "results": results, "winner": _brief(winner),
                "recipe": {"steps": steps, **_DEFAULT_RECIPE}}

    def _tune_space(self, steps: int) -> dict[str, Any]:
        """The recipe's search space (Optuna distributions) around the default recipe."""
        from optuna.distributions import CategoricalDistribution, FloatDistribution

        lr = _DEFAULT_RECIPE["lr"]
        dists: dict[str, Any] = {
            "lr": FloatDistribution(lr / 10, lr * 10, log=True),
            "weight_decay": FloatDistribution(1e-6, 1e-1, log=True),
            "batch_size": CategoricalDistribution([32, 64, 128, 256]),
            "steps": CategoricalDistribution(sorted({max(1, steps // 2), steps, 2 * steps})),
        }
        if "dropout" in inspect.signature(self.space.build).parameters:
            dists["dropout"] = FloatDistribution(0.0, 0.5)
        return dists

    def _run_tune(self, done) -> dict:
        import optuna

        from prednas.search.base import SearchContext
        from prednas.search.engine import _evaluate_job
        from prednas.search.evaluators import TrainingEvaluator
        from prednas.search.executors import InProcessExecutor

        winner = done["retrain"]["winner"]["arch"]
        default = dict(done["retrain"]["recipe"])
        dists = self._tune_space(int(default["steps"]))
        if "dropout" in dists:
            default["dropout"] = 0.0
        d = self._sub("tune")
        d.mkdir(exist_ok=True)
        study = _open_study(d / JOURNAL, self.seed + _SEED["tune"])
        trials = study.get_trials(deepcopy=False)
        for t in trials:  # killed while training: that trial is tried again
            if t.state == optuna.trial.TrialState.RUNNING:
                study.tell(t.number, state=optuna.trial.TrialState.FAIL)
                study.enqueue_trial(dict(t.params), user_attrs={"retry_of": t.number})
                log.info("tune: trial %d was interrupted; trying its recipe again", t.number)
        if not any(t.user_attrs.get("default") for t in trials):
            study.enqueue_trial({k: default[k] for k in dists}, user_attrs={"default": True})
        # the sampler's seed moves with the finished trials: a resumed study does not draw the
        # recipes its first trials drew
        study = _open_study(d / JOURNAL, self.seed + _SEED["tune"] + len(study.get_trials()))
        context = SearchContext(space=self.space, task=self._task, device=self.device)
        executor = self._executor() or InProcessExecutor()
        seed = self.seed + _SEED["tune"]
        bar = self._bar(self.trials, "tune", _finished_trials(study))
        try:
            while (n_done := _finished_trials(study)) < self.trials:
                batch = [study.ask(dists) for _ in range(min(self.workers, self.trials - n_done))]
                jobs = []
                for trial in batch:
                    recipe = dict(trial.params)
                    ev = TrainingEvaluator(steps=int(recipe["steps"]), lr=float(recipe["lr"]),
                                           batch_size=int(recipe["batch_size"]),
                                           weight_decay=float(recipe["weight_decay"]),
                                           dropout=recipe.get("dropout"), device=self.device)
                    ev.setup(context)
                    jobs.append((trial, (ev, self.space, winner, seed, None, None), {}))
                for trial, res in executor.map_unordered(_evaluate_job, jobs):
                    for key in ("val_acc", "test_acc", "params", "seconds", "status"):
                        if key in res:
                            trial.set_user_attr(key, res[key])
                    if res.get("status") == "ok" and math.isfinite(float(res["val_acc"])):
                        study.tell(trial, float(res["val_acc"]))
                    else:
                        trial.set_user_attr("failure", str(res.get("reason") or res.get("status")))
                        study.tell(trial, state=optuna.trial.TrialState.FAIL)
                    if bar is not None:
                        bar.update(1)
        finally:
            executor.shutdown()
            if bar is not None:
                bar.close()
        return _tune_summary(study, dists)

    def _bar(self, total: int, desc: str, initial: int = 0):
        if not self.progress:
            return None
        from tqdm.auto import tqdm

        return tqdm(total=total, initial=initial, desc=desc, unit="trial")

    def _run_ensemble(self, done) -> dict:
        from prednas.search import GivenMutator, NoFilter, ReplicaEnsembler, Search
        from prednas.search.evaluators import TrainingEvaluator

        winner = done["retrain"]["winner"]["arch"]
        recipe = done["tune"]["recipe"]

        def make():
            ev = TrainingEvaluator(steps=int(recipe["steps"]), lr=float(recipe["lr"]),
                                   batch_size=int(recipe["batch_size"]),
                                   weight_decay=float(recipe["weight_decay"]),
                                   dropout=recipe.get("dropout"), device=self.device)
            return Search(
                self.space, task=self.task_name, task_options=self.task_options, evaluator=ev,
                mutator=GivenMutator([winner], then=None), filter=NoFilter(), budget=1,
                per_round=1, executor=self._executor(),
                ensembler=(ReplicaEnsembler(self.replicas, include_winner=True)
                           if self.replicas else False),
                seed=self.seed + _SEED["ensemble"], run_dir=self._sub("ensemble"),
                device=self.device, progress=self.progress, notes=self._search_notes())

        result = self._search_run("ensemble", make).run()
        single = result.best
        if single is None:
            raise PredNASError(f"the winner did not train with the tuned recipe in "
                               f"{self._sub('ensemble')}; see its evaluations.jsonl")
        ens = result.ensemble if result.ensemble and result.ensemble.get("path") else None
        if ens is not None:
            final = {"kind": "ensemble", "members": len(ens["archs"]),
                     "val_acc": ens["val_acc"], "test_acc": ens["test_acc"],
                     "params": ens["params"]}
        else:
            final = {"kind": "single", "members": 1, "val_acc": single.get("val_acc"),
                     "test_acc": single.get("test_acc"), "params": single.get("params")}
        return {"dir": "ensemble", "recipe": recipe, "single": _brief(single),
                "ensemble": None if ens is None else {
                    k: ens.get(k) for k in ("val_acc", "test_acc", "gain", "params", "weights",
                                            "member_test_accs")},
                "replicas": self.replicas, "final": final}

    def _run_export(self, done) -> dict:
        from prednas.export import export

        ensemble = done["ensemble"]["final"]["kind"] == "ensemble"
        out = export(self._sub("ensemble"), self._sub("export"), ensemble=ensemble,
                     format=self.export_format, space=self.space, force=True)
        meta = json.loads((out / "export.json").read_text())
        return {"dir": "export", "format": meta["format"], "file": meta["file"],
                "method": meta.get("method"), "model": meta["model"],
                "max_abs_diff": meta.get("max_abs_diff"), **{
                    k: done["ensemble"]["final"][k] for k in ("test_acc", "val_acc", "params")}}

    # -- the report -----------------------------------------------------------------------------
    def _write_report(self, done: Mapping[str, dict]) -> Path:
        from prednas.utils import atomic_write_text

        path = self.run_dir / REPORT
        try:
            atomic_write_text(path, _report(self, done))
        except OSError as exc:  # the report must not lose finished work
            log.warning("could not write %s: %s", path, exc)
        return path


# ------------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------------
def _read_config(run_dir: Path) -> dict:
    path = run_dir / CONFIG
    if not run_dir.is_dir():
        raise RunDirectoryError(f"Run directory {run_dir} does not exist")
    from prednas.utils import read_versioned_json

    stored = read_versioned_json(path, kind=_KIND, version=FORMAT_VERSION, error=RunDirectoryError,
                                 what="prednas pipeline run")
    if not isinstance(stored.get("config"), dict):
        raise RunDirectoryError(f"{path} is corrupted: no 'config' entry")
    return stored


def _default_search_strategies():
    """What ``prednas search`` uses when training: mutations of the best five, ranked by a
    predictor refitted on the results and three live proxies fast enough for a small CPU."""
    from prednas.search import MutationMutator, PredictorFilter

    try:
        import proxies

        names = set(proxies.list_proxies())
    except (ImportError, AttributeError):  # pragma: no cover - part of the distribution
        names = set()
    live = tuple(n for n in ("params", "synflow", "snip") if n in names)
    return (MutationMutator(parents=5, mutations=100),
            PredictorFilter(proxy_table=None, live_proxies=live, survivors=6, min_fit=6))


def _brief(rec) -> dict | None:
    """The fields of an evaluation record the report shows."""
    if rec is None:
        return None
    return {"arch": rec.arch, "status": rec.status, "val_acc": rec.get("val_acc"),
            "test_acc": rec.get("test_acc"), "params": rec.get("params"),
            "steps": rec.get("steps"), "seconds": rec.get("seconds")}


def _open_study(journal: Path, seed: int):
    """The tuning study in its journal file (created, or loaded as it was left)."""
    import optuna

    try:
        from optuna.storages.journal import JournalFileBackend
    except ImportError:  # optuna < 4
        from optuna.storages import JournalFileStorage as JournalFileBackend
    with quiet_optuna():
        storage = optuna.storages.JournalStorage(JournalFileBackend(str(journal)))
        sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=5)
        return optuna.create_study(study_name=STUDY, storage=storage, sampler=sampler,
                                   direction="maximize", load_if_exists=True)


def _finished_trials(study) -> int:
    """Trials that count toward the budget: completed ones and real failures (a diverged recipe),
    not those interrupted by a kill (failed by the resume, with no recorded failure)."""
    import optuna

    n = 0
    for t in study.get_trials(deepcopy=False):
        if t.state == optuna.trial.TrialState.COMPLETE or (
                t.state == optuna.trial.TrialState.FAIL and "failure" in t.user_attrs):
            n += 1
    return n


def _tune_summary(study, dists) -> dict:
    import optuna

    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    failed = [t for t in trials if t.state == optuna.trial.TrialState.FAIL
              and "failure" in t.user_attrs]
    if not complete:
        raise PredNASError("every tuning trial failed (see the journal in the tune directory)")
    best = max(complete, key=lambda t: (t.value, -t.number))  # ties: the earlier (the default)
    default = next((t for t in complete if t.user_attrs.get("default")), None)

    def brief(t):
        return {"number": t.number, "params": dict(t.params), "val_acc": t.value,
                "test_acc": t.user_attrs.get("test_acc"), "params_count": t.user_attrs.get(
                    "params"), "seconds": t.user_attrs.get("seconds")}

    recipe = {k: (int(v) if k in ("steps", "batch_size") else float(v))
              for k, v in best.params.items()}
    recipe.setdefault("dropout", None)
    return {"dir": "tune", "trials": len(complete) + len(failed), "failed": len(failed),
            "interrupted": sum(1 for t in trials if t.user_attrs.get("retry_of") is not None),
            "best": brief(best), "default": None if default is None else brief(default),
            "gain": None if default is None else best.value - default.value,
            "recipe": recipe, "searched": sorted(dists), "journal": f"tune/{JOURNAL}"}


def _int(x) -> str:
    try:
        return f"{int(x):,}"
    except (TypeError, ValueError):
        return "n/a"


def _recipe(r: Mapping[str, Any]) -> str:
    parts = [f"{r['steps']} steps", f"lr {float(r['lr']):.2g}", f"batch {r['batch_size']}",
             f"weight decay {float(r['weight_decay']):.2g}"]
    if r.get("dropout") is not None:
        parts.append(f"dropout {float(r['dropout']):.2f}")
    return ", ".join(parts)


def _report(pipe: Pipeline, done: Mapping[str, dict]) -> str:
    cfg = pipe.config()
    lines = ["# prednas pipeline report", ""]
    task = f"`{cfg['task']}`" + (f" ({cfg['task_options']})" if cfg["task_options"] else "")
    lines.append(f"Space `{cfg['space']}`, task {task}, seed {cfg['seed']}. Stages finished: "
                 f"{', '.join(s for s in STAGES if s in done) or 'none'}"
                 + ("" if all(s in done for s in STAGES) else
                    f"; not yet: {', '.join(s for s in STAGES if s not in done)}") + ".")
    lines.append("")
    final = done.get("ensemble", {}).get("final")
    exp = done.get("export")
    if final:
        what = (f"an ensemble of {final['members']} trainings of the winner (tuned recipe)"
                if final["kind"] == "ensemble" else "the winner trained with the tuned recipe")
        lines += ["## Result", "",
                  f"- final model: {what}: **{_num(final['test_acc'])}% test accuracy**, "
                  f"{_num(final['val_acc'])}% validation, {_int(final['params'])} parameters"]
        if exp:
            lines.append(f"- exported ({exp['format']}, {exp.get('method')}) to "
                         f"`{pipe.run_dir / exp['dir']}`: `prednas.load_model(...)` loads it")
        lines.append("")
    seconds = {s: done[s].get("seconds") for s in STAGES if s in done}
    if "search" in done:
        s = done["search"]
        lines += ["## 1. search", "",
                  f"{s['evaluated']} candidates trained ({s['ok']} successfully) for {s['steps']} "
                  "steps each" + (f", capped at {_int(s['max_params'])} parameters"
                                 if s.get("max_params") else "") + f" ({_num(seconds['search'], 0)}"
                  " s); run directory `search/` (its own `report.md`).", ""]
        b = s.get("baseline")
        rows = [("best", s["best"])] + ([("baseline (default architecture)", b)] if b else [])
        lines += _table(rows)
    if "retrain" in done:
        r = done["retrain"]
        lines += ["## 2. retrain", "",
                  f"The {len(r['results'])} best distinct candidates retrained for {r['steps']} "
                  f"steps on a fresh seed ({_num(seconds['retrain'], 0)} s; `retrain/`). The "
                  f"winner is the best by validation accuracy: `{r['winner']['arch']}`.", "",
                  "| architecture | val acc at search (%) | val acc (%) | test acc (%) | "
                  "params |", "|---|---:|---:|---:|---:|"]
        for x in r["results"]:
            lines.append(f"| `{x['arch']}` | {_num(x.get('search_val_acc'))} | "
                         f"{_num(x['val_acc'])} | {_num(x['test_acc'])} | {_int(x['params'])} |")
        lines.append("")
    if "tune" in done:
        t = done["tune"]
        lines += ["## 3. tune", "",
                  f"{t['trials']} Optuna TPE trials ({t['failed']} failed"
                  + (f", {t['interrupted']} interrupted and tried again" if t["interrupted"]
                     else "") + f"; {_num(seconds['tune'], 0)} s) over "
                  f"{', '.join(t['searched'])}, objective validation accuracy, journal "
                  f"`{t['journal']}`. Every trial trains the winner on the same seed, the first "
                  "with the default (retrain) recipe.", ""]
        dflt, best = t.get("default"), t["best"]
        if dflt is not None:
            lines.append(f"- default recipe ({_recipe(dflt['params'])}): "
                         f"{_num(dflt['val_acc'])}% validation")
        lines.append(f"- tuned recipe ({_recipe(t['recipe'])}): {_num(best['val_acc'])}% "
                     f"validation (trial {best['number']})")
        if t.get("gain") is None:
            lines.append("- gain: unknown (the default recipe's trial failed)")
        elif t["gain"] > 0:
            lines.append(f"- gain: **{t['gain']:+.2f} points** of validation accuracy (the best "
                         "of several trials on the validation split: an optimistic estimate; "
                         "the ensemble stage retrains on fresh seeds)")
        else:
            lines.append("- gain: none: no trial beat the default recipe, which is kept")
        lines.append("")
    if "ensemble" in done:
        e = done["ensemble"]
        sgl = e["single"]
        lines += ["## 4. ensemble", "",
                  f"The winner trained with the tuned recipe on a fresh seed: "
                  f"{_num(sgl['val_acc'])}% validation, {_num(sgl['test_acc'])}% test"
                  + (f" (the default recipe at retraining: "
                     f"{_num(done['retrain']['winner']['val_acc'])}% validation, "
                     f"{_num(done['retrain']['winner']['test_acc'])}% test)"
                     if "retrain" in done else "") + f" ({_num(seconds['ensemble'], 0)} s; "
                  "`ensemble/`)."]
        if e.get("ensemble"):
            en = e["ensemble"]
            lines.append(f"With {e['replicas']} more on other seeds, mixed with weights fitted "
                         f"on validation data: {_num(en['val_acc'])}% validation, "
                         f"{_num(en['test_acc'])}% test ({en['gain']:+.2f} over the single "
                         f"model), {_int(en['params'])} parameters in all.")
        else:
            lines.append("No replicas (replicas=0): the single model is the final model.")
        lines.append("")
    if exp:
        lines += ["## 5. export", "",
                  f"`{exp['file']}` in `{pipe.run_dir / exp['dir']}` ({exp['format']}, "
                  f"{exp.get('method')}; max abs difference from the evaluated model "
                  f"{float(exp.get('max_abs_diff') or 0):.2g}), with `model_card.md` and "
                  f"`example_input.pt` ({_num(seconds['export'], 1)} s).", ""]
    if seconds:
        lines += ["## Time", "", "| stage | seconds |", "|---|---:|"]
        lines += [f"| {s} | {_num(v, 1)} |" for s, v in seconds.items()]
        lines.append("")
    return "\n".join(lines)


def _table(rows) -> list[str]:
    out = ["| | architecture | val acc (%) | test acc (%) | params |", "|---|---|---:|---:|---:|"]
    for label, r in rows:
        out.append(f"| {label} | `{r['arch']}` | {_num(r['val_acc'])} | {_num(r['test_acc'])} | "
                   f"{_int(r['params'])} |")
    return out + [""]
