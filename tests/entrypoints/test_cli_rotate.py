"""`certrotate replay`, `certrotate plan` and `certrotate demo` through click's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from devstack.pki import make_key, mint_certificate
from rotation import bootstrap
from rotation.domain.errors import TransientDependencyError
from rotation.domain.model import AuditRecord, Decision, KeyVaultEvent, Trigger
from rotation.entrypoints.cli import cli

VAULT = "https://kv-replay.vault.azure.net"
REQUIRED_KEYS = {"location", "event_id", "certificate", "version", "decision", "findings", "targets"}


def eg_event(version: str, event_id: str | None = None, *, name: str = "partner-mtls") -> dict:
    """A CertificateNewVersionCreated event in the Event Grid schema (wire reference A.4)."""
    return {
        "id": event_id or f"id-{version}",
        "topic": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv-replay",
        "subject": name,
        "eventType": "Microsoft.KeyVault.CertificateNewVersionCreated",
        "eventTime": "2026-03-02T08:15:42.1234567Z",
        "data": {
            "Id": f"{VAULT}/certificates/{name}/{version}",
            "VaultName": "kv-replay",
            "ObjectType": "Certificate",
            "ObjectName": name,
            "Version": version,
            "NBF": 1772438400,
            "EXP": 1804060800,
        },
        "dataVersion": "1",
        "metadataVersion": "1",
    }


def cloud_event(version: str) -> dict:
    """The same event in the CloudEvents 1.0 schema (wire reference A.5)."""
    event = eg_event(version)
    return {
        "id": event["id"],
        "source": event["topic"],
        "specversion": "1.0",
        "type": event["eventType"],
        "subject": event["subject"],
        "time": event["eventTime"],
        "data": event["data"],
    }


def dead_lettered(version: str) -> dict:
    """An Event Grid dead-letter entry: the original event plus the dead-letter fields."""
    return eg_event(version) | {
        "deadLetterReason": "MaxDeliveryAttemptsExceeded",
        "deliveryAttempts": 30,
        "lastDeliveryOutcome": "TimedOut",
        "publishTime": "2026-03-02T08:15:42.5000000Z",
    }


class ScriptedService:
    """An EventHandler whose decision per version is scripted; exceptions are raised."""

    def __init__(self, script: dict[str, Decision | Exception] | None = None) -> None:
        self.script = script or {}
        self.handled: list[KeyVaultEvent] = []

    def handle(self, event: KeyVaultEvent, *, trigger: Trigger) -> AuditRecord:
        self.handled.append(event)
        outcome = self.script.get(event.version, Decision.APPLIED)
        if isinstance(outcome, Exception):
            raise outcome
        return AuditRecord(
            event=f"rotation.{outcome}",
            decision=outcome,
            trigger=trigger,
            event_id=event.event_id,
            certificate=event.object_name,
            version=event.version,
            findings=("chain.untrusted",) if outcome is Decision.REJECTED else (),
        )


@pytest.fixture(name="anchors", scope="session")
def _anchors(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("anchors") / "anchors.pem"
    path.write_bytes(mint_certificate("Replay Test Root", key=make_key("ec", 256), ca=True).pem)
    return path


@pytest.fixture(name="env")
def _env(anchors: Path) -> dict[str, str]:
    return {
        "ROTATION_VAULTS": VAULT,
        "ROTATION_APIM_SERVICES": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.ApiManagement/service/apim-a",
        "ROTATION_TRUST_ANCHORS": str(anchors),
    }


@pytest.fixture(name="scripted")
def _scripted(monkeypatch: pytest.MonkeyPatch) -> ScriptedService:
    """Replace the composition root's service factory with a scripted service."""
    service = ScriptedService()
    service.settings = None  # type: ignore[attr-defined]

    def build(settings, **_kwargs):
        service.settings = settings  # type: ignore[attr-defined]
        return service

    monkeypatch.setattr(bootstrap, "build_service", build, raising=False)
    return service


def write_array(path: Path, events: list) -> Path:
    path.write_text(json.dumps(events), encoding="utf-8")
    return path


def write_lines(path: Path, lines: list) -> Path:
    path.write_text(
        "\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n", encoding="utf-8"
    )
    return path


def json_lines(output: str) -> list[dict]:
    return [json.loads(line) for line in output.splitlines() if line.strip()]


class TestReplayShapes:
    def test_json_array_file_prints_one_object_per_event(self, tmp_path, env, scripted):
        """--json prints one JSON object per event with the documented keys."""
        path = write_array(tmp_path / "batch.json", [eg_event("a1"), eg_event("b2")])

        result = CliRunner(env=env).invoke(cli, ["replay", "--json", str(path)])

        lines = json_lines(result.stdout)
        assert result.exit_code == 0, result.output
        assert [x["version"] for x in lines] == ["a1", "b2"]
        assert all(REQUIRED_KEYS <= x.keys() for x in lines)
        assert lines[0]["location"] == "batch.json[0]"
        assert lines[0]["decision"] == "applied"

    def test_json_lines_of_both_schemas(self, tmp_path, env, scripted):
        """JSON Lines mixing the Event Grid and CloudEvents schemas are all replayed."""
        path = write_lines(tmp_path / "events.jsonl", [eg_event("a1"), cloud_event("b2")])

        result = CliRunner(env=env).invoke(cli, ["replay", "--json", str(path)])

        assert result.exit_code == 0, result.output
        assert [e.schema for e in scripted.handled] == ["eventgrid", "cloudevents"]

    def test_dead_letter_file_and_single_object(self, tmp_path, env, scripted):
        """A saved dead-letter blob and a single-object file replay like any other file."""
        blob = write_array(tmp_path / "5d1c.json", [dead_lettered("a1"), dead_lettered("b2")])
        single = tmp_path / "one.json"
        single.write_text(json.dumps(eg_event("c3")), encoding="utf-8")

        result = CliRunner(env=env).invoke(cli, ["replay", "--json", str(blob), str(single)])

        assert result.exit_code == 0, result.output
        assert [e.version for e in scripted.handled] == ["a1", "b2", "c3"]
        assert scripted.handled[0].deadletter is not None
        assert scripted.handled[0].deadletter.reason == "MaxDeliveryAttemptsExceeded"


class TestReplayOutcomes:
    def test_malformed_event_in_the_middle_is_reported_and_replay_goes_on(
        self, tmp_path, env, scripted
    ):
        """A malformed event names file, index and field on stderr; later events still run; exit 1."""
        bad = eg_event("b2")
        bad["data"]["Id"] = "https://evil.example.com/certificates/partner-mtls/b2"
        path = write_lines(tmp_path / "mixed.jsonl", [eg_event("a1"), bad, "{not json", eg_event("c3")])

        result = CliRunner(env=env).invoke(cli, ["replay", "--json", str(path)])

        lines = json_lines(result.stdout)
        assert result.exit_code == 1
        assert [e.version for e in scripted.handled] == ["a1", "c3"]
        assert [x["decision"] for x in lines] == ["applied", "malformed", "malformed", "applied"]
        assert "mixed.jsonl[1]" in result.stderr
        assert "data.Id" in result.stderr
        assert "mixed.jsonl[2]" in result.stderr

    def test_rejection_is_a_correct_outcome(self, tmp_path, env, scripted):
        """Only rejections and already-current decisions exit 0."""
        scripted.script = {"a1": Decision.REJECTED, "b2": Decision.ALREADY_CURRENT}
        path = write_array(tmp_path / "e.json", [eg_event("a1"), eg_event("b2")])

        result = CliRunner(env=env).invoke(cli, ["replay", "--json", str(path)])

        assert result.exit_code == 0, result.output
        assert json_lines(result.stdout)[0]["findings"] == ["chain.untrusted"]

    def test_transient_error_marks_event_failed_and_continues(self, tmp_path, env, scripted):
        """A transient error fails that event only; the replay continues and exits 1."""
        scripted.script = {
            "a1": TransientDependencyError("ARM said 503", service="apim", operation="list")
        }
        path = write_array(tmp_path / "e.json", [eg_event("a1"), eg_event("b2")])

        result = CliRunner(env=env).invoke(cli, ["replay", "--json", str(path)])

        lines = json_lines(result.stdout)
        assert result.exit_code == 1
        assert [x["decision"] for x in lines] == ["failed", "applied"]
        assert "503" in lines[0]["error"]
        assert "e.json[0]" in result.stderr

    def test_summary_table_counts_decisions(self, tmp_path, env, scripted):
        """Without --json a summary table counts each decision."""
        scripted.script = {"b2": Decision.REJECTED}
        path = write_array(tmp_path / "e.json", [eg_event("a1"), eg_event("b2"), eg_event("c3")])

        result = CliRunner(env=env).invoke(cli, ["replay", str(path)])

        assert result.exit_code == 0, result.output
        rows = {line.split("│")[1].strip(): line.split("│")[2].strip()
                for line in result.stdout.splitlines() if line.count("│") == 3}  # fmt: skip
        assert rows["applied"] == "2"
        assert rows["rejected"] == "1"
        assert rows["total"] == "3"
        assert "rejected at e.json[1]: chain.untrusted" in result.output

    def test_dry_run_forces_dry_run_settings(self, tmp_path, env, scripted):
        """--dry-run builds the service with dry_run=True whatever the environment says."""
        path = write_array(tmp_path / "e.json", [eg_event("a1")])

        result = CliRunner(env=env | {"ROTATION_DRY_RUN": "false"}).invoke(
            cli, ["replay", "--dry-run", "--json", str(path)]
        )

        assert result.exit_code == 0, result.output
        assert scripted.settings.dry_run is True


class TestReplayUsage:
    @pytest.mark.parametrize(
        "args",
        [
            ["replay"],
            ["replay", "--deadletter-container", "deadletter"],
            ["replay", "does-not-exist.json"],
        ],
    )
    def test_usage_errors_exit_2(self, env, scripted, args):
        """Missing inputs, a container without credentials, or a missing file exit 2."""
        result = CliRunner(env=env).invoke(cli, args)

        assert result.exit_code == 2
        assert scripted.handled == []

    def test_configuration_error_lists_problems_and_exits_2(self, tmp_path):
        """Missing settings are listed at once, without a traceback, exit 2."""
        path = write_array(tmp_path / "e.json", [eg_event("a1")])

        result = CliRunner(env={"ROTATION_VAULTS": None, "ROTATION_APIM_SERVICES": None,
                                "ROTATION_TRUST_ANCHORS": None}).invoke(cli, ["replay", str(path)])  # fmt: skip

        assert result.exit_code == 2
        assert "ROTATION_VAULTS" in result.stderr
        assert "ROTATION_TRUST_ANCHORS" in result.stderr
        assert "Traceback" not in result.output

    def test_help_says_malformed_input_counts_as_failure(self):
        """--help documents the exit codes, including malformed input → 1."""
        result = CliRunner().invoke(cli, ["replay", "--help"])

        assert result.exit_code == 0
        assert "malformed" in result.output
        assert "Exit status" in result.output
