#!/usr/bin/env bash
# One search seed of the real-training benchmark (scripts/benchmark_search_mnist1d.py) on a
# many-core machine: every method at once, each pinned to two cores of its own (taskset), so that
# each runs as on a 2-core machine and all share the machine alike. Rows go to OUT/<method>.jsonl,
# each started from the baseline's rows already in benchmarks/search-mnist1d.jsonl; merge them
# here with
#   python scripts/benchmark_search_mnist1d.py --merge OUT/*.jsonl --report-only
# Usage: bash scripts/device_search_mnist1d.sh OUT [SEED=4] [MINUTES=6] [LIMIT_S=540]
set -u
out=${1:?usage: device_search_mnist1d.sh OUT [SEED] [MINUTES] [LIMIT_S]}
seed=${2:-4}; minutes=${3:-6}; limit=${4:-540}
methods=(prednas random asha tpe tpe-hyperband rea modelsearch)
py=${PYTHON:-python3}
export PYTHONUNBUFFERED=1
mkdir -p "$out"
cores=$($py -c "import os; print(len(os.sched_getaffinity(0)))")
if (( cores < 2 * ${#methods[@]} )); then
    echo "needs $((2 * ${#methods[@]})) cores, has $cores" >&2; exit 2
fi
$py - "$out/start.rows" <<'PY'
import json, sys
rows = [json.loads(x) for x in open("benchmarks/search-mnist1d.jsonl") if x.strip()]
base = next(r["arch"] for r in rows if r["type"] == "baseline")
keep = [r for r in rows if r["type"] == "baseline" or (r["type"] == "final" and r["arch"] == base)]
open(sys.argv[1], "w").write("".join(json.dumps(r, sort_keys=True) + "\n" for r in keep))
PY
grep -m1 "model name" /proc/cpuinfo | tee "$out/machine.log"
for i in "${!methods[@]}"; do
    m=${methods[$i]}
    cp "$out/start.rows" "$out/$m.jsonl"
    taskset -c $((2 * i)),$((2 * i + 1)) timeout "$limit" $py scripts/benchmark_search_mnist1d.py \
        --seeds 5 --only-seeds "$seed" --minutes "$minutes" --methods "$m" \
        --log "$out/$m.jsonl" --runs /tmp/runs-device > "$out/$m.log" 2>&1 &
done
wait
tail -n 3 "$out"/*.log
