"""Inbound identities on the wire: the real trigger, bootstrap and ARM adapters against the
devstack's policy documents at every scope, and a caller at the gateway stand-in
(``devstack.gateway``) that admits only the thumbprints the stored policy pins.

The story of issue 15's "done when": a valid new version is added next to the old one at every
scope that pinned it (every other byte kept); a caller presenting it is refused before and
admitted after; the old one still gets in during the overlap and is refused once reconcile
retires it; the last identity is never removed; a rejected version adds nothing; a redelivered
event writes nothing.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from devstack.gateway import Gateway, PolicyScope, call, policy_thumbprints, stored_policy
from devstack.gateway import thumbprint_of as thumb
from devstack.pki import Issued, to_pkcs12
from rotation.domain.model import AuditRecord, Decision, TargetKind, Trigger
from rotation.domain.policies import add_thumbprint
from rotation.service import RotationService
from tests.e2e.world import World

CALLER = "partner-caller"
ADMITTED, REFUSED = 200, 401

GLOBAL = (
    "<!-- global: partner callers present a client certificate -->\r\n<policies>\r\n\t<inbound>"
    '\r\n\t\t<validate-client-certificate validate-revocation="false" validate-trust="true">'
    '\r\n\t\t\t<identities>\r\n\t\t\t\t<identity thumbprint="{t}" />\r\n\t\t\t</identities>'
    '\r\n\t\t</validate-client-certificate>\r\n\t\t<set-header name="x-t" exists-action='
    '"override">\r\n\t\t\t<value>@(context.Request.Certificate?.Thumbprint ?? "none")</value>'
    "\r\n\t\t</set-header>\r\n\t</inbound>\r\n\t<backend><forward-request /></backend>\r\n"
    "\t<outbound />\r\n\t<on-error />\r\n</policies>"
)
PRODUCT = (
    "<policies><inbound><base /><validate-client-certificate><identities>"
    "<identity thumbprint='{t}'/></identities></validate-client-certificate>"
    '<rate-limit calls="10" renewal-period="60" /></inbound></policies>'
)
API = """<policies>
    <inbound>
        <base />
        <!-- orders: partner callers only -->
        <validate-client-certificate>
            <identities>
                <identity thumbprint="{t}" />
                <identity issuer-subject="CN=Someone Else" />
            </identities>
        </validate-client-certificate>
        <choose>
            <when condition="@(context.Request.Headers.GetValueOrDefault("x-p", "") == "<high>")">
                <set-header name="x-q" exists-action="override"><value>@{{ return "a => b"; }}</value></set-header>
            </when>
        </choose>
    </inbound>
</policies>"""
OPERATION = """<policies>
  <inbound>
    <base />
    <validate-client-certificate>
      <identities>
        <identity thumbprint="{t}" serial-number="1000"></identity>
      </identities>
    </validate-client-certificate>
  </inbound>
</policies>"""


class Inbound:
    """``world`` with ``partner-caller`` v1 pinned at every scope of service 1 (global, product
    ``partners``, API ``orders``, operation ``orders/create``) and globally in service 2."""

    def __init__(self, world: World) -> None:
        self.world, self.stack = world, world.stack
        self.old = world.pki.leaf()
        self.v1 = self.import_leaf(self.old)
        svc1, svc2 = world.svc1, world.svc2
        self.stack.put_api(svc1, "orders", display_name="Orders", path="orders")
        self.stack.put_operation(svc1, "orders", "create", method="POST", url_template="/o")
        self.stack.put_product(svc1, "partners", display_name="Partners")
        self.scopes = {
            PolicyScope(svc1): GLOBAL,
            PolicyScope(svc1, product="partners"): PRODUCT,
            PolicyScope(svc1, api="orders"): API,
            PolicyScope(svc1, api="orders", operation="create"): OPERATION,
            PolicyScope(svc2): GLOBAL,
        }
        for scope, text in self.scopes.items():
            self.stack.put_policy(
                scope.service, text.format(t=thumb(self.old.cert)), api=scope.api or "",
                operation=scope.operation or "", product=scope.product or "",
            )  # fmt: skip
        self.before = self.documents()
        self.service: RotationService = world.use(
            inbound_certificates=f"{self.stack.vault_url}/certificates/{CALLER}",
            inbound_overlap_days="7",
        )

    def import_leaf(self, leaf: Issued, chain: list[Issued] | None = None) -> str:
        pfx = to_pkcs12(leaf, [self.world.pki.intermediate] if chain is None else chain)
        return self.world.add_version(CALLER, data=pfx)

    def documents(self) -> dict[PolicyScope, str | None]:
        return {scope: stored_policy(self.stack, scope) for scope in self.scopes}

    def deliver(self, version: str) -> AuditRecord:
        self.world.deliver(version, CALLER)
        return self.canonical()[-1]

    def canonical(self) -> list[AuditRecord]:
        return [r for r in self.world.audit.records if r.event != "rotation.target"]

    def reconcile(self, *, days: int) -> None:
        self.world.clock.advance(timedelta(days=days))
        self.service.reconcile(trigger=Trigger.TIMER)


def _chain(world: World) -> list[Issued]:
    return [world.pki.intermediate]


@pytest.fixture(name="inbound")
def _inbound(world: World) -> Inbound:
    return Inbound(world)


def test_the_caller_story_on_the_wire(inbound: Inbound):
    """Refused before, admitted after; the old one admitted through the overlap and refused once
    reconcile retires it; every other byte of every document unchanged; never the last."""
    world, stack = inbound.world, inbound.stack
    old, new = inbound.old, world.pki.leaf()
    t_old, t_new = thumb(old.cert), thumb(new.cert)
    global_scope = PolicyScope(world.svc1)
    operation_scope = PolicyScope(world.svc1, api="orders", operation="create")
    with (
        Gateway(policy_thumbprints(stack, global_scope), stack.tls) as gateway,
        Gateway(policy_thumbprints(stack, operation_scope), stack.tls) as operation,
    ):
        assert (call(gateway, old), call(gateway, new)) == (ADMITTED, REFUSED)

        v2 = inbound.import_leaf(new, _chain(world))
        record = inbound.deliver(v2)

        assert record.decision is Decision.APPLIED, record
        assert (call(gateway, old), call(gateway, new)) == (ADMITTED, ADMITTED)
        assert (call(operation, old), call(operation, new)) == (ADMITTED, ADMITTED)
        added = inbound.documents()
        for scope, before in inbound.before.items():
            assert before is not None
            assert added[scope] == add_thumbprint(before, t_old, t_new), scope
            assert added[scope] != before
        targets = {t.resource_id for t in record.targets if t.kind is TargetKind.POLICY}
        assert len(targets) == len(inbound.scopes)

        inbound.reconcile(days=6)  # within the overlap: nothing retired
        assert inbound.documents() == added
        assert call(gateway, old) == ADMITTED

        inbound.reconcile(days=2)  # 8 days after it was added: the old identity goes
        assert (call(gateway, old), call(gateway, new)) == (REFUSED, ADMITTED)
        assert (call(operation, old), call(operation, new)) == (REFUSED, ADMITTED)
        for scope, before in inbound.before.items():
            assert before is not None
            # The new identity carries the thumbprint only (the serial number was the old one's).
            expected = before.replace(' serial-number="1000"', "").replace(t_old, t_new)
            assert inbound.documents()[scope] == expected, scope

        inbound.reconcile(days=800)  # the new one has expired too: still never the last
        assert call(gateway, new) == ADMITTED
        assert all(t_new in (text or "") for text in inbound.documents().values())
    assert [t for t in inbound.canonical()[-1].targets if t.result.wrote] == []


def test_a_rejected_version_adds_nothing(inbound: Inbound):
    """A version from an untrusted chain is rejected and no policy document is written."""
    world = inbound.world
    leaf, root = world.pki.stranger
    stack = inbound.stack
    stack.request_log.clear()

    record = inbound.deliver(inbound.import_leaf(leaf, [root]))

    assert record.decision is Decision.REJECTED
    assert "chain.untrusted" in record.findings
    assert world.writes() == []
    assert inbound.documents() == inbound.before
    with Gateway(policy_thumbprints(stack, PolicyScope(world.svc1)), stack.tls) as gateway:
        assert (call(gateway, inbound.old), call(gateway, leaf)) == (ADMITTED, REFUSED)


def test_redelivery_writes_nothing(inbound: Inbound):
    """The same event twice: the second is already_current and makes no ARM write."""
    world = inbound.world
    v2 = inbound.import_leaf(world.pki.leaf(), _chain(world))
    assert inbound.deliver(v2).decision is Decision.APPLIED
    written = inbound.documents()
    inbound.stack.request_log.clear()

    again = inbound.deliver(v2)

    assert again.decision is Decision.ALREADY_CURRENT
    assert world.writes() == []
    assert inbound.documents() == written
