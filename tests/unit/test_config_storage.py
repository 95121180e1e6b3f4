"""Settings with named storage connections, clouds and trust anchors: identity-based
connections resolved, configured features that cannot get a connection refused (never silently
off), the ARM endpoint's cloud, and ROTATION_TRUST_ANCHORS as a relative path or inline PEM."""

from __future__ import annotations

from pathlib import Path

import pytest

from devstack.pki import mint_certificate
from rotation.config import Settings
from rotation.config.settings import APP_ROOT
from rotation.domain.errors import ConfigError

APIM = (
    "/subscriptions/11111111-2222-3333-4444-555555555555/resourceGroups/rg"
    "/providers/Microsoft.ApiManagement/service/apim-demo"
)
SECRET_KEY = "c2VjcmV0LWFjY291bnQta2V5LW5vdC10by1iZS1zaG93bg=="


@pytest.fixture(name="root_pem", scope="module")
def _root_pem() -> bytes:
    return mint_certificate("config storage test root", ca=True).pem


@pytest.fixture(name="env")
def _env(root_pem: bytes, tmp_path: Path) -> dict[str, str]:
    path = tmp_path / "roots.pem"
    path.write_bytes(root_pem)
    return {
        "ROTATION_VAULTS": "https://kv-rotation-demo.vault.azure.net",
        "ROTATION_APIM_SERVICES": APIM,
        "ROTATION_TRUST_ANCHORS": str(path),
    }


def _problems(env: dict[str, str]) -> tuple[str, ...]:
    with pytest.raises(ConfigError) as info:
        Settings.from_env(env)
    return info.value.problems


class TestIdentityConnections:
    def test_identity_based_host_storage_serves_audit_and_lock(self, env):
        """``AzureWebJobsStorage__accountName`` alone: the audit table and the blob lock use it."""
        env |= {
            "AzureWebJobsStorage__accountName": "stcertrotate",
            "AzureWebJobsStorage__credential": "managedidentity",
            "AzureWebJobsStorage__clientId": "00000000-0000-0000-0000-00000000000a",
            "ROTATION_AUDIT_TABLE": "certrotateaudit",
        }

        s = Settings.from_env(env)

        assert s.audit_connection is not None
        assert (
            s.audit_connection.table_service_uri == "https://stcertrotate.table.core.windows.net"
        )
        assert s.audit_connection.client_id == "00000000-0000-0000-0000-00000000000a"
        assert s.lock == "blob"
        assert s.lock_connection is not None
        assert s.lock_connection.blob_service_uri == "https://stcertrotate.blob.core.windows.net"

    def test_feature_connection_wins_over_host_storage(self, env):
        """``ROTATION_AUDIT_CONNECTION__tableServiceUri`` is used before AzureWebJobsStorage."""
        env |= {
            "ROTATION_AUDIT_TABLE": "certrotateaudit",
            "ROTATION_AUDIT_CONNECTION__tableServiceUri": "https://staudit.table.core.windows.net",
            "AzureWebJobsStorage__accountName": "sthost",
        }

        connection = Settings.from_env(env).audit_connection

        assert connection is not None
        assert connection.name == "ROTATION_AUDIT_CONNECTION"
        assert connection.table_service_uri == "https://staudit.table.core.windows.net"

    def test_account_name_follows_the_cloud_of_the_arm_endpoint(self, env):
        """US Gov ARM: ``__accountName`` completes with core.usgovcloudapi.net."""
        env |= {
            "ROTATION_ARM_ENDPOINT": "https://management.usgovcloudapi.net",
            "ROTATION_VAULTS": "https://kv-gov.vault.usgovcloudapi.net",
            "AzureWebJobsStorage__accountName": "stgov",
        }

        s = Settings.from_env(env)

        assert s.lock_connection is not None
        assert s.lock_connection.blob_service_uri == "https://stgov.blob.core.usgovcloudapi.net"

    def test_lock_defaults_off_when_the_connection_has_no_blob_endpoint(self, env):
        """A table-only identity connection: no blob endpoint, so the lock defaults to off."""
        env["AzureWebJobsStorage__tableServiceUri"] = "https://st1.table.core.windows.net"

        s = Settings.from_env(env)

        assert (s.lock, s.lock_connection is not None) == ("off", True)


class TestConfiguredButUnusable:
    def test_audit_table_without_any_connection_is_an_error_not_off(self, env):
        """The issue's case: ROTATION_AUDIT_TABLE set, no connection: a named ConfigError."""
        env["ROTATION_AUDIT_TABLE"] = "certrotateaudit"

        problems = _problems(env)

        assert len(problems) == 1
        assert problems[0].startswith("ROTATION_AUDIT_TABLE: needs a table storage connection")
        assert "ROTATION_AUDIT_CONNECTION" in problems[0]
        assert "AzureWebJobsStorage" in problems[0]

    def test_audit_table_on_a_blob_only_connection_is_an_error(self, env):
        """The connection exists but has no table endpoint: named, not silently off."""
        env |= {
            "ROTATION_AUDIT_TABLE": "certrotateaudit",
            "AzureWebJobsStorage__blobServiceUri": "https://st1.blob.core.windows.net",
        }

        problems = _problems(env)

        assert list(problems) == [
            (
                "ROTATION_AUDIT_TABLE: the connection AzureWebJobsStorage has no table endpoint "
                "(set AzureWebJobsStorage__accountName or AzureWebJobsStorage__tableServiceUri)"
            )
        ]

    def test_blob_lock_on_a_table_only_connection_is_an_error(self, env):
        """ROTATION_LOCK=blob with a connection lacking a blob endpoint."""
        env |= {
            "ROTATION_LOCK": "blob",
            "ROTATION_LOCK_CONNECTION__tableServiceUri": "https://st1.table.core.windows.net",
        }

        problems = _problems(env)

        assert len(problems) == 1
        assert problems[0].startswith(
            "ROTATION_LOCK=blob: the connection ROTATION_LOCK_CONNECTION"
        )

    def test_unusable_connections_join_every_other_problem_without_secrets(self, env):
        """A malformed audit connection string, a SAS in a lock URI and a bad strategy: one
        ConfigError naming each setting, quoting no key or SAS."""
        env |= {
            "ROTATION_AUDIT_TABLE": "certrotateaudit",
            "ROTATION_AUDIT_CONNECTION": f"AccountKey={SECRET_KEY};nonsense",
            "ROTATION_LOCK_CONNECTION__blobServiceUri": (
                f"https://st1.blob.core.windows.net/?sig={SECRET_KEY}"
            ),
            "ROTATION_STRATEGY": "sideways",
        }

        problems = _problems(env)

        assert sorted(p.split(":")[0] for p in problems) == [
            "ROTATION_AUDIT_CONNECTION",
            "ROTATION_LOCK_CONNECTION__blobServiceUri",
            "ROTATION_STRATEGY",
        ]
        assert SECRET_KEY not in repr(problems)

    def test_connections_are_not_in_repr(self, env):
        """A resolved connection string is a secret: the settings' repr never shows it."""
        env["AzureWebJobsStorage"] = f"AccountName=st1;AccountKey={SECRET_KEY}"

        assert SECRET_KEY not in repr(Settings.from_env(env))


class TestClouds:
    @pytest.mark.parametrize(
        ("endpoint", "message"),
        [
            ("http://management.azure.com", "must be an https URL"),
            ("https://[::1", "Invalid IPv6 URL"),
        ],
    )
    def test_a_bad_arm_endpoint_is_named(self, env, endpoint, message):
        """Not https, or not parseable: a problem naming ROTATION_ARM_ENDPOINT."""
        env["ROTATION_ARM_ENDPOINT"] = endpoint

        problems = _problems(env)

        assert [p.split(":")[0] for p in problems] == ["ROTATION_ARM_ENDPOINT"]
        assert message in problems[0]

    @pytest.mark.parametrize(
        ("endpoint", "vault"),
        [
            ("https://management.azure.com", "https://kv1.vault.azure.net"),
            ("https://management.usgovcloudapi.net/", "https://kv1.vault.usgovcloudapi.net"),
            ("https://management.chinacloudapi.cn", "https://kv1.vault.azure.cn"),
        ],
    )
    def test_the_arm_endpoint_selects_the_cloud(self, env, endpoint, vault):
        """The ARM token scope is the cloud's ``<origin>/.default``."""
        env |= {"ROTATION_ARM_ENDPOINT": endpoint, "ROTATION_VAULTS": vault}

        cloud = Settings.from_env(env).cloud

        assert cloud.arm_scope == f"{endpoint.rstrip('/')}/.default"

    def test_a_vault_of_another_cloud_is_refused(self, env):
        """A public-cloud vault under the China ARM endpoint: named with the expected suffix."""
        env["ROTATION_ARM_ENDPOINT"] = "https://management.chinacloudapi.cn"

        problems = _problems(env)

        assert list(problems) == [
            (
                "ROTATION_VAULTS: https://kv-rotation-demo.vault.azure.net is not a Key Vault host "
                "of AzureChinaCloud (*.vault.azure.cn, as ROTATION_ARM_ENDPOINT selects)"
            )
        ]

    def test_a_custom_endpoint_keeps_its_origin_and_any_vault_host(self, env):
        """The devstack: scope from its own origin; a loopback vault is fine."""
        env |= {
            "ROTATION_ARM_ENDPOINT": "https://127.0.0.1:9443/",
            "ROTATION_VAULTS": "https://127.0.0.1:8443",
        }

        assert Settings.from_env(env).cloud.arm_scope == "https://127.0.0.1:9443/.default"


class TestTrustAnchors:
    def test_settings_built_without_anchors_say_so(self):
        """A Settings value made by hand without a bundle cannot give its PEM."""
        s = Settings(vaults=(), apim_services=(), trust_anchors=None)

        with pytest.raises(FileNotFoundError, match="ROTATION_TRUST_ANCHORS is not set"):
            s.trust_anchor_pem()

    def test_inline_pem_is_accepted_and_kept_out_of_repr(self, env, root_pem):
        """A value starting with the PEM header is the bundle itself."""
        env["ROTATION_TRUST_ANCHORS"] = root_pem.decode()

        s = Settings.from_env(env)

        assert (s.trust_anchors, s.trust_anchor_pem()) == (None, root_pem.strip())
        assert "BEGIN CERTIFICATE" not in repr(s)

    def test_inline_pem_with_escaped_newlines(self, env, root_pem):
        """One-line app settings carry ``\\n`` escapes; they are undone."""
        env["ROTATION_TRUST_ANCHORS"] = root_pem.decode().replace("\n", "\\n")

        assert Settings.from_env(env).trust_anchor_pem() == root_pem.strip()

    def test_broken_inline_pem_is_named_not_echoed(self, env):
        """Garbage after the header: a problem naming the setting, without the value."""
        env["ROTATION_TRUST_ANCHORS"] = "-----BEGIN CERTIFICATE-----\nMIIBroken\n"

        problems = _problems(env)

        assert list(problems) == [
            "ROTATION_TRUST_ANCHORS: the inline PEM holds no readable certificate"
        ]

    def test_the_app_root_holds_function_app(self):
        """The default app root is the directory of function_app.py (the deployed package)."""
        assert (APP_ROOT / "function_app.py").is_file()

    def test_relative_path_is_resolved_against_the_app_root(self, env, root_pem, tmp_path):
        """A relative path is read from the app root, not from the working directory."""
        (tmp_path / "trust").mkdir()
        (tmp_path / "trust" / "roots.pem").write_bytes(root_pem)
        env["ROTATION_TRUST_ANCHORS"] = "trust/roots.pem"

        s = Settings.from_env(env, app_root=tmp_path)

        assert s.trust_anchors == tmp_path / "trust" / "roots.pem"
        assert s.trust_anchor_pem() == root_pem

    def test_relative_path_falls_back_to_the_current_directory(
        self, env, root_pem, tmp_path, monkeypatch
    ):
        """Not under the app root but in the working directory (a CLI run): found there."""
        (tmp_path / "cwd").mkdir()
        (tmp_path / "cwd" / "roots.pem").write_bytes(root_pem)
        (tmp_path / "app").mkdir()
        monkeypatch.chdir(tmp_path / "cwd")
        env["ROTATION_TRUST_ANCHORS"] = "roots.pem"

        s = Settings.from_env(env, app_root=tmp_path / "app")

        assert s.trust_anchor_pem() == root_pem

    def test_missing_relative_path_names_the_resolved_file(self, env, tmp_path):
        """A relative path that is not there: the problem names where it looked."""
        env["ROTATION_TRUST_ANCHORS"] = "trust/no-such-roots.pem"

        problems = _problems_at(env, tmp_path)

        assert len(problems) == 1
        assert str(tmp_path / "trust" / "no-such-roots.pem") in problems[0]


def _problems_at(env: dict[str, str], app_root: Path) -> tuple[str, ...]:
    with pytest.raises(ConfigError) as info:
        Settings.from_env(env, app_root=app_root)
    return info.value.problems
