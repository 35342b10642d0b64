"""Run every ``benchmarks/bench_*.py`` in turn (``make bench``); results land in
``benchmarks/results/``."""

import runpy
import sys
from pathlib import Path

here = Path(__file__).resolve().parent
wanted = sys.argv[1:]
for script in sorted(here.glob("bench_*.py")):
    if wanted and not any(w in script.stem for w in wanted):
        continue
    print(f"\n=== {script.name}", flush=True)
    sys.argv = [str(script)]
    runpy.run_path(str(script), run_name="__main__")
