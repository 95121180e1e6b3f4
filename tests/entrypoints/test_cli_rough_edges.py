"""CLI rough edges found by trying it as a new user: `audit --since` with `Z` and offsets, the
demo's audit records found by `--since`, and an unwritable `demo --audit-log`."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from rotation.adapters.auditlog import JsonLinesAuditSink
from rotation.domain.model import AuditRecord, Decision, Trigger
from rotation.entrypoints.cli import cli
from rotation.testing import FrozenClock

AT = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


@pytest.fixture(name="trail")
def _trail(tmp_path: Path) -> Path:
    """Two records, recorded at 08:00Z and 10:00Z."""
    clock = FrozenClock(AT)
    path = tmp_path / "audit.jsonl"
    sink = JsonLinesAuditSink(path, clock=clock)
    sink.write(AuditRecord(event="rotation.applied", decision=Decision.APPLIED, trigger=Trigger.CLI, version="early"))  # fmt: skip
    clock.advance(hours=2)
    sink.write(AuditRecord(event="rotation.applied", decision=Decision.APPLIED, trigger=Trigger.CLI, version="late"))  # fmt: skip
    return path


def _versions(trail: Path, since: str) -> list[str]:
    result = CliRunner().invoke(cli, ["audit", "--file", str(trail), "--json", "--since", since])
    assert result.exit_code == 0, result.output
    return [json.loads(line)["version"] for line in result.stdout.splitlines()]


class TestAuditSince:
    @pytest.mark.parametrize(
        ("since", "expected"),
        [
            ("2026-03-02", ["early", "late"]),
            ("2026-03-02T09:00:00", ["late"]),  # no offset: UTC
            ("2026-03-02T09:00:00Z", ["late"]),
            ("2026-03-02T10:00:00+01:00", ["late"]),  # 09:00Z
            ("2026-03-02T08:00:00+01:00", ["early", "late"]),  # 07:00Z
            ("2026-03-02T10:30:00-00:30", []),  # 11:00Z
            ("2026-03-02T10:00:00.000001Z", []),
        ],
    )
    def test_since_takes_z_offsets_and_dates(self, trail, since, expected):
        assert _versions(trail, since) == expected

    def test_a_bad_since_is_a_usage_error_saying_what_is_accepted(self, trail):
        result = CliRunner().invoke(cli, ["audit", "--file", str(trail), "--since", "yesterday"])

        assert result.exit_code == 2
        assert "'yesterday' is not an ISO 8601 time" in result.output


class TestDemo:
    def test_demo_records_carry_timestamps_so_since_finds_them(self, tmp_path):
        """Every demo record has recorded_at; --since before the run finds them all, after none."""
        log = tmp_path / "demo.jsonl"
        before = datetime.now(UTC) - timedelta(seconds=1)

        result = CliRunner().invoke(cli, ["demo", "--audit-log", str(log)])

        assert result.exit_code == 0, result.output
        records = [json.loads(line) for line in log.read_text().splitlines()]
        assert records
        assert all(r["recorded_at"] for r in records)
        found = _versions(log, before.isoformat())
        assert len(found) == len(records)
        assert _versions(log, (datetime.now(UTC) + timedelta(hours=1)).isoformat()) == []

    def test_an_unwritable_audit_log_exits_2_with_one_line(self, tmp_path):
        path = tmp_path / "missing-dir" / "audit.jsonl"

        result = CliRunner().invoke(cli, ["demo", "--audit-log", str(path)])

        assert result.exit_code == 2
        assert result.stdout == ""
        assert result.stderr.splitlines() == [
            f"cannot write the audit log {path}: No such file or directory"
        ]


class TestMistypedApimService:
    @pytest.mark.parametrize("command", [["plan", "--certificate", "partner-mtls"], ["status"]])
    def test_is_reported_as_a_setting_not_a_missing_certificate(self, devstack, command):
        """A service id that ARM does not know: exit 2, naming ROTATION_APIM_SERVICES."""
        env = devstack.env()
        first = env["ROTATION_APIM_SERVICES"].split(",")[0]
        env["ROTATION_APIM_SERVICES"] = first + "x"
        env["ROTATION_TRUST_ANCHORS"] = str(_anchors(devstack))

        result = CliRunner(env=env).invoke(cli, command)

        assert result.exit_code == 2, result.output
        assert f"ROTATION_APIM_SERVICES: APIM service {first}x not found" in result.stderr
        assert "CertificateNotFound" not in result.output


def _anchors(devstack) -> Path:
    """Any valid trust-anchor bundle (the settings need one; nothing is validated here)."""
    from devstack.pki import mint_chain  # noqa: PLC0415

    root = mint_chain(depth=2, kind="ec", size=256)[-1]
    path = devstack.state_dir / "anchors.pem"
    path.write_bytes(root.pem)
    return path


def _replay(devstack, *args: str):
    env = {k: None for k in os.environ if k.startswith("ROTATION_")} | devstack.env()
    return CliRunner(env=env).invoke(cli, ["replay", *args])


def _audit_lines(text: str) -> list[dict[str, Any]]:
    return [
        json.loads(line)
        for line in text.splitlines()
        if line.startswith("{") and json.loads(line).get("audit") is True
    ]


class TestReplayOutput:
    def test_human_mode_shows_the_summary_and_no_audit_lines(self, devstack, scene):
        """Default: the summary table on stdout, one line per rejection on stderr, no JSON."""
        events = devstack.state_dir / "events"
        devstack.state.kv.get("partner-mtls", scene.versions["v3"]).enabled = True

        result = _replay(devstack, str(events / "v3-untrusted.json"))

        assert result.exit_code == 0, result.output
        assert "replay summary" in result.stdout
        assert "rejected" in result.stdout
        assert _audit_lines(result.stderr) == []
        assert [line for line in result.stderr.splitlines() if line.startswith("rejected at")]

    def test_verbose_prints_every_audit_record_on_stderr(self, devstack, scene):
        result = _replay(devstack, "--verbose", str(devstack.state_dir / "events" / "v2-new-version.json"))  # fmt: skip

        assert result.exit_code == 0, result.output
        records = _audit_lines(result.stderr)
        assert [r["event"] for r in records if r["event"] != "rotation.target"] == [
            "rotation.applied"
        ]

    def test_audit_log_keeps_the_records_in_a_file(self, devstack, scene, tmp_path):
        log = tmp_path / "replay-audit.jsonl"

        result = _replay(
            devstack, "--audit-log", str(log), str(devstack.state_dir / "events" / "v2-new-version.json")
        )  # fmt: skip

        assert result.exit_code == 0, result.output
        assert _audit_lines(result.stderr) == []
        records = [json.loads(line) for line in log.read_text().splitlines()]
        assert [r["event"] for r in records].count("rotation.applied") == 1
        assert all(r["recorded_at"] for r in records)

    def test_an_unwritable_audit_log_exits_2_with_one_line(self, devstack, tmp_path):
        path = tmp_path / "missing" / "a.jsonl"
        events = tmp_path / "events.json"
        events.write_text("[]")

        result = _replay(devstack, "--audit-log", str(path), str(events))

        assert result.exit_code == 2
        assert result.stderr.splitlines() == [
            f"cannot write the audit log {path}: No such file or directory"
        ]


class TestMissingCredential:
    @pytest.mark.parametrize(
        "command",
        [["plan", "--certificate", "partner-mtls"], ["status"], ["replay", "EVENT"]],
    )
    def test_is_one_line_and_exit_2_with_the_sdk_report_only_when_verbose(
        self, devstack, scene, tmp_path, command
    ):
        """No devstack token, no AZURE_* variables, no az on PATH: DefaultAzureCredential finds
        nothing. One line naming what was tried and what to do; its report with --verbose."""
        event = str(devstack.state_dir / "events" / "v2-new-version.json")
        args = [event if a == "EVENT" else a for a in command]
        env = {
            k: None
            for k in os.environ
            if k.startswith(("ROTATION_", "AZURE_", "IDENTITY_", "MSI_"))
        }
        env |= devstack.env() | {"ROTATION_DEVSTACK_TOKEN": None, "PATH": str(tmp_path)}

        quiet = CliRunner(env=env).invoke(cli, args)
        verbose = CliRunner(env=env).invoke(cli, [*args, "--verbose"])

        assert quiet.exit_code == 2, quiet.output
        assert len(quiet.stderr.splitlines()) == 1
        assert "AuthorizationError" in quiet.stderr
        assert "run `az login`, or set AZURE_CLIENT_ID" in quiet.stderr
        assert "Attempted credentials" not in quiet.output
        assert verbose.exit_code == 2
        assert "Attempted credentials" in verbose.stderr
