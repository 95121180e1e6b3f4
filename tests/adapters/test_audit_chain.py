"""The audit hash chain in Azure Tables (Azurite): appends chain, `certrotate audit --verify`
names each kind of tampering at its position, and concurrent writers leave one unbroken chain."""

from __future__ import annotations

import json
import multiprocessing
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from azure.storage.blob import ContainerClient
from click.testing import CliRunner

from devstack.pki import mint_certificate
from rotation import bootstrap
from rotation.adapters.anchors import AnchorLog
from rotation.adapters.tables import (
    CHAINED_FIELDS,
    HEAD_ROW,
    TableAuditSink,
    TableValidationHistory,
    iter_audit_records,
    iter_chain_items,
    open_table,
)
from rotation.config import Settings
from rotation.domain.chain import GENESIS, Break, link_hash
from rotation.entrypoints import invocation
from rotation.entrypoints.cli import cli
from rotation.testing import FrozenClock
from tests.adapters.chain_writer import CERT, VAULT, append_in_child, chain_record

pytestmark = pytest.mark.azurite

AT = datetime(2026, 3, 2, 8, 15, tzinfo=UTC)
PARTITION = f"kv-chain.vault.azure.net|{CERT}"


@pytest.fixture(name="table")
def _table(azurite):
    name = f"chain{uuid.uuid4().hex[:12]}"
    client = open_table(azurite.connection_string, name)
    yield client
    client.delete_table()
    client.close()


def write(table, count: int, *, clock: FrozenClock | None = None) -> list[dict[str, Any]]:
    """Append ``count`` records (a frozen clock: every record at the same instant) and return
    the stored entities in RowKey order, head excluded."""
    sink = TableAuditSink(table, clock=clock or FrozenClock(AT))
    for index in range(count):
        sink.write(chain_record(f"e{index}"))
    return rows(table)


def rows(table) -> list[dict[str, Any]]:
    return [
        e
        for e in table.query_entities("PartitionKey eq @pk", parameters={"pk": PARTITION})
        if e["RowKey"] != HEAD_ROW
    ]


def verify(azurite, table, *args: str):
    result = CliRunner().invoke(
        cli,
        ["audit", "--verify", "--table", table.table_name, "--connection-string-env", "CONN",
         "--json", *args],
        env={"CONN": azurite.connection_string, "ROTATION_VAULTS": ""},
    )  # fmt: skip
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    breaks = [(x["break"]["kind"], x["break"]["position"]) for x in lines if "break" in x]
    summaries = [x for x in lines if "status" in x]
    return result, breaks, summaries


class TestAppend:
    def test_records_chain_from_genesis_and_the_head_names_the_last(self, table):
        """seq 1..n, each prev_hash the previous hash, RowKeys in chain order even when the
        clock does not move, and the head in the same partition naming the last record."""
        stored = write(table, 4)

        assert [e["seq"] for e in stored] == [1, 2, 3, 4]
        assert stored[0]["prev_hash"] == GENESIS
        assert [e["prev_hash"] for e in stored[1:]] == [e["hash"] for e in stored[:-1]]
        assert len({e["RowKey"] for e in stored}) == 4
        head = table.get_entity(PARTITION, HEAD_ROW)
        assert (head["seq"], head["hash"], head["last_row"]) == (
            4,
            stored[-1]["hash"],
            stored[-1]["RowKey"],
        )

    def test_readers_skip_the_head_and_the_chain_properties(self, table):
        """The record readers and the validation history see audit records only."""
        write(table, 2)

        records = list(iter_audit_records(table))

        assert len(records) == 2
        assert all("hash" not in r and "seq" not in r for r in records)
        assert TableValidationHistory(table).last_validated(VAULT, CERT) is None

    def test_a_stale_head_loses_the_compare_and_swap_and_the_write_retries(self, table):
        """A writer whose head read is overtaken backs off once and re-reads it: the chain
        stays whole."""
        pauses: list[float] = []
        sink = TableAuditSink(table, clock=FrozenClock(AT), pause=pauses.append)
        sink.write(chain_record("e0"))
        stale = dict(sink._read_head(PARTITION) or {})
        sink.write(chain_record("e1"))
        calls = []
        real = sink._read_head

        def first_stale(partition):
            calls.append(partition)
            return stale if len(calls) == 1 else real(partition)

        sink._read_head = first_stale  # type: ignore[method-assign]
        sink.write(chain_record("e2"))

        assert len(calls) == 2
        assert len(pauses) == 1
        assert 0 <= pauses[0] <= 0.02  # the first, jittered backoff
        assert [e["seq"] for e in rows(table)] == [1, 2, 3]
        assert verify_items(table) == []


def verify_items(table) -> list[Break]:
    from rotation.domain.chain import ChainVerifier  # noqa: PLC0415

    verifier, found = None, []
    for item in iter_chain_items(table):
        verifier = verifier or ChainVerifier(item.chain, CHAINED_FIELDS)
        if item.head:
            found += verifier.finish(item.link)
        else:
            found += verifier.record(item.position, item.record, item.link)
    return found


class TestVerify:
    def test_an_intact_chain_exits_0(self, azurite, table):
        write(table, 3)

        result, breaks, summaries = verify(azurite, table)

        assert result.exit_code == 0, result.output
        assert breaks == []
        assert summaries == [
            {"chain": PARTITION, "status": "intact", "records": 3, "unchained": 0, "breaks": 0}
        ]

    def test_a_modified_record_is_named(self, azurite, table):
        stored = write(table, 5)
        table.update_entity({**stored[2], "decision": "rejected"})

        result, breaks, _ = verify(azurite, table)

        assert result.exit_code == 1
        assert breaks == [("modified", stored[2]["RowKey"])]

    def test_every_stored_field_is_covered(self, azurite, table):
        """Changing a message, clearing a field or moving recorded_at is a modification."""
        stored = write(table, 4)
        table.update_entity({**stored[0], "message": "nothing to see"})
        table.update_entity({k: v for k, v in stored[1].items() if k != "version"}, mode="replace")
        table.update_entity({**stored[2], "recorded_at": AT - timedelta(days=1)})

        result, breaks, _ = verify(azurite, table)

        assert result.exit_code == 1
        assert breaks == [("modified", e["RowKey"]) for e in stored[:3]]

    def test_a_deleted_record_is_a_gap_at_the_next(self, azurite, table):
        stored = write(table, 5)
        table.delete_entity(PARTITION, stored[2]["RowKey"])

        result, breaks, _ = verify(azurite, table)

        assert result.exit_code == 1
        assert breaks == [("missing", stored[3]["RowKey"])]

    def test_an_inserted_record_is_named(self, azurite, table):
        """A copy of record 2 slipped in after it, and a record without a link after record 4."""
        stored = write(table, 5)
        copy = {**stored[1], "RowKey": stored[1]["RowKey"] + "x"}
        table.create_entity(copy)
        forged = {k: v for k, v in stored[3].items() if k not in {"seq", "prev_hash", "hash"}}
        table.create_entity({**forged, "RowKey": stored[3]["RowKey"] + "x"})

        result, breaks, _ = verify(azurite, table)

        assert result.exit_code == 1
        assert breaks == [
            ("reordered", copy["RowKey"]),
            ("reordered", stored[3]["RowKey"] + "x"),
        ]

    def test_reordered_records_are_named(self, azurite, table):
        """Records 2 and 3 swap places (their contents swapped under each other's RowKey)."""
        stored = write(table, 4)
        two, three = stored[1], stored[2]
        table.upsert_entity({**three, "RowKey": two["RowKey"]}, mode="replace")
        table.upsert_entity({**two, "RowKey": three["RowKey"]}, mode="replace")

        result, breaks, _ = verify(azurite, table)

        assert result.exit_code == 1
        assert breaks == [
            ("missing", two["RowKey"]),
            ("reordered", three["RowKey"]),
            ("missing", stored[3]["RowKey"]),
        ]

    def test_a_deleted_tail_or_a_rewritten_head_disagrees_with_the_head(self, azurite, table):
        stored = write(table, 3)
        table.delete_entity(PARTITION, stored[2]["RowKey"])

        result, breaks, _ = verify(azurite, table)

        assert result.exit_code == 1
        assert breaks == [("head", "head")]

    def test_records_before_the_chain_are_unchained(self, azurite, table):
        """Entities written before the chain (no seq/hash) count as unchained, not errors."""
        table.create_table()
        for minute in range(2):
            table.create_entity({
                "PartitionKey": PARTITION,
                "RowKey": f"{AT - timedelta(days=1, minutes=minute):%Y%m%dT%H%M%S.%fZ}-old",
                "event": "rotation.applied", "decision": "applied", "certificate": CERT,
            })  # fmt: skip
        write(table, 2)

        result, breaks, summaries = verify(azurite, table)

        assert result.exit_code == 0, result.output
        assert breaks == []
        assert summaries[0]["unchained"] == 2
        assert summaries[0]["records"] == 4

    def test_certificate_and_since_narrow_the_walk(self, azurite, table):
        """--since verifies from the first record at or after it; --certificate one chain."""
        clock = FrozenClock(AT)
        sink = TableAuditSink(table, clock=clock)
        for index in range(4):
            clock.advance(timedelta(hours=1))
            sink.write(chain_record(f"e{index}"))

        since = AT + timedelta(hours=2, minutes=30)
        result, breaks, summaries = verify(
            azurite, table, "--certificate", CERT, "--since", f"{since:%Y-%m-%dT%H:%M:%S}"
        )
        other, _, none = verify(azurite, table, "--certificate", "nothing-here")

        assert result.exit_code == 0, result.output
        assert breaks == []
        assert summaries[0]["records"] == 2
        assert other.exit_code == 0
        assert none == []

    def test_usage_errors_exit_2(self, azurite, tmp_path):
        path = tmp_path / "a.jsonl"
        path.write_text("{}\n")
        runner = CliRunner()
        env = {"ROTATION_AUDIT_TABLE": "", "ROTATION_VAULTS": ""}

        no_table = runner.invoke(cli, ["audit", "--verify"], env=env)
        with_file = runner.invoke(cli, ["audit", "--verify", "--file", str(path)], env=env)

        assert no_table.exit_code == 2
        assert "--table" in no_table.output
        assert with_file.exit_code == 2
        assert "--file" in with_file.output


class TestConcurrentWriters:
    def test_writers_in_several_processes_leave_one_unbroken_chain(self, azurite, table):
        """Four spawn children append ten records each to one certificate at once: forty
        records, seq 1..40, every event once, and the chain verifies."""
        table.create_table()
        ctx = multiprocessing.get_context("spawn")
        start, results = ctx.Barrier(4), ctx.Queue()
        children = [
            ctx.Process(
                target=append_in_child,
                args=(azurite.connection_string, table.table_name, me, 10),
                kwargs={"start": start, "results": results},
            )
            for me in range(4)
        ]
        for child in children:
            child.start()
        outcomes = [results.get(timeout=180) for _ in children]
        for child in children:
            child.join(timeout=30)
            assert child.exitcode == 0

        stored = rows(table)
        assert sorted(me for me, _ in outcomes) == [0, 1, 2, 3]
        assert [e["seq"] for e in stored] == list(range(1, 41))
        assert sorted(e["event_id"] for e in stored) == sorted(
            f"w{me}-{i}" for me in range(4) for i in range(10)
        )
        assert verify_items(table) == []
        result, breaks, _ = verify(azurite, table)
        assert (result.exit_code, breaks) == (0, [])


def forge(table, stored: list[dict[str, Any]], index: int, **changes: object) -> None:
    """What a forger with write access to the table can do: change record ``index`` and
    recompute its hash, every later link and the head, so the chain alone verifies."""
    records = {i.position: i.record for i in iter_chain_items(table) if not i.head}
    prev = stored[index - 1]["hash"] if index else GENESIS
    for entity in stored[index:]:
        record = {**records[entity["RowKey"]], **(changes if entity is stored[index] else {})}
        digest = link_hash(record, CHAINED_FIELDS, seq=entity["seq"], prev_hash=prev)
        extra = changes if entity is stored[index] else {}
        table.update_entity({**entity, **extra, "prev_hash": prev, "hash": digest})
        prev = digest
    head = table.get_entity(PARTITION, HEAD_ROW)
    table.update_entity({**head, "hash": prev})


@pytest.fixture(name="container")
def _container(azurite):
    name = f"anchors-{uuid.uuid4().hex[:12]}"
    client = ContainerClient.from_connection_string(azurite.connection_string, name)
    client.create_container()
    yield name
    client.delete_container()
    client.close()


def anchor(azurite, table, container: str):
    return CliRunner().invoke(
        cli,
        ["audit", "--anchor", container, "--table", table.table_name,
         "--connection-string-env", "CONN"],
        env={"CONN": azurite.connection_string, "ROTATION_VAULTS": ""},
    )  # fmt: skip


class TestAnchors:
    def test_anchored_heads_verify_and_land_in_the_daily_blob(self, azurite, table, container):
        """Two anchorings the same day append to one blob (the second does not truncate it)."""
        write(table, 2)
        first = anchor(azurite, table, container)
        TableAuditSink(table, clock=FrozenClock(AT)).write(chain_record("e2"))

        anchored = anchor(azurite, table, container)
        result, breaks, _ = verify(azurite, table, "--anchors", container)

        assert (first.exit_code, anchored.exit_code) == (0, 0), anchored.output
        assert "anchored 1 chain head(s)" in anchored.stderr
        assert (result.exit_code, breaks) == (0, [])
        stored = AnchorLog.from_connection_string(azurite.connection_string, container).read()
        hashes = [e["hash"] for e in rows(table)]
        assert stored == {PARTITION: {2: frozenset({hashes[1]}), 3: frozenset({hashes[2]})}}

    def test_a_consistent_forgery_passes_the_chain_but_not_the_anchors(
        self, azurite, table, container
    ):
        stored = write(table, 4)
        anchor(azurite, table, container)
        forge(table, stored, 1, decision="rejected")

        plain, plain_breaks, _ = verify(azurite, table)
        result, breaks, _ = verify(azurite, table, "--anchors", container)

        assert (plain.exit_code, plain_breaks) == (0, [])  # the limit the anchors cover
        assert result.exit_code == 1
        assert breaks == [("anchor", stored[3]["RowKey"])]

    def test_a_cut_chain_with_a_rewritten_head_is_caught(self, azurite, table, container):
        stored = write(table, 4)
        anchor(azurite, table, container)
        for entity in stored[2:]:
            table.delete_entity(PARTITION, entity["RowKey"])
        head = table.get_entity(PARTITION, HEAD_ROW)
        table.update_entity({**head, "seq": 2, "hash": stored[1]["hash"]})

        result, breaks, _ = verify(azurite, table, "--anchors", container)

        assert result.exit_code == 1
        assert breaks == [("anchor", "head")]

    def test_a_deleted_chain_is_caught(self, azurite, table, container):
        stored = write(table, 2)
        anchor(azurite, table, container)
        for entity in [*stored, table.get_entity(PARTITION, HEAD_ROW)]:
            table.delete_entity(PARTITION, entity["RowKey"])

        result, breaks, _ = verify(azurite, table, "--anchors", container)

        assert result.exit_code == 1
        assert breaks == [("anchor", "head")]

    def test_anchors_without_verify_is_a_usage_error(self, azurite, table, container):
        result = CliRunner().invoke(
            cli, ["audit", "--anchors", container, "--table", "t"], env={"ROTATION_VAULTS": ""}
        )

        assert result.exit_code == 2
        assert "--verify" in result.output


def settings(tmp_path, connection: str, table: str, container: str) -> Settings:
    roots = tmp_path / "roots.pem"
    roots.write_bytes(mint_certificate("anchor test root", ca=True).pem)
    return Settings.from_env({
        "ROTATION_VAULTS": VAULT, "ROTATION_TRUST_ANCHORS": str(roots),
        "ROTATION_APIM_SERVICES": "/subscriptions/s/resourceGroups/rg/providers/"
                                  "Microsoft.ApiManagement/service/apim",
        "ROTATION_AUDIT_TABLE": table, "ROTATION_AUDIT_CONNECTION": connection,
        "ROTATION_AUDIT_ANCHORS": container,
    })  # fmt: skip


class TestSweepAnchoring:
    def test_the_sweeps_anchoring_appends_every_head(self, azurite, table, container, tmp_path):
        """``ROTATION_AUDIT_ANCHORS`` set: the built anchoring appends each chain's head."""
        write(table, 2)
        chosen = settings(tmp_path, azurite.connection_string, table.table_name, container)

        anchoring = bootstrap.build_anchoring(chosen)

        assert anchoring is not None
        assert anchoring() == 1
        stored = AnchorLog.from_connection_string(azurite.connection_string, container).read()
        assert stored == {PARTITION: {2: frozenset({rows(table)[-1]["hash"]})}}

    def test_the_cli_sweep_anchors_too(self, azurite, table, container, tmp_path, devstack):
        """`certrotate reconcile` anchors like the timer: one line on stderr, the heads stored."""
        write(table, 2)

        result = reconcile_cli(devstack, tmp_path, azurite, table, container)

        assert result.exit_code == 0, result.output
        assert f"anchored 1 audit chain head(s) in {container}" in result.stderr
        stored = AnchorLog.from_connection_string(azurite.connection_string, container).read()
        assert stored == {PARTITION: {2: frozenset({rows(table)[-1]["hash"]})}}

    def test_a_failed_cli_anchoring_is_a_warning_not_a_failure(
        self, azurite, table, tmp_path, devstack
    ):
        """A missing anchor container: one warning line (no connection string), exit 0."""
        write(table, 1)

        result = reconcile_cli(devstack, tmp_path, azurite, table, "absent-box")

        assert result.exit_code == 0, result.output
        assert "warning: the audit chains were not anchored: DependencyError" in result.stderr
        assert "AccountKey" not in result.output

    def test_no_container_no_anchoring(self, tmp_path):
        chosen = settings(tmp_path, "UseDevelopmentStorage=true", "audit", "")

        assert bootstrap.build_anchoring(chosen) is None

    def test_a_failed_anchoring_is_logged_not_raised(self, azurite, table, tmp_path, monkeypatch):
        """A missing container fails the anchoring; the sweep's hook logs it and returns, and
        the log line carries no connection string."""
        write(table, 1)
        chosen = settings(tmp_path, azurite.connection_string, table.table_name, "absent-box")
        monkeypatch.setattr(invocation, "read_environment", dict)
        monkeypatch.setattr(Settings, "from_env", classmethod(lambda cls, _: chosen))
        logged: list[tuple[str, dict[str, object]]] = []

        class Capture:
            def info(self, event: str, **kw: object) -> None:
                logged.append((event, kw))

            warning = info

        monkeypatch.setattr(invocation, "_log", Capture())
        invocation._anchor_audit_chains()

        ((event, fields),) = logged
        assert event == "audit_anchoring_failed"
        assert fields["error"] == "DependencyError"
        assert "does not exist" in str(fields["message"])
        assert "AccountKey" not in str(fields)


def reconcile_cli(devstack, tmp_path, azurite, table, container: str):
    """`certrotate reconcile` against the (empty) devstack with the audit table and anchors."""
    roots = tmp_path / "roots.pem"
    roots.write_bytes(mint_certificate("anchor test root", ca=True).pem)
    env = {
        **devstack.env(), "ROTATION_TRUST_ANCHORS": str(roots), "ROTATION_CANARY": "off",
        "ROTATION_AUDIT_TABLE": table.table_name, "ROTATION_AUDIT_CONNECTION": azurite.connection_string,
        "ROTATION_AUDIT_ANCHORS": container,
    }  # fmt: skip
    return CliRunner(env=env).invoke(cli, ["reconcile"])
