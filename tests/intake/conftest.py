"""Fixtures for the intake suites: the CLI wired to a service that applies every event."""

from __future__ import annotations

from pathlib import Path

import pytest
import structlog

from devstack.pki import make_key, mint_certificate
from rotation import bootstrap
from rotation.domain.model import AuditRecord, Decision, KeyVaultEvent, Trigger

VAULT = "https://kv-rotation-demo.vault.azure.net"


class CaptureSink:
    """An audit sink keeping each record with the log context bound when it was written."""

    def __init__(self) -> None:
        self.seen: list[tuple[AuditRecord, dict[str, object]]] = []

    def write(self, record: AuditRecord) -> None:
        self.seen.append((record, dict(structlog.contextvars.get_contextvars())))


class ApplyingService:
    """An EventHandler (and its batch view) that applies every event and remembers it."""

    def __init__(self) -> None:
        self.handled: list[KeyVaultEvent] = []

    def batch(self, **_options: object) -> ApplyingService:
        return self

    def handle(self, event: KeyVaultEvent, *, trigger: Trigger) -> AuditRecord:
        self.handled.append(event)
        return AuditRecord(
            event="rotation.applied", decision=Decision.APPLIED, trigger=trigger,
            event_id=event.event_id,
        )  # fmt: skip


class ReplayEnv:
    def __init__(self, env: dict[str, str], sink: CaptureSink, service: ApplyingService) -> None:
        self.env, self.sink, self.service = env, sink, service


@pytest.fixture(name="replay_env")
def _replay_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ReplayEnv:
    anchors = tmp_path / "anchors.pem"
    anchors.write_bytes(mint_certificate("Root", key=make_key("ec", 256), ca=True).pem)
    sink, service = CaptureSink(), ApplyingService()
    monkeypatch.setattr(bootstrap, "build_audit_sink", lambda _settings: sink)
    monkeypatch.setattr(bootstrap, "build_service", lambda _settings, **_kw: service)
    env = {
        "ROTATION_VAULTS": VAULT,
        "ROTATION_APIM_SERVICES": "/subscriptions/s/resourceGroups/rg/providers/"
        "Microsoft.ApiManagement/service/apim-a",
        "ROTATION_TRUST_ANCHORS": str(anchors),
    }
    return ReplayEnv(env, sink, service)
