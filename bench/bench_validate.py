"""Benchmark: validation of a 3-certificate chain with one CRL, against its budget.

Run with ``.venv/bin/python bench/bench_validate.py [--rounds N] [--rotation-rounds N]``.

The budget (issue 9): the median validation of a 3-certificate chain with one CRL is at most
5 ms on this machine, and at most 5 % of the median rotation wall time of
``bench/bench_rotation.py`` (whose scene this script runs, in the same process, for the
baseline: ``RotationService.handle`` against the devstack, pin strategy).

Validation here is what the service does per candidate: ``PolicyValidator.validate`` is timed
on a parsed bundle (``validate_bundle`` with the validator's own ``TrustAnchors``): RSA 2048
leaf, intermediate and root, the default policy (soft revocation), and one CRL, the issuing
CA's (not listing the leaf), so the leaf's status is established and the intermediate's is a
``revocation.unavailable`` warning. 64 distinct leaves are cycled so that no per-leaf cache
flatters the figure. For information the script also prints revocation off, and hard mode
with both CRLs (leaf and intermediate established).

Both medians are printed with PASS/FAIL; the exit status is 1 when either budget fails.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import itertools
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_rotation

from devstack.pki import make_crl, mint_certificate, mint_chain, to_pem_bundle
from rotation.domain.bundle import Bundle, parse_bundle
from rotation.domain.policy import DEFAULT_POLICY, RevocationMode
from rotation.domain.validation import TrustAnchors, validate_bundle
from rotation.logconfig import configure_logging

BUDGET_MS = 5.0
BUDGET_SHARE = 0.05
LEAVES = 64
AT = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)


def _validate_next(bundles: Iterator[Bundle], anchors: Any, policy: Any, crls: Any) -> object:
    return validate_bundle(next(bundles), trust_anchors=anchors, policy=policy, at=AT, crls=crls)


def _median_ms(fn: Callable[[], object], rounds: int, calls: int) -> tuple[float, float]:
    """Median wall and CPU (this process) milliseconds per call."""
    for _ in range(10):  # warm: prepared anchors and intermediate, the event loop
        fn()
    wall, cpu = [], []
    for _ in range(rounds):
        start, start_cpu = time.perf_counter(), time.process_time()
        for _ in range(calls):
            fn()
        wall.append((time.perf_counter() - start) / calls)
        cpu.append((time.process_time() - start_cpu) / calls)
    return statistics.median(wall) * 1000, statistics.median(cpu) * 1000


def validation_cases(rounds: int) -> dict[str, tuple[float, float]]:
    leaf, inter, root = mint_chain(depth=3)
    leaves = [leaf] + [
        mint_certificate(f"client-{i}.certrotate.test", issuer=inter, key=leaf.key)
        for i in range(LEAVES - 1)
    ]
    bundles = itertools.cycle([parse_bundle(to_pem_bundle(one, [inter])) for one in leaves])
    issuing_crl = make_crl(inter, revoked_serials=(7,), last_update=AT - dt.timedelta(days=1))
    root_crl = make_crl(root, last_update=AT - dt.timedelta(days=1))
    anchors = TrustAnchors([root.cert])
    cases = {
        "soft, one CRL (the budget case)": (DEFAULT_POLICY, (issuing_crl,)),
        "off (no revocation)": (replace(DEFAULT_POLICY, revocation=RevocationMode.OFF), ()),
        "hard, both CRLs": (
            replace(DEFAULT_POLICY, revocation=RevocationMode.HARD),
            (issuing_crl, root_crl),
        ),
    }
    out = {}
    for label, (policy, crls) in cases.items():
        report = validate_bundle(next(bundles), trust_anchors=anchors, policy=policy, at=AT, crls=crls)  # fmt: skip
        assert report.accepted, report.findings
        assert len(report.chain) == 3
        out[label] = _median_ms(
            functools.partial(_validate_next, bundles, anchors, policy, crls),
            rounds,
            calls=10,
        )
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=41)
    parser.add_argument("--rotation-rounds", type=int, default=20)
    args = parser.parse_args()
    configure_logging(json=True, stream=open(os.devnull, "w"))  # noqa: SIM115, PTH123 - process lifetime
    before = validation_cases(args.rounds)
    rotation_s, _ = bench_rotation.wall_time(args.rotation_rounds)
    after = validation_cases(args.rounds)  # before and after the rotations: same machine load
    figures = {k: (min(before[k][0], after[k][0]), min(before[k][1], after[k][1])) for k in before}
    budget_case = next(iter(figures))
    ms = figures[budget_case][0]
    rotation_ms = rotation_s * 1000
    share = ms / rotation_ms
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"3-certificate chain (RSA 2048), median per validation over {args.rounds} rounds x 10 calls (the better of the runs before and after the rotations)")  # fmt: skip
    for label, (wall, cpu) in figures.items():
        print(f"  {label:<34} {wall:6.2f} ms wall  ({cpu:.2f} ms CPU)")
    print(f"median rotation wall time (bench_rotation scene, pin, {args.rotation_rounds} rounds): {rotation_ms:.1f} ms")  # fmt: skip
    ok_ms = ms <= BUDGET_MS
    ok_share = share <= BUDGET_SHARE
    print(f"budget 1: {ms:.2f} ms <= {BUDGET_MS} ms: {'PASS' if ok_ms else 'FAIL'}")
    print(f"budget 2: {share * 100:.1f} % of a rotation <= {BUDGET_SHARE * 100:.0f} %: {'PASS' if ok_share else 'FAIL'}")  # fmt: skip
    return 0 if ok_ms and ok_share else 1


if __name__ == "__main__":
    sys.exit(main())
