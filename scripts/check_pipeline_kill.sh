#!/bin/bash
# Issue 21, defect 3: kill -9 a `prednas pipeline --workers 2` driver while stage K (0 search,
# 1 retrain, 2 tune, 3 ensemble) has pool workers, and list its descendants still alive 5 s
# later (the target: none). A stage that ran no worker at these settings says so.
#   bash scripts/check_pipeline_kill.sh 1
[ -n "$VIRTUAL_ENV" ] || . .venv/bin/activate
K=$1; out=/tmp/pk$K; rm -rf $out
setsid prednas pipeline --workers 2 --budget 2 --steps 40 --trials 2 --out $out > /tmp/pk$K.log 2>&1 &
sleep 3; drv=$(pgrep -f "prednas pipeline --workers 2 --budget 2 --steps 40 --trials 2 --out $out" | head -1)
for i in $(seq 1 400); do
  n=$( [ -f $out/stages.jsonl ] && wc -l < $out/stages.jsonl || echo 0)
  kids=$(pgrep -P $drv 2>/dev/null | tr '\n' ' ')
  nk=$(echo $kids | wc -w)
  if [ "$n" -eq "$K" ] && [ "$nk" -ge 2 ]; then break; fi
  if [ "$n" -gt "$K" ] || ! kill -0 $drv 2>/dev/null; then echo "stage $K: no moment with workers seen (stages done $n)"; exit 0; fi
  sleep 0.5
done
all="$kids $(for k in $kids; do pgrep -P $k; done | tr '\n' ' ')"
kill -9 $drv; sleep 5; alive=""
for p in $all; do kill -0 $p 2>/dev/null && alive="$alive $p"; done
echo "stage $K (after $n finished): killed driver with descendants [$all]; alive 5 s later: [${alive}]"
