"""``certrotate replay --to-topic``: re-drive through Event Grid, end to end against the
devstack topic stand-in (exit codes, stderr lines, the JSON summary, dry run, no key on a
command line)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from azure.eventgrid import SystemEventNames
from azure.storage.blob import BlobServiceClient
from click.testing import CliRunner

from devstack.eventgrid import Subscription
from devstack.stack import Devstack
from rotation.entrypoints.cli import cli
from tests.payloads import DATA, TOPIC

NEW_VERSION = SystemEventNames.KeyVaultCertificateNewVersionCreatedEventName.value
VAULT = "https://kv-rotation-demo.vault.azure.net"
KEY_VAR = "CERTROTATE_TEST_TOPIC_KEY"


def event(i: int, **overrides: Any) -> dict[str, Any]:
    return {
        "id": f"eg-{i}", "topic": TOPIC, "subject": "partner-mtls", "eventType": NEW_VERSION,
        "eventTime": "2026-03-02T08:15:42Z", "data": DATA, "dataVersion": "1",
        "deadLetterReason": "MaxDeliveryAttemptsExceeded", "deliveryAttempts": 30, **overrides,
    }  # fmt: skip


@pytest.fixture(name="topic")
def _topic(devstack: Devstack, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("ROTATION_VAULTS", VAULT)
    monkeypatch.setenv("ROTATION_DEVSTACK_CA_BUNDLE", str(devstack.ca_bundle))
    monkeypatch.delenv("ROTATION_DEVSTACK_TOKEN", raising=False)
    with devstack.eventgrid_topic(Subscription("kv-redrive", "http://127.0.0.1:9/")) as topic:
        monkeypatch.setenv(KEY_VAR, topic.key)
        yield topic


def run(*args: str) -> Any:
    return CliRunner().invoke(cli, ["replay", *args], catch_exceptions=False)


def write(path: Path, *events: object) -> Path:
    path.write_text("\n".join(e if isinstance(e, str) else json.dumps(e) for e in events) + "\n")
    return path


def test_publishes_reports_malformed_and_exits_1(topic, tmp_path: Path):
    forged = event(2, data={**DATA, "VaultName": "kv-other"})
    path = write(tmp_path / "dl.jsonl", event(1), forged, event(3))

    result = run(str(path), "--to-topic", topic.endpoint, "--topic-key-env", KEY_VAR)

    assert result.exit_code == 1, result.output
    assert [e["id"] for e in topic.app.accepted] == ["eg-1", "eg-3"]
    assert (
        "malformed (not sent): dl.jsonl[1].topic: names a different vault than data.VaultName"
        in result.stderr
    )
    assert "published" in result.stdout
    assert topic.key not in result.output


def test_all_published_exits_0_with_a_json_summary(topic, tmp_path: Path):
    path = write(tmp_path / "dl.json", [event(1), event(2)])

    result = run(str(path), "--to-topic", topic.endpoint, "--topic-key-env", KEY_VAR, "--json")

    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert (summary["published"], summary["batches"], summary["exit_code"]) == (2, 1, 0)
    assert summary["refused"] == summary["malformed"] == []


def test_dry_run_sends_nothing(topic, tmp_path: Path):
    path = write(tmp_path / "dl.json", [event(1), event(2)])

    result = run(str(path), "--to-topic", topic.endpoint, "--topic-key-env", KEY_VAR, "--dry-run")

    assert result.exit_code == 0, result.output
    assert "would publish" in result.stdout
    assert topic.log.entries() == []


def test_unset_key_variable_is_a_usage_error_naming_it(topic, tmp_path: Path, monkeypatch):
    monkeypatch.delenv(KEY_VAR)
    path = write(tmp_path / "dl.json", [event(1)])

    result = run(str(path), "--to-topic", topic.endpoint, "--topic-key-env", KEY_VAR)

    assert result.exit_code == 2
    assert KEY_VAR in result.stderr
    assert topic.log.entries() == []


def test_refused_credentials_exit_2(topic, tmp_path: Path, monkeypatch):
    monkeypatch.setenv(KEY_VAR, "not-the-key")
    path = write(tmp_path / "dl.json", [event(1)])

    result = run(str(path), "--to-topic", topic.endpoint, "--topic-key-env", KEY_VAR)

    assert result.exit_code == 2
    assert "authentication failed" in result.stderr
    assert "not-the-key" not in result.output


def test_devstack_token_authenticates_without_a_key(
    topic, devstack: Devstack, tmp_path, monkeypatch
):
    """Without --topic-key-env the token credential is used (the devstack's static token)."""
    monkeypatch.setenv("ROTATION_DEVSTACK_TOKEN", devstack.token)
    path = write(tmp_path / "dl.json", [event(1)])

    result = run(str(path), "--to-topic", topic.endpoint)

    assert result.exit_code == 0, result.output
    assert [e["id"] for e in topic.app.accepted] == ["eg-1"]


def test_key_option_without_topic_is_a_usage_error(tmp_path: Path):
    result = run(str(write(tmp_path / "dl.json", [event(1)])), "--topic-key-env", KEY_VAR)

    assert result.exit_code == 2


@pytest.mark.azurite
def test_deadletter_container_source(topic, azurite, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("CERTROTATE_TEST_STORAGE", azurite.connection_string)
    with BlobServiceClient.from_connection_string(azurite.connection_string) as service:
        client = service.create_container("redrivecli")
        client.upload_blob("KV-CERT-ROTATION/2026/3/2/8/a.json", json.dumps([event(1), event(2)]))
        client.upload_blob("OTHER/2026/3/2/8/b.json", json.dumps([event(3)]))

    result = run(
        "--deadletter-container", "redrivecli", "--connection-string-env", "CERTROTATE_TEST_STORAGE",
        "--prefix", "KV-CERT-ROTATION/", "--to-topic", topic.endpoint, "--topic-key-env", KEY_VAR,
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    assert [e["id"] for e in topic.app.accepted] == ["eg-1", "eg-2"]
