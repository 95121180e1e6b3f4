"""The Functions app: indexing, the real trigger objects, and outcome → Event Grid retry mapping."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import azure.functions as func
import pytest
from azure.functions.timer import TimerRequest

from function_app import app
from rotation import bootstrap
from rotation.adapters.audit import StructlogAuditSink
from rotation.domain.errors import (
    AuthorizationError,
    CertificateNotFoundError,
    ConfigError,
    RotationError,
    TransientDependencyError,
)
from rotation.domain.model import AuditRecord, Decision, KeyVaultEvent, Trigger
from rotation.entrypoints.functions import on_key_vault_event, reconcile
from tests.payloads import DATA, TOPIC, VERSION

ROOT = Path(__file__).resolve().parents[2]
PEM_KEY = (
    "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----"
)


class MemoryHandler:
    """An EventHandler that records what it was given and answers as told.

    Like the real service, it audits a ``RotationError`` before raising it; anything else is a
    bug escaping the service, which only the entrypoint can put on record.
    """

    def __init__(self, error: Exception | None = None) -> None:
        self.error = error
        self.handled: list[tuple[KeyVaultEvent, Trigger]] = []
        self.reconciled: list[Trigger] = []

    def handle(self, event: KeyVaultEvent, *, trigger: Trigger) -> AuditRecord:
        self.handled.append((event, trigger))
        if self.error:
            self._audit_error(trigger, event.object_name)
            raise self.error
        return AuditRecord(event="rotation.applied", decision=Decision.APPLIED, trigger=trigger)

    def reconcile(self, *, trigger: Trigger) -> Sequence[AuditRecord]:
        self.reconciled.append(trigger)
        if self.error:
            self._audit_error(trigger, None)
            raise self.error
        return [AuditRecord(event="reconcile.alert", decision=Decision.IGNORED, trigger=trigger)]

    def _audit_error(self, trigger: Trigger, certificate: str | None) -> None:
        if isinstance(self.error, RotationError):
            decision = Decision.FAILED if self.error.retryable else Decision.REJECTED
            StructlogAuditSink().write(
                AuditRecord(
                    event=f"rotation.{decision}",
                    decision=decision,
                    trigger=trigger,
                    certificate=certificate,
                    error=str(self.error),
                )
            )


def eventgrid_event(data: dict[str, object] | None = None) -> func.EventGridEvent:
    return func.EventGridEvent(
        id="eg-1", data=data or DATA, topic=TOPIC, subject="partner-mtls",
        event_type="Microsoft.KeyVault.CertificateNewVersionCreated",
        event_time=datetime(2026, 3, 2, 8, 15, 42, tzinfo=UTC), data_version="1",
    )  # fmt: skip


def cloud_event() -> func.CloudEvent:
    return func.CloudEvent(
        id="ce-1", source=TOPIC, type="Microsoft.KeyVault.CertificateNearExpiry",
        specversion="1.0", data=DATA, time=datetime(2026, 3, 2, tzinfo=UTC),
    )  # fmt: skip


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    monkeypatch.delenv("ROTATION_VAULTS", raising=False)
    monkeypatch.delenv("ROTATION_LOG_LEVEL", raising=False)


@pytest.fixture(name="use_handler")
def _use_handler(monkeypatch):
    def install(handler: MemoryHandler) -> MemoryHandler:
        monkeypatch.setattr(bootstrap, "get_handler", lambda: handler)
        return handler

    return install


def audit_lines(capsys) -> list[dict[str, object]]:
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]
    return [line for line in lines if line.get("audit") is True]


trigger = on_key_vault_event.build().get_user_function()
timer_fn = reconcile.build().get_user_function()


class TestIndexing:
    def test_app_indexes_exactly_the_two_functions(self):
        """function_app exposes on_key_vault_event (eventGridTrigger) and reconcile (timerTrigger)."""
        functions = {
            str(f.get_function_name()): json.loads(f.get_function_json())
            for f in app.get_functions()
        }

        assert sorted(functions) == ["on_key_vault_event", "reconcile"]
        assert functions["on_key_vault_event"]["bindings"] == [
            {"direction": "IN", "type": "eventGridTrigger", "name": "event"}
        ]
        assert functions["reconcile"]["bindings"] == [
            {
                "direction": "IN",
                "type": "timerTrigger",
                "name": "timer",
                "schedule": "%ROTATION_RECONCILE_SCHEDULE%",
                "runOnStartup": False,
            }
        ]

    def test_import_with_broken_settings_still_indexes(self):
        """A fresh interpreter with invalid settings imports function_app and indexes both."""
        env = {
            "PATH": "/usr/bin:/bin",
            "ROTATION_VAULTS": "ftp://broken",
            "ROTATION_TRUST_ANCHORS": "/nope",
        }
        code = "import function_app; print(sorted(f.get_function_name() for f in function_app.app.get_functions()))"

        result = subprocess.run(
            [sys.executable, "-c", code],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )

        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == "['on_key_vault_event', 'reconcile']"


class TestEventGridTrigger:
    def test_event_grid_event_reaches_the_handler_normalised(self, use_handler, capsys):
        """A real func.EventGridEvent is parsed and handed over with trigger=eventgrid."""
        handler = use_handler(MemoryHandler())

        trigger(eventgrid_event())

        ((event, how),) = handler.handled
        assert (event.object_name, event.version, how) == (
            "partner-mtls",
            VERSION,
            Trigger.EVENTGRID,
        )
        line = json.loads(capsys.readouterr().out.splitlines()[-1])
        assert (line["event"], line["eventgrid_event_id"]) == ("event_handled", "eg-1")

    def test_cloud_event_reaches_the_handler(self, use_handler):
        """A real func.CloudEvent (CloudEvents schema) is accepted by the same trigger."""
        handler = use_handler(MemoryHandler())

        trigger(cloud_event())

        assert handler.handled[0][0].schema == "cloudevents"

    def test_allow_listed_devstack_vault_is_accepted(self, use_handler, monkeypatch):
        """ROTATION_VAULTS lets the local devstack origin through intake."""
        monkeypatch.setenv("ROTATION_VAULTS", "https://127.0.0.1:8443")
        handler = use_handler(MemoryHandler())

        trigger(
            eventgrid_event(
                {**DATA, "Id": f"https://127.0.0.1:8443/certificates/partner-mtls/{VERSION}"}
            )
        )

        assert handler.handled[0][0].vault_url == "https://127.0.0.1:8443"

    def test_malformed_event_is_audited_and_not_retried(self, use_handler, capsys):
        """A forged event returns normally (no redelivery) and leaves an event.malformed record."""
        handler = use_handler(MemoryHandler())

        trigger(eventgrid_event({**DATA, "Id": DATA["Id"].replace("https:", "http:")}))

        assert handler.handled == []
        (record,) = audit_lines(capsys)
        assert (record["event"], record["decision"], record["event_id"]) == (
            "event.malformed",
            "ignored",
            "eg-1",
        )
        assert "data.Id" in str(record["error"])

    @pytest.mark.parametrize(
        "error",
        [
            TransientDependencyError("ARM 503", service="arm", operation="put", status_code=503),
            AuthorizationError(
                "403 from Key Vault", service="keyvault", operation="get", status_code=403
            ),
            RuntimeError("unexpected"),
        ],
    )
    def test_retryable_and_unexpected_errors_raise_so_event_grid_redelivers(
        self, use_handler, capsys, error
    ):
        """Transient, authorization and unknown failures propagate (host 500 → retry), on record once."""
        use_handler(MemoryHandler(error))

        with pytest.raises(type(error)):
            trigger(eventgrid_event())

        (record,) = audit_lines(capsys)
        expected = "event.failed" if isinstance(error, RuntimeError) else "rotation.failed"
        assert (record["event"], record["decision"]) == (expected, "failed")
        assert record["certificate"] == "partner-mtls"
        if isinstance(error, RuntimeError):  # the entrypoint's own record names the topic too
            assert record["topic"] == TOPIC

    def test_permanent_failure_is_audited_and_returns(self, use_handler, capsys):
        """A non-retryable RotationError is swallowed after auditing, so Event Grid stops."""
        use_handler(MemoryHandler(CertificateNotFoundError("certificate partner-mtls is gone")))

        trigger(eventgrid_event())

        (record,) = audit_lines(capsys)
        assert (record["event"], record["decision"]) == ("rotation.rejected", "rejected")

    def test_config_error_at_invocation_is_raised_and_audited_loudly(self, monkeypatch, capsys):
        """Broken settings fail the invocation (retryable) with the clear message on record."""

        def broken():
            raise ConfigError(["ROTATION_APIM_SERVICES: required but not set"])

        monkeypatch.setattr(bootstrap, "get_handler", broken)

        with pytest.raises(ConfigError):
            trigger(eventgrid_event())

        (record,) = audit_lines(capsys)
        assert (record["event"], record["decision"]) == ("config.invalid", "failed")
        assert "ROTATION_APIM_SERVICES" in str(record["error"])

    def test_invalid_vault_allow_list_is_a_config_error(self, use_handler, monkeypatch, capsys):
        """A bad ROTATION_VAULTS is raised as ConfigError before any event is trusted."""
        monkeypatch.setenv("ROTATION_VAULTS", "ftp://nope")
        handler = use_handler(MemoryHandler())

        with pytest.raises(ConfigError):
            trigger(eventgrid_event())

        assert handler.handled == []
        assert audit_lines(capsys)[0]["event"] == "config.invalid"

    def test_error_messages_are_redacted_in_the_audit_line(self, use_handler, capsys):
        """Secret material inside an exception message never reaches the audit record."""
        use_handler(
            MemoryHandler(
                TransientDependencyError(f"echo {PEM_KEY}", service="kv", operation="get")
            )
        )

        with pytest.raises(TransientDependencyError):
            trigger(eventgrid_event())

        (record,) = audit_lines(capsys)
        assert "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC" not in json.dumps(record)


class TestReconcileTrigger:
    def test_timer_runs_reconcile_and_logs_counts(self, use_handler, capsys):
        """The timer hands over with trigger=timer and logs one summary line."""
        handler = use_handler(MemoryHandler())

        timer_fn(TimerRequest(past_due=True))

        assert handler.reconciled == [Trigger.TIMER]
        line = json.loads(capsys.readouterr().out.splitlines()[-1])
        assert (line["event"], line["records"], line["past_due"]) == (
            "reconcile_finished",
            1,
            True,
        )

    def test_timer_failure_is_raised_and_audited(self, use_handler, capsys):
        """A transient failure fails the run (the next schedule retries) and is on record."""
        use_handler(
            MemoryHandler(TransientDependencyError("busy", service="arm", operation="list"))
        )

        with pytest.raises(TransientDependencyError):
            timer_fn(TimerRequest())

        (record,) = audit_lines(capsys)
        assert (record["event"], record["decision"]) == ("rotation.failed", "failed")

    def test_unexpected_timer_failure_is_put_on_record_by_the_entrypoint(
        self, use_handler, capsys
    ):
        """A bug escaping the service still leaves exactly one audit line."""
        use_handler(MemoryHandler(RuntimeError("boom")))

        with pytest.raises(RuntimeError):
            timer_fn(TimerRequest())

        (record,) = audit_lines(capsys)
        assert (record["event"], record["decision"]) == ("reconcile.failed", "failed")
