"""End to end, every decision: the real trigger, the real adapters, the devstack (issue 5).

Each test delivers real ``func.EventGridEvent`` objects through ``on_key_vault_event`` and checks
the APIM state in the devstack, the request log (what was read and written) and the canonical
audit record the invocation left on stdout.
"""

from __future__ import annotations

from typing import Any

import azure.functions as func
import pytest

from devstack.pki import to_pkcs12
from rotation.domain.errors import TransientDependencyError
from tests.e2e.world import CERT, audit_lines, secret_url, trigger

SECRET_EVENT = "Microsoft.KeyVault.SecretNewVersionCreated"


def canonical(capsys: pytest.CaptureFixture[str], event_id: str) -> dict[str, Any]:
    """The one canonical audit line (not a per-target line) of ``event_id`` on stdout."""
    lines = [
        line
        for line in audit_lines(capsys.readouterr().out)
        if line.get("event_id") == event_id and line["event"] != "rotation.target"
    ]
    assert len(lines) == 1, lines
    return lines[0]


class TestApplied:
    def test_pin_moves_both_services_to_the_versioned_secret(self, bound, capsys):
        """applied (pin): each bound entity in both services now pins v2 and presents its leaf."""
        world, _, v2 = bound
        world.use()
        before = world.snapshot()

        event_id = world.deliver(v2)

        record = canonical(capsys, event_id)
        assert (record["event"], record["decision"]) == ("rotation.applied", "applied")
        for svc in (world.svc1, world.svc2):
            assert world.pinned(svc, CERT) == secret_url(world.stack, CERT, v2)
            assert world.entity(svc, CERT)["thumbprint"] == world.thumbprints[v2]
        assert [(w.method, w.path.rsplit("/", 3)[-3]) for w in world.writes()] == [
            ("PUT", world.svc1),
            ("PUT", world.svc2),
        ]
        after = world.snapshot()
        assert after[world.svc1]["backends"] == before[world.svc1]["backends"]
        assert (
            after[world.svc1]["certificates"]["unrelated"]
            == (before[world.svc1]["certificates"]["unrelated"])
        )

    def test_versionless_entity_is_converted_and_flagged(self, world, capsys):
        """applied (pin): a versionless entity is pinned to the versioned URL; finding on record."""
        world.add_version()
        world.bind(world.svc1, CERT, None)
        v2 = world.add_version()
        world.use()

        event_id = world.deliver(v2)

        record = canonical(capsys, event_id)
        assert record["decision"] == "applied"
        assert "binding.versionless" in record["findings"]
        assert world.pinned(world.svc1, CERT) == secret_url(world.stack, CERT, v2)


class TestAlreadyCurrent:
    def test_redelivery_makes_no_write_and_no_secret_read(self, bound, capsys):
        """already_current: the same event again lists and compares, and writes nothing."""
        world, _, v2 = bound
        world.use()
        world.deliver(v2)
        world.stack.request_log.clear()

        event_id = world.deliver(v2)

        assert canonical(capsys, event_id)["decision"] == "already_current"
        assert world.writes() == []
        assert world.kv_calls("/secrets/*") == 0


class TestSuperseded:
    def test_late_event_for_an_older_version_never_rolls_back(self, bound, capsys):
        """superseded: after v3 is applied, a late v2 event reads no secret and writes nothing."""
        world, _, v2 = bound
        v3 = world.add_version()
        world.use()
        world.deliver(v3)
        world.stack.request_log.clear()

        event_id = world.deliver(v2)

        record = canonical(capsys, event_id)
        assert (record["decision"], record["version"]) == ("superseded", v2)
        assert world.writes() == []
        assert world.kv_calls("/secrets/*") == 0
        assert world.pinned(world.svc1, CERT) == secret_url(world.stack, CERT, v3)


class TestRejected:
    def test_untrusted_chain_is_rejected_and_nothing_changes(self, bound, capsys):
        """rejected: a version chaining to an unknown root is refused; APIM is untouched."""
        world, _, _ = bound
        leaf, root = world.pki.stranger
        bad = world.add_version(data=to_pkcs12(leaf, [root]))
        world.use()
        before = world.snapshot()

        event_id = world.deliver(bad)

        record = canonical(capsys, event_id)
        assert (record["decision"], record["version"]) == ("rejected", bad)
        assert "chain.untrusted" in record["findings"]
        assert world.snapshot() == before
        assert world.kv_calls("/secrets/*") == 1

    def test_keyless_bundle_is_rejected(self, bound, capsys):
        """rejected: a PEM bundle without the private key cannot be presented by APIM."""
        world, _, _ = bound
        bad = world.stack.import_certificate(
            CERT, world.pki.pem(with_key=False), content_type="application/x-pem-file"
        )
        world.use()
        before = world.snapshot()

        event_id = world.deliver(bad)

        record = canonical(capsys, event_id)
        assert record["decision"] == "rejected"
        assert "key.missing" in record["findings"]
        assert world.snapshot() == before


class TestDeferred:
    def test_not_yet_valid_version_is_deferred_without_a_secret_read(self, bound, capsys):
        """deferred: a version valid only next month waits for reconcile; nothing is read or written."""
        world, _, _ = bound
        future = world.add_version(not_before=world.clock.now().replace(month=4))
        world.use()
        world.stack.request_log.clear()

        event_id = world.deliver(future)

        assert canonical(capsys, event_id)["decision"] == "deferred"
        assert world.writes() == []
        assert world.kv_calls("/secrets/*") == 0


class TestIgnored:
    def test_vault_outside_the_allow_list_makes_no_call(self, bound, capsys):
        """ignored: a genuine Key Vault event for another vault never reaches Azure."""
        world, _, v2 = bound
        world.use()
        world.stack.request_log.clear()
        data = {
            "Id": f"https://kv-other.vault.azure.net/certificates/{CERT}/{v2}",
            "VaultName": "kv-other",
            "ObjectType": "Certificate",
            "ObjectName": CERT,
            "Version": v2,
        }
        event = func.EventGridEvent(
            id="eg-other", data=data, subject=CERT, event_type=world.event(v2).event_type,
            topic="/subscriptions/x/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv-other",
            event_time=world.clock.now(), data_version="1",
        )  # fmt: skip

        trigger(event)

        assert canonical(capsys, "eg-other")["decision"] == "ignored"
        assert world.stack.request_log.kv.entries() == []
        assert world.stack.request_log.arm.entries() == []

    def test_certificate_nothing_binds_reads_no_key_vault(self, bound, capsys):
        """ignored: no APIM entity references the certificate; Key Vault is not called."""
        world, _, _ = bound
        orphan = world.add_version("orphan")
        world.use()
        world.stack.request_log.clear()

        event_id = world.deliver(orphan, "orphan")

        assert canonical(capsys, event_id)["decision"] == "ignored"
        assert world.stack.request_log.kv.entries() == []
        assert world.writes() == []

    def test_secret_event_does_not_act(self, bound, capsys):
        """ignored: a SecretNewVersionCreated event is recorded and makes no call."""
        world, _, v2 = bound
        world.use()
        world.stack.request_log.clear()

        event_id = world.deliver(v2, event_type=SECRET_EVENT, ObjectType="Secret")

        assert canonical(capsys, event_id)["decision"] == "ignored"
        assert world.stack.request_log.arm.entries() == []


class TestFailed:
    def test_persistent_503_fails_retryably_then_redelivery_converges(self, bound, capsys):
        """failed: ARM answering 503 beyond the retries raises (Event Grid redelivers); the
        redelivery applies."""
        world, v1, v2 = bound
        world.use()
        world.stack.faults_arm.fail(f"*/{world.svc2}/certificates/{CERT}", method="PUT", count=2)

        with pytest.raises(TransientDependencyError):
            world.deliver(v2)
        failed = audit_lines(capsys.readouterr().out)
        second = world.deliver(v2)

        assert [r["decision"] for r in failed if r["event"] == "rotation.failed"] == ["failed"]
        assert world.pinned(world.svc2, CERT) == secret_url(world.stack, CERT, v2)
        assert canonical(capsys, second)["decision"] == "applied"
        assert v1 != v2

    def test_key_vault_refresh_failure_is_failed_and_redelivery_makes_apim_present_it(
        self, bound, capsys
    ):
        """failed: APIM could not fetch the secret (lastStatus Failed, old thumbprint): verify
        fails, and a redelivery must leave APIM presenting the new leaf."""
        world, _, v2 = bound
        world.use()
        world.stack.faults_arm.keyvault_refresh_failure(f"*/{world.svc1}/certificates/{CERT}")

        with pytest.raises(TransientDependencyError):
            world.deliver(v2)
        capsys.readouterr()
        world.deliver(v2)

        entity = world.entity(world.svc1, CERT)
        assert entity["keyVault"]["lastStatus"]["code"] == "Success"
        assert entity["thumbprint"] == world.thumbprints[v2]
