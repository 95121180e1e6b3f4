"""The inbound decisions (rotation.domain.inbound) on plain values: what is added where, what
retires when (overlap or expiry, never the last), unknown "added at", several blocks and
versions, and the trail's "added at"."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from rotation.domain.inbound import (
    PolicyDocument,
    PolicyScope,
    added_at,
    plan_document,
    plan_inbound,
    retirable,
    settle,
)
from rotation.domain.model import (
    AuditRecord,
    AuditTarget,
    CertificateVersion,
    Decision,
    TargetKind,
    TargetResult,
    Trigger,
)
from rotation.domain.policies import PolicyDocumentError, find_thumbprints

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
WEEK = timedelta(days=7)
VAULT = "https://kv-demo.vault.azure.net"
SVC = "/subscriptions/1/resourceGroups/rg/providers/Microsoft.ApiManagement/service/apim-one"
T1, T2, T3, OTHER = "A1" * 20, "B2" * 20, "C3" * 20, "D4" * 20


def version(
    label: str, thumbprint: str, *, created_days_ago: int, expires: datetime | None = None
):
    return CertificateVersion(
        vault_url=VAULT, name="caller", version=label, enabled=True,
        created=NOW - timedelta(days=created_days_ago), thumbprint_sha1=thumbprint,
        expires=expires or NOW + timedelta(days=60),
    )  # fmt: skip


V1 = version("v1", T1, created_days_ago=60)
V2 = version("v2", T2, created_days_ago=10)
V3 = version("v3", T3, created_days_ago=1)


def block(*thumbprints: str, indent: str = "    ") -> str:
    identities = "".join(f'{indent}    <identity thumbprint="{t}" />\n' for t in thumbprints)
    return (
        f"{indent}<validate-client-certificate>\n{indent}  <identities>\n"
        f"{identities}{indent}  </identities>\n{indent}</validate-client-certificate>\n"
    )


def doc(body: str, scope: PolicyScope = PolicyScope.GLOBAL, rid: str = "") -> PolicyDocument:
    value = f"<policies>\n  <inbound>\n{body}  </inbound>\n</policies>"
    resource = rid or f"{SVC}/policies/policy"
    return PolicyDocument(service_id=SVC, scope=scope, resource_id=resource, value=value)


def plan(document: PolicyDocument, candidate=V2, versions=(V1, V2), added=None, now=NOW):
    return plan_document(document, versions, candidate, now=now, overlap=WEEK, added=added)


class TestAdd:
    def test_the_candidate_goes_next_to_the_old_identity_and_nothing_else_changes(self):
        document = doc(block(T1, OTHER))
        edit, notes = plan(document)
        assert edit is not None
        assert edit.value == document.value.replace(
            f'<identity thumbprint="{T1}" />\n',
            f'<identity thumbprint="{T1}" />\n        <identity thumbprint="{T2}" />\n',
        )
        assert (edit.before, edit.after, edit.added, edit.removed) == ((T1,), (T1, T2), (T2,), ())
        assert edit.expected_value == document.value
        assert notes == ()

    def test_a_document_pinning_no_version_is_not_planned(self):
        assert plan(doc(block(OTHER))) == (None, ())

    def test_a_document_already_pinning_the_candidate_is_unchanged(self):
        edit, _ = plan(doc(block(T1, T2)))
        assert edit is not None
        assert not edit.changes
        assert edit.value == edit.expected_value

    def test_several_blocks_each_learn_it_next_to_their_newest_pinned_version(self):
        # block one pins v1 and v2 (newest v2), block two pins v1 only, block three another
        # certificate: v3 goes after v2 in one, after v1 in two, nowhere in three.
        document = doc(block(T1, T2) + block(T1) + block(OTHER))
        edit, _ = plan(document, candidate=V3, versions=(V1, V2, V3))
        assert edit is not None
        pins = find_thumbprints(edit.value)
        by_block: dict[int, list[str]] = {}
        for pin in pins:
            by_block.setdefault(pin.block_offset, []).append(pin.thumbprint)
        assert list(by_block.values()) == [[T1, T2, T3], [T1, T3], [OTHER]]
        assert edit.added == (T3,)

    def test_an_unparsable_document_names_its_resource(self):
        document = PolicyDocument(
            service_id=SVC, scope=PolicyScope.API, resource_id=f"{SVC}/apis/echo/policies/policy",
            value=f'<policies><identity thumbprint="{T1}"></policies>',
        )  # fmt: skip
        with pytest.raises(PolicyDocumentError, match="apis/echo/policies/policy"):
            plan(document)


class TestRetire:
    def test_before_the_overlap_the_old_identity_stays(self):
        document = doc(block(T1, T2))
        added = {(document.resource_id.lower(), T2): NOW - timedelta(days=6)}
        edit, notes = plan(document, added=added)
        assert edit is not None
        assert not edit.changes
        assert notes == ()

    def test_after_the_overlap_the_old_identity_goes_and_the_newest_stays(self):
        document = doc(block(T1, T2, OTHER))
        added = {(document.resource_id.lower(), T2): NOW - WEEK}
        edit, _ = plan(document, added=added)
        assert edit is not None
        assert edit.removed == (T1,)
        assert edit.after == (T2,)
        assert edit.value == document.value.replace(
            f'        <identity thumbprint="{T1}" />\n', ""
        )

    def test_an_expired_old_certificate_goes_before_the_overlap(self):
        expired = version("v1", T1, created_days_ago=60, expires=NOW)
        document = doc(block(T1, T2))
        edit, _ = plan(document, versions=(expired, V2), added={})
        assert edit is not None
        assert edit.removed == (T1,)

    def test_the_last_identity_of_a_certificate_never_goes_even_expired(self):
        expired = version("v2", T2, created_days_ago=10, expires=NOW - timedelta(days=1))
        document = doc(block(T1, T2))
        # the candidate (v2) has expired too: v1 retires (expired, older), v2 stays (newest)
        gone = version("v1", T1, created_days_ago=60, expires=NOW - timedelta(days=2))
        edit, _ = plan(document, candidate=expired, versions=(gone, expired), added={})
        assert edit is not None
        assert edit.after == (T2,)
        assert edit.removed == (T1,)

    def test_unknown_added_at_keeps_the_old_identity_and_says_why(self):
        document = doc(block(T1, T2))
        edit, notes = plan(document, added={})
        assert edit is not None
        assert not edit.changes
        assert len(notes) == 1
        assert "does not say certrotate added v2" in notes[0]

    def test_no_trail_at_all_keeps_it_and_says_so(self):
        edit, notes = plan(doc(block(T1, T2)), added=None)
        assert edit is not None
        assert not edit.changes
        assert "no durable audit trail" in notes[0]

    def test_an_identity_added_by_this_edit_starts_its_overlap_now(self):
        # the trail says v2 was added to this document long ago (then removed by hand): the
        # re-addition starts a new overlap, the old identity stays
        document = doc(block(T1))
        added = {(document.resource_id.lower(), T2): NOW - timedelta(days=30)}
        edit, _ = plan(document, added=added)
        assert edit is not None
        assert (edit.added, edit.removed) == ((T2,), ())

    def test_an_identity_stays_while_another_block_still_needs_it(self):
        # block one pins v1+v2 (overlap passed), block two pins v1 and learns v2 now: v1 must
        # stay in both, as remove_thumbprint edits every block
        document = doc(block(T1, T2) + block(T1))
        added = {(document.resource_id.lower(), T2): NOW - timedelta(days=30)}
        edit, _ = plan(document, added=added)
        assert edit is not None
        assert edit.added == (T2,)
        assert edit.removed == ()

    def test_the_overlap_counts_per_document(self):
        document = doc(block(T1, T2))
        elsewhere = {(f"{SVC}/apis/echo/policies/policy".lower(), T2): NOW - timedelta(days=30)}
        edit, notes = plan(document, added=elsewhere)
        assert edit is not None
        assert not edit.changes
        assert notes

    def test_retirable_never_without_a_newer_pinned_version(self):
        expired = version("v1", T1, created_days_ago=60, expires=NOW - timedelta(days=1))
        assert retirable(expired, [], resource_id="x", now=NOW, overlap=WEEK, added={}) == (
            False,
            None,
        )

    def test_several_old_versions_go_together_leaving_the_newest(self):
        document = doc(block(T1, T2, T3))
        rid = document.resource_id.lower()
        added = {(rid, T2): NOW - timedelta(days=20), (rid, T3): NOW - timedelta(days=8)}
        edit, _ = plan(document, candidate=V3, versions=(V1, V2, V3), added=added)
        assert edit is not None
        assert edit.removed == (T1, T2)
        assert edit.after == (T3,)


class TestSettleAndPlan:
    def test_no_document_is_ignored(self):
        planned = plan_inbound(
            [doc(block(OTHER))], (V1, V2), V2, now=NOW, overlap=WEEK, added=None
        )
        decision, message = settle(planned, certificate="caller") or (None, None)
        assert decision is Decision.IGNORED
        assert message is not None
        assert "caller" in message

    def test_nothing_to_change_is_already_current(self):
        planned = plan_inbound([doc(block(T2))], (V1, V2), V2, now=NOW, overlap=WEEK, added={})
        assert settle(planned, certificate="caller") == (Decision.ALREADY_CURRENT, None)

    def test_an_addition_needs_validation(self):
        planned = plan_inbound([doc(block(T1))], (V1, V2), V2, now=NOW, overlap=WEEK, added={})
        assert settle(planned, certificate="caller") is None
        assert planned.adds
        assert planned.pinned == (V1,)

    def test_every_scope_that_pins_the_old_version_learns_the_new_one(self):
        documents = [
            doc(block(T1), PolicyScope.GLOBAL),
            doc(block(T1), PolicyScope.PRODUCT, f"{SVC}/products/gold/policies/policy"),
            doc(block(T1), PolicyScope.API, f"{SVC}/apis/echo/policies/policy"),
            doc(
                block(T1), PolicyScope.OPERATION, f"{SVC}/apis/echo/operations/get/policies/policy"
            ),
            doc(block(OTHER), PolicyScope.API, f"{SVC}/apis/other/policies/policy"),
        ]
        planned = plan_inbound(documents, (V1, V2), V2, now=NOW, overlap=WEEK, added={})
        assert [(e.scope, e.name, e.added) for e in planned.edits] == [
            ("global", "global", (T2,)),
            ("product", "products/gold", (T2,)),
            ("api", "apis/echo", (T2,)),
            ("operation", "apis/echo/operations/get", (T2,)),
        ]


class TestAddedAt:
    def rec(self, *targets: AuditTarget, **kw) -> dict[str, object]:
        fields = {"event": "rotation.applied", "decision": Decision.APPLIED, "vault": VAULT,
                  "certificate": "caller", "trigger": Trigger.CLI, "targets": targets, **kw}  # fmt: skip
        return AuditRecord(**fields).as_dict()

    def target(self, rid: str, *, added=(T2,), at=NOW, result=TargetResult.UPDATED) -> AuditTarget:
        return AuditTarget(
            service="apim-one", kind=TargetKind.POLICY, name="global", from_=T1, to=f"{T1},{T2}",
            result=result, scope="global", resource_id=rid, added=added, at=at,
        )  # fmt: skip

    def test_the_latest_addition_per_document_wins(self):
        rid = f"{SVC}/policies/policy"
        records = [
            self.rec(self.target(rid, at=NOW - timedelta(days=9))),
            self.rec(self.target(rid.upper(), at=NOW - timedelta(days=2))),
        ]
        assert added_at(records, VAULT + "/", "CALLER") == {
            (rid.lower(), T2): NOW - timedelta(days=2)
        }

    def test_dry_runs_other_certificates_and_unwritten_targets_do_not_count(self):
        rid = f"{SVC}/policies/policy"
        records = [
            self.rec(self.target(rid), dry_run=True),
            self.rec(self.target(rid), certificate="someone-else"),
            self.rec(self.target(rid, result=TargetResult.SKIPPED_DRY_RUN)),
            self.rec(self.target(rid), event="rotation.target"),
            self.rec(self.target(rid, at=None)),
        ]
        assert added_at(records, VAULT, "caller") == {}

    def test_malformed_trail_entries_are_skipped_not_trusted(self):
        """A tampered or foreign trail (targets not objects, naive or unreadable times, ids or
        thumbprint lists of the wrong type) adds nothing and raises nothing."""
        rid = f"{SVC}/policies/policy"
        good = self.rec(self.target(rid))
        policy = dict(good["targets"][0])  # type: ignore[index]
        broken = [
            {**good, "targets": ["not an object", 7, None]},
            {**good, "targets": "not a list"},
            {**good, "targets": [{**policy, "at": "2026-03-01T12:00:00"}]},  # naive
            {**good, "targets": [{**policy, "at": "yesterday"}]},
            {**good, "targets": [{**policy, "at": 1772366400}]},
            {**good, "targets": [{**policy, "resource_id": 42}]},
            {**good, "targets": [{**policy, "added": "D2" * 20}]},
            {**good, "targets": [{**policy, "added": [None, 5]}]},
        ]
        assert added_at(broken, VAULT, "caller") == {}
        aware = {**good, "targets": [{**policy, "at": NOW}]}
        assert added_at([*broken, aware], VAULT, "caller") == {(rid.lower(), T2): NOW}

    def test_outbound_targets_serialise_as_before(self):
        outbound = AuditTarget(
            service="s", kind=TargetKind.CERTIFICATE, name="n", from_="a", to="b",
            result=TargetResult.UPDATED,
        )  # fmt: skip
        assert list(outbound.as_dict()) == ["service", "kind", "name", "from", "to", "result"]
        policy = self.target(f"{SVC}/policies/policy").as_dict()
        assert policy["added"] == [T2]
        assert policy["at"] == "2026-03-01T12:00:00Z"


def test_the_json_lines_trail_answers_added_at(tmp_path):
    from rotation.adapters.auditlog import JsonLinesAuditSink  # noqa: PLC0415

    sink = JsonLinesAuditSink(tmp_path / "audit.jsonl")
    assert sink.inbound_added_at(VAULT, "caller") == {}
    rid = f"{SVC}/products/gold/policies/policy"
    target = AuditTarget(
        service="apim-one", kind=TargetKind.POLICY, name="products/gold", from_=T1,
        to=f"{T1},{T2}", result=TargetResult.UPDATED, scope="product", resource_id=rid,
        added=(T2,), at=NOW,
    )  # fmt: skip
    sink.write(
        AuditRecord(
            event="rotation.applied",
            decision=Decision.APPLIED,
            trigger=Trigger.EVENTGRID,
            vault=VAULT,
            certificate="caller",
            targets=(target,),
        )
    )
    assert sink.inbound_added_at(VAULT, "caller") == {(rid.lower(), T2): NOW}
