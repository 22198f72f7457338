#!/usr/bin/env bash
# The CUDA checks on a GPU machine (see tests/test_cuda.py and scripts/benchmark_gpu.py):
# the CUDA tests, then the GPU figures; logs and reports under $1 (default: .gpu-out).
set -u
out=${1:-.gpu-out}; mkdir -p "$out"
export PYTHONUNBUFFERED=1
nvidia-smi -L | tee "$out/machine.log"
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())" | tee -a "$out/machine.log"
timeout "${CUDA_TESTS_TIMEOUT:-240}" python3 -m pytest -q -m cuda tests/test_cuda.py -rA -p no:cacheprovider \
    2>&1 | tee "$out/cuda-tests.log" | tail -40
[ "${SKIP_FIGURES:-0}" = 1 ] && exit 0
timeout "${FIGURES_TIMEOUT:-330}" python3 scripts/benchmark_gpu.py "${@:2}" 2>&1 > "$out/figures.log"
tail -40 "$out/figures.log"
cp benchmarks/gpu-mnist1d.md benchmarks/gpu-mnist1d.jsonl "$out/" 2>/dev/null
exit 0
