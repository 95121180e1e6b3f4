"""Audit chain verification: records per second and peak memory at 10,000 vs 100,000 records.

Run: ``.venv/bin/python bench/bench_audit_chain.py [--sizes 10000,100000] [--chains 10]``.

Starts Azurite (``node_modules/.bin/azurite``, in memory, loopback) and, per size, fills a
fresh table with N chained audit records spread over ``--chains`` certificates (each record
hashed and linked by ``rotation.domain.chain`` exactly as ``TableAuditSink`` does, and written
100 per table transaction: the fill is not timed). Then it walks the table as
``certrotate audit --verify`` does (``iter_chain_items`` + one ``ChainVerifier`` per chain) and
measures:

- the walk's wall time (records per second), against a baseline measured in the same run: the
  same table read through the SDK's ``list_entities`` with no verification;
- the walk's ``tracemalloc`` peak in a second, separate pass.

Prints the throughput ratio (verify vs raw read) per size and the peak-memory ratio of the
largest size against the smallest. Exit status is non-zero when a chain does not verify or
the memory ratio exceeds 2 (verification must use constant memory, not grow with the trail).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import tracemalloc
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from azure.data.tables import TableClient

from rotation.adapters.tables import (
    CHAINED_FIELDS,
    HEAD_ROW,
    iter_chain_items,
    open_table,
)
from rotation.domain.chain import GENESIS, ChainVerifier, link_hash

ROOT = Path(__file__).resolve().parent.parent
AZURITE = ROOT / "node_modules" / ".bin" / "azurite"
ACCOUNT = "devstoreaccount1"
# Azurite's well-known development key (public, documented; not a secret).
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
START = datetime(2026, 3, 2, tzinfo=UTC)
BATCH = 100
MEMORY_RATIO_LIMIT = 2.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


@contextmanager
def azurite() -> Iterator[str]:
    """A running in-memory Azurite table service; yields its connection string."""
    if not AZURITE.exists():
        sys.exit(f"Azurite not installed ({AZURITE}); run `npm install`")
    port = _free_port()
    node = shutil.which("node")
    env = (
        {**os.environ, "PATH": f"{Path(node).parent}:{os.environ.get('PATH', '')}"}
        if node
        else None
    )
    with tempfile.TemporaryDirectory() as cwd:
        process = subprocess.Popen(
            [str(AZURITE), "--tableHost", "127.0.0.1", "--tablePort", str(port),
             "--blobPort", str(_free_port()), "--queuePort", str(_free_port()),
             "--inMemoryPersistence", "--skipApiVersionCheck", "--loose", "--silent"],
            cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 60
            while not _accepts(port):
                if process.poll() is not None or time.monotonic() > deadline:
                    sys.exit("Azurite did not start")
                time.sleep(0.1)  # polling a starting server, not synchronising a test
            yield (
                f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={KEY};"
                f"TableEndpoint=http://127.0.0.1:{port}/{ACCOUNT};"
            )
        finally:
            process.terminate()  # in memory: nothing to flush, idle keep-alives need no grace
            try:
                process.wait(timeout=1)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


def fill(client: TableClient, size: int, chains: int) -> None:
    """``size`` chained records over ``chains`` partitions, plus each partition's head."""
    client.create_table()
    per_chain = size // chains
    for chain in range(chains):
        partition = f"kv-bench.vault.azure.net|cert-{chain:03d}"
        prev, ops = GENESIS, []
        for seq in range(1, per_chain + 1):
            at = START + timedelta(seconds=seq)
            stamp = at.isoformat().replace("+00:00", "Z")
            record = {
                "event": "rotation.applied", "decision": "applied", "trigger": "eventgrid",
                "event_id": str(uuid.uuid4()), "vault": "https://kv-bench.vault.azure.net",
                "certificate": f"cert-{chain:03d}", "version": f"v{seq}",
                "findings": json.dumps(["binding.versionless"]), "targets": "[]", "strategy": "pin",
                "dry_run": False, "duration_ms": 12.5, "recorded_at": at,
            }  # fmt: skip
            hashed = {
                **record,
                "findings": ["binding.versionless"],
                "targets": [],
                "recorded_at": stamp,
            }  # as the reader decodes them
            digest = link_hash(hashed, CHAINED_FIELDS, seq=seq, prev_hash=prev)
            ops.append(("create", {
                "PartitionKey": partition, "RowKey": f"{at:%Y%m%dT%H%M%S.%fZ}-{seq:08d}",
                **record, "seq": seq, "prev_hash": prev, "hash": digest,
            }))  # fmt: skip
            prev = digest
            if len(ops) == BATCH:
                client.submit_transaction(ops)
                ops = []
        ops.append(("create", {"PartitionKey": partition, "RowKey": HEAD_ROW, "seq": per_chain,
                               "hash": prev}))  # fmt: skip
        client.submit_transaction(ops)


def walk(client: TableClient) -> tuple[int, int]:
    """(records, breaks) over every chain, as ``certrotate audit --verify`` walks them."""
    current: ChainVerifier | None = None
    records = breaks = 0
    for item in iter_chain_items(client):
        if current is None or current.chain != item.chain:
            current = ChainVerifier(item.chain, CHAINED_FIELDS)
        if item.head:
            breaks += len(current.finish(item.link))
            current = None
            continue
        records += 1
        breaks += len(current.record(item.position, item.record, item.link))
    return records, breaks


def raw_read(client: TableClient) -> int:
    """Entities read through the SDK with nothing else done (the baseline)."""
    return sum(1 for _ in client.list_entities())


def measure(connection: str, size: int, chains: int) -> dict[str, float]:
    """Fill a table with ``size`` records; time the raw read and the walk; the walk's peak."""
    client = open_table(connection, f"bench{uuid.uuid4().hex[:12]}")
    fill(client, size, chains)
    t0 = time.perf_counter()
    read = raw_read(client)
    t1 = time.perf_counter()
    records, breaks = walk(client)
    t2 = time.perf_counter()
    tracemalloc.start()
    walk(client)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    client.delete_table()
    client.close()
    if breaks or records != size or read != size + chains:
        sys.exit(f"size {size}: {records} records, {breaks} breaks, {read} entities read")
    return {
        "verify_rps": size / (t2 - t1),
        "raw_rps": size / (t1 - t0),
        "peak_kib": peak / 1024,
    }


def main() -> int:
    """Run the benchmark; 0 when every chain verified and memory stayed constant."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000", help="records per run, comma-separated")
    parser.add_argument("--chains", type=int, default=10, help="certificates (chains) per run")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    results = {}
    with azurite() as connection:
        for size in sizes:
            results[size] = measure(connection, size, args.chains)
            r = results[size]
            print(
                f"{size:>7} records in {args.chains} chains: verify {r['verify_rps']:,.0f} rec/s, "
                f"raw read {r['raw_rps']:,.0f} rec/s (ratio {r['raw_rps'] / r['verify_rps']:.2f}x "
                f"the raw read's time), peak {r['peak_kib']:,.0f} KiB"
            )
    small, large = results[min(sizes)], results[max(sizes)]
    ratio = large["peak_kib"] / small["peak_kib"]
    print(
        f"peak memory {max(sizes):,} vs {min(sizes):,} records: {ratio:.2f}x "
        f"(limit {MEMORY_RATIO_LIMIT}x); throughput {large['verify_rps'] / small['verify_rps']:.2f}x"
    )
    return 0 if ratio <= MEMORY_RATIO_LIMIT else 1


if __name__ == "__main__":
    sys.exit(main())
