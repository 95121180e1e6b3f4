"""Storage connections by name (Functions convention): resolution, errors, and the token path
against Azurite over HTTPS with ``--oauth basic`` (lock, audit table, dead-letter blobs)."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime

import pytest
from azure.core.exceptions import HttpResponseError
from azure.identity import (
    CredentialUnavailableError,
    DefaultAzureCredential,
    ManagedIdentityCredential,
)
from azure.storage.blob import ContainerClient

from rotation.adapters.blobs import DeadLetterBlobSource
from rotation.adapters.credentials import StaticTokenCredential
from rotation.adapters.locks import BlobLeaseLock
from rotation.adapters.storage import (
    StorageConnection,
    check_blob,
    check_table,
    container_client,
    require_connection,
    resolve_connection,
    resolve_first,
    table_client,
    token_credential,
)
from rotation.adapters.tables import TableAuditSink, iter_audit_records
from rotation.domain.errors import ConfigError
from rotation.domain.model import AuditRecord, Decision, KeyVaultEvent, Trigger
from rotation.testing import FrozenClock
from tests.azurite import ACCOUNT_KEY, storage_token

VAULT = "https://kv-rotation-demo.vault.azure.net"
SECRET_KEY = "c2VjcmV0LWFjY291bnQta2V5LW5vdC10by1iZS1zaG93bg=="
AT = datetime(2026, 3, 2, 8, 15, tzinfo=UTC)


def _messages(exc: pytest.ExceptionInfo[ConfigError]) -> str:
    return str(exc.value) + repr(exc.value.problems)


class TestResolve:
    def test_unset_name_is_not_configured(self):
        """Neither form set: None, so the caller decides (fallback, or feature off)."""
        assert resolve_connection("AzureWebJobsStorage", {"OTHER": "x"}) is None

    def test_connection_string_form_hides_the_string_from_repr(self):
        """``<NAME>`` holds a connection string; repr and describe never show it."""
        value = f"DefaultEndpointsProtocol=https;AccountName=stcert;AccountKey={SECRET_KEY}"

        connection = resolve_connection("AzureWebJobsStorage", {"AzureWebJobsStorage": value})

        assert connection is not None
        assert connection.connection_string == value
        assert not connection.identity_based
        assert SECRET_KEY not in repr(connection) + connection.describe()

    def test_account_name_derives_public_cloud_service_uris(self):
        """``__accountName`` with ``__credential``/``__clientId``: the host's own convention."""
        connection = resolve_connection(
            "AzureWebJobsStorage",
            {
                "AzureWebJobsStorage__accountName": "stcertrotate",
                "AzureWebJobsStorage__credential": "managedidentity",
                "AzureWebJobsStorage__clientId": "0f0e0d0c-0000-0000-0000-000000000001",
            },
        )

        assert connection == StorageConnection(
            name="AzureWebJobsStorage",
            blob_service_uri="https://stcertrotate.blob.core.windows.net",
            table_service_uri="https://stcertrotate.table.core.windows.net",
            credential="managedidentity",
            client_id="0f0e0d0c-0000-0000-0000-000000000001",
        )

    def test_account_name_follows_the_cloud_endpoint_suffix(self):
        """A sovereign cloud's suffix completes the account name."""
        connection = resolve_connection(
            "S", {"S__accountName": "stgov"}, endpoint_suffix="core.usgovcloudapi.net"
        )

        assert connection is not None
        assert connection.blob_service_uri == "https://stgov.blob.core.usgovcloudapi.net"
        assert connection.table_service_uri == "https://stgov.table.core.usgovcloudapi.net"

    def test_explicit_service_uris_win_over_the_account_name(self):
        """``__blobServiceUri``/``__tableServiceUri`` are used as given (trailing slash dropped)."""
        connection = resolve_connection(
            "S",
            {
                "S__accountName": "stcertrotate",
                "S__blobServiceUri": "https://blob.example.net/acct/",
            },
        )

        assert connection is not None
        assert connection.blob_service_uri == "https://blob.example.net/acct"
        assert connection.table_service_uri == "https://stcertrotate.table.core.windows.net"

    def test_table_uri_alone_leaves_blob_unset(self):
        """Only the table URI: a table-only connection."""
        connection = resolve_connection("S", {"S__tableServiceUri": "https://t.example.net"})

        assert connection is not None
        assert (connection.blob_service_uri, connection.table_service_uri) == (
            None,
            "https://t.example.net",
        )

    def test_credential_is_case_insensitive(self):
        """``ManagedIdentity`` is the same as ``managedidentity`` (as for the host)."""
        connection = resolve_connection(
            "S", {"S__accountName": "stx1", "S__credential": "ManagedIdentity"}
        )

        assert connection is not None
        assert connection.credential == "managedidentity"

    def test_resolve_first_falls_back_in_order(self):
        """A feature's own connection first, then AzureWebJobsStorage."""
        env = {"AzureWebJobsStorage__accountName": "sthost"}

        connection = resolve_first(("ROTATION_AUDIT_CONNECTION", "AzureWebJobsStorage"), env)

        assert connection is not None
        assert connection.name == "AzureWebJobsStorage"


class TestUnusable:
    def test_both_forms_at_once_is_an_error_without_the_string(self):
        """Connection string and identity settings together: ambiguous, named, value not shown."""
        env = {
            "AzureWebJobsStorage": f"AccountName=stx;AccountKey={SECRET_KEY}",
            "AzureWebJobsStorage__accountName": "stx",
        }

        with pytest.raises(ConfigError) as exc:
            resolve_connection("AzureWebJobsStorage", env)

        assert "AzureWebJobsStorage__accountName" in str(exc.value)
        assert SECRET_KEY not in _messages(exc)

    @pytest.mark.parametrize(
        "value",
        [f"AccountKey={SECRET_KEY}", f"garbage {SECRET_KEY}", f"BlobEndpoint;{SECRET_KEY}"],
    )
    def test_malformed_connection_string_is_named_not_echoed(self, value):
        """A connection string without an account or endpoint, or not key=value pairs."""
        with pytest.raises(ConfigError) as exc:
            resolve_connection("ROTATION_LOCK_CONNECTION", {"ROTATION_LOCK_CONNECTION": value})

        assert "ROTATION_LOCK_CONNECTION: the connection string is malformed" in str(exc.value)
        assert SECRET_KEY not in _messages(exc)

    def test_http_service_uri_is_refused(self):
        """Entra tokens only travel over TLS (the SDK would refuse at the first call)."""
        with pytest.raises(ConfigError) as exc:
            resolve_connection("S", {"S__blobServiceUri": "http://127.0.0.1:10000/acct"})

        assert "S__blobServiceUri" in str(exc.value)
        assert "https" in str(exc.value)

    def test_sas_in_a_service_uri_is_refused_without_echoing_it(self):
        """A SAS-carrying URI is not an identity-based connection; the signature never shows."""
        uri = "https://stx.blob.core.windows.net/?sv=2024-01-01&sig=AbCdSeCrEtSiGnAtUrE%3D"

        with pytest.raises(ConfigError) as exc:
            resolve_connection("S", {"S__blobServiceUri": uri})

        assert "S__blobServiceUri" in str(exc.value)
        assert "AbCdSeCrEtSiGnAtUrE" not in _messages(exc)

    def test_unknown_credential_kind_is_named(self):
        """Only managedidentity (or unset) is understood."""
        with pytest.raises(ConfigError, match=r"S__credential: 'clientsecret' is not supported"):
            resolve_connection("S", {"S__accountName": "stx1", "S__credential": "clientsecret"})

    def test_client_id_without_managed_identity_is_not_silently_ignored(self):
        """The host only honours __clientId with __credential=managedidentity: say so."""
        with pytest.raises(ConfigError, match=r"S__clientId: only used with"):
            resolve_connection("S", {"S__accountName": "stx1", "S__clientId": "abc"})

    def test_credential_without_any_endpoint_is_an_error(self):
        """__credential alone names no account."""
        with pytest.raises(ConfigError, match=r"set S__accountName, or S__blobServiceUri"):
            resolve_connection("S", {"S__credential": "managedidentity"})

    def test_bad_account_name_is_named(self):
        """Account names are 3-24 letters/digits."""
        with pytest.raises(ConfigError, match=r"S__accountName: not a storage account name"):
            resolve_connection("S", {"S__accountName": "st-x.evil.example"})

    def test_every_problem_is_listed_at_once(self):
        """Like the settings: one error, every problem."""
        with pytest.raises(ConfigError) as exc:
            resolve_connection(
                "S",
                {
                    "S__blobServiceUri": "http://x",
                    "S__credential": "bogus",
                    "S__clientId": "abc",
                },
            )

        assert len(exc.value.problems) == 3

    def test_required_but_unset_names_the_feature_and_what_was_tried(self):
        """A configured feature without any connection is a configuration error, never off."""
        with pytest.raises(ConfigError) as exc:
            require_connection(
                ("ROTATION_LOCK_CONNECTION", "AzureWebJobsStorage"),
                {},
                feature="ROTATION_LOCK=blob",
                service="blob",
            )

        message = str(exc.value)
        assert "ROTATION_LOCK=blob: needs a blob storage connection" in message
        assert "ROTATION_LOCK_CONNECTION or ROTATION_LOCK_CONNECTION__accountName" in message
        assert "AzureWebJobsStorage__accountName/__blobServiceUri" in message

    def test_required_service_missing_from_an_identity_connection(self):
        """A table-only connection cannot serve the lock's blobs."""
        with pytest.raises(ConfigError, match=r"the connection S has no blob endpoint"):
            require_connection(
                ("S",),
                {"S__tableServiceUri": "https://t.example.net"},
                feature="ROTATION_LOCK=blob",
                service="blob",
            )

    def test_connection_string_without_the_service_endpoint(self):
        """A blob-only connection string asked for a table client: named, value not shown."""
        value = f"BlobEndpoint=https://stx.blob.core.windows.net/;SharedAccessSignature=sig={SECRET_KEY}"
        connection = resolve_connection("S", {"S": value})
        assert connection is not None

        with pytest.raises(ConfigError) as exc:
            table_client(connection, "audit")

        assert "S: the connection string cannot be used for table storage" in str(exc.value)
        assert SECRET_KEY not in _messages(exc)


class TestCredentialChoice:
    def test_managed_identity_with_client_id(self):
        """__credential=managedidentity selects ManagedIdentityCredential (user-assigned id)."""
        connection = StorageConnection(
            name="S", blob_service_uri="https://x", credential="managedidentity", client_id="c"
        )

        assert isinstance(token_credential(connection), ManagedIdentityCredential)

    def test_default_chain_otherwise(self):
        """No __credential: DefaultAzureCredential (developer login locally)."""
        connection = StorageConnection(name="S", blob_service_uri="https://x")

        assert isinstance(token_credential(connection), DefaultAzureCredential)


class _NoToken:
    """A TokenCredential for which no identity is available (like MSI off-Azure)."""

    def get_token(self, *scopes, **kwargs):
        raise CredentialUnavailableError("no managed identity endpoint here")


def _identity(azurite_oauth) -> StorageConnection:
    connection = resolve_connection(
        "AzureWebJobsStorage",
        {
            "AzureWebJobsStorage__blobServiceUri": azurite_oauth.blob_endpoint,
            "AzureWebJobsStorage__tableServiceUri": azurite_oauth.table_endpoint,
        },
    )
    assert connection is not None
    return connection


def _token(**kwargs) -> StaticTokenCredential:
    return StaticTokenCredential(storage_token(now=int(time.time()), **kwargs))


@pytest.mark.azurite
class TestTokenPathAgainstAzurite:
    def test_lock_holds_a_lease_through_an_identity_connection(self, azurite_oauth):
        """BlobLeaseLock over a ContainerClient built from __blobServiceUri and a bearer token."""
        name = f"locks{uuid.uuid4().hex[:8]}"
        client = container_client(
            _identity(azurite_oauth),
            name,
            credential=_token(),
            connection_verify=str(azurite_oauth.ca_pem),
        )
        lock = BlobLeaseLock(client, wait_seconds=5)

        check_blob(client, _identity(azurite_oauth))
        with lock.hold(VAULT, "partner-mtls"):
            states = {b.name: b.lease.state for b in client.list_blobs(include=["metadata"])}

        assert list(states.values()) == ["leased"]

    def test_audit_table_round_trips_through_an_identity_connection(self, azurite_oauth):
        """TableAuditSink writes and iter_audit_records reads back over the token path."""
        connection = _identity(azurite_oauth)
        table = f"audit{uuid.uuid4().hex[:8]}"
        client = table_client(
            connection, table, credential=_token(), connection_verify=str(azurite_oauth.ca_pem)
        )
        check_table(client, connection)
        sink = TableAuditSink(client, clock=FrozenClock(AT))
        record = AuditRecord(
            event="rotation.applied",
            decision=Decision.APPLIED,
            trigger=Trigger.EVENTGRID,
            vault=VAULT,
            certificate="partner-mtls",
            version="v2",
        )

        sink.write(record)

        stored = list(iter_audit_records(client, certificate="partner-mtls"))
        assert [(r["event"], r["version"]) for r in stored] == [("rotation.applied", "v2")]

    def test_dead_letter_blobs_are_read_through_an_identity_connection(self, azurite_oauth):
        """DeadLetterBlobSource over an identity connection yields the dead-lettered event."""
        name = f"deadletter{uuid.uuid4().hex[:8]}"
        client = container_client(
            _identity(azurite_oauth),
            name,
            credential=_token(),
            connection_verify=str(azurite_oauth.ca_pem),
        )
        client.create_container()
        event = {
            "id": "e1",
            "topic": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv-rotation-demo",
            "subject": "partner-mtls",
            "eventType": "Microsoft.KeyVault.CertificateNewVersionCreated",
            "eventTime": "2026-03-02T08:15:00Z",
            "data": {
                "Id": f"{VAULT}/certificates/partner-mtls/abc123",
                "VaultName": "kv-rotation-demo",
                "ObjectType": "Certificate",
                "ObjectName": "partner-mtls",
                "Version": "abc123",
            },
            "dataVersion": "1",
            "deadLetterReason": "MaxDeliveryAttemptsExceeded",
            "deliveryAttempts": 30,
        }
        client.upload_blob("SUB/2026/3/2/8/x.json", json.dumps([event]).encode())

        items = list(DeadLetterBlobSource(client).iter_events("SUB/", allowed_vault_urls=(VAULT,)))

        assert [(type(e), getattr(e, "version", None)) for _, e in items] == [
            (KeyVaultEvent, "abc123")
        ]

    @pytest.mark.parametrize(
        "token_kwargs",
        [{"lifetime": -120}, {"audience": "https://vault.azure.net"}],
        ids=["expired", "wrong-audience"],
    )
    def test_refused_token_is_a_named_configuration_error(self, azurite_oauth, token_kwargs):
        """A token storage refuses: ConfigError naming the connection, never the token."""
        connection = _identity(azurite_oauth)
        credential = _token(**token_kwargs)
        token = credential.get_token("https://storage.azure.com/.default").token
        blob = container_client(
            connection,
            "anything",
            credential=credential,
            connection_verify=str(azurite_oauth.ca_pem),
        )
        table = table_client(
            connection,
            "anything",
            credential=credential,
            connection_verify=str(azurite_oauth.ca_pem),
        )

        with pytest.raises(ConfigError) as blob_error:
            check_blob(blob, connection)
        with pytest.raises(ConfigError) as table_error:
            check_table(table, connection)

        for exc, service in ((blob_error, "blob"), (table_error, "table")):
            assert "AzureWebJobsStorage (identity-based" in str(exc.value)
            assert f"{service} storage unusable: storage refused the credential (HTTP 403" in str(
                exc.value
            )
            assert token not in _messages(exc)
            assert token[:20] not in _messages(exc)

    def test_no_token_available_is_a_named_configuration_error(self, azurite_oauth):
        """No identity to get a token from: named, before any feature silently degrades."""
        connection = _identity(azurite_oauth)
        blob = container_client(
            connection,
            "anything",
            credential=_NoToken(),
            connection_verify=str(azurite_oauth.ca_pem),
            retry_total=0,  # Storage retries any AzureError, a missing credential included
        )

        with pytest.raises(
            ConfigError, match=r"blob storage unusable: no credential could get a token"
        ):
            check_blob(blob, connection)

    def test_the_token_path_really_authenticates(self, azurite_oauth):
        """Control: without a token Azurite over --oauth refuses, so the tests above prove the path."""
        anonymous = ContainerClient(
            azurite_oauth.blob_endpoint, "anything", connection_verify=str(azurite_oauth.ca_pem)
        )

        with pytest.raises(HttpResponseError) as exc:
            anonymous.get_container_properties()

        assert exc.value.status_code == 403


@pytest.mark.azurite
class TestConnectionStringPathAgainstAzurite:
    def test_connection_string_builds_working_clients(self, azurite):
        """The same builders accept the classic form (Azurite over HTTP with its dev key)."""
        connection = resolve_connection("S", {"S": azurite.connection_string})
        assert connection is not None
        name = f"c{uuid.uuid4().hex[:8]}"
        blob = container_client(connection, name)
        table = table_client(connection, f"t{uuid.uuid4().hex[:8]}")

        check_blob(blob, connection)
        check_table(table, connection)
        blob.create_container()
        blob.upload_blob("b", b"x")
        table.create_table()
        table.create_entity({"PartitionKey": "p", "RowKey": "r"})

        assert blob.download_blob("b").readall() == b"x"
        assert [e["RowKey"] for e in table.list_entities()] == ["r"]
        assert ACCOUNT_KEY not in repr(connection)

    def test_account_key_refused_is_named_without_the_key(self, azurite):
        """A wrong key: 403 becomes a ConfigError that shows neither key."""
        wrong = azurite.connection_string.replace(ACCOUNT_KEY, SECRET_KEY)
        connection = resolve_connection("S", {"S": wrong})
        assert connection is not None

        with pytest.raises(ConfigError) as exc:
            check_blob(container_client(connection, "x"), connection)

        assert "S (connection string): blob storage unusable" in str(exc.value)
        assert SECRET_KEY not in _messages(exc)
        assert ACCOUNT_KEY not in _messages(exc)


class TestClientEdges:
    @pytest.mark.parametrize("service", ["blob", "table"])
    def test_a_client_for_a_service_the_connection_lacks_is_named(self, service):
        """An identity connection with only the other endpoint: ConfigError naming both
        settings that would give it one."""
        other = "table" if service == "blob" else "blob"
        connection = StorageConnection(
            name="S", **{f"{other}_service_uri": f"https://st1.{other}.core.windows.net"}
        )
        build = container_client if service == "blob" else table_client

        with pytest.raises(ConfigError, match=rf"S: no {service} endpoint \(set S__accountName"):
            build(connection, "x", credential=_token())

    def test_an_unreachable_account_is_a_named_configuration_error(self, tmp_path):
        """Nothing listens: the check says storage could not be reached (no retries here)."""
        connection = StorageConnection(name="S", blob_service_uri="https://127.0.0.1:9/acct")
        client = container_client(connection, "locks", credential=_token(), retry_total=0)

        with pytest.raises(
            ConfigError, match=r"blob storage unusable: storage could not be reached"
        ):
            check_blob(client, connection)
