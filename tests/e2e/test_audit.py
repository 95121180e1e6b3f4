"""End to end, the audit trail: one canonical record per invocation, and no secret anywhere.

Every invocation (each decision, a failure, a malformed event) leaves exactly one canonical
audit line on stdout. Nothing captured (stdout, stderr, every stdlib log record down to DEBUG,
including the Azure SDKs' HTTP logging) nor any audit record contains the devstack token, a
private-key PEM body or the PKCS#12 the vault stores.
"""

from __future__ import annotations

import json
import logging

import pytest

from devstack.pki import to_pkcs12
from rotation.domain.errors import TransientDependencyError
from tests.e2e.world import CERT, World, audit_lines


def deliver_every_kind(world: World) -> dict[str, str]:
    """Deliver one event per outcome; return {event id: expected canonical decision}."""
    v1 = world.stack.state.kv.versions(CERT)[0].version
    v2 = world.stack.state.kv.versions(CERT)[-1].version
    world.use()
    expected = {world.deliver(v2): "applied", world.deliver(v2): "already_current"}
    expected[world.deliver(v1)] = "superseded"
    leaf, root = world.pki.stranger
    expected[world.deliver(world.add_version(data=to_pkcs12(leaf, [root])))] = "rejected"
    future = world.add_version(not_before=world.clock.now().replace(month=5))
    expected[world.deliver(future)] = "deferred"
    expected[world.deliver(world.add_version("orphan"), "orphan")] = "ignored"
    world.stack.faults_arm.fail("*/certificates/*", method="PUT", count=2)
    newest = world.add_version(not_before=world.clock.now().replace(month=2))
    failing = world.event(newest)
    with pytest.raises(TransientDependencyError):
        world.deliver_event(failing)
    expected[failing.id] = "failed"
    forged = world.event(newest, Id=f"http://evil.test/certificates/{CERT}/{newest}")
    world.deliver_event(forged)
    expected[forged.id] = "ignored"  # event.malformed
    return expected


class TestCanonicalRecords:
    def test_every_invocation_leaves_exactly_one_canonical_record(self, bound, capsys):
        """applied, already_current, superseded, rejected, deferred, ignored, failed and a
        malformed event: one non-target audit line each, with the right decision."""
        world, _, _ = bound

        expected = deliver_every_kind(world)

        lines = [
            r for r in audit_lines(capsys.readouterr().out) if r["event"] != "rotation.target"
        ]
        by_id = {eid: [r for r in lines if r["event_id"] == eid] for eid in expected}
        assert {eid: [r["decision"] for r in rs] for eid, rs in by_id.items()} == {
            eid: [decision] for eid, decision in expected.items()
        }
        assert by_id[list(expected)[-1]][0]["event"] == "event.malformed"
        assert len(lines) == len(expected)


class TestNoSecretAnywhere:
    def test_token_key_and_pfx_never_reach_a_log_line_or_record(self, bound, capsys, caplog):
        """Across every outcome, with DEBUG logging everywhere, no secret material is captured."""
        world, _, v2 = bound
        caplog.set_level(logging.DEBUG)
        stored = world.stack.state.kv.get(CERT, v2)
        assert stored is not None
        key_body = "".join(world.pki.key_pem().decode().splitlines()[1:-1])

        deliver_every_kind(world)

        out, err = capsys.readouterr()
        records = [json.dumps(r.as_dict()) for r in world.audit.records]
        haystack = "\n".join([out, err, caplog.text, *records])
        needles = {
            "token": world.stack.token,
            "key pem": key_body[8:72],
            "stored secret": stored.secret_value[100:164],
        }
        assert caplog.records
        assert min(len(needle) for needle in needles.values()) >= 40
        assert {name: needle in haystack for name, needle in needles.items()} == dict.fromkeys(
            needles, False
        )
