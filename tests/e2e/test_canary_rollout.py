"""The canary inside the rotation, end to end: the devstack's backends served by a real nginx on
loopback (``tests/canary/servers.py``), ``ROTATION_CANARY=enforce`` (issue 11, "Done when").

nginx trusts only the "backend" root; certrotate trusts both roots. So a candidate issued under
the backend's CA is applied, one that chains to the other root validates but is refused by the
backend (``canary.refused``) and nothing is written, and a backend that is down defers the
rotation (``canary.unreachable``).
"""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from devstack.nginx import Nginx, free_port
from devstack.pki import Issued, mint_certificate, to_pkcs12
from rotation.testing import FrozenClock
from tests.canary.servers import CanaryPki, mint_canary_pki, start_nginx
from tests.e2e.world import CERT, World, secret_url

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> CanaryPki:
    return mint_canary_pki(tmp_path_factory.mktemp("canary-pki"))


@pytest.fixture(scope="module")
def nginx(pki: CanaryPki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nginx]:
    backend_ca = tmp_path_factory.mktemp("backend-ca") / "backend-ca.pem"
    backend_ca.write_bytes(pki.backend_root.pem)
    server = start_nginx(tmp_path_factory.mktemp("nginx"), pki.server, backend_ca)
    try:
        yield server
    finally:
        server.stop()


def leaf(pki: CanaryPki, issuer: Issued, name: str) -> bytes:
    """A fresh client leaf under ``issuer``, valid now (real TLS checks the real clock)."""
    start = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    issued = mint_certificate(
        name, issuer=issuer, key=ec.generate_private_key(ec.SECP256R1()), not_before=start,
        not_after=start + dt.timedelta(days=90), eku=(ExtendedKeyUsageOID.CLIENT_AUTH,),
    )  # fmt: skip
    root = pki.backend_root if issuer is pki.backend_intermediate else pki.other_root
    return to_pkcs12(issued, [issuer, root])


@pytest.fixture
def scene(world: World, pki: CanaryPki, nginx: Nginx) -> tuple[World, str]:
    """v1 (trusted by the backend) pinned by ``partner-mtls``; backend ``api-a`` on nginx."""
    world.anchors.write_bytes(pki.backend_root.pem + pki.other_root.pem)
    world.clock = FrozenClock(dt.datetime.now(dt.UTC))
    v1 = world.add_version(data=leaf(pki, pki.backend_intermediate, "apim-client.partner.test"))
    world.bind(world.svc1, CERT, v1)
    world.stack.put_backend(
        world.svc1, "api-a", url=nginx.url, certificate_ids=[world.entity_id(world.svc1, CERT)]
    )
    return world, v1


def enforce(world: World, server_ca: Path) -> None:
    world.use(canary="enforce", canary_server_ca=str(server_ca), canary_timeout="5")


def canonical(world: World) -> Any:
    (record,) = [r for r in world.audit.records if r.event != "rotation.target"]
    return record


def test_a_candidate_the_backend_trusts_is_applied(scene, pki):
    world, _ = scene
    v2 = world.add_version(data=leaf(pki, pki.backend_intermediate, "apim-client.partner.test"))
    enforce(world, pki.server.ca_pem)

    world.deliver(v2)

    record = canonical(world)
    assert record.decision == "applied", record.message
    assert "canary.passed" in record.findings
    assert world.pinned(world.svc1, CERT) == secret_url(world.stack, CERT, v2)


def test_a_candidate_the_backend_does_not_trust_is_rejected_and_apim_is_unchanged(scene, pki):
    world, v1 = scene
    v2 = world.add_version(data=leaf(pki, pki.other_intermediate, "apim-client.other.test"))
    enforce(world, pki.server.ca_pem)
    before = world.snapshot()

    world.deliver(v2)

    record = canonical(world)
    assert record.decision == "rejected"
    assert "canary.refused" in record.findings
    assert "api-a" in (record.message or "")
    assert world.snapshot() == before
    assert world.writes() == []
    assert world.pinned(world.svc1, CERT) == secret_url(world.stack, CERT, v1)


def test_a_backend_that_is_down_defers_the_rotation(scene, pki):
    world, v1 = scene
    down = f"https://127.0.0.1:{free_port()}/api/health"
    world.stack.put_backend(
        world.svc1, "api-a", url=down, certificate_ids=[world.entity_id(world.svc1, CERT)]
    )
    v2 = world.add_version(data=leaf(pki, pki.backend_intermediate, "apim-client.partner.test"))
    enforce(world, pki.server.ca_pem)
    before = world.snapshot()

    world.deliver(v2)

    record = canonical(world)
    assert record.decision == "deferred"
    assert "canary.unreachable" in record.findings
    assert world.snapshot() == before
    assert world.pinned(world.svc1, CERT) == secret_url(world.stack, CERT, v1)


def test_warn_records_the_refusal_and_applies(scene, pki):
    """``warn``: the refusal is a warning on record, and the rotation goes on."""
    world, _ = scene
    v2 = world.add_version(data=leaf(pki, pki.other_intermediate, "apim-client.other.test"))
    world.use(canary="warn", canary_server_ca=str(pki.server.ca_pem))

    world.deliver(v2)

    record = canonical(world)
    assert record.decision == "applied"
    assert "canary.refused" in record.findings
    assert world.pinned(world.svc1, CERT) == secret_url(world.stack, CERT, v2)


def test_the_candidate_secret_is_read_once_and_each_version_in_use_once(scene, pki):
    """Budget: the canary adds one secret read per distinct version in use, none for the
    candidate (validation's read is reused)."""
    world, v1 = scene
    v2 = world.add_version(data=leaf(pki, pki.backend_intermediate, "apim-client.partner.test"))
    enforce(world, pki.server.ca_pem)
    world.stack.request_log.clear()

    world.deliver(v2)

    assert world.kv_calls(f"/secrets/{CERT}/{v2}") == 1
    assert world.kv_calls(f"/secrets/{CERT}/{v1}") == 1


def test_no_key_material_reaches_the_audit_trail_or_the_log(scene, pki, capsys):
    """The canary's messages name backends, alerts and statuses; never a key or a bundle."""
    world, _ = scene
    bundle = leaf(pki, pki.other_intermediate, "apim-client.other.test")
    v2 = world.add_version(data=bundle)
    enforce(world, pki.server.ca_pem)

    world.deliver(v2)

    text = capsys.readouterr().out + repr(world.audit.records)
    assert "canary.refused" in text
    assert "PRIVATE KEY" not in text
    assert base64.b64encode(bundle).decode()[:64] not in text
    assert world.stack.token not in text


def test_under_follow_a_refused_candidate_pins_the_last_validated_version(world, pki, nginx):
    """``follow`` + ``enforce``: v2 (trusted by nginx) is refreshed in; v3 (refused by nginx)
    pins the versionless entity to v2 so that APIM's own poll cannot pick v3 up."""
    world.anchors.write_bytes(pki.backend_root.pem + pki.other_root.pem)
    world.clock = FrozenClock(dt.datetime.now(dt.UTC))
    world.add_version(data=leaf(pki, pki.backend_intermediate, "apim-client.partner.test"))
    world.bind(world.svc1, CERT, None)
    world.stack.put_backend(
        world.svc1, "api-a", url=nginx.url, certificate_ids=[world.entity_id(world.svc1, CERT)]
    )
    world.use(
        strategy="follow", canary="enforce", canary_server_ca=str(pki.server.ca_pem),
        canary_timeout="5",
    )  # fmt: skip
    v2 = world.add_version(data=leaf(pki, pki.backend_intermediate, "apim-client.partner.test"))
    world.deliver(v2)
    assert world.audit.last_validated(world.stack.vault_url, CERT) == v2

    v3 = world.add_version(data=leaf(pki, pki.other_intermediate, "apim-client.other.test"))
    world.deliver(v3)

    record = [r for r in world.audit.records if r.event != "rotation.target"][-1]
    assert (record.decision, record.version) == ("rejected", v3)
    assert {"canary.refused", "binding.pinned"} <= set(record.findings)
    assert world.pinned(world.svc1, CERT) == secret_url(world.stack, CERT, v2)
