"""`certrotate --help` versus `python -c "import click"`: the CLI's lazy command registration.

Budget (docs/architecture.md, "Budgets"): ≤ 1.5×. Each sample is a fresh interpreter, the two
commands interleaved so machine noise hits both alike; medians are compared. `certrotate` is the
installed console script next to this interpreter (else `python -m rotation`).
Run: ``.venv/bin/python bench/bench_cli_help.py [--rounds N]``.
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


def _help_command() -> list[str]:
    script = Path(sys.executable).parent / "certrotate"
    return (
        [str(script), "--help"]
        if script.exists()
        else [sys.executable, "-m", "rotation", "--help"]
    )


def _time(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    baseline_cmd = [sys.executable, "-c", "import click"]
    help_cmd = _help_command()
    _time(help_cmd)  # warm the filesystem cache and bytecode for both
    _time(baseline_cmd)
    baseline, ours = [], []
    for _ in range(args.rounds):
        baseline.append(_time(baseline_cmd))
        ours.append(_time(help_cmd))
    b, o = statistics.median(baseline), statistics.median(ours)
    ratio = o / b
    verdict = "PASS" if ratio <= BUDGET else "FAIL"
    print(f'python -c "import click" (baseline): median {b * 1000:.1f} ms over {args.rounds} runs')
    print(f"certrotate --help{'':19}: median {o * 1000:.1f} ms over {args.rounds} runs")
    print(f"certrotate --help ratio: {ratio:.2f}x (budget <= {BUDGET}x) {verdict}")
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    raise SystemExit(main())
