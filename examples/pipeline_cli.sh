#!/usr/bin/env bash
# From your own network to an exported model on MNIST-1D, from the command line.
#
#   bash examples/pipeline_cli.sh           # the defaults: about 15 minutes on a 2-core CPU
#   bash examples/pipeline_cli.sh --tiny    # seconds (what the test suite runs)
#
# The network is SmallCNN1d in examples/models.py (a class taking no arguments works as the
# factory, like a function that returns an nn.Module). --model imports that file, so it runs:
# give only files you trust. Set PYTHON to choose the interpreter and OUT the run directory.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
OUT=${OUT:-runs/pipeline-example-$(date +%Y%m%d-%H%M%S)}
RUN=()
SMALL=()
if [ "${1:-}" = "--tiny" ]; then
    RUN=(--workers 1 --device cpu)
    SMALL=(--task-opt num_samples=400 --budget 2 --steps 3 --top-k 2 --trials 2 --replicas 1)
fi

# 1. search variants of the network (it is the baseline; candidates have at most 60% of its
#    parameters) and retrain the best three for twice the steps
"$PYTHON" -m prednas pipeline --model examples/models.py:SmallCNN1d --task mnist1d \
    --stages search,retrain --out "$OUT" ${SMALL[@]+"${SMALL[@]}"} ${RUN[@]+"${RUN[@]}"}

# 2. later (or after Ctrl-C / kill -9 at any point): the remaining stages in the same run
#    directory: tune the winner's recipe with Optuna, ensemble it, export it as TorchScript
"$PYTHON" -m prednas pipeline --resume "$OUT" ${RUN[@]+"${RUN[@]}"}

# 3. use the exported model (no prednas needed to run it: torch.jit.load works too)
"$PYTHON" - "$OUT" <<'PY'
import sys

import torch

import prednas

out = sys.argv[1]
model = prednas.load_model(f"{out}/export")
x = torch.load(f"{out}/export/example_input.pt", weights_only=True)
print("predicted classes:", model(x).argmax(1).tolist())
print(f"report: {out}/report.md")
PY
