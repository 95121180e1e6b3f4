"""``Devstack``: description files, persistence, direct seeding, and the `certrotate devstack` CLI."""

from __future__ import annotations

import json
import signal
import stat
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from devstack.seed import EVENT_FILES, seed_scene
from devstack.stack import Devstack
from devstack.state import DATABASE_FILE, DevstackState
from rotation.entrypoints.cli import cli
from tests.devstack_fixture import running_devstack


class TestDescription:
    def test_devstack_json_and_env_point_at_the_stack(self, devstack, tmp_path):
        """devstack.json has the documented keys; env has the ROTATION_* lines; both 0600."""
        devstack.write_files(tmp_path)

        described = json.loads((tmp_path / "devstack.json").read_text())
        env = dict(line.split("=", 1) for line in (tmp_path / "env").read_text().splitlines())

        assert set(described) == {
            "vault_url", "vault_name", "arm_endpoint", "ca_bundle",
            "subscription_id", "resource_group", "apim_services", "token",
        }  # fmt: skip
        assert described["vault_url"] == devstack.vault_url
        assert len(described["apim_services"]) >= 2
        assert env["ROTATION_VAULTS"] == devstack.vault_url
        assert env["ROTATION_APIM_SERVICES"].split(",") == [
            devstack.service_id(s) for s in devstack.apim_services
        ]
        assert env["ROTATION_ARM_ENDPOINT"] == devstack.arm_endpoint
        assert env["ROTATION_DEVSTACK_CA_BUNDLE"] == str(devstack.ca_bundle)
        assert env["ROTATION_DEVSTACK_TOKEN"] == devstack.token
        assert env["ROTATION_KEYVAULT_VERIFY_CHALLENGE_RESOURCE"] == "false"
        for name in ("devstack.json", "env"):
            assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600

    def test_urls_are_loopback_https(self, devstack):
        """Both stand-ins listen on https://127.0.0.1 only."""
        assert devstack.vault_url.startswith("https://127.0.0.1:")
        assert devstack.arm_endpoint.startswith("https://127.0.0.1:")


class TestPersistence:
    def test_state_survives_a_restart(self, tmp_path, devstack_pki):
        """Non-ephemeral state (versions, entities, ETags) is reloaded from the state dir."""
        with Devstack.start(tmp_path, ephemeral=False) as stack:
            version = stack.import_certificate("c", devstack_pki.pfx())
            stack.put_backend(
                stack.apim_services[0], "b", url="https://x.test", certificate_ids=[]
            )
            etag = stack.state.services[stack.apim_services[0].lower()].backends["b"].etag

        with Devstack.start(tmp_path, ephemeral=False) as stack:
            assert [v.version for v in stack.state.kv.versions("c")] == [version]
            assert stack.state.services[stack.apim_services[0].lower()].backends["b"].etag == etag
            assert stack.state.next_etag() != etag

    def test_ephemeral_writes_no_state(self, tmp_path, devstack_pki):
        """--ephemeral keeps everything in memory."""
        with Devstack.start(tmp_path, ephemeral=True) as stack:
            stack.import_certificate("c", devstack_pki.pfx())

        assert not (tmp_path / DATABASE_FILE).exists()


class TestSeeding:
    def test_two_thousand_backends_seed_without_requests_or_saves(self, tmp_path, monkeypatch):
        """Direct seeding is O(1) per entity: 2,000 backends cost no HTTP request, no write of
        the state file and exactly one ETag each."""
        with Devstack.start(tmp_path, ephemeral=False) as stack:
            service = stack.apim_services[0]
            saves: list[None] = []
            monkeypatch.setattr(stack.state, "save", lambda: saves.append(None))
            etags_before = stack.state._etag_counter

            for i in range(2000):
                stack.put_backend(service, f"b{i}", url="https://x.test", certificate_ids=[])

            assert stack.request_log.arm.entries() == []
            assert stack.request_log.kv.entries() == []
            assert saves == []
            assert stack.state._etag_counter - etags_before == 2000
            assert len(stack.state.services[service.lower()].backends) == 2000

    def test_put_apim_certificate_refuses_an_unfetchable_new_entity(self, devstack):
        """Seeding an entity whose secret does not exist fails loudly."""
        with pytest.raises(ValueError, match="cannot fetch"):
            devstack.put_apim_certificate(
                devstack.apim_services[0], "c", f"{devstack.vault_url}/secrets/none"
            )

    def test_unknown_service_is_a_key_error(self, devstack):
        """Seeding into a service the stack does not have names it."""
        with pytest.raises(KeyError, match="nope"):
            devstack.put_backend("nope", "b", url="https://x.test", certificate_ids=[])


def _run_devstack(
    state: Path, *args: str, sig: int = signal.SIGTERM
) -> tuple[list[str], dict[str, Any], str]:
    """Run `certrotate devstack --state STATE ARGS` until it listens, then stop it with ``sig``:
    its stdout lines (the part after the signal last), devstack.json, and its stderr."""
    with running_devstack(state, *args, sig=sig) as (lines, errors, proc):
        described = json.loads((state / "devstack.json").read_text())
    err = "".join(errors)
    assert proc.returncode == 0, err
    return lines, described, err


class TestCli:
    @pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
    def test_runs_in_foreground_writes_files_and_stops_cleanly(self, tmp_path, sig):
        """`certrotate devstack --state DIR` prints where it listens, writes files, stops on a signal."""
        lines, described, err = _run_devstack(tmp_path, sig=sig)
        rest = lines[-1]

        env = dict(line.split("=", 1) for line in (tmp_path / "env").read_text().splitlines())
        assert any(described["vault_url"] in line for line in lines)
        assert any(described["arm_endpoint"] in line for line in lines)
        assert described["token"] not in "".join(lines) + rest + err
        assert "PRIVATE KEY" not in "".join(lines) + rest + err
        assert (tmp_path / DATABASE_FILE).exists()
        assert "stopped" in rest
        # seeded by default: trust anchors in env, events on disk, and the try-it commands
        assert env["ROTATION_TRUST_ANCHORS"] == str(tmp_path.resolve() / "trust-anchors.pem")
        assert {p.name for p in (tmp_path / "events").iterdir()} == set(EVENT_FILES.values())
        try_it = "".join(lines)
        assert f"set -a; . {tmp_path / 'env'}; set +a" in try_it
        assert "certrotate plan --certificate partner-mtls" in try_it
        assert f"certrotate replay {tmp_path / 'events' / 'v2-new-version.json'}" in try_it
        assert f"certrotate replay {tmp_path / 'events' / 'v3-untrusted.json'}" in try_it

    def test_no_seed_starts_empty(self, tmp_path):
        """--no-seed: no scene, no trust anchors, no events; the stack stays empty."""
        lines, described, err = _run_devstack(tmp_path, "--no-seed")

        env = (tmp_path / "env").read_text()
        assert "Try it" not in "".join(lines), err
        assert "ROTATION_TRUST_ANCHORS" not in env
        assert not (tmp_path / "events").exists()
        assert not (tmp_path / "trust-anchors.pem").exists()
        saved = DevstackState(tmp_path)
        assert saved.kv.certificates == {}
        saved.close()
        assert described["token"] not in "".join(lines) + err

    def test_restart_keeps_the_state_and_notes_a_moved_vault(self, tmp_path):
        """A persistent state is not re-seeded; saved bindings on another port get a note."""
        with Devstack.start(tmp_path, ephemeral=False) as stack:
            seed_scene(stack, now=datetime.now(UTC))
            first_url = stack.vault_url
            saved = [v.version for v in stack.state.kv.versions("partner-mtls")]

        lines, described, err = _run_devstack(tmp_path)

        state = DevstackState(tmp_path)
        reloaded = [v.version for v in state.kv.versions("partner-mtls")]
        state.close()
        assert reloaded == saved
        assert "Try it" not in "".join(lines)
        assert described["vault_url"] != first_url
        assert f"reference {first_url}, not {described['vault_url']}" in err
        assert "ROTATION_TRUST_ANCHORS" in (tmp_path / "env").read_text()

    def test_port_in_use_is_a_clear_error(self, devstack, tmp_path):
        """A busy port gives a one-line error, not a traceback."""
        port = int(devstack.vault_url.rsplit(":", 1)[1])

        result = CliRunner().invoke(
            cli, ["devstack", "--state", str(tmp_path), "--port-kv", str(port)]
        )

        assert result.exit_code == 1
        assert "cannot start the devstack" in result.output
        assert "Traceback" not in result.output

    def test_missing_state_directory_is_created(self, tmp_path):
        """--state names a directory that does not exist yet: it is created, not a traceback."""
        state = tmp_path / "new" / "deeper"

        _lines, described, err = _run_devstack(state, "--no-seed", "--no-nginx")

        assert (state / DATABASE_FILE).exists(), err
        assert described["vault_url"].startswith("https://127.0.0.1:")

    def test_unusable_state_directory_is_a_clear_error(self, tmp_path):
        """--state under a regular file: one line naming the directory, exit 1, no traceback."""
        blocker = tmp_path / "file"
        blocker.write_text("not a directory")

        result = CliRunner().invoke(cli, ["devstack", "--state", str(blocker / "state")])

        assert result.exit_code == 1
        assert f"cannot create the state directory {blocker / 'state'}" in result.output
        assert "Traceback" not in result.output
