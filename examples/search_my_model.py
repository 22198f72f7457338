"""Search variants of your own 1-D CNN on MNIST-1D.

Run from the repository root::

    python examples/search_my_model.py          # 20 trained candidates (a few minutes on a CPU)
    python examples/search_my_model.py --tiny   # a run of seconds (what the test suite runs)

The network is ``SmallCNN1d`` from ``examples/models.py``: any ``nn.Module`` built from
convolutions, linear, recurrent or attention layers works the same way.
"""

import sys

import torch
from models import SmallCNN1d

import prednas
import spaces
from prednas.search import TrainingEvaluator


def run_options(tiny: bool) -> dict:
    """The search settings: the real ones, or (``--tiny``) a tiny data set, budget and training."""
    if not tiny:
        return {"budget": 20}
    return {"budget": 2, "per_round": 2, "task_options": {"num_samples": 400}, "ensembler": False,
            "evaluator": TrainingEvaluator(steps=3, device="cpu"), "device": "cpu"}


if __name__ == "__main__":
    # -------- what a user writes (besides the model and the imports): four lines --------
    space = spaces.from_model(SmallCNN1d(), torch.randn(8, 1, 40))
    search = prednas.Search(space, task="mnist1d", baseline=True, **run_options("--tiny" in sys.argv))
    result = search.run()
    print(f"{space.describe()}\n\nbest: {result.best_arch} ({result.best.get('val_acc'):.1f}% val)")
