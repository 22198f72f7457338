"""Search variants of a small ResNet on CIFAR-10 images read from a path, at a small budget.

Run from the repository root::

    python examples/search_resnet_cifar.py ../shared/data/cifar10-subset.npz          # ~10 min on 2 CPU cores
    python examples/search_resnet_cifar.py ../shared/data/cifar10-subset.npz --tiny   # seconds (the tests)

The data is any ``.npz`` with ``x_train, y_train, x_test, y_test`` (uint8 images) or the official
``cifar-10-batches-py`` folder; nothing is downloaded. The network is ``ResNet2d`` from
``examples/models.py``: its convolutions become choices (kernel size, width, or a cheaper
separable form), the ResNet itself is the baseline, and candidates have at most 60% of its
parameters. The command-line equivalent::

    prednas search --model examples/models.py:ResNet2d --task cifar10 \\
        --task-path ../shared/data/cifar10-subset.npz --budget 8 --steps 150
"""

import sys

import torch
from models import ResNet2d

import prednas
import spaces
from prednas.search import TrainingEvaluator


def run_options(tiny: bool) -> dict:
    """A small budget (8 candidates of 150 steps), or (``--tiny``) a run of seconds."""
    if not tiny:
        return {"budget": 8, "per_round": 2, "evaluator": TrainingEvaluator(steps=150)}
    return {"budget": 2, "per_round": 2, "ensembler": False, "device": "cpu",
            "evaluator": TrainingEvaluator(steps=2, batch_size=32, device="cpu")}


if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1].startswith("-"):
        sys.exit("usage: python examples/search_resnet_cifar.py PATH_TO_CIFAR10 [--tiny]")
    tiny = "--tiny" in sys.argv
    task = prednas.tasks.get("cifar10", path=sys.argv[1])
    if tiny:
        task = task.subset(0.1)
    network = ResNet2d()
    space = spaces.from_model(network, torch.randn(8, 3, 32, 32))
    cap = int(0.6 * sum(p.numel() for p in network.parameters()))  # at most 60% of its size
    result = prednas.Search(space, task=task, baseline=True, max_params=cap,
                            **run_options(tiny)).run()
    base = result.baseline
    print(f"{space.describe()}\n")
    print(f"ResNet2d (baseline): {base.get('test_acc'):.1f}% test, {base.get('params'):,} params")
    print(f"best: {result.best_arch}: {result.best.get('test_acc'):.1f}% test, "
          f"{result.best.get('params'):,} params")
    print(f"report: {result.run_dir / 'report.md'}")
