"""``devstack.seed``: the sample scene `certrotate devstack` seeds makes manual replay work as is.

Every test starts a fresh in-process stack (``devstack`` fixture), seeds it with certificates
minted once per session, and drives the *real* service (real adapters and SDK clients) from the
``env`` file alone, as a user who ran ``set -a; . DIR/env`` would.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import ssl
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from devstack.seed import (
    CERTIFICATE,
    EVENT_FILES,
    INBOUND_API,
    INBOUND_CERTIFICATE,
    INBOUND_OPERATION,
    INBOUND_PRODUCT,
    OTHER_CERTIFICATE,
    SEED_BACKENDS,
    ScenePki,
    SeededScene,
    enable_command,
    is_empty,
    mint_scene_pki,
    referenced_vaults,
    seed_if_empty,
    seed_scene,
    try_it,
)
from devstack.stack import Devstack
from rotation.adapters.credentials import StaticTokenCredential
from rotation.adapters.policies import ArmInboundPolicies
from rotation.bootstrap import build_service
from rotation.config import Settings
from rotation.domain.model import Decision, KeyVaultEvent
from rotation.domain.policies import find_thumbprints
from rotation.entrypoints.cli import cli
from rotation.intake.events import iter_file_events


@pytest.fixture(name="scene_pki", scope="session")
def _scene_pki() -> ScenePki:
    """The scene's certificates, minted once (the service validates against the real clock)."""
    return mint_scene_pki(datetime.now(UTC))


@pytest.fixture(name="scene")
def _scene(devstack: Devstack, scene_pki: ScenePki) -> SeededScene:
    """The stack seeded, with ``devstack.json`` and ``env`` written as the CLI does."""
    scene = seed_scene(devstack, now=datetime.now(UTC), pki=scene_pki)
    devstack.write_files(devstack.state_dir)
    return scene


def read_env(stack: Devstack) -> dict[str, str]:
    """The ``env`` file, as ``set -a; . DIR/env`` would export it."""
    lines = (stack.state_dir / "env").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines)


@pytest.fixture(name="user_env")
def _user_env(
    scene: SeededScene, devstack: Devstack, monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    """Only the env file's settings in the environment (nothing else ROTATION_* leaks in)."""
    for key in list(os.environ):
        if key.startswith("ROTATION_") or key == "AzureWebJobsStorage":
            monkeypatch.delenv(key)
    env = read_env(devstack)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


def replay(*paths: Path) -> tuple[int, list[dict[str, Any]], str]:
    """`certrotate replay --json PATHS` in-process: exit code, one dict per event, all output."""
    result = CliRunner().invoke(cli, ["replay", "--json", *map(str, paths)])
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    return result.exit_code, lines, result.output


def secret_ids(stack: Devstack, name: str = CERTIFICATE) -> set[str]:
    """The secret identifier every APIM service's entity ``name`` is pinned to."""
    return {
        svc.certificates[name].properties["keyVault"]["secretIdentifier"]
        for svc in stack.state.services.values()
    }


def enable(stack: Devstack, env: dict[str, str], version: str) -> None:
    """The documented Key Vault PATCH that enables ``version`` (what the printed curl sends)."""
    context = ssl.create_default_context(cafile=env["ROTATION_DEVSTACK_CA_BUNDLE"])
    with httpx.Client(verify=context, timeout=10) as client:
        response = client.patch(
            f"{env['ROTATION_VAULTS']}/certificates/{CERTIFICATE}/{version}",
            params={"api-version": "7.5"},
            headers={"Authorization": f"Bearer {env['ROTATION_DEVSTACK_TOKEN']}"},
            json={"attributes": {"enabled": True}},
        )
    assert response.status_code == 200, response.text


class TestScene:
    def test_env_file_is_all_the_settings_need(self, scene, devstack):
        """The env file alone makes valid Settings, with the seeded root as the trust anchor."""
        env = read_env(devstack)

        settings = Settings.from_env(env)

        anchors = devstack.state_dir / "trust-anchors.pem"
        assert env["ROTATION_TRUST_ANCHORS"] == str(anchors)
        assert settings.trust_anchors == anchors
        assert anchors.read_text().count("BEGIN CERTIFICATE") == 1
        assert "Demo Root CA" in _subject(anchors)

    def test_bindings_pin_v1_in_every_service_plus_one_unrelated_backend(self, scene, devstack):
        """Each service: partner-mtls pinned to v1's versioned URL, two backends on it, billing-api."""
        v1 = f"{devstack.vault_url}/secrets/{CERTIFICATE}/{scene.versions['v1']}"

        assert secret_ids(devstack) == {v1}
        assert len(devstack.state.services) == 2
        for svc in devstack.state.services.values():
            presenting = {
                b.name: [
                    r.rsplit("/", 1)[-1] for r in b.properties["credentials"]["certificateIds"]
                ]
                for b in svc.backends.values()
            }
            assert presenting == {
                **{backend: [CERTIFICATE] for backend in SEED_BACKENDS},
                "billing-api": [OTHER_CERTIFICATE],
            }

    def test_inbound_caller_is_pinned_at_global_and_api_scope(self, scene, devstack):
        """partner-caller (clientAuth, issued by the scene's CA) is named in the env file and its
        thumbprint is pinned by the global and the orders API policies of every service, read
        through ArmInboundPolicies in rawxml; the product's policy and the operation pin nothing."""
        caller = devstack.state.kv.get(INBOUND_CERTIFICATE, scene.versions[INBOUND_CERTIFICATE])
        leaf = x509.load_der_x509_certificate(base64.b64decode(caller.cer))
        env = read_env(devstack)
        policies = ArmInboundPolicies(
            StaticTokenCredential(devstack.token),
            base_url=devstack.arm_endpoint,
            connection_verify=str(devstack.ca_bundle),
            retry_total=0,
        )

        assert env["ROTATION_INBOUND_CERTIFICATES"] == (
            f"{devstack.vault_url}/certificates/{INBOUND_CERTIFICATE}"
        )
        eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
        assert "Demo Issuing CA" in leaf.issuer.rfc4514_string()
        for service in devstack.apim_services:
            sid = devstack.service_id(service)
            documents = list(policies.list_policies(sid))
            pinned = {
                d.resource_id.removeprefix(sid): [p.thumbprint for p in find_thumbprints(d.value)]
                for d in documents
            }
            assert pinned == {
                "/policies/policy": [caller.thumbprint],
                f"/products/{INBOUND_PRODUCT}/policies/policy": [],
                f"/apis/{INBOUND_API}/policies/policy": [caller.thumbprint],
            }
            texts = {str(d.scope): d.value for d in documents}
            assert "\r\n" in texts["global"]
            assert "<!--" in texts["global"]
            assert '"x-priority", "normal") == "high")' in texts["api"]
            assert "p => p.StartsWith" in texts["api"]
            svc = devstack.state.service(service)
            assert f"{INBOUND_API}/{INBOUND_OPERATION}" in svc.operations

    def test_v2_waits_enabled_and_v3_waits_disabled(self, scene, devstack):
        """v1 < v2 < v3 by creation; v2 is enabled and unapplied, v3 (untrusted) is disabled."""
        versions = devstack.state.kv.versions(CERTIFICATE)

        assert [v.version for v in versions] == [scene.versions[k] for k in ("v1", "v2", "v3")]
        assert [v.enabled for v in versions] == [True, True, False]
        assert versions[0].created < versions[1].created < versions[2].created

    def test_event_files_are_real_shaped_deliveries(self, scene, devstack):
        """Each file parses with the intake: right schema, version, vault URL and dead-letter data."""
        allowed = [devstack.vault_url]

        parsed = {
            key: [e for _, e in iter_file_events(path, allowed_vault_urls=allowed)]
            for key, path in scene.events.items()
        }

        raw = json.loads(scene.events["v2"].read_text())
        assert isinstance(raw, list)
        assert raw[0]["data"]["Id"] == (
            f"{devstack.vault_url}/certificates/{CERTIFICATE}/{scene.versions['v2']}"
        )
        assert set(scene.events) == set(EVENT_FILES)
        assert all(len(events) == 1 for events in parsed.values())
        events = {k: e[0] for k, e in parsed.items() if isinstance(e[0], KeyVaultEvent)}
        assert events.keys() == parsed.keys()
        assert all(e.vault_url == devstack.vault_url for e in events.values())
        assert {k: e.version for k, e in events.items()} == {
            "v2": scene.versions["v2"],
            "v2-cloudevents": scene.versions["v2"],
            "v3": scene.versions["v3"],
            "deadletter-v2": scene.versions["v2"],
        }
        assert (events["v2"].schema, events["v2-cloudevents"].schema) == (
            "eventgrid",
            "cloudevents",
        )
        assert events["deadletter-v2"].deadletter is not None
        assert events["deadletter-v2"].deadletter.reason == "MaxDeliveryAttemptsExceeded"

    def test_written_files_and_try_it_hold_no_secret(self, scene, devstack):
        """Events, trust anchors and the try-it lines carry no key, PFX body or token."""
        texts = [path.read_text() for path in scene.events.values()]
        texts += [scene.trust_anchors.read_text(), "\n".join(try_it(devstack.state_dir, scene))]

        for text in texts:
            assert "PRIVATE KEY" not in text
            assert devstack.token not in text


def _subject(path: Path) -> str:
    from cryptography import x509  # noqa: PLC0415

    return x509.load_pem_x509_certificate(path.read_bytes()).subject.rfc4514_string()


class TestPlan:
    def test_plan_applies_v2_on_exactly_the_seeded_targets(self, scene, devstack):
        """plan, from the env file's Settings: applied, v1 -> v2, on both partner-mtls entities."""
        service = build_service(Settings.from_env(read_env(devstack)))
        v1, v2 = (
            f"{devstack.vault_url}/secrets/{CERTIFICATE}/{scene.versions[k]}" for k in ("v1", "v2")
        )

        plan = service.plan(devstack.vault_url, CERTIFICATE)

        assert plan.decision is Decision.APPLIED
        assert plan.candidate is not None
        assert plan.candidate.version == scene.versions["v2"]
        assert plan.findings == ("revocation.unavailable",)  # no CRL for the seeded CA: soft warns
        assert sorted(
            (t.service, t.kind, t.name, t.from_, t.to, t.result) for t in plan.targets
        ) == [
            (service_name, "certificate", CERTIFICATE, v1, v2, "update")
            for service_name in sorted(devstack.apim_services)
        ]


class TestManualReplay:
    def test_v2_applies_then_is_current_and_enabled_v3_is_rejected(
        self, scene, devstack, user_env
    ):
        """Replaying the files: v2 applied, v2 already_current, enabled v3 rejected (untrusted)."""
        v2_url = f"{devstack.vault_url}/secrets/{CERTIFICATE}/{scene.versions['v2']}"

        first = replay(scene.events["v2"])
        again = replay(scene.events["v2"])
        enable(devstack, user_env, scene.versions["v3"])
        rogue = replay(scene.events["v3"])

        assert [r[0] for r in (first, again, rogue)] == [0, 0, 0], rogue[2]
        assert [r[1][0]["decision"] for r in (first, again, rogue)] == [
            "applied",
            "already_current",
            "rejected",
        ]
        assert len(first[1][0]["targets"]) == len(devstack.apim_services)
        assert rogue[1][0]["findings"] == ["chain.untrusted"]
        assert secret_ids(devstack) == {v2_url}

    def test_dead_letter_and_cloudevents_files_replay(self, scene, devstack, user_env):
        """The dead-letter blob applies v2; the CloudEvents copy of the event is then current."""
        code, lines, output = replay(scene.events["deadletter-v2"], scene.events["v2-cloudevents"])

        assert code == 0, output
        assert [line["decision"] for line in lines] == ["applied", "already_current"]
        assert lines[0]["location"] == "deadletter-v2.json[0]"

    def test_replay_output_carries_no_secret(self, scene, devstack, user_env):
        """Neither stdout nor stderr of a replay shows the token or a private key."""
        _, _, output = replay(scene.events["v2"])

        assert devstack.token not in output
        assert "PRIVATE KEY" not in output

    @pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")
    def test_printed_enable_command_enables_v3(self, scene, devstack, user_env):
        """The try-it curl line, run by a shell with the env file's variables, enables v3."""
        (line,) = [x for x in try_it(devstack.state_dir, scene) if x.startswith("curl")]

        done = subprocess.run(
            ["bash", "-c", line],
            env={**os.environ},
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )

        assert line == enable_command(scene.versions["v3"])
        assert done.returncode == 0, done.stderr
        assert devstack.state.kv.get(CERTIFICATE, scene.versions["v3"]).enabled


class TestRestart:
    def test_persistent_state_is_not_reseeded(self, tmp_path, scene_pki):
        """A restart on the same state dir keeps the scene and seeds nothing new."""
        now = datetime.now(UTC)
        with Devstack.start(tmp_path, ephemeral=False) as stack:
            first = seed_if_empty(stack, now=now, pki=scene_pki)
            assert first is not None
            events = {key: path.read_text() for key, path in first.events.items()}

        with Devstack.start(tmp_path, ephemeral=False) as stack:
            second = seed_if_empty(stack, now=now, pki=scene_pki)
            versions = [v.version for v in stack.state.kv.versions(CERTIFICATE)]
            env = stack.env()

        assert second is None
        assert versions == [first.versions[k] for k in ("v1", "v2", "v3")]
        assert {key: path.read_text() for key, path in first.events.items()} == events
        assert env["ROTATION_TRUST_ANCHORS"] == str(tmp_path.resolve() / "trust-anchors.pem")

    def test_restart_reports_the_saved_vault_url(self, tmp_path, scene_pki):
        """The saved entities name the first run's vault URL, so a moved port can be reported."""
        with Devstack.start(tmp_path, ephemeral=False) as stack:
            seed_scene(stack, now=datetime.now(UTC), pki=scene_pki)
            first_url = stack.vault_url

        with Devstack.start(tmp_path, ephemeral=False) as stack:
            referenced = referenced_vaults(stack)

        assert referenced == {first_url}

    def test_ephemeral_and_unseeded_stacks_are_empty(self, devstack, tmp_path):
        """An ephemeral stack starts empty every time, and nothing is written without seeding."""
        assert is_empty(devstack)
        assert "ROTATION_TRUST_ANCHORS" not in devstack.env()
        with Devstack.start(tmp_path, ephemeral=True) as stack:
            assert is_empty(stack)
