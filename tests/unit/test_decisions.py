"""The rotation's decisions on plain values (rotation.domain.decisions): no ports, no fakes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import cast

import pytest

from rotation.domain.actions import AlreadyCurrent, RetireEntity, Superseded
from rotation.domain.bindings import Binding, SecretRef
from rotation.domain.decisions import (
    admit,
    expiry_alert,
    failure_audit,
    identity_reference,
    ignore_reason,
    leaf_mismatch,
    premature,
    presented,
    settle,
    supersede,
)
from rotation.domain.errors import (
    ConfigError,
    DependencyError,
    InvalidEventError,
    PreconditionFailedError,
    TransientDependencyError,
)
from rotation.domain.model import (
    ApimCertificate,
    CertificateSummary,
    CertificateVersion,
    Decision,
    Disposition,
    Finding,
    FindingCode,
    KeyVaultEvent,
    Severity,
    Strategy,
    TargetKind,
    Trigger,
    ValidationReport,
)

VAULT = "https://kv-demo.vault.azure.net"
SVC = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.ApiManagement/service/apim-one"
NOW = datetime(2026, 3, 1, tzinfo=UTC)
SKEW = timedelta(minutes=5)


def version(v: str, days: int, *, expires_in: int = 365, enabled: bool = True, **kw: object):
    created = NOW + timedelta(days=days)
    return CertificateVersion(
        vault_url=VAULT, name="cert", version=v, enabled=enabled, created=created,
        not_before=cast("datetime | None", kw.get("not_before", created)), expires=NOW + timedelta(days=expires_in),
        thumbprint_sha1=str(kw.get("thumbprint", f"{v.upper()}SHA1")),
    )  # fmt: skip


def binding(name: str, pinned: str | None) -> Binding:
    secret = f"{VAULT}/secrets/cert" + (f"/{pinned}" if pinned else "")
    return Binding(
        entity=ApimCertificate(service_id=SVC, certificate_id=name, secret_identifier=secret),
        ref=SecretRef(vault="kv-demo.vault.azure.net", name="cert", version=pinned),
    )


def report(*findings: Finding, thumbprint: str = "V2SHA1") -> ValidationReport:
    leaf = CertificateSummary(
        subject="CN=leaf", issuer="CN=ca", serial="1", thumbprint_sha1=thumbprint,
        thumbprint_sha256="AA", not_before=NOW, not_after=NOW + timedelta(days=90),
        key_type="EC", key_size=256,
    )  # fmt: skip
    return ValidationReport(findings=findings, leaf=leaf, chain=(leaf,))


def finding(code: FindingCode, severity: Severity = Severity.ERROR) -> Finding:
    return Finding(code=code, severity=severity, message=f"{code} happened")


def event(v: str, disposition: Disposition = Disposition.ROTATE) -> KeyVaultEvent:
    return KeyVaultEvent(
        event_id="e1", event_type="Microsoft.KeyVault.CertificateNewVersionCreated",
        schema="eventgrid", vault_name="kv-demo", vault_url=VAULT, object_type="Certificate",
        object_name="cert", version=v, not_before=None, expires=None, event_time=None,
        deadletter=None, disposition=disposition,
    )  # fmt: skip


class TestIgnore:
    def test_a_certificate_event_for_a_configured_vault_acts(self):
        """Rotate and alert events of a configured vault are not ignored (host compared)."""
        assert ignore_reason(event("v1"), {"kv-demo.vault.azure.net"}) is None
        assert ignore_reason(event("v1", Disposition.ALERT), {"kv-demo.vault.azure.net"}) is None

    def test_other_vaults_and_other_events_are_ignored_with_a_reason(self):
        """The reason names the vault, or the event type and object type."""
        other_vault = ignore_reason(event("v1"), {"kv-other.vault.azure.net"})
        not_ours = ignore_reason(event("v1", Disposition.IGNORE), {"kv-demo.vault.azure.net"})

        assert other_vault == f"vault {VAULT} is not in ROTATION_VAULTS"
        assert not_ours == (
            "Microsoft.KeyVault.CertificateNewVersionCreated for a Certificate object does not act"
        )


class TestAdmission:
    def test_a_candidate_beyond_the_clock_skew_is_deferred_before_any_read(self):
        """not_before later than now + skew defers, naming the version and the time."""
        v2 = version("v2", 0, not_before=NOW + SKEW + timedelta(seconds=1))

        admission = premature(v2, now=NOW, clock_skew=SKEW)

        assert admission is not None
        assert (admission.decision, admission.admitted) == (Decision.DEFERRED, False)
        assert "v2" in (admission.message or "")
        assert (NOW + SKEW + timedelta(seconds=1)).isoformat() in (admission.message or "")

    def test_a_candidate_within_the_clock_skew_goes_on_to_validation(self):
        """not_before exactly at now + skew is not premature."""
        assert premature(version("v2", 0, not_before=NOW + SKEW), now=NOW, clock_skew=SKEW) is None

    def test_warnings_alone_admit(self):
        """Only error findings stop a candidate."""
        warned = report(finding(FindingCode.REVOCATION_UNAVAILABLE, Severity.WARNING))

        admission = admit(version("v2", 0), warned)

        assert (admission.decision, admission.admitted, admission.message) == (
            Decision.APPLIED, True, None,
        )  # fmt: skip

    def test_not_yet_valid_alone_defers(self):
        """A candidate whose only error is validity.not_yet_valid is deferred, not rejected."""
        admission = admit(version("v2", 0), report(finding(FindingCode.VALIDITY_NOT_YET_VALID)))

        assert admission.decision is Decision.DEFERRED
        assert admission.message == "version v2 is not valid yet"

    def test_any_other_error_rejects_with_every_error_in_the_message(self):
        """Rejection names each error code and message, in order."""
        bad = report(
            finding(FindingCode.VALIDITY_NOT_YET_VALID),
            finding(FindingCode.CHAIN_UNTRUSTED),
            finding(FindingCode.KEY_WEAK, Severity.WARNING),
        )

        admission = admit(version("v2", 0), bad)

        assert admission.decision is Decision.REJECTED
        assert admission.message == (
            "validity.not_yet_valid: validity.not_yet_valid happened; "
            "chain.untrusted: chain.untrusted happened"
        )

    def test_a_secret_whose_leaf_is_not_the_version_is_named(self):
        """Thumbprints compare case-insensitively; a mismatch names both."""
        assert leaf_mismatch(report(thumbprint="v2sha1"), version("v2", 0)) is None
        message = leaf_mismatch(report(thumbprint="OTHER"), version("v2", 0))
        assert message is not None
        assert "OTHER" in message
        assert "V2SHA1" in message

    def test_identity_reference_prefers_the_newest_older_version_in_use(self):
        """Pinning compares with what is in use; without it, with the newest older enabled one."""
        v1, v2, v3 = version("v1", -20), version("v2", -10), version("v3", 0)
        disabled = version("v2b", -5, enabled=False)

        assert identity_reference(v3, (v1,), (v1, v2, v3)) == v1
        assert identity_reference(v3, (), (v1, v2, disabled, v3)) == v2
        assert identity_reference(v1, (), (v1, v2, v3)) is None


class TestSettling:
    def test_presented_maps_live_bindings_to_versions(self):
        """A versionless binding presents the candidate; previous is the newest other in use."""
        v1, v2, v3 = version("v1", -20), version("v2", -10), version("v3", 0)

        shown = presented(
            [binding("a", "v1"), binding("b", "V2"), binding("c", None)], (v1, v2, v3), v3
        )

        assert shown.versions == (v1, v2, v3)
        assert shown.previous_version == "v2"

    def test_an_older_new_version_event_is_superseded_per_binding(self):
        """Every live binding gets a Superseded certificate target naming both versions."""
        v1, v2 = version("v1", -20), version("v2", -10)
        live = [binding("a", "v2"), binding("b", "v2")]

        result = supersede(event("v1"), live, (v1, v2))

        assert result is not None
        assert result.message == "version v1 is older than what every binding uses"
        assert [(a.name, a.kind, a.in_use, a.candidate) for a in result.actions] == [
            ("a", TargetKind.CERTIFICATE, "v2", "v1"),
            ("b", TargetKind.CERTIFICATE, "v2", "v1"),
        ]

    @pytest.mark.parametrize(
        ("ev", "live"),
        [
            (None, ["v2"]),  # reconcile: no event
            (event("v1", Disposition.ALERT), ["v2"]),  # an alert never supersedes
            (event("v2"), ["v2"]),  # the same version is not older
            (event("v1"), ["v2", None]),  # a versionless binding: cannot tell
        ],
    )
    def test_nothing_else_is_superseded(self, ev, live):
        """Only a rotate event older than every live binding is superseded."""
        v1, v2 = version("v1", -20), version("v2", -10)
        bindings = [binding(f"e{i}", pinned) for i, pinned in enumerate(live)]

        assert supersede(ev, bindings, (v1, v2)) is None

    def test_settle_is_superseded_only_when_every_kept_action_is(self):
        """Retirements do not count; an empty plan is already current."""
        sup = Superseded(
            service_id=SVC, kind=TargetKind.BACKEND, name="b", in_use="v2", candidate="v1"
        )
        cur = AlreadyCurrent(service_id=SVC, kind=TargetKind.CERTIFICATE, name="a", reference=None)
        retire = RetireEntity(service_id=SVC, certificate_id="old", secret=None, etag="")

        assert settle([sup, retire]) is Decision.SUPERSEDED
        assert settle([sup, cur]) is Decision.ALREADY_CURRENT
        assert settle([retire]) is Decision.ALREADY_CURRENT
        assert settle([]) is Decision.ALREADY_CURRENT


class TestExpiryAlert:
    def alert(self, decision: Decision, candidate, in_use, *, dry_run: bool = False):
        return expiry_alert(
            decision=decision, candidate=candidate, in_use=in_use, vault=VAULT, certificate="cert",
            now=NOW, near_expiry=timedelta(days=30), strategy=Strategy.PIN, dry_run=dry_run,
            trigger=Trigger.TIMER, correlation_id="c1",
        )  # fmt: skip

    def test_a_version_in_use_expiring_within_the_window_alerts(self):
        """The soonest-expiring in-use version is named, with what this run decided."""
        soon, later = version("v1", -300, expires_in=10), version("v2", -200, expires_in=20)

        record = self.alert(Decision.REJECTED, None, (later, soon))

        assert record is not None
        assert (record.event, record.version, record.decision) == (
            "certificate.near_expiry", "v1", Decision.REJECTED,
        )  # fmt: skip
        assert record.not_after == NOW + timedelta(days=10)
        assert record.message is not None
        assert record.message.endswith("no newer valid version is bound (this run: rejected)")

    def test_an_expired_version_is_an_expired_record(self):
        """Already past its expiry: certificate.expired, no 'this run' for already_current."""
        record = self.alert(Decision.ALREADY_CURRENT, None, (version("v1", -400, expires_in=-1),))

        assert record is not None
        assert record.event == "certificate.expired"
        assert record.message is not None
        assert record.message.endswith("no newer valid version is bound")

    def test_an_applied_candidate_replaces_what_was_in_use(self):
        """After a real apply only the candidate counts; a dry run still presents the old one."""
        old, new = version("v1", -300, expires_in=5), version("v2", 0, expires_in=365)

        assert self.alert(Decision.APPLIED, new, (old,)) is None
        dry = self.alert(Decision.APPLIED, new, (old,), dry_run=True)
        assert dry is not None
        assert dry.version == "v1"

    def test_nothing_near_expiry_records_nothing(self):
        """Versions beyond the window (or without an expiry) never alert."""
        assert (
            self.alert(Decision.ALREADY_CURRENT, None, (version("v1", -10, expires_in=31),))
            is None
        )


class TestFailureAudit:
    @pytest.mark.parametrize(
        ("exc", "trigger", "expected"),
        [
            (InvalidEventError("bad"), Trigger.EVENTGRID, ("event.malformed", Decision.IGNORED)),
            (ConfigError(["X: bad"]), Trigger.TIMER, ("config.invalid", Decision.FAILED)),
            (
                DependencyError("404", service="keyvault", operation="get"),
                Trigger.EVENTGRID,
                ("event.refused", Decision.IGNORED),
            ),
            (
                PreconditionFailedError("412", service="apim", operation="put"),
                Trigger.EVENTGRID,
                ("event.failed", Decision.FAILED),
            ),
            (
                TransientDependencyError("503", service="apim", operation="list"),
                Trigger.TIMER,
                ("reconcile.failed", Decision.FAILED),
            ),
            (RuntimeError("boom"), Trigger.EVENTGRID, ("event.failed", Decision.FAILED)),
        ],
    )
    def test_name_and_decision(self, exc, trigger, expected):
        """Permanent refusals are ignored; everything retryable or unexpected has failed."""
        assert failure_audit(exc, trigger) == expected
