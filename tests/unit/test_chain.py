"""The audit hash chain's pure functions (rotation.domain.chain) on plain values."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta

import pytest

from rotation.domain.chain import GENESIS, BreakKind, ChainVerifier, Link, canonical, link_hash

FIELDS = ("event", "decision", "certificate", "findings", "not_after", "recorded_at")
AT = datetime(2026, 3, 2, 8, 15, tzinfo=UTC)


def records(n: int) -> list[tuple[str, dict[str, object], Link | None]]:
    """A well-formed chain of ``n`` records: (position, record, link)."""
    out: list[tuple[str, dict[str, object], Link | None]] = []
    prev = GENESIS
    for seq in range(1, n + 1):
        record: dict[str, object] = {
            "event": "rotation.applied",
            "decision": "applied",
            "certificate": "partner-mtls",
            "findings": ["binding.versionless"],
            "not_after": AT + timedelta(days=seq),
            "recorded_at": (AT + timedelta(seconds=seq)).isoformat().replace("+00:00", "Z"),
        }
        digest = link_hash(record, FIELDS, seq=seq, prev_hash=prev)
        out.append((f"row{seq}", record, Link(seq, prev, digest)))
        prev = digest
    return out


def verify(items, head: Link | None, *, partial: bool = False):
    verifier = ChainVerifier("kv|partner-mtls", FIELDS, partial=partial)
    found = [
        b for position, record, link in items for b in verifier.record(position, record, link)
    ]
    return verifier, found + verifier.finish(head)


def kinds(breaks) -> list[tuple[str, str]]:
    return [(str(b.kind), b.position) for b in breaks]


class TestCanonical:
    def test_is_key_sorted_compact_json_of_the_set_fields_plus_the_link(self):
        record = {"certificate": "c", "event": "e", "decision": None, "extra": "not covered"}

        text = canonical(record, FIELDS, seq=3, prev_hash="ab")

        assert json.loads(text) == {"certificate": "c", "event": "e", "seq": 3, "prev_hash": "ab"}
        assert text == b'{"certificate":"c","event":"e","prev_hash":"ab","seq":3}'
        assert link_hash(record, FIELDS, seq=3, prev_hash="ab") == hashlib.sha256(text).hexdigest()

    def test_datetimes_and_tuples_encode_as_their_stored_form(self):
        aware = datetime(2026, 3, 2, 9, 15, tzinfo=UTC)
        assert canonical(
            {"not_after": aware, "findings": ("a",)}, FIELDS, seq=1, prev_hash=GENESIS
        ) == canonical(
            {"not_after": "2026-03-02T09:15:00Z", "findings": ["a"]},
            FIELDS,
            seq=1,
            prev_hash=GENESIS,
        )

    def test_a_field_added_later_does_not_change_old_hashes_but_clearing_one_does(self):
        record = {"event": "e", "certificate": "c"}
        before = link_hash(record, FIELDS, seq=1, prev_hash=GENESIS)

        assert link_hash(record, (*FIELDS, "topic"), seq=1, prev_hash=GENESIS) == before
        assert link_hash({"event": "e"}, FIELDS, seq=1, prev_hash=GENESIS) != before

    def test_bad_input_is_named(self):
        with pytest.raises(ValueError, match="seq starts at 1"):
            canonical({}, FIELDS, seq=0, prev_hash=GENESIS)
        with pytest.raises(ValueError, match="must not include seq"):
            canonical({"seq": 1}, ("seq",), seq=1, prev_hash=GENESIS)
        with pytest.raises(ValueError, match="not JSON-encodable"):
            canonical({"event": object()}, FIELDS, seq=1, prev_hash=GENESIS)


class TestChainVerifier:
    def test_an_intact_chain_has_no_breaks(self):
        items = records(5)

        verifier, breaks = verify(items, items[-1][2])

        assert breaks == []
        assert (verifier.records, verifier.unchained, verifier.breaks) == (5, 0, 0)

    def test_a_modified_record_is_named_at_its_position(self):
        items = records(5)
        items[2][1]["decision"] = "rejected"

        _, breaks = verify(items, items[-1][2])

        assert kinds(breaks) == [("modified", "row3")]
        assert breaks[0].seq == 3

    def test_a_modified_record_with_a_recomputed_hash_is_named_by_its_successor(self):
        items = records(5)
        position, record, link = items[2]
        assert link is not None
        record["decision"] = "rejected"
        rehashed = link_hash(record, FIELDS, seq=3, prev_hash=link.prev_hash)
        items[2] = (position, record, Link(3, link.prev_hash, rehashed))

        _, breaks = verify(items, items[-1][2])

        assert kinds(breaks) == [("modified", "row3")]
        assert "seq 4" in breaks[0].detail

    def test_deleted_records_are_a_gap_at_the_next_record(self):
        items = records(6)
        del items[2:4]

        _, breaks = verify(items, items[-1][2])

        assert kinds(breaks) == [("missing", "row5")]
        assert "seq 3..4" in breaks[0].detail

    def test_deleted_first_record_is_a_gap_from_genesis(self):
        items = records(3)

        _, breaks = verify(items[1:], items[-1][2])

        assert kinds(breaks) == [("missing", "row2")]

    def test_a_moved_or_duplicated_record_is_reordered(self):
        items = records(4)
        items[1], items[2] = items[2], items[1]

        _, breaks = verify(items, items[-1][2])

        assert ("reordered", "row2") in kinds(breaks)
        assert kinds(breaks)[0] == ("missing", "row3")

    def test_an_unlinked_record_inside_the_chain_is_an_insertion(self):
        items = records(3)
        items.insert(2, ("forged", {"event": "rotation.applied"}, None))

        _, breaks = verify(items, items[-1][2])

        assert kinds(breaks) == [("reordered", "forged")]

    def test_records_before_the_chain_are_unchained_not_errors(self):
        items = [("old1", {"event": "e"}, None), ("old2", {"event": "e"}, None), *records(2)]

        verifier, breaks = verify(items, items[-1][2])

        assert breaks == []
        assert (verifier.records, verifier.unchained) == (4, 2)

    def test_a_deleted_tail_leaves_the_head_disagreeing(self):
        items = records(4)

        _, breaks = verify(items[:-1], items[-1][2])

        assert kinds(breaks) == [("head", "head")]
        assert "seq 4" in breaks[0].detail
        assert "seq 3" in breaks[0].detail

    def test_a_rewritten_head_or_a_missing_head_is_a_break(self):
        items = records(2)
        forged = Link(2, "", "f" * 64)

        assert kinds(verify(items, forged)[1]) == [("head", "head")]
        assert kinds(verify(items, None)[1]) == [("head", "head")]
        assert kinds(verify([], forged)[1]) == [("head", "head")]

    def test_a_partial_read_trusts_its_first_record(self):
        items = records(5)

        _, breaks = verify(items[2:], items[-1][2], partial=True)

        assert breaks == []

    def test_breaks_are_json_ready(self):
        items = records(2)
        items[0][1]["event"] = "x"

        _, breaks = verify(items, items[-1][2])

        assert breaks[0].as_dict() == {
            "kind": "modified",
            "chain": "kv|partner-mtls",
            "position": "row1",
            "seq": 1,
            "detail": "the record's content does not match its hash",
        }
        assert breaks[0].kind is BreakKind.MODIFIED


class TestAnchors:
    def test_a_record_whose_hash_differs_from_its_anchor_is_named(self):
        items = records(3)
        anchored = {2: frozenset({"f" * 64})}
        verifier = ChainVerifier("c", FIELDS, anchors=anchored)

        found = [b for p, r, link in items for b in verifier.record(p, r, link)]

        assert kinds(found) == [("anchor", "row2")]

    def test_matching_anchors_pass(self):
        items = records(3)
        link = items[1][2]
        assert link is not None
        verifier = ChainVerifier("c", FIELDS, anchors={2: frozenset({link.hash})})

        found = [b for p, r, lk in items for b in verifier.record(p, r, lk)]

        assert found + verifier.finish(items[-1][2]) == []

    def test_an_anchored_seq_past_the_end_is_a_cut(self):
        items = records(2)
        verifier = ChainVerifier("c", FIELDS, anchors={5: frozenset({"a" * 64})})
        for p, r, link in items:
            verifier.record(p, r, link)

        assert kinds(verifier.finish(items[-1][2])) == [("anchor", "head")]
