"""Settings: one ConfigError listing every problem, normalised values, secrets kept out of repr."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from devstack.pki import mint_certificate
from rotation.config import (
    Settings,
    log_level_from_env,
    normalize_vault_url,
    vault_urls_from_env,
)
from rotation.domain.canary import CanaryMode
from rotation.domain.errors import ConfigError
from rotation.domain.model import Strategy

APIM = (
    "/subscriptions/11111111-2222-3333-4444-555555555555/resourceGroups/rg"
    "/providers/Microsoft.ApiManagement/service/apim-demo"
)


@pytest.fixture(name="anchors", scope="module")
def _anchors(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = mint_certificate("config test root", ca=True)
    path = tmp_path_factory.mktemp("anchors") / "roots.pem"
    path.write_bytes(root.pem)
    return path


@pytest.fixture(name="env")
def _env(anchors: Path) -> dict[str, str]:
    return {
        "ROTATION_VAULTS": "https://KV-Rotation-Demo.vault.azure.net/, https://127.0.0.1:8443",
        "ROTATION_APIM_SERVICES": APIM,
        "ROTATION_TRUST_ANCHORS": str(anchors),
    }


class TestFromEnv:
    def test_minimal_settings_take_the_documented_defaults(self, env):
        """Only the three required settings are needed; the rest default as documented."""
        settings = Settings.from_env(env)

        assert settings.vaults == (
            "https://kv-rotation-demo.vault.azure.net",
            "https://127.0.0.1:8443",
        )
        assert settings.apim_services == (APIM,)
        assert settings.strategy is Strategy.PIN
        assert (settings.dry_run, settings.min_valid_days, settings.clock_skew_seconds) == (
            False,
            14,
            300,
        )
        assert (settings.revocation, settings.retain_previous, settings.max_attempts) == (
            "soft",
            2,
            3,
        )
        assert settings.reconcile_schedule is None  # the host reads the app setting itself
        assert (settings.audit_table, settings.audit_connection) == (None, None)
        assert settings.arm_endpoint == "https://management.azure.com"
        assert (settings.http_retries, settings.crl_timeout_seconds, settings.crl_max_bytes) == (
            3,
            5.0,
            1048576,
        )
        assert (settings.verify_challenge_resource, settings.log_level) == (True, "INFO")

    def test_every_setting_is_read(self, env, anchors):
        """Each ROTATION_* variable lands in its field, converted."""
        env |= {
            "ROTATION_STRATEGY": "Blue-Green", "ROTATION_DRY_RUN": "yes",
            "ROTATION_MIN_VALID_DAYS": "0", "ROTATION_CLOCK_SKEW_SECONDS": "60",
            "ROTATION_REVOCATION": "HARD", "ROTATION_REQUIRE_EKU": "1", "ROTATION_PIN_IDENTITY": "true",
            "ROTATION_RETAIN_PREVIOUS": "4", "ROTATION_MAX_ATTEMPTS": "5",
            "ROTATION_NEAR_EXPIRY_DAYS": "10", "ROTATION_RECONCILE_SCHEDULE": "0  0 * * * *",
            "ROTATION_AUDIT_TABLE": "certrotateaudit", "ROTATION_AUDIT_CONNECTION": "UseDevelopmentStorage=true",
            "ROTATION_ARM_ENDPOINT": "https://127.0.0.1:9443/", "ROTATION_DEVSTACK_CA_BUNDLE": str(anchors),
            "ROTATION_DEVSTACK_TOKEN": "tok", "ROTATION_KEYVAULT_VERIFY_CHALLENGE_RESOURCE": "no",
            "ROTATION_HTTP_RETRIES": "0", "ROTATION_CRL_TIMEOUT_SECONDS": "2.5",
            "ROTATION_CRL_MAX_BYTES": "2048", "AZURE_CLIENT_ID": "client-id", "ROTATION_LOG_LEVEL": "debug",
        }  # fmt: skip

        s = Settings.from_env(env)

        assert (s.strategy, s.dry_run, s.min_valid_days, s.clock_skew_seconds) == (
            Strategy.BLUE_GREEN,
            True,
            0,
            60,
        )
        assert (s.revocation, s.require_eku, s.pin_identity) == ("hard", True, True)
        assert (s.retain_previous, s.max_attempts, s.near_expiry_days) == (4, 5, 10)
        assert s.reconcile_schedule == "0 0 * * * *"
        assert s.audit_table == "certrotateaudit"
        assert s.audit_connection is not None
        assert s.audit_connection.connection_string == "UseDevelopmentStorage=true"
        assert (s.arm_endpoint, s.devstack_ca_bundle, s.devstack_token) == (
            "https://127.0.0.1:9443",
            anchors,
            "tok",
        )
        assert (s.verify_challenge_resource, s.http_retries, s.crl_timeout_seconds) == (
            False,
            0,
            2.5,
        )
        assert (s.crl_max_bytes, s.azure_client_id, s.log_level) == (2048, "client-id", "DEBUG")

    def test_audit_connection_falls_back_to_azure_webjobs_storage(self, env):
        """Without ROTATION_AUDIT_CONNECTION the Functions storage account is used."""
        env["AzureWebJobsStorage"] = "UseDevelopmentStorage=true"

        connection = Settings.from_env(env).audit_connection

        assert connection is not None
        assert (connection.name, connection.connection_string) == (
            "AzureWebJobsStorage",
            "UseDevelopmentStorage=true",
        )

    def test_error_lists_every_problem_at_once(self, tmp_path):
        """Missing and invalid settings are all reported in one ConfigError."""
        empty = tmp_path / "empty.pem"
        empty.write_text("no certificates here")
        env = {
            "ROTATION_APIM_SERVICES": "/subscriptions/x/nope",
            "ROTATION_TRUST_ANCHORS": str(empty),
            "ROTATION_STRATEGY": "sideways",
            "ROTATION_DRY_RUN": "maybe",
            "ROTATION_MIN_VALID_DAYS": "-1",
            "ROTATION_RECONCILE_SCHEDULE": "*/5 * * * *",
            "ROTATION_CRL_TIMEOUT_SECONDS": "0",
        }

        with pytest.raises(ConfigError) as info:
            Settings.from_env(env)

        names = [p.split(":")[0] for p in info.value.problems]
        assert names == [
            "ROTATION_VAULTS", "ROTATION_APIM_SERVICES", "ROTATION_TRUST_ANCHORS",
            "ROTATION_STRATEGY", "ROTATION_DRY_RUN", "ROTATION_MIN_VALID_DAYS",
            "ROTATION_RECONCILE_SCHEDULE", "ROTATION_CRL_TIMEOUT_SECONDS",
        ]  # fmt: skip
        assert "7 problem" not in str(info.value)
        assert "8 problem(s)" in str(info.value)

    def test_missing_trust_anchor_file(self, env, tmp_path):
        """A trust-anchor path that does not exist is a problem naming the setting."""
        env["ROTATION_TRUST_ANCHORS"] = str(tmp_path / "missing.pem")

        with pytest.raises(ConfigError, match="ROTATION_TRUST_ANCHORS: cannot read"):
            Settings.from_env(env)

    @pytest.mark.parametrize(
        "url", ["http://kv.vault.azure.net", "https://kv.vault.azure.net/certificates", "kv"]
    )
    def test_vault_must_be_a_bare_https_url(self, env, url):
        """ROTATION_VAULTS entries are bare https URLs."""
        env["ROTATION_VAULTS"] = url

        with pytest.raises(ConfigError, match="ROTATION_VAULTS"):
            Settings.from_env(env)

    def test_secrets_are_not_in_repr(self, env):
        """The connection string and devstack token never appear in repr or str."""
        env |= {
            "ROTATION_AUDIT_CONNECTION": "AccountName=st1;AccountKey=c2VjcmV0",
            "ROTATION_DEVSTACK_TOKEN": "tok-123",
        }

        text = repr(Settings.from_env(env))

        assert "c2VjcmV0" not in text
        assert "tok-123" not in text

    def test_secret_values_are_not_echoed_in_errors(self, env):
        """Problems name the setting; a secret setting's value is never quoted."""
        env |= {"ROTATION_AUDIT_CONNECTION": "AccountKey=c2VjcmV0", "ROTATION_HTTP_RETRIES": "x"}

        with pytest.raises(ConfigError) as info:
            Settings.from_env(env)

        assert "c2VjcmV0" not in str(info.value)


class TestCanaryAndFollow:
    def test_canary_defaults_to_warn_and_follow_is_a_strategy(self, env):
        settings = Settings.from_env({**env, "ROTATION_STRATEGY": "Follow"})

        assert settings.strategy is Strategy.FOLLOW
        assert settings.canary is CanaryMode.WARN
        assert (settings.canary_timeout_seconds, settings.canary_server_ca) == (5.0, ())

    def test_canary_problems_are_configuration_errors_listed_with_the_rest(self, env):
        """Bad canary values join the one ConfigError (exit 2), each naming its setting."""
        bad = {
            **env, "ROTATION_STRATEGY": "sideways", "ROTATION_CANARY": "block",
            "ROTATION_CANARY_TIMEOUT": "30", "ROTATION_CANARY_SERVER_CA": "/nonexistent.pem",
        }  # fmt: skip

        with pytest.raises(ConfigError) as info:
            Settings.from_env(bad)

        names = sorted(p.split(":")[0] for p in info.value.problems)
        assert names == [
            "ROTATION_CANARY", "ROTATION_CANARY_SERVER_CA", "ROTATION_CANARY_TIMEOUT",
            "ROTATION_STRATEGY",
        ]  # fmt: skip
        assert "pin, blue-green, follow" in str(info.value)


class TestLockSettings:
    def test_lock_is_off_without_a_storage_connection(self, env):
        """No lock connection and no AzureWebJobsStorage: the lock defaults to off."""
        settings = Settings.from_env(env)

        assert (settings.lock, settings.lock_connection) == ("off", None)
        assert (settings.lock_container, settings.lock_wait_seconds) == ("certrotate-locks", 20.0)

    def test_lock_defaults_to_blob_on_the_functions_storage_account(self, env):
        """With AzureWebJobsStorage set the lock is a blob lease on that account."""
        env["AzureWebJobsStorage"] = "UseDevelopmentStorage=true"

        settings = Settings.from_env(env)

        assert settings.lock == "blob"
        assert settings.lock_connection is not None
        assert settings.lock_connection.connection_string == "UseDevelopmentStorage=true"

    def test_every_lock_setting_is_read(self, env):
        """ROTATION_LOCK_* land in their fields; the lock connection wins over AzureWebJobsStorage."""
        env |= {
            "ROTATION_LOCK": "BLOB", "ROTATION_LOCK_CONNECTION": "AccountName=locks",
            "AzureWebJobsStorage": "AccountName=functions", "ROTATION_LOCK_CONTAINER": "rotation-locks",
            "ROTATION_LOCK_WAIT_SECONDS": "7.5",
        }  # fmt: skip

        s = Settings.from_env(env)

        assert s.lock == "blob"
        assert s.lock_connection is not None
        assert s.lock_connection.connection_string == "AccountName=locks"
        assert (s.lock_container, s.lock_wait_seconds) == ("rotation-locks", 7.5)

    def test_off_wins_over_an_available_connection(self, env):
        """ROTATION_LOCK=off turns the lock off even when storage is configured."""
        env |= {"ROTATION_LOCK": "off", "AzureWebJobsStorage": "UseDevelopmentStorage=true"}

        assert Settings.from_env(env).lock == "off"

    def test_blob_without_connection_is_listed_with_every_other_problem(self, env):
        """ROTATION_LOCK=blob with no connection, and bad lock knobs, are all in one ConfigError."""
        env |= {
            "ROTATION_LOCK": "blob", "ROTATION_LOCK_CONTAINER": "Bad--Name",
            "ROTATION_LOCK_WAIT_SECONDS": "30", "ROTATION_STRATEGY": "sideways",
        }  # fmt: skip

        with pytest.raises(ConfigError) as info:
            Settings.from_env(env)

        names = sorted(p.split(":")[0] for p in info.value.problems)
        assert names == [
            "ROTATION_LOCK=blob", "ROTATION_LOCK_CONTAINER", "ROTATION_LOCK_WAIT_SECONDS",
            "ROTATION_STRATEGY",
        ]  # fmt: skip
        assert "ROTATION_LOCK_CONNECTION" in str(info.value)

    @pytest.mark.parametrize("mode", ["lease", "on", "redis"])
    def test_unknown_lock_mode_is_rejected(self, env, mode):
        """ROTATION_LOCK is blob or off, nothing else."""
        env["ROTATION_LOCK"] = mode

        with pytest.raises(ConfigError, match=r"ROTATION_LOCK: .* is not one of blob, off"):
            Settings.from_env(env)

    @pytest.mark.parametrize("name", ["ab", "-locks", "locks-", "lo--cks", "Locks", "a" * 64])
    def test_container_name_must_be_valid_for_blob_storage(self, env, name):
        """A container name Blob Storage would refuse is a setting problem, not a 400 later."""
        env["ROTATION_LOCK_CONTAINER"] = name

        with pytest.raises(ConfigError, match="ROTATION_LOCK_CONTAINER"):
            Settings.from_env(env)

    @pytest.mark.parametrize("wait", ["0", "-1", "30", "nan", "soon"])
    def test_lock_wait_must_be_positive_and_below_event_grid_timeout(self, env, wait):
        """The lock wait is > 0 and < 30 s, so wait plus work fits Event Grid's timeout."""
        env["ROTATION_LOCK_WAIT_SECONDS"] = wait

        with pytest.raises(ConfigError, match="ROTATION_LOCK_WAIT_SECONDS"):
            Settings.from_env(env)

    @pytest.mark.parametrize(("raw", "seconds"), [(None, 30.0), ("0", 0.0), ("2.5", 2.5)])
    def test_listing_cache_seconds(self, env, raw, seconds):
        """How long a Functions worker keeps a listing: 30 s unless set; 0 turns it off."""
        if raw is not None:
            env["ROTATION_LISTING_CACHE_SECONDS"] = raw

        assert Settings.from_env(env).listing_cache_seconds == seconds

    @pytest.mark.parametrize("raw", ["-1", "nan", "inf", "soon"])
    def test_listing_cache_seconds_must_be_a_finite_number_at_least_zero(self, env, raw):
        env["ROTATION_LISTING_CACHE_SECONDS"] = raw

        with pytest.raises(ConfigError, match="ROTATION_LISTING_CACHE_SECONDS"):
            Settings.from_env(env)

    def test_lock_connection_is_not_in_repr_or_errors(self, env):
        """The lock connection string is a secret: never in repr, never quoted in a problem."""
        env |= {
            "ROTATION_LOCK_CONNECTION": "AccountName=st1;AccountKey=c2VjcmV0",
            "ROTATION_LOCK": "nope",
        }
        env_ok = {**env, "ROTATION_LOCK": "blob"}

        with pytest.raises(ConfigError) as info:
            Settings.from_env(env)
        text = repr(Settings.from_env(env_ok))

        assert "c2VjcmV0" not in str(info.value)
        assert "c2VjcmV0" not in text


class TestHelpers:
    def test_normalize_vault_url(self):
        """Host lower-cased, trailing slash dropped, port kept."""
        assert normalize_vault_url(" https://KV.Vault.Azure.NET/ ") == "https://kv.vault.azure.net"
        assert normalize_vault_url("https://127.0.0.1:8443") == "https://127.0.0.1:8443"

    def test_vault_urls_from_env_unset_is_empty(self):
        """No ROTATION_VAULTS means no extra allowed vaults."""
        assert vault_urls_from_env({}) == ()

    def test_vault_urls_from_env_invalid_raises(self):
        """A bad entry is a ConfigError naming the setting."""
        with pytest.raises(ConfigError, match="ROTATION_VAULTS"):
            vault_urls_from_env({"ROTATION_VAULTS": "ftp://x"})

    def test_log_level_from_env_falls_back_to_info(self):
        """Logging must start even with a bad level."""
        assert log_level_from_env({"ROTATION_LOG_LEVEL": "loud"}) == "INFO"
        assert log_level_from_env({"ROTATION_LOG_LEVEL": "warning"}) == "WARNING"


class TestDocumentation:
    def test_example_settings_and_docs_name_every_setting(self):
        """local.settings.example.json and docs/settings.md list every setting config reads."""
        root = Path(__file__).resolve().parents[2]
        read = set(
            re.findall(
                r'"((?:ROTATION_[A-Z_]+)|AZURE_CLIENT_ID)"',
                (root / "rotation/config/settings.py").read_text(),
            )
        )
        example = json.loads((root / "local.settings.example.json").read_text())["Values"]
        docs = (root / "docs/settings.md").read_text()

        assert read <= set(example)
        assert {name for name in read if f"`{name}`" not in docs} == set()
