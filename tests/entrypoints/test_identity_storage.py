"""Identity-based storage end to end against Azurite over HTTPS with ``--oauth basic``: the app's
settings and composition root (lock, audit table, follow's history) and the CLI (dead-letter
replay, re-drive to a topic, the audit table) authenticate with bearer tokens through
``AzureWebJobsStorage__blobServiceUri`` / ``__tableServiceUri``; an unusable connection is a
configuration error naming it (exit 2 in the CLI), never silently off, and never shows a token.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any, cast

import pytest
from click.testing import CliRunner

from devstack.eventgrid import Subscription
from devstack.pki import make_key, mint_certificate
from rotation import bootstrap
from rotation.adapters.credentials import StaticTokenCredential
from rotation.adapters.storage import container_client, table_client
from rotation.adapters.tables import TableAuditSink, iter_audit_records
from rotation.config import Settings
from rotation.domain.errors import AuthorizationError
from rotation.domain.model import AuditRecord, Decision, KeyVaultEvent, Trigger
from rotation.entrypoints.cli import cli
from rotation.entrypoints.cli.wiring import Wiring
from rotation.testing import MemoryAuditSink
from tests.azurite import AzuriteOAuth, storage_token

pytestmark = pytest.mark.azurite

VAULT = "https://kv-rotation-demo.vault.azure.net"
APIM = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.ApiManagement/service/apim-a"
PREFIX = "KV-CERT-ROTATION/2026/3/2/8/"


def _token(**kwargs: Any) -> StaticTokenCredential:
    return StaticTokenCredential(storage_token(now=int(time.time()), **kwargs))


@pytest.fixture(name="anchors", scope="module")
def _anchors(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("anchors") / "anchors.pem"
    path.write_bytes(
        mint_certificate("Identity Storage Root", key=make_key("ec", 256), ca=True).pem
    )
    return path


@pytest.fixture(name="env")
def _env(azurite_oauth: AzuriteOAuth, anchors: Path) -> dict[str, str]:
    """The deployed shape: identity-based host storage only, no connection string anywhere."""
    return {
        "ROTATION_VAULTS": VAULT,
        "ROTATION_APIM_SERVICES": APIM,
        "ROTATION_TRUST_ANCHORS": str(anchors),
        "ROTATION_DEVSTACK_CA_BUNDLE": str(azurite_oauth.ca_pem),
        "AzureWebJobsStorage__blobServiceUri": azurite_oauth.blob_endpoint,
        "AzureWebJobsStorage__tableServiceUri": azurite_oauth.table_endpoint,
    }


def _container(azurite_oauth: AzuriteOAuth, env: dict[str, str], name: str) -> Any:
    settings = Settings.from_env(env)
    assert settings.lock_connection is not None
    return container_client(
        settings.lock_connection,
        name,
        credential=_token(),
        connection_verify=str(azurite_oauth.ca_pem),
    )


def _dead_letter(version: str) -> dict[str, Any]:
    return {
        "id": f"eg-{version}",
        "topic": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv-rotation-demo",
        "subject": "partner-mtls",
        "eventType": "Microsoft.KeyVault.CertificateNewVersionCreated",
        "eventTime": "2026-03-02T08:15:00Z",
        "data": {
            "Id": f"{VAULT}/certificates/partner-mtls/{version}",
            "VaultName": "kv-rotation-demo",
            "ObjectType": "Certificate",
            "ObjectName": "partner-mtls",
            "Version": version,
        },
        "dataVersion": "1",
        "deadLetterReason": "MaxDeliveryAttemptsExceeded",
        "deliveryAttempts": 30,
    }


@pytest.fixture(name="deadletters")
def _deadletters(azurite_oauth: AzuriteOAuth, env: dict[str, str]) -> str:
    """A fresh dead-letter container (written over the token path) holding two events."""
    name = f"deadletter{uuid.uuid4().hex[:8]}"
    client = _container(azurite_oauth, env, name)
    client.create_container()
    client.upload_blob(f"{PREFIX}a.json", json.dumps([_dead_letter("a1"), _dead_letter("a2")]))
    return name


class _Recorder:
    """A service that records the events it is handed and applies everything."""

    def __init__(self) -> None:
        self.versions: list[str] = []

    def batch(self, **_options: object) -> _Recorder:
        return self

    def handle(self, event: KeyVaultEvent, *, trigger: Trigger) -> AuditRecord:
        self.versions.append(event.version)
        return AuditRecord(
            event="rotation.applied", decision=Decision.APPLIED, trigger=trigger,
            event_id=event.event_id, certificate=event.object_name, version=event.version,
        )  # fmt: skip


class TestApp:
    def test_the_lock_holds_a_lease_over_the_identity_connection(self, azurite_oauth, env):
        """No ROTATION_LOCK: the blob endpoint makes it ``blob``; bootstrap builds it from the
        connection and a lease is taken with a bearer token."""
        env["ROTATION_LOCK_CONTAINER"] = f"locks{uuid.uuid4().hex[:8]}"
        settings = Settings.from_env(env)
        lock = bootstrap.build_lock(settings, storage_credential=_token())
        assert settings.lock == "blob"
        assert lock is not None
        client = _container(azurite_oauth, env, settings.lock_container)

        with lock.hold(VAULT, "partner-mtls"):
            states = [b.lease.state for b in client.list_blobs()]

        assert states == ["leased"]
        assert [b.lease.state for b in client.list_blobs()] == ["available"]

    def test_audit_table_and_history_use_the_identity_connection(self, azurite_oauth, env):
        """ROTATION_AUDIT_TABLE with host storage only: the table sink writes over the token
        path and follow's history reads the validated version back."""
        env["ROTATION_AUDIT_TABLE"] = f"audit{uuid.uuid4().hex[:8]}"
        settings = Settings.from_env(env)
        sink = bootstrap.build_audit_sink(settings, storage_credential=_token())
        history = bootstrap.build_history(settings, storage_credential=_token())
        assert history is not None
        record = AuditRecord(
            event="rotation.applied", decision=Decision.APPLIED, trigger=Trigger.EVENTGRID,
            vault=VAULT, certificate="partner-mtls", version="v2", thumbprint_sha256="ab" * 32,
        )  # fmt: skip

        sink.write(record)

        assert settings.audit_connection is not None
        client = table_client(
            settings.audit_connection, settings.audit_table or "", credential=_token(),
            connection_verify=str(azurite_oauth.ca_pem),
        )  # fmt: skip
        assert [r["version"] for r in iter_audit_records(client)] == ["v2"]
        assert history.last_validated(VAULT, "partner-mtls") == "v2"

    @pytest.mark.parametrize(
        "token_kwargs",
        [{"lifetime": -120}, {"audience": "https://vault.azure.net"}],
        ids=["expired", "wrong-audience"],
    )
    def test_a_refused_token_fails_the_lock_loudly(self, env, token_kwargs):
        """Storage refusing the identity: AuthorizationError (not retried, not skipped), no token."""
        env["ROTATION_LOCK_CONTAINER"] = f"locks{uuid.uuid4().hex[:8]}"
        credential = _token(**token_kwargs)
        token = credential.get_token("https://storage.azure.com/.default").token
        lock = bootstrap.build_lock(Settings.from_env(env), storage_credential=credential)
        assert lock is not None

        with pytest.raises(AuthorizationError) as info, lock.hold(VAULT, "partner-mtls"):
            pytest.fail("the lock was taken with a refused token")

        assert token not in str(info.value) + repr(info.value)

    def test_audit_table_refused_token_is_an_error_not_silence(self, env):
        """The table sink with a refused identity raises; the record is not silently dropped."""
        env["ROTATION_AUDIT_TABLE"] = f"audit{uuid.uuid4().hex[:8]}"
        credential = _token(lifetime=-120)
        token = credential.get_token("https://storage.azure.com/.default").token
        settings = Settings.from_env(env)
        sink = TableAuditSink.from_connection(
            cast("Any", settings.audit_connection), settings.audit_table or "",
            credential=credential, connection_verify=str(env["ROTATION_DEVSTACK_CA_BUNDLE"]),
        )  # fmt: skip

        with pytest.raises(AuthorizationError) as info:
            sink.write(AuditRecord(event="x", decision=Decision.IGNORED, trigger=Trigger.CLI))

        assert token not in str(info.value)


def _wiring(
    azurite_oauth: AzuriteOAuth, recorder: _Recorder | None = None, **token: Any
) -> Wiring:
    return Wiring(
        build_service=lambda _s, **_k: cast("Any", recorder or _Recorder()),
        build_audit_sink=lambda _s: MemoryAuditSink(),
        storage_credential=_token(**token),
        storage_verify=str(azurite_oauth.ca_pem),
    )


class TestCli:
    def test_replay_reads_dead_letters_over_the_identity_connection(
        self, azurite_oauth, env, deadletters
    ):
        """``--deadletter-container`` with the default ``--connection AzureWebJobsStorage``."""
        recorder = _Recorder()
        args = ["replay", "--json", "--deadletter-container", deadletters, "--prefix", PREFIX]

        result = CliRunner(env=env).invoke(cli, args, obj=_wiring(azurite_oauth, recorder))

        assert result.exit_code == 0, result.output
        assert recorder.versions == ["a1", "a2"]

    def test_replay_with_a_named_connection(self, azurite_oauth, env, deadletters):
        """``--connection DEADLETTERS`` reads DEADLETTERS__blobServiceUri."""
        named = {
            "DEADLETTERS__blobServiceUri": env.pop("AzureWebJobsStorage__blobServiceUri"),
            "AzureWebJobsStorage__tableServiceUri": None,
        }
        recorder = _Recorder()
        args = ["replay", "--deadletter-container", deadletters, "--connection", "DEADLETTERS"]

        result = CliRunner(env={**env, **named}).invoke(
            cli, args, obj=_wiring(azurite_oauth, recorder)
        )

        assert result.exit_code == 0, result.output
        assert recorder.versions == ["a1", "a2"]

    def test_redrive_to_topic_reads_dead_letters_over_the_identity_connection(
        self, azurite_oauth, env, deadletters, devstack
    ):
        """``replay --to-topic`` publishes the dead letters read with a bearer token."""
        subscription = Subscription("kv-redrive", "http://127.0.0.1:9/")
        with devstack.eventgrid_topic(subscription) as topic:
            cli_env = {
                **env,
                "TOPIC_KEY": topic.key,
                "ROTATION_DEVSTACK_CA_BUNDLE": str(devstack.ca_bundle),
            }
            args = ["replay", "--deadletter-container", deadletters, "--prefix", PREFIX,
                    "--to-topic", topic.endpoint, "--topic-key-env", "TOPIC_KEY"]  # fmt: skip

            result = CliRunner(env=cli_env).invoke(cli, args, obj=_wiring(azurite_oauth))

            assert result.exit_code == 0, result.output
            assert [e["id"] for e in topic.app.accepted] == ["eg-a1", "eg-a2"]

    def test_refused_token_is_exit_2_naming_the_connection(self, azurite_oauth, env, deadletters):
        """Storage refuses the identity: exit 2 before any event is handled, no token shown."""
        recorder = _Recorder()
        wiring = _wiring(azurite_oauth, recorder, lifetime=-120)
        token = wiring.storage_credential.get_token("https://storage.azure.com/.default").token
        args = ["replay", "--deadletter-container", deadletters]

        result = CliRunner(env=env).invoke(cli, args, obj=wiring)

        assert result.exit_code == 2
        assert "AzureWebJobsStorage (identity-based" in result.stderr
        assert "blob storage unusable: storage refused the credential (HTTP 403" in result.stderr
        assert token not in result.output
        assert recorder.versions == []

    def test_no_connection_is_exit_2_naming_what_was_tried(self, azurite_oauth, env):
        """Nothing configured for the named connection: a usage error, not an empty replay."""
        args = ["replay", "--deadletter-container", "dl", "--connection", "NOPE"]

        result = CliRunner(env=env).invoke(cli, args, obj=_wiring(azurite_oauth))

        assert result.exit_code == 2
        assert "--deadletter-container: needs a blob storage connection" in result.stderr
        assert "NOPE or NOPE__accountName/__blobServiceUri" in result.stderr

    def test_connection_string_env_still_works_and_is_never_echoed(self, env):
        """``--connection-string-env VAR``: a malformed value is named by VAR, not shown."""
        secret = "AccountKey=c2VjcmV0LWtleQ==;nonsense"
        args = ["replay", "--deadletter-container", "dl", "--connection-string-env", "DL_CONN"]

        result = CliRunner(env={**env, "DL_CONN": secret}).invoke(cli, args)

        assert result.exit_code == 2
        assert "DL_CONN: the connection string is malformed" in result.stderr
        assert "c2VjcmV0" not in result.output

    def test_audit_reads_the_table_over_a_named_identity_connection(self, azurite_oauth, env):
        """``audit --table T --connection AUDIT`` with AUDIT__tableServiceUri."""
        table = f"audit{uuid.uuid4().hex[:8]}"
        settings = Settings.from_env(env)
        assert settings.audit_connection is not None
        client = table_client(
            settings.audit_connection, table, credential=_token(),
            connection_verify=str(azurite_oauth.ca_pem),
        )  # fmt: skip
        TableAuditSink(client).write(
            AuditRecord(event="rotation.applied", decision=Decision.APPLIED, trigger=Trigger.CLI)
        )
        named = {"AUDIT__tableServiceUri": azurite_oauth.table_endpoint}
        args = ["audit", "--table", table, "--connection", "AUDIT", "--json"]

        result = CliRunner(env={**env, **named}).invoke(cli, args, obj=_wiring(azurite_oauth))

        assert result.exit_code == 0, result.output
        (line,) = [json.loads(x) for x in result.stdout.splitlines()]
        assert (line["event"], line["problems"]) == ("rotation.applied", [])

    def test_audit_with_a_refused_token_is_exit_2(self, azurite_oauth, env):
        """The table's connection is proven first: a refused identity is exit 2, no token."""
        wiring = _wiring(azurite_oauth, audience="https://vault.azure.net")
        token = wiring.storage_credential.get_token("https://storage.azure.com/.default").token
        args = ["audit", "--table", "audittable"]

        result = CliRunner(env=env).invoke(cli, args, obj=wiring)

        assert result.exit_code == 2
        assert "table storage unusable: storage refused the credential (HTTP 403" in result.stderr
        assert token not in result.output

    def test_audit_with_a_blob_only_connection_is_exit_2(self, azurite_oauth, env):
        """The table needs a table endpoint: named, exit 2."""
        env.pop("AzureWebJobsStorage__tableServiceUri")
        args = ["audit", "--table", "audittable"]

        result = CliRunner(env=env).invoke(cli, args, obj=_wiring(azurite_oauth))

        assert result.exit_code == 2
        assert "--table: the connection AzureWebJobsStorage has no table endpoint" in result.stderr
