"""Inbound identities end to end over the fakes: a new version learnt at every scope that pinned
the old one (every other byte kept), rejection, redelivery, the overlap and expiry on reconcile,
a lost race, the records, ``plan``, and no secret material anywhere."""

from __future__ import annotations

import base64
import json
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from rotation.domain.inbound import PolicyScope
from rotation.domain.model import (
    Decision,
    Finding,
    FindingCode,
    Severity,
    TargetKind,
    Trigger,
)
from rotation.service import RotationService
from rotation.testing import FakeInboundPolicies, policy_id
from tests.service.conftest import SVC_A, SVC_B, V1, V2, VAULT, World, make_event

EG, TIMER = Trigger.EVENTGRID, Trigger.TIMER
CALLER = "caller-mtls"

GLOBAL = """<policies>
    <inbound>
        <!-- partner callers -->
        <validate-client-certificate validate-revocation="true" validate-trust="true">
            <identities>
                <identity thumbprint="{old}" />
                <identity thumbprint="{other}" />
            </identities>
        </validate-client-certificate>
        <set-header name="X-Ok" exists-action="override"><value>@(context.Request.Headers.GetValueOrDefault("a","<b>") != "")</value></set-header>
    </inbound>
    <backend><forward-request /></backend>
    <outbound />
    <on-error />
</policies>"""
PRODUCT = (
    "<policies>\r\n\t<inbound>\r\n\t\t<base />\r\n\t\t<validate-client-certificate>\r\n"
    "\t\t\t<identities>\r\n\t\t\t\t<identity thumbprint='{old}'/>\r\n\t\t\t</identities>\r\n"
    "\t\t</validate-client-certificate>\r\n\t</inbound>\r\n</policies>\r\n"
)
API = (
    '<policies><inbound><base /><validate-client-certificate><identities><identity thumbprint="'
    '{old}"/></identities></validate-client-certificate></inbound></policies>'
)
OPERATION = """<policies>
  <inbound>
    <base />
    <validate-client-certificate>
      <identities>
        <identity thumbprint="{old}" serial-number="01"></identity>
      </identities>
    </validate-client-certificate>
  </inbound>
</policies>"""
UNRELATED = """<policies>
  <inbound>
    <validate-client-certificate>
      <identities>
        <identity thumbprint="{other}" />
      </identities>
    </validate-client-certificate>
  </inbound>
</policies>"""
OTHER = "D4" * 20


class Inbound:
    """The world plus policy documents pinning v1 of ``caller-mtls`` at every scope."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.policies = FakeInboundPolicies()
        self.v1 = world.add_version("v1", V1, name=CALLER)
        self.v2 = world.add_version("v2", V2, name=CALLER)
        self.t1 = self.v1.thumbprint_sha1 or ""
        self.t2 = self.v2.thumbprint_sha1 or ""
        self.before: dict[str, str] = {}
        for scope, template, names in (
            (PolicyScope.GLOBAL, GLOBAL, ()),
            (PolicyScope.PRODUCT, PRODUCT, ("gold",)),
            (PolicyScope.API, API, ("echo",)),
            (PolicyScope.OPERATION, OPERATION, ("echo", "get")),
        ):
            value = template.format(old=self.t1, other=OTHER)
            made = self.policies.add_policy(SVC_A, scope, value, *names)
            self.before[made.resource_id] = value
        unrelated = self.policies.add_policy(
            SVC_B, PolicyScope.API, UNRELATED.format(other=OTHER), "other"
        )
        self.before[unrelated.resource_id] = unrelated.value

    def service(self, *, history: bool = True, **kwargs: object) -> RotationService:
        options: dict[str, object] = {
            "inbound": self.policies,
            "inbound_certificates": [(VAULT, CALLER)],
        }
        if history:
            options["history"] = self.world.audit
        options.update(kwargs)
        return self.world.service(**options)

    def added(self, value: str, old: str, new: str) -> str:
        """``value`` with ``new`` pinned right after ``old``, laid out like it (the splice
        ``add_thumbprint`` makes: the expected document, byte for byte)."""
        if value.startswith("<policies><inbound>"):  # all on one line
            return value.replace(f'"{old}"/>', f'"{old}"/><identity thumbprint="{new}"/>')
        for line in value.splitlines(keepends=True):
            if old in line:
                if 'serial-number="01"></identity>' in line:
                    copy = line.replace(old, new).replace(' serial-number="01"', "")
                else:
                    copy = line.replace(old, new)
                return value.replace(line, line + copy)
        raise AssertionError("old thumbprint not in document")


@pytest.fixture(name="inb")
def _inbound(world: World) -> Inbound:
    return Inbound(world)


def pinned_docs(inb: Inbound) -> list[str]:
    return [rid for rid in inb.before if "/service/apim-one/" in rid]


def test_a_valid_new_version_is_added_at_every_scope_that_pinned_the_old_one(inb: Inbound):
    service = inb.service()

    record = service.handle(make_event(V2, name=CALLER), trigger=EG)

    assert record.decision is Decision.APPLIED
    assert record.version == V2
    assert record.previous_version == V1
    assert len(inb.policies.writes) == 4
    for rid in pinned_docs(inb):
        assert inb.policies.value(rid) == inb.added(inb.before[rid], inb.t1, inb.t2)
    unrelated = policy_id(SVC_B, PolicyScope.API, "other")
    assert inb.policies.value(unrelated) == inb.before[unrelated]
    assert inb.world.source.calls["get_secret"] == 1
    assert inb.world.gateway.updates == []  # outbound is not touched

    targets = {t.resource_id: t for t in record.targets}
    assert set(targets) == set(pinned_docs(inb))
    for target in targets.values():
        assert target.kind is TargetKind.POLICY
        assert (target.added, target.removed, str(target.result)) == ((inb.t2,), (), "updated")
        assert target.at == inb.world.clock.now()
    assert {t.scope for t in record.targets} == {"global", "product", "api", "operation"}
    assert {t.name for t in record.targets} == {
        "global", "products/gold", "apis/echo", "apis/echo/operations/get",
    }  # fmt: skip
    per_target = [r for r in inb.world.audit.records if r.event == "rotation.target"]
    assert len(per_target) == 4


def test_a_rejected_version_adds_nothing(inb: Inbound):
    bad = Finding(code=FindingCode.CHAIN_UNTRUSTED, severity=Severity.ERROR, message="no path")
    inb.world.validator.findings[inb.t2] = (bad,)

    record = inb.service().handle(make_event(V2, name=CALLER), trigger=EG)

    assert record.decision is Decision.REJECTED
    assert "chain.untrusted" in record.findings
    assert inb.policies.writes == []
    assert inb.policies.calls["put_policy"] == 0
    assert {str(t.result) for t in record.targets} == {"rejected"}
    for rid, value in inb.before.items():
        assert inb.policies.value(rid) == value


def test_a_redelivered_event_writes_nothing(inb: Inbound):
    service = inb.service()
    service.handle(make_event(V2, name=CALLER), trigger=EG)
    inb.world.reset_counts()
    writes = len(inb.policies.writes)

    record = service.handle(make_event(V2, name=CALLER, event_id="evt-2"), trigger=EG)

    assert record.decision is Decision.ALREADY_CURRENT
    assert len(inb.policies.writes) == writes
    assert inb.world.source.calls["get_secret"] == 0
    assert {str(t.result) for t in record.targets} == {"already_current"}


def test_reconcile_retires_the_old_identity_after_the_overlap_never_the_last(inb: Inbound):
    service = inb.service()
    service.handle(make_event(V2, name=CALLER), trigger=EG)
    after_add = {rid: inb.policies.value(rid) for rid in pinned_docs(inb)}

    inb.world.clock.advance(days=6, hours=23)
    (record,) = service.reconcile(trigger=TIMER)
    assert record.decision is Decision.ALREADY_CURRENT
    assert {rid: inb.policies.value(rid) for rid in pinned_docs(inb)} == after_add

    inb.world.clock.advance(hours=1)  # 7 days since v2 was added
    (record,) = service.reconcile(trigger=TIMER)
    assert record.decision is Decision.APPLIED
    for rid in pinned_docs(inb):  # v2 took v1's place; every other byte is the original's
        expected = inb.before[rid].replace(inb.t1, inb.t2)
        if "operations/get" in rid:
            expected = inb.added(inb.before[rid], inb.t1, inb.t2).replace(
                f'<identity thumbprint="{inb.t1}" serial-number="01"></identity>\n        ', ""
            )
        assert inb.policies.value(rid) == expected
    assert {t.removed for t in record.targets} == {(inb.t1,)}
    assert {t.added for t in record.targets} == {()}

    inb.world.clock.advance(days=365)  # v2 expired as well: still the last identity, it stays
    record, alert = service.reconcile(trigger=TIMER)
    assert record.decision is Decision.ALREADY_CURRENT
    assert (alert.event, alert.version) == ("certificate.expired", V2)  # and it says so
    for rid in pinned_docs(inb):
        assert inb.t2 in inb.policies.value(rid)


def test_without_a_durable_trail_only_expiry_retires_and_the_record_says_why(inb: Inbound):
    service = inb.service(history=False)
    service.handle(make_event(V2, name=CALLER), trigger=EG)

    inb.world.clock.advance(days=8)
    (record,) = service.reconcile(trigger=TIMER)
    assert record.decision is Decision.ALREADY_CURRENT
    assert record.message is not None
    assert "no durable audit trail" in record.message
    assert all(inb.t1 in inb.policies.value(rid) for rid in pinned_docs(inb))

    assert inb.v1.expires is not None
    inb.world.clock.at = inb.v1.expires  # v1 has expired: it goes early, whatever the trail
    (record,) = service.reconcile(trigger=TIMER)
    assert record.decision is Decision.APPLIED
    assert all(inb.t1 not in inb.policies.value(rid) for rid in pinned_docs(inb))


def test_an_expired_old_certificate_is_retired_before_the_overlap(inb: Inbound):
    service = inb.service(inbound_overlap_days=365)
    service.handle(make_event(V2, name=CALLER), trigger=EG)
    assert inb.v1.expires is not None
    inb.world.clock.at = inb.v1.expires

    (record,) = service.reconcile(trigger=TIMER)

    assert record.decision is Decision.APPLIED
    assert {t.removed for t in record.targets} == {(inb.t1,)}


def test_reconcile_adds_a_missed_version(inb: Inbound):
    (record,) = inb.service().reconcile(trigger=TIMER)

    assert record.decision is Decision.APPLIED
    assert record.trigger is TIMER
    assert all(inb.t2 in inb.policies.value(rid) for rid in pinned_docs(inb))


def test_a_lost_race_replans_from_a_fresh_listing(inb: Inbound):
    service = inb.service()
    comment = "<!-- edited meanwhile -->"
    inb.policies.race_once(lambda v: v.replace("<inbound>", f"<inbound>{comment}", 1))

    record = service.handle(make_event(V2, name=CALLER), trigger=EG)

    assert record.decision is Decision.APPLIED
    assert inb.policies.calls["list_policies"] == 4  # two services, listed twice
    raced = [w for w in inb.policies.writes if comment in w.after]
    assert len(raced) == 1  # the other writer's edit survived, with ours on top
    assert inb.t2 in raced[0].after
    assert all(inb.t2 in inb.policies.value(rid) for rid in pinned_docs(inb))
    assert len({t.resource_id for t in record.targets}) == 4


def test_a_race_lost_on_every_attempt_fails_retryably(inb: Inbound):
    service = inb.service(max_attempts=1)
    inb.policies.race_once()

    with pytest.raises(Exception, match="412") as caught:
        service.handle(make_event(V2, name=CALLER), trigger=EG)

    assert getattr(caught.value, "retryable", False)
    assert inb.world.audit.records[-1].decision is Decision.FAILED


def test_plan_shows_the_policy_targets_and_writes_nothing(inb: Inbound):
    plan = inb.service().plan(VAULT, CALLER)

    assert plan.decision is Decision.APPLIED
    assert inb.policies.writes == []
    assert inb.world.audit.records == []
    targets = [t.as_dict() for t in plan.targets]
    assert {(t["kind"], t["name"], t["result"]) for t in targets} == {
        ("policy", "global", "update"),
        ("policy", "products/gold", "update"),
        ("policy", "apis/echo", "update"),
        ("policy", "apis/echo/operations/get", "update"),
    }
    target = targets[0]
    assert target["added"] == [inb.t2]
    assert target["scope"] == "global"


def test_an_inbound_certificate_is_handled_by_the_inbound_path_only(inb: Inbound):
    inb.world.bind(SVC_A, "caller-entity", V1, name=CALLER)  # also an outbound binding
    service = inb.service()

    record = service.handle(make_event(V2, name=CALLER), trigger=EG)
    service.reconcile(trigger=TIMER)

    assert record.decision is Decision.APPLIED
    assert inb.world.gateway.updates == []
    assert inb.world.secret_of(SVC_A, "caller-entity") == f"{VAULT}/secrets/{CALLER}/{V1}"


def test_one_inbound_failure_does_not_stop_the_sweep(inb: Inbound):
    service = inb.service(inbound_certificates=[(VAULT, "missing"), (VAULT, CALLER)])

    records = service.reconcile(trigger=TIMER)  # not found is permanent: recorded, not raised

    assert [(r.certificate, r.decision) for r in records] == [
        ("missing", Decision.FAILED),
        (CALLER, Decision.APPLIED),
    ]
    assert records[0].error is not None
    assert "CertificateNotFoundError" in records[0].error
    assert all(inb.t2 in inb.policies.value(rid) for rid in pinned_docs(inb))


def test_a_retryable_inbound_failure_is_raised_after_the_sweep(inb: Inbound):
    from rotation.domain.errors import TransientDependencyError  # noqa: PLC0415

    inb.policies.fail["list_policies"] = TransientDependencyError(
        "apim list_policies: 503", service="apim", operation="list_policies", status_code=503
    )
    with pytest.raises(Exception, match="reconcile: 1 certificate") as caught:
        inb.service().reconcile(trigger=TIMER)

    assert getattr(caught.value, "retryable", False)
    assert [r.event for r in inb.world.audit.records] == ["reconcile.failed"]


def test_no_record_or_log_holds_secret_material(inb: Inbound, capsys: pytest.CaptureFixture[str]):
    service = inb.service()
    service.handle(make_event(V2, name=CALLER), trigger=EG)
    inb.world.clock.advance(days=8)
    service.reconcile(trigger=TIMER)

    issued = inb.world.pki.leaves["v2"]
    der = issued.key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    needles = [
        base64.b64encode(der).decode()[:40],
        issued.key_pem.decode().splitlines()[1],
        base64.b64encode(inb.world.pki.pkcs12["v2"]).decode()[:40],
        "PRIVATE KEY",
        "BEGIN CERTIFICATE",
    ]
    dumped = "\n".join(json.dumps(r.as_dict()) for r in inb.world.audit.records)
    captured = capsys.readouterr()
    assert [n for n in needles if n in dumped + captured.out + captured.err] == []
    assert "<policies" not in dumped  # documents are not on record either


def test_every_record_passes_certrotate_audit_verification(inb: Inbound):
    from rotation.entrypoints.cli.audit import verify_record  # noqa: PLC0415

    service = inb.service()
    service.handle(make_event(V2, name=CALLER), trigger=EG)
    inb.world.clock.advance(days=8)
    service.reconcile(trigger=TIMER)

    records = [json.loads(json.dumps(r.as_dict())) for r in inb.world.audit.records]
    assert len(records) == 10  # 4 targets + canonical, twice
    assert [p for r in records for p in verify_record(r)] == []


def test_a_lost_trail_read_is_not_a_guess(inb: Inbound):
    service = inb.service()
    service.handle(make_event(V2, name=CALLER), trigger=EG)
    inb.world.audit.records.clear()  # the trail forgot: the overlap cannot be measured
    inb.world.clock.advance(timedelta(days=30))

    (record,) = service.reconcile(trigger=TIMER)

    assert record.decision is Decision.ALREADY_CURRENT
    assert record.message is not None
    assert "does not say certrotate added" in record.message
    assert all(inb.t1 in inb.policies.value(rid) for rid in pinned_docs(inb))


def test_bootstrap_wires_the_inbound_path_with_the_real_validator(
    inb: Inbound, tmp_path: Path
) -> None:
    from rotation import bootstrap  # noqa: PLC0415
    from rotation.config import Settings  # noqa: PLC0415

    anchors = tmp_path / "anchors.pem"
    anchors.write_bytes(inb.world.pki.intermediate.pem)
    settings = Settings.from_env({
        "ROTATION_VAULTS": VAULT,
        "ROTATION_APIM_SERVICES": f"{SVC_A},{SVC_B}",
        "ROTATION_TRUST_ANCHORS": str(anchors),
        "ROTATION_DEVSTACK_TOKEN": "not-a-real-token",
        "ROTATION_INBOUND_CERTIFICATES": f"{VAULT}/certificates/{CALLER}",
        "ROTATION_INBOUND_OVERLAP_DAYS": "3",
    })  # fmt: skip

    service = bootstrap.build_service(
        settings, clock=inb.world.clock, source=inb.world.source, gateway=inb.world.gateway,
        audit=inb.world.audit, inbound=inb.policies,
    )  # fmt: skip
    record = service.handle(make_event(V2, name=CALLER), trigger=EG)

    assert record.decision is Decision.APPLIED, record.findings
    assert service.is_inbound(VAULT, CALLER.upper())
    assert service._context.inbound_overlap == timedelta(days=3)
    assert service._context.history is inb.world.audit
    assert len(inb.policies.writes) == 4


def test_a_dry_run_plans_and_records_but_writes_nothing(inb: Inbound):
    record = inb.service(dry_run=True).handle(make_event(V2, name=CALLER), trigger=EG)

    assert record.event == "rotation.planned"
    assert record.dry_run
    assert inb.policies.calls["put_policy"] == 0
    assert {str(t.result) for t in record.targets} == {"skipped_dry_run"}
    assert {t.added for t in record.targets} == {(inb.t2,)}
    assert all(t.at is None for t in record.targets)  # nothing was written: no "added at"


def test_a_replay_batch_sends_inbound_events_down_the_inbound_path(inb: Inbound):
    batch = inb.service().batch()

    first = batch.handle(make_event(V2, name=CALLER), trigger=EG)
    again = batch.handle(make_event(V2, name=CALLER, event_id="evt-2"), trigger=EG)

    assert (first.decision, again.decision) == (Decision.APPLIED, Decision.ALREADY_CURRENT)
    assert len(inb.policies.writes) == 4


def test_a_certificate_without_an_enabled_version_is_ignored(world: World):
    """Every version disabled: nothing to pin, nothing listed or written."""
    policies = FakeInboundPolicies()
    world.add_version("v1", V1, name=CALLER, enabled=False)
    service = world.service(inbound=policies, inbound_certificates=[(VAULT, CALLER)])

    record = service.handle(make_event(V1, name=CALLER), trigger=EG)

    assert record.decision is Decision.IGNORED
    assert record.message == f"{CALLER} has no enabled version"
    assert policies.writes == []
    assert policies.calls["list_policies"] == 0


def test_a_service_refuses_inbound_certificates_without_a_policy_adapter(inb: Inbound):
    """Wiring inbound certificates without ``InboundPolicies`` (or with a zero overlap) is
    refused when the service is built, before any event."""
    with pytest.raises(ValueError, match="no InboundPolicies given"):
        inb.service(inbound=None)
    with pytest.raises(ValueError, match="inbound_overlap_days must be >= 1"):
        inb.service(inbound_overlap_days=0)
