"""Clouds from the ARM endpoint: token scope, Key Vault hosts, storage suffix (pure), and the
ARM gateway asking its credential for its cloud's scope."""

from __future__ import annotations

from typing import Any

import pytest
from azure.core.exceptions import ClientAuthenticationError

from rotation.adapters.apim import ArmApimGateway
from rotation.domain.clouds import (
    ALL_VAULT_SUFFIXES,
    AZURE_CHINA,
    AZURE_PUBLIC,
    AZURE_US_GOVERNMENT,
    cloud_for_arm_endpoint,
)
from rotation.domain.errors import AuthorizationError

SERVICE = (
    "/subscriptions/11111111-2222-3333-4444-555555555555/resourceGroups/rg"
    "/providers/Microsoft.ApiManagement/service/apim-demo"
)


@pytest.mark.parametrize(
    ("endpoint", "cloud", "scope"),
    [
        ("https://management.azure.com", AZURE_PUBLIC, "https://management.azure.com/.default"),
        ("https://Management.Azure.com/", AZURE_PUBLIC, "https://management.azure.com/.default"),
        (
            "https://management.azure.com:443",
            AZURE_PUBLIC,
            "https://management.azure.com/.default",
        ),
        (
            "https://management.usgovcloudapi.net",
            AZURE_US_GOVERNMENT,
            "https://management.usgovcloudapi.net/.default",
        ),
        (
            "https://management.chinacloudapi.cn/",
            AZURE_CHINA,
            "https://management.chinacloudapi.cn/.default",
        ),
    ],
)
def test_known_endpoints_name_their_cloud(endpoint, cloud, scope):
    """Case, a trailing slash and the default port do not matter."""
    found = cloud_for_arm_endpoint(endpoint)

    assert (found, found.arm_scope) == (cloud, scope)


def test_other_endpoints_keep_their_own_origin():
    """A devstack or Azure Stack endpoint: its origin (port kept, path dropped) + /.default."""
    cloud = cloud_for_arm_endpoint("https://127.0.0.1:9443/some/path")

    assert (cloud.name, cloud.arm_scope) == ("custom", "https://127.0.0.1:9443/.default")
    assert cloud.vault_suffixes == ()
    assert cloud.storage_suffix == "core.windows.net"


@pytest.mark.parametrize("endpoint", ["http://management.azure.com", "management.azure.com", ""])
def test_non_https_endpoints_are_refused(endpoint):
    """Tokens go over TLS only."""
    with pytest.raises(ValueError, match="https"):
        cloud_for_arm_endpoint(endpoint)


@pytest.mark.parametrize("endpoint", ["https://[::1", "https://management.azure.com:99999"])
def test_unparseable_endpoints_are_refused(endpoint):
    """A broken bracket or port is named as not a URL."""
    with pytest.raises(ValueError, match="is not a URL"):
        cloud_for_arm_endpoint(endpoint)


@pytest.mark.parametrize(
    ("cloud", "host", "allowed"),
    [
        (AZURE_PUBLIC, "kv1.vault.azure.net", True),
        (AZURE_PUBLIC, "kv1.vault.azure.cn", False),
        (AZURE_PUBLIC, "a.kv1.vault.azure.net", False),
        (AZURE_PUBLIC, "vault.azure.net", False),
        (AZURE_PUBLIC, "kv1.vault.azure.net.evil.example", False),
        (AZURE_US_GOVERNMENT, "kv1.vault.usgovcloudapi.net", True),
        (AZURE_US_GOVERNMENT, "kv1.vault.azure.net", False),
        (AZURE_CHINA, "kv1.vault.azure.cn", True),
        (AZURE_CHINA, "kv1.vault.usgovcloudapi.net", False),
    ],
)
def test_vault_hosts_follow_the_cloud(cloud, host, allowed):
    """One label before the cloud's vault suffix, nothing else."""
    assert cloud.vault_host_allowed(host) is allowed


def test_foreign_vault_hosts_are_those_of_another_known_cloud():
    """A loopback stand-in is not foreign (named explicitly); another cloud's vault is."""
    assert AZURE_CHINA.foreign_vault_host("kv1.vault.azure.net")
    assert not AZURE_CHINA.foreign_vault_host("kv1.vault.azure.cn")
    assert not AZURE_CHINA.foreign_vault_host("127.0.0.1")
    assert not cloud_for_arm_endpoint("https://127.0.0.1:9443").foreign_vault_host(
        "kv1.vault.azure.net"
    )


def test_every_known_vault_suffix_is_listed_once():
    """The intake's fallback rule accepts the vault hosts of every known cloud."""
    assert sorted(ALL_VAULT_SUFFIXES) == [
        "vault.azure.cn",
        "vault.azure.net",
        "vault.usgovcloudapi.net",
    ]


class _Refusing:
    """A TokenCredential that records the scopes it is asked for, then refuses."""

    def __init__(self) -> None:
        self.scopes: list[tuple[str, ...]] = []

    def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        self.scopes.append(scopes)
        raise ClientAuthenticationError("no token in this test")

    def get_token_info(self, *scopes: str, **kwargs: Any) -> Any:
        self.scopes.append(scopes)
        raise ClientAuthenticationError("no token in this test")


@pytest.mark.parametrize(
    ("endpoint", "scope"),
    [
        ("https://management.usgovcloudapi.net", "https://management.usgovcloudapi.net/.default"),
        ("https://management.chinacloudapi.cn", "https://management.chinacloudapi.cn/.default"),
        ("https://127.0.0.1:9", "https://127.0.0.1:9/.default"),
    ],
)
def test_the_gateway_asks_for_its_clouds_arm_scope(endpoint, scope):
    """The token is requested before any request leaves: the scope is the cloud's."""
    credential = _Refusing()
    gateway = ArmApimGateway(credential, base_url=endpoint, retry_total=0)

    with pytest.raises(AuthorizationError):
        gateway.list_certificates(SERVICE)

    assert credential.scopes
    assert set(credential.scopes) == {(scope,)}
