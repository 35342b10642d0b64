"""Wall-clock time of the whole audit suite (`make audit`), cold and then warm.

Issue 16, target 4: on the shared data, 2 cores, a cold `make audit` (empty feature
cache, no trained model) within 15 minutes and a warm rerun (nothing changed) within
1 minute. This script runs the suite twice in one go with the suite parameters of
`make audit` (:data:`facelab.report.audits.AUDITS`):

1. cold: a new, empty feature cache (``FACELAB_CACHE``) and results folder;
2. warm, forced (``facelab audit --force``): every notebook executes again on the same
   cache and results folder (the trained model is reused, every feature is read from the
   cache);
3. warm (``make audit`` as it is): nothing changed, so every audit is up to date
   (:mod:`facelab.report.uptodate`) and none executes.

It prints ``uptime`` at start and end and writes a Markdown table of per-notebook
seconds to ``--out``. Not part of ``make bench`` (it takes a quarter of an hour or more):
run it deliberately on a quiet machine::

    python benchmarks/time_audit.py --out benchmarks/results/audit.md
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script
    sys.path.insert(0, str(ROOT))

from benchmarks._common import uptime  # noqa: E402


def run_suite(label: str, jobs: int | None, force: bool = False) -> tuple[float, list[dict]]:
    from facelab.report.runner import run_audits

    print(f"== {label}: {uptime()}", flush=True)
    start = time.perf_counter()
    rows = run_audits(jobs=jobs, force=force)
    wall = time.perf_counter() - start
    for r in rows:
        print(f"  {r['audit']:32s} {r['status']:10s} {r['seconds']:8.1f} s", flush=True)
    print(f"  total wall {wall:.1f} s", flush=True)
    return wall, rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "audit.md"))
    ap.add_argument("--jobs", type=int, default=None,
                    help="audits at once (default: facelab's, min(2, CPUs))")
    ap.add_argument("--workdir", default=None,
                    help="folder for the fresh cache and results (default: a temporary one)")
    args = ap.parse_args()
    if not os.environ.get("FACELAB_DATA"):
        sys.exit("set FACELAB_DATA to the shared datasets")
    work = Path(args.workdir or tempfile.mkdtemp(prefix="facelab-audit-timing-"))
    os.environ["FACELAB_CACHE"] = str(work / "cache")
    os.environ["FACELAB_RESULTS"] = str(work / "results")
    os.environ.setdefault("MPLBACKEND", "agg")
    began = uptime()
    cold_wall, cold = run_suite("cold (empty feature cache, no trained model)", args.jobs)
    warm_wall, warm = run_suite("warm, forced (same cache and results, every notebook runs)",
                                args.jobs, force=True)
    same_wall, same = run_suite("warm, nothing changed (make audit)", args.jobs)
    ended = uptime()
    warm_by = {r["audit"]: r for r in warm}
    same_by = {r["audit"]: r for r in same}
    lines = [
        "# `make audit` on the shared data: cold, warm forced, warm unchanged",
        "",
        f"Suite parameters of `make audit` (facelab.report.audits.AUDITS), "
        f"{os.cpu_count()} CPUs, jobs={args.jobs or 'default'}. Cold: empty feature cache "
        f"and results folder; warm forced: every notebook executes again (`facelab audit "
        f"--force`) on the same cache; warm unchanged: `make audit` again with nothing "
        f"changed (every audit up to date, none executes). Produced by "
        f"`python benchmarks/time_audit.py`.",
        "",
        "| audit | cold status | cold s | forced status | forced s | unchanged status | "
        "unchanged s |",
        "|---|---|---:|---|---:|---|---:|",
    ]
    for r in cold:
        w = warm_by.get(r["audit"], {})
        u = same_by.get(r["audit"], {})
        lines.append(f"| {r['audit']} | {r['status']} | {r['seconds']:.0f} | "
                     f"{w.get('status', '')} | {w.get('seconds', float('nan')):.0f} | "
                     f"{u.get('status', '')} | {u.get('seconds', float('nan')):.1f} |")
    lines += [
        f"| **whole suite (wall)** | | **{cold_wall:.0f}** ({cold_wall / 60:.1f} min) | | "
        f"**{warm_wall:.0f}** ({warm_wall / 60:.1f} min) | | **{same_wall:.1f}** |",
        "",
        "Notebooks run in parallel, so the per-notebook seconds add up to more than the wall "
        "time.",
        "",
        f"`uptime` at start: `{began}`",
        "",
        f"`uptime` at end: `{ended}`",
        "",
    ]
    Path(args.out).write_text("\n".join(lines))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
