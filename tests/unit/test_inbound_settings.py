"""ROTATION_INBOUND_CERTIFICATES and ROTATION_INBOUND_OVERLAP_DAYS: parsed, or a ConfigError
naming the setting and what is wrong with the value."""

from __future__ import annotations

from pathlib import Path

import pytest

from devstack.pki import mint_certificate
from rotation.config import Settings
from rotation.domain.errors import ConfigError

APIM = "/subscriptions/1/resourceGroups/rg/providers/Microsoft.ApiManagement/service/apim-demo"
VAULT = "https://kv-demo.vault.azure.net"


@pytest.fixture(name="env")
def _env(tmp_path: Path) -> dict[str, str]:
    anchors = tmp_path / "roots.pem"
    anchors.write_bytes(mint_certificate("inbound settings root", ca=True).pem)
    return {
        "ROTATION_VAULTS": f"{VAULT}, https://127.0.0.1:8443",
        "ROTATION_APIM_SERVICES": APIM,
        "ROTATION_TRUST_ANCHORS": str(anchors),
    }


def problems(env: dict[str, str]) -> tuple[str, ...]:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env(env)
    return tuple(caught.value.problems)


def test_defaults_none_and_seven_days(env):
    settings = Settings.from_env(env)
    assert settings.inbound_certificates == ()
    assert settings.inbound_overlap_days == 7


def test_urls_are_parsed_normalised_and_deduplicated(env):
    env["ROTATION_INBOUND_CERTIFICATES"] = (
        "https://KV-Demo.vault.azure.net/certificates/caller-a/, "
        f"{VAULT}/certificates/CALLER-A, https://127.0.0.1:8443/certificates/b"
    )
    env["ROTATION_INBOUND_OVERLAP_DAYS"] = "14"
    settings = Settings.from_env(env)
    assert settings.inbound_certificates == (
        (VAULT, "caller-a"),
        ("https://127.0.0.1:8443", "b"),
    )
    assert settings.inbound_overlap_days == 14


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("https://other.vault.azure.net/certificates/c", "is not in ROTATION_VAULTS"),
        (f"{VAULT}/certificates/c/0123abcd", "names a version"),
        (f"{VAULT}/secrets/c", "is not https://{vault}/certificates/{name}"),
        ("http://kv-demo.vault.azure.net/certificates/c", "must be an https Key Vault URL"),
        (f"{VAULT}/certificates/bad_name", "letters, digits and dashes"),
        (f"{VAULT}/certificates/c?x=1", "no query"),
        (" , ", "lists no certificate URL"),
    ],
)
def test_a_bad_url_is_a_configuration_error_naming_the_setting(env, value, says):
    env["ROTATION_INBOUND_CERTIFICATES"] = value
    (found,) = problems(env)
    assert found.startswith("ROTATION_INBOUND_CERTIFICATES: ")
    assert says in found


@pytest.mark.parametrize("value", ["0", "-3", "seven"])
def test_a_bad_overlap_is_a_configuration_error(env, value):
    env["ROTATION_INBOUND_OVERLAP_DAYS"] = value
    (found,) = problems(env)
    assert found.startswith("ROTATION_INBOUND_OVERLAP_DAYS: ")
