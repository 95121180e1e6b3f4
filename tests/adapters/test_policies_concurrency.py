"""``ArmInboundPolicies.list_policies`` with ``concurrency`` > 1 (``ROTATION_ARM_CONCURRENCY``):
the same documents, in the same order, with the same errors as one read at a time; the reads
overlap, never beyond the bound (the devstack counts requests in flight); no thread outlives a
listing."""

from __future__ import annotations

import logging
import threading

import pytest

from devstack.stack import Devstack
from rotation import bootstrap
from rotation.adapters.credentials import StaticTokenCredential
from rotation.adapters.policies import ArmInboundPolicies
from rotation.config import Settings
from rotation.domain.errors import (
    AuthorizationError,
    ConfigError,
    DependencyError,
    TransientDependencyError,
)
from rotation.domain.inbound import PolicyScope

PRODUCTS = ("p0", "p1", "p2")
APIS = tuple(f"a{i}" for i in range(6))
OPERATIONS = ("o0", "o1", "o2")
WORKERS = "certrotate-policies"  # the pool's thread name prefix


def _policy(tag: str) -> str:
    return (
        "<policies><inbound><base />"
        f'<validate-client-certificate><identities><identity thumbprint="{tag}" />'
        "</identities></validate-client-certificate></inbound></policies>"
    )


def _adapter(devstack: Devstack, concurrency: int) -> ArmInboundPolicies:
    return ArmInboundPolicies(
        StaticTokenCredential(devstack.token),
        concurrency=concurrency,
        base_url=devstack.arm_endpoint,
        credential_scope="https://management.azure.com/.default",
        connection_verify=str(devstack.ca_bundle),
        retry_total=1,
        retry_backoff_factor=0,
    )


def _workers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(WORKERS)]


@pytest.fixture(name="scene")
def _scene(devstack: Devstack) -> str:
    """3 products (p1 without a policy), 6 APIs of 3 operations each; every other API and
    every third operation has a policy. Returns the service id."""
    svc = devstack.apim_services[0]
    devstack.put_policy(svc, _policy("global"))
    for product in PRODUCTS:
        devstack.put_product(svc, product, display_name=product)
        if product != "p1":
            devstack.put_policy(svc, _policy(product), product=product)
    for i, api in enumerate(APIS):
        devstack.put_api(svc, api, display_name=api, path=api)
        if i % 2 == 0:
            devstack.put_policy(svc, _policy(api), api=api)
        for j, operation in enumerate(OPERATIONS):
            devstack.put_operation(svc, api, operation, method="GET", url_template=f"/{operation}")
            if (i + j) % 3 == 0:
                devstack.put_policy(
                    svc, _policy(f"{api}/{operation}"), api=api, operation=operation
                )
    return devstack.service_id(svc)


def _expected_ids(service_id: str) -> list[str]:
    """The resource ids of the scene's documents in listing order (global, products, each API
    then its operations)."""
    ids = [f"{service_id}/policies/policy"]
    ids += [f"{service_id}/products/{p}/policies/policy" for p in PRODUCTS if p != "p1"]
    for i, api in enumerate(APIS):
        if i % 2 == 0:
            ids.append(f"{service_id}/apis/{api}/policies/policy")
        ids += [
            f"{service_id}/apis/{api}/operations/{operation}/policies/policy"
            for j, operation in enumerate(OPERATIONS)
            if (i + j) % 3 == 0
        ]
    return ids


def _outcome(devstack: Devstack, service_id: str, concurrency: int) -> tuple[type, str, object]:
    """The error one listing raises: its type, message and status code."""
    with pytest.raises(DependencyError) as caught:
        _adapter(devstack, concurrency).list_policies(service_id)
    return type(caught.value), str(caught.value), caught.value.status_code


class TestSameResult:
    @pytest.mark.parametrize("concurrency", [2, 8])
    def test_same_documents_order_and_requests_as_one_at_a_time(
        self, devstack, scene, concurrency
    ):
        """Every field of every document, and the order, equal the sequential listing's; the
        requests are the same ones (1 + P + A + O reads and 2 + A list pages)."""
        devstack.request_log.clear()
        one = _adapter(devstack, 1).list_policies(scene)
        sequential = sorted(
            (e.method, e.path, e.status) for e in devstack.request_log.arm.entries()
        )
        devstack.request_log.clear()

        many = _adapter(devstack, concurrency).list_policies(scene)

        assert [d.resource_id for d in one] == _expected_ids(scene)
        assert many == one
        assert {d.scope for d in many} == set(PolicyScope)
        concurrent = sorted(
            (e.method, e.path, e.status) for e in devstack.request_log.arm.entries()
        )
        assert concurrent == sequential
        scopes = 1 + len(PRODUCTS) + len(APIS) * (1 + len(OPERATIONS))
        assert len(concurrent) == 2 + len(APIS) + scopes
        assert not _workers()

    def test_one_at_a_time_keeps_the_request_order(self, devstack, scene):
        """concurrency 1 reads on the calling thread in listing order: products, global,
        each product's, the API list, then per API its policy, its operations and theirs."""
        devstack.request_log.clear()

        _adapter(devstack, 1).list_policies(scene)

        tail = [e.path.split("/service/")[1] for e in devstack.request_log.arm.entries()]
        svc = devstack.apim_services[0]
        expected = [f"{svc}/products", f"{svc}/policies/policy"]
        expected += [f"{svc}/products/{p}/policies/policy" for p in PRODUCTS]
        expected.append(f"{svc}/apis")
        for api in APIS:
            expected += [f"{svc}/apis/{api}/policies/policy", f"{svc}/apis/{api}/operations"]
            expected += [f"{svc}/apis/{api}/operations/{o}/policies/policy" for o in OPERATIONS]
        assert tail == expected

    def test_spare_clients_are_reused_by_the_next_listing(self, devstack, scene):
        """A second listing reads through the clients the first one made: as many documents,
        and never more spare clients than the bound."""
        adapter = _adapter(devstack, 4)

        first = adapter.list_policies(scene)
        second = adapter.list_policies(scene)

        assert first == second
        (spare,) = adapter._spare.values()
        assert 1 <= len(spare) <= 4

    def test_a_bound_below_one_is_a_value_error(self, devstack):
        with pytest.raises(ValueError, match="concurrency must be at least 1, not 0"):
            _adapter(devstack, 0)


class TestOverlap:
    @pytest.mark.parametrize(("concurrency", "low"), [(1, 1), (3, 2), (8, 2)])
    def test_reads_overlap_up_to_the_bound(self, devstack, scene, concurrency, low):
        """Every request waits 30 ms (the LATENCY fault standing in for ARM): the most requests
        the stand-in had in flight at once is 1 one at a time, and more than one but never
        more than the bound otherwise (the list calls included)."""
        devstack.faults_arm.delay("*", seconds=0.03, probability=1.0)
        devstack.request_log.clear()

        documents = _adapter(devstack, concurrency).list_policies(scene)

        assert [d.resource_id for d in documents] == _expected_ids(scene)
        peak = devstack.request_log.arm.peak_in_flight()
        assert low <= peak <= concurrency
        assert not _workers()

    def test_more_threads_than_a_connection_pool_holds_no_pool_warning(
        self, devstack, scene, caplog
    ):
        """16 reads at once (urllib3 keeps 10 connections per host and session): each thread
        has its own client, so no "Connection pool is full" warning."""
        devstack.faults_arm.delay("*/policies/policy", seconds=0.05, method="GET", probability=1.0)
        devstack.request_log.clear()

        with caplog.at_level(logging.WARNING, logger="urllib3"):
            _adapter(devstack, 16).list_policies(scene)

        assert devstack.request_log.arm.peak_in_flight() > 10
        assert not [r for r in caplog.records if "pool" in r.getMessage().lower()]


class TestErrors:
    @pytest.mark.parametrize(
        ("faults", "raised"),
        [
            # a 500 after the retries on one operation's policy
            ([("*/apis/a3/operations/o1/policies/policy", 500, "GET")], TransientDependencyError),
            # 403 on an API's policy
            ([("*/apis/a4/policies/policy", 403, "GET")], AuthorizationError),
            # 403 on an API's operation list
            ([("*/apis/a2/operations", 403, "GET")], AuthorizationError),
            # the earlier failure in listing order wins, whichever answers first
            (
                [
                    ("*/apis/a5/policies/policy", 403, "GET"),
                    ("*/apis/a1/operations/o2/policies/policy", 500, "GET"),
                ],
                TransientDependencyError,
            ),
            # a product's policy fails before the API list does
            (
                [("*/products/p2/policies/policy", 403, "GET"), ("*/service/*/apis", 500, "GET")],
                AuthorizationError,
            ),
            # the API list itself
            ([("*/service/*/apis", 500, "GET")], TransientDependencyError),
        ],
    )
    def test_the_same_error_as_one_at_a_time(self, devstack, scene, faults, raised):
        """The first failure in listing order is raised, translated exactly as a sequential
        listing translates it (type, message, status); no worker thread is left."""
        for path, status, method in faults:
            devstack.faults_arm.fail(path, status=status, method=method, probability=1.0)

        sequential = _outcome(devstack, scene, 1)
        for concurrency in (2, 8):
            assert _outcome(devstack, scene, concurrency) == sequential
        assert sequential[0] is raised
        assert not _workers()

    def test_after_a_failure_one_at_a_time_reads_nothing_more(self, devstack, scene):
        """concurrency 1: a failing global read stops the listing at once (no product read,
        no API list), as before."""
        devstack.faults_arm.fail(f"{scene}/policies/policy", status=403, probability=1.0)
        devstack.request_log.clear()

        with pytest.raises(AuthorizationError):
            _adapter(devstack, 1).list_policies(scene)

        log = devstack.request_log.arm.entries()
        assert [(e.path, e.status) for e in log] == [
            (f"{scene}/products", 200),
            (f"{scene}/policies/policy", 403),
        ]

    def test_after_a_failure_queued_reads_are_skipped(self, devstack, scene):
        """concurrency 2 and a slow failing global read: the reads queued behind it that come
        later in the listing order are skipped, not made (far fewer than the 34 requests of a
        full listing)."""
        devstack.faults_arm.fail(f"{scene}/policies/policy", status=403, probability=1.0)
        devstack.faults_arm.delay("*/products/*/policies/policy", seconds=0.05, probability=1.0)
        devstack.request_log.clear()

        with pytest.raises(AuthorizationError):
            _adapter(devstack, 2).list_policies(scene)

        assert len(devstack.request_log.arm.entries()) < 10
        assert not _workers()

    def test_missing_service_is_still_a_config_error(self, devstack):
        """The product list is read first, on the calling thread: a 404 names the setting."""
        with pytest.raises(ConfigError, match="ROTATION_APIM_SERVICES"):
            _adapter(devstack, 8).list_policies(devstack.service_id("apim-nope"))
        assert not _workers()


class TestSetting:
    @pytest.fixture(name="env")
    def _env(self, devstack, tmp_path):
        return {
            "ROTATION_VAULTS": devstack.vault_url,
            "ROTATION_APIM_SERVICES": devstack.service_id(devstack.apim_services[0]),
            "ROTATION_TRUST_ANCHORS": str(devstack.ca_bundle),
            "ROTATION_ARM_ENDPOINT": devstack.arm_endpoint,
        }

    def test_default_eight_and_passed_to_the_adapter(self, env):
        """Unset: 8; set: the adapter bootstrap builds reads that many at a time."""
        assert Settings.from_env(env).arm_concurrency == 8
        env["ROTATION_ARM_CONCURRENCY"] = "3"
        settings = Settings.from_env(env)

        adapter = bootstrap._inbound(settings, StaticTokenCredential("t"))

        assert settings.arm_concurrency == 3
        assert isinstance(adapter, ArmInboundPolicies)
        assert adapter.concurrency == 3

    @pytest.mark.parametrize(
        ("value", "says"),
        [("0", "below the minimum 1"), ("33", "above the maximum 32"), ("many", "not an integer")],
    )
    def test_a_bad_value_is_a_config_error_naming_the_setting(self, env, value, says):
        env["ROTATION_ARM_CONCURRENCY"] = value

        with pytest.raises(ConfigError) as caught:
            Settings.from_env(env)

        (problem,) = caught.value.problems
        assert problem.startswith("ROTATION_ARM_CONCURRENCY: ")
        assert says in problem
