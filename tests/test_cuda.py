"""The CUDA path: each component that runs on a device, run on a GPU and checked against the CPU.

Skipped where torch sees no CUDA device (CI, the 2-core machines); on a GPU machine
``pytest -m cuda`` runs them alone. They are small: a few seconds on one GPU.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest
import torch

import prednas

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(),
                       reason="needs a CUDA device; torch sees none on this machine"),
]

ARCH = "conv3:16|gru:16|attn:16"


def _train(task, device, **kw):
    kw = {"steps": 23, "seed": 3, "batch_size": 16, "curve_every": 5, "curve_size": 20, **kw}
    return prednas.train("blocks1d", ARCH, task, device=device, **kw)


def test_training_runs_on_the_gpu_and_its_evaluation_matches_the_cpu(synthetic_task):
    from prednas.training import evaluate

    rec = _train(synthetic_task, "cuda")
    assert rec.ok and rec.steps == 23 and rec.curve["step"] == [5, 10, 15, 20, 23]
    assert rec.device.startswith("cuda")
    assert next(rec.model.parameters()).device.type == "cpu"  # handed back on the CPU
    # the weights trained there score here what they scored there
    acc, _ = evaluate(rec.model, synthetic_task.x_val, synthetic_task.y_val, device="cpu")
    assert acc == pytest.approx(rec.val_acc, abs=1e-9)
    # and training there learns what it learns here (kernels differ, so not bit for bit)
    cpu = _train(synthetic_task, "cpu")
    assert rec.loss_curve == pytest.approx(cpu.loss_curve, rel=0.05, abs=0.02)


def test_a_gpu_training_paused_and_continued_matches_one_never_paused(synthetic_task, tmp_path):
    kw = {"build_kwargs": {"dropout": 0.3}}  # the GPU's random stream is used, and restored
    whole = _train(synthetic_task, "cuda", **kw)
    ck = tmp_path / "ck.pt"
    first = _train(synthetic_task, "cuda", stop_at=10, checkpoint=ck, **kw)
    assert first.paused and first.steps == 10
    last = _train(synthetic_task, "cuda", resume=ck, **kw)
    assert last.steps == 23 and not last.paused
    assert last.loss_curve == pytest.approx(whole.loss_curve, rel=1e-4, abs=1e-6)
    assert last.val_acc == pytest.approx(whole.val_acc, abs=1.0)


def test_a_checkpoint_paused_on_the_gpu_continues_on_a_cpu(synthetic_task, tmp_path):
    ck = tmp_path / "ck.pt"
    _train(synthetic_task, "cuda", stop_at=10, checkpoint=ck)
    last = _train(synthetic_task, "cpu", resume=ck)
    assert last.ok and last.steps == 23 and math.isfinite(last.test_acc)
    assert next(last.model.parameters()).device.type == "cpu"


def test_every_proxy_scores_the_same_on_the_gpu(synthetic_task, synthetic_image_task):
    import proxies
    import spaces
    from prednas.utils import torch_seed

    cases = [("blocks1d", a, synthetic_task, (1, 40)) for a in
             ("conv5:16|conv3:16@0", "lstm:16|conv3:16", "gru:16|mlp:16", "attn:16|conv3:16@0")]
    cases.append(("nb201", "|nor_conv_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|avg_pool_3x3~0|"
                           "nor_conv_3x3~1|skip_connect~2|", synthetic_image_task, (3, 8, 8)))
    off = []
    for space_name, arch, task, shape in cases:
        space = spaces.get(space_name)
        kw = {"C": 4, "N": 1} if space_name == "nb201" else {}
        with torch_seed(0):
            model = space.build(space.parse(arch), 4, shape, **kw)
        x, y = task.x_train[:16], task.y_train[:16]
        on_cpu = proxies.score(model, x, y)
        on_gpu = proxies.score(model.to("cuda"), x.to("cuda"), y.to("cuda"))
        assert set(on_gpu) == set(proxies.list_proxies())
        for name, v in on_cpu.items():
            g = on_gpu[name]
            if not (math.isfinite(g) and g == pytest.approx(v, rel=1e-3, abs=1e-6)):
                off.append(f"{space_name} {arch} {name}: cpu {v!r} gpu {g!r}")
    assert not off, "\n".join(off)


def test_the_gnn_predictor_fits_on_the_gpu_as_on_the_cpu():
    from scipy.stats import spearmanr

    import spaces
    from predictors import FeaturePipeline, GNNPredictor

    space = spaces.get("nb201")
    rng = np.random.default_rng(0)
    archs = [space.sample(rng) for _ in range(160)]
    y = np.array([str(a).count("conv_3x3") + 0.5 * str(a).count("conv_1x1") for a in archs], float)
    G = FeaturePipeline(space).graphs(archs)
    kw = dict(hidden=16, layers=2, n_steps=150, batch_size=32, random_state=0)
    gpu = GNNPredictor(device="cuda", **kw).fit(G[:120], y[:120]).predict(G[120:])
    cpu = GNNPredictor(device="cpu", **kw).fit(G[:120], y[:120]).predict(G[120:])
    assert np.all(np.isfinite(gpu))
    assert spearmanr(gpu, cpu).statistic > 0.9


def test_a_search_trains_its_candidates_on_the_gpu(tmp_path):
    from prednas.search import MutationMutator, NoFilter, PoolExecutor, Search, TrainingEvaluator

    for name, executor in (("in-process", None), ("pool", PoolExecutor(workers=2))):
        res = Search("blocks1d", task="synthetic", task_options={"n": 64},
                     evaluator=TrainingEvaluator(steps=6, batch_size=32, device="cuda"),
                     executor=executor, budget=3, per_round=2,
                     mutator=MutationMutator(parents=1, mutations=20), filter=NoFilter(),
                     ensembler=False, seed=0, device="cuda", run_dir=tmp_path / name).run()
        assert res.best is not None, name
        recs = [json.loads(x) for x in (tmp_path / name / "evaluations.jsonl").read_text()
                .splitlines()]
        assert recs and {r["device"] for r in recs} == {"cuda"}, name


def test_the_command_line_search_runs_on_the_gpu(tmp_path, capsys):
    from prednas.cli import main

    out = tmp_path / "run"
    code = main(["search", "--task", "synthetic", "--task-opt", "n=64", "--budget", "3",
                 "--device", "cuda", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    assert (out / "best.json").exists()


def test_supernet_warmup_and_stnas_run_on_the_gpu(synthetic_image_task):
    from prednas import stnas

    scorer = prednas.warmup("nb201", synthetic_image_task, fraction=0.5, batch_size=16, seed=0,
                            steps=6, device="cuda", C=4, N=1, calib_size=32, val_size=64,
                            progress=False)
    assert scorer is not None
    dist = stnas.train("nb201", synthetic_image_task, warmup_steps=3, search_steps=4,
                       batch_size=16, fraction=0.5, seed=0, device="cuda", calib_size=16,
                       val_size=32, progress=False, C=4, N=1)
    assert dist is not None


def test_a_gpu_out_of_memory_is_recorded_not_raised():
    code = (
        "import torch, prednas\n"
        "from prednas import tasks\n"
        "torch.cuda.set_per_process_memory_fraction(1e-7)\n"
        "task = tasks.get('synthetic', n=256, seed=0)\n"
        "rec = prednas.train('blocks1d', 'attn:32|attn:32', task, steps=4, batch_size=256, "
        "device='cuda')\n"
        "print(rec.status, '|', rec.reason)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.startswith("oom |") and "CUDA out of memory" in out.stdout
