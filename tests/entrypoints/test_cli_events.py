"""`certrotate events` and `certrotate audit`: output shapes, exit codes and verification."""

from __future__ import annotations

import copy
import io
import json
import logging
import uuid
from typing import Any

import pytest
import structlog
from click.testing import CliRunner

from rotation.adapters.audit import AUDIT_FIELDS, StructlogAuditSink
from rotation.adapters.tables import TableAuditSink, open_table
from rotation.domain.model import AuditRecord, Decision, Trigger
from rotation.entrypoints.cli import cli
from rotation.logconfig import configure_logging

VERSION = "3f1c0d9e2b7a4c55a8e6d1b2c3f4a5b6"
EVENT: dict[str, Any] = {
    "id": "6b0f9a52-3c1e-4d7a-9e2b-41c5d8f0a7e3",
    "topic": "/subscriptions/1/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv-rotation-demo",
    "subject": "partner-mtls",
    "eventType": "Microsoft.KeyVault.CertificateNewVersionCreated",
    "eventTime": "2026-03-02T08:15:42.1234567Z",
    "data": {
        "Id": f"https://kv-rotation-demo.vault.azure.net/certificates/partner-mtls/{VERSION}",
        "VaultName": "kv-rotation-demo", "ObjectType": "Certificate", "ObjectName": "partner-mtls",
        "Version": VERSION, "NBF": 1772438400, "EXP": 1804060800,
    },
    "dataVersion": "1",
    "metadataVersion": "1",
}  # fmt: skip
KEYS = [
    "event_id", "event_type", "schema", "vault_name", "vault_url", "object_type", "object_name",
    "version", "not_before", "expires", "event_time", "deadletter", "disposition",
]  # fmt: skip


def run(*args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(cli, list(args), env={"ROTATION_VAULTS": "", **(env or {})})


def write(path, value) -> str:
    path.write_text(json.dumps(value))
    return str(path)


class TestEventsCommand:
    def test_json_output_has_the_documented_keys(self, tmp_path):
        """--json prints an array of objects with exactly the documented keys."""
        result = run("events", "--json", write(tmp_path / "e.json", [EVENT]))

        assert result.exit_code == 0, result.stderr
        (item,) = json.loads(result.stdout)
        assert list(item) == KEYS
        assert (item["disposition"], item["schema"], item["deadletter"]) == (
            "rotate",
            "eventgrid",
            None,
        )
        assert item["not_before"] == "2026-03-02T08:00:00Z"

    def test_dead_letter_metadata_is_shown(self, tmp_path):
        """A dead-letter blob's reason/attempts/outcome appear under deadletter."""
        blob = [
            {
                **EVENT,
                "deadLetterReason": "MaxDeliveryAttemptsExceeded",
                "deliveryAttempts": 30,
                "lastDeliveryOutcome": "TimedOut",
            }
        ]

        result = run("events", "--json", write(tmp_path / "dl.json", blob))

        assert json.loads(result.stdout)[0]["deadletter"] == {
            "reason": "MaxDeliveryAttemptsExceeded",
            "attempts": 30,
            "last_outcome": "TimedOut",
        }

    def test_empty_array_is_fine(self, tmp_path):
        """No events is not an error."""
        result = run("events", "--json", write(tmp_path / "e.json", []))

        assert (result.exit_code, json.loads(result.stdout)) == (0, [])

    def test_malformed_event_exits_1_naming_file_index_and_field(self, tmp_path):
        """The good events still print; stderr names file, index and field."""
        bad = copy.deepcopy(EVENT)
        bad["data"]["Version"] = "0" * 32
        path = write(tmp_path / "mixed.json", [EVENT, bad])

        result = run("events", path)

        assert result.exit_code == 1
        assert f"{tmp_path / 'mixed.json'}[1].data.Id: names another Version" in result.stderr
        assert "partner-mtls" in result.stdout

    def test_vault_option_accepts_the_devstack(self, tmp_path):
        """--vault allow-lists a loopback vault origin."""
        local = copy.deepcopy(EVENT)
        local["data"]["Id"] = f"https://127.0.0.1:8443/certificates/partner-mtls/{VERSION}"
        path = write(tmp_path / "local.json", [local])

        refused = run("events", path)
        accepted = run("events", "--json", "--vault", "https://127.0.0.1:8443", path)

        assert (refused.exit_code, accepted.exit_code) == (1, 0)

    def test_rotation_vaults_is_the_default_allow_list(self, tmp_path):
        """Without --vault, ROTATION_VAULTS supplies the allowed vaults."""
        local = copy.deepcopy(EVENT)
        local["data"]["Id"] = f"https://127.0.0.1:8443/certificates/partner-mtls/{VERSION}"

        result = run(
            "events",
            write(tmp_path / "l.json", [local]),
            env={"ROTATION_VAULTS": "https://127.0.0.1:8443"},
        )

        assert result.exit_code == 0

    @pytest.mark.parametrize(
        "args",
        [
            ["events"],
            ["events", "--vault", "ftp://x", "missing-file.json"],
            ["events", "--vault", "ftp://x", "pyproject.toml"],
        ],
    )
    def test_usage_errors_exit_2(self, args):
        """Missing files and bad options are usage errors."""
        assert run(*args).exit_code == 2


RECORD = AuditRecord(
    event="rotation.applied",
    decision=Decision.APPLIED,
    trigger=Trigger.CLI,
    certificate="partner-mtls",
    version=VERSION,
)


@pytest.fixture(name="audit_log")
def _audit_log(tmp_path):
    """A JSON-lines audit log as the real structlog pipeline writes it (with a diagnostic line)."""
    stream = io.StringIO()
    configure_logging(json=True, stream=stream)
    structlog.get_logger("rotation.test").info("diagnostic_only")
    StructlogAuditSink().write(RECORD)
    StructlogAuditSink().write(
        AuditRecord(
            event="rotation.ignored",
            decision=Decision.IGNORED,
            trigger=Trigger.CLI,
            certificate="other",
        )
    )
    logger = logging.getLogger("rotation")
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    logger.propagate = True
    structlog.reset_defaults()
    path = tmp_path / "audit.jsonl"
    path.write_text(stream.getvalue())
    return path


class TestAuditCommand:
    def test_valid_log_passes_verification(self, audit_log):
        """Audit lines from the real pipeline verify; diagnostic lines are skipped."""
        result = run("audit", "--file", str(audit_log), "--json")

        assert result.exit_code == 0, result.stderr
        lines = [json.loads(line) for line in result.stdout.splitlines()]
        assert [line["event"] for line in lines] == ["rotation.applied", "rotation.ignored"]
        assert all(line["problems"] == [] for line in lines)

    def test_certificate_filter(self, audit_log):
        """--certificate keeps one certificate's records."""
        result = run("audit", "--file", str(audit_log), "--json", "--certificate", "other")

        assert [json.loads(line)["certificate"] for line in result.stdout.splitlines()] == [
            "other"
        ]

    def test_json_lines_sink_output_verifies(self, tmp_path):
        """Plain AuditRecord.as_dict() lines (the demo's file sink) verify too."""
        path = tmp_path / "demo.jsonl"
        path.write_text(json.dumps(RECORD.as_dict()) + "\n")

        assert run("audit", "--file", str(path)).exit_code == 0

    def test_missing_fields_fail_verification(self, tmp_path):
        """A record lacking audit fields exits 1 naming the field."""
        record = RECORD.as_dict()
        del record["thumbprint_sha256"]
        path = tmp_path / "bad.jsonl"
        path.write_text(json.dumps(record) + "\n")

        result = run("audit", "--file", str(path))

        assert result.exit_code == 1
        assert "missing field 'thumbprint_sha256'" in result.stderr

    def test_records_from_before_the_topic_field_still_verify(self, tmp_path):
        """`topic` was added to the audit fields later: a record written before it verifies."""
        record = RECORD.as_dict()
        del record["topic"]
        path = tmp_path / "old.jsonl"
        path.write_text(json.dumps(record) + "\n")

        assert run("audit", "--file", str(path)).exit_code == 0

    def test_targets_outside_the_vocabulary_fail_verification(self, tmp_path):
        """A target whose kind or result is not a documented value exits 1 naming it."""
        target = {"service": "apim", "name": "x", "from": None, "to": None}
        record = {
            **RECORD.as_dict(),
            "targets": [
                {**target, "kind": "certificate", "result": "updated"},
                {**target, "kind": "gateway", "result": "updated"},
                {**target, "kind": "backend", "result": "rolled_back"},
                {**target, "kind": "policy", "result": "updated"},
            ],
        }
        path = tmp_path / "vocabulary.jsonl"
        path.write_text(json.dumps(record) + "\n")

        result = run("audit", "--file", str(path))

        assert result.exit_code == 1
        assert "targets[1].kind is not one of certificate, backend, policy" in result.stderr
        assert "targets[2].result is not a documented target result" in result.stderr
        assert "targets[0]" not in result.stderr
        assert "targets[3]" not in result.stderr  # a policy target (inbound identities)

    def test_secret_material_fails_verification_and_is_not_printed(self, tmp_path):
        """A record holding a secret exits 1, and the secret is not echoed."""
        record = {**RECORD.as_dict(), "error": "conn AccountKey=c2VjcmV0a2V5dmFsdWU="}
        path = tmp_path / "leak.jsonl"
        path.write_text(json.dumps(record) + "\n")

        result = run("audit", "--file", str(path), "--json")

        assert result.exit_code == 1
        assert "field 'error' holds secret-looking content" in result.stderr
        assert "c2VjcmV0a2V5dmFsdWU" not in result.stdout + result.stderr

    def test_no_source_is_a_usage_error(self):
        """Without --table, --file or ROTATION_AUDIT_TABLE there is nothing to read."""
        assert run("audit", env={"ROTATION_AUDIT_TABLE": ""}).exit_code == 2

    @pytest.mark.azurite
    def test_reads_and_verifies_the_table(self, azurite):
        """Records written by TableAuditSink read back through --table and verify."""
        name = f"audit{uuid.uuid4().hex[:10]}"
        client = open_table(azurite.connection_string, name)
        TableAuditSink(client).write(RECORD)

        result = run(
            "audit",
            "--table",
            name,
            "--connection-string-env",
            "AUDIT_CONN",
            "--json",
            env={"AUDIT_CONN": azurite.connection_string},
        )
        client.delete_table()
        client.close()

        assert result.exit_code == 0, result.stderr
        (line,) = [json.loads(x) for x in result.stdout.splitlines()]
        assert set(AUDIT_FIELDS) <= set(line)
        assert line["problems"] == []
