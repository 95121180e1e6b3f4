"""Benchmark: the canary's mTLS probe vs a bare ``ssl`` client doing the same work.

Run with ``.venv/bin/python bench/bench_canary.py`` (needs Debian's ``nginx``; ``make test``
installs it). One run mints a PKI, starts nginx on loopback with ``ssl_verify_client on`` and
times, interleaved round by round so both see the same machine load:

* baseline: Python's ``ssl`` with the client certificate and key in files (which the canary
  must not write), TLS handshake with SNI, server chain and name checked against the test CA,
  one ``GET``, the status line read;
* certrotate: ``TlsProber.probe`` with the same identity held in memory (pyOpenSSL), which also
  looks issuers up in the system store, records alerts, CA names and the server certificate,
  and parses the response with h11.

It also times eight probes one after another against ``probe_all`` of the same eight (the
rollout probes every backend of a rotation at once). It prints the medians and the ratios and
exits non-zero when one probe costs more than 1.5x the bare client (the fan-out is not gated:
on 2 cores both ends of every handshake share the CPUs).
"""

from __future__ import annotations

import socket
import ssl
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cryptography import x509

from devstack.pki import to_pem_bundle
from rotation.adapters.canary import ProbeRequest, TlsProber
from tests.canary.servers import CanaryPki, mint_canary_pki, start_nginx

BUDGET = 1.5
ROUNDS = 15
CALLS = 4
FAN_OUT = 8


def _per_call(fn: Callable[[], object], calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        pki = mint_canary_pki(directory)
        backend_ca = directory / "backend-ca.pem"
        backend_ca.write_bytes(pki.backend_root.pem)
        bundle = directory / "client.pem"  # the baseline needs files; the canary does not
        bundle.write_bytes(to_pem_bundle(pki.trusted, pki.chain_of(pki.trusted)))
        nginx = start_nginx(directory / "nginx", pki.server, backend_ca)
        try:
            return _run(nginx.port, pki, bundle)
        finally:
            nginx.stop()


def _run(port: int, pki: CanaryPki, bundle: Path) -> int:
    url = f"https://localhost:{port}/api/health"
    server_ca = tuple(x509.load_pem_x509_certificates(pki.server.ca_pem.read_bytes()))
    prober = TlsProber(timeout=5.0, server_ca=server_ca)
    request = ProbeRequest(url=url, identity=pki.identity(pki.trusted))

    def bare() -> int:
        context = ssl.create_default_context(cafile=str(pki.server.ca_pem))
        context.load_cert_chain(bundle)
        with (
            socket.create_connection(("localhost", port), timeout=5) as raw,
            context.wrap_socket(raw, server_hostname="localhost") as tls,
        ):
            tls.sendall(
                b"GET /api/health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
            )
            return int(tls.recv(64).split()[1])

    def ours() -> int:
        status = prober.probe(request).http_status
        assert status == 200, status
        return status

    assert bare() == 200
    assert ours() == 200
    baseline, mine, sequential, concurrent = [], [], [], []
    for _ in range(ROUNDS):
        baseline.append(_per_call(bare, CALLS))
        mine.append(_per_call(ours, CALLS))
        start = time.perf_counter()
        for _ in range(FAN_OUT):
            ours()
        sequential.append(time.perf_counter() - start)
        start = time.perf_counter()
        observations = prober.probe_all([request] * FAN_OUT)
        concurrent.append(time.perf_counter() - start)
        assert [o.http_status for o in observations] == [200] * FAN_OUT
    b, m = statistics.median(baseline), statistics.median(mine)
    s, c = statistics.median(sequential), statistics.median(concurrent)
    print(f"one probe:  bare ssl {b * 1000:.2f} ms, canary {m * 1000:.2f} ms -> {m / b:.2f}x")
    print(
        f"{FAN_OUT} probes:   one by one {s * 1000:.1f} ms, probe_all {c * 1000:.1f} ms "
        f"-> {c / s:.2f}x"
    )
    if m / b > BUDGET:
        print(f"over budget: {m / b:.2f}x > {BUDGET}x")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
