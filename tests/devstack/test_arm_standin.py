"""The ARM/APIM stand-in over plain REST: auth, certificates, backends, policies, lists, ETags."""

from __future__ import annotations

import base64
import re

import pytest
from cryptography.hazmat.primitives import hashes

from devstack.pki import to_pkcs12

API = {"api-version": "2024-05-01"}
ETAG = re.compile(r'^"[A-Za-z0-9+/=]+"$')


@pytest.fixture(name="arm")
def _arm(devstack, devstack_http):
    """A REST helper bound to the first service, sending the stack's bearer token."""

    class Arm:
        service = devstack.apim_services[0]
        base = devstack.arm_endpoint + devstack.service_id(service)

        def __call__(self, method, path, *, headers=None, **kwargs):
            merged = {"Authorization": f"Bearer {devstack.token}", **(headers or {})}
            params = {**API, **kwargs.pop("params", {})}
            return devstack_http.request(
                method, self.base + path, headers=merged, params=params, **kwargs
            )

    return Arm()


def _kv_cert(devstack, devstack_pki, which="first"):
    version = devstack.import_certificate("partner", devstack_pki.pfx(which))
    return version, f"{devstack.vault_url}/secrets/partner/{version}"


def _thumbprint(issued):
    return issued.cert.fingerprint(hashes.SHA1()).hex().upper()


class TestAuthentication:
    def test_missing_token_is_401_without_a_challenge_header(self, devstack, devstack_http):
        """ARM needs the bearer up front: 401 AuthenticationFailed, no WWW-Authenticate."""
        url = devstack.arm_endpoint + devstack.service_id(devstack.apim_services[0])

        response = devstack_http.get(url + "/backends", params=API)

        assert response.status_code == 401
        assert response.json()["error"]["code"] == "AuthenticationFailed"
        assert "WWW-Authenticate" not in response.headers

    def test_wrong_token_is_401(self, arm):
        """A token other than the stack's is refused."""
        response = arm("GET", "/backends", headers={"Authorization": "Bearer wrong"})

        assert response.status_code == 401
        assert response.json()["error"]["code"] == "InvalidAuthenticationToken"

    def test_unknown_service_and_group_are_404(self, devstack, devstack_http):
        """Paths outside the stack's subscription/group/services are ARM 404s."""
        headers = {"Authorization": f"Bearer {devstack.token}"}
        bad_group = devstack.service_id("x").replace("rg-devstack", "rg-other")

        service = devstack_http.get(
            devstack.arm_endpoint + devstack.service_id("nope") + "/backends",
            params=API,
            headers=headers,
        )
        group = devstack_http.get(devstack.arm_endpoint + bad_group, params=API, headers=headers)

        assert service.status_code == 404
        assert group.json()["error"]["code"] == "ResourceGroupNotFound"


class TestCertificates:
    def test_put_from_key_vault_computes_thumbprint_subject_expiry(
        self, devstack, devstack_pki, arm
    ):
        """201 on create with ETag; thumbprint upper SHA-1, subject, expiry, lastStatus Success."""
        _, secret = _kv_cert(devstack, devstack_pki)

        response = arm(
            "PUT",
            "/certificates/partner-mtls",
            json={"properties": {"keyVault": {"secretIdentifier": secret}}},
        )

        assert response.status_code == 201
        assert ETAG.match(response.headers["ETag"])
        body = response.json()
        props = body["properties"]
        assert body["id"] == devstack.service_id(arm.service) + "/certificates/partner-mtls"
        assert body["type"] == "Microsoft.ApiManagement/service/certificates"
        assert props["thumbprint"] == _thumbprint(devstack_pki.first[0])
        assert "CN=first.devstack.test" in props["subject"]
        assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", props["expirationDate"])
        assert props["keyVault"]["lastStatus"]["code"] == "Success"
        assert props["keyVault"]["secretIdentifier"] == secret

    def test_update_is_200_and_changes_the_etag(self, devstack, devstack_pki, arm):
        """A second PUT is 200 and every write moves the ETag."""
        _, secret = _kv_cert(devstack, devstack_pki)
        body = {"properties": {"keyVault": {"secretIdentifier": secret}}}
        first = arm("PUT", "/certificates/c", json=body)

        second = arm("PUT", "/certificates/c", json=body)

        assert second.status_code == 200
        assert second.headers["ETag"] != first.headers["ETag"]

    def test_versionless_identifier_resolves_to_newest_enabled(self, devstack, devstack_pki, arm):
        """A versionless secret id takes the newest *enabled* version."""
        devstack.import_certificate("partner", devstack_pki.pfx("first"))
        devstack.import_certificate("partner", devstack_pki.pfx("second"), enabled=False)
        versionless = f"{devstack.vault_url}/secrets/partner"

        response = arm(
            "PUT",
            "/certificates/c",
            json={"properties": {"keyVault": {"secretIdentifier": versionless}}},
        )

        assert response.json()["properties"]["thumbprint"] == _thumbprint(devstack_pki.first[0])

    def test_create_with_missing_secret_is_400(self, devstack, arm):
        """APIM refuses to create an entity whose secret it cannot fetch."""
        missing = f"{devstack.vault_url}/secrets/none/{'0' * 32}"

        response = arm(
            "PUT",
            "/certificates/c",
            json={"properties": {"keyVault": {"secretIdentifier": missing}}},
        )

        assert response.status_code == 400
        assert arm("GET", "/certificates/c").status_code == 404

    def test_update_to_missing_version_fails_status_and_keeps_thumbprint(
        self, devstack, devstack_pki, arm
    ):
        """A failed fetch shows in lastStatus; the thumbprint stays as it was."""
        _, secret = _kv_cert(devstack, devstack_pki)
        arm(
            "PUT",
            "/certificates/c",
            json={"properties": {"keyVault": {"secretIdentifier": secret}}},
        )
        missing = f"{devstack.vault_url}/secrets/partner/{'0' * 32}"

        response = arm(
            "PUT",
            "/certificates/c",
            json={"properties": {"keyVault": {"secretIdentifier": missing}}},
        )

        props = response.json()["properties"]
        assert response.status_code == 200
        assert props["thumbprint"] == _thumbprint(devstack_pki.first[0])
        assert props["keyVault"]["lastStatus"]["code"] == "Failed"
        assert props["keyVault"]["lastStatus"]["message"]

    def test_refresh_secret_picks_up_a_new_version(self, devstack, devstack_pki, arm):
        """refreshSecret re-fetches a versionless reference: new thumbprint, new ETag."""
        devstack.import_certificate("partner", devstack_pki.pfx("first"))
        body = {
            "properties": {
                "keyVault": {"secretIdentifier": f"{devstack.vault_url}/secrets/partner"}
            }
        }
        created = arm("PUT", "/certificates/c", json=body)
        devstack.import_certificate("partner", devstack_pki.pfx("second"))

        response = arm("POST", "/certificates/c/refreshSecret")

        assert response.status_code == 200
        assert response.json()["properties"]["thumbprint"] == _thumbprint(devstack_pki.second[0])
        assert response.headers["ETag"] != created.headers["ETag"]

    def test_put_from_data_and_password(self, devstack_pki, arm):
        """Uploading PKCS#12 bytes with a password computes the same fields, no keyVault."""
        chain = devstack_pki.first
        data = base64.b64encode(to_pkcs12(chain[0], chain[1:], password=b"pw")).decode()

        response = arm(
            "PUT", "/certificates/up", json={"properties": {"data": data, "password": "pw"}}
        )

        assert response.status_code == 201
        assert response.json()["properties"]["thumbprint"] == _thumbprint(chain[0])
        assert "keyVault" not in response.json()["properties"]

    def test_head_returns_the_etag_without_body(self, devstack, devstack_pki, arm):
        """HEAD is 200 with the same ETag as GET and no body."""
        _, secret = _kv_cert(devstack, devstack_pki)
        arm(
            "PUT",
            "/certificates/c",
            json={"properties": {"keyVault": {"secretIdentifier": secret}}},
        )

        head = arm("HEAD", "/certificates/c")

        assert head.status_code == 200
        assert head.content == b""
        assert head.headers["ETag"] == arm("GET", "/certificates/c").headers["ETag"]

    def test_delete_requires_if_match_and_honours_it(self, devstack, devstack_pki, arm):
        """DELETE: 400 without If-Match, 412 on a stale one, 200 with the current, 204 when gone."""
        _, secret = _kv_cert(devstack, devstack_pki)
        put = arm(
            "PUT",
            "/certificates/c",
            json={"properties": {"keyVault": {"secretIdentifier": secret}}},
        )

        missing = arm("DELETE", "/certificates/c")
        stale = arm("DELETE", "/certificates/c", headers={"If-Match": '"stale"'})
        done = arm("DELETE", "/certificates/c", headers={"If-Match": put.headers["ETag"]})
        again = arm("DELETE", "/certificates/c", headers={"If-Match": "*"})

        assert (missing.status_code, stale.status_code) == (400, 412)
        assert "Retry-After" not in stale.headers
        assert (done.status_code, again.status_code) == (200, 204)


class TestCertificateLists:
    @pytest.fixture(name="three")
    def _three(self, devstack, devstack_pki):
        _, secret = _kv_cert(devstack, devstack_pki)
        for name in ("alpha-mtls", "beta-mtls", "gamma"):
            devstack.put_apim_certificate(devstack.apim_services[0], name, secret)

    @pytest.mark.parametrize(
        ("expression", "names"),
        [
            ("name eq 'beta-mtls'", ["beta-mtls"]),
            ("name ne 'beta-mtls'", ["alpha-mtls", "gamma"]),
            ("substringof('mtls', name)", ["alpha-mtls", "beta-mtls"]),
            ("contains(name, 'MTLS')", ["alpha-mtls", "beta-mtls"]),
            ("startswith(name,'gam')", ["gamma"]),
            ("endswith(name, 'mtls') and startswith(name, 'a')", ["alpha-mtls"]),
        ],
    )
    def test_filters(self, three, arm, expression, names):
        """Supported $filter forms select by name, case-insensitively."""
        body = arm("GET", "/certificates", params={"$filter": expression}).json()

        assert [item["name"] for item in body["value"]] == names
        assert body["count"] == len(names)

    def test_unsupported_filter_is_an_arm_400(self, three, arm):
        """An unsupported clause is a 400 with an ARM error naming it."""
        response = arm("GET", "/certificates", params={"$filter": "length(name) gt 3"})

        assert response.status_code == 400
        assert "length(name)" in response.json()["error"]["message"]

    def test_refresh_failed_filter(self, devstack, three, arm):
        """isKeyVaultRefreshFailed=true lists only entities whose last fetch failed."""
        devstack.faults_arm.keyvault_refresh_failure("*/certificates/gamma/refreshSecret")
        arm("POST", "/certificates/gamma/refreshSecret")

        body = arm("GET", "/certificates", params={"isKeyVaultRefreshFailed": "true"}).json()

        assert [item["name"] for item in body["value"]] == ["gamma"]


class TestBackends:
    def test_put_create_then_update(self, arm):
        """PUT backend: 201 then 200, new ETag each time, full replace of properties."""
        body = {"properties": {"url": "https://a.test", "protocol": "http", "title": "A"}}

        created = arm("PUT", "/backends/b", json=body)
        updated = arm(
            "PUT",
            "/backends/b",
            json={"properties": {"url": "https://b.test", "protocol": "http"}},
        )

        assert (created.status_code, updated.status_code) == (201, 200)
        assert created.headers["ETag"] != updated.headers["ETag"]
        assert "title" not in updated.json()["properties"]

    def test_put_without_url_is_400(self, arm):
        """url and protocol are required."""
        response = arm("PUT", "/backends/b", json={"properties": {"protocol": "http"}})

        assert response.status_code == 400
        assert response.json()["error"]["code"] == "ValidationError"

    def test_patch_requires_if_match_and_412_has_no_retry_after(self, arm):
        """PATCH: 400 without If-Match; a stale ETag is 412 with no Retry-After."""
        put = arm(
            "PUT",
            "/backends/b",
            json={"properties": {"url": "https://a.test", "protocol": "http"}},
        )
        arm(
            "PATCH",
            "/backends/b",
            json={"properties": {"title": "x"}},
            headers={"If-Match": put.headers["ETag"]},
        )
        patch = {"properties": {"title": "y"}}

        missing = arm("PATCH", "/backends/b", json=patch)
        stale = arm("PATCH", "/backends/b", json=patch, headers={"If-Match": put.headers["ETag"]})
        star = arm("PATCH", "/backends/b", json=patch, headers={"If-Match": "*"})

        assert missing.status_code == 400
        assert stale.status_code == 412
        assert stale.json()["error"]["code"] == "PreconditionFailed"
        assert "Retry-After" not in stale.headers
        assert star.status_code == 200

    def test_patch_merges_credentials_like_arm(self, arm):
        """PATCHing certificateIds keeps the other credential fields and properties."""
        credentials = {
            "certificateIds": ["/old"],
            "header": {"x-partner": ["demo"]},
            "query": {"sv": ["v1"]},
            "authorization": {"scheme": "Basic", "parameter": "ZGVtbw=="},
        }
        put = arm(
            "PUT",
            "/backends/b",
            json={
                "properties": {
                    "url": "https://a.test",
                    "protocol": "http",
                    "credentials": credentials,
                }
            },
        )

        patched = arm(
            "PATCH",
            "/backends/b",
            json={"properties": {"credentials": {"certificateIds": ["/new"]}}},
            headers={"If-Match": put.headers["ETag"]},
        ).json()["properties"]

        assert patched["credentials"] == {**credentials, "certificateIds": ["/new"]}
        assert patched["url"] == "https://a.test"

    def test_list_pages_with_absolute_next_link_and_count(self, devstack, arm, devstack_http):
        """250 backends: pages of 100 by default, absolute nextLink, count of all matches."""
        for i in range(250):
            devstack.put_backend(arm.service, f"b{i:03}", url="https://x.test", certificate_ids=[])
        names, url, pages = [], "/backends", 0
        params: dict[str, str] = {}

        while url:
            body = (
                arm("GET", url, params=params).json()
                if pages == 0
                else devstack_http.get(
                    url, headers={"Authorization": f"Bearer {devstack.token}"}
                ).json()
            )
            names += [item["name"] for item in body["value"]]
            assert body["count"] == 250
            url, pages = body.get("nextLink"), pages + 1
            if url:
                assert url.startswith(f"{devstack.arm_endpoint}/subscriptions/")

        assert pages == 3
        assert names == [f"b{i:03}" for i in range(250)]

    def test_top_and_skip(self, devstack, arm):
        """$top sizes the page and $skip offsets it; nextLink keeps $top."""
        for i in range(10):
            devstack.put_backend(arm.service, f"b{i}", url="https://x.test", certificate_ids=[])

        body = arm("GET", "/backends", params={"$top": "3", "$skip": "2"}).json()

        assert [item["name"] for item in body["value"]] == ["b2", "b3", "b4"]
        assert "%24top=3" in body["nextLink"] or "$top=3" in body["nextLink"]
        assert "$skip=5" in body["nextLink"]

    def test_filter_by_url(self, devstack, arm):
        """Backends filter on url too."""
        devstack.put_backend(arm.service, "one", url="https://one.test", certificate_ids=[])
        devstack.put_backend(arm.service, "two", url="https://two.test", certificate_ids=[])

        body = arm("GET", "/backends", params={"$filter": "contains(url,'two')"}).json()

        assert [item["name"] for item in body["value"]] == ["two"]


class TestPolicies:
    def test_global_policy_exists_with_an_etag(self, arm):
        """Every service starts with a global policy."""
        response = arm("GET", "/policies/policy", params={"format": "rawxml"})

        assert response.status_code == 200
        assert response.json()["properties"]["value"].startswith("<policies>")
        assert response.json()["properties"]["format"] == "rawxml"
        assert ETAG.match(response.headers["ETag"])

    def test_api_policy_rawxml_round_trip_with_etags(self, arm):
        """API scope: PUT 201 then 200 with If-Match; stale If-Match is 412; text as written."""
        xml = '<policies><inbound><base /><set-header name="x"><value>@(a => b)</value></set-header></inbound></policies>'
        body = {"properties": {"value": xml, "format": "rawxml"}}
        api = {"properties": {"displayName": "Echo", "path": "echo"}}
        assert arm("PUT", "/apis/echo", json=api).status_code == 201

        created = arm("PUT", "/apis/echo/policies/policy", json=body)
        updated = arm(
            "PUT",
            "/apis/echo/policies/policy",
            json=body,
            headers={"If-Match": created.headers["ETag"]},
        )
        stale = arm(
            "PUT",
            "/apis/echo/policies/policy",
            json=body,
            headers={"If-Match": created.headers["ETag"]},
        )
        read = arm("GET", "/apis/echo/policies/policy", params={"format": "rawxml"})

        assert (created.status_code, updated.status_code, stale.status_code) == (201, 200, 412)
        assert read.json()["properties"]["value"] == xml
        assert read.json()["type"] == "Microsoft.ApiManagement/service/apis/policies"
