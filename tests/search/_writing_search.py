"""Child process of the study and dashboard tests: a search that another process watches.

``python _writing_search.py RUN_DIR BUDGET DELAY [HOLD_AT GATE]``: an NB201 oracle search (random
proposals, two per round) whose evaluations each take DELAY seconds; with HOLD_AT and GATE, the
evaluation after the first HOLD_AT waits until the file GATE exists, so a test can look at a
running search with a known number of trials and then let it go on.
"""

from __future__ import annotations

import os
import sys
import time

from prednas.search import NoFilter, OracleEvaluator, RandomSampler, Search

RUN, BUDGET, DELAY = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
HOLD_AT, GATE = (int(sys.argv[4]), sys.argv[5]) if len(sys.argv) > 5 else (None, None)


class Slow(OracleEvaluator):
    name = "oracle"  # recorded as the plain oracle
    calls = 0

    def evaluate(self, space, arch, **kw):
        Slow.calls += 1
        if HOLD_AT is not None and Slow.calls > HOLD_AT:
            while not os.path.exists(GATE):
                time.sleep(0.05)
        time.sleep(DELAY)
        return super().evaluate(space, arch, **kw)


Search("nb201", oracle="nb201", seed=0, run_dir=RUN, budget=BUDGET, per_round=2, evaluator=Slow(),
       mutator=RandomSampler(samples=2), filter=NoFilter()).run()
