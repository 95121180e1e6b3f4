"""Fault injection (in-process and admin endpoint) and the request log, on both stand-ins."""

from __future__ import annotations

import time

import httpx
import pytest

from devstack.faults import (
    FaultInjector,
    FaultKind,
    FaultRule,
    LoggedRequest,
    RequestLog,
    make_rule,
)

API = {"api-version": "2024-05-01"}


@pytest.fixture(name="auth")
def _auth(devstack):
    return {"Authorization": f"Bearer {devstack.token}"}


@pytest.fixture(name="backend_url")
def _backend_url(devstack):
    devstack.put_backend(devstack.apim_services[0], "b", url="https://x.test", certificate_ids=[])
    return devstack.arm_endpoint + devstack.service_id(devstack.apim_services[0]) + "/backends/b"


class TestStatusFaults:
    def test_429_carries_retry_after_for_the_next_n_requests(
        self, devstack, devstack_http, auth, backend_url
    ):
        """count=2: two 429s with Retry-After, then the request is served."""
        devstack.faults_arm.fail("*/backends/*", status=429, retry_after=0, count=2)

        statuses = [devstack_http.get(backend_url, headers=auth).status_code for _ in range(3)]
        first = devstack_http.get(backend_url, headers=auth)

        assert statuses == [429, 429, 200]
        assert first.status_code == 200
        assert devstack.faults_arm.rules() == []

    def test_429_body_and_header(self, devstack, devstack_http, auth, backend_url):
        """An injected 429 has the ARM error body and Retry-After in seconds."""
        devstack.faults_arm.fail(status=429)

        response = devstack_http.get(backend_url, headers=auth)

        assert response.headers["Retry-After"] == "1"
        assert response.json()["error"]["code"] == "TooManyRequests"

    @pytest.mark.parametrize("status", [500, 503])
    def test_server_errors_have_no_retry_after_unless_asked(
        self, devstack, devstack_http, auth, backend_url, status
    ):
        """500/503 carry no Retry-After by default."""
        devstack.faults_arm.fail(status=status, method="GET")

        response = devstack_http.get(backend_url, headers=auth)

        assert response.status_code == status
        assert "Retry-After" not in response.headers

    def test_method_filter(self, devstack, devstack_http, auth, backend_url):
        """A rule for PATCH leaves GETs alone."""
        devstack.faults_arm.fail("*", status=500, method="PATCH")

        assert devstack_http.get(backend_url, headers=auth).status_code == 200

    def test_key_vault_faults_use_the_key_vault_error_shape(
        self, devstack, devstack_http, devstack_pki
    ):
        """Key Vault server: same rules, Key Vault error body."""
        devstack.import_certificate("c", devstack_pki.pfx())
        devstack.faults_kv.fail("/secrets/*", status=503, retry_after=2)

        response = devstack_http.get(
            f"{devstack.vault_url}/secrets/c/", headers={"Authorization": "Bearer t"}
        )

        assert response.status_code == 503
        assert response.headers["Retry-After"] == "2"
        assert set(response.json()["error"]) == {"code", "message"}


class TestProbabilityFaults:
    def test_same_seed_same_draws(self):
        """Probability rules are reproducible under the same seed."""

        def draws(seed):
            injector = FaultInjector(seed)
            injector.fail(probability=0.5)
            return [injector.take("GET", "/x", [FaultKind.STATUS]) is not None for _ in range(40)]

        assert draws(7) == draws(7)
        assert draws(7) != draws(8)
        assert 5 < sum(draws(7)) < 35

    def test_probability_one_is_unlimited(self):
        """probability=1 fires every time (no count)."""
        injector = FaultInjector()
        injector.fail(probability=1.0)

        fired = [injector.take("GET", "/x", [FaultKind.STATUS]) for _ in range(5)]

        assert all(fired)


class TestOtherKinds:
    def test_latency_delays_then_serves(self, devstack, devstack_http, auth, backend_url):
        """Latency holds the request, then answers normally."""
        devstack.faults_arm.delay(seconds=0.3)
        start = time.perf_counter()

        response = devstack_http.get(backend_url, headers=auth)

        assert response.status_code == 200
        assert time.perf_counter() - start >= 0.3

    def test_reset_drops_the_connection(self, devstack, devstack_http, auth, backend_url):
        """A reset gives the client a transport error, then the server serves again."""
        devstack.faults_arm.reset()

        with pytest.raises(httpx.TransportError):
            devstack_http.get(backend_url, headers=auth)
        assert devstack_http.get(backend_url, headers=auth).status_code == 200

    def test_concurrent_write_bumps_the_etag_for_a_genuine_412(
        self, devstack, devstack_http, auth, backend_url
    ):
        """The ETag really moves: the stale If-Match gets 412, the new ETag works."""
        etag = devstack_http.get(backend_url, headers=auth).headers["ETag"]
        devstack.faults_arm.concurrent_write("*/backends/b", method="PATCH")
        patch = {"properties": {"title": "t"}}

        stale = devstack_http.patch(backend_url, json=patch, headers={**auth, "If-Match": etag})
        fresh_etag = devstack_http.get(backend_url, headers=auth).headers["ETag"]
        fresh = devstack_http.patch(
            backend_url, json=patch, headers={**auth, "If-Match": fresh_etag}
        )

        assert stale.status_code == 412
        assert "Retry-After" not in stale.headers
        assert fresh_etag != etag
        assert fresh.status_code == 200

    def test_keyvault_refresh_failure_keeps_thumbprint(
        self, devstack, devstack_http, auth, devstack_pki
    ):
        """An injected refresh failure: lastStatus Failed with a message, thumbprint unchanged."""
        service = devstack.apim_services[0]
        devstack.import_certificate("partner", devstack_pki.pfx())
        devstack.put_apim_certificate(service, "c", f"{devstack.vault_url}/secrets/partner")
        devstack.import_certificate("partner", devstack_pki.pfx("second"))
        url = devstack.arm_endpoint + devstack.service_id(service) + "/certificates/c"
        before = devstack_http.get(url, headers=auth).json()["properties"]["thumbprint"]
        devstack.faults_arm.keyvault_refresh_failure("*/certificates/c/*")

        after = devstack_http.post(url + "/refreshSecret", headers=auth).json()["properties"]

        assert after["thumbprint"] == before
        assert after["keyVault"]["lastStatus"]["code"] == "Failed"
        assert "Injected" in after["keyVault"]["lastStatus"]["message"]


class TestAdminEndpoint:
    def test_post_get_delete_faults(self, devstack, devstack_http, auth, backend_url):
        """Faults can be added, listed and cleared over HTTP, for either server."""
        admin = f"{devstack.arm_endpoint}/_devstack/faults"

        added = devstack_http.post(
            admin,
            json={
                "server": "arm",
                "kind": "status",
                "status": 503,
                "path": "*/backends/*",
                "count": 1,
            },
            headers=auth,
        )
        devstack_http.post(admin, json={"server": "kv", "kind": "reset"}, headers=auth)
        listed = devstack_http.get(admin, headers=auth).json()
        faulted = devstack_http.get(backend_url, headers=auth)
        cleared = devstack_http.delete(admin, headers=auth)

        assert added.status_code == 201
        assert [r["kind"] for r in listed["arm"]] == ["status"]
        assert [r["kind"] for r in listed["kv"]] == ["reset"]
        assert faulted.status_code == 503
        assert cleared.status_code == 204
        assert devstack.faults_kv.rules() == []

    def test_bad_fault_json_is_a_400_naming_the_field(self, devstack, devstack_http, auth):
        """Unknown kinds or fields are refused with a clear message."""
        admin = f"{devstack.arm_endpoint}/_devstack/faults"

        kind = devstack_http.post(admin, json={"kind": "explode"}, headers=auth)
        field = devstack_http.post(admin, json={"kind": "reset", "colour": "red"}, headers=auth)

        assert kind.status_code == 400
        assert "'kind'" in kind.json()["error"]["message"]
        assert "colour" in field.json()["error"]["message"]

    def test_admin_requires_the_token(self, devstack, devstack_http):
        """No token, no admin."""
        response = devstack_http.get(f"{devstack.arm_endpoint}/_devstack/faults")

        assert response.status_code == 401

    def test_request_log_over_http_and_in_process(
        self, devstack, devstack_http, auth, backend_url
    ):
        """The log records (method, path, status) per server, excludes admin calls, clears."""
        devstack.request_log.clear()
        devstack_http.get(backend_url, headers=auth)
        devstack_http.patch(backend_url, json={"properties": {}}, headers=auth)

        logged = devstack_http.get(
            f"{devstack.arm_endpoint}/_devstack/requests", params={"server": "arm"}, headers=auth
        ).json()["value"]
        devstack_http.delete(f"{devstack.arm_endpoint}/_devstack/requests", headers=auth)

        assert [(e["method"], e["status"]) for e in logged] == [("GET", 200), ("PATCH", 400)]
        assert devstack.request_log.arm.entries() == []

    def test_seed_endpoint(self, devstack, devstack_http, auth):
        """POST /_devstack/seed re-seeds; a bad body is a 400."""
        admin = f"{devstack.arm_endpoint}/_devstack/seed"

        assert devstack_http.post(admin, json={"seed": 3}, headers=auth).status_code == 204
        assert devstack_http.post(admin, json={}, headers=auth).status_code == 400


class TestRuleValidation:
    @pytest.mark.parametrize(
        "options",
        [
            {"status": 412, "retry_after": 1},
            {"status": 500, "retry_after": 1},
            {"probability": 1.5},
            {"count": 0},
            {"status": 42},
            {"latency": -1},
        ],
    )
    def test_invalid_rules_are_refused(self, options):
        """Out-of-range values, and Retry-After on statuses that must not carry it."""
        with pytest.raises(ValueError, match="'"):
            make_rule(FaultKind.STATUS, **options)

    def test_from_json_rejects_wrong_types(self):
        """JSON values of the wrong type name the field."""
        with pytest.raises(ValueError, match="count"):
            FaultRule.from_json({"kind": "status", "count": "two"})

    def test_request_log_count_matches_globs(self):
        """RequestLog.count filters by method and path glob."""
        log = RequestLog()
        log.append(LoggedRequest("GET", "/a/backends/x", 200))
        log.append(LoggedRequest("PATCH", "/a/backends/x", 200))

        assert log.count("PATCH", "*/backends/*") == 1
        assert log.count() == 2
