"""The unmodified Azure SDK clients against the stand-ins, beyond what the adapters call."""

from __future__ import annotations

import pytest
from azure.keyvault.certificates import (
    CertificateClient,
    CertificateContentType,
    CertificatePolicy,
)
from azure.keyvault.secrets import SecretClient
from azure.mgmt.apimanagement import ApiManagementClient
from azure.mgmt.apimanagement.models import (
    ApiCreateOrUpdateParameter,
    BackendContract,
    BackendCredentialsContract,
    CertificateCreateOrUpdateParameters,
    KeyVaultContractCreateProperties,
    PolicyContract,
)


@pytest.fixture(name="kv")
def _kv(devstack, devstack_credential):
    options = {
        "connection_verify": str(devstack.ca_bundle),
        "verify_challenge_resource": False,
        "retry_total": 0,
    }
    return (
        CertificateClient(devstack.vault_url, devstack_credential, **options),
        SecretClient(devstack.vault_url, devstack_credential, **options),
    )


@pytest.fixture(name="arm")
def _arm(devstack, devstack_credential):
    return ApiManagementClient(
        devstack_credential,
        devstack.subscription_id,
        base_url=devstack.arm_endpoint,
        connection_verify=str(devstack.ca_bundle),
        retry_total=0,
    )


class TestKeyVaultSdk:
    def test_import_pfx_then_get_latest_with_policy(self, kv, devstack_pki):
        """import_certificate (PKCS#12) works; get_certificate (trailing slash) returns it."""
        certificates, _ = kv

        imported = certificates.import_certificate("c", devstack_pki.pfx())
        latest = certificates.get_certificate("c")

        assert latest.properties.version == imported.properties.version
        assert latest.policy.content_type == CertificateContentType.pkcs12
        assert latest.cer == imported.cer
        assert latest.secret_id.endswith(f"/secrets/c/{imported.properties.version}")

    def test_import_pem_with_policy_and_read_the_secret(self, kv, devstack_pki):
        """PEM import needs a PEM policy; the secret comes back as PEM with the chain."""
        certificates, secrets = kv
        policy = CertificatePolicy(
            issuer_name="Unknown", subject="CN=p", content_type=CertificateContentType.pem
        )

        imported = certificates.import_certificate("p", devstack_pki.pem(), policy=policy)
        secret = secrets.get_secret("p", imported.properties.version)

        assert secret.properties.content_type == "application/x-pem-file"
        assert secret.value.count("-----BEGIN CERTIFICATE-----") == 3
        assert secret.properties.managed is True

    def test_update_properties_and_small_pages(self, kv, devstack_pki):
        """update_certificate_properties disables; versions page with max_page_size."""
        certificates, secrets = kv
        made = [certificates.import_certificate("c", devstack_pki.pfx()) for _ in range(3)]

        updated = certificates.update_certificate_properties(
            "c", made[0].properties.version, enabled=False, tags={"k": "v"}
        )
        listed = list(certificates.list_properties_of_certificate_versions("c", max_page_size=1))
        latest_secret = secrets.get_secret("c")

        assert updated.properties.enabled is False
        assert updated.properties.tags == {"k": "v"}
        assert len(listed) == 3
        assert latest_secret.properties.version == made[-1].properties.version


class TestArmSdk:
    def test_certificate_put_get_etag_list_filter(self, devstack, devstack_pki, arm):
        """create_or_update, get_entity_tag, list_by_service with filter and top."""
        version = devstack.import_certificate("partner", devstack_pki.pfx())
        service = devstack.apim_services[1]
        secret = f"{devstack.vault_url}/secrets/partner/{version}"
        parameters = CertificateCreateOrUpdateParameters(
            key_vault=KeyVaultContractCreateProperties(secret_identifier=secret)
        )
        for name in ("a-mtls", "b-mtls", "c"):
            arm.certificate.create_or_update(devstack.resource_group, service, name, parameters)

        exists = arm.certificate.get_entity_tag(devstack.resource_group, service, "a-mtls")
        filtered = list(
            arm.certificate.list_by_service(
                devstack.resource_group, service, filter="contains(name,'mtls')", top=1
            )
        )

        assert exists is True
        assert [c.name for c in filtered] == ["a-mtls", "b-mtls"]

    def test_backend_create_get_delete(self, devstack, arm):
        """Backends: create_or_update, get, delete with If-Match *."""
        rg, service = devstack.resource_group, devstack.apim_services[0]
        contract = BackendContract(
            url="https://b.test",
            protocol="http",
            credentials=BackendCredentialsContract(certificate_ids=["/x"], header={"h": ["v"]}),
        )

        arm.backend.create_or_update(rg, service, "b", contract)
        got = arm.backend.get(rg, service, "b")
        arm.backend.delete(rg, service, "b", if_match="*")

        assert got.credentials.header == {"h": ["v"]}
        assert got.type_properties_type is None
        assert list(arm.backend.list_by_service(rg, service)) == []

    def test_policies_rawxml_both_scopes(self, devstack, arm):
        """api_policy and policy round-trip rawxml text as written (the API exists first)."""
        rg, service = devstack.resource_group, devstack.apim_services[0]
        xml = "<policies><inbound><base /></inbound></policies>"
        arm.api.begin_create_or_update(
            rg, service, "echo", ApiCreateOrUpdateParameter(display_name="Echo", path="echo")
        ).result()

        arm.api_policy.create_or_update(
            rg, service, "echo", "policy", PolicyContract(value=xml, format="rawxml")
        )
        api = arm.api_policy.get(rg, service, "echo", "policy", format="rawxml")
        global_policy = arm.policy.get(rg, service, "policy", format="rawxml")

        assert api.value == xml
        assert global_policy.value.startswith("<policies>")
