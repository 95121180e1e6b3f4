"""`--settings local.settings.json`: every command that reads app settings takes the Functions
emulator's settings file (its Values), against the devstack scene with the real adapters."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Mapping
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from devstack.seed import (
    CERTIFICATE,
    EVENT_FILES,
)
from devstack.stack import Devstack
from rotation.adapters.tables import TableAuditSink
from rotation.domain.model import AuditRecord, Decision, Trigger
from rotation.entrypoints.cli import cli

SETTINGS_COMMANDS = ("audit", "plan", "reconcile", "replay", "status")


def _write(path: Path, values: Mapping[str, object], **top: object) -> Path:
    document = {"IsEncrypted": False, **top, "Values": values}
    path.write_text(json.dumps(document, indent=2))
    return path


def _local_settings(tmp_path: Path, devstack: Devstack, **extra: str) -> Path:
    """What a developer's local.settings.json holds for the devstack (host keys included)."""
    values = {
        "FUNCTIONS_WORKER_RUNTIME": "python",
        "AzureWebJobsFeatureFlags": "EnableWorkerIndexing",
        "ROTATION_LOCK": "off",
        **devstack.env(),
        **extra,
    }
    return _write(tmp_path / "local.settings.json", values)


def _run(*args: str, **env: str) -> Result:
    """The CLI with no certrotate setting in the environment but ``env``."""
    clean: dict[str, str | None] = {
        k: None for k in os.environ if k.startswith("ROTATION_") or k == "AzureWebJobsStorage"
    }
    return CliRunner(env=clean | env).invoke(cli, list(args))


@pytest.mark.parametrize("command", SETTINGS_COMMANDS)
def test_every_settings_command_offers_the_option(command):
    result = _run(command, "--help")

    assert result.exit_code == 0
    assert "--settings FILE" in result.output
    assert "local.settings.json" in result.output


class TestCommandsReadTheFile:
    def test_plan(self, devstack, scene, tmp_path):
        """plan with nothing in the environment: the file's Values are the settings."""
        path = _local_settings(tmp_path, devstack)

        result = _run("plan", "--settings", str(path), "--certificate", CERTIFICATE, "--json")

        assert result.exit_code == 0, result.output
        body = json.loads(result.stdout)
        assert body["decision"] == "applied"
        assert body["version"] == scene.versions["v2"]

    def test_replay_then_status(self, devstack, scene, tmp_path):
        """replay applies v2 from the file's settings; status then reports every row in sync."""
        path = _local_settings(tmp_path, devstack)
        event = devstack.state_dir / "events" / EVENT_FILES["v2"]

        replayed = _run("replay", "--settings", str(path), "--json", str(event))
        status = _run("status", "--settings", str(path), "--json")

        assert replayed.exit_code == 0, replayed.output
        assert status.exit_code == 0, status.output
        rows = [json.loads(line) for line in status.stdout.splitlines()]
        assert rows
        assert all(r["in_sync"] for r in rows)

    def test_reconcile(self, devstack, scene, tmp_path):
        path = _local_settings(tmp_path, devstack)

        result = _run("reconcile", "--settings", str(path), "--json")

        assert result.exit_code == 0, result.output
        decisions = {json.loads(line)["decision"] for line in result.stdout.splitlines()}
        assert Decision.APPLIED in decisions

    def test_the_file_overrides_the_environment(self, devstack, scene, tmp_path):
        """An explicit file wins over a stale environment (here: a vault that is not the stack's)."""
        path = _local_settings(tmp_path, devstack, ROTATION_ALERT_DAYS="0")

        result = _run(
            "status", "--settings", str(path), ROTATION_VAULTS="https://kv-old.vault.azure.net"
        )

        assert result.exit_code == 2
        assert "ROTATION_ALERT_DAYS" in result.output
        assert "kv-old" not in result.output

    @pytest.mark.azurite
    def test_audit_reads_the_table_named_in_the_file(self, tmp_path, azurite):
        """audit --settings: ROTATION_AUDIT_TABLE and its connection come from the file."""
        table = f"settings{uuid.uuid4().hex[:12]}"
        TableAuditSink.from_connection_string(azurite.connection_string, table).write(
            AuditRecord(event="rotation.applied", decision=Decision.APPLIED, trigger=Trigger.CLI)
        )
        path = _write(
            tmp_path / "local.settings.json",
            {
                "ROTATION_AUDIT_TABLE": table,
                "ROTATION_AUDIT_CONNECTION": azurite.connection_string,
            },
        )

        result = _run("audit", "--settings", str(path), "--json")

        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout.splitlines()[0])["event"] == "rotation.applied"
        assert "AccountKey" not in result.output


class TestBadFiles:
    @pytest.mark.parametrize(
        ("content", "says"),
        [
            ("{not json", "not a JSON document (line 1)"),
            ("[]", "expected a JSON object with a Values object"),
            ('{"IsEncrypted": false}', "no Values object"),
            (
                '{"IsEncrypted": true, "Values": {"ROTATION_VAULTS": "x"}}',
                "IsEncrypted is true; decrypt it first",
            ),
            (
                '{"Values": {"ROTATION_DEVSTACK_TOKEN": 123456789, "ROTATION_DRY_RUN": true}}',
                "Values.ROTATION_DEVSTACK_TOKEN must be a string",
            ),
        ],
    )
    def test_a_file_that_cannot_be_used_is_a_usage_error_naming_it(self, tmp_path, content, says):
        path = tmp_path / "local.settings.json"
        path.write_text(content)

        result = _run("status", "--settings", str(path))

        assert result.exit_code == 2
        assert f"--settings {path}: {says}" in result.output
        assert "123456789" not in result.output

    def test_a_missing_file_is_a_usage_error(self, tmp_path):
        result = _run("plan", "--settings", str(tmp_path / "nope.json"), "--certificate", "c")

        assert result.exit_code == 2
        assert "nope.json" in result.output
        assert "does not exist" in result.output
