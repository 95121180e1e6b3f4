"""The ``InboundPolicies`` contract, run against ``FakeInboundPolicies`` and ``ArmInboundPolicies``."""

from __future__ import annotations

from collections import Counter

import pytest

from rotation.domain.errors import ConfigError, PreconditionFailedError
from rotation.domain.inbound import PolicyDocument, PolicyScope
from rotation.domain.policies import find_thumbprints
from rotation.ports import InboundPolicies
from tests.contract.conftest import PolicyWorld, Where

THUMB_A = "5E0C3A9F1B2D4C6E8A0B1C2D3E4F5A6B7C8D9E0F"
THUMB_B = "AB6271ED3D1B57598DF29473E2C2F0F7251EDDA4"
NAMES: dict[PolicyScope, tuple[str, ...]] = {
    PolicyScope.GLOBAL: (),
    PolicyScope.PRODUCT: ("gold",),
    PolicyScope.API: ("orders",),
    PolicyScope.OPERATION: ("orders", "create"),
}


def _document(thumbprint: str, tag: str) -> str:
    """A document as an operator writes one: CRLF line ends, tab indents, a comment, policy
    expressions holding ``=>``, ``<``, ``"`` and ``&&`` (which ``xml`` format would escape)."""
    return (
        "<policies>\r\n\t<inbound>\r\n\t\t<base />\r\n"
        f"\t\t<!-- {tag}: callers pinned by thumbprint -->\r\n"
        '\t\t<validate-client-certificate validate-revocation="true" validate-trust="true" '
        'validate-not-before="true" validate-not-after="true" ignore-error="false">\r\n'
        f'\t\t\t<identities>\r\n\t\t\t\t<identity thumbprint="{thumbprint}" />\r\n'
        "\t\t\t</identities>\r\n\t\t</validate-client-certificate>\r\n"
        '\t\t<set-header name="x-caller" exists-action="override">\r\n'
        "\t\t\t<value>@(context.Request.Certificate?.Subject.Split(',')"
        '.FirstOrDefault(s => s.Length < 64 && s != "") ?? "none")</value>\r\n'
        "\t\t</set-header>\r\n\t</inbound>\r\n"
        "\t<backend>\r\n\t\t<base />\r\n\t</backend>\r\n</policies>"
    )


def _where(inbound: PolicyWorld, scope: PolicyScope, service: int = 0) -> Where:
    return Where(inbound.service_ids[service], scope, NAMES[scope])


def _listed(inbound: PolicyWorld, service_id: str) -> dict[str, PolicyDocument]:
    """The service's documents by resource id (each id listed once)."""
    documents = list(inbound.policies.list_policies(service_id))
    by_id = {d.resource_id: d for d in documents}
    assert len(by_id) == len(documents), "a document listed twice"
    return by_id


def _values(inbound: PolicyWorld, service_id: str) -> dict[str, str]:
    return {rid: d.value for rid, d in _listed(inbound, service_id).items()}


def _seeded(inbound: PolicyWorld, where: Where, value: str) -> PolicyDocument:
    """Seed the document at ``where`` and return it as listed."""
    inbound.seed(where, value)
    return _listed(inbound, where.service_id)[where.resource_id]


class TestList:
    def test_is_an_inbound_policies(self, inbound: PolicyWorld):
        """Both implement the port."""
        assert isinstance(inbound.policies, InboundPolicies)

    def test_a_new_service_lists_only_its_default_global_policy(self, inbound: PolicyWorld):
        """Nothing configured yet: APIM's default global policy alone (pinning no identity),
        with its ETag."""
        for service_id in inbound.service_ids:
            [document] = inbound.policies.list_policies(service_id)

            assert document.scope is PolicyScope.GLOBAL
            assert document.service_id == service_id
            assert document.resource_id == f"{service_id}/policies/policy"
            assert document.value.startswith("<policies>")
            assert find_thumbprints(document.value) == ()
            assert document.etag

    def test_scopes_without_a_policy_yield_nothing(self, inbound: PolicyWorld):
        """A product, an API and an operation that have no policy of their own add nothing."""
        service_id = inbound.service_ids[0]
        before = _values(inbound, service_id)
        for where in (
            Where(service_id, PolicyScope.PRODUCT, ("free",)),
            Where(service_id, PolicyScope.API, ("billing",)),
            Where(service_id, PolicyScope.OPERATION, ("billing", "list")),
        ):
            inbound.add_scope(where)

        assert _values(inbound, service_id) == before
        assert list(before) == [f"{service_id}/policies/policy"]

    @pytest.mark.parametrize("scope", list(PolicyScope))
    def test_a_document_is_listed_at_its_scope_byte_for_byte(
        self, inbound: PolicyWorld, scope: PolicyScope
    ):
        """A document at ``scope``: listed once more (the global one replaces the default),
        with its scope, its full ARM id, its service and its value exactly as stored."""
        where = _where(inbound, scope)
        value = _document(THUMB_A, scope)
        before = _values(inbound, where.service_id)

        inbound.seed(where, value)

        listed = _listed(inbound, where.service_id)
        assert {rid: d.value for rid, d in listed.items()} == {**before, where.resource_id: value}
        document = listed[where.resource_id]
        assert (document.scope, document.service_id) == (scope, where.service_id)
        assert document.etag

    def test_every_scope_at_once_next_to_scopes_without_one(self, inbound: PolicyWorld):
        """Exactly the four documents that exist, each at its scope, whatever else the service
        holds (a product, an API and an operation without a policy)."""
        service_id = inbound.service_ids[0]
        values = {scope: _document(THUMB_A, f"{scope} scope") for scope in PolicyScope}
        for scope, value in values.items():
            inbound.seed(_where(inbound, scope), value)
        inbound.add_scope(Where(service_id, PolicyScope.PRODUCT, ("free",)))
        inbound.add_scope(Where(service_id, PolicyScope.OPERATION, ("orders", "list")))
        inbound.add_scope(Where(service_id, PolicyScope.API, ("billing",)))

        documents = list(inbound.policies.list_policies(service_id))

        assert sorted((d.scope, d.resource_id, d.value) for d in documents) == sorted(
            (scope, _where(inbound, scope).resource_id, value) for scope, value in values.items()
        )
        assert {d.service_id for d in documents} == {service_id}

    def test_a_deleted_document_is_no_longer_listed(self, inbound: PolicyWorld):
        """Someone deleted the API's policy: the API no longer yields a document."""
        where = _where(inbound, PolicyScope.API)
        inbound.seed(where, _document(THUMB_A, "orders"))

        inbound.delete(where)

        assert where.resource_id not in _listed(inbound, where.service_id)

    def test_two_services_are_independent(self, inbound: PolicyWorld):
        """The same scope in two services: two documents, each listed under its own service."""
        first, second = (_where(inbound, PolicyScope.API, i) for i in (0, 1))
        inbound.seed(first, _document(THUMB_A, "first"))
        inbound.seed(second, _document(THUMB_B, "second"))

        mine, theirs = _listed(inbound, first.service_id), _listed(inbound, second.service_id)

        assert mine[first.resource_id].value == _document(THUMB_A, "first")
        assert theirs[second.resource_id].value == _document(THUMB_B, "second")
        assert first.resource_id not in theirs
        assert second.resource_id not in mine
        assert {d.service_id for d in theirs.values()} == {second.service_id}

    def test_ids_are_case_insensitive(self, inbound: PolicyWorld):
        """The service id in another case lists the same documents, under the id as given."""
        where = _where(inbound, PolicyScope.OPERATION)
        inbound.seed(where, _document(THUMB_A, "op"))
        shouted = where.service_id.upper()

        documents = list(inbound.policies.list_policies(shouted))

        assert sorted(d.resource_id.lower() for d in documents) == sorted(
            rid.lower() for rid in _listed(inbound, where.service_id)
        )
        assert {d.service_id for d in documents} == {shouted}
        [found] = (d for d in documents if d.scope is PolicyScope.OPERATION)
        assert found.value == _document(THUMB_A, "op")

    def test_a_service_that_does_not_exist_is_a_config_error(self, inbound: PolicyWorld):
        """A mistyped service: ConfigError naming the setting, not an empty list."""
        with pytest.raises(ConfigError, match="ROTATION_APIM_SERVICES"):
            list(inbound.policies.list_policies(inbound.missing_service_id()))


class TestPutPolicy:
    @pytest.mark.parametrize("scope", list(PolicyScope))
    def test_compare_and_swap_writes_the_value_byte_for_byte(
        self, inbound: PolicyWorld, scope: PolicyScope
    ):
        """The document still reads what the plan saw: one read, one write; the new value is
        stored exactly, returned with a new ETag, and a later list shows it and that ETag."""
        where = _where(inbound, scope)
        listed = _seeded(inbound, where, _document(THUMB_A, "before"))
        new = _document(THUMB_B, "after").replace("\t\t\t\t<identity", "\t\t\t\t<identity\t")
        inbound.forget()

        written = inbound.policies.put_policy(listed, expected_value=listed.value, value=new)

        assert inbound.sent() == Counter(read=1, write=1)
        assert (written.service_id, written.scope, written.resource_id) == (
            where.service_id,
            scope,
            where.resource_id,
        )
        assert written.value == new
        assert written.etag not in ("", listed.etag)
        assert inbound.stored(where) == new
        again = _listed(inbound, where.service_id)[where.resource_id]
        assert (again.value, again.etag) == (new, written.etag)

    def test_refused_without_a_write_when_the_value_changed(self, inbound: PolicyWorld):
        """Someone edited the document since it was listed: PreconditionFailedError after the
        read, no write, their value stands."""
        where = _where(inbound, PolicyScope.PRODUCT)
        listed = _seeded(inbound, where, _document(THUMB_A, "gold"))
        theirs = listed.value.replace("\r\n", "\n")
        inbound.seed(where, theirs)
        inbound.forget()

        with pytest.raises(PreconditionFailedError, match="changed since it was listed") as caught:
            inbound.policies.put_policy(
                listed, expected_value=listed.value, value=_document(THUMB_B, "gold")
            )

        assert caught.value.retryable is True
        assert inbound.sent() == Counter(read=1, write=0)
        assert inbound.stored(where) == theirs

    def test_refused_without_recreating_a_deleted_document(self, inbound: PolicyWorld):
        """The document is gone since it was listed: PreconditionFailedError, nothing written,
        nothing created."""
        where = _where(inbound, PolicyScope.API)
        listed = _seeded(inbound, where, _document(THUMB_A, "orders"))
        inbound.delete(where)
        inbound.forget()

        with pytest.raises(PreconditionFailedError, match="gone since it was listed") as caught:
            inbound.policies.put_policy(listed, expected_value=listed.value, value=listed.value)

        assert caught.value.retryable is True
        assert inbound.sent() == Counter(read=1, write=0)
        assert inbound.stored(where) is None
        assert where.resource_id not in _listed(inbound, where.service_id)

    def test_a_write_between_the_read_and_the_write_is_a_412(self, inbound: PolicyWorld):
        """Another writer lands after the compare: one write, a 412, PreconditionFailedError;
        the other writer's value survives."""
        where = _where(inbound, PolicyScope.OPERATION)
        listed = _seeded(inbound, where, _document(THUMB_A, "create"))
        theirs = _document(THUMB_A, "edited meanwhile")
        inbound.race_next_write(where, theirs)
        inbound.forget()

        with pytest.raises(PreconditionFailedError) as caught:
            inbound.policies.put_policy(
                listed, expected_value=listed.value, value=_document(THUMB_B, "create")
            )

        assert caught.value.status_code == 412
        assert caught.value.retryable is True
        assert inbound.sent() == Counter(read=1, write=1)
        assert inbound.stored(where) == theirs
        assert _listed(inbound, where.service_id)[where.resource_id].value == theirs

    def test_a_write_to_one_service_leaves_the_other_alone(self, inbound: PolicyWorld):
        """The same scope in two services: writing one does not touch the other."""
        first, second = (_where(inbound, PolicyScope.API, i) for i in (0, 1))
        listed = _seeded(inbound, first, _document(THUMB_A, "orders"))
        inbound.seed(second, _document(THUMB_A, "orders"))

        inbound.policies.put_policy(
            listed, expected_value=listed.value, value=_document(THUMB_B, "orders")
        )

        assert inbound.stored(first) == _document(THUMB_B, "orders")
        assert inbound.stored(second) == _document(THUMB_A, "orders")
        assert _values(inbound, second.service_id)[second.resource_id] == (
            _document(THUMB_A, "orders")
        )

    def test_a_document_addressed_in_another_case_is_the_same_document(self, inbound: PolicyWorld):
        """Ids are case-insensitive: the listed document with its whole id upper-cased is
        written."""
        where = _where(inbound, PolicyScope.OPERATION)
        listed = _seeded(inbound, where, _document(THUMB_A, "create"))
        shouted = PolicyDocument(
            service_id=listed.service_id.upper(),
            scope=listed.scope,
            resource_id=listed.resource_id.upper(),
            value=listed.value,
        )

        written = inbound.policies.put_policy(
            shouted, expected_value=listed.value, value=_document(THUMB_B, "create")
        )

        assert inbound.stored(where) == _document(THUMB_B, "create")
        assert (written.service_id, written.resource_id) == (
            shouted.service_id,
            shouted.resource_id,
        )
