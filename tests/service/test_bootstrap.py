"""The composition root: settings mapped onto the service, real validator, lazy and cached wiring."""

from __future__ import annotations

from pathlib import Path

import pytest

from rotation import bootstrap
from rotation.adapters.audit import CompositeAuditSink, StructlogAuditSink
from rotation.adapters.crl import HttpCrlFetcher
from rotation.config import Settings
from rotation.domain.errors import ConfigError
from rotation.domain.model import Decision, Strategy, Trigger
from rotation.domain.validation import PolicyValidator
from rotation.ports import EventHandler
from rotation.service import BatchHandler, RotationService
from tests.service.conftest import CERT, SVC_A, SVC_B, V1, V2, VAULT, Pki, World, make_event


@pytest.fixture(name="env")
def _env(tmp_path: Path, pki: Pki) -> dict[str, str]:
    anchors = tmp_path / "anchors.pem"
    root = pki.intermediate  # the intermediate is enough as an anchor for the client profile
    anchors.write_bytes(root.pem)
    return {
        "ROTATION_VAULTS": VAULT,
        "ROTATION_APIM_SERVICES": f"{SVC_A},{SVC_B}",
        "ROTATION_TRUST_ANCHORS": str(anchors),
        "ROTATION_STRATEGY": "blue-green",
        "ROTATION_MAX_ATTEMPTS": "5",
        "ROTATION_DEVSTACK_TOKEN": "not-a-real-token",
    }


class TestBuildService:
    def test_maps_settings_and_uses_the_real_validator(
        self, env: dict[str, str], world: World
    ) -> None:
        """build_service wires the PolicyValidator and the settings' knobs; an event rotates end to end."""
        world.add_version("v1", V1)
        world.add_version("v2", V2)
        world.bind(SVC_A, CERT, V1, backend="partner-api")
        settings = Settings.from_env(env)

        service = bootstrap.build_service(
            settings,
            clock=world.clock,
            source=world.source,
            gateway=world.gateway,
            audit=world.audit,
        )
        record = service.handle(make_event(V2), trigger=Trigger.EVENTGRID)

        assert isinstance(service, RotationService)
        assert isinstance(service._context.validator, PolicyValidator)
        assert (service._context.strategy, service._context.max_attempts) == (
            Strategy.BLUE_GREEN,
            5,
        )
        assert record.decision is Decision.APPLIED, record.findings
        assert (world.gateway.entity(SVC_A, f"{CERT}--{V2[:8]}").secret_identifier or "").endswith(
            V2
        )

    def test_audit_sink_is_stdout_plus_table_when_configured(self, env: dict[str, str]) -> None:
        """The durable table joins stdout only when a table and a connection are set."""
        plain = bootstrap.build_audit_sink(Settings.from_env(env))
        durable = bootstrap.build_audit_sink(
            Settings.from_env(
                {
                    **env,
                    "ROTATION_AUDIT_TABLE": "audit",
                    "AzureWebJobsStorage": "UseDevelopmentStorage=true",
                }
            )
        )

        assert isinstance(plain, StructlogAuditSink)
        assert isinstance(durable, CompositeAuditSink)
        assert len(durable.sinks) == 2


class TestGetHandler:
    def test_is_built_once_from_the_environment(
        self, env: dict[str, str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """get_handler reads settings through config, builds lazily, and caches the service."""
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        bootstrap.get_handler.cache_clear()
        try:
            first = bootstrap.get_handler()
            second = bootstrap.get_handler()
        finally:
            bootstrap.get_handler.cache_clear()

        assert first is second
        assert isinstance(first, EventHandler)

    @pytest.mark.parametrize(
        ("value", "kind"), [(None, BatchHandler), ("12.5", BatchHandler), ("0", RotationService)]
    )
    def test_a_worker_keeps_listings_unless_the_age_is_zero(
        self,
        env: dict[str, str],
        monkeypatch: pytest.MonkeyPatch,
        value: str | None,
        kind: type,
    ) -> None:
        """ROTATION_LISTING_CACHE_SECONDS (default 30): the service behind ``batch``; 0: the
        service itself (tests/e2e/test_functions_listings.py counts the listings)."""
        for key, val in env.items():
            monkeypatch.setenv(key, val)
        if value is not None:
            monkeypatch.setenv("ROTATION_LISTING_CACHE_SECONDS", value)
        bootstrap.get_handler.cache_clear()
        try:
            handler = bootstrap.get_handler()
        finally:
            bootstrap.get_handler.cache_clear()

        assert type(handler) is kind

    def test_invalid_settings_raise_config_error(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """A missing setting is a ConfigError naming it, not a traceback from deep inside."""
        monkeypatch.delenv("ROTATION_VAULTS", raising=False)
        bootstrap.get_handler.cache_clear()
        try:
            with pytest.raises(ConfigError, match="ROTATION_VAULTS"):
                bootstrap.get_handler()
        finally:
            bootstrap.get_handler.cache_clear()


class TestBuildValidator:
    @pytest.mark.parametrize(("mode", "fetches"), [("soft", True), ("hard", True), ("off", False)])
    def test_revocation_modes_that_fetch_get_the_http_crl_fetcher(
        self, env: dict[str, str], mode: str, fetches: bool
    ) -> None:
        """soft/hard revocation wires the bounded HTTP CRL fetcher from the settings; off wires none."""

        settings = Settings.from_env(
            {**env, "ROTATION_REVOCATION": mode, "ROTATION_CRL_TIMEOUT_SECONDS": "2.5"}
        )

        validator = bootstrap.build_validator(settings)

        assert isinstance(validator, PolicyValidator)
        assert isinstance(validator.crl_fetcher, HttpCrlFetcher) is fetches
        if isinstance(validator.crl_fetcher, HttpCrlFetcher):
            assert validator.crl_fetcher.timeout == 2.5
            assert validator.crl_fetcher.max_bytes == settings.crl_max_bytes
