"""Failures classified by what a retry can change (issue 10), against the devstack's faults.

``TestFailureTable`` checks every row of docs/events.md "Failures and retries" against the real
adapters and service; the other classes are the issue's regressions: APIM's Key Vault fetch
failing on a blue-green create was non-retryable, a single connection reset on the backend
PATCH failed the run, and an unexpected exception for one certificate ended the reconcile sweep.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from rotation.adapters.apim import ArmApimGateway
from rotation.adapters.credentials import StaticTokenCredential
from rotation.domain.errors import BackendUpdateError, RotationError
from rotation.domain.model import Decision, Trigger
from rotation.entrypoints.invocation import from_function_event
from rotation.intake.events import parse_payload
from tests.e2e.world import CERT, World

DOCS = Path(__file__).resolve().parents[2] / "docs" / "events.md"
BACKENDS = (("svc1", "api-a"), ("svc1", "api-b"), ("svc2", "api-c"))
Scenario = Callable[[World, str, str], BaseException | None]


def gateway(world: World) -> ArmApimGateway:
    """The real APIM adapter on the stand-in, with the SDK's one quick retry (as the app's)."""
    stack = world.stack
    return ArmApimGateway(
        StaticTokenCredential(stack.token), base_url=stack.arm_endpoint,
        connection_verify=str(stack.ca_bundle), retry_total=1, retry_backoff_factor=0,
    )  # fmt: skip


def caught(call: Callable[[], object]) -> BaseException | None:
    try:
        call()
    except Exception as exc:
        return exc
    return None


def handle(world: World, version: str, **settings: str) -> BaseException | None:
    """Hand one event straight to the service (which raises every failure, retryable or not)."""
    service = world.use(**settings)
    event = from_function_event(world.event(version), allowed_vault_urls=[world.stack.vault_url])
    return caught(lambda: service.handle(event, trigger=Trigger.EVENTGRID))


def entity_path(world: World, service: str = "svc1", entity: str = CERT) -> str:
    return f"*/service/{getattr(world, service)}/certificates/{entity}"


def _status(status: int) -> Scenario:
    def run(world: World, _v1: str, _v2: str) -> BaseException | None:
        world.stack.faults_arm.fail(entity_path(world), method="GET", status=status, count=2)
        svc_id = world.stack.service_id(world.svc1)
        return caught(lambda: gateway(world).get_certificate(svc_id, CERT))

    return run


def _not_found(world: World, _v1: str, _v2: str) -> BaseException | None:
    svc_id = world.stack.service_id(world.svc1)
    return caught(lambda: gateway(world).get_certificate(svc_id, "no-such-entity"))


def _precondition(world: World, v1: str, v2: str) -> BaseException | None:
    world.stack.faults_arm.concurrent_write(entity_path(world), method="PUT")
    svc_id = world.stack.service_id(world.svc1)
    vault = world.stack.vault_url
    return caught(
        lambda: gateway(world).put_certificate(
            svc_id, CERT, secret_identifier=f"{vault}/secrets/{CERT}/{v2}",
            identity_client_id=None, expected_secret=f"{vault}/secrets/{CERT}/{v1}",
        )
    )  # fmt: skip


def _bad_request(world: World, _v1: str, v2: str) -> BaseException | None:
    world.stack.faults_arm.fail("*/certificates/fresh", method="PUT", status=400)
    svc_id = world.stack.service_id(world.svc1)
    return caught(
        lambda: gateway(world).put_certificate(
            svc_id, "fresh", secret_identifier=f"{world.stack.vault_url}/secrets/{CERT}/{v2}",
            identity_client_id=None, expected_secret=None,
        )
    )  # fmt: skip


def _kv_fetch(strategy: str) -> Scenario:
    def run(world: World, _v1: str, v2: str) -> BaseException | None:
        world.stack.faults_arm.keyvault_refresh_failure("*/certificates/*", method="PUT")
        return handle(world, v2, strategy=strategy)

    return run


def _reset_get(world: World, _v1: str, _v2: str) -> BaseException | None:
    world.stack.faults_arm.reset(entity_path(world), method="GET", count=2)
    svc_id = world.stack.service_id(world.svc1)
    return caught(lambda: gateway(world).get_certificate(svc_id, CERT))


def _reset_patch(count: int) -> Scenario:
    def run(world: World, _v1: str, _v2: str) -> BaseException | None:
        world.stack.faults_arm.reset("*/backends/api-a", method="PATCH", count=count)
        svc_id = world.stack.service_id(world.svc1)
        ids = tuple(world.backend_ids(world.svc1, "api-a"))
        moved = (*ids, world.entity_id(world.svc1, "unrelated"))
        return caught(
            lambda: gateway(world).update_backend_certificates(
                svc_id, "api-a", expected_ids=ids, certificate_ids=moved
            )
        )

    return run


def _malformed(_world: World, _v1: str, _v2: str) -> BaseException | None:
    return caught(lambda: parse_payload({"eventType": "Microsoft.KeyVault.CertificateExpired"}))


class _Exploding:
    """The real gateway, except that writing one certificate's entity hits a bug."""

    def __init__(self, real: ArmApimGateway, entity: str) -> None:
        self._real, self._entity = real, entity

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def put_certificate(self, service_id: str, certificate_id: str, **kwargs: Any) -> Any:
        if certificate_id == self._entity:
            raise ValueError("a bug in the adapter")
        return self._real.put_certificate(service_id, certificate_id, **kwargs)


def _unexpected(world: World, _v1: str, _v2: str) -> BaseException | None:
    service = world.use(gateway=_Exploding(gateway(world), CERT))
    error = caught(lambda: service.reconcile(trigger=Trigger.TIMER))
    assert isinstance(error, BackendUpdateError), error
    (failure,) = error.results
    assert isinstance(failure, BaseException)
    return failure


SCENARIOS: dict[str, Scenario] = {
    "http-401": _status(401),
    "http-403": _status(403),
    "http-404": _not_found,
    "http-412": _precondition,
    "http-429": _status(429),
    "http-503": _status(503),
    "http-400": _bad_request,
    "kv-fetch-create": _kv_fetch("blue-green"),
    "kv-fetch-update": _kv_fetch("pin"),
    "reset-get": _reset_get,
    "reset-patch-once": _reset_patch(1),
    "reset-patch-twice": _reset_patch(2),
    "malformed": _malformed,
    "unexpected": _unexpected,
}


def table_rows() -> list[tuple[str, str, str]]:
    """(case, error type or "none", retryable) of every row of the docs' failure table."""
    text = DOCS.read_text(encoding="utf-8")
    section = text.split("### Failures and retries", 1)[1].split("\n\n|", 1)[1]
    rows = []
    for line in ("|" + section).split("\n\n", 1)[0].splitlines()[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        case = cells[0].strip("`")
        error = re.match(r"`(\w+)`", cells[3])
        rows.append((case, error.group(1) if error else "none", cells[4]))
    return rows


def test_the_table_has_a_scenario_for_every_row_and_a_row_for_every_scenario():
    assert sorted(case for case, _, _ in table_rows()) == sorted(SCENARIOS)


@pytest.mark.parametrize(("case", "error", "retryable"), table_rows())
def test_failure_table(bound, case, error, retryable):
    """Each documented row: the error type the code raises and whether it is retryable."""
    world, v1, v2 = bound

    raised = SCENARIOS[case](world, v1, v2)

    if error == "none":
        assert raised is None, raised
        return
    assert type(raised).__name__ == error, raised
    assert isinstance(raised, RotationError)
    assert raised.retryable is (retryable == "yes")


def presented(world: World) -> list[str]:
    """The thumbprint each bound backend presents (fetched successfully)."""
    out = []
    for svc_attr, backend in BACKENDS:
        svc = getattr(world, svc_attr)
        for ref in world.backend_ids(svc, backend):
            entity = world.entity(svc, ref.rsplit("/", 1)[-1])
            assert entity["keyVault"]["lastStatus"]["code"] == "Success"
            out.append(str(entity["thumbprint"]))
    return out


class TestBlueGreenKeyVaultFetch:
    def test_create_failing_to_fetch_the_secret_is_redelivered_then_converges(self, bound):
        """The trigger raises (Event Grid redelivers) instead of waiting 30 min for reconcile."""
        world, v1, v2 = bound
        world.use(strategy="blue-green")
        rule = world.stack.faults_arm.keyvault_refresh_failure("*/certificates/*", method="PUT")

        error = caught(lambda: world.deliver(v2))

        assert rule.fired == 1
        assert isinstance(error, RotationError)
        assert error.retryable
        assert world.audit.records[-1].decision is Decision.FAILED
        assert set(presented(world)) <= {world.thumbprints[v1], world.thumbprints[v2]}
        world.deliver(v2)
        assert presented(world) == [world.thumbprints[v2]] * len(BACKENDS)


class TestBackendPatchReset:
    def test_a_single_reset_is_retried_under_the_same_if_match(self, bound):
        """The first delivery applies: the PATCH is sent again with the ETag of the read."""
        world, _, v2 = bound
        world.use(strategy="blue-green")
        rule = world.stack.faults_arm.reset("*/backends/*", method="PATCH", count=1)

        world.deliver(v2)

        assert rule.fired == 1
        assert world.audit.records[-1].decision is Decision.APPLIED
        assert presented(world) == [world.thumbprints[v2]] * len(BACKENDS)
        patches = [e.status for e in world.stack.request_log.arm.entries() if e.method == "PATCH"]
        assert patches[:2] == [0, 200]  # 0: the reset, logged without a response

    def test_a_retry_after_the_etag_moved_gets_412_and_replans(self, bound):
        """The retry carries the same If-Match: if the ETag moved meanwhile (as when the first PATCH
        landed), it gets a 412 and the run re-plans and converges."""
        world, _, v2 = bound
        world.use(strategy="blue-green")
        # another write moves the ETag just as the first PATCH's response is lost
        world.stack.faults_arm.reset("*/backends/api-a", method="PATCH", count=1)
        world.stack.faults_arm.concurrent_write("*/backends/api-a", method="PATCH", count=2)

        world.deliver(v2)

        statuses = [e.status for e in world.stack.request_log.arm.entries() if e.method == "PATCH"]
        assert 412 in statuses
        assert world.audit.records[-1].decision is Decision.APPLIED
        assert presented(world) == [world.thumbprints[v2]] * len(BACKENDS)


class TestReconcileGoesOn:
    def test_an_unexpected_exception_fails_one_certificate_and_the_sweep_goes_on(self, bound):
        """A bug for one certificate is recorded `failed` for it; the others still converge;
        the sweep raises at the end."""
        world, _, v2 = bound
        service = world.use(gateway=_Exploding(gateway(world), "unrelated"))
        world.add_version("unrelated")  # a newer version of the other certificate too

        with pytest.raises(BackendUpdateError) as info:
            service.reconcile(trigger=Trigger.TIMER)

        by_cert = {r.certificate: r for r in world.audit.records if r.event != "rotation.target"}
        assert by_cert["unrelated"].decision is Decision.FAILED
        assert (by_cert["unrelated"].error or "").startswith("UnexpectedError: ValueError")
        assert by_cert[CERT].decision is Decision.APPLIED
        assert presented(world) == [world.thumbprints[v2]] * len(BACKENDS)
        assert info.value.retryable

    def test_an_unexpected_exception_listing_one_service_fails_it_and_the_sweep_goes_on(
        self, bound
    ):
        """A bug listing one APIM service is recorded `reconcile.failed` for it; the other
        service still converges; the sweep raises (retryably) at the end."""
        world, v1, v2 = bound
        real = gateway(world)
        broken = world.stack.service_id(world.svc2)

        class _BrokenListing(_Exploding):
            def list_certificates(self, service_id: str) -> Any:
                if service_id == broken:
                    raise KeyError("a bug in the adapter")
                return real.list_certificates(service_id)

        service = world.use(gateway=_BrokenListing(real, "none"))

        with pytest.raises(BackendUpdateError) as info:
            service.reconcile(trigger=Trigger.TIMER)

        failed = [r for r in world.audit.records if r.event == "reconcile.failed"]
        assert [r.message for r in failed] == [f"could not list APIM service {broken}"]
        assert (failed[0].error or "").startswith("UnexpectedError: KeyError")
        assert world.pinned(world.svc1, CERT).endswith(v2)
        assert world.pinned(world.svc2, CERT).endswith(v1)
        assert info.value.retryable
