"""A search run as an Optuna study: ``RUN/study.log``, an Optuna journal file.

Every search mirrors its evaluations into the study as they complete: one trial per line of
``evaluations.jsonl`` (trial ``i`` is record ``i``, its user attribute ``record``), the
architecture's choices as parameters with the distributions its space defines
(:meth:`spaces.Space.to_optuna`), the objective (and, in a multi-objective search, the costs) as
values with their directions, the rest of the record (parameters, FLOPs, latency, proxy values,
the filter's prediction, the fidelity reached, the kind: candidate, baseline or replica) as user
attributes, the learning curve's validation accuracy as intermediate values keyed by step, and a
failed candidate as a failed trial with its reason. The study's note and figures (optuna-dashboard's
format) hold the views a generic dashboard lacks: best so far against time, predicted against
measured, the filter's signals, the Pareto front with the baseline; the winner and the baseline are
named in the study's user attributes.

``evaluations.jsonl`` stays the one truth. The study is written from it: a journal that is missing or
behind (a search killed between the two appends) is completed from the records, by the search when
it resumes or by :func:`study` / ``prednas dashboard`` when no process owns the run; trials are
keyed by record, so nothing is added twice. A journal that disagrees with the records (edited by
hand) is a :class:`~prednas.errors.RunDirectoryError` for a reader (the run is left as it is) and is
rebuilt from the records, with a warning, by a search that resumes.

Readers never write into a run that another process owns: they read its journal as it grows, or,
when it has none, build the study in memory from the records.

>>> import prednas
>>> study = prednas.study("runs/s1")                 # an optuna.Study (read-only)
>>> study.trials_dataframe()                          # doctest: +SKIP
"""

from __future__ import annotations

import datetime as _dt
import functools
import json
import logging
import math
import os
import time
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from prednas.errors import PredNASError, RunDirectoryError
from prednas.search.base import Record
from prednas.search.rundir import EVALUATIONS, LOCK, RunDir

__all__ = ["study", "StudyView", "mirror", "JOURNAL", "STUDY_NAME"]

log = logging.getLogger(__name__)

#: the journal file in the run directory
JOURNAL = "study.log"
#: the study's name in it
STUDY_NAME = "prednas-search"
FORMAT_VERSION = 1
#: the trial user attribute that holds the record's position in ``evaluations.jsonl``
INDEX = "record"
#: record fields that are not user attributes (the curve is the intermediate values)
_NOT_ATTRS = ("curve", "space")
#: the search's refreshes of the note and figures take this share of its time at most
_VIEWS_SHARE = 0.01
#: what a first refresh is assumed to cost (plotly's first figure imports its validators)
_VIEWS_FIRST_COST = 0.3


# ------------------------------------------------------------------------------------------------
# records -> trials
# ------------------------------------------------------------------------------------------------
def _objectives(config: Mapping[str, Any]) -> list[str]:
    return list(config.get("objectives") or [config.get("metric") or "val_acc"])


def _params(space, arch: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The architecture's parameters and distributions (none when the space is unknown here, or
    the record's architecture is not one of it)."""
    if space is None:
        return {}, {}
    try:
        return space.to_optuna(space.parse(arch))
    except PredNASError:
        return {}, {}


def _values(record: Record, objectives: Sequence[str]) -> tuple[list[float] | None, str]:
    """The trial's values, or ``(None, why)`` for a failed trial."""
    if record.status != "ok":
        return None, f"{record.status}: {record.reason}" if record.reason else record.status
    if not record.ok:  # "ok" with no finite objective
        return None, f"the objective is {record.objective!r}"
    vals = [record.objective]
    for c in objectives[1:]:
        v = record.get(c)
        try:
            vals.append(float(v))
        except (TypeError, ValueError):
            return None, f"no value for the objective {c!r}"
        if not math.isfinite(vals[-1]):
            return None, f"the objective {c!r} is {v!r}"
    return vals, ""


def _intermediate(record: Record) -> dict[int, float]:
    """The learning curve's validation accuracy by step (``curve``: parallel lists)."""
    curve = record.get("curve")
    if not isinstance(curve, Mapping):
        return {}
    out = {}
    for step, acc in zip(curve.get("step") or (), curve.get("val_acc") or ()):
        try:
            step, acc = int(step), float(acc)
        except (TypeError, ValueError):
            continue
        if math.isfinite(acc):
            out[step] = acc
    return out


def _attrs(record: Record, index: int, why: str) -> dict[str, Any]:
    attrs: dict[str, Any] = {}
    for k, v in record.to_json().items():
        if k in _NOT_ATTRS or v is None or (k == "canonical" and v == record.arch):
            continue
        if isinstance(v, float) and not math.isfinite(v):
            continue
        attrs[k] = v
    attrs[INDEX] = index
    if why and record.status == "ok":  # a record the study cannot place (a missing cost)
        attrs["not_placed"] = why
    return attrs


def _trial(record: Record, index: int, space, objectives: Sequence[str],
           constraints: Mapping[str, float], start: _dt.datetime, end: _dt.datetime):
    import optuna

    params, dists = _params(space, record.arch)
    values, why = _values(record, objectives)
    kw: dict[str, Any] = dict(params=params, distributions=dists,
                              user_attrs=_attrs(record, index, why),
                              intermediate_values=_intermediate(record))
    if values is None:
        trial = optuna.trial.create_trial(state=optuna.trial.TrialState.FAIL, **kw)
    else:
        cons = _constraints(record, constraints)
        if cons is not None:  # the list form Optuna's samplers store, which dashboards read
            kw["system_attrs"] = {"constraints": cons}
        if len(values) == 1:
            kw["value"] = values[0]
        else:
            kw["values"] = values
        trial = optuna.trial.create_trial(state=optuna.trial.TrialState.COMPLETE, **kw)
    trial.datetime_start, trial.datetime_complete = start, end
    return trial


def _constraints(record: Record, constraints: Mapping[str, float]) -> list[float] | None:
    """Optuna's constraint values, one per constraint in the run's order (feasible at zero or
    less)."""
    if not constraints:
        return None
    out = []
    for k, bound in constraints.items():
        try:
            out.append(float(record.get(k)) - float(bound))
        except (TypeError, ValueError):
            return None
    return out


def _same(a, b) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return len(a) == len(b) and all(x == y or (math.isclose(x, y, rel_tol=1e-12)) for x, y in zip(a, b))


def disagreement(trials, records: Sequence[Record], space, config: Mapping[str, Any]) -> str | None:
    """Where a study's trials disagree with the run's records (``None``: they agree, the study
    possibly behind). Parameters are compared only when ``space`` is known."""
    import optuna

    objectives = _objectives(config)
    if len(trials) > len(records):
        return f"it has {len(trials)} trials for {len(records)} records"
    for i, t in enumerate(trials):
        r = records[i]
        if t.number != i or t.user_attrs.get(INDEX) != i:
            return f"trial {t.number} is not record {i}"
        if t.user_attrs.get("arch") != r.arch or t.user_attrs.get("kind") != r.kind:
            return f"trial {i} is {t.user_attrs.get('arch')!r}, record {i} is {r.arch!r}"
        values, _ = _values(r, objectives)
        want = optuna.trial.TrialState.FAIL if values is None else optuna.trial.TrialState.COMPLETE
        if t.state != want:
            return f"trial {i} is {t.state.name}, record {i} says {r.status}"
        if not _same(t.values, values):
            return f"trial {i} has values {t.values}, record {i} {values}"
        if space is not None and t.params != _params(space, r.arch)[0]:
            return f"trial {i} has parameters {t.params}, not those of {r.arch!r}"
        if t.intermediate_values != _intermediate(r):
            return f"trial {i}'s intermediate values differ from record {i}'s curve"
    return None


# ------------------------------------------------------------------------------------------------
# storages
# ------------------------------------------------------------------------------------------------
def _journal_storage(path: Path, *, owner: bool = False):
    """An Optuna journal storage on ``path`` (in the style of the pipeline's tuning journal).

    ``owner``: written by the process that holds the run's lock, the only writer, through
    :func:`_owner_backend` (appends neither locked nor fsynced)."""
    import optuna

    try:
        from optuna.storages.journal import JournalFileBackend
    except ImportError:  # optuna < 4
        from optuna.storages import JournalFileStorage as JournalFileBackend
    backend = _owner_backend()(path) if owner else JournalFileBackend(str(path))
    return optuna.storages.JournalStorage(backend)


@functools.cache
def _owner_backend() -> type:
    """Optuna's journal file backend whose appends skip its lock file and ``fsync``: the run's
    lock already makes this process the only writer, and the journal needs no durability of its
    own (a journal that lost its tail in a crash is completed from the records). Its reads are
    Optuna's, so a torn last line is ignored as usual."""
    try:
        from optuna.storages.journal import JournalFileBackend
    except ImportError:  # optuna < 4
        from optuna.storages import JournalFileStorage as JournalFileBackend

    class OwnerJournalFileBackend(JournalFileBackend):
        def __init__(self, path):
            super().__init__(str(path))
            self._path = str(path)

        def append_logs(self, logs):
            data = "".join(json.dumps(x, separators=(",", ":")) + "\n" for x in logs)
            with open(self._path, "ab") as f:
                f.write(data.encode("utf-8"))

    return OwnerJournalFileBackend


def _quiet():
    from prednas.utils import quiet_optuna

    return quiet_optuna()


def _load_journal(path: Path):
    """``(storage, study)`` of the run's journal, or None when it has no study (or no file).
    Raises RunDirectoryError when it is not a readable journal."""
    import optuna

    if not path.is_file():
        return None
    try:
        with _quiet():
            storage = _journal_storage(path)
            if STUDY_NAME not in [s.study_name for s in storage.get_all_studies()]:
                return None
            return storage, optuna.load_study(study_name=STUDY_NAME, storage=storage)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise RunDirectoryError(f"{path} is not a readable Optuna journal ({exc!r})") from None


def _create_study(storage, config: Mapping[str, Any], seed: int):
    import optuna

    objectives = _objectives(config)
    directions: list[Any] = ["maximize"] + ["minimize"] * (len(objectives) - 1)
    with _quiet():
        st = optuna.create_study(study_name=STUDY_NAME, storage=storage, directions=directions)
        st.set_metric_names(objectives)
        st.set_user_attr("prednas", {
            "format": FORMAT_VERSION, "space": config.get("space"), "mode": config.get("mode"),
            "bench": config.get("bench"), "task": config.get("task"),
            "objectives": objectives, "constraints": dict(config.get("constraints") or {}),
            "seed": seed, "records": EVALUATIONS})
    return st


def _refuse(*args, **kwargs):
    raise RunDirectoryError(
        "the Optuna study of a prednas run is read-only (evaluations.jsonl is the truth); copy "
        "it to change it: optuna.copy_study(from_study_name=..., from_storage=..., to_storage=...)")


@functools.cache
def _read_only_class() -> type:
    from optuna.storages import BaseStorage

    class ReadOnlyStorage(BaseStorage):
        """Every read of the storage it wraps; every write refused."""

        def __init__(self, inner):
            self._inner = inner

        create_new_study = delete_study = set_study_user_attr = set_study_system_attr = _refuse
        create_new_trial = set_trial_param = set_trial_state_values = _refuse
        set_trial_intermediate_value = set_trial_user_attr = set_trial_system_attr = _refuse

        def get_study_id_from_name(self, study_name):
            return self._inner.get_study_id_from_name(study_name)

        def get_study_name_from_id(self, study_id):
            return self._inner.get_study_name_from_id(study_id)

        def get_study_directions(self, study_id):
            return self._inner.get_study_directions(study_id)

        def get_study_user_attrs(self, study_id):
            return self._inner.get_study_user_attrs(study_id)

        def get_study_system_attrs(self, study_id):
            return self._inner.get_study_system_attrs(study_id)

        def get_all_studies(self):
            return self._inner.get_all_studies()

        def get_trial(self, trial_id):
            return self._inner.get_trial(trial_id)

        def get_all_trials(self, study_id, deepcopy=True, states=None):
            return self._inner.get_all_trials(study_id, deepcopy=deepcopy, states=states)

        def get_trial_id_from_study_id_trial_number(self, study_id, trial_number):
            return self._inner.get_trial_id_from_study_id_trial_number(study_id, trial_number)

        def get_n_trials(self, study_id, state=None):
            return self._inner.get_n_trials(study_id, state)

    return ReadOnlyStorage


def _read_only(inner):
    """A storage that answers every read of ``inner`` and refuses every write."""
    return _read_only_class()(inner)


# ------------------------------------------------------------------------------------------------
# writing: trials and views into a writable study
# ------------------------------------------------------------------------------------------------
class _Writer:
    """Adds the records a study lacks, and refreshes its note and figures."""

    def __init__(self, study, space, config: Mapping[str, Any], anchor: float):
        self.study, self.space, self.config = study, space, dict(config)
        self.objectives = _objectives(config)
        self.constraints = dict(config.get("constraints") or {})
        trials = study.get_trials(deepcopy=False)
        self.n = len(trials)
        self.ends: list[_dt.datetime] = [t.datetime_complete for t in trials]
        self.starts: list[_dt.datetime] = [t.datetime_start for t in trials]
        self.anchor = _dt.datetime.fromtimestamp(anchor)  # naive local time, as Optuna's
        attrs = study.user_attrs
        views = attrs.get("views") or {}
        self._views_key = (views.get("records"), views.get("done"))
        self._signals = attrs.get("filter_signals")
        self._views_cost: float | None = None  # the last refresh's seconds
        self._views_total = 0.0  # every refresh's

    def add(self, records: Sequence[Record], live: bool) -> int:
        """Add ``records[n:]`` as trials. With ``live``, the last one completed just now; the
        others are placed one after another from the previous trial by their recorded seconds."""
        new = len(records) - self.n
        if new <= 0:
            return 0
        now = _dt.datetime.now()
        prev = self.ends[-1] if self.ends else self.anchor
        for i in range(self.n, len(records)):
            r = records[i]
            secs = r.get("seconds")
            secs = float(secs) if isinstance(secs, (int, float)) and math.isfinite(secs) else 0.0
            if live and i == len(records) - 1:
                end = max(now, prev)
            else:
                end = prev + _dt.timedelta(seconds=max(0.0, secs))
            start = end - _dt.timedelta(seconds=max(0.0, secs))
            self.study.add_trial(_trial(r, i, self.space, self.objectives, self.constraints,
                                        start, end))
            self.starts.append(start)
            self.ends.append(end)
            prev = end
        self.n = len(records)
        return new

    def stale(self, records: Sequence[Record], state: Mapping[str, Any]) -> bool:
        """Whether the note and figures were made from other records or run state."""
        return (len(records), bool(state.get("done"))) != self._views_key

    def views(self, records: Sequence[Record], state: Mapping[str, Any],
              signals: Mapping[str, Any] | None, *, elapsed: float | None = None) -> bool:
        """Refresh the note and figures if the records changed since they were made. With
        ``elapsed`` (the seconds the writing process has run), only while every refresh so far and
        this one (as costly as the last) stay within 1% of it: a search whose rounds last minutes
        refreshes them each round, one that lasts seconds leaves them to its readers. Returns
        whether it refreshed."""
        signals = _jsonable(signals) if signals else None
        if signals and signals != self._signals:
            self.study.set_user_attr("filter_signals", signals)
            self._signals = signals
        if not self.stale(records, state):
            return False
        cost = _VIEWS_FIRST_COST if self._views_cost is None else self._views_cost
        if elapsed is not None and self._views_total + cost > _VIEWS_SHARE * elapsed:
            return False
        t0 = time.perf_counter()
        key = (len(records), bool(state.get("done")))
        try:
            from optuna_dashboard import save_note, save_plotly_graph_object
        except ImportError:  # the dashboard extra is not installed: the trials are enough
            return False
        from prednas.search._study_views import render

        t_first = min(self.starts) if self.starts else self.anchor
        ends = [(e - t_first).total_seconds() for e in self.ends]
        note, figures = render(records, ends, self.config, state, self._signals)
        save_note(self.study, note)
        for gid, fig in figures.items():
            save_plotly_graph_object(self.study, fig, graph_object_id=gid)
        best = _best(records)
        winner = state.get("winner")  # named by its noise-aware estimate when trainings are noisy
        if winner is not None:
            best = next((i for i, r in enumerate(records)
                         if r.kind == "candidate" and r.arch == winner), best)
        marks = {"best": best, "winner": best if state.get("done") else None, "baseline": next(
            (i for i, r in enumerate(records) if r.kind == "baseline"), None)}
        for k, i in marks.items():
            if i is not None:
                self.study.set_user_attr(k, {"trial": i, "arch": records[i].arch,
                                             "objective": _finite(records[i].objective)})
        self.study.set_user_attr("views", {"records": key[0], "done": key[1]})
        self._views_key = key
        self._views_cost = time.perf_counter() - t0
        self._views_total += self._views_cost
        return True


def _best(records: Sequence[Record]) -> int | None:
    """The record the engine calls best (History.top: objective, then fewer parameters, then
    earlier), by its position."""
    from prednas.search.base import History

    cands = [r for r in records if r.kind == "candidate"]
    top = History(None, cands).top(1)
    if not top:
        return None
    return next(i for i, r in enumerate(records) if r is top[0])


def _finite(x) -> float | None:
    return float(x) if x is not None and math.isfinite(float(x)) else None


def _jsonable(obj):
    return json.loads(json.dumps(obj, default=str))


def _anchor(run: Path, records: Sequence[Record]) -> float:
    """When a run whose trials have no recorded times began, about: the last append to its
    records less their seconds."""
    try:
        last = (run / EVALUATIONS).stat().st_mtime
    except OSError:
        last = time.time()
    total = 0.0
    for r in records:
        s = r.get("seconds")
        if isinstance(s, (int, float)) and math.isfinite(s) and s > 0:
            total += float(s)
    return last - total


# ------------------------------------------------------------------------------------------------
# the journal of a run, written by the process that owns the run
# ------------------------------------------------------------------------------------------------
class _Mirror:
    """The run's journal, opened by the process that holds the run's lock."""

    def __init__(self, run: Path, space, config: Mapping[str, Any], seed: int, *, rebuild: bool):
        self.run, self.space, self.config, self.seed = Path(run), space, config, int(seed)
        self.rebuild = rebuild
        self.path = self.run / JOURNAL
        self.writer: _Writer | None = None
        self.broken = False
        self.t0 = time.perf_counter()

    def _open(self, records: Sequence[Record]) -> None:
        _repair(self.path)
        try:
            loaded = _load_journal(self.path)
            why = (disagreement(loaded[1].get_trials(deepcopy=False), records, self.space,
                                self.config) if loaded else None)
        except RunDirectoryError as exc:
            loaded, why = None, str(exc)
        if why is not None:
            if not self.rebuild:
                raise RunDirectoryError(_disagrees(self.path, why))
            log.warning("%s disagrees with %s (%s); rebuilding it from the records", self.path,
                        EVALUATIONS, why)
            tmp = self.path.with_name(f".{JOURNAL}.rebuild.tmp")
            tmp.unlink(missing_ok=True)
            with _quiet():
                st = _create_study(_journal_storage(tmp, owner=True), self.config, self.seed)
                _Writer(st, self.space, self.config, _anchor(self.run, records)).add(records, False)
            os.replace(tmp, self.path)
            loaded = _load_journal(self.path)
        if loaded is None:
            with _quiet():
                st = _create_study(_journal_storage(self.path, owner=True), self.config,
                                   self.seed)
        else:  # reopened for writing
            import optuna

            with _quiet():
                st = optuna.load_study(study_name=STUDY_NAME,
                                       storage=_journal_storage(self.path, owner=True))
        self.writer = _Writer(st, self.space, self.config, _anchor(self.run, records))

    def sync(self, records: Sequence[Record], *, live: bool) -> int:
        if self.writer is None:
            self._open(records)
        assert self.writer is not None
        return self.writer.add(records, live)

    def views(self, records, state, signals, *, budget: bool = True) -> bool:
        """Refresh the note and figures if due; ``budget``: within 1% of this process's time."""
        if self.writer is None:
            self._open(records)
        assert self.writer is not None
        return self.writer.views(records, state, signals or self.writer._signals,
                                 elapsed=time.perf_counter() - self.t0 if budget else None)


def _repair(path: Path) -> None:
    """Cut a journal's unfinished last line (a kill mid-append) and remove its stale append lock;
    only the process that holds the run's lock calls this, so no one else is appending."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        size = 0
    if size:
        with open(path, "r+b") as f:
            f.seek(max(0, size - 65536))
            tail = f.read()
            if not tail.endswith(b"\n"):
                cut = tail.rfind(b"\n")
                keep = size - len(tail) + cut + 1 if cut >= 0 else (
                    0 if size <= 65536 else _last_newline(f, size))
                log.info("cutting an unfinished last line off %s (a kill mid-append)", path)
                f.truncate(keep)
    stale = Path(f"{path}.lock")
    if stale.is_symlink() or stale.exists():
        stale.unlink()


def _last_newline(f, size: int) -> int:
    pos = size
    while pos > 0:
        start = max(0, pos - 65536)
        f.seek(start)
        chunk = f.read(pos - start)
        cut = chunk.rfind(b"\n")
        if cut >= 0:
            return start + cut + 1
        pos = start
    return 0


def _disagrees(path: Path, why: str) -> str:
    return (f"{path} disagrees with {EVALUATIONS} ({why}); the records are the truth: delete "
            f"{path.name} and it is rebuilt from them")


#: the mirror of each open run directory (the engine's RunDir objects)
_MIRRORS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def mirror(search, rd: RunDir, records: Sequence[Record],
           state: Mapping[str, Any] | None = None) -> None:
    """The engine's hook: after each record (``state`` None) add it to the run's study; after each
    round and when the search ends (``state``) refresh the note and figures (and the winner)
    when due. Never raises: a study that could not be written is rebuilt from the records later
    (a warning says so once)."""
    m = _MIRRORS.get(rd)
    try:
        if m is None:
            m = _MIRRORS[rd] = _Mirror(rd.path, search.space, search.config(), search.seed,
                                       rebuild=True)
        if m.broken:
            return
        m.sync(records, live=True)
        if state is not None:
            m.views(records, state, _signals(search))
    except Exception as exc:  # noqa: BLE001 - the study mirrors the records; it must not stop a search
        if m is not None:
            m.broken = True
        log.warning("the run's Optuna study (%s) is not updated any more (%s: %s); "
                    "prednas.study(run) rebuilds it from %s", JOURNAL, type(exc).__name__, exc,
                    EVALUATIONS)
        log.debug("study mirror failure", exc_info=True)


def _signals(search) -> dict | None:
    """What the search's filter ranked with (for the note); None if it cannot say."""
    try:
        return dict(search.filter.signals())
    except Exception:  # noqa: BLE001 - a filter's description must not stop the mirror
        log.debug("the filter's signals could not be read", exc_info=True)
        return None


# ------------------------------------------------------------------------------------------------
# reading: prednas.study and the dashboard
# ------------------------------------------------------------------------------------------------
def _restore_space(config: Mapping[str, Any]):
    """The run's space, or None when it cannot be rebuilt by name (made from a model)."""
    import spaces

    try:
        return spaces.restore(config["space"], config.get("space_config"), error=RunDirectoryError)
    except PredNASError:
        return None


def _records(raw: Sequence[Mapping[str, Any]], run: Path) -> list[Record]:
    try:
        return [Record.from_json(r) for r in raw]
    except (TypeError, ValueError) as exc:
        raise RunDirectoryError(f"{run}: a record is corrupted ({exc})") from None


def _try_lock(run: Path):
    """The run's lock if no other process holds it and the directory is writable, else None."""
    from filelock import FileLock, Timeout

    if not os.access(run, os.W_OK) or not os.access(run / EVALUATIONS, os.W_OK):
        return None
    lock = FileLock(str(run / LOCK), timeout=0)
    try:
        lock.acquire()
    except (Timeout, OSError):
        return None
    return lock


class StudyView:
    """A run's study for reading: its journal (completed first from the records, and its note and
    figures refreshed, when no other process owns the run), or, for a run owned by a process that
    keeps no journal or a directory this process may not write, a study built in memory from the
    records. :meth:`refresh` keeps either current.

    The constructor only reads and checks: it raises :class:`RunDirectoryError` for a directory
    that is not a search run or a journal that disagrees with the records. :meth:`open` and
    :meth:`refresh` write the journal only under the run's lock, so never while another process
    owns the run.
    """

    def __init__(self, run_dir: str | os.PathLike):
        self.path = Path(run_dir)
        if (self.path / "pipeline.json").is_file() and not (self.path / "state.json").exists():
            raise RunDirectoryError(f"{self.path} is a pipeline run; its search run is "
                                    f"{self.path / 'search'}")
        _, state, _ = RunDir.open(self.path, lock=False)
        self.config: dict[str, Any] = state["config"]
        self.seed = int(state["seed"])
        self.space = _restore_space(self.config)
        self._loaded = loaded = _load_journal(self.path / JOURNAL)
        if loaded is not None:  # records read after the journal: never behind it (a journal
            trials = loaded[1].get_trials(deepcopy=False)  # storage reads its file as it is asked)
            _, _, raw = RunDir.open(self.path, lock=False)
            why = disagreement(trials, _records(raw, self.path), self.space, self.config)
            if why is not None:
                raise RunDirectoryError(_disagrees(self.path / JOURNAL, why))
        self.source: str | None = None  # "journal" or "records", once open
        self.study: Any = None  # an optuna.Study, once open
        self.storage: Any = None  # its read-only storage
        self._writer: _Writer | None = None
        self._seen: tuple | None = None

    def open(self):
        """Make :attr:`study` (an ``optuna.Study`` on a read-only storage) and return it."""
        import optuna

        self._write_if_free()
        # a journal storage rereads its file as it grows: the one read to check it serves
        loaded = self._loaded or _load_journal(self.path / JOURNAL)
        if loaded is not None:
            self.source, inner = "journal", loaded[0]
        else:
            self.source, inner = "records", optuna.storages.InMemoryStorage()
            with _quiet():
                st = _create_study(inner, self.config, self.seed)
            _, _, raw = RunDir.open(self.path, lock=False)
            self._writer = _Writer(st, self.space, self.config,
                                   _anchor(self.path, _records(raw, self.path)))
            self.refresh()
        self.storage = _read_only(inner)
        with _quiet():
            self.study = optuna.load_study(study_name=STUDY_NAME, storage=self.storage)
        return self.study

    def _write_if_free(self) -> bool:
        """Complete the journal and refresh its views if no process owns the run."""
        lock = _try_lock(self.path)
        if lock is None:
            return False
        try:
            _, state, raw = RunDir.open(self.path, lock=False)
            records = _records(raw, self.path)
            m = _Mirror(self.path, self.space, self.config, self.seed, rebuild=False)
            m.sync(records, live=False)
            m.views(records, state, None, budget=False)
        except OSError as exc:  # e.g. a journal this user may not write: read it as it is
            log.warning("cannot update %s (%s); reading the run as it is", self.path / JOURNAL,
                        exc)
            return False
        finally:
            lock.release()
        return True

    def refresh(self) -> int:
        """Catch up with the run if its records or state changed: a study in memory gets the new
        records (and its views); a journal, which its owner keeps current, gets its views
        refreshed once no process owns the run. Returns the number of trials added here."""
        seen = _stamp(self.path)
        if seen == self._seen:
            return 0
        if self._writer is None:
            if self._write_if_free():
                self._seen = seen
            return 0
        _, state, raw = RunDir.open(self.path, lock=False)
        records = _records(raw, self.path)
        n = self._writer.add(records, live=False)
        self._writer.views(records, state, None)
        self._seen = seen
        return n


def _stamp(run: Path) -> tuple:
    """What changes when a run's records or state do."""
    out: list[tuple[int, int] | None] = []
    for name in (EVALUATIONS, "state.json"):
        try:
            st = (run / name).stat()
            out.append((st.st_mtime_ns, st.st_size))
        except OSError:
            out.append(None)
    return tuple(out)


def study(run_dir: str | os.PathLike):
    """The search run in ``run_dir`` as an :class:`optuna.Study` (read-only).

    One trial per line of ``evaluations.jsonl`` (user attribute ``record``), in the run's journal
    ``RUN/study.log``, completed from the records first when no other process owns the run (a
    running search keeps it current itself; a run owned by a process without a journal is read
    into memory). Use ``study.trials_dataframe()``, ``optuna.visualization``, or
    ``prednas dashboard RUN``.

    Raises:
        RunDirectoryError: ``run_dir`` is not a search run, or its journal disagrees with its
            records (edited by hand: delete ``study.log`` and it is rebuilt); nothing in the
            run is changed then.
    """
    return StudyView(run_dir).open()
