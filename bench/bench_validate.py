"""Benchmark: certrotate's validation of a 3-certificate chain vs cryptography's bare verifier.

Run with ``.venv/bin/python bench/bench_validate.py``. One run mints a leaf, an intermediate and
a root (RSA 2048), then times, interleaved round by round so both see the same machine load:

* baseline: what validating a chain *at a given time* costs with bare cryptography: build the
  ``ClientVerifier`` for that time (``PolicyBuilder().store().time().extension_policies()``)
  and ``verify(leaf, [intermediate])``. The validation time is an input that changes with
  every rotation (``at=clock.now()``), so certrotate builds its verifier per call and the
  baseline does the same. For information the script also prints the ratio against a verifier
  built once and reused (which only a caller validating many chains at one fixed instant
  could do); that figure is not gated;
* certrotate: ``validate_bundle`` on an already parsed bundle (every check of the policy, the
  report with its summaries; revocation ``off`` and no CRL, since the baseline checks none);
* from bytes: ``PolicyValidator.validate`` on the PKCS#12 as Key Vault stores it, against the
  bare ``pkcs12.load_pkcs12`` + ``verify`` on the same bytes.

It prints the medians and the ratios, and exits non-zero when a ratio exceeds the 1.5x budget
(docs/architecture.md, "Budgets").
"""

from __future__ import annotations

import datetime as dt
import itertools
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import replace

from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509 import verification as xv

from devstack.pki import mint_certificate, mint_chain, to_pem_bundle, to_pkcs12
from rotation.domain.bundle import parse_bundle
from rotation.domain.model import SecretMaterial
from rotation.domain.policy import DEFAULT_POLICY, RevocationMode
from rotation.domain.validation import CA_POLICY, EE_POLICY, PolicyValidator, validate_bundle

BUDGET = 1.5
ROUNDS = 41
LEAVES = 64


def _per_call(fn: Callable[[], object], calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls


def _race(
    name: str,
    baseline: Callable[[], object],
    ours: Callable[[], object],
    calls: int,
    *,
    gated: bool = True,
) -> bool:
    for fn in (baseline, ours):  # warm caches and lazily parsed fields on both sides
        _per_call(fn, 20)
    base, mine = [], []
    for _ in range(ROUNDS):
        base.append(_per_call(baseline, calls))
        mine.append(_per_call(ours, calls))
    b, m = statistics.median(base), statistics.median(mine)
    ratio = m / b
    verdict = ("PASS" if ratio <= BUDGET else "FAIL") if gated else "(info)"
    print(f"{name}: baseline {b * 1e6:9.1f} us  certrotate {m * 1e6:9.1f} us  "
          f"ratio {ratio:4.2f}x  (budget {BUDGET}x) {verdict}")  # fmt: skip
    return ratio <= BUDGET


def main() -> int:
    at = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
    leaf, intermediate, root = mint_chain(depth=3)
    p12 = to_pkcs12(leaf, [intermediate])
    # Distinct leaves (same key, so minting is cheap), cycled on both sides: no per-leaf cache
    # can flatter either; the CA chain is shared, as it is in production.
    leaves = [leaf] + [
        mint_certificate(f"client-{i}.certrotate.test", issuer=intermediate, key=leaf.key)
        for i in range(LEAVES - 1)
    ]
    bundles = [parse_bundle(to_pem_bundle(one, [intermediate])) for one in leaves]
    anchors = (root.cert,)
    policy = replace(DEFAULT_POLICY, revocation=RevocationMode.OFF)
    store = xv.Store(list(anchors))

    def build_verifier() -> xv.ClientVerifier:
        return (
            xv.PolicyBuilder()
            .store(store)
            .time(at)
            .extension_policies(ca_policy=CA_POLICY, ee_policy=EE_POLICY)
            .build_client_verifier()
        )

    verifier = build_verifier()
    for bundle in bundles:
        report = validate_bundle(bundle, trust_anchors=anchors, policy=policy, at=at)
        assert report.accepted, report.findings
        assert len(report.chain) == 3
    pairs = itertools.cycle([(b.leaf, list(b.others)) for b in bundles])
    cycle = itertools.cycle(bundles)
    material = SecretMaterial(content_type="application/x-pkcs12", value=p12)
    validator = PolicyValidator(anchors, policy)

    def bare_from_bytes() -> object:
        loaded = pkcs12.load_pkcs12(p12, None)
        extra = [c.certificate for c in loaded.additional_certs]
        return verifier.verify(loaded.cert.certificate, extra)  # type: ignore[union-attr]

    print(f"3-certificate chain (RSA 2048), {ROUNDS} interleaved rounds, medians per call")
    ok = _race(
        "parsed bundle",
        lambda: build_verifier().verify(*next(pairs)),
        lambda: validate_bundle(next(cycle), trust_anchors=anchors, policy=policy, at=at),
        calls=300,
    )
    _race(
        "parsed bundle vs a reused verifier (informational, not gated)",
        lambda: verifier.verify(*next(pairs)),
        lambda: validate_bundle(next(cycle), trust_anchors=anchors, policy=policy, at=at),
        calls=300,
        gated=False,
    )
    ok &= _race(
        "PKCS#12 bytes",
        bare_from_bytes,
        lambda: validator.validate(material, at=at),
        calls=3,
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
