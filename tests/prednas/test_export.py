"""``prednas export`` / ``load_model``: the exported model is the evaluated one, in every format."""

from __future__ import annotations

import ast
import hashlib
import json
import shutil
import sys
from pathlib import Path

import pytest
import torch

import prednas
import spaces
from prednas import export as ex
from prednas.cli import main
from prednas.errors import (
    IncompatibleArtifactError,
    InvalidParameterError,
    PredNASError,
    RunDirectoryError,
    UnknownNameError,
)

TASK_OPTIONS = {"n": 128, "seed": 0}
NUM_CLASSES, INPUT_SHAPE = 4, (1, 40)


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """One tiny training-mode search: 3 candidates, 6 steps each, a 2-replica ensemble (~3 s)."""
    from prednas.search import MutationMutator, NoFilter, ReplicaEnsembler, Search, TrainingEvaluator

    ev = TrainingEvaluator(steps=6, batch_size=32, device="cpu")
    res = Search("blocks1d", task="synthetic", task_options=TASK_OPTIONS, evaluator=ev, budget=3,
                 per_round=3, mutator=MutationMutator(parents=1, mutations=20), filter=NoFilter(),
                 ensembler=ReplicaEnsembler(replicas=2), max_params=3000, seed=0, device="cpu",
                 run_dir=tmp_path_factory.mktemp("export") / "run").run()
    assert res.best is not None and len(res.records) == 3
    return res.run_dir


def records(run_dir: Path, kind: str = "candidate") -> list[dict]:
    recs = [json.loads(x) for x in (run_dir / "evaluations.jsonl").read_text().splitlines()]
    return [r for r in recs if r["kind"] == kind]


def weights_file(run_dir: Path, arch: str) -> Path:
    """The engine's layout: a candidate's state dict is ``weights/<sha1(arch)[:16]>.pt``."""
    return run_dir / "weights" / f"{hashlib.sha1(arch.encode()).hexdigest()[:16]}.pt"


def evaluated_model(run_dir: Path, arch: str) -> torch.nn.Module:
    space = spaces.get("blocks1d")
    model = space.build(space.parse(arch), NUM_CLASSES, INPUT_SHAPE)
    model.load_state_dict(torch.load(weights_file(run_dir, arch), weights_only=True))
    return model.eval()


def max_diff(a, b) -> float:
    return float((torch.as_tensor(a) - torch.as_tensor(b)).abs().max())


def check_same_as_evaluated(run_dir: Path, out: Path, arch: str, tol: float) -> float:
    model = prednas.export.load_model(out)
    assert not model.training
    x = torch.load(out / "example_input.pt", weights_only=True)
    assert x.shape == (8, *INPUT_SHAPE)
    with torch.no_grad():
        ref = evaluated_model(run_dir, arch)
        diff = max(max_diff(model(x), ref(x)), max_diff(model(x[:1]), ref(x[:1])))
    assert diff < tol
    return diff


# -- formats ------------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt, tol", [("torchscript", 1e-5), ("state_dict", 1e-5)])
def test_export_equals_evaluated_model(run, tmp_path, fmt, tol):
    out = ex.export(run, tmp_path / "e", format=fmt)
    best = json.loads((run / "best.json").read_text())["arch"]
    meta = json.loads((out / "export.json").read_text())
    assert meta["arch"] == best and meta["format"] == fmt
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["model.pt", "example_input.pt", "model_card.md", "export.json"])
    check_same_as_evaluated(run, out, best, tol)
    card = (out / "model_card.md").read_text()
    params = sum(p.numel() for p in evaluated_model(run, best).parameters())
    assert f"`{best}`" in card and f"{params:,}" in card
    for needle in ("FLOPs", "latency", "Validation accuracy", "steps 6", "batch size 32",
                   "synthetic", fmt, str(run.resolve()), prednas.__version__):
        assert needle in card
    # latency at batch 1 and at the batch the search would measure (its evaluator's, 64)
    assert "CPU latency, batch 1 |" in card and "CPU latency, batch 64 |" in card
    assert set(meta["latency_ms"]) == {"1", "64", "device"}


def test_model_card_latency_at_a_chosen_batch(run, tmp_path, capsys):
    from prednas.cli import main

    assert main(["export", str(run), "--out", str(tmp_path / "e"), "--latency-batch", "5"]) == 0
    meta = json.loads((tmp_path / "e" / "export.json").read_text())
    assert meta["latency_ms"]["5"] > 0 and meta["latency_ms"]["1"] > 0
    assert "CPU latency, batch 5 |" in (tmp_path / "e" / "model_card.md").read_text()
    assert main(["export", str(run), "--out", str(tmp_path / "f"), "--latency-batch", "0"]) == 2
    assert "latency_batch" in capsys.readouterr().err


def test_state_dict_export_is_plain_tensors_and_rebuilds(run, tmp_path):
    out = ex.export(run, tmp_path / "e", format="state_dict")
    state = torch.load(out / "model.pt", weights_only=True)
    meta = json.loads((out / "export.json").read_text())
    assert {"space", "space_config", "arch", "num_classes", "input_shape"} <= set(meta)
    assert meta["num_classes"] == NUM_CLASSES and meta["input_shape"] == list(INPUT_SHAPE)
    ref = torch.load(weights_file(run, meta["arch"]), weights_only=True)
    assert state.keys() == ref.keys() and all(torch.equal(state[k], ref[k]) for k in ref)


def test_onnx_export_equals_evaluated_model(run, tmp_path, monkeypatch):
    pytest.importorskip("onnxruntime", reason='ONNX export is optional: pip install "prednas[onnx]"')
    pytest.importorskip("onnx", reason='ONNX export is optional: pip install "prednas[onnx]"')
    out = ex.export(run, tmp_path / "e", format="onnx")
    assert (out / "model.onnx").is_file()
    best = json.loads((run / "best.json").read_text())["arch"]
    check_same_as_evaluated(run, out, best, 1e-4)
    assert isinstance(prednas.export.load_model(out)(torch.zeros(2, *INPUT_SHAPE)), torch.Tensor)
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if onnxruntime were not installed
    with pytest.raises(IncompatibleArtifactError, match=r'pip install "prednas\[onnx\]"'):
        prednas.export.load_model(out)


def test_exports_evaluated_weights_not_the_last_trial(run, tmp_path):
    cands = sorted(records(run), key=lambda r: r["query"])
    best = json.loads((run / "best.json").read_text())["arch"]
    assert best != cands[-1]["arch"], "fixture precondition: the best must not be the last trial"
    out = ex.export(run, tmp_path / "best", format="state_dict")
    state = torch.load(out / "model.pt", weights_only=True)
    for rec in cands:  # equal to the best's weights, and to no other candidate's
        ref = torch.load(weights_file(run, rec["arch"]), weights_only=True)
        same = state.keys() == ref.keys() and all(
            state[k].shape == ref[k].shape and torch.equal(state[k], ref[k]) for k in ref)
        assert same == (rec["arch"] == best)
    # --arch picks that evaluation's weights, for a non-last candidate too
    first = cands[0]["arch"]
    out = ex.export(run, tmp_path / "first", arch=first, format="torchscript")
    check_same_as_evaluated(run, out, first, 1e-5)


def test_ensemble_export_equals_predict_proba(run, tmp_path):
    ens = prednas.ensemble.load(run / "ensemble.pt")
    for fmt in ("torchscript", "state_dict"):
        out = ex.export(run, tmp_path / fmt, ensemble=True, format=fmt)
        x = torch.load(out / "example_input.pt", weights_only=True)
        model = prednas.export.load_model(out)
        with torch.no_grad():
            got = model(x)
        assert max_diff(got, ens.predict_proba(x)) < 1e-5
        assert torch.allclose(got.sum(1), torch.ones(len(x)), atol=1e-5)
        card = (out / "model_card.md").read_text()
        assert "Mixture weights" in card and "replica" in card


# -- every op of the spaces through TorchScript and ONNX ----------------------------------------
OP_ARCHS = ["conv3:16|conv5:16@0", "dilconv3:16|conv7:16", "sepconv5:16", "lstm:16",
            "gru:16|mlp:16@0", "attn:16", "attn:64|mlp:16@0", "mlp:16"]


def _op_model(arch: str):
    if arch == "nb201":
        space = spaces.get("nb201", C=4, N=1)
        a = "|nor_conv_3x3~0|+|none~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_1x1~1|none~2|"
        shape = (3, 8, 8)
    else:
        space, a, shape = spaces.get("blocks1d"), arch, INPUT_SHAPE
    torch.manual_seed(0)
    model = space.build(space.parse(a), NUM_CLASSES, shape).eval()
    with torch.no_grad():  # non-trivial BatchNorm statistics
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    return space, a, model, torch.randn(5, *shape)


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated")
@pytest.mark.parametrize("arch", OP_ARCHS + ["nb201"])
def test_torchscript_every_op(arch, tmp_path):
    _, _, model, x = _op_model(arch)
    method, cpu_only = ex._save_torchscript(model, x, tmp_path / "m.pt")
    assert method in ("torch.jit.script", "torch.jit.trace")
    # a trace fixes the device of tensors made in forward: the recurrent ops' initial state
    assert cpu_only == (method == "torch.jit.trace" and ("lstm" in arch or "gru" in arch))
    loaded = torch.jit.load(str(tmp_path / "m.pt"))
    with torch.no_grad():
        assert max_diff(loaded(x), model(x)) < 1e-5
        assert max_diff(loaded(x[:1]), model(x[:1])) < 1e-5


@pytest.mark.parametrize("arch", OP_ARCHS + ["nb201"])
def test_onnx_every_op(arch, tmp_path):
    pytest.importorskip("onnxruntime", reason='ONNX export is optional: pip install "prednas[onnx]"')
    pytest.importorskip("onnx", reason='ONNX export is optional: pip install "prednas[onnx]"')
    _, _, model, x = _op_model(arch)
    ex._save_onnx(model, x, tmp_path / "m.onnx")
    loaded = ex.OnnxModule(tmp_path / "m.onnx")
    with torch.no_grad():
        assert max_diff(loaded(x), model(x)) < 1e-4
        assert max_diff(loaded(x[:1]), model(x[:1])) < 1e-4


def test_state_dict_rebuild_keeps_space_configuration():
    space, a, model, x = _op_model("nb201")
    meta = {"model": "single", "space": "nb201", "space_config": ex._space_config(space),
            "archs": [a], "num_classes": NUM_CLASSES, "input_shape": [3, 8, 8]}
    assert meta["space_config"] == {"C": 4, "N": 1}
    back = ex._rebuild(meta)
    back.load_state_dict(model.state_dict())
    with torch.no_grad():
        assert max_diff(back.eval()(x), model(x)) < 1e-6


# -- which model ---------------------------------------------------------------------------------
def test_pareto_member(run, tmp_path):
    with pytest.raises(RunDirectoryError, match="pareto.jsonl"):
        ex.export(run, tmp_path / "none", pareto=1)
    copy = Path(shutil.copytree(run, tmp_path / "run"))
    cands = sorted(records(copy), key=lambda r: r["query"])
    lines = [{"arch": r["arch"], "val_acc": r["val_acc"], "params": r["params"]} for r in cands]
    (copy / "pareto.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    out = ex.export(copy, tmp_path / "p2", pareto=2, format="state_dict")
    assert json.loads((out / "export.json").read_text())["arch"] == cands[1]["arch"]
    check_same_as_evaluated(copy, out, cands[1]["arch"], 1e-5)
    with pytest.raises(InvalidParameterError, match=r"\[1, 3\]"):
        ex.export(copy, tmp_path / "p9", pareto=9)


# -- errors --------------------------------------------------------------------------------------
def test_arch_not_evaluated_lists_evaluated_ones(run, tmp_path):
    evaluated = [r["arch"] for r in records(run)]
    with pytest.raises(InvalidParameterError) as err:
        ex.export(run, tmp_path / "e", arch="mlp:128|mlp:128")
    msg = str(err.value)
    assert "was not evaluated" in msg and "\n" not in msg
    assert all(a in msg for a in evaluated)
    with pytest.raises(PredNASError):  # not even an architecture of the space
        ex.export(run, tmp_path / "e", arch="warp:7")
    assert not (tmp_path / "e").exists() or not any((tmp_path / "e").iterdir())


def test_no_successful_evaluation(run, tmp_path, monkeypatch):
    real = ex._load_run

    def all_failed(run_dir):
        config, recs = real(run_dir)
        return config, [{**r, "status": "diverged", "objective": float("nan")} for r in recs]

    monkeypatch.setattr(ex, "_load_run", all_failed)
    with pytest.raises(RunDirectoryError, match="no successful evaluation"):
        ex.export(run, tmp_path / "e")


def test_oracle_run_has_no_weights(tmp_path):
    from prednas.search import NoFilter, Search

    res = Search("nb201", oracle="nb201", budget=3, per_round=3, filter=NoFilter(), seed=0,
                 run_dir=tmp_path / "oracle").run()
    with pytest.raises(RunDirectoryError, match="oracle-mode.*no trained weights"):
        ex.export(res.run_dir, tmp_path / "e")


def test_missing_weights_and_ensemble(run, tmp_path):
    copy = Path(shutil.copytree(run, tmp_path / "run"))
    shutil.rmtree(copy / "weights")
    (copy / "ensemble.pt").unlink()
    with pytest.raises(RunDirectoryError, match="weights.*missing"):
        ex.export(copy, tmp_path / "e")
    with pytest.raises(RunDirectoryError, match="no ensemble.pt"):
        ex.export(copy, tmp_path / "e", ensemble=True)


def test_unknown_format_and_bad_combinations(run, tmp_path):
    with pytest.raises(UnknownNameError, match="did you mean 'torchscript'.*onnx"):
        ex.export(run, tmp_path / "e", format="torchscrpt")
    with pytest.raises(InvalidParameterError, match="at most one"):
        ex.export(run, tmp_path / "e", arch="conv3:16", ensemble=True)
    with pytest.raises(InvalidParameterError, match="example_batch"):
        ex.export(run, tmp_path / "e", example_batch=0)


def test_non_empty_out_needs_force(run, tmp_path):
    out = tmp_path / "e"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(InvalidParameterError, match="not empty.*--force"):
        ex.export(run, out)
    ex.export(run, out, format="torchscript", force=True)
    ex.export(run, out, format="state_dict", force=True)  # replaces the previous export
    assert (out / "notes.txt").read_text() == "mine"
    assert json.loads((out / "export.json").read_text())["format"] == "state_dict"


def test_onnx_missing_says_how_to_install(run, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails as if not installed
    with pytest.raises(InvalidParameterError, match=r'pip install "prednas\[onnx\]"'):
        ex.export(run, tmp_path / "e", format="onnx")
    assert not (tmp_path / "e").exists()


def test_load_model_rejects_other_directories(tmp_path):
    with pytest.raises(IncompatibleArtifactError, match="not a prednas export"):
        prednas.export.load_model(tmp_path)


# -- CLI -----------------------------------------------------------------------------------------
def test_cli_end_to_end(run, tmp_path, capsys):
    out = tmp_path / "cli"
    assert main(["export", str(run), "--format", "state_dict", "--out", str(out)]) == 0
    assert "exported" in capsys.readouterr().out
    assert (out / "model.pt").is_file() and (out / "model_card.md").is_file()
    assert main(["export", str(run), "--out", str(out)]) == 2  # not empty, no --force
    err = capsys.readouterr().err.strip()
    assert err.startswith("prednas export: error:") and "\n" not in err
    assert main(["export", str(run), "--format", "pt", "--out", str(tmp_path / "x")]) == 2
    assert "valid choices" in capsys.readouterr().err
    assert main(["export", str(run), "--ensemble", "--out", str(tmp_path / "ens")]) == 0


def test_cli_module_imports_only_the_stdlib():
    import prednas.commands.export as cmd

    tree = ast.parse(Path(cmd.__file__).read_text())
    top = {(n.module if isinstance(n, ast.ImportFrom) else a.name).split(".")[0]
           for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))
           for a in n.names}
    assert top <= set(sys.stdlib_module_names) | {"__future__"}


# -- tampered exports (issue 21): a prednas error in one line, before anything is built ---------
@pytest.fixture(scope="module")
def exports(run, tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("exports")
    return {fmt: ex.export(run, base / fmt, format=fmt) for fmt in ("state_dict", "onnx")}


def tampered(exports, tmp_path, fmt: str = "state_dict", **fields) -> Path:
    out = Path(shutil.copytree(exports[fmt], tmp_path / f"t-{fmt}"))
    meta = json.loads((out / "export.json").read_text())
    meta.update(fields)
    (out / "export.json").write_text(json.dumps(meta))
    return out


def refused(path: Path, *fragments: str) -> str:
    with pytest.raises(IncompatibleArtifactError) as info:
        prednas.load_model(path)
    msg = str(info.value)
    assert "\n" not in msg and all(f in msg for f in fragments), msg
    return msg


@pytest.mark.parametrize("damage", ["truncated", "replaced"])
def test_tampered_onnx_file_is_a_prednas_error(exports, tmp_path, damage):
    out = Path(shutil.copytree(exports["onnx"], tmp_path / "onnx"))
    model = out / "model.onnx"
    data = model.read_bytes()
    model.write_bytes(data[: len(data) // 3] if damage == "truncated" else b"not onnx" * 100)
    refused(out, "model.onnx", "not a readable ONNX model")


def test_onnx_file_of_another_network_is_refused(exports, tmp_path):
    """A valid ONNX model taking other inputs than export.json says."""
    out = tampered(exports, tmp_path, "onnx", input_shape=[3, 32, 32])
    refused(out, "model.onnx", "takes inputs of shape")


@pytest.mark.parametrize("fields, fragments", [
    ({"num_classes": 10**12}, ("'num_classes'", "1000000000000")),
    ({"num_classes": "10"}, ("'num_classes'",)),
    ({"num_classes": 90_000}, ("90000 classes", "more than model.pt")),
    ({"input_shape": [1, 10**9]}, ("'input_shape'",)),
    ({"input_shape": [1000, 1000, 1000]}, ("input shape",)),
    ({"space_config": {"widths": "evil"}}, ("'widths'",)),
    ({"space_config": {"widths": [10**9]}}, ("'widths'",)),
    ({"space_config": {"evil": 1}}, ("evil",)),
    ({"space_config": "evil"}, ("'space_config'",)),
    ({"space": "nb201", "space_config": {"C": 10**9}}, ("'C'",)),
    ({"archs": []}, ("'archs'",)),
    ({"archs": ["conv3:16", "conv3:16"]}, ("single network with 2",)),
    ({"format": "pickle"}, ("'format'", "torchscript")),
    ({"model": "ensemble", "ensemble_weights": [2.0]}, ("'ensemble_weights'",)),
    ({"model": "ensemble", "ensemble_weights": [0.5]}, ("summing to 1",)),
    ({"build_kwargs": {"dropout": [1]}}, ("build option 'dropout'",)),
    ({"cpu_only": "yes"}, ("'cpu_only'",)),
])
def test_tampered_export_json_fields_are_refused_before_anything_is_built(
        exports, tmp_path, fields, fragments):
    refused(tampered(exports, tmp_path, **fields), *fragments)


def test_missing_and_huge_export_json(exports, tmp_path):
    out = Path(shutil.copytree(exports["state_dict"], tmp_path / "m"))
    meta = json.loads((out / "export.json").read_text())
    del meta["num_classes"]
    (out / "export.json").write_text(json.dumps(meta))
    refused(out, "lacks num_classes")
    (out / "export.json").write_text(json.dumps({**meta, "pad": "x" * 2_000_000}))
    refused(out, "bytes")


@pytest.mark.parametrize("file", ["/etc/hostname", "../model.pt", "sub/model.pt", "..", "",
                                  "weights.pt"])
def test_export_file_must_be_the_exports_own(exports, tmp_path, file):
    out = tampered(exports, tmp_path, file=file)
    refused(out, "export.json")


def test_symbolic_links_out_of_the_export_are_refused(exports, tmp_path):
    out = Path(shutil.copytree(exports["state_dict"], tmp_path / "s"))
    outside = tmp_path / "elsewhere.pt"
    (out / "model.pt").rename(outside)
    (out / "model.pt").symlink_to(outside)
    refused(out, "symbolic link")
    (out / "model.pt").unlink()
    outside.rename(out / "model.pt")
    prednas.load_model(out)  # the same files, no link: loads
    meta = tmp_path / "meta.json"
    (out / "export.json").rename(meta)
    (out / "export.json").symlink_to(meta)
    refused(out, "symbolic link")


def test_export_into_the_run_directory_is_refused(run, tmp_path, capsys):
    before = sorted(p.name for p in run.iterdir())
    assert main(["export", str(run), "--out", str(run), "--force"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "is a run directory" in err
    assert sorted(p.name for p in run.iterdir()) == before


def test_empty_pareto_front_says_no_candidate_met_the_constraints(run, tmp_path):
    copy = Path(shutil.copytree(run, tmp_path / "run"))
    (copy / "pareto.jsonl").write_text("")
    state = json.loads((copy / "state.json").read_text())
    state["config"]["constraints"] = {"latency_ms": 0.001}
    (copy / "state.json").write_text(json.dumps(state))
    with pytest.raises(RunDirectoryError, match=r"empty: no candidate met the run's constraints "
                                                r"\(latency_ms <= 0\.00"):
        ex.export(copy, tmp_path / "e", pareto=1)
