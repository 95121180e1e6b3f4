"""``devstack.gateway``: the gateway stand-in admits an mTLS caller by the thumbprints it is given,
read afresh per request, and by the thumbprint identities of a policy stored in the devstack."""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from azure.mgmt.apimanagement import ApiManagementClient
from azure.mgmt.apimanagement.models import (
    ApiCreateOrUpdateParameter,
    OperationContract,
    PolicyContract,
    ProductContract,
)

from devstack.gateway import (
    REFUSED,
    Gateway,
    PolicyScope,
    call,
    policy_thumbprints,
    stored_policy,
    thumbprint_of,
)
from devstack.pki import Issued, mint_certificate, mint_chain, to_pem_bundle
from devstack.stack import Devstack
from devstack.tls import ServerTls, mint_server_tls
from rotation.adapters.credentials import StaticTokenCredential
from rotation.domain.policies import PolicyDocumentError

SERVICE = "apim-devstack-1"


def _policy(*thumbprints: str) -> str:
    identities = "".join(f'<identity thumbprint="{t}" />' for t in thumbprints)
    return (
        "<policies><inbound><base />"
        '<validate-client-certificate validate-revocation="false" validate-trust="true">'
        f"<identities>{identities}</identities></validate-client-certificate>"
        "</inbound><backend><base /></backend><outbound><base /></outbound>"
        "<on-error><base /></on-error></policies>"
    )


@pytest.fixture(scope="module", name="clients")
def _clients() -> tuple[Issued, Issued, list[Issued]]:
    """Two client certificates from one CA minted here (not the devstack's), and that chain."""
    chain = mint_chain(depth=2, kind="ec", size=256, leaf_name="one.gateway.test")
    other = mint_certificate("two.gateway.test", issuer=chain[1])
    return chain[0], other, chain


@pytest.fixture(scope="module", name="server_tls")
def _server_tls(tmp_path_factory: pytest.TempPathFactory) -> ServerTls:
    return mint_server_tls(tmp_path_factory.mktemp("gateway-tls"))


@pytest.fixture(name="allowed")
def _allowed() -> set[str]:
    return set()


@pytest.fixture(name="gateway")
def _gateway(server_tls: ServerTls, allowed: set[str]) -> Iterator[Gateway]:
    with Gateway(lambda: allowed, server_tls) as gateway:
        yield gateway


def _answer(gateway: Gateway, identity: Issued, directory: Path) -> tuple[int, object]:
    """Status and JSON body of one request (the client certificate loaded from ``directory``)."""
    context = ssl.create_default_context(cafile=str(gateway.ca_pem))
    bundle = directory / "client.pem"
    bundle.write_bytes(identity.key_pem + identity.pem)
    context.load_cert_chain(bundle)
    connection = http.client.HTTPSConnection("127.0.0.1", gateway.port, context=context)
    try:
        connection.request("GET", "/echo")
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


class TestThumbprints:
    def test_only_a_listed_thumbprint_is_admitted(self, gateway, allowed, clients):
        one, two, _ = clients
        allowed.add(thumbprint_of(one.cert))

        assert call(gateway, one) == 200
        assert call(gateway, two) == REFUSED == 401
        assert call(gateway, None) == REFUSED

    def test_the_calls_record_what_was_presented(self, gateway, allowed, clients):
        one, two, _ = clients
        allowed.add(thumbprint_of(one.cert))

        call(gateway, one, path="/a")
        call(gateway, two, path="/b")
        call(gateway, None, path="/c")

        assert [(c.thumbprint, c.path, c.status) for c in gateway.calls] == [
            (thumbprint_of(one.cert), "/a", 200),
            (thumbprint_of(two.cert), "/b", 401),
            (None, "/c", 401),
        ]

    def test_the_thumbprints_are_read_on_every_request(self, gateway, allowed, clients):
        """A rotation needs no restart: a new set applies to the next request."""
        one, two, _ = clients
        allowed.add(thumbprint_of(one.cert))
        assert call(gateway, two) == REFUSED

        allowed.add(thumbprint_of(two.cert))
        assert (call(gateway, one), call(gateway, two)) == (200, 200)

        allowed.discard(thumbprint_of(one.cert))
        assert (call(gateway, one), call(gateway, two)) == (REFUSED, 200)

    def test_thumbprints_compare_case_insensitively(self, gateway, allowed, clients):
        one, _, _ = clients
        allowed.add(thumbprint_of(one.cert).lower())

        assert call(gateway, one) == 200

    def test_any_issuer_completes_the_handshake_and_the_thumbprint_decides(self, gateway, allowed):
        """A self-signed certificate no one trusts is admitted when pinned, like APIM's
        negotiated client certificate with a thumbprint identity."""
        stranger = mint_certificate("stranger.gateway.test")
        assert call(gateway, stranger) == REFUSED

        allowed.add(thumbprint_of(stranger.cert))

        assert call(gateway, stranger) == 200

    def test_a_pem_bundle_with_its_chain(self, gateway, allowed, clients):
        one, _, chain = clients
        allowed.add(thumbprint_of(one.cert))

        assert call(gateway, to_pem_bundle(one, chain[1:])) == 200

    def test_the_answers_are_apim_like_json(self, gateway, allowed, clients, tmp_path):
        one, two, _ = clients
        allowed.add(thumbprint_of(one.cert))

        assert _answer(gateway, one, tmp_path) == (
            200,
            {"statusCode": 200, "thumbprint": thumbprint_of(one.cert)},
        )
        assert _answer(gateway, two, tmp_path) == (
            401,
            {"statusCode": 401, "message": "Invalid client certificate"},
        )

    def test_a_failing_provider_answers_500_not_a_refusal(self, server_tls, clients):
        one, _, _ = clients

        def broken() -> list[str]:
            raise PolicyDocumentError("not well-formed", line=1, column=1, offset=0)

        with Gateway(broken, server_tls) as gateway:
            assert call(gateway, one) == 500
            assert gateway.decide(one.cert)[1]["message"] == (
                "The gateway could not read its policy (PolicyDocumentError)."
            )


class TestLifecycle:
    def test_exit_leaves_no_thread_and_no_descriptor(self, server_tls, clients):
        one, _, _ = clients
        fds = Path("/proc/self/fd")
        threads = set(threading.enumerate())
        before = {p.name for p in fds.iterdir()}

        with Gateway(lambda: {thumbprint_of(one.cert)}, server_tls) as gateway:
            assert [call(gateway, one) for _ in range(3)] == [200, 200, 200]

        ours = [
            t.name
            for t in set(threading.enumerate()) - threads
            if t.name == "devstack-gateway" or "process_request_thread" in t.name
        ]
        assert ours == []
        # Only descriptors opened meanwhile count (other tests' threads may close theirs).
        assert sorted({p.name for p in fds.iterdir()} - before) == []

    def test_a_gateway_never_entered_closes_its_socket(self, server_tls):
        fds = Path("/proc/self/fd")
        before = {p.name for p in fds.iterdir()}

        Gateway(list, server_tls).close()

        assert sorted({p.name for p in fds.iterdir()} - before) == []

    def test_a_caller_that_hangs_up_mid_handshake_does_not_stop_it(
        self, gateway, allowed, clients
    ):
        one, _, _ = clients
        allowed.add(thumbprint_of(one.cert))

        with socket.create_connection(("127.0.0.1", gateway.port)) as sock:
            sock.sendall(b"\x16\x03\x01\x00\x05hello")  # a truncated ClientHello, then gone

        assert call(gateway, one) == 200


class TestScope:
    def test_an_operation_needs_its_api(self):
        with pytest.raises(ValueError, match="operation 'op' needs its API id"):
            PolicyScope(SERVICE, operation="op")

    def test_a_product_and_an_api_are_exclusive(self):
        with pytest.raises(ValueError, match="a product or an API, not both"):
            PolicyScope(SERVICE, api="echo", product="starter")

    def test_a_service_is_required(self):
        with pytest.raises(ValueError, match="needs the APIM service name"):
            PolicyScope("")


@pytest.fixture(name="arm")
def _arm(devstack: Devstack, devstack_credential: StaticTokenCredential) -> ApiManagementClient:
    return ApiManagementClient(
        devstack_credential,
        devstack.subscription_id,
        base_url=devstack.arm_endpoint,
        connection_verify=str(devstack.ca_bundle),
        retry_total=0,
    )


class TestStoredPolicy:
    def test_the_gateway_enforces_the_global_policy_stored_through_the_sdk(
        self, devstack, arm, clients
    ):
        one, two, _ = clients
        scope = PolicyScope(SERVICE)
        provider = policy_thumbprints(devstack, scope)
        arm.policy.create_or_update(
            devstack.resource_group,
            SERVICE,
            "policy",
            PolicyContract(value=_policy(thumbprint_of(one.cert)), format="rawxml"),
        )

        with Gateway(provider, devstack.tls) as gateway:
            before = (call(gateway, one), call(gateway, two))
            arm.policy.create_or_update(
                devstack.resource_group,
                SERVICE,
                "policy",
                PolicyContract(
                    value=_policy(thumbprint_of(one.cert), thumbprint_of(two.cert).lower()),
                    format="rawxml",
                ),
            )
            overlap = (call(gateway, one), call(gateway, two))
            arm.policy.create_or_update(
                devstack.resource_group,
                SERVICE,
                "policy",
                PolicyContract(value=_policy(thumbprint_of(two.cert)), format="rawxml"),
            )
            after = (call(gateway, one), call(gateway, two))

        assert (before, overlap, after) == ((200, 401), (200, 200), (401, 200))

    def test_an_api_policy_and_a_missing_one(self, devstack, arm, clients):
        one, _, _ = clients
        arm.api.begin_create_or_update(
            devstack.resource_group, SERVICE, "echo",
            ApiCreateOrUpdateParameter(display_name="Echo", path="echo", protocols=["https"]),
        ).result()  # fmt: skip
        arm.api_policy.create_or_update(
            devstack.resource_group,
            SERVICE,
            "echo",
            "policy",
            PolicyContract(value=_policy(thumbprint_of(one.cert)), format="rawxml"),
        )

        assert policy_thumbprints(devstack, PolicyScope(SERVICE, api="Echo"))() == (
            thumbprint_of(one.cert),
        )
        assert policy_thumbprints(devstack, PolicyScope(SERVICE, api="other"))() == ()
        assert stored_policy(devstack, PolicyScope(SERVICE, api="other")) is None

    def test_the_default_global_policy_pins_nothing(self, devstack, clients):
        one, _, _ = clients
        provider = policy_thumbprints(devstack, PolicyScope(SERVICE))

        with Gateway(provider, devstack.tls) as gateway:
            assert call(gateway, one) == REFUSED

    def test_a_broken_stored_policy_answers_500(self, devstack, clients):
        """ARM refuses a malformed document, so the broken one is put in the state directly."""
        one, _, _ = clients
        with devstack.state.lock:
            devstack.state.service(SERVICE).policies[""].properties = {
                "value": "<policies><inbound>",
                "format": "rawxml",
            }
        provider = policy_thumbprints(devstack, PolicyScope(SERVICE))

        with Gateway(provider, devstack.tls) as gateway:
            assert call(gateway, one) == 500

    def test_an_unknown_service_is_named(self, devstack):
        with pytest.raises(KeyError, match="no APIM service 'nope'"):
            stored_policy(devstack, PolicyScope("nope"))

    def test_product_and_operation_policies_are_read(self, devstack, arm, clients):
        """The provider reads the product and operation scopes the ARM stand-in stores."""
        one, two, _ = clients
        rg = devstack.resource_group
        arm.product.create_or_update(
            rg, SERVICE, "starter", ProductContract(display_name="Starter")
        )
        arm.product_policy.create_or_update(
            rg, SERVICE, "starter", "policy",
            PolicyContract(value=_policy(thumbprint_of(one.cert)), format="rawxml"),
        )  # fmt: skip
        arm.api.begin_create_or_update(
            rg, SERVICE, "echo",
            ApiCreateOrUpdateParameter(display_name="Echo", path="echo", protocols=["https"]),
        ).result()  # fmt: skip
        arm.api_operation.create_or_update(
            rg, SERVICE, "echo", "get",
            OperationContract(display_name="Get", method="GET", url_template="/"),
        )  # fmt: skip
        arm.api_operation_policy.create_or_update(
            rg, SERVICE, "echo", "get", "policy",
            PolicyContract(value=_policy(thumbprint_of(two.cert)), format="rawxml"),
        )  # fmt: skip

        product = policy_thumbprints(devstack, PolicyScope(SERVICE, product="Starter"))
        operation = policy_thumbprints(devstack, PolicyScope(SERVICE, api="echo", operation="GET"))

        assert product() == (thumbprint_of(one.cert),)
        assert operation() == (thumbprint_of(two.cert),)
        assert stored_policy(devstack, PolicyScope(SERVICE, product="other")) is None
