"""Re-drive benchmark: batching within Event Grid's limits against one request per event.

Run: ``.venv/bin/python bench/bench_redrive.py [--events N]``.

N dead-lettered certificate events (Event Grid schema, 1 in 50 malformed) are written as a
JSON Lines file and re-driven twice through the real publisher (``EventGridPublisherClient``)
to the devstack Event Grid topic stand-in: once with Event Grid's limits (1 MiB per request:
the baseline of what ``replay --to-topic`` does) and once with a request limit so small that
every event goes alone (what publishing event by event would cost). Both must publish the same
events and report the same malformed ones; the script prints the request counts, wall times and
the ratio of the two. Exit status is non-zero when the outcomes differ or a request was refused.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from devstack.eventgrid import Subscription
from devstack.stack import Devstack
from rotation.adapters.eventgrid import open_publisher
from rotation.entrypoints.redrive import (
    OutgoingEvent,
    RedriveSummary,
    iter_raw_files,
    redrive,
    wire_size,
)

VAULT = "https://kv-redrive.vault.azure.net"
TOPIC = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv-redrive"
NEW_VERSION = "Microsoft.KeyVault.CertificateNewVersionCreated"


def write_events(path: Path, count: int) -> None:
    with path.open("w", encoding="utf-8") as out:
        for i in range(count):
            version = f"{i:032x}"
            vault = "kv-redrive" if i % 50 else "kv-forged"  # 1 in 50: data.Id host mismatch
            event = {
                "id": f"ev-{i}", "topic": TOPIC, "subject": "partner-mtls",
                "eventType": NEW_VERSION, "eventTime": "2026-03-01T12:00:00.1234567Z",
                "dataVersion": "1", "metadataVersion": "1",
                "data": {
                    "Id": f"https://{vault}.vault.azure.net/certificates/partner-mtls/{version}",
                    "VaultName": "kv-redrive", "ObjectType": "Certificate",
                    "ObjectName": "partner-mtls", "Version": version, "NBF": 1772438400,
                    "EXP": 1804060800,
                },
                "deadLetterReason": "MaxDeliveryAttemptsExceeded", "deliveryAttempts": 30,
            }  # fmt: skip
            out.write(json.dumps(event) + "\n")


def run(
    stack: Devstack, path: Path, max_request_bytes: int
) -> tuple[RedriveSummary, int, float, list[str]]:
    with stack.eventgrid_topic(Subscription("bench", "http://127.0.0.1:9/")) as topic:
        publisher = open_publisher(
            topic.endpoint, env={"KEY": topic.key}, key_env="KEY",
            ca_bundle=str(stack.ca_bundle), retry_total=0,
        )  # fmt: skip
        start = time.perf_counter()
        summary = redrive(
            iter_raw_files([path]), publisher, allowed_vault_urls=[VAULT],
            max_request_bytes=max_request_bytes,
        )  # fmt: skip
        elapsed = time.perf_counter() - start
        publisher.close()
        statuses = [e.status for e in topic.log.entries()]
        if any(s != 200 for s in statuses):
            print(f"a publish request was refused: {sorted(set(statuses))}")
            sys.exit(1)
        return summary, len(statuses), elapsed, [e["id"] for e in topic.app.accepted]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, Devstack.start() as stack:
        path = Path(tmp) / "deadletter.jsonl"
        write_events(path, args.events)
        first = json.loads(path.read_text(encoding="utf-8").splitlines()[0])
        alone = wire_size(OutgoingEvent("", "", "eventgrid", first, None)) * 3 // 2  # < 2 events
        single, single_requests, single_s, single_ids = run(stack, path, alone)
        batched, batched_requests, batched_s, batched_ids = run(stack, path, 1024 * 1024)
    same = (
        single_ids == batched_ids
        and [p.location for p in single.malformed] == [p.location for p in batched.malformed]
        and not single.refused
        and not batched.refused
    )
    print(
        f"events: {args.events}, published: {batched.published}, malformed: {len(batched.malformed)}"
    )
    print(f"one event per request: {single_requests} requests, {single_s:.2f} s")
    print(f"batched (1 MiB limit):  {batched_requests} requests, {batched_s:.2f} s")
    print(f"speed-up: {single_s / batched_s:.1f}x; same outcome: {same}")
    if not same:
        sys.exit(1)


if __name__ == "__main__":
    main()
