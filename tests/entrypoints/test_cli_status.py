"""`certrotate status` against the devstack scene (real adapters), with an injected clock: the
outbound bindings, and the scene's inbound caller certificate pinned in policy documents."""

from __future__ import annotations

import json
import os
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from click.testing import CliRunner, Result
from cryptography.hazmat.primitives.serialization import pkcs12

from devstack.gateway import thumbprint_of
from devstack.seed import (
    CERTIFICATE,
    INBOUND_API,
    INBOUND_CERTIFICATE,
    INBOUND_PRODUCT,
    OTHER_CERTIFICATE,
    ScenePki,
    SeededScene,
    mint_scene_pki,
    seed_scene,
)
from devstack.stack import Devstack
from rotation import bootstrap
from rotation.adapters.tables import TableAuditSink
from rotation.domain.expiry import days_left
from rotation.domain.model import AuditRecord, Decision, Trigger
from rotation.entrypoints.cli import cli
from rotation.entrypoints.cli.wiring import Wiring
from rotation.testing import FrozenClock

MINTED = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture(name="scene_pki", scope="module")
def _scene_pki() -> ScenePki:
    return mint_scene_pki(MINTED)


@pytest.fixture(name="scene")
def _scene(devstack: Devstack, scene_pki: ScenePki) -> SeededScene:
    return seed_scene(devstack, now=MINTED, pki=scene_pki)


@pytest.fixture(name="clock")
def _clock() -> FrozenClock:
    return FrozenClock(MINTED)


def _not_after(bundle: bytes) -> datetime:
    leaf = pkcs12.load_key_and_certificates(bundle, None)[1]
    assert leaf is not None
    return leaf.not_valid_after_utc


def _status(devstack: Devstack, clock: FrozenClock, *args: str, **extra: str | None) -> Result:
    env: dict[str, str | None] = {k: None for k in os.environ if k.startswith("ROTATION_")}
    env |= devstack.env() | extra

    def build(settings, **kwargs):
        return bootstrap.build_service(settings, clock=clock, **kwargs)

    return CliRunner(env=env).invoke(cli, ["status", *args], obj=Wiring(build_service=build))


def _json(result: Result, kind: str) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    return [r for r in rows if r["kind"] == kind]


def _rows(result: Result) -> dict[tuple[str, str], dict[str, Any]]:
    """The outbound bindings by (service, entity)."""
    return {(r["service"], r["entity"]): r for r in _json(result, "certificate")}


def _identities(result: Result) -> dict[tuple[str, str, str], dict[str, Any]]:
    """The inbound identities by (service, policy, version)."""
    return {(r["service"], r["resource"], r["version"]): r for r in _json(result, "policy")}


def _pin(devstack: Devstack, version: str) -> None:
    for service in devstack.apim_services:
        devstack.put_apim_certificate(
            service, CERTIFICATE, f"{devstack.vault_url}/secrets/{CERTIFICATE}/{version}"
        )


class TestStatus:
    def test_the_scene_shows_v1_in_use_out_of_sync_with_its_days_left(
        self, devstack, scene, scene_pki, clock
    ):
        """Fresh scene: partner-mtls presents v1 while v2 is the newest enabled version (exit 1);
        billing-mtls is in sync; days left count from the injected clock."""
        result = _status(devstack, clock, "--json")

        rows = _rows(result)
        assert result.exit_code == 1, result.output
        assert set(rows) == {
            (svc, entity)
            for svc in devstack.apim_services
            for entity in (CERTIFICATE, OTHER_CERTIFICATE)
        }
        v1_expires = _not_after(scene_pki.v1)
        for svc in devstack.apim_services:
            partner = rows[(svc, CERTIFICATE)]
            assert partner["version"] == scene.versions["v1"]
            assert partner["newest"] == scene.versions["v2"]
            assert partner["in_sync"] is False
            assert partner["days_left"] == days_left(v1_expires, MINTED) == 31
            assert partner["not_after"] == v1_expires.isoformat().replace("+00:00", "Z")
            assert sorted(partner["backends"]) == sorted(
                b for b in devstack.state.services[svc].backends if b != "billing-api"
            )
            assert partner["thumbprint"]
            assert partner["last_decision"] is None
            billing = rows[(svc, OTHER_CERTIFICATE)]
            assert billing["in_sync"] is True
            assert billing["days_left"] == 81
            assert billing["backends"] == ["billing-api"]
        assert "out of sync or expiring" in result.stderr

    def test_all_in_sync_and_far_from_expiry_exits_0(self, devstack, scene, clock):
        """Every binding on its newest version, nothing within ROTATION_ALERT_DAYS: exit 0."""
        _pin(devstack, scene.versions["v2"])

        result = _status(devstack, clock, "--json")

        assert result.exit_code == 0, result.output
        assert all(r["in_sync"] and r["healthy"] for r in _rows(result).values())

    def test_days_left_follow_the_clock_and_the_alert_threshold(
        self, devstack, scene, scene_pki, clock
    ):
        """62 days later v2 has 29 days left (billing-mtls 19): expiring under the default 30, not
        under 10."""
        _pin(devstack, scene.versions["v2"])
        clock.advance(days=62)
        outbound = {"ROTATION_INBOUND_CERTIFICATES": None}  # the caller has expired by then

        default = _status(devstack, clock, "--json", **outbound)
        lenient = _status(devstack, clock, "--json", ROTATION_ALERT_DAYS="10", **outbound)

        expected = days_left(_not_after(scene_pki.v2), MINTED + timedelta(days=62))
        rows = _rows(default)
        assert expected == 29
        assert default.exit_code == 1
        assert {r["days_left"] for k, r in rows.items() if k[1] == CERTIFICATE} == {29}
        assert {r["expiring"] for k, r in rows.items() if k[1] == CERTIFICATE} == {True}
        assert lenient.exit_code == 0, lenient.output

    def test_human_output_is_a_table_with_every_column(self, devstack, scene, clock):
        """Without --json: one table, the columns of the contract, NO for out of sync."""
        result = _status(devstack, clock)

        for column in ("service", "entity", "backends", "certificate", "version", "thumbprint",
                       "not_after", "days left", "newest", "in sync", "last decision"):  # fmt: skip
            assert column in result.stdout
        assert "NO" in result.stdout
        assert scene.versions["v1"][:8] in result.stdout

    def test_a_bad_alert_days_setting_is_a_usage_error(self, devstack, scene, clock):
        result = _status(devstack, clock, ROTATION_ALERT_DAYS="0")

        assert result.exit_code == 2
        assert "ROTATION_ALERT_DAYS" in result.output

    @pytest.mark.azurite
    def test_last_decision_comes_from_the_durable_trail(self, devstack, scene, clock, azurite):
        """With ROTATION_AUDIT_TABLE: the newest canonical record's decision per certificate."""
        table = f"status{uuid.uuid4().hex[:12]}"
        sink = TableAuditSink.from_connection_string(azurite.connection_string, table, clock=clock)
        for decision in (Decision.APPLIED, Decision.REJECTED):
            clock.advance(seconds=1)
            sink.write(
                AuditRecord(
                    event=f"rotation.{decision}",
                    decision=decision,
                    trigger=Trigger.CLI,
                    vault=devstack.vault_url,
                    certificate=CERTIFICATE,
                )
            )
        clock.advance(seconds=1)
        sink.write(
            AuditRecord(
                event="rotation.target",
                decision=Decision.FAILED,
                trigger=Trigger.CLI,
                vault=devstack.vault_url,
                certificate=CERTIFICATE,
            )
        )

        result = _status(
            devstack, clock, "--json", ROTATION_AUDIT_TABLE=table,
            ROTATION_AUDIT_CONNECTION=azurite.connection_string, ROTATION_LOCK="off",
        )  # fmt: skip

        rows = _rows(result)
        assert {r["last_decision"] for k, r in rows.items() if k[1] == CERTIFICATE} == {"rejected"}
        assert {r["last_decision"] for k, r in rows.items() if k[1] == OTHER_CERTIFICATE} == {None}


class TestInboundStatus:
    def test_the_scenes_caller_is_pinned_in_sync_in_every_service(
        self, devstack, scene, scene_pki, clock
    ):
        """The scene pins partner-caller in the global and the orders policies of each
        service: one row per document, its one version in sync and far from expiry (exit 0
        once partner-mtls is on v2)."""
        _pin(devstack, scene.versions["v2"])

        result = _status(devstack, clock, "--json")

        assert result.exit_code == 0, result.output
        caller = scene.versions[INBOUND_CERTIFICATE]
        rows = _identities(result)
        assert set(rows) == {
            (svc, policy, caller)
            for svc in devstack.apim_services
            for policy in ("global", f"apis/{INBOUND_API}")
        }
        leaf = scene_pki.callers[0].cert
        for (_, policy, _), row in rows.items():
            assert row["scope"] == ("global" if policy == "global" else "api")
            assert row["resource_id"].endswith(
                f"{'' if policy == 'global' else policy + '/'}policies/policy"
            )
            assert row["certificate"] == INBOUND_CERTIFICATE
            assert row["thumbprint"] == thumbprint_of(leaf)
            assert row["not_after"] == leaf.not_valid_after_utc.isoformat().replace("+00:00", "Z")
            assert row["days_left"] == days_left(leaf.not_valid_after_utc, MINTED) == 61
            assert (row["newest"], row["in_sync"], row["current"]) == (caller, True, True)
            assert (row["expiring"], row["healthy"]) == (False, True)

    def test_a_renewal_not_pinned_everywhere_needs_attention(
        self, devstack, scene, scene_pki, clock
    ):
        """The caller's renewal is in Key Vault; the partners product pins both (put by hand),
        the global and orders policies only the old one: those are out of sync (exit 1), the
        product's rows are in sync with the renewal as its current identity."""
        _pin(devstack, scene.versions["v2"])
        renewal = devstack.import_certificate(INBOUND_CERTIFICATE, scene_pki.caller_renewal)
        old, new = (thumbprint_of(c.cert) for c in scene_pki.callers)
        for svc in devstack.apim_services:
            devstack.put_policy(
                svc, _PRODUCT_POLICY.format(old=old, new=new), product=INBOUND_PRODUCT
            )

        result = _status(devstack, clock, "--json")
        table = _status(devstack, clock)

        assert result.exit_code == 1, result.output
        caller = scene.versions[INBOUND_CERTIFICATE]
        rows = _identities(result)
        product = f"products/{INBOUND_PRODUCT}"
        for svc in devstack.apim_services:
            for policy in ("global", f"apis/{INBOUND_API}"):
                row = rows[(svc, policy, caller)]
                assert (row["newest"], row["in_sync"], row["healthy"]) == (renewal, False, False)
                assert (svc, policy, renewal) not in rows
            pinned = rows[(svc, product, caller)], rows[(svc, product, renewal)]
            assert [r["scope"] for r in pinned] == ["product", "product"]
            assert [r["in_sync"] for r in pinned] == [True, True]
            assert [r["current"] for r in pinned] == [False, True]
            assert [r["thumbprint"] for r in pinned] == [old, new]
            assert all(r["healthy"] for r in pinned)
        assert "4 of 8 inbound identity(ies) out of sync" in result.stderr
        assert table.exit_code == 1
        assert "inbound identities" in table.stdout
        assert "products/partners" in table.stdout


_PRODUCT_POLICY = """<policies>
    <inbound>
        <base />
        <validate-client-certificate validate-trust="true">
            <identities>
                <identity thumbprint="{old}" />
                <identity thumbprint="{new}" />
            </identities>
        </validate-client-certificate>
    </inbound>
</policies>"""
