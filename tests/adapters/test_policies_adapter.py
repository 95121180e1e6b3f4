"""``ArmInboundPolicies`` with the unmodified ``azure-mgmt-apimanagement`` client against the
ARM stand-in: every scope listed, rawxml byte for byte, compare-and-swap, errors."""

from __future__ import annotations

from typing import ClassVar

import pytest
from azure.mgmt.apimanagement.models import (
    ApiCreateOrUpdateParameter,
    OperationContract,
    PolicyContract,
    ProductContract,
)

from devstack.scene import sdk_client
from devstack.state import Entity
from rotation.adapters.credentials import StaticTokenCredential
from rotation.adapters.policies import ArmInboundPolicies
from rotation.domain.errors import (
    AuthorizationError,
    ConfigError,
    PreconditionFailedError,
    TransientDependencyError,
)
from rotation.domain.inbound import PolicyDocument, PolicyScope
from rotation.ports import InboundPolicies

THUMB_A = "5E0C3A9F1B2D4C6E8A0B1C2D3E4F5A6B7C8D9E0F"
THUMB_B = "AB6271ED3D1B57598DF29473E2C2F0F7251EDDA4"


def _document(thumbprint: str, tag: str) -> str:
    """A real-looking policy document: CRLF, a comment, expressions with =>, < and quotes."""
    return (
        "<policies>\r\n  <inbound>\r\n    <base />\r\n"
        f"    <!-- {tag}: callers pinned by thumbprint -->\r\n"
        '    <validate-client-certificate validate-revocation="true" validate-trust="true" '
        'validate-not-before="true" validate-not-after="true" ignore-error="false">\r\n'
        f'      <identities>\r\n        <identity thumbprint="{thumbprint}" />\r\n'
        "      </identities>\r\n    </validate-client-certificate>\r\n"
        '    <set-header name="x-caller" exists-action="override">\r\n'
        "      <value>@(context.Request.Certificate?.Subject.Split(',').FirstOrDefault(s => s.Length < 64) ?? \"none\")</value>\r\n"
        "    </set-header>\r\n  </inbound>\r\n"
        "  <backend>\r\n    <base />\r\n  </backend>\r\n</policies>"
    )


def _wire(devstack):
    return [(e.method, e.status) for e in devstack.request_log.arm.entries()]


def _adapter(devstack, token=None, retry_total=1):
    return ArmInboundPolicies(
        StaticTokenCredential(token or devstack.token),
        base_url=devstack.arm_endpoint,
        credential_scope="https://management.azure.com/.default",
        connection_verify=str(devstack.ca_bundle),
        retry_total=retry_total,
        retry_backoff_factor=0,
    )


@pytest.fixture(name="policies")
def _policies(devstack) -> ArmInboundPolicies:
    return _adapter(devstack)


@pytest.fixture(name="world")
def _world(devstack):
    """Through the SDK: products ``gold`` (policy) and ``free`` (none); APIs ``orders``
    (policy; operations ``create`` with a policy and ``list`` without) and ``billing`` (none);
    a global policy pinning A."""
    client = sdk_client(devstack)
    rg, svc = devstack.resource_group, devstack.apim_services[0]

    def put(operations, *args, value):
        operations.create_or_update(
            rg, svc, *args, "policy", PolicyContract(value=value, format="rawxml")
        )

    for product in ("gold", "free"):
        client.product.create_or_update(rg, svc, product, ProductContract(display_name=product))
    for api in ("orders", "billing"):
        client.api.begin_create_or_update(
            rg, svc, api, ApiCreateOrUpdateParameter(display_name=api, path=api)
        ).result()
    for op in ("create", "list"):
        client.api_operation.create_or_update(
            rg, svc, "orders", op, OperationContract(display_name=op, method="POST", url_template=f"/{op}")
        )  # fmt: skip
    documents = {
        PolicyScope.GLOBAL: _document(THUMB_A, "global"),
        PolicyScope.PRODUCT: _document(THUMB_A, "gold"),
        PolicyScope.API: _document(THUMB_B, "orders"),
        PolicyScope.OPERATION: _document(THUMB_A, "orders create"),
    }
    put(client.policy, value=documents[PolicyScope.GLOBAL])
    put(client.product_policy, "gold", value=documents[PolicyScope.PRODUCT])
    put(client.api_policy, "orders", value=documents[PolicyScope.API])
    put(client.api_operation_policy, "orders", "create", value=documents[PolicyScope.OPERATION])

    class World:
        service = svc
        service_id = devstack.service_id(svc)
        values = documents
        ids: ClassVar[dict[PolicyScope, str]] = {
            PolicyScope.GLOBAL: f"{service_id}/policies/policy",
            PolicyScope.PRODUCT: f"{service_id}/products/gold/policies/policy",
            PolicyScope.API: f"{service_id}/apis/orders/policies/policy",
            PolicyScope.OPERATION: f"{service_id}/apis/orders/operations/create/policies/policy",
        }
        sdk = client

    return World


def _by_scope(documents):
    return {d.scope: d for d in documents}


class TestList:
    def test_every_scope_is_listed_in_rawxml_with_etags(self, devstack, world, policies):
        """One document per scope that has one (none for free, billing, orders/list), each with
        its full ARM id, its value byte for byte, and the ETag a GET returns."""
        documents = list(policies.list_policies(world.service_id))

        assert len(documents) == 4
        found = _by_scope(documents)
        for scope, document in found.items():
            assert document.service_id == world.service_id
            assert document.resource_id == world.ids[scope]
            assert document.value == world.values[scope]
            assert "\r\n" in document.value
            assert "s => s.Length < 64" in document.value
        stored = devstack.state.service(world.service).operation_policies["orders/create"]
        assert found[PolicyScope.OPERATION].etag == stored.etag

    def test_requests_per_service(self, devstack, world, policies):
        """1 product list + 1 API list + 1 operation list per API, and one rawxml GET per
        scope: 1 global + 2 products + 2 APIs + 2 operations (4 found, 3 are 404s)."""
        devstack.request_log.clear()

        list(policies.list_policies(world.service_id))

        log = devstack.request_log.arm.entries()
        assert len(log) == 1 + 1 + 2 + 7
        gets = [e for e in log if "/policies/policy" in e.path]
        assert sorted(e.status for e in gets) == [200] * 4 + [404] * 3

    def test_lists_follow_pages(self, devstack, world, policies):
        """More APIs than a page (100): the API list follows nextLink, every API is read."""
        svc = devstack.state.service(world.service)
        with devstack.state.lock:
            for i in range(150):
                svc.apis[f"bulk-{i:03d}"] = Entity(
                    f"bulk-{i:03d}",
                    {"displayName": "b", "path": f"b{i}"},
                    devstack.state.next_etag(),
                )
            svc.policies["bulk-149"] = Entity(
                "policy", {"value": _document(THUMB_B, "bulk"), "format": "rawxml"}, '"x"'
            )
        devstack.request_log.clear()

        found = [d for d in policies.list_policies(world.service_id) if "bulk" in d.resource_id]

        assert [d.resource_id for d in found] == [
            f"{world.service_id}/apis/bulk-149/policies/policy"
        ]
        api_lists = [e for e in devstack.request_log.arm.entries() if e.path.endswith("/apis")]
        assert len(api_lists) == 2

    def test_empty_service_has_only_the_default_global_policy(self, devstack, policies):
        """No products or APIs: the default global policy alone."""
        documents = list(policies.list_policies(devstack.service_id(devstack.apim_services[1])))

        assert [d.scope for d in documents] == [PolicyScope.GLOBAL]


class TestPut:
    def test_cas_reads_then_writes_rawxml_byte_for_byte(self, devstack, world, policies):
        """GET rawxml then PUT with If-Match: the new text is stored exactly, and the returned
        document carries the ETag a fresh read sees."""
        listed = _by_scope(policies.list_policies(world.service_id))[PolicyScope.OPERATION]
        new = listed.value.replace(
            f'<identity thumbprint="{THUMB_A}" />',
            f'<identity thumbprint="{THUMB_A}" />\r\n        <identity thumbprint="{THUMB_B}" />',
        )
        devstack.request_log.clear()

        written = policies.put_policy(listed, expected_value=listed.value, value=new)

        assert _wire(devstack) == [("GET", 200), ("PUT", 200)]
        stored = devstack.state.service(world.service).operation_policies["orders/create"]
        assert stored.properties["value"] == new
        assert (written.value, written.etag) == (new, stored.etag)
        assert written.etag != listed.etag
        assert (written.resource_id, written.scope) == (listed.resource_id, listed.scope)
        again = _by_scope(policies.list_policies(world.service_id))[PolicyScope.OPERATION]
        assert again.value == new

    @pytest.mark.parametrize("scope", list(PolicyScope))
    def test_every_scope_can_be_written(self, world, policies, scope):
        """put_policy addresses each scope's document by its resource id."""
        listed = _by_scope(policies.list_policies(world.service_id))[scope]
        new = listed.value.replace("callers pinned", "callers still pinned")

        policies.put_policy(listed, expected_value=listed.value, value=new)

        assert _by_scope(policies.list_policies(world.service_id))[scope].value == new

    def test_refused_when_the_value_changed(self, devstack, world, policies):
        """Someone edited the document since it was listed: PreconditionFailedError after the
        read, no PUT."""
        listed = _by_scope(policies.list_policies(world.service_id))[PolicyScope.API]
        world.sdk.api_policy.create_or_update(
            devstack.resource_group, world.service, "orders", "policy",
            PolicyContract(value=listed.value + "\r\n", format="rawxml"),
        )  # fmt: skip
        devstack.request_log.clear()

        with pytest.raises(PreconditionFailedError, match="changed"):
            policies.put_policy(listed, expected_value=listed.value, value="<policies />")

        assert _wire(devstack) == [("GET", 200)]

    def test_refused_when_the_document_is_gone(self, devstack, world, policies):
        """The API policy was deleted: PreconditionFailedError (gone), no PUT."""
        listed = _by_scope(policies.list_policies(world.service_id))[PolicyScope.API]
        world.sdk.api_policy.delete(
            devstack.resource_group, world.service, "orders", "policy", if_match="*"
        )
        devstack.request_log.clear()

        with pytest.raises(PreconditionFailedError, match="gone"):
            policies.put_policy(listed, expected_value=listed.value, value="<policies />")

        assert _wire(devstack) == [("GET", 404)]

    def test_412_race_between_the_get_and_the_put(self, devstack, world, policies):
        """A concurrent write lands between the read and the PUT: one PUT, a 412, raised as
        PreconditionFailedError (no Retry-After, so not retried); the document is unchanged."""
        listed = _by_scope(policies.list_policies(world.service_id))[PolicyScope.PRODUCT]
        devstack.faults_arm.concurrent_write("*/products/gold/policies/policy", method="PUT")
        devstack.request_log.clear()

        with pytest.raises(PreconditionFailedError) as caught:
            policies.put_policy(listed, expected_value=listed.value, value="<policies />")

        assert caught.value.status_code == 412
        assert _wire(devstack) == [("GET", 200), ("PUT", 412)]
        stored = devstack.state.service(world.service).product_policies["gold"]
        assert stored.properties["value"] == listed.value

    def test_a_resource_id_outside_its_scope_is_a_value_error(self, world, policies):
        """A document whose id does not match its scope is a programmer error, before any I/O."""
        wrong = PolicyDocument(
            service_id=world.service_id,
            scope=PolicyScope.OPERATION,
            resource_id=world.ids[PolicyScope.API],
            value="<policies />",
        )

        elsewhere = PolicyDocument(
            service_id=world.service_id,
            scope=PolicyScope.API,
            resource_id=world.ids[PolicyScope.API].replace(world.service, "apim-other"),
            value="<policies />",
        )

        with pytest.raises(ValueError, match="not a operation-scope policy id"):
            policies.put_policy(wrong, expected_value="<policies />", value="<policies />")
        with pytest.raises(ValueError, match="not a api-scope policy id"):
            policies.put_policy(elsewhere, expected_value="<policies />", value="<policies />")


class TestErrors:
    def test_wrong_token_is_authorization_error_without_the_token(self, devstack, world):
        """401 → AuthorizationError; no token in the message or its cause."""
        adapter = _adapter(devstack, token="not-the-token", retry_total=0)

        with pytest.raises(AuthorizationError) as caught:
            list(adapter.list_policies(world.service_id))

        for text in (str(caught.value), str(caught.value.__cause__)):
            assert "not-the-token" not in text
            assert devstack.token not in text

    def test_missing_service_is_a_config_error_naming_the_setting(self, devstack, policies):
        """A 404 for the service itself: ConfigError naming ROTATION_APIM_SERVICES."""
        with pytest.raises(ConfigError, match="ROTATION_APIM_SERVICES"):
            list(policies.list_policies(devstack.service_id("apim-nope")))

    @pytest.mark.parametrize("status", [500, 503])
    def test_persistent_5xx_is_transient(self, devstack, world, policies, status):
        """5xx after retries on a policy read: TransientDependencyError with the status."""
        devstack.faults_arm.fail("*/policies/policy", status=status, count=5)

        with pytest.raises(TransientDependencyError) as caught:
            list(policies.list_policies(world.service_id))

        assert caught.value.status_code == status

    def test_5xx_on_the_put_is_transient(self, devstack, world, policies):
        """The write fails with 503 every time: TransientDependencyError, value unchanged."""
        listed = _by_scope(policies.list_policies(world.service_id))[PolicyScope.GLOBAL]
        devstack.faults_arm.fail("*/policies/policy", status=503, count=5, method="PUT")

        with pytest.raises(TransientDependencyError):
            policies.put_policy(listed, expected_value=listed.value, value="<policies />")

        assert (
            devstack.state.service(world.service).policies[""].properties["value"] == listed.value
        )

    def test_bad_service_id_is_a_value_error(self, policies):
        """A malformed service id names itself."""
        with pytest.raises(ValueError, match="not an APIM service ARM id"):
            list(policies.list_policies("/subscriptions/x/nope"))

    def test_satisfies_the_port(self, policies):
        """The adapter is an InboundPolicies."""
        port: InboundPolicies = policies

        assert isinstance(port, InboundPolicies)
        assert repr(policies).startswith("ArmInboundPolicies(base_url=")
