"""Cold start: importing ``function_app`` versus importing ``azure.functions`` alone.

Budget (docs/architecture.md, "Budgets"): ≤ 1.5×. Each sample is a fresh interpreter (``python -c "import …"``),
the two commands interleaved so machine noise hits both alike; medians are compared.
Run: ``.venv/bin/python bench/bench_cold_start.py [--rounds N]``.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUDGET = 1.5


def _time_import(module: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", f"import {module}"], cwd=ROOT, check=True)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    _time_import("function_app")  # warm the filesystem cache and bytecode for both
    _time_import("azure.functions")
    baseline, ours = [], []
    for _ in range(args.rounds):
        baseline.append(_time_import("azure.functions"))
        ours.append(_time_import("function_app"))
    b, o = statistics.median(baseline), statistics.median(ours)
    ratio = o / b
    verdict = "PASS" if ratio <= BUDGET else "FAIL"
    print(f"import azure.functions (baseline): median {b * 1000:.1f} ms over {args.rounds} runs")
    print(f"import function_app              : median {o * 1000:.1f} ms over {args.rounds} runs")
    print(f"cold start ratio: {ratio:.2f}x (budget <= {BUDGET}x) {verdict}")
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    raise SystemExit(main())
