"""Export the exact weights a search evaluated — never the last trial, never a retrained copy.

>>> path = prednas.export.export("runs/r1", "exported/")              # the run's best candidate
>>> path = prednas.export.export("runs/r1", "e2/", arch="conv5:32|gru:64", format="onnx")
>>> model = prednas.load_model("exported/")                              # eval mode, on CPU
>>> logits = model(torch.load("exported/example_input.pt", weights_only=True))

An export directory holds the model file (``model.pt`` for TorchScript and state dicts,
``model.onnx`` for ONNX), ``example_input.pt`` (a batch of the task's test inputs),
``model_card.md`` and ``export.json`` (what :func:`load_model` needs: format, space, its
configuration, architecture, classes, input shape). ``export.json`` is written last, so a directory
that has it is complete. Before it is written, the exported file is loaded back and its outputs are
compared with the evaluated model's on the example batch; the difference is recorded in the card.

A single network outputs logits. An ensemble (``ensemble=True``) is exported as one module whose
output is the mixture of its members' softmax probabilities with the run's fitted weights.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import difflib
import hashlib
import inspect
import json
import logging
import math
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from prednas.errors import (
    IncompatibleArtifactError,
    InvalidParameterError,
    PredNASError,
    RunDirectoryError,
    UnknownNameError,
    check_param,
    choices_message,
)
from prednas.params import Interval, Options, SequenceOf, validate_params
from prednas.utils import (
    DEFAULT_LATENCY_BATCH,
    atomic_path,
    atomic_write_json,
    atomic_write_text,
    resolve_device,
)
from prednas.utils import fmt_number as _num

__all__ = ["export", "load_model", "FORMATS", "FORMAT_VERSION"]

log = logging.getLogger(__name__)

FORMATS: tuple[str, ...] = ("torchscript", "state_dict", "onnx")
FORMAT_VERSION = 1
_KIND = "prednas-export"
META = "export.json"
EXAMPLE = "example_input.pt"
CARD = "model_card.md"
_MODEL_FILE = {"torchscript": "model.pt", "state_dict": "model.pt", "onnx": "model.onnx"}
_OWN_FILES = (META, EXAMPLE, CARD, "model.pt", "model.onnx")
_ONNX_INSTALL = 'pip install "prednas[onnx]"'
_TOLERANCE = 1e-4  # an export that differs more from the evaluated model is refused
#: files that mark a directory as a run (a search's or a pipeline's): never an export's --out
_RUN_FILES = ("state.json", "evaluations.jsonl", "pipeline.json", "stages.jsonl")

# What an export.json may hold: every field is checked (type, range, plausible size) before any
# file it names is read or any network is built. Bounds are far above any real export.
_MAX_META_BYTES = 1_000_000
_MAX_CLASSES = 100_000
_MAX_MEMBERS = 256
_MAX_INPUT_VALUES = 100_000_000  # values of one example
_MAX_ARCH_CHARS = 10_000
_META_CONSTRAINTS: dict[str, list] = {
    "format": [Options(*FORMATS)],
    "file": [str],
    "model": [Options("single", "ensemble")],
    "arch": [None, str],
    "archs": [SequenceOf(str, min_len=1)],
    "num_classes": [Interval(int, 1, _MAX_CLASSES)],
    "input_shape": [SequenceOf(Interval(int, 1, _MAX_INPUT_VALUES), min_len=1)],
    "output": [Options("logits", "probabilities")],
    "ensemble_weights": [SequenceOf(Interval(float, 0, 1), min_len=1)],
    "build_kwargs": [None, "dict"],
    "space": [str],
    "space_config": [None, "dict"],
    "method": [str],
    "cpu_only": ["boolean"],
    "max_abs_diff": [Interval(float, 0, None)],
    "latency_ms": ["dict"],
    "prednas_version": [str],
    "torch_version": [str],
    "run_dir": [str],
    "exported_at": [str],
}
_META_REQUIRED = ("format", "file", "model", "archs", "num_classes", "input_shape", "space")


# --------------------------------------------------------------------------------------------
# the run directory: the only code here that knows its layout (the search engine is evolving)
# --------------------------------------------------------------------------------------------
def _load_run(run_dir: Path) -> tuple[dict, list[dict]]:
    """The run's configuration (plus its ``ensemble`` summary) and every evaluation record."""
    from prednas.search.rundir import RunDir

    _, state, records = RunDir.open(run_dir, lock=False)  # read only: a running search may own it
    config = dict(state["config"])
    config["ensemble_summary"] = state.get("ensemble")
    return config, records


def _weights_of(run_dir: Path, record: dict) -> Path:
    """Where the evaluation's trained state dict is: ``weights/<sha1(arch)[:16]>.pt`` for a
    candidate; replicas and the baseline name theirs in ``record["weights"]`` (looked up in this
    run's ``weights/``, so a moved run directory still works)."""
    if record.get("weights"):
        return run_dir / "weights" / Path(str(record["weights"])).name
    return run_dir / "weights" / f"{hashlib.sha1(record['arch'].encode()).hexdigest()[:16]}.pt"


def _ensemble_path(run_dir: Path) -> Path:
    return run_dir / "ensemble.pt"


def _pareto_of(run_dir: Path) -> list[dict]:
    """Members of ``pareto.jsonl`` (one JSON object per line with ``arch`` and the objectives)."""
    path = run_dir / "pareto.jsonl"
    if not path.is_file():
        raise RunDirectoryError(
            f"{run_dir} has no pareto.jsonl (only a multi-objective search writes one); export "
            "the best candidate (no --pareto) or a given --arch instead")
    members = []
    for i, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            raise RunDirectoryError(f"{path} is corrupted at line {i}: {exc}") from None
        if not isinstance(rec, dict) or not isinstance(rec.get("arch"), str):
            raise RunDirectoryError(f"{path} line {i} has no 'arch' string")
        members.append(rec)
    return members


# --------------------------------------------------------------------------------------------
# public API
# --------------------------------------------------------------------------------------------
def export(run_dir: str | os.PathLike, out_dir: str | os.PathLike, *, arch: str | None = None,
           pareto: int | None = None, ensemble: bool = False, format: str = "torchscript",
           example_batch: int = 8, latency_batch: int | None = None, force: bool = False,
           space=None) -> Path:
    """Export a model a search run trained, with exactly the weights it was evaluated with.

    Args:
        run_dir: a training-mode search run directory.
        out_dir: the export directory (created; must be missing or empty unless ``force``).
        arch: export this architecture, which must have been evaluated successfully in the run
            (default: the best successful candidate, as in ``best.json``).
        pareto: export the ``pareto``-th member (1 = first line) of the run's ``pareto.jsonl``.
        ensemble: export the run's ``ensemble.pt`` as one module returning the weighted mixture
            of its members' softmax probabilities.
        format: ``"torchscript"``, ``"state_dict"`` or ``"onnx"`` (needs ``prednas[onnx]``).
        example_batch: rows of the task's test split saved as ``example_input.pt``.
        latency_batch: the model card gives the CPU latency at batch 1 and at this batch
            (``None``: the batch the run's search measured, ``latency_batch`` of its evaluator,
            else 64).
        force: write into a non-empty ``out_dir`` (replacing a previous export's files there).
        space: the run's space object, for a space that is not registered by name (one made by
            :func:`spaces.from_model`); it must be the space the run recorded.

    Returns:
        The export directory; load it with :func:`load_model` (a ``state_dict`` export of such a
        space with ``load_model(path, space=space)``).
    """
    if format not in FORMATS:
        raise UnknownNameError("export format", format, FORMATS)
    check_param("export", "example_batch", example_batch, low=1)
    if latency_batch is not None:
        check_param("export", "latency_batch", latency_batch, low=1)
    chosen = [n for n, v in (("arch", arch is not None), ("pareto", pareto is not None),
                             ("ensemble", bool(ensemble))) if v]
    if len(chosen) > 1:
        raise InvalidParameterError(
            f"export takes at most one of arch=, pareto= and ensemble=; got {', '.join(chosen)}")
    if format == "onnx":
        _import_onnx(export=True)
    run_dir, out = Path(run_dir), Path(out_dir)
    _check_out(out, force, run_dir)
    config, records = _load_run(run_dir)
    if config.get("mode") == "oracle":
        raise RunDirectoryError(
            f"{run_dir} is an oracle-mode run: its evaluations are lookups in the benchmark "
            f"{config.get('bench')!r}, which has no trained weights to export; export a "
            "training-mode run (prednas search --task ...)")
    space = _space_of(config, space)
    ok = [r for r in records if r.get("kind") in ("candidate", "baseline") and r["status"] == "ok"]
    if not any(r.get("kind") == "candidate" for r in ok):
        statuses = sorted({r["status"] for r in records if r.get("kind") == "candidate"})
        raise RunDirectoryError(
            f"{run_dir} has no successful evaluation to export ("
            f"{sum(r.get('kind') == 'candidate' for r in records)} candidates, statuses: "
            f"{', '.join(statuses) or 'none'})")
    task, task_error = _task_of(config)

    if ensemble:
        model, meta, member_recs, how = _ensemble_source(run_dir, config, records, space)
    else:
        if pareto is not None:
            members = _pareto_of(run_dir)
            if not members:
                bounds = ", ".join(f"{k} <= {_num(v)}" for k, v in
                                   (config.get("constraints") or {}).items())
                raise RunDirectoryError(
                    f"{run_dir / 'pareto.jsonl'} is empty: no candidate "
                    + (f"met the run's constraints ({bounds})" if bounds else
                       "was evaluated successfully") + "; there is no Pareto member to export")
            if (not isinstance(pareto, (int, np.integer)) or isinstance(pareto, bool)
                    or not 1 <= pareto <= len(members)):
                raise InvalidParameterError(
                    f"The 'pareto' parameter of export must be an int in [1, {len(members)}] (the "
                    f"members of {run_dir / 'pareto.jsonl'}). Got {pareto!r} instead.")
            rec = _find(space, ok, members[pareto - 1]["arch"], run_dir, records)
            how = f"member {pareto} of {len(members)} of the run's Pareto front"
        elif arch is not None:
            rec = _find(space, ok, arch, run_dir, records)
            how = f"architecture given (evaluation {rec.get('kind')} #{rec.get('query')})"
        else:
            rec = _best(ok)
            how = f"best successful candidate (objective {_num(rec.get('objective'))})"
        num_classes, input_shape = _shapes(config, task, task_error)
        model = _evaluated_model(run_dir, space, rec, num_classes, input_shape)
        meta = {"model": "single", "arch": rec["arch"], "archs": [rec["arch"]],
                "num_classes": num_classes, "input_shape": list(input_shape), "output": "logits"}
        member_recs = [rec]
    meta.update({"kind": _KIND, "format_version": FORMAT_VERSION, "format": format,
                 "file": _MODEL_FILE[format], "space": space.name,
                 "space_config": _space_config(space)})
    example = _example_input(task, meta, example_batch)
    if latency_batch is None:
        ev = ((config.get("strategies") or {}).get("evaluator") or {}).get("params") or {}
        latency_batch = int(ev.get("latency_batch") or DEFAULT_LATENCY_BATCH)
    _write(out, force, model, meta, example, member_recs, config, run_dir, how, latency_batch)
    return out


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu",
               space=None) -> nn.Module:
    """Load an export written by :func:`export` as a callable module in eval mode.

    Args:
        path: the export directory.
        device: where the module runs (``"auto"`` picks CUDA when present). ONNX exports run
            on CPU through onnxruntime (device ``"cpu"``) and return CPU tensors; a TorchScript
            trace that creates tensors inside ``forward`` (LSTM/GRU state) runs on CPU only.
        space: for a ``state_dict`` export of a space not registered by name (made by
            :func:`spaces.from_model`), that space object (TorchScript and ONNX need none).

    Returns:
        A module mapping ``(B, *input_shape)`` float tensors to logits (an ensemble: to class
        probabilities).
    """
    path = Path(path)
    from prednas.utils import read_versioned_json

    meta_path = _inside(path, META)
    if meta_path.is_file() and meta_path.stat().st_size > _MAX_META_BYTES:
        raise IncompatibleArtifactError(
            f"{meta_path} holds {meta_path.stat().st_size:,} bytes; an export description is "
            f"a few hundred (at most {_MAX_META_BYTES:,})")
    meta = read_versioned_json(meta_path, kind=_KIND, version=FORMAT_VERSION,
                               error=IncompatibleArtifactError, what="prednas export",
                               version_key="format_version")
    _check_meta(path, meta)
    return _load(path, meta, device, space)


# --------------------------------------------------------------------------------------------
# choosing the model
# --------------------------------------------------------------------------------------------
def _best(ok: list[dict]) -> dict:
    """The best successful candidate: highest objective, then fewer parameters, then earlier
    (the search's own order, the one ``best.json`` holds)."""
    cands = [r for r in ok if r.get("kind") == "candidate"]
    order = sorted(range(len(cands)), key=lambda i: (-float(cands[i]["objective"]),
                                                      cands[i].get("params") or 0, i))
    return cands[order[0]]


def _find(space, ok: list[dict], arch: str, run_dir: Path, records: list[dict] | None = None) -> dict:
    """The successful evaluation of ``arch`` (a candidate before the baseline)."""
    key = str(space.canonical(space.parse(arch) if isinstance(arch, str) else space.coerce(arch)))
    hits = [r for r in ok if r["canonical"] == key]
    if hits:
        return min(hits, key=lambda r: r.get("kind") != "candidate")
    failed = [r for r in records or [] if r.get("canonical") == key and r["status"] != "ok"]
    if failed:
        raise InvalidParameterError(
            f"Architecture {arch!r} was evaluated in {run_dir} but did not train successfully "
            f"({failed[0]['status']}: {failed[0].get('reason') or 'no reason recorded'}); it has "
            "no weights to export")
    evaluated = list(dict.fromkeys(r["arch"] for r in ok))
    few = difflib.get_close_matches(str(arch), evaluated, n=5, cutoff=0.0)
    near = difflib.get_close_matches(str(arch), evaluated, n=1, cutoff=0.5)
    hint = f" (did you mean {near[0]!r}?)" if near else ""
    raise InvalidParameterError(
        f"Architecture {arch!r} was not evaluated successfully in {run_dir}{hint}; evaluated, "
        f"closest first ({len(few)} of {len(evaluated)}): {', '.join(few)}")


def _evaluated_model(run_dir: Path, space, rec: dict, num_classes: int,
                     input_shape: Sequence[int]) -> nn.Module:
    path = _weights_of(run_dir, rec)
    if not path.is_file():
        raise RunDirectoryError(
            f"The weights of {rec['arch']!r} ({path}) are missing from {run_dir}; they cannot "
            "be exported (the run may have been copied without its weights/ folder)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - anything unreadable is not a state dict of ours
        raise IncompatibleArtifactError(f"{path} is not a readable state dict: {exc}") from None
    model = space.build(space.parse(rec["arch"]), num_classes, tuple(input_shape))
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise IncompatibleArtifactError(
            f"{path} does not fit {rec['arch']!r} built for {num_classes} classes and input "
            f"shape {tuple(input_shape)}: {str(exc).splitlines()[0]}") from None
    return model.eval()


class _ProbabilityMixture(nn.Module):
    """Members' softmax probabilities averaged with fixed weights (an ensemble as one module)."""

    def __init__(self, members: Sequence[nn.Module], weights: Sequence[float]):
        super().__init__()
        self.members = nn.ModuleList(members)
        self.register_buffer("weights", torch.as_tensor(list(weights), dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(())
        for i, member in enumerate(self.members):
            out = out + self.weights[i] * torch.softmax(member(x), dim=1)
        return out


def _ensemble_source(run_dir: Path, config: dict, records: list[dict], space):
    from prednas import ensemble as _ensemble

    path = _ensemble_path(run_dir)
    if not path.is_file():
        raise RunDirectoryError(
            f"{run_dir} has no ensemble.pt (the search ran without an ensembler, or it did not "
            "finish); export a single model instead (no --ensemble)")
    ens = _ensemble.load(path, space=space)
    meta_in = ens.meta
    if meta_in.get("space") != space.name:
        raise IncompatibleArtifactError(
            f"{path} is over space {meta_in.get('space')!r}, the run over {space.name!r}")
    weights = [float(w) for w in ens.weights]
    model = _ProbabilityMixture(list(ens.members), weights).eval()
    seeds = list(meta_in.get("seeds") or [None] * len(meta_in["archs"]))
    member_recs = []
    for a, s in zip(meta_in["archs"], seeds):
        rec = next((r for r in records if r.get("kind") in ("replica", "candidate")
                    and r["arch"] == a
                    and (s is None or r.get("seed") == s)), None)
        member_recs.append(rec or {"arch": a, "seed": s})
    meta = {"model": "ensemble", "arch": None, "archs": list(meta_in["archs"]),
            "ensemble_weights": weights, "num_classes": int(meta_in["num_classes"]),
            "input_shape": [int(d) for d in meta_in["input_shape"]], "output": "probabilities",
            "build_kwargs": meta_in.get("build_kwargs") or {}}
    how = f"the run's ensemble.pt ({len(weights)} members, weights fitted on validation data)"
    return model, meta, member_recs, how


# --------------------------------------------------------------------------------------------
# spaces, tasks, example inputs
# --------------------------------------------------------------------------------------------
def _space_of(config: dict, given=None):
    """The run's space: rebuilt by name, or ``given`` (checked against what the run recorded)."""
    import spaces

    if given is not None:
        if given.name != config["space"] or given.config() != (config.get("space_config") or {}):
            raise IncompatibleArtifactError(
                f"the space given, {given.name!r}, is not the run's space {config['space']!r}")
        return given
    if config["space"] not in spaces.list_spaces():
        raise IncompatibleArtifactError(
            f"the run's space {config['space']!r} is not registered by name (a space made by "
            "spaces.from_model, say); pass it: export(..., space=space)")
    return spaces.get(config["space"], **(config.get("space_config") or {}))


def _space_config(space) -> dict[str, Any]:
    """What rebuilds the space as it was (``spaces.get(name, **config)``)."""
    return space.config()


def _task_of(config: dict):
    """The run's task loaded from its name and options, with the error when it cannot load."""
    from prednas import tasks

    try:
        return tasks.get(config["task"], **(config.get("task_options") or {})), None
    except (PredNASError, KeyError, TypeError) as exc:
        log.warning("the run's task %r does not load here: %s", config.get("task"), exc)
        return None, exc


def _shapes(config: dict, task, task_error) -> tuple[int, tuple[int, ...]]:
    if config.get("num_classes") and config.get("input_shape"):
        return int(config["num_classes"]), tuple(int(d) for d in config["input_shape"])
    if task is None:
        raise RunDirectoryError(
            f"cannot tell the model's classes and input shape: the run's task "
            f"{config.get('task')!r} does not load here ({task_error})")
    return int(task.num_classes), tuple(int(d) for d in task.input_shape)


def _example_input(task, meta: dict, n: int) -> torch.Tensor:
    """The first ``n`` test inputs of the run's task (random normal ones without the task)."""
    if task is not None and tuple(task.x_test.shape[1:]) == tuple(meta["input_shape"]):
        return task.x_test[:n].detach().to(torch.float32).contiguous().clone()
    log.warning("example_input.pt holds random inputs: the run's task data is unavailable")
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, *meta["input_shape"], generator=g)


# --------------------------------------------------------------------------------------------
# writing
# --------------------------------------------------------------------------------------------
def _check_out(out: Path, force: bool, run_dir: Path | None = None) -> None:
    if out.is_dir() and ((run_dir is not None and run_dir.is_dir() and out.samefile(run_dir))
                         or any((out / f).exists() for f in _RUN_FILES)):
        raise InvalidParameterError(
            f"Output {out} is a run directory; an export goes to a directory of its own (e.g. "
            f"{out / 'export'}), even with --force")
    if out.exists() and not out.is_dir():
        raise InvalidParameterError(f"Output {out} exists and is not a directory; choose another --out")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise InvalidParameterError(
            f"Output directory {out} exists and is not empty; choose another --out or pass --force")


def _write(out: Path, force: bool, model: nn.Module, meta: dict, example: torch.Tensor,
           member_recs: list[dict], config: dict, run_dir: Path, how: str,
           latency_batch: int) -> None:
    fmt = meta["format"]
    model = model.cpu().eval()
    out.mkdir(parents=True, exist_ok=True)
    if force:  # a previous export here is incomplete from now on, and its other files go
        for name in _OWN_FILES:
            with contextlib.suppress(FileNotFoundError):
                (out / name).unlink()
    written = []
    try:
        with torch.no_grad():
            reference = model(example)
        if fmt == "torchscript":
            meta["method"], meta["cpu_only"] = _save_torchscript(model, example, out / meta["file"])
        elif fmt == "onnx":
            meta["method"] = "torch.onnx.export (TorchScript-based exporter, opset 17)"
            _save_onnx(model, example, out / meta["file"])
        else:
            meta["method"] = "state_dict"
            with atomic_path(out / meta["file"]) as tmp:
                torch.save(model.state_dict(), tmp)
        written.append(out / meta["file"])
        with atomic_path(out / EXAMPLE) as tmp:
            torch.save(example, tmp)
        written.append(out / EXAMPLE)
        loaded = _load(out, meta, "cpu")
        with torch.no_grad():
            got = loaded(example)
        diff = float((got - reference).abs().max())
        scale = float(reference.abs().max())
        if not math.isfinite(diff) or diff > _TOLERANCE * max(1.0, scale):
            raise IncompatibleArtifactError(
                f"the {fmt} export does not reproduce the evaluated model (max abs difference "
                f"{diff:.3g} on the example batch); try another --format")
        meta["max_abs_diff"] = diff
        timed = OnnxModule(out / meta["file"], num_threads=1) if fmt == "onnx" else loaded
        latency = _latency(timed, example[:1], latency_batch)
        meta["latency_ms"] = {"1": latency[0]["ms"], str(latency_batch): latency[1]["ms"],
                              "device": latency[0]["cpu"]}
        card = _card(model, meta, member_recs, config, run_dir, how, latency)
        atomic_write_text(out / CARD, card)
        written.append(out / CARD)
        meta.update({"prednas_version": _version(), "torch_version": torch.__version__,
                     "run_dir": str(run_dir.resolve()),
                     "exported_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")})
        atomic_write_json(out / META, meta)
    except BaseException:
        for p in written:
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
        raise
    log.info("exported %s to %s", meta.get("arch") or "the ensemble", out)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:200]


def _max_diff(a: nn.Module, b, x: torch.Tensor) -> float:
    with torch.no_grad():
        return float((a(x) - b(x)).abs().max())


def _save_torchscript(model: nn.Module, example: torch.Tensor, path: Path) -> tuple[str, bool]:
    """``torch.jit.script`` when the model compiles (control flow kept), else ``torch.jit.trace``
    checked against the eager model at the example batch size and at batch size 1.

    Returns the method and whether the module is pinned to the CPU (a trace records the device of
    tensors created inside ``forward``, e.g. an LSTM's initial state, as a constant)."""
    errors = []
    for method in ("script", "trace"):
        try:
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                if method == "script":
                    sm = torch.jit.script(model)
                else:
                    sm = torch.jit.trace(model, example, check_trace=False)
            sm.eval()
            diff = max(_max_diff(model, sm, example), _max_diff(model, sm, example[:1]))
            if not diff <= _TOLERANCE:
                raise IncompatibleArtifactError(f"outputs differ by {diff:.3g}")
        except Exception as exc:  # noqa: BLE001 - each method fails in its own ways; try the next
            log.info("torch.jit.%s failed: %s", method, _first_line(exc))
            errors.append(f"{method}: {_first_line(exc)}")
            continue
        with atomic_path(path) as tmp, _quiet_jit():
            torch.jit.save(sm, str(tmp))
        return f"torch.jit.{method}", _pins_device(sm)
    raise IncompatibleArtifactError(
        f"TorchScript cannot represent this model ({'; '.join(errors)}); use --format state_dict")


def _pins_device(sm) -> bool:
    """Whether a TorchScript graph holds a constant device (it then runs only on that device)."""
    return any(n.kind() == "prim::Constant" and n.output().type().kind() == "DeviceObjType"
               for n in sm.inlined_graph.nodes())


@contextlib.contextmanager
def _quiet_jit():
    """The user chose TorchScript: no deprecation notice on each save and load of it."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", r"`torch\.jit\.\w+` is deprecated", DeprecationWarning)
        yield


def _import_onnx(export: bool):
    try:
        import onnxruntime as ort
        if export:
            import onnx  # noqa: F401 - torch.onnx.export needs it
    except ImportError as exc:
        what = exc.name or "onnx"
        if export:
            raise InvalidParameterError(
                f"format 'onnx' needs the optional extra ({what} is not installed): "
                f"{_ONNX_INSTALL}") from None
        raise IncompatibleArtifactError(
            f"loading an ONNX export needs onnxruntime ({what} is not installed): "
            f"{_ONNX_INSTALL}") from None
    return ort


def _save_onnx(model: nn.Module, example: torch.Tensor, path: Path) -> None:
    kwargs: dict[str, Any] = {"input_names": ["input"], "output_names": ["output"],
                              "dynamic_axes": {"input": {0: "batch"}, "output": {0: "batch"}},
                              "opset_version": 17}
    if "dynamo" in inspect.signature(torch.onnx.export).parameters:
        kwargs["dynamo"] = False  # the TorchScript-based exporter: no onnxscript needed
    # Grad mode on: PyTorch's fused inference kernels (e.g. the transformer encoder fast path)
    # have no ONNX form; with gradients enabled the plain ops are traced instead.
    try:
        with atomic_path(path) as tmp, torch.enable_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(model, (example,), str(tmp), **kwargs)
    except PredNASError:
        raise
    except Exception as exc:  # noqa: BLE001 - the exporter's errors are many and long
        raise IncompatibleArtifactError(
            f"ONNX export failed ({_first_line(exc)}); use --format torchscript or state_dict"
        ) from None


# --------------------------------------------------------------------------------------------
# loading
# --------------------------------------------------------------------------------------------
class OnnxModule(nn.Module):
    """An ONNX export run by onnxruntime on CPU, called like the original ``nn.Module``."""

    def __init__(self, path: str | os.PathLike, num_threads: int | None = None):
        super().__init__()
        ort = _import_onnx(export=False)
        self.path = str(path)
        options = ort.SessionOptions()
        if num_threads is not None:
            options.intra_op_num_threads = options.inter_op_num_threads = int(num_threads)
        try:
            self._session = ort.InferenceSession(self.path, options,
                                                 providers=["CPUExecutionProvider"])
            inputs = self._session.get_inputs()
        except Exception as exc:  # noqa: BLE001 - onnxruntime's errors (InvalidProtobuf, ...)
            raise IncompatibleArtifactError(
                f"{self.path} is not a readable ONNX model: {_first_line(exc)}") from None
        if len(inputs) != 1:
            raise IncompatibleArtifactError(
                f"{self.path} takes {len(inputs)} inputs; a prednas export takes one")
        self.input_dims = list(inputs[0].shape)
        self._input = inputs[0].name
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        arr = np.ascontiguousarray(torch.as_tensor(x).detach().cpu().numpy(), dtype=np.float32)
        return torch.from_numpy(self._session.run(None, {self._input: arr})[0])

    def extra_repr(self) -> str:
        return f"path={self.path!r}"


def _load(path: Path, meta: dict, device, space=None) -> nn.Module:
    fmt = meta.get("format")
    if fmt not in FORMATS:
        raise IncompatibleArtifactError(
            choices_message(f"{path} has an unknown export format {fmt!r}", fmt, FORMATS))
    file = _inside(path, str(meta.get("file", "")))
    if not file.is_file():
        raise IncompatibleArtifactError(f"{path} is incomplete: {file.name} is missing")
    if fmt == "onnx":
        dev = resolve_device(device)
        if dev.type != "cpu":
            raise InvalidParameterError(
                f"ONNX exports run on CPU through onnxruntime; got device {device!r}; valid "
                "choices: cpu")
        module = OnnxModule(file)
        dims, shape = module.input_dims[1:], list(meta["input_shape"])
        if len(dims) != len(shape) or any(isinstance(d, int) and d != s
                                          for d, s in zip(dims, shape)):
            raise IncompatibleArtifactError(
                f"{file} takes inputs of shape {module.input_dims}; {META} says (batch, "
                f"{', '.join(map(str, shape))})")
        return module
    dev = resolve_device(device)
    if fmt == "torchscript":
        if meta.get("cpu_only") and dev.type != "cpu":
            raise IncompatibleArtifactError(
                f"{path} is a TorchScript trace that creates tensors on the CPU inside forward "
                f"(e.g. an LSTM's initial state), so it cannot run on {device!r}; load it with "
                "device='cpu', or export with --format state_dict to run it on another device")
        try:
            with _quiet_jit():
                model = torch.jit.load(str(file), map_location=dev)
        except Exception as exc:  # noqa: BLE001 - anything unreadable is not our artifact
            raise IncompatibleArtifactError(f"{file} is not a readable TorchScript file: "
                                            f"{_first_line(exc)}") from None
        return model.eval()
    _check_plausible(meta, space, file)
    model = _rebuild(meta, space)
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
        model.load_state_dict(state)
    except Exception as exc:  # noqa: BLE001 - a mismatch or an unreadable file: one message
        raise IncompatibleArtifactError(
            f"{file} does not load into {meta.get('arch') or meta.get('archs')}: "
            f"{_first_line(exc)}") from None
    return model.to(dev).eval()


def _rebuild(meta: dict, space=None) -> nn.Module:
    import spaces

    try:
        space = spaces.restore(meta["space"], meta.get("space_config"), space,
                               error=IncompatibleArtifactError, where="the export",
                               how="load_model(path, space=space), or export as torchscript or "
                                   "onnx, which need no space")
        num_classes, shape = int(meta["num_classes"]), tuple(meta["input_shape"])
        kwargs = meta.get("build_kwargs") or {}
        nets = [space.build(space.parse(a), num_classes, shape, **kwargs) for a in meta["archs"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise IncompatibleArtifactError(
            f"the export description does not build a network: {_first_line(exc)}") from None
    if meta.get("model") == "ensemble":
        return _ProbabilityMixture(nets, meta["ensemble_weights"])
    return nets[0]


def _inside(path: Path, name: str) -> Path:
    """``path / name`` when it stays inside the export directory: a plain name (no folder, no
    ``..``, not absolute) that is not a symbolic link; else :class:`IncompatibleArtifactError`."""
    pure = Path(name)
    if (not name or pure.is_absolute() or len(pure.parts) != 1 or name in (".", "..")
            or pure.name != name):
        raise IncompatibleArtifactError(
            f"{path / META} names the file {name!r}, which is not a file of the export "
            "directory itself; an export never refers outside its directory")
    full = path / name
    if full.is_symlink():
        raise IncompatibleArtifactError(
            f"{full} is a symbolic link (to {os.readlink(full)!r}); an export never refers "
            "outside its directory")
    return full


def _check_meta(path: Path, meta: dict) -> None:
    """Every field of an export description: type, range, plausible size, consistency."""
    where = path / META
    missing = [k for k in _META_REQUIRED if k not in meta]
    if missing:
        raise IncompatibleArtifactError(f"{where} lacks {', '.join(missing)}")
    try:
        validate_params(str(where), _META_CONSTRAINTS, meta)
    except InvalidParameterError as exc:
        raise IncompatibleArtifactError(
            str(exc).replace("parameter of", "field of", 1)) from None
    expected = _MODEL_FILE[meta["format"]]
    if meta["file"] != expected:
        raise IncompatibleArtifactError(
            f"{where} names the file {meta['file']!r}; a {meta['format']} export is {expected!r}")
    _inside(path, meta["file"])
    archs = meta["archs"]
    if len(archs) > _MAX_MEMBERS or any(len(a) > _MAX_ARCH_CHARS for a in archs):
        raise IncompatibleArtifactError(
            f"{where} lists {len(archs)} architectures of up to {max(map(len, archs)):,} "
            f"characters; an export holds at most {_MAX_MEMBERS} of at most {_MAX_ARCH_CHARS:,}")
    shape = meta["input_shape"]
    if len(shape) > 4 or math.prod(shape) > _MAX_INPUT_VALUES:
        raise IncompatibleArtifactError(
            f"{where} gives the input shape {shape}; at most 4 dimensions and "
            f"{_MAX_INPUT_VALUES:,} values")
    if meta["model"] == "single" and len(archs) != 1:
        raise IncompatibleArtifactError(
            f"{where} describes a single network with {len(archs)} architectures")
    if meta["model"] == "ensemble":
        w = meta.get("ensemble_weights")
        if w is None or len(w) != len(archs) or abs(sum(w) - 1) > 1e-3:
            raise IncompatibleArtifactError(
                f"{where} describes an ensemble of {len(archs)} without {len(archs)} weights "
                f"summing to 1 (ensemble_weights: {w!r})")
    for key, value in (meta.get("build_kwargs") or {}).items():
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise IncompatibleArtifactError(
                f"{where} has a build option {key!r} of type {type(value).__name__}")


def _check_plausible(meta: dict, space, file: Path) -> None:
    """A state dict export describes a network its file can hold: the network is built on the
    ``meta`` device (no memory) and counted, and one that needs more values than the file has
    bytes is refused before it is built for real."""
    try:
        with torch.device("meta"):
            net = _rebuild(meta, space)
    except PredNASError:
        raise
    except Exception:  # noqa: BLE001 - a space that cannot build on ``meta`` is built for real
        return
    values = sum(t.numel() for t in net.state_dict().values())
    size = file.stat().st_size
    if values > size:
        raise IncompatibleArtifactError(
            f"{file.parent / META} describes a network of {values:,} values ({meta['archs'][0]!r}, "
            f"{meta['num_classes']} classes, input shape {meta['input_shape']}), more than "
            f"{file.name} ({size:,} bytes) can hold; {META} was changed after the export")


# --------------------------------------------------------------------------------------------
# the model card
# --------------------------------------------------------------------------------------------
def _version() -> str:
    from prednas import __version__

    return __version__


def _latency(model, x1: torch.Tensor, batch: int, repeats: int = 30,
             max_seconds: float = 2.0) -> tuple[dict[str, Any], dict[str, Any]]:
    """CPU latency at batch 1 and at ``batch`` (copies of ``x1``), one thread
    (:func:`prednas.training.latency_stats`), each with the CPU's name."""
    from prednas.benchmarks.build import machine_name
    from prednas.training import latency_stats

    out = []
    for x in (x1, x1.expand(batch, *x1.shape[1:]).contiguous()):
        st = latency_stats(model, x, repeats=repeats, max_seconds=max_seconds, threads=1)
        out.append({**st, "cpu": machine_name()})
    return out[0], out[1]


def _card(model: nn.Module, meta: dict, member_recs: list[dict], config: dict, run_dir: Path,
          how: str, latency: tuple[dict, dict]) -> str:
    from prednas.training import count_flops

    nets = list(model.members) if meta["model"] == "ensemble" else [model]
    params = sum(p.numel() for p in model.parameters())
    try:
        flops = f"{sum(count_flops(n, meta['input_shape']) for n in nets):,}"
    except Exception as exc:  # noqa: BLE001 - the card must not lose the export
        log.warning("could not count FLOPs: %s", exc)
        flops = "n/a"
    ev = ((config.get("strategies") or {}).get("evaluator") or {}).get("params") or {}
    if meta["model"] == "ensemble":
        summary = config.get("ensemble_summary") or {}
        title = f"ensemble of {len(meta['archs'])}"
        rows = [("Architectures", ", ".join(f"`{a}`" for a in meta["archs"])
                 + f" (space `{meta['space']}`)"),
                ("Mixture weights", ", ".join(f"{w:.4f}" for w in meta["ensemble_weights"]))]
        val, test = summary.get("val_acc"), summary.get("test_acc")
    else:
        title = meta["arch"]
        rows = [("Architecture", f"`{meta['arch']}` (space `{meta['space']}`)")]
        val, test = member_recs[0].get("val_acc"), member_recs[0].get("test_acc")
    fmt = f"{meta['format']} ({meta['method']}), file `{meta['file']}`"
    if meta.get("cpu_only"):
        fmt += "; the trace runs on CPU only (export a state_dict for other devices)"
    rows += [
        ("Chosen as", how),
        ("Parameters", f"{params:,}"),
        ("FLOPs (one example, forward)", flops),
        *((f"CPU latency, batch {lat['batch']}",
           f"{lat['ms']:.3f} ms (median of {lat['repeats']} runs after {lat['warmup']} warm-up, "
           f"one thread, {lat['cpu']})") for lat in latency),
        ("Validation accuracy", f"{_num(val)}%"),
        ("Test accuracy", f"{_num(test)}%"),
        ("Input", f"float32 tensor of shape (B, {', '.join(map(str, meta['input_shape']))})"),
        ("Output", f"{meta['output']} over {meta['num_classes']} classes"),
        ("Export format", fmt),
        ("Max abs difference vs the evaluated model",
         f"{meta['max_abs_diff']:.3g} on `{EXAMPLE}`"),
    ]
    recipe = ", ".join(f"{label} {ev[key]}" for key, label in (
        ("steps", "steps"), ("epochs", "epochs"), ("lr", "lr"), ("batch_size", "batch size"),
        ("weight_decay", "weight decay"), ("dropout", "dropout"),
        ("inherit", "weight inheritance"), ("max_seconds", "max seconds per training"))
        if ev.get(key) is not None)
    lines = [f"# Model card: `{title}`", "",
             f"Exported by prednas {_version()} from the search run `{run_dir.resolve()}`.", "",
             "| | |", "|---|---|"]
    lines += [f"| {label} | {value} |" for label, value in rows]
    lines += ["", "## How it was trained", "",
              (f"- task: `{config.get('task')}`, options: "
               f"`{json.dumps(config.get('task_options') or {})}`"),
              f"- recipe: {recipe or 'not recorded'}"]
    for rec in member_recs:
        lines.append(f"- `{rec['arch']}`: {rec.get('kind', 'member')} evaluation, seed "
                     f"{rec.get('seed')}, {rec.get('steps', 'n/a')} steps done on "
                     f"{rec.get('device', 'n/a')}, val {_num(rec.get('val_acc'))}%, test "
                     f"{_num(rec.get('test_acc'))}%, weights `{_weights_name(run_dir, rec)}`")
    lines += ["",
              "The exported weights are exactly those the search evaluated; nothing was retrained.",
              "", "## Loading", "", "```python", "import torch", "import prednas", "",
              'model = prednas.load_model("THIS_DIR")  # eval mode, CPU',
              f'x = torch.load("THIS_DIR/{EXAMPLE}", weights_only=True)',
              "y = model(x)", "```", ""]
    return "\n".join(lines)


def _weights_name(run_dir: Path, rec: dict) -> str:
    if not rec.get("kind"):
        return "n/a"
    path = _weights_of(run_dir, rec)
    return str(path.relative_to(run_dir)) if path.is_relative_to(run_dir) else str(path)
