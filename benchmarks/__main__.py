"""Run every ``benchmarks/bench_*.py`` in turn (``make bench``); results land in
``benchmarks/results/``."""

import runpy
import sys
from pathlib import Path

here = Path(__file__).resolve().parent
wanted = sys.argv[1:]
if {"-h", "--help"} & set(wanted):
    print("usage: python -m benchmarks [NAME ...]\n\nRuns every benchmarks/bench_*.py "
          "(or those whose name contains a NAME) with its defaults; each writes its table "
          "to benchmarks/results/ (see benchmarks/README.md). Scripts: "
          + ", ".join(p.stem for p in sorted(here.glob("bench_*.py"))))
    sys.exit(0)
for script in sorted(here.glob("bench_*.py")):
    if wanted and not any(w in script.stem for w in wanted):
        continue
    print(f"\n=== {script.name}", flush=True)
    sys.argv = [str(script)]
    runpy.run_path(str(script), run_name="__main__")
