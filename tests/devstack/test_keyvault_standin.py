"""The Key Vault stand-in over plain REST: challenge auth, bundles, versions, secrets, errors."""

from __future__ import annotations

import base64
import hashlib
import re

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, pkcs12

API = {"api-version": "2026-04-01"}
AUTH = {"Authorization": "Bearer any-token-at-all"}
HEX32 = re.compile(r"^[0-9a-f]{32}$")


def _import(http, stack, name, data, *, content_type=None):
    body: dict[str, object] = {"value": base64.b64encode(data).decode()}
    if content_type:
        body["policy"] = {"secret_props": {"contentType": content_type}}
    return http.post(
        f"{stack.vault_url}/certificates/{name}/import", params=API, json=body, headers=AUTH
    )


class TestChallenge:
    def test_first_request_without_token_gets_the_challenge(self, devstack, devstack_http):
        """A request without Authorization gets 401, the Bearer challenge and AKV10000."""
        response = devstack_http.get(f"{devstack.vault_url}/certificates/x/", params=API)

        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"] == (
            f'Bearer authorization="https://login.microsoftonline.com/{devstack.tenant_id}", '
            'resource="https://vault.azure.net"'
        )
        assert response.json() == {
            "error": {
                "code": "Unauthorized",
                "message": "AKV10000: Request is missing a Bearer or PoP token.",
            }
        }

    def test_any_bearer_token_is_accepted(self, devstack, devstack_http, devstack_pki):
        """After the challenge any bearer token works."""
        devstack.import_certificate("c", devstack_pki.pfx())

        response = devstack_http.get(
            f"{devstack.vault_url}/certificates/c/", params=API, headers=AUTH
        )

        assert response.status_code == 200

    def test_non_bearer_authorization_is_refused(self, devstack, devstack_http):
        """Basic auth is not a token: challenged again."""
        response = devstack_http.get(
            f"{devstack.vault_url}/certificates/c/", headers={"Authorization": "Basic eDp5"}
        )

        assert response.status_code == 401


class TestCertificateBundle:
    def test_import_creates_a_32_hex_version_with_wire_fields(
        self, devstack, devstack_http, devstack_pki
    ):
        """Import returns a bundle: x5t base64url SHA-1 unpadded, cer leaf DER, int attributes."""
        leaf = devstack_pki.first[0].cert

        response = _import(devstack_http, devstack, "partner", devstack_pki.pfx())

        assert response.status_code == 200
        body = response.json()
        version = body["id"].rsplit("/", 1)[1]
        assert HEX32.match(version)
        assert body["id"] == f"{devstack.vault_url}/certificates/partner/{version}"
        assert body["sid"] == f"{devstack.vault_url}/secrets/partner/{version}"
        assert body["kid"] == f"{devstack.vault_url}/keys/partner/{version}"
        sha1 = hashlib.sha1(leaf.public_bytes(Encoding.DER)).digest()
        assert body["x5t"] == base64.urlsafe_b64encode(sha1).decode().rstrip("=")
        assert "=" not in body["x5t"]
        assert base64.b64decode(body["cer"]) == leaf.public_bytes(Encoding.DER)
        attributes = body["attributes"]
        for key in ("nbf", "exp", "created", "updated"):
            assert type(attributes[key]) is int
        assert attributes["exp"] == int(leaf.not_valid_after_utc.timestamp())
        assert attributes["enabled"] is True
        assert body["policy"]["secret_props"]["contentType"] == "application/x-pkcs12"

    def test_latest_is_the_newest_created_and_created_increases(
        self, devstack, devstack_http, devstack_pki
    ):
        """GET …/{name}/ (trailing slash) is the latest; ``created`` grows per version."""
        first = devstack.import_certificate("c", devstack_pki.pfx())
        second = devstack.import_certificate("c", devstack_pki.pfx("second"))

        latest = devstack_http.get(f"{devstack.vault_url}/certificates/c/", headers=AUTH).json()
        older = devstack_http.get(
            f"{devstack.vault_url}/certificates/c/{first}", headers=AUTH
        ).json()

        assert latest["id"].endswith(second)
        assert latest["attributes"]["created"] > older["attributes"]["created"]

    def test_update_disables_and_tags_a_version(self, devstack, devstack_http, devstack_pki):
        """PATCH attributes.enabled and tags; the bundle reflects them."""
        version = devstack.import_certificate("c", devstack_pki.pfx())

        response = devstack_http.patch(
            f"{devstack.vault_url}/certificates/c/{version}",
            json={"attributes": {"enabled": False}, "tags": {"owner": "platform"}},
            headers=AUTH,
        )

        assert response.status_code == 200
        assert response.json()["attributes"]["enabled"] is False
        assert response.json()["tags"] == {"owner": "platform"}

    @pytest.mark.parametrize(
        ("path", "code"),
        [("/certificates/nope/", "CertificateNotFound"), ("/secrets/nope/", "SecretNotFound")],
    )
    def test_missing_objects_answer_404_with_the_key_vault_code(
        self, devstack, devstack_http, path, code
    ):
        """Unknown certificates and secrets are 404 with Key Vault's error codes."""
        response = devstack_http.get(f"{devstack.vault_url}{path}", headers=AUTH)

        assert response.status_code == 404
        assert response.json()["error"]["code"] == code

    def test_unreadable_import_is_a_400(self, devstack, devstack_http):
        """Garbage bytes are refused with BadParameter."""
        response = _import(devstack_http, devstack, "c", b"not a certificate")

        assert response.status_code == 400
        assert response.json()["error"]["code"] == "BadParameter"


class TestVersionsPaging:
    def test_versions_page_with_an_absolute_next_link_on_the_own_host(
        self, devstack, devstack_http, devstack_pki
    ):
        """maxresults pages; nextLink is absolute on this server's host:port; all versions come."""
        made = {devstack.import_certificate("c", devstack_pki.pfx()) for _ in range(5)}
        url = f"{devstack.vault_url}/certificates/c/versions"
        params: dict[str, str] | None = {**API, "maxresults": "2"}
        seen, pages = set(), 0

        while url:
            body = devstack_http.get(url, params=params, headers=AUTH).json()
            seen |= {item["id"].rsplit("/", 1)[1] for item in body["value"]}
            pages += 1
            url, params = body.get("nextLink"), None
            if url:
                assert url.startswith(f"{devstack.vault_url}/certificates/c/versions?")

        assert seen == made
        assert pages == 3

    def test_maxresults_above_25_is_refused(self, devstack, devstack_http, devstack_pki):
        """Key Vault caps a page at 25."""
        devstack.import_certificate("c", devstack_pki.pfx())

        response = devstack_http.get(
            f"{devstack.vault_url}/certificates/c/versions",
            params={"maxresults": "26"},
            headers=AUTH,
        )

        assert response.status_code == 400


class TestSecrets:
    def test_pkcs12_secret_is_base64_pfx_with_empty_password_and_chain(
        self, devstack, devstack_http, devstack_pki
    ):
        """The certificate's secret: base64 PFX (no password), key + leaf + chain, managed."""
        version = devstack.import_certificate("c", devstack_pki.pfx())

        body = devstack_http.get(f"{devstack.vault_url}/secrets/c/{version}", headers=AUTH).json()

        loaded = pkcs12.load_pkcs12(base64.b64decode(body["value"]), None)
        assert loaded.key is not None
        assert loaded.cert is not None
        assert loaded.cert.certificate == devstack_pki.first[0].cert
        assert len(loaded.additional_certs) == 2
        assert body["contentType"] == "application/x-pkcs12"
        assert body["managed"] is True
        assert body["kid"] == f"{devstack.vault_url}/keys/c/{version}"
        assert body["id"] == f"{devstack.vault_url}/secrets/c/{version}"

    def test_pem_policy_gives_key_then_certificates(self, devstack, devstack_http, devstack_pki):
        """application/x-pem-file: the private key first, then the leaf and the chain."""
        response = _import(
            devstack_http,
            devstack,
            "p",
            devstack_pki.pem(),
            content_type="application/x-pem-file",
        )
        version = response.json()["id"].rsplit("/", 1)[1]

        body = devstack_http.get(f"{devstack.vault_url}/secrets/p/{version}", headers=AUTH).json()

        assert body["contentType"] == "application/x-pem-file"
        assert body["value"].startswith("-----BEGIN PRIVATE KEY-----")
        certs = x509.load_pem_x509_certificates(body["value"].encode())
        assert [c.subject for c in certs] == [i.cert.subject for i in devstack_pki.first]

    def test_out_content_type_converts_pfx_to_pem(self, devstack, devstack_http, devstack_pki):
        """outContentType=application/x-pem-file converts a PKCS#12 secret to PEM."""
        devstack.import_certificate("c", devstack_pki.pfx())

        body = devstack_http.get(
            f"{devstack.vault_url}/secrets/c/",
            params={"outContentType": "application/x-pem-file"},
            headers=AUTH,
        ).json()

        assert body["contentType"] == "application/x-pem-file"
        assert "-----BEGIN CERTIFICATE-----" in body["value"]

    def test_disabled_version_secret_is_forbidden(self, devstack, devstack_http, devstack_pki):
        """A disabled version's secret is 403 Forbidden (inner code SecretDisabled)."""
        version = devstack.import_certificate("c", devstack_pki.pfx(), enabled=False)

        response = devstack_http.get(f"{devstack.vault_url}/secrets/c/{version}", headers=AUTH)

        assert response.status_code == 403
        assert response.json()["error"]["innererror"]["code"] == "SecretDisabled"
