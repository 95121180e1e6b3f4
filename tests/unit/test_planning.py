"""Pure planning: value objects in, actions out (rotation.domain.planning)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from rotation.domain.model import (
    ApimBackend,
    ApimCertificate,
    CertificateVersion,
    Strategy,
    TargetKind,
)
from rotation.domain.planning import (
    Action,
    AlreadyCurrent,
    Binding,
    CreateEntity,
    MoveBackend,
    PinEntity,
    RetireEntity,
    SecretRef,
    Superseded,
    base_name,
    bound_certificates,
    choose_candidate,
    discover_bindings,
    is_superseded,
    live_bindings,
    needs_change,
    parse_secret_identifier,
    plan_rotation,
)

VAULT = "https://kv-demo.vault.azure.net"
SVC = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.ApiManagement/service/apim-one"
OTHER_SVC = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.ApiManagement/service/apim-two"
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def version(v: str, days: int, *, enabled: bool = True) -> CertificateVersion:
    return CertificateVersion(
        vault_url=VAULT, name="cert", version=v, enabled=enabled, created=T0 + timedelta(days=days)
    )


V1, V2, V3, V4 = (version(f"{n}" * 8 + "a" * 24, n) for n in (1, 2, 3, 4))
VERSIONS = (V1, V2, V3, V4)


def entity(
    cid: str, ver: CertificateVersion | None, *, service: str = SVC, etag: str = ""
) -> ApimCertificate:
    """An entity as an ARM list returns it (no ETag unless given)."""
    secret = f"{VAULT}/secrets/cert" + (f"/{ver.version}" if ver else "")
    return ApimCertificate(
        service_id=service,
        certificate_id=cid,
        secret_identifier=secret,
        identity_client_id="mi",
        etag=etag,
    )


def backend(bid: str, *ids: str, service: str = SVC) -> ApimBackend:
    return ApimBackend(service_id=service, backend_id=bid, certificate_ids=ids)


def bindings(
    certs: list[ApimCertificate], backends: Sequence[ApimBackend] = ()
) -> tuple[Binding, ...]:
    return discover_bindings(VAULT, "cert", certs, backends)


class TestParseSecretIdentifier:
    @pytest.mark.parametrize(
        ("url", "expected"),
        [
            (
                f"{VAULT}/secrets/cert/abc",
                SecretRef(vault="kv-demo.vault.azure.net", name="cert", version="abc"),
            ),
            (
                f"{VAULT}/secrets/cert",
                SecretRef(vault="kv-demo.vault.azure.net", name="cert", version=None),
            ),
            (
                f"{VAULT}/secrets/cert/",
                SecretRef(vault="kv-demo.vault.azure.net", name="cert", version=None),
            ),
            (
                "HTTPS://KV-Demo.Vault.Azure.Net:443/secrets/cert/abc",
                SecretRef(vault="kv-demo.vault.azure.net", name="cert", version="abc"),
            ),
            (
                "https://127.0.0.1:8443/secrets/cert",
                SecretRef(vault="127.0.0.1:8443", name="cert", version=None),
            ),
        ],
    )
    def test_parses_versioned_and_versionless_urls(self, url: str, expected: SecretRef) -> None:
        """Host is normalised (case, :443), trailing slash tolerated, other ports kept."""
        assert parse_secret_identifier(url) == expected

    @pytest.mark.parametrize(
        "url",
        [
            None,
            "",
            "http://kv.vault.azure.net/secrets/c",
            f"{VAULT}/certificates/cert/v",
            f"{VAULT}/secrets",
            f"{VAULT}/secrets/c/v/x",
            "https://kv:notaport/secrets/c",
            "not a url",
        ],
    )
    def test_rejects_anything_else(self, url: str | None) -> None:
        """Non-https, wrong paths and junk are not secret identifiers."""
        assert parse_secret_identifier(url) is None


class TestChooseCandidate:
    def test_newest_enabled_by_created_regardless_of_order(self) -> None:
        """List order means nothing: the newest enabled by created wins."""
        assert choose_candidate([V3, V1, V4, V2]) == V4

    def test_disabled_versions_are_skipped(self) -> None:
        """A disabled newest version is never the candidate."""
        disabled = version("9" * 32, 9, enabled=False)

        assert choose_candidate([V1, disabled, V2]) == V2

    def test_none_when_nothing_is_enabled(self) -> None:
        """No enabled version: no candidate."""
        assert choose_candidate([version("x" * 32, 1, enabled=False)]) is None

    def test_ties_on_created_are_broken_deterministically(self) -> None:
        """Equal created times: the version id decides, whatever the order."""
        a, b = version("a" * 32, 1), version("b" * 32, 1)

        assert choose_candidate([a, b]) == choose_candidate([b, a]) == b


class TestDiscoverBindings:
    def test_matches_any_version_of_the_certificate_in_the_vault(self) -> None:
        """Versioned and versionless entities for vault/cert match; others do not."""
        other_cert = ApimCertificate(
            service_id=SVC, certificate_id="x", secret_identifier=f"{VAULT}/secrets/other/1"
        )
        other_vault = ApimCertificate(
            service_id=SVC,
            certificate_id="y",
            secret_identifier="https://kv2.vault.azure.net/secrets/cert",
        )
        uploaded = ApimCertificate(service_id=SVC, certificate_id="z", secret_identifier=None)
        case = ApimCertificate(
            service_id=SVC,
            certificate_id="w",
            secret_identifier="https://KV-DEMO.vault.azure.net:443/secrets/CERT/1",
        )

        found = bindings(
            [entity("a", V1), entity("b", None), other_cert, other_vault, uploaded, case]
        )

        assert [b.entity.certificate_id for b in found] == ["a", "b", "w"]

    def test_backends_match_full_ids_case_insensitively_and_short_ids(self) -> None:
        """certificateIds match the entity's ARM id in any case or the short /certificates/{id} form."""
        e = entity("a", V1)
        full = backend("full", e.resource_id.upper())
        short = backend("short", "/certificates/a")
        elsewhere = backend("elsewhere", e.resource_id, service=OTHER_SVC)
        unrelated = backend("unrelated", f"{SVC}/certificates/b")

        (found,) = bindings([e], [full, short, elsewhere, unrelated])

        assert [b.backend_id for b in found.backends] == ["full", "short"]

    def test_bound_certificates_groups_by_configured_vault(self) -> None:
        """Reconcile discovers (vault, certificate) pairs for configured vaults only."""
        foreign = ApimCertificate(
            service_id=SVC,
            certificate_id="f",
            secret_identifier="https://kv2.vault.azure.net/secrets/x",
        )

        pairs = bound_certificates([VAULT + "/"], [entity("a", V1), entity("b", None), foreign])

        assert pairs == ((VAULT + "/", "cert"),)


class TestIsSuperseded:
    def test_event_older_than_every_live_binding(self) -> None:
        """Superseded when all bindings already use a later version."""
        assert is_superseded(V1.version, bindings([entity("a", V2), entity("b", V3)]), VERSIONS)

    def test_not_when_one_binding_lags_or_matches(self) -> None:
        """One binding on the event's version or older keeps the event relevant."""
        assert not is_superseded(
            V2.version, bindings([entity("a", V2), entity("b", V3)]), VERSIONS
        )
        assert not is_superseded(
            V2.version, bindings([entity("a", V1), entity("b", V3)]), VERSIONS
        )

    def test_not_for_versionless_or_unknown(self) -> None:
        """Versionless bindings and unknown event versions never supersede."""
        assert not is_superseded(V1.version, bindings([entity("a", None)]), VERSIONS)
        assert not is_superseded("f" * 32, bindings([entity("a", V3)]), VERSIONS)
        assert not is_superseded(V1.version, (), VERSIONS)


class TestPlanPin:
    @pytest.mark.parametrize(
        ("status", "thumbprint", "expected"),
        [
            ("Success", "AB" * 20, AlreadyCurrent),
            (None, None, AlreadyCurrent),
            ("Failed", "AB" * 20, PinEntity),
            ("Success", "CD" * 20, PinEntity),
        ],
    )
    def test_entity_naming_the_candidate_is_current_only_if_it_serves_it(
        self, status: str | None, thumbprint: str | None, expected: type
    ) -> None:
        """A failed Key Vault fetch (lastStatus, old thumbprint) is re-written, not current."""
        candidate = replace(V3, thumbprint_sha1="ab" * 20)
        named = replace(entity("a", V3), last_status_code=status, thumbprint=thumbprint)

        (action,) = plan_rotation(
            bindings=bindings([named]),
            versions=(V1, V2, candidate, V4),
            candidate=candidate,
            strategy=Strategy.PIN,
        )

        assert type(action) is expected

    def test_each_branch(self) -> None:
        """current → AlreadyCurrent, older/versionless/unknown → PinEntity, newer → Superseded."""
        unknown = ApimCertificate(
            service_id=SVC,
            certificate_id="e",
            secret_identifier=f"{VAULT}/secrets/cert/{'f' * 32}",
        )
        found = bindings(
            [
                entity("a", V3),
                entity("b", V1),
                entity("c", None),
                entity("d", V4),
                unknown,
            ]
        )

        actions = plan_rotation(
            bindings=found, versions=VERSIONS, candidate=V3, strategy=Strategy.PIN
        )

        assert [type(a) for a in actions] == [
            AlreadyCurrent,
            PinEntity,
            PinEntity,
            Superseded,
            PinEntity,
        ]
        pin = actions[1]
        assert isinstance(pin, PinEntity)
        assert (
            (pin.from_secret, pin.to_secret, pin.identity_client_id, pin.versionless)
            == (
                f"{VAULT}/secrets/cert/{V1.version}",  # what the plan saw: the gateway's CAS compares it
                V3.secret_id,
                "mi",
                False,
            )
        )
        assert isinstance(actions[2], PinEntity)
        assert actions[2].versionless

    def test_needs_change_ignores_current_superseded_and_retire(self) -> None:
        """Only pins, creates and moves change what is presented."""
        current = AlreadyCurrent(
            service_id=SVC, kind=TargetKind.CERTIFICATE, name="a", reference=None
        )
        retire = RetireEntity(service_id=SVC, certificate_id="a--11111111", secret=None, etag="")

        assert not needs_change([current, retire])
        assert needs_change(
            [current, MoveBackend(service_id=SVC, backend_id="b", from_ids=(), to_ids=())]
        )


class TestPlanBlueGreen:
    def plan(
        self,
        certs: list[ApimCertificate],
        backends: list[ApimBackend],
        candidate: CertificateVersion = V3,
        retain: int = 2,
    ) -> tuple[Action, ...]:
        return plan_rotation(
            bindings=bindings(certs, backends),
            versions=VERSIONS,
            candidate=candidate,
            strategy=Strategy.BLUE_GREEN,
            retain_previous=retain,
        )

    def test_creates_target_then_moves_backends_keeping_other_ids(self) -> None:
        """Create {base}--{version[:8]} first, then replace only the group's id in each backend."""
        e = entity("cert", V1)
        actions = self.plan([e], [backend("api", "/other/cert", e.resource_id)])

        create, move = actions
        assert isinstance(create, CreateEntity)
        assert (create.certificate_id, create.to_secret, create.identity_client_id) == (
            "cert--33333333",
            V3.secret_id,
            "mi",
        )
        assert isinstance(move, MoveBackend)
        assert move.from_ids == ("/other/cert", e.resource_id)  # what the gateway's CAS compares
        assert move.to_ids == ("/other/cert", f"{SVC}/certificates/cert--33333333")

    def test_already_current_when_target_exists_and_backends_use_it(self) -> None:
        """A complete earlier rotation plans no change."""
        old, new = entity("cert", V1), entity("cert--33333333", V3)
        actions = self.plan([old, new], [backend("api", new.resource_id)])

        assert [type(a) for a in actions] == [AlreadyCurrent, AlreadyCurrent]
        assert not needs_change(actions)

    def test_stale_target_is_repinned(self) -> None:
        """A target entity pointing elsewhere is pinned to the candidate before moves."""
        old, stale = entity("cert", V1), entity("cert--33333333", V2)
        actions = self.plan([old, stale], [backend("api", old.resource_id)])

        assert [type(a) for a in actions] == [PinEntity, MoveBackend]

    def test_retires_suffixed_entities_beyond_retention_only(self) -> None:
        """Beyond retain_previous (newest kept), suffixed entities go; the original never does."""
        certs = [entity("cert", V1), entity("cert--22222222", V2), entity("cert--33333333", V3)]
        actions = self.plan(certs, [backend("api", certs[2].resource_id)], candidate=V4, retain=1)

        retired = [(a.certificate_id, a.etag) for a in actions if isinstance(a, RetireEntity)]
        assert retired == [("cert--22222222", "")]  # the listed ETag: none, so If-Match: *
        assert isinstance(actions[-1], RetireEntity)

    def test_backend_on_newer_version_is_superseded_and_keeps_its_entity(self) -> None:
        """A backend already past the candidate is not moved, and its entity is not retired."""
        certs = [entity("cert", V1), entity("cert--44444444", V4), entity("cert--22222222", V2)]
        bks = [backend("new", certs[1].resource_id), backend("old", certs[0].resource_id)]
        actions = self.plan(certs, bks, retain=0)

        kinds = {
            (
                type(a).__name__,
                getattr(a, "backend_id", getattr(a, "certificate_id", getattr(a, "name", ""))),
            )
            for a in actions
        }
        assert ("Superseded", "new") in kinds
        assert ("MoveBackend", "old") in kinds
        assert ("RetireEntity", "cert--44444444") not in kinds
        assert ("RetireEntity", "cert--22222222") in kinds

    def test_group_without_backends_is_pinned_in_place(self) -> None:
        """Entities only policies reference are pinned (blue-green cannot move policies)."""
        actions = self.plan([entity("cert", V1)], [])

        assert [type(a) for a in actions] == [PinEntity]

    def test_live_bindings_skip_retained_rollback_entities(self) -> None:
        """For blue-green only entities a backend uses are live; for pin all are."""
        old, new = entity("cert", V1), entity("cert--33333333", V3)
        found = bindings([old, new], [backend("api", new.resource_id)])

        assert [b.entity.certificate_id for b in live_bindings(found, Strategy.BLUE_GREEN)] == [
            "cert--33333333"
        ]
        assert len(live_bindings(found, Strategy.PIN)) == 2

    @pytest.mark.parametrize(
        ("cid", "base"),
        [
            ("cert--33333333", "cert"),
            ("cert", "cert"),
            ("a--b", "a--b"),
            ("x--1234567", "x--1234567"),
        ],
    )
    def test_base_name_strips_only_an_eight_character_suffix(self, cid: str, base: str) -> None:
        """base = entity id without an existing --xxxxxxxx suffix."""
        assert base_name(cid) == base
